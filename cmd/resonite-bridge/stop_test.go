package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestE2EStopTime measures how long the daemon takes from the stop (SIGTERM cancels runWith's
// context) to its exit, idle and under a steady stream of messages both ways, and logs the
// figure with each part's share (go test -run TestE2EStopTime -v ./cmd/resonite-bridge/). It
// asserts the graceful exit only, not a time: the figure depends on the machine. With
// E2E_STOP_FLOOD=1 it also stops the daemon under a flood (messages as fast as the fakes take
// them), which loads the machine too much to run with the other tests.
func TestE2EStopTime(t *testing.T) {
	t.Parallel()
	// The daemon's own intervals (the bridge's 1 s poll among them), not e2eTune's short ones.
	production := func(o *partOptions) { o.Bot.OpenTimeout = 5 * time.Second }
	for _, tc := range []struct {
		name   string
		stream bool
		every  time.Duration // between two messages each way; 0: as fast as they go
		tune   func(*partOptions)
	}{
		{"idle", false, 0, production},
		{"steady stream", true, 20 * time.Millisecond, production},
		{"steady stream, e2e intervals", true, 20 * time.Millisecond, e2eTune},
		{"flood", true, 0, production},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.stream && tc.every == 0 && os.Getenv("E2E_STOP_FLOOD") != "1" {
				t.Skip("a flood: set E2E_STOP_FLOOD=1")
			}
			t.Parallel()
			e := newE2E(t)
			e.tune = tc.tune
			e.start()
			e.link(e2eChannel, "Alice")
			e.link(e2eChannel2, "Bob")
			streaming := make(chan struct{})
			var wg sync.WaitGroup
			if tc.stream {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var tick <-chan time.Time
					if tc.every > 0 {
						t := time.NewTicker(tc.every)
						defer t.Stop()
						tick = t.C
					}
					for i := 0; ; i++ {
						select {
						case <-streaming:
							return
						default:
						}
						if tick != nil {
							select {
							case <-streaming:
								return
							case <-tick:
							}
						}
						e.say(e2eChannel, fmt.Sprintf("to Alice %d", i))
						e.resoniteSays("U-Bob", fmt.Sprintf("MSG-stream-%d", i), fmt.Sprintf("from Bob %d", i), time.Now())
					}
				}()
				e.waitUntil("the stream flowing both ways", func() bool {
					return len(e.sentTo("U-Alice")) >= 10 && countLines(e.webhookPosts(e2eChannel2)) >= 10
				})
			}
			d := e.d
			began := time.Now()
			code := e.stop()
			took := time.Since(began)
			close(streaming)
			wg.Wait()
			if code != 0 {
				t.Errorf("exit code %d after a graceful stop:\n%s", code, d.logs.String())
			}
			var parts []string
			for _, l := range strings.Split(d.logs.String(), "\n") {
				if strings.Contains(l, "msg=stopped ") || strings.Contains(l, "msg=drained ") || strings.Contains(l, "did not stop") || strings.Contains(l, "stopped with error") {
					parts = append(parts, strings.TrimSpace(l[strings.Index(l, "msg="):]))
				}
			}
			t.Logf("%s: stop took %v\n%s", tc.name, took.Round(time.Millisecond), strings.Join(parts, "\n"))
		})
	}
}

// drainingPart is a part with a Drain, recording the calls it gets.
type drainingPart struct {
	*runner
	calls chan<- string
}

func (p drainingPart) Drain(context.Context) error {
	p.calls <- p.Name() + ".Drain"
	return nil
}

func (p drainingPart) Stop(ctx context.Context) error {
	p.calls <- p.Name() + ".Stop"
	return p.runner.Stop(ctx)
}

// TestShutdownStopsDrainersLast: a part with a Drain is drained in its turn of the reverse
// order and stopped after all the others, so that its tail runs alongside their stops.
func TestShutdownStopsDrainersLast(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := make(chan string, 10)
	plain := func(name string) *runner {
		return newRunner(name, func(ctx context.Context) error { <-ctx.Done(); calls <- name + ".Stop"; return nil })
	}
	parts := []component{
		plain("first"),
		drainingPart{plain("gateway"), calls},
		plain("middle"),
		newRunner("trigger", func(ctx context.Context) error { cancel(); <-ctx.Done(); return nil }),
	}
	if err := runComponents(ctx, slog.New(slog.DiscardHandler), 2*time.Second, parts); err != nil {
		t.Fatal(err)
	}
	close(calls)
	var got []string
	for c := range calls {
		got = append(got, c)
	}
	// gateway.Stop is what the wrapper records; the runner's own goroutine records the second.
	want := []string{"middle.Stop", "gateway.Drain", "first.Stop", "gateway.Stop", "gateway.Stop"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("calls %v, want %v", got, want)
	}
}
