package bridge

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// device is what the model knows of one login of a user.
type device struct {
	status core.Device
	seen   time.Time // arrival of its latest status, by the model's clock
	// changed is its latest change: the status' StatusChanged, or its arrival when that is
	// unknown.
	changed time.Time
	// gone marks a device that went offline. It stays until it expires, so that an older
	// status of it that arrives late is recognised and ignored.
	gone bool
}

// userState is what the model knows of one user.
type userState struct {
	devices map[string]device
	// last is the latest change known of any of the user's devices, going offline included:
	// a status is news only when it changed after it.
	last time.Time
}

// presence is the model of contacts' devices, keyed by user and device id, plus the contacts
// that presence answers need.
//
// A status is a transition (announced when it makes the user visible) when it changed after
// everything the model knows of the user. What the hub's start-up sequence re-sends (the
// contact list's statuses, and every contact's status again) carries the same change time as
// before, so it seeds the model without announcing: no time window is involved. The model
// forgets users that are offline or expired and whose announcements are past the cooldown, so
// it stays as large as the set of users seen recently.
type presence struct {
	now      func() time.Time
	expiry   time.Duration
	cooldown time.Duration

	mu        sync.Mutex
	users     map[string]*userState
	contacts  map[string]core.Contact
	announced map[[2]string]time.Time // (contact, channel) → last announcement
	// connectedAt is the model's clock when the hub first connected; zero before. Until then
	// every status is the start-up burst (the hub asks every contact for its status before it
	// reports the connection); after it, a user the model knows nothing of is news when its
	// status changed after this.
	connectedAt time.Time
	// floor is the latest change of the users the model forgot (at most the time their last
	// status arrived): a status of such a user that arrives again is news only when later.
	floor     time.Time
	nextSweep time.Time
}

func newPresence(now func() time.Time, expiry, cooldown time.Duration) *presence {
	return &presence{
		now: now, expiry: expiry, cooldown: cooldown,
		users:     map[string]*userState{},
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
// device that shows it; found is false when no device of the user is online in any way.
func (p *presence) dominantLocked(u *userState, now time.Time) (core.OnlineStatus, core.Device, bool) {
	best, bestDev, found := core.StatusOffline, core.Device{}, false
	if u == nil {
		return best, bestDev, found
	}
	var bestSeen time.Time
	for id, d := range u.devices {
		if now.Sub(d.seen) >= p.expiry {
			delete(u.devices, id)
			continue
		}
		if d.gone {
			continue
		}
		r := d.status.Status.Rank()
		if !found || r > best.Rank() || (r == best.Rank() && d.seen.After(bestSeen)) {
			best, bestDev, bestSeen, found = d.status.Status, d.status, d.seen, true
		}
	}
	if found && best.Rank() == 0 {
		best = core.StatusOffline
	}
	return best, bestDev, found
}

// update applies one device's status and reports a transition from offline or invisible to
// a visible status that is news (see presence).
func (p *presence) update(st core.Device) (onlineNotice, bool) {
	return p.apply(st, true)
}

// seed applies a status that the hub re-sent on a connection; it never announces.
func (p *presence) seed(st core.Device) {
	p.apply(st, false)
}

func (p *presence) apply(st core.Device, announce bool) (onlineNotice, bool) {
	if st.UserID == "" {
		return onlineNotice{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.sweepLocked(now)
	changed, byArrival := st.StatusChanged, st.StatusChanged.IsZero()
	if byArrival {
		changed = now
	}
	u := p.users[st.UserID]
	var known time.Time // the latest change the model knows of the user
	if u != nil {
		known = u.last
	} else {
		known = p.connectedAt
		if p.floor.After(known) {
			known = p.floor
		}
		u = &userState{devices: map[string]device{}}
		p.users[st.UserID] = u
	}
	prev, _, _ := p.dominantLocked(u, now)
	if old, ok := u.devices[st.DeviceID]; ok && !byArrival && changed.Before(old.changed) {
		return onlineNotice{}, false // older than what the device told already: it came late
	}
	// A status stamped by its arrival is news unless something later is known (a sender's
	// clock ahead of this one); one stamped by its sender must have changed after.
	news := changed.After(known) || byArrival && changed.Equal(known)
	if changed.After(u.last) {
		u.last = changed
	}
	u.devices[st.DeviceID] = device{status: st, seen: now, changed: changed, gone: st.Status == core.StatusOffline}
	cur, dev, _ := p.dominantLocked(u, now)
	if !announce || p.connectedAt.IsZero() || !news || prev.Visible() || !cur.Visible() {
		return onlineNotice{}, false
	}
	return onlineNotice{contactID: st.UserID, status: cur, device: dev}, true
}

// sweepInterval bounds how often the model looks for users to forget.
const sweepInterval = time.Minute

// sweepLocked forgets users without a live device whose announcements are past the cooldown,
// and announcements past the cooldown; at most once per sweepInterval (or expiry, when
// shorter).
func (p *presence) sweepLocked(now time.Time) {
	if now.Before(p.nextSweep) {
		return
	}
	p.nextSweep = now.Add(min(sweepInterval, p.expiry, p.cooldown))
	recent := map[string]bool{}
	for k, at := range p.announced {
		if now.Sub(at) >= p.cooldown {
			delete(p.announced, k)
		} else {
			recent[k[0]] = true
		}
	}
	// Every device of a forgotten user arrived at least expiry ago, so with a sane clock its
	// changes are older than that; the cap keeps a clock far ahead from silencing everyone.
	limit := now.Add(-p.expiry)
	for id, u := range p.users {
		p.dominantLocked(u, now) // drops expired devices, gone ones included
		if len(u.devices) > 0 || recent[id] {
			continue
		}
		delete(p.users, id)
		last := u.last
		if last.After(limit) {
			last = limit
		}
		if last.After(p.floor) {
			p.floor = last
		}
	}
}

// connected takes a hub (re)connection; the first one ends the start-up burst.
func (p *presence) connected() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.connectedAt.IsZero() {
		p.connectedAt = p.now()
	}
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

// mayTrack reports whether statuses of the user are kept: only accepted contacts' are, once the
// contact list arrived (before it, during the start-up burst, nothing is announced anyway).
// A stranger's status, whatever the hub relays, is never announced nor shown.
func (p *presence) mayTrack(userID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.connectedAt.IsZero() {
		return true
	}
	c, ok := p.contacts[userID]
	return ok && c.State == core.ContactFriend
}

// contactPresence returns the dominant status of a contact and the device that shows it.
func (p *presence) contactPresence(userID string) (core.OnlineStatus, core.Device, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	status, dev, found := p.dominantLocked(p.users[userID], p.now())
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
	_, avatar, text := b.onlineNotice(n)
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
