package store_test

import (
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/migrations"
	"github.com/resonite-bridge/resonite-bridge/store"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

// TestMigration002OnARunningDatabase applies 002 to a database at 001 that
// holds pairings and rows in every state, one of them in flight under the
// old one-row rule, and then works with batches on it.
func TestMigration002OnARunningDatabase(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	dsn := storetest.URL(t)
	pool := newPool(t, dsn)
	first, err := migrations.FS.ReadFile("001_initial.sql")
	if err != nil {
		t.Fatal(err)
	}
	if applied, err := store.Migrate(ctx, pool, fstest.MapFS{"001_initial.sql": {Data: first}}); err != nil || !slices.Equal(applied, []string{"001_initial"}) {
		t.Fatalf("migrating to 001 = %v, %v", applied, err)
	}
	_, err = pool.Exec(ctx, `
		insert into pairings (guild_id, channel_id, contact_id) values ('g', 'c1', 'U-1'), ('g', 'c2', 'U-2');
		insert into relay_messages (direction, source_id, pairing_id, source_time, state, lease_until)
		select 'to_resonite', s.src, p.id, s.t, s.state, case when s.state = 'in_flight' then now() + interval '1 hour' end
		from pairings p, (values
			('c1', 'a-out', timestamptz '2026-03-01 12:00:01', 'in_flight'),
			('c1', 'a-next', timestamptz '2026-03-01 12:00:02', 'pending'),
			('c2', 'b-done', timestamptz '2026-03-01 12:00:01', 'delivered'),
			('c2', 'b-failed', timestamptz '2026-03-01 12:00:02', 'failed'),
			('c2', 'b1', timestamptz '2026-03-01 12:00:03', 'pending'),
			('c2', 'b2', timestamptz '2026-03-01 12:00:04', 'pending')) s (channel, src, t, state)
		where p.channel_id = s.channel`)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, dsn+"&pool_max_conns=2", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if applied, err := st.Migrate(ctx); err != nil || !slices.Contains(applied, "002_batches") {
		t.Fatalf("Migrate to the newest = %v, %v; want 002_batches applied", applied, err)
	}
	var claimRows, oldIndex int
	if err := pool.QueryRow(ctx, `select (select count(*) from relay_claims),
		(select count(*) from pg_indexes where indexname = 'relay_messages_one_in_flight_idx')`).Scan(&claimRows, &oldIndex); err != nil {
		t.Fatal(err)
	}
	if claimRows != 4 || oldIndex != 0 {
		t.Fatalf("after 002: %d claim rows (want 2 pairings × 2 directions), old index present %d", claimRows, oldIndex)
	}
	// 007 names the pairing in every to_resonite source id.
	var c2 int64
	if err := pool.QueryRow(ctx, `select id from pairings where channel_id = 'c2'`).Scan(&c2); err != nil {
		t.Fatal(err)
	}
	b1, b2 := core.RowSourceID("b1", c2), core.RowSourceID("b2", c2)
	m, err := st.MessageBySource(ctx, core.ToResonite, b1)
	if err != nil || m.PartsPosted != 0 || m.FirstTargetID != "" || m.CoalescedInto != 0 {
		t.Fatalf("a row from before 002 = %+v, %v; want no progress", m, err)
	}
	// c1's row in flight from before still holds c1; c2 gives a batch.
	msgs, err := st.ClaimBatch(ctx, core.ToResonite, 10, 10, time.Minute, nil)
	if err != nil || len(msgs) != 2 || msgs[0].SourceID != b1 || msgs[1].SourceID != b2 {
		t.Fatalf("ClaimBatch after 002 = %+v, %v; want c2's b1, b2", msgs, err)
	}
	if n, err := st.RescueAllInFlight(ctx, nil); err != nil || n != 3 {
		t.Fatalf("RescueAllInFlight = %d, %v; want 3", n, err)
	}
	msgs, err = st.ClaimBatch(ctx, core.ToResonite, 10, 10, time.Minute, nil)
	if err != nil || len(msgs) != 4 {
		t.Fatalf("ClaimBatch after the rescue = %+v, %v; want both pairings' rows", msgs, err)
	}
	// A pairing made after 002 gets its claim rows with it, and they go with it.
	p := mustPair(t, st, "c3")
	if err := pool.QueryRow(ctx, `select count(*) from relay_claims where pairing_id = $1`, p.ID).Scan(&claimRows); err != nil || claimRows != 2 {
		t.Fatalf("new pairing has %d claim rows (%v), want 2", claimRows, err)
	}
	if _, err := st.DeletePairings(ctx, "c3", ""); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `select count(*) from relay_claims where pairing_id = $1`, p.ID).Scan(&claimRows); err != nil || claimRows != 0 {
		t.Fatalf("deleted pairing keeps %d claim rows (%v)", claimRows, err)
	}
}
