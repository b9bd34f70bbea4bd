package bot_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bot"
	"github.com/resonite-bridge/resonite-bridge/bot/discordtest"
	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// outcome names the delivery outcome of err as the bridge reads it.
func outcome(err error) string {
	var rl *core.RetryAfterError
	var un *core.UnavailableError
	switch {
	case err == nil:
		return "ok"
	case core.IsPermanent(err):
		return "permanent"
	case errors.As(err, &rl):
		return "retry after"
	case errors.As(err, &un):
		return "unavailable"
	}
	return "retry"
}

func TestDeliveryOutcomes(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	e.pair(channelID, "U-Alice")
	e.post(channelID, core.Post{Username: "Alice", Content: "first"})
	messages := "/channels/" + channelID + "/messages"
	for _, tc := range []struct {
		name string
		fail discordtest.Failure
		call func() error
		want string
	}{
		{"webhook 503", discordtest.Failure{PathContains: "/webhooks/", Status: http.StatusServiceUnavailable},
			func() error { _, err := e.bot.Post(t.Context(), channelID, core.Post{Content: "x"}); return err }, "unavailable"},
		{"reply 500", discordtest.Failure{PathContains: messages, Status: http.StatusInternalServerError},
			func() error { return e.bot.Reply(t.Context(), channelID, "1", "note") }, "unavailable"},
		{"history 500", discordtest.Failure{PathContains: messages, Status: http.StatusInternalServerError},
			func() error { _, err := e.bot.History(t.Context(), channelID, "", 10); return err }, "unavailable"},
		{"content refused", discordtest.Failure{PathContains: messages, Status: http.StatusBadRequest, Code: 50035},
			func() error { return e.bot.Reply(t.Context(), channelID, "1", "note") }, "permanent"},
		{"missing access", discordtest.Failure{PathContains: messages, Status: http.StatusForbidden, Code: 50001},
			func() error { _, err := e.bot.History(t.Context(), channelID, "", 10); return err }, "permanent"},
		{"unknown channel", discordtest.Failure{PathContains: messages, Status: http.StatusNotFound, Code: 10003},
			func() error { _, err := e.bot.History(t.Context(), channelID, "", 10); return err }, "permanent"},
		// Authentication is the daemon's problem, not the message's: retried with backoff.
		{"unauthorized", discordtest.Failure{PathContains: messages, Status: http.StatusUnauthorized},
			func() error { _, err := e.bot.History(t.Context(), channelID, "", 10); return err }, "retry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fail.Count = 1
			e.dc.FailNext(tc.fail)
			err := tc.call()
			if got := outcome(err); got != tc.want {
				t.Errorf("outcome of %v is %s, want %s", err, got, tc.want)
			}
			if d, ok := core.Wait(err); tc.want == "unavailable" && (!ok || d != core.OutageWait) {
				t.Errorf("core.Wait(%v) = %v, %v; want the outage wait", err, d, ok)
			}
		})
	}
	if n := len(e.dc.ChannelMessages(channelID)); n != 1 {
		t.Errorf("%d messages: a failed call posted anyway", n)
	}
}

func TestOutcomesWithoutGatewayOrNetwork(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, err := bot.New(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	// Never started: no READY, so no application id to adopt or create webhooks by. The post
	// waits without spending an attempt instead of hanging until its deadline.
	_, err = b.Post(t.Context(), channelID, core.Post{Username: "Alice", Content: "x"})
	if got := outcome(err); got != "unavailable" {
		t.Errorf("Post without a gateway: %v (%s), want unavailable", err, got)
	}
	if err := b.Stop(t.Context()); err != nil {
		t.Errorf("Stop of a bot never started: %v", err)
	}

	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	e = newEnv(t, func(o *bot.Options) { o.APIURL = dead.URL })
	b, err = bot.New(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.History(t.Context(), channelID, "", 10)
	var ue *url.Error
	if got := outcome(err); got != "unavailable" || !errors.As(err, &ue) {
		t.Errorf("History with Discord unreachable: %v (%s), want unavailable with the network error kept", err, got)
	}
}

// blockingSessions holds /sessions' look-up until release is closed.
type blockingSessions struct {
	bot.Resonite
	entered chan struct{}
	release chan struct{}
}

func (r blockingSessions) Sessions(ctx context.Context, q core.SessionQuery) ([]core.Session, error) {
	close(r.entered)
	<-r.release
	return r.Resonite.Sessions(ctx, q)
}

func TestStopClosesTheGatewayFirstThenDrains(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	free := func() { released.Do(func() { close(release) }) }
	t.Cleanup(free) // a failing test must not leave the handler blocked
	rs := blockingSessions{entered: make(chan struct{}), release: release}
	e := newEnv(t, func(o *bot.Options) {
		rs.Resonite = o.Resonite
		o.Resonite = rs
		rec := o.Handlers.OnMessage
		o.Handlers.OnMessage = func(ctx context.Context, m core.DiscordMessage) {
			if m.Content == "first" {
				once.Do(func() { close(entered) })
				<-release
			}
			rec(ctx, m)
		}
	})
	e.start()
	seedSessions(e.rf, 3)
	e.dc.DispatchMessage(discordtest.UserMessage{ChannelID: channelID, Content: "first"})
	e.dc.DispatchMessage(discordtest.UserMessage{ChannelID: channelID, Content: "second"})
	<-entered
	// The gateway hands events over in order: once this command is answered, "second" is
	// queued behind the blocked "first".
	sessions := e.command("sessions") // cold: deferred at once, then blocked in the look-up
	<-rs.entered

	stopped := make(chan error, 1)
	go func() { stopped <- e.bot.Stop(context.Background()) }()
	e.started = false
	// The gateway closes at once, while the command and the events are still held.
	e.dc.WaitGateway(t, "the gateway closed by Stop", func(g discordtest.GatewayStats) bool { return !g.Connected })
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) before the running command and the queued events finished", err)
	default:
	}
	if n := len(e.rec.messages()); n != 0 {
		t.Fatalf("%d messages handed over while the first was held", n)
	}
	free()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
	case <-time.After(discordtest.WaitTimeout(t)):
		t.Fatal("Stop did not return after the work was released")
	}
	if msgs := e.rec.messages(); len(msgs) != 2 || msgs[0].Content != "first" || msgs[1].Content != "second" {
		t.Errorf("handed over %+v, want the running and the queued event, in order", msgs)
	}
	if f := sessions.Final(t); !strings.Contains(f.Content, "3 public") {
		t.Errorf("the command running at Stop answered %q, want its listing", f.Content)
	}
	if ok, _ := e.bot.Ready(); ok {
		t.Error("Ready() after Stop")
	}

	// The bridge drains its deliveries after the bot stopped: REST keeps working.
	e.pair(channelID, "U-Alice")
	if _, err := e.bot.Post(t.Context(), channelID, core.Post{Username: "Alice", Content: "after Stop"}); err != nil {
		t.Errorf("Post after Stop: %v", err)
	}
	if err := e.bot.Reply(t.Context(), channelID, "1", "note after Stop"); err != nil {
		t.Errorf("Reply after Stop: %v", err)
	}
	if h, err := e.bot.History(t.Context(), channelID, "", 100); err != nil || len(h) == 0 {
		t.Errorf("History after Stop: %d messages, %v", len(h), err)
	}
	if err := e.bot.Stop(t.Context()); err != nil {
		t.Errorf("a second Stop: %v", err)
	}
	if err := e.bot.Start(t.Context()); err == nil {
		t.Error("Start after Stop succeeded; a Bot runs once")
	}
}

// heldEvents makes OnMessage wait for its context's end, and reports what ended it.
func heldEvents(o *bot.Options) (entered <-chan struct{}, ended <-chan error) {
	in, out := make(chan struct{}), make(chan error, 1)
	var once sync.Once
	o.Handlers.OnMessage = func(ctx context.Context, _ core.DiscordMessage) {
		once.Do(func() { close(in) })
		<-ctx.Done()
		select {
		case out <- ctx.Err():
		default:
		}
	}
	return in, out
}

func TestStopCancelsWorkAfterDrainTimeout(t *testing.T) {
	t.Parallel()
	var entered <-chan struct{}
	var ended <-chan error
	e := newEnv(t, func(o *bot.Options) {
		o.DrainTimeout = 50 * time.Millisecond
		entered, ended = heldEvents(o)
	}).start()
	if err := e.bot.Start(t.Context()); err == nil {
		t.Error("a second Start succeeded")
	}
	e.dc.DispatchMessage(discordtest.UserMessage{ChannelID: channelID, Content: "slow"})
	<-entered
	if err := e.shutdown(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the held event ended with %v, want its context cancelled", err)
		}
	default:
		t.Fatal("Stop returned while an event handler was still running")
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "did not finish in time") {
		t.Errorf("the drain timeout is not logged:\n%s", logs)
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !strings.Contains(line, "component=discord") {
			t.Errorf("log line without component=discord: %s", line)
		}
	}
}

func TestStopIsBoundedByItsContext(t *testing.T) {
	t.Parallel()
	var entered <-chan struct{}
	var ended <-chan error
	e := newEnv(t, func(o *bot.Options) {
		o.DrainTimeout = time.Hour
		entered, ended = heldEvents(o)
	}).start()
	e.dc.DispatchMessage(discordtest.UserMessage{ChannelID: channelID, Content: "slow"})
	<-entered
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := e.bot.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Stop with an ended context returned %v, want its error", err)
	}
	// The work was cancelled at once instead of waiting out the hour of DrainTimeout.
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the held event ended with %v", err)
		}
	case <-time.After(discordtest.WaitTimeout(t)):
		t.Fatal("the held event was not cancelled when Stop's context ended")
	}
	// A later Stop waits for the rest (the gateway's close).
	if err := e.shutdown(); err != nil {
		t.Errorf("Stop after the cancelled one: %v", err)
	}
}

// TestDrainThenStop: Drain is Stop without waiting for the gateway's close: it stops the
// intake at once, returns once the queued events reached the bridge, and Stop after it ends
// the rest.
func TestDrainThenStop(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	free := func() { released.Do(func() { close(release) }) }
	t.Cleanup(free)
	e := newEnv(t, func(o *bot.Options) {
		rec := o.Handlers.OnMessage
		o.Handlers.OnMessage = func(ctx context.Context, m core.DiscordMessage) {
			if m.Content == "first" {
				once.Do(func() { close(entered) })
				<-release
			}
			rec(ctx, m)
		}
	})
	e.start()
	e.dc.DispatchMessage(discordtest.UserMessage{ChannelID: channelID, Content: "first"})
	e.dc.DispatchMessage(discordtest.UserMessage{ChannelID: channelID, Content: "second"})
	<-entered
	// The gateway hands events over in order: once this command is answered, "second" is
	// queued behind the held "first".
	e.command("status").Final(t)
	drained := make(chan error, 1)
	go func() { drained <- e.bot.Drain(context.Background()) }()
	e.dc.WaitGateway(t, "the gateway closed by Drain", func(g discordtest.GatewayStats) bool { return !g.Connected })
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) before the queued events were handed over", err)
	default:
	}
	// Arrives after Drain began: not handed over.
	e.dc.DispatchMessage(discordtest.UserMessage{ChannelID: channelID, Content: "late"})
	free()
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("Drain: %v", err)
		}
	case <-time.After(discordtest.WaitTimeout(t)):
		t.Fatal("Drain did not return after the work was released")
	}
	if msgs := e.rec.messages(); len(msgs) != 2 || msgs[0].Content != "first" || msgs[1].Content != "second" {
		t.Errorf("handed over %+v, want the running and the queued event, in order", msgs)
	}
	if ok, _ := e.bot.Ready(); ok {
		t.Error("Ready() after Drain")
	}
	if err := e.bot.Drain(t.Context()); err != nil {
		t.Errorf("a second Drain: %v", err)
	}
	if err := e.shutdown(); err != nil { // goleak (TestMain) checks that nothing is left
		t.Errorf("Stop after Drain: %v", err)
	}
	if msgs := e.rec.messages(); len(msgs) != 2 {
		t.Errorf("%d messages handed over after Stop, want 2", len(msgs))
	}
}
