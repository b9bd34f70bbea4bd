package bridge

import (
	"fmt"
	"testing"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// TestIngestGroupsAndStopStores: messages handed while a commit is under way are stored
// together in the next one, in order, and Stop stores what is still queued before it returns.
func TestIngestGroupsAndStopStores(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	first := make(chan struct{})
	release := make(chan struct{})
	batches := 0
	h.store.setEnqueueFn(func(m core.OutboxRow) error {
		if m.SourceID == core.RowSourceID(snow(1), 1) {
			close(first)
			<-release // the first commit is slow
		}
		return nil
	})
	h.store.onEnqueueBatch = func([]core.OutboxRow) { batches++ }
	h.start()
	const n = 20
	if err := h.b.HandleDiscordMessage(t.Context(), dmsg(1, "C-A", "Kim", "m1")); err != nil {
		t.Fatal(err)
	}
	<-first
	for i := 2; i <= n; i++ {
		if err := h.b.HandleDiscordMessage(t.Context(), dmsg(i, "C-A", "Kim", fmt.Sprintf("m%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	stopped := make(chan struct{})
	go func() {
		h.stop()
		close(stopped)
	}()
	close(release)
	<-stopped
	if got := h.rowCount(core.ToResonite); got != n {
		t.Fatalf("%d rows stored after Stop, want %d", got, n)
	}
	if batches != 2 {
		t.Errorf("%d transactions for %d messages, want 2: the first, then the %d queued behind it", batches, n, n-1)
	}
	var ids []int64
	for i := 1; i <= n; i++ {
		ids = append(ids, h.row(core.ToResonite, snow(i)).ID)
	}
	for i := 1; i < n; i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("row ids %v are not in the order the messages were handed", ids)
		}
	}
}

// TestEditRightAfterItsMessage: an edit handed while its message still waits to be stored is
// not lost for want of an original; it is stored after it.
func TestEditRightAfterItsMessage(t *testing.T) {
	t.Parallel()
	first := make(chan struct{})
	release := make(chan struct{})
	h := newHarness(t, nil)
	h.opts.Versions = h.pg // the store is made with the harness
	h.b = h.newBridge()
	h.store.setEnqueueFn(func(m core.OutboxRow) error {
		if m.SourceID == core.RowSourceID(snow(1), 1) {
			close(first)
			<-release // the message's commit is slow
		}
		return nil
	})
	h.start()
	if err := h.b.HandleDiscordMessage(t.Context(), dmsg(1, "C-A", "Kim", "see you at 8")); err != nil {
		t.Fatal(err)
	}
	<-first
	edit := dmsg(1, "C-A", "Kim", "see you at 9")
	edit.EditedAt = at(3)
	handled := make(chan error, 1)
	go func() { handled <- h.b.HandleDiscordEdit(t.Context(), edit) }()
	close(release)
	if err := <-handled; err != nil {
		t.Fatal(err)
	}
	h.stop()
	if got := h.rowCount(core.ToResonite); got != 2 {
		t.Fatalf("%d rows stored, want 2: the message and its edit", got)
	}
}
