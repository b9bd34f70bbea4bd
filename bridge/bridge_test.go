package bridge

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// at is the i-th second of an hour after the pairings were made.
func at(i int) time.Time { return pairingEpoch.Add(time.Hour + time.Duration(i)*time.Second) }

// snow is the Discord snowflake of a message sent at(i).
func snow(i int) string {
	return strconv.FormatUint(uint64(at(i).UnixMilli()-discordEpochMs)<<22|1, 10)
}

func dmsg(i int, channel, author, text string) DiscordMessage {
	return DiscordMessage{ID: snow(i), ChannelID: channel, GuildID: "G1", AuthorID: "D-" + author, AuthorName: author, Content: text, Timestamp: at(i)}
}

// rmsg is a text message of a contact sent at(i).
func rmsg(sender string, i int, text string) resonite.Message {
	return textFrom(sender, "MSG-"+sender+"-"+strconv.Itoa(i), text, at(i))
}

func received(m resonite.Message) resonite.Event { return resonite.MessageReceived{Message: m} }

// handle feeds hub events to the bridge and fails the test on an error.
func (h *harness) handle(evs ...resonite.Event) {
	h.t.Helper()
	for _, ev := range evs {
		if err := h.b.HandleResoniteEvent(h.t.Context(), ev); err != nil {
			h.t.Fatalf("HandleResoniteEvent(%T): %v", ev, err)
		}
	}
}

// discord feeds Discord messages to the bridge and fails the test on an error.
func (h *harness) discordIn(ms ...DiscordMessage) {
	h.t.Helper()
	for _, m := range ms {
		if err := h.b.HandleDiscordMessage(h.t.Context(), m); err != nil {
			h.t.Fatalf("HandleDiscordMessage(%s): %v", m.ID, err)
		}
	}
}

func (h *harness) row(dir Direction, sourceID string) Message {
	h.t.Helper()
	m, err := h.store.MessageBySource(context.Background(), dir, sourceID)
	if err != nil {
		h.t.Fatalf("row %s %s: %v", dir, sourceID, err)
	}
	return m
}

func (h *harness) waitRows(dir Direction, state State, n int) {
	h.t.Helper()
	eventually(h.t, strconv.Itoa(n)+" "+string(dir)+" rows "+string(state), func() bool { return h.rowsIn(dir, state) == n })
}

func contents(posts []postedMsg) []string {
	var out []string
	for _, p := range posts {
		out = append(out, p.Content)
	}
	return out
}

func sentContents(ms []resonite.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Content)
	}
	return out
}

func TestNewRequiresDependencies(t *testing.T) {
	t.Parallel()
	_, err := New(Options{})
	if err == nil {
		t.Fatal("New without dependencies: no error")
	}
	for _, name := range []string{"Store", "Resonite", "History", "Discord"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestRunTwiceIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	// The first Run holds the lock from its first line; wait until it does.
	eventually(t, "first Run started", func() bool { return len(h.res.allQueries()) > 0 })
	if err := h.b.Run(t.Context()); err == nil {
		t.Fatal("a second concurrent Run did not fail")
	}
}

// TestRunDrainsInFlightDeliveries: cancelling Run lets a delivery in flight finish (with a live
// context) and returns only after it, with its outcome stored and its read receipt sent.
func TestRunDrainsInFlightDeliveries(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.DrainTimeout = time.Minute; o.MarkReadDelay = time.Hour })
	entered := make(chan struct{})
	release := make(chan struct{})
	var cancelledInFlight atomic.Bool
	h.discord.postFn = func(ctx context.Context, _ string, _ Post, call int) error {
		if call == 1 {
			close(entered)
			<-release
			cancelledInFlight.Store(ctx.Err() != nil)
		}
		return nil
	}
	h.start()
	h.handle(received(rmsg("U-Alice", 1, "hello")))
	<-entered
	h.cancel()
	// Run must still be waiting for the post; give a wrong implementation time to return.
	select {
	case <-h.done:
		t.Fatal("Run returned while a delivery was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case <-h.done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after the delivery finished")
	}
	h.cancel = nil
	if cancelledInFlight.Load() {
		t.Error("the drained delivery's context was cancelled")
	}
	if got := h.row(ToDiscord, "MSG-U-Alice-1:1"); got.State != StateDelivered {
		t.Errorf("row state after drain = %s, want delivered", got.State)
	}
	if ids := h.res.readIDs(); len(ids) != 1 || ids[0] != "MSG-U-Alice-1" {
		t.Errorf("read receipts after drain = %v, want the drained message", ids)
	}
}

// TestRunDrainTimeoutCancelsAndKeepsTheRow: a delivery that outlives DrainTimeout is cancelled,
// its row goes back to pending without an attempt counted, and the next Run delivers it.
func TestRunDrainTimeoutCancelsAndKeepsTheRow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.DrainTimeout = 20 * time.Millisecond })
	entered := make(chan struct{})
	h.res.sendFn = func(ctx context.Context, _ resonite.Message, call int) error {
		if call == 1 {
			close(entered)
			<-ctx.Done() // hangs until the bridge gives up on it
			return ctx.Err()
		}
		return nil
	}
	h.start()
	h.discordIn(dmsg(1, "C-A", "Kim", "hello"))
	<-entered
	h.stop()
	row := h.row(ToResonite, snow(1))
	if row.State != StatePending || row.Attempts != 0 {
		t.Fatalf("interrupted row = %s with %d attempts, want pending with 0", row.State, row.Attempts)
	}
	h.start()
	h.waitRows(ToResonite, StateDelivered, 1)
	if n := len(h.res.sentTo("U-Alice")); n != 1 {
		t.Errorf("messages sent = %d, want 1", n)
	}
}

func TestConsumeEvents(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	events := make(chan resonite.Event, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.b.ConsumeEvents(t.Context(), events)
	}()
	events <- received(rmsg("U-Alice", 1, "via the channel"))
	events <- resonite.MessagesRead{} // nothing to do, nothing to fail
	close(events)
	<-done // returns when the hub closes its events
	h.waitRows(ToDiscord, StateDelivered, 1)

	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		h.b.ConsumeEvents(ctx, make(chan resonite.Event))
	}()
	cancel()
	<-stopped // and when its context ends
}

// TestRestartAfterCrash: rows a crashed process stored (pending) or had claimed (in flight, its
// lease run out) are delivered by the next start, each once, in order.
func TestRestartAfterCrash(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := t.Context()
	for i := 1; i <= 3; i++ {
		m := dmsg(i, "C-A", "Kim", "m"+strconv.Itoa(i))
		if _, _, err := h.store.Enqueue(ctx, Message{
			Direction: ToResonite, SourceID: m.ID, PairingID: 1, TargetID: ResoniteMessageID(m.ID),
			Payload: mustJSON(t, toResonitePayload{ChannelID: "C-A", MessageID: m.ID, Text: "Kim: " + m.Content}), CreatedAt: m.Timestamp,
		}); err != nil {
			t.Fatal(err)
		}
	}
	// The dead process had claimed the first row.
	if claimed, err := h.store.Claim(ctx, ToResonite, 1, time.Nanosecond); err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	h.start()
	h.waitRows(ToResonite, StateDelivered, 3)
	sent := h.res.sentTo("U-Alice")
	if got := sentContents(sent); !reflect.DeepEqual(got, []string{"Kim: m1", "Kim: m2", "Kim: m3"}) {
		t.Errorf("sent %q", got)
	}
	if sent[0].ID != ResoniteMessageID(snow(1)) {
		t.Errorf("the rescued row was sent as %s, not under its derived id", sent[0].ID)
	}
}
