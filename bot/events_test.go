package bot_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/resonite-bridge/resonite-bridge/bot/discordtest"
	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

func (e *env) waitMessages(n int) []core.DiscordMessage {
	e.t.Helper()
	e.rec.waitUntil(e.t, fmt.Sprintf("%d messages handed to the bridge", n), func() bool { return len(e.rec.messages()) >= n })
	return e.rec.messages()
}

func TestMessagesReadNaturally(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.dc.AddRole(guildID, "300000000000000001", "Moderators")
	e.start()
	orig := e.dc.DispatchMessage(discordtest.UserMessage{ChannelID: channelID, AuthorID: "700000000000000005",
		Username: "bobby", GlobalName: "Bob", Content: "what time is it?"})
	at := time.Date(2026, 12, 24, 18, 30, 0, 0, time.UTC)
	e.dc.DispatchMessage(discordtest.UserMessage{
		ChannelID: channelID, AuthorID: "700000000000000004", Username: "alice_01", GlobalName: "Alice", Nick: "Ali (mod)",
		Content: fmt.Sprintf("<@700000000000000005> <@!700000000000000005> ask <@&300000000000000001> in <#%s> <:blobwave:123456> <a:party:9> at <t:%d:R>",
			otherChan, at.Unix()),
		Mentions:    []*discordgo.User{{ID: "700000000000000005", Username: "bobby", GlobalName: "Bob"}},
		Attachments: []*discordgo.MessageAttachment{{ID: "1", URL: "https://cdn.discordapp.com/attachments/1/2/cat.png", Filename: "cat.png"}},
		Stickers:    []*discordgo.StickerItem{{ID: "5", Name: "Wumpus wave"}},
		ReplyTo:     orig.ID,
	})
	msgs := e.waitMessages(2)
	m := msgs[1]
	want := fmt.Sprintf("@Bob @Bob ask @Moderators in #random :blobwave: :party: at %s", "2026-12-24 18:30 UTC")
	if m.Content != want {
		t.Errorf("content = %q\nwant      %q", m.Content, want)
	}
	if m.AuthorName != "Ali (mod)" {
		t.Errorf("author = %q, want the server nickname", m.AuthorName)
	}
	if len(m.Attachments) != 1 || m.Attachments[0] != "https://cdn.discordapp.com/attachments/1/2/cat.png" {
		t.Errorf("attachments = %v", m.Attachments)
	}
	if len(m.Stickers) != 1 || m.Stickers[0] != "Wumpus wave" {
		t.Errorf("stickers = %v", m.Stickers)
	}
	if m.ReplyTo == nil || m.ReplyTo.AuthorName != "Bob" || m.ReplyTo.Content != "what time is it?" {
		t.Errorf("reply = %+v", m.ReplyTo)
	}
	if m.GuildID != guildID || m.ChannelID != channelID || m.FromSelf || m.Timestamp.IsZero() {
		t.Errorf("message metadata = %+v", m)
	}
	if msgs[0].AuthorName != "Bob" {
		t.Errorf("without a nickname the global name is used, got %q", msgs[0].AuthorName)
	}
}

func TestOwnMessagesAreMarked(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	e.pair(channelID, "U-Alice")
	e.post(channelID, core.Post{Username: "Alice", Content: "from Resonite"})
	hook := e.dc.Webhooks(channelID)[0]
	e.dc.DispatchMessage(discordtest.UserMessage{ChannelID: channelID, WebhookID: hook.ID, Username: "Alice", Content: "echo of the webhook post"})
	e.dc.DispatchMessage(discordtest.UserMessage{ChannelID: channelID, AuthorID: e.dc.BotUserID, Bot: true, Content: "the bot itself"})
	other := e.dc.AddWebhook(channelID, "GitHub", "")
	e.dc.DispatchMessage(discordtest.UserMessage{ChannelID: channelID, WebhookID: other.ID, Username: "GitHub", Content: "another webhook"})
	e.dc.DispatchMessage(discordtest.UserMessage{ChannelID: channelID, Content: "joined", Type: discordgo.MessageTypeGuildMemberJoin})
	e.dc.DispatchMessage(discordtest.UserMessage{ChannelID: channelID, Content: "a person"})
	msgs := e.waitMessages(5)
	want := []struct {
		content  string
		fromSelf bool
	}{{"from Resonite", true}, {"echo of the webhook post", true}, {"the bot itself", true}, {"another webhook", false}, {"a person", false}}
	if len(msgs) != len(want) {
		t.Fatalf("%d messages handed over (a system message slipped through?): %+v", len(msgs), msgs)
	}
	for i, w := range want {
		if msgs[i].Content != w.content || msgs[i].FromSelf != w.fromSelf {
			t.Errorf("message %d = %q fromSelf=%v, want %q %v", i, msgs[i].Content, msgs[i].FromSelf, w.content, w.fromSelf)
		}
	}
}

func TestMessagesKeepGatewayOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	const n = 200
	for i := 0; i < n; i++ {
		e.dc.DispatchMessage(discordtest.UserMessage{ChannelID: channelID, Content: fmt.Sprint(i)})
	}
	msgs := e.waitMessages(n)
	for i, m := range msgs {
		if m.Content != fmt.Sprint(i) {
			t.Fatalf("message %d is %q: order lost", i, m.Content)
		}
	}
}
