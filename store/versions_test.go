package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

func TestEnqueueVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	p, err := st.CreatePairing(ctx, core.Pairing{GuildID: "G", ChannelID: "C", ContactID: "U-A"})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	row := func(src string, at time.Time) core.OutboxRow {
		return core.OutboxRow{Direction: core.ToResonite, SourceID: src, PairingID: p.ID, Payload: []byte(`{}`), SourceTime: at}
	}
	for _, step := range []struct {
		name   string
		edited time.Time // zero: a deletion
		src    string
		want   bool
	}{
		{"first edit", t0.Add(time.Minute), "m:e1", true},
		{"the same edit again", t0.Add(time.Minute), "m:e1", false},
		{"an older edit read late", t0.Add(30 * time.Second), "m:e0", false},
		{"a newer edit", t0.Add(2 * time.Minute), "m:e2", true},
		{"the deletion", time.Time{}, "m:del", true},
		{"the deletion again", time.Time{}, "m:del", false},
		{"an edit after the deletion", t0.Add(3 * time.Minute), "m:e3", false},
	} {
		got, err := st.EnqueueVersion(ctx, "m", step.edited, row(step.src, t0.Add(time.Hour)))
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got != step.want {
			t.Errorf("%s: stored %v, want %v", step.name, got, step.want)
		}
	}
	for _, src := range []string{"m:e1", "m:e2", "m:del"} {
		if _, err := st.MessageBySource(ctx, core.ToResonite, src); err != nil {
			t.Errorf("row %s: %v", src, err)
		}
	}
	for _, src := range []string{"m:e0", "m:e3"} {
		if _, err := st.MessageBySource(ctx, core.ToResonite, src); err == nil {
			t.Errorf("row %s stored, want none", src)
		}
	}
}
