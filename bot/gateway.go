package bot

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
)

// FatalError is a refusal by Discord that reconnecting cannot fix: the daemon must stop and
// the admin must change something. Hint says what.
type FatalError struct {
	Code int // the gateway close code, or the HTTP status of a refused REST call
	Hint string
	Err  error
}

func (e *FatalError) Error() string { return e.Hint }
func (e *FatalError) Unwrap() error { return e.Err }

// fatalHint explains the gateway close codes that end the session for good.
func fatalHint(code int) (string, bool) {
	switch code {
	case 4004:
		return "Discord refused the bot token (gateway close code 4004, authentication failed): " +
			"set DISCORD_TOKEN to the token shown under Bot → Reset Token in the Discord Developer Portal", true
	case 4014:
		return "Discord refused the Message Content intent (gateway close code 4014, disallowed intents): " +
			"in the Discord Developer Portal, open your application → Bot → Privileged Gateway Intents and enable " +
			"MESSAGE CONTENT INTENT, then restart", true
	case 4013:
		return "Discord refused the gateway intents (gateway close code 4013, invalid intents): " +
			"this build asks for intents Discord does not know; please report it", true
	case 4010, 4011, 4012:
		return fmt.Sprintf("Discord refused the gateway session (close code %d): sharding or API version "+
			"problem; please report it", code), true
	}
	return "", false
}

// classifyOpenError turns what Open returned into a *FatalError when retrying cannot help.
func classifyOpenError(err error) *FatalError {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		if hint, ok := fatalHint(ce.Code); ok {
			return &FatalError{Code: ce.Code, Hint: hint, Err: err}
		}
	}
	// GET /gateway is the first REST call: a refused token shows here before the gateway.
	if _, status := restCode(err); status == http.StatusUnauthorized {
		hint, _ := fatalHint(4004)
		return &FatalError{Code: status, Hint: "Discord answered 401 Unauthorized: " + hint, Err: err}
	}
	return nil
}

// dialer is discordgo's WebSocket dialer with the raw connections recorded, so that a connect
// that hangs (a gateway that never says HELLO or READY) can be cut after OpenTimeout.
func (b *Bot) dialer() *websocket.Dialer {
	nd := &net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}
	return &websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: 15 * time.Second,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := nd.DialContext(ctx, network, addr)
			if err == nil {
				b.mu.Lock()
				b.dialed = append(b.dialed, c)
				b.mu.Unlock()
			}
			return c, err
		},
	}
}

// open runs one Session.Open (identify or resume), cut after OpenTimeout or when ctx ends.
func (b *Bot) open(ctx context.Context) error {
	b.mu.Lock()
	b.dialed = nil
	b.mu.Unlock()
	done := make(chan struct{})
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		t := time.NewTimer(b.o.OpenTimeout)
		defer t.Stop()
		select {
		case <-done:
			return
		case <-t.C:
			b.log.Warn("gateway connect timed out; cutting it", "timeout", b.o.OpenTimeout)
		case <-ctx.Done():
		}
		b.mu.Lock()
		conns := b.dialed
		b.mu.Unlock()
		for _, c := range conns {
			_ = c.Close() // makes Open's blocked read fail
		}
	}()
	err := b.s.Open()
	close(done)
	watch.Wait()
	if err == nil && ctx.Err() != nil {
		// Connected just as the run ended: close again so nothing is left listening.
		_ = b.s.Close()
		return ctx.Err()
	}
	return err
}

// runGateway keeps the gateway connected until ctx ends or Discord refuses the bot for good.
// Commands are registered after the first connect; handlers run from wg's goroutines.
func (b *Bot) runGateway(ctx context.Context, wg *sync.WaitGroup) error {
	backoff := time.Duration(0)
	connects := 0
	for {
		if backoff > 0 {
			wait := backoff/2 + rand.N(backoff/2+1) // jitter: [backoff/2, backoff]
			b.log.Info("reconnecting to the Discord gateway", "in", wait.Round(time.Millisecond))
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		err := b.open(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if fatal := classifyOpenError(err); fatal != nil {
				b.setGateway(false, fatal)
				b.log.Error("Discord refused the bot; stopping", "err", redact(fatal.Err.Error()), "fix", fatal.Hint)
				return fatal
			}
			b.setGateway(false, wrap("connecting to the Discord gateway", err))
			b.log.Warn("connecting to the Discord gateway failed", "err", redact(err.Error()))
			backoff = nextBackoff(backoff)
			continue
		}
		connects++
		backoff = 0
		b.setGateway(true, nil)
		b.log.Info("connected to the Discord gateway", "reconnect", connects > 1)
		if connects == 1 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b.registerCommandsUntilDone(ctx)
			}()
		} else if f := b.o.Handlers.OnReconnect; f != nil {
			b.enqueue(func(ctx context.Context) { f(ctx) })
		}

		select {
		case <-ctx.Done():
			b.setGateway(false, nil) // closing: not connected for /readyz from here on
			_ = b.s.Close()          // sends 1000; Close sleeps a second by design of discordgo
			return nil
		case <-b.disconnect:
			b.setGateway(false, errors.New("the gateway connection dropped"))
			b.log.Warn("the Discord gateway connection dropped")
			backoff = time.Second
		}
	}
}

// nextBackoff doubles from 1 s up to 2 min.
func nextBackoff(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Second
	}
	return min(2*d, 2*time.Minute)
}

func (b *Bot) setGateway(connected bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if connected && !b.gw.Connected && !b.gw.Since.IsZero() {
		b.gw.Reconnects++
	}
	if b.gw.Connected != connected || b.gw.Since.IsZero() {
		b.gw.Since = time.Now()
	}
	b.gw.Connected = connected
	if err != nil {
		b.gw.LastError = redact(err.Error())
	}
}

// addHandlers installs the gateway handlers before the first Open: with SyncEvents they run on
// discordgo's reader (READY even inside Open, under its lock), so they only record and enqueue.
// Once Stop was called they hand nothing more to the bridge.
func (b *Bot) addHandlers() {
	b.s.AddHandler(func(_ *discordgo.Session, r *discordgo.Ready) {
		b.mu.Lock()
		defer b.mu.Unlock()
		if r.User != nil {
			b.botUserID = r.User.ID
		}
		if r.Application != nil && r.Application.ID != "" && b.appID == "" {
			b.appID = r.Application.ID
			close(b.appKnown)
		}
	})
	b.s.AddHandler(func(_ *discordgo.Session, _ *discordgo.Disconnect) {
		select {
		case b.disconnect <- struct{}{}:
		default:
		}
	})
	b.s.AddHandler(func(_ *discordgo.Session, g *discordgo.GuildCreate) {
		if g.Guild == nil || g.Unavailable {
			return
		}
		if f := b.o.Handlers.OnGuildAvailable; f != nil {
			id := g.ID
			b.enqueue(func(ctx context.Context) { f(ctx, id) })
		}
	})
	b.s.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageCreate) {
		if m.Message == nil || b.o.Handlers.OnMessage == nil {
			return
		}
		dm, ok := b.convert(m.Message)
		if !ok {
			return
		}
		f := b.o.Handlers.OnMessage
		b.enqueue(func(ctx context.Context) { f(ctx, dm) })
	})
	b.s.AddHandler(b.onMessageDelete)
	b.s.AddHandler(func(_ *discordgo.Session, i *discordgo.InteractionCreate) {
		if i.Interaction == nil {
			return
		}
		b.dispatchInteraction(i.Interaction)
	})
}
