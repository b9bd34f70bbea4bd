package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/store"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(storetest.M(m)) }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustPair(t testing.TB, st *store.Store, channelID string) core.Pairing {
	t.Helper()
	p, err := st.CreatePairing(ctxT(t), core.Pairing{GuildID: "g1", ChannelID: channelID, ContactID: "U-" + channelID, ContactUsername: "user " + channelID, CreatedBy: "admin"})
	if err != nil {
		t.Fatalf("CreatePairing(%s): %v", channelID, err)
	}
	return p
}

// mustPairs makes n pairings of channels prefix0, prefix1, … and returns their ids.
func mustPairs(t testing.TB, st *store.Store, prefix string, n int) []int64 {
	t.Helper()
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = mustPair(t, st, fmt.Sprint(prefix, i)).ID
	}
	return ids
}

func mustExec(t testing.TB, st *store.Store, sql string, args ...any) {
	t.Helper()
	if _, err := st.Pool().Exec(ctxT(t), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}
