package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bot/discordtest"
	"github.com/resonite-bridge/resonite-bridge/store"
)

// contents are what the bridge sent a contact, oldest first.
func (e *e2e) contents(contact string) []string {
	var out []string
	for _, m := range e.sentTo(contact) {
		out = append(out, m.Content)
	}
	return out
}

// TestE2EGroupChannel: a channel of two contacts relays three ways (Discord to both, each
// contact to Discord and to the other as "Name: text"), without loops; /unlink contact removes
// one, after which nothing crosses between the channel and them.
func TestE2EGroupChannel(t *testing.T) {
	t.Parallel()
	e := newE2E(t).start()
	e.link(e2eChannel, "Alice")
	e.consent(e2eGuild, "U-Bob")
	added := e.dc.Interact(t, discordtest.Command(e2eGuild, e2eChannel, "link", discordtest.O("contact", "Bob"))).Final(t)
	if !strings.Contains(added.Content, "Added **Bob** (`U-Bob`)") || !strings.Contains(added.Content, "group channel of 2 contacts") {
		t.Fatalf("/link Bob in a linked channel answered %q", added.Content)
	}

	e.say(e2eChannel, "hello both")
	e.waitUntil("Dana's message at both contacts", func() bool { return len(e.sentTo("U-Alice")) == 1 && len(e.sentTo("U-Bob")) == 1 })
	e.resoniteSays("U-Alice", "MSG-g-1", "hi all", time.Now())
	e.waitUntil("Alice's message in Discord and at Bob", func() bool {
		return len(e.webhookPosts(e2eChannel)) == 1 && len(e.sentTo("U-Bob")) == 2
	})
	e.resoniteSays("U-Bob", "MSG-g-2", "hey", time.Now())
	e.waitUntil("Bob's message in Discord and at Alice", func() bool {
		return len(e.webhookPosts(e2eChannel)) == 2 && len(e.sentTo("U-Alice")) == 2
	})
	// The webhook's posts came back on the gateway before this one: had they looped, they
	// would have reached the contacts before it (order per pairing).
	e.say(e2eChannel, "marker")
	e.waitUntil("the marker at both contacts", func() bool {
		return slices.Contains(e.contents("U-Alice"), "Dana: marker") && slices.Contains(e.contents("U-Bob"), "Dana: marker")
	})
	if got, want := e.contents("U-Alice"), []string{"Dana: hello both", "Bob: hey", "Dana: marker"}; !slices.Equal(got, want) {
		t.Errorf("Alice got %q, want %q", got, want)
	}
	if got, want := e.contents("U-Bob"), []string{"Dana: hello both", "Alice: hi all", "Dana: marker"}; !slices.Equal(got, want) {
		t.Errorf("Bob got %q, want %q", got, want)
	}
	posts := e.webhookPosts(e2eChannel)
	if len(posts) != 2 || posts[0].Author.Username != "Alice" || posts[0].Content != "hi all" ||
		posts[1].Author.Username != "Bob" || posts[1].Content != "hey" {
		t.Errorf("the channel shows %d webhook posts: %+v", len(posts), posts)
	}
	links := e.dc.Interact(t, discordtest.Command(e2eGuild, e2eChannel, "links")).Final(t)
	if !strings.Contains(links.Content, "**Alice** (`U-Alice`), **Bob** (`U-Bob`)") {
		t.Errorf("/links answered %q", links.Content)
	}

	removed := e.dc.Interact(t, discordtest.Command(e2eGuild, e2eChannel, "unlink", discordtest.O("contact", "Bob"))).Final(t)
	if !strings.Contains(removed.Content, "Removed **Bob**") || !strings.Contains(removed.Content, "Still linked here: **Alice**") {
		t.Fatalf("/unlink contact:Bob answered %q", removed.Content)
	}
	only := e.say(e2eChannel, "only Alice now")
	e.waitUntil("the message at Alice", func() bool { return slices.Contains(e.contents("U-Alice"), "Dana: only Alice now") })
	// One ingest stores a Discord message's rows for every contact of its channel at once.
	e.withStore(func(st *store.Store) error {
		var n int
		err := st.Pool().QueryRow(context.Background(), `select count(*) from relay_messages where source_id like $1 || ':%'`, only.ID).Scan(&n)
		if err == nil && n != 1 {
			t.Errorf("%d rows for a message after Bob left, want Alice's only", n)
		}
		return err
	})
	e.resoniteSays("U-Bob", "MSG-g-3", "still there?", time.Now())
	e.resoniteSays("U-Alice", "MSG-g-4", "and me", time.Now())
	e.waitUntil("Alice's later message in Discord", func() bool { return len(e.webhookPosts(e2eChannel)) == 3 })
	if got := e.webhookPosts(e2eChannel)[2]; got.Content != "and me" {
		t.Errorf("after Bob left, the channel shows %q by %s", got.Content, got.Author.Username)
	}
	if slices.Contains(e.contents("U-Alice"), "Bob: still there?") {
		t.Error("Bob's words reached Alice after he was removed from the channel")
	}
	if len(e.sentTo("U-Bob")) != 3 {
		t.Errorf("Bob got %q after he was removed", e.contents("U-Bob"))
	}
}
