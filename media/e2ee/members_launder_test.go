package e2ee

// Attacks from the review that broke bd5dcf8's rules, closed since: a
// ghost laundered into every roster through automatic re-admission, and
// a fresh key matched to a member by name only.

import (
	"fmt"
	"testing"
	"time"
)

// TestAttackIsolatedJoinerLaundersGhost: the isolated joiner (the
// documented limitation, TestAttackWithheldRootViewsGhostAdmitsJoiner)
// must not turn into a ghost for the whole call. carol joins; the node
// lists her alice, bob and mallory as present and withholds alice's and
// bob's messages to her. mallory's view and admission make her a member
// whose only member is mallory, and after the roots' time her views
// agree. alice, who sees carol waiting, admits her (consent for carol
// only). The node shows carol mallory leaving and coming back: carol
// must not admit mallory again (mallory's trust came from a root), so
// alice and bob never take mallory as a member.
func TestAttackIsolatedJoinerLaundersGhost(t *testing.T) {
	n := newHostile(t)
	var ea, eb, ec events
	alice := n.add("alice", nil, true, admitting(&ea, isoTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, isoTimeout))
	n.establish(t, alice, bob)
	g := n.ghost("mallory")
	carol := n.add("carol", nil, true, admitting(&ec, isoTimeout))
	g.s.SetMembers(peersOf(alice, bob, carol))
	n.show(carol, alice, bob, g.s)
	n.show(alice, bob, carol)
	n.show(bob, alice, carol)
	isolate := func(m relayed, to string) bool {
		return to == "carol" && (m.from == "alice" || m.from == "bob") ||
			m.from == "carol" && (to == "alice" || to == "bob") && msgType(m.msg) == "roster"
	}
	n.flush(isolate)
	_ = carol.HandleMessage(g.name, g.view(t, entryOf(carol)))
	_ = carol.HandleMessage(g.name, g.admit(t, "carol", carol.selfPub))
	n.flush(isolate)
	time.Sleep(isoTimeout * 3 / 2) // the roots' time is up: carol agrees with mallory
	n.flush(isolate)
	if !carol.RosterStatus().Agreed {
		t.Fatalf("setup: carol %+v", carol.RosterStatus())
	}
	if err := alice.Admit("carol"); err != nil {
		t.Fatal(err)
	}
	n.show(alice, bob, carol, g.s)
	n.show(bob, alice, carol, g.s)
	n.flush(isolate)
	n.show(carol, alice, bob)
	n.show(carol, alice, bob, g.s)
	n.flush(isolate)
	n.release(func(delivery) bool { return true }, nil)
	v := g.view(t, entryOf(alice), entryOf(bob), entryOf(carol))
	for _, s := range []*Session{alice, bob, carol} {
		_ = s.HandleMessage(g.name, v)
	}
	n.flush(nil)
	time.Sleep(2 * isoTimeout)
	n.flush(nil)
	got := map[string]int{}
	for _, s := range []*Session{alice, bob} {
		got[s.opts.Self] = n.ghostKeysFrom(g.name, s.opts.Self)
	}
	if got["alice"]+got["bob"] > 0 && !anyAlert([]*Session{alice, bob, carol}, &ea, &eb, &ec) {
		var by []string
		for _, s := range []*Session{alice, bob} {
			for _, p := range s.Participants() {
				if p.Identity == g.name {
					by = append(by, fmt.Sprintf("%s: %v by %q", s.opts.Self, p.State, p.By))
				}
			}
		}
		t.Errorf("mallory, admitted by nobody, holds alice's and bob's keys %v and nobody alerted (%v)", got, by)
	}
}

// TestAttackIsolatedRestartLaundersGhost: the same with no one's consent:
// carol was in the call and her app restarts (a new Session, the same
// identity key). The node keeps her new session isolated with mallory for
// the roots' time, then lists her to alice and bob, who admit her again
// on their own (they admitted her before), flaps mallory in her eyes, and
// lets everything through.
func TestAttackIsolatedRestartLaundersGhost(t *testing.T) {
	n := newHostile(t)
	var ea, eb, ec, ec2 events
	alice := n.add("alice", nil, true, admitting(&ea, isoTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, isoTimeout))
	n.establish(t, alice, bob)
	carol := n.add("carol", nil, true, admitting(&ec, isoTimeout))
	n.show(carol, alice, bob)
	n.show(alice, bob, carol)
	n.show(bob, alice, carol)
	n.flush(nil)
	if err := alice.Admit("carol"); err != nil {
		t.Fatal(err)
	}
	n.flush(nil)
	n.disconnect("carol")
	delete(n.away, "carol")
	n.show(alice, bob)
	n.show(bob, alice)
	n.flush(nil)
	g := n.ghost("mallory")
	carol2 := n.add("carol", carol.opts.Identity, true, admitting(&ec2, isoTimeout))
	g.s.SetMembers(peersOf(alice, bob, carol2))
	n.show(carol2, alice, bob, g.s)
	isolate := func(m relayed, to string) bool {
		return to == "carol" && (m.from == "alice" || m.from == "bob") ||
			m.from == "carol" && (to == "alice" || to == "bob") && msgType(m.msg) == "roster"
	}
	n.flush(isolate)
	_ = carol2.HandleMessage(g.name, g.view(t, entryOf(carol2)))
	_ = carol2.HandleMessage(g.name, g.admit(t, "carol", carol2.selfPub))
	time.Sleep(isoTimeout * 3 / 2)
	n.flush(isolate)
	n.show(alice, bob, carol2, g.s)
	n.show(bob, alice, carol2, g.s)
	n.flush(isolate)
	n.show(carol2, alice, bob)
	n.show(carol2, alice, bob, g.s)
	n.flush(isolate)
	n.release(func(delivery) bool { return true }, nil)
	v := g.view(t, entryOf(alice), entryOf(bob), entryOf(carol2))
	for _, s := range []*Session{alice, bob, carol2} {
		_ = s.HandleMessage(g.name, v)
	}
	n.flush(nil)
	time.Sleep(2 * isoTimeout)
	n.flush(nil)
	got := map[string]int{}
	for _, s := range []*Session{alice, bob} {
		got[s.opts.Self] = n.ghostKeysFrom(g.name, s.opts.Self)
	}
	if got["alice"]+got["bob"] > 0 && !anyAlert([]*Session{alice, bob, carol2}, &ea, &eb, &ec2) {
		t.Errorf("after carol's restart, mallory, admitted by nobody, holds alice's and bob's keys %v and nobody alerted", got)
	}
}

// TestAttackForcedReconnectLaundersGhost: the node cuts alice's
// connection in a call of alice and bob. She reconnects (Rejoin) and the
// node lists her only mallory: nobody she met is present, so all present
// are roots, as on a first join. mallory's view and admission make her a
// member and, after the roots' time, her views agree. The node then lists
// bob to her again, shows her mallory leaving and coming back, lists
// mallory to bob as a newcomer, and lets everything through. alice must
// not admit mallory again (a root), so bob never takes it as a member.
func TestAttackForcedReconnectLaundersGhost(t *testing.T) {
	n := newHostile(t)
	var ea, eb events
	alice := n.add("alice", nil, true, admitting(&ea, isoTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, isoTimeout))
	n.establish(t, alice, bob)
	g := n.ghost("mallory")
	g.s.SetMembers(peersOf(alice, bob))
	isolate := func(m relayed, to string) bool {
		return to == "alice" && m.from == "bob" || m.from == "alice" && to == "bob" && msgType(m.msg) != "key"
	}
	alice.Rejoin()
	n.show(alice, g.s)
	n.flush(isolate)
	_ = alice.HandleMessage(g.name, g.view(t, entryOf(alice)))
	_ = alice.HandleMessage(g.name, g.admit(t, "alice", alice.selfPub))
	time.Sleep(isoTimeout * 3 / 2)
	n.flush(isolate)
	if !alice.RosterStatus().Agreed {
		t.Fatalf("setup: alice %+v", alice.RosterStatus())
	}
	n.show(alice, g.s, bob)
	n.show(alice, bob)
	n.show(alice, g.s, bob)
	n.show(bob, alice, g.s)
	n.flush(isolate)
	n.release(func(delivery) bool { return true }, nil)
	v := g.view(t, entryOf(alice), entryOf(bob))
	for _, s := range []*Session{alice, bob} {
		_ = s.HandleMessage(g.name, v)
	}
	n.flush(nil)
	time.Sleep(2 * isoTimeout)
	n.flush(nil)
	if k := n.ghostKeysFrom(g.name, "bob"); k > 0 && !anyAlert([]*Session{alice, bob}, &ea, &eb) {
		var by string
		for _, p := range bob.Participants() {
			if p.Identity == g.name {
				by = fmt.Sprintf("%v by %q", p.State, p.By)
			}
		}
		t.Errorf("after a forced reconnect of alice, mallory (in bob's eyes: %s) holds %d of bob's keys and nobody alerted", by, k)
	}
}

// TestAttackFreshKeyByNameDuringHold: while keys are held, a fresh key
// after a leave goes only to members that had one of this sender's
// current keys. A node that cuts alice's connection and lists her, after
// the reconnect, a ghost under bob's name (its own key) and a silent
// second ghost (so alice holds for the roots' time) must not get alice's
// fresh key for the ghost: who had a key is recorded by name, identity
// key and session, not by name.
func TestAttackFreshKeyByNameDuringHold(t *testing.T) {
	n := newHostile(t)
	var ea, eb events
	alice := n.add("alice", nil, true, admitting(&ea, time.Hour))
	bob := n.add("bob", nil, true, admitting(&eb, time.Hour))
	n.establish(t, alice, bob)
	n.disconnect("bob")
	gid, _ := NewIdentity()
	fake := &ghost{name: "bob", id: gid, seq: uint64(time.Now().UnixMicro())}
	fake.s = n.add("bob", gid, false)
	fake.s.SetMembers(peersOf(alice))
	silent := n.ghost("trudy")
	alice.Rejoin()
	n.show(alice, fake.s, silent.s)
	_ = alice.HandleMessage("bob", fake.view(t, entryOf(alice)))
	_ = alice.HandleMessage("bob", fake.admit(t, "alice", alice.selfPub))
	n.flush(nil)
	if alice.RosterStatus().Agreed {
		t.Fatal("setup: alice agreed before the roots' time was up")
	}
	fake.s.mu.Lock()
	got := fake.s.stats.KeysReceived
	fake.s.mu.Unlock()
	if got > 0 {
		t.Errorf("alice holds her keys (roots' time not up: %+v), yet a ghost under bob's name opened %d of her keys", alice.RosterStatus(), got)
	}
}
