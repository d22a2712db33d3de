package web_test

// The node swaps a participant's key at a first meeting (docs/E2EE.md,
// "Threat model"): nothing automatic can tell a first key from a swapped
// one, so what shows it is the safety number, which differs between the
// victim and the others, and the real participant, who cannot open what
// was sealed to the fake key. signaling/client's
// TestE2EESwappedIdentityKeyChangesSafetyNumber plays it with a Go victim;
// here the victim is the call page.

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/sotto-rtc/sotto/internal/hostilenode"
	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/signaling/client"
)

// bob and carol (Go clients) are in a call, on the real node. alice (the
// page, in a fresh browser profile: she has met nobody) joins through a
// node that shows her, as bob's, an announcement of its own (mallory's
// identity and session key). She gets no warning (a first key is taken as
// it comes), and seals her key to the fake one. Her safety number is the
// one over mallory's key, not bob's: it differs from bob's, while carol's,
// untouched, equals bob's. bob counts the key messages he cannot open.
func TestBrowserSafetyNumberShowsKeySwappedByNode(t *testing.T) {
	srv := startWebServer(t, nil)
	const room = "first-meeting"
	mallory, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	mallorySession, err := e2ee.NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	swapped := e2ee.Announce(mallory, mallorySession)
	node := hostilenode.New(t, srv.URL, hostilenode.JSON(func(m map[string]any) bool {
		changed := false
		for _, p := range hostilenode.Participants(m) {
			if p["identity"] == "bob" {
				p["public_key"] = swapped
				changed = true
			}
		}
		return changed
	}))

	kc := make(chan client.KeyChange, 8)
	bob := knownGoPeer(t, srv, srv.URL, room, "bob", nil, kc)
	carol := knownGoPeer(t, srv, srv.URL, room, "carol", nil, kc)
	alice, _ := openKnownTab(t, newBrowser(t), node.URL, room, "alice")

	// The page's view: bob is covered, under mallory's key, with no
	// warning: to a browser that never met him it is simply his key.
	number := alice.waitSafetyNumber(t, []string{"alice", "bob", "carol"})
	var page struct {
		Number       string
		Participants []string
		Keys         map[string]string
		KeyChanges   []any
		Pending      int
		Dialog       bool
		Self         string
	}
	alice.eval(t, `(async () => { const h = (b) => Array.from(b, x => x.toString(16).padStart(2, "0")).join("");
		const c = window.sotto.call; const s = window.sotto.state;
		const keys = {}; for (const x of await c.safetyNumberCovers()) keys[x.identity] = h(x.key);
		return {number: s.safetyNumber, participants: s.safetyParticipants, keys, keyChanges: s.keyChanges,
			pending: c.pendingKeyChanges().length, dialog: document.getElementById("key-changed").open, self: `+pageIdentityJS+`}; })()`, &page)
	if page.Number != number {
		t.Fatalf("the page's state says %q, its safety number shows %q", page.Number, number)
	}
	if got, want := page.Keys["bob"], hex.EncodeToString(mallory.PublicKey()); got != want {
		t.Fatalf("the page covers bob under %s; want the key the node showed, %s (did the swap happen?)", got, want)
	}
	if len(page.KeyChanges) != 0 || page.Pending != 0 || page.Dialog {
		t.Fatalf("the page warns of a key change at a first meeting: %+v", page)
	}

	// bob's and carol's view: everyone's real keys, the page's included.
	waitGo(t, "bob and carol cover alice, bob and carol, and show one safety number", func() bool {
		b, c := coveredByGo(bob), coveredByGo(carol)
		return len(b) == 3 && len(c) == 3 && b["alice"] == page.Self && c["alice"] == page.Self && bob.SafetyNumber() == carol.SafetyNumber()
	}, func() string {
		return fmt.Sprintf("bob covers %v and shows %q; carol covers %v and shows %q; the page's key %s",
			coveredByGo(bob), bob.SafetyNumber(), coveredByGo(carol), carol.SafetyNumber(), page.Self)
	})
	bobNumber, carolNumber := bob.SafetyNumber(), carol.SafetyNumber()
	checkSameSafetyNumbers(t, "bob and carol, whose keys nobody touched", map[string]string{"bob": bobNumber, "carol": carolNumber})
	if number == bobNumber {
		t.Fatalf("the page, shown another key as bob's, has the safety number bob and carol have: %q", number)
	}
	direct := coveredByGo(carol)
	member := func(identity, key string) e2ee.Member {
		k, err := hex.DecodeString(key)
		if err != nil {
			t.Fatal(err)
		}
		return e2ee.Member{Identity: identity, PublicKey: k}
	}
	if want := e2ee.SafetyNumber(room, []e2ee.Member{member("alice", page.Self), member("bob", hex.EncodeToString(mallory.PublicKey())), member("carol", direct["carol"])}); number != want {
		t.Fatalf("the page shows %q; the safety number over mallory's key as bob's is %q", number, want)
	}
	if direct["bob"] != coveredByGo(bob)["bob"] || direct["bob"] == hex.EncodeToString(mallory.PublicKey()) {
		t.Fatalf("carol covers bob under %s, bob himself %s (mallory's %x)", direct["bob"], coveredByGo(bob)["bob"], mallory.PublicKey())
	}

	// The page seals its key to the fake one: the box opens with the
	// node's session key, and bob counts a key message he cannot open.
	waitGo(t, "the page seals its key to bob", func() bool {
		return boxesTo(pageKeyBoxes(t, node, 0), "bob") > 0
	}, func() string { return fmt.Sprintf("key messages: %v", pageKeyBoxes(t, node, 0)) })
	var box string
	for _, m := range pageKeyBoxes(t, node, 0) {
		if m["bob"] != "" {
			box = m["bob"]
			break
		}
	}
	raw, err := base64.RawURLEncoding.DecodeString(box)
	if err != nil {
		t.Fatal(err)
	}
	selfKey, err := hex.DecodeString(page.Self)
	if err != nil {
		t.Fatal(err)
	}
	body, err := e2ee.OpenKeyBox(mallorySession, selfKey, raw)
	if err != nil {
		t.Fatalf("the page's box for bob does not open with the session key the node showed as his: %v", err)
	}
	if body.Recipient != "bob" || hex.EncodeToString(body.RecipientKey) != hex.EncodeToString(mallory.PublicKey()) {
		t.Fatalf("the page's box for bob names %q under %x", body.Recipient, body.RecipientKey)
	}
	waitGo(t, "bob counts key messages he cannot open", func() bool {
		return bob.E2EEStats().BadKeyMessages > 0
	}, func() string { return fmt.Sprintf("bob's stats %+v", bob.E2EEStats()) })
	waitGo(t, "carol takes the page's key", func() bool {
		return carol.E2EEStats().KeysReceived > 0
	}, func() string { return fmt.Sprintf("carol's stats %+v", carol.E2EEStats()) })
	if st := carol.E2EEStats(); st.BadKeyMessages != 0 {
		t.Fatalf("carol refused key messages: %+v", st)
	}
	if n := len(kc); n != 0 {
		t.Fatalf("bob or carol saw %d key changes at a first meeting", n)
	}
	t.Logf("the page shows %s; bob and carol %s; bob could not open %d key message(s)", number, bobNumber, bob.E2EEStats().BadKeyMessages)
}
