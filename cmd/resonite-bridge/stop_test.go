package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestE2EStopTime measures how long the daemon takes from the stop (SIGTERM cancels runWith's
// context) to its exit, idle and under a steady stream of messages both ways, and logs the
// figure with each part's share (go test -run TestE2EStopTime -v ./cmd/resonite-bridge/). It
// asserts the graceful exit only, not a time: the figure depends on the machine.
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
		{"steady stream", true, 5 * time.Millisecond, production},
		{"flood", true, 0, production},
		{"idle, e2e intervals", false, 0, e2eTune},
		{"steady stream, e2e intervals", true, 5 * time.Millisecond, e2eTune},
	} {
		t.Run(tc.name, func(t *testing.T) {
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
					return len(e.sentTo("U-Alice")) >= 50 && countLines(e.webhookPosts(e2eChannel2)) >= 50
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
				if strings.Contains(l, "msg=stopped ") || strings.Contains(l, "did not stop") || strings.Contains(l, "stopped with error") {
					parts = append(parts, strings.TrimSpace(l[strings.Index(l, "msg="):]))
				}
			}
			t.Logf("%s: stop took %v\n%s", tc.name, took.Round(time.Millisecond), strings.Join(parts, "\n"))
		})
	}
}
