package discordtest

import (
	"encoding/json"
	"net/http"

	"github.com/bwmarrin/discordgo"
)

// dmState is the fake's direct messages: a DM channel per user, and the users whose DMs are
// closed to the bot.
type dmState struct {
	byUser map[string]string // user → DM channel
	users  map[string]string // DM channel → user
	closed map[string]bool   // user → refuses DMs (Discord's 50007)
}

func (s *Server) mountDM(mux *http.ServeMux) {
	mux.HandleFunc("POST "+api+"/users/@me/channels", s.openDM)
	mux.HandleFunc("DELETE "+api+"/channels/{cid}/messages/{mid}", s.deleteMessage)
}

// CloseDMs makes direct messages to userID fail with 403 50007 ("Cannot send messages to this
// user"), as Discord does for a member who does not accept DMs; closed false opens them again.
func (s *Server) CloseDMs(userID string, closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dm.closed == nil {
		s.dm.closed = map[string]bool{}
	}
	s.dm.closed[userID] = closed
	s.notifyLocked()
}

// DMs returns the direct messages the bot sent to userID, oldest first.
func (s *Server) DMs(userID string) []*discordgo.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*discordgo.Message
	if id := s.dm.byUser[userID]; id != "" {
		for _, m := range s.messages[id] {
			out = append(out, m.public())
		}
	}
	return out
}

// RemoveMessage deletes a message as a member would and, with notify, sends MESSAGE_DELETE
// (without: as if the bot missed the event); false when the channel has no such message.
func (s *Server) RemoveMessage(channelID, messageID string, notify bool) bool {
	s.mu.Lock()
	m := s.findMessageLocked(channelID, messageID)
	if m == nil {
		s.mu.Unlock()
		return false
	}
	s.removeMessageLocked(channelID, messageID)
	guildID := m.GuildID
	s.mu.Unlock()
	if notify {
		s.dispatch("MESSAGE_DELETE", map[string]any{"id": messageID, "channel_id": channelID, "guild_id": guildID})
	}
	return true
}

func (s *Server) openDM(w http.ResponseWriter, r *http.Request) {
	var body struct {
		RecipientID string `json:"recipient_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.RecipientID == "" {
		apiError(w, http.StatusBadRequest, 50035, "Invalid Form Body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dm.byUser == nil {
		s.dm.byUser, s.dm.users = map[string]string{}, map[string]string{}
	}
	id := s.dm.byUser[body.RecipientID]
	if id == "" {
		id = s.newIDLocked()
		s.dm.byUser[body.RecipientID], s.dm.users[id] = id, body.RecipientID
		s.channels[id] = &channel{id: id, name: "dm"}
		s.notifyLocked()
	}
	writeJSON(w, http.StatusOK, discordgo.Channel{ID: id, Type: discordgo.ChannelTypeDM,
		Recipients: []*discordgo.User{{ID: body.RecipientID}}})
}

// dmRefusedLocked answers 50007 for a post into the DM channel of a user whose DMs are closed.
func (s *Server) dmRefusedLocked(w http.ResponseWriter, channelID string) bool {
	if u, ok := s.dm.users[channelID]; ok && s.dm.closed[u] {
		apiError(w, http.StatusForbidden, 50007, "Cannot send messages to this user")
		return true
	}
	return false
}

// deleteMessage deletes one of the bot's messages (the bot may delete only its own here).
func (s *Server) deleteMessage(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	c := s.channelLocked(w, r.PathValue("cid"))
	if c == nil {
		s.mu.Unlock()
		return
	}
	m := s.findMessageLocked(c.id, r.PathValue("mid"))
	if m == nil || m.Author == nil || m.Author.ID != s.BotUserID {
		s.mu.Unlock()
		apiError(w, http.StatusNotFound, 10008, "Unknown Message")
		return
	}
	s.removeMessageLocked(c.id, m.ID)
	guildID := m.GuildID
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	s.dispatch("MESSAGE_DELETE", map[string]any{"id": m.ID, "channel_id": c.id, "guild_id": guildID})
}
