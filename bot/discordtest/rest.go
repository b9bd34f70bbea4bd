package discordtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
)

const api = "/api/v9"

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api+"/gateway", s.getGateway)
	mux.HandleFunc("GET "+api+"/gateway/bot", s.getGateway)
	mux.HandleFunc("GET "+api+"/users/@me", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, discordgo.User{ID: s.BotUserID, Username: DefaultBotName, Bot: true})
	})
	mux.HandleFunc("PUT "+api+"/applications/{app}/commands", s.putCommands)
	mux.HandleFunc("PUT "+api+"/applications/{app}/guilds/{gid}/commands", s.putCommands)
	mux.HandleFunc("GET "+api+"/applications/{app}/commands", s.getCommands)
	mux.HandleFunc("GET "+api+"/applications/{app}/guilds/{gid}/commands", s.getCommands)
	mux.HandleFunc("POST "+api+"/interactions/{iid}/{itoken}/callback", s.interactionCallback)
	mux.HandleFunc("POST "+api+"/webhooks/{wid}/{wtoken}", s.executeWebhook)
	mux.HandleFunc("GET "+api+"/webhooks/{wid}/{wtoken}/messages/{mid}", s.getWebhookMessage)
	mux.HandleFunc("PATCH "+api+"/webhooks/{wid}/{wtoken}/messages/{mid}", s.editWebhookMessage)
	mux.HandleFunc("DELETE "+api+"/webhooks/{wid}/{wtoken}/messages/{mid}", s.deleteWebhookMessage)
	mux.HandleFunc("GET "+api+"/webhooks/{wid}", s.getWebhook)
	mux.HandleFunc("DELETE "+api+"/webhooks/{wid}", s.deleteWebhook)
	mux.HandleFunc("DELETE "+api+"/webhooks/{wid}/{wtoken}", s.deleteWebhook)
	mux.HandleFunc("GET "+api+"/channels/{cid}/webhooks", s.listWebhooks)
	mux.HandleFunc("POST "+api+"/channels/{cid}/webhooks", s.createWebhook)
	mux.HandleFunc("GET "+api+"/channels/{cid}", s.getChannel)
	mux.HandleFunc("GET "+api+"/channels/{cid}/messages", s.getMessages)
	mux.HandleFunc("GET "+api+"/channels/{cid}/messages/{mid}", s.getMessage)
	mux.HandleFunc("POST "+api+"/channels/{cid}/messages", s.postMessage)
	mux.HandleFunc("PATCH "+api+"/channels/{cid}/messages/{mid}", s.patchMessage)
	mux.HandleFunc("GET "+api+"/guilds/{gid}/roles", s.getRoles)
	s.mountDM(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, 0, "404: Not Found")
	})

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/gw" || strings.HasPrefix(r.URL.Path, "/gw/") {
			s.serveGateway(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			s.mu.Lock()
			s.calls = append(s.calls, Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(),
				Header: r.Header.Clone(), Body: body, Status: rec.status})
			s.notifyLocked()
			s.mu.Unlock()
		}()
		if l, ok := s.take429(r.URL.Path); ok {
			write429(rec, l)
			return
		}
		if f, ok := s.takeFailure(r.URL.Path); ok {
			apiError(rec, f.Status, f.Code, f.Message)
			return
		}
		if !tokenRoute(r.URL.Path) && r.Header.Get("Authorization") != "Bot "+s.Token {
			apiError(rec, http.StatusUnauthorized, 0, "401: Unauthorized")
			return
		}
		mux.ServeHTTP(rec, r)
	})
}

// tokenRoute: webhook-token and interaction routes authenticate by the token in the path.
func tokenRoute(p string) bool {
	if strings.HasPrefix(p, api+"/interactions/") {
		return true
	}
	if rest, ok := strings.CutPrefix(p, api+"/webhooks/"); ok {
		return strings.Count(rest, "/") >= 1
	}
	return false
}

func (s *Server) take429(path string) (Limit, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return takeNext(&s.limits, path, func(l *Limit) (string, *int) { return l.PathContains, &l.Count })
}

func (s *Server) takeFailure(path string) (Failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return takeNext(&s.failures, path, func(f *Failure) (string, *int) { return f.PathContains, &f.Count })
}

// takeNext uses up one answer of the first injection whose path part matches, and drops it
// when none is left.
func takeNext[T any](list *[]T, path string, sel func(*T) (pathContains string, count *int)) (T, bool) {
	for i := range *list {
		contains, count := sel(&(*list)[i])
		if *count > 0 && strings.Contains(path, contains) {
			*count--
			out := (*list)[i]
			if *count == 0 {
				*list = append((*list)[:i], (*list)[i+1:]...)
			}
			return out, true
		}
	}
	var zero T
	return zero, false
}

func write429(w http.ResponseWriter, l Limit) {
	secs := l.RetryAfter.Seconds()
	if l.Cloudflare {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, secs+0.999)))) // whole seconds only
		if l.RetryAfter < time.Second {
			// Cloudflare sends whole seconds; keep tests quick with a fractional value the
			// bot must still honour.
			w.Header().Set("Retry-After", strconv.FormatFloat(secs, 'f', 3, 64))
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, "<html><body>error code: 1015</body></html>")
		return
	}
	w.Header().Set("Retry-After", strconv.FormatFloat(secs, 'f', 3, 64))
	w.Header().Set("X-RateLimit-Remaining", "0")
	w.Header().Set("X-RateLimit-Reset-After", strconv.FormatFloat(secs, 'f', 3, 64))
	if l.Global {
		w.Header().Set("X-RateLimit-Global", "true")
	}
	writeJSON(w, http.StatusTooManyRequests, map[string]any{"message": "You are being rate limited.", "retry_after": secs, "global": l.Global})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"message": msg, "code": code})
}

func (s *Server) getGateway(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"url": gatewayURL(r), "shards": 1})
}

func (s *Server) putCommands(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("app") != s.AppID {
		apiError(w, http.StatusForbidden, 50001, "Missing Access")
		return
	}
	var cmds []*discordgo.ApplicationCommand
	if err := json.NewDecoder(r.Body).Decode(&cmds); err != nil {
		apiError(w, http.StatusBadRequest, 50035, "Invalid Form Body")
		return
	}
	gid := r.PathValue("gid")
	s.mu.Lock()
	for _, c := range cmds {
		if c.Name == "" || len(c.Description) > 100 || len(c.Name) > 32 {
			s.mu.Unlock()
			apiError(w, http.StatusBadRequest, 50035, "Invalid Form Body")
			return
		}
		c.ID = s.newIDLocked()
		c.ApplicationID = s.AppID
		c.GuildID = gid
	}
	s.commands[gid] = cmds
	s.notifyLocked()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, cmds)
}

func (s *Server) getCommands(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Commands(r.PathValue("gid")))
}

// channelLocked returns the channel or writes 404 Unknown Channel.
func (s *Server) channelLocked(w http.ResponseWriter, id string) *channel {
	c := s.channels[id]
	if c == nil || c.missing {
		apiError(w, http.StatusNotFound, 10003, "Unknown Channel")
		return nil
	}
	return c
}

func (s *Server) getChannel(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	c := s.channelLocked(w, r.PathValue("cid"))
	s.mu.Unlock()
	if c != nil {
		writeJSON(w, http.StatusOK, discordgo.Channel{ID: c.id, GuildID: c.guildID, Name: c.name, Type: c.kind, ParentID: c.parentID})
	}
}

func (s *Server) getRoles(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.guilds[r.PathValue("gid")]
	if g == nil {
		apiError(w, http.StatusNotFound, 10004, "Unknown Guild")
		return
	}
	writeJSON(w, http.StatusOK, g.roles)
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channelLocked(w, r.PathValue("cid"))
	if c == nil {
		return
	}
	if c.denyWebhooks {
		apiError(w, http.StatusForbidden, 50013, "Missing Permissions")
		return
	}
	list := s.webhooksLocked(c.id)
	for i := range list {
		if list[i].ApplicationID != s.AppID {
			list[i].Token = "" // Discord shows tokens only of webhooks the app may use
		}
	}
	if list == nil {
		list = []discordgo.Webhook{}
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	var p struct {
		Name string `json:"name"`
	}
	_ = json.NewDecoder(r.Body).Decode(&p)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channelLocked(w, r.PathValue("cid"))
	if c == nil {
		return
	}
	if c.denyWebhooks {
		apiError(w, http.StatusForbidden, 50013, "Missing Permissions")
		return
	}
	if n := utf8.RuneCountInString(p.Name); n < 1 || n > 80 || badWebhookName(p.Name) {
		apiError(w, http.StatusBadRequest, 50035, "Invalid Form Body")
		return
	}
	if len(s.webhooksLocked(c.id)) >= 15 {
		apiError(w, http.StatusBadRequest, 30007, "Maximum number of webhooks reached (15)")
		return
	}
	wh := &webhook{discordgo.Webhook{ID: s.newIDLocked(), Type: discordgo.WebhookTypeIncoming, GuildID: c.guildID,
		ChannelID: c.id, Name: p.Name, ApplicationID: s.AppID, Token: "whtok-" + s.newIDLocked(),
		User: &discordgo.User{ID: s.BotUserID, Username: DefaultBotName, Bot: true}}}
	s.webhooks[wh.ID] = wh
	s.notifyLocked()
	writeJSON(w, http.StatusOK, wh.Webhook)
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wh := s.webhooks[r.PathValue("wid")]
	if wh == nil {
		apiError(w, http.StatusNotFound, 10015, "Unknown Webhook")
		return
	}
	writeJSON(w, http.StatusOK, wh.Webhook)
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wh := s.webhooks[r.PathValue("wid")]
	if wh == nil || (r.PathValue("wtoken") != "" && r.PathValue("wtoken") != wh.Token) {
		apiError(w, http.StatusNotFound, 10015, "Unknown Webhook")
		return
	}
	delete(s.webhooks, wh.ID)
	s.notifyLocked()
	w.WriteHeader(http.StatusNoContent)
}

// badWebhookName mirrors Discord's refusals of webhook names.
func badWebhookName(n string) bool {
	l := strings.ToLower(n)
	return strings.Contains(l, "discord") || strings.Contains(l, "clyde") || l == "everyone" || l == "here"
}

// pings reports whether content mentioning @everyone/@here would notify, given the body's
// allowed_mentions (absent means Discord's default: everything in the content is parsed).
func pings(body map[string]json.RawMessage, content string) bool {
	if !strings.Contains(content, "@everyone") && !strings.Contains(content, "@here") {
		return false
	}
	raw, ok := body["allowed_mentions"]
	if !ok || string(raw) == "null" {
		return true
	}
	var am struct {
		Parse []string `json:"parse"`
	}
	_ = json.Unmarshal(raw, &am)
	for _, p := range am.Parse {
		if p == "everyone" {
			return true
		}
	}
	return false
}

// validateMessage applies Discord's 400 rules to a send or edit body.
func validateMessage(w http.ResponseWriter, body map[string]json.RawMessage, create bool) bool {
	var content string
	_ = json.Unmarshal(body["content"], &content)
	if utf8.RuneCountInString(content) > 2000 {
		apiError(w, http.StatusBadRequest, 50035, "Invalid Form Body: content must be 2000 or fewer in length")
		return false
	}
	var embeds []json.RawMessage
	_ = json.Unmarshal(body["embeds"], &embeds)
	if len(embeds) > 10 {
		apiError(w, http.StatusBadRequest, 50035, "Invalid Form Body: embeds")
		return false
	}
	_, hasFiles := body[filesKey]
	if create && content == "" && len(embeds) == 0 && !hasFiles {
		apiError(w, http.StatusBadRequest, 50006, "Cannot send an empty message")
		return false
	}
	if raw, ok := body["username"]; ok {
		var u string
		_ = json.Unmarshal(raw, &u)
		if n := utf8.RuneCountInString(u); n > 80 || badWebhookName(u) {
			apiError(w, http.StatusBadRequest, 50035, "Invalid Form Body: username")
			return false
		}
	}
	return true
}

// applyBody copies content, embeds, components and flags of a body onto a message.
func applyBody(m *fmsg, body map[string]json.RawMessage) {
	if v, ok := body["content"]; ok && string(v) != "null" {
		_ = json.Unmarshal(v, &m.Content)
	}
	if v, ok := body["embeds"]; ok && string(v) != "null" {
		m.Embeds = nil
		_ = json.Unmarshal(v, &m.Embeds)
	}
	if v, ok := body["components"]; ok && string(v) != "null" {
		m.components = append(json.RawMessage(nil), v...)
	}
	if v, ok := body["flags"]; ok && string(v) != "null" {
		_ = json.Unmarshal(v, &m.Flags)
	}
	m.MentionEveryone = pings(body, m.Content)
}

func readBody(r *http.Request) map[string]json.RawMessage {
	var body map[string]json.RawMessage
	_ = json.NewDecoder(r.Body).Decode(&body)
	if body == nil {
		body = map[string]json.RawMessage{}
	}
	return body
}

func (s *Server) executeWebhook(w http.ResponseWriter, r *http.Request) {
	wid, tok := r.PathValue("wid"), r.PathValue("wtoken")
	if wid == s.AppID {
		s.followup(w, r, tok)
		return
	}
	body, files, ok := readWebhookBody(w, r)
	if !ok {
		return
	}
	var echo json.RawMessage
	s.mu.Lock()
	defer func() { s.mu.Unlock(); s.echo(echo) }()
	wh := s.webhooks[wid]
	if wh == nil {
		apiError(w, http.StatusNotFound, 10015, "Unknown Webhook")
		return
	}
	if wh.Token != tok {
		apiError(w, http.StatusUnauthorized, 50027, "Invalid Webhook Token")
		return
	}
	if c := s.channels[wh.ChannelID]; c == nil || c.missing {
		apiError(w, http.StatusNotFound, 10003, "Unknown Channel")
		return
	}
	target, ok := s.webhookTargetLocked(w, wh, r.URL.Query().Get("thread_id"))
	if !ok {
		return
	}
	if !s.webhookSlotLocked(w, wh.ID) {
		return
	}
	if !validateMessage(w, body, true) {
		return
	}
	var name, avatar string
	_ = json.Unmarshal(body["username"], &name)
	_ = json.Unmarshal(body["avatar_url"], &avatar)
	if name == "" {
		name = wh.Name
	}
	m := newMsg(&discordgo.Message{Author: &discordgo.User{ID: wh.ID, Username: name, Avatar: avatar, Bot: true},
		WebhookID: wh.ID}, wh.ApplicationID)
	applyBody(m, body)
	attachFiles(m, files)
	m = s.storeMessageLocked(target, m)
	echo, _ = json.Marshal(m)
	if r.URL.Query().Get("wait") == "true" {
		writeJSON(w, http.StatusOK, m)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// webhookSlotLocked applies the per-webhook limit (WebhookLimit) to an execution of webhook id:
// it uses up a place in the webhook's window and sets the rate limit headers, or answers 429
// and returns false when the window is full.
func (s *Server) webhookSlotLocked(w http.ResponseWriter, id string) bool {
	l := s.whLimit
	if l.Posts <= 0 || l.Per <= 0 {
		return true
	}
	now := time.Now()
	if s.whWindows == nil {
		s.whWindows = map[string]*whWindow{}
	}
	win := s.whWindows[id]
	if win == nil || !now.Before(win.start.Add(l.Per)) {
		win = &whWindow{start: now}
		s.whWindows[id] = win
	}
	reset := win.start.Add(l.Per)
	left := reset.Sub(now)
	h := w.Header()
	if win.used >= l.Posts {
		h.Set("X-RateLimit-Limit", strconv.Itoa(l.Posts))
		h.Set("X-RateLimit-Bucket", "webhook-"+id)
		h.Set("X-RateLimit-Scope", "user")
		write429(w, Limit{RetryAfter: left})
		return false
	}
	win.used++
	if !l.NoHeaders {
		h.Set("X-RateLimit-Limit", strconv.Itoa(l.Posts))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(l.Posts-win.used))
		h.Set("X-RateLimit-Reset", strconv.FormatFloat(float64(reset.UnixMilli())/1000, 'f', 3, 64))
		h.Set("X-RateLimit-Reset-After", strconv.FormatFloat(left.Seconds(), 'f', 3, 64))
		h.Set("X-RateLimit-Bucket", "webhook-"+id)
	}
	return true
}

func (s *Server) webhookMessageLocked(w http.ResponseWriter, r *http.Request) (*fmsg, *Interaction) {
	wid, tok, mid := r.PathValue("wid"), r.PathValue("wtoken"), r.PathValue("mid")
	if wid == s.AppID {
		ix := s.interactions[tok]
		if ix == nil {
			apiError(w, http.StatusNotFound, 10015, "Unknown Webhook")
			return nil, nil
		}
		if mid == "@original" {
			mid = ix.MessageID
		}
		if m := ix.messages[mid]; m != nil {
			return m, ix
		}
		apiError(w, http.StatusNotFound, 10008, "Unknown Message")
		return nil, ix
	}
	wh := s.webhooks[wid]
	if wh == nil {
		apiError(w, http.StatusNotFound, 10015, "Unknown Webhook")
		return nil, nil
	}
	if wh.Token != tok {
		apiError(w, http.StatusUnauthorized, 50027, "Invalid Webhook Token")
		return nil, nil
	}
	m := s.findMessageLocked(wh.ChannelID, mid)
	if m == nil || m.WebhookID != wh.ID {
		apiError(w, http.StatusNotFound, 10008, "Unknown Message")
		return nil, nil
	}
	return m, nil
}

func (s *Server) getWebhookMessage(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, _ := s.webhookMessageLocked(w, r); m != nil {
		writeJSON(w, http.StatusOK, m)
	}
}

func (s *Server) editWebhookMessage(w http.ResponseWriter, r *http.Request) {
	body := readBody(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.PathValue("wid") == s.AppID && r.PathValue("mid") == "@original" {
		// Editing the original of a deferred interaction creates the message.
		if ix := s.interactions[r.PathValue("wtoken")]; ix != nil && ix.MessageID == "" {
			ix.ensureOriginalLocked(s)
		}
	}
	m, ix := s.webhookMessageLocked(w, r)
	if m == nil {
		return
	}
	if !validateMessage(w, body, false) {
		return
	}
	applyBody(m, body)
	if ix != nil {
		ix.addLocked(s, replyFrom("edit", 0, body))
	}
	s.notifyLocked()
	writeJSON(w, http.StatusOK, m)
}

func (s *Server) deleteWebhookMessage(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.PathValue("wid") == s.AppID && r.PathValue("mid") == "@original" {
		// A deferred answer shows a "thinking…" message on Discord, which can be deleted.
		if ix := s.interactions[r.PathValue("wtoken")]; ix != nil && ix.responded && ix.MessageID == "" {
			ix.ensureOriginalLocked(s)
		}
	}
	m, ix := s.webhookMessageLocked(w, r)
	if m == nil {
		return
	}
	s.removeMessageLocked(m.ChannelID, m.ID)
	if ix != nil {
		delete(ix.messages, m.ID)
		ix.addLocked(s, Reply{Kind: "delete", MessageID: m.ID})
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) removeMessageLocked(channelID, id string) {
	h := s.messages[channelID]
	for i, m := range h {
		if m.ID == id {
			s.messages[channelID] = append(h[:i:i], h[i+1:]...)
			s.notifyLocked()
			return
		}
	}
}

func (s *Server) getMessages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			apiError(w, http.StatusBadRequest, 50035, "Invalid Form Body: limit")
			return
		}
		limit = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channelLocked(w, r.PathValue("cid"))
	if c == nil {
		return
	}
	h := s.messages[c.id] // oldest first; ids grow with time
	var sel []*fmsg
	switch before, after := q.Get("before"), q.Get("after"); {
	case after != "":
		// The messages right after the id, answered newest first.
		for _, m := range h {
			if idLess(after, m.ID) {
				sel = append(sel, m)
				if len(sel) == limit {
					break
				}
			}
		}
	default:
		for i := len(h) - 1; i >= 0 && len(sel) < limit; i-- {
			if before == "" || idLess(h[i].ID, before) {
				sel = append(sel, h[i])
			}
		}
		// reverse to oldest first so that the common reversal below applies
		for i, j := 0, len(sel)-1; i < j; i, j = i+1, j-1 {
			sel[i], sel[j] = sel[j], sel[i]
		}
	}
	out := make([]*fmsg, 0, len(sel))
	for i := len(sel) - 1; i >= 0; i-- {
		out = append(out, sel[i])
	}
	writeJSON(w, http.StatusOK, out)
}

// idLess compares snowflakes numerically.
func idLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func (s *Server) getMessage(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channelLocked(w, r.PathValue("cid"))
	if c == nil {
		return
	}
	if m := s.findMessageLocked(c.id, r.PathValue("mid")); m != nil {
		writeJSON(w, http.StatusOK, m)
		return
	}
	apiError(w, http.StatusNotFound, 10008, "Unknown Message")
}

func (s *Server) postMessage(w http.ResponseWriter, r *http.Request) {
	body := readBody(r)
	var echo json.RawMessage
	s.mu.Lock()
	defer func() { s.mu.Unlock(); s.echo(echo) }()
	c := s.channelLocked(w, r.PathValue("cid"))
	if c == nil || s.dmRefusedLocked(w, c.id) || !validateMessage(w, body, true) {
		return
	}
	m := newMsg(&discordgo.Message{Author: &discordgo.User{ID: s.BotUserID, Username: DefaultBotName, Bot: true}}, s.AppID)
	applyBody(m, body)
	if raw, ok := body["message_reference"]; ok {
		var ref discordgo.MessageReference
		_ = json.Unmarshal(raw, &ref)
		m.MessageReference = &ref
		m.Type = discordgo.MessageTypeReply
		if orig := s.findMessageLocked(c.id, ref.MessageID); orig != nil {
			m.ReferencedMessage = orig.public()
		}
	}
	m = s.storeMessageLocked(c.id, m)
	echo, _ = json.Marshal(m)
	writeJSON(w, http.StatusOK, m)
}

// echo sends MESSAGE_CREATE for a message the bot made over REST, as Discord does: a bridge
// must recognise its own posts on the gateway and not relay them back.
func (s *Server) echo(frame json.RawMessage) {
	if frame != nil {
		s.dispatch("MESSAGE_CREATE", frame)
	}
}

func (s *Server) patchMessage(w http.ResponseWriter, r *http.Request) {
	body := readBody(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channelLocked(w, r.PathValue("cid"))
	if c == nil {
		return
	}
	m := s.findMessageLocked(c.id, r.PathValue("mid"))
	if m == nil || m.Author == nil || m.Author.ID != s.BotUserID {
		apiError(w, http.StatusNotFound, 10008, "Unknown Message")
		return
	}
	if !validateMessage(w, body, false) {
		return
	}
	applyBody(m, body)
	s.notifyLocked()
	writeJSON(w, http.StatusOK, m)
}

// UserMessage describes a message a user (or another bot or webhook) writes in a channel.
type UserMessage struct {
	ChannelID  string
	ID         string // optional
	AuthorID   string
	Username   string
	GlobalName string
	Nick       string
	Bot        bool
	Content    string
	// Mentions are the users mentioned with <@id> in Content.
	Mentions     []*discordgo.User
	MentionRoles []string
	Attachments  []*discordgo.MessageAttachment
	Stickers     []*discordgo.StickerItem
	// ReplyTo is the id of a message of the same channel this one answers.
	ReplyTo       string
	WebhookID     string
	ApplicationID string
	Timestamp     time.Time
	// Type is the message type (default 0; 19 for replies is set automatically; 7 is a join).
	Type discordgo.MessageType
}

func (s *Server) userMessageLocked(u UserMessage) *fmsg {
	if u.AuthorID == "" {
		u.AuthorID = "700000000000000001"
	}
	if u.Username == "" {
		u.Username = "user" + u.AuthorID[len(u.AuthorID)-4:]
	}
	m := &discordgo.Message{ID: u.ID, Content: u.Content, Timestamp: u.Timestamp,
		Author:   &discordgo.User{ID: u.AuthorID, Username: u.Username, GlobalName: u.GlobalName, Bot: u.Bot || u.WebhookID != ""},
		Mentions: u.Mentions, MentionRoles: u.MentionRoles, Attachments: u.Attachments, StickerItems: u.Stickers,
		WebhookID: u.WebhookID, Type: u.Type,
		MentionEveryone: strings.Contains(u.Content, "@everyone") || strings.Contains(u.Content, "@here")}
	if u.WebhookID == "" {
		m.Member = &discordgo.Member{Nick: u.Nick}
	}
	if u.ReplyTo != "" {
		if m.Type == discordgo.MessageTypeDefault {
			m.Type = discordgo.MessageTypeReply
		}
		m.MessageReference = &discordgo.MessageReference{MessageID: u.ReplyTo, ChannelID: u.ChannelID}
		if orig := s.findMessageLocked(u.ChannelID, u.ReplyTo); orig != nil {
			m.ReferencedMessage = orig.public()
		}
	}
	return s.storeMessageLocked(u.ChannelID, newMsg(m, u.ApplicationID))
}

// DispatchMessage stores a message in the channel's history and sends MESSAGE_CREATE.
func (s *Server) DispatchMessage(u UserMessage) *discordgo.Message {
	s.mu.Lock()
	if c := s.channels[u.ChannelID]; c == nil {
		s.mu.Unlock()
		s.t.Fatalf("discordtest: DispatchMessage to unknown channel %s", u.ChannelID)
	}
	m := s.userMessageLocked(u)
	raw, _ := json.Marshal(m)
	// A shallow copy, not public()'s decoded one: load tests call this in a loop, and the fake
	// replaces a stored message's fields (edits, reactions) rather than writing into what they
	// point at.
	pub := *m.Message
	s.mu.Unlock()
	s.dispatch("MESSAGE_CREATE", json.RawMessage(raw))
	return &pub
}
