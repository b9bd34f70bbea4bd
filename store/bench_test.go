package store_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

const benchPairings = 64

// benchPayload is about the size of a relayed chat line with its metadata.
var benchPayload = []byte(`{"channelId":"1311111111111111111","messageId":"1311111111111111112","text":"hello from Discord, how is everyone doing tonight?"}`)

// BenchmarkOutboxRoundTrip is one relayed message's life in the outbox:
// Enqueue, Claim, MarkDelivered. One row per pairing stays queued, so each
// Claim chooses among 64 pairing heads, as a busy bridge does.
func BenchmarkOutboxRoundTrip(b *testing.B) {
	ctx := ctxT(b)
	st := storetest.New(b)
	pairings := make([]int64, benchPairings)
	for i := range pairings {
		pairings[i] = mustPair(b, st, fmt.Sprint("bench-", i)).ID
	}
	seq := 0
	enqueue := func() {
		seq++
		_, _, err := st.Enqueue(ctx, core.OutboxRow{Direction: core.ToResonite, SourceID: strconv.Itoa(seq),
			PairingID: pairings[seq%benchPairings], TargetID: "MSG-" + strconv.Itoa(seq), Payload: benchPayload,
			SourceTime: time.Now()})
		if err != nil {
			b.Fatal(err)
		}
	}
	for range benchPairings {
		enqueue()
	}
	for b.Loop() {
		enqueue()
		msgs, err := st.Claim(ctx, core.ToResonite, 1, time.Minute)
		if err != nil || len(msgs) != 1 {
			b.Fatalf("Claim = %d rows, %v; want 1", len(msgs), err)
		}
		if err := st.MarkDelivered(ctx, msgs[0].ID, msgs[0].TargetID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInsertFloor is one single-row INSERT, in its own transaction,
// into a table shaped like relay_messages (same columns and indexes): the
// floor a durable outbox cannot beat, since every message must commit at
// least once.
func BenchmarkInsertFloor(b *testing.B) {
	ctx := ctxT(b)
	st := storetest.New(b)
	p := mustPair(b, st, "bench")
	mustExec(b, st, `create table floor_messages (like relay_messages including all)`)
	seq := 0
	for b.Loop() {
		seq++
		_, err := st.Pool().Exec(ctx, `insert into floor_messages (direction, source_id, pairing_id, target_id, payload, source_time)
			values ($1, $2, $3, $4, $5, $6)`,
			core.ToResonite, strconv.Itoa(seq), p.ID, "MSG-"+strconv.Itoa(seq), benchPayload, time.Now())
		if err != nil {
			b.Fatal(err)
		}
	}
}
