package bot_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/resonite-bridge/resonite-bridge/bot"
	"github.com/resonite-bridge/resonite-bridge/bot/discordtest"
	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/bridge/resoniteadapter"
	"github.com/resonite-bridge/resonite-bridge/resonite"
	"github.com/resonite-bridge/resonite-bridge/resonite/resonitetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	guildID   = "100000000000000001"
	channelID = "100000000000000002"
	otherChan = "100000000000000003"
	bridgeID  = "U-BridgeBot"
	bridgePW  = "bridge password 1"
)

// memConsent is an in-memory bot.Consent: every contact of the test account agreed to guildID
// unless a test says otherwise.
type memConsent struct {
	mu        sync.Mutex
	consented map[string][]string // guild → contacts
	asked     []core.ConsentRequest
}

func newMemConsent() *memConsent {
	return &memConsent{consented: map[string][]string{guildID: {"U-Alice", "U-Bob", "U-Carol", "U-Dave"}}}
}

func (c *memConsent) set(guild string, contacts ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.consented[guild] = contacts
}

func (c *memConsent) ConsentedContacts(_ context.Context, guild string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.consented[guild]), nil
}

func (c *memConsent) ConsentRequests(_ context.Context, guild string) ([]core.ConsentRequest, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []core.ConsentRequest
	for _, r := range c.asked {
		if r.GuildID == guild {
			out = append(out, r)
		}
	}
	return out, nil
}

func (c *memConsent) AskConsent(_ context.Context, r core.ConsentRequest) (core.ConsentRequest, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r.ID, r.ExpiresAt = int64(len(c.asked)+1), time.Now().Add(15*time.Minute)
	c.asked = append(c.asked, r)
	return r, nil
}

func (c *memConsent) CancelConsentRequests(_ context.Context, ch, contact string) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.asked)
	c.asked = slices.DeleteFunc(c.asked, func(r core.ConsentRequest) bool {
		return r.ChannelID == ch && (contact == "" || r.ContactID == contact)
	})
	return n - len(c.asked), nil
}

// memStore is an in-memory bot.Store.
type memStore struct {
	mu       sync.Mutex
	nextID   int64
	pairings map[string][]core.Pairing // by channel, oldest first
	subs     []core.Subscription
}

func newMemStore() *memStore { return &memStore{pairings: map[string][]core.Pairing{}} }

func (s *memStore) CreatePairing(_ context.Context, p core.Pairing) (core.Pairing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.pairings[p.ChannelID]
	if slices.ContainsFunc(ps, func(q core.Pairing) bool { return q.ContactID == p.ContactID }) {
		return core.Pairing{}, fmt.Errorf("pair %s: %w", p.ChannelID, core.ErrConflict)
	}
	if len(ps) >= core.MaxChannelContacts {
		return core.Pairing{}, fmt.Errorf("pair %s: %w", p.ChannelID, core.ErrFull)
	}
	s.nextID++
	p.ID, p.CreatedAt = s.nextID, time.Now()
	s.pairings[p.ChannelID] = append(ps, p)
	return p, nil
}

func (s *memStore) DeletePairings(_ context.Context, ch, contact string) ([]core.Pairing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var removed, kept []core.Pairing
	for _, p := range s.pairings[ch] {
		if contact == "" || p.ContactID == contact {
			removed = append(removed, p)
		} else {
			kept = append(kept, p)
		}
	}
	if len(removed) == 0 {
		return nil, fmt.Errorf("unpair %s: %w", ch, core.ErrNotFound)
	}
	s.pairings[ch] = kept
	return removed, nil
}

func (s *memStore) PairingsByChannel(_ context.Context, ch string) ([]core.Pairing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.pairings[ch]), nil
}

func (s *memStore) PairingsByGuild(_ context.Context, g string) ([]core.Pairing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []core.Pairing
	for _, ps := range s.pairings {
		for _, p := range ps {
			if p.GuildID == g {
				out = append(out, p)
			}
		}
	}
	slices.SortFunc(out, func(a, b core.Pairing) int { return int(a.ID - b.ID) })
	return out, nil
}

func (s *memStore) SetPairingWebhook(_ context.Context, ch, id, tok string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.pairings[ch]
	if len(ps) == 0 {
		return core.ErrNotFound
	}
	for i := range ps {
		ps[i].WebhookID, ps[i].WebhookToken = id, tok
	}
	return nil
}

func (s *memStore) AddSubscription(_ context.Context, sub core.Subscription) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.subs {
		if x.ChannelID == sub.ChannelID && x.ContactID == sub.ContactID {
			return false, nil
		}
	}
	s.subs = append(s.subs, sub)
	return true, nil
}

func (s *memStore) RemoveSubscription(_ context.Context, ch, contact string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.subs {
		if x.ChannelID == ch && x.ContactID == contact {
			s.subs = slices.Delete(s.subs, i, i+1)
			return true, nil
		}
	}
	return false, nil
}

func (s *memStore) SubscriptionsByChannel(_ context.Context, ch string) ([]core.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []core.Subscription
	for _, x := range s.subs {
		if x.ChannelID == ch {
			out = append(out, x)
		}
	}
	return out, nil
}

// pairing is the channel's first pairing.
func (s *memStore) pairing(ch string) (core.Pairing, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.pairings[ch]
	if len(ps) == 0 {
		return core.Pairing{}, false
	}
	return ps[0], true
}

// channelContacts are the contacts paired with the channel, oldest first.
func (s *memStore) channelContacts(ch string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, p := range s.pairings[ch] {
		ids = append(ids, p.ContactID)
	}
	return ids
}

// fakePresence answers ContactPresence from a map.
type fakePresence struct {
	mu   sync.Mutex
	byID map[string]presenceEntry
}

type presenceEntry struct {
	status  core.OnlineStatus
	session *core.Session
}

func (p *fakePresence) set(id string, st core.OnlineStatus, s *core.Session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byID == nil {
		p.byID = map[string]presenceEntry{}
	}
	p.byID[id] = presenceEntry{st, s}
}

func (p *fakePresence) ContactPresence(id string) (core.OnlineStatus, *core.Session, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.byID[id]
	return e.status, e.session, ok
}

type fakeStatus struct{ st bot.BridgeStatus }

func (f fakeStatus) Status(context.Context, string) bot.BridgeStatus { return f.st }

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// recorder collects what the bot hands to the bridge.
type recorder struct {
	discordtest.Signal // notified after every callback

	mu         sync.Mutex
	msgs       []core.DiscordMessage
	guilds     []string
	reconnects int
}

func newRecorder() *recorder { return &recorder{} }

// waitUntil waits until cond holds, checking it again after every callback.
func (r *recorder) waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	discordtest.Await(t, what, r.Changed, cond)
}

func (r *recorder) handlers() bot.Handlers {
	return bot.Handlers{
		OnMessage: func(_ context.Context, m core.DiscordMessage) {
			r.mu.Lock()
			r.msgs = append(r.msgs, m)
			r.mu.Unlock()
			r.Notify()
		},
		OnGuildAvailable: func(_ context.Context, g string) {
			r.mu.Lock()
			r.guilds = append(r.guilds, g)
			r.mu.Unlock()
			r.Notify()
		},
		OnReconnect: func(context.Context) {
			r.mu.Lock()
			r.reconnects++
			r.mu.Unlock()
			r.Notify()
		},
	}
}

func (r *recorder) messages() []core.DiscordMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

func (r *recorder) snapshot() ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.guilds), r.reconnects
}

// env is one bot against the Discord fake and the Resonite fake (through the real client and
// the Resonite adapter, as in the daemon).
type env struct {
	t        testing.TB
	dc       *discordtest.Server
	rf       *resonitetest.Fake
	rc       *resonite.Client
	store    *memStore
	consent  *memConsent
	presence *fakePresence
	rec      *recorder
	logs     *syncBuffer
	opts     bot.Options
	bot      *bot.Bot
	started  bool // Stop is still due
}

// seedResonite gives the fake cloud the bridge account, contacts and users.
func seedResonite(f *resonitetest.Fake) {
	f.AddUser(resonite.User{ID: bridgeID, Username: "BridgeBot"}, bridgePW)
	icon := "resdb:///0123456789abcdef.webp"
	tagline := "Hello <b>there</b>"
	users := []resonite.User{
		{ID: "U-Alice", Username: "Alice", RegistrationDate: resonite.NewTime(time.Date(2023, 5, 1, 0, 0, 0, 0, time.UTC)),
			Profile: &resonite.Profile{IconURL: icon, Tagline: &tagline}},
		{ID: "U-Bob", Username: "Bob"},
		{ID: "U-Carol", Username: "Carol"},
		{ID: "U-Dave", Username: "Dave"},
		{ID: "U-Stranger", Username: "Stranger"},
		{ID: "U-Alicia", Username: "Alicia"},
	}
	for _, u := range users {
		f.AddUser(u, "")
	}
	accepted := func(id, name string) resonite.Contact {
		return resonite.Contact{ID: id, ContactUsername: name, ContactStatus: resonite.ContactAccepted, IsAccepted: true,
			Profile: &resonite.Profile{IconURL: icon}}
	}
	alice := accepted("U-Alice", "Alice")
	alice.AlternateUsernames = []string{"AliceOld"}
	f.AddContact(bridgeID, alice)
	f.AddContact(bridgeID, accepted("U-Bob", "Bob"))
	f.AddContact(bridgeID, resonite.Contact{ID: "U-Carol", ContactUsername: "Carol", ContactStatus: resonite.ContactRequested})
	f.AddContact(bridgeID, resonite.Contact{ID: "U-Dave", ContactUsername: "Dave", ContactStatus: resonite.ContactAccepted, IsAccepted: false})
}

func newEnv(t testing.TB, tweak ...func(*bot.Options)) *env {
	t.Helper()
	dc := discordtest.New(t)
	dc.AddGuild(guildID, "Test Guild")
	dc.AddChannel(guildID, channelID, "general")
	dc.AddChannel(guildID, otherChan, "random")
	rf := resonitetest.New(t)
	seedResonite(rf)
	rc, err := resonite.NewClient(resonite.Options{
		BaseURL: rf.URL, UID: "test-uid", Credentials: resonite.Credentials{Username: "BridgeBot", Password: bridgePW},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dc: dc, rf: rf, rc: rc, store: newMemStore(), consent: newMemConsent(), presence: &fakePresence{}, rec: newRecorder(), logs: &syncBuffer{}}
	e.opts = bot.Options{
		Token: dc.Token, APIURL: dc.URL, GuildID: guildID,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		// The commands only use the adapter's REST look-ups, which need no hub.
		Resonite: resoniteadapter.New(rc, nil), Store: e.store, Consent: e.consent, Presence: e.presence,
		Status:      fakeStatus{bot.BridgeStatus{HubState: "connected", HubConnected: true, AccountUserID: bridgeID, AccountUsername: "BridgeBot", Pairings: 1, QueueDepth: 3}},
		Handlers:    e.rec.handlers(),
		OpenTimeout: 5 * time.Second,
	}
	for _, f := range tweak {
		f(&e.opts)
	}
	return e
}

// start runs the bot until the test ends and waits for the gateway and the commands.
func (e *env) start() *env {
	e.t.Helper()
	isRegistration := func(c discordtest.Call) bool {
		return c.Method == "PUT" && strings.HasSuffix(c.Path, "/commands") && c.Status == 200
	}
	registered := len(slices.DeleteFunc(e.dc.Calls(), func(c discordtest.Call) bool { return !isRegistration(c) }))
	e.startNoWait()
	e.dc.WaitConnected(e.t)
	// This bot's own registration (after a restart the fake still has the previous one's).
	e.dc.WaitCalls(e.t, registered+1, isRegistration)
	// The bot registers the commands only after it marked the gateway connected.
	if ok, why := e.bot.Ready(); !ok {
		e.t.Fatalf("the bot registered its commands but is not ready: %s", why)
	}
	return e
}

func (e *env) startNoWait() {
	e.t.Helper()
	b, err := bot.New(e.opts)
	if err != nil {
		e.t.Fatalf("bot.New: %v", err)
	}
	e.bot = b
	if err := b.Start(context.Background()); err != nil {
		e.t.Fatalf("Start: %v", err)
	}
	e.started = true
	e.t.Cleanup(func() {
		if err := e.shutdown(); err != nil {
			e.t.Errorf("Stop: %v", err)
		}
	})
}

// shutdown stops the bot and returns what Stop returned (once; later calls return nil).
func (e *env) shutdown() error {
	if !e.started {
		return nil
	}
	e.started = false
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return e.bot.Stop(ctx)
}

// restart stops the bot and starts a new one on the same store and fakes.
func (e *env) restart() {
	e.t.Helper()
	if err := e.shutdown(); err != nil {
		e.t.Fatalf("Stop: %v", err)
	}
	e.start()
}

// command dispatches a slash command as an administrator in the test channel.
func (e *env) command(name string, opts ...discordtest.Opt) *discordtest.Interaction {
	e.t.Helper()
	return e.dc.Interact(e.t, discordtest.Command(guildID, channelID, name, opts...))
}

func (e *env) secretsInLogs(secrets ...string) []string {
	logs := e.logs.String()
	var found []string
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			found = append(found, s)
		}
	}
	return found
}

// failure waits for the error the bot reports on Failed.
func (e *env) failure() error {
	e.t.Helper()
	select {
	case err := <-e.bot.Failed():
		return err
	case <-time.After(discordtest.WaitTimeout(e.t)):
		e.t.Fatal("the bot reported no fatal error on Failed (it kept reconnecting?)")
		return nil
	}
}
