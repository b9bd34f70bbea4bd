package resonite

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"
)

const (
	assetsBase  = "https://assets.resonite.com/"
	sessionBase = "https://go.resonite.com/session/"
)

// AssetURL turns a resdb:///<hash>.<ext> URI into its https URL on the asset CDN (which drops
// the extension); http(s) URLs are returned as they are, anything else gives "".
func AssetURL(uri string) string {
	uri = strings.TrimSpace(uri)
	lower := strings.ToLower(uri)
	switch {
	case strings.HasPrefix(lower, "https://"), strings.HasPrefix(lower, "http://"):
		return uri
	case strings.HasPrefix(lower, "resdb:///"):
		name := uri[len("resdb:///"):]
		if i := strings.IndexByte(name, '.'); i >= 0 {
			name = name[:i]
		}
		if name == "" || strings.ContainsAny(name, "/?#\\ ") {
			return ""
		}
		return assetsBase + url.PathEscape(name)
	}
	return ""
}

// SessionURL is the shareable go.resonite.com page of a session.
func SessionURL(sessionID string) string {
	return sessionBase + url.PathEscape(sessionID)
}

// SessionHash is what UserStatus.sessions[].sessionHash holds for a session: the upper-case hex
// SHA-256 of the UTF-8 session id followed by the status' hashSalt.
func SessionHash(sessionID, salt string) string {
	sum := sha256.Sum256([]byte(sessionID + salt))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// ResolveSession finds, among known sessions, the one the status says its user is in. Hidden
// or private sessions the bridge never saw cannot be resolved.
func ResolveSession(st UserStatus, known []SessionInfo) (SessionInfo, bool) {
	cur, ok := st.CurrentSession()
	if !ok || cur.SessionHash == "" {
		return SessionInfo{}, false
	}
	for _, s := range known {
		if s.SessionID != "" && strings.EqualFold(SessionHash(s.SessionID, st.HashSalt), cur.SessionHash) {
			return s, true
		}
	}
	return SessionInfo{}, false
}

// richTextTags are the tag names Resonite's text renderer knows (fact sheet §7, plus the
// British "colour"). Only these are stripped, so that text such as "<3" or "a <b> c"-like
// prose with other words survives.
var richTextTags = map[string]bool{
	"align": true, "alpha": true, "color": true, "colour": true, "b": true, "br": true, "i": true,
	"cspace": true, "font": true, "indent": true, "line-height": true, "line-indent": true,
	"link": true, "lowercase": true, "uppercase": true, "smallcaps": true, "margin": true,
	"mark": true, "mspace": true, "noparse": true, "nobr": true, "page": true, "pos": true,
	"size": true, "space": true, "sprite": true, "s": true, "u": true, "style": true, "sub": true,
	"sup": true, "voffset": true, "width": true,
}

// maxTagLen bounds what counts as a tag, which keeps stripping linear: real tags are short.
const maxTagLen = 256

// StripRichText removes Resonite rich-text tags for plain display and turns <br> into a
// newline. Tags are removed as if repeatedly until none is left, so "<<b>b>" gives "" and the
// result never contains a tag; stripping twice gives the same as once.
func StripRichText(s string) string {
	if strings.IndexByte(s, '<') < 0 {
		return s
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		ch := s[i]
		out = append(out, ch)
		if ch != '>' {
			continue
		}
		// Does out end with a tag? Its '<' is the last one, within maxTagLen.
		lo := max(0, len(out)-maxTagLen)
		lt := strings.LastIndexByte(string(out[lo:]), '<')
		if lt < 0 {
			continue
		}
		lt += lo
		br, ok := parseTag(out[lt:])
		if !ok {
			continue
		}
		out = out[:lt]
		if br {
			out = append(out, '\n')
		}
	}
	return string(out)
}

// parseTag reports whether t (from '<' to '>' inclusive, no '<' inside) is a rich-text tag, and
// whether it is an opening <br>.
func parseTag(t []byte) (isBr, ok bool) {
	body := t[1 : len(t)-1]
	closing := false
	if len(body) > 0 && body[0] == '/' {
		closing = true
		body = body[1:]
	}
	n := 0
	for n < len(body) && isTagNameByte(body[n]) {
		n++
	}
	if n == 0 || n > len("line-indent") {
		return false, false
	}
	name := strings.ToLower(string(body[:n]))
	if !richTextTags[name] {
		return false, false
	}
	rest := body[n:]
	switch {
	case len(rest) == 0, len(rest) == 1 && rest[0] == '/':
	case rest[0] == '=' || rest[0] == ' ' || rest[0] == '\t':
		if strings.IndexByte(string(rest), '>') >= 0 {
			return false, false
		}
	default:
		return false, false
	}
	return name == "br" && !closing, true
}

func isTagNameByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b == '-'
}
