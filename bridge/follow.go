package bridge

import (
	"context"
	"errors"
	"fmt"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// followDropAfter is how many direct messages in a row a member may refuse before their follow
// is dropped.
const followDropAfter = 3

// notifyFollowers sends a direct message to every member who follows a contact that just came
// online (itself, or all contacts that consented in the member's guild): once per member
// however many follows match, and at most once per contact and member within the cooldown,
// like the channel notifications.
func (b *Bridge) notifyFollowers(ctx context.Context, n onlineNotice) {
	if !b.communityOn() {
		return
	}
	follows, err := b.o.Community.FollowsForContact(ctx, n.contactID)
	if err != nil {
		b.noteError("listing the follows of a contact", err)
		return
	}
	consented := map[string]bool{} // guild → the contact consented there
	byUser := map[string][]core.Follow{}
	var users []string
	for _, f := range follows {
		ok, seen := consented[f.GuildID]
		if !seen {
			ids, err := b.o.Community.ConsentedContacts(ctx, f.GuildID)
			if err != nil {
				b.noteError("listing the contacts that consented for a follow", err)
				continue // not cached: the next follow of the guild asks again
			}
			for _, id := range ids {
				ok = ok || id == n.contactID
			}
			consented[f.GuildID] = ok
		}
		if !ok {
			continue
		}
		if _, dup := byUser[f.UserID]; !dup {
			users = append(users, f.UserID)
		}
		byUser[f.UserID] = append(byUser[f.UserID], f)
	}
	if len(users) == 0 {
		return
	}
	name, _, text := b.onlineNotice(n)
	for _, user := range users {
		if !b.presence.claimAnnouncement(n.contactID, "dm:"+user) {
			continue
		}
		b.directMessage(ctx, n.contactID, name, user, byUser[user], text)
	}
}

// onlineNotice is the contact's name and avatar and the friend-online text of a notice, with
// the session when it can be resolved; channels and direct messages say the same.
func (b *Bridge) onlineNotice(n onlineNotice) (name, avatar, text string) {
	name, avatar = b.presence.contactLook(n.contactID, "")
	var session *core.Session
	if s, ok := b.o.Sessions.Session(n.device.SessionHint); ok {
		session = &s
	}
	return name, avatar, NotificationText(name, n.status, session)
}

// directMessage sends one follower's notice and keeps the follows' failure counts.
func (b *Bridge) directMessage(ctx context.Context, contactID, name, user string, fs []core.Follow, text string) {
	ids := make([]int64, len(fs))
	failing, told := false, false
	for i, f := range fs {
		ids[i] = f.ID
		failing = failing || f.Failures > 0 || f.ToldClosed
		told = told || f.ToldClosed
	}
	err := b.o.CommunityDiscord.DirectMessage(ctx, user, text)
	switch {
	case err == nil:
		b.stats.notified()
		if failing {
			if err := b.o.Community.FollowDelivered(ctx, ids); err != nil {
				b.noteError("resetting the failures of a follow", err)
			}
		}
	case errors.Is(err, core.ErrDMClosed):
		// The cooldown's claim stays: the next try is after it, so the member's follows fail
		// at most once per cooldown each.
		if !told {
			told = b.tellDMClosed(ctx, fs[0].ChannelID, user, name) == nil
		}
		dropped, err := b.o.Community.FollowFailed(ctx, ids, told, followDropAfter)
		if err != nil {
			b.noteError("counting a refused direct message", err)
		} else if dropped > 0 {
			b.log.Info("dropped follows: the member refused direct messages repeatedly", "user", user, "follows", dropped)
		}
	default:
		b.presence.releaseAnnouncement(contactID, "dm:"+user)
		b.noteError("sending a friend-online direct message", err)
	}
}

// tellDMClosed tells a member, in the channel where they ran /follow, that their direct
// messages are closed. An ephemeral answer only exists for an interaction, and its token is
// valid for 15 minutes, so this is a normal message that mentions (and pings) only them.
func (b *Bridge) tellDMClosed(ctx context.Context, channelID, user, contact string) error {
	text := fmt.Sprintf("<@%s> **%s** came online, but I cannot send you direct messages, so you missed that notice. "+
		"Allow direct messages from this server's members (Privacy Settings of the server) to get them; "+
		"after %d missed notices your /follow ends. Run /follow again to stop it now.",
		user, EscapeMarkdown(contact), followDropAfter)
	if err := b.o.CommunityDiscord.Mention(ctx, channelID, user, text); err != nil {
		b.noteError("telling a member that their direct messages are closed", err)
		return err
	}
	return nil
}
