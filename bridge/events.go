package bridge

import (
	"context"
	"fmt"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// The Handle methods take the Resonite side's events, already in core types, in the order the
// hub delivered them. They return quickly: slow work (notifications, accepting contacts,
// catch-up) is queued for the goroutines of Start.

// HandleContactMessage submits a message a contact sent for storing, behind the earlier ones
// (see ingest.go), and returns without waiting for the commit. An error means it could not be
// submitted; a Resonite catch-up is then already scheduled, as it is when the commit fails.
func (b *Bridge) HandleContactMessage(ctx context.Context, m core.ContactMessage) error {
	if _, err := b.ingestResonite(ctx, m, false); err != nil {
		b.catchUp.requestResonite()
		return err
	}
	return nil
}

// HandleSentMessage settles the to_resonite row of a message the hub confirmed late.
func (b *Bridge) HandleSentMessage(ctx context.Context, messageID string) error {
	if err := b.handleMessageSent(ctx, messageID); err != nil {
		b.noteError("settling a sent message", err)
		return err
	}
	return nil
}

// HandleDevice applies a status of one of a contact's devices and announces a contact that
// came online.
func (b *Bridge) HandleDevice(_ context.Context, d core.Device) {
	if d.UserID == b.o.Resonite.UserID() || !b.presence.mayTrack(d.UserID) {
		return
	}
	n, ok := b.presence.update(d)
	b.boards.touch()
	if ok {
		b.tasks.push(func(ctx context.Context) {
			b.notify(ctx, n)
			b.notifyFollowers(ctx, n)
		})
	}
}

// HandleContact takes a contact that was added or changed, and accepts an incoming request when
// the bridge is told to.
func (b *Bridge) HandleContact(_ context.Context, c core.Contact) {
	b.presence.setContact(c)
	b.boards.touch()
	b.acceptIfAsked(c)
}

// HandleDisconnected takes the end of the hub connection: messages may be missed from here on,
// so to_discord rows wait until a catch-up after the reconnect (see fences).
func (b *Bridge) HandleDisconnected(context.Context) {
	b.catchUp.gapResonite()
}

// HandleConnected takes the contact list (with the statuses it carries) sent when the hub
// (re)connected. The statuses only seed the model: the hub re-sends them on every connection.
// Statuses that arrive around it are judged by when they changed (see presence), so a contact
// who comes online right after a reconnect is announced and one whose status merely arrives
// again is not.
func (b *Bridge) HandleConnected(_ context.Context, contacts []core.Contact) {
	b.presence.connected()
	for _, c := range contacts {
		b.presence.setContact(c)
		if c.Device != nil && c.Device.UserID != b.o.Resonite.UserID() && c.State == core.ContactFriend {
			b.presence.seed(*c.Device)
		}
		// Requests that came while the daemon was down, or whose acceptance failed, are only
		// in the contact list.
		b.acceptIfAsked(c)
	}
	b.boards.touch()
	// Also on the first connection: messages sent between the start catch-up and the hub
	// connecting would otherwise wait for the next reconnect.
	b.catchUp.requestResonite()
}

func (b *Bridge) acceptIfAsked(c core.Contact) {
	if b.o.AutoAcceptContacts && c.State == core.ContactRequested {
		b.tasks.push(func(ctx context.Context) { b.accept(ctx, c) })
	}
}

// accept answers an incoming contact request.
func (b *Bridge) accept(ctx context.Context, c core.Contact) {
	if err := b.o.Resonite.AcceptContact(ctx, c.ID); err != nil {
		b.noteError("accepting a contact request", fmt.Errorf("accepting %s: %w", c.ID, err))
		return
	}
	b.log.Info("accepted contact request", "contact", c.ID, "username", c.Username)
}

// OnGuildAvailable catches up the paired channels of a guild (GUILD_CREATE).
func (b *Bridge) OnGuildAvailable(_ context.Context, guildID string) {
	b.catchUp.requestGuild(guildID)
}

// OnDiscordReconnect catches up every paired channel after the gateway reconnected.
func (b *Bridge) OnDiscordReconnect(_ context.Context) {
	b.catchUp.requestAllDiscord()
}
