package resonite_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

// sessionListJSON builds a GET /sessions answer of n sessions shaped like the fact sheet's
// sample, each with three sessionUsers.
func sessionListJSON(tb testing.TB, n int) []byte {
	tb.Helper()
	users := `[
    { "username": "someone", "userID": "U-Someone%[1]d", "userSessionId": null, "isPresent": true, "outputDevice": 1 },
    { "username": "vr-fan", "userID": "U-VrFan%[1]d", "userSessionId": "0190aaaa-0000-7000-8000-%012[1]d", "isPresent": false, "outputDevice": 2 },
    { "username": "host", "userID": "U-Host%[1]d", "userSessionId": "0190bbbb-0000-7000-8000-%012[1]d", "isPresent": true, "outputDevice": 0 }
  ]`
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		s := strings.NewReplacer(
			`"S-U-Host:HiddenStarTheater"`, fmt.Sprintf(`"S-U-Host%d:HiddenStarTheater"`, i),
			`Hidden Star Theater`, fmt.Sprintf("Hidden Star Theater %d", i),
			`"U-Host"`, fmt.Sprintf(`"U-Host%d"`, i),
		).Replace(sampleSession)
		start := strings.Index(s, `"sessionUsers": [`)
		end := strings.Index(s[start:], "],") + start + 1
		s = s[:start] + `"sessionUsers": ` + fmt.Sprintf(users, i) + s[end:]
		b.WriteString(s)
	}
	b.WriteString("]")
	data := []byte(b.String())
	var check []resonite.SessionInfo
	if err := json.Unmarshal(data, &check); err != nil || len(check) != n || len(check[n-1].SessionUsers) != 3 {
		tb.Fatalf("building the session list: %v (%d sessions)", err, len(check))
	}
	return data
}

func BenchmarkDecodeSessions(b *testing.B) {
	data := sessionListJSON(b, 2000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var out []resonite.SessionInfo
		if err := json.Unmarshal(data, &out); err != nil {
			b.Fatal(err)
		}
		if len(out) != 2000 {
			b.Fatalf("%d sessions", len(out))
		}
	}
	b.ReportMetric(float64(len(data)), "json-bytes")
}
