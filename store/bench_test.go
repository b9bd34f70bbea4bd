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

// BenchmarkOutboxBatchRoundTrip is the batched life of messages in the outbox:
// a chunk of rows over 10 pairings is enqueued (EnqueueBatch, or Enqueue one
// by one for comparison), then ClaimBatch and Settle run until the chunk is
// delivered. One op is one message, so ns/op, B/op and allocs/op compare
// with BenchmarkInsertFloor (one single-row insert commit) directly.
func BenchmarkOutboxBatchRoundTrip(b *testing.B) {
	for _, bc := range []struct {
		enqueue        string
		chunk, maxRows int
	}{
		{"EnqueueBatch", 100, 10},
		{"EnqueueBatch", 1000, 100},
		{"Enqueue", 1000, 100},
	} {
		b.Run(fmt.Sprintf("%s/chunk=%d/maxRows=%d", bc.enqueue, bc.chunk, bc.maxRows), func(b *testing.B) {
			ctx := ctxT(b)
			st := storetest.New(b)
			const pairings = 10
			ps := make([]int64, pairings)
			for i := range ps {
				ps[i] = mustPair(b, st, fmt.Sprint("bench-", i)).ID
			}
			seq := 0
			rows := make([]core.OutboxRow, 0, bc.chunk)
			var settle []core.Settlement
			b.ResetTimer()
			for done := 0; done < b.N; {
				n := min(bc.chunk, b.N-done)
				rows = rows[:0]
				for range n {
					seq++
					rows = append(rows, core.OutboxRow{Direction: core.ToResonite, SourceID: strconv.Itoa(seq),
						PairingID: ps[seq%pairings], TargetID: "MSG-" + strconv.Itoa(seq), Payload: benchPayload,
						SourceTime: time.Now()})
				}
				if bc.enqueue == "EnqueueBatch" {
					if _, err := st.EnqueueBatch(ctx, rows); err != nil {
						b.Fatal(err)
					}
				} else {
					for _, r := range rows {
						if _, _, err := st.Enqueue(ctx, r); err != nil {
							b.Fatal(err)
						}
					}
				}
				for left := n; left > 0; {
					msgs, err := st.ClaimBatch(ctx, core.ToResonite, pairings, bc.maxRows, time.Minute, nil)
					if err != nil || len(msgs) == 0 {
						b.Fatalf("ClaimBatch = %d rows, %v; %d to go", len(msgs), err, left)
					}
					settle = settle[:0]
					for _, m := range msgs {
						settle = append(settle, core.Settlement{RowID: m.ID, Kind: core.Delivered, TargetID: m.TargetID})
					}
					if err := st.Settle(ctx, settle); err != nil {
						b.Fatal(err)
					}
					left -= len(msgs)
				}
				done += n
			}
		})
	}
}

// BenchmarkClaimManyPairings is a quiet bridge with many pairings: one message at a time is
// enqueued, claimed and settled, and the worker asks NextDue when it would sleep. It reports
// what ClaimBatch and NextDue take per message; both should not grow with the pairings that
// have nothing queued.
func BenchmarkClaimManyPairings(b *testing.B) {
	for _, pairings := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("pairings=%d", pairings), func(b *testing.B) {
			ctx := ctxT(b)
			st := storetest.New(b)
			ps := mustPairs(b, st, "bench-", pairings)
			mustExec(b, st, "analyze")
			var claiming, nextDue time.Duration
			seq := 0
			for b.Loop() {
				seq++
				if _, _, err := st.Enqueue(ctx, core.OutboxRow{Direction: core.ToResonite, SourceID: strconv.Itoa(seq),
					PairingID: ps[seq%pairings], TargetID: "MSG-" + strconv.Itoa(seq), Payload: benchPayload,
					SourceTime: time.Now()}); err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				msgs, err := st.ClaimBatch(ctx, core.ToResonite, 8, 50, time.Minute, nil)
				if err != nil || len(msgs) != 1 {
					b.Fatalf("ClaimBatch = %d rows, %v; want 1", len(msgs), err)
				}
				claiming += time.Since(t0)
				if err := st.Settle(ctx, []core.Settlement{{RowID: msgs[0].ID, Kind: core.Delivered, TargetID: msgs[0].TargetID}}); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if _, _, err := st.NextDue(ctx, core.ToResonite); err != nil {
					b.Fatal(err)
				}
				nextDue += time.Since(t1)
			}
			b.ReportMetric(float64(claiming.Microseconds())/float64(seq), "claim-µs")
			b.ReportMetric(float64(nextDue.Microseconds())/float64(seq), "nextdue-µs")
		})
	}
}
