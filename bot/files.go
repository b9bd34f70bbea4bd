package bot

import (
	"bytes"

	"github.com/bwmarrin/discordgo"

	"github.com/resonite-bridge/resonite-bridge/bridge"
	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// discordFiles are the files of a post, uploaded as multipart files[n].
func discordFiles(in []core.File) []*discordgo.File {
	out := make([]*discordgo.File, 0, len(in))
	for _, f := range in {
		out = append(out, &discordgo.File{Name: f.Name, ContentType: f.ContentType, Reader: bytes.NewReader(f.Data)})
	}
	return out
}

// linkButtons are a post's link buttons in one row (Discord's limit: 5 a row).
func linkButtons(in []core.LinkButton) []discordgo.MessageComponent {
	var row discordgo.ActionsRow
	for _, l := range in[:min(len(in), 5)] {
		if u := httpsOnly(l.URL); u != "" {
			row.Components = append(row.Components, discordgo.Button{
				Style: discordgo.LinkButton, Label: bridge.Shorten(orDash(l.Label), 80), URL: u,
			})
		}
	}
	if len(row.Components) == 0 {
		return nil
	}
	return []discordgo.MessageComponent{row}
}

// attachmentsOf converts a message's attachments: name, link, and whether it is a voice
// message.
func attachmentsOf(m *discordgo.Message) []core.DiscordFile {
	var out []core.DiscordFile
	for _, a := range m.Attachments {
		if a == nil || a.URL == "" {
			continue
		}
		out = append(out, core.DiscordFile{Name: a.Filename, URL: a.URL,
			Voice: m.Flags&discordgo.MessageFlagsIsVoiceMessage != 0, Seconds: a.DurationSecs})
	}
	return out
}
