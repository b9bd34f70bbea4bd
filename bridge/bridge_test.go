package bridge

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(storetest.M(m))
}

// at is the i-th second of an hour after the pairings were made.
func at(i int) time.Time { return pairingEpoch.Add(time.Hour + time.Duration(i)*time.Second) }

// snow is the Discord snowflake of a message sent at(i).
func snow(i int) string {
	return strconv.FormatUint(uint64(at(i).UnixMilli()-discordEpochMs)<<22|1, 10)
}

func dmsg(i int, channel, author, text string) core.DiscordMessage {
	return core.DiscordMessage{ID: snow(i), ChannelID: channel, GuildID: "G1", AuthorID: "D-" + author, AuthorName: author, Content: text, Timestamp: at(i)}
}

// rmsg is a text message of a contact sent at(i).
func rmsg(sender string, i int, text string) core.ContactMessage {
	return textFrom(sender, "MSG-"+sender+"-"+strconv.Itoa(i), text, at(i))
}

// stored waits until the bridge has stored (or failed to store) what it was handed: the
// handlers do not wait for the commit.
func (h *harness) stored() {
	h.t.Helper()
	if err := h.b.flush(h.ctx); err != nil {
		h.t.Fatalf("waiting for the handed messages to be stored: %v", err)
	}
}

// received feeds messages the hub pushed to the bridge, waits until they are stored and fails
// the test on an error.
func (h *harness) received(ms ...core.ContactMessage) {
	h.t.Helper()
	for _, m := range ms {
		if err := h.b.HandleContactMessage(h.t.Context(), m); err != nil {
			h.t.Fatalf("HandleContactMessage(%s): %v", m.ID, err)
		}
	}
	h.stored()
}

// discordIn feeds Discord messages to the bridge, waits until they are stored and fails the
// test on an error.
func (h *harness) discordIn(ms ...core.DiscordMessage) {
	h.t.Helper()
	for _, m := range ms {
		if err := h.b.HandleDiscordMessage(h.t.Context(), m); err != nil {
			h.t.Fatalf("HandleDiscordMessage(%s): %v", m.ID, err)
		}
	}
	h.stored()
}

func contents(posts []postedMsg) []string {
	var out []string
	for _, p := range posts {
		out = append(out, p.Content)
	}
	return out
}

// lines is what the posts show, one line each: rows of one pairing that wait together go out
// as one post, so order is checked on lines.
func lines(posts []postedMsg) []string {
	var out []string
	for _, p := range posts {
		out = append(out, strings.Split(p.Content, "\n")...)
	}
	return out
}

func sentContents(ms []sentText) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Text)
	}
	return out
}

func mustEncodeToResonite(t *testing.T, p core.ToResonitePayload) []byte {
	t.Helper()
	b, err := core.EncodeToResonite(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustEncodeToDiscord(t *testing.T, m core.ContactMessage) []byte {
	t.Helper()
	b, err := core.EncodeToDiscord(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewRequiresDependencies(t *testing.T) {
	t.Parallel()
	_, err := New(Options{})
	if err == nil {
		t.Fatal("New without dependencies: no error")
	}
	for _, name := range []string{"Store", "Resonite", "Discord"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestStartTwiceIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	// Stopping a bridge that never started returns at once.
	if err := h.b.Stop(t.Context()); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
	h.start()
	if err := h.b.Start(t.Context()); err == nil {
		t.Fatal("a second Start did not fail")
	}
}

// TestStopDrainsInFlightDeliveries: Stop lets a delivery in flight finish (with a live
// context) and returns only after it, with its outcome stored and its read receipt sent.
func TestStopDrainsInFlightDeliveries(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.DrainTimeout = time.Hour; o.MarkReadDelay = time.Hour })
	entered := make(chan struct{})
	release := make(chan struct{})
	var cancelledInFlight, returned atomic.Bool
	h.discord.postFn = func(ctx context.Context, _ string, _ core.Post, call int) error {
		if call == 1 {
			close(entered)
			<-release
			cancelledInFlight.Store(ctx.Err() != nil)
			returned.Store(true)
		}
		return nil
	}
	h.start()
	h.received(rmsg("U-Alice", 1, "hello"))
	<-entered
	// Stop must wait for the post: with a context that is already done it can only give up.
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	if err := h.b.Stop(gone); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop returned %v while a delivery was in flight, want it to wait (context.Canceled)", err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- h.b.Stop(h.ctx) }()
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	h.started = false
	if !returned.Load() {
		t.Error("Stop returned before the delivery in flight did")
	}
	if cancelledInFlight.Load() {
		t.Error("the drained delivery's context was cancelled")
	}
	if got := h.row(core.ToDiscord, "MSG-U-Alice-1:1"); got.State != core.StateDelivered {
		t.Errorf("row state after drain = %s, want delivered", got.State)
	}
	if ids := h.res.readIDs(); len(ids) != 1 || ids[0] != "MSG-U-Alice-1" {
		t.Errorf("read receipts after drain = %v, want the drained message", ids)
	}
}

// TestStopDrainTimeoutCancelsAndKeepsTheRow: a delivery that outlives DrainTimeout is
// cancelled, its row goes back to pending without an attempt counted, and the next start
// delivers it.
func TestStopDrainTimeoutCancelsAndKeepsTheRow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.DrainTimeout = 20 * time.Millisecond })
	entered := make(chan struct{})
	h.res.sendFn = func(ctx context.Context, _ sentText, call int) error {
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
	row := h.row(core.ToResonite, snow(1))
	if row.State != core.StatePending || row.Attempts != 0 {
		t.Fatalf("interrupted row = %s with %d attempts, want pending with 0", row.State, row.Attempts)
	}
	h.restart()
	h.waitRows(core.ToResonite, core.StateDelivered, 1)
	if n := len(h.res.sentTo("U-Alice")); n != 1 {
		t.Errorf("messages sent = %d, want 1", n)
	}
}

// TestRestartAfterCrash: rows a crashed process stored (pending) or had claimed (in flight, its
// lease run out) are delivered by the next start, each once, in order.
func TestRestartAfterCrash(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := t.Context()
	for i := 1; i <= 3; i++ {
		m := dmsg(i, "C-A", "Kim", "m"+strconv.Itoa(i))
		h.enqueue(core.OutboxRow{
			Direction: core.ToResonite, SourceID: m.ID, PairingID: 1, TargetID: ResoniteMessageID(m.ID),
			Payload:    mustEncodeToResonite(t, core.ToResonitePayload{ChannelID: "C-A", MessageID: m.ID, Text: "Kim: " + m.Content}),
			SourceTime: m.Timestamp,
		})
	}
	// The dead process had claimed the first row.
	if claimed, err := h.store.pg.Claim(ctx, core.ToResonite, 1, time.Microsecond); err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	h.start()
	h.waitRows(core.ToResonite, core.StateDelivered, 3)
	sent := h.res.sentTo("U-Alice")
	if got := sentContents(sent); !reflect.DeepEqual(got, []string{"Kim: m1", "Kim: m2", "Kim: m3"}) {
		t.Errorf("sent %q", got)
	}
	if sent[0].ID != ResoniteMessageID(snow(1)) {
		t.Errorf("the rescued row was sent as %s, not under its derived id", sent[0].ID)
	}
}
