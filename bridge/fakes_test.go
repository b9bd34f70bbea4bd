package bridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

// memStore is an in-memory Store with the semantics the bridge relies on: idempotent enqueue,
// per-pairing single in-flight row, (CreatedAt, ID) order, leases, attempts counted by Retry
// only, and updates of delivered or failed rows refused (as store.Store does).
type memStore struct {
	mu        sync.Mutex
	pairings  map[int64]Pairing
	subs      []Subscription
	rows      []*memRow
	dcursor   map[int64]string
	rcursor   map[string]time.Time
	backoff   time.Duration // Retry's delay
	enqueueFn func(Message) error
}

type memRow struct {
	Message
	leaseUntil time.Time
}

func newMemStore() *memStore {
	return &memStore{pairings: map[int64]Pairing{}, dcursor: map[int64]string{}, rcursor: map[string]time.Time{}}
}

func (s *memStore) addPairing(p Pairing) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pairings[p.ID] = p
}

func (s *memStore) addSub(sub Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = append(s.subs, sub)
}

func (s *memStore) Pairings(context.Context) ([]Pairing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Pairing
	for _, p := range s.pairings {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Pairing) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

func (s *memStore) PairingByChannel(_ context.Context, ch string) (Pairing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pairings {
		if p.ChannelID == ch {
			return p, nil
		}
	}
	return Pairing{}, fmt.Errorf("pairing of channel %s: %w", ch, ErrNotFound)
}

func (s *memStore) PairingsByContact(_ context.Context, c string) ([]Pairing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Pairing
	for _, p := range s.pairings {
		if p.ContactID == c {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Pairing) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

func (s *memStore) PairingByID(_ context.Context, id int64) (Pairing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pairings[id]
	if !ok {
		return Pairing{}, ErrNotFound
	}
	return p, nil
}

func (s *memStore) SubscriptionsForContact(_ context.Context, c string) ([]Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Subscription
	for _, sub := range s.subs {
		if sub.ContactID == c || sub.ContactID == "all" {
			out = append(out, sub)
		}
	}
	return out, nil
}

func (s *memStore) Enqueue(_ context.Context, m Message) (int64, bool, error) {
	if s.enqueueFn != nil {
		if err := s.enqueueFn(m); err != nil {
			return 0, false, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rows {
		if r.Direction == m.Direction && r.SourceID == m.SourceID {
			return r.ID, false, nil
		}
	}
	m.ID = int64(len(s.rows) + 1)
	m.State = StatePending
	m.EnqueuedAt = time.Now()
	if m.CreatedAt.IsZero() {
		m.CreatedAt = m.EnqueuedAt
	}
	s.rows = append(s.rows, &memRow{Message: m})
	return m.ID, true, nil
}

func rowLess(a, b *memRow) int {
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// headsLocked returns, per pairing without a row in flight, the oldest row that is pending or
// in flight. A pairing with a row in flight has no claimable head even when an older row was
// enqueued after that row was claimed.
func (s *memStore) headsLocked(dir Direction) []*memRow {
	heads := map[int64]*memRow{}
	busy := map[int64]bool{}
	for _, r := range s.rows {
		if r.Direction != dir || (r.State != StatePending && r.State != StateInFlight) {
			continue
		}
		if r.State == StateInFlight {
			busy[r.PairingID] = true
		}
		if h, ok := heads[r.PairingID]; !ok || rowLess(r, h) < 0 {
			heads[r.PairingID] = r
		}
	}
	var out []*memRow
	for p, h := range heads {
		if !busy[p] {
			out = append(out, h)
		}
	}
	slices.SortFunc(out, rowLess)
	return out
}

func (s *memStore) Claim(_ context.Context, dir Direction, limit int, lease time.Duration) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var out []Message
	for _, h := range s.headsLocked(dir) {
		if len(out) == limit {
			break
		}
		if h.State != StatePending || h.NextAttemptAt.After(now) {
			continue
		}
		h.State = StateInFlight
		h.leaseUntil = now.Add(lease)
		h.Claims++
		out = append(out, h.Message)
	}
	return out, nil
}

func (s *memStore) row(id int64) (*memRow, error) {
	if id < 1 || int(id) > len(s.rows) {
		return nil, ErrNotFound
	}
	return s.rows[id-1], nil
}

// openRow is row for the updates that only pending and in-flight rows accept.
func (s *memStore) openRow(id int64) (*memRow, error) {
	r, err := s.row(id)
	if err != nil {
		return nil, err
	}
	if r.State != StatePending && r.State != StateInFlight {
		return nil, fmt.Errorf("message %d is already %s", id, r.State)
	}
	return r, nil
}

func (s *memStore) MarkDelivered(_ context.Context, id int64, target string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.row(id)
	if err != nil {
		return err
	}
	now := time.Now()
	r.State, r.TargetID, r.DeliveredAt = StateDelivered, target, &now
	return nil
}

func (s *memStore) Retry(_ context.Context, id int64, reason string) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.openRow(id)
	if err != nil {
		return time.Time{}, err
	}
	r.State, r.LastError, r.NextAttemptAt = StatePending, reason, time.Now().Add(s.backoff)
	r.Attempts++
	return r.NextAttemptAt, nil
}

func (s *memStore) Postpone(_ context.Context, id int64, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.openRow(id)
	if err != nil {
		return err
	}
	r.State, r.NextAttemptAt = StatePending, until
	return nil
}

func (s *memStore) Fail(_ context.Context, id int64, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.openRow(id)
	if err != nil {
		return err
	}
	r.State, r.LastError = StateFailed, reason
	return nil
}

func (s *memStore) RescueExpired(context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.rows {
		if r.State == StateInFlight && time.Now().After(r.leaseUntil) {
			r.State = StatePending
			n++
		}
	}
	return n, nil
}

func (s *memStore) NextDue(_ context.Context, dir Direction) (time.Time, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t time.Time
	ok := false
	for _, r := range s.rows {
		if r.Direction == dir && r.State == StatePending && (!ok || r.NextAttemptAt.Before(t)) {
			t, ok = r.NextAttemptAt, true
		}
	}
	return t, ok, nil
}

func (s *memStore) MessageBySource(_ context.Context, dir Direction, src string) (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rows {
		if r.Direction == dir && r.SourceID == src {
			return r.Message, nil
		}
	}
	return Message{}, ErrNotFound
}

func (s *memStore) MessageByTarget(_ context.Context, dir Direction, target string) (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rows {
		if r.Direction == dir && r.TargetID == target {
			return r.Message, nil
		}
	}
	return Message{}, ErrNotFound
}

func (s *memStore) DiscordCursor(_ context.Context, pairingID int64) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dcursor[pairingID], nil
}

func snowflakeLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func (s *memStore) AdvanceDiscordCursor(_ context.Context, pairingID int64, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if snowflakeLess(s.dcursor[pairingID], id) {
		s.dcursor[pairingID] = id
	}
	return nil
}

func (s *memStore) ResoniteCursor(_ context.Context, account string) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcursor[account], nil
}

func (s *memStore) AdvanceResoniteCursor(_ context.Context, account string, t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.After(s.rcursor[account]) {
		s.rcursor[account] = t
	}
	return nil
}

// snapshot returns copies of the rows of one direction, in id order.
func (s *memStore) snapshot(dir Direction) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, r := range s.rows {
		if r.Direction == dir {
			out = append(out, r.Message)
		}
	}
	return out
}

// errRetryable and errPermanent are what the fakes fail with; the classifier below knows them.
var (
	errRetryable = errors.New("temporarily unavailable")
	errPermanent = errors.New("contact removed")
)

type rateLimitedError struct{ after time.Duration }

func (e rateLimitedError) Error() string { return "rate limited, retry after " + e.after.String() }

func isPermanentTest(err error) bool { return errors.Is(err, errPermanent) }

func retryAfterTest(err error) (time.Duration, bool) {
	var rl rateLimitedError
	if errors.As(err, &rl) {
		return rl.after, true
	}
	return 0, false
}

// fakeDiscord records posts and replies and serves channel history.
type fakeDiscord struct {
	mu      sync.Mutex
	nextID  int64
	posts   map[string][]postedMsg
	calls   map[string]int // Post calls per channel, failed ones included
	replies []replyMsg
	history map[string][]DiscordMessage
	// postFn, when set, runs before a post and may fail it.
	postFn    func(ctx context.Context, channel string, p Post, call int) error
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
	Post
}

type replyMsg struct{ ChannelID, MessageID, Content string }

func newFakeDiscord() *fakeDiscord {
	return &fakeDiscord{nextID: 9_000_000_000, posts: map[string][]postedMsg{}, calls: map[string]int{}, history: map[string][]DiscordMessage{}}
}

func (d *fakeDiscord) Post(ctx context.Context, channel string, p Post) (string, error) {
	d.mu.Lock()
	d.calls[channel]++
	call := d.calls[channel]
	fn := d.postFn
	d.mu.Unlock()
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
	d.mu.Lock()
	defer d.mu.Unlock()
	d.replies = append(d.replies, replyMsg{channel, messageID, content})
	return nil
}

func (d *fakeDiscord) History(_ context.Context, channel, after string, limit int) ([]DiscordMessage, error) {
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
	var out []DiscordMessage
	for _, m := range d.history[channel] {
		if snowflakeLess(after, m.ID) && len(out) < limit {
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

func (d *fakeDiscord) addHistory(channel string, msgs ...DiscordMessage) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.history[channel] = append(d.history[channel], msgs...)
	slices.SortFunc(d.history[channel], func(a, b DiscordMessage) int { return compareSnowflakes(a.ID, b.ID) })
}

func (d *fakeDiscord) allReplies() []replyMsg {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.replies)
}

// fakeResonite is the hub (SendMessage, MarkMessagesRead, UpdateContact) and the REST history.
type fakeResonite struct {
	mu       sync.Mutex
	sent     []resonite.Message
	calls    map[string]int // SendMessage calls per recipient
	reads    []resonite.MarkReadBatch
	contacts []resonite.Contact
	history  []resonite.Message
	sendFn   func(ctx context.Context, m resonite.Message, call int) error
	histFn   func() error
	queries  []MessageQuery // every Messages request, failed ones included
}

const botID = "U-Bridge"

func newFakeResonite() *fakeResonite { return &fakeResonite{calls: map[string]int{}} }

func (r *fakeResonite) UserID() string { return botID }

func (r *fakeResonite) SendMessage(ctx context.Context, m resonite.Message) error {
	r.mu.Lock()
	r.calls[m.RecipientID]++
	call := r.calls[m.RecipientID]
	fn := r.sendFn
	r.mu.Unlock()
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

func (r *fakeResonite) MarkMessagesRead(_ context.Context, b resonite.MarkReadBatch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads = append(r.reads, b)
	return nil
}

func (r *fakeResonite) UpdateContact(_ context.Context, c resonite.Contact) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.contacts = append(r.contacts, c)
	return true, nil
}

// Messages answers like the cloud (and resonitetest): the newest MaxItems messages (0 means
// 100, -1 means all) whose lastUpdateTime, or sendTime when unset, is at or after FromTime,
// newest first.
func (r *fakeResonite) Messages(_ context.Context, q MessageQuery) ([]resonite.Message, error) {
	r.mu.Lock()
	fn := r.histFn
	r.queries = append(r.queries, q)
	r.mu.Unlock()
	if fn != nil {
		if err := fn(); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []resonite.Message
	for _, m := range r.history {
		updated := m.LastUpdateTime.Time
		if updated.IsZero() {
			updated = m.SendTime.Time
		}
		if !updated.Before(q.FromTime) && (q.User == "" || m.OtherID == q.User) {
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(a, b resonite.Message) int { return b.SendTime.Compare(a.SendTime.Time) })
	n := q.MaxItems
	if n == 0 {
		n = 100
	}
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out, nil
}

func (r *fakeResonite) addHistory(msgs ...resonite.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.history = append(r.history, msgs...)
}

func (r *fakeResonite) allQueries() []MessageQuery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.queries)
}

func (r *fakeResonite) allReads() []resonite.MarkReadBatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reads)
}

func (r *fakeResonite) sendCalls(recipient string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[recipient]
}

func (r *fakeResonite) sentTo(recipient string) []resonite.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []resonite.Message
	for _, m := range r.sent {
		if m.RecipientID == recipient {
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

func (r *fakeResonite) updatedContacts() []resonite.Contact {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.contacts)
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

// harness wires a Bridge to the fakes and runs it for the test.
type harness struct {
	t       *testing.T
	store   *memStore
	discord *fakeDiscord
	res     *fakeResonite
	clock   *fakeClock
	b       *Bridge
	cancel  context.CancelFunc
	done    chan struct{}
}

// Pairings used by most tests: channel C-A with contact U-Alice, channel C-B with U-Bob.
var pairingEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newHarness(t *testing.T, tweak func(*Options)) *harness {
	t.Helper()
	h := &harness{
		t:       t,
		store:   newMemStore(),
		discord: newFakeDiscord(),
		res:     newFakeResonite(),
		clock:   &fakeClock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)},
	}
	h.store.addPairing(Pairing{ID: 1, GuildID: "G1", ChannelID: "C-A", ContactID: "U-Alice", ContactUsername: "Alice", CreatedAt: pairingEpoch, WebhookID: "W-A"})
	h.store.addPairing(Pairing{ID: 2, GuildID: "G1", ChannelID: "C-B", ContactID: "U-Bob", ContactUsername: "Bob", CreatedAt: pairingEpoch, WebhookID: "W-B"})
	o := Options{
		Store: h.store, Resonite: h.res, History: h.res, Discord: h.discord,
		Now: h.clock.Now, IsPermanent: isPermanentTest, RetryAfter: retryAfterTest,
		PollInterval: 20 * time.Millisecond, MarkReadDelay: time.Millisecond, CatchUpRetry: 5 * time.Millisecond,
		DrainTimeout: 5 * time.Second, PresenceWarmup: time.Nanosecond,
	}
	if tweak != nil {
		tweak(&o)
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	h.b = b
	return h
}

// start runs the bridge until the test ends.
func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan struct{})
	go func() {
		defer close(h.done)
		if err := h.b.Run(ctx); err != nil {
			h.t.Errorf("Run: %v", err)
		}
	}()
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
	h.cancel = nil
}

// eventually waits for cond; the deadline only keeps a broken test from hanging.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// settle waits until every task queued so far (notifications, accepts) has run.
func (h *harness) settle() {
	h.t.Helper()
	done := make(chan struct{})
	h.b.tasks.push(func(context.Context) { close(done) })
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		h.t.Fatal("task queue did not drain")
	}
}

func (h *harness) rowsIn(dir Direction, state State) int {
	n := 0
	for _, m := range h.store.snapshot(dir) {
		if m.State == state {
			n++
		}
	}
	return n
}

func textFrom(sender, id, text string, at time.Time) resonite.Message {
	return resonite.Message{
		ID: id, OwnerID: botID, SenderID: sender, RecipientID: botID, OtherID: sender,
		MessageType: resonite.MessageText, Content: text, SendTime: resonite.NewTime(at),
	}
}
