package bridge

import (
	"context"
	"reflect"
	"testing"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// TestPairingChangesReachRelayAtOnce: with the pairing lookups served from memory, a /link,
// an /unlink or a new webhook (the store's writes) applies to the very next message.
func TestPairingChangesReachRelayAtOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	h.waitFor("the pairing cache in use", func() bool {
		h.b.pairings.mu.Lock()
		defer h.b.pairings.mu.Unlock()
		return h.b.pairings.live
	})
	h.received(rmsg("U-Alice", 1, "one channel"))
	h.discordIn(dmsg(1, "C-A", "Kim", "before"))
	if m, _ := h.b.cachedPairings(t.Context()); m == nil {
		t.Fatal("the pairings are not cached")
	}

	ctx := context.Background()
	if _, err := h.pg.CreatePairing(ctx, core.Pairing{GuildID: "G2", ChannelID: "C-A2", ContactID: "U-Alice", ContactUsername: "Alice", WebhookID: "W-A2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.pg.CreatePairing(ctx, core.Pairing{GuildID: "G2", ChannelID: "C-C", ContactID: "U-Carol", ContactUsername: "Carol", WebhookID: "W-C"}); err != nil {
		t.Fatal(err)
	}
	if err := h.pg.SetPairingWebhook(ctx, "C-A", "W-A-new", "token"); err != nil {
		t.Fatal(err)
	}
	h.received(rmsg("U-Alice", 2, "two channels"))
	h.discordIn(dmsg(2, "C-C", "Kim", "new channel"),
		core.DiscordMessage{ID: snow(3), ChannelID: "C-A", WebhookID: "W-A-new", AuthorName: "Alice", Content: "our own post"})
	if n := h.rowCount(core.ToDiscord); n != 3 {
		t.Errorf("%d rows to Discord, want 3: the second message into both of Alice's channels", n)
	}
	if n := h.rowCount(core.ToResonite); n != 2 {
		t.Errorf("%d rows to Resonite, want 2: the new channel's message, not the new webhook's post", n)
	}

	// Unlinked once delivered: DeletePairing racing a claim of the pairing's rows can deadlock.
	h.waitRows(core.ToDiscord, core.StateDelivered, 3)
	h.waitRows(core.ToResonite, core.StateDelivered, 2)
	if _, err := h.pg.DeletePairings(ctx, "C-A2", ""); err != nil {
		t.Fatal(err)
	}
	h.received(rmsg("U-Alice", 3, "one channel again"))
	h.waitRows(core.ToDiscord, core.StateDelivered, 3) // the unlinked channel's row went with it
	if got := contents(h.discord.postsIn("C-A2")); !reflect.DeepEqual(got, []string{"two channels"}) {
		t.Errorf("posts in the unlinked channel = %q, want only the message from while it was linked", got)
	}
	if n := h.rowCount(core.ToDiscord); n != 3 {
		t.Errorf("%d rows to Discord, want 3: the last message only into C-A", n)
	}
}
