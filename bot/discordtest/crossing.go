package discordtest

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"
)

// File is a file uploaded with a message, as the fake received it.
type File struct {
	Name        string
	ContentType string
	Data        []byte
}

// maxUpload is Discord's upload limit without boosts (10 MiB).
const maxUpload = 10 << 20

// filesKey marks, in a decoded body, that files came with it (they count as content).
const filesKey = "\x00files"

// readWebhookBody reads a JSON body, or a multipart one (payload_json and files[n]) as
// Discord takes uploads; a broken or too large upload answers 400/413 and ok is false.
func readWebhookBody(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, []File, bool) {
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		return readBody(r), nil, true
	}
	body := map[string]json.RawMessage{}
	var files []File
	mr := multipart.NewReader(io.LimitReader(r.Body, maxUpload+1<<20), params["boundary"])
	total := 0
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			apiError(w, http.StatusBadRequest, 50035, "Invalid Form Body: multipart")
			return nil, nil, false
		}
		data, err := io.ReadAll(part)
		if err != nil {
			apiError(w, http.StatusBadRequest, 50035, "Invalid Form Body: multipart")
			return nil, nil, false
		}
		switch name := part.FormName(); {
		case name == "payload_json":
			if json.Unmarshal(data, &body) != nil {
				apiError(w, http.StatusBadRequest, 50109, "The request body contains invalid JSON.")
				return nil, nil, false
			}
		case strings.HasPrefix(name, "files["):
			total += len(data)
			files = append(files, File{Name: part.FileName(), ContentType: part.Header.Get("Content-Type"), Data: data})
		}
	}
	if total > maxUpload {
		apiError(w, http.StatusRequestEntityTooLarge, 40005, "Request entity too large")
		return nil, nil, false
	}
	if len(files) > 0 {
		body[filesKey] = json.RawMessage("true")
	}
	return body, files, true
}

// attachFiles records uploaded files on a message, as attachments with a CDN-like link.
func attachFiles(m *fmsg, files []File) {
	for i, f := range files {
		m.files = append(m.files, f)
		m.Attachments = append(m.Attachments, &discordgo.MessageAttachment{
			ID: fmt.Sprint(i), Filename: f.Name, ContentType: f.ContentType, Size: len(f.Data),
			URL: "https://cdn.discordapp.com/attachments/fake/" + f.Name,
		})
	}
}

// webhookTargetLocked is the channel a webhook execution posts into: the webhook's channel,
// or with thread_id a thread of it (anything else: 400, as Discord answers).
func (s *Server) webhookTargetLocked(w http.ResponseWriter, wh *webhook, threadID string) (string, bool) {
	if threadID == "" {
		if c := s.channels[wh.ChannelID]; c != nil && c.kind == discordgo.ChannelTypeGuildForum {
			apiError(w, http.StatusBadRequest, 220001, "Webhooks posted to forum channels must have a thread_name or thread_id")
			return "", false
		}
		return wh.ChannelID, true
	}
	t := s.channels[threadID]
	if t == nil || t.missing || t.parentID != wh.ChannelID {
		apiError(w, http.StatusBadRequest, 10003, "Unknown Channel")
		return "", false
	}
	return threadID, true
}

// AddForum adds a forum channel to a guild: it holds no messages of its own, only posts
// (threads, see AddThread).
func (s *Server) AddForum(guildID, channelID, name string) {
	s.AddChannel(guildID, channelID, name)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels[channelID].kind = discordgo.ChannelTypeGuildForum
	s.notifyLocked()
}

// AddThread adds a thread of a channel (a forum post when the parent is a forum).
func (s *Server) AddThread(parentID, threadID, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.channels[parentID]
	if p == nil {
		s.t.Fatalf("discordtest: AddThread of unknown channel %s", parentID)
	}
	s.channels[threadID] = &channel{id: threadID, guildID: p.guildID, name: name, parentID: parentID,
		kind: discordgo.ChannelTypeGuildPublicThread}
	s.notifyLocked()
}

// Files returns the files uploaded with a message.
func (s *Server) Files(channelID, messageID string) []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.findMessageLocked(channelID, messageID); m != nil {
		return append([]File(nil), m.files...)
	}
	return nil
}

// Components returns the raw components of a message (JSON), "" when it has none.
func (s *Server) Components(channelID, messageID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.findMessageLocked(channelID, messageID); m != nil && m.components != nil {
		return string(m.components)
	}
	return ""
}

// EditMessage changes a stored message's content as its author would and sends
// MESSAGE_UPDATE with edited_timestamp set; UpdateEmbeds sends one without it, as Discord does
// when it adds a link preview.
func (s *Server) EditMessage(channelID, messageID, content string) *discordgo.Message {
	return s.update(channelID, messageID, func(m *fmsg) {
		now := time.Now().UTC()
		if m.EditedTimestamp != nil && !now.After(*m.EditedTimestamp) {
			now = m.EditedTimestamp.Add(time.Millisecond)
		}
		m.Content, m.EditedTimestamp = content, &now
	})
}

// UpdateEmbeds adds a link preview to a message: MESSAGE_UPDATE without a new edit.
func (s *Server) UpdateEmbeds(channelID, messageID string) *discordgo.Message {
	return s.update(channelID, messageID, func(m *fmsg) {
		m.Embeds = append(m.Embeds, &discordgo.MessageEmbed{Type: discordgo.EmbedTypeLink, URL: "https://example.com"})
	})
}

func (s *Server) update(channelID, messageID string, change func(*fmsg)) *discordgo.Message {
	s.mu.Lock()
	m := s.findMessageLocked(channelID, messageID)
	if m == nil {
		s.mu.Unlock()
		s.t.Fatalf("discordtest: no message %s in channel %s", messageID, channelID)
	}
	change(m)
	raw, _ := json.Marshal(m)
	pub := m.public()
	s.notifyLocked()
	s.mu.Unlock()
	s.dispatch("MESSAGE_UPDATE", json.RawMessage(raw))
	return pub
}

// DeleteMessage removes a message as a user would and sends MESSAGE_DELETE.
func (s *Server) DeleteMessage(channelID, messageID string) {
	s.mu.Lock()
	guildID := ""
	if c := s.channels[channelID]; c != nil {
		guildID = c.guildID
	}
	s.removeMessageLocked(channelID, messageID)
	s.notifyLocked()
	s.mu.Unlock()
	raw, _ := json.Marshal(map[string]string{"id": messageID, "channel_id": channelID, "guild_id": guildID})
	s.dispatch("MESSAGE_DELETE", json.RawMessage(raw))
}
