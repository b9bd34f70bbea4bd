package bot

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/resonite-bridge/resonite-bridge/bridge"
)

func (b *Bot) cmdStatus(ctx context.Context, ix *interaction, _ discordgo.ApplicationCommandInteractionData) answer {
	gw := b.Gateway()
	e := &discordgo.MessageEmbed{Type: discordgo.EmbedTypeRich, Title: "resonite-bridge status", Color: 0x2ecc71}
	field := func(name, value string, inline bool) {
		e.Fields = append(e.Fields, &discordgo.MessageEmbedField{Name: name, Value: bridge.Shorten(orDash(value), 1024), Inline: inline})
	}
	field("Discord gateway", upDown(gw.Connected, gw.Since), true)
	healthy := gw.Connected
	if b.o.Status != nil {
		st := b.o.Status.Status(ctx, ix.GuildID)
		hub := st.HubState
		if hub == "" {
			hub = "unknown"
		}
		if !st.HubSince.IsZero() {
			hub += fmt.Sprintf(" since <t:%d:R>", st.HubSince.Unix())
		}
		field("Resonite hub", hub, true)
		healthy = healthy && st.HubConnected
		account := st.AccountUsername
		if account == "" {
			account = "not logged in"
		}
		if st.AccountUserID != "" {
			account += " (`" + st.AccountUserID + "`)"
		}
		if st.AutoAccept {
			account += "\naccepts contact requests automatically"
		}
		field("Resonite account", account, false)
		field("Pairings", fmt.Sprint(st.Pairings), true)
		queue := fmt.Sprintf("%d waiting", st.QueueDepth)
		if st.QueueDepth > 0 {
			queue += fmt.Sprintf(" (%d to Discord, %d to Resonite)", st.QueueToDiscord, st.QueueToResonite)
		}
		if st.FailedMessages > 0 {
			queue += fmt.Sprintf(", %d failed", st.FailedMessages)
		}
		field("Queue", queue, true)
		if c := catchUpText(st.CatchUp); c != "" {
			field("Catch-up", c, false)
		}
		if st.LastError != "" {
			when := ""
			if !st.LastErrorAt.IsZero() {
				when = fmt.Sprintf(" (<t:%d:R>)", st.LastErrorAt.Unix())
			}
			field("Last error", bridge.Shorten(redact(st.LastError), 900)+when, false)
		}
	}
	if gw.LastError != "" && !gw.Connected {
		field("Gateway error", gw.LastError, false)
	}
	var refs []string
	for _, c := range b.hooks.fallbackChannels() {
		// Only this server's channels: another's are none of its business.
		if ch, err := b.s.State.Channel(c); err == nil && ch.GuildID == ix.GuildID {
			refs = append(refs, channelRef(c))
		}
	}
	if len(refs) > 0 {
		field("Posting as the bot (no Manage Webhooks)", strings.Join(refs, " "), false)
	}
	if !healthy {
		e.Color = 0xe67e22
	}
	return answer{embeds: []*discordgo.MessageEmbed{e}}
}

// catchUpText describes a running catch-up and what waits for it; "" when nothing does.
func catchUpText(c bridge.CatchUpProgress) string {
	var parts []string
	if c.Running {
		s := "running"
		if !c.Since.IsZero() {
			s += fmt.Sprintf(" since <t:%d:R>", c.Since.Unix())
		}
		if !c.ResoniteDone {
			s += ": reading the Resonite mailbox"
		} else if c.PairingsTotal > 0 {
			s += fmt.Sprintf(": %d of %d channels read", c.PairingsDone, c.PairingsTotal)
		}
		parts = append(parts, s)
	}
	switch {
	case c.HeldToDiscord && c.HeldPairings != 0:
		parts = append(parts, "messages wait for it both ways")
	case c.HeldToDiscord:
		parts = append(parts, "messages to Discord wait for it")
	case c.HeldPairings < 0:
		parts = append(parts, "messages to Resonite wait for it")
	case c.HeldPairings > 0:
		parts = append(parts, fmt.Sprintf("messages of %d channels to Resonite wait for it", c.HeldPairings))
	}
	if len(parts) == 0 {
		return ""
	}
	if c.Recovered > 0 {
		parts = append(parts, fmt.Sprintf("%d messages recovered from history since start", c.Recovered))
	}
	return strings.Join(parts, "; ")
}

func upDown(up bool, since time.Time) string {
	s := "🔴 disconnected"
	if up {
		s = "🟢 connected"
	}
	if !since.IsZero() {
		s += fmt.Sprintf(" since <t:%d:R>", since.Unix())
	}
	return s
}
