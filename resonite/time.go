package resonite

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Time is a timestamp as the Resonite cloud writes it. The cloud mixes RFC 3339 with up to seven
// fractional digits, zone-less defaults such as "0001-01-01T00:00:00", and null; encoding/json's
// time.Time accepts none of the last two, so every model uses this type instead.
type Time struct {
	time.Time
}

// timeLayouts are tried in order; zone-less values are taken as UTC, which is what the cloud means.
var timeLayouts = [...]string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.9999999",
	"2006-01-02T15:04:05",
	"2006-01-02",
}

// ParseTime parses a Resonite timestamp. The empty string is the zero time.
func ParseTime(s string) (Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Time{}, nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			t = t.UTC()
			if y := t.Year(); y < 0 || y > 9999 {
				// "0000-01-01T00:00:00+01:00" is year -1 in UTC, which no layout can write back.
				return Time{}, fmt.Errorf("resonite: parsing time %q: year %d in UTC is outside 0–9999", excerpt(s, 64), y)
			}
			return Time{t}, nil
		}
	}
	return Time{}, fmt.Errorf("resonite: parsing time %q: unknown layout", excerpt(s, 64))
}

// UnmarshalJSON accepts a string in any layout above, or null (the zero time).
func (t *Time) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*t = Time{}
		return nil
	}
	var s string
	if plain, ok := plainString(b); ok {
		s = string(plain)
	} else if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("resonite: time is not a string: %w", err)
	}
	parsed, err := ParseTime(s)
	if err != nil {
		return err
	}
	*t = parsed
	return nil
}

// MarshalJSON writes UTC RFC 3339 with 7 fractional digits, as the cloud does; the zero time is
// written as the cloud's own default so that a round trip keeps it.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte(`"0001-01-01T00:00:00"`), nil
	}
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("resonite: encoding time: year %d is outside 0–9999", y)
	}
	return []byte(`"` + t.UTC().Format("2006-01-02T15:04:05.0000000Z07:00") + `"`), nil
}

// Ptr returns a pointer to t, or nil for the zero time (fields that the cloud sends as null).
func (t Time) Ptr() *Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// NewTime wraps a time.Time.
func NewTime(t time.Time) Time { return Time{t.UTC()} }

// excerpt shortens s to at most n bytes on a rune boundary for error messages.
func excerpt(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
