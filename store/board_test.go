package store_test

import (
	"errors"
	"testing"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

func TestBoardsOnePerChannelAndMessageKept(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	for _, tc := range []struct {
		channel     string
		wantCreated bool
	}{{"c1", true}, {"c1", false}, {"c2", true}} {
		created, err := st.StartBoard(ctx, core.Board{GuildID: "g1", ChannelID: tc.channel, CreatedBy: "admin"})
		if err != nil || created != tc.wantCreated {
			t.Fatalf("StartBoard(%s) = %v, %v; want %v", tc.channel, created, err, tc.wantCreated)
		}
	}
	if err := st.SetBoardMessage(ctx, "c1", "m1"); err != nil {
		t.Fatalf("SetBoardMessage: %v", err)
	}
	bs, err := st.Boards(ctx)
	if err != nil || len(bs) != 2 || bs[0].ChannelID != "c1" || bs[0].MessageID != "m1" || bs[1].MessageID != "" {
		t.Fatalf("Boards = %+v, %v", bs, err)
	}
	if b, err := st.StopBoard(ctx, "c1"); err != nil || b.MessageID != "m1" {
		t.Fatalf("StopBoard = %+v, %v", b, err)
	}
	if _, err := st.StopBoard(ctx, "c1"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("second StopBoard = %v, want ErrNotFound", err)
	}
	if err := st.SetBoardMessage(ctx, "c1", "m2"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("SetBoardMessage of a stopped board = %v, want ErrNotFound", err)
	}
}

func TestFollowsToggleAndDropAfterFailures(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	f := core.Follow{GuildID: "g1", ChannelID: "c1", UserID: "u1", ContactID: "U-alice"}
	for i, want := range []bool{true, false, true} {
		if on, err := st.ToggleFollow(ctx, f); err != nil || on != want {
			t.Fatalf("toggle %d = %v, %v; want %v", i, on, err, want)
		}
	}
	all := core.Follow{GuildID: "g1", ChannelID: "c1", UserID: "u2", ContactID: core.AllContacts}
	if on, err := st.ToggleFollow(ctx, all); err != nil || !on {
		t.Fatalf("toggle all = %v, %v", on, err)
	}
	fs, err := st.FollowsForContact(ctx, "U-alice")
	if err != nil || len(fs) != 2 {
		t.Fatalf("FollowsForContact = %+v, %v; want u1's and u2's all", fs, err)
	}
	if other, _ := st.FollowsForContact(ctx, "U-bob"); len(other) != 1 || other[0].UserID != "u2" {
		t.Errorf("FollowsForContact(bob) = %+v, want only the all follow", other)
	}
	ids := []int64{fs[0].ID}
	for i, wantDropped := range []int{0, 0, 0, 1} { // the first is forgiven by a delivered DM
		dropped, err := st.FollowFailed(ctx, ids, true, 3)
		if err != nil || dropped != wantDropped {
			t.Fatalf("failure %d: dropped %d, %v; want %d", i+1, dropped, err, wantDropped)
		}
		if i == 0 {
			if err := st.FollowDelivered(ctx, ids); err != nil {
				t.Fatal(err)
			}
			got, _ := st.FollowsByUser(ctx, "g1", "u1")
			if len(got) != 1 || got[0].Failures != 0 || got[0].ToldClosed {
				t.Fatalf("after a delivered DM: %+v, want the count reset", got)
			}
		}
	}
	if got, _ := st.FollowsByUser(ctx, "g1", "u1"); len(got) != 0 {
		t.Errorf("after three refused DMs in a row the follow is still there: %+v", got)
	}
}
