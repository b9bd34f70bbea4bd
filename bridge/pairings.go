package bridge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// pairingCache keeps every pairing in memory for the lookups each relayed message and each
// batch needs (a database round trip apiece otherwise, on the single goroutine that hands the
// bridge a side's events). It is used only while the store's watch runs: the watch reports
// every change (synchronously for this process's own writes, by notification for any other),
// each report drops the cache, and the next lookup loads all pairings again. Without a watch,
// lookups go to the store.
type pairingCache struct {
	mu   sync.Mutex
	live bool   // the watch runs
	gen  uint64 // counts reports; a load is kept only if none came while it ran
	maps *pairingMaps
}

// pairingMaps are the pairings as loaded at generation gen; never changed once made.
type pairingMaps struct {
	gen       uint64
	byChannel map[string][]core.Pairing // oldest first
	byContact map[string][]core.Pairing // oldest first, as the store answers
	byID      map[int64]core.Pairing
}

// changed drops the cache and, since the watch calls it, marks the watch running.
func (c *pairingCache) changed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live, c.maps = true, nil
	c.gen++
}

// lost stops using the cache: the watch ended, changes may go unreported.
func (c *pairingCache) lost() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live, c.maps = false, nil
	c.gen++
}

// cachedPairings returns the cached pairings, loading them when needed, or nil when there is no
// watch (the caller then asks the store itself).
func (b *Bridge) cachedPairings(ctx context.Context) (*pairingMaps, error) {
	c := b.pairings
	c.mu.Lock()
	m, live, gen := c.maps, c.live, c.gen
	c.mu.Unlock()
	if m != nil || !live {
		return m, nil
	}
	all, err := b.o.Store.Pairings(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing pairings: %w", err)
	}
	m = &pairingMaps{gen: gen, byChannel: make(map[string][]core.Pairing, len(all)),
		byContact: make(map[string][]core.Pairing), byID: make(map[int64]core.Pairing, len(all))}
	for _, p := range all {
		m.byChannel[p.ChannelID] = append(m.byChannel[p.ChannelID], p)
		m.byContact[p.ContactID] = append(m.byContact[p.ContactID], p)
		m.byID[p.ID] = p
	}
	c.mu.Lock()
	if c.live && c.gen == gen { // no change reported while loading
		c.maps = m
	}
	c.mu.Unlock()
	return m, nil
}

// lookup answers from the cache through cached, or from the store through direct.
func lookup[T any](ctx context.Context, b *Bridge, cached func(*pairingMaps) (T, error), direct func(context.Context) (T, error)) (T, error) {
	m, err := b.cachedPairings(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	if m == nil {
		return direct(ctx)
	}
	return cached(m)
}

// GroupByChannel groups pairings by channel (a group channel holds several), in the order
// their channels first appear, each group in the given order.
func GroupByChannel(ps []core.Pairing) [][]core.Pairing {
	var out [][]core.Pairing
	at := map[string]int{}
	for _, p := range ps {
		i, ok := at[p.ChannelID]
		if !ok {
			i = len(out)
			at[p.ChannelID] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], p)
	}
	return out
}

// pairingsByChannel is Store.PairingsByChannel through the cache.
func (b *Bridge) pairingsByChannel(ctx context.Context, channelID string) ([]core.Pairing, error) {
	return lookup(ctx, b, func(m *pairingMaps) ([]core.Pairing, error) { return m.byChannel[channelID], nil },
		func(ctx context.Context) ([]core.Pairing, error) { return b.o.Store.PairingsByChannel(ctx, channelID) })
}

// pairingsByContact is Store.PairingsByContact through the cache.
func (b *Bridge) pairingsByContact(ctx context.Context, contactID string) ([]core.Pairing, error) {
	return lookup(ctx, b, func(m *pairingMaps) ([]core.Pairing, error) { return m.byContact[contactID], nil },
		func(ctx context.Context) ([]core.Pairing, error) { return b.o.Store.PairingsByContact(ctx, contactID) })
}

// pairingByID is Store.PairingByID through the cache.
func (b *Bridge) pairingByID(ctx context.Context, id int64) (core.Pairing, error) {
	return lookup(ctx, b, func(m *pairingMaps) (core.Pairing, error) {
		if p, ok := m.byID[id]; ok {
			return p, nil
		}
		return core.Pairing{}, fmt.Errorf("pairing %d: %w", id, core.ErrNotFound)
	}, func(ctx context.Context) (core.Pairing, error) { return b.o.Store.PairingByID(ctx, id) })
}

// maxWatchBackoff bounds the wait before the pairings watch connects again.
const maxWatchBackoff = 30 * time.Second

// runPairingWatch keeps the store's watch of the pairings running until ctx ends, so that the
// cache can be used; while it is down, lookups go to the store.
func (b *Bridge) runPairingWatch(ctx context.Context) {
	wait := time.Second
	for {
		began := time.Now()
		err := b.o.Store.WatchPairings(ctx, b.pairings.changed)
		b.pairings.lost()
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > maxWatchBackoff {
			wait = time.Second // it ran for a while: this is a new failure
		}
		if !errors.Is(err, context.Canceled) {
			b.log.Warn("watching the pairings failed; looking them up in the database meanwhile", "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(wait*2, maxWatchBackoff)
	}
}
