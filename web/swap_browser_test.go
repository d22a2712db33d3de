package web_test

// The node swaps a participant's key at a first meeting (docs/E2EE.md,
// "Threat model"): nothing automatic can tell a first key from a swapped
// one, but since members admit members ("Admission and rosters") the
// swapped participant is never a member for the victim: its own signed
// views and the admissions name its real key. So the victim's view of the
// call differs from the others', the roster alert rises, and the victim
// sends no media key until the views agree; its safety number, without
// the swapped participant, differs from the others'.
// signaling/client's TestE2EESwappedIdentityKeyChangesSafetyNumber plays
// it with a Go victim; here the victim is the call page.

import (
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/sotto-rtc/sotto/internal/hostilenode"
	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/signaling/client"
)

// bob and carol (Go clients) are in a call, on the real node. alice (the
// page, in a fresh browser profile: she has met nobody) joins through a
// node that shows her, as bob's, an announcement of its own (mallory's
// identity and session key). She gets no warning (a first key is taken as
// it comes). Before issue 12 she then sealed her key to the fake one, and
// bob counted a key message he could not open. Now "bob", under mallory's
// key, is no member for her: bob's views, signed with his real key, are
// not his in her eyes, and nobody admitted mallory's key. carol admits
// her (bob admits nobody: his admission would not count for her). She
// shows him as a waiting card, no tile; her view lacks him while carol's
// lists him, so the roster alert rises, blocking, on her page (carol's
// view lists bob) and on carol's client (alice's view lacks bob), and she
// sends no key message at all: none sealed to mallory's key, none to
// carol. bob and carol, untouched, cover everyone's real keys (the page's
// included) and show one safety number; hers, over alice and carol only,
// differs.
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

	// carol comes first and admits bob, and then alice; bob admits nobody
	// himself. His admission of alice, signed by his real key, would not
	// count for the page: it would only wait (no alert of its own, carol's
	// saying its view is missing), and carol, taking bob's admission,
	// would not admit it herself.
	kc := make(chan client.KeyChange, 8)
	carolAlerts := make(chan *client.RosterMismatchError, 16)
	carol := knownGoPeerWith(t, srv, srv.URL, room, "carol", nil, kc, withRosterAlerts(carolAlerts))
	bob := knownGoPeerWith(t, srv, srv.URL, room, "bob", nil, kc, admitsNobody)
	waitGoMember(t, "carol", carol, "bob")
	alice, _ := openKnownTab(t, newBrowser(t), node.URL, room, "alice")
	malloryHex := hex.EncodeToString(mallory.PublicKey())

	// The page's view: bob waits, under mallory's key (the swap
	// happened), a card and no tile, with no warning: to a browser that
	// never met him it is simply his key. Its safety number covers alice
	// and carol, the members.
	alice.waitFor(t, "bob, under the node's key, is a waiting card, no tile",
		fmt.Sprintf(`(() => { const a = window.sotto.state.admissions.bob;
			const sdk = window.sotto.call.admissions().find(x => x.identity === "bob");
			const card = document.querySelector('[data-candidate="bob"]');
			return !!a && a.state === "waiting" && a.key === %q && !!sdk && sdk.state === "waiting" &&
				!!card && card.dataset.admissionState === "waiting" && !document.querySelector('[data-identity="bob"]'); })()`, malloryHex),
		admissionDescribeJS)
	number := alice.waitSafetyNumber(t, []string{"alice", "carol"})
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
	if k, ok := page.Keys["bob"]; ok {
		t.Fatalf("the page's safety number covers bob, under %s (mallory's %s), whom no member admitted", k, malloryHex)
	}
	if len(page.KeyChanges) != 0 || page.Pending != 0 || page.Dialog {
		t.Fatalf("the page warns of a key change at a first meeting: %+v", page)
	}

	// The views differ: the roster alert on the page and on carol's
	// client, and the page's keys held.
	alice.waitRosterAlert(t, "carol", "bob", true, "carol's view lists bob, whom yours does not.")
	waitGoRosterAlert(t, "carol", carol, carolAlerts, "alice", "bob")
	alice.checkKeysHeld(t)

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
	if want := e2ee.SafetyNumber(room, []e2ee.Member{member("alice", page.Self), member("carol", direct["carol"])}); number != want {
		t.Fatalf("the page shows %q; the safety number over alice and carol is %q", number, want)
	}
	if direct["bob"] != coveredByGo(bob)["bob"] || direct["bob"] == malloryHex {
		t.Fatalf("carol covers bob under %s, bob himself %s (mallory's %s)", direct["bob"], coveredByGo(bob)["bob"], malloryHex)
	}

	// Nothing the page sent is a key message: none sealed to the fake
	// key, none to carol while the views differ. bob got nothing he
	// cannot open. A while on, still nothing.
	time.Sleep(2 * time.Second)
	alice.checkKeysHeld(t)
	if msgs := pageKeyBoxes(t, node, 0); len(msgs) != 0 {
		t.Fatalf("the page sent key messages while its view differed from carol's (boxes for %v); none may go to %q's swapped key", msgs, "bob")
	}
	if st := bob.E2EEStats(); st.BadKeyMessages != 0 {
		t.Fatalf("bob got key messages he cannot open: %+v", st)
	}
	if st := carol.E2EEStats(); st.BadKeyMessages != 0 {
		t.Fatalf("carol refused key messages: %+v", st)
	}
	if n := len(kc); n != 0 {
		t.Fatalf("bob or carol saw %d key changes at a first meeting", n)
	}
	t.Logf("the page shows %s over alice and carol, bob waiting under the node's key; bob and carol %s; roster alerts on the page and at carol", number, bobNumber)
}
