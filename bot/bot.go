// Package bot is the Discord side of resonite-bridge: the discordgo session (REST through a
// rate-limiting, host-rewriting transport; the gateway with its own reconnect loop), slash
// commands, webhooks, and the conversion of Discord messages for the bridge. It implements
// bridge.Discord (Post, Reply, History).
package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
	"golang.org/x/time/rate"

	"github.com/resonite-bridge/resonite-bridge/bridge"
	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// The bot is the bridge's Discord.
var _ bridge.Discord = (*Bot)(nil)

// DefaultAPIURL is Discord's own origin.
const DefaultAPIURL = "https://discord.com"

// Defaults of Options.
const (
	defaultHTTPTimeout  = 20 * time.Second
	defaultOpenTimeout  = 30 * time.Second
	defaultSessionsTTL  = 30 * time.Second
	defaultContactsTTL  = 30 * time.Second
	defaultRequestsRate = 45 // per second; Discord's global limit is 50
	defaultDrainTimeout = 10 * time.Second
)

// Options configure a Bot. Token, Resonite and Store are required.
type Options struct {
	Token   string // the bot token, with or without the "Bot " prefix
	GuildID string // register commands in this guild only; empty: globally
	// APIURL replaces https://discord.com for every REST call (a REST proxy or a test fake);
	// the gateway is whatever that origin answers to GET /api/v9/gateway.
	APIURL string
	// Logger gets every line of the bot; New adds component=discord to it (slog cannot tell
	// whether a logger has an attribute already, so pass one without a component of its own).
	Logger *slog.Logger

	Resonite Resonite
	Store    Store
	Consent  Consent      // required: who agreed to which server
	Presence Presence     // optional: /whois then shows no online status
	Status   StatusSource // optional: /status then shows the gateway only
	// Community answers /board and /follow; optional: they then say they are not enabled.
	Community Community
	Handlers  Handlers

	HTTPTimeout  time.Duration // one REST request; default 20 s
	OpenTimeout  time.Duration // one gateway connect (dial to READY); default 30 s
	SessionsTTL  time.Duration // how long a /sessions listing is reused for paging; default 30 s
	ContactsTTL  time.Duration // how long the contact list is reused for autocomplete; default 30 s
	RequestRate  float64       // REST requests per second for the whole bot; default 45
	DrainTimeout time.Duration // how long Stop waits for running commands and queued events; default 10 s
}

// Bot is the Discord side of the bridge. Create it with New, run it with Start and end it with
// Stop. It implements bridge.Discord.
type Bot struct {
	o       Options
	log     *slog.Logger
	s       *discordgo.Session
	limiter *rate.Limiter

	events   *eventQueue
	hooks    *webhooks
	threads  *threadParents
	sessions *listingCache
	contacts *contactCache
	dms      dmChannels

	// interactions tracks command goroutines so that shutdown waits for them.
	interactions sync.WaitGroup
	failed       chan error // the fatal gateway error, once

	mu          sync.Mutex
	life        lifeState
	workCtx     context.Context // what commands and event callbacks run under; set by Start
	stopWork    context.CancelFunc
	stopGateway context.CancelFunc
	gatewayDone chan struct{} // closed when the gateway loop returned
	stopping    chan struct{} // closed by Stop or Drain
	workDone    chan struct{} // closed when commands and queued events are over (see Drain)
	done        chan struct{} // closed when every goroutine of Start returned
	appID       string
	botUserID   string
	gw          GatewayState
	dialed      []interface{ Close() error } // raw connections of the connect in progress
	appKnown    chan struct{}                // closed once READY gave the application id
	disconnect  chan struct{}                // signalled by the Disconnect event
}

// lifeState is where a Bot is in its single run.
type lifeState int

const (
	lifeIdle    lifeState = iota // created, not started
	lifeRunning                  // started: the gateway runs and events are handed over
	lifeStopped                  // Stop was called
)

// GatewayState is the gateway connection for health checks and /status.
type GatewayState struct {
	Connected  bool
	Since      time.Time
	LastError  string
	Reconnects int // successful connects after the first
}

// New checks the options and builds the session; nothing connects before Start.
func New(o Options) (*Bot, error) {
	var problems []string
	o.Token = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(o.Token), "Bot "))
	if o.Token == "" {
		problems = append(problems, "Token is required")
	}
	if o.Resonite == nil {
		problems = append(problems, "Resonite is required")
	}
	if o.Store == nil {
		problems = append(problems, "Store is required")
	}
	if o.Consent == nil {
		problems = append(problems, "Consent is required")
	}
	if o.APIURL == "" {
		o.APIURL = DefaultAPIURL
	}
	target, err := url.Parse(strings.TrimRight(o.APIURL, "/"))
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		problems = append(problems, fmt.Sprintf("APIURL %q is not an http(s) origin", o.APIURL))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("bot: %s", strings.Join(problems, "; "))
	}
	setDur := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	setDur(&o.HTTPTimeout, defaultHTTPTimeout)
	setDur(&o.OpenTimeout, defaultOpenTimeout)
	setDur(&o.SessionsTTL, defaultSessionsTTL)
	setDur(&o.ContactsTTL, defaultContactsTTL)
	setDur(&o.DrainTimeout, defaultDrainTimeout)
	if o.RequestRate <= 0 {
		o.RequestRate = defaultRequestsRate
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	log := o.Logger.With("component", "discord")

	s, err := discordgo.New("Bot " + o.Token)
	if err != nil {
		return nil, fmt.Errorf("bot: creating the Discord session: %w", err)
	}
	b := &Bot{
		o:          o,
		log:        log,
		s:          s,
		limiter:    rate.NewLimiter(rate.Limit(o.RequestRate), int(max(1, o.RequestRate/5))),
		events:     newEventQueue(),
		threads:    newThreadParents(),
		sessions:   newListingCache(o.SessionsTTL),
		contacts:   newContactCache(o.ContactsTTL),
		disconnect: make(chan struct{}, 1),
		appKnown:   make(chan struct{}),
		failed:     make(chan error, 1),
	}
	if target.Host == "discord.com" && target.Scheme == "https" {
		target = nil // no rewriting needed
	}
	s.Client = &http.Client{
		Timeout: o.HTTPTimeout,
		// A transport of its own, so that Stop can close its idle connections at the end.
		Transport: &transport{base: http.DefaultTransport.(*http.Transport).Clone(), target: target, limiter: b.limiter,
			unlimited: b.isInteractionPath, log: log},
	}
	s.Dialer = b.dialer()
	s.Identify.Intents = discordgo.IntentsGuilds | discordgo.IntentsGuildMessages | discordgo.IntentsMessageContent
	// Handlers run in gateway order on the reader goroutine; they only enqueue.
	s.SyncEvents = true
	// discordgo's own reconnect loop cannot be stopped and retries fatal close codes forever;
	// the gateway loop of Start owns reconnecting instead.
	s.ShouldReconnectOnError = false
	s.ShouldReconnectVoiceOnSessionError = false
	// discordgo prints through the standard logger; the bot logs what matters itself.
	s.LogLevel = -1
	s.State.MaxMessageCount = 0
	b.hooks = newWebhooks(b)
	b.addHandlers()
	return b, nil
}

// errStarted is returned by a second Start: a Bot runs once.
var errStarted = errors.New("bot: started already")

// Start launches the gateway loop (connect, register the commands, reconnect) and the event
// dispatcher, and returns once they are launched. They run until Stop, which the caller must
// call; ctx only carries values. A fatal gateway refusal (bad token, intents not enabled) is
// sent on Failed.
func (b *Bot) Start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.life != lifeIdle {
		return errStarted
	}
	base := context.WithoutCancel(ctx)
	// Work outlives the gateway a little: at Stop, running commands and queued events finish
	// (bounded by DrainTimeout) after the gateway closed.
	workCtx, stopWork := context.WithCancel(base)
	gwCtx, stopGateway := context.WithCancel(base)
	b.life = lifeRunning
	b.workCtx, b.stopWork, b.stopGateway = workCtx, stopWork, stopGateway
	b.gatewayDone = make(chan struct{})
	b.stopping = make(chan struct{})
	b.workDone = make(chan struct{})
	b.done = make(chan struct{})

	var gw, events sync.WaitGroup
	events.Add(1)
	go func() {
		defer events.Done()
		b.events.run(workCtx, b.log)
	}()
	gw.Add(1)
	go func() {
		defer gw.Done()
		defer close(b.gatewayDone)
		if err := b.runGateway(gwCtx, &gw); err != nil {
			select {
			case b.failed <- err:
			default:
			}
		}
	}()
	go b.shutdown(&gw, &events)
	return nil
}

// shutdown waits for Stop, then drains and ends every goroutine of Start.
func (b *Bot) shutdown(gw, events *sync.WaitGroup) {
	<-b.stopping
	// Drain: commands already running finish, queued events reach the bridge (whose store
	// writes are quick), while the gateway closes; then the work stops.
	drained := make(chan struct{})
	go func() {
		b.interactions.Wait()
		b.events.drain()
		close(drained)
	}()
	t := time.NewTimer(b.o.DrainTimeout)
	select {
	case <-drained:
	case <-t.C:
		b.log.Warn("shutdown: running commands or queued events did not finish in time; cancelling them", "timeout", b.o.DrainTimeout)
	}
	t.Stop()
	b.stopWork()
	events.Wait()
	<-drained // the cancelled commands return, and the stopped queue ends drain
	close(b.workDone)
	// What is left is the gateway's close: discordgo waits a second after the close frame
	// before it drops the connection, whatever the server does.
	gw.Wait()
	b.s.Client.CloseIdleConnections()
	close(b.done)
}

// beginStop closes the gateway and stops handing events on, once; it returns the channels of
// the end of the work and of the whole run, nil for a bot that never started.
func (b *Bot) beginStop() (workDone, done chan struct{}, stopWork context.CancelFunc) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.life {
	case lifeIdle:
		b.life = lifeStopped
		return nil, nil, nil
	case lifeRunning:
		b.life = lifeStopped
		b.stopGateway()
		close(b.stopping)
	}
	return b.workDone, b.done, b.stopWork
}

// Stop ends the bot: at once it closes the gateway and hands no further Discord event to the
// bridge (interactions and messages that arrive now are dropped); it lets running commands
// and already queued events finish, for at most DrainTimeout, then cancels them and returns
// when every goroutine of Start has returned. If ctx ends first, the work is cancelled at once
// and Stop returns ctx's error. Post, Reply and History keep working after Stop. A Bot that
// was never started stops at once.
func (b *Bot) Stop(ctx context.Context) error {
	_, done, stopWork := b.beginStop()
	return waitStopped(ctx, done, stopWork)
}

// Drain is Stop without its tail: it returns once the running commands and the queued events
// are over (as Stop, at most DrainTimeout; ctx ending cancels them), while the gateway may
// still be closing, which takes discordgo a second. An owner that stops other parts after
// the bot calls Drain first and Stop last, so that the close runs alongside their stops;
// Stop then waits for it and for every goroutine of Start.
func (b *Bot) Drain(ctx context.Context) error {
	workDone, _, stopWork := b.beginStop()
	return waitStopped(ctx, workDone, stopWork)
}

func waitStopped(ctx context.Context, done chan struct{}, stopWork context.CancelFunc) error {
	if done == nil { // stopped without ever starting
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		stopWork()
		return fmt.Errorf("bot: stopping: %w", ctx.Err())
	}
}

// Failed receives the fatal gateway error (a *FatalError: close codes 4004, 4013, 4014, a
// refused token) when the bot cannot go on; the daemon should then stop.
func (b *Bot) Failed() <-chan error { return b.failed }

// runningLocked reports whether the bot takes Discord events; callers hold mu.
func (b *Bot) runningLocked() bool { return b.life == lifeRunning }

// enqueue hands an event callback to the dispatcher, unless the bot is stopping.
func (b *Bot) enqueue(f func(context.Context)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.runningLocked() {
		return
	}
	b.events.push(f)
}

// Ready reports whether the gateway is connected, for /readyz.
func (b *Bot) Ready() (bool, string) {
	st := b.Gateway()
	if st.Connected {
		return true, "connected"
	}
	if st.LastError != "" {
		return false, "gateway not connected: " + st.LastError
	}
	return false, "gateway not connected"
}

// Gateway returns the gateway connection state.
func (b *Bot) Gateway() GatewayState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.gw
}

// AppID is the application id, known once the gateway sent READY.
func (b *Bot) AppID() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.appID
}

// isInteractionPath: interaction callbacks, and the edits and followups of interaction
// answers (webhook routes under the application's own id).
func (b *Bot) isInteractionPath(path string) bool {
	if strings.HasPrefix(path, "/api/v9/interactions/") {
		return true
	}
	app := b.AppID()
	return app != "" && strings.HasPrefix(path, "/api/v9/webhooks/"+app+"/")
}

// waitAppID waits for READY: webhooks are adopted by application id, so none may be created
// before it is known. Without a running gateway (not started, stopping, or refused) it cannot
// become known: that is an outage, core.Unavailable.
func (b *Bot) waitAppID(ctx context.Context) (string, error) {
	select {
	case <-b.appKnown:
		return b.AppID(), nil
	default:
	}
	b.mu.Lock()
	running, gwDone := b.runningLocked(), b.gatewayDone
	b.mu.Unlock()
	if !running {
		return "", core.Unavailable(errNoGateway)
	}
	select {
	case <-b.appKnown:
		return b.AppID(), nil
	case <-gwDone:
		return "", core.Unavailable(errNoGateway)
	case <-ctx.Done():
		return "", core.Unavailable(fmt.Errorf("waiting for the Discord gateway's READY: %w", ctx.Err()))
	}
}

// errNoGateway: the application id comes with the gateway's READY.
var errNoGateway = errors.New("the Discord gateway is not connected, so the application id (needed for webhooks) is unknown")

func (b *Bot) selfID() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.botUserID
}
