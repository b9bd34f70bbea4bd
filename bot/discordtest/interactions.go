package discordtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/bwmarrin/discordgo"
)

// Opt is one option of a command invocation.
type Opt struct {
	Name    string
	Value   any // string, int, bool or float64; nil for a subcommand
	Focused bool
	Options []Opt // subcommand options
}

// O is an option with a value.
func O(name string, v any) Opt { return Opt{Name: name, Value: v} }

// Focused is the option being typed during autocomplete.
func Focused(name, partial string) Opt { return Opt{Name: name, Value: partial, Focused: true} }

// Sub is a subcommand with its options.
func Sub(name string, opts ...Opt) Opt { return Opt{Name: name, Options: opts} }

func (o Opt) wire() map[string]any {
	m := map[string]any{"name": o.Name}
	switch o.Value.(type) {
	case nil:
		m["type"] = int(discordgo.ApplicationCommandOptionSubCommand)
		opts := make([]map[string]any, 0, len(o.Options))
		for _, so := range o.Options {
			opts = append(opts, so.wire())
		}
		m["options"] = opts
		return m
	case string:
		m["type"] = int(discordgo.ApplicationCommandOptionString)
	case int, int64:
		m["type"] = int(discordgo.ApplicationCommandOptionInteger)
	case bool:
		m["type"] = int(discordgo.ApplicationCommandOptionBoolean)
	case float64:
		m["type"] = int(discordgo.ApplicationCommandOptionNumber)
	}
	m["value"] = o.Value
	if o.Focused {
		m["focused"] = true
	}
	return m
}

// Invoke describes an interaction a user triggers.
type Invoke struct {
	Type      discordgo.InteractionType
	GuildID   string
	ChannelID string
	UserID    string
	Username  string
	// Permissions of the member (default: Administrator).
	Permissions int64
	// Name and Options: commands and autocomplete.
	Name    string
	Options []Opt
	// CustomID and MessageID: component clicks.
	CustomID  string
	MessageID string
}

// Command is a slash command invocation.
func Command(guildID, channelID, name string, opts ...Opt) Invoke {
	return Invoke{Type: discordgo.InteractionApplicationCommand, GuildID: guildID, ChannelID: channelID, Name: name, Options: opts}
}

// Autocomplete is an autocomplete request; one option should be Focused.
func Autocomplete(guildID, channelID, name string, opts ...Opt) Invoke {
	return Invoke{Type: discordgo.InteractionApplicationCommandAutocomplete, GuildID: guildID, ChannelID: channelID, Name: name, Options: opts}
}

// Click is a button press on a message.
func Click(guildID, channelID, messageID, customID string) Invoke {
	return Invoke{Type: discordgo.InteractionMessageComponent, GuildID: guildID, ChannelID: channelID, MessageID: messageID, CustomID: customID}
}

// Button is a button of a reply's components.
type Button struct {
	Type     int    `json:"type"`
	Style    int    `json:"style"`
	Label    string `json:"label"`
	CustomID string `json:"custom_id"`
	URL      string `json:"url"`
	Disabled bool   `json:"disabled"`
}

// Row is an action row.
type Row struct {
	Type       int      `json:"type"`
	Components []Button `json:"components"`
}

// Reply is one answer of the bot to an interaction.
type Reply struct {
	// Kind is "callback", "edit" (of the original), "followup" or "delete".
	Kind string
	// Type is the callback type (callbacks only).
	Type            discordgo.InteractionResponseType
	Content         string
	Embeds          []*discordgo.MessageEmbed
	Components      []Row
	Flags           int
	Choices         []*discordgo.ApplicationCommandOptionChoice
	AllowedMentions *discordgo.MessageAllowedMentions
	MessageID       string
	Raw             []byte
}

// Ephemeral reports the ephemeral flag.
func (r Reply) Ephemeral() bool { return r.Flags&int(discordgo.MessageFlagsEphemeral) != 0 }

// Buttons flattens the components.
func (r Reply) Buttons() []Button {
	var out []Button
	for _, row := range r.Components {
		out = append(out, row.Components...)
	}
	return out
}

func replyFrom(kind string, typ discordgo.InteractionResponseType, data map[string]json.RawMessage) Reply {
	raw, _ := json.Marshal(data)
	r := Reply{Kind: kind, Type: typ, Raw: raw}
	var d struct {
		Content         string                                      `json:"content"`
		Embeds          []*discordgo.MessageEmbed                   `json:"embeds"`
		Components      []Row                                       `json:"components"`
		Flags           int                                         `json:"flags"`
		Choices         []*discordgo.ApplicationCommandOptionChoice `json:"choices"`
		AllowedMentions *discordgo.MessageAllowedMentions           `json:"allowed_mentions"`
	}
	_ = json.Unmarshal(raw, &d)
	r.Content, r.Embeds, r.Components, r.Flags, r.Choices, r.AllowedMentions = d.Content, d.Embeds, d.Components, d.Flags, d.Choices, d.AllowedMentions
	return r
}

// Interaction is the record of one dispatched interaction and the bot's answers.
type Interaction struct {
	ID, Token string
	ChannelID string
	// MessageID is the message of the original response once there is one.
	MessageID string
	// ComponentMessageID is the clicked message (components).
	ComponentMessageID string

	s         *Server
	replies   []Reply
	responded bool
	ephemeral bool
	messages  map[string]*fmsg // messages of this interaction (original and followups)
}

func (ix *Interaction) addLocked(s *Server, r Reply) {
	ix.replies = append(ix.replies, r)
	s.notifyLocked()
}

// ensureOriginalLocked creates the message of the original response (deferred responses).
func (ix *Interaction) ensureOriginalLocked(s *Server) *fmsg {
	if m := ix.messages[ix.MessageID]; m != nil {
		return m
	}
	m := newMsg(&discordgo.Message{ID: s.newIDLocked(), ChannelID: ix.ChannelID,
		Author: &discordgo.User{ID: s.BotUserID, Username: DefaultBotName, Bot: true}}, s.AppID)
	if ix.ephemeral {
		m.Flags = discordgo.MessageFlagsEphemeral
	} else {
		s.storeMessageLocked(ix.ChannelID, m)
	}
	ix.MessageID = m.ID
	ix.messages[m.ID] = m
	return m
}

// Replies returns the answers so far.
func (ix *Interaction) Replies() []Reply {
	ix.s.mu.Lock()
	defer ix.s.mu.Unlock()
	return append([]Reply(nil), ix.replies...)
}

// Callback returns the initial response (Interact waited for it).
func (ix *Interaction) Callback() Reply { return ix.Replies()[0] }

// Final returns what the user ends up seeing: the callback unless it was a deferral, else the
// first edit of the original or followup (waiting for it).
func (ix *Interaction) Final(t testing.TB) Reply {
	t.Helper()
	var out Reply
	ix.s.waitFor(t, "the final answer of interaction "+ix.ID, func() bool {
		for _, r := range ix.replies {
			switch {
			case r.Kind == "callback" && r.Type != discordgo.InteractionResponseDeferredChannelMessageWithSource &&
				r.Type != discordgo.InteractionResponseDeferredMessageUpdate:
				out = r
				return true
			case r.Kind == "edit" || r.Kind == "followup":
				out = r
				return true
			}
		}
		return false
	})
	return out
}

// Interact dispatches an interaction and waits for its callback.
func (s *Server) Interact(t testing.TB, in Invoke) *Interaction {
	t.Helper()
	if in.UserID == "" {
		in.UserID = "700000000000000009"
	}
	if in.Username == "" {
		in.Username = "tester"
	}
	if in.Permissions == 0 {
		in.Permissions = discordgo.PermissionAdministrator
	}
	s.mu.Lock()
	ix := &Interaction{ID: s.newIDLocked(), ChannelID: in.ChannelID, s: s, messages: map[string]*fmsg{}}
	ix.Token = "itok-" + s.newIDLocked()
	s.interactions[ix.Token] = ix
	var msg *fmsg
	if in.MessageID != "" {
		ix.ComponentMessageID = in.MessageID
		if m := s.findMessageLocked(in.ChannelID, in.MessageID); m != nil {
			msg = newMsg(m.public(), m.appID)
			msg.components = m.components
		}
	}
	s.mu.Unlock()

	d := map[string]any{
		"id": ix.ID, "application_id": s.AppID, "type": int(in.Type), "token": ix.Token, "version": 1,
		"guild_id": in.GuildID, "channel_id": in.ChannelID, "locale": "en-US",
		"app_permissions": fmt.Sprint(discordgo.PermissionAll),
		"member": map[string]any{"user": map[string]any{"id": in.UserID, "username": in.Username},
			"permissions": fmt.Sprint(in.Permissions), "roles": []string{}},
	}
	switch in.Type {
	case discordgo.InteractionMessageComponent:
		d["data"] = map[string]any{"custom_id": in.CustomID, "component_type": int(discordgo.ButtonComponent)}
		if msg == nil {
			msg = newMsg(&discordgo.Message{ID: in.MessageID, ChannelID: in.ChannelID}, "")
		}
		raw, _ := json.Marshal(msg)
		d["message"] = json.RawMessage(raw)
	default:
		opts := make([]map[string]any, 0, len(in.Options))
		for _, o := range in.Options {
			opts = append(opts, o.wire())
		}
		id := "0"
		for _, c := range append(s.Commands(in.GuildID), s.Commands("")...) {
			if c.Name == in.Name {
				id = c.ID
			}
		}
		d["data"] = map[string]any{"id": id, "name": in.Name, "type": 1, "options": opts}
	}
	s.dispatch("INTERACTION_CREATE", d)
	s.waitFor(t, "the callback of interaction /"+in.Name+in.CustomID, func() bool { return ix.responded })
	return ix
}

func (s *Server) interactionCallback(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Type discordgo.InteractionResponseType `json:"type"`
		Data map[string]json.RawMessage        `json:"data"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		apiError(w, http.StatusBadRequest, 50035, "Invalid Form Body")
		return
	}
	if body.Data == nil {
		body.Data = map[string]json.RawMessage{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ix := s.interactions[r.PathValue("itoken")]
	if ix == nil || ix.ID != r.PathValue("iid") {
		apiError(w, http.StatusNotFound, 10062, "Unknown interaction")
		return
	}
	if ix.responded {
		apiError(w, http.StatusBadRequest, 40060, "Interaction has already been acknowledged.")
		return
	}
	rep := replyFrom("callback", body.Type, body.Data)
	switch body.Type {
	case discordgo.InteractionResponseChannelMessageWithSource:
		if !validateMessage(w, body.Data, true) {
			return
		}
		ix.ephemeral = rep.Ephemeral()
		m := ix.ensureOriginalLocked(s)
		applyBody(m, body.Data)
		rep.MessageID = m.ID
	case discordgo.InteractionResponseDeferredChannelMessageWithSource:
		ix.ephemeral = rep.Ephemeral()
	case discordgo.InteractionResponseUpdateMessage:
		if m := s.findMessageLocked(ix.ChannelID, ix.ComponentMessageID); m != nil {
			applyBody(m, body.Data)
			ix.messages[m.ID] = m
			ix.MessageID = m.ID
		}
	case discordgo.InteractionResponseDeferredMessageUpdate:
		if m := s.findMessageLocked(ix.ChannelID, ix.ComponentMessageID); m != nil {
			ix.messages[m.ID] = m
			ix.MessageID = m.ID
		}
	case discordgo.InteractionApplicationCommandAutocompleteResult:
		if len(rep.Choices) > 25 {
			apiError(w, http.StatusBadRequest, 50035, "Invalid Form Body: choices")
			return
		}
	}
	ix.responded = true
	ix.addLocked(s, rep)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) followup(w http.ResponseWriter, r *http.Request, token string) {
	body := readBody(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	ix := s.interactions[token]
	if ix == nil || !ix.responded {
		apiError(w, http.StatusNotFound, 10015, "Unknown Webhook")
		return
	}
	if !validateMessage(w, body, true) {
		return
	}
	rep := replyFrom("followup", 0, body)
	m := newMsg(&discordgo.Message{ID: s.newIDLocked(),
		Author: &discordgo.User{ID: s.BotUserID, Username: DefaultBotName, Bot: true}}, s.AppID)
	applyBody(m, body)
	if rep.Ephemeral() {
		m.ChannelID = ix.ChannelID
	} else {
		m = s.storeMessageLocked(ix.ChannelID, m)
	}
	ix.messages[m.ID] = m
	rep.MessageID = m.ID
	ix.addLocked(s, rep)
	writeJSON(w, http.StatusOK, m)
}
