package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/resonite-bridge/resonite-bridge/bot/discordtest"
	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/resonite"
	"github.com/resonite-bridge/resonite-bridge/store"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

// Benchmarks of the whole durable path (gateway or hub event → PostgreSQL → the other side),
// run with: go test -run '^$' -bench . -benchmem ./cmd/resonite-bridge/
// They report msgs/s and the p50/p99 latency from the event to its delivery; the fakes answer
// at once and inject no rate limits.

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func reportLatency(b *testing.B, elapsed time.Duration, lat []time.Duration) {
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
}

// benchE2E starts a quiet daemon (info logs) with pairings Alice and Bob.
func benchE2E(b *testing.B, tune func(*partOptions)) *e2e {
	e := newE2E(b)
	e.env = append(e.env, "LOG_LEVEL=warn")
	e.tune = func(o *partOptions) { e2eTune(o); tune(o) }
	e.start()
	e.link(e2eChannel, "Alice")
	e.link(e2eChannel2, "Bob")
	return e
}

// BenchmarkRelayDiscordToResonite: "burst" sends b.N messages at once over two pairings
// (throughput; the latency includes queueing), "paced" sends the next message when the previous
// one arrived (latency of one message on an idle bridge).
func BenchmarkRelayDiscordToResonite(b *testing.B) {
	b.Run("burst", benchToResoniteBurst)
	b.Run("paced", benchToResonitePaced)
}

func benchToResonitePaced(b *testing.B) {
	e := benchE2E(b, func(*partOptions) {})
	var lat []time.Duration
	b.ResetTimer()
	start := time.Now()
	ctx := context.Background()
	sent := make([]time.Time, b.N)
	for i := 0; i < b.N; i++ {
		sent[i] = time.Now()
		e.say(e2eChannel, fmt.Sprintf("paced %d", i))
		if _, err := e.rf.WaitHubCalls(ctx, "SendMessage", i+1); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	e.waitUntilWithin("every paced message stored", time.Minute, func() bool { return len(e.sentTo("U-Alice")) == b.N })
	for i, m := range e.sentTo("U-Alice") {
		lat = append(lat, m.LastUpdateTime.Sub(sent[i])) // the fake stamps the time it stored it
	}
	reportLatency(b, elapsed, lat)
}

func benchToResoniteBurst(b *testing.B) {
	e := benchE2E(b, func(*partOptions) {})
	sent := map[string]time.Time{}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		text := fmt.Sprintf("bench %d", i)
		ch := e2eChannel
		if i%2 == 1 {
			ch = e2eChannel2
		}
		sent["Dana: "+text] = time.Now()
		e.say(ch, text)
	}
	delivered := func() []resonite.Message { return append(e.sentTo("U-Alice"), e.sentTo("U-Bob")...) }
	e.waitUntilWithin("every message in Resonite", 10*time.Minute, func() bool { return len(delivered()) >= b.N })
	elapsed := time.Since(start)
	b.StopTimer()
	var lat []time.Duration
	for _, m := range delivered() {
		if t0, ok := sent[m.Content]; ok {
			lat = append(lat, m.LastUpdateTime.Sub(t0)) // the fake stamps the time it stored the message
		}
	}
	reportLatency(b, elapsed, lat)
}

func benchToDiscord(b *testing.B, rate float64) {
	e := benchE2E(b, func(o *partOptions) { o.Bot.RequestRate = rate })
	sent := map[string]time.Time{}
	b.ResetTimer()
	start := time.Now()
	base := time.Now()
	for i := 0; i < b.N; i++ {
		text := fmt.Sprintf("B%07d", i)
		from := "U-Alice"
		if i%2 == 1 {
			from = "U-Bob"
		}
		sent[text] = time.Now()
		e.resoniteSays(from, fmt.Sprintf("MSG-bench-%07d", i), text, base.Add(time.Duration(i)*time.Microsecond))
	}
	posts := func() []string {
		return append(postedLines(e.webhookPosts(e2eChannel)), postedLines(e.webhookPosts(e2eChannel2))...)
	}
	e.waitUntilWithin("every message in Discord", 10*time.Minute, func() bool { return len(posts()) >= b.N })
	elapsed := time.Since(start)
	b.StopTimer()
	var lat []time.Duration
	for _, ch := range []string{e2eChannel, e2eChannel2} {
		for _, m := range e.webhookPosts(ch) {
			for _, line := range strings.Split(m.Content, "\n") {
				if t0, ok := sent[line]; ok {
					lat = append(lat, m.Timestamp.Sub(t0)) // the fake stamps the time it stored the post
				}
			}
		}
	}
	reportLatency(b, elapsed, lat)
}

// BenchmarkRelayResoniteToDiscord runs bursts with the bot's own global limit (45 requests/s,
// below Discord's 50) and with it lifted, which shows what the pipeline itself can do, and a
// paced run for the latency of one message.
func BenchmarkRelayResoniteToDiscord(b *testing.B) {
	b.Run("burst-limit=45rps", func(b *testing.B) { benchToDiscord(b, 0) })
	b.Run("burst-unlimited", func(b *testing.B) { benchToDiscord(b, 1e6) })
	b.Run("paced", func(b *testing.B) {
		e := benchE2E(b, func(*partOptions) {})
		isPost := func(c discordtest.Call) bool {
			return c.Method == "POST" && strings.Contains(c.Path, "/webhooks/") && c.Status == 200
		}
		before := len(e.dc.WaitCalls(b, 0, isPost))
		sent := make([]time.Time, b.N)
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			sent[i] = time.Now()
			e.resoniteSays("U-Alice", fmt.Sprintf("MSG-paced-%07d", i), fmt.Sprintf("P%07d", i), sent[i])
			e.dc.WaitCalls(b, before+i+1, isPost) // woken by the fake, no polling
		}
		elapsed := time.Since(start)
		b.StopTimer()
		var lat []time.Duration
		for i, m := range e.webhookPosts(e2eChannel) {
			lat = append(lat, m.Timestamp.Sub(sent[i]))
		}
		reportLatency(b, elapsed, lat)
	})
}

// BenchmarkInsertFloor is one single-row INSERT per transaction, the most a durable outbox can
// do per message; it runs in the same invocation as the relay benchmarks for comparison.
func BenchmarkInsertFloor(b *testing.B) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, storetest.URL(b))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `create table floor (id bigint generated always as identity primary key,
		source_id text not null unique, payload bytea, created_at timestamptz not null default now())`); err != nil {
		b.Fatal(err)
	}
	payload := []byte(`{"channelId":"110000000000000002","messageId":"1","text":"Dana: hello"}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := conn.Exec(ctx, `insert into floor (source_id, payload) values ($1, $2)`, strconv.Itoa(i), payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIdleMemory1000Pairings starts the daemon as its own process with 1,000 pairings,
// lets it catch up and settle, and reports its resident memory (VmRSS). One start per run:
// use -benchtime=1x.
func BenchmarkIdleMemory1000Pairings(b *testing.B) {
	for _, n := range []int{0, 1000} {
		b.Run(fmt.Sprintf("pairings=%d", n), func(b *testing.B) {
			e := newE2E(b)
			e.env = append(e.env, "LOG_LEVEL=warn")
			st, err := store.Open(context.Background(), e.dbURL, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := st.Migrate(context.Background()); err != nil {
				b.Fatal(err)
			}
			for i := 0; i < n; i++ {
				ch := strconv.Itoa(120000000000000000 + i)
				e.dc.AddChannel(e2eGuild, ch, "c"+strconv.Itoa(i))
				if _, err := st.CreatePairing(context.Background(), core.Pairing{GuildID: e2eGuild, ChannelID: ch,
					ContactID: "U-Alice", ContactUsername: "Alice"}); err != nil {
					b.Fatal(err)
				}
			}
			st.Close()
			p := e.startProcess()
			// Catch-up reads every channel's history and the Resonite mailbox once at start;
			// wait until the fakes saw both, then measure (no settling sleep: this measures).
			e.waitUntilWithin("the start-up catch-up", 5*time.Minute, func() bool {
				return len(e.dc.CallsTo("GET", "/messages")) >= n &&
					len(e.rf.CallsTo("GET", "/users/"+e2eBridgeID+"/messages")) >= 1
			})
			rss := vmRSS(b, p.cmd.Process.Pid)
			b.ReportMetric(float64(rss)/1024, "rss-MiB")
			p.kill()
		})
	}
}

func vmRSS(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
