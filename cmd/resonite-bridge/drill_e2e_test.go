package main

// The fault drill: the acceptance test of the delivery engine. The whole daemon (a process of
// its own, so that it can be killed without warning) relays a steady stream both ways over four
// pairings, against the fakes and a PostgreSQL cluster of the test's own, while the hub is
// dropped, the gateway is dropped, the daemon is killed and PostgreSQL restarts. Afterwards
// every pairing has seen every message of each direction, in send order; a message may have been
// posted again only where a hard kill or the database restart left its delivery in flight.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bot/discordtest"
	"github.com/resonite-bridge/resonite-bridge/resonite"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

const (
	drillChannel3 = "110000000000000005"
	drillChannel4 = "110000000000000006"

	drillPerWay   = 2000                  // messages each way, over all pairings
	drillInterval = 25 * time.Millisecond // one message each way per tick: 40/s each way
	drillDown     = 80                    // messages each way sent while a killed daemon is down
	drillRefuse   = time.Second           // how long the hub refuses connections after some drops
	drillLimit    = 6 * time.Minute       // safety net of the waits for deliveries
)

// drillPair is one pairing: a Discord channel and a Resonite contact.
type drillPair struct {
	channel, contact, name string
}

var drillPairs = []drillPair{
	{e2eChannel, "U-Alice", "Alice"},
	{e2eChannel2, "U-Bob", "Bob"},
	{drillChannel3, "U-Carol", "Carol"},
	{drillChannel4, "U-Dave", "Dave"},
}

// drillSender sends the stream: one message each way per tick, the pairings in turn. Each side
// is either live (the message is dispatched on the gateway / pushed on the hub, and stored in
// the history) or history only (AppendMessage / AddMessage: the peer is down).
type drillSender struct {
	e        *e2e
	discord  atomic.Bool // live on the gateway
	resonite atomic.Bool // live on the hub

	mu       sync.Mutex
	sent     int
	progress chan struct{} // closed (and replaced) after each tick
	done     chan struct{} // closed when the sender stops
	wantD    [][]string    // per pairing: the lines Discord must show, in send order
	wantR    [][]string    // per pairing: what Resonite must receive, in send order
	// How many went live and how many to history only, each way.
	liveD, histD, liveR, histR int
}

func newDrillSender(e *e2e) *drillSender {
	s := &drillSender{e: e, progress: make(chan struct{}), done: make(chan struct{}),
		wantD: make([][]string, len(drillPairs)), wantR: make([][]string, len(drillPairs))}
	s.discord.Store(true)
	s.resonite.Store(true)
	return s
}

// run sends n messages each way at the ticker's pace, until stop is closed.
func (s *drillSender) run(n int, stop <-chan struct{}) {
	defer close(s.done)
	tick := time.NewTicker(drillInterval)
	defer tick.Stop()
	for i := 0; i < n; i++ {
		select {
		case <-tick.C:
		case <-stop:
			return
		}
		p := i % len(drillPairs)
		seq := i / len(drillPairs)
		s.sendOne(p, fmt.Sprintf("d%d-%04d", p, seq), fmt.Sprintf("r%d-%04d", p, seq))
		s.mu.Lock()
		s.sent++
		close(s.progress)
		s.progress = make(chan struct{})
		s.mu.Unlock()
	}
}

// sendOne sends one Discord message (dText) and one Resonite message (rText) of pairing p.
func (s *drillSender) sendOne(p int, dText, rText string) {
	pr := drillPairs[p]
	e := s.e
	um := discordtest.UserMessage{ChannelID: pr.channel, AuthorID: "710000000000000001", Username: "dana",
		GlobalName: "Dana", Content: dText}
	liveD := s.discord.Load()
	if liveD {
		e.dc.DispatchMessage(um)
	} else {
		e.dc.AppendMessage(um)
	}
	at := time.Now()
	m := resonite.Message{ID: "MSG-drill-" + rText, SenderID: pr.contact, RecipientID: e2eBridgeID, OwnerID: e2eBridgeID,
		MessageType: resonite.MessageText, Content: rText, SendTime: resonite.NewTime(at), LastUpdateTime: resonite.NewTime(at)}
	liveR := s.resonite.Load()
	if liveR {
		e.rf.PushMessage(e2eBridgeID, m)
	} else {
		m.OtherID = pr.contact
		e.rf.AddMessage(e2eBridgeID, m)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wantR[p] = append(s.wantR[p], dText)
	s.wantD[p] = append(s.wantD[p], rText)
	if liveD {
		s.liveD++
	} else {
		s.histD++
	}
	if liveR {
		s.liveR++
	} else {
		s.histR++
	}
}

// count is how many messages each way were sent so far.
func (s *drillSender) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// waitSent waits until at least n messages each way were sent (or the sender stopped).
func (s *drillSender) waitSent(n int) int {
	for {
		s.mu.Lock()
		sent, ch := s.sent, s.progress
		s.mu.Unlock()
		if sent >= n {
			return sent
		}
		select {
		case <-ch:
		case <-s.done:
			return s.count()
		}
	}
}

// drill is the running world: the fakes, the cluster and the daemon process of the moment.
type drill struct {
	e     *e2e
	cl    *storetest.Cluster
	procs []*e2eProc // every daemon process started, the current one last
}

func (d *drill) proc() *e2eProc { return d.procs[len(d.procs)-1] }

// logs returns the tail of every daemon process's output, for a failure message.
func (d *drill) logs() string {
	var b strings.Builder
	for i, p := range d.procs {
		lines := strings.Split(p.logs.String(), "\n")
		if len(lines) > 120 {
			lines = lines[len(lines)-120:]
		}
		fmt.Fprintf(&b, "\n--- daemon process %d, last lines ---\n%s", i+1, strings.Join(lines, "\n"))
	}
	return b.String()
}

// saveLogs writes every process's full output to DRILL_LOG_DIR when that is set.
func (d *drill) saveLogs(t *testing.T) {
	dir := os.Getenv("DRILL_LOG_DIR")
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("DRILL_LOG_DIR: %v", err)
		return
	}
	for i, p := range d.procs {
		name := filepath.Join(dir, fmt.Sprintf("daemon-%d.log", i+1))
		if err := os.WriteFile(name, []byte(p.logs.String()), 0o644); err != nil {
			t.Logf("DRILL_LOG_DIR: %v", err)
		}
	}
	// What crossed, when: one line per Discord post (its lines) and per Resonite message.
	var b strings.Builder
	for p, pr := range drillPairs {
		for _, m := range d.e.webhookPosts(pr.channel) {
			l := strings.Split(m.Content, "\n")
			fmt.Fprintf(&b, "%s pairing %d to Discord  %3d lines %s .. %s\n", m.Timestamp.UTC().Format("15:04:05.000"), p, len(l), l[0], l[len(l)-1])
		}
		for _, m := range d.e.sentTo(pr.contact) {
			fmt.Fprintf(&b, "%s pairing %d to Resonite %s\n", m.SendTime.Time.UTC().Format("15:04:05.000"), p, m.Content)
		}
	}
	for _, m := range d.e.rf.Messages(e2eBridgeID) {
		if m.SenderID != e2eBridgeID {
			fmt.Fprintf(&b, "%s sent from Resonite %s\n", m.SendTime.Time.UTC().Format("15:04:05.000"), m.Content)
		}
	}
	for _, pr := range drillPairs {
		for _, m := range d.e.dc.ChannelMessages(pr.channel) {
			if m.WebhookID == "" {
				fmt.Fprintf(&b, "%s sent from Discord %s\n", m.Timestamp.UTC().Format("15:04:05.000"), m.Content)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "relayed.txt"), []byte(b.String()), 0o644); err != nil {
		t.Logf("DRILL_LOG_DIR: %v", err)
	}
}

// wait waits until cond holds, checking it again whenever either fake records a change; it
// fails at once when the daemon process exits, and after limit (a safety net, not an assertion
// on speed).
func (d *drill) wait(what string, limit time.Duration, cond func() bool) {
	t := d.e.t
	t.Helper()
	if dt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := dt.Deadline(); ok {
			limit = max(min(limit, time.Until(dl)-5*time.Second), 0)
		}
	}
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		dch, rch := d.e.dc.Changed(), d.e.rf.Changed() // before cond: a change between still wakes
		if cond() {
			return
		}
		select {
		case <-dch:
		case <-rch:
		case <-d.proc().done:
			t.Fatalf("the daemon process exited while waiting for %s%s", what, d.logs())
		case <-deadline.C:
			t.Fatalf("gave up waiting for %s after %v%s", what, limit, d.logs())
		}
	}
}

// gatewaySessions counts the gateway sessions begun so far (identified or resumed).
func (d *drill) gatewaySessions() int {
	g := d.e.dc.Gateway()
	return g.Identifies + g.Resumes
}

// waitGatewaySession waits for a live gateway session begun after the first `before`.
func (d *drill) waitGatewaySession(before int) {
	d.e.t.Helper()
	d.e.dc.WaitGateway(d.e.t, "a new gateway session", func(g discordtest.GatewayStats) bool {
		return g.Identifies+g.Resumes > before && g.Connected
	})
}

// hubSockets counts the accepted WebSocket requests of the bridge account so far.
func (d *drill) hubSockets() int {
	n := 0
	for _, c := range d.e.rf.HubConnects() {
		if c.Path == "/hub" && c.Status == 0 && c.UserID == e2eBridgeID {
			n++
		}
	}
	return n
}

// waitHubReconnect waits until a hub socket was accepted after the first `before` (the daemon
// invokes hub methods on a new connection, which wakes the wait) and the bridge account has
// exactly one connection.
func (d *drill) waitHubReconnect(before int) {
	t := d.e.t
	t.Helper()
	d.wait("the hub reconnecting", discordtest.WaitTimeout(t), func() bool { return d.hubSockets() > before })
	ctx, cancel := context.WithTimeout(context.Background(), discordtest.WaitTimeout(t))
	defer cancel()
	if err := d.e.rf.WaitConnections(ctx, e2eBridgeID, 1); err != nil {
		t.Fatalf("the hub did not settle on one connection: %v%s", err, d.logs())
	}
}

// relayed returns what crossed for pairing p: the lines Discord shows (webhook posts) and what
// Resonite received from the bridge account (without the "Dana: " prefix).
func (d *drill) relayed(p int) (toDiscord, toResonite []string) {
	pr := drillPairs[p]
	for _, m := range d.e.sentTo(pr.contact) {
		toResonite = append(toResonite, strings.TrimPrefix(m.Content, "Dana: "))
	}
	return postedLines(d.e.webhookPosts(pr.channel)), toResonite
}

// drillOutcome compares what arrived with what was sent, in send order.
type drillOutcome struct {
	lost, reordered, duplicates, foreign int
	// runs counts the runs of consecutive duplicates: one per post (or message) made again.
	runs  int
	notes []string
}

func judge(got, want []string) drillOutcome {
	var o drillOutcome
	pos := make(map[string]int, len(want))
	for i, w := range want {
		pos[w] = i
	}
	seen := make(map[string]int, len(want))
	last, prevDup := -1, false
	for i, g := range got {
		dup := seen[g] > 0
		if dup && !prevDup {
			o.runs++
		}
		prevDup = dup
		j, ok := pos[g]
		switch {
		case !ok:
			o.foreign++
			o.notes = append(o.notes, fmt.Sprintf("unexpected %q at %d", g, i))
		case seen[g] > 0:
			o.duplicates++
			o.notes = append(o.notes, fmt.Sprintf("duplicate %q at %d (first sent #%d)", g, i, j))
		default:
			if j < last {
				o.reordered++
				o.notes = append(o.notes, fmt.Sprintf("reordered %q at %d after %q", g, i, want[last]))
			}
			last = max(last, j)
		}
		seen[g]++
	}
	for _, w := range want {
		if seen[w] == 0 {
			o.lost++
			if o.lost <= 20 {
				o.notes = append(o.notes, fmt.Sprintf("lost %q", w))
			}
		}
	}
	return o
}

// drillFault is one fault, injected once that many messages each way were sent.
type drillFault struct {
	at   int
	name string
	do   func()
}

func TestE2EFaultDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault drill takes minutes")
	}
	t.Parallel()
	e := newE2E(t)
	cl := storetest.NewCluster(t)
	e.useCluster(cl)
	e.dc.AddChannel(e2eGuild, drillChannel3, "carol-chat")
	e.dc.AddChannel(e2eGuild, drillChannel4, "dave-chat")
	for _, pr := range drillPairs[2:] {
		e.rf.AddUser(resonite.User{ID: pr.contact, Username: pr.name}, "")
		e.rf.AddContact(e2eBridgeID, resonite.Contact{ID: pr.contact, ContactUsername: pr.name, ContactStatus: resonite.ContactAccepted,
			IsAccepted: true, Profile: &resonite.Profile{IconURL: "resdb:///" + strings.ToLower(pr.name) + "icon.webp"}})
		e.rf.AddContact(pr.contact, resonite.Contact{ID: e2eBridgeID, ContactUsername: "BridgeBot", ContactStatus: resonite.ContactAccepted, IsAccepted: true})
	}
	d := &drill{e: e, cl: cl}
	d.procs = append(d.procs, e.startProcess())
	defer d.saveLogs(t)
	for _, pr := range drillPairs {
		e.link(pr.channel, pr.name)
	}

	s := newDrillSender(e)
	stop := make(chan struct{})
	defer func() {
		close(stop)
		<-s.done
	}()

	var faults struct{ hubDrops, hubRefused, gatewayDrops, kills, pgRestarts int }
	var faultLog []string
	hubDrop := func(refuse bool) func() {
		return func() {
			before := d.hubSockets()
			if refuse {
				s.resonite.Store(false) // the mailbox only, until the hub is back
				e.rf.RefuseConnections(drillRefuse)
				faults.hubRefused++
			}
			faults.hubDrops++
			e.rf.DropConnections()
			d.waitHubReconnect(before)
			s.resonite.Store(true)
		}
	}
	gatewayDrop := func() {
		before := d.gatewaySessions()
		s.discord.Store(false) // the history only, until the gateway is back
		faults.gatewayDrops++
		e.dc.DropGateway()
		d.waitGatewaySession(before)
		s.discord.Store(true)
	}
	kill := func() {
		before := d.gatewaySessions()
		s.discord.Store(false)
		s.resonite.Store(false)
		faults.kills++
		d.proc().kill()
		s.waitSent(s.count() + drillDown) // down for a while: history only, both ways
		d.procs = append(d.procs, e.startProcess())
		d.waitGatewaySession(before)
		s.discord.Store(true)
		s.resonite.Store(true)
	}
	pgRestart := func() {
		faults.pgRestarts++
		cl.Restart() // the daemon keeps running
	}
	schedule := []drillFault{
		{100, "hub drop, refused for a while", hubDrop(true)},
		{200, "hub drop", hubDrop(false)},
		{300, "gateway drop", gatewayDrop},
		{400, "hub drop, refused for a while", hubDrop(true)},
		{500, "hard kill", kill},
		{650, "hub drop", hubDrop(false)},
		{800, "hub drop, refused for a while", hubDrop(true)},
		{950, "hard kill", kill},
		{1100, "hub drop", hubDrop(false)},
		{1250, "hub drop, refused for a while", hubDrop(true)},
		{1400, "PostgreSQL restart", pgRestart},
		{1550, "hub drop", hubDrop(false)},
		{1700, "hub drop, refused for a while", hubDrop(true)},
		{1850, "hub drop", hubDrop(false)},
	}

	start := time.Now()
	go s.run(drillPerWay, stop)
	for _, f := range schedule {
		at := s.waitSent(f.at)
		t0 := time.Now()
		f.do()
		line := fmt.Sprintf("%-30s at message %4d (%5.1fs), over after %v", f.name, at, t0.Sub(start).Seconds(), time.Since(t0).Round(time.Millisecond))
		faultLog = append(faultLog, line)
		t.Log(line)
	}
	<-s.done
	sendTime := time.Since(start)
	if n := s.count(); n != drillPerWay {
		t.Fatalf("sent %d messages each way, want %d", n, drillPerWay)
	}
	t.Logf("sent %d messages each way in %v: to Discord %d live, %d history only; to Resonite %d live, %d mailbox only",
		drillPerWay, sendTime.Round(time.Millisecond), s.liveD, s.histD, s.liveR, s.histR)

	// Everything arrived (or more: duplicates show below). Reading a channel from the Discord
	// fake costs a copy of its whole history, so the cheap Resonite side is checked first and a
	// channel found complete is not read again (lines only ever get added).
	doneD := make([]bool, len(drillPairs))
	arrived := func(wantD func(p int, lines []string) bool, wantR func(p int, got []string) bool) func() bool {
		return func() bool {
			for p, pr := range drillPairs {
				var got []string
				for _, m := range e.sentTo(pr.contact) {
					got = append(got, strings.TrimPrefix(m.Content, "Dana: "))
				}
				if !wantR(p, got) {
					return false
				}
			}
			for p, pr := range drillPairs {
				if !doneD[p] {
					if !wantD(p, postedLines(e.webhookPosts(pr.channel))) {
						return false
					}
					doneD[p] = true
				}
			}
			return true
		}
	}
	d.wait("every message of the stream delivered", drillLimit, arrived(
		func(p int, lines []string) bool { return len(lines) >= len(s.wantD[p]) },
		func(p int, got []string) bool { return len(got) >= len(s.wantR[p]) }))
	t.Logf("the stream delivered %v after the first message was sent", time.Since(start).Round(time.Millisecond))

	// One final message each way and pairing: a duplicate of anything earlier would be queued
	// before it (the pipeline is ordered per pairing), so once it arrived any duplicate has too.
	for p := range drillPairs {
		s.sendOne(p, fmt.Sprintf("d%d-final", p), fmt.Sprintf("r%d-final", p))
	}
	clear(doneD)
	d.wait("the final message each way", drillLimit, arrived(
		func(p int, lines []string) bool {
			return len(lines) > 0 && lines[len(lines)-1] == fmt.Sprintf("r%d-final", p)
		},
		func(p int, got []string) bool { return len(got) > 0 && got[len(got)-1] == fmt.Sprintf("d%d-final", p) }))
	total := time.Since(start)
	select {
	case <-d.proc().done:
		t.Errorf("the daemon process exited%s", d.logs())
	default:
	}

	duplicates, runs := 0, 0
	for p, pr := range drillPairs {
		toD, toR := d.relayed(p)
		for _, c := range []struct {
			way       string
			got, want []string
		}{
			{"Resonite → Discord " + pr.channel, toD, s.wantD[p]},
			{"Discord → Resonite " + pr.contact, toR, s.wantR[p]},
		} {
			o := judge(c.got, c.want)
			duplicates += o.duplicates
			runs += o.runs
			// What the daemon guarantees today: at least once, a batch in flight per pairing and
			// direction; each hard kill or database restart may leave one whose outcome was not
			// stored, and its redelivery may post it again.
			if limit := faults.kills + faults.pgRestarts; o.runs > limit {
				t.Errorf("pairing %d %s: %d posts or messages made again, want at most %d (one per hard kill or database restart)",
					p, c.way, o.runs, limit)
			}
			t.Logf("pairing %d %s: %d sent, %d arrived: lost %d, reordered %d, duplicates %d, unexpected %d",
				p, c.way, len(c.want), len(c.got), o.lost, o.reordered, o.duplicates, o.foreign)
			if len(o.notes) > 0 {
				t.Logf("  %s", strings.Join(o.notes, "\n  "))
			}
			if o.lost > 0 || o.reordered > 0 || o.foreign > 0 {
				t.Errorf("pairing %d %s: lost %d, reordered %d, unexpected %d; want none", p, c.way, o.lost, o.reordered, o.foreign)
			}
		}
	}
	t.Logf("faults: %d hub drops (%d refused for %v), %d gateway drop, %d hard kills, %d PostgreSQL restart",
		faults.hubDrops, faults.hubRefused, drillRefuse, faults.gatewayDrops, faults.kills, faults.pgRestarts)
	t.Logf("duplicates: %d in total, in %d runs (posts or messages made again); drill took %v (sending %v)",
		duplicates, runs, total.Round(time.Millisecond), sendTime.Round(time.Millisecond))
	// The acceptance criterion of the delivery engine: at most one duplicate per hard kill, over
	// every pairing and direction. It fails now and then (here about one run in five or six):
	// a killed daemon's redelivery does not recognise the post the dead one made, because
	// bridge/delivery.go (coveredBefore, postedBefore) reads one page of 100 messages after the
	// row's enqueue time minus redeliveryWindow (1 min), and in a channel with more than 100
	// messages in that minute the page ends before the earlier post; each pairing with a
	// delivery in flight at the kill then shows its lines twice.
	if duplicates > faults.kills {
		t.Errorf("%d duplicates, want at most %d (one per hard kill)", duplicates, faults.kills)
	}
}
