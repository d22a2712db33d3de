package e2ee

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// Attacks on admission by members and signed roster views (docs/E2EE.md,
// "Admission and rosters") by a hostile node. The test is the node: it
// tells each Session its own list of participants (SetMembers, per
// session), decides which relayed message reaches whom and when
// (hostile.flush with a withhold rule, hostile.release), replays what
// room.sent recorded, and runs ghosts: identities whose private keys it
// holds, each with a plain Session that opens whatever key is sealed to
// it. It never uses an honest member's Identity.
//
// The goal the node must never reach: a ghost holds an honest member's
// base key while no honest member raised the roster alert.

// hostile is the node: a room whose sessions are told nothing unless the
// test says so.
type hostile struct {
	*room
	t    *testing.T
	held []delivery // deliveries withheld so far, oldest first
	away map[string]*Session
}

type delivery struct {
	m  relayed
	to string
}

func newHostile(t *testing.T) *hostile {
	return &hostile{room: newRoom(t), t: t, away: map[string]*Session{}}
}

// add makes a session named name (identity id, or a fresh one) that
// receives relayed messages, and tells nobody about it.
func (n *hostile) add(name string, id *Identity, publish bool, opts ...func(*Options)) *Session {
	n.t.Helper()
	if id == nil {
		var err error
		if id, err = NewIdentity(); err != nil {
			n.t.Fatal(err)
		}
	}
	r := n.room
	o := Options{
		Room: "room", Self: name, Identity: id, Logger: quiet(),
		AckTimeout: time.Hour,
		Send: func(to []string, msg json.RawMessage) {
			r.mu.Lock()
			r.queue = append(r.queue, relayed{from: name, to: to, msg: msg})
			r.sent = append(r.sent, relayed{from: name, to: to, msg: msg})
			r.mu.Unlock()
		},
		KeyLog: func(e KeyEvent) {
			r.mu.Lock()
			r.logs[name] = append(r.logs[name], e)
			r.mu.Unlock()
		},
	}
	for _, f := range opts {
		f(&o)
	}
	s, err := NewSession(o)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(s.Close)
	r.mu.Lock()
	r.sessions[name] = s
	r.mu.Unlock()
	if publish {
		s.StartPublishing()
	}
	return s
}

// show tells s that others are in the call (and nobody else).
func (n *hostile) show(s *Session, others ...*Session) {
	s.SetMembers(peersOf(others...))
}

func peersOf(ss ...*Session) []Peer {
	var ps []Peer
	for _, s := range ss {
		ps = append(ps, Peer{Identity: s.opts.Self, PublicKey: s.PublicKey()})
	}
	return ps
}

// disconnect takes name out of the relay (what is sent meanwhile is lost
// to it); reconnect puts it back.
func (n *hostile) disconnect(name string) {
	n.mu.Lock()
	n.away[name] = n.sessions[name]
	delete(n.sessions, name)
	n.mu.Unlock()
}

func (n *hostile) reconnect(name string) {
	n.mu.Lock()
	n.sessions[name] = n.away[name]
	delete(n.away, name)
	n.mu.Unlock()
}

// flush delivers queued messages (and those they cause) until none is
// left, except the deliveries withhold names, which are kept in n.held.
// Refusals are ignored: a hostile node's traffic is refused a lot.
func (n *hostile) flush(withhold func(m relayed, to string) bool) {
	for {
		n.mu.Lock()
		if len(n.queue) == 0 {
			n.mu.Unlock()
			return
		}
		m := n.queue[0]
		n.queue = n.queue[1:]
		var to []string
		if m.to == nil {
			for name := range n.sessions {
				if name != m.from {
					to = append(to, name)
				}
			}
			slices.Sort(to)
		} else {
			to = m.to
		}
		var targets []*Session
		for _, name := range to {
			s := n.sessions[name]
			if s == nil {
				continue
			}
			if withhold != nil && withhold(m, name) {
				n.held = append(n.held, delivery{m, name})
				continue
			}
			targets = append(targets, s)
		}
		n.mu.Unlock()
		for _, s := range targets {
			_ = s.HandleMessage(m.from, m.msg)
		}
	}
}

// release delivers the withheld deliveries which says, in order, then
// flushes with withhold.
func (n *hostile) release(which func(delivery) bool, withhold func(m relayed, to string) bool) {
	var now []delivery
	n.held = slices.DeleteFunc(n.held, func(d delivery) bool {
		if which(d) {
			now = append(now, d)
			return true
		}
		return false
	})
	for _, d := range now {
		n.mu.Lock()
		s := n.sessions[d.to]
		n.mu.Unlock()
		if s != nil {
			_ = s.HandleMessage(d.m.from, d.m.msg)
		}
	}
	n.flush(withhold)
}

func msgType(m json.RawMessage) string {
	var k keyMessage
	_ = json.Unmarshal(m, &k)
	return k.Type
}

// ghost is an identity the node holds, with a plain session (no
// admission) that opens every key sealed to it.
type ghost struct {
	name string
	id   *Identity
	s    *Session
	seq  uint64
}

func (n *hostile) ghost(name string) *ghost {
	n.t.Helper()
	id, err := NewIdentity()
	if err != nil {
		n.t.Fatal(err)
	}
	return &ghost{name: name, id: id, s: n.add(name, id, false), seq: uint64(time.Now().UnixMicro())}
}

func entryOf(s *Session) RosterEntry { return RosterEntry{Name: s.opts.Self, Key: s.selfPub} }

// view is a roster view the ghost signs, listing itself and es.
func (g *ghost) view(t *testing.T, es ...RosterEntry) json.RawMessage {
	t.Helper()
	g.seq++
	es = append(es, RosterEntry{Name: g.name, Key: g.id.PublicKey()})
	str, err := SignRoster(g.id, RosterView{Room: "room", Member: g.name, MemberKey: g.id.PublicKey(), Seq: g.seq, Participants: es})
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := json.Marshal(keyMessage{Version: keyMessageVersion, Type: "roster", Roster: str})
	return msg
}

// admit is an admission of (name, key) the ghost signs.
func (g *ghost) admit(t *testing.T, name string, key []byte) json.RawMessage {
	t.Helper()
	str, err := Admit(g.id, Admission{Room: "room", Admitter: g.name, AdmitterKey: g.id.PublicKey(), Admitted: name, AdmittedKey: key, UnixMilli: time.Now().UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := json.Marshal(keyMessage{Version: keyMessageVersion, Type: "admit", Admission: str})
	return msg
}

// ghostKeysFrom is how many of sender's base keys name's session opened.
func (n *hostile) ghostKeysFrom(name, sender string) int {
	k := 0
	for _, e := range n.keys(name) {
		if e.Sender == sender {
			k++
		}
	}
	return k
}

// boxedTo reports whether sender ever sealed a key to name.
func (n *hostile) boxedTo(sender, name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.sent {
		var k keyMessage
		if m.from == sender && json.Unmarshal(m.msg, &k) == nil && k.Type == "key" {
			if _, ok := k.Boxes[name]; ok {
				return true
			}
		}
	}
	return false
}

func (e *events) count(k MembershipEventKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := 0
	for _, ev := range e.got {
		if ev.Kind == k {
			c++
		}
	}
	return c
}

// anyAlert reports whether any of ss shows the alert now, or any of evs
// ever reported a mismatch.
func anyAlert(ss []*Session, evs ...*events) bool {
	for _, s := range ss {
		if s.RosterStatus().Alert {
			return true
		}
	}
	for _, e := range evs {
		if e.count(EventRosterMismatch) > 0 {
			return true
		}
	}
	return false
}

// establish makes alice and bob an honest call through the node: alice
// alone first, bob admitted by alice, keys exchanged.
func (n *hostile) establish(t *testing.T, alice, bob *Session) {
	t.Helper()
	n.show(alice)
	n.show(bob, alice)
	n.show(alice, bob)
	n.flush(nil)
	if err := alice.Admit(bob.opts.Self); err != nil {
		t.Fatal(err)
	}
	n.flush(nil)
	for _, s := range []*Session{alice, bob} {
		if st := s.RosterStatus(); !st.Admitted || !st.Agreed {
			t.Fatalf("%s before the attack: %+v", s.opts.Self, st)
		}
	}
	if n.ghostKeysFrom("bob", "alice") == 0 || n.ghostKeysFrom("alice", "bob") == 0 {
		t.Fatal("alice and bob did not exchange keys")
	}
}

const attackTimeout = 100 * time.Millisecond

// isoTimeout is the roster timeout of the isolation attacks: long enough
// that the moment of disagreement they cause stays well within it.
const isoTimeout = 600 * time.Millisecond

// settle waits well past the roster timeout.
func settle() { time.Sleep(4 * attackTimeout) }

// ---------------------------------------------------------------------
// Attacks the review found at fddc1d2 (each failed there), closed since
// (bd5dcf8), and one limitation the docs now describe.
// ---------------------------------------------------------------------

// TestAttackWithheldRootViewsGhostAdmitsJoiner documents a limitation
// (docs/E2EE.md, "What this does not cover"). alice and bob are in a
// call. carol joins; the node lists her alice, bob and a ghost "mallory"
// as present (her roots), and withholds every message of alice and bob to
// her for good. mallory sends carol a view {carol, mallory} and admits
// her; once the roots have had their time, carol's only member is
// mallory, her views agree, and her keys go to mallory, with no alert
// anywhere (a waiting participant cannot prove it waits, so a member
// whose view is withheld looks the same). What makes it visible, and what
// this test holds to: carol shows alice and bob as waiting, never as
// members, and mallory as her only member; alice's and bob's keys never
// reach mallory.
func TestAttackWithheldRootViewsGhostAdmitsJoiner(t *testing.T) {
	n := newHostile(t)
	var ea, eb, ec events
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, attackTimeout))
	n.establish(t, alice, bob)

	g := n.ghost("mallory")
	carol := n.add("carol", nil, true, admitting(&ec, attackTimeout))
	n.show(carol, alice, bob, g.s)
	n.show(alice, bob, carol)
	n.show(bob, alice, carol)
	g.s.SetMembers(peersOf(alice, bob, carol))
	withhold := func(m relayed, to string) bool { return to == "carol" && (m.from == "alice" || m.from == "bob") }
	n.flush(withhold)
	_ = carol.HandleMessage(g.name, g.view(t, entryOf(carol)))
	_ = carol.HandleMessage(g.name, g.admit(t, "carol", carol.selfPub))
	n.flush(withhold)
	settle()
	n.flush(withhold)

	for _, p := range carol.Participants() {
		switch p.Identity {
		case "alice", "bob":
			if p.State == StateMember {
				t.Errorf("carol shows %s as a member without a view of theirs", p.Identity)
			}
		case g.name:
			if p.State != StateMember {
				t.Errorf("setup: mallory is %v to carol", p.State)
			}
		}
	}
	for _, s := range []string{"alice", "bob"} {
		if n.boxedTo(s, g.name) {
			t.Errorf("%s sealed a key to mallory", s)
		}
	}
	t.Logf("limitation: mallory holds %d of carol's keys; alerts: %v", n.ghostKeysFrom(g.name, "carol"), anyAlert([]*Session{alice, bob, carol}, &ea, &eb, &ec))
}

// TestAttackDelayedRootViewsKeyBeforeAlert: as above, but the node only
// delays alice's and bob's messages to carol until mallory's view and
// admission have made carol a member. carol's first key goes to mallory at
// once; when alice's and bob's views arrive the views disagree and carol
// alerts, but the key mallory holds stays carol's current key (no new
// key goes out while views disagree), so mallory keeps decrypting carol's
// frames under the alert. The safe outcome: no key to a ghost at all.
//
// Failed at fddc1d2; holds since bd5dcf8 (a joiner waits for its roots' views).
func TestAttackDelayedRootViewsKeyBeforeAlert(t *testing.T) {
	n := newHostile(t)
	var ea, eb, ec events
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, attackTimeout))
	n.establish(t, alice, bob)

	g := n.ghost("mallory")
	carol := n.add("carol", nil, true, admitting(&ec, attackTimeout))
	n.show(carol, alice, bob, g.s)
	n.show(alice, bob, carol)
	n.show(bob, alice, carol)
	g.s.SetMembers(peersOf(alice, bob, carol))
	withhold := func(m relayed, to string) bool { return to == "carol" && (m.from == "alice" || m.from == "bob") }
	n.flush(withhold)
	_ = carol.HandleMessage(g.name, g.view(t, entryOf(carol)))
	_ = carol.HandleMessage(g.name, g.admit(t, "carol", carol.selfPub))
	n.flush(withhold)
	// Now the honest messages arrive, and alice admits carol too.
	n.release(func(delivery) bool { return true }, nil)
	if err := alice.Admit("carol"); err != nil {
		t.Fatal(err)
	}
	n.flush(nil)
	ec.waitFor(t, EventRosterMismatch)
	wire := mustEncrypt(t, carol, CodecOpus, opusFrame)
	if _, _, err := g.s.DecryptFrame("carol", CodecOpus, wire); err == nil {
		t.Errorf("carol alerted, but mallory still decrypts carol's frames (carol sealed %d keys to mallory)", n.ghostKeysFrom(g.name, "carol"))
	}
}

// TestAttackForcedReconnectWithheldViews: the same as
// TestAttackWithheldRootViewsGhostAdmitsJoiner, against a member of a
// running call rather than a joiner: the node closes alice's connection,
// her client reconnects and calls Rejoin, and the node lists her {bob,
// mallory}, withholding bob's messages to her. bob is not told alice
// left, and alice's new views are kept from him, so he keeps her last
// view (which agrees with his). mallory's view and admission make alice a
// member whose only member is mallory: her fresh key goes to mallory, and
// nobody alerts.
//
// Failed at fddc1d2; holds since bd5dcf8 (after a reconnect only people met before are roots).
func TestAttackForcedReconnectWithheldViews(t *testing.T) {
	n := newHostile(t)
	var ea, eb events
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, attackTimeout))
	n.establish(t, alice, bob)
	g := n.ghost("mallory")
	g.s.SetMembers(peersOf(alice, bob))
	alice.Rejoin()
	n.show(alice, bob, g.s)
	cut := func(m relayed, to string) bool {
		return (m.from == "bob" && to == "alice") || (m.from == "alice" && to == "bob" && msgType(m.msg) != "key")
	}
	n.flush(cut)
	_ = alice.HandleMessage(g.name, g.view(t, entryOf(alice)))
	_ = alice.HandleMessage(g.name, g.admit(t, "alice", alice.selfPub))
	n.flush(cut)
	settle()
	n.flush(cut)
	if k := n.ghostKeysFrom(g.name, "alice"); k > 0 && !anyAlert([]*Session{alice, bob}, &ea, &eb) {
		t.Errorf("after a forced reconnect mallory holds %d of alice's keys and nobody alerted (alice: %+v, bob: %+v)", k, alice.RosterStatus(), bob.RosterStatus())
	}
}

// TestAttackRootLaunderedThroughJoinersView: a ghost that is a root for
// one joiner becomes a member for everyone, through the rule that a
// member's view counts as its admission of everyone it lists. alice and
// bob are in a call; carol joins and the node lists her alice, bob and
// the ghost mallory as present. Every honest message is delivered.
// mallory sends carol a view and admits her; carol takes alice, bob and
// mallory as members (roots with views) and lists all three in her view.
// Her views disagree with alice's and bob's, so she holds her keys: so
// far the documented defence. Then alice admits carol (consent for
// carol, nobody else), bob takes that admission, and the node lists
// mallory to both as a newcomer and hands them carol's view (the one
// carol signed before: it was dropped while carol was waiting, and its
// view_seq was never recorded). Both now count carol a member whose view
// lists mallory: mallory is admitted "by carol" in their eyes, every view
// lists {alice, bob, carol, mallory}, they agree, and everyone's keys go
// to mallory, whom no member ever admitted. No alert.
//
// Holds at fddc1d2 and since; it failed on a draft that let a member's view admit everyone it lists.
func TestAttackRootLaunderedThroughJoinersView(t *testing.T) {
	n := newHostile(t)
	var ea, eb, ec events
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, attackTimeout))
	n.establish(t, alice, bob)
	g := n.ghost("mallory")
	carol := n.add("carol", nil, true, admitting(&ec, attackTimeout))
	n.show(carol, alice, bob, g.s)
	n.show(alice, bob, carol)
	n.show(bob, alice, carol)
	g.s.SetMembers(peersOf(alice, bob, carol))
	n.flush(nil)
	_ = carol.HandleMessage(g.name, g.view(t, entryOf(alice), entryOf(bob), entryOf(carol)))
	_ = carol.HandleMessage(g.name, g.admit(t, "carol", carol.selfPub))
	n.flush(nil)
	if err := alice.Admit("carol"); err != nil {
		t.Fatal(err)
	}
	n.flush(nil)
	// mallory is listed to alice and bob now, and carol's views are
	// played to them again.
	n.show(alice, bob, carol, g.s)
	n.show(bob, alice, carol, g.s)
	n.mu.Lock()
	var carolViews []json.RawMessage
	for _, m := range n.sent {
		if m.from == "carol" && msgType(m.msg) == "roster" {
			carolViews = append(carolViews, m.msg)
		}
	}
	n.mu.Unlock()
	for _, v := range carolViews {
		_ = alice.HandleMessage("carol", v)
		_ = bob.HandleMessage("carol", v)
	}
	_ = alice.HandleMessage(g.name, g.view(t, entryOf(alice), entryOf(bob), entryOf(carol)))
	_ = bob.HandleMessage(g.name, g.view(t, entryOf(alice), entryOf(bob), entryOf(carol)))
	n.flush(nil)
	settle()
	n.flush(nil)
	honest := []*Session{alice, bob, carol}
	got := map[string]int{}
	for _, s := range honest {
		got[s.opts.Self] = n.ghostKeysFrom(g.name, s.opts.Self)
	}
	if got["alice"]+got["bob"]+got["carol"] > 0 && !anyAlert(honest, &ea, &eb, &ec) {
		t.Errorf("mallory, admitted by nobody, holds keys %v and nobody alerted (alice sees %+v)", got, alice.Participants())
	}
}

// TestAttackRootLaunderedNaturalOrder: the laundering above needs no
// replay and no dropped message. The node lists the ghost mallory to
// carol, a joiner, as present (with a view of its own) and to alice and
// bob as a newcomer. alice admits carol (consent for carol only); carol,
// now admitted, signs her first view, which lists her members alice, bob
// and mallory, and it reaches alice and bob after alice's admission, as
// every message does. Each counts carol a member, and her view admits
// mallory "by carol". Every view then lists the four, and every key goes
// to mallory. No alert.
//
// Holds at fddc1d2 and since; it failed on the same draft.
func TestAttackRootLaunderedNaturalOrder(t *testing.T) {
	n := newHostile(t)
	var ea, eb, ec events
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, attackTimeout))
	n.establish(t, alice, bob)
	g := n.ghost("mallory")
	carol := n.add("carol", nil, true, admitting(&ec, attackTimeout))
	g.s.SetMembers(peersOf(alice, bob, carol))
	n.show(carol, alice, bob, g.s)
	n.show(alice, bob, carol, g.s)
	n.show(bob, alice, carol, g.s)
	v := g.view(t, entryOf(alice), entryOf(bob), entryOf(carol))
	_ = carol.HandleMessage(g.name, v)
	n.flush(nil)
	if err := alice.Admit("carol"); err != nil {
		t.Fatal(err)
	}
	n.flush(nil)
	// mallory's view, for alice's and bob's roster comparison.
	v = g.view(t, entryOf(alice), entryOf(bob), entryOf(carol))
	_ = alice.HandleMessage(g.name, v)
	_ = bob.HandleMessage(g.name, v)
	n.flush(nil)
	settle()
	n.flush(nil)
	honest := []*Session{alice, bob, carol}
	got := map[string]int{}
	for _, s := range honest {
		got[s.opts.Self] = n.ghostKeysFrom(g.name, s.opts.Self)
	}
	if got["alice"]+got["bob"]+got["carol"] > 0 && !anyAlert(honest, &ea, &eb, &ec) {
		var by []string
		for _, s := range []*Session{alice, bob} {
			for _, p := range s.Participants() {
				if p.Identity == g.name {
					by = append(by, fmt.Sprintf("%s: %v by %q", s.opts.Self, p.State, p.By))
				}
			}
		}
		t.Errorf("mallory, admitted by nobody, holds keys %v and nobody alerted (%v)", got, by)
	}
}

// TestAttackRootLaunderedByReadmission: the same laundering through the
// rule that a participant admitted once is admitted again when it comes
// back (it holds at fddc1d2, which has no view-as-admission rule). carol
// joins; the node lists her alice, bob and mallory as present, and
// mallory's view makes it a member in her eyes (and remembered, like
// anyone who became a member). alice admits carol. The node then shows
// carol mallory leaving and coming back with the same announcement:
// carol, admitted now, admits mallory again on her own, with a signed
// admission sent to everyone. alice and bob, to whom the node lists
// mallory as a newcomer, take it (carol is their member): mallory is a
// member "by carol" for all, every view lists the four, and every key
// goes to mallory. No alert, and no member ever chose to admit mallory.
//
// Failed at fddc1d2; holds since bd5dcf8 (a root proven by its own view only is not re-admitted).
func TestAttackRootLaunderedByReadmission(t *testing.T) {
	n := newHostile(t)
	var ea, eb, ec events
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, attackTimeout))
	n.establish(t, alice, bob)
	g := n.ghost("mallory")
	carol := n.add("carol", nil, true, admitting(&ec, attackTimeout))
	g.s.SetMembers(peersOf(alice, bob, carol))
	n.show(carol, alice, bob, g.s)
	n.show(alice, bob, carol, g.s)
	n.show(bob, alice, carol, g.s)
	_ = carol.HandleMessage(g.name, g.view(t, entryOf(alice), entryOf(bob), entryOf(carol)))
	n.flush(nil)
	if err := alice.Admit("carol"); err != nil {
		t.Fatal(err)
	}
	n.flush(nil)
	// mallory "leaves" and "comes back", in carol's eyes only.
	n.show(carol, alice, bob)
	n.show(carol, alice, bob, g.s)
	n.flush(nil)
	v := g.view(t, entryOf(alice), entryOf(bob), entryOf(carol))
	for _, s := range []*Session{alice, bob, carol} {
		_ = s.HandleMessage(g.name, v)
	}
	n.flush(nil)
	settle()
	n.flush(nil)
	honest := []*Session{alice, bob, carol}
	got := map[string]int{}
	for _, s := range honest {
		got[s.opts.Self] = n.ghostKeysFrom(g.name, s.opts.Self)
	}
	if got["alice"]+got["bob"]+got["carol"] > 0 && !anyAlert(honest, &ea, &eb, &ec) {
		var by []string
		for _, s := range []*Session{alice, bob} {
			for _, p := range s.Participants() {
				if p.Identity == g.name {
					by = append(by, fmt.Sprintf("%s: %v by %q", s.opts.Self, p.State, p.By))
				}
			}
		}
		t.Errorf("mallory, admitted by nobody, holds keys %v and nobody alerted (%v)", got, by)
	}
}

// TestAttackRootLaunderedAfterRestart: the laundering with no one's
// consent at all. alice, bob and carol are in a call. carol's app
// restarts (a new Session, the same identity key, as a page reload does).
// alice and bob see her leave and come back and admit her again on their
// own (remembered). The node lists carol's new session alice, bob and
// mallory as present; mallory's view makes it a member in her eyes. Then
// the node shows carol mallory leaving and coming back: carol admits it
// again on her own, signed, and alice and bob take her admission.
//
// Failed at fddc1d2; holds since bd5dcf8.
func TestAttackRootLaunderedAfterRestart(t *testing.T) {
	n := newHostile(t)
	var ea, eb, ec, ec2 events
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, attackTimeout))
	n.establish(t, alice, bob)
	carol := n.add("carol", nil, true, admitting(&ec, attackTimeout))
	n.show(carol, alice, bob)
	n.show(alice, bob, carol)
	n.show(bob, alice, carol)
	n.flush(nil)
	if err := alice.Admit("carol"); err != nil {
		t.Fatal(err)
	}
	n.flush(nil)
	// carol restarts.
	n.disconnect("carol")
	delete(n.away, "carol")
	n.show(alice, bob)
	n.show(bob, alice)
	n.flush(nil)
	g := n.ghost("mallory")
	carol2 := n.add("carol", carol.opts.Identity, true, admitting(&ec2, attackTimeout))
	g.s.SetMembers(peersOf(alice, bob, carol2))
	n.show(carol2, alice, bob, g.s)
	_ = carol2.HandleMessage(g.name, g.view(t, entryOf(alice), entryOf(bob), entryOf(carol2)))
	n.show(alice, bob, carol2, g.s)
	n.show(bob, alice, carol2, g.s)
	n.flush(nil)
	if !carol2.RosterStatus().Admitted {
		t.Fatalf("setup: carol's new session is not admitted again: %+v", carol2.RosterStatus())
	}
	n.show(carol2, alice, bob)
	n.show(carol2, alice, bob, g.s)
	n.flush(nil)
	v := g.view(t, entryOf(alice), entryOf(bob), entryOf(carol2))
	for _, s := range []*Session{alice, bob, carol2} {
		_ = s.HandleMessage(g.name, v)
	}
	n.flush(nil)
	settle()
	n.flush(nil)
	honest := []*Session{alice, bob, carol2}
	got := map[string]int{}
	for _, s := range honest {
		got[s.opts.Self] = n.ghostKeysFrom(g.name, s.opts.Self)
	}
	if got["alice"]+got["bob"]+got["carol"] > 0 && !anyAlert(honest, &ea, &eb, &ec2) {
		t.Errorf("after a restart of carol's app, mallory, admitted by nobody, holds keys %v and nobody alerted", got)
	}
}

// TestAttackHeldMemberNewcomerViewDropped: an honest run. bob's client
// holds alice out (her key changed; his user has not accepted yet). carol
// joins and alice admits her; bob keeps alice's admission until he
// accepts alice. carol's view, sent once she was admitted, reaches bob
// while carol still waits in his eyes, and is dropped (a newcomer's view
// is not kept). bob accepts alice: her admission counts, carol is a
// member whose view never comes again (her set does not change), and bob
// alerts "carol sent no view" and holds his keys for the rest of the call.
//
// It failed on a draft that dropped a waiting participant's view.
func TestAttackHeldMemberNewcomerViewDropped(t *testing.T) {
	n := newHostile(t)
	var ea, eb, ec events
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, attackTimeout))
	n.establish(t, alice, bob)
	carol := n.add("carol", nil, true, admitting(&ec, attackTimeout))
	heldAlice := Peer{Identity: "alice", PublicKey: alice.PublicKey(), Held: true}
	bob.SetMembers([]Peer{heldAlice})
	n.flush(nil)
	n.show(carol, alice, bob)
	n.show(alice, bob, carol)
	bob.SetMembers(append([]Peer{heldAlice}, peersOf(carol)...))
	n.flush(nil)
	if err := alice.Admit("carol"); err != nil {
		t.Fatal(err)
	}
	n.flush(nil)
	// bob's user accepts alice's key.
	heldAlice.Held = false
	bob.SetMembers(append([]Peer{heldAlice}, peersOf(carol)...))
	n.flush(nil)
	settle()
	n.flush(nil)
	for _, s := range []*Session{alice, bob, carol} {
		if st := s.RosterStatus(); !st.Admitted || !st.Agreed || st.Alert {
			t.Errorf("%s: %+v", s.opts.Self, st)
		}
	}
}

// TestAttackHonestRejoinAmongNewPeople: an honest run. alice and bob
// are in a call; alice's connection drops for a while; bob leaves and dave
// joins (alone, so a member at once), then erin, whom dave admits. alice
// reconnects (Rejoin) into a call of people she has never met: dave and
// erin admit her (she waits in their eyes), and she must end admitted,
// agreed and without an alert, as a first join would.
//
// It failed on a draft whose reconnect took only people met before as roots, even when none of them was there.
func TestAttackHonestRejoinAmongNewPeople(t *testing.T) {
	h := newHonestCall(t)
	a := h.join("alice", nil, true)
	h.list()
	h.run()
	h.join("bob", nil, true)
	h.list()
	h.run()
	delete(h.in, "alice")
	h.n.disconnect("alice")
	h.list()
	h.run()
	h.leave("bob")
	h.list()
	h.run()
	h.join("dave", nil, true)
	h.list()
	h.run()
	h.join("erin", nil, true)
	h.list()
	h.run()
	h.n.reconnect("alice")
	h.in["alice"] = a
	a.Rejoin()
	h.list()
	h.run()
	h.check("a rejoin among people met after the reconnect")
}

// TestAttackRejoinMakesGhostARootForEveryone: alice and bob are in a
// genuine call (alice admitted bob, views agree, keys exchanged). The
// node restarts, or just closes both connections: both clients reconnect
// and call Rejoin, which forgets who was a member and takes the next list
// as roots. The node lists to alice {bob, mallory} and to bob {alice,
// mallory}, with their real announcements. mallory sends both a view
// {alice, bob, mallory} and admits both; every honest message is
// delivered. alice and bob each take mallory (a root with a view) as a
// member, are admitted by it, take each other (roots whose views then
// arrive) as members, and all three views list {alice, bob, mallory}:
// agreed, keys flow to mallory from both, and no alert ever rises. No
// member ever admitted mallory, against "What it cannot do: get a key to
// anyone no accepted member admitted"; the call had real members who knew
// each other before the reconnect.
//
// Failed at fddc1d2; holds since bd5dcf8.
func TestAttackRejoinMakesGhostARootForEveryone(t *testing.T) {
	n := newHostile(t)
	var ea, eb events
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, attackTimeout))
	n.establish(t, alice, bob)

	g := n.ghost("mallory")
	alice.Rejoin()
	bob.Rejoin()
	n.show(alice, bob, g.s)
	n.show(bob, alice, g.s)
	g.s.SetMembers(peersOf(alice, bob))
	v := g.view(t, entryOf(alice), entryOf(bob))
	for _, s := range []*Session{alice, bob} {
		_ = s.HandleMessage(g.name, v)
		_ = s.HandleMessage(g.name, g.admit(t, s.opts.Self, s.selfPub))
	}
	n.flush(nil)
	settle()
	n.flush(nil)

	honest := []*Session{alice, bob}
	ka, kb := n.ghostKeysFrom(g.name, "alice"), n.ghostKeysFrom(g.name, "bob")
	if ka+kb > 0 && !anyAlert(honest, &ea, &eb) {
		t.Errorf("after a reconnect mallory, admitted by nobody, holds %d of alice's and %d of bob's keys, and nobody alerted (alice: %+v, bob: %+v)",
			ka, kb, alice.RosterStatus(), bob.RosterStatus())
	}
}

// TestAttackRejoinKeepsStaleMismatchClock: an honest run. alice, bob and
// carol are in a call; alice's views briefly disagree (bob's view of
// carol is on its way) when alice's connection drops; she reconnects
// within the roster timeout and calls Rejoin. bob and carol re-admit her;
// bob's admission and view come first and carol's view a moment later
// (well within the roster timeout): a transient disagreement. Rejoin kept
// the time the old disagreement began (admission.since) and its running
// timer, so the alert rises almost at once: a false alert in an honest
// run. (Rejoin also keeps a raised alert, so one raised during the
// disconnection is reported again at the first transient mismatch.)
//
// Failed at fddc1d2; holds since bd5dcf8 (Rejoin restarts the clock).
func TestAttackRejoinKeepsStaleMismatchClock(t *testing.T) {
	const timeout = 800 * time.Millisecond
	n := newHostile(t)
	var ea, eb, ec events
	alice := n.add("alice", nil, true, admitting(&ea, timeout))
	bob := n.add("bob", nil, true, admitting(&eb, timeout))
	n.establish(t, alice, bob)
	carol := n.add("carol", nil, true, admitting(&ec, timeout))
	n.show(carol, alice, bob)
	n.show(alice, bob, carol)
	n.show(bob, alice, carol)
	// bob's messages to alice are slow: alice admits carol and, for a
	// moment, bob's view does not list carol yet.
	slow := func(m relayed, to string) bool { return m.from == "bob" && to == "alice" }
	n.flush(slow)
	if err := alice.Admit("carol"); err != nil {
		t.Fatal(err)
	}
	n.flush(slow)
	if alice.RosterStatus().Agreed {
		t.Fatal("setup: alice's views agree already")
	}
	// alice's connection drops; what was on its way to her is lost.
	n.held = nil
	n.disconnect("alice")
	n.show(bob, carol)
	n.show(carol, bob)
	n.flush(nil)
	time.Sleep(timeout * 3 / 4)
	// She is back within the timeout.
	n.reconnect("alice")
	mark := len(ea.kinds())
	alice.Rejoin()
	n.show(alice, bob, carol)
	n.show(bob, alice, carol)
	n.show(carol, alice, bob)
	// alice was a root for bob and carol (there when they joined), so
	// neither admits her again on its own: a root's trust came from the
	// node's list. bob admits her by hand.
	if err := bob.Admit("alice"); err != nil {
		t.Fatal(err)
	}
	late := func(m relayed, to string) bool { return m.from == "carol" && to == "alice" }
	n.flush(late)
	time.Sleep(timeout / 2) // carol's view comes half a timeout after bob's
	n.release(func(delivery) bool { return true }, nil)
	time.Sleep(2 * timeout)
	if st := alice.RosterStatus(); !st.Admitted || !st.Agreed {
		t.Fatalf("alice after rejoining: %+v", st)
	}
	if ks := ea.kinds()[mark:]; slices.Contains(ks, EventRosterMismatch) {
		t.Errorf("honest reconnect, views disagreeing for %v with a %v timeout: alice alerted (events since Rejoin %v)", timeout/2, timeout, ks)
	}
}

// TestAttackRememberedGrowsWithoutBound: the node shows a member with an
// AdmitAll-like policy (a bot) one made-up newcomer after another; each is
// admitted and leaves. Every (identity, key) ever admitted stays in
// admission.remembered for the session's life, so the node grows it
// without bound (the key replay records stop at maxSenderRecords; this
// does not).
//
// Failed at fddc1d2; holds since bd5dcf8.
func TestAttackRememberedGrowsWithoutBound(t *testing.T) {
	n := newHostile(t)
	var ea events
	alice := n.add("alice", nil, false, admitting(&ea, time.Hour))
	n.show(alice)
	sk, err := NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	const rounds = maxSenderRecords + 200
	for i := range rounds {
		id, err := NewIdentity()
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("g%d", i)
		alice.SetMembers([]Peer{{Identity: name, PublicKey: Announce(id, sk)}})
		if err := alice.Admit(name); err != nil {
			t.Fatal(err)
		}
		alice.SetMembers(nil)
		n.takeQueue()
	}
	alice.mu.Lock()
	got := len(alice.adm.remembered)
	alice.mu.Unlock()
	if got > maxSenderRecords {
		t.Errorf("alice remembers %d admitted participants after %d made-up ones came and went; want a bound (at most %d)", got, rounds, maxSenderRecords)
	}
}

// TestAttackViewReplayAfterRecordFlood: the node lists alice 4096
// made-up newcomers, each sending one view (they wait; their views are
// kept and their view_seq recorded). viewSeqs is then full, and a real
// member met afterwards would get no record: the node replays bob's view
// after he sent it and alice must refuse it, as rule 4 says ("a view_seq
// above the highest taken from that name and key in this session").
//
// Failed at fddc1d2; holds since bd5dcf8 (records of those not listed make room).
func TestAttackViewReplayAfterRecordFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("4096 identities")
	}
	n := newHostile(t)
	var ea, eb events
	alice := n.add("alice", nil, true, admitting(&ea, time.Hour))
	n.show(alice)
	sk, err := NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	var peers []Peer
	var gs []*ghost
	for i := range maxSenderRecords {
		id, err := NewIdentity()
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("g%04d", i)
		peers = append(peers, Peer{Identity: name, PublicKey: Announce(id, sk)})
		gs = append(gs, &ghost{name: name, id: id, seq: 1})
	}
	alice.SetMembers(peers)
	for _, g := range gs {
		if err := alice.HandleMessage(g.name, g.view(t)); err != nil {
			t.Fatal(err)
		}
	}
	alice.SetMembers(nil)
	n.takeQueue()
	bob := n.add("bob", nil, true, admitting(&eb, time.Hour))
	n.show(bob, alice)
	n.show(alice, bob)
	n.flush(nil)
	if err := alice.Admit("bob"); err != nil {
		t.Fatal(err)
	}
	n.flush(nil)
	var bobViews []json.RawMessage
	for _, m := range n.sent {
		if m.from == "bob" && msgType(m.msg) == "roster" {
			bobViews = append(bobViews, m.msg)
		}
	}
	if len(bobViews) == 0 {
		t.Fatal("bob sent no view")
	}
	// bob's view played again.
	if err := alice.HandleMessage("bob", bobViews[0]); err == nil {
		t.Errorf("alice took a replayed older view of bob (%d views of bob; viewSeqs holds %d)", len(bobViews), len(alice.adm.viewSeqs))
	}
}

// TestAttackHeldAdmitterAdmissionExpires: an honest run. bob's store
// knows alice under another key (she reinstalled): his client holds her
// out (Peer.Held) until his user accepts the change. alice admits bob; her
// admission waits in bob's pending list, since a held member's admissions
// do not count. bob's user accepts after three minutes: the admission is
// past its two-minute window by then and is dropped, nobody sends
// another, and bob waits for ever, while alice, who counts bob a member
// whose view never comes, alerts and holds every new key of hers for the
// rest of the call (no fresh key after a leave either).
//
// Failed at fddc1d2; holds since bd5dcf8 (a pending admission's time is checked when it comes).
func TestAttackHeldAdmitterAdmissionExpires(t *testing.T) {
	n := newHostile(t)
	var ea, eb events
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	n.show(alice)
	var clockMu sync.Mutex
	var offset time.Duration
	now := func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		return time.Now().Add(offset)
	}
	bob := n.add("bob", nil, true, func(o *Options) {
		o.Admission = &AdmissionOptions{OnEvent: eb.add, RosterTimeout: attackTimeout, Now: now}
	})
	held := []Peer{{Identity: "alice", PublicKey: alice.PublicKey(), Held: true}}
	bob.SetMembers(held)
	n.show(alice, bob)
	n.flush(nil)
	if err := alice.Admit("bob"); err != nil {
		t.Fatal(err)
	}
	n.flush(nil)
	if bob.RosterStatus().Admitted {
		t.Fatal("setup: bob took a held member's admission")
	}
	// bob's user accepts alice's new key three minutes later.
	clockMu.Lock()
	offset = 3 * time.Minute
	clockMu.Unlock()
	held[0].Held = false
	bob.SetMembers(held)
	n.flush(nil)
	settle()
	n.flush(nil)
	if st := bob.RosterStatus(); !st.Admitted {
		t.Errorf("bob accepted alice's key after 3 minutes and is still waiting: %+v", st)
	}
	if st := alice.RosterStatus(); !st.Agreed || st.Alert {
		t.Errorf("alice, who admitted bob: %+v", st)
	}
}

// TestAttackLeaverKeepsKeyWhileViewDropped: eve was admitted (a guest the
// members let in) and leaves; the node, colluding with her, keeps
// forwarding alice's media to her and drops bob's next view to alice.
// alice's latest view of bob still lists eve, so the views disagree and
// the fresh key a leave calls for is held back until they agree, which
// they never do: eve decrypts alice's frames after leaving, for as long
// as the call lasts. alice alerts, so it is not silent, but the attack
// table's "Keep a leaver subscribed: the leaver sees only frames under
// keys it never received" no longer holds under admission.
//
// Failed at fddc1d2; holds since bd5dcf8 (a fresh key after a leave goes even while views disagree).
func TestAttackLeaverKeepsKeyWhileViewDropped(t *testing.T) {
	n := newHostile(t)
	var ea, eb, ee events
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, attackTimeout))
	n.establish(t, alice, bob)
	eve := n.add("eve", nil, false, admitting(&ee, attackTimeout))
	n.show(eve, alice, bob)
	n.show(alice, bob, eve)
	n.show(bob, alice, eve)
	n.flush(nil)
	if err := alice.Admit("eve"); err != nil {
		t.Fatal(err)
	}
	n.flush(nil)
	if _, _, err := eve.DecryptFrame("alice", CodecOpus, mustEncrypt(t, alice, CodecOpus, opusFrame)); err != nil {
		t.Fatalf("setup: eve cannot read alice: %v", err)
	}
	// eve leaves; bob's views to alice are dropped from now on.
	n.show(alice, bob)
	n.show(bob, alice)
	n.flush(func(m relayed, to string) bool { return m.from == "bob" && to == "alice" && msgType(m.msg) == "roster" })
	settle()
	if _, _, err := eve.DecryptFrame("alice", CodecOpus, mustEncrypt(t, alice, CodecOpus, opusFrame)); err == nil {
		t.Errorf("eve left and still decrypts alice's frames (alice: %+v)", alice.RosterStatus())
	}
}

// ---------------------------------------------------------------------
// Attacks that are defended (they pass, and document the defence).
// ---------------------------------------------------------------------

// TestAttackGhostRootWithHonestViewsAlerts: the documented case. carol's
// roots are alice, bob and the ghost mallory; alice's and bob's views
// reach carol first, then mallory's view and admission. carol's members
// are {alice, bob, mallory}; alice's and bob's views do not list mallory,
// so carol sends no key and alerts.
func TestAttackGhostRootWithHonestViewsAlerts(t *testing.T) {
	n := newHostile(t)
	var ea, eb, ec events
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, attackTimeout))
	n.establish(t, alice, bob)
	g := n.ghost("mallory")
	carol := n.add("carol", nil, true, admitting(&ec, attackTimeout))
	n.show(carol, alice, bob, g.s)
	n.show(alice, bob, carol)
	n.show(bob, alice, carol)
	g.s.SetMembers(peersOf(alice, bob, carol))
	n.flush(nil)
	_ = carol.HandleMessage(g.name, g.view(t, entryOf(carol), entryOf(alice), entryOf(bob)))
	_ = carol.HandleMessage(g.name, g.admit(t, "carol", carol.selfPub))
	n.flush(nil)
	ev := ec.waitFor(t, EventRosterMismatch)
	if n.boxedTo("carol", g.name) || n.ghostKeysFrom(g.name, "carol") > 0 {
		t.Fatal("carol sealed a key to mallory")
	}
	if len(ev.Mismatches) != 2 {
		t.Fatalf("carol's alert: %+v", ev.Mismatches)
	}
	// And alice admitting carol changes nothing about mallory.
	if err := alice.Admit("carol"); err != nil {
		t.Fatal(err)
	}
	n.flush(nil)
	for _, sender := range []string{"alice", "bob", "carol"} {
		if n.boxedTo(sender, g.name) {
			t.Fatalf("%s sealed a key to mallory", sender)
		}
	}
}

// TestAttackGhostShownToEveryoneWaits: the node lists the ghost mallory
// to alice and bob (a genuine call) as a newcomer, and mallory sends
// views listing everyone, admits itself under each name... it waits: no
// member admitted it, its views count for nothing, its admissions of
// others count for nothing.
func TestAttackGhostShownToEveryoneWaits(t *testing.T) {
	n := newHostile(t)
	var ea, eb events
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, attackTimeout))
	n.establish(t, alice, bob)
	g := n.ghost("mallory")
	g2 := n.ghost("trudy")
	n.show(alice, bob, g.s, g2.s)
	n.show(bob, alice, g.s, g2.s)
	g.s.SetMembers(peersOf(alice, bob))
	n.flush(nil)
	v := g.view(t, entryOf(alice), entryOf(bob), RosterEntry{Name: g2.name, Key: g2.id.PublicKey()})
	for _, s := range []*Session{alice, bob} {
		_ = s.HandleMessage(g.name, v)
		// Each ghost admits the other; the admissions wait for an
		// admitter that is a member, and none is.
		_ = s.HandleMessage(g.name, g.admit(t, g2.name, g2.id.PublicKey()))
		_ = s.HandleMessage(g2.name, g2.admit(t, g.name, g.id.PublicKey()))
	}
	n.flush(nil)
	settle()
	for _, s := range []*Session{alice, bob} {
		for _, p := range s.Participants() {
			if (p.Identity == g.name || p.Identity == g2.name) && p.State == StateMember {
				t.Fatalf("%s counts %s as a member", s.opts.Self, p.Identity)
			}
		}
		if st := s.RosterStatus(); !st.Agreed || st.Alert {
			t.Fatalf("%s: %+v", s.opts.Self, st)
		}
	}
	if n.boxedTo("alice", g.name) || n.boxedTo("bob", g.name) || n.ghostKeysFrom(g.name, "alice")+n.ghostKeysFrom(g.name, "bob") > 0 {
		t.Fatal("a key reached mallory")
	}
	if !ea.has(EventWaiting, g.name) || !eb.has(EventWaiting, g.name) {
		t.Fatal("mallory was not shown as waiting")
	}
}

// TestAttackFakeCallGhostStaysForLaterJoiners documents a limitation:
// the first real participant, alice, is shown the ghost mallory as
// present (a fake call, docs/E2EE.md "does not cover"). bob, a real
// participant, joins later and is shown alice and mallory: both are roots
// with views, mallory admits bob (or alice does), and all views agree, so
// mallory keeps every key though no member ever admitted it. What the
// defence rests on then: mallory is a member, shown as present, on every
// real participant's screen.
func TestAttackFakeCallGhostStaysForLaterJoiners(t *testing.T) {
	n := newHostile(t)
	var ea, eb events
	g := n.ghost("mallory")
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	n.show(alice, g.s)
	_ = alice.HandleMessage(g.name, g.view(t, entryOf(alice)))
	_ = alice.HandleMessage(g.name, g.admit(t, "alice", alice.selfPub))
	bob := n.add("bob", nil, true, admitting(&eb, attackTimeout))
	n.show(bob, alice, g.s)
	n.show(alice, g.s, bob)
	g.s.SetMembers(peersOf(alice, bob))
	n.flush(nil)
	_ = bob.HandleMessage(g.name, g.view(t, entryOf(alice)))
	v := g.view(t, entryOf(alice), entryOf(bob))
	_ = alice.HandleMessage(g.name, g.admit(t, "bob", bob.selfPub))
	_ = alice.HandleMessage(g.name, v)
	_ = bob.HandleMessage(g.name, g.admit(t, "bob", bob.selfPub))
	_ = bob.HandleMessage(g.name, v)
	n.flush(nil)
	settle()
	for _, s := range []*Session{alice, bob} {
		i := slices.IndexFunc(s.Participants(), func(p ParticipantStatus) bool { return p.Identity == g.name })
		if i < 0 || s.Participants()[i].State != StateMember {
			t.Fatalf("%s does not show mallory as a member: %+v", s.opts.Self, s.Participants())
		}
	}
	t.Logf("limitation: mallory holds %d of alice's and %d of bob's keys; alerts: %v", n.ghostKeysFrom(g.name, "alice"), n.ghostKeysFrom(g.name, "bob"), anyAlert([]*Session{alice, bob}, &ea, &eb))
}

// TestAttackViewFromWrongSenderOrKey: views relayed under another name,
// for another room, signed by a ghost under a member's name, replayed,
// or of someone not listed, are refused and change nothing.
func TestAttackViewFromWrongSenderOrKey(t *testing.T) {
	n := newHostile(t)
	var ea, eb, ec events
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, attackTimeout))
	n.establish(t, alice, bob)
	carol := n.add("carol", nil, true, admitting(&ec, attackTimeout))
	n.show(carol, alice, bob)
	n.flush(nil)
	var bobView json.RawMessage
	for _, m := range n.sent {
		if m.from == "bob" && msgType(m.msg) == "roster" {
			bobView = m.msg
		}
	}
	// carol has not heard of bob's view yet (alice and bob were not told
	// about carol): bob's view relayed as alice's.
	if err := carol.HandleMessage("alice", bobView); err == nil {
		t.Fatal("carol took bob's view relayed as alice's")
	}
	// A ghost signs a view as "bob" with its own key.
	gid, _ := NewIdentity()
	fake := &ghost{name: "bob", id: gid, seq: uint64(time.Now().UnixMicro())}
	if err := carol.HandleMessage("bob", fake.view(t, entryOf(alice), entryOf(carol))); err == nil {
		t.Fatal("carol took a view of bob signed with another key")
	}
	// A view of another room.
	str, _ := SignRoster(bob.opts.Identity, RosterView{Room: "other", Member: "bob", MemberKey: bob.selfPub, Seq: 1 << 62, Participants: []RosterEntry{entryOf(bob)}})
	other, _ := json.Marshal(keyMessage{Version: keyMessageVersion, Type: "roster", Roster: str})
	if err := carol.HandleMessage("bob", other); err == nil {
		t.Fatal("carol took a view of another room")
	}
	// The real one, then the same again.
	if err := carol.HandleMessage("bob", bobView); err != nil {
		t.Fatal(err)
	}
	if err := carol.HandleMessage("bob", bobView); err == nil {
		t.Fatal("carol took bob's view twice")
	}
	// A view of someone not listed to carol.
	dave := n.add("dave", nil, false, admitting(&events{}, attackTimeout))
	n.show(dave)
	n.flush(nil)
	for _, m := range n.sent {
		if m.from == "dave" && msgType(m.msg) == "roster" {
			if err := carol.HandleMessage("dave", m.msg); err == nil {
				t.Fatal("carol took a view of dave, whom nobody listed to her")
			}
		}
	}
}

// TestAttackAdmissionsThatMustNotCount: admissions by a waiting ghost, of
// another key than the one listed, of this participant under another key,
// for another room, too old, or a forgery naming a member, change nothing.
func TestAttackAdmissionsThatMustNotCount(t *testing.T) {
	n := newHostile(t)
	var ea, eb events
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, attackTimeout))
	n.establish(t, alice, bob)
	g := n.ghost("mallory")
	g2 := n.ghost("trudy")
	n.show(alice, bob, g.s, g2.s)
	n.flush(nil)
	// A waiting ghost admits another.
	_ = alice.HandleMessage(g.name, g.admit(t, g2.name, g2.id.PublicKey()))
	// bob admits mallory's name with trudy's key: a real member's
	// admission of someone else, which only a member could sign; here
	// the node replays one bob made for another key.
	str, err := Admit(bob.opts.Identity, Admission{Room: "room", Admitter: "bob", AdmitterKey: bob.selfPub, Admitted: g.name, AdmittedKey: g2.id.PublicKey(), UnixMilli: time.Now().UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	wrongKey, _ := json.Marshal(keyMessage{Version: keyMessageVersion, Type: "admit", Admission: str})
	if err := alice.HandleMessage("bob", wrongKey); err != nil {
		t.Fatal(err)
	}
	// Another room, too old.
	for _, a := range []Admission{
		{Room: "other", UnixMilli: time.Now().UnixMilli()},
		{Room: "room", UnixMilli: time.Now().Add(-time.Hour).UnixMilli()},
		{Room: "room", UnixMilli: time.Now().Add(time.Hour).UnixMilli()},
	} {
		a.Admitter, a.AdmitterKey, a.Admitted, a.AdmittedKey = "bob", bob.selfPub, g.name, g.id.PublicKey()
		str, _ := Admit(bob.opts.Identity, a)
		msg, _ := json.Marshal(keyMessage{Version: keyMessageVersion, Type: "admit", Admission: str})
		if err := alice.HandleMessage("bob", msg); err == nil {
			t.Fatalf("alice took an admission %+v", a)
		}
	}
	// A forgery: bob's name and key, mallory's signature.
	body, _ := (&Admission{Room: "room", Admitter: "bob", AdmitterKey: bob.selfPub, Admitted: g.name, AdmittedKey: g.id.PublicKey(), UnixMilli: time.Now().UnixMilli()}).marshal()
	forged, _ := json.Marshal(keyMessage{Version: keyMessageVersion, Type: "admit", Admission: encodeSigned(admitPrefix, body, g.id.sign(admitLabel, body))})
	if err := alice.HandleMessage("bob", forged); err == nil {
		t.Fatal("alice took a forged admission")
	}
	n.flush(nil)
	settle()
	for _, p := range alice.Participants() {
		if p.Identity != "bob" && p.State == StateMember {
			t.Fatalf("alice counts %s a member", p.Identity)
		}
	}
	if n.boxedTo("alice", g.name) || n.boxedTo("alice", g2.name) {
		t.Fatal("alice sealed a key to a ghost")
	}
	// A joiner admitted under another key does not count itself admitted.
	carol := n.add("carol", nil, true, admitting(&events{}, attackTimeout))
	n.show(carol, alice)
	n.flush(nil)
	str, _ = Admit(alice.opts.Identity, Admission{Room: "room", Admitter: "alice", AdmitterKey: alice.selfPub, Admitted: "carol", AdmittedKey: g.id.PublicKey(), UnixMilli: time.Now().UnixMilli()})
	msg, _ := json.Marshal(keyMessage{Version: keyMessageVersion, Type: "admit", Admission: str})
	_ = carol.HandleMessage("alice", msg)
	if carol.RosterStatus().Admitted {
		t.Fatal("carol took an admission of another key as hers")
	}
}

// TestAttackReplayedAdmissionAfterLeave: bob admitted carol; carol
// leaves. Within the admission's window the node lists a ghost under the
// name carol (its own key) and replays bob's admission: it names carol's
// real key, so the ghost stays waiting.
func TestAttackReplayedAdmissionAfterLeave(t *testing.T) {
	n := newHostile(t)
	var ea, eb, ec events
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, attackTimeout))
	n.establish(t, alice, bob)
	carol := n.add("carol", nil, true, admitting(&ec, attackTimeout))
	n.show(carol, alice, bob)
	n.show(alice, bob, carol)
	n.show(bob, alice, carol)
	n.flush(nil)
	if err := bob.Admit("carol"); err != nil {
		t.Fatal(err)
	}
	n.flush(nil)
	var adm json.RawMessage
	for _, m := range n.sent {
		if m.from == "bob" && msgType(m.msg) == "admit" {
			adm = m.msg
		}
	}
	n.show(alice, bob)
	n.show(bob, alice)
	n.flush(nil)
	g := n.ghost("carol-ghost")
	fake := Peer{Identity: "carol", PublicKey: g.s.PublicKey()}
	alice.SetMembers(append(peersOf(bob), fake))
	_ = alice.HandleMessage("bob", adm)
	n.flush(nil)
	for _, p := range alice.Participants() {
		if p.Identity == "carol" && p.State == StateMember {
			t.Fatal("a replayed admission let a ghost in under carol's name")
		}
	}
	if n.boxedTo("alice", "carol") && n.ghostKeysFrom(g.name, "alice") > 0 {
		t.Fatal("the ghost got alice's key")
	}
}

// TestAttackKeySwapShownToOne: the node swaps bob's announcement for a
// ghost's under bob's name in what it shows alice. The ghost is a
// newcomer (not a root, not remembered: another identity key) and waits;
// alice's view loses bob, bob's does not, and alice alerts.
func TestAttackKeySwapShownToOne(t *testing.T) {
	n := newHostile(t)
	var ea, eb events
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, attackTimeout))
	n.establish(t, alice, bob)
	gid, _ := NewIdentity()
	sk, _ := NewSessionKey()
	alice.SetMembers([]Peer{{Identity: "bob", PublicKey: Announce(gid, sk)}})
	n.flush(nil)
	settle()
	if !anyAlert([]*Session{alice, bob}, &ea, &eb) {
		t.Fatal("nobody alerted")
	}
	for _, p := range alice.Participants() {
		if p.Identity == "bob" && p.State == StateMember {
			t.Fatal("the swapped bob is a member")
		}
	}
}

// TestAttackRefusals: a refusal relayed from a non-member is not shown; a
// refusal of a member changes nothing; a refusal is no veto: alice
// refuses dave, bob admits him, and alice counts him a member (and sends
// him her keys), as "one admission suffices" says.
func TestAttackRefusals(t *testing.T) {
	n := newHostile(t)
	var ea, eb, ed events
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, attackTimeout))
	n.establish(t, alice, bob)
	g := n.ghost("mallory")
	dave := n.add("dave", nil, true, admitting(&ed, attackTimeout))
	n.show(dave, alice, bob)
	n.show(alice, bob, dave, g.s)
	n.show(bob, alice, dave)
	n.flush(nil)
	refuse := func(id string) json.RawMessage {
		m, _ := json.Marshal(keyMessage{Version: keyMessageVersion, Type: "refuse", Identity: id})
		return m
	}
	_ = alice.HandleMessage(g.name, refuse("dave"))
	_ = alice.HandleMessage("dave", refuse("bob"))
	_ = alice.HandleMessage("bob", refuse("bob"))
	_ = alice.HandleMessage("bob", refuse("alice"))
	if alice.RosterStatus().Refused || ea.count(EventRefused) != 0 {
		t.Fatalf("alice showed a refusal: %v", ea.kinds())
	}
	_ = dave.HandleMessage(g.name, refuse("dave"))
	if dave.RosterStatus().Refused {
		t.Fatal("dave took a refusal from a non-member")
	}
	if err := alice.Refuse("dave"); err != nil {
		t.Fatal(err)
	}
	n.flush(nil)
	if !dave.RosterStatus().Refused {
		t.Fatal("dave was not told alice refused him")
	}
	if err := bob.Admit("dave"); err != nil {
		t.Fatal(err)
	}
	n.flush(nil)
	if !dave.RosterStatus().Admitted {
		t.Fatal("dave was not admitted by bob")
	}
	if !n.boxedTo("alice", "dave") {
		t.Log("alice refused dave but still sent him no key")
	} else {
		t.Log("design: alice refused dave, bob admitted him, and alice's keys go to dave")
	}
}

// TestAttackPendingAdmissionsBounded: a ghost floods valid admissions
// (its own, of made-up participants): at most maxPendingAdmissions are
// kept.
func TestAttackPendingAdmissionsBounded(t *testing.T) {
	n := newHostile(t)
	alice := n.add("alice", nil, true, admitting(&events{}, attackTimeout))
	n.show(alice)
	g := n.ghost("mallory")
	n.show(alice, g.s)
	for i := range 500 {
		id, _ := NewIdentity()
		_ = alice.HandleMessage(g.name, g.admit(t, fmt.Sprintf("x%d", i), id.PublicKey()))
	}
	alice.mu.Lock()
	p := len(alice.adm.pending)
	alice.mu.Unlock()
	if p > maxPendingAdmissions {
		t.Fatalf("%d pending admissions", p)
	}
}

// TestAttackHostileInputNoPanic: mutated admissions, views and refusals,
// and structurally odd messages, from listed and unlisted senders, never
// panic and never admit anyone.
func TestAttackHostileInputNoPanic(t *testing.T) {
	n := newHostile(t)
	var ea, eb events
	alice := n.add("alice", nil, true, admitting(&ea, attackTimeout))
	bob := n.add("bob", nil, true, admitting(&eb, attackTimeout))
	n.establish(t, alice, bob)
	g := n.ghost("mallory")
	n.show(alice, bob, g.s)
	n.flush(nil)
	seeds := []json.RawMessage{
		g.view(t, entryOf(alice), entryOf(bob)),
		g.admit(t, "alice", alice.selfPub),
		g.admit(t, g.name+"x", alice.selfPub),
		json.RawMessage(`{"sotto_e2ee":2,"type":"refuse","identity":"alice"}`),
		json.RawMessage(`{"sotto_e2ee":2,"type":"admit"}`),
		json.RawMessage(`{"sotto_e2ee":2,"type":"roster"}`),
		json.RawMessage(`{"sotto_e2ee":2,"type":"roster","roster":"sotto-roster-v1:"}`),
		json.RawMessage(`{"sotto_e2ee":2,"type":"admit","admission":"sotto-admit-v1:AA"}`),
		json.RawMessage(`{"sotto_e2ee":2,"type":"roster","roster":"sotto-admit-v1:AA","admission":"sotto-roster-v1:AA"}`),
	}
	for _, m := range n.sent {
		seeds = append(seeds, m.msg)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	senders := []string{"bob", g.name, "nobody", "alice", ""}
	for i := range 3000 {
		m := bytes.Clone(seeds[rng.IntN(len(seeds))])
		for range 1 + rng.IntN(3) {
			if len(m) > 0 {
				m[rng.IntN(len(m))] ^= byte(1 << rng.IntN(8))
			}
		}
		if i%7 == 0 {
			m = m[:rng.IntN(len(m)+1)]
		}
		for _, s := range []*Session{alice, bob} {
			_ = s.HandleMessage(senders[rng.IntN(len(senders))], m)
		}
	}
	for _, s := range []*Session{alice, bob} {
		for _, p := range s.Participants() {
			if p.Identity == g.name && p.State == StateMember {
				t.Fatalf("%s admitted mallory on mutated input", s.opts.Self)
			}
		}
	}
}

// ---------------------------------------------------------------------
// Honest runs: every participant must end admitted, agreed, without an
// alert, and holding everyone's current key.
// ---------------------------------------------------------------------

// honestCall runs sessions under an honest node: one list for everyone,
// every message delivered in order, and every member admitting every
// waiting participant (AdmitAll).
type honestCall struct {
	n    *hostile
	in   map[string]*Session // in the call now
	evs  map[string]*events
	seen map[string]int // events handled per participant
	t    *testing.T
}

// honestTimeout is the roster timeout of honest runs: a moment of
// disagreement on a loaded machine must not pass for an alert.
const honestTimeout = 500 * time.Millisecond

func newHonestCall(t *testing.T) *honestCall {
	return &honestCall{n: newHostile(t), in: map[string]*Session{}, evs: map[string]*events{}, seen: map[string]int{}, t: t}
}

func (h *honestCall) list() {
	var all []*Session
	for _, s := range h.in {
		all = append(all, s)
	}
	for _, s := range h.in {
		s.SetMembers(peersOf(all...))
	}
}

func (h *honestCall) join(name string, id *Identity, publish bool) *Session {
	e := &events{}
	s := h.n.add(name, id, publish, admitting(e, honestTimeout))
	h.evs[name], h.seen[name] = e, 0
	h.in[name] = s
	return s
}

func (h *honestCall) leave(name string) {
	delete(h.in, name)
	h.n.disconnect(name)
	delete(h.n.away, name)
}

// run delivers everything and admits every waiting participant, until
// nothing moves.
func (h *honestCall) run() {
	for {
		h.n.flush(nil)
		moved := false
		for name, s := range h.in {
			e := h.evs[name]
			e.mu.Lock()
			got := slices.Clone(e.got[h.seen[name]:])
			h.seen[name] = len(e.got)
			e.mu.Unlock()
			for _, ev := range got {
				if ev.Kind == EventWaiting {
					if s.Admit(ev.Identity) == nil {
						moved = true
					}
				}
			}
		}
		h.n.mu.Lock()
		q := len(h.n.queue)
		h.n.mu.Unlock()
		if !moved && q == 0 {
			return
		}
	}
}

// check: everyone in is admitted, agreed, never alerted, and holds every
// publishing participant's current key.
func (h *honestCall) check(what string) {
	h.t.Helper()
	time.Sleep(honestTimeout + 200*time.Millisecond)
	h.run()
	for name, s := range h.in {
		if st := s.RosterStatus(); !st.Admitted || !st.Agreed || st.Alert {
			h.t.Errorf("%s: %s is %+v, sees %+v", what, name, st, s.Participants())
		}
		if k := h.evs[name].count(EventRosterMismatch); k > 0 {
			h.t.Errorf("%s: %s alerted %d times", what, name, k)
		}
		for other, o := range h.in {
			if other == name || !o.publishing {
				continue
			}
			wire := mustEncrypt(h.t, o, CodecOpus, opusFrame)
			if _, _, err := s.DecryptFrame(other, CodecOpus, wire); err != nil {
				h.t.Errorf("%s: %s cannot decrypt %s: %v", what, name, other, err)
			}
		}
	}
}

func TestAttackHonestTwoJoinsAtOnce(t *testing.T) {
	h := newHonestCall(t)
	h.join("alice", nil, true)
	h.list()
	h.run()
	// bob is listed to alice, then carol to both, before any message moves.
	h.join("bob", nil, true)
	h.list()
	h.join("carol", nil, true)
	h.list()
	h.run()
	h.check("two joins at once")
}

func TestAttackHonestLeaveDuringJoin(t *testing.T) {
	h := newHonestCall(t)
	h.join("alice", nil, true)
	h.list()
	h.run()
	h.join("bob", nil, true)
	h.list()
	h.run()
	h.join("carol", nil, true)
	h.list()
	// bob leaves before anything of carol's join moved (his view to
	// carol is lost with him).
	h.leave("bob")
	h.list()
	h.run()
	h.check("a leave during a join")
}

func TestAttackHonestAdmittedByTwoAtOnce(t *testing.T) {
	h := newHonestCall(t)
	a := h.join("alice", nil, true)
	h.list()
	h.run()
	h.join("bob", nil, true)
	h.list()
	h.run()
	h.join("carol", nil, true)
	h.list()
	h.n.flush(nil)
	// Both admit carol before either admission moved.
	b := h.in["bob"]
	if err := a.Admit("carol"); err != nil {
		t.Fatal(err)
	}
	if err := b.Admit("carol"); err != nil {
		t.Fatal(err)
	}
	h.run()
	h.check("admitted by two members at once")
}

func TestAttackHonestAdmitterLeavesRightAway(t *testing.T) {
	h := newHonestCall(t)
	a := h.join("alice", nil, true)
	h.list()
	h.run()
	h.join("bob", nil, true)
	h.list()
	h.run()
	h.join("carol", nil, true)
	h.list()
	h.n.flush(nil)
	if err := a.Admit("carol"); err != nil {
		t.Fatal(err)
	}
	// alice leaves; her admission was sent before (the server relays it
	// before the participant_left, per recipient).
	h.n.flush(nil)
	h.leave("alice")
	h.list()
	h.run()
	h.check("the admitter leaving at once")
}

func TestAttackHonestReconnectWithRejoin(t *testing.T) {
	h := newHonestCall(t)
	h.join("alice", nil, true)
	h.list()
	h.run()
	h.join("bob", nil, true)
	h.list()
	h.run()
	c := h.join("carol", nil, true)
	h.list()
	h.run()
	// carol's connection drops: the others see her leave; she comes back
	// with the same session (Rejoin) and the same announcement.
	delete(h.in, "carol")
	h.n.disconnect("carol")
	h.list()
	h.run()
	h.n.reconnect("carol")
	h.in["carol"] = c
	c.Rejoin()
	h.list()
	h.run()
	h.check("a reconnect")
	// Everyone reconnects (the node restarted): one by one.
	for _, name := range []string{"alice", "bob", "carol"} {
		delete(h.in, name)
		h.n.disconnect(name)
		h.list()
		h.run()
	}
	for _, name := range []string{"bob", "carol", "alice"} {
		s := h.n.away[name]
		h.n.reconnect(name)
		h.in[name] = s
		s.Rejoin()
		h.list()
		h.run()
	}
	h.check("everyone reconnecting")
}

func TestAttackHonestNewSessionSameIdentity(t *testing.T) {
	h := newHonestCall(t)
	h.join("alice", nil, true)
	h.list()
	h.run()
	b := h.join("bob", nil, true)
	h.list()
	h.run()
	// bob reloads: a new session with the same identity key replaces the
	// old one (the others see participant_left, then participant_joined).
	h.leave("bob")
	h.list()
	h.run()
	h.join("bob", b.opts.Identity, true)
	h.list()
	h.run()
	h.check("a new session of the same identity")
}

func TestAttackHonestListenerJoins(t *testing.T) {
	h := newHonestCall(t)
	h.join("alice", nil, true)
	h.list()
	h.run()
	h.join("bob", nil, false)
	h.list()
	h.run()
	h.join("carol", nil, true)
	h.list()
	h.run()
	h.check("a listener")
}

// TestAttackHonestConcurrent runs joins, leaves, reconnects (Rejoin),
// admissions and deliveries on many goroutines, for the race detector and
// for agreement. It models the server's order: a joiner gets its list
// first; then the others get, in their inbox and in order with relayed
// messages, the new list; every member admits every waiting participant
// from its event callback.
func TestAttackHonestConcurrent(t *testing.T) {
	for round := range 5 {
		t.Run(fmt.Sprint(round), honestConcurrentRound)
	}
}

func honestConcurrentRound(t *testing.T) {
	type item struct {
		from  string
		msg   json.RawMessage
		peers []Peer // a new list, when msg is nil
	}
	type inbox struct {
		mu sync.Mutex
		q  []item
		c  chan struct{}
	}
	var (
		mu       sync.Mutex
		sessions = map[string]*Session{} // in the room
		all      = map[string]*Session{}
		inboxes  = map[string]*inbox{}
		evs      = map[string]*events{}
		wg       sync.WaitGroup
		stop     = make(chan struct{})
	)
	push := func(ib *inbox, it item) {
		ib.mu.Lock()
		ib.q = append(ib.q, it)
		ib.mu.Unlock()
		select {
		case ib.c <- struct{}{}:
		default:
		}
	}
	send := func(from string) func([]string, json.RawMessage) {
		return func(to []string, msg json.RawMessage) {
			mu.Lock()
			defer mu.Unlock()
			if sessions[from] == nil {
				return // not connected: lost
			}
			if to == nil {
				for name := range sessions {
					if name != from {
						to = append(to, name)
					}
				}
			}
			for _, name := range to {
				if sessions[name] != nil {
					push(inboxes[name], item{from: from, msg: msg})
				}
			}
		}
	}
	peersLocked := func() []Peer {
		var ps []Peer
		for _, s := range sessions {
			ps = append(ps, Peer{Identity: s.opts.Self, PublicKey: s.PublicKey()})
		}
		return ps
	}
	broadcastListLocked := func(except string) {
		ps := peersLocked()
		for other := range sessions {
			if other != except {
				push(inboxes[other], item{peers: ps})
			}
		}
	}
	enter := func(name string, s *Session, rejoin bool) {
		mu.Lock()
		first := peersLocked()
		ib := inboxes[name]
		ib.mu.Lock()
		ib.q = nil // what was on its way while away is lost
		ib.mu.Unlock()
		mu.Unlock()
		// The list reaches the joiner before anything relayed to it.
		push(ib, item{peers: first})
		if rejoin {
			// Rejoin runs on the inbox goroutine too, in order.
			ib.mu.Lock()
			ib.q = append([]item{{from: "\x00rejoin"}}, ib.q...)
			ib.mu.Unlock()
		}
		mu.Lock()
		sessions[name] = s
		broadcastListLocked(name)
		mu.Unlock()
	}
	leave := func(name string) {
		mu.Lock()
		delete(sessions, name)
		broadcastListLocked(name)
		mu.Unlock()
	}
	join := func(name string) {
		id, _ := NewIdentity()
		e := &events{}
		var s *Session
		ready := make(chan struct{})
		opts := Options{Room: "room", Self: name, Identity: id, Logger: quiet(), AckTimeout: 50 * time.Millisecond, Send: send(name),
			Admission: &AdmissionOptions{RosterTimeout: 2 * time.Second, OnEvent: func(ev MembershipEvent) {
				e.add(ev)
				if ev.Kind == EventWaiting {
					go func() { <-ready; _ = s.Admit(ev.Identity) }()
				}
			}}}
		var err error
		s, err = NewSession(opts)
		if err != nil {
			t.Fatal(err)
		}
		close(ready)
		t.Cleanup(s.Close)
		ib := &inbox{c: make(chan struct{}, 1)}
		mu.Lock()
		all[name], inboxes[name], evs[name] = s, ib, e
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-ib.c:
				}
				for {
					ib.mu.Lock()
					if len(ib.q) == 0 {
						ib.mu.Unlock()
						break
					}
					it := ib.q[0]
					ib.q = ib.q[1:]
					ib.mu.Unlock()
					switch {
					case it.from == "\x00rejoin":
						s.Rejoin()
					case it.msg == nil:
						s.SetMembers(it.peers)
					default:
						_ = s.HandleMessage(it.from, it.msg)
					}
				}
			}
		}()
		enter(name, s, false)
		s.StartPublishing()
	}
	pause := func() { time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond) }
	for _, name := range []string{"alice", "bob", "carol", "dave"} {
		join(name)
		pause()
	}
	leave("bob") // bob's connection drops while erin joins
	join("erin")
	pause()
	enter("bob", all["bob"], true) // and he is back
	join("frank")
	pause()
	leave("carol") // carol leaves for good

	want := []string{"alice", "bob", "dave", "erin", "frank"}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := true
		mu.Lock()
		for _, name := range want {
			s := sessions[name]
			if st := s.RosterStatus(); !st.Admitted || !st.Agreed || len(s.Members()) != len(want) {
				ok = false
			}
		}
		mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			for _, name := range want {
				s := sessions[name]
				t.Errorf("%s: %+v", name, s.RosterStatus())
				for _, p := range s.Participants() {
					t.Errorf("   %s sees %s %v by %q root %v", name, p.Identity, p.State, p.By, p.Root)
				}
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for _, name := range want {
		if k := evs[name].count(EventRosterMismatch); k > 0 {
			t.Errorf("%s alerted in an honest run", name)
		}
	}
}
