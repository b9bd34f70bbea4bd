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
		st := b.o.Status.Status(ctx)
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
		if st.FailedMessages > 0 {
			queue += fmt.Sprintf(", %d failed", st.FailedMessages)
		}
		field("Queue", queue, true)
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
	if fb := b.hooks.fallbackChannels(); len(fb) > 0 {
		refs := make([]string, 0, len(fb))
		for _, c := range fb {
			refs = append(refs, channelRef(c))
		}
		field("Posting as the bot (no Manage Webhooks)", strings.Join(refs, " "), false)
	}
	if !healthy {
		e.Color = 0xe67e22
	}
	return answer{embeds: []*discordgo.MessageEmbed{e}}
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
