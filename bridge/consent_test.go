package bridge

import (
	"testing"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

func TestParseContactCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text     string
		kind     core.MessageKind
		wantKind string
		wantCode string
	}{
		{"link 123456", core.KindText, "link", "123456"},
		{"  LINK   654321 \n", core.KindText, "link", "654321"},
		{"Link 12345", core.KindText, "link", "12345"}, // a wrong code is still answered, never relayed
		{"link 1234567", core.KindText, "link", "1234567"},
		{"!links", core.KindText, "links", ""},
		{" !UNLINK ", core.KindText, "unlink", ""},
		{"link me that video", core.KindText, "", ""},
		{"link", core.KindText, "", ""},
		{"please link 123456", core.KindText, "", ""},
		{"!links please", core.KindText, "", ""},
		{"link 123456", core.KindSound, "", ""},
	}
	for _, tt := range tests {
		cmd, ok := parseContactCommand(core.ContactMessage{Text: tt.text, Kind: tt.kind})
		if ok != (tt.wantKind != "") || cmd.kind != tt.wantKind || cmd.code != tt.wantCode {
			t.Errorf("parseContactCommand(%q, %s) = %+v, %v; want %q %q", tt.text, tt.kind, cmd, ok, tt.wantKind, tt.wantCode)
		}
	}
}

func TestConsentCodesAreRandomAndBound(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 50 {
		c, err := newCode()
		if err != nil || !sixDigits.MatchString(c) {
			t.Fatalf("newCode() = %q, %v", c, err)
		}
		seen[c] = true
	}
	if len(seen) < 45 {
		t.Errorf("50 codes gave %d distinct ones", len(seen))
	}
	if string(codeHash("U-a", "123456")) == string(codeHash("U-b", "123456")) {
		t.Error("a code hashes the same for two contacts: one could use the other's")
	}
}

// BenchmarkParseContactCommand is the cost every contact message pays on its way in.
func BenchmarkParseContactCommand(b *testing.B) {
	for _, text := range []string{"hello there, how was the session last night?", "link 123456"} {
		b.Run(text[:5], func(b *testing.B) {
			m := core.ContactMessage{Kind: core.KindText, Text: text}
			b.ReportAllocs()
			for b.Loop() {
				parseContactCommand(m)
			}
		})
	}
}
