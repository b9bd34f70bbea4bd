package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bot"
	"github.com/resonite-bridge/resonite-bridge/bridge"
	"github.com/resonite-bridge/resonite-bridge/resonite"
	"github.com/resonite-bridge/resonite-bridge/store"
)

// productionHooks wires the real packages into the daemon.
func productionHooks() hooks {
	return hooks{
		openDB: func(ctx context.Context, cfg *Config, log *slog.Logger) (database, error) {
			st, err := store.Open(ctx, cfg.DatabaseURL, log.With("component", "store"))
			if err != nil {
				return nil, err
			}
			return &dbAdapter{s: st}, nil
		},
		components: buildComponents,
	}
}

// partOptions are the options of the parts, gathered so that hooks.tune can adjust them.
type partOptions struct {
	Client resonite.Options
	Hub    resonite.HubOptions
	Bot    bot.Options
	Bridge bridge.Options
}

// wiring is everything buildComponents makes; tests reach into it.
type wiring struct {
	store  *store.Store
	lock   *store.InstanceLock
	client *resonite.Client
	hub    *resonite.Hub
	bot    *bot.Bot
	bridge *bridge.Bridge
}

// buildComponents builds the Resonite client and hub, the Discord bot and the bridge on the
// daemon's store, exactly as the daemon runs them.
func buildComponents(ctx context.Context, d deps) ([]component, error) {
	w, err := wire(ctx, d)
	if err != nil {
		return nil, err
	}
	return w.components(d), nil
}

func wire(ctx context.Context, d deps) (*wiring, error) {
	db, ok := d.DB.(*dbAdapter)
	if !ok {
		return nil, errors.New("the daemon's database is not the PostgreSQL store")
	}
	st, cfg, log := db.s, d.Config, d.Logger

	// One daemon per database. Holding the lock also means that rows left in flight are a
	// crashed predecessor's: they go back to pending now instead of when their leases expire.
	lock, err := st.AcquireInstanceLock(ctx, 2*time.Second, func() {
		log.Warn("another resonite-bridge runs against this database; waiting for it to stop")
	})
	if err != nil {
		return nil, err
	}
	db.lock = lock
	if n, err := st.RescueAllInFlight(ctx, lock); err != nil {
		return nil, err
	} else if n > 0 {
		log.Info("took back deliveries a previous run left in flight", "count", n)
	}

	// The installation's identity: configured values win, generated ones are kept forever.
	if err := st.SetAccountIdentity(ctx, cfg.ResoniteMachineID, cfg.ResoniteUID); err != nil {
		return nil, fmt.Errorf("storing the Resonite machine id and UID: %w", err)
	}
	acct, err := st.Account(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the Resonite account state: %w", err)
	}

	adapter := storeAdapter{st}
	presence := &presenceRef{}
	var br *bridge.Bridge // the bot's callbacks reach the bridge, which is built after the bot
	opts := partOptions{
		Client: resonite.Options{
			BaseURL:    cfg.ResoniteAPIURL,
			HTTPClient: &http.Client{Timeout: 30 * time.Second},
			Credentials: resonite.Credentials{
				Username: cfg.ResoniteUsername, Password: cfg.ResonitePassword,
				TOTPSecret: cfg.ResoniteTOTPSecret, TOTPCode: cfg.ResoniteTOTP,
			},
			UID:             acct.UID,
			SecretMachineID: acct.SecretMachineID,
			SessionStore:    sessionStore{st},
			Logger:          log.With("component", "resonite"),
		},
		Hub: resonite.HubOptions{URL: cfg.ResoniteHubURL, Logger: log},
		Bot: bot.Options{
			Token: cfg.DiscordToken, GuildID: cfg.DiscordGuildID, APIURL: cfg.DiscordAPIURL,
			Logger: log, Store: adapter, Presence: presence, DrainTimeout: drainTimeout,
			Handlers: bot.Handlers{
				OnMessage: func(ctx context.Context, m bridge.DiscordMessage) {
					if err := br.HandleDiscordMessage(ctx, m); err != nil {
						log.Warn("storing a Discord message failed; the channel is caught up later", "channel", m.ChannelID, "err", err)
					}
				},
				OnGuildAvailable: func(ctx context.Context, guildID string) { br.OnGuildAvailable(ctx, guildID) },
				OnReconnect:      func(ctx context.Context) { br.OnDiscordReconnect(ctx) },
			},
		},
		Bridge: bridge.Options{
			// The whole daemon has defaultShutdownTimeout (10 s) to stop: the bridge's drain,
			// then closing the hub and the gateway, fit in it.
			DrainTimeout:       drainTimeout,
			Store:              adapter,
			Logger:             log.With("component", "bridge"),
			IsPermanent:        isPermanent,
			RetryAfter:         retryAfter,
			AutoAcceptContacts: cfg.ResoniteAutoAcceptContacts,
		},
	}
	if d.Tune != nil {
		d.Tune(&opts)
	}

	client, err := resonite.NewClient(opts.Client)
	if err != nil {
		return nil, fmt.Errorf("RESONITE_API_URL: %w", err)
	}
	opts.Hub.Auth = client
	hub, err := resonite.NewHub(opts.Hub)
	if err != nil {
		return nil, fmt.Errorf("RESONITE_HUB_URL: %w", err)
	}
	opts.Bot.Resonite = client
	opts.Bot.Status = statusSource{st: st, client: client, hub: hub, presence: presence, cfg: cfg}
	b, err := bot.New(opts.Bot)
	if err != nil {
		return nil, err
	}
	opts.Bridge.Resonite, opts.Bridge.History, opts.Bridge.Discord = hub, historyAdapter{client}, b
	br, err = bridge.New(opts.Bridge)
	if err != nil {
		return nil, err
	}
	presence.b = br
	return &wiring{store: st, lock: lock, client: client, hub: hub, bot: b, bridge: br}, nil
}

// isPermanent: Discord's refusals (unknown channel, missing access, content refused) and
// Resonite's 4xx answers other than authentication and rate limits cannot be fixed by retrying.
func isPermanent(err error) bool {
	if bot.IsPermanent(err) {
		return true
	}
	var api *resonite.APIError
	if errors.As(err, &api) {
		switch {
		case api.Status == http.StatusUnauthorized, api.Status == http.StatusForbidden,
			api.Status == http.StatusTooManyRequests, api.Status == http.StatusRequestTimeout:
			return false
		case api.Status >= 400 && api.Status < 500:
			return true
		}
	}
	return false
}

// outageWait is how long a delivery waits when the other side is down (not the message's fault).
const outageWait = 5 * time.Second

// retryAfter turns rate limits (a Discord webhook's, a Resonite 429) and outages of the other
// side (hub not connected, Discord's 5xx, network errors) into a wait: the message is
// postponed without spending one of its attempts, so an hour-long outage loses nothing.
func retryAfter(err error) (time.Duration, bool) {
	if d, ok := bot.RetryAfter(err); ok {
		return d, true
	}
	var api *resonite.APIError
	if errors.As(err, &api) {
		switch {
		case api.Status == http.StatusTooManyRequests:
			return max(api.RetryAfter, time.Second), true
		case api.Status >= 500:
			return outageWait, true
		}
		return 0, false
	}
	if errors.Is(err, resonite.ErrHubNotConnected) || errors.Is(err, resonite.ErrHubClosed) || bot.IsUnavailable(err) {
		return outageWait, true
	}
	return 0, false
}

// presenceRef lets the bot ask the bridge, which is built after it.
type presenceRef struct{ b *bridge.Bridge }

func (p *presenceRef) ContactPresence(id string) (resonite.OnlineStatus, *resonite.SessionInfo, bool) {
	if p.b == nil {
		return "", nil, false
	}
	return p.b.ContactPresence(id)
}

// statusSource gathers /status from the hub, the client, the store and the bridge.
type statusSource struct {
	st       *store.Store
	client   *resonite.Client
	hub      *resonite.Hub
	presence *presenceRef
	cfg      *Config
}

func (s statusSource) Status(ctx context.Context) bot.BridgeStatus {
	hs := s.hub.State()
	out := bot.BridgeStatus{
		HubState: string(hs.State), HubConnected: hs.State == resonite.ConnConnected, HubSince: hs.Since,
		AccountUserID: s.client.UserID(), AccountUsername: s.cfg.ResoniteUsername,
		AutoAccept: s.cfg.ResoniteAutoAcceptContacts,
	}
	if hs.LastError != "" && !out.HubConnected {
		out.HubState += ": " + hs.LastError
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if ps, err := s.st.Pairings(ctx); err == nil {
		out.Pairings = len(ps)
	}
	if q, err := s.st.QueueStats(ctx); err == nil {
		for _, dir := range []store.Direction{store.ToResonite, store.ToDiscord} {
			out.QueueDepth += q.Pending[dir] + q.InFlight[dir]
			out.FailedMessages += q.Failed[dir]
		}
		if q.LastError != "" && q.LastErrorAt != nil {
			out.LastError, out.LastErrorAt = q.LastError, *q.LastErrorAt
		}
	}
	if b := s.presence.b; b != nil {
		if bs := b.Stats(); bs.LastError != "" && bs.LastErrorAt.After(out.LastErrorAt) {
			out.LastError, out.LastErrorAt = bs.LastError, bs.LastErrorAt
		}
	}
	return out
}

// components adapts the wired parts to the daemon's supervisor. Stopping is ordered: the bridge
// drains its deliveries while the hub and the gateway are still up (they wait for it).
func (w *wiring) components(d deps) []component {
	bridgeDone := make(chan struct{})
	return []component{
		&bridgeComponent{b: w.bridge, done: bridgeDone},
		&resoniteComponent{w: w, log: d.Logger, bridgeDone: bridgeDone},
		&discordComponent{b: w.bot, bridgeDone: bridgeDone},
		newMetricsComponent(w, d.Metrics),
		lockComponent(w.lock),
		pruneComponent(w.store, d.Logger),
	}
}

// periodic is a component that does one small job every interval until the daemon stops; an
// error from tick is fatal to the daemon.
type periodic struct {
	name  string
	every time.Duration
	tick  func(ctx context.Context) error
}

func (c *periodic) Name() string          { return c.name }
func (c *periodic) Ready() (bool, string) { return true, "" }
func (c *periodic) Run(ctx context.Context) error {
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := c.tick(ctx); err != nil && ctx.Err() == nil {
			return err
		}
	}
}

// Retention of relayed messages: payloads go after a week, the id map (which catch-up and
// redelivery checks read) after ten (store.IDMapRetentionFactor), and never while catch-up
// could still read the message again.
const (
	payloadRetention = 7 * 24 * time.Hour
	pruneEvery       = time.Hour
)

// pruneComponent keeps the outbox table small.
func pruneComponent(st *store.Store, log *slog.Logger) component {
	return &periodic{name: "pruner", every: pruneEvery, tick: func(ctx context.Context) error {
		n, err := st.Prune(ctx, payloadRetention)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("pruning relayed messages failed", "err", err)
		case n > 0:
			log.Info("pruned relayed messages", "rows", n)
		}
		return nil
	}}
}

// lockComponent stops the daemon when the instance lock is lost: another one may run by then.
func lockComponent(lock *store.InstanceLock) component {
	return &periodic{name: "instance-lock", every: 5 * time.Second, tick: func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := lock.Check(cctx); errors.Is(err, store.ErrInstanceLockLost) {
			return err // a slow ping is no reason to stop; a dead connection is
		}
		return nil
	}}
}

// drainTimeout bounds the bridge's and the bot's drains; drainWait how long the hub stays up
// for the bridge's. Both leave room, within the daemon's 10 s, to close the connections.
const (
	drainTimeout = 7 * time.Second
	drainWait    = drainTimeout + time.Second
)

func waitDone(ch <-chan struct{}, limit time.Duration) {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

type bridgeComponent struct {
	b    *bridge.Bridge
	done chan struct{}
}

func (c *bridgeComponent) Name() string          { return "bridge" }
func (c *bridgeComponent) Ready() (bool, string) { return true, "" }
func (c *bridgeComponent) Run(ctx context.Context) error {
	defer close(c.done)
	return c.b.Run(ctx)
}

type discordComponent struct {
	b          *bot.Bot
	bridgeDone <-chan struct{}
}

func (c *discordComponent) Name() string          { return "discord" }
func (c *discordComponent) Ready() (bool, string) { return c.b.Ready() }
func (c *discordComponent) Run(ctx context.Context) error {
	// The gateway stops taking new messages at once; webhook posts of the drain are REST.
	return c.b.Run(ctx)
}

// resoniteComponent logs in, keeps the session extended, runs the hub and feeds its events to
// the bridge.
type resoniteComponent struct {
	w          *wiring
	log        *slog.Logger
	bridgeDone <-chan struct{}
}

func (c *resoniteComponent) Name() string { return "resonite" }

func (c *resoniteComponent) Ready() (bool, string) {
	st := c.w.hub.State()
	if st.State == resonite.ConnConnected {
		return true, ""
	}
	why := "hub " + string(st.State)
	if st.LastError != "" {
		why += ": " + st.LastError
	}
	return false, why
}

func (c *resoniteComponent) Run(ctx context.Context) error {
	client, hub := c.w.client, c.w.hub
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	_, err := client.EnsureSession(lctx)
	cancel()
	switch {
	case errors.Is(err, resonite.ErrBadCredentials):
		return errors.New("Resonite refused the login: check RESONITE_USERNAME and RESONITE_PASSWORD")
	case errors.Is(err, resonite.ErrTOTPRequired):
		return errors.New("the Resonite account uses 2FA and the login had no valid code: set RESONITE_TOTP_SECRET (recommended), or a fresh 6-digit RESONITE_TOTP and start again at once")
	case errors.Is(err, resonite.ErrUnauthorized):
		return fmt.Errorf("cannot log in to Resonite: %w; set RESONITE_USERNAME and RESONITE_PASSWORD", err)
	case err != nil && ctx.Err() == nil:
		// The cloud may be down: the hub keeps trying to log in and connect.
		c.log.Warn("logging in to Resonite failed; retrying in the background", "err", err)
	}
	if err := hub.Start(ctx); err != nil {
		return fmt.Errorf("starting the Resonite hub: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); client.RunUpkeep(ctx, time.Hour) }()
	events := context.WithoutCancel(ctx) // echoes of the drain still settle rows
	go func() { defer wg.Done(); c.w.bridge.ConsumeEvents(events, hub.Events()) }()

	<-ctx.Done()
	waitDone(c.bridgeDone, drainWait)
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer ccancel()
	err = hub.Close(cctx) // closes Events, which ends ConsumeEvents
	wg.Wait()
	if err != nil {
		return fmt.Errorf("closing the Resonite hub: %w", err)
	}
	return nil
}

// metricsComponent refreshes the connection gauges and turns the bridge's counters into
// Prometheus counters.
type metricsComponent struct {
	w    *wiring
	m    *metrics
	last bridge.Stats // touched by the periodic's goroutine only
}

func newMetricsComponent(w *wiring, m *metrics) component {
	c := &metricsComponent{w: w, m: m}
	return &periodic{name: "metrics", every: 2 * time.Second, tick: func(context.Context) error { c.refresh(); return nil }}
}

func (c *metricsComponent) refresh() {
	c.m.SetHubConnected(c.w.hub.State().State == resonite.ConnConnected)
	c.m.SetGatewayConnected(c.w.bot.Gateway().Connected)
	s := c.w.bridge.Stats()
	add := func(dir string, now, before bridge.DirectionStats) {
		c.m.MessagesRelayed(dir, now.Delivered-before.Delivered)
		c.m.DeliveriesFailed(dir, now.Retried+now.Failed-(before.Retried+before.Failed))
	}
	add(DirectionDiscordToResonite, s.ToResonite, c.last.ToResonite)
	add(DirectionResoniteToDiscord, s.ToDiscord, c.last.ToDiscord)
	c.last = s
}
