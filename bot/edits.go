package bot

import (
	"context"

	"github.com/bwmarrin/discordgo"
)

// addEditHandlers hands edits and deletions of messages to the bridge. An update without
// edited_timestamp (Discord adding a link preview) is handed over too: the bridge decides it
// is no edit.
func (b *Bot) addEditHandlers() {
	b.s.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageUpdate) {
		f := b.o.Handlers.OnMessageEdit
		if m.Message == nil || f == nil || m.EditedTimestamp == nil {
			return
		}
		dm, ok := b.convert(m.Message)
		if !ok {
			return
		}
		b.enqueue(func(ctx context.Context) { f(ctx, dm) })
	})
	b.s.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageDelete) {
		f := b.o.Handlers.OnMessageDelete
		if m.Message == nil || f == nil || m.ID == "" {
			return
		}
		channelID, id := m.ChannelID, m.ID
		b.enqueue(func(ctx context.Context) { f(ctx, channelID, id) })
	})
}
