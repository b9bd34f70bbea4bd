package bridge

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

func TestRelayDiscordToResonite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		m    core.DiscordMessage
		want string // the text sent to U-Alice; "" when nothing is relayed
	}{
		{"member message", dmsg(1, "C-A", "Kim", "hello"), "Kim: hello"},
		{"another bot's webhook is relayed", func() core.DiscordMessage {
			m := dmsg(1, "C-A", "GitHub", "new issue")
			m.WebhookID = "W-GitHub"
			return m
		}(), "GitHub: new issue"},
		{"reply and attachment", func() core.DiscordMessage {
			m := dmsg(1, "C-A", "Kim", "this one")
			m.ReplyTo = &core.DiscordReply{AuthorName: "Alice", Content: "which?"}
			m.Attachments = []string{"https://cdn.discordapp.com/a/1.png"}
			return m
		}(), "Kim: (replying to Alice: “which?”) this one\nKim: 📎 https://cdn.discordapp.com/a/1.png"},
		{"the bot itself", func() core.DiscordMessage {
			m := dmsg(1, "C-A", "Bridge", "⚠ Not delivered")
			m.FromSelf = true
			return m
		}(), ""},
		{"the pairing's own webhook (a relayed Resonite message)", func() core.DiscordMessage {
			m := dmsg(1, "C-A", "Alice", "hi from Resonite")
			m.WebhookID = "W-A"
			return m
		}(), ""},
		{"unpaired channel", dmsg(1, "C-Elsewhere", "Kim", "hello"), ""},
		{"nothing to relay", dmsg(1, "C-A", "Kim", ""), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			h.start()
			h.discordIn(tt.m)
			// What is not stored once the handler's rows are committed is never sent.
			rows := h.rowCount(core.ToResonite)
			if tt.want == "" {
				if rows != 0 {
					t.Fatalf("stored %d rows, want none", rows)
				}
				return
			}
			if rows != 1 {
				t.Fatalf("stored %d rows, want 1", rows)
			}
			h.waitRows(core.ToResonite, core.StateDelivered, 1)
			sent := h.res.sentTo("U-Alice")
			want := sentText{ID: ResoniteMessageID(core.RowSourceID(tt.m.ID, 1)), ContactID: "U-Alice", Text: tt.want}
			if len(sent) != 1 || sent[0] != want {
				t.Fatalf("sent %+v, want %+v", sent, want)
			}
			if row := h.row(core.ToResonite, tt.m.ID); row.TargetID != want.ID || row.PairingID != 1 {
				t.Errorf("row target %q pairing %d, want %q and 1", row.TargetID, row.PairingID, want.ID)
			}
		})
	}
}

func TestRelayResoniteToDiscord(t *testing.T) {
	t.Parallel()
	aliceContact := core.Contact{ID: "U-Alice", Username: "Alice_VR", State: core.ContactFriend, AvatarURL: "https://assets.resonite.com/face"}
	tests := []struct {
		name       string
		before     []core.Contact
		m          core.ContactMessage
		wantPost   *core.Post // in C-A; nil when nothing is relayed
		wantReadID string
	}{
		{
			"contact message under the contact's name and avatar", []core.Contact{aliceContact},
			rmsg("U-Alice", 1, "hi @everyone"),
			&core.Post{Username: "Alice_VR", AvatarURL: "https://assets.resonite.com/face", Content: "hi @\u200beveryone"},
			"MSG-U-Alice-1",
		},
		{
			"contact not in the contact list yet: the pairing's name", nil,
			rmsg("U-Alice", 1, "hi"),
			&core.Post{Username: "Alice", Content: "hi"},
			"MSG-U-Alice-1",
		},
		{"not a paired contact", nil, rmsg("U-Stranger", 1, "hi"), nil, ""},
		{"the bridge's own message", nil, rmsg(botID, 1, "echo"), nil, ""},
		{
			"a live push is relayed even when the sender's clock is behind the pairing", nil,
			textFrom("U-Alice", "MSG-skewed", "just linked", pairingEpoch.Add(-time.Hour)),
			&core.Post{Username: "Alice", Content: "just linked"},
			"MSG-skewed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			h.start()
			for _, c := range tt.before {
				h.b.HandleContact(t.Context(), c)
			}
			h.received(tt.m)
			if tt.wantPost == nil {
				if n := h.rowCount(core.ToDiscord); n != 0 {
					t.Fatalf("stored %d rows, want none", n)
				}
				return
			}
			h.waitRows(core.ToDiscord, core.StateDelivered, 1)
			posts := h.discord.postsIn("C-A")
			if len(posts) != 1 || !reflect.DeepEqual(posts[0].Post, *tt.wantPost) {
				t.Fatalf("posts in C-A = %#v, want %#v", posts, *tt.wantPost)
			}
			if row := h.row(core.ToDiscord, tt.m.ID+":1"); row.TargetID != posts[0].ID {
				t.Errorf("row target %q, want the post's id %q", row.TargetID, posts[0].ID)
			}
			h.waitFor("the message marked read", func() bool { return len(h.res.readIDs()) == 1 })
			b := h.res.allReads()[0]
			if b.SenderID != tt.m.SenderID || !reflect.DeepEqual(b.IDs, []string{tt.wantReadID}) {
				t.Errorf("MarkRead(%s %v), want sender %s and [%s]", b.SenderID, b.IDs, tt.m.SenderID, tt.wantReadID)
			}
		})
	}
}

// TestRelayOneContactSeveralChannels: a contact paired with two channels is posted in both and
// its message marked read once.
func TestRelayOneContactSeveralChannels(t *testing.T) {
	t.Parallel()
	// One read-receipt batch (flushed at Stop) takes both deliveries, however far apart they
	// land; a receipt is deduplicated within its batch.
	h := newHarness(t, func(o *Options) { o.MarkReadDelay = time.Hour })
	h.addPairing(core.Pairing{GuildID: "G2", ChannelID: "C-A2", ContactID: "U-Alice", ContactUsername: "Alice", WebhookID: "W-A2"}, 3)
	h.start()
	h.received(rmsg("U-Alice", 1, "hi both"))
	h.waitRows(core.ToDiscord, core.StateDelivered, 2)
	for _, ch := range []string{"C-A", "C-A2"} {
		if got := contents(h.discord.postsIn(ch)); !reflect.DeepEqual(got, []string{"hi both"}) {
			t.Errorf("posts in %s = %q", ch, got)
		}
	}
	h.stop() // flushes the read receipts
	if ids := h.res.readIDs(); !reflect.DeepEqual(ids, []string{"MSG-U-Alice-1"}) {
		t.Errorf("read ids = %v, want the message once", ids)
	}
}

func TestIdempotentDiscordMessage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	m := dmsg(1, "C-A", "Kim", "only once")
	h.discordIn(m, m)
	h.waitRows(core.ToResonite, core.StateDelivered, 1)
	// The gateway reconnects; the catch-up reads the same message again, and a newer one.
	h.discord.addHistory("C-A", m, dmsg(2, "C-A", "Kim", "missed"))
	h.b.OnDiscordReconnect(t.Context())
	h.waitRows(core.ToResonite, core.StateDelivered, 2)
	h.discordIn(m)
	h.stop()
	if got, want := sentContents(h.res.sentTo("U-Alice")), []string{"Kim: only once", "Kim: missed"}; !reflect.DeepEqual(got, want) {
		t.Errorf("sent %q, want %q", got, want)
	}
	if n := h.res.sendCalls("U-Alice"); n != 2 {
		t.Errorf("SendText calls = %d, want 2", n)
	}
	if n := h.rowCount(core.ToResonite); n != 2 {
		t.Errorf("rows = %d, want 2", n)
	}
}

func TestIdempotentResoniteMessage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	m := rmsg("U-Alice", 1, "only once")
	h.received(m, m)
	h.waitRows(core.ToDiscord, core.StateDelivered, 1)
	// The hub reconnects; the REST history has the same message, and a newer one.
	h.res.addHistory(m, rmsg("U-Alice", 2, "missed"))
	h.b.HandleConnected(t.Context(), nil)
	h.waitRows(core.ToDiscord, core.StateDelivered, 2)
	h.received(m)
	h.stop()
	if got, want := contents(h.discord.postsIn("C-A")), []string{"only once", "missed"}; !reflect.DeepEqual(got, want) {
		t.Errorf("posts %q, want %q", got, want)
	}
	if n := h.discord.callsIn("C-A"); n != 2 {
		t.Errorf("Post calls = %d, want 2", n)
	}
}

// TestNoLoopThroughAStaleWebhook: after the pairing's webhook was made again, the posts of the
// old one that catch-up reads back are not sent to Resonite.
func TestNoLoopThroughAStaleWebhook(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	h.received(rmsg("U-Alice", 1, "from Resonite"))
	h.waitRows(core.ToDiscord, core.StateDelivered, 1)
	posted := h.discord.postsIn("C-A")[0]
	echo := core.DiscordMessage{ID: posted.ID, ChannelID: "C-A", AuthorName: "Alice", WebhookID: "W-old", Content: posted.Content, Timestamp: at(2)}
	h.discordIn(echo)
	if n := h.rowCount(core.ToResonite); n != 0 {
		t.Fatalf("our own post was stored for Resonite: %d rows", n)
	}
}

// TestOrderPerPairingConcurrently: many messages both ways for several pairings at once, fed
// concurrently per pairing, arrive in order per pairing.
func TestOrderPerPairingConcurrently(t *testing.T) {
	t.Parallel()
	for _, concurrency := range []int{1, 2, 8} {
		t.Run("concurrency "+strconv.Itoa(concurrency), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(o *Options) { o.Concurrency = concurrency })
			contacts := []string{"U-Alice", "U-Bob", "U-Carol", "U-Dave"}
			channels := []string{"C-A", "C-B", "C-C", "C-D"}
			for i := 2; i < len(contacts); i++ {
				h.addPairing(core.Pairing{GuildID: "G1", ChannelID: channels[i], ContactID: contacts[i], ContactUsername: contacts[i][2:], WebhookID: "W-" + channels[i]}, int64(i+1))
			}
			// Deliveries yield in the middle, so that pairings interleave.
			h.res.sendFn = func(context.Context, sentText, int) error { runtime.Gosched(); return nil }
			h.discord.postFn = func(context.Context, string, core.Post, int) error { runtime.Gosched(); return nil }
			h.start()
			const n = 40
			var wg sync.WaitGroup
			for p := range contacts {
				wg.Go(func() {
					for i := range n {
						if err := h.b.HandleDiscordMessage(t.Context(), dmsg(p*1000+i, channels[p], "Kim", fmt.Sprintf("d%d-%d", p, i))); err != nil {
							t.Error(err)
						}
						if err := h.b.HandleContactMessage(t.Context(), rmsg(contacts[p], p*1000+i, fmt.Sprintf("r%d-%d", p, i))); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			h.waitRows(core.ToResonite, core.StateDelivered, n*len(contacts))
			h.waitRows(core.ToDiscord, core.StateDelivered, n*len(contacts))
			for p := range contacts {
				var wantD, wantR []string
				for i := range n {
					wantR = append(wantR, fmt.Sprintf("Kim: d%d-%d", p, i))
					wantD = append(wantD, fmt.Sprintf("r%d-%d", p, i))
				}
				if got := sentContents(h.res.sentTo(contacts[p])); !reflect.DeepEqual(got, wantR) {
					t.Errorf("sent to %s in this order:\n%q\nwant\n%q", contacts[p], got, wantR)
				}
				if got := lines(h.discord.postsIn(channels[p])); !reflect.DeepEqual(got, wantD) {
					t.Errorf("posted in %s in this order:\n%q\nwant\n%q", channels[p], got, wantD)
				}
			}
		})
	}
}

// TestOrderFollowsSourceTime: a message stored late (catch-up) with an older timestamp goes out
// before the newer ones still queued.
func TestOrderFollowsSourceTime(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	entered, gate := make(chan struct{}), make(chan struct{})
	h.res.sendFn = func(_ context.Context, _ sentText, call int) error {
		if call == 1 {
			close(entered)
			<-gate
		}
		return nil
	}
	h.start()
	h.discordIn(dmsg(1, "C-A", "Kim", "one"))
	<-entered // the first message is in flight
	h.discordIn(dmsg(4, "C-A", "Kim", "four"), dmsg(3, "C-A", "Kim", "three"), dmsg(2, "C-A", "Kim", "two"))
	close(gate)
	h.waitRows(core.ToResonite, core.StateDelivered, 4)
	want := []string{"Kim: one", "Kim: two", "Kim: three", "Kim: four"}
	if got := sentContents(h.res.sentTo("U-Alice")); !reflect.DeepEqual(got, want) {
		t.Errorf("sent %q, want %q", got, want)
	}
}

// TestStuckPairingDoesNotDelayOthers: Alice's head fails and waits for its retry; Bob's messages
// all go out meanwhile, Alice's later ones are not tried, and hers go out in order once the
// failures stop. Robust by construction: the failed head waits (an hour) until the test makes
// it due, so nothing depends on how fast the machine delivers Bob's messages.
func TestStuckPairingDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	for _, dir := range []core.Direction{core.ToResonite, core.ToDiscord} {
		t.Run(string(dir), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			h.store.setRetryDelay(time.Hour)
			release := make(chan struct{})
			var mu sync.Mutex
			var aliceTried []string
			failing := func(what string) error {
				mu.Lock()
				defer mu.Unlock()
				select {
				case <-release:
					return nil
				default:
				}
				aliceTried = append(aliceTried, what)
				return errRetryable
			}
			h.res.sendFn = func(_ context.Context, m sentText, _ int) error {
				if m.ContactID == "U-Alice" {
					return failing(m.Text)
				}
				return nil
			}
			h.discord.postFn = func(_ context.Context, ch string, p core.Post, _ int) error {
				if ch == "C-A" {
					return failing(p.Content)
				}
				return nil
			}
			h.start()
			feed := func(sender, channel string, i int) {
				if dir == core.ToResonite {
					h.discordIn(dmsg(i, channel, "Kim", "m"+strconv.Itoa(i)))
				} else {
					h.received(rmsg(sender, i, "m"+strconv.Itoa(i)))
				}
			}
			for i := range 3 {
				feed("U-Alice", "C-A", i)
			}
			for i := 10; i < 30; i++ {
				feed("U-Bob", "C-B", i)
			}
			head := snow(0)
			if dir == core.ToDiscord {
				head = "MSG-U-Alice-0:1"
			}
			h.waitFor("Bob's messages delivered and Alice's head failed once", func() bool {
				return h.rowsIn(dir, core.StateDelivered) == 20 && h.row(dir, head).Attempts == 1
			})
			mu.Lock()
			tried := slices.Clone(aliceTried)
			mu.Unlock()
			want := "m0"
			if dir == core.ToResonite {
				want = "Kim: m0"
			}
			if len(tried) == 0 {
				t.Fatal("Alice's head was never tried")
			}
			for _, c := range tried {
				// Rows behind the head may go out in the head's own post, never before it.
				if first, _, _ := strings.Cut(c, "\n"); first != want {
					t.Fatalf("Alice's %q was tried while her head %q was not delivered", c, want)
				}
			}
			if n := h.rowsIn(dir, core.StateDelivered); n != 20 {
				t.Fatalf("%d rows delivered while Alice's head waits, want Bob's 20", n)
			}
			// The failures stop and the retry comes due.
			mu.Lock()
			close(release)
			mu.Unlock()
			if err := h.store.pg.Postpone(t.Context(), h.row(dir, head).ID, time.Now()); err != nil {
				t.Fatal(err)
			}
			signal(h.b.wake[dir])
			h.waitRows(dir, core.StateDelivered, 23)
			var got []string
			if dir == core.ToResonite {
				got = sentContents(h.res.sentTo("U-Alice"))
			} else {
				got = lines(h.discord.postsIn("C-A"))
			}
			wantAll := []string{"m0", "m1", "m2"}
			if dir == core.ToResonite {
				wantAll = []string{"Kim: m0", "Kim: m1", "Kim: m2"}
			}
			if !reflect.DeepEqual(got, wantAll) {
				t.Errorf("Alice got %q, want %q", got, wantAll)
			}
			if st := h.b.Stats(); st.ToResonite.Retried+st.ToDiscord.Retried == 0 || !strings.Contains(st.LastError, "will retry") {
				t.Errorf("stats %+v: want retries and the last error", st)
			}
		})
	}
}

// TestFailuresThenSuccess: retriable errors are retried with an attempt counted each time; a
// rate limit postpones the row for the time asked without spending an attempt. Either way the
// message is delivered once in the end.
func TestFailuresThenSuccess(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		cause         error
		failing       int // first calls that fail
		wantAttempts  int
		wantRetried   uint64
		wantPostponed uint64
	}{
		{"retriable error", fmt.Errorf("hub: %w", errRetryable), 2, 2, 2, 0},
		{"rate limit", core.RetryAfter(5*time.Millisecond, errors.New("posting: rate limited")), 1, 0, 0, 1},
		{"other side unavailable", core.Unavailable(errors.New("hub not connected")), 1, 0, 0, 1},
	}
	for _, tt := range tests {
		for _, dir := range []core.Direction{core.ToResonite, core.ToDiscord} {
			t.Run(tt.name+" "+string(dir), func(t *testing.T) {
				t.Parallel()
				h := newHarness(t, nil)
				fail := func(call int) error {
					if call <= tt.failing {
						return tt.cause
					}
					return nil
				}
				h.res.sendFn = func(_ context.Context, _ sentText, call int) error { return fail(call) }
				h.discord.postFn = func(_ context.Context, _ string, _ core.Post, call int) error { return fail(call) }
				h.start()
				before := time.Now()
				var src string
				if dir == core.ToResonite {
					m := dmsg(1, "C-A", "Kim", "persist")
					src = core.RowSourceID(m.ID, 1)
					h.discordIn(m)
				} else {
					m := rmsg("U-Alice", 1, "persist")
					src = m.ID + ":1"
					h.received(m)
				}
				if _, isOutage := tt.cause.(*core.UnavailableError); isOutage {
					// An outage waits core.OutageWait (5 s): once the row is postponed, make it
					// due now, as if that time had passed.
					h.waitFor("the row postponed", func() bool {
						return h.discord.callsIn("C-A")+h.res.sendCalls("U-Alice") == 1 && h.row(dir, src).State == core.StatePending
					})
					if next := h.row(dir, src).NextAttemptAt; next.Before(before.Add(core.OutageWait - time.Millisecond)) {
						t.Errorf("an outage postponed the row until %s, want %s after %s", next, core.OutageWait, before)
					}
					if err := h.store.pg.Postpone(t.Context(), h.row(dir, src).ID, time.Now()); err != nil {
						t.Fatal(err)
					}
					signal(h.b.wake[dir])
				}
				h.waitRows(dir, core.StateDelivered, 1)
				if row := h.row(dir, src); row.Attempts != tt.wantAttempts {
					t.Errorf("row attempts %d, want %d", row.Attempts, tt.wantAttempts)
				}
				if dir == core.ToResonite {
					sent := h.res.sentTo("U-Alice")
					if len(sent) != 1 || sent[0].ID != ResoniteMessageID(src) {
						t.Errorf("sent %+v, want one message under the derived id", sent)
					}
					if n := h.res.sendCalls("U-Alice"); n != tt.failing+1 {
						t.Errorf("SendText calls %d, want %d", n, tt.failing+1)
					}
				} else {
					if got := contents(h.discord.postsIn("C-A")); !reflect.DeepEqual(got, []string{"persist"}) {
						t.Errorf("posts %q", got)
					}
					if n := h.discord.callsIn("C-A"); n != tt.failing+1 {
						t.Errorf("Post calls %d, want %d", n, tt.failing+1)
					}
				}
				st := h.b.Stats()
				ds := st.ToDiscord
				if dir == core.ToResonite {
					ds = st.ToResonite
				}
				if ds.Retried != tt.wantRetried || ds.Postponed != tt.wantPostponed || ds.Delivered != 1 || ds.Failed != 0 {
					t.Errorf("stats %+v", ds)
				}
				if tt.wantRetried > 0 && !strings.Contains(st.LastError, "will retry") {
					t.Errorf("last error %q, want the retried cause", st.LastError)
				}
			})
		}
	}
}

// TestRetriedSendKeepsTheID: every retry sends the same Resonite message id.
func TestRetriedSendKeepsTheID(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	var mu sync.Mutex
	var ids []string
	h.res.sendFn = func(_ context.Context, m sentText, call int) error {
		mu.Lock()
		ids = append(ids, m.ID)
		mu.Unlock()
		if call < 3 {
			return errRetryable
		}
		return nil
	}
	h.start()
	m := dmsg(1, "C-A", "Kim", "x")
	h.discordIn(m)
	h.waitRows(core.ToResonite, core.StateDelivered, 1)
	mu.Lock()
	defer mu.Unlock()
	want := ResoniteMessageID(core.RowSourceID(m.ID, 1))
	if len(ids) != 3 || ids[0] != want || ids[1] != want || ids[2] != want {
		t.Errorf("ids sent = %v, want %s three times", ids, want)
	}
}

var errContactRemoved = errors.New("contact removed")

func TestPermanentFailure(t *testing.T) {
	t.Parallel()
	t.Run("to Resonite: failed, warned under the message, next one goes", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil)
		h.res.sendFn = func(_ context.Context, m sentText, _ int) error {
			if strings.HasSuffix(m.Text, "doomed") {
				return core.Permanent(fmt.Errorf("hub refused: %w", errContactRemoved))
			}
			return nil
		}
		h.start()
		doomed, next := dmsg(1, "C-A", "Kim", "doomed"), dmsg(2, "C-A", "Kim", "fine")
		h.discordIn(doomed, next)
		h.waitRows(core.ToResonite, core.StateFailed, 1)
		h.waitRows(core.ToResonite, core.StateDelivered, 1)
		if row := h.row(core.ToResonite, doomed.ID); row.State != core.StateFailed || !strings.Contains(row.LastError, "contact removed") || row.Attempts != 0 {
			t.Errorf("doomed row %s %q after %d attempts, want failed at the first", row.State, row.LastError, row.Attempts)
		}
		if got := sentContents(h.res.sentTo("U-Alice")); !reflect.DeepEqual(got, []string{"Kim: fine"}) {
			t.Errorf("sent %q", got)
		}
		h.waitFor("the warning reply", func() bool { return len(h.discord.allReplies()) == 1 })
		r := h.discord.allReplies()[0]
		if r.ChannelID != "C-A" || r.MessageID != doomed.ID || !strings.HasPrefix(r.Content, "⚠") || !strings.Contains(r.Content, "contact removed") {
			t.Errorf("reply %+v", r)
		}
		if n := utf8.RuneCountInString(r.Content); n > 200 {
			t.Errorf("warning is %d runes, want a short one", n)
		}
		st := h.b.Stats()
		if st.ToResonite.Failed != 1 || !strings.Contains(st.LastError, "contact removed") || st.LastErrorAt.IsZero() {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("to Discord: failed, next one goes, no reply", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil)
		// Discord refuses any post with the doomed text, also when it is joined with others.
		h.discord.postFn = func(_ context.Context, _ string, p core.Post, _ int) error {
			if slices.Contains(strings.Split(p.Content, "\n"), "doomed") {
				return core.Permanent(errContactRemoved)
			}
			return nil
		}
		h.start()
		h.received(rmsg("U-Alice", 1, "doomed"), rmsg("U-Alice", 2, "fine"))
		h.waitRows(core.ToDiscord, core.StateFailed, 1)
		h.waitRows(core.ToDiscord, core.StateDelivered, 1)
		if got := contents(h.discord.postsIn("C-A")); !reflect.DeepEqual(got, []string{"fine"}) {
			t.Errorf("posts %q", got)
		}
		// A contact's message that cannot be posted has nobody on Discord to warn.
		if r := h.discord.allReplies(); len(r) != 0 {
			t.Errorf("replies %+v", r)
		}
		if st := h.b.Stats(); st.ToDiscord.Failed != 1 || !strings.Contains(st.LastError, "contact removed") {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("unpaired meanwhile", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil)
		h.discordIn(dmsg(1, "C-A", "Kim", "too late"))
		// The pairing is deleted between the claim and the delivery. (Deleting it for real
		// deletes its rows too; the store cannot show this state otherwise.)
		h.store.pairingFn = func(id int64) error {
			if id == 1 {
				return fmt.Errorf("pairing %d: %w", id, core.ErrNotFound)
			}
			return nil
		}
		h.start()
		h.waitRows(core.ToResonite, core.StateFailed, 1)
		if row := h.row(core.ToResonite, snow(1)); !strings.Contains(row.LastError, "no longer paired") {
			t.Errorf("last error %q", row.LastError)
		}
		if n := h.res.sendCalls("U-Alice"); n != 0 {
			t.Errorf("%d SendText calls for an unpaired channel", n)
		}
	})
}

// startRateLimited runs a bridge whose first post into C-A, that of first, waits until the
// test has queued the rest (close queued), then is answered with a rate limit.
func startRateLimited(t *testing.T, first core.ContactMessage) (h *harness, queued chan struct{}) {
	t.Helper()
	h = newHarness(t, nil)
	queued = make(chan struct{})
	tried := make(chan struct{})
	h.discord.postFn = func(_ context.Context, ch string, _ core.Post, call int) error {
		if ch == "C-A" && call == 1 {
			close(tried)
			<-queued
			return core.RetryAfter(time.Millisecond, errors.New("rate limited"))
		}
		return nil
	}
	h.start()
	h.received(first)
	<-tried
	return h, queued
}

// TestLongTextFailureInTheMiddle: a long message is several posts; when one in the middle
// fails, the retry goes on from there instead of posting the first ones again.
func TestLongTextFailureInTheMiddle(t *testing.T) {
	t.Parallel()
	for _, cause := range []error{core.RetryAfter(time.Millisecond, errors.New("rate limited")), errRetryable} {
		t.Run(cause.Error(), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			h.discord.postFn = func(_ context.Context, _ string, _ core.Post, call int) error {
				if call == 2 {
					return cause
				}
				return nil
			}
			h.start()
			text := strings.Repeat("lorem ipsum dolor ", 250) // 4,500 runes: three posts
			h.received(rmsg("U-Alice", 1, text))
			h.waitRows(core.ToDiscord, core.StateDelivered, 1)
			posts := h.discord.postsIn("C-A")
			if len(posts) != 3 {
				t.Fatalf("%d posts made, want 3", len(posts))
			}
			if got, want := strings.Fields(strings.Join(contents(posts), " ")), strings.Fields(text); !reflect.DeepEqual(got, want) {
				t.Errorf("the posts do not carry the text once: %d words, want %d", len(got), len(want))
			}
			if row := h.row(core.ToDiscord, "MSG-U-Alice-1:1"); row.TargetID != posts[0].ID {
				t.Errorf("row target %q, want the first post %q", row.TargetID, posts[0].ID)
			}
		})
	}
}

func TestRateLimitCoalesces(t *testing.T) {
	t.Parallel()
	voice := core.ContactMessage{ID: "MSG-U-Alice-4", SenderID: "U-Alice", Kind: core.KindSound, SoundURL: "https://assets.resonite.com/v1", SentAt: at(4)}
	long := func(c string) string { return strings.Repeat(c, 900) }
	tests := []struct {
		name      string
		msgs      []core.ContactMessage
		wantPosts []string
	}{
		{
			"same sender's texts in one post",
			[]core.ContactMessage{rmsg("U-Alice", 1, "one"), rmsg("U-Alice", 2, "two"), rmsg("U-Alice", 3, "three"), rmsg("U-Alice", 4, "four")},
			[]string{"one\ntwo\nthree\nfour"},
		},
		{
			"a non-text message breaks the run",
			[]core.ContactMessage{rmsg("U-Alice", 1, "one"), rmsg("U-Alice", 2, "two"), voice, rmsg("U-Alice", 5, "five"), rmsg("U-Alice", 6, "six")},
			[]string{"one\ntwo", "🎤 Voice message: https://assets.resonite.com/v1", "five\nsix"},
		},
		{
			"no post over 2,000 runes",
			[]core.ContactMessage{rmsg("U-Alice", 1, long("a")), rmsg("U-Alice", 2, long("b")), rmsg("U-Alice", 3, long("c"))},
			[]string{long("a") + "\n" + long("b"), long("c")},
		},
		{
			"mentions neutralised in coalesced text",
			[]core.ContactMessage{rmsg("U-Alice", 1, "hey"), rmsg("U-Alice", 2, "@here look")},
			[]string{"hey\n@\u200bhere look"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, queued := startRateLimited(t, tt.msgs[0])
			h.received(tt.msgs[1:]...)
			close(queued)
			h.waitRows(core.ToDiscord, core.StateDelivered, len(tt.msgs))
			posts := h.discord.postsIn("C-A")
			if got := contents(posts); !reflect.DeepEqual(got, tt.wantPosts) {
				t.Fatalf("posts:\n%q\nwant\n%q", got, tt.wantPosts)
			}
			for _, p := range posts {
				if n := utf8.RuneCountInString(p.Content); n > DiscordMaxLen {
					t.Errorf("post of %d runes", n)
				}
			}
			// Every row is delivered and points at the post that carried it.
			byID := map[string]bool{}
			for _, p := range posts {
				byID[p.ID] = true
			}
			for _, m := range tt.msgs {
				if row := h.row(core.ToDiscord, m.ID+":1"); !byID[row.TargetID] || row.Attempts != 0 {
					t.Errorf("row %s: target %q attempts %d", m.ID, row.TargetID, row.Attempts)
				}
			}
			st := h.b.Stats().ToDiscord
			if st.Delivered != uint64(len(tt.msgs)) || st.Coalesced != uint64(len(tt.msgs)-len(tt.wantPosts)) || st.Postponed != 1 {
				t.Errorf("stats %+v", st)
			}
			h.stop()
			var wantRead []string
			for _, m := range tt.msgs {
				wantRead = append(wantRead, m.ID)
			}
			got := h.res.readIDs()
			slices.Sort(got)
			slices.Sort(wantRead)
			if !reflect.DeepEqual(got, wantRead) {
				t.Errorf("read %v, want %v", got, wantRead)
			}
		})
	}
}

// TestCoalesceKeepsSourceOrder: a message stored late with an older timestamp is not skipped
// by coalescing; it goes in its place.
func TestCoalesceKeepsSourceOrder(t *testing.T) {
	t.Parallel()
	h, queued := startRateLimited(t, rmsg("U-Alice", 1, "one"))
	h.received(rmsg("U-Alice", 2, "two"), rmsg("U-Alice", 4, "four"), rmsg("U-Alice", 3, "three"))
	close(queued)
	h.waitRows(core.ToDiscord, core.StateDelivered, 4)
	got := strings.Split(strings.Join(contents(h.discord.postsIn("C-A")), "\n"), "\n")
	if want := []string{"one", "two", "three", "four"}; !reflect.DeepEqual(got, want) {
		t.Errorf("lines posted %q, want %q", got, want)
	}
}

// TestCoalesceStopsAtAnotherSender: the rows of a pairing normally all come from its contact;
// should another sender's row be queued (put there directly), it breaks the run.
func TestCoalesceStopsAtAnotherSender(t *testing.T) {
	t.Parallel()
	h, queued := startRateLimited(t, rmsg("U-Alice", 1, "one"))
	h.received(rmsg("U-Alice", 2, "two"))
	other := rmsg("U-Mallory", 3, "not Alice")
	h.enqueue(core.OutboxRow{Direction: core.ToDiscord, SourceID: other.ID + ":1", PairingID: 1, Payload: mustEncodeToDiscord(t, other), SourceTime: at(3)})
	h.received(rmsg("U-Alice", 4, "four"))
	close(queued)
	h.waitRows(core.ToDiscord, core.StateDelivered, 4)
	if got, want := contents(h.discord.postsIn("C-A")), []string{"one\ntwo", "not Alice", "four"}; !reflect.DeepEqual(got, want) {
		t.Errorf("posts %q, want %q", got, want)
	}
}

// TestMarkMessagesReadBatches: the batching window never closes by itself (an hour), so every
// read receipt is flushed at Stop, in batches of at most 512 ids per sender. Nothing here
// depends on speed: the test waits for the deliveries, then for Stop.
func TestMarkMessagesReadBatches(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.MarkReadDelay = time.Hour; o.Concurrency = 2 })
	h.start()
	const nAlice, nBob = 1100, 3
	var want []string
	for i := range nAlice {
		m := rmsg("U-Alice", i, "a"+strconv.Itoa(i))
		want = append(want, m.ID)
		h.received(m)
	}
	for i := range nBob {
		m := rmsg("U-Bob", i, "b")
		want = append(want, m.ID)
		h.received(m)
	}
	h.received(rmsg("U-Stranger", 1, "not relayed"))
	h.waitRows(core.ToDiscord, core.StateDelivered, nAlice+nBob)
	if n := len(h.res.allReads()); n != 0 {
		t.Fatalf("%d read batches sent before the window closed", n)
	}
	h.stop()
	var got []string
	sizes := map[string][]int{}
	for _, b := range h.res.allReads() {
		for _, id := range b.IDs {
			if !strings.HasPrefix(id, "MSG-"+b.SenderID+"-") {
				t.Errorf("id %s in the batch of %s", id, b.SenderID)
			}
		}
		sizes[b.SenderID] = append(sizes[b.SenderID], len(b.IDs))
		got = append(got, b.IDs...)
	}
	if !reflect.DeepEqual(sizes["U-Alice"], []int{512, 512, 76}) || !reflect.DeepEqual(sizes["U-Bob"], []int{3}) || len(sizes) != 2 {
		t.Errorf("batch sizes %v", sizes)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read %d ids, want the %d relayed ones", len(got), len(want))
	}
}

// TestLateMessageSentEcho: SendText failed waiting for the confirmation, the row waits for its
// retry, and the echo that arrives later settles it without a second send.
func TestLateMessageSentEcho(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.store.setRetryDelay(time.Hour)
	h.res.sendFn = func(_ context.Context, m sentText, call int) error {
		if call == 1 {
			return fmt.Errorf("resonite: sending message %s: not confirmed: %w", m.ID, errRetryable)
		}
		return nil
	}
	h.start()
	first, second := dmsg(1, "C-A", "Kim", "one"), dmsg(2, "C-A", "Kim", "two")
	h.discordIn(first, second)
	h.waitFor("the first send failed", func() bool {
		r := h.row(core.ToResonite, first.ID)
		return r.State == core.StatePending && r.Attempts == 1
	})
	// Echoes of messages the account sent elsewhere are ignored.
	for _, id := range []string{"MSG-0190aaaa-0000-7000-8000-000000000000", "not-a-message-id", ResoniteMessageID(core.RowSourceID(first.ID, 1))} {
		if err := h.b.HandleSentMessage(t.Context(), id); err != nil {
			t.Fatalf("HandleSentMessage(%s): %v", id, err)
		}
	}
	h.waitRows(core.ToResonite, core.StateDelivered, 2)
	if got := sentContents(h.res.sentTo("U-Alice")); !reflect.DeepEqual(got, []string{"Kim: two"}) {
		t.Errorf("sent %q; the first was confirmed by its echo and must not be sent again", got)
	}
	if n := h.res.sendCalls("U-Alice"); n != 2 {
		t.Errorf("SendText calls = %d, want 2", n)
	}
}

// TestStoreFailureAsksForCatchUp: a Discord message that could not be stored is picked up by
// the channel catch-up; a Resonite one by the Resonite catch-up.
func TestStoreFailureAsksForCatchUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	var mu sync.Mutex
	broken := true
	h.store.setEnqueueFn(func(core.OutboxRow) error {
		mu.Lock()
		defer mu.Unlock()
		if broken {
			return errors.New("database down")
		}
		return nil
	})
	h.start()
	dm := dmsg(1, "C-A", "Kim", "lost?")
	rm := rmsg("U-Alice", 1, "lost?")
	h.discord.addHistory("C-A", dm)
	h.res.addHistory(rm)
	// The handlers do not wait for the commit (group commit, see ingest.go): the failed commit
	// asks for the catch-ups itself.
	if err := h.b.HandleDiscordMessage(t.Context(), dm); err != nil {
		t.Errorf("HandleDiscordMessage: %v", err)
	}
	if err := h.b.HandleContactMessage(t.Context(), rm); err != nil {
		t.Errorf("HandleContactMessage: %v", err)
	}
	h.stored()
	if h.rowCount(core.ToResonite) != 0 || h.rowCount(core.ToDiscord) != 0 {
		t.Fatal("rows stored while the store is down")
	}
	mu.Lock()
	broken = false
	mu.Unlock()
	h.waitRows(core.ToResonite, core.StateDelivered, 1)
	h.waitRows(core.ToDiscord, core.StateDelivered, 1)
	if le := h.b.Stats().LastError; !strings.Contains(le, "database down") {
		t.Errorf("last error %q", le)
	}
}
