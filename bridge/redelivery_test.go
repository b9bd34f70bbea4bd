package bridge

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

// crashedRow stores a to_discord row as a crashed process leaves it after the rescue: pending,
// taken once already.
func (h *harness) crashedRow(m resonite.Message) int64 {
	h.t.Helper()
	id, _, err := h.store.Enqueue(context.Background(), Message{Direction: ToDiscord, SourceID: m.ID + ":1", PairingID: 1,
		Payload: mustJSON(h.t, m), CreatedAt: m.SendTime.Time})
	if err != nil {
		h.t.Fatal(err)
	}
	h.store.mu.Lock()
	for _, r := range h.store.rows {
		if r.ID == id {
			r.Claims = 1
		}
	}
	h.store.mu.Unlock()
	return id
}

// TestRedeliveryDoesNotPostTwice: a row whose earlier try posted (but crashed before recording
// it) is settled with that post; one whose earlier try did not post is posted; an identical post
// that belongs to another message does not count.
func TestRedeliveryDoesNotPostTwice(t *testing.T) {
	t.Parallel()
	postID := snowflakeAt(time.Now()) // the earlier try's post: a Discord id of now
	for _, tc := range []struct {
		name      string
		history   []DiscordMessage
		otherRow  bool // the matching post is another row's delivery
		wantPosts int
	}{
		{"posted before the crash", []DiscordMessage{{ID: postID, ChannelID: "C-A", WebhookID: "W-A", FromSelf: true, Content: "hello again"}}, false, 0},
		{"posted through the pairing's webhook, not yet known as ours", []DiscordMessage{{ID: postID, ChannelID: "C-A", WebhookID: "W-A", Content: "hello again"}}, false, 0},
		{"posted as the bot (no webhook)", []DiscordMessage{{ID: postID, ChannelID: "C-A", FromSelf: true, Content: "**Alice**: hello again"}}, false, 0},
		{"not posted before the crash", nil, false, 1},
		{"someone else's words", []DiscordMessage{{ID: postID, ChannelID: "C-A", Content: "hello again"}}, false, 1},
		{"the same text is another message's post", []DiscordMessage{{ID: postID, ChannelID: "C-A", WebhookID: "W-A", FromSelf: true, Content: "hello again"}}, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			h.discord.history["C-A"] = tc.history
			if tc.otherRow {
				other, _, _ := h.store.Enqueue(context.Background(), Message{Direction: ToDiscord, SourceID: "MSG-earlier:1", PairingID: 1,
					Payload: mustJSON(t, rmsg("U-Alice", 0, "hello again"))})
				if err := h.store.MarkDelivered(context.Background(), other, postID); err != nil {
					t.Fatal(err)
				}
			}
			m := textFrom("U-Alice", "MSG-crashed", "hello again", time.Now())
			id := h.crashedRow(m)
			h.start()
			h.waitRows(ToDiscord, StateDelivered, 1+boolInt(tc.otherRow))
			if n := len(h.discord.postsIn("C-A")); n != tc.wantPosts {
				t.Errorf("%d posts, want %d", n, tc.wantPosts)
			}
			row := h.store.snapshot(ToDiscord)[id-1]
			if tc.wantPosts == 0 && row.TargetID != postID {
				t.Errorf("row settled with %q, want the earlier post %s", row.TargetID, postID)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestGivesUpAfterMaxAttempts: a message that keeps failing is given up, the sender told, and
// the pairing moves on instead of waiting behind it forever.
func TestGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.MaxAttempts = 3 })
	h.store.backoff = time.Millisecond
	h.res.sendFn = func(_ context.Context, m resonite.Message, _ int) error {
		if strings.Contains(m.Content, "doomed") {
			return errRetryable
		}
		return nil
	}
	h.start()
	ctx := context.Background()
	if err := h.b.HandleDiscordMessage(ctx, DiscordMessage{ID: "5001", ChannelID: "C-A", AuthorName: "Dana", Content: "doomed", Timestamp: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := h.b.HandleDiscordMessage(ctx, DiscordMessage{ID: "5002", ChannelID: "C-A", AuthorName: "Dana", Content: "fine", Timestamp: time.Now().Add(time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	h.waitRows(ToResonite, StateFailed, 1)
	h.waitRows(ToResonite, StateDelivered, 1)
	failed := h.row(ToResonite, "5001")
	if failed.Attempts != 2 || !strings.Contains(failed.LastError, "gave up after 3 attempts") {
		t.Errorf("failed row: attempts %d, error %q", failed.Attempts, failed.LastError)
	}
	eventually(t, "the ⚠ reply", func() bool { return len(h.discord.allReplies()) == 1 })
	if r := h.discord.allReplies()[0]; r.MessageID != "5001" || !strings.Contains(r.Content, "⚠ Not delivered") {
		t.Errorf("reply %+v", r)
	}
}

func TestRichTextFromDiscordIsNotRendered(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"hello", "Dana: hello"},
		{"I <3 you, a < b > c", "Dana: I <3 you, a < b > c"},
		{"<size=900>HUGE</size>", "<noparse>Dana: <size=900>HUGE</size></noparse>"},
		{"</noparse><size=900>escape", "<noparse>Dana: </\u200bnoparse><size=900>escape</noparse>"},
		{"</NOPARSE><b>x", "<noparse>Dana: </\u200bNOPARSE><b>x</noparse>"},
	} {
		if got := FormatForResonite(DiscordMessage{AuthorName: "Dana", Content: tc.in}); got != tc.want {
			t.Errorf("FormatForResonite(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
