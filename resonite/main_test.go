package resonite_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/resonite-bridge/resonite-bridge/resonite/resonitetest"
)

// TestMain checks that no test leaves a goroutine behind (REST retries, upkeep loops, hub
// connections). It is the only TestMain of the package, for the hub tests too.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, resonitetest.IgnoreLibraryLeaks())
}
