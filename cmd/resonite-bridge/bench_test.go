package main

import (
	"context"
	"encoding/json"
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

// ---- Load benchmarks over ten pairings ----
//
// Run with -benchtime=1x: each run sends a fixed load (b.N is not used), through the daemon as
// cmd wires it with the bridge's production defaults (no e2eTune: the workers wake on signals,
// their 1 s poll is only a safety net). Latencies come from the fakes' own stamps: a Discord
// message's Timestamp (set when the fake stores it, before MESSAGE_CREATE goes out) or the time
// taken just before PushMessage, to the Timestamp of the webhook post that carries the line or
// the LastUpdateTime the Resonite fake sets when it stores a SendMessage. Waits are on the fakes'
// change signals (waitUntilWithin), loads are paced by a time.Ticker.
//
//	go test -run '^$' -bench 'Throughput|WebhookLimit|Latency|GlobalLimit' -benchmem -benchtime=1x -count=3 ./cmd/resonite-bridge/

const loadPairings = 10

// loadWorld is a daemon with loadPairings pairings, channel i with contact i.
type loadWorld struct {
	*e2e
	b        *testing.B
	channels []string
	contacts []string // Resonite user ids
	daemon   *e2eProc // when the daemon runs as a process of its own
}

func newLoadWorld(b *testing.B, pairings int, tune func(*partOptions)) *loadWorld {
	return newLoadWorldWith(b, pairings, tune, false)
}

// newLoadWorldWith is newLoadWorld with the daemon, when asProcess, started from its binary as a
// process of its own (built without the race detector, production hooks only: tune is not
// applied), so that its CPU time can be told from the fakes'.
func newLoadWorldWith(b *testing.B, pairings int, tune func(*partOptions), asProcess bool) *loadWorld {
	e := newE2E(b)
	e.env = append(e.env, "LOG_LEVEL=warn")
	e.tune = func(o *partOptions) {
		o.Bot.OpenTimeout = 5 * time.Second
		if tune != nil {
			tune(o)
		}
	}
	w := &loadWorld{e2e: e, b: b}
	for i := range pairings {
		ch := fmt.Sprintf("1200000000000000%02d", i)
		id, name := fmt.Sprintf("U-Pal%02d", i), fmt.Sprintf("Pal%02d", i)
		e.dc.AddChannel(e2eGuild, ch, "pal-"+strconv.Itoa(i))
		e.rf.AddUser(resonite.User{ID: id, Username: name}, "")
		e.rf.AddContact(e2eBridgeID, resonite.Contact{ID: id, ContactUsername: name, ContactStatus: resonite.ContactAccepted, IsAccepted: true})
		e.rf.AddContact(id, resonite.Contact{ID: e2eBridgeID, ContactUsername: "BridgeBot", ContactStatus: resonite.ContactAccepted, IsAccepted: true})
		w.channels, w.contacts = append(w.channels, ch), append(w.contacts, id)
	}
	if asProcess {
		w.daemon = e.startProcess()
		e.dc.WaitCommands(b, e2eGuild)
	} else {
		e.start()
	}
	for i, ch := range w.channels {
		e.link(ch, fmt.Sprintf("Pal%02d", i))
	}
	// Warm up: one message each way per pairing, so that every webhook exists and is cached.
	tally := w.newPostTally()
	for i := range w.channels {
		e.say(w.channels[i], "warm-up")
		e.resoniteSays(w.contacts[i], fmt.Sprintf("MSG-warm-%02d", i), "warm-up", time.Now())
	}
	e.waitUntilWithin("the warm-up messages", time.Minute, func() bool {
		return w.sentToAll() >= pairings && tally.update().lines >= pairings
	})
	return w
}

// sentToAll counts what the bridge account sent to the world's contacts (stored by the fake).
func (w *loadWorld) sentToAll() int {
	n := 0
	for _, c := range w.contacts {
		n += len(w.sentTo(c))
	}
	return n
}

// sentAllOf returns a wait condition that holds once the bridge account sent every contact of
// sent (a load's messages by contact) at least that many messages besides the warm-up. It reads
// one contact's messages per check, the first not yet complete, so that checking after every
// change of the fakes does not copy every contact's messages each time (which would take the
// CPU the daemon is measured on).
func (w *loadWorld) sentAllOf(sent map[string][]sentLine) func() bool {
	var todo []string
	for c := range sent {
		todo = append(todo, c)
	}
	return func() bool {
		for len(todo) > 0 && len(w.sentTo(todo[0])) >= len(sent[todo[0]])+1 {
			todo = todo[1:]
		}
		return len(todo) == 0
	}
}

// postTally follows the webhook executions the Discord fake answered, from its call record
// (cheap to read on every change, unlike the channels' histories).
type postTally struct {
	dc                    *discordtest.Server
	next                  int
	posts, lines, limited int
}

// newPostTally counts from now on.
func (w *loadWorld) newPostTally() *postTally {
	return &postTally{dc: w.dc, next: len(w.dc.Calls())}
}

func (t *postTally) update() *postTally {
	calls := t.dc.Calls()
	for _, c := range calls[t.next:] {
		if c.Method != "POST" || !strings.Contains(c.Path, "/webhooks/") || strings.Contains(c.Path, "/webhooks/"+t.dc.AppID+"/") {
			continue
		}
		switch c.Status {
		case 200:
			var body struct {
				Content string `json:"content"`
			}
			_ = json.Unmarshal(c.Body, &body)
			t.posts++
			t.lines += strings.Count(body.Content, "\n") + 1
		case 429:
			t.limited++
		}
	}
	t.next = len(calls)
	return t
}

// sentLine is one message of a load: its text and when it entered the fake.
type sentLine struct {
	text string
	at   time.Time
}

// loadResult is what arrived of a load, checked for order and completeness.
type loadResult struct {
	lat  []time.Duration
	last time.Time // the latest delivery stamp
}

// discordArrivals reads, per channel, the webhook lines that carry sent's texts, checks they are
// each there once in order, and returns every line's latency (post stamp − sent stamp).
func (w *loadWorld) discordArrivals(sent map[string][]sentLine) loadResult {
	var r loadResult
	for ch, want := range sent {
		at := map[string]time.Time{}
		for _, s := range want {
			at[s.text] = s.at
		}
		var got []string
		for _, p := range w.webhookPosts(ch) {
			for _, line := range strings.Split(p.Content, "\n") {
				t0, ok := at[line]
				if !ok {
					continue
				}
				got = append(got, line)
				r.lat = append(r.lat, p.Timestamp.Sub(t0))
				if p.Timestamp.After(r.last) {
					r.last = p.Timestamp
				}
			}
		}
		w.checkOrder(ch, want, got)
	}
	return r
}

// resoniteArrivals is discordArrivals for the messages sent to contacts.
func (w *loadWorld) resoniteArrivals(sent map[string][]sentLine) loadResult {
	var r loadResult
	for contact, want := range sent {
		at := map[string]time.Time{}
		for _, s := range want {
			at[s.text] = s.at
		}
		var got []string
		for _, m := range w.sentTo(contact) {
			text := strings.TrimPrefix(m.Content, "Dana: ")
			t0, ok := at[text]
			if !ok {
				continue
			}
			got = append(got, text)
			r.lat = append(r.lat, m.LastUpdateTime.Sub(t0))
			if m.LastUpdateTime.After(r.last) {
				r.last = m.LastUpdateTime.Time
			}
		}
		w.checkOrder(contact, want, got)
	}
	return r
}

func (w *loadWorld) checkOrder(where string, want []sentLine, got []string) {
	if len(got) != len(want) {
		w.b.Errorf("%s received %d of the %d messages (or some twice)", where, len(got), len(want))
		return
	}
	for i := range want {
		if got[i] != want[i].text {
			w.b.Errorf("%s: message %d is %q, want %q: order lost", where, i, got[i], want[i].text)
			return
		}
	}
}

func (w *loadWorld) toDiscord(i, seq int, sent map[string][]sentLine, tag string) {
	text := fmt.Sprintf("%s%02d-%06d", tag, i, seq)
	t0 := time.Now()
	w.resoniteSays(w.contacts[i], fmt.Sprintf("MSG-%s-%02d-%06d", tag, i, seq), text, t0)
	sent[w.channels[i]] = append(sent[w.channels[i]], sentLine{text, t0})
}

func (w *loadWorld) toResonite(i, seq int, sent map[string][]sentLine, tag string) {
	text := fmt.Sprintf("%s%02d-%06d", tag, i, seq)
	m := w.say(w.channels[i], text)
	sent[w.contacts[i]] = append(sent[w.contacts[i]], sentLine{text, m.Timestamp})
}

func percentiles(b *testing.B, prefix string, lat []time.Duration) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(percentile(lat, 0.50)), prefix+"p50-ms")
	b.ReportMetric(ms(percentile(lat, 0.99)), prefix+"p99-ms")
	b.ReportMetric(ms(percentile(lat, 1)), prefix+"max-ms")
}

// insertFloor runs BenchmarkInsertFloor's statement (store/bench_test.go: one single-row insert
// per transaction into a table shaped like relay_messages) n times on the database at url and
// returns its commits per second.
func insertFloor(b *testing.B, url string, n int) float64 {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `create table if not exists floor_messages (like relay_messages including all)`); err != nil {
		b.Fatal(err)
	}
	var pairing int64
	if err := conn.QueryRow(ctx, `select id from pairings order by id limit 1`).Scan(&pairing); err != nil {
		b.Fatal(err)
	}
	payload := []byte(`{"channelId":"1311111111111111111","messageId":"1311111111111111112","text":"hello from Discord, how is everyone doing tonight?"}`)
	start := time.Now()
	for i := range n {
		if _, err := conn.Exec(ctx, `insert into floor_messages (direction, source_id, pairing_id, target_id, payload, source_time)
			values ($1, $2, $3, $4, $5, $6)`,
			core.ToResonite, "floor-"+strconv.Itoa(i), pairing, "MSG-"+strconv.Itoa(i), payload, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkDurableThroughput: bursts of 2,000 messages over 10 pairings each way, the global
// limit lifted and no webhook limit, against the insert floor measured on the same database in
// the same run. Throughput is messages over the time from the first message entering its fake
// to the last one stored by the other (the fakes' stamps). Target: ≥ 2× the floor each way.
func BenchmarkDurableThroughput(b *testing.B) {
	const perPairing = 200
	w := newLoadWorld(b, loadPairings, func(o *partOptions) { o.Bot.RequestRate = 1e6 })
	floor := w.measureFloor()

	// Discord → Resonite.
	d2r, d2rOffered, d2rCPU := w.burstToResonite(perPairing)
	n := perPairing * loadPairings

	// Resonite → Discord.
	sent := map[string][]sentLine{}
	tally := w.newPostTally()
	cpu := startCPUMeter(b, nil)
	start := time.Now()
	for seq := range perPairing {
		for i := range loadPairings {
			w.toDiscord(i, seq, sent, "r")
		}
	}
	offeredR := time.Since(start)
	w.waitUntilWithin("the burst in Discord", 5*time.Minute, func() bool { return tally.update().lines >= n })
	r2dCPU := cpu.stop(n)
	b.StopTimer()
	rd := w.discordArrivals(sent)
	r2d := float64(n) / rd.last.Sub(start).Seconds()

	b.ReportMetric(d2r, "d2r-msgs/s")
	b.ReportMetric(d2r/floor, "d2r-x-floor")
	b.ReportMetric(d2rOffered, "d2r-offered-msgs/s")
	d2rCPU.report(b, "d2r-")
	b.ReportMetric(r2d, "r2d-msgs/s")
	b.ReportMetric(r2d/floor, "r2d-x-floor")
	b.ReportMetric(float64(n)/offeredR.Seconds(), "r2d-offered-msgs/s")
	b.ReportMetric(float64(tally.posts), "r2d-posts")
	r2dCPU.report(b, "r2d-")
}

// measureFloor runs insertFloor on the world's database, then resets the benchmark's timer (which
// drops the metrics reported so far) and reports the floor's commits/s and CPU use.
func (w *loadWorld) measureFloor() float64 {
	cpu := startCPUMeter(w.b, nil)
	floor := insertFloor(w.b, w.dbURL, 5000)
	floorCPU := cpu.stop(5000)
	w.b.ResetTimer()
	w.b.ReportMetric(floor, "floor-commits/s")
	floorCPU.report(w.b, "floor-")
	return floor
}

// burstToResonite sends perPairing messages into each channel at once and waits until every
// one is in Resonite, in order. It returns the throughput (messages over the time from the
// first entering the Discord fake to the last stored by the Resonite fake), the rate at which
// the load was offered, and where the CPU went meanwhile.
func (w *loadWorld) burstToResonite(perPairing int) (msgsPerSec, offeredPerSec float64, cpu cpuUse) {
	sent := map[string][]sentLine{}
	var daemon *os.Process
	if w.daemon != nil {
		daemon = w.daemon.cmd.Process
	}
	meter := startCPUMeter(w.b, daemon)
	start := time.Now()
	for seq := range perPairing {
		for i := range w.channels {
			w.toResonite(i, seq, sent, "d")
		}
	}
	offered := time.Since(start)
	n := perPairing * len(w.channels)
	w.waitUntilWithin("the burst in Resonite", 5*time.Minute, w.sentAllOf(sent))
	cpu = meter.stop(n)
	r := w.resoniteArrivals(sent)
	return float64(n) / r.last.Sub(start).Seconds(), float64(n) / offered.Seconds(), cpu
}

// BenchmarkDurableThroughputDaemonProcess is BenchmarkDurableThroughput's Discord → Resonite
// burst with the daemon as a process of its own (the binary, no race detector), which splits
// the CPU time per message between the daemon, the fakes and PostgreSQL. Resonite → Discord is
// left out: the process keeps the bot's global limit of 45 requests/s.
func BenchmarkDurableThroughputDaemonProcess(b *testing.B) {
	const perPairing = 200
	w := newLoadWorldWith(b, loadPairings, nil, true)
	floor := w.measureFloor()
	d2r, offered, d2rCPU := w.burstToResonite(perPairing)
	b.StopTimer()
	b.ReportMetric(d2r, "d2r-msgs/s")
	b.ReportMetric(d2r/floor, "d2r-x-floor")
	b.ReportMetric(offered, "d2r-offered-msgs/s")
	d2rCPU.report(b, "d2r-")
}

// BenchmarkWebhookLimit: 100 messages from one contact at once, under Discord's per-webhook
// limit (5 executions per 2 s, the fake's model) and the bot's global 45 requests/s. Reports the
// time from the first message entering the Resonite fake until the last of them is in the
// channel (in order, each once), the webhook posts made and the 429s met. Targets: ≤ 10 s,
// ≤ 25 posts. "headers" is Discord's behaviour (X-RateLimit-* on every answer, which discordgo's
// bucket limiter obeys by waiting); "no-headers" meets every excess post with a 429.
func BenchmarkWebhookLimit(b *testing.B) {
	for _, v := range []struct {
		name      string
		noHeaders bool
	}{{"headers", false}, {"no-headers", true}} {
		b.Run(v.name, func(b *testing.B) {
			const n = 100
			w := newLoadWorld(b, 1, nil)
			l := discordtest.DiscordWebhookLimit
			l.NoHeaders = v.noHeaders
			w.dc.SetWebhookLimit(l) // after the warm-up: the windows start with the load
			tally := w.newPostTally()
			sent := map[string][]sentLine{}
			b.ResetTimer()
			start := time.Now()
			for seq := range n {
				w.toDiscord(0, seq, sent, "w")
			}
			w.waitUntilWithin("the 100 messages in Discord", 2*time.Minute, func() bool { return tally.update().lines >= n })
			b.StopTimer()
			r := w.discordArrivals(sent)
			b.ReportMetric(r.last.Sub(start).Seconds(), "s-all-visible")
			b.ReportMetric(float64(tally.posts), "posts")
			b.ReportMetric(float64(tally.limited), "429s")
		})
	}
}

// BenchmarkLatency: a steady 20 messages/s (round robin over 10 pairings) for 15 s, one
// direction at a time, with the bot's global limit on (45 requests/s) and no webhook limit:
// event → delivered latency. Target: p99 ≤ 10 ms.
func BenchmarkLatency(b *testing.B) {
	const rate, n = 20, 300
	for _, dir := range []string{"to-resonite", "to-discord"} {
		b.Run(dir, func(b *testing.B) {
			w := newLoadWorld(b, loadPairings, nil)
			sent := map[string][]sentLine{}
			tally := w.newPostTally()
			tick := time.NewTicker(time.Second / rate)
			defer tick.Stop()
			b.ResetTimer()
			for seq := range n {
				<-tick.C
				if dir == "to-resonite" {
					w.toResonite(seq%loadPairings, seq, sent, "l")
				} else {
					w.toDiscord(seq%loadPairings, seq, sent, "l")
				}
			}
			var r loadResult
			if dir == "to-resonite" {
				w.waitUntilWithin("every message in Resonite", time.Minute, w.sentAllOf(sent))
				b.StopTimer()
				r = w.resoniteArrivals(sent)
			} else {
				w.waitUntilWithin("every message in Discord", time.Minute, func() bool { return tally.update().lines >= n })
				b.StopTimer()
				r = w.discordArrivals(sent)
				b.ReportMetric(float64(tally.posts), "posts")
			}
			percentiles(b, "", r.lat)
		})
	}
}

// BenchmarkGlobalLimit: 100 messages/s from 10 contacts (round robin) for 10 s, Resonite →
// Discord, under the bot's global limit of 45 requests/s: the latency of each line from entering
// the Resonite fake to the post that carries it. Target: p99 ≤ 500 ms. "+webhook" adds Discord's
// per-webhook limit (5 posts per 2 s, with headers) on top.
func BenchmarkGlobalLimit(b *testing.B) {
	const rate, n = 100, 1000
	for _, v := range []struct {
		name    string
		webhook bool
	}{{"45rps", false}, {"45rps+webhook", true}} {
		b.Run(v.name, func(b *testing.B) {
			w := newLoadWorld(b, loadPairings, nil)
			if v.webhook {
				w.dc.SetWebhookLimit(discordtest.DiscordWebhookLimit)
			}
			sent := map[string][]sentLine{}
			tally := w.newPostTally()
			tick := time.NewTicker(time.Second / rate)
			defer tick.Stop()
			b.ResetTimer()
			start := time.Now()
			for seq := range n {
				<-tick.C
				w.toDiscord(seq%loadPairings, seq, sent, "g")
			}
			w.waitUntilWithin("every message in Discord", 2*time.Minute, func() bool { return tally.update().lines >= n })
			b.StopTimer()
			r := w.discordArrivals(sent)
			percentiles(b, "", r.lat)
			b.ReportMetric(float64(tally.posts), "posts")
			b.ReportMetric(float64(tally.limited), "429s")
			b.ReportMetric(float64(n)/r.last.Sub(start).Seconds(), "msgs/s")
		})
	}
}

// cpuMeter tells whether a load was CPU-bound, and where the CPU went: the whole machine, this
// test process (the fakes, and the daemon unless it runs as a process of its own), the daemon's
// process when there is one, and PostgreSQL's processes. Linux counts in USER_HZ (100/s).
type cpuMeter struct {
	b                     *testing.B
	at                    time.Time
	daemon                *os.Process
	machine, steal, total float64 // /proc/stat, see machineCPU
	self, daemon0         float64
	postgres              map[string]float64 // pid → CPU seconds
}

func startCPUMeter(b *testing.B, daemon *os.Process) *cpuMeter {
	m := &cpuMeter{b: b, at: time.Now(), daemon: daemon, postgres: postgresCPU(b)}
	m.machine, m.steal, m.total = machineCPU(b)
	m.self = processCPU(b, "self")
	if daemon != nil {
		m.daemon0 = processCPU(b, strconv.Itoa(daemon.Pid))
	}
	return m
}

// cpuUse is what a cpuMeter measured: how many cores the machine kept busy, and the CPU time
// per message of the machine and of each part (daemon is zero when it ran in the test process).
type cpuUse struct {
	machineCores                           float64
	stealShare                             float64 // of the machine's time, another guest's
	machine, testProcess, daemon, postgres float64 // µs per message
}

func (m *cpuMeter) stop(msgs int) cpuUse {
	wall := time.Since(m.at).Seconds()
	perMsg := func(cpuSeconds float64) float64 { return cpuSeconds / float64(msgs) * 1e6 }
	busy, steal, total := machineCPU(m.b)
	machine := busy - m.machine
	var pg float64
	for pid, v := range postgresCPU(m.b) {
		pg += v - m.postgres[pid] // a backend that ended since is missing: a slight undercount
	}
	u := cpuUse{machineCores: machine / wall, stealShare: (steal - m.steal) / (total - m.total), machine: perMsg(machine),
		testProcess: perMsg(processCPU(m.b, "self") - m.self), postgres: perMsg(pg)}
	if m.daemon != nil {
		u.daemon = perMsg(processCPU(m.b, strconv.Itoa(m.daemon.Pid)) - m.daemon0)
	}
	return u
}

func (u cpuUse) report(b *testing.B, prefix string) {
	b.ReportMetric(u.machineCores, prefix+"machine-cores")
	b.ReportMetric(100*u.stealShare, prefix+"steal-%")
	b.ReportMetric(u.machine, prefix+"machine-µs/msg")
	b.ReportMetric(u.testProcess, prefix+"test-process-µs/msg")
	b.ReportMetric(u.postgres, prefix+"postgres-µs/msg")
	if u.daemon > 0 {
		b.ReportMetric(u.daemon, prefix+"daemon-µs/msg")
	}
}

// machineCPU returns the CPU time since boot the machine spent busy (not idle, iowait or steal),
// the steal time (the host ran another guest while this one wanted to run: capacity this
// machine did not have, which makes every figure of the run slower) and the total.
func machineCPU(b *testing.B) (busy, steal, total float64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatalf("reading /proc/stat: %v", err)
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	for i, v := range strings.Fields(line)[1:] { // user nice system idle iowait irq softirq steal ...
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			b.Fatalf("reading /proc/stat: %v", err)
		}
		switch {
		case i < 7 && i != 3 && i != 4:
			busy += n
		case i == 7:
			steal += n
		}
		if i < 8 { // guest time is counted inside user already
			total += n
		}
	}
	return busy / 100, steal / 100, total / 100
}

// processCPU is the user and system CPU time of /proc/<pid>, or -1 when it cannot be read
// (the process ended).
func processCPU(b *testing.B, pid string) float64 {
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return -1
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndex(s, ")")+1:]) // state ppid ... utime(12th) stime(13th)
	if len(f) < 13 {
		b.Fatalf("reading /proc/%s/stat: %q", pid, s)
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100
}

// postgresCPU is processCPU of every process named postgres (the server and its backends).
func postgresCPU(b *testing.B) map[string]float64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatalf("reading /proc: %v", err)
	}
	out := map[string]float64{}
	for _, e := range ents {
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		if t := processCPU(b, e.Name()); t >= 0 {
			out[e.Name()] = t
		}
	}
	return out
}
