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
	"github.com/resonite-bridge/resonite-bridge/bridge"
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

// memStore is an in-memory bot.Store.
type memStore struct {
	mu       sync.Mutex
	nextID   int64
	pairings map[string]bridge.Pairing // by channel
	subs     []bridge.Subscription
}

func newMemStore() *memStore { return &memStore{pairings: map[string]bridge.Pairing{}} }

func (s *memStore) CreatePairing(_ context.Context, p bridge.Pairing) (bridge.Pairing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pairings[p.ChannelID]; ok {
		return bridge.Pairing{}, fmt.Errorf("pair %s: %w", p.ChannelID, bot.ErrAlreadyPaired)
	}
	s.nextID++
	p.ID, p.CreatedAt = s.nextID, time.Now()
	s.pairings[p.ChannelID] = p
	return p, nil
}

func (s *memStore) DeletePairing(_ context.Context, ch string) (bridge.Pairing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pairings[ch]
	if !ok {
		return bridge.Pairing{}, fmt.Errorf("unpair %s: %w", ch, bridge.ErrNotFound)
	}
	delete(s.pairings, ch)
	return p, nil
}

func (s *memStore) PairingByChannel(_ context.Context, ch string) (bridge.Pairing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pairings[ch]
	if !ok {
		return bridge.Pairing{}, fmt.Errorf("pairing of %s: %w", ch, bridge.ErrNotFound)
	}
	return p, nil
}

func (s *memStore) PairingsByGuild(_ context.Context, g string) ([]bridge.Pairing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []bridge.Pairing
	for _, p := range s.pairings {
		if p.GuildID == g {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b bridge.Pairing) int { return int(a.ID - b.ID) })
	return out, nil
}

func (s *memStore) SetPairingWebhook(_ context.Context, ch, id, tok string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pairings[ch]
	if !ok {
		return bridge.ErrNotFound
	}
	p.WebhookID, p.WebhookToken = id, tok
	s.pairings[ch] = p
	return nil
}

func (s *memStore) AddSubscription(_ context.Context, sub bridge.Subscription) (bool, error) {
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

func (s *memStore) SubscriptionsByChannel(_ context.Context, ch string) ([]bridge.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []bridge.Subscription
	for _, x := range s.subs {
		if x.ChannelID == ch {
			out = append(out, x)
		}
	}
	return out, nil
}

func (s *memStore) pairing(ch string) (bridge.Pairing, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pairings[ch]
	return p, ok
}

// fakePresence answers ContactPresence from a map.
type fakePresence struct {
	mu   sync.Mutex
	byID map[string]presenceEntry
}

type presenceEntry struct {
	status  resonite.OnlineStatus
	session *resonite.SessionInfo
}

func (p *fakePresence) set(id string, st resonite.OnlineStatus, s *resonite.SessionInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byID == nil {
		p.byID = map[string]presenceEntry{}
	}
	p.byID[id] = presenceEntry{st, s}
}

func (p *fakePresence) ContactPresence(id string) (resonite.OnlineStatus, *resonite.SessionInfo, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.byID[id]
	return e.status, e.session, ok
}

type fakeStatus struct{ st bot.BridgeStatus }

func (f fakeStatus) Status(context.Context) bot.BridgeStatus { return f.st }

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
	mu         sync.Mutex
	msgs       []bridge.DiscordMessage
	guilds     []string
	reconnects int
	changed    chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) note() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) handlers() bot.Handlers {
	return bot.Handlers{
		OnMessage: func(_ context.Context, m bridge.DiscordMessage) {
			r.mu.Lock()
			r.msgs = append(r.msgs, m)
			r.mu.Unlock()
			r.note()
		},
		OnGuildAvailable: func(_ context.Context, g string) {
			r.mu.Lock()
			r.guilds = append(r.guilds, g)
			r.mu.Unlock()
			r.note()
		},
		OnReconnect: func(context.Context) {
			r.mu.Lock()
			r.reconnects++
			r.mu.Unlock()
			r.note()
		},
	}
}

func (r *recorder) messages() []bridge.DiscordMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

func (r *recorder) snapshot() ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.guilds), r.reconnects
}

// waitFor polls cond; the limit is a safety net for a broken bot, not a speed assertion.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// env is one bot against the Discord fake and the Resonite fake.
type env struct {
	t        testing.TB
	dc       *discordtest.Server
	rf       *resonitetest.Fake
	rc       *resonite.Client
	store    *memStore
	presence *fakePresence
	rec      *recorder
	logs     *syncBuffer
	opts     bot.Options
	bot      *bot.Bot
	runErr   chan error
	stop     context.CancelFunc
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
	f.AddContact(bridgeID, accepted("U-Alice", "Alice"))
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
	e := &env{t: t, dc: dc, rf: rf, rc: rc, store: newMemStore(), presence: &fakePresence{}, rec: newRecorder(), logs: &syncBuffer{}}
	e.opts = bot.Options{
		Token: dc.Token, APIURL: dc.URL, GuildID: guildID,
		Logger:   slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Resonite: rc, Store: e.store, Presence: e.presence,
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
	e.startNoWait()
	e.dc.WaitConnected(e.t)
	e.dc.WaitCommands(e.t, e.opts.GuildID)
	waitFor(e.t, "the bot to report ready", func() bool { ok, _ := e.bot.Ready(); return ok })
	return e
}

func (e *env) startNoWait() {
	e.t.Helper()
	b, err := bot.New(e.opts)
	if err != nil {
		e.t.Fatalf("bot.New: %v", err)
	}
	e.bot = b
	ctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	e.runErr = make(chan error, 1)
	go func() { e.runErr <- b.Run(ctx) }()
	e.t.Cleanup(func() { e.shutdown() })
}

// shutdown stops the bot and returns what Run returned (once; later calls return nil).
func (e *env) shutdown() error {
	if e.stop == nil {
		return nil
	}
	e.stop()
	e.stop = nil
	select {
	case err := <-e.runErr:
		return err
	case <-time.After(30 * time.Second):
		e.t.Fatalf("Run did not return after cancel")
		return nil
	}
}

// restart stops the bot and starts a new one on the same store and fakes.
func (e *env) restart() {
	e.t.Helper()
	if err := e.shutdown(); err != nil {
		e.t.Fatalf("Run: %v", err)
	}
	e.start()
}

// interact dispatches an interaction as an administrator in the test channel.
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

// timeAfter is the safety net of select-based waits.
func timeAfter(t testing.TB) <-chan time.Time {
	t.Helper()
	return time.After(30 * time.Second)
}
