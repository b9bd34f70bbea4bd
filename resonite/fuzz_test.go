package resonite_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

// Fuzz targets. Their seeds run in every plain `go test`; `go test -fuzz=FuzzX ./resonite/`
// explores further.

// richTag matches what must never survive StripRichText: a tag of the fact sheet's list (§7,
// plus "colour"), opening or closing, bare, self-closed, or with a value or attributes.
var richTag = regexp.MustCompile(`(?i)</?(align|alpha|color|colour|b|br|i|cspace|font|indent|line-height|line-indent|link|` +
	`lowercase|uppercase|smallcaps|margin|mark|mspace|noparse|nobr|page|pos|size|space|sprite|s|u|style|sub|sup|voffset|width)` +
	`(/|[= \t][^<>]*)?>`)

func FuzzStripRichText(f *testing.F) {
	for _, s := range []string{
		"The <color=yellow>Hidden Star Theater</color>", `<color="#CC6633">x</color>`, "a<br>b<br/>c", "I <3 you", "a < b > c",
		"<<b>b>", "<b<i>>x", "<color=<b>red>x", "<noparse><b></noparse>", "🎉 <b>パーティー</b>", "<size=120%><sprite name=\"x\">",
		"<b\t<br>>", "<BR >", "</>", "<", ">", "", "plain",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := resonite.StripRichText(in)
		if again := resonite.StripRichText(out); again != out {
			t.Errorf("not idempotent: %q -> %q -> %q", in, out, again)
		}
		for _, m := range richTag.FindAllString(out, -1) {
			if len(m) <= resonite.MaxTagLen { // longer ones are not tags (the stripper stays linear)
				t.Errorf("%q left the tag %q in %q", in, m, out)
			}
		}
		if !strings.Contains(in, "<") && out != in {
			t.Errorf("text without '<' changed: %q -> %q", in, out)
		}
		if len(out) > len(in) {
			t.Errorf("stripping grew the text: %q -> %q", in, out)
		}
	})
}

// roundTrip checks, for what decodes, that encoding is a fixed point: the value encodes, its
// encoding decodes, and that decodes to something that encodes the same way. (Not decode(x)
// == x: the decoder normalises, e.g. ordinals to names, times to UTC and 100 ns.)
func roundTrip[T any](t *testing.T, data []byte) {
	t.Helper()
	var v T
	if json.Unmarshal(data, &v) != nil {
		return
	}
	first, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%T decoded from %q does not encode: %v", v, data, err)
	}
	var again T
	if err := json.Unmarshal(first, &again); err != nil {
		t.Fatalf("%T: own encoding %s does not decode: %v", v, first, err)
	}
	second, err := json.Marshal(again)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Fatalf("%T does not round-trip:\n%s\n%s", v, first, second)
	}
}

func addSeeds(f *testing.F, docs ...string) {
	for _, d := range docs {
		f.Add([]byte(d))
	}
	f.Add([]byte(`null`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"x":`))
}

func FuzzDecodeMessage(f *testing.F) {
	addSeeds(f, sampleMessage,
		`{"id":"MSG-1","messageType":"Object","content":`+mustQuote(sampleRecordContent)+`}`,
		`{"id":"MSG-2","messageType":"SessionInvite","content":`+mustQuote(sampleSession)+`}`,
		`{"id":"MSG-3","messageType":"InviteRequest","content":`+mustQuote(sampleInviteRequestContent)+`}`,
		`{"sendTime":"0001-01-01T00:00:00","readTime":null,"messageType":3}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip[resonite.Message](t, data)
		var m resonite.Message
		if json.Unmarshal(data, &m) == nil { // the content decoders never panic either
			_, _ = m.Record()
			_, _ = m.SessionInvite()
			_, _ = m.InviteRequest()
			_, _ = m.ContentMap()
		}
		roundTrip[resonite.MarkReadBatch](t, data)
		roundTrip[resonite.ReadMessageBatch](t, data)
	})
}

func FuzzDecodeUserStatus(f *testing.F) {
	addSeeds(f, sampleUserStatus, sampleHeadlessStatus, sampleIntegerStatus)
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip[resonite.UserStatus](t, data)
		var s resonite.UserStatus
		if json.Unmarshal(data, &s) == nil {
			_, _ = s.CurrentSession()
			_, _ = resonite.ResolveSession(s, []resonite.SessionInfo{{SessionID: "S-1"}})
		}
	})
}

func FuzzDecodeSessionInfo(f *testing.F) {
	addSeeds(f, sampleSession, `{"sessionUsers":[{"userID":null,"outputDevice":7}],"accessLevel":"friendsOfFriends"}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip[resonite.SessionInfo](t, data)
		roundTrip[[]resonite.SessionInfo](t, data)
	})
}

func FuzzDecodeContact(f *testing.F) {
	addSeeds(f, sampleContact, `{"contacts":[`+sampleContact+`]}`, `{"id":"U-1","contactStatus":2,"userStatus":`+sampleHeadlessStatus+`}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip[resonite.Contact](t, data)
		roundTrip[resonite.StatusInitializationResult](t, data)
	})
}

func FuzzDecodeUser(f *testing.F) {
	addSeeds(f, sampleUser, sampleLoginReply, sampleOnlineStats)
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip[resonite.User](t, data)
		roundTrip[resonite.LoginResponse](t, data)
		roundTrip[resonite.OnlineStats](t, data)
	})
}

func FuzzDecodeTime(f *testing.F) {
	for _, s := range []string{
		`"0001-01-01T00:00:00"`, `"2025-05-24T20:49:29.6335177Z"`, `"2025-05-24T22:04:10.485Z"`, `"2025-05-24T22:49:29.5+02:00"`,
		`"2025-05-24T20:49:29.123456789Z"`, `"2025-05-24"`, `"0000-01-01T00:00:00+01:00"`, `"9999-12-31T23:59:59-01:00"`, `null`, `""`, `12`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var tm resonite.Time
		if json.Unmarshal(data, &tm) != nil {
			return
		}
		if !tm.IsZero() && tm.Location() != time.UTC {
			t.Errorf("%q decoded to a non-UTC time %v", data, tm)
		}
		enc, err := json.Marshal(tm)
		if err != nil {
			t.Fatalf("%q decoded to %v, which does not encode: %v", data, tm, err)
		}
		var back resonite.Time
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("%q: own encoding %s does not decode: %v", data, enc, err)
		}
		// The encoding keeps 100 ns ticks, as the cloud does: nothing coarser is lost.
		if d := tm.Sub(back.Time); d < 0 || d >= 100*time.Nanosecond {
			t.Errorf("%q: %v encoded as %s decodes to %v", data, tm, enc, back)
		}
	})
}

func FuzzDecodeEnums(f *testing.F) {
	for _, s := range []string{`"Online"`, `"friends"`, `"FriendsOfFriends"`, `3`, `-1`, `99999999999999999999`, `null`, `"VR"`, `1.5`, `"Bot"`, `"Ac\u0063epted"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		enumRoundTrip[resonite.OnlineStatus](t, data)
		enumRoundTrip[resonite.OutputDevice](t, data)
		enumRoundTrip[resonite.SessionType](t, data)
		enumRoundTrip[resonite.ContactStatus](t, data)
		enumRoundTrip[resonite.AccessLevel](t, data)
	})
}

// enumRoundTrip: a decoded enum is a name that decodes to itself.
func enumRoundTrip[T ~string](t *testing.T, data []byte) {
	t.Helper()
	var v T
	if json.Unmarshal(data, &v) != nil {
		return
	}
	enc, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var back T
	if err := json.Unmarshal(enc, &back); err != nil || !reflect.DeepEqual(back, v) {
		t.Errorf("%T %q decoded to %q, which re-decodes to %q (%v)", v, data, v, back, err)
	}
}

func mustQuote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}
