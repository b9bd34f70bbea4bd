package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/store"
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

// TestPruneTakesVersionsOfPrunedMessages: the edit history of a Discord message goes with the
// message's row, and stays while the row does.
func TestPruneTakesVersionsOfPrunedMessages(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	p := mustPair(t, st, "c-versions")
	mustExec(t, st, `insert into discord_cursors (pairing_id, message_id) values ($1, '2000')`, p.ID)
	for _, m := range []struct {
		id  string
		age time.Duration
	}{{"1001", store.IDMapRetentionFactor*time.Hour + time.Minute}, {"1002", time.Minute}} {
		enqueue(t, st, core.OutboxRow{SourceID: core.RowSourceID(m.id, p.ID), PairingID: p.ID, Payload: []byte(`{}`)})
		edit := core.OutboxRow{Direction: core.ToResonite, SourceID: core.RowSourceID(m.id, p.ID) + ":edit", PairingID: p.ID, Payload: []byte(`{}`)}
		if ok, err := st.EnqueueVersion(ctx, m.id, time.Now(), edit); err != nil || !ok {
			t.Fatalf("EnqueueVersion(%s) = %v, %v", m.id, ok, err)
		}
		mustExec(t, st, `update relay_messages set state = 'delivered', updated_at = now() - $2::interval
			where source_id like $1 || ':%'`, m.id, m.age)
	}
	if _, err := st.Prune(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	rows, _ := st.Pool().Query(ctx, `select message_id from discord_versions order by message_id`)
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || !slices.Equal(left, []string{"1002"}) {
		t.Fatalf("versions left = %v, %v; want only 1002's (1001's row was pruned)", left, err)
	}
}
