package store_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/store"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

func TestPairingsCRUD(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)

	p1, err := st.CreatePairing(ctx, core.Pairing{GuildID: "g1", ChannelID: "c1", ContactID: "U-alice", ContactUsername: "Alice", CreatedBy: "u1", WebhookID: "w1", WebhookToken: "tok1"})
	if err != nil {
		t.Fatalf("CreatePairing: %v", err)
	}
	if p1.ID == 0 || p1.CreatedAt.IsZero() || p1.ContactUsername != "Alice" || p1.WebhookToken != "tok1" {
		t.Fatalf("created pairing = %+v, want id, time and fields set", p1)
	}
	if _, err := st.CreatePairing(ctx, core.Pairing{GuildID: "g1", ChannelID: "c1", ContactID: "U-alice"}); !errors.Is(err, core.ErrConflict) {
		t.Fatalf("pairing a channel with a contact it has already = %v, want ErrConflict", err)
	}
	p2 := mustPairWith(t, st, core.Pairing{GuildID: "g1", ChannelID: "c2", ContactID: "U-alice"})
	p3 := mustPairWith(t, st, core.Pairing{GuildID: "g2", ChannelID: "c3", ContactID: "U-bob"})

	tests := []struct {
		name string
		get  func() ([]core.Pairing, error)
		want []int64
	}{
		{"by guild g1", func() ([]core.Pairing, error) { return st.PairingsByGuild(ctx, "g1") }, []int64{p1.ID, p2.ID}},
		{"by guild g2", func() ([]core.Pairing, error) { return st.PairingsByGuild(ctx, "g2") }, []int64{p3.ID}},
		{"by unknown guild", func() ([]core.Pairing, error) { return st.PairingsByGuild(ctx, "nope") }, nil},
		{"by contact alice", func() ([]core.Pairing, error) { return st.PairingsByContact(ctx, "U-alice") }, []int64{p1.ID, p2.ID}},
		{"all", func() ([]core.Pairing, error) { return st.Pairings(ctx) }, []int64{p1.ID, p2.ID, p3.ID}},
	}
	for _, tt := range tests {
		got, err := tt.get()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if len(got) != len(tt.want) {
			t.Fatalf("%s: got %d pairings, want %d", tt.name, len(got), len(tt.want))
		}
		for i := range got {
			if got[i].ID != tt.want[i] {
				t.Errorf("%s: [%d] id %d, want %d", tt.name, i, got[i].ID, tt.want[i])
			}
		}
	}

	if got, err := st.PairingsByChannel(ctx, "c1"); err != nil || len(got) != 1 || got[0] != p1 {
		t.Fatalf("PairingsByChannel(c1) = %+v, %v; want [%+v]", got, err, p1)
	}
	if got, err := st.PairingByID(ctx, p3.ID); err != nil || got.ChannelID != "c3" {
		t.Fatalf("PairingByID = %+v, %v", got, err)
	}
	if err := st.SetPairingWebhook(ctx, "c2", "w2", "tok2"); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.PairingByID(ctx, p2.ID); got.WebhookID != "w2" || got.WebhookToken != "tok2" {
		t.Fatalf("webhook not stored: %+v", got)
	}
	if err := st.SetPairingWebhook(ctx, "nope", "w", "t"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("SetPairingWebhook(unpaired) = %v, want ErrNotFound", err)
	}

	// Unpairing takes the queued messages and cursor with it.
	if _, _, err := st.Enqueue(ctx, core.OutboxRow{Direction: core.ToResonite, SourceID: "m1", PairingID: p1.ID}); err != nil {
		t.Fatal(err)
	}
	if err := st.AdvanceDiscordCursor(ctx, p1.ID, "100"); err != nil {
		t.Fatal(err)
	}
	del, err := st.DeletePairings(ctx, "c1", "")
	if err != nil || len(del) != 1 || del[0].ID != p1.ID {
		t.Fatalf("DeletePairings = %+v, %v", del, err)
	}
	if _, err := st.MessageBySource(ctx, core.ToResonite, "m1"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("message of a deleted pairing still there: %v", err)
	}
	if c, err := st.DiscordCursor(ctx, p1.ID); err != nil || c != "" {
		t.Fatalf("cursor of a deleted pairing = %q, %v", c, err)
	}
	for name, err := range map[string]error{
		"DeletePairings again": func() error { _, err := st.DeletePairings(ctx, "c1", ""); return err }(),
		"PairingByID":          func() error { _, err := st.PairingByID(ctx, p1.ID); return err }(),
	} {
		if !errors.Is(err, core.ErrNotFound) {
			t.Errorf("%s after delete = %v, want ErrNotFound", name, err)
		}
	}
	if got, err := st.PairingsByChannel(ctx, "c1"); err != nil || len(got) != 0 {
		t.Errorf("PairingsByChannel after delete = %+v, %v; want none", got, err)
	}
	// The channel can be paired again.
	mustPairWith(t, st, core.Pairing{GuildID: "g1", ChannelID: "c1", ContactID: "U-carol"})
}

// TestGroupChannel: a channel holds up to MaxChannelContacts pairings, one per contact, which
// share its webhook; one of them or all can be removed.
func TestGroupChannel(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)

	first := mustPairWith(t, st, core.Pairing{GuildID: "g", ChannelID: "grp", ContactID: "U-0", WebhookID: "w", WebhookToken: "tok"})
	members := []core.Pairing{first}
	for i := 1; i < core.MaxChannelContacts; i++ {
		p := mustPairWith(t, st, core.Pairing{GuildID: "g", ChannelID: "grp", ContactID: fmt.Sprintf("U-%d", i)})
		if p.WebhookID != "w" || p.WebhookToken != "tok" {
			t.Fatalf("contact %d joined without the channel's webhook: %q %q", i, p.WebhookID, p.WebhookToken)
		}
		members = append(members, p)
	}
	if _, err := st.CreatePairing(ctx, core.Pairing{GuildID: "g", ChannelID: "grp", ContactID: "U-extra"}); !errors.Is(err, core.ErrFull) {
		t.Fatalf("contact %d of a channel = %v, want ErrFull", core.MaxChannelContacts+1, err)
	}
	if _, err := st.CreatePairing(ctx, core.Pairing{GuildID: "g", ChannelID: "grp", ContactID: "U-3"}); !errors.Is(err, core.ErrConflict) {
		t.Fatalf("a contact twice in a full channel = %v, want ErrConflict", err)
	}
	got, err := st.PairingsByChannel(ctx, "grp")
	if err != nil || len(got) != core.MaxChannelContacts || got[0].ID != first.ID {
		t.Fatalf("PairingsByChannel = %d pairings, %v; want %d, oldest first", len(got), err, core.MaxChannelContacts)
	}
	if err := st.SetPairingWebhook(ctx, "grp", "w2", "tok2"); err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if p, _ := st.PairingByID(ctx, m.ID); p.WebhookID != "w2" || p.WebhookToken != "tok2" {
			t.Errorf("pairing %s kept webhook %q after the channel's changed", m.ContactID, p.WebhookID)
		}
	}

	del, err := st.DeletePairings(ctx, "grp", "U-3")
	if err != nil || len(del) != 1 || del[0].ContactID != "U-3" {
		t.Fatalf("DeletePairings(U-3) = %+v, %v", del, err)
	}
	if _, err := st.DeletePairings(ctx, "grp", "U-3"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("removing a contact twice = %v, want ErrNotFound", err)
	}
	mustPairWith(t, st, core.Pairing{GuildID: "g", ChannelID: "grp", ContactID: "U-new"}) // room again
	del, err = st.DeletePairings(ctx, "grp", "")
	if err != nil || len(del) != core.MaxChannelContacts {
		t.Fatalf("DeletePairings(all) removed %d, %v; want %d", len(del), err, core.MaxChannelContacts)
	}
}

// TestGroupChannelLimitUnderConcurrency: contacts added at once cannot overfill a channel.
func TestGroupChannelLimitUnderConcurrency(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	const tries = core.MaxChannelContacts + 4
	errs := make(chan error, tries)
	for i := range tries {
		go func() {
			_, err := st.CreatePairing(ctx, core.Pairing{GuildID: "g", ChannelID: "race", ContactID: fmt.Sprintf("U-%d", i)})
			errs <- err
		}()
	}
	created, full := 0, 0
	for range tries {
		switch err := <-errs; {
		case err == nil:
			created++
		case errors.Is(err, core.ErrFull):
			full++
		default:
			t.Errorf("CreatePairing: %v", err)
		}
	}
	if created != core.MaxChannelContacts || full != tries-core.MaxChannelContacts {
		t.Fatalf("%d created, %d refused as full; want %d and %d", created, full, core.MaxChannelContacts, tries-core.MaxChannelContacts)
	}
}

func mustPairWith(t *testing.T, st *store.Store, p core.Pairing) core.Pairing {
	t.Helper()
	out, err := st.CreatePairing(ctxT(t), p)
	if err != nil {
		t.Fatalf("CreatePairing(%s): %v", p.ChannelID, err)
	}
	return out
}

func TestSubscriptions(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	for _, c := range []string{"U-alice", "U-bob"} {
		if err := st.GrantConsent(ctx, c, "g", "G"); err != nil {
			t.Fatal(err)
		}
	}
	add := func(channel, contact string) bool {
		t.Helper()
		created, err := st.AddSubscription(ctx, core.Subscription{GuildID: "g", ChannelID: channel, ContactID: contact, CreatedBy: "u"})
		if err != nil {
			t.Fatalf("AddSubscription(%s, %s): %v", channel, contact, err)
		}
		return created
	}
	if !add("c1", "U-alice") {
		t.Fatal("first subscription not created")
	}
	if add("c1", "U-alice") {
		t.Fatal("duplicate subscription reported as created")
	}
	add("c1", core.AllContacts) // c1 has both: must be announced once
	add("c2", core.AllContacts)
	add("c3", "U-bob")
	add("c4", "U-alice")

	channels := func(subs []core.Subscription) []string {
		var out []string
		for _, s := range subs {
			out = append(out, s.ChannelID+"/"+s.ContactID)
		}
		return out
	}
	tests := []struct {
		contact string
		want    []string
	}{
		{"U-alice", []string{"c1/U-alice", "c2/all", "c4/U-alice"}},
		{"U-bob", []string{"c1/all", "c2/all", "c3/U-bob"}},
		{"U-nobody", nil}, // never consented in g: "all" does not cover them
	}
	for _, tt := range tests {
		subs, err := st.SubscriptionsForContact(ctx, tt.contact)
		if err != nil {
			t.Fatal(err)
		}
		got := channels(subs)
		if len(got) != len(tt.want) {
			t.Fatalf("SubscriptionsForContact(%s) = %v, want %v", tt.contact, got, tt.want)
		}
		// Order is by creation; compare as sets to keep the test about content.
		for _, w := range tt.want {
			found := false
			for _, g := range got {
				found = found || g == w
			}
			if !found {
				t.Errorf("SubscriptionsForContact(%s) = %v, missing %s", tt.contact, got, w)
			}
		}
	}
	subs, err := st.SubscriptionsByChannel(ctx, "c1")
	if err != nil || len(subs) != 2 || subs[0].ContactID != "U-alice" || subs[1].ContactID != core.AllContacts || subs[0].CreatedAt.IsZero() {
		t.Fatalf("SubscriptionsByChannel(c1) = %+v, %v", subs, err)
	}
	if removed, err := st.RemoveSubscription(ctx, "c1", "U-alice"); err != nil || !removed {
		t.Fatalf("RemoveSubscription = %v, %v; want removed", removed, err)
	}
	if removed, err := st.RemoveSubscription(ctx, "c1", "U-alice"); err != nil || removed {
		t.Fatalf("RemoveSubscription again = %v, %v; want not removed", removed, err)
	}
	if subs, _ := st.SubscriptionsForContact(ctx, "U-alice"); len(subs) != 3 || channels(subs)[0] != "c1/all" {
		t.Fatalf("after removing c1/U-alice, alice is announced by %v; want c1/all first", channels(subs))
	}
}
