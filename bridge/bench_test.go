package bridge

import (
	"strings"
	"testing"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

func BenchmarkFormatForResonite(b *testing.B) {
	m := DiscordMessage{
		AuthorName: "Kim", Content: "have a look at this, it is what we talked about yesterday",
		ReplyTo:     &DiscordReply{AuthorName: "Alex", Content: "did you find the world we were in?"},
		Attachments: []string{"https://cdn.discordapp.com/attachments/1/2/world.png"},
	}
	b.ReportAllocs()
	for b.Loop() {
		FormatForResonite(m)
	}
}

func BenchmarkRenderForDiscordLongText(b *testing.B) {
	m := resonite.Message{ID: "MSG-1", MessageType: resonite.MessageText, Content: strings.Repeat("hello @everyone and <@123> ", 400)}
	b.ReportAllocs()
	for b.Loop() {
		RenderForDiscord(m, "Alice", "")
	}
}

func BenchmarkCoalescingMemory(b *testing.B) {
	br, err := New(Options{Store: newMemStore(), Resonite: newFakeResonite(), History: newFakeResonite(), Discord: newFakeDiscord()})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var id int64
	for b.Loop() {
		id++
		br.remember(1, queuedRow{id: id, createdAt: at(int(id))})
		if id%64 == 0 { // a pairing's queue drains as it is delivered
			for k := id - 63; k <= id; k++ {
				br.forget(1, k)
			}
		}
	}
}
