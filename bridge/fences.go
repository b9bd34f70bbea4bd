package bridge

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// fences hold back the rows of pairings whose history may hide messages (order across gaps,
// delivery rule 2): after a gap, a message that catch-up brings back must go out before the
// newer live messages of its pairing, so those wait until the catch-up that covers the gap has
// stored what it found. Fences live in memory: a start is a gap of everything, so a new process
// raises them all anyway.
//
// Resonite's history is read account-wide, so one fence covers every pairing's to_discord
// rows. Discord's is read per channel, so to_resonite rows are fenced per pairing; a gap is
// reported by channel, guild or "all", and which pairings that means is only known once the
// catch-up has listed them, so until then every to_resonite row waits ("unresolved"). Each
// raise has a generation; a catch-up clears a fence only if it started after the fence's last
// raise, so a gap that opens while a catch-up runs is covered by the next one.
type fences struct {
	mu sync.Mutex
	// gen counts raises of any fence.
	gen uint64
	// resonite is the generation of the last raise of the Resonite fence, resoniteDone that of
	// the latest catch-up that cleared it.
	resonite, resoniteDone uint64
	// unresolved is the generation of the last Discord gap not yet turned into pairings,
	// resolved that of the last catch-up that did.
	unresolved, resolved uint64
	// discord maps fenced pairings to the generation their catch-up must have started after.
	discord map[int64]uint64
}

func newFences() *fences { return &fences{discord: map[int64]uint64{}} }

// raiseResonite holds back every to_discord row until a Resonite catch-up that starts from now
// on succeeds.
func (f *fences) raiseResonite() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
	f.resonite = f.gen
}

// raiseDiscord holds back every to_resonite row until a catch-up resolves which pairings the
// gap concerns (see resolveDiscord).
func (f *fences) raiseDiscord() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
	f.unresolved = f.gen
}

// now is the generation a catch-up starting now is at.
func (f *fences) now() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen
}

// clearResonite lifts the Resonite fence after a catch-up that started at generation at.
func (f *fences) clearResonite(at uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resoniteDone = max(f.resoniteDone, at)
}

// resolveDiscord fences the pairings a Discord catch-up that started at generation at is about
// to read, lifts the blanket hold of gaps raised before it, and forgets fences of pairings that
// no longer exist (all lists those that do).
func (f *fences) resolveDiscord(at uint64, affected, all []int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range affected {
		f.discord[p] = max(f.discord[p], at)
	}
	exists := make(map[int64]bool, len(all))
	for _, p := range all {
		exists[p] = true
	}
	for p := range f.discord {
		if !exists[p] {
			delete(f.discord, p)
		}
	}
	f.resolved = max(f.resolved, at)
}

// clearDiscord lifts a pairing's fence after its catch-up, which started at generation at.
func (f *fences) clearDiscord(pairing int64, at uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if g, ok := f.discord[pairing]; ok && g <= at {
		delete(f.discord, pairing)
	}
}

// hold reports whether every row of direction toDiscord (true) or to_resonite waits, and
// otherwise the pairings whose rows wait.
func (f *fences) hold(toDiscord bool) (all bool, pairings []int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if toDiscord {
		return f.resonite > f.resoniteDone, nil
	}
	if f.unresolved > f.resolved {
		return true, nil
	}
	return false, slices.Sorted(maps.Keys(f.discord))
}

// counts is how many fences are up, for /status and logs.
func (f *fences) counts() (resonite bool, discordPairings int, discordUnresolved bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.resonite > f.resoniteDone, len(f.discord), f.unresolved > f.resolved
}

// hold is what of direction dir waits (see fences.hold), with the rule of group channels: a
// contact's message reaches the channel's other contacts as to_resonite rows, so while the
// Resonite fence is up (a catch-up may bring back older ones) the to_resonite rows of every
// pairing in a group channel wait too. Pairings that cannot be listed hold everything.
func (b *Bridge) hold(ctx context.Context, dir core.Direction) (all bool, pairings []int64) {
	all, pairings = b.fences.hold(dir == core.ToDiscord)
	if all || dir != core.ToResonite {
		return all, pairings
	}
	if resonite, _, _ := b.fences.counts(); !resonite {
		return false, pairings
	}
	var groups [][]core.Pairing
	m, err := b.cachedPairings(ctx)
	switch {
	case err != nil:
		return true, nil
	case m != nil:
		groups = slices.Collect(maps.Values(m.byChannel))
	default:
		list, err := b.o.Store.Pairings(ctx)
		if err != nil {
			return true, nil
		}
		groups = GroupByChannel(list)
	}
	for _, g := range groups {
		if len(g) > 1 {
			for _, p := range g {
				pairings = append(pairings, p.ID)
			}
		}
	}
	slices.Sort(pairings)
	return false, slices.Compact(pairings)
}
