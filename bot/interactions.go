package bot

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
)

// quickAnswer is how long a command may work before the bot defers its answer: Discord wants
// the first callback within 3 s, and the round trip of the callback itself needs some of it.
const quickAnswer = 1500 * time.Millisecond

// answer is what a command shows: a message, or an error for the invoker alone.
type answer struct {
	content    string
	embeds     []*discordgo.MessageEmbed
	components []discordgo.MessageComponent
	ephemeral  bool
	// failed marks an error answer: ephemeral, and replaces a public deferral with a private
	// followup.
	failed bool
}

func failure(format string, args ...any) answer {
	return answer{content: "⚠ " + fmt.Sprintf(format, args...), ephemeral: true, failed: true}
}

// dispatchInteraction runs every interaction on its own goroutine (Stop waits for them), so a
// slow command never holds up the gateway. Once Stop was called, interactions are dropped.
func (b *Bot) dispatchInteraction(i *discordgo.Interaction) {
	b.mu.Lock()
	if !b.runningLocked() {
		b.mu.Unlock()
		return
	}
	ctx := b.workCtx
	// Added under mu: Stop marks the bot stopped under mu before it waits for interactions.
	b.interactions.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.interactions.Done()
		b.handleInteraction(ctx, i)
	}()
}

// interaction carries one interaction and whether it has been answered.
type interaction struct {
	*discordgo.Interaction
	b *Bot

	mu        sync.Mutex
	responded bool
	deferred  bool
}

func (b *Bot) handleInteraction(ctx context.Context, di *discordgo.Interaction) {
	ix := &interaction{Interaction: di, b: b}
	defer func() {
		if p := recover(); p != nil {
			b.log.Error("panic while handling an interaction", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			ix.finish(ctx, failure("Something went wrong inside the bridge (an internal error was logged)."))
		}
	}()
	switch di.Type {
	case discordgo.InteractionApplicationCommand:
		b.runCommand(ctx, ix)
	case discordgo.InteractionApplicationCommandAutocomplete:
		b.runAutocomplete(ctx, ix)
	case discordgo.InteractionMessageComponent:
		b.runComponent(ctx, ix)
	}
}

func (b *Bot) runCommand(ctx context.Context, ix *interaction) {
	data := ix.ApplicationCommandData()
	cmd, ok := b.commandByName(data.Name)
	if !ok {
		ix.finish(ctx, failure("Unknown command /%s: the command list may be out of date; try again in a minute.", data.Name))
		return
	}
	if cmd.admin {
		if msg := adminRefusal(ix.Interaction); msg != "" {
			ix.finish(ctx, failure("%s", msg))
			return
		}
	}
	b.log.Debug("command", "name", data.Name, "guild", ix.GuildID, "channel", ix.ChannelID, "user", invokerID(ix.Interaction))
	ix.answerWithin(ctx, cmd.ephemeral, func(ctx context.Context) answer { return cmd.run(ctx, ix, data) })
}

// adminRefusal explains why the invoker may not use an admin command, or returns "".
func adminRefusal(i *discordgo.Interaction) string {
	if i.GuildID == "" || i.Member == nil {
		return "This command works in a server channel, not in direct messages."
	}
	if i.Member.Permissions&(discordgo.PermissionManageChannels|discordgo.PermissionAdministrator) == 0 {
		return "You need the Manage Channels permission for this command."
	}
	return ""
}

func invokerID(i *discordgo.Interaction) string {
	if i.Member != nil && i.Member.User != nil {
		return i.Member.User.ID
	}
	if i.User != nil {
		return i.User.ID
	}
	return ""
}

// answerWithin runs work and answers with its result directly when it is quick, or defers first
// and edits the deferred answer when it is not, so the 3 s deadline is never missed.
func (ix *interaction) answerWithin(ctx context.Context, ephemeral bool, work func(context.Context) answer) {
	result := make(chan answer, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				ix.b.log.Error("panic in a command", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				result <- failure("Something went wrong inside the bridge (an internal error was logged).")
			}
		}()
		result <- work(ctx)
	}()
	t := time.NewTimer(quickAnswer)
	defer t.Stop()
	select {
	case a := <-result:
		if ephemeral {
			a.ephemeral = true
		}
		ix.finish(ctx, a)
		return
	case <-t.C:
	}
	ix.deferResponse(ctx, ephemeral)
	a := <-result
	ix.finish(ctx, a)
}

func (ix *interaction) isComponent() bool { return ix.Type == discordgo.InteractionMessageComponent }

// deferResponse acknowledges the interaction ("thinking…", or a silent update for buttons).
func (ix *interaction) deferResponse(ctx context.Context, ephemeral bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.responded {
		return
	}
	resp := &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredChannelMessageWithSource}
	if ix.isComponent() {
		resp.Type = discordgo.InteractionResponseDeferredMessageUpdate
	} else if ephemeral {
		resp.Data = &discordgo.InteractionResponseData{Flags: discordgo.MessageFlagsEphemeral}
	}
	if err := ix.b.s.InteractionRespond(ix.Interaction, resp, discordgo.WithContext(ctx)); err != nil {
		ix.b.log.Warn("deferring an interaction answer failed", "err", redact(err.Error()))
	}
	ix.responded, ix.deferred = true, true
}

// finish sends the answer: as the first callback, or as an edit of the deferred one. A failure
// after a public deferral replaces it with a private followup.
func (ix *interaction) finish(ctx context.Context, a answer) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	s := ix.b.s
	opt := discordgo.WithContext(ctx)
	var err error
	switch {
	case !ix.responded:
		typ := discordgo.InteractionResponseChannelMessageWithSource
		if ix.isComponent() && !a.failed {
			typ = discordgo.InteractionResponseUpdateMessage
		}
		data := &discordgo.InteractionResponseData{
			Content: a.content, Embeds: a.embeds, Components: a.components, AllowedMentions: noMentions(),
		}
		if a.ephemeral || a.failed {
			data.Flags = discordgo.MessageFlagsEphemeral
		}
		err = s.InteractionRespond(ix.Interaction, &discordgo.InteractionResponse{Type: typ, Data: data}, opt)
	case a.failed:
		if !ix.isComponent() {
			_ = s.InteractionResponseDelete(ix.Interaction, opt)
		}
		_, err = s.FollowupMessageCreate(ix.Interaction, true, &discordgo.WebhookParams{
			Content: a.content, AllowedMentions: noMentions(), Flags: discordgo.MessageFlagsEphemeral,
		}, opt)
	default:
		content, embeds, comps := a.content, a.embeds, a.components
		if embeds == nil {
			embeds = []*discordgo.MessageEmbed{}
		}
		if comps == nil {
			comps = []discordgo.MessageComponent{}
		}
		_, err = s.InteractionResponseEdit(ix.Interaction, &discordgo.WebhookEdit{
			Content: &content, Embeds: &embeds, Components: &comps, AllowedMentions: noMentions(),
		}, opt)
	}
	ix.responded = true
	if err != nil && ctx.Err() == nil {
		ix.b.log.Warn("answering an interaction failed", "err", redact(err.Error()))
	}
}

// autocompleteResponse is written by hand: discordgo's InteractionResponseData drops an empty
// choices list (omitempty), and Discord wants the field.
type autocompleteResponse struct {
	Type discordgo.InteractionResponseType `json:"type"`
	Data struct {
		Choices []*discordgo.ApplicationCommandOptionChoice `json:"choices"`
	} `json:"data"`
}

// autocompleteBudget bounds the lookups of one autocomplete request.
const autocompleteBudget = 2 * time.Second

func (b *Bot) runAutocomplete(ctx context.Context, ix *interaction) {
	data := ix.ApplicationCommandData()
	focused, path := focusedOption(data.Options, nil)
	var choices []*discordgo.ApplicationCommandOptionChoice
	if focused != nil {
		actx, cancel := context.WithTimeout(ctx, autocompleteBudget)
		choices = b.suggest(actx, ix, data.Name, path, focused.Name, fmt.Sprint(focused.Value))
		cancel()
	}
	if choices == nil {
		choices = []*discordgo.ApplicationCommandOptionChoice{}
	}
	if len(choices) > 25 {
		choices = choices[:25]
	}
	var resp autocompleteResponse
	resp.Type = discordgo.InteractionApplicationCommandAutocompleteResult
	resp.Data.Choices = choices
	endpoint := discordgo.EndpointInteractionResponse(ix.ID, ix.Token)
	if _, err := b.s.RequestWithBucketID("POST", endpoint, resp, endpoint, discordgo.WithContext(ctx)); err != nil && ctx.Err() == nil {
		b.log.Warn("answering an autocomplete request failed", "err", redact(err.Error()))
	}
}

// focusedOption finds the option being typed and the subcommand path leading to it.
func focusedOption(opts []*discordgo.ApplicationCommandInteractionDataOption, path []string) (*discordgo.ApplicationCommandInteractionDataOption, []string) {
	for _, o := range opts {
		if o == nil {
			continue
		}
		if o.Focused {
			return o, path
		}
		if len(o.Options) > 0 {
			if f, p := focusedOption(o.Options, append(path, o.Name)); f != nil {
				return f, p
			}
		}
	}
	return nil, nil
}

func (b *Bot) runComponent(ctx context.Context, ix *interaction) {
	id := ix.MessageComponentData().CustomID
	switch {
	case strings.HasPrefix(id, sessionsPrefix):
		q, page, err := decodeSessionsID(id)
		if err != nil {
			ix.finish(ctx, failure("This button is from an older version of the bridge; run /sessions again."))
			return
		}
		ix.answerWithin(ctx, false, func(ctx context.Context) answer { return b.sessionsPage(ctx, q, page) })
	default:
		ix.finish(ctx, failure("This button is not handled by the bridge any more."))
	}
}

// optionMap indexes options by name.
func optionMap(opts []*discordgo.ApplicationCommandInteractionDataOption) map[string]*discordgo.ApplicationCommandInteractionDataOption {
	m := make(map[string]*discordgo.ApplicationCommandInteractionDataOption, len(opts))
	for _, o := range opts {
		if o != nil {
			m[o.Name] = o
		}
	}
	return m
}

// stringOpt reads a string option without trusting its type (the data comes from the network).
func stringOpt(m map[string]*discordgo.ApplicationCommandInteractionDataOption, name string) string {
	o := m[name]
	if o == nil {
		return ""
	}
	s, _ := o.Value.(string)
	return strings.TrimSpace(s)
}

func intOpt(m map[string]*discordgo.ApplicationCommandInteractionDataOption, name string) (int, bool) {
	o := m[name]
	if o == nil {
		return 0, false
	}
	f, ok := o.Value.(float64)
	if !ok {
		return 0, false
	}
	return int(f), true
}

func boolOpt(m map[string]*discordgo.ApplicationCommandInteractionDataOption, name string) (bool, bool) {
	o := m[name]
	if o == nil {
		return false, false
	}
	v, ok := o.Value.(bool)
	return v, ok
}

// apiFailure is the answer for a failed call to Resonite: short, no internals.
func apiFailure(doing string, err error) answer {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return failure("Resonite did not answer in time while %s; try again in a moment.", doing)
	}
	return failure("Resonite could not be reached while %s; try again in a moment.", doing)
}
