package bridge

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// groupHarness adds two group channels to the usual pairings: C-G and C-H, each holding Alice
// (pairings 3 and 5) and Bob (4 and 6). Alice and Bob are also alone in C-A and C-B.
func groupHarness(t *testing.T) *harness {
	h := newHarness(t, nil)
	h.opts.Versions = h.pg
	h.b = h.newBridge()
	h.addPairing(core.Pairing{GuildID: "G1", ChannelID: "C-G", ContactID: "U-Alice", ContactUsername: "Alice", WebhookID: "W-G"}, 3)
	bob := h.addPairing(core.Pairing{GuildID: "G1", ChannelID: "C-G", ContactID: "U-Bob", ContactUsername: "Bob"}, 4)
	if bob.WebhookID != "W-G" {
		t.Fatalf("Bob joined C-G with webhook %q, want the channel's W-G", bob.WebhookID)
	}
	h.addPairing(core.Pairing{GuildID: "G1", ChannelID: "C-H", ContactID: "U-Alice", ContactUsername: "Alice", WebhookID: "W-H"}, 5)
	h.addPairing(core.Pairing{GuildID: "G1", ChannelID: "C-H", ContactID: "U-Bob", ContactUsername: "Bob"}, 6)
	return h
}

// TestGroupChannelRelaysThreeWays: a Discord message of a group channel reaches each of its
// contacts (each under an id of its own); a contact's message is posted in each of its channels
// and reaches the other contacts of its groups once, as "Name: text", however many groups they
// share; an edit reaches everyone the message reached; the bridge's own posts do not come back.
func TestGroupChannelRelaysThreeWays(t *testing.T) {
	t.Parallel()
	h := groupHarness(t)
	h.start()

	kim := dmsg(1, "C-G", "Kim", "hello both")
	h.discordIn(kim)
	h.waitFor("Kim's message at both contacts", func() bool {
		return len(h.res.sentTo("U-Alice")) == 1 && len(h.res.sentTo("U-Bob")) == 1
	})
	alice, bob := h.res.sentTo("U-Alice")[0], h.res.sentTo("U-Bob")[0]
	if alice.Text != "Kim: hello both" || bob.Text != "Kim: hello both" || alice.ID == bob.ID {
		t.Fatalf("sent %+v and %+v, want Kim's words to each under distinct ids", alice, bob)
	}

	h.received(rmsg("U-Alice", 2, "hi Kim"))
	h.received(rmsg("U-Bob", 3, "hey"))
	edit := dmsg(1, "C-G", "Kim", "hello you two")
	edit.EditedAt = at(4)
	if err := h.b.HandleDiscordEdit(t.Context(), edit); err != nil {
		t.Fatal(err)
	}
	// A post of the channel's webhook is the bridge's own: not relayed to anyone.
	echo := dmsg(5, "C-G", "Alice", "hi Kim")
	echo.WebhookID = "W-G"
	h.discordIn(echo)
	h.waitFor("everything delivered", func() bool {
		return len(h.res.sentTo("U-Alice")) == 3 && len(h.res.sentTo("U-Bob")) == 3 &&
			len(h.discord.postsIn("C-G")) == 2 && len(h.discord.postsIn("C-H")) == 2
	})
	h.stop()

	if got, want := sentContents(h.res.sentTo("U-Alice")), []string{"Kim: hello both", "Bob: hey", "Kim (edited): hello you two"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Alice got %q, want %q", got, want)
	}
	if got, want := sentContents(h.res.sentTo("U-Bob")), []string{"Kim: hello both", "Alice: hi Kim", "Kim (edited): hello you two"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Bob got %q, want %q", got, want)
	}
	// Order holds per pairing: two contacts' messages waiting at once may come out either way.
	for _, ch := range []string{"C-G", "C-H"} {
		var got []string
		for _, p := range h.discord.postsIn(ch) {
			got = append(got, p.Username+": "+p.Content)
		}
		if slices.Sort(got); !reflect.DeepEqual(got, []string{"Alice: hi Kim", "Bob: hey"}) {
			t.Errorf("posts in %s: %q", ch, got)
		}
	}
	if got := contents(h.discord.postsIn("C-A")); !reflect.DeepEqual(got, []string{"hi Kim"}) {
		t.Errorf("posts in Alice's own channel: %q", got)
	}
}

// TestGroupChannelCatchUp: a group channel's history is read once for all its contacts, and
// each gets only what is newer than its own pairing and cursor.
func TestGroupChannelCatchUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.CatchUpPageSize = 2 })
	h.addPairing(core.Pairing{GuildID: "G1", ChannelID: "C-G", ContactID: "U-Alice", ContactUsername: "Alice", WebhookID: "W-G"}, 3)
	h.addPairing(core.Pairing{GuildID: "G1", ChannelID: "C-G", ContactID: "U-Bob", ContactUsername: "Bob"}, 4)
	h.setPairingCreatedAt(4, at(2).Add(time.Second/2)) // Bob joined the group after m1 and m2
	h.discord.addHistory("C-G", dmsg(1, "C-G", "Kim", "m1"), dmsg(2, "C-G", "Kim", "m2"), dmsg(3, "C-G", "Kim", "m3"))
	h.start()
	h.waitRows(core.ToResonite, core.StateDelivered, 4)
	h.waitFor("both cursors at the newest message", func() bool { return h.discordCursor(3) == snow(3) && h.discordCursor(4) == snow(3) })
	h.stop()
	if got := sentContents(h.res.sentTo("U-Alice")); !reflect.DeepEqual(got, []string{"Kim: m1", "Kim: m2", "Kim: m3"}) {
		t.Errorf("Alice got %q", got)
	}
	if got := sentContents(h.res.sentTo("U-Bob")); !reflect.DeepEqual(got, []string{"Kim: m3"}) {
		t.Errorf("Bob got %q, want only what came after he joined", got)
	}
	var afters []string
	for _, c := range h.discord.historyCallsIn("C-G") {
		afters = append(afters, c.After)
	}
	if want := []string{snowflakeAt(pairingEpoch), snow(2)}; !reflect.DeepEqual(afters, want) {
		t.Errorf("History of C-G read after %v, want %v: once per page for both contacts", afters, want)
	}
}

// TestGroupRelayWaitsForResoniteCatchUp: after a hub gap, a contact's message recovered by the
// Resonite catch-up reaches the group's other contacts before the newer live one, as it
// reaches Discord.
func TestGroupRelayWaitsForResoniteCatchUp(t *testing.T) {
	t.Parallel()
	h := groupHarness(t)
	h.start()
	// The start's own catch-ups are over once a message goes out.
	h.discordIn(dmsg(1, "C-B", "Kim", "before the gap"))
	h.waitFor("Kim's first message to Bob", func() bool { return len(h.res.sentTo("U-Bob")) == 1 })

	release := make(chan struct{})
	h.res.mu.Lock()
	h.res.histFn = func() error {
		<-release
		return nil
	}
	h.res.mu.Unlock()
	h.res.addHistory(rmsg("U-Alice", 2, "from the gap"))
	h.b.catchUp.requestResonite() // the hub dropped and came back
	h.received(rmsg("U-Alice", 3, "live"))
	// A delivery that a claim made after the live row was stored proves the worker ran.
	h.discordIn(dmsg(4, "C-B", "Kim", "to Bob alone"))
	h.waitFor("Kim's second message to Bob", func() bool { return len(h.res.sentTo("U-Bob")) == 2 })
	if got := sentContents(h.res.sentTo("U-Bob")); slices.Contains(got, "Alice: live") {
		t.Fatalf("Bob got %q before the catch-up stored what the gap hid", got)
	}
	close(release)
	h.waitFor("both of Alice's messages at Bob", func() bool { return len(h.res.sentTo("U-Bob")) == 4 })
	h.stop()
	want := []string{"Kim: before the gap", "Kim: to Bob alone", "Alice: from the gap", "Alice: live"}
	if got := sentContents(h.res.sentTo("U-Bob")); !reflect.DeepEqual(got, want) {
		t.Errorf("Bob got %q, want %q", got, want)
	}
}

// TestGroupChannelWarningNamesTheContact: when a Discord message of a group channel reaches one
// contact and not the other, the ⚠ reply under it says which contact missed it.
func TestGroupChannelWarningNamesTheContact(t *testing.T) {
	t.Parallel()
	h := groupHarness(t)
	h.res.sendFn = func(_ context.Context, m sentText, _ int) error {
		if m.ContactID == "U-Bob" {
			return core.Permanent(fmt.Errorf("hub refused: %w", errContactRemoved))
		}
		return nil
	}
	h.start()
	kim := dmsg(1, "C-G", "Kim", "hello both")
	h.discordIn(kim)
	h.waitFor("the warning reply", func() bool { return len(h.discord.allReplies()) == 1 })
	h.stop()

	if got := sentContents(h.res.sentTo("U-Alice")); !reflect.DeepEqual(got, []string{"Kim: hello both"}) {
		t.Errorf("Alice got %q", got)
	}
	r := h.discord.allReplies()[0]
	if r.ChannelID != "C-G" || r.MessageID != kim.ID || !strings.HasPrefix(r.Content, "⚠ Not delivered to **Bob** in Resonite: ") ||
		!strings.Contains(r.Content, "contact removed") {
		t.Errorf("reply %+v, want a warning under Kim's message naming Bob", r)
	}
}
