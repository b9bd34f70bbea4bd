package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/store"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

// The tests never sleep or poll: the fakes and the store wrapper fire a notifier on every call
// and change, and a test waits by re-checking its condition each time it fires (waitFor).
// "Nothing happened" is asserted only after a signal proves the work that could have done it
// has run.

// notifier is a change notification that any number of waiters can watch: fire closes the
// current channel and starts a new one.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func newNotifier() *notifier { return &notifier{ch: make(chan struct{})} }

func (n *notifier) fire() {
	n.mu.Lock()
	defer n.mu.Unlock()
	close(n.ch)
	n.ch = make(chan struct{})
}

func (n *notifier) next() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

// testStore is the real PostgreSQL store with the faults and the change notifications the
// tests need; it adds no behaviour of its own.
type testStore struct {
	Store
	pg      *store.Store // for test set-up and inspection in SQL
	changed func()

	mu        sync.Mutex
	enqueueFn func(core.OutboxRow) error // may fail an Enqueue
	// onEnqueueBatch sees each EnqueueBatch (on the bridge's ingest goroutine); set before
	// Start.
	onEnqueueBatch func([]core.OutboxRow)
	pairingFn      func(id int64) error // may fail a PairingByID, or hide the pairing from Pairings
	// retryDelay replaces the store's backoff (seconds and more): a retried row is due again
	// after it; zero means at once.
	retryDelay time.Duration
}

func (s *testStore) setEnqueueFn(f func(core.OutboxRow) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enqueueFn = f
}

func (s *testStore) setRetryDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retryDelay = d
}

func (s *testStore) Enqueue(ctx context.Context, m core.OutboxRow) (int64, bool, error) {
	s.mu.Lock()
	fn := s.enqueueFn
	s.mu.Unlock()
	if fn != nil {
		if err := fn(m); err != nil {
			return 0, false, err
		}
	}
	id, inserted, err := s.pg.Enqueue(ctx, m)
	s.changed()
	return id, inserted, err
}

// EnqueueBatch fails the whole batch when enqueueFn fails one of its rows, like a transaction.
func (s *testStore) EnqueueBatch(ctx context.Context, rows []core.OutboxRow) ([]core.EnqueueResult, error) {
	s.mu.Lock()
	fn := s.enqueueFn
	s.mu.Unlock()
	if fn != nil {
		for _, m := range rows {
			if err := fn(m); err != nil {
				return nil, err
			}
		}
	}
	if s.onEnqueueBatch != nil {
		s.onEnqueueBatch(rows)
	}
	res, err := s.Store.EnqueueBatch(ctx, rows)
	s.changed()
	return res, err
}

func (s *testStore) PairingByID(ctx context.Context, id int64) (core.Pairing, error) {
	s.mu.Lock()
	fn := s.pairingFn
	s.mu.Unlock()
	if fn != nil {
		if err := fn(id); err != nil {
			return core.Pairing{}, err
		}
	}
	return s.Store.PairingByID(ctx, id)
}

// WatchPairings fires the notifier after each report too, so that a test can wait for the
// bridge's pairing cache to be in use.
func (s *testStore) WatchPairings(ctx context.Context, changed func()) error {
	return s.Store.WatchPairings(ctx, func() {
		changed()
		s.changed()
	})
}

// Pairings leaves out the pairings pairingFn does not find, and fails with its other errors,
// so that the bridge's pairing cache sees what PairingByID does.
func (s *testStore) Pairings(ctx context.Context) ([]core.Pairing, error) {
	all, err := s.Store.Pairings(ctx)
	s.mu.Lock()
	fn := s.pairingFn
	s.mu.Unlock()
	if err != nil || fn == nil {
		return all, err
	}
	var out []core.Pairing
	for _, p := range all {
		switch err := fn(p.ID); {
		case errors.Is(err, core.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			out = append(out, p)
		}
	}
	return out, nil
}

func (s *testStore) ClaimBatch(ctx context.Context, dir core.Direction, maxPairings, maxRows int, lease time.Duration, skip []int64) ([]core.OutboxRow, error) {
	rows, err := s.Store.ClaimBatch(ctx, dir, maxPairings, maxRows, lease, skip)
	if len(rows) > 0 {
		s.changed()
	}
	return rows, err
}

func (s *testStore) MarkDelivered(ctx context.Context, id int64, targetID string) error {
	defer s.changed()
	return s.Store.MarkDelivered(ctx, id, targetID)
}

// Settle stores the outcomes, then moves retried rows to the test's retry delay (the real
// backoff starts at a second).
func (s *testStore) Settle(ctx context.Context, out []core.Settlement) error {
	defer s.changed()
	if err := s.Store.Settle(ctx, out); err != nil {
		return err
	}
	s.mu.Lock()
	next := time.Now().Add(s.retryDelay)
	s.mu.Unlock()
	for _, o := range out {
		if o.Kind == core.Retry {
			if err := s.pg.Postpone(ctx, o.RowID, next); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *testStore) SetProgress(ctx context.Context, rowID int64, parts int, first string) error {
	defer s.changed()
	return s.Store.SetProgress(ctx, rowID, parts, first)
}

func (s *testStore) RescueExpired(ctx context.Context) (int, error) {
	n, err := s.Store.RescueExpired(ctx)
	if n > 0 {
		s.changed()
	}
	return n, err
}

func (s *testStore) AdvanceDiscordCursor(ctx context.Context, pairingID int64, messageID string) error {
	defer s.changed()
	return s.Store.AdvanceDiscordCursor(ctx, pairingID, messageID)
}

func (s *testStore) AdvanceResoniteCursor(ctx context.Context, accountID string, t time.Time) error {
	defer s.changed()
	return s.Store.AdvanceResoniteCursor(ctx, accountID, t)
}

// fakeDiscord records posts and replies and serves channel history.
type fakeDiscord struct {
	note    *notifier
	mu      sync.Mutex
	nextID  int64
	posts   map[string][]postedMsg
	calls   map[string]int // Post calls per channel, failed ones included
	replies []replyMsg
	history map[string][]core.DiscordMessage
	// postFn, when set, runs before a post and may fail it.
	postFn    func(ctx context.Context, channel string, p core.Post, call int) error
	historyFn func(channel string) error
	// historyCalls records every History request, failed ones included.
	historyCalls []historyCall
	// newestFirst answers History pages as Discord's API does, against the interface's word.
	newestFirst bool
}

type historyCall struct {
	Channel, After string
	Limit          int
}

type postedMsg struct {
	ID string
	core.Post
}

type replyMsg struct{ ChannelID, MessageID, Content string }

func newFakeDiscord(note *notifier) *fakeDiscord {
	return &fakeDiscord{note: note, nextID: 9_000_000_000, posts: map[string][]postedMsg{}, calls: map[string]int{}, history: map[string][]core.DiscordMessage{}}
}

func (d *fakeDiscord) Post(ctx context.Context, channel string, p core.Post) (string, error) {
	defer d.note.fire()
	d.mu.Lock()
	d.calls[channel]++
	call := d.calls[channel]
	fn := d.postFn
	d.mu.Unlock()
	d.note.fire() // the call is seen before postFn may block it
	if fn != nil {
		if err := fn(ctx, channel, p, call); err != nil {
			return "", err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nextID++
	id := strconv.FormatInt(d.nextID, 10)
	d.posts[channel] = append(d.posts[channel], postedMsg{ID: id, Post: p})
	return id, nil
}

func (d *fakeDiscord) Reply(_ context.Context, channel, messageID, content string) error {
	defer d.note.fire()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.replies = append(d.replies, replyMsg{channel, messageID, content})
	return nil
}

func (d *fakeDiscord) History(_ context.Context, channel, after string, limit int) ([]core.DiscordMessage, error) {
	defer d.note.fire()
	d.mu.Lock()
	fn := d.historyFn
	d.historyCalls = append(d.historyCalls, historyCall{channel, after, limit})
	d.mu.Unlock()
	if fn != nil {
		if err := fn(channel); err != nil {
			return nil, err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []core.DiscordMessage
	for _, m := range d.history[channel] {
		if compareSnowflakes(after, m.ID) < 0 && len(out) < limit {
			out = append(out, m)
		}
	}
	if d.newestFirst {
		slices.Reverse(out)
	}
	return out, nil
}

func (d *fakeDiscord) postsIn(channel string) []postedMsg {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.posts[channel])
}

func (d *fakeDiscord) callsIn(channel string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[channel]
}

func (d *fakeDiscord) historyCallsIn(channel string) []historyCall {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []historyCall
	for _, c := range d.historyCalls {
		if c.Channel == channel {
			out = append(out, c)
		}
	}
	return out
}

func (d *fakeDiscord) setHistory(channel string, msgs ...core.DiscordMessage) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.history[channel] = nil
	d.addHistoryLocked(channel, msgs...)
}

func (d *fakeDiscord) addHistory(channel string, msgs ...core.DiscordMessage) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addHistoryLocked(channel, msgs...)
}

func (d *fakeDiscord) addHistoryLocked(channel string, msgs ...core.DiscordMessage) {
	d.history[channel] = append(d.history[channel], msgs...)
	slices.SortFunc(d.history[channel], func(a, b core.DiscordMessage) int { return compareSnowflakes(a.ID, b.ID) })
}

func (d *fakeDiscord) allReplies() []replyMsg {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.replies)
}

// sentText is one SendText call.
type sentText struct{ ID, ContactID, Text string }

// readBatch is one MarkRead call.
type readBatch struct {
	SenderID string
	IDs      []string
}

type messagesQuery struct {
	Since time.Time
	Max   int
}

// fakeResonite is the Resonite side: sends, read receipts, contact acceptance and the mailbox.
type fakeResonite struct {
	note     *notifier
	mu       sync.Mutex
	sent     []sentText
	calls    map[string]int // SendText calls per contact
	reads    []readBatch
	accepted []string
	history  []core.ContactMessage
	sendFn   func(ctx context.Context, m sentText, call int) error
	histFn   func() error
	queries  []messagesQuery // every Messages request, failed ones included
}

const botID = "U-Bridge"

func newFakeResonite(note *notifier) *fakeResonite {
	return &fakeResonite{note: note, calls: map[string]int{}}
}

func (r *fakeResonite) UserID() string { return botID }

func (r *fakeResonite) SendText(ctx context.Context, id, contactID, text string) error {
	defer r.note.fire()
	m := sentText{ID: id, ContactID: contactID, Text: text}
	r.mu.Lock()
	r.calls[contactID]++
	call := r.calls[contactID]
	fn := r.sendFn
	r.mu.Unlock()
	r.note.fire() // the call is seen before sendFn may block it
	if fn != nil {
		if err := fn(ctx, m, call); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, m)
	return nil
}

func (r *fakeResonite) MarkRead(_ context.Context, senderID string, ids []string) error {
	defer r.note.fire()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads = append(r.reads, readBatch{senderID, slices.Clone(ids)})
	return nil
}

func (r *fakeResonite) AcceptContact(_ context.Context, contactID string) error {
	defer r.note.fire()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.accepted = append(r.accepted, contactID)
	return nil
}

// Messages answers like the cloud: the newest max messages (-1: all) sent at or after since,
// newest first.
func (r *fakeResonite) Messages(_ context.Context, since time.Time, max int) ([]core.ContactMessage, error) {
	defer r.note.fire()
	r.mu.Lock()
	fn := r.histFn
	r.queries = append(r.queries, messagesQuery{since, max})
	r.mu.Unlock()
	if fn != nil {
		if err := fn(); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []core.ContactMessage
	for _, m := range r.history {
		if !m.SentAt.Before(since) {
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(a, b core.ContactMessage) int { return b.SentAt.Compare(a.SentAt) })
	if max >= 0 && len(out) > max {
		out = out[:max]
	}
	return out, nil
}

func (r *fakeResonite) addHistory(msgs ...core.ContactMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.history = append(r.history, msgs...)
}

func (r *fakeResonite) allQueries() []messagesQuery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.queries)
}

func (r *fakeResonite) allReads() []readBatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reads)
}

func (r *fakeResonite) sendCalls(contact string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[contact]
}

func (r *fakeResonite) sentTo(contact string) []sentText {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []sentText
	for _, m := range r.sent {
		if m.ContactID == contact {
			out = append(out, m)
		}
	}
	return out
}

func (r *fakeResonite) readIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.reads {
		out = append(out, b.IDs...)
	}
	return out
}

func (r *fakeResonite) acceptedContacts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.accepted)
}

// fakeSessions resolves session hints from a map the test fills.
type fakeSessions struct {
	mu       sync.Mutex
	sessions map[string]core.Session
}

func (f *fakeSessions) set(hint string, s core.Session) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sessions == nil {
		f.sessions = map[string]core.Session{}
	}
	f.sessions[hint] = s
}

func (f *fakeSessions) remove(hint string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.sessions, hint)
}

func (f *fakeSessions) Session(hint string) (core.Session, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[hint]
	return s, ok
}

// fakeClock is the injectable clock of presence tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// harness wires a Bridge to the real store and the fakes.
type harness struct {
	t        *testing.T
	pg       *store.Store
	store    *testStore
	discord  *fakeDiscord
	res      *fakeResonite
	sessions *fakeSessions
	clock    *fakeClock
	note     *notifier
	opts     Options
	b        *Bridge
	started  bool
	// ctx ends shortly before the test binary's -timeout would kill the test, so that a wait
	// that never ends fails with what it waited for; it is no time window of the tests.
	ctx context.Context
}

// Pairings used by most tests: channel C-A with contact U-Alice (pairing 1), channel C-B with
// U-Bob (pairing 2), both made at pairingEpoch.
var pairingEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newHarness(t *testing.T, tweak func(*Options)) *harness {
	t.Helper()
	note := newNotifier()
	pg := storetest.New(t)
	h := &harness{
		t:        t,
		pg:       pg,
		store:    &testStore{Store: pg, pg: pg, changed: note.fire},
		discord:  newFakeDiscord(note),
		res:      newFakeResonite(note),
		sessions: &fakeSessions{},
		clock:    &fakeClock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)},
		note:     note,
	}
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if d, ok := t.Deadline(); ok {
		ctx, cancel = context.WithDeadline(ctx, d.Add(-15*time.Second))
	}
	t.Cleanup(cancel)
	h.ctx = ctx
	h.addPairing(core.Pairing{GuildID: "G1", ChannelID: "C-A", ContactID: "U-Alice", ContactUsername: "Alice", WebhookID: "W-A"}, 1)
	h.addPairing(core.Pairing{GuildID: "G1", ChannelID: "C-B", ContactID: "U-Bob", ContactUsername: "Bob", WebhookID: "W-B"}, 2)
	h.opts = Options{
		Store: h.store, Resonite: h.res, Discord: h.discord, Sessions: h.sessions, Now: h.clock.Now, Consent: h.pg,
		PollInterval: 100 * time.Millisecond, MarkReadDelay: time.Millisecond, CatchUpRetry: 5 * time.Millisecond,
		DrainTimeout: time.Minute,
	}
	if tweak != nil {
		tweak(&h.opts)
	}
	h.b = h.newBridge()
	return h
}

func (h *harness) newBridge() *Bridge {
	h.t.Helper()
	b, err := New(h.opts)
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

// addPairing stores a pairing made at pairingEpoch and checks it got the id the test expects.
func (h *harness) addPairing(p core.Pairing, wantID int64) core.Pairing {
	h.t.Helper()
	p, err := h.pg.CreatePairing(context.Background(), p)
	if err != nil {
		h.t.Fatalf("CreatePairing(%s): %v", p.ChannelID, err)
	}
	h.consent(p.ContactID, p.GuildID) // a pairing exists only with its contact's consent
	if p.ID != wantID {
		h.t.Fatalf("pairing of %s has id %d, want %d", p.ChannelID, p.ID, wantID)
	}
	h.setPairingCreatedAt(p.ID, pairingEpoch)
	p.CreatedAt = pairingEpoch
	return p
}

func (h *harness) setPairingCreatedAt(id int64, at time.Time) {
	h.t.Helper()
	h.exec(`update pairings set created_at = $2 where id = $1`, id, at)
}

func (h *harness) exec(sql string, args ...any) {
	h.t.Helper()
	if _, err := h.pg.Pool().Exec(context.Background(), sql, args...); err != nil {
		h.t.Fatalf("exec %q: %v", sql, err)
	}
}

func (h *harness) addSub(sub core.Subscription) {
	h.t.Helper()
	if _, err := h.pg.AddSubscription(context.Background(), sub); err != nil {
		h.t.Fatalf("AddSubscription(%s, %s): %v", sub.ChannelID, sub.ContactID, err)
	}
	if sub.ContactID != core.AllContacts {
		h.consent(sub.ContactID, sub.GuildID)
	}
}

// consent records that the contact consented in the guild.
func (h *harness) consent(contactID, guildID string) {
	h.t.Helper()
	if err := h.pg.GrantConsent(context.Background(), contactID, guildID, "Guild "+guildID); err != nil {
		h.t.Fatal(err)
	}
}

// start runs the bridge; it is stopped when the test ends, if the test did not stop it.
func (h *harness) start() {
	h.t.Helper()
	if err := h.b.Start(context.Background()); err != nil {
		h.t.Fatalf("Start: %v", err)
	}
	if !h.started {
		h.t.Cleanup(h.stop)
	}
	h.started = true
}

// stop stops the bridge and waits for all its goroutines.
func (h *harness) stop() {
	h.t.Helper()
	if !h.started {
		return
	}
	h.started = false
	if err := h.b.Stop(h.ctx); err != nil {
		h.t.Errorf("Stop: %v", err)
	}
}

// restart stops the bridge and starts a new one on the same store and sides, as a restarted
// daemon would.
func (h *harness) restart() {
	h.t.Helper()
	h.stop()
	h.b = h.newBridge()
	h.start()
}

// waitFor returns once cond holds, re-checking it each time the store, a fake side or the
// bridge's task queue reports a change.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	for {
		changed := h.note.next()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-h.ctx.Done():
			h.t.Fatalf("gave up waiting for: %s", what)
		}
	}
}

// settle waits until every task queued so far (notifications, accepts) has run.
func (h *harness) settle() {
	h.t.Helper()
	done := make(chan struct{})
	h.b.tasks.push(func(context.Context) { close(done) })
	select {
	case <-done:
	case <-h.ctx.Done():
		h.t.Fatal("task queue did not drain")
	}
}

// rowsIn counts the rows of a direction in a state.
func (h *harness) rowsIn(dir core.Direction, state core.State) int {
	h.t.Helper()
	var n int
	if err := h.pg.Pool().QueryRow(context.Background(),
		`select count(*) from relay_messages where direction = $1 and state = $2`, string(dir), string(state)).Scan(&n); err != nil {
		h.t.Fatalf("counting %s rows: %v", dir, err)
	}
	return n
}

// rowCount counts the rows of a direction.
func (h *harness) rowCount(dir core.Direction) int {
	h.t.Helper()
	var n int
	if err := h.pg.Pool().QueryRow(context.Background(),
		`select count(*) from relay_messages where direction = $1`, string(dir)).Scan(&n); err != nil {
		h.t.Fatalf("counting %s rows: %v", dir, err)
	}
	return n
}

func (h *harness) waitRows(dir core.Direction, state core.State, n int) {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("%d %s rows %s", n, dir, state), func() bool { return h.rowsIn(dir, state) == n })
}

// row finds a row by source id; a Discord message's id alone names its one to_resonite row (a
// test of group channels names the pairing).
func (h *harness) row(dir core.Direction, sourceID string) core.OutboxRow {
	h.t.Helper()
	if dir == core.ToResonite && !strings.Contains(sourceID, ":") {
		rows, _ := h.store.pg.Pool().Query(context.Background(),
			`select source_id from relay_messages where direction = $1 and source_id like $2 || ':%'`, dir, sourceID)
		full, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(full) > 1 {
			h.t.Fatalf("row %s %s: %d rows, %v", dir, sourceID, len(full), err)
		}
		if len(full) == 1 {
			sourceID = full[0]
		}
	}
	m, err := h.store.pg.MessageBySource(context.Background(), dir, sourceID)
	if err != nil {
		h.t.Fatalf("row %s %s: %v", dir, sourceID, err)
	}
	return m
}

// enqueue stores a row as an earlier process would have.
func (h *harness) enqueue(m core.OutboxRow) int64 {
	h.t.Helper()
	id, _, err := h.store.Enqueue(context.Background(), m)
	if err != nil {
		h.t.Fatalf("enqueue %s: %v", m.SourceID, err)
	}
	return id
}

func textFrom(sender, id, text string, at time.Time) core.ContactMessage {
	return core.ContactMessage{ID: id, SenderID: sender, Kind: core.KindText, Text: text, SentAt: at}
}
