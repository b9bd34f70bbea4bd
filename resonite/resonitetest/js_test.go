package resonitetest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

// TestOfficialJavaScriptClient runs the official client, @microsoft/signalr, against the fake
// hub (testdata/signalr-client.cjs): through negotiate and with skipNegotiation. It needs node
// and SIGNALR_JS_DIR, a folder with node_modules/@microsoft/signalr (.ci/run installs it);
// without them it skips, except under CI=true, where it fails.
func TestOfficialJavaScriptClient(t *testing.T) {
	t.Parallel()
	dir := os.Getenv("SIGNALR_JS_DIR")
	node, nodeErr := exec.LookPath("node")
	missing := ""
	switch {
	case dir == "":
		missing = "SIGNALR_JS_DIR is not set"
	case nodeErr != nil:
		missing = "node is not installed: " + nodeErr.Error()
	default:
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "@microsoft", "signalr", "package.json")); err != nil {
			missing = "SIGNALR_JS_DIR has no node_modules/@microsoft/signalr: " + err.Error()
		}
	}
	if missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (CI=true: the JavaScript client check must run; see .ci/run)", missing)
		}
		t.Skipf("%s; install it with: npm install --prefix DIR @microsoft/signalr, then SIGNALR_JS_DIR=DIR", missing)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "signalr-client.cjs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		skip bool
	}{{"negotiate", false}, {"skipNegotiation", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.AddContact(userID, resonite.Contact{ID: "U-A", ContactUsername: "A", ContactStatus: resonite.ContactAccepted})
			f.AddContact(userID, resonite.Contact{ID: "U-B", ContactUsername: "B", ContactStatus: resonite.ContactAccepted})
			ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, script)
			skip := "0"
			if tc.skip {
				skip = "1"
			}
			cmd.Env = append(os.Environ(),
				"SIGNALR_JS_DIR="+dir,
				"HUB_URL="+f.HubURL,
				"HUB_AUTH=res "+userID+":"+f.IssueToken(userID, time.Hour),
				"SKIP_NEGOTIATION="+skip,
				`WANT_CONTACTS=["U-A","U-B","U-JS"]`) // U-JS: the script's UpdateContact
			var stderr strings.Builder
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatalf("starting node: %v", err)
			}
			var lines []string
			sc := bufio.NewScanner(stdout)
			for sc.Scan() { // ends when node exits and closes its stdout
				lines = append(lines, sc.Text())
				if sc.Text() == "ready" {
					f.PushMessage(userID, resonite.Message{ID: "MSG-from-go", SenderID: "U-A", RecipientID: userID,
						MessageType: resonite.MessageText, Content: "hello from Go", SendTime: resonite.NewTime(time.Now())})
				}
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("the JavaScript client failed: %v\nstdout:\n%s\nstderr:\n%s", err, strings.Join(lines, "\n"), stderr.String())
			}
			if !slices.Contains(lines, "ok") {
				t.Fatalf("the script did not finish: stdout %q, stderr:\n%s", lines, stderr.String())
			}
			for _, m := range []string{"UpdateContact", "ListenOnKey", "Ping", "InitializeContacts"} {
				if len(f.CallsTo(m, "")) == 0 {
					t.Errorf("the fake recorded no %s call", m)
				}
			}
			var paths []string
			for _, c := range f.HubConnects() {
				paths = append(paths, c.Path)
			}
			want := []string{"/hub/negotiate", "/hub"}
			if tc.skip {
				want = []string{"/hub"}
			}
			if !slices.Equal(paths, want) {
				b, _ := json.Marshal(f.HubConnects())
				t.Errorf("hub requests = %v, want %v: %s", paths, want, b)
			}
			if err := f.WaitConnections(ctx, userID, 0); err != nil {
				t.Errorf("the JavaScript client's connection is still there: %v", err)
			}
		})
	}
}
