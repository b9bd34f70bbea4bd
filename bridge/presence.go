package bridge

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

// statusRank orders statuses for the dominant one: Sociable > Online > Busy > Away > Invisible
// > Offline (and unknown or null, which headless hosts send).
func statusRank(s resonite.OnlineStatus) int {
	switch s {
	case resonite.StatusSociable:
		return 5
	case resonite.StatusOnline:
		return 4
	case resonite.StatusBusy:
		return 3
	case resonite.StatusAway:
		return 2
	case resonite.StatusInvisible:
		return 1
	}
	return 0
}

type device struct {
	status resonite.UserStatus
	seen   time.Time
}

// presence is the model of contacts' devices, keyed by user and userSessionId, plus the
// contact and session caches that presence answers need.
type presence struct {
	now      func() time.Time
	expiry   time.Duration
	cooldown time.Duration
	warmup   time.Duration

	mu        sync.Mutex
	devices   map[string]map[string]device
	contacts  map[string]resonite.Contact
	sessions  map[string]resonite.SessionInfo
	announced map[[2]string]time.Time // (contact, channel) → last announcement
	// connectedOnce is false until the hub's first Connected: its start-up sequence asks every
	// contact for its status before Connected is emitted, so those answers are the burst too.
	connectedOnce bool
	warmUntil     time.Time
}

func newPresence(now func() time.Time, expiry, cooldown, warmup time.Duration) *presence {
	return &presence{
		now: now, expiry: expiry, cooldown: cooldown, warmup: warmup,
		devices:   map[string]map[string]device{},
		contacts:  map[string]resonite.Contact{},
		sessions:  map[string]resonite.SessionInfo{},
		announced: map[[2]string]time.Time{},
	}
}

// onlineNotice is a contact that just came online.
type onlineNotice struct {
	contactID string
	status    resonite.OnlineStatus
	device    resonite.UserStatus
}

// dominantLocked drops the user's expired devices and returns the dominant status and the
// device that shows it.
func (p *presence) dominantLocked(userID string, now time.Time) (resonite.OnlineStatus, resonite.UserStatus, bool) {
	devs := p.devices[userID]
	best, bestDev, found := resonite.StatusOffline, resonite.UserStatus{}, false
	var bestSeen time.Time
	for id, d := range devs {
		if now.Sub(d.seen) >= p.expiry {
			delete(devs, id)
			continue
		}
		r := statusRank(d.status.OnlineStatus)
		if !found || r > statusRank(best) || (r == statusRank(best) && d.seen.After(bestSeen)) {
			best, bestDev, bestSeen, found = d.status.OnlineStatus, d.status, d.seen, true
		}
	}
	if len(devs) == 0 {
		delete(p.devices, userID)
	}
	if found && statusRank(best) == 0 {
		best = resonite.StatusOffline
	}
	return best, bestDev, found
}

// update applies one device's status and reports a transition from offline or invisible to
// a visible status, unless the hub just connected and everyone is re-sending statuses.
func (p *presence) update(st resonite.UserStatus) (onlineNotice, bool) {
	if st.UserID == "" {
		return onlineNotice{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	prev, _, _ := p.dominantLocked(st.UserID, now)
	if st.OnlineStatus == resonite.StatusOffline {
		delete(p.devices[st.UserID], st.UserSessionID)
	} else {
		if p.devices[st.UserID] == nil {
			p.devices[st.UserID] = map[string]device{}
		}
		p.devices[st.UserID][st.UserSessionID] = device{status: st, seen: now}
	}
	cur, dev, _ := p.dominantLocked(st.UserID, now)
	if prev.Visible() || !cur.Visible() || !p.connectedOnce || now.Before(p.warmUntil) {
		return onlineNotice{}, false
	}
	return onlineNotice{contactID: st.UserID, status: cur, device: dev}, true
}

// connected starts the warm-up after a hub (re)connection.
func (p *presence) connected() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.connectedOnce = true
	p.warmUntil = p.now().Add(p.warmup)
}

func (p *presence) setContact(c resonite.Contact) {
	if c.ID == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.contacts[c.ID] = c
}

func (p *presence) setSession(s resonite.SessionInfo) {
	if s.SessionID == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.HasEnded {
		delete(p.sessions, s.SessionID)
		return
	}
	p.sessions[s.SessionID] = s
}

func (p *presence) removeSession(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.sessions, id)
}

// resolveLocked finds the session a device is in among the sessions seen.
func (p *presence) resolveLocked(st resonite.UserStatus) (resonite.SessionInfo, bool) {
	if _, ok := st.CurrentSession(); !ok || len(p.sessions) == 0 {
		return resonite.SessionInfo{}, false
	}
	known := slices.Collect(maps.Values(p.sessions))
	return resolveSession(st, known)
}

func (p *presence) resolve(st resonite.UserStatus) (resonite.SessionInfo, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resolveLocked(st)
}

func (p *presence) contactPresence(userID string) (resonite.OnlineStatus, *resonite.SessionInfo, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	status, dev, found := p.dominantLocked(userID, p.now())
	if !found || !status.Visible() {
		// Invisible is offline to everyone else; telling a Discord channel would out the user.
		if _, known := p.contacts[userID]; !known && !found {
			return "", nil, false
		}
		return resonite.StatusOffline, nil, true
	}
	if s, ok := p.resolveLocked(dev); ok {
		return status, &s, true
	}
	return status, nil, true
}

// contactLook returns the name and avatar URL a contact's posts carry.
func (p *presence) contactLook(userID, fallbackName string) (string, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.contacts[userID]
	name := fallbackName
	if ok && c.ContactUsername != "" {
		name = c.ContactUsername
	}
	if name == "" {
		name = userID
	}
	var avatar string
	if ok && c.Profile != nil && c.Profile.IconURL != "" {
		avatar = assetURL(c.Profile.IconURL)
	}
	return name, avatar
}

// claimAnnouncement records an announcement of contact in channel unless one was made within
// the cooldown.
func (p *presence) claimAnnouncement(contactID, channelID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	key := [2]string{contactID, channelID}
	if last, ok := p.announced[key]; ok && now.Sub(last) < p.cooldown {
		return false
	}
	p.announced[key] = now
	return true
}

func (p *presence) releaseAnnouncement(contactID, channelID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.announced, [2]string{contactID, channelID})
}

// StatusEmoji is the coloured dot (or speech bubble) Discord shows for a Resonite status.
func StatusEmoji(s resonite.OnlineStatus) string {
	switch s {
	case resonite.StatusSociable:
		return "💬"
	case resonite.StatusOnline:
		return "🟢"
	case resonite.StatusBusy:
		return "🔴"
	case resonite.StatusAway:
		return "🟡"
	}
	return "⚪"
}

// NotificationText is the friend-online line posted into subscribed channels.
func NotificationText(name string, status resonite.OnlineStatus, session *resonite.SessionInfo) string {
	s := fmt.Sprintf("%s **%s** is now %s", StatusEmoji(status), EscapeMarkdown(name), status)
	if session != nil {
		sname := stripRichText(session.Name)
		if sname == "" {
			sname = "a session"
		}
		s += fmt.Sprintf(" in **%s** <%s>", EscapeMarkdown(sname), sessionURL(session.SessionID))
	}
	return neutralizeMentions(s)
}

// notify posts a friend-online notification into every subscribed channel, at most once per
// contact and channel within the cooldown.
func (b *Bridge) notify(ctx context.Context, n onlineNotice) {
	subs, err := b.o.Store.SubscriptionsForContact(ctx, n.contactID)
	if err != nil {
		b.noteError("listing notification subscriptions", err)
		return
	}
	name, avatar := b.presence.contactLook(n.contactID, "")
	var session *resonite.SessionInfo
	if s, ok := b.presence.resolve(n.device); ok {
		session = &s
	}
	text := NotificationText(name, n.status, session)
	seen := map[string]bool{}
	for _, s := range subs {
		if seen[s.ChannelID] {
			continue
		}
		seen[s.ChannelID] = true
		if !b.presence.claimAnnouncement(n.contactID, s.ChannelID) {
			continue
		}
		if _, err := b.o.Discord.Post(ctx, s.ChannelID, Post{Username: "Resonite", AvatarURL: avatar, Content: text}); err != nil {
			b.presence.releaseAnnouncement(n.contactID, s.ChannelID)
			b.noteError("posting a friend-online notification", err)
			continue
		}
		b.stats.notified()
	}
}
