// Package discordtest is an in-process fake of Discord for tests: the REST routes a bot uses
// (Go 1.22 patterns under /api/v9) and a gateway WebSocket that speaks the real protocol
// (HELLO, IDENTIFY, READY, GUILD_CREATE, heartbeats, RESUME). Every REST call is recorded;
// tests dispatch messages and interactions, inject 429s, drop or close the gateway, and
// grant or deny Manage Webhooks per channel.
package discordtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
)

// Defaults of a new Server.
const (
	DefaultToken     = "fake-bot-token"
	DefaultAppID     = "900000000000000001"
	DefaultBotUserID = "900000000000000002"
	DefaultBotName   = "Resonite Bridge"
)

// waitLimit bounds every wait of the helpers so that a broken bot fails the test instead of
// hanging it. It is a safety net, not an assertion on speed.
const waitLimit = 15 * time.Second

// Call is one recorded REST request.
type Call struct {
	Method string
	// Path is the URL path as sent, e.g. /api/v9/channels/1/messages.
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
	// Status is what the fake answered.
	Status int
}

// JSON decodes the body into a generic map (nil when the body is not a JSON object).
func (c Call) JSON() map[string]any {
	var m map[string]any
	if json.Unmarshal(c.Body, &m) != nil {
		return nil
	}
	return m
}

// Limit describes injected 429 answers.
type Limit struct {
	// PathContains selects the requests (empty: any request).
	PathContains string
	// Count is how many matching requests are refused.
	Count int
	// RetryAfter is the wait asked for (default 50 ms).
	RetryAfter time.Duration
	// Global marks the JSON answer as a global limit.
	Global bool
	// Cloudflare answers with an HTML body and only a Retry-After header, as Cloudflare's
	// edge does when an IP is banned for a while.
	Cloudflare bool
}

// Failure describes injected error answers other than rate limits (a server error, a refusal).
type Failure struct {
	// PathContains selects the requests (empty: any request).
	PathContains string
	// Count is how many matching requests fail.
	Count int
	// Status is the HTTP status (e.g. 500, 503); Code and Message are Discord's JSON error.
	Status  int
	Code    int
	Message string
}

type guild struct {
	id, name string
	channels []string
	roles    []*discordgo.Role
}

type channel struct {
	id, guildID, name string
	denyWebhooks      bool
	missing           bool
	parentID          string                // a thread's channel (see AddThread)
	kind              discordgo.ChannelType // 0: a text channel
}

type webhook struct {
	discordgo.Webhook
}

// Server is the fake. Create it with New; it stops itself in t.Cleanup.
type Server struct {
	// URL is the origin to use as DISCORD_API_URL (http://127.0.0.1:port).
	URL       string
	Token     string
	AppID     string
	BotUserID string

	t  testing.TB
	hs *httptest.Server

	mu           sync.Mutex
	changes      Signal // notified on every change, under mu
	nextID       uint64
	calls        []Call
	guildOrder   []string
	guilds       map[string]*guild
	channels     map[string]*channel
	webhooks     map[string]*webhook
	messages     map[string][]*fmsg // channel → oldest first
	commands     map[string][]*discordgo.ApplicationCommand
	interactions map[string]*Interaction // by token
	limits       []Limit
	failures     []Failure
	closed       bool
	whLimit      WebhookLimit
	whWindows    map[string]*whWindow // webhook id → its current window under whLimit
	dm           dmState

	gw gatewayState
}

// Option configures New.
type Option func(*Server)

// WebhookLimit models Discord's rate limit of webhook executions: at most Posts executions of
// one webhook within Per (Discord: 5 per 2 s for each webhook). A window opens with the first
// execution after the previous window ended; an execution beyond Posts within it answers 429
// with retry_after the time left in the window (not global). Successful executions carry
// Discord's X-RateLimit-Limit, -Remaining, -Reset, -Reset-After and -Bucket headers, which
// discordgo's bucket limiter reads (it then waits before posting into an exhausted bucket
// instead of being refused); NoHeaders leaves them out, so that every excess post meets a 429.
// The zero value (Posts 0) is no limit. Only executions count: edits, deletes and reads of
// webhook messages are not limited.
type WebhookLimit struct {
	Posts     int
	Per       time.Duration
	NoHeaders bool
}

// DiscordWebhookLimit is Discord's documented per-webhook limit.
var DiscordWebhookLimit = WebhookLimit{Posts: 5, Per: 2 * time.Second}

type whWindow struct {
	start time.Time
	used  int
}

// WithWebhookLimit turns on the per-webhook limit of executions (see WebhookLimit).
func WithWebhookLimit(l WebhookLimit) Option {
	return func(s *Server) { s.whLimit = l }
}

// SetWebhookLimit changes the per-webhook limit of executions (Posts 0: none); windows start
// afresh.
func (s *Server) SetWebhookLimit(l WebhookLimit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.whLimit = l
	s.whWindows = nil
	s.notifyLocked()
}

// WithHeartbeatInterval sets the interval announced in HELLO (default 41.25 s).
func WithHeartbeatInterval(d time.Duration) Option {
	return func(s *Server) { s.gw.heartbeat = d }
}

// WithToken sets the bot token the fake accepts.
func WithToken(tok string) Option { return func(s *Server) { s.Token = tok } }

// New starts a fake with the default ids and token, with no guilds.
func New(t testing.TB, opts ...Option) *Server {
	s := &Server{
		Token:        DefaultToken,
		AppID:        DefaultAppID,
		BotUserID:    DefaultBotUserID,
		t:            t,
		guilds:       map[string]*guild{},
		channels:     map[string]*channel{},
		webhooks:     map[string]*webhook{},
		messages:     map[string][]*fmsg{},
		commands:     map[string][]*discordgo.ApplicationCommand{},
		interactions: map[string]*Interaction{},
	}
	s.gw.heartbeat = 41250 * time.Millisecond
	s.gw.sessions = map[string]*gwSession{}
	s.gw.conns = map[*gwConn]struct{}{}
	for _, o := range opts {
		o(s)
	}
	s.hs = httptest.NewServer(s.handler())
	s.URL = s.hs.URL
	t.Cleanup(s.Close)
	return s
}

// Close ends every gateway connection and stops the server. Cleanup calls it.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	conns := s.liveConnsLocked()
	s.notifyLocked()
	s.mu.Unlock()
	for _, c := range conns {
		c.ws.Close()
	}
	s.hs.Close()
}

// NewID returns a fresh snowflake: like Discord's, it encodes the time (milliseconds since 2015
// above bit 22), so "after a time" queries work, and ids grow with time.
func (s *Server) NewID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newIDLocked()
}

func (s *Server) newIDLocked() string {
	const discordEpochMs = 1420070400000
	s.nextID = max(s.nextID+1, uint64(time.Now().UnixMilli()-discordEpochMs)<<22)
	return strconv.FormatUint(s.nextID, 10)
}

// notifyLocked wakes every waiter; callers hold mu.
func (s *Server) notifyLocked() { s.changes.Notify() }

// Changed returns a channel that is closed on the fake's next recorded change: a REST call, a
// stored, edited or deleted message, an interaction answer, a webhook or channel change, a
// gateway connect or disconnect. Each change closes the current channel and installs a new
// one, so take the channel before checking what it guards (Await does).
func (s *Server) Changed() <-chan struct{} { return s.changes.Changed() }

// WaitUntil waits until cond holds, checking it again on every change of the fake (see
// Changed); cond runs without the fake's lock, so it may call the fake's methods.
func (s *Server) WaitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Await(t, what, s.Changed, cond)
}

// waitFor blocks until cond (evaluated under mu) holds, failing the test after waitLimit.
func (s *Server) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	s.WaitUntil(t, what, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return cond()
	})
}

// AddGuild adds a guild; a connected bot receives GUILD_CREATE.
func (s *Server) AddGuild(id, name string) {
	s.mu.Lock()
	if _, ok := s.guilds[id]; !ok {
		s.guilds[id] = &guild{id: id, name: name, roles: []*discordgo.Role{{ID: id, Name: "@everyone"}}}
		s.guildOrder = append(s.guildOrder, id)
		s.notifyLocked()
	}
	sess := s.gw.current
	s.mu.Unlock()
	if sess != nil {
		s.dispatch("GUILD_CREATE", s.guildCreate(id))
	}
}

// AddRole adds a role to a guild (for mention rendering).
func (s *Server) AddRole(guildID, roleID, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.guilds[guildID]; g != nil {
		g.roles = append(g.roles, &discordgo.Role{ID: roleID, Name: name})
		s.notifyLocked()
	}
}

// AddChannel adds a text channel to a guild (added first when missing). Manage Webhooks is
// granted.
func (s *Server) AddChannel(guildID, channelID, name string) {
	s.mu.Lock()
	g := s.guilds[guildID]
	if g == nil {
		g = &guild{id: guildID, name: guildID, roles: []*discordgo.Role{{ID: guildID, Name: "@everyone"}}}
		s.guilds[guildID] = g
		s.guildOrder = append(s.guildOrder, guildID)
	}
	g.channels = append(g.channels, channelID)
	s.channels[channelID] = &channel{id: channelID, guildID: guildID, name: name}
	s.notifyLocked()
	s.mu.Unlock()
}

// DeleteChannel makes every later call on the channel answer 404 Unknown Channel.
func (s *Server) DeleteChannel(channelID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.channels[channelID]; c != nil {
		c.missing = true
		s.notifyLocked()
	}
}

// SetManageWebhooks grants or denies the bot Manage Webhooks in a channel.
func (s *Server) SetManageWebhooks(channelID string, allowed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.channels[channelID]; c != nil {
		c.denyWebhooks = !allowed
		s.notifyLocked()
	}
}

// FailNext429 makes the next matching requests answer 429.
func (s *Server) FailNext429(l Limit) {
	if l.RetryAfter <= 0 {
		l.RetryAfter = 50 * time.Millisecond
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits = append(s.limits, l)
	s.notifyLocked()
}

// FailNext makes the next matching requests fail with f's status and error.
func (s *Server) FailNext(f Failure) {
	if f.Message == "" {
		f.Message = http.StatusText(f.Status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, f)
	s.notifyLocked()
}

// ClearFailures drops the failures FailNext queued and that have not happened yet.
func (s *Server) ClearFailures() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = nil
	s.notifyLocked()
}

// Calls returns a copy of every REST call so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallsTo returns the recorded calls whose method matches and whose path contains sub.
func (s *Server) CallsTo(method, sub string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if (method == "" || c.Method == method) && strings.Contains(c.Path, sub) {
			out = append(out, c)
		}
	}
	return out
}

// WaitCalls waits until at least n calls satisfy match, and returns them.
func (s *Server) WaitCalls(t testing.TB, n int, match func(Call) bool) []Call {
	t.Helper()
	var got []Call
	s.waitFor(t, fmt.Sprintf("%d matching REST calls", n), func() bool {
		got = got[:0]
		for _, c := range s.calls {
			if match(c) {
				got = append(got, c)
			}
		}
		return len(got) >= n
	})
	return got
}

// ChannelMessages returns the channel's history, newest first (like Discord).
func (s *Server) ChannelMessages(channelID string) []*discordgo.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.messages[channelID]
	out := make([]*discordgo.Message, 0, len(h))
	for i := len(h) - 1; i >= 0; i-- {
		out = append(out, h[i].public())
	}
	return out
}

// WaitChannelMessages waits until the channel holds at least n messages; newest first.
func (s *Server) WaitChannelMessages(t testing.TB, channelID string, n int) []*discordgo.Message {
	t.Helper()
	s.waitFor(t, fmt.Sprintf("%d messages in channel %s", n, channelID), func() bool {
		return len(s.messages[channelID]) >= n
	})
	return s.ChannelMessages(channelID)
}

// Webhooks returns the channel's webhooks (with tokens).
func (s *Server) Webhooks(channelID string) []discordgo.Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.webhooksLocked(channelID)
}

func (s *Server) webhooksLocked(channelID string) []discordgo.Webhook {
	var out []discordgo.Webhook
	for _, w := range s.webhooks {
		if w.ChannelID == channelID {
			out = append(out, w.Webhook)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// AddWebhook creates a webhook directly (as a user or another app would); appID may be empty.
func (s *Server) AddWebhook(channelID, name, appID string) discordgo.Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &webhook{discordgo.Webhook{ID: s.newIDLocked(), Type: discordgo.WebhookTypeIncoming, ChannelID: channelID,
		Name: name, ApplicationID: appID, Token: "whtok-" + s.newIDLocked()}}
	if c := s.channels[channelID]; c != nil {
		w.GuildID = c.guildID
	}
	s.webhooks[w.ID] = w
	s.notifyLocked()
	return w.Webhook
}

// DeleteWebhook removes a webhook, as a channel admin would; later executions get 404.
func (s *Server) DeleteWebhook(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.webhooks, id)
	s.notifyLocked()
}

// Commands returns the commands registered by bulk overwrite: guildID "" for global ones.
func (s *Server) Commands(guildID string) []*discordgo.ApplicationCommand {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*discordgo.ApplicationCommand(nil), s.commands[guildID]...)
}

// WaitCommands waits until commands are registered in guildID ("" = global).
func (s *Server) WaitCommands(t testing.TB, guildID string) []*discordgo.ApplicationCommand {
	t.Helper()
	s.waitFor(t, "command registration", func() bool { _, ok := s.commands[guildID]; return ok })
	return s.Commands(guildID)
}

// AppendMessage stores a message in a channel's history without dispatching it (messages
// sent while the bot was away).
func (s *Server) AppendMessage(m UserMessage) *discordgo.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.userMessageLocked(m).public()
}

// fmsg is a stored message. discordgo.Message drops application_id and components when it is
// marshalled, so the fake keeps them beside it.
type fmsg struct {
	*discordgo.Message
	appID      string
	components json.RawMessage
	files      []File // uploaded with the message (multipart files[n])
}

func newMsg(m *discordgo.Message, appID string) *fmsg { return &fmsg{Message: m, appID: appID} }

// MarshalJSON writes the message as Discord does, application_id and components included.
// discordgo.Message writes neither key, so they are appended to its object: load tests dispatch
// thousands of messages, and a decode-and-re-encode here would take the CPU they measure.
func (f *fmsg) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(f.Message)
	if err != nil {
		return nil, err
	}
	if len(b) < 2 || b[len(b)-1] != '}' {
		return nil, fmt.Errorf("discordtest: message encodes as %.20q, not an object", b)
	}
	b = b[:len(b)-1]
	if len(b) > 1 {
		b = append(b, ',')
	}
	if f.appID != "" {
		id, _ := json.Marshal(f.appID)
		b = append(append(append(b, `"application_id":`...), id...), ',')
	}
	components := f.components
	if components == nil {
		components = json.RawMessage("[]")
	}
	b = append(append(b, `"components":`...), components...)
	return append(b, '}'), nil
}

// public returns a decoded copy.
func (f *fmsg) public() *discordgo.Message {
	b, _ := json.Marshal(f)
	var out discordgo.Message
	_ = json.Unmarshal(b, &out)
	return &out
}

// storeMessageLocked assigns id and time and appends to the channel.
func (s *Server) storeMessageLocked(channelID string, m *fmsg) *fmsg {
	if m.ID == "" {
		m.ID = s.newIDLocked()
	}
	m.ChannelID = channelID
	if c := s.channels[channelID]; c != nil {
		m.GuildID = c.guildID
	}
	if m.Timestamp.IsZero() {
		m.Timestamp = time.Now().UTC()
	}
	s.messages[channelID] = append(s.messages[channelID], m)
	s.notifyLocked()
	return m
}

func (s *Server) findMessageLocked(channelID, id string) *fmsg {
	for _, m := range s.messages[channelID] {
		if m.ID == id {
			return m
		}
	}
	return nil
}
