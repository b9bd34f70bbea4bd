package bridge

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// failCalls makes the first n calls fail with err, then lets them through.
func failCalls(n int, err error) func() error {
	var mu sync.Mutex
	calls := 0
	return func() error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= n {
			return err
		}
		return nil
	}
}

func (h *harness) discordCursor(pairingID int64) string {
	h.t.Helper()
	c, err := h.store.DiscordCursor(context.Background(), pairingID)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *harness) resoniteCursor() time.Time {
	h.t.Helper()
	c, err := h.store.ResoniteCursor(context.Background(), botID)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func TestCatchUpDiscord(t *testing.T) {
	t.Parallel()
	old := core.DiscordMessage{ID: strconv.FormatUint(uint64(pairingEpoch.Add(-time.Hour).UnixMilli()-discordEpochMs)<<22, 10), ChannelID: "C-A", AuthorName: "Kim", Content: "before the pairing", Timestamp: pairingEpoch.Add(-time.Hour)}
	five := []core.DiscordMessage{
		dmsg(1, "C-A", "Kim", "m1"), dmsg(2, "C-A", "Kim", "m2"), dmsg(3, "C-A", "Kim", "m3"),
		dmsg(4, "C-A", "Kim", "m4"), dmsg(5, "C-A", "Kim", "m5"),
	}
	tests := []struct {
		name        string
		cursor      string
		newestFirst bool // answer pages as Discord's API does, newest first
		historyErr  func() error
		want        []string
		wantAfters  []string // the History requests of C-A
	}{
		{
			name: "new pairing: nothing older than the pairing, pages oldest first",
			want: []string{"m1", "m2", "m3", "m4", "m5"}, wantAfters: []string{snowflakeAt(pairingEpoch), snow(2), snow(4)},
		},
		{
			name: "cursor respected", cursor: snow(3),
			want: []string{"m4", "m5"}, wantAfters: []string{snow(3), snow(5)},
		},
		{
			name: "pages answered newest first", newestFirst: true,
			want: []string{"m1", "m2", "m3", "m4", "m5"}, wantAfters: []string{snowflakeAt(pairingEpoch), snow(2), snow(4)},
		},
		{
			name: "errors retried, nothing lost", historyErr: failCalls(2, fmt.Errorf("discord: 502: %w", errRetryable)),
			want: []string{"m1", "m2", "m3", "m4", "m5"},
		},
		{
			name: "429 retried after the wait asked", historyErr: failCalls(1, core.RetryAfter(10*time.Millisecond, fmt.Errorf("discord: 429"))),
			want: []string{"m1", "m2", "m3", "m4", "m5"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(o *Options) { o.CatchUpPageSize = 2 })
			h.discord.addHistory("C-A", old)
			h.discord.addHistory("C-A", five...)
			h.discord.newestFirst = tt.newestFirst
			if tt.cursor != "" {
				if err := h.store.AdvanceDiscordCursor(t.Context(), 1, tt.cursor); err != nil {
					t.Fatal(err)
				}
			}
			if tt.historyErr != nil {
				h.discord.historyFn = func(ch string) error {
					if ch != "C-A" {
						return nil
					}
					return tt.historyErr()
				}
			}
			h.start()
			h.waitRows(core.ToResonite, core.StateDelivered, len(tt.want))
			h.waitFor("the cursor at the newest message", func() bool { return h.discordCursor(1) == snow(5) })
			h.stop()
			var want []string
			for _, w := range tt.want {
				want = append(want, "Kim: "+w)
			}
			if got := sentContents(h.res.sentTo("U-Alice")); !reflect.DeepEqual(got, want) {
				t.Errorf("sent %q, want %q", got, want)
			}
			if tt.wantAfters != nil {
				var afters []string
				for _, c := range h.discord.historyCallsIn("C-A") {
					afters = append(afters, c.After)
					if c.Limit != 2 {
						t.Errorf("page size %d, want 2", c.Limit)
					}
				}
				if !reflect.DeepEqual(afters, tt.wantAfters) {
					t.Errorf("History after = %v, want %v", afters, tt.wantAfters)
				}
			}
			if tt.historyErr != nil && h.b.Stats().LastError == "" {
				t.Error("the catch-up error is not the last error")
			}
		})
	}
}

// TestCatchUpDiscordMidPageFailure: a failure after the first page keeps what was stored and
// resumes after it.
func TestCatchUpDiscordMidPageFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.CatchUpPageSize = 2 })
	for i := 1; i <= 5; i++ {
		h.discord.addHistory("C-A", dmsg(i, "C-A", "Kim", "m"+strconv.Itoa(i)))
	}
	var mu sync.Mutex
	calls := 0
	h.discord.historyFn = func(ch string) error {
		mu.Lock()
		defer mu.Unlock()
		if ch != "C-A" {
			return nil
		}
		calls++
		if calls == 2 {
			return errRetryable
		}
		return nil
	}
	h.start()
	h.waitRows(core.ToResonite, core.StateDelivered, 5)
	h.waitFor("the cursor at the newest message", func() bool { return h.discordCursor(1) == snow(5) })
	h.stop()
	if got := sentContents(h.res.sentTo("U-Alice")); !reflect.DeepEqual(got, []string{"Kim: m1", "Kim: m2", "Kim: m3", "Kim: m4", "Kim: m5"}) {
		t.Errorf("sent %q", got)
	}
	var afters []string
	for _, c := range h.discord.historyCallsIn("C-A") {
		afters = append(afters, c.After)
	}
	if want := []string{snowflakeAt(pairingEpoch), snow(2), snow(2), snow(4)}; !reflect.DeepEqual(afters, want) {
		t.Errorf("History after = %v, want %v", afters, want)
	}
}

// TestCatchUpDiscordTriggers: GUILD_CREATE catches up that guild's channels only; a gateway
// reconnect catches up every channel.
func TestCatchUpDiscordTriggers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.addPairing(core.Pairing{GuildID: "G2", ChannelID: "C-C", ContactID: "U-Carol", ContactUsername: "Carol", WebhookID: "W-C"}, 3)
	h.start()
	h.waitFor("the start-up catch-up of every channel", func() bool {
		return len(h.discord.historyCallsIn("C-A")) == 1 && len(h.discord.historyCallsIn("C-B")) == 1 && len(h.discord.historyCallsIn("C-C")) == 1
	})
	h.discord.addHistory("C-A", dmsg(1, "C-A", "Kim", "for Alice"))
	h.discord.addHistory("C-C", dmsg(2, "C-C", "Kim", "for Carol"))
	h.b.OnGuildAvailable(t.Context(), "G2")
	h.waitRows(core.ToResonite, core.StateDelivered, 1)
	if got := sentContents(h.res.sentTo("U-Carol")); !reflect.DeepEqual(got, []string{"Kim: for Carol"}) {
		t.Fatalf("sent to Carol %q", got)
	}
	// Pairings are caught up in id order, so C-A's turn would have come before C-C's.
	if n := len(h.discord.historyCallsIn("C-A")); n != 1 {
		t.Errorf("GUILD_CREATE of G2 read C-A's history (%d requests)", n)
	}
	h.b.OnDiscordReconnect(t.Context())
	h.waitRows(core.ToResonite, core.StateDelivered, 2)
	if got := sentContents(h.res.sentTo("U-Alice")); !reflect.DeepEqual(got, []string{"Kim: for Alice"}) {
		t.Errorf("sent to Alice %q", got)
	}
}

func TestCatchUpResonite(t *testing.T) {
	t.Parallel()
	cursor := at(100)
	tests := []struct {
		name    string
		cursor  time.Time
		history []core.ContactMessage
		histErr func() error
		want    map[string][]string // posts per channel
	}{
		{
			name: "first run: nothing older than the pairings, only paired contacts, not our own",
			history: []core.ContactMessage{
				textFrom("U-Alice", "MSG-old", "before the pairing", pairingEpoch.Add(-30*time.Second)),
				rmsg("U-Alice", 1, "a1"), rmsg("U-Bob", 2, "b1"), rmsg("U-Stranger", 3, "who?"),
				textFrom(botID, "MSG-mine", "Kim: from Discord", at(4)), rmsg("U-Alice", 5, "a2"),
			},
			want: map[string][]string{"C-A": {"a1", "a2"}, "C-B": {"b1"}},
		},
		{
			name:   "cursor respected, with a minute of overlap",
			cursor: cursor,
			history: []core.ContactMessage{
				rmsg("U-Alice", 100-120, "two minutes before"), rmsg("U-Alice", 100-30, "within the overlap"),
				rmsg("U-Alice", 101, "after"),
			},
			want: map[string][]string{"C-A": {"within the overlap", "after"}},
		},
		{
			name:    "more than a page since the cursor",
			cursor:  cursor,
			history: manyFrom("U-Alice", 101, 250),
			want:    map[string][]string{"C-A": texts(manyFrom("U-Alice", 101, 250))},
		},
		{
			name:    "errors retried, nothing lost",
			history: []core.ContactMessage{rmsg("U-Alice", 1, "a1"), rmsg("U-Alice", 2, "a2")},
			histErr: failCalls(2, fmt.Errorf("resonite: 503: %w", errRetryable)),
			want:    map[string][]string{"C-A": {"a1", "a2"}},
		},
		{
			name:    "429 retried",
			history: []core.ContactMessage{rmsg("U-Alice", 1, "a1")},
			histErr: failCalls(1, core.RetryAfter(10*time.Millisecond, fmt.Errorf("resonite: 429"))),
			want:    map[string][]string{"C-A": {"a1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			if !tt.cursor.IsZero() {
				if err := h.store.AdvanceResoniteCursor(t.Context(), botID, tt.cursor); err != nil {
					t.Fatal(err)
				}
			}
			h.res.addHistory(tt.history...)
			h.res.histFn = tt.histErr
			h.start()
			total := 0
			for _, w := range tt.want {
				total += len(w)
			}
			h.waitRows(core.ToDiscord, core.StateDelivered, total)
			var newest time.Time
			for _, m := range tt.history {
				if m.SentAt.After(newest) {
					newest = m.SentAt
				}
			}
			h.waitFor("the cursor at the newest message", func() bool { return h.resoniteCursor().Equal(newest) })
			h.stop()
			for ch, want := range tt.want {
				if got := lines(h.discord.postsIn(ch)); !reflect.DeepEqual(got, want) {
					t.Errorf("posts in %s: %d %q\nwant %d %q", ch, len(got), got, len(want), want)
				}
			}
			if n := h.rowCount(core.ToDiscord); n != total {
				t.Errorf("stored %d rows, want %d", n, total)
			}
			for _, q := range h.res.allQueries() {
				if !tt.cursor.IsZero() && !q.Since.Equal(tt.cursor.Add(-time.Minute)) {
					t.Errorf("queried from %s, want a minute before the cursor", q.Since)
				}
			}
		})
	}
}

func manyFrom(sender string, first, n int) []core.ContactMessage {
	var out []core.ContactMessage
	for i := range n {
		out = append(out, rmsg(sender, first+i, "n"+strconv.Itoa(i)))
	}
	return out
}

func texts(ms []core.ContactMessage) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Text)
	}
	return out
}

// TestCatchUpResonitePerPairingAge: history older than a pairing is not relayed into it, even
// when another, older pairing makes the catch-up read that far back.
func TestCatchUpResonitePerPairingAge(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.setPairingCreatedAt(2, at(3600))
	h.res.addHistory(rmsg("U-Alice", 1, "a1"), rmsg("U-Bob", 2, "before Bob's pairing"), rmsg("U-Bob", 3700, "b1"))
	h.start()
	h.waitRows(core.ToDiscord, core.StateDelivered, 2)
	h.waitFor("the cursor at the newest message", func() bool { return h.resoniteCursor().Equal(at(3700)) })
	if got := contents(h.discord.postsIn("C-B")); !reflect.DeepEqual(got, []string{"b1"}) {
		t.Errorf("posts in C-B %q", got)
	}
	if n := h.rowCount(core.ToDiscord); n != 2 {
		t.Errorf("%d rows stored, want 2", n)
	}
}

// TestCatchUpNotHeldBackByAFailingChannel: a channel whose history cannot be read is retried
// with backoff, but a new catch-up request is served at once.
func TestCatchUpNotHeldBackByAFailingChannel(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.CatchUpRetry = time.Hour })
	h.discord.historyFn = func(ch string) error {
		if ch == "C-B" {
			return fmt.Errorf("discord: 403 Missing Access: %w", errRetryable)
		}
		return nil
	}
	h.start()
	h.waitFor("the start-up catch-up failed on C-B", func() bool { return len(h.discord.historyCallsIn("C-B")) >= 1 })
	h.res.addHistory(rmsg("U-Alice", 1, "while the hub was down"))
	h.b.HandleConnected(t.Context(), nil)
	h.waitRows(core.ToDiscord, core.StateDelivered, 1)
	if le := h.b.Stats().LastError; !strings.Contains(le, "Missing Access") {
		t.Errorf("last error %q", le)
	}
}

// TestCatchUpResoniteAfterReconnect: every connection of the hub (the first one and reconnects)
// asks for a Resonite catch-up, which picks up what the hub did not push.
func TestCatchUpResoniteAfterReconnect(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	h.waitFor("the start-up catch-up", func() bool { return len(h.res.allQueries()) == 1 })
	h.res.addHistory(rmsg("U-Alice", 1, "while the hub was down"))
	h.b.HandleConnected(t.Context(), nil)
	h.waitRows(core.ToDiscord, core.StateDelivered, 1)
	h.res.addHistory(rmsg("U-Bob", 2, "before the first connect"))
	h.b.HandleConnected(t.Context(), nil)
	h.waitRows(core.ToDiscord, core.StateDelivered, 2)
	if got := contents(h.discord.postsIn("C-B")); !reflect.DeepEqual(got, []string{"before the first connect"}) {
		t.Errorf("posts in C-B %q", got)
	}
}

// TestCatchUpLiveAndHistoryInterleaved: live messages that arrive while the catch-up stores
// older ones still go out in send order.
func TestCatchUpLiveAndHistoryInterleaved(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	gate := make(chan struct{})
	var once sync.Once
	h.discord.postFn = func(context.Context, string, core.Post, int) error {
		once.Do(func() { <-gate })
		return nil
	}
	h.res.addHistory(rmsg("U-Alice", 1, "h1"), rmsg("U-Alice", 2, "h2"), rmsg("U-Alice", 3, "h3"))
	h.received(rmsg("U-Alice", 4, "live4"))
	h.start()
	h.received(rmsg("U-Alice", 5, "live5"))
	h.waitFor("the catch-up stored the history", func() bool { return h.rowCount(core.ToDiscord) == 5 })
	close(gate)
	h.waitRows(core.ToDiscord, core.StateDelivered, 5)
	// The start is a gap: the live rows wait for the catch-up, then everything goes out in
	// source order.
	got := lines(h.discord.postsIn("C-A"))
	if want := []string{"h1", "h2", "h3", "live4", "live5"}; !reflect.DeepEqual(got, want) {
		t.Errorf("lines posted %q, want %q", got, want)
	}
}

// TestResonitePolledWithoutReconnect: a message the live connection never delivered (and no
// reconnect followed) is found by the periodic read of the mailbox.
func TestResonitePolledWithoutReconnect(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.ResonitePoll = 20 * time.Millisecond })
	h.start()
	h.waitFor("the start-up catch-up", func() bool { return len(h.res.allQueries()) > 0 })
	h.res.addHistory(textFrom("U-Alice", "MSG-missed", "never pushed", time.Now()))
	h.waitFor("the missed message posted", func() bool { return len(h.discord.postsIn("C-A")) == 1 })
}
