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
)

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
	Logger *slog.Logger

	Resonite Resonite
	Store    Store
	Presence Presence     // optional: /whois then shows no online status
	Status   StatusSource // optional: /status then shows the gateway only
	Handlers Handlers

	HTTPTimeout  time.Duration // one REST request; default 20 s
	OpenTimeout  time.Duration // one gateway connect (dial to READY); default 30 s
	SessionsTTL  time.Duration // how long a /sessions listing is reused for paging; default 30 s
	ContactsTTL  time.Duration // how long the contact list is reused for autocomplete; default 30 s
	RequestRate  float64       // REST requests per second for the whole bot; default 45
	DrainTimeout time.Duration // how long Run waits for running commands at shutdown; default 10 s
}

// Bot is the Discord side of the bridge. Create it with New and run it with Run.
type Bot struct {
	o       Options
	log     *slog.Logger
	s       *discordgo.Session
	limiter *rate.Limiter

	events   *eventQueue
	hooks    *webhooks
	sessions *listingCache
	contacts *contactCache

	// interactions tracks command goroutines so that shutdown waits for them.
	interactions sync.WaitGroup

	mu         sync.Mutex
	running    bool
	workCtx    context.Context // what commands and event callbacks run under; set by Run
	appID      string
	botUserID  string
	gw         GatewayState
	dialed     []interface{ Close() error } // raw connections of the connect in progress
	appKnown   chan struct{}                // closed once READY gave the application id
	disconnect chan struct{}                // signalled by the Disconnect event
}

// GatewayState is the gateway connection for health checks and /status.
type GatewayState struct {
	Connected  bool
	Since      time.Time
	LastError  string
	Reconnects int // successful connects after the first
}

// New checks the options and builds the session; nothing connects before Run.
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
		sessions:   newListingCache(o.SessionsTTL),
		contacts:   newContactCache(o.ContactsTTL),
		disconnect: make(chan struct{}, 1),
		appKnown:   make(chan struct{}),
	}
	if target.Host == "discord.com" && target.Scheme == "https" {
		target = nil // no rewriting needed
	}
	s.Client = &http.Client{
		Timeout: o.HTTPTimeout,
		// A transport of its own, so that Run can close its idle connections at the end.
		Transport: &transport{base: http.DefaultTransport.(*http.Transport).Clone(), target: target, limiter: b.limiter,
			unlimited: b.isInteractionPath, log: log},
	}
	s.Dialer = b.dialer()
	s.Identify.Intents = discordgo.IntentsGuilds | discordgo.IntentsGuildMessages | discordgo.IntentsMessageContent
	// Handlers run in gateway order on the reader goroutine; they only enqueue.
	s.SyncEvents = true
	// discordgo's own reconnect loop cannot be stopped and retries fatal close codes forever;
	// Run owns reconnecting instead.
	s.ShouldReconnectOnError = false
	s.ShouldReconnectVoiceOnSessionError = false
	// discordgo prints through the standard logger; the bot logs what matters itself.
	s.LogLevel = -1
	s.State.MaxMessageCount = 0
	b.hooks = newWebhooks(b)
	b.addHandlers()
	return b, nil
}

// Run connects to the gateway, registers the commands and serves events until ctx ends; then
// it closes the gateway, lets running commands finish (bounded by DrainTimeout) and returns nil.
// A fatal gateway refusal (bad token, intents not enabled) returns a *FatalError that says what
// to fix.
func (b *Bot) Run(ctx context.Context) error {
	b.mu.Lock()
	if b.running {
		b.mu.Unlock()
		return errors.New("bot: Run called twice")
	}
	var wg sync.WaitGroup
	// Work outlives ctx a little: at shutdown, running commands and queued events finish
	// (bounded by DrainTimeout) before it ends.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	b.running = true
	b.workCtx = workCtx
	b.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.events.run(workCtx, b.log)
	}()

	err := b.runGateway(ctx, &wg)

	// Drain: commands already running finish, queued events reach the bridge (whose store
	// writes are quick), then the workers stop.
	done := make(chan struct{})
	go func() {
		b.interactions.Wait()
		b.events.drain()
		close(done)
	}()
	t := time.NewTimer(b.o.DrainTimeout)
	select {
	case <-done:
	case <-t.C:
		b.log.Warn("shutdown: running commands did not finish in time", "timeout", b.o.DrainTimeout)
	}
	t.Stop()
	stopWork()
	wg.Wait()
	<-done
	b.s.Client.CloseIdleConnections()
	return err
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
// before it is known.
func (b *Bot) waitAppID(ctx context.Context) (string, error) {
	select {
	case <-b.appKnown:
		return b.AppID(), nil
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for the Discord gateway's READY: %w", ctx.Err())
	}
}

func (b *Bot) selfID() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.botUserID
}
