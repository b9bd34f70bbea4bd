package main

// End-to-end tests of what crosses (issue 11): edits and deletions, threads and forum posts,
// voice uploads, rich text and length in both directions, refused posts.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bot/discordtest"
	"github.com/resonite-bridge/resonite-bridge/resonite"
)

const (
	e2eThread      = "110000000000000010"
	e2eOtherThread = "110000000000000011"
	e2eForum       = "110000000000000012"
	e2eForumPost   = "110000000000000013"
)

// texts are the texts the bridge account sent a contact, oldest first.
func (e *e2e) texts(contact string) []string {
	var out []string
	for _, m := range e.sentTo(contact) {
		out = append(out, m.Content)
	}
	return out
}

func (e *e2e) waitText(contact, want string) {
	e.t.Helper()
	e.waitUntil("“"+want+"” sent to "+contact, func() bool {
		for _, s := range e.texts(contact) {
			if s == want {
				return true
			}
		}
		return false
	})
}

func TestE2EEditsAndDeletionsReachResonite(t *testing.T) {
	e := newE2E(t).start()
	e.link(e2eChannel, "Alice")
	m := e.say(e2eChannel, "see you at **8**")
	e.waitText("U-Alice", "Dana: see you at <b>8</b>")

	e.dc.EditMessage(e2eChannel, m.ID, "see you at **9**")
	e.waitText("U-Alice", "Dana (edited): see you at <b>9</b>")
	// A link preview is no edit; the deletion behind it shows that it was handled and skipped.
	e.dc.UpdateEmbeds(e2eChannel, m.ID)
	e.dc.DeleteMessage(e2eChannel, m.ID)
	e.waitText("U-Alice", "Dana deleted a message.")
	want := []string{"Dana: see you at <b>8</b>", "Dana (edited): see you at <b>9</b>", "Dana deleted a message."}
	if got := e.texts("U-Alice"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("Alice got %q, want %q", got, want)
	}
	// A deletion of a message never relayed (another channel's) crosses nothing.
	other := e.say(e2eChannel2, "elsewhere")
	e.dc.DeleteMessage(e2eChannel2, other.ID)
	e.say(e2eChannel, "last")
	e.waitText("U-Alice", "Dana: last")
	if n := len(e.texts("U-Alice")); n != 4 {
		t.Errorf("Alice got %d texts, want 4: %q", n, e.texts("U-Alice"))
	}
}

func TestE2EThreadAndForumPostBothWays(t *testing.T) {
	e := newE2E(t)
	e.dc.AddThread(e2eChannel, e2eThread, "alice-thread")
	e.dc.AddThread(e2eChannel, e2eOtherThread, "not-linked")
	e.dc.AddForum(e2eGuild, e2eForum, "forum")
	e.dc.AddThread(e2eForum, e2eForumPost, "bob-post")
	e.start()
	e.link(e2eThread, "Alice")
	e.link(e2eForumPost, "Bob")

	// Resonite → Discord: into the thread and the forum post, through the parents' webhooks.
	now := time.Now()
	e.resoniteSays("U-Alice", "MSG-thread-1", "hi thread", now)
	e.resoniteSays("U-Bob", "MSG-forum-1", "hi forum", now)
	e.waitUntil("both posts", func() bool { return len(e.webhookPosts(e2eThread)) == 1 && len(e.webhookPosts(e2eForumPost)) == 1 })
	if got := e.webhookPosts(e2eThread)[0]; got.Content != "hi thread" || got.Author.Username != "Alice" {
		t.Errorf("thread post %q by %q", got.Content, got.Author.Username)
	}
	if got := e.webhookPosts(e2eForumPost)[0]; got.Content != "hi forum" {
		t.Errorf("forum post %q", got.Content)
	}
	if n := len(e.dc.ChannelMessages(e2eChannel)); n != 0 {
		t.Errorf("the parent channel got %d messages, want none", n)
	}
	for _, c := range e.dc.CallsTo("POST", "/webhooks/") {
		if c.Query.Get("thread_id") == "" {
			t.Errorf("a webhook post without thread_id: %s", c.Path)
		}
	}

	// Discord → Resonite: from the thread and the forum post; an unlinked thread of the same
	// channel crosses nothing (it is sent first, so it would arrive before the linked one).
	e.say(e2eOtherThread, "not for Alice")
	e.say(e2eThread, "from the thread")
	e.say(e2eForumPost, "from the forum")
	e.waitText("U-Alice", "Dana: from the thread")
	e.waitText("U-Bob", "Dana: from the forum")
	if got := e.texts("U-Alice"); len(got) != 1 {
		t.Errorf("Alice got %q, want only the thread's message", got)
	}
}

// soundMessage is a voice message as Resonite sends it.
func soundMessage(from, id, asset string) resonite.Message {
	content, _ := json.Marshal(map[string]any{"assetUri": "resdb:///" + asset, "name": "Voice message"})
	now := resonite.NewTime(time.Now())
	return resonite.Message{ID: id, SenderID: from, RecipientID: e2eBridgeID, OwnerID: e2eBridgeID,
		MessageType: resonite.MessageSound, Content: string(content), SendTime: now, LastUpdateTime: now}
}

func TestE2EVoiceMessageUploadedOrLinked(t *testing.T) {
	audio := bytes.Repeat([]byte("OggS\x00voice"), 4096)
	e := newE2E(t)
	e.env = append(e.env, "RESONITE_ASSETS_URL="+e.rf.AssetsURL())
	e.rf.AddAsset("0a1b2c.ogg", "audio/ogg", audio)
	e.start()
	e.link(e2eChannel, "Alice")

	e.rf.PushMessage(e2eBridgeID, soundMessage("U-Alice", "MSG-voice-1", "0a1b2c.ogg"))
	e.waitUntil("the voice post", func() bool { return len(e.webhookPosts(e2eChannel)) == 1 })
	post := e.webhookPosts(e2eChannel)[0]
	files := e.dc.Files(e2eChannel, post.ID)
	if len(files) != 1 || !bytes.Equal(files[0].Data, audio) || files[0].ContentType != "audio/ogg" || !strings.HasSuffix(files[0].Name, ".ogg") {
		t.Fatalf("uploaded %d files (%+v), want the asset's bytes as one audio/ogg file", len(files), files)
	}

	// An asset that cannot be fetched: the link, as before.
	e.rf.PushMessage(e2eBridgeID, soundMessage("U-Alice", "MSG-voice-2", "ffff.ogg"))
	e.waitUntil("the link post", func() bool { return len(e.webhookPosts(e2eChannel)) == 2 })
	link := e.webhookPosts(e2eChannel)[1]
	if files := e.dc.Files(e2eChannel, link.ID); len(files) != 0 || !strings.Contains(link.Content, "https://assets.resonite.com/ffff") {
		t.Errorf("fallback post %q with %d files, want the https link alone", link.Content, len(files))
	}
}

func TestE2ETextFidelityAndLength(t *testing.T) {
	e := newE2E(t).start()
	e.link(e2eChannel, "Alice")
	now := time.Now()
	e.resoniteSays("U-Alice", "MSG-rich-1", "<size=200>hi</size> <b>there</b> [x](https://evil.example)", now)
	long := strings.Repeat("n", 1500)
	item, _ := json.Marshal(map[string]any{"name": long, "assetUri": "resdb:///abc.brson"})
	at := resonite.NewTime(now.Add(time.Second))
	e.rf.PushMessage(e2eBridgeID, resonite.Message{ID: "MSG-item-1", SenderID: "U-Alice", RecipientID: e2eBridgeID, OwnerID: e2eBridgeID,
		MessageType: resonite.MessageObject, Content: string(item), SendTime: at, LastUpdateTime: at})
	at = resonite.NewTime(now.Add(2 * time.Second))
	e.rf.PushMessage(e2eBridgeID, resonite.Message{ID: "MSG-odd-1", SenderID: "U-Alice", RecipientID: e2eBridgeID, OwnerID: e2eBridgeID,
		MessageType: resonite.MessageType(strings.Repeat("Z", 5000)), Content: strings.Repeat("q", 5000), SendTime: at, LastUpdateTime: at})
	e.waitUntil("three posts", func() bool { return len(e.webhookPosts(e2eChannel)) >= 3 })
	posts := e.webhookPosts(e2eChannel)
	if got, want := posts[0].Content, "hi **there** \\[x\\]\\(https://evil.example)"; got != want {
		t.Errorf("rich text post %q, want %q", got, want)
	}
	if !strings.Contains(posts[1].Content, strings.Repeat("n", 200)) {
		t.Errorf("item post %.80q… does not name the item", posts[1].Content)
	}
	if !strings.Contains(posts[2].Content, "that Discord cannot show") {
		t.Errorf("unknown-type post %.80q…", posts[2].Content)
	}

	// Discord → Resonite: a spoiler stays hidden, tags stay literal, lines keep their sender.
	e.say(e2eChannel, "||secret|| <size=900>big</noparse>\nBob: send me your code")
	e.waitText("U-Alice", "Dana: [spoiler]<noparse> <\u200bsize=900>big<\u200b/noparse></noparse>\nDana: Bob: send me your code")
}

func TestE2ERefusedPostIsAnsweredToTheContact(t *testing.T) {
	e := newE2E(t).start()
	e.link(e2eChannel, "Alice")
	e.dc.FailNext(discordtest.Failure{PathContains: "/webhooks/", Count: 1, Status: 400, Code: 50035, Message: "Invalid Form Body"})
	e.resoniteSays("U-Alice", "MSG-refused-1", "this one is refused", time.Now())
	e.waitUntil("the ⚠ answer", func() bool {
		for _, s := range e.texts("U-Alice") {
			if strings.HasPrefix(s, "⚠ not delivered to Discord: ") {
				return true
			}
		}
		return false
	})
	// /status shows it.
	f := e.dc.Interact(t, discordtest.Command(e2eGuild, e2eChannel, "status")).Final(t)
	text := f.Content
	for _, em := range f.Embeds {
		text += em.Description
		for _, fl := range em.Fields {
			text += fl.Name + fl.Value
		}
	}
	if !strings.Contains(text, "Invalid Form Body") {
		t.Errorf("/status does not show the refusal: %q", text)
	}
}

func TestE2EThreadCatchUpReadsTheThreadsHistory(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.dc.AddThread(e2eChannel, e2eThread, "alice-thread")
	e.start()
	e.link(e2eThread, "Alice")
	e.say(e2eThread, "first")
	e.waitText("U-Alice", "Dana: first")
	if code := e.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	// Said while no daemon ran: in the thread's history only (and one in the parent channel,
	// which is not linked and must not cross).
	e.dc.AppendMessage(discordtest.UserMessage{ChannelID: e2eChannel, AuthorID: "710000000000000001", Username: "dana",
		GlobalName: "Dana", Content: "in the parent"})
	for i := 1; i <= 3; i++ {
		e.dc.AppendMessage(discordtest.UserMessage{ChannelID: e2eThread, AuthorID: "710000000000000001", Username: "dana",
			GlobalName: "Dana", Content: fmt.Sprintf("gap %d", i)})
	}
	e.start()
	e.say(e2eThread, "live")
	e.waitText("U-Alice", "Dana: live")
	want := []string{"Dana: first", "Dana: gap 1", "Dana: gap 2", "Dana: gap 3", "Dana: live"}
	if got := e.texts("U-Alice"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Alice got %q, want the thread's gap caught up in order %q", got, want)
	}
}
