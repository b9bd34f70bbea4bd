package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bot"
	"github.com/resonite-bridge/resonite-bridge/bridge"
	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/bridge/resoniteadapter"
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
			return &dbAdapter{s: st, secretKey: cfg.BridgeSecretKey}, nil
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
	Lock   lockOptions
}

// wiring is everything buildComponents makes; tests reach into it.
type wiring struct {
	store    *store.Store
	lock     *store.InstanceLock
	client   *resonite.Client
	hub      *resonite.Hub
	resonite *resoniteadapter.Adapter
	events   *resoniteadapter.EventLoop
	bot      *bot.Bot
	bridge   *bridge.Bridge
	lockOpts lockOptions
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
	// After a step-down the rows in flight are rescued too: this daemon stopped every part that
	// had claimed them, and the instance that took over may have crashed since.
	lock, err := st.AcquireInstanceLock(ctx, 2*time.Second, func() {
		if d.SteppedDown {
			log.Warn("another instance holds the lock; standing by until it stops")
			return
		}
		log.Warn("another resonite-bridge runs against this database; waiting for it to stop")
	})
	if err != nil {
		return nil, err
	}
	if d.SteppedDown {
		log.Info("took the instance lock again; starting every part")
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

	presence := &presenceRef{}
	bridgeForCommands := &bridgeRef{}
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
			Logger:          log, // the client and the hub name their component themselves
		},
		Hub: resonite.HubOptions{URL: cfg.ResoniteHubURL, Logger: log},
		Bot: bot.Options{
			Token: cfg.DiscordToken, GuildID: cfg.DiscordGuildID, APIURL: cfg.DiscordAPIURL,
			Logger: log, // the bot names its component itself
			Store:  st, Consent: bridgeForCommands, Presence: presence, DrainTimeout: botDrain, Community: bridgeForCommands,
			Handlers: bot.Handlers{
				OnMessage: func(ctx context.Context, m core.DiscordMessage) {
					if err := br.HandleDiscordMessage(ctx, m); err != nil {
						log.Warn("storing a Discord message failed; the channel is caught up later", "channel", m.ChannelID, "err", err)
					}
				},
				OnGuildAvailable: func(ctx context.Context, guildID string) { br.OnGuildAvailable(ctx, guildID) },
				OnReconnect:      func(ctx context.Context) { br.OnDiscordReconnect(ctx) },
				OnMessageEdit: func(ctx context.Context, m core.DiscordMessage) {
					if err := br.HandleDiscordEdit(ctx, m); err != nil {
						log.Warn("storing a Discord edit failed", "channel", m.ChannelID, "err", err)
					}
				},
				OnMessageDelete: func(ctx context.Context, channelID, messageID string) {
					br.OnDiscordMessageDeleted(ctx, channelID, messageID)
					if err := br.HandleDiscordDelete(ctx, channelID, messageID); err != nil {
						log.Warn("storing a Discord deletion failed", "channel", channelID, "err", err)
					}
				},
			},
		},
		Bridge: bridge.Options{
			DrainTimeout:       bridgeDrain,
			Store:              st,
			Consent:            st,
			Logger:             log.With("component", "bridge"),
			AutoAcceptContacts: cfg.ResoniteAutoAcceptContacts,
			Versions:           st,
			Assets:             resoniteadapter.NewAssets(cfg.ResoniteAssetsURL, nil, 0, 0),
		},
		Lock: defaultLockOptions,
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
	rs := resoniteadapter.New(client, hub)
	opts.Bot.Resonite = rs
	opts.Bot.Status = statusSource{st: st, client: client, hub: hub, presence: presence, cfg: cfg}
	b, err := bot.New(opts.Bot)
	if err != nil {
		return nil, err
	}
	opts.Bridge.Resonite, opts.Bridge.Sessions, opts.Bridge.Discord = rs, rs, b
	opts.Bridge.Community, opts.Bridge.CommunityDiscord = st, b
	br, err = bridge.New(opts.Bridge)
	if err != nil {
		return nil, err
	}
	presence.b, bridgeForCommands.b = br, br
	events := resoniteadapter.NewEventLoop(rs, br, log)
	return &wiring{store: st, lock: lock, client: client, hub: hub, resonite: rs, events: events, bot: b, bridge: br, lockOpts: opts.Lock}, nil
}

// presenceRef lets the bot ask the bridge, which is built after it.
type presenceRef struct{ b *bridge.Bridge }

func (p *presenceRef) ContactPresence(id string) (core.OnlineStatus, *core.Session, bool) {
	if p.b == nil {
		return "", nil, false
	}
	return p.b.ContactPresence(id)
}

// bridgeRef lets the bot's commands (consent, /board, /follow) reach the bridge, which is built
// after the bot; the bridge exists before any command runs (the bot starts after wire).
type bridgeRef struct{ b *bridge.Bridge }

var errNotWired = errors.New("the bridge is not wired yet")

func (c *bridgeRef) StartBoard(ctx context.Context, b core.Board) (bool, error) {
	if c.b == nil {
		return false, errNotWired
	}
	return c.b.StartBoard(ctx, b)
}

func (c *bridgeRef) StopBoard(ctx context.Context, channelID string) (bool, error) {
	if c.b == nil {
		return false, errNotWired
	}
	return c.b.StopBoard(ctx, channelID)
}

func (c *bridgeRef) ToggleFollow(ctx context.Context, f core.Follow) (bool, error) {
	if c.b == nil {
		return false, errNotWired
	}
	return c.b.ToggleFollow(ctx, f)
}

func (c *bridgeRef) ConsentedContacts(ctx context.Context, guildID string) ([]string, error) {
	if c.b == nil {
		return nil, errNotWired
	}
	return c.b.ConsentedContacts(ctx, guildID)
}

func (c *bridgeRef) ConsentRequests(ctx context.Context, guildID string) ([]core.ConsentRequest, error) {
	if c.b == nil {
		return nil, errNotWired
	}
	return c.b.ConsentRequests(ctx, guildID)
}

func (c *bridgeRef) AskConsent(ctx context.Context, r core.ConsentRequest) (core.ConsentRequest, error) {
	if c.b == nil {
		return core.ConsentRequest{}, errNotWired
	}
	return c.b.AskConsent(ctx, r)
}

func (c *bridgeRef) CancelConsentRequests(ctx context.Context, channelID, contactID string) (int, error) {
	if c.b == nil {
		return 0, errNotWired
	}
	return c.b.CancelConsentRequests(ctx, channelID, contactID)
}

// statusSource gathers /status from the hub, the client, the store and the bridge.
type statusSource struct {
	st       *store.Store
	client   *resonite.Client
	hub      *resonite.Hub
	presence *presenceRef
	cfg      *Config
}

func (s statusSource) Status(ctx context.Context, guildID string) bot.BridgeStatus {
	hs := s.hub.State()
	out := bot.BridgeStatus{
		HubState: string(hs.State), HubConnected: hs.State == resonite.ConnConnected, HubSince: hs.Since,
		AccountUserID: s.client.UserID(), AccountUsername: s.cfg.ResoniteUsername,
		AutoAccept: s.cfg.ResoniteAutoAcceptContacts,
	}
	if hs.LastError != "" && !out.HubConnected {
		out.HubState += ": " + hs.LastError
	}
	if guildID == "" {
		return out // the rest is per server
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if ps, err := s.st.PairingsByGuild(ctx, guildID); err == nil {
		out.Pairings = len(ps)
	}
	if q, err := s.st.GuildQueueStats(ctx, guildID); err == nil {
		for _, dir := range []core.Direction{core.ToResonite, core.ToDiscord} {
			out.QueueDepth += q.Pending[dir] + q.InFlight[dir]
			out.FailedMessages += q.Failed[dir]
		}
		out.QueueToDiscord = q.Pending[core.ToDiscord] + q.InFlight[core.ToDiscord]
		out.QueueToResonite = q.Pending[core.ToResonite] + q.InFlight[core.ToResonite]
		if q.LastError != "" && q.LastErrorAt != nil {
			out.LastError, out.LastErrorAt = q.LastError, *q.LastErrorAt
		}
	}
	if b := s.presence.b; b != nil {
		// The bridge's own last error may name any server's channels or contacts: a server
		// sees only its rows' errors. The catch-up's channel counts span every server.
		cu := b.Stats().CatchUp
		cu.PairingsDone, cu.PairingsTotal, cu.HeldPairings = 0, 0, 0
		out.CatchUp = cu
	}
	return out
}

// Drain budgets inside the daemon's 10 s shutdown (defaultShutdownTimeout), spent one after
// another: the bot finishes running commands, then the bridge its deliveries, then the
// connections close.
const (
	botDrain    = 2 * time.Second
	bridgeDrain = 5 * time.Second
)

// components lists the wired parts in start order; the owner stops them in reverse. Intake
// (the Discord gateway, the Resonite event loop) starts after the bridge and stops before it,
// so the bridge drains with nothing new arriving while the connections are still up.
func (w *wiring) components(d deps) []component {
	return []component{
		&resoniteConn{client: w.client, hub: w.hub, log: d.Logger.With("component", "resonite")},
		&bridgePart{w.bridge},
		&eventsPart{w.events},
		&discordPart{w.bot},
		newMetricsComponent(w, d.Metrics),
		lockComponent(w.lock, d.Logger.With("component", "instance-lock"), w.lockOpts),
		pruneComponent(w.store, d.Logger.With("component", "pruner")),
	}
}

// periodic is a component that does one small job every interval until the daemon stops; an
// error from tick is fatal to the daemon.
func periodic(name string, every time.Duration, tick func(ctx context.Context) error) *runner {
	return newRunner(name, func(ctx context.Context) error {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			if err := tick(ctx); err != nil && ctx.Err() == nil {
				return err
			}
		}
	})
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
	return periodic("pruner", pruneEvery, func(ctx context.Context) error {
		n, err := st.Prune(ctx, payloadRetention)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("pruning relayed messages failed", "err", err)
		case n > 0:
			log.Info("pruned relayed messages", "rows", n)
		}
		return nil
	})
}

// lockOptions tune the instance lock's monitor.
type lockOptions struct {
	// CheckEvery is how often the lock's connection is pinged: a dead one is noticed within it.
	CheckEvery time.Duration
	// RetryMin and RetryMax bound the backoff between attempts to take the lock again while
	// the database is unreachable. Short, so that this daemon, not a waiting one, is the first
	// to ask once the database is back.
	RetryMin, RetryMax time.Duration
	// BeforeReacquire, when set, runs before every attempt to take the lock again (tests hold
	// the attempts back with it).
	BeforeReacquire func(ctx context.Context)
}

var defaultLockOptions = lockOptions{CheckEvery: time.Second, RetryMin: 100 * time.Millisecond, RetryMax: time.Second}

// lockComponent keeps the instance lock through database restarts and outages. When the lock's
// connection dies, the server has released the lock: the monitor takes it again, retrying with
// backoff while the database is unreachable (the other parts' store calls fail meanwhile, and
// they retry on their own). Got back, nothing changes: nobody held it in between, so the rows
// in flight are still this daemon's. Held by another instance, which then treats this daemon's
// rows in flight as a crashed predecessor's, the monitor fails with errStepDown: the daemon
// stops every part, in order, and waits for the lock as a newly started one does.
func lockComponent(lock *store.InstanceLock, log *slog.Logger, o lockOptions) component {
	var lost atomic.Pointer[string] // why the lock is not held now; nil while it is
	r := newRunner("instance-lock", func(ctx context.Context) error {
		t := time.NewTicker(o.CheckEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := lock.Check(cctx)
			cancel()
			if !errors.Is(err, store.ErrInstanceLockLost) {
				continue // a slow ping is no reason to act; a dead connection is
			}
			since := time.Now()
			log.Warn("lost the database connection holding the instance lock; taking it again", "err", err)
			why := "lost the database connection holding it; taking it again"
			lost.Store(&why)
			for backoff, attempt := o.RetryMin, 1; ; backoff, attempt = min(2*backoff, o.RetryMax), attempt+1 {
				if o.BeforeReacquire != nil {
					o.BeforeReacquire(ctx)
				}
				if ctx.Err() != nil {
					return nil
				}
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				got, err := lock.Reacquire(rctx)
				cancel()
				if err == nil && got {
					log.Info("took the instance lock again", "after", time.Since(since).Round(time.Millisecond), "attempts", attempt)
					lost.Store(nil)
					break
				}
				if err == nil {
					log.Warn("another instance holds the lock; standing by", "after", time.Since(since).Round(time.Millisecond))
					why := "standing by: another instance holds the instance lock"
					lost.Store(&why)
					return fmt.Errorf("%w: it was taken while the database connection was down", errStepDown)
				}
				if ctx.Err() != nil {
					return nil
				}
				log.Debug("taking the instance lock again failed; retrying", "err", err, "in", backoff)
				why := "lost the database connection holding it; taking it again: " + err.Error()
				lost.Store(&why)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(backoff):
				}
			}
		}
	})
	r.ready = func() (bool, string) {
		if why := lost.Load(); why != nil {
			return false, *why
		}
		return true, ""
	}
	return r
}

// bridgePart, eventsPart and discordPart name the parts that already have the Start/Stop shape.
type bridgePart struct{ *bridge.Bridge }

func (bridgePart) Name() string          { return "bridge" }
func (bridgePart) Ready() (bool, string) { return true, "" }

type eventsPart struct{ *resoniteadapter.EventLoop }

func (eventsPart) Name() string          { return "resonite-events" }
func (eventsPart) Ready() (bool, string) { return true, "" }

type discordPart struct{ *bot.Bot }

func (discordPart) Name() string { return "discord" }

// resoniteConn logs in, keeps the session extended and runs the hub connection.
type resoniteConn struct {
	client *resonite.Client
	hub    *resonite.Hub
	log    *slog.Logger

	stopUpkeep context.CancelFunc
	upkeep     chan struct{}
}

func (c *resoniteConn) Name() string { return "resonite" }

func (c *resoniteConn) Ready() (bool, string) {
	st := c.hub.State()
	if st.State == resonite.ConnConnected {
		return true, ""
	}
	why := "hub " + string(st.State)
	if st.LastError != "" {
		why += ": " + st.LastError
	}
	return false, why
}

// Start logs in (a refused login is a configuration error and fails the start) and starts the
// hub, which connects in the background.
func (c *resoniteConn) Start(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	_, err := c.client.EnsureSession(lctx)
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
	life := context.WithoutCancel(ctx) // the hub and the upkeep run until Stop
	if err := c.hub.Start(life); err != nil {
		return fmt.Errorf("starting the Resonite hub: %w", err)
	}
	upkeepCtx, stop := context.WithCancel(life)
	c.stopUpkeep, c.upkeep = stop, make(chan struct{})
	go func() {
		defer close(c.upkeep)
		c.client.RunUpkeep(upkeepCtx, time.Hour)
	}()
	return nil
}

// Stop closes the hub connection and ends the session upkeep.
func (c *resoniteConn) Stop(ctx context.Context) error {
	if c.stopUpkeep == nil {
		return nil
	}
	c.stopUpkeep()
	err := c.hub.Close(ctx)
	select {
	case <-c.upkeep:
	case <-ctx.Done():
		return fmt.Errorf("stopping the session upkeep: %w", ctx.Err())
	}
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
	return periodic("metrics", 2*time.Second, func(context.Context) error { c.refresh(); return nil })
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
