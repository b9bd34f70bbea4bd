package bot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/resonite-bridge/resonite-bridge/bridge"
	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// Discord's JSON error codes the bot reacts to.
const (
	codeUnknownChannel     = 10003
	codeUnknownMessage     = 10008
	codeUnknownWebhook     = 10015
	codeMissingAccess      = 50001
	codeMissingPermissions = 50013
	codeInvalidWebhookTok  = 50027
	codeMaxWebhooks        = 30007
)

// webhookName is the name of the webhooks the bot creates; each post overrides it.
const webhookName = "Resonite Bridge"

// noPermRetry is how long a channel without Manage Webhooks is served by bot messages before
// the bot looks again (an admin may have granted it).
const noPermRetry = 10 * time.Minute

type hook struct{ id, token string }

// webhooks finds, adopts, creates and remembers the webhook of each channel the bridge posts in.
type webhooks struct {
	b *Bot

	createMu sync.Mutex // one lookup-or-create at a time, so a channel never gets two

	mu        sync.Mutex
	byChannel map[string]hook
	ours      map[string]bool      // ids of webhooks the bot posts through
	noPerm    map[string]time.Time // channel → when Manage Webhooks was found missing
}

func newWebhooks(b *Bot) *webhooks {
	return &webhooks{b: b, byChannel: map[string]hook{}, ours: map[string]bool{}, noPerm: map[string]time.Time{}}
}

func (w *webhooks) isOurs(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ours[id]
}

func (w *webhooks) remember(channelID string, h hook) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.byChannel[channelID] = h
	w.ours[h.id] = true
	delete(w.noPerm, channelID)
}

func (w *webhooks) cached(channelID string) (hook, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, ok := w.byChannel[channelID]
	return h, ok
}

// FallbackChannels lists the channels served by plain bot messages because the bot lacks
// Manage Webhooks there.
func (w *webhooks) fallbackChannels() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.noPerm))
	for c := range w.noPerm {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// errNoWebhook: the channel is served by bot messages.
var errNoWebhook = errors.New("no webhook: the bot lacks Manage Webhooks in this channel")

// resolve returns the channel's webhook: remembered, stored with the pairing, adopted from the
// channel's webhooks by application id, or created. errNoWebhook means: post as the bot.
func (w *webhooks) resolve(ctx context.Context, channelID string) (hook, error) {
	if h, ok := w.cached(channelID); ok {
		return h, nil
	}
	w.createMu.Lock()
	defer w.createMu.Unlock()
	if h, ok := w.cached(channelID); ok {
		return h, nil
	}
	w.mu.Lock()
	since, denied := w.noPerm[channelID]
	w.mu.Unlock()
	if denied && time.Since(since) < noPermRetry {
		return hook{}, errNoWebhook
	}

	b := w.b
	ps, err := b.o.Store.PairingsByChannel(ctx, channelID)
	if err != nil {
		return hook{}, fmt.Errorf("looking up the pairings of channel %s: %w", channelID, err)
	}
	paired := len(ps) > 0
	for _, p := range ps { // a group channel's pairings share one webhook
		if p.WebhookID != "" && p.WebhookToken != "" {
			h := hook{p.WebhookID, p.WebhookToken}
			w.remember(channelID, h)
			return h, nil
		}
	}

	h, err := w.adoptOrCreate(ctx, channelID)
	if err != nil {
		return hook{}, err
	}
	if paired {
		if err := b.o.Store.SetPairingWebhook(ctx, channelID, h.id, h.token); err != nil && !errors.Is(err, core.ErrNotFound) {
			b.log.Warn("storing the webhook of a paired channel failed; it is adopted again next start", "channel", channelID, "err", err)
		}
	}
	w.remember(channelID, h)
	return h, nil
}

func (w *webhooks) adoptOrCreate(ctx context.Context, postChannel string) (hook, error) {
	b := w.b
	appID, err := b.waitAppID(ctx)
	if err != nil {
		return hook{}, err
	}
	// A thread posts through its parent channel's webhook.
	channelID, _, err := b.webhookChannel(ctx, postChannel)
	if err != nil {
		return hook{}, err
	}
	list, err := b.s.ChannelWebhooks(channelID, discordgo.WithContext(ctx))
	if err != nil {
		return hook{}, w.webhookError(channelID, "listing the webhooks of channel "+channelID, err)
	}
	for _, wh := range list {
		if wh != nil && wh.ApplicationID == appID && wh.Token != "" {
			b.log.Info("adopted an existing webhook of this application", "channel", channelID, "webhook", wh.ID)
			return hook{wh.ID, wh.Token}, nil
		}
	}
	wh, err := b.s.WebhookCreate(channelID, webhookName, "", discordgo.WithContext(ctx))
	if err != nil {
		return hook{}, w.webhookError(channelID, "creating a webhook in channel "+channelID, err)
	}
	b.log.Info("created a webhook", "channel", channelID, "webhook", wh.ID)
	return hook{wh.ID, wh.Token}, nil
}

// webhookError turns a missing permission (or a full webhook list) into errNoWebhook, so that
// the channel is still served.
func (w *webhooks) webhookError(channelID, doing string, err error) error {
	code, status := restCode(err)
	switch {
	case status == http.StatusForbidden || code == codeMissingPermissions || code == codeMissingAccess:
		w.b.log.Warn("the bot lacks Manage Webhooks; posting as the bot instead", "channel", channelID)
	case code == codeMaxWebhooks:
		w.b.log.Warn("the channel has 15 webhooks already (Discord's limit); posting as the bot instead", "channel", channelID)
	default:
		return wrap(doing, err)
	}
	w.mu.Lock()
	w.noPerm[channelID] = time.Now()
	w.mu.Unlock()
	return errNoWebhook
}

// forget drops a webhook Discord no longer knows (deleted by an admin), here and in the pairing.
func (w *webhooks) forget(ctx context.Context, channelID string, h hook) {
	w.mu.Lock()
	if cur, ok := w.byChannel[channelID]; ok && cur == h {
		delete(w.byChannel, channelID)
	}
	w.mu.Unlock()
	ps, err := w.b.o.Store.PairingsByChannel(ctx, channelID)
	if err == nil && slices.ContainsFunc(ps, func(p core.Pairing) bool { return p.WebhookID == h.id }) {
		if err := w.b.o.Store.SetPairingWebhook(ctx, channelID, "", ""); err != nil {
			w.b.log.Warn("clearing a deleted webhook from the pairing failed", "channel", channelID, "err", err)
		}
	}
}

// noMentions is the allowed_mentions of everything the bot sends: an explicit empty parse list,
// so that nothing relayed or echoed ever pings anyone.
func noMentions() *discordgo.MessageAllowedMentions {
	return &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}
}

// Post sends a message into a channel through its webhook, under the post's name and avatar,
// and returns the new message's id; without Manage Webhooks the bot posts "**Name**: text"
// itself. Failures come back as core's delivery outcomes: a rate-limited webhook is
// core.RetryAfter at once (the bridge postpones and coalesces), a refusal core.Permanent, an
// outage core.Unavailable.
func (b *Bot) Post(ctx context.Context, channelID string, p core.Post) (string, error) {
	id, err := b.post(ctx, channelID, p)
	return id, classify(err)
}

func (b *Bot) post(ctx context.Context, channelID string, p core.Post) (string, error) {
	for attempt := 0; ; attempt++ {
		h, err := b.hooks.resolve(ctx, channelID)
		if errors.Is(err, errNoWebhook) {
			return b.postAsBot(ctx, channelID, p)
		}
		if err != nil {
			return "", err
		}
		_, threadID, err := b.webhookChannel(ctx, channelID)
		if err != nil {
			return "", err
		}
		params := &discordgo.WebhookParams{
			Content:         p.Content,
			Username:        SanitizeWebhookName(p.Username),
			AvatarURL:       httpsOnly(p.AvatarURL),
			Embeds:          embeds(p.Embeds),
			AllowedMentions: noMentions(),
			Files:           discordFiles(p.Files),
			Components:      linkButtons(p.Buttons),
		}
		m, err := b.s.WebhookThreadExecute(h.id, h.token, true, threadID, params, discordgo.WithContext(withoutWaiting(ctx)))
		if err == nil {
			if m == nil {
				return "", errors.New("discord: webhook execution returned no message")
			}
			return m.ID, nil
		}
		code, _ := restCode(err)
		if (code == codeUnknownWebhook || code == codeInvalidWebhookTok) && attempt == 0 {
			b.log.Warn("the channel's webhook is gone; creating a new one", "channel", channelID)
			b.hooks.forget(ctx, channelID, h)
			continue
		}
		return "", wrap("posting into channel "+channelID+" through its webhook", err, h.token)
	}
}

// postAsBot is the fallback without a webhook: the bot's own message, the name in bold.
func (b *Bot) postAsBot(ctx context.Context, channelID string, p core.Post) (string, error) {
	content := p.Content
	if name := strings.TrimSpace(p.Username); name != "" {
		content = "**" + bridge.EscapeMarkdown(name) + "**: " + content
	}
	chunks := bridge.SplitText(content, bridge.DiscordMaxLen)
	first := ""
	for i, c := range chunks {
		send := &discordgo.MessageSend{Content: c, AllowedMentions: noMentions()}
		if i == len(chunks)-1 {
			send.Embeds = embeds(p.Embeds)
			send.Files = discordFiles(p.Files)
			send.Components = linkButtons(p.Buttons)
		}
		m, err := b.s.ChannelMessageSendComplex(channelID, send, discordgo.WithContext(withoutWaiting(ctx)))
		if err != nil {
			return first, wrap("posting into channel "+channelID, err)
		}
		if first == "" {
			first = m.ID
		}
	}
	return first, nil
}

// Reply leaves a short answer under a message (the bridge's ⚠ notes), pinging nobody.
// Failures are core's delivery outcomes, as with Post.
func (b *Bot) Reply(ctx context.Context, channelID, messageID, content string) error {
	no := false
	am := noMentions()
	am.RepliedUser = false
	_, err := b.s.ChannelMessageSendComplex(channelID, &discordgo.MessageSend{
		Content:         bridge.Shorten(content, bridge.DiscordMaxLen),
		AllowedMentions: am,
		Reference:       &discordgo.MessageReference{MessageID: messageID, ChannelID: channelID, FailIfNotExists: &no},
	}, discordgo.WithContext(ctx))
	if err != nil {
		return classify(wrap("replying in channel "+channelID, err))
	}
	return nil
}

// History returns up to limit messages of a channel after afterID, oldest first. Messages that
// are not chat (joins, pins) come back without content, so paging still sees every id.
// Failures are core's delivery outcomes, as with Post.
func (b *Bot) History(ctx context.Context, channelID, afterID string, limit int) ([]core.DiscordMessage, error) {
	limit = max(1, min(limit, 100))
	msgs, err := b.s.ChannelMessages(channelID, limit, "", afterID, "", discordgo.WithContext(ctx))
	if err != nil {
		return nil, classify(wrap("reading the history of channel "+channelID, err))
	}
	out := make([]core.DiscordMessage, 0, len(msgs))
	for i := len(msgs) - 1; i >= 0; i-- { // Discord answers newest first
		m := msgs[i]
		if m == nil {
			continue
		}
		if m.ChannelID == "" {
			m.ChannelID = channelID
		}
		dm, ok := b.convert(m)
		if !ok {
			dm = core.DiscordMessage{ID: m.ID, ChannelID: channelID, Timestamp: m.Timestamp}
		}
		out = append(out, dm)
	}
	return out, nil
}

// embeds converts core embeds for Discord, within Discord's limits (10 embeds, 25 fields).
func embeds(in []core.Embed) []*discordgo.MessageEmbed {
	if len(in) == 0 {
		return nil
	}
	out := make([]*discordgo.MessageEmbed, 0, min(len(in), 10))
	for _, e := range in[:min(len(in), 10)] {
		out = append(out, embed(e))
	}
	return out
}

// embed converts one core embed; only http(s) links and images are kept.
func embed(e core.Embed) *discordgo.MessageEmbed {
	me := &discordgo.MessageEmbed{
		Type:        discordgo.EmbedTypeRich,
		Title:       bridge.Shorten(e.Title, 256),
		Description: bridge.Shorten(e.Description, 4096),
		URL:         httpsOnly(e.URL),
	}
	if u := httpsOnly(e.ThumbnailURL); u != "" {
		me.Thumbnail = &discordgo.MessageEmbedThumbnail{URL: u}
	}
	if u := httpsOnly(e.ImageURL); u != "" {
		me.Image = &discordgo.MessageEmbedImage{URL: u}
	}
	for _, f := range e.Fields[:min(len(e.Fields), 25)] {
		me.Fields = append(me.Fields, &discordgo.MessageEmbedField{
			Name: bridge.Shorten(orDash(f.Name), 256), Value: bridge.Shorten(orDash(f.Value), 1024), Inline: f.Inline,
		})
	}
	return me
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "—"
	}
	return s
}

// httpsOnly keeps a link Discord can open or fetch: anything that is not http(s) is dropped
// (the Resonite adapter already turned resdb:/// links into https).
func httpsOnly(u string) string {
	u = strings.TrimSpace(u)
	l := strings.ToLower(u)
	if strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "http://") {
		return u
	}
	return ""
}

// SanitizeWebhookName makes a name Discord accepts for a webhook post: 1–80 runes, without
// "discord" or "clyde" in any case, not "everyone" or "here", no control characters.
func SanitizeWebhookName(name string) string {
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, name)
	name = strings.Join(strings.Fields(name), " ")
	name = reservedWord.ReplaceAllStringFunc(name, defuseReserved)
	if l := strings.ToLower(name); l == "everyone" || l == "here" {
		name += " (Resonite)"
	}
	if utf8.RuneCountInString(name) > 80 {
		name = strings.TrimSpace(string([]rune(name)[:79])) + "…"
	}
	if name == "" {
		name = "Resonite user"
	}
	return name
}

// reservedWord matches what Discord refuses inside webhook names, in any case.
var reservedWord = regexp.MustCompile(`(?i)discord|clyde`)

// defuseReserved swaps one letter for its look-alike with a diaeresis (discörd, clydë), keeping
// the rest of the spelling: readable, and no longer the refused word.
func defuseReserved(w string) string {
	r := []rune(w)
	i, lower, upper := 4, 'ö', 'Ö' // d-i-s-c-[o]-r-d
	if unicode.ToLower(r[0]) == 'c' {
		lower, upper = 'ë', 'Ë' // c-l-y-d-[e]
	}
	if unicode.IsUpper(r[i]) {
		r[i] = upper
	} else {
		r[i] = lower
	}
	return string(r)
}
