package bridge

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

func TestRenderBoard(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	type contact struct {
		name   string
		status core.OnlineStatus
		kind   core.DeviceKind
	}
	for _, tc := range []struct {
		name     string
		contacts []contact
		want     []string // in this order
		absent   []string
		more     int // the "and N more" expected, 0: none
	}{
		{
			name: "online first by status, then name; invisible and offline left out",
			contacts: []contact{{"zed", core.StatusAway, core.DeviceMobile}, {"Amy", core.StatusOnline, core.DeviceVR},
				{"bob", core.StatusSociable, core.DeviceDesktop}, {"Hidden", core.StatusInvisible, core.DeviceVR},
				{"Gone", core.StatusOffline, core.DeviceVR}, {"cat", core.StatusOnline, core.DeviceHeadless}},
			want:   []string{"4 of 6", "💬 **bob** · desktop", "🟢 **Amy** · VR", "🟢 **cat** · headless", "🟡 **zed** · mobile"},
			absent: []string{"Hidden", "Gone", "more"},
		},
		{
			name:     "nobody online",
			contacts: []contact{{"Gone", core.StatusOffline, core.DeviceVR}},
			want:     []string{"0 of 1", "Nobody is online"},
		},
		{
			name:     "markdown and mentions in names stay text",
			contacts: []contact{{"*x* @everyone", core.StatusOnline, core.DeviceUnknown}},
			want:     []string{`**\*x\* @` + "\u200b" + `everyone**`},
		},
		{
			name: "a long list is cut within Discord's limit",
			contacts: func() []contact {
				var cs []contact
				for i := range 300 {
					cs = append(cs, contact{fmt.Sprintf("user-with-a-long-name-%03d", i), core.StatusOnline, core.DeviceVR})
				}
				return cs
			}(),
			want: []string{"300 of 300", "user-with-a-long-name-000"},
			more: -1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := &Bridge{o: Options{Sessions: noSessions{}}, presence: newPresence(func() time.Time { return now }, time.Hour, time.Hour)}
			var ids []string
			for i, c := range tc.contacts {
				id := fmt.Sprintf("U-%d", i)
				ids = append(ids, id)
				b.presence.setContact(core.Contact{ID: id, Username: c.name, State: core.ContactFriend})
				b.presence.seed(core.Device{UserID: id, DeviceID: "d", Status: c.status, Kind: c.kind, StatusChanged: now})
			}
			body := b.renderBoard(ids)
			content := body + fmt.Sprintf(boardFooter, now.Unix())
			if n := utf8.RuneCountInString(content); n > DiscordMaxLen {
				t.Fatalf("%d characters, over Discord's %d", n, DiscordMaxLen)
			}
			at := 0
			for _, w := range tc.want {
				i := strings.Index(body[at:], w)
				if i < 0 {
					t.Fatalf("%q not found (in order) in:\n%s", w, body)
				}
				at += i + len(w)
			}
			for _, a := range tc.absent {
				if strings.Contains(body, a) {
					t.Errorf("%q shown in:\n%s", a, body)
				}
			}
			if tc.more != 0 {
				shown := strings.Count(body, "\n🟢")
				if want := fmt.Sprintf("…and %d more", len(tc.contacts)-shown); !strings.HasSuffix(body, want) {
					t.Errorf("body ends %q, want %q", body[len(body)-30:], want)
				}
			}
		})
	}
}
