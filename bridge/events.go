package bridge

import (
	"context"
	"fmt"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

// HandleResoniteEvent reacts to one hub event. It returns quickly: slow work (notifications,
// accepting contacts, catch-up) is queued for the goroutines of Run. An error means a received
// message could not be stored; a Resonite catch-up is then already scheduled.
func (b *Bridge) HandleResoniteEvent(ctx context.Context, ev resonite.Event) error {
	switch e := ev.(type) {
	case resonite.MessageReceived:
		if err := b.ingestResonite(ctx, e.Message, false); err != nil {
			b.catchUp.requestResonite()
			return err
		}
	case resonite.MessageSent:
		if err := b.handleMessageSent(ctx, e.Message); err != nil {
			b.noteError("settling a sent message", err)
			return err
		}
	case resonite.StatusUpdated:
		if e.Status.UserID == b.o.History.UserID() {
			return nil
		}
		if n, ok := b.presence.update(e.Status); ok {
			b.tasks.push(func(ctx context.Context) { b.notify(ctx, n) })
		}
	case resonite.ContactUpdated:
		b.presence.setContact(e.Contact)
		if b.o.AutoAcceptContacts && e.Contact.ContactStatus == resonite.ContactRequested {
			c := e.Contact
			b.tasks.push(func(ctx context.Context) { b.accept(ctx, c) })
		}
	case resonite.SessionUpdated:
		b.presence.setSession(e.Session)
	case resonite.SessionRemoved:
		b.presence.removeSession(e.SessionID)
	case resonite.Connected:
		b.presence.connected() // first: the statuses below only seed the model
		for _, c := range e.Contacts {
			b.presence.setContact(c)
			if c.UserStatus != nil {
				b.presence.update(*c.UserStatus)
			}
			// Requests that came while the daemon was down, or whose acceptance failed, are
			// only in the contact list.
			if b.o.AutoAcceptContacts && c.ContactStatus == resonite.ContactRequested {
				b.tasks.push(func(ctx context.Context) { b.accept(ctx, c) })
			}
		}
		// Also on the first connection: messages sent between the start catch-up and the hub
		// connecting would otherwise wait for the next reconnect.
		b.catchUp.requestResonite()
	}
	return nil // other events (MessagesRead, StatusRequested, …) need nothing from the bridge
}

// ConsumeEvents feeds the hub's events to HandleResoniteEvent until ctx ends or the channel is
// closed. Errors are logged (and already recovered by a scheduled catch-up).
func (b *Bridge) ConsumeEvents(ctx context.Context, events <-chan resonite.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if err := b.HandleResoniteEvent(ctx, ev); err != nil {
				b.log.Warn("handling a Resonite event", "event", fmt.Sprintf("%T", ev), "err", err)
			}
		}
	}
}

// accept answers an incoming contact request.
func (b *Bridge) accept(ctx context.Context, c resonite.Contact) {
	c.ContactStatus = resonite.ContactAccepted
	c.UserStatus = nil // InitializeStatus' extra, not part of the contact
	if c.OwnerID == "" {
		c.OwnerID = b.o.History.UserID()
	}
	ok, err := b.o.Resonite.UpdateContact(ctx, c)
	switch {
	case err != nil:
		b.noteError("accepting a contact request", err)
	case !ok:
		b.noteError("accepting a contact request", fmt.Errorf("the hub refused to accept %s", c.ID))
	default:
		b.log.Info("accepted contact request", "contact", c.ID, "username", c.ContactUsername)
	}
}

// OnGuildAvailable catches up the paired channels of a guild (GUILD_CREATE).
func (b *Bridge) OnGuildAvailable(_ context.Context, guildID string) {
	b.catchUp.requestGuild(guildID)
}

// OnDiscordReconnect catches up every paired channel after the gateway reconnected.
func (b *Bridge) OnDiscordReconnect(_ context.Context) {
	b.catchUp.requestAllDiscord()
}
