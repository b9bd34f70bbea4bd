package store_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/store"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

func hash(s string) []byte { return []byte("hash of " + s) }

func mustRequest(t *testing.T, st *store.Store, kind core.ConsentKind, guild, channel, contact, code string) core.ConsentRequest {
	t.Helper()
	r, err := st.CreateConsentRequest(ctxT(t), core.ConsentRequest{Kind: kind, GuildID: guild, GuildName: "Guild " + guild,
		ChannelID: channel, ChannelName: "chan", ContactID: contact, ContactUsername: "Alice", CreatedBy: "admin"}, hash(code), 15*time.Minute)
	if err != nil {
		t.Fatalf("CreateConsentRequest: %v", err)
	}
	return r
}

func TestConsentCodes(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	use := func(code string) core.CodeResult {
		t.Helper()
		res, err := st.UseConsentCode(ctx, "U-a", hash(code), 5, 15*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	mustRequest(t, st, core.ConsentPairing, "g1", "c1", "U-a", "111111")
	mustRequest(t, st, core.ConsentSubscription, "g1", "c2", "U-a", "222222")
	other := mustRequest(t, st, core.ConsentPairing, "g2", "c3", "U-a", "333333")
	if _, err := st.CreateConsentRequest(ctx, core.ConsentRequest{Kind: core.ConsentPairing, GuildID: "g2", ChannelID: "c9", ContactID: "U-a"},
		hash("333333"), time.Minute); !errors.Is(err, core.ErrConflict) {
		t.Errorf("a second waiting request with the same code: %v, want ErrConflict", err)
	}
	if reqs, _ := st.ConsentRequestsByGuild(ctx, "g1"); len(reqs) != 2 {
		t.Fatalf("g1 waits for %d requests, want 2", len(reqs))
	}
	// Another contact's code does not work for U-a, and counts as wrong.
	mustRequest(t, st, core.ConsentPairing, "g1", "c5", "U-b", "444444")
	if res := use("444444"); res.Outcome != core.CodeWrong {
		t.Errorf("U-b's code used by U-a: %v, want CodeWrong", res.Outcome)
	}
	res := use("111111")
	if res.Outcome != core.CodeAccepted || res.GuildID != "g1" || len(res.Activated) != 2 {
		t.Fatalf("the right code: %+v, want accepted with both g1 requests", res)
	}
	for _, a := range res.Activated {
		if !a.Created {
			t.Errorf("request %+v not created", a.Request)
		}
	}
	if ids, _ := st.ConsentedContacts(ctx, "g1"); !slices.Equal(ids, []string{"U-a"}) {
		t.Errorf("consented in g1: %q", ids)
	}
	if ids, _ := st.ConsentedContacts(ctx, "g2"); len(ids) != 0 {
		t.Errorf("consent leaked to g2: %q", ids)
	}
	if ps, err := st.PairingsByChannel(ctx, "c1"); err != nil || len(ps) != 1 || ps[0].ContactID != "U-a" || ps[0].GuildID != "g1" {
		t.Errorf("pairings of c1: %+v, %v", ps, err)
	}
	if subs, _ := st.SubscriptionsForContact(ctx, "U-a"); len(subs) != 1 || subs[0].ChannelID != "c2" {
		t.Errorf("subscriptions announcing U-a: %+v", subs)
	}
	if res := use("111111"); res.Outcome != core.CodeUsed {
		t.Errorf("the code again: %v, want CodeUsed", res.Outcome)
	}
	if reqs, _ := st.ConsentRequestsByGuild(ctx, "g1"); len(reqs) != 1 || reqs[0].ContactID != "U-b" {
		t.Errorf("g1 waits for %+v, want U-b's request only", reqs)
	}
	// g2's request expires: its code changes nothing.
	mustExec(t, st, `update consent_requests set expires_at = now() - interval '1 second' where id = $1`, other.ID)
	if res := use("333333"); res.Outcome != core.CodeExpired {
		t.Errorf("an expired code: %v, want CodeExpired", res.Outcome)
	}
	if ids, _ := st.ConsentedContacts(ctx, "g2"); len(ids) != 0 {
		t.Errorf("an expired code consented: %q", ids)
	}

	// !links, then !unlink takes everything of U-a, and only of U-a.
	gs, err := st.ConsentsByContact(ctx, "U-a")
	if err != nil || len(gs) != 1 || !slices.Equal(gs[0].Pairings, []string{"c1"}) || !slices.Equal(gs[0].Subscriptions, []string{"c2"}) {
		t.Fatalf("ConsentsByContact = %+v, %v", gs, err)
	}
	w, err := st.WithdrawConsent(ctx, "U-a")
	if err != nil || len(w.Guilds) != 1 || len(w.Pairings) != 1 || len(w.Subscriptions) != 1 {
		t.Fatalf("WithdrawConsent = %+v, %v", w, err)
	}
	if ps, err := st.PairingsByChannel(ctx, "c1"); err != nil || len(ps) != 0 {
		t.Errorf("the pairing outlived the consent: %+v, %v", ps, err)
	}
	if reqs, _ := st.ConsentRequestsByGuild(ctx, "g1"); len(reqs) != 1 || reqs[0].ContactID != "U-b" {
		t.Errorf("U-b's request should stay: %+v", reqs)
	}
}

func TestConsentThrottle(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	mustRequest(t, st, core.ConsentPairing, "g1", "c1", "U-a", "123456")
	for i := range 5 {
		res, err := st.UseConsentCode(ctx, "U-a", hash("wrong"), 5, time.Hour)
		if err != nil || res.Outcome != core.CodeWrong {
			t.Fatalf("guess %d: %+v, %v", i, res, err)
		}
		if (i == 4) == res.RetryAt.IsZero() {
			t.Errorf("guess %d: RetryAt %v; want it set at the limit only", i, res.RetryAt)
		}
	}
	res, err := st.UseConsentCode(ctx, "U-a", hash("123456"), 5, time.Hour)
	if err != nil || res.Outcome != core.CodeThrottled || time.Until(res.RetryAt) < 50*time.Minute {
		t.Fatalf("the right code after 5 wrong ones: %+v, %v; want throttled for the window", res, err)
	}
	// Another contact is not held back.
	mustRequest(t, st, core.ConsentPairing, "g1", "c2", "U-b", "654321")
	if res, err := st.UseConsentCode(ctx, "U-b", hash("654321"), 5, time.Hour); err != nil || res.Outcome != core.CodeAccepted {
		t.Errorf("U-b: %+v, %v", res, err)
	}
	// Once the window is over the code is checked again.
	mustExec(t, st, `update consent_failures set window_start = now() - interval '2 hours'`)
	if res, err := st.UseConsentCode(ctx, "U-a", hash("123456"), 5, time.Hour); err != nil || res.Outcome != core.CodeAccepted {
		t.Errorf("after the window: %+v, %v", res, err)
	}
}

func TestSecretKey(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	url := storetest.URL(t)
	open := func(key string) (*store.Store, error) {
		t.Helper()
		st, err := store.Open(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		return st, st.UseSecretKey(ctx, key)
	}
	plain, err := open("")
	if err != nil {
		t.Fatal(err)
	}
	mustPair(t, plain, "c1")
	if err := plain.SetPairingWebhook(ctx, "c1", "w1", "hook-token-1"); err != nil {
		t.Fatal(err)
	}
	if err := plain.SaveAccountSession(ctx, "U-bridge", "session-token-1", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	const key = "0123456789abcdef-key"
	sealed, err := open(key) // the first start with a key seals what is stored
	if err != nil {
		t.Fatal(err)
	}
	var rawHook, rawSession string
	if err := sealed.Pool().QueryRow(ctx, `select p.webhook_token, a.token from pairings p, resonite_account a`).Scan(&rawHook, &rawSession); err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{rawHook, rawSession} {
		if len(raw) < 5 || raw[:5] != "enc1:" || raw == "enc1:hook-token-1" {
			t.Errorf("stored %q, want it sealed", raw)
		}
	}
	if ps, err := sealed.PairingsByChannel(ctx, "c1"); err != nil || len(ps) != 1 || ps[0].WebhookToken != "hook-token-1" {
		t.Errorf("PairingsByChannel: %+v, %v", ps, err)
	}
	if _, tok, _, ok, err := sealed.AccountSession(ctx); err != nil || !ok || tok != "session-token-1" {
		t.Errorf("AccountSession: %q, %v", tok, err)
	}
	tests := []struct {
		name, key string
		wantErr   bool
	}{
		{"the same key", key, false},
		{"another key", "another-key-0123456789", true},
		{"no key", "", true},
	}
	for _, tt := range tests {
		_, err := open(tt.key)
		if tt.wantErr != errors.Is(err, store.ErrSecretKey) {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}
