package discordtest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
)

// Privileged intents: asking for one that is not enabled closes the gateway with 4014.
const privilegedIntents = int(discordgo.IntentsGuildMembers | discordgo.IntentsGuildPresences | discordgo.IntentsMessageContent)

type gatewayState struct {
	heartbeat      time.Duration
	dmu            sync.Mutex // serialises dispatches so that sequence numbers go out in order
	sessions       map[string]*gwSession
	current        *gwSession
	conns          map[*gwConn]struct{}
	fatal          int
	denyPrivileged bool
	stats          GatewayStats
}

type gwSession struct {
	id      string
	seq     int64
	log     []gwFrame
	conn    *gwConn
	invalid bool
}

type gwFrame struct {
	seq   int64
	frame []byte
}

type gwConn struct {
	ws   *websocket.Conn
	wmu  sync.Mutex
	sess *gwSession
}

func (c *gwConn) write(v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if b, ok := v.([]byte); ok {
		return c.ws.WriteMessage(websocket.TextMessage, b)
	}
	return c.ws.WriteJSON(v)
}

func (c *gwConn) closeWith(code int, text string) {
	c.wmu.Lock()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
	c.wmu.Unlock()
	_ = c.ws.Close()
}

// GatewayStats counts gateway activity.
type GatewayStats struct {
	Identifies int
	Resumes    int
	// Connected: a socket with a live (identified or resumed) session is open.
	Connected bool
	// Intents of the last IDENTIFY.
	Intents int
	// LastIdentifyToken is the token field of the last IDENTIFY.
	LastIdentifyToken string
}

// Gateway returns the gateway counters.
func (s *Server) Gateway() GatewayStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gatewayLocked()
}

func (s *Server) gatewayLocked() GatewayStats {
	st := s.gw.stats
	st.Connected = s.gw.current != nil && s.gw.current.conn != nil
	return st
}

// WaitGateway waits until cond holds for the gateway counters.
func (s *Server) WaitGateway(t testing.TB, what string, cond func(GatewayStats) bool) GatewayStats {
	t.Helper()
	var st GatewayStats
	s.waitFor(t, what, func() bool { st = s.gatewayLocked(); return cond(st) })
	return st
}

// WaitConnected waits until a bot session is live on the gateway.
func (s *Server) WaitConnected(t testing.TB) {
	t.Helper()
	s.WaitGateway(t, "a connected gateway session", func(g GatewayStats) bool { return g.Connected })
}

// DenyPrivilegedIntents makes IDENTIFY with a privileged intent (e.g. MESSAGE_CONTENT) close
// with 4014, as Discord does when the intent is not enabled in the Developer Portal.
func (s *Server) DenyPrivilegedIntents(deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gw.denyPrivileged = deny
	s.notifyLocked()
}

// DropGateway cuts the TCP connection without a close frame; the session stays resumable.
func (s *Server) DropGateway() {
	s.mu.Lock()
	conns := s.liveConnsLocked()
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.ws.UnderlyingConn().Close()
	}
}

// CloseGateway closes the live connection with a close code. A fatal code (4004, 4010–4014)
// sticks: every later IDENTIFY or RESUME is closed with it too, as Discord would until the
// token or the portal settings are fixed (ClearFatal undoes it). 4007 and 4009 end the session.
func (s *Server) CloseGateway(code int) {
	s.mu.Lock()
	if isFatal(code) {
		s.gw.fatal = code
	}
	if (isFatal(code) || code == 4007 || code == 4009) && s.gw.current != nil {
		s.gw.current.invalid = true
	}
	s.notifyLocked()
	conns := s.liveConnsLocked()
	s.mu.Unlock()
	for _, c := range conns {
		c.closeWith(code, closeText(code))
	}
}

// ClearFatal stops refusing sessions after CloseGateway with a fatal code.
func (s *Server) ClearFatal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gw.fatal = 0
	s.notifyLocked()
}

func isFatal(code int) bool { return code == 4004 || (code >= 4010 && code <= 4014) }

func closeText(code int) string {
	switch code {
	case 4004:
		return "Authentication failed."
	case 4013:
		return "Invalid intent(s)."
	case 4014:
		return "Disallowed intent(s)."
	}
	return "closed by test"
}

func (s *Server) liveConnsLocked() []*gwConn {
	out := make([]*gwConn, 0, len(s.gw.conns))
	for c := range s.gw.conns {
		out = append(out, c)
	}
	return out
}

type gwPayload struct {
	Op int             `json:"op"`
	D  json.RawMessage `json:"d"`
	S  int64           `json:"s,omitempty"`
	T  string          `json:"t,omitempty"`
}

func (s *Server) serveGateway(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &gwConn{ws: ws}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ws.Close()
		return
	}
	s.gw.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.gw.conns, c)
		if c.sess != nil && c.sess.conn == c {
			c.sess.conn = nil
		}
		s.notifyLocked()
		s.mu.Unlock()
		_ = ws.Close()
	}()

	hb := s.gw.heartbeat.Milliseconds()
	if c.write(map[string]any{"op": 10, "d": map[string]any{"heartbeat_interval": hb}}) != nil {
		return
	}
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			if ce, ok := err.(*websocket.CloseError); ok && (ce.Code == websocket.CloseNormalClosure || ce.Code == websocket.CloseGoingAway) {
				// A client closing with 1000/1001 ends its session, like Discord.
				s.mu.Lock()
				if c.sess != nil {
					c.sess.invalid = true
				}
				s.mu.Unlock()
			}
			return
		}
		var p gwPayload
		if json.Unmarshal(data, &p) != nil {
			c.closeWith(4002, "Error while decoding payload.")
			return
		}
		switch p.Op {
		case 1:
			if c.write(map[string]any{"op": 11}) != nil {
				return
			}
		case 2:
			if !s.identify(c, p.D) {
				return
			}
		case 6:
			if !s.resume(c, p.D) {
				return
			}
		}
	}
}

func (s *Server) identify(c *gwConn, d json.RawMessage) bool {
	var id struct {
		Token   string `json:"token"`
		Intents int    `json:"intents"`
	}
	_ = json.Unmarshal(d, &id)
	s.mu.Lock()
	s.gw.stats.LastIdentifyToken = id.Token
	s.gw.stats.Intents = id.Intents
	switch {
	case id.Token != "Bot "+s.Token:
		s.mu.Unlock()
		c.closeWith(4004, closeText(4004))
		return false
	case s.gw.fatal != 0:
		code := s.gw.fatal
		s.mu.Unlock()
		c.closeWith(code, closeText(code))
		return false
	case s.gw.denyPrivileged && id.Intents&privilegedIntents != 0:
		s.mu.Unlock()
		c.closeWith(4014, closeText(4014))
		return false
	}
	sess := &gwSession{id: "sess-" + s.newIDLocked(), conn: c}
	s.gw.sessions[sess.id] = sess
	if s.gw.current != nil {
		s.gw.current.invalid = true
	}
	s.gw.current = sess
	c.sess = sess
	s.gw.stats.Identifies++
	guilds := make([]map[string]any, 0, len(s.guildOrder))
	for _, g := range s.guildOrder {
		guilds = append(guilds, map[string]any{"id": g, "unavailable": true})
	}
	ids := append([]string(nil), s.guildOrder...)
	s.mu.Unlock()

	s.dispatch("READY", map[string]any{
		"v": 9, "session_id": sess.id,
		"user":        map[string]any{"id": s.BotUserID, "username": DefaultBotName, "bot": true},
		"application": map[string]any{"id": s.AppID, "flags": 0},
		"guilds":      guilds,
	})
	for _, g := range ids {
		s.dispatch("GUILD_CREATE", s.guildCreate(g))
	}
	s.mu.Lock()
	s.notifyLocked()
	s.mu.Unlock()
	return true
}

func (s *Server) resume(c *gwConn, d json.RawMessage) bool {
	var rs struct {
		Token     string `json:"token"`
		SessionID string `json:"session_id"`
		Seq       int64  `json:"seq"`
	}
	_ = json.Unmarshal(d, &rs)
	s.gw.dmu.Lock()
	defer s.gw.dmu.Unlock()
	s.mu.Lock()
	if rs.Token != "Bot "+s.Token || s.gw.fatal != 0 {
		code := s.gw.fatal
		if rs.Token != "Bot "+s.Token {
			code = 4004
		}
		s.mu.Unlock()
		c.closeWith(code, closeText(code))
		return false
	}
	sess := s.gw.sessions[rs.SessionID]
	if sess == nil || sess.invalid {
		s.mu.Unlock()
		// Op 9 with d=false: the client must identify again.
		return c.write(map[string]any{"op": 9, "d": false}) == nil
	}
	sess.conn = c
	c.sess = sess
	var replay [][]byte
	for _, f := range sess.log {
		if f.seq > rs.Seq {
			replay = append(replay, f.frame)
		}
	}
	sess.seq++
	resumed, _ := json.Marshal(map[string]any{"op": 0, "t": "RESUMED", "s": sess.seq, "d": map[string]any{}})
	s.gw.stats.Resumes++
	s.mu.Unlock()
	for _, f := range replay {
		if c.write(f) != nil {
			return false
		}
	}
	ok := c.write(resumed) == nil
	s.mu.Lock()
	s.notifyLocked()
	s.mu.Unlock()
	return ok
}

func (s *Server) guildCreate(id string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.guilds[id]
	if g == nil {
		return map[string]any{"id": id}
	}
	chans := []map[string]any{}
	for _, cid := range g.channels {
		if c := s.channels[cid]; c != nil {
			chans = append(chans, map[string]any{"id": c.id, "name": c.name, "type": 0, "guild_id": id})
		}
	}
	return map[string]any{"id": id, "name": g.name, "unavailable": false, "channels": chans, "roles": g.roles,
		"members": []any{}, "member_count": 2}
}

// dispatch sends an op 0 event to the current session, logging it for resumes. With no live
// socket the event is only logged (a resume replays it); with no session at all it is lost,
// as on Discord.
func (s *Server) dispatch(typ string, d any) {
	s.gw.dmu.Lock()
	defer s.gw.dmu.Unlock()
	s.mu.Lock()
	sess := s.gw.current
	if sess == nil || sess.invalid {
		s.mu.Unlock()
		return
	}
	sess.seq++
	frame, err := dispatchFrame(typ, sess.seq, d)
	if err != nil {
		s.mu.Unlock()
		s.t.Errorf("discordtest: encoding %s: %v", typ, err)
		return
	}
	sess.log = append(sess.log, gwFrame{seq: sess.seq, frame: frame})
	c := sess.conn
	s.mu.Unlock()
	if c != nil {
		_ = c.write(frame)
	}
}

// dispatchFrame encodes an op 0 frame. A json.RawMessage payload (the fake's own encoding) goes
// in as it is, without the validate-and-compact pass json.Marshal would give it.
func dispatchFrame(typ string, seq int64, d any) ([]byte, error) {
	raw, ok := d.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = json.Marshal(d); err != nil {
			return nil, err
		}
	}
	t, _ := json.Marshal(typ)
	frame := append([]byte(`{"op":0,"t":`), t...)
	frame = strconv.AppendInt(append(frame, `,"s":`...), seq, 10)
	frame = append(append(frame, `,"d":`...), raw...)
	return append(frame, '}'), nil
}

func gatewayURL(r *http.Request) string {
	return "ws://" + r.Host + "/gw"
}
