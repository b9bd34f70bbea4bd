package resonite_test

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

func TestAssetURL(t *testing.T) {
	t.Parallel()
	const hash = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
	tests := []struct{ in, want string }{
		{"resdb:///" + hash + ".webp", "https://assets.resonite.com/" + hash},
		{"resdb:///" + hash + ".ogg", "https://assets.resonite.com/" + hash},
		{"resdb:///" + hash, "https://assets.resonite.com/" + hash},
		{"resdb:///" + hash + ".tar.gz", "https://assets.resonite.com/" + hash},
		{"RESDB:///" + hash + ".png", "https://assets.resonite.com/" + hash},
		{"  resdb:///" + hash + ".webp\n", "https://assets.resonite.com/" + hash},
		{"https://skyfrost-archive.resonite.com/thumbnails/4d3e.webp", "https://skyfrost-archive.resonite.com/thumbnails/4d3e.webp"},
		{"http://example.com/a.png", "http://example.com/a.png"},
		{"resdb:///", ""},
		{"resdb:///.webp", ""},
		{"resdb:///a/b.webp", ""},
		{"resdb:///a?b.webp", ""},
		{"resdb:///a b.webp", ""},
		{"resdb://host/" + hash + ".webp", ""},
		{"resrec:///U-x/R-y", ""},
		{"javascript:alert(1)", ""},
		{"", ""},
	}
	for _, tc := range tests {
		if got := resonite.AssetURL(tc.in); got != tc.want {
			t.Errorf("AssetURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestStripRichText(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"The <color=yellow>Hidden Star Theater</color>", "The Hidden Star Theater"},
		{`<color="#CC6633">Rust</color> & <color=#f00>red</color>`, "Rust & red"},
		{"<color=hero.yellow>palette</color>", "palette"},
		{"<b>bold</b> <i>it</i> <u>u</u> <s>s</s>", "bold it u s"},
		{"<B>LOUD</B>", "LOUD"},
		{"<size=120%>big</size><sub>1</sub><sup>2</sup>", "big12"},
		{`<link="https://example.com">click</link>`, "click"},
		{`<sprite name="heart"> <sprite=3>`, " "},
		{"<align=center><line-height=50%>x</line-height></align>", "x"},
		{"<colour=red>British</colour>", "British"},
		{"<b><i><color=red>nested</color></i></b>", "nested"},
		{"<color=red>never closed", "never closed"},
		{"line1<br>line2", "line1\nline2"},
		{"a<br/>b<BR>c<br >d", "a\nb\nc\nd"},
		{"a</br>b", "ab"},
		{"I <3 you", "I <3 you"},
		{"<3 <b>love</b> <3", "<3 love <3"},
		{"a < b > c", "a < b > c"},
		{"if x<y and y>z", "if x<y and y>z"},
		{"<bold>not a tag</bold>", "<bold>not a tag</bold>"},
		{"<html><script>x</script>", "<html><script>x</script>"},
		{"< b>spaced</ b>", "< b>spaced</ b>"},
		{"<b", "<b"},
		{"b>", "b>"},
		{"<>", "<>"},
		{"</>", "</>"},
		{"<<b>b>", ""}, // removing the inner tag reveals another: gone too, so the result has none
		{"<<b>>", "<>"},
		{"<b<i>>x", "x"},
		{"<color=<b>red>x", "x"},
		{"<noparse><b></noparse>", ""},
		{"🎉 <b>パーティー</b> 🎉", "🎉 パーティー 🎉"},
		{"ｆｕｌｌ<i>ｗｉｄｔｈ</i>", "ｆｕｌｌｗｉｄｔｈ"},
		{"", ""},
		{"no tags at all", "no tags at all"},
	}
	for _, tc := range tests {
		got := resonite.StripRichText(tc.in)
		if got != tc.want {
			t.Errorf("StripRichText(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if again := resonite.StripRichText(got); again != got {
			t.Errorf("StripRichText is not idempotent on %q: %q then %q", tc.in, got, again)
		}
	}
	// A "tag" longer than any real one is left alone, and a long text stays linear.
	long := "<color=" + strings.Repeat("x", resonite.MaxTagLen) + ">"
	if got := resonite.StripRichText(long); got != long {
		t.Errorf("an overlong tag was stripped: %q", got)
	}
	many := strings.Repeat("<b>ok</b> ", 10000)
	if got := resonite.StripRichText(many); got != strings.Repeat("ok ", 10000) {
		t.Errorf("many tags: %d bytes left", len(got))
	}
}

func TestSessionURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"S-U-Host:HiddenStarTheater", "https://go.resonite.com/session/S-U-Host:HiddenStarTheater"},
		{"S-2b7c5d84-5f0e-4a8e-9a53-0c7c2f3b8e11", "https://go.resonite.com/session/S-2b7c5d84-5f0e-4a8e-9a53-0c7c2f3b8e11"},
		{"S-U-Host:My World/2?x#y", "https://go.resonite.com/session/S-U-Host:My%20World%2F2%3Fx%23y"},
	}
	for _, tc := range tests {
		if got := resonite.SessionURL(tc.in); got != tc.want {
			t.Errorf("SessionURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// referenceHash is the fact sheet's definition written out independently of the package.
func referenceHash(sessionID, salt string) string {
	return fmt.Sprintf("%X", sha256.Sum256([]byte(sessionID+salt)))
}

func TestSessionHash(t *testing.T) {
	t.Parallel()
	// sha256("abc") is the FIPS 180-2 test vector: the concatenation order is sessionId + salt.
	if got := resonite.SessionHash("ab", "c"); got != "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD" {
		t.Errorf("SessionHash(ab, c) = %s", got)
	}
	for _, tc := range []struct{ id, salt string }{
		{"S-U-Host:HiddenStarTheater", "base64salt="},
		{"S-2b7c5d84-5f0e-4a8e-9a53-0c7c2f3b8e11", "Zm9vYmFy+/=="},
		{"S-U-ユーザー:ワールド", "塩"},
		{"S-x", ""},
	} {
		got := resonite.SessionHash(tc.id, tc.salt)
		if want := referenceHash(tc.id, tc.salt); got != want {
			t.Errorf("SessionHash(%q, %q) = %s, want %s", tc.id, tc.salt, got, want)
		}
		if len(got) != 64 || strings.ToUpper(got) != got {
			t.Errorf("SessionHash(%q, %q) = %s: not 64 upper-case hex digits", tc.id, tc.salt, got)
		}
	}
}

func TestResolveSession(t *testing.T) {
	t.Parallel()
	known := []resonite.SessionInfo{
		{SessionID: "S-U-Host:HiddenStarTheater", Name: "Theater"},
		{SessionID: "S-cafe", Name: "Cafe"},
		{Name: "no id"},
	}
	const salt = "c2FsdA=="
	status := func(idx int, hashes ...string) resonite.UserStatus {
		s := resonite.UserStatus{HashSalt: salt, CurrentSessionIndex: idx}
		for _, h := range hashes {
			s.Sessions = append(s.Sessions, resonite.UserSessionMetadata{SessionHash: h, AccessLevel: resonite.AccessAnyone})
		}
		return s
	}
	cafe := referenceHash("S-cafe", salt)
	theater := referenceHash("S-U-Host:HiddenStarTheater", salt)
	tests := []struct {
		name   string
		status resonite.UserStatus
		want   string // session name, "" = not resolved
	}{
		{"current is the second", status(1, theater, cafe), "Cafe"},
		{"current is the first", status(0, theater, cafe), "Theater"},
		{"lower-case hash", status(0, strings.ToLower(cafe)), "Cafe"},
		{"a session never seen", status(0, referenceHash("S-private", salt)), ""},
		{"another salt", func() resonite.UserStatus { s := status(0, cafe); s.HashSalt = "other"; return s }(), ""},
		{"no current session", status(-1, cafe), ""},
		{"index past the list", status(2, cafe), ""},
		{"empty hash", status(0, ""), ""},
	}
	for _, tc := range tests {
		s, ok := resonite.ResolveSession(tc.status, known)
		if ok != (tc.want != "") || s.Name != tc.want {
			t.Errorf("%s: ResolveSession = %q, %v; want %q", tc.name, s.Name, ok, tc.want)
		}
	}
}
