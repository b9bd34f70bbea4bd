package bot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/resonite-bridge/resonite-bridge/bridge"
	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// resoniteColor is the colour of the embeds that show Resonite things (/sessions, /whois).
const resoniteColor = 0x2f80ed

// sessionsPerPage is how many sessions one page shows (one embed each).
const sessionsPerPage = 5

// maxFilterLen bounds the name and host filters so that both fit in a button's custom id
// (Discord allows 100 characters).
const maxFilterLen = 40

// sessionFilter is what /sessions was asked for; it is also the cache key.
type sessionFilter struct {
	Name, Host   string
	MinUsers     int // -1: not set
	IncludeEmpty int // -1: not set (the cloud's default, yes), 0 no, 1 yes
}

func (f sessionFilter) query() core.SessionQuery {
	q := core.SessionQuery{Name: f.Name, Host: f.Host}
	if f.MinUsers >= 0 {
		n := f.MinUsers
		q.MinActiveUsers = &n
	}
	if f.IncludeEmpty >= 0 {
		v := f.IncludeEmpty == 1
		q.IncludeEmptyHeadless = &v
	}
	return q
}

func (f sessionFilter) describe() string {
	var parts []string
	if f.Name != "" {
		parts = append(parts, "name contains “"+f.Name+"”")
	}
	if f.Host != "" {
		parts = append(parts, "host “"+f.Host+"”")
	}
	if f.MinUsers > 0 {
		parts = append(parts, fmt.Sprintf("at least %d users", f.MinUsers))
	}
	if f.IncludeEmpty == 0 {
		parts = append(parts, "no empty headless sessions")
	}
	return strings.Join(parts, ", ")
}

// sessionsPrefix starts the custom id of the paging buttons:
// s:<page>:<min users or empty>:<include empty: "", 0, 1>:<runes of name>:<name><host>.
const sessionsPrefix = "s:"

func encodeSessionsID(f sessionFilter, page int) string {
	minUsers, inc := "", ""
	if f.MinUsers >= 0 {
		minUsers = strconv.Itoa(f.MinUsers)
	}
	if f.IncludeEmpty >= 0 {
		inc = strconv.Itoa(f.IncludeEmpty)
	}
	return fmt.Sprintf("%s%d:%s:%s:%d:%s%s", sessionsPrefix, max(page, 0), minUsers, inc, utf8.RuneCountInString(f.Name), f.Name, f.Host)
}

var errBadCustomID = errors.New("malformed custom id")

// decodeSessionsID parses a paging button's id; the id comes from the network, so every part is
// checked.
func decodeSessionsID(id string) (sessionFilter, int, error) {
	rest, ok := strings.CutPrefix(id, sessionsPrefix)
	if !ok {
		return sessionFilter{}, 0, errBadCustomID
	}
	parts := strings.SplitN(rest, ":", 5)
	if len(parts) != 5 {
		return sessionFilter{}, 0, errBadCustomID
	}
	page, err := strconv.Atoi(parts[0])
	if err != nil || page < 0 || page > 10000 {
		return sessionFilter{}, 0, errBadCustomID
	}
	f := sessionFilter{MinUsers: -1, IncludeEmpty: -1}
	if parts[1] != "" {
		n, err := strconv.Atoi(parts[1])
		if err != nil || n < 0 {
			return sessionFilter{}, 0, errBadCustomID
		}
		f.MinUsers = n
	}
	switch parts[2] {
	case "":
	case "0", "1":
		f.IncludeEmpty = int(parts[2][0] - '0')
	default:
		return sessionFilter{}, 0, errBadCustomID
	}
	nameLen, err := strconv.Atoi(parts[3])
	if err != nil || nameLen < 0 {
		return sessionFilter{}, 0, errBadCustomID
	}
	r := []rune(parts[4])
	if nameLen > len(r) {
		return sessionFilter{}, 0, errBadCustomID
	}
	f.Name, f.Host = string(r[:nameLen]), string(r[nameLen:])
	return f, page, nil
}

// listingCache keeps session listings briefly so that paging is instant, and lets concurrent
// requests for the same listing share one call to Resonite.
type listingCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[sessionFilter]*listing
}

type listing struct {
	ready    chan struct{} // closed when sessions/err are set
	sessions []core.Session
	err      error
	at       time.Time
}

func newListingCache(ttl time.Duration) *listingCache {
	return &listingCache{ttl: ttl, entries: map[sessionFilter]*listing{}}
}

// warm reports whether f's listing is cached and fresh.
func (c *listingCache) warm(f sessionFilter) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[f]
	if !ok {
		return false
	}
	select {
	case <-e.ready:
		return e.err == nil && time.Since(e.at) < c.ttl
	default:
		return false
	}
}

func (c *listingCache) get(ctx context.Context, f sessionFilter, fetch func(context.Context) ([]core.Session, error)) ([]core.Session, time.Time, error) {
	c.mu.Lock()
	now := time.Now()
	for k, e := range c.entries { // keep the map small: drop what expired
		select {
		case <-e.ready:
			if now.Sub(e.at) >= c.ttl || e.err != nil {
				delete(c.entries, k)
			}
		default:
		}
	}
	e, ok := c.entries[f]
	if !ok {
		e = &listing{ready: make(chan struct{})}
		c.entries[f] = e
		c.mu.Unlock()
		e.sessions, e.err = fetch(ctx)
		e.at = time.Now()
		close(e.ready)
	} else {
		c.mu.Unlock()
	}
	select {
	case <-e.ready:
		return e.sessions, e.at, e.err
	case <-ctx.Done():
		return nil, time.Time{}, ctx.Err()
	}
}

func (b *Bot) cmdSessions(ctx context.Context, ix *interaction, data discordgo.ApplicationCommandInteractionData) answer {
	opts := optionMap(data.Options)
	f := sessionFilter{Name: bridge.Shorten(stringOpt(opts, "name"), maxFilterLen), Host: bridge.Shorten(stringOpt(opts, "host"), maxFilterLen), MinUsers: -1, IncludeEmpty: -1}
	if n, ok := intOpt(opts, "min_users"); ok {
		f.MinUsers = max(0, n)
	}
	if v, ok := boolOpt(opts, "include_empty_headless"); ok {
		f.IncludeEmpty = 0
		if v {
			f.IncludeEmpty = 1
		}
	}
	if !b.sessions.warm(f) {
		ix.deferResponse(ctx, false) // a cold listing can take longer than Discord's 3 s
	}
	return b.sessionsPage(ctx, f, 0)
}

// sessionsPage renders one page of a listing, fetching it when it is not cached.
func (b *Bot) sessionsPage(ctx context.Context, f sessionFilter, page int) answer {
	list, at, err := b.sessions.get(ctx, f, func(ctx context.Context) ([]core.Session, error) {
		all, err := b.o.Resonite.Sessions(ctx, f.query())
		if err != nil {
			return nil, err
		}
		return sortSessions(all), nil
	})
	if err != nil {
		b.log.Warn("listing Resonite sessions failed", "err", err)
		return apiFailure("listing sessions", err)
	}
	if len(list) == 0 {
		msg := "No public Resonite sessions right now."
		if d := f.describe(); d != "" {
			msg = "No public Resonite sessions match (" + d + ")."
		}
		return answer{content: msg}
	}
	pages := (len(list) + sessionsPerPage - 1) / sessionsPerPage
	page = min(max(page, 0), pages-1)
	shown := list[page*sessionsPerPage : min(len(list), (page+1)*sessionsPerPage)]
	embeds := make([]*discordgo.MessageEmbed, 0, len(shown))
	for _, s := range shown {
		e := embed(bridge.SessionEmbed(s))
		e.Color = resoniteColor
		embeds = append(embeds, e)
	}
	embeds[len(embeds)-1].Footer = &discordgo.MessageEmbedFooter{
		Text: fmt.Sprintf("Page %d/%d · %d sessions · listed %s UTC", page+1, pages, len(list), at.UTC().Format("15:04:05")),
	}
	content := fmt.Sprintf("**%d public Resonite sessions**", len(list))
	if d := f.describe(); d != "" {
		content += " (" + d + ")"
	}
	return answer{
		content: content,
		embeds:  embeds,
		components: []discordgo.MessageComponent{discordgo.ActionsRow{Components: []discordgo.MessageComponent{
			discordgo.Button{Label: "◀ Prev", Style: discordgo.SecondaryButton, CustomID: encodeSessionsID(f, page-1), Disabled: page == 0},
			discordgo.Button{Label: "Next ▶", Style: discordgo.SecondaryButton, CustomID: encodeSessionsID(f, page+1), Disabled: page >= pages-1},
		}}},
	}
}

// sortSessions drops ended and unlisted sessions and puts the busiest first.
func sortSessions(all []core.Session) []core.Session {
	out := slices.DeleteFunc(all, func(s core.Session) bool { return s.Ended || s.Hidden })
	slices.SortStableFunc(out, func(a, b core.Session) int {
		if c := cmp.Compare(b.ActiveUsers, a.ActiveUsers); c != 0 {
			return c
		}
		if c := cmp.Compare(b.JoinedUsers, a.JoinedUsers); c != 0 {
			return c
		}
		return cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	})
	return out
}
