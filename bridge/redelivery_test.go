package bridge

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// crashedRow stores a to_discord row as a crashed process leaves it after the rescue: pending,
// taken once already.
func (h *harness) crashedRow(m core.ContactMessage) int64 {
	h.t.Helper()
	ctx := context.Background()
	id := h.enqueue(core.OutboxRow{Direction: core.ToDiscord, SourceID: m.ID + ":1", PairingID: 1,
		Payload: mustEncodeToDiscord(h.t, m), SourceTime: m.SentAt})
	claimed, err := h.store.pg.Claim(ctx, core.ToDiscord, 1, time.Microsecond)
	if err != nil || len(claimed) != 1 || claimed[0].ID != id {
		h.t.Fatalf("claiming the row the crashed process took: %v %v", claimed, err)
	}
	if _, err := h.store.RescueExpired(ctx); err != nil {
		h.t.Fatal(err)
	}
	if r := h.row(core.ToDiscord, m.ID+":1"); r.State != core.StatePending || r.Claims != 1 {
		h.t.Fatalf("crashed row is %s with %d claims, want pending with 1", r.State, r.Claims)
	}
	return id
}

// TestRedeliveryDoesNotPostTwice: a row whose earlier try posted (but crashed before recording
// it) is settled with that post; one whose earlier try did not post is posted; an identical post
// that belongs to another message does not count.
func TestRedeliveryDoesNotPostTwice(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		history   []core.DiscordMessage
		otherRow  bool // the matching post is another row's delivery
		wantPosts int
	}{
		{"posted before the crash", []core.DiscordMessage{{ChannelID: "C-A", WebhookID: "W-A", FromSelf: true, Content: "hello again"}}, false, 0},
		{"posted through the pairing's webhook, not yet known as ours", []core.DiscordMessage{{ChannelID: "C-A", WebhookID: "W-A", Content: "hello again"}}, false, 0},
		{"posted as the bot (no webhook)", []core.DiscordMessage{{ChannelID: "C-A", FromSelf: true, Content: "**Alice**: hello again"}}, false, 0},
		{"not posted before the crash", nil, false, 1},
		{"someone else's words", []core.DiscordMessage{{ChannelID: "C-A", Content: "hello again"}}, false, 1},
		{"the same text is another message's post", []core.DiscordMessage{{ChannelID: "C-A", WebhookID: "W-A", FromSelf: true, Content: "hello again"}}, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The earlier try's post: a Discord id of now, well inside the window read back.
			postID := snowflakeAt(time.Now())
			for i := range tc.history {
				tc.history[i].ID = postID
			}
			h := newHarness(t, nil)
			h.discord.setHistory("C-A", tc.history...)
			if tc.otherRow {
				other := h.enqueue(core.OutboxRow{Direction: core.ToDiscord, SourceID: "MSG-earlier:1", PairingID: 1,
					Payload: mustEncodeToDiscord(t, rmsg("U-Alice", 0, "hello again"))})
				if err := h.store.MarkDelivered(context.Background(), other, postID); err != nil {
					t.Fatal(err)
				}
			}
			m := textFrom("U-Alice", "MSG-crashed", "hello again", time.Now())
			h.crashedRow(m)
			h.start()
			h.waitRows(core.ToDiscord, core.StateDelivered, 1+boolInt(tc.otherRow))
			if n := len(h.discord.postsIn("C-A")); n != tc.wantPosts {
				t.Errorf("%d posts, want %d", n, tc.wantPosts)
			}
			row := h.row(core.ToDiscord, m.ID+":1")
			if tc.wantPosts == 0 && row.TargetID != postID {
				t.Errorf("row settled with %q, want the earlier post %s", row.TargetID, postID)
			}
			if tc.wantPosts == 1 && row.TargetID == postID {
				t.Errorf("row settled with the post %s that is not its own", postID)
			}
		})
	}
}

// TestRedeliveryOfAJoinedPost: two rows a crashed process had posted joined in one post, and
// a third stored after the crash: only the third is posted, and the first two are settled with
// the earlier post, whichever way the new try would have joined them.
func TestRedeliveryOfAJoinedPost(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	one, two := textFrom("U-Alice", "MSG-c1", "one", time.Now()), textFrom("U-Alice", "MSG-c2", "two", time.Now().Add(time.Millisecond))
	for _, m := range []core.ContactMessage{one, two} {
		h.enqueue(core.OutboxRow{Direction: core.ToDiscord, SourceID: m.ID + ":1", PairingID: 1,
			Payload: mustEncodeToDiscord(t, m), SourceTime: m.SentAt})
	}
	if claimed, err := h.store.pg.ClaimBatch(ctx, core.ToDiscord, 1, 10, time.Microsecond, nil); err != nil || len(claimed) != 2 {
		t.Fatalf("claiming the rows the crashed process took: %v %v", claimed, err)
	}
	if _, err := h.store.RescueExpired(ctx); err != nil {
		t.Fatal(err)
	}
	postID := snowflakeAt(time.Now())
	h.discord.setHistory("C-A", core.DiscordMessage{ID: postID, ChannelID: "C-A", WebhookID: "W-A", Content: "one\ntwo"})
	h.received(textFrom("U-Alice", "MSG-c3", "three", time.Now().Add(2*time.Millisecond)))
	h.start()
	h.waitRows(core.ToDiscord, core.StateDelivered, 3)
	if got := contents(h.discord.postsIn("C-A")); !reflect.DeepEqual(got, []string{"three"}) {
		t.Errorf("posts %q, want only the message stored after the crash", got)
	}
	r1, r2 := h.row(core.ToDiscord, one.ID+":1"), h.row(core.ToDiscord, two.ID+":1")
	if r1.TargetID != postID || r2.TargetID != postID || r2.CoalescedInto != r1.ID {
		t.Errorf("rows settled with %q and %q (coalesced into %d), want the earlier post %s carrying both", r1.TargetID, r2.TargetID, r2.CoalescedInto, postID)
	}
}

// TestRedeliveryInABusyChannel: the earlier try's post lies behind more members' messages than
// one page of history holds; it is still found, and nothing is posted twice.
func TestRedeliveryInABusyChannel(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	m := textFrom("U-Alice", "MSG-busy", "hello again", time.Now())
	h.crashedRow(m)
	base := time.Now()
	var history []core.DiscordMessage
	for i := range 250 { // members talking after the row was stored, before the earlier post
		history = append(history, core.DiscordMessage{ID: snowflakeAt(base.Add(time.Duration(i) * time.Millisecond)), ChannelID: "C-A",
			AuthorName: "Kim", Content: "chatter " + strconv.Itoa(i)})
	}
	postID := snowflakeAt(base.Add(time.Second))
	history = append(history, core.DiscordMessage{ID: postID, ChannelID: "C-A", WebhookID: "W-A", Content: "hello again"})
	h.discord.setHistory("C-A", history...)
	h.start()
	h.waitRows(core.ToDiscord, core.StateDelivered, 1)
	if n := len(h.discord.postsIn("C-A")); n != 0 {
		t.Errorf("%d posts, want none: the earlier post was made", n)
	}
	if row := h.row(core.ToDiscord, m.ID+":1"); row.TargetID != postID {
		t.Errorf("row settled with %q, want the earlier post %s", row.TargetID, postID)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

var errRetryable = errors.New("temporarily unavailable")

// TestGivesUpAfterMaxAttempts: a message that keeps failing is given up, the sender told, and
// the pairing moves on instead of waiting behind it forever.
func TestGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.MaxAttempts = 3 })
	h.res.sendFn = func(_ context.Context, m sentText, _ int) error {
		if strings.Contains(m.Text, "doomed") {
			return errRetryable
		}
		return nil
	}
	h.start()
	ctx := t.Context()
	if err := h.b.HandleDiscordMessage(ctx, core.DiscordMessage{ID: "5001", ChannelID: "C-A", AuthorName: "Dana", Content: "doomed", Timestamp: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := h.b.HandleDiscordMessage(ctx, core.DiscordMessage{ID: "5002", ChannelID: "C-A", AuthorName: "Dana", Content: "fine", Timestamp: time.Now().Add(time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	h.waitRows(core.ToResonite, core.StateFailed, 1)
	h.waitRows(core.ToResonite, core.StateDelivered, 1)
	failed := h.row(core.ToResonite, "5001")
	if failed.Attempts != 2 || !strings.Contains(failed.LastError, "gave up after 3 attempts") {
		t.Errorf("failed row: attempts %d, error %q", failed.Attempts, failed.LastError)
	}
	if n := h.res.sendCalls("U-Alice"); n != 4 {
		t.Errorf("SendText calls %d, want 3 for the doomed message and 1 for the next", n)
	}
	h.waitFor("the ⚠ reply", func() bool { return len(h.discord.allReplies()) == 1 })
	if r := h.discord.allReplies()[0]; r.MessageID != "5001" || !strings.Contains(r.Content, "⚠ Not delivered") {
		t.Errorf("reply %+v", r)
	}
}

func TestRichTextFromDiscordIsNotRendered(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"hello", "Dana: hello"},
		{"I <3 you", "Dana: I <3 you"},
		{"I <3 you, a <- b", "Dana: I <3 you, a <- b"},
		{"a < b > c", "Dana: <noparse>a <\u200b b > c</noparse>"},
		// Wider than Resonite's own tags on purpose (see mayHoldTag): a false match only costs
		// a <noparse>, which Resonite shows as the same text.
		{"<hello> there", "Dana: <noparse><\u200bhello> there</noparse>"},
		{"see <https://example.com>", "Dana: <noparse>see <\u200bhttps://example.com></noparse>"},
		{"<size=900>HUGE</size>", "Dana: <noparse><\u200bsize=900>HUGE<\u200b/size></noparse>"},
		{"</noparse><size=900>escape", "Dana: <noparse><\u200b/noparse><\u200bsize=900>escape</noparse>"},
		{"</NOPARSE><b>x", "Dana: <noparse><\u200b/NOPARSE><\u200bb>x</noparse>"},
		{"< / noparse >x", "Dana: <noparse><\u200b / noparse >x</noparse>"},
	} {
		if got := FormatForResonite(core.DiscordMessage{AuthorName: "Dana", Content: tc.in}); got != tc.want {
			t.Errorf("FormatForResonite(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
