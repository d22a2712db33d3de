package client_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sotto-rtc/sotto/internal/hostilenode"
	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// withStore gives a client an identity store and reports key changes on kc.
func withStore(st e2ee.IdentityStore, kc chan<- client.KeyChange) conf {
	return func(o *client.Options) {
		o.E2EE.Store = st
		o.Handlers.SecurityKeyChanged = func(k client.KeyChange) { kc <- k }
	}
}

// TestHostileNodeChangesKnownPersonsKey: alice met bob in an earlier call
// (her identity store, a file, remembers his key). In the next call the
// node shows her another key as bob's. Her client reports the change,
// holds "bob" out of the call's keys and out of the safety number until
// she accepts. Since members admit members, accepting does not make the
// swapped key a member either: bob's own signed views do not match it,
// and carol's roster check sees alice's view differ.
func TestHostileNodeChangesKnownPersonsKey(t *testing.T) {
	srv := newServer(t)
	ctx := testContext(t)
	direct := srv.Frontend().URL
	alicePath := filepath.Join(t.TempDir(), "alice.json")
	aliceStore, err := e2ee.OpenFileStore(alicePath)
	if err != nil {
		t.Fatal(err)
	}
	bobStore := e2ee.NewMemoryStore()
	kc := make(chan client.KeyChange, 8)

	// The first call: they meet, compare codes and mark each other verified.
	bob := joinE2EE(ctx, t, direct, srv.Token("bob", true, true), "bob", withStore(bobStore, make(chan client.KeyChange, 8)))
	alice := joinE2EE(ctx, t, direct, srv.Token("alice", true, true), "alice", withStore(aliceStore, kc))
	waitJoined(t, bob, "alice")
	// bob was in the room when alice joined: his signed view settles it.
	waitMember(t, alice, "bob", "")
	if n := len(alice.c.SafetyNumberCovers()); n != 2 {
		t.Fatalf("alice's safety number covers %d people, want 2", n)
	}
	codeA, err := alice.c.VerificationCode("bob")
	if err != nil {
		t.Fatal(err)
	}
	codeB, err := bob.c.VerificationCode("alice")
	if err != nil || codeA != codeB {
		t.Fatalf("verification codes differ: alice %q, bob %q (%v)", codeA, codeB, err)
	}
	bobKey := e2ee.Member{}
	for _, cv := range alice.c.SafetyNumberCovers() {
		if cv.Identity == "bob" {
			bobKey.PublicKey = cv.Key
		}
	}
	if err := alice.c.MarkVerified("bob", newIdentityKey(t), true); err == nil {
		t.Fatal("MarkVerified took a key other than the one known for bob")
	}
	if err := alice.c.MarkVerified("bob", bobKey.PublicKey, true); err != nil {
		t.Fatal(err)
	}
	for _, cv := range alice.c.SafetyNumberCovers() {
		if cv.Identity == "bob" && !cv.Verified {
			t.Fatal("bob is not shown verified after MarkVerified")
		}
	}
	_ = alice.c.Close()
	_ = bob.c.Close()

	// The second call, alice through a node that swaps bob's key.
	mallory, _ := e2ee.NewIdentity()
	malloryKey, _ := e2ee.NewSessionKey()
	swapped := e2ee.Announce(mallory, malloryKey)
	proxy := hostilenode.New(t, direct, func(b []byte) []byte {
		return hostilenode.JSON(func(m map[string]any) bool {
			changed := false
			for _, p := range hostilenode.Participants(m) {
				if p["identity"] == "bob" {
					p["public_key"] = swapped
					changed = true
				}
			}
			return changed
		})(b)
	})
	reopened, err := e2ee.OpenFileStore(alicePath)
	if err != nil {
		t.Fatal(err)
	}
	bob2 := joinE2EE(ctx, t, direct, srv.Token("bob", true, true), "bob", withStore(bobStore, make(chan client.KeyChange, 8)))
	carol := joinE2EE(ctx, t, direct, srv.Token("carol", true, true), "carol")
	alice2 := joinE2EE(ctx, t, proxy.URL, srv.Token("alice", true, true), "alice", withStore(reopened, kc))
	if _, err := alice2.c.PublishSample(ctx, "mic", opus()); err != nil {
		t.Fatal(err)
	}
	var change client.KeyChange
	select {
	case change = <-kc:
	case <-time.After(testTimeout):
		t.Fatal("alice's client never reported bob's changed key")
	}
	if change.Identity != "bob" || !bytes.Equal(change.Previous, bobKey.PublicKey) || !bytes.Equal(change.Current, mallory.PublicKey()) || !change.WasVerified {
		t.Fatalf("the change reported: %+v", change)
	}
	for _, cv := range alice2.c.SafetyNumberCovers() {
		if cv.Identity == "bob" {
			t.Fatal("the safety number covers bob's unaccepted key")
		}
	}
	// bob's views are signed with his real key, not the one the node
	// shows alice, so "bob" is no member in her eyes: her view lacks him
	// (or is missing, if only bob's admission reached her), carol's
	// lists him, and carol, whom the node did not touch, is told.
	e := waitAlert(t, carol)
	if !slices.ContainsFunc(e.Mismatches, func(m e2ee.RosterMismatch) bool { return m.Member == "alice" }) {
		t.Fatalf("carol's alert does not name alice's view: %v", e)
	}
	if boxesFor(t, proxy, "bob") != 0 {
		t.Fatal("alice sealed a key to bob's changed key before accepting it")
	}
	if err := alice2.c.AcceptKeyChange(change); err != nil {
		t.Fatal(err)
	}
	if err := alice2.c.AcceptKeyChange(change); !errors.Is(err, client.ErrNoKeyChange) {
		t.Fatalf("a second AcceptKeyChange: %v, want ErrNoKeyChange", err)
	}
	// Accepting the key does not admit it: no member admitted that key
	// and no view signed by it came, so it is still no member for her.
	for _, p := range alice2.c.Admissions() {
		if p.Identity == "bob" && p.State == e2ee.StateMember {
			t.Fatalf("after accepting, the swapped key counts as a member: %+v", p)
		}
	}
	for _, cv := range alice2.c.SafetyNumberCovers() {
		if cv.Identity == "bob" {
			t.Fatalf("after accepting, the safety number covers the swapped key, which nobody admitted: %+v", cv)
		}
	}
	if boxesFor(t, proxy, "bob") != 0 {
		t.Fatal("alice sealed a key to the swapped key")
	}
	_ = bob2
}

// boxesFor counts the boxes for recipient in key messages the proxy
// carried from clients.
func boxesFor(t *testing.T, proxy *hostilenode.Node, recipient string) int {
	t.Helper()
	n := 0
	for _, f := range proxy.Carried() {
		if f.ToClient {
			continue
		}
		var r wire.Relay
		if json.Unmarshal(f.Data, &r) != nil || r.Type != wire.TypeRelay {
			continue
		}
		var km struct {
			Type  string            `json:"type"`
			Boxes map[string]string `json:"boxes"`
		}
		if json.Unmarshal(r.Data, &km) == nil && km.Type == "key" && km.Boxes[recipient] != "" {
			n++
		}
	}
	return n
}

func newIdentityKey(t *testing.T) []byte {
	t.Helper()
	id, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id.PublicKey()
}

// TestLookalikeNameIsWarned: alice met bob. The node adds "bob" with a
// zero-width space after it, with a key of its own. alice's client does not
// take it as someone new: it reports the look-alike (KeyChange.LooksLike),
// seals it no key and leaves it out of the safety number until the
// application accepts.
func TestLookalikeNameIsWarned(t *testing.T) {
	srv := newServer(t)
	ctx := testContext(t)
	direct := srv.Frontend().URL
	aliceStore := e2ee.NewMemoryStore()
	bobStore := e2ee.NewMemoryStore()
	bobID, err := bobStore.Identity()
	if err != nil {
		t.Fatal(err)
	}
	if err := aliceStore.Remember("bob", e2ee.KnownKey{Key: bobID.PublicKey(), Verified: true}); err != nil {
		t.Fatal(err)
	}
	kc := make(chan client.KeyChange, 8)
	proxy := hostilenode.New(t, direct, nil)
	ghostStore := e2ee.NewMemoryStore()
	joinE2EE(ctx, t, direct, srv.Token("bob\u200b", true, true), "bob\u200b", withStore(ghostStore, make(chan client.KeyChange, 8)))
	carol := joinE2EE(ctx, t, direct, srv.Token("carol", true, true), "carol")
	alice := joinE2EE(ctx, t, proxy.URL, srv.Token("alice", true, true), "alice", withStore(aliceStore, kc))
	if _, err := alice.c.PublishSample(ctx, "mic", opus()); err != nil {
		t.Fatal(err)
	}
	var change client.KeyChange
	select {
	case change = <-kc:
	case <-time.After(testTimeout):
		t.Fatal("alice's client never reported the look-alike")
	}
	if change.Identity != "bob\u200b" || change.LooksLike != "bob" || !bytes.Equal(change.Previous, bobID.PublicKey()) || !change.WasVerified {
		t.Fatalf("the change reported: %+v", change)
	}
	carol.waitKeys(t, "alice's key", func(es []e2ee.KeyEvent) bool {
		for _, e := range es {
			if e.Sender == "alice" {
				return true
			}
		}
		return false
	})
	if n := boxesFor(t, proxy, "bob\u200b"); n != 0 {
		t.Fatalf("alice sealed %d keys to the look-alike before the user accepted", n)
	}
	for _, cv := range alice.c.SafetyNumberCovers() {
		if cv.Identity == "bob\u200b" {
			t.Fatal("the safety number covers the look-alike")
		}
	}
	if _, ok := aliceStore.Known("bob\u200b"); ok {
		t.Fatal("the look-alike was remembered as someone new")
	}
	if err := alice.c.AcceptKeyChange(change); err != nil {
		t.Fatal(err)
	}
	if k, ok := aliceStore.Known("bob\u200b"); !ok || k.Verified {
		t.Fatalf("after accepting, the look-alike is known as %+v (%v), want unverified", k, ok)
	}
}

// failingStore is a MemoryStore whose Remember fails: a disk that is full
// or read-only.
type failingStore struct{ *e2ee.MemoryStore }

func (failingStore) Remember(string, e2ee.KnownKey) error {
	return errors.New("disk full")
}

// TestStoreFailureHoldsPeopleOut: a client that cannot remember a new
// participant's key cannot recognise them next time, so it does not trust
// them now: no key sealed to them, not in the safety number.
func TestStoreFailureHoldsPeopleOut(t *testing.T) {
	srv := newServer(t)
	ctx := testContext(t)
	direct := srv.Frontend().URL
	proxy := hostilenode.New(t, direct, nil)
	joinE2EE(ctx, t, direct, srv.Token("bob", true, true), "bob")
	joinE2EE(ctx, t, direct, srv.Token("carol", true, true), "carol")
	st := e2ee.NewMemoryStore()
	alice := joinE2EE(ctx, t, proxy.URL, srv.Token("alice", true, true), "alice", func(o *client.Options) { o.E2EE.Store = failingStore{st} })
	if _, err := alice.c.PublishSample(ctx, "mic", opus()); err != nil {
		t.Fatal(err)
	}
	for _, cv := range alice.c.SafetyNumberCovers() {
		if !cv.Self {
			t.Fatalf("the safety number covers %q, whose key could not be remembered", cv.Identity)
		}
	}
	if _, err := alice.c.VerificationCode("bob"); err == nil {
		t.Fatal("a verification code for bob, who is not covered")
	}
	if n := boxesFor(t, proxy, "bob") + boxesFor(t, proxy, "carol"); n != 0 {
		t.Fatalf("alice sealed %d keys to people she could not remember", n)
	}
}
