// Package bridge is the core of resonite-bridge: it relays chat between paired Discord channels
// and Resonite contacts through a durable outbox, catches up after downtime, keeps a presence
// model of contacts and announces friends coming online. It knows neither wire protocol: the
// daemon adapts the store, the Discord bot and the Resonite client to the small interfaces below.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// Store is the durable outbox and the pairing tables; *store.Store has it.
//
// Semantics the bridge relies on: EnqueueBatch stores rows in one transaction in the given
// order, idempotent on (Direction, SourceID) (Inserted false for a duplicate); rows of a
// pairing that is gone are not stored (ID 0) and the error, matching core.ErrNotFound, comes
// with a result per row while the others are stored. ClaimBatch hands out, for up to
// maxPairings pairings not in skip, the run of rows at the head of the pairing's queue (oldest
// undelivered by SourceTime, then ID; failed rows do not block) while they are pending and due,
// at most maxRows; never while anything of the pairing is in flight, so a pairing has at most
// one batch out and a row that waits for a retry holds back the rows behind it. Settle stores a
// batch's outcomes in one transaction; Retry outcomes count an attempt, Postpone ones do not.
// SetProgress records the parts of a long message posted so far. MarkDelivered also accepts a
// pending row (late MessageSent echoes). Lookups of missing rows return core.ErrNotFound.
type Store interface {
	Pairings(ctx context.Context) ([]core.Pairing, error)
	PairingsByChannel(ctx context.Context, channelID string) ([]core.Pairing, error)
	PairingsByContact(ctx context.Context, contactID string) ([]core.Pairing, error)
	PairingByID(ctx context.Context, id int64) (core.Pairing, error)
	SubscriptionsForContact(ctx context.Context, contactID string) ([]core.Subscription, error)
	// WatchPairings calls changed whenever the pairings may have changed (once when it
	// starts, then before a write of this process returns and on any other writer's change)
	// until ctx ends or it fails; the bridge caches its pairing lookups only meanwhile.
	WatchPairings(ctx context.Context, changed func()) error

	EnqueueBatch(ctx context.Context, rows []core.OutboxRow) ([]core.EnqueueResult, error)
	ClaimBatch(ctx context.Context, dir core.Direction, maxPairings, maxRows int, lease time.Duration, skip []int64) ([]core.OutboxRow, error)
	Settle(ctx context.Context, s []core.Settlement) error
	SetProgress(ctx context.Context, rowID int64, partsPosted int, firstTargetID string) error
	MarkDelivered(ctx context.Context, id int64, targetID string) error
	RescueExpired(ctx context.Context) (int, error)
	NextDue(ctx context.Context, dir core.Direction) (time.Time, bool, error)
	MessageByTarget(ctx context.Context, dir core.Direction, targetID string) (core.OutboxRow, error)

	DiscordCursor(ctx context.Context, pairingID int64) (string, error)
	AdvanceDiscordCursor(ctx context.Context, pairingID int64, messageID string) error
	ResoniteCursor(ctx context.Context, accountID string) (time.Time, error)
	AdvanceResoniteCursor(ctx context.Context, accountID string, t time.Time) error
}

// Resonite is what the bridge asks of the Resonite side; the Resonite adapter has it. Failed
// sends come back as core's delivery outcomes (core.Permanent, core.RetryAfter,
// core.Unavailable) or as plain errors, which are retried.
type Resonite interface {
	// UserID is the bridge account's user id.
	UserID() string
	// SendText sends text to a contact under the message id, and returns once the cloud
	// confirmed it; sending the same id again keeps one message.
	SendText(ctx context.Context, id, contactID, text string) error
	// MarkRead marks messages of a sender read.
	MarkRead(ctx context.Context, senderID string, ids []string) error
	// AcceptContact accepts a contact request.
	AcceptContact(ctx context.Context, contactID string) error
	// Messages returns, like the cloud, the newest max messages received at or after since,
	// newest first; max -1 means all of them.
	Messages(ctx context.Context, since time.Time, max int) ([]core.ContactMessage, error)
}

// Sessions tells which session a device is in, from the device's opaque SessionHint; the
// Resonite adapter keeps the sessions the hub reported.
type Sessions interface {
	Session(hint string) (core.Session, bool)
}

// Discord is what the bridge asks of the Discord side; the bot has it. Post returns the new
// message id. History returns up to limit messages after afterID, oldest first. Failures come
// back as core's delivery outcomes or plain errors, like Resonite's.
type Discord interface {
	Post(ctx context.Context, channelID string, p core.Post) (messageID string, err error)
	Reply(ctx context.Context, channelID, messageID, content string) error
	History(ctx context.Context, channelID, afterID string, limit int) ([]core.DiscordMessage, error)
}

// Options configures a Bridge. Store, Resonite and Discord are required.
type Options struct {
	Store    Store
	Resonite Resonite
	Discord  Discord
	// Sessions resolves the session of a contact's device; without it no session is shown.
	Sessions Sessions
	// Consent keeps contacts' consents (see consent.go). Without it contacts' command
	// messages are still never relayed, but nothing acts on them and AskConsent fails.
	Consent ConsentStore
	// Assets downloads voice messages for upload; without it they are posted as links.
	Assets Assets
	// Versions relays edits and deletions of Discord messages; without it they are ignored.
	Versions Versions
	Logger   *slog.Logger
	// Now is the clock of the presence model and the notification cooldown.
	Now func() time.Time
	// AutoAcceptContacts accepts incoming contact requests.
	AutoAcceptContacts bool

	PollInterval time.Duration // longest sleep of a worker; default 1 s
	// MaxAttempts is how many failed attempts (not rate limits or outages, which are
	// postponements) a message gets before it is given up and the sender told;
	// default 10, which with the store's backoff is about 17 minutes.
	MaxAttempts int
	Lease       time.Duration // claim lease; default 2 min
	Concurrency int           // batches in flight per direction (distinct pairings); default 8
	// BatchSize is the most rows of one pairing claimed and delivered together; default 50.
	BatchSize      int
	DrainTimeout   time.Duration // how long Stop waits for in-flight deliveries; default 10 s
	RescueInterval time.Duration // period of RescueExpired; default 30 s
	CatchUpRetry   time.Duration // first delay before a failed catch-up is retried; default 5 s
	// CatchUpPageSize is the number of Discord history and Resonite messages per request;
	// default and maximum 100, the cap of both APIs (a larger page would come back short and
	// look like the end of the history).
	CatchUpPageSize int
	// ResonitePoll is how often the Resonite mailbox is read even without a reconnect: it
	// catches what a live hub connection may have missed and keeps the catch-up cursor
	// recent; default 5 min (ReCon polls every 2 min).
	ResonitePoll  time.Duration
	MarkReadDelay time.Duration // batching window of MarkMessagesRead; default 1 s

	PresenceExpiry time.Duration // a device without update for this long is gone; default 10 min
	NotifyCooldown time.Duration // same contact, same channel; default 10 min

	// Community and CommunityDiscord enable the boards and the follows (see board.go); both
	// or neither.
	Community        CommunityStore
	CommunityDiscord CommunityDiscord
	BoardInterval    time.Duration // the least time between two writes of a board; default 15 s
	BoardClock       Clock         // the clock of the board's throttle; default the real one
	// BoardProbe, when set, is told false when the boards have news to look at and true once
	// the board loop looked at all of it (written, or waiting for the throttle). Tests wait on
	// it instead of sleeping. Called with a lock held: it must return at once.
	BoardProbe func(idle bool)
}

// maxPageSize is the most messages Discord's channel history and Resonite's message history
// return per request.
const maxPageSize = 100

func (o *Options) defaults() error {
	var missing []error
	if o.Store == nil {
		missing = append(missing, errors.New("Store"))
	}
	if o.Resonite == nil {
		missing = append(missing, errors.New("Resonite"))
	}
	if o.Discord == nil {
		missing = append(missing, errors.New("Discord"))
	}
	if len(missing) > 0 {
		return fmt.Errorf("bridge: options missing: %w", errors.Join(missing...))
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sessions == nil {
		o.Sessions = noSessions{}
	}
	setDur := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	setDur(&o.PollInterval, time.Second)
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	setDur(&o.Lease, 2*time.Minute)
	setDur(&o.DrainTimeout, 10*time.Second)
	setDur(&o.RescueInterval, 30*time.Second)
	setDur(&o.CatchUpRetry, 5*time.Second)
	setDur(&o.ResonitePoll, 5*time.Minute)
	setDur(&o.MarkReadDelay, time.Second)
	setDur(&o.PresenceExpiry, 10*time.Minute)
	setDur(&o.NotifyCooldown, 10*time.Minute)
	setDur(&o.BoardInterval, 15*time.Second)
	if o.BoardClock == nil {
		o.BoardClock = realClock{}
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 50
	}
	if o.CatchUpPageSize <= 0 || o.CatchUpPageSize > maxPageSize {
		o.CatchUpPageSize = maxPageSize
	}
	return nil
}

// Bridge relays messages and presence. Create it with New, feed it events through the Handle
// and On methods, start its workers with Start and stop them with Stop.
type Bridge struct {
	o   Options
	log *slog.Logger

	wake map[core.Direction]chan struct{}

	stats    statsCollector
	presence *presence
	fences   *fences
	catchUp  *catchUpState
	boards   *boards
	tasks    *taskQueue
	reads    *readBatcher
	ingest   *ingester
	pairings *pairingCache

	life sync.Mutex // guards the fields below
	// stopIntake ends claiming and the side goroutines; stopReads ends the read receipts once
	// the workers drained; done closes when every goroutine of Start has returned.
	stopIntake, stopReads context.CancelFunc
	started               bool
	done                  chan struct{}
}

// New checks the options and returns a Bridge; nothing runs until Start.
func New(o Options) (*Bridge, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	b := &Bridge{
		o:        o,
		log:      o.Logger,
		wake:     map[core.Direction]chan struct{}{core.ToResonite: make(chan struct{}, 1), core.ToDiscord: make(chan struct{}, 1)},
		fences:   newFences(),
		tasks:    newTaskQueue(),
		reads:    newReadBatcher(),
		ingest:   newIngester(),
		pairings: &pairingCache{},
		boards:   newBoards(o.BoardProbe),
	}
	b.catchUp = newCatchUpState(b.fences)
	b.presence = newPresence(o.Now, o.PresenceExpiry, o.NotifyCooldown)
	return b, nil
}

// signal wakes a direction's worker without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// noSessions resolves nothing.
type noSessions struct{}

func (noSessions) Session(string) (core.Session, bool) { return core.Session{}, false }

// errStarted is returned by a second Start.
var errStarted = errors.New("bridge: started already")

// Start launches the bridge's goroutines: one outbox worker per direction, the group commit of
// new rows, the watch of the pairings, catch-up, rescue of expired leases, the mailbox poll,
// side tasks and read receipts; it schedules a catch-up of both sides. They run until Stop,
// which the caller must call; ctx only carries values.
func (b *Bridge) Start(ctx context.Context) error {
	b.life.Lock()
	defer b.life.Unlock()
	if b.started {
		return errStarted
	}
	b.started = true
	b.done = make(chan struct{})

	b.catchUp.requestResonite()
	b.catchUp.requestAllDiscord()

	base := context.WithoutCancel(ctx)
	intake, stopIntake := context.WithCancel(base)
	// The read receipts of the deliveries drained at Stop are flushed after them, so the
	// batcher stops only once both workers have.
	reads, stopReads := context.WithCancel(base)
	b.stopIntake, b.stopReads = stopIntake, stopReads

	var workers, others sync.WaitGroup
	run := func(wg *sync.WaitGroup, ctx context.Context, f func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	run(&workers, intake, func(ctx context.Context) { b.runWorker(ctx, core.ToResonite) })
	run(&workers, intake, func(ctx context.Context) { b.runWorker(ctx, core.ToDiscord) })
	b.ingest.mu.Lock()
	b.ingest.running = true
	b.ingest.mu.Unlock()
	run(&others, intake, b.runIngest)
	run(&others, intake, b.runPairingWatch)
	run(&others, intake, b.runRescue)
	run(&others, intake, b.runCatchUp)
	run(&others, intake, b.runResonitePoll)
	run(&others, intake, b.runTasks)
	run(&others, reads, b.runReads)
	if b.communityOn() {
		run(&others, intake, b.runBoards)
	}
	go func() {
		workers.Wait()
		stopReads()
		others.Wait()
		close(b.done)
	}()
	return nil
}

// Stop stops claiming new work at once, stores the rows submitted so far, lets the deliveries
// in flight finish (for at most DrainTimeout, then cancels them), flushes read receipts and
// returns when every goroutine of Start has returned, or with ctx's error if ctx ends first. A
// Bridge that was never started stops at once.
func (b *Bridge) Stop(ctx context.Context) error {
	b.life.Lock()
	if !b.started {
		b.life.Unlock()
		return nil
	}
	b.stopIntake()
	done := b.done
	b.life.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bridge: stopping: %w", ctx.Err())
	}
}

// runResonitePoll asks for a Resonite catch-up every ResonitePoll.
func (b *Bridge) runResonitePoll(ctx context.Context) {
	t := time.NewTicker(b.o.ResonitePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.catchUp.pollResonite()
		}
	}
}

// runRescue returns expired leases to pending at start and periodically.
func (b *Bridge) runRescue(ctx context.Context) {
	t := time.NewTicker(b.o.RescueInterval)
	defer t.Stop()
	for {
		n, err := b.o.Store.RescueExpired(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			b.noteError("rescuing expired leases", err)
		case n > 0:
			b.log.Info("rescued expired deliveries", "count", n)
			signal(b.wake[core.ToResonite])
			signal(b.wake[core.ToDiscord])
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ContactPresence reports the dominant online status of a contact, the session it is in when
// that can be resolved, and whether anything is known about the contact.
func (b *Bridge) ContactPresence(userID string) (core.OnlineStatus, *core.Session, bool) {
	status, dev, known := b.presence.contactPresence(userID)
	if !status.Visible() {
		return status, nil, known
	}
	if s, ok := b.o.Sessions.Session(dev.SessionHint); ok {
		return status, &s, true
	}
	return status, nil, true
}
