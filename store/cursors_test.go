package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

func TestDiscordCursorOnlyMovesForward(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	p := mustPair(t, st, "c1")
	if c, err := st.DiscordCursor(ctx, p.ID); err != nil || c != "" {
		t.Fatalf("fresh cursor = %q, %v; want empty", c, err)
	}
	steps := []struct {
		advance, want string
	}{
		{"9", "9"},
		{"10", "10"}, // numerically larger although "10" < "9" as text
		{"9", "10"},  // backwards: ignored
		{"10", "10"},
		{"1311111111111111111", "1311111111111111111"},
		{"1211111111111111111", "1311111111111111111"},
		{"18446744073709551615", "18446744073709551615"}, // max uint64
	}
	for _, s := range steps {
		if err := st.AdvanceDiscordCursor(ctx, p.ID, s.advance); err != nil {
			t.Fatalf("advance to %s: %v", s.advance, err)
		}
		if c, err := st.DiscordCursor(ctx, p.ID); err != nil || c != s.want {
			t.Fatalf("after advance to %s cursor = %q, %v; want %s", s.advance, c, err, s.want)
		}
	}
	for _, bad := range []string{"", "abc", "-1", "1e5", "123456789012345678901"} {
		if err := st.AdvanceDiscordCursor(ctx, p.ID, bad); err == nil {
			t.Errorf("advance to %q accepted, want an error", bad)
		}
	}
	if err := st.AdvanceDiscordCursor(ctx, p.ID+1000, "5"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("cursor of an unknown pairing = %v, want ErrNotFound", err)
	}
}

func TestResoniteCursorOnlyMovesForward(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	if c, err := st.ResoniteCursor(ctx, "U-bridge"); err != nil || !c.IsZero() {
		t.Fatalf("fresh cursor = %v, %v; want zero", c, err)
	}
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	steps := []struct{ advance, want time.Time }{
		{t0, t0},
		{t0.Add(time.Minute), t0.Add(time.Minute)},
		{t0, t0.Add(time.Minute)},
		{t0.Add(time.Hour), t0.Add(time.Hour)},
	}
	for _, s := range steps {
		if err := st.AdvanceResoniteCursor(ctx, "U-bridge", s.advance); err != nil {
			t.Fatal(err)
		}
		if c, err := st.ResoniteCursor(ctx, "U-bridge"); err != nil || !c.Equal(s.want) {
			t.Fatalf("after advance to %v cursor = %v, %v; want %v", s.advance, c, err, s.want)
		}
	}
	// Accounts are independent.
	if c, _ := st.ResoniteCursor(ctx, "U-other"); !c.IsZero() {
		t.Fatalf("another account's cursor = %v, want zero", c)
	}
}
