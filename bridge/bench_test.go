package bridge

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

func BenchmarkFormatForResonite(b *testing.B) {
	m := core.DiscordMessage{
		AuthorName: "Kim", Content: "have a look at this, it is what we talked about yesterday",
		ReplyTo:     &core.DiscordReply{AuthorName: "Alex", Content: "did you find the world we were in?"},
		Attachments: []string{"https://cdn.discordapp.com/attachments/1/2/world.png"},
	}
	b.ReportAllocs()
	for b.Loop() {
		FormatForResonite(m)
	}
}

func BenchmarkRenderForDiscordLongText(b *testing.B) {
	m := core.ContactMessage{ID: "MSG-1", Kind: core.KindText, Text: strings.Repeat("hello @everyone and <@123> ", 400)}
	b.ReportAllocs()
	for b.Loop() {
		RenderForDiscord(m, "Alice", "")
	}
}

// BenchmarkRelayToDiscord is the whole path of a contact's message through the real store:
// stored, claimed, posted, marked delivered. Each iteration waits for its post.
func BenchmarkRelayToDiscord(b *testing.B) {
	pg := storetest.New(b)
	if _, err := pg.CreatePairing(b.Context(), core.Pairing{GuildID: "G1", ChannelID: "C-A", ContactID: "U-Alice", ContactUsername: "Alice", WebhookID: "W-A"}); err != nil {
		b.Fatal(err)
	}
	note := newNotifier()
	d := newFakeDiscord(note)
	br, err := New(Options{Store: pg, Resonite: newFakeResonite(note), Discord: d, MarkReadDelay: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := br.Stop(context.Background()); err != nil {
			b.Error(err)
		}
	})
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		if err := br.HandleContactMessage(b.Context(), textFrom("U-Alice", "MSG-"+strconv.Itoa(n), "hello", time.Now())); err != nil {
			b.Fatal(err)
		}
		for {
			changed := note.next()
			if len(d.postsIn("C-A")) >= n {
				break
			}
			<-changed
		}
	}
}
