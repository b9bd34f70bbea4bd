package resoniteadapter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/resonite"
)

// Sink takes the hub's events in core types; *bridge.Bridge has it.
type Sink interface {
	HandleContactMessage(ctx context.Context, m core.ContactMessage) error
	HandleSentMessage(ctx context.Context, messageID string) error
	HandleDevice(ctx context.Context, d core.Device)
	HandleContact(ctx context.Context, c core.Contact)
	HandleConnected(ctx context.Context, contacts []core.Contact)
	HandleDisconnected(ctx context.Context)
}

// EventLoop feeds the hub's events to a Sink, one at a time in the hub's order, from Start
// until Stop. Session events stay here: they only keep the Adapter's session cache. Its
// goroutine ends when the hub is closed, which the hub's owner does after Stop.
type EventLoop struct {
	a    *Adapter
	sink Sink
	log  *slog.Logger

	mu   sync.Mutex
	stop context.CancelFunc
	idle chan struct{} // closed once the loop no longer calls the sink
}

// NewEventLoop returns a loop that reads a's hub and feeds sink.
func NewEventLoop(a *Adapter, sink Sink, log *slog.Logger) *EventLoop {
	return &EventLoop{a: a, sink: sink, log: logger(log)}
}

var errLoopStarted = errors.New("resoniteadapter: event loop started already")

// Start launches the loop; it runs until Stop or until the hub closes its event channel.
func (l *EventLoop) Start(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.idle != nil {
		return errLoopStarted
	}
	ctx, l.stop = context.WithCancel(context.WithoutCancel(ctx))
	l.idle = make(chan struct{})
	events := l.a.hub.Events()
	go func() {
		l.run(ctx, events)
		close(l.idle)
		// Keep reading, without handing anything on, until the hub closes the channel: a full
		// channel would pause the hub's reader, and with it the answers to the sends the
		// bridge drains after this loop stopped. What is dropped here comes back through the
		// bridge's catch-up.
		for range events {
		}
	}()
	return nil
}

// Stop ends the loop after the event in hand and returns once the sink is no longer called.
// Events that arrive later are dropped until the hub closes (see Start).
func (l *EventLoop) Stop(ctx context.Context) error {
	l.mu.Lock()
	stop, idle := l.stop, l.idle
	l.mu.Unlock()
	if idle == nil {
		return nil
	}
	stop()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopping the Resonite event loop: %w", ctx.Err())
	}
}

func (l *EventLoop) run(ctx context.Context, events <-chan resonite.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if err := l.handle(ctx, ev); err != nil {
				l.log.Warn("handling a Resonite event", "event", fmt.Sprintf("%T", ev), "err", err)
			}
		}
	}
}

// handle converts one event and hands it on.
func (l *EventLoop) handle(ctx context.Context, ev resonite.Event) error {
	switch e := ev.(type) {
	case resonite.MessageReceived:
		return l.sink.HandleContactMessage(ctx, message(e.Message))
	case resonite.MessageSent:
		if e.Awaited {
			return nil // its SendText returns nil, and the delivery settles the row
		}
		return l.sink.HandleSentMessage(ctx, e.Message.ID)
	case resonite.StatusUpdated:
		l.sink.HandleDevice(ctx, device(e.Status))
	case resonite.ContactUpdated:
		l.sink.HandleContact(ctx, contact(e.Contact))
	case resonite.SessionUpdated:
		l.a.setSession(e.Session)
	case resonite.SessionRemoved:
		l.a.removeSession(e.SessionID)
	case resonite.Disconnected:
		l.sink.HandleDisconnected(ctx)
	case resonite.Connected:
		contacts := make([]core.Contact, 0, len(e.Contacts))
		for _, c := range e.Contacts {
			contacts = append(contacts, contact(c))
		}
		l.sink.HandleConnected(ctx, contacts)
	}
	return nil // other events (MessagesRead, StatusRequested, …) need nothing from the bridge
}
