package bridge

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

type device struct {
	status core.Device
	seen   time.Time
}

// presence is the model of contacts' devices, keyed by user and device id, plus the contacts
// that presence answers need.
type presence struct {
	now      func() time.Time
	expiry   time.Duration
	cooldown time.Duration
	warmup   time.Duration

	mu        sync.Mutex
	devices   map[string]map[string]device
	contacts  map[string]core.Contact
	announced map[[2]string]time.Time // (contact, channel) → last announcement
	// connectedOnce is false until the hub's first connection: its start-up sequence asks every
	// contact for its status before the connection is reported, so those answers are the burst
	// too.
	connectedOnce bool
	warmUntil     time.Time
}

func newPresence(now func() time.Time, expiry, cooldown, warmup time.Duration) *presence {
	return &presence{
		now: now, expiry: expiry, cooldown: cooldown, warmup: warmup,
		devices:   map[string]map[string]device{},
		contacts:  map[string]core.Contact{},
		announced: map[[2]string]time.Time{},
	}
}

// onlineNotice is a contact that just came online.
type onlineNotice struct {
	contactID string
	status    core.OnlineStatus
	device    core.Device
}

// dominantLocked drops the user's expired devices and returns the dominant status and the
// device that shows it.
func (p *presence) dominantLocked(userID string, now time.Time) (core.OnlineStatus, core.Device, bool) {
	devs := p.devices[userID]
	best, bestDev, found := core.StatusOffline, core.Device{}, false
	var bestSeen time.Time
	for id, d := range devs {
		if now.Sub(d.seen) >= p.expiry {
			delete(devs, id)
			continue
		}
		r := d.status.Status.Rank()
		if !found || r > best.Rank() || (r == best.Rank() && d.seen.After(bestSeen)) {
			best, bestDev, bestSeen, found = d.status.Status, d.status, d.seen, true
		}
	}
	if len(devs) == 0 {
		delete(p.devices, userID)
	}
	if found && best.Rank() == 0 {
		best = core.StatusOffline
	}
	return best, bestDev, found
}

// update applies one device's status and reports a transition from offline or invisible to
// a visible status, unless the hub just connected and everyone is re-sending statuses.
func (p *presence) update(st core.Device) (onlineNotice, bool) {
	if st.UserID == "" {
		return onlineNotice{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	prev, _, _ := p.dominantLocked(st.UserID, now)
	if st.Status == core.StatusOffline {
		delete(p.devices[st.UserID], st.DeviceID)
	} else {
		if p.devices[st.UserID] == nil {
			p.devices[st.UserID] = map[string]device{}
		}
		p.devices[st.UserID][st.DeviceID] = device{status: st, seen: now}
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

func (p *presence) setContact(c core.Contact) {
	if c.ID == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c.Device = nil // the model keeps devices on their own
	p.contacts[c.ID] = c
}

// contactPresence returns the dominant status of a contact and the device that shows it.
func (p *presence) contactPresence(userID string) (core.OnlineStatus, core.Device, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	status, dev, found := p.dominantLocked(userID, p.now())
	if !found || !status.Visible() {
		// Invisible is offline to everyone else; telling a Discord channel would out the user.
		if _, known := p.contacts[userID]; !known && !found {
			return "", core.Device{}, false
		}
		return core.StatusOffline, core.Device{}, true
	}
	return status, dev, true
}

// contactLook returns the name and avatar URL a contact's posts carry.
func (p *presence) contactLook(userID, fallbackName string) (string, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.contacts[userID]
	name := fallbackName
	if ok && c.Username != "" {
		name = c.Username
	}
	if name == "" {
		name = userID
	}
	return name, c.AvatarURL
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
func StatusEmoji(s core.OnlineStatus) string {
	switch s {
	case core.StatusSociable:
		return "💬"
	case core.StatusOnline:
		return "🟢"
	case core.StatusBusy:
		return "🔴"
	case core.StatusAway:
		return "🟡"
	}
	return "⚪"
}

// NotificationText is the friend-online line posted into subscribed channels.
func NotificationText(name string, status core.OnlineStatus, session *core.Session) string {
	s := fmt.Sprintf("%s **%s** is now %s", StatusEmoji(status), EscapeMarkdown(name), status)
	if session != nil {
		sname := session.Name
		if sname == "" {
			sname = "a session"
		}
		s += fmt.Sprintf(" in **%s** <%s>", EscapeMarkdown(sname), session.URL)
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
	var session *core.Session
	if s, ok := b.o.Sessions.Session(n.device.SessionHint); ok {
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
		if _, err := b.o.Discord.Post(ctx, s.ChannelID, core.Post{Username: "Resonite", AvatarURL: avatar, Content: text}); err != nil {
			b.presence.releaseAnnouncement(n.contactID, s.ChannelID)
			b.noteError("posting a friend-online notification", err)
			continue
		}
		b.stats.notified()
	}
}
