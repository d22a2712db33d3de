package client_test

import (
	"bytes"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sotto-rtc/sotto/internal/hostilenode"
	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/signaling/client"
)

// TestKeySwappedAgainAfterTheWarning: alice knows bob's key. The node
// shows her a key K2 as bob's; her application warns her
// (SecurityKeyChanged, with K2). Before she clicks "accept", the node shows
// bob again, with K3. Her click accepts K2 only: as K2 is no longer what
// waits, nothing is accepted (ErrNoKeyChange) and her store keeps bob's
// old key; the K3 warning is what she must answer.
func TestKeySwappedAgainAfterTheWarning(t *testing.T) {
	srv := newServer(t)
	ctx := testContext(t)
	direct := srv.Frontend().URL

	bobStore := e2ee.NewMemoryStore()
	bobID, err := bobStore.Identity()
	if err != nil {
		t.Fatal(err)
	}
	aliceStore := e2ee.NewMemoryStore()
	if err := aliceStore.Remember("bob", e2ee.KnownKey{Key: bobID.PublicKey(), Verified: true, FirstSeen: time.Now()}); err != nil {
		t.Fatal(err)
	}

	announce := func() (string, []byte) {
		id, _ := e2ee.NewIdentity()
		sk, _ := e2ee.NewSessionKey()
		return e2ee.Announce(id, sk), id.PublicKey()
	}
	k2, k2Key := announce()
	k3, k3Key := announce()
	var swapped atomic.Value
	swapped.Store(k2)
	proxy := hostilenode.New(t, direct, hostilenode.JSON(func(m map[string]any) bool {
		changed := false
		for _, p := range hostilenode.Participants(m) {
			if p["identity"] == "bob" {
				p["public_key"] = swapped.Load().(string)
				changed = true
			}
		}
		return changed
	}))

	kc := make(chan client.KeyChange, 8)
	alice := joinE2EE(ctx, t, proxy.URL, srv.Token("alice", true, true), "alice", withStore(aliceStore, kc))
	bob := joinE2EE(ctx, t, direct, srv.Token("bob", true, true), "bob", withStore(bobStore, make(chan client.KeyChange, 8)))
	waitChange := func(want []byte) client.KeyChange {
		t.Helper()
		select {
		case c := <-kc:
			if !bytes.Equal(c.Current, want) {
				t.Fatalf("the change reported: %+v", c)
			}
			return c
		case <-time.After(testTimeout):
			t.Fatal("no SecurityKeyChanged")
		}
		return client.KeyChange{}
	}
	shown := waitChange(k2Key) // what alice's application puts on screen

	// The node swaps again: bob comes back (a reconnect, say) with K3.
	swapped.Store(k3)
	_ = bob.c.Close()
	joinE2EE(ctx, t, direct, srv.Token("bob", true, true), "bob", withStore(bobStore, make(chan client.KeyChange, 8)))
	waitChange(k3Key)

	// alice clicks "accept" on the warning she read.
	if err := alice.c.AcceptKeyChange(shown); !errors.Is(err, client.ErrNoKeyChange) {
		t.Fatalf("accepting a change that was superseded: %v, want ErrNoKeyChange", err)
	}
	if k, _ := aliceStore.Known("bob"); !bytes.Equal(k.Key, bobID.PublicKey()) || !k.Verified {
		t.Fatalf("alice's store holds %+v for bob after a refused accept; want his old key, verified", k)
	}
}
