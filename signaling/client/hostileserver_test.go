package client_test

// TestHostileServer: issue 12, "No ghost listeners". A hostile node
// (internal/hostilenode) stands in front of the real one and attacks
// admission by members and the roster check (docs/E2EE.md, "Admission and
// rosters"): it shows a ghost to everyone, to some, or to a newcomer only;
// replays key messages, admissions and roster views; swaps an identity
// key; forges admissions; drops roster views. Every subtest is a real call
// over loopback with Go SDK clients. Each checks what the users see (the
// admission events, Client.Admissions, Client.RosterStatus, the roster
// alert) and that no media key reaches the one the node wants to listen
// in: no key message a client sent through the node has a box for it, and
// its own key log (a Go SDK client the node runs, with a KeyLog) holds no
// key but its own.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sotto-rtc/sotto/internal/hostilenode"
	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

func TestHostileServer(t *testing.T) {
	t.Run("ghost_shown_to_everyone", hostileGhostShownToEveryone)
	t.Run("ghost_shown_to_some", hostileGhostShownToSome)
	t.Run("replay_key_messages_and_admissions", hostileReplaysKeyMessagesAndAdmissions)
	t.Run("swap_identity_keys", hostileSwapsIdentityKeys)
	t.Run("forge_admission", hostileForgesAdmissions)
	t.Run("drop_roster_messages", hostileDropsRosterMessages)
	t.Run("inject_clear_media", hostileInjectsClearMedia)
	t.Run("relabel_track", hostileRelabelsTrack)
}

// hostileRosterTimeout is how long views may disagree before the alert in
// these tests: short, as the alert is what they wait for.
const hostileRosterTimeout = time.Second

// watched is an e2eePeer with the admission events its user sees, who
// left, and the application relays it got (for barriers).
type watched struct {
	*e2eePeer
	waiting chan client.Newcomer
	agreed  chan struct{}
	left    chan string
	relays  chan string
}

// joinWatched joins with end-to-end encryption, the admission policy
// given (nil: the user decides, Client.Admit) and a short RosterTimeout.
func joinWatched(ctx context.Context, t *testing.T, url, token, identity string, policy client.AdmissionPolicy, confs ...conf) *watched {
	t.Helper()
	const depth = 256
	w := &watched{
		waiting: make(chan client.Newcomer, depth),
		agreed:  make(chan struct{}, depth),
		left:    make(chan string, depth),
		relays:  make(chan string, depth),
	}
	watch := func(o *client.Options) {
		o.E2EE.Admission = policy
		o.E2EE.RosterTimeout = hostileRosterTimeout
		o.Handlers.Admission.ParticipantWaiting = func(n client.Newcomer) { w.waiting <- n }
		o.Handlers.Admission.RosterAgreed = func() { w.agreed <- struct{}{} }
		o.Handlers.ParticipantLeft = func(p wire.ParticipantInfo, _ string) { w.left <- p.Identity }
		o.Handlers.Relay = func(_ wire.ParticipantInfo, d json.RawMessage) { w.relays <- string(d) }
	}
	w.e2eePeer = joinE2EE(ctx, t, url, token, identity, append([]conf{watch}, confs...)...)
	return w
}

func useStore(st e2ee.IdentityStore) conf {
	return func(o *client.Options) { o.E2EE.Store = st }
}

// roomToken mints a token for another room than srv.Token's "test".
func roomToken(t *testing.T, srv *localServer, room, identity string) string {
	t.Helper()
	tok, err := wire.NewToken(srv.key, srv.sec, wire.Grant{Room: room, Identity: identity, CanPublish: true, CanSubscribe: true})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// waitWaiting waits until w's user is shown identity waiting to be
// admitted (Handlers.Admission.ParticipantWaiting).
func (w *watched) waitWaiting(t *testing.T, identity string) client.Newcomer {
	t.Helper()
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	for {
		select {
		case n := <-w.waiting:
			if n.Identity == identity {
				return n
			}
		case <-deadline.C:
			t.Fatalf("%s was never shown %s waiting: %+v", w.identity, identity, w.c.Admissions())
		}
	}
}

// drainWaiting forgets who w's user was shown waiting so far.
func (w *watched) drainWaiting() {
	for {
		select {
		case <-w.waiting:
		default:
			return
		}
	}
}

// admitWhenWaiting is the user clicking Admit once identity shows up
// waiting.
func (w *watched) admitWhenWaiting(t *testing.T, identity string) {
	t.Helper()
	w.waitWaiting(t, identity)
	if err := w.c.Admit(identity); err != nil {
		t.Fatalf("%s admits %s: %v", w.identity, identity, err)
	}
}

// drainAdmitted empties p.admitted and returns what it held.
func drainAdmitted(p *e2eePeer) []string {
	var out []string
	for {
		select {
		case id := <-p.admitted:
			out = append(out, id)
		default:
			return out
		}
	}
}

// statusOf returns how p sees identity (Client.Admissions).
func statusOf(p *e2eePeer, identity string) (e2ee.ParticipantStatus, bool) {
	for _, s := range p.c.Admissions() {
		if s.Identity == identity {
			return s, true
		}
	}
	return e2ee.ParticipantStatus{}, false
}

// expectState fails unless p lists identity, with key (if not nil), in
// state want.
func expectState(t *testing.T, p *e2eePeer, identity string, key []byte, want e2ee.ParticipantState) e2ee.ParticipantStatus {
	t.Helper()
	s, ok := statusOf(p, identity)
	if !ok {
		t.Fatalf("%s does not list %s: %+v", p.identity, identity, p.c.Admissions())
	}
	if s.State != want || (key != nil && !bytes.Equal(s.IdentityKey, key)) {
		t.Fatalf("%s shows %s as %v (key %x, by %q); want %v with key %x", p.identity, identity, s.State, s.IdentityKey, s.By, want, key)
	}
	return s
}

// expectNotListed fails if p lists identity at all.
func expectNotListed(t *testing.T, p *e2eePeer, identity string) {
	t.Helper()
	if s, ok := statusOf(p, identity); ok {
		t.Fatalf("%s lists %s, whom the node hid from it: %+v", p.identity, identity, s)
	}
	for _, pi := range p.c.Participants() {
		if pi.Identity == identity {
			t.Fatalf("%s's roster shows %s, whom the node hid from it", p.identity, identity)
		}
	}
}

// notCovered fails if p's safety number covers identity.
func notCovered(t *testing.T, p *e2eePeer, identity string) {
	t.Helper()
	for _, cv := range p.c.SafetyNumberCovers() {
		if cv.Identity == identity {
			t.Fatalf("%s's safety number covers %s (%x)", p.identity, identity, cv.Key)
		}
	}
}

// waitStatus waits until cond holds for p's RosterStatus. Agreement has no
// event of its own (RosterAgreed follows an alert only): it wakes on p's
// key log and frames, and every 20ms.
func waitStatus(t *testing.T, p *e2eePeer, what string, cond func(e2ee.RosterStatus) bool) {
	t.Helper()
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond(p.c.RosterStatus()) {
		select {
		case <-p.wake:
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("%s: %s: not after %v: %+v %+v", p.identity, what, testTimeout, p.c.RosterStatus(), p.c.Admissions())
		}
	}
}

func agreed(s e2ee.RosterStatus) bool { return s.Admitted && s.Agreed && !s.Alert }

// waitAlertThat waits for a roster alert of p's that ok accepts; alerts
// before it (a view still on its way when the short timeout ran out) are
// skipped.
func waitAlertThat(t *testing.T, p *e2eePeer, what string, ok func(*client.RosterMismatchError) bool) *client.RosterMismatchError {
	t.Helper()
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	var seen []string
	for {
		select {
		case e := <-p.alerts:
			if ok(e) {
				return e
			}
			seen = append(seen, e.Error())
		case <-deadline.C:
			t.Fatalf("%s raised no roster alert %s; alerts %q; now %+v", p.identity, what, seen, p.c.RosterStatus())
			return nil
		}
	}
}

// names reports whether entries name identity (with key, if not nil).
func names(es []e2ee.RosterEntry, identity string, key []byte) bool {
	return slices.ContainsFunc(es, func(x e2ee.RosterEntry) bool {
		return x.Name == identity && (key == nil || bytes.Equal(x.Key, key))
	})
}

// mentions reports whether an alert names identity among the people one
// member's view lists and this client's does not, or the other way round.
func mentions(e *client.RosterMismatchError, identity string) bool {
	return slices.ContainsFunc(e.Mismatches, func(m e2ee.RosterMismatch) bool {
		return names(m.OnlyTheirs, identity, nil) || names(m.OnlyMine, identity, nil)
	})
}

// mismatchOf returns what an alert says about member's view.
func mismatchOf(e *client.RosterMismatchError, member string) (e2ee.RosterMismatch, bool) {
	for _, m := range e.Mismatches {
		if m.Member == member {
			return m, true
		}
	}
	return e2ee.RosterMismatch{}, false
}

var barriers atomic.Int64

// nodeBarrier returns once p has handled every message the node delivered
// to it before: the node injects an application relay after them and p's
// application gets it (a client handles its messages in order, and key
// messages before the handlers of later ones run).
func nodeBarrier(t *testing.T, proxy *hostilenode.Node, p *watched) {
	t.Helper()
	conns := proxy.ConnsOf(p.identity)
	if len(conns) == 0 {
		t.Fatalf("%s has no connection through the node", p.identity)
	}
	mark := fmt.Sprintf(`{"barrier":%d}`, barriers.Add(1))
	msg, _ := json.Marshal(wire.Relay{Type: wire.TypeRelay, From: "node", Data: json.RawMessage(mark)})
	if err := proxy.InjectConn(conns[len(conns)-1], true, msg); err != nil {
		t.Fatal(err)
	}
	p.waitRelay(t, mark)
}

// relayBarrier returns once to has handled everything each of from sent it
// before (key messages included): each sends to an application relay,
// which the server delivers after them.
func relayBarrier(ctx context.Context, t *testing.T, to *watched, from ...*watched) {
	t.Helper()
	for _, f := range from {
		mark := fmt.Sprintf(`{"barrier":%d}`, barriers.Add(1))
		if err := f.c.SendRelay(ctx, []string{to.identity}, json.RawMessage(mark)); err != nil {
			t.Fatalf("%s: relay to %s: %v", f.identity, to.identity, err)
		}
		to.waitRelay(t, mark)
	}
}

func (w *watched) waitRelay(t *testing.T, data string) {
	t.Helper()
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	for {
		select {
		case d := <-w.relays:
			if d == data {
				return
			}
		case <-deadline.C:
			t.Fatalf("%s never got the relay %s", w.identity, data)
		}
	}
}

// keyBoxes looks at the key messages the node carried from clients (from
// the connections of from; all if "") since frame number since: how many
// there were, and how many had a box for recipient.
func keyBoxes(proxy *hostilenode.Node, since int, from, recipient string) (msgs, boxed int) {
	frames := proxy.Carried()
	for _, f := range frames[min(since, len(frames)):] {
		if f.ToClient || (from != "" && f.Identity != from) {
			continue
		}
		d := hostilenode.RelayData(f.Data)
		if d["type"] != "key" {
			continue
		}
		msgs++
		if boxes, _ := d["boxes"].(map[string]any); boxes[recipient] != nil {
			boxed++
		}
	}
	return msgs, boxed
}

// foreignKeys returns the keys in p's key log that are not its own: the
// keys it received.
func foreignKeys(p *e2eePeer) []e2ee.KeyEvent {
	return slices.DeleteFunc(p.keyLog(), func(e e2ee.KeyEvent) bool { return e.Sender == p.identity })
}

// noKeyReaches checks that, since frame number since, no client sealed a
// key to ghost through the node, and that ghost holds no key but its own.
// Call it after a barrier.
func noKeyReaches(t *testing.T, proxy *hostilenode.Node, since int, ghost *e2eePeer) {
	t.Helper()
	if _, n := keyBoxes(proxy, since, "", ghost.identity); n != 0 {
		t.Fatalf("%d key messages carried a box for %s", n, ghost.identity)
	}
	if ks := foreignKeys(ghost); len(ks) != 0 {
		t.Fatalf("%s received keys: %+v", ghost.identity, ks)
	}
}

// speak publishes an encrypted audio track and writes frames until stop.
func speak(ctx context.Context, t *testing.T, p *e2eePeer, stop <-chan struct{}) {
	t.Helper()
	pub, err := p.c.PublishSample(ctx, p.identity+"-audio", opus())
	if err != nil {
		t.Fatalf("%s: PublishSample: %v", p.identity, err)
	}
	go writeFrames(pub, p.identity, wire.KindAudio, 20*time.Millisecond, 0, stop)
}

var audioOnly = []string{wire.KindAudio}

// knowEachOther makes two stores remember each other's identity key as
// verified: the people met and compared codes before.
func knowEachOther(t *testing.T, a e2ee.IdentityStore, aName string, b e2ee.IdentityStore, bName string) {
	t.Helper()
	aID, err := a.Identity()
	if err != nil {
		t.Fatal(err)
	}
	bID, err := b.Identity()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := a.Remember(bName, e2ee.KnownKey{Key: bID.PublicKey(), Verified: true, FirstSeen: now}); err != nil {
		t.Fatal(err)
	}
	if err := b.Remember(aName, e2ee.KnownKey{Key: aID.PublicKey(), Verified: true, FirstSeen: now}); err != nil {
		t.Fatal(err)
	}
}

func identityKey(p *e2eePeer) []byte { return client.IdentityOf(p.c).PublicKey() }

// sidOf is identity's session id in p's roster.
func sidOf(t *testing.T, p *e2eePeer, identity string) string {
	t.Helper()
	for _, pi := range p.c.Participants() {
		if pi.Identity == identity {
			return pi.SID
		}
	}
	t.Fatalf("%s does not see %s", p.identity, identity)
	return ""
}

// relayAs is a relay as the node delivers it, from identity (session sid),
// carrying a key-management message.
func relayAs(t *testing.T, from, sid string, data map[string]any) []byte {
	t.Helper()
	d, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(wire.Relay{Type: wire.TypeRelay, From: from, FromSID: sid, Data: d})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func admitMessage(admission string) map[string]any {
	return map[string]any{"sotto_e2ee": 2, "type": "admit", "admission": admission}
}

func rosterMessage(view string) map[string]any {
	return map[string]any{"sotto_e2ee": 2, "type": "roster", "roster": view}
}

// carriedView is a roster view the node carried to a client.
type carriedView struct {
	frame hostilenode.Frame
	view  e2ee.RosterView
}

// viewsTo returns the roster views the node carried (delivered or not) to
// to's connections from from, in order, parsed.
func viewsTo(proxy *hostilenode.Node, to, from string) []carriedView {
	var out []carriedView
	for _, f := range proxy.Recorded(hostilenode.RelaysOfType("roster")) {
		var r wire.Relay
		if !f.ToClient || f.Identity != to || json.Unmarshal(f.Data, &r) != nil || r.From != from {
			continue
		}
		s, _ := hostilenode.RelayData(f.Data)["roster"].(string)
		v, err := e2ee.ParseRoster(s)
		if err != nil {
			continue
		}
		out = append(out, carriedView{f, v})
	}
	return out
}

// lists reports whether a view lists exactly these identities.
func lists(v e2ee.RosterView, identities ...string) bool {
	var got []string
	for _, e := range v.Participants {
		got = append(got, e.Name)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(identities))
	return slices.Equal(got, want)
}

// dropRelays drops the relays of type typ to the connections of to (from
// from only, if not "").
func dropRelays(typ, to, from string) hostilenode.Filter {
	return func(c hostilenode.Conn, toClient bool, msg []byte) [][]byte {
		if toClient && c.Identity == to && hostilenode.RelayType(msg) == typ {
			var r wire.Relay
			if from == "" || (json.Unmarshal(msg, &r) == nil && r.From == from) {
				return nil
			}
		}
		return [][]byte{msg}
	}
}

// hostileGhostShownToEveryone: the node adds a participant of its own
// (a real client, straight to the real node) that every member sees.
// alice and bob verified each other in an earlier call: their policy,
// AdmitKnown, lets each other in and leaves anyone else to the user, who
// does not admit the ghost. Everyone sees it waiting, nobody's safety
// number covers it, the keys that go out while it waits have no box for
// it, and alice's and bob's media keep decrypting.
func hostileGhostShownToEveryone(t *testing.T) {
	srv := newServer(t)
	ctx := testContext(t)
	direct := srv.Frontend().URL
	proxy := hostilenode.New(t, direct, nil)

	aliceStore, bobStore := e2ee.NewMemoryStore(), e2ee.NewMemoryStore()
	knowEachOther(t, aliceStore, "alice", bobStore, "bob")
	alice := joinWatched(ctx, t, proxy.URL, srv.Token("alice", true, true), "alice", client.AdmitKnown(), useStore(aliceStore))
	waitMember(t, alice.e2eePeer, "") // the first in the call
	bob := joinWatched(ctx, t, proxy.URL, srv.Token("bob", true, true), "bob", client.AdmitKnown(), useStore(bobStore))
	waitMember(t, alice.e2eePeer, "bob") // by her policy: verified
	waitMember(t, bob.e2eePeer, "alice", "")

	since := len(proxy.Carried())
	ghost := joinWatched(ctx, t, direct, srv.Token("ghost", true, true), "ghost", client.AdmitAll)
	ghostKey := identityKey(ghost.e2eePeer)
	shown := map[string]client.Newcomer{}
	for _, p := range []*watched{alice, bob} {
		n := p.waitWaiting(t, "ghost")
		if !bytes.Equal(n.IdentityKey, ghostKey) || n.Verified {
			t.Fatalf("%s is shown the ghost waiting as %+v", p.identity, n)
		}
		shown[p.identity] = n
	}

	// Keys go out while the ghost waits: alice and bob start to speak.
	stop := make(chan struct{})
	defer close(stop)
	speak(ctx, t, alice.e2eePeer, stop)
	speak(ctx, t, bob.e2eePeer, stop)
	alice.waitFrames(t, []string{"bob"}, audioOnly, 25)
	bob.waitFrames(t, []string{"alice"}, audioOnly, 25)
	relayBarrier(ctx, t, ghost, alice, bob)

	for _, p := range []*watched{alice, bob} {
		expectState(t, p.e2eePeer, "ghost", ghostKey, e2ee.StateWaiting)
		notCovered(t, p.e2eePeer, "ghost")
		waitStatus(t, p.e2eePeer, "views agree", agreed)
		for _, id := range drainAdmitted(p.e2eePeer) {
			if id == "ghost" {
				t.Fatalf("%s counted the ghost as a member", p.identity)
			}
		}
	}
	if a, b := alice.c.SafetyNumber(), bob.c.SafetyNumber(); a != b {
		t.Fatalf("alice and bob show different safety numbers: %q, %q", a, b)
	}
	if len(alice.c.SafetyNumberCovers()) != 2 {
		t.Fatalf("alice's safety number covers %+v; want alice and bob", alice.c.SafetyNumberCovers())
	}
	if st := ghost.c.RosterStatus(); st.Admitted {
		t.Fatalf("the ghost sees itself admitted: %+v", st)
	}
	msgs, _ := keyBoxes(proxy, since, "", "ghost")
	if msgs < 2 {
		t.Fatalf("the node carried %d key messages since the ghost came; want alice's and bob's", msgs)
	}
	noKeyReaches(t, proxy, since, ghost.e2eePeer)
	// And media between alice and bob still decrypts.
	alice.waitFrames(t, []string{"bob"}, audioOnly, 10)
	bob.waitFrames(t, []string{"alice"}, audioOnly, 10)
	t.Logf("%d key messages while the ghost waited, none with a box for it; safety number %q for alice and bob", msgs, alice.c.SafetyNumber())
	// Nobody met the ghost before this call: it must not be shown as
	// someone known (Newcomer.Known; the browser's "known").
	for who, n := range shown {
		if n.Known {
			t.Errorf("%s is shown the ghost, never met before, as known: %+v", who, n)
		}
	}
}

// hostileGhostShownToSome: the node shows its ghost to some members only.
// (a) Hidden from bob, shown to alice: alice sees it waiting, it gets no
// key. (b) alice is tricked into admitting it: her view and bob's now
// differ, both raise the alert naming the ghost, and no key reaches it.
// (c) In another call the ghost was there first and is hidden from alice
// and bob; carol, who joins later, is shown it in her joined list, as
// present before her: it is a root for her alone, and her alert names it
// (and alice's and bob's, once carol's view reaches them), with no key to
// it.
func hostileGhostShownToSome(t *testing.T) {
	ctx := testContext(t)
	stop := make(chan struct{})
	defer close(stop)
	{
		srv := newServer(t)
		direct := srv.Frontend().URL
		proxy := hostilenode.New(t, direct, nil)
		proxy.SetFilter(hostilenode.Chain(hostilenode.HideFrom("ghost", "bob"), hostilenode.DropRelaysFrom("ghost", "bob")))

		alice := joinWatched(ctx, t, proxy.URL, srv.Token("alice", true, true), "alice", nil)
		waitMember(t, alice.e2eePeer, "")
		bob := joinWatched(ctx, t, proxy.URL, srv.Token("bob", true, true), "bob", nil)
		alice.admitWhenWaiting(t, "bob")
		waitMember(t, bob.e2eePeer, "alice", "")
		waitMember(t, alice.e2eePeer, "bob")

		since := len(proxy.Carried())
		ghost := joinWatched(ctx, t, direct, srv.Token("ghost", true, true), "ghost", client.AdmitAll)
		ghostKey := identityKey(ghost.e2eePeer)
		if n := alice.waitWaiting(t, "ghost"); !bytes.Equal(n.IdentityKey, ghostKey) {
			t.Fatalf("alice is shown the ghost waiting as %+v", n)
		}
		speak(ctx, t, alice.e2eePeer, stop)
		speak(ctx, t, bob.e2eePeer, stop)
		alice.waitFrames(t, []string{"bob"}, audioOnly, 25)
		bob.waitFrames(t, []string{"alice"}, audioOnly, 25)
		relayBarrier(ctx, t, ghost, alice, bob)
		nodeBarrier(t, proxy, bob)

		// (a)
		expectState(t, alice.e2eePeer, "ghost", ghostKey, e2ee.StateWaiting)
		expectNotListed(t, bob.e2eePeer, "ghost")
		for _, p := range []*watched{alice, bob} {
			waitStatus(t, p.e2eePeer, "views agree", agreed)
			notCovered(t, p.e2eePeer, "ghost")
		}
		if msgs, _ := keyBoxes(proxy, since, "", "ghost"); msgs < 2 {
			t.Fatalf("(a) the node carried %d key messages since the ghost came; want alice's and bob's", msgs)
		}
		noKeyReaches(t, proxy, since, ghost.e2eePeer)

		// (b) alice clicks Admit.
		sentBefore := alice.c.E2EEStats().KeysSent
		if err := alice.c.Admit("ghost"); err != nil {
			t.Fatal(err)
		}
		ea := waitAlertThat(t, alice.e2eePeer, "naming the ghost", func(e *client.RosterMismatchError) bool {
			m, ok := mismatchOf(e, "bob")
			return ok && names(m.OnlyMine, "ghost", ghostKey)
		})
		eb := waitAlertThat(t, bob.e2eePeer, "naming the ghost", func(e *client.RosterMismatchError) bool {
			m, ok := mismatchOf(e, "alice")
			return ok && names(m.OnlyTheirs, "ghost", ghostKey)
		})
		expectState(t, alice.e2eePeer, "ghost", ghostKey, e2ee.StateMember)
		expectNotListed(t, bob.e2eePeer, "ghost")
		for _, p := range []*watched{alice, bob} {
			if st := p.c.RosterStatus(); st.Agreed || !st.Alert {
				t.Fatalf("(b) %s: %+v; want the alert up and keys held", p.identity, st)
			}
		}
		if alice.c.SafetyNumber() == bob.c.SafetyNumber() {
			t.Fatal("(b) alice, who admitted the ghost, shows bob's safety number")
		}
		relayBarrier(ctx, t, ghost, alice, bob)
		if n := alice.c.E2EEStats().KeysSent; n != sentBefore {
			t.Fatalf("(b) alice sent %d key messages after admitting the ghost while views disagree", n-sentBefore)
		}
		noKeyReaches(t, proxy, since, ghost.e2eePeer)
		t.Logf("(b) alice: %v", ea)
		t.Logf("(b) bob: %v", eb)
	}

	// (c) The ghost as a root for a newcomer only.
	srv := newServer(t)
	direct := srv.Frontend().URL
	proxy := hostilenode.New(t, direct, nil)
	proxy.SetFilter(hostilenode.Chain(hostilenode.HideFrom("ghost", "alice", "bob"), hostilenode.DropRelaysFrom("ghost", "alice", "bob")))
	ghost := joinWatched(ctx, t, direct, srv.Token("ghost", true, true), "ghost", client.AdmitAll)
	waitMember(t, ghost.e2eePeer, "") // alone: a member in its own eyes, so it signs views
	ghostKey := identityKey(ghost.e2eePeer)
	alice := joinWatched(ctx, t, proxy.URL, srv.Token("alice", true, true), "alice", nil)
	waitMember(t, alice.e2eePeer, "") // an empty call, as the node shows it
	bob := joinWatched(ctx, t, proxy.URL, srv.Token("bob", true, true), "bob", nil)
	alice.admitWhenWaiting(t, "bob")
	waitMember(t, bob.e2eePeer, "alice", "")
	waitMember(t, ghost.e2eePeer, "alice", "bob") // the ghost let them in, in its own eyes
	speak(ctx, t, alice.e2eePeer, stop)
	speak(ctx, t, bob.e2eePeer, stop)
	alice.waitFrames(t, []string{"bob"}, audioOnly, 10)
	bob.waitFrames(t, []string{"alice"}, audioOnly, 10)

	since := len(proxy.Carried())
	carol := joinWatched(ctx, t, proxy.URL, srv.Token("carol", true, true), "carol", nil)
	speak(ctx, t, carol.e2eePeer, stop)
	alice.admitWhenWaiting(t, "carol")
	listed := false
	for _, pi := range carol.c.Participants() {
		listed = listed || pi.Identity == "ghost"
	}
	if !listed {
		t.Fatal("(c) carol's roster does not show the ghost")
	}
	ec := waitAlertThat(t, carol.e2eePeer, "naming the ghost", func(e *client.RosterMismatchError) bool {
		m, ok := mismatchOf(e, "alice")
		return ok && names(m.OnlyMine, "ghost", ghostKey)
	})
	for _, p := range []*watched{alice, bob} {
		waitAlertThat(t, p.e2eePeer, "naming the ghost", func(e *client.RosterMismatchError) bool {
			m, ok := mismatchOf(e, "carol")
			return ok && names(m.OnlyTheirs, "ghost", ghostKey)
		})
	}
	if s := expectState(t, carol.e2eePeer, "ghost", ghostKey, e2ee.StateMember); !s.Root {
		t.Fatalf("(c) carol sees the ghost as %+v; want one present when she joined", s)
	}
	relayBarrier(ctx, t, ghost, alice, bob, carol)
	for _, p := range []*watched{alice, bob} {
		expectNotListed(t, p.e2eePeer, "ghost")
	}
	if st := carol.c.RosterStatus(); st.Agreed || !st.Alert {
		t.Fatalf("(c) carol: %+v; want the alert up and her keys held", st)
	}
	// carol may have sent alice and bob her key in the moment their views
	// agreed with hers, before the ghost's view made it a member for her;
	// never to the ghost.
	msgs, _ := keyBoxes(proxy, since, "", "ghost")
	carolMsgs, _ := keyBoxes(proxy, since, "carol", "ghost")
	noKeyReaches(t, proxy, 0, ghost.e2eePeer)
	t.Logf("(c) carol: %v; %d key messages since carol came (%d of hers), none with a box for the ghost", ec, msgs, carolMsgs)
}

// hostileReplaysKeyMessagesAndAdmissions: the node records key messages,
// admissions and roster views and plays them back later.
func hostileReplaysKeyMessagesAndAdmissions(t *testing.T) {
	srv := newServer(t)
	ctx := testContext(t)
	direct := srv.Frontend().URL
	proxy := hostilenode.New(t, direct, nil)
	stop := make(chan struct{})
	defer close(stop)

	aliceStore, bobStore := e2ee.NewMemoryStore(), e2ee.NewMemoryStore()
	alice := joinWatched(ctx, t, proxy.URL, srv.Token("alice", true, true), "alice", nil, useStore(aliceStore))
	waitMember(t, alice.e2eePeer, "")
	bob := joinWatched(ctx, t, proxy.URL, srv.Token("bob", true, true), "bob", nil, useStore(bobStore))
	alice.admitWhenWaiting(t, "bob")
	waitMember(t, bob.e2eePeer, "alice", "")
	speak(ctx, t, alice.e2eePeer, stop)
	speak(ctx, t, bob.e2eePeer, stop)
	alice.waitFrames(t, []string{"bob"}, audioOnly, 25)
	bob.waitFrames(t, []string{"alice"}, audioOnly, 25)
	carol := joinWatched(ctx, t, proxy.URL, srv.Token("carol", true, true), "carol", nil)
	alice.admitWhenWaiting(t, "carol")
	waitMember(t, carol.e2eePeer, "alice", "bob", "")
	waitMember(t, bob.e2eePeer, "carol")
	carol.waitFrames(t, []string{"alice", "bob"}, audioOnly, 25)
	for _, p := range []*watched{alice, bob, carol} {
		waitStatus(t, p.e2eePeer, "views agree", agreed)
	}

	// 1. Key messages: every key bob sealed to alice, played back to her.
	var keyFrames [][]byte
	for _, f := range proxy.Recorded(hostilenode.RelaysOfType("key")) {
		var r wire.Relay
		boxes, _ := hostilenode.RelayData(f.Data)["boxes"].(map[string]any)
		if f.ToClient && f.Identity == "alice" && json.Unmarshal(f.Data, &r) == nil && r.From == "bob" && boxes["alice"] != nil {
			keyFrames = append(keyFrames, f.Data)
		}
	}
	if len(keyFrames) < 2 {
		t.Fatalf("the node carried %d keys of bob's to alice; want his first and the ratchet for carol", len(keyFrames))
	}
	before, keysBefore := alice.c.E2EEStats(), alice.keyLog()
	for _, f := range keyFrames {
		if err := proxy.Inject("alice", f); err != nil {
			t.Fatal(err)
		}
	}
	nodeBarrier(t, proxy, alice)
	after := alice.c.E2EEStats()
	n := uint64(len(keyFrames))
	if after.ReplayedKeyMessages != before.ReplayedKeyMessages+n || after.BadKeyMessages != before.BadKeyMessages+n || after.KeysReceived != before.KeysReceived {
		t.Fatalf("1. %d key messages replayed to alice: stats %+v -> %+v; want each counted replayed, none received", n, before, after)
	}
	if keys := alice.keyLog(); len(keys) != len(keysBefore) {
		t.Fatalf("1. alice's keys changed on the replay: %+v", keys[len(keysBefore):])
	}
	alice.waitFrames(t, []string{"bob"}, audioOnly, 10)
	t.Logf("1. %d key messages replayed to alice: stats %+v -> %+v, keys unchanged", n, before, after)

	// 2. Roster views. dave comes and is admitted; then the node drops
	// bob's views to alice, and dave leaves: alice's latest view of bob's
	// lists dave, hers does not: the alert. The node plays back bob's
	// earlier view without dave, which would agree with hers.
	dave := joinWatched(ctx, t, proxy.URL, srv.Token("dave", false, true), "dave", nil)
	alice.admitWhenWaiting(t, "dave")
	waitMember(t, dave.e2eePeer, "")
	waitMember(t, bob.e2eePeer, "dave")
	waitMember(t, carol.e2eePeer, "dave")
	waitStatus(t, alice.e2eePeer, "views agree, dave in", func(s e2ee.RosterStatus) bool {
		_, ok := statusOf(alice.e2eePeer, "dave")
		return ok && agreed(s)
	})
	var old *carriedView
	for _, v := range viewsTo(proxy, "alice", "bob") {
		if lists(v.view, "alice", "bob", "carol") {
			old = &v
		}
	}
	if old == nil {
		t.Fatal("2. the node carried no view of bob's listing alice, bob and carol to alice")
	}
	proxy.SetFilter(dropRelays("roster", "alice", "bob"))
	if err := dave.c.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, alice.left, "alice sees dave leave", func(id string) bool { return id == "dave" })
	e := waitAlertThat(t, alice.e2eePeer, "about bob's view listing dave", func(e *client.RosterMismatchError) bool {
		m, ok := mismatchOf(e, "bob")
		return ok && names(m.OnlyTheirs, "dave", nil)
	})
	before = alice.c.E2EEStats()
	if err := proxy.Inject("alice", old.frame.Data); err != nil {
		t.Fatal(err)
	}
	nodeBarrier(t, proxy, alice)
	after = alice.c.E2EEStats()
	if after.BadKeyMessages != before.BadKeyMessages+1 || after.ReplayedKeyMessages != before.ReplayedKeyMessages+1 {
		t.Fatalf("2. bob's old view replayed: stats %+v -> %+v; want it refused as a replay", before, after)
	}
	if st := alice.c.RosterStatus(); st.Agreed || !st.Alert {
		t.Fatalf("2. after bob's old view was replayed alice shows %+v; want the alert still up", st)
	}
	select {
	case <-alice.agreed:
		t.Fatal("2. the replayed view made alice's views agree")
	default:
	}
	// The control: bob's real view without dave, which the node dropped,
	// ends the alert at once.
	var fresh *carriedView
	pollFor(t, "the node carries bob's view without dave to alice", func() bool {
		for _, v := range viewsTo(proxy, "alice", "bob") {
			if v.view.Seq > old.view.Seq && lists(v.view, "alice", "bob", "carol") {
				fresh = &v
				return true
			}
		}
		return false
	})
	proxy.SetFilter(nil)
	if err := proxy.Inject("alice", fresh.frame.Data); err != nil {
		t.Fatal(err)
	}
	wait(t, alice.agreed, "alice's views agree on bob's real view")
	t.Logf("2. alice's alert %v; bob's view %d replayed: refused (%+v -> %+v); his view %d ends the alert", e, old.view.Seq, before, after, fresh.view.Seq)

	// 3. bob's admission, played back once "bob" comes back with another
	// identity key (another device, or the node's).
	var admission []byte
	var adm e2ee.Admission
	for _, f := range proxy.Recorded(hostilenode.RelaysOfType("admit")) {
		s, _ := hostilenode.RelayData(f.Data)["admission"].(string)
		a, err := e2ee.ParseAdmission(s)
		if f.ToClient && f.Identity == "bob" && err == nil && a.Admitter == "alice" && a.Admitted == "bob" {
			admission, adm = f.Data, a
		}
	}
	if admission == nil || !bytes.Equal(adm.AdmittedKey, identityKey(bob.e2eePeer)) {
		t.Fatal("3. the node carried no admission of bob by alice to bob")
	}
	if err := bob.c.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, alice.left, "alice sees bob leave", func(id string) bool { return id == "bob" })
	waitFor(t, carol.left, "carol sees bob leave", func(id string) bool { return id == "bob" })
	for _, p := range []*watched{alice, carol} {
		drainAdmitted(p.e2eePeer)
		p.drainWaiting()
	}
	since := len(proxy.Carried())
	bob2 := joinWatched(ctx, t, proxy.URL, srv.Token("bob", true, true), "bob", nil, useStore(e2ee.NewMemoryStore()))
	bob2Key := identityKey(bob2.e2eePeer)
	speak(ctx, t, bob2.e2eePeer, stop)
	for _, p := range []*watched{alice, carol} {
		if n := p.waitWaiting(t, "bob"); !bytes.Equal(n.IdentityKey, bob2Key) {
			t.Fatalf("3. %s is shown bob waiting as %+v", p.identity, n)
		}
	}
	if age := time.Since(time.UnixMilli(adm.UnixMilli)); age > e2ee.DefaultAdmissionAge-10*time.Second {
		t.Fatalf("3. the recorded admission is %v old: too old for this test to show anything", age)
	}
	for _, p := range []*watched{alice, carol, bob2} {
		if err := proxy.InjectConn(proxy.ConnsOf(p.identity)[len(proxy.ConnsOf(p.identity))-1], true, admission); err != nil {
			t.Fatal(err)
		}
		nodeBarrier(t, proxy, p)
	}
	relayBarrier(ctx, t, bob2, alice, carol)
	for _, p := range []*watched{alice, carol} {
		expectState(t, p.e2eePeer, "bob", bob2Key, e2ee.StateWaiting)
		if slices.Contains(drainAdmitted(p.e2eePeer), "bob") {
			t.Fatalf("3. %s counted the new bob as a member", p.identity)
		}
	}
	if st := bob2.c.RosterStatus(); st.Admitted {
		t.Fatalf("3. the new bob sees itself admitted by the replayed admission: %+v", st)
	}
	noKeyReaches(t, proxy, since, bob2.e2eePeer)

	// 4. The same admission, played back into another room where bob
	// (his real identity key) waits and alice is a member.
	proxy2 := hostilenode.New(t, direct, nil)
	alice3 := joinWatched(ctx, t, proxy2.URL, roomToken(t, srv, "other", "alice"), "alice", nil, useStore(aliceStore))
	waitMember(t, alice3.e2eePeer, "")
	carol3 := joinWatched(ctx, t, proxy2.URL, roomToken(t, srv, "other", "carol"), "carol", nil)
	alice3.admitWhenWaiting(t, "carol")
	waitMember(t, carol3.e2eePeer, "alice", "")
	bob3 := joinWatched(ctx, t, proxy2.URL, roomToken(t, srv, "other", "bob"), "bob", nil, useStore(bobStore))
	for _, p := range []*watched{alice3, carol3} {
		if n := p.waitWaiting(t, "bob"); !bytes.Equal(n.IdentityKey, adm.AdmittedKey) {
			t.Fatalf("4. %s is shown bob waiting as %+v", p.identity, n)
		}
	}
	if age := time.Since(time.UnixMilli(adm.UnixMilli)); age > e2ee.DefaultAdmissionAge-10*time.Second {
		t.Fatalf("4. the recorded admission is %v old: too old for this test to show anything", age)
	}
	for _, p := range []*watched{alice3, carol3, bob3} {
		before := p.c.E2EEStats()
		if err := proxy2.Inject(p.identity, admission); err != nil {
			t.Fatal(err)
		}
		nodeBarrier(t, proxy2, p)
		if after := p.c.E2EEStats(); after.BadKeyMessages != before.BadKeyMessages+1 {
			t.Fatalf("4. %s took the admission made for room \"test\": stats %+v -> %+v", p.identity, before, after)
		}
	}
	for _, p := range []*watched{alice3, carol3} {
		expectState(t, p.e2eePeer, "bob", adm.AdmittedKey, e2ee.StateWaiting)
	}
	if st := bob3.c.RosterStatus(); st.Admitted {
		t.Fatalf("4. bob sees himself admitted in room \"other\" by an admission for \"test\": %+v", st)
	}
}

// pollFor waits until cond holds, checking every 20ms: for what has no
// event (what the node carried).
func pollFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("%s: not after %v", what, testTimeout)
		}
	}
}

// hostileSwapsIdentityKeys: in what it shows alice (her connection only),
// the node puts its own identity key in bob's announcement. alice never
// seals a key to it, "bob" stays waiting in her eyes (bob's own views do
// not verify under that key; her policy admits verified people only), and
// carol and bob, whom the node left alone, raise the alert about alice's
// view. Then the node signs a view of "bob"'s with its key: that makes its
// key a member for alice (a root that signs a view), but carol's view
// lists the real bob, so alice's keys stay held and still none goes to the
// node's key.
func hostileSwapsIdentityKeys(t *testing.T) {
	srv := newServer(t)
	ctx := testContext(t)
	proxy := hostilenode.New(t, srv.Frontend().URL, nil)
	nodeID, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	nodeSK, err := e2ee.NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	nodeKey, nodeAnn := nodeID.PublicKey(), e2ee.Announce(nodeID, nodeSK)
	proxy.SetFilter(hostilenode.JSONFilter(func(c hostilenode.Conn, toClient bool, m map[string]any) (keep, changed bool) {
		if !toClient || c.Identity != "alice" {
			return true, false
		}
		for _, p := range hostilenode.Participants(m) {
			if p["identity"] == "bob" {
				p["public_key"] = nodeAnn
				changed = true
			}
		}
		return true, changed
	}))
	stop := make(chan struct{})
	defer close(stop)

	// bob admits by hand, carol admits everyone: alice is admitted by
	// carol, whose admission she can take (bob's names a key that is not
	// the one she was shown).
	bob := joinWatched(ctx, t, proxy.URL, srv.Token("bob", true, true), "bob", nil)
	waitMember(t, bob.e2eePeer, "")
	carol := joinWatched(ctx, t, proxy.URL, srv.Token("carol", true, true), "carol", client.AdmitAll)
	bob.admitWhenWaiting(t, "carol")
	waitMember(t, carol.e2eePeer, "bob", "")
	waitMember(t, bob.e2eePeer, "carol")
	speak(ctx, t, bob.e2eePeer, stop)
	speak(ctx, t, carol.e2eePeer, stop)
	bob.waitFrames(t, []string{"carol"}, audioOnly, 10)
	carol.waitFrames(t, []string{"bob"}, audioOnly, 10)
	bobKey := identityKey(bob.e2eePeer)

	alice := joinWatched(ctx, t, proxy.URL, srv.Token("alice", true, true), "alice", client.AdmitKnown())
	speak(ctx, t, alice.e2eePeer, stop)
	waitMember(t, alice.e2eePeer, "carol", "")
	if n := alice.waitWaiting(t, "bob"); !bytes.Equal(n.IdentityKey, nodeKey) {
		t.Fatalf("alice is shown bob waiting as %+v; want the node's key", n)
	}
	ec := waitAlertThat(t, carol.e2eePeer, "about alice's view without bob", func(e *client.RosterMismatchError) bool {
		m, ok := mismatchOf(e, "alice")
		return ok && names(m.OnlyMine, "bob", bobKey)
	})
	waitAlertThat(t, bob.e2eePeer, "about alice's view without bob", func(e *client.RosterMismatchError) bool {
		m, ok := mismatchOf(e, "alice")
		return ok && names(m.OnlyMine, "bob", bobKey)
	})
	ea := waitAlertThat(t, alice.e2eePeer, "about carol's view with bob", func(e *client.RosterMismatchError) bool {
		m, ok := mismatchOf(e, "carol")
		return ok && names(m.OnlyTheirs, "bob", bobKey)
	})
	relayBarrier(ctx, t, carol, alice) // everything alice sent is carried
	relayBarrier(ctx, t, alice, bob)   // and alice handled bob's view
	expectState(t, alice.e2eePeer, "bob", nodeKey, e2ee.StateWaiting)
	notCovered(t, alice.e2eePeer, "bob")
	if alice.c.SafetyNumber() == carol.c.SafetyNumber() || bob.c.SafetyNumber() != carol.c.SafetyNumber() {
		t.Fatalf("safety numbers: alice %q, bob %q, carol %q; want bob's and carol's equal, alice's not", alice.c.SafetyNumber(), bob.c.SafetyNumber(), carol.c.SafetyNumber())
	}
	if st := alice.c.E2EEStats(); st.BadKeyMessages == 0 {
		t.Fatalf("alice took bob's views, signed by his real key, as from the node's: %+v", st)
	}
	if _, n := keyBoxes(proxy, 0, "alice", "bob"); n != 0 {
		t.Fatalf("alice sealed %d keys to the node's key", n)
	}
	sent := alice.c.E2EEStats().KeysSent
	t.Logf("carol: %v; alice: %v; alice sent %d key messages", ec, ea, sent)

	// The node signs a view as "bob" with its key, listing everyone.
	view, err := e2ee.SignRoster(nodeID, e2ee.RosterView{
		Room: "test", Member: "bob", MemberKey: nodeKey, Seq: uint64(time.Now().UnixMicro()),
		Participants: []e2ee.RosterEntry{
			{Name: "alice", Key: identityKey(alice.e2eePeer)},
			{Name: "bob", Key: nodeKey},
			{Name: "carol", Key: identityKey(carol.e2eePeer)},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	drainAdmitted(alice.e2eePeer)
	if err := proxy.Inject("alice", relayAs(t, "bob", sidOf(t, alice.e2eePeer, "bob"), rosterMessage(view))); err != nil {
		t.Fatal(err)
	}
	waitMember(t, alice.e2eePeer, "bob")
	ea = waitAlertThat(t, alice.e2eePeer, "about carol's view with the real bob", func(e *client.RosterMismatchError) bool {
		m, ok := mismatchOf(e, "carol")
		return ok && names(m.OnlyTheirs, "bob", bobKey) && names(m.OnlyMine, "bob", nodeKey)
	})
	relayBarrier(ctx, t, carol, alice)
	if st := alice.c.RosterStatus(); st.Agreed || !st.Alert {
		t.Fatalf("alice after the forged view: %+v; want the alert up, keys held", st)
	}
	if n := alice.c.E2EEStats().KeysSent; n != sent {
		t.Fatalf("alice sent %d key messages after the node's view made its key a member", n-sent)
	}
	if _, n := keyBoxes(proxy, 0, "alice", "bob"); n != 0 {
		t.Fatalf("alice sealed %d keys to the node's key after its forged view", n)
	}
	t.Logf("after the node's own view as bob's: alice: %v", ea)
}

// hostileForgesAdmissions: the node injects admissions of its ghost "from
// alice": one signed by its own key (naming its key as alice's), one
// naming alice's real key with a signature that does not verify, and one
// signed by alice's real key naming the ghost with another key than the
// one it announced (as an admission alice once made for another "ghost"
// would be). Nobody admits the ghost, before or after carol comes and keys
// go round again, and no key reaches it.
func hostileForgesAdmissions(t *testing.T) {
	srv := newServer(t)
	ctx := testContext(t)
	direct := srv.Frontend().URL
	proxy := hostilenode.New(t, direct, nil)
	stop := make(chan struct{})
	defer close(stop)

	alice := joinWatched(ctx, t, proxy.URL, srv.Token("alice", true, true), "alice", nil)
	waitMember(t, alice.e2eePeer, "")
	bob := joinWatched(ctx, t, proxy.URL, srv.Token("bob", true, true), "bob", nil)
	alice.admitWhenWaiting(t, "bob")
	waitMember(t, bob.e2eePeer, "alice", "")
	speak(ctx, t, alice.e2eePeer, stop)
	speak(ctx, t, bob.e2eePeer, stop)
	alice.waitFrames(t, []string{"bob"}, audioOnly, 10)
	bob.waitFrames(t, []string{"alice"}, audioOnly, 10)

	since := len(proxy.Carried())
	ghost := joinWatched(ctx, t, direct, srv.Token("ghost", true, true), "ghost", client.AdmitAll)
	ghostKey := identityKey(ghost.e2eePeer)
	alice.waitWaiting(t, "ghost")
	bob.waitWaiting(t, "ghost")

	nodeID, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	aliceKey := identityKey(alice.e2eePeer)
	adm := e2ee.Admission{Room: "test", Admitter: "alice", AdmitterKey: nodeID.PublicKey(), Admitted: "ghost", AdmittedKey: ghostKey, UnixMilli: time.Now().UnixMilli()}
	ownKey, err := e2ee.Admit(nodeID, adm)
	if err != nil {
		t.Fatal(err)
	}
	// alice's key put in the body of the node's: the signature no longer
	// verifies.
	const prefix = "sotto-admit-v1:"
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(ownKey, prefix))
	if err != nil {
		t.Fatal(err)
	}
	at := 1 + 2 + len(adm.Room) + 2 + len(adm.Admitter)
	if !bytes.Equal(raw[at:at+32], nodeID.PublicKey()) {
		t.Fatal("the admitter key is not where docs/E2EE.md puts it")
	}
	copy(raw[at:], aliceKey)
	badSig := prefix + base64.RawURLEncoding.EncodeToString(raw)
	if _, err := e2ee.ParseAdmission(badSig); err == nil {
		t.Fatal("the admission with alice's key and the node's signature parses")
	}
	otherGhost := newIdentityKey(t)
	adm.AdmitterKey, adm.AdmittedKey = aliceKey, otherGhost
	otherKey, err := e2ee.Admit(client.IdentityOf(alice.c), adm)
	if err != nil {
		t.Fatal(err)
	}
	forged := []string{ownKey, badSig, otherKey}
	inject := func(to *watched, from string) {
		t.Helper()
		before := to.c.E2EEStats()
		for _, a := range forged {
			if err := proxy.Inject(to.identity, relayAs(t, from, sidOf(t, to.e2eePeer, from), admitMessage(a))); err != nil {
				t.Fatal(err)
			}
		}
		nodeBarrier(t, proxy, to)
		if after := to.c.E2EEStats(); after.BadKeyMessages != before.BadKeyMessages+1 {
			t.Fatalf("%s: stats %+v -> %+v; want the admission with a bad signature refused, the others kept waiting", to.identity, before, after)
		}
	}
	inject(bob, "alice")
	inject(alice, "bob") // as if bob relayed alice's admission

	// carol comes, and alice admits her: everyone's keys go round again,
	// and the admissions waiting are looked at again.
	carol := joinWatched(ctx, t, proxy.URL, srv.Token("carol", true, true), "carol", nil)
	alice.admitWhenWaiting(t, "carol")
	waitMember(t, carol.e2eePeer, "alice", "bob", "")
	inject(carol, "alice")
	carol.waitFrames(t, []string{"alice", "bob"}, audioOnly, 10)
	carol.waitWaiting(t, "ghost")
	relayBarrier(ctx, t, ghost, alice, bob, carol)
	for _, p := range []*watched{alice, bob, carol} {
		expectState(t, p.e2eePeer, "ghost", ghostKey, e2ee.StateWaiting)
		notCovered(t, p.e2eePeer, "ghost")
		waitStatus(t, p.e2eePeer, "views agree", agreed)
		if slices.Contains(drainAdmitted(p.e2eePeer), "ghost") {
			t.Fatalf("%s counted the ghost as a member", p.identity)
		}
	}
	if st := ghost.c.RosterStatus(); st.Admitted {
		t.Fatalf("the ghost was admitted: %+v", st)
	}
	msgs, _ := keyBoxes(proxy, since, "", "ghost")
	if msgs < 2 {
		t.Fatalf("%d key messages since the ghost came; want alice's and bob's ratchets for carol", msgs)
	}
	noKeyReaches(t, proxy, since, ghost.e2eePeer)
	t.Logf("%d key messages since the ghost came, none with a box for it", msgs)
}

// hostileDropsRosterMessages: the node drops every roster view on its way
// to bob. (A) carol comes and is admitted: bob counts her as a member but
// never gets her view, nor alice's new one: he raises the alert and sends
// no new key (carol gets none from him). (B) bob comes back (same identity
// key): alice and carol admit him again, as the rules say, but his view
// never comes, as he never gets theirs and so waits: they raise the alert
// about his missing view and seal him no key.
func hostileDropsRosterMessages(t *testing.T) {
	srv := newServer(t)
	ctx := testContext(t)
	proxy := hostilenode.New(t, srv.Frontend().URL, nil)
	stop := make(chan struct{})
	defer close(stop)

	bobStore := e2ee.NewMemoryStore()
	alice := joinWatched(ctx, t, proxy.URL, srv.Token("alice", true, true), "alice", client.AdmitAll)
	waitMember(t, alice.e2eePeer, "")
	bob := joinWatched(ctx, t, proxy.URL, srv.Token("bob", true, true), "bob", client.AdmitAll, useStore(bobStore))
	waitMember(t, bob.e2eePeer, "alice", "")
	speak(ctx, t, alice.e2eePeer, stop)
	speak(ctx, t, bob.e2eePeer, stop)
	alice.waitFrames(t, []string{"bob"}, audioOnly, 25)
	bob.waitFrames(t, []string{"alice"}, audioOnly, 25)
	for _, p := range []*watched{alice, bob} {
		waitStatus(t, p.e2eePeer, "views agree", agreed)
	}

	// (A)
	proxy.SetFilter(dropRelays("roster", "bob", ""))
	sent, own := bob.c.E2EEStats().KeysSent, len(ownKeys(bob.e2eePeer))
	since := len(proxy.Carried())
	carol := joinWatched(ctx, t, proxy.URL, srv.Token("carol", false, true), "carol", client.AdmitAll)
	waitMember(t, carol.e2eePeer, "alice", "bob", "")
	waitMember(t, bob.e2eePeer, "carol")
	eb := waitAlertThat(t, bob.e2eePeer, "about carol's missing view", func(e *client.RosterMismatchError) bool {
		m, ok := mismatchOf(e, "carol")
		return ok && m.Missing
	})
	carol.waitFrames(t, []string{"alice"}, audioOnly, 10)
	relayBarrier(ctx, t, carol, bob, alice)
	if st := bob.c.RosterStatus(); st.Agreed || !st.Alert {
		t.Fatalf("(A) bob: %+v; want the alert up and his keys held", st)
	}
	if st := bob.c.E2EEStats(); st.KeysSent != sent || len(ownKeys(bob.e2eePeer)) != own {
		t.Fatalf("(A) bob sent %d key messages and made %d keys while he misses the views", st.KeysSent-sent, len(ownKeys(bob.e2eePeer))-own)
	}
	if _, n := keyBoxes(proxy, since, "bob", "carol"); n != 0 {
		t.Fatalf("(A) bob sealed %d keys to carol", n)
	}
	for _, k := range carol.keyLog() {
		if k.Sender == "bob" {
			t.Fatalf("(A) carol got a key of bob's: %+v", k)
		}
	}
	// bob's own view, which he still sends, lists what theirs do: alice
	// and carol see nothing wrong (bob's screen shows the attack), and
	// they still have each other's keys.
	for _, p := range []*watched{alice, carol} {
		waitStatus(t, p.e2eePeer, "views agree", agreed)
	}
	t.Logf("(A) bob: %v; bob's keys sent stayed at %d", eb, sent)

	// (B) bob comes back.
	if err := bob.c.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, alice.left, "alice sees bob leave", func(id string) bool { return id == "bob" })
	waitFor(t, carol.left, "carol sees bob leave", func(id string) bool { return id == "bob" })
	drainAdmitted(alice.e2eePeer)
	drainAdmitted(carol.e2eePeer)
	since = len(proxy.Carried())
	bob2 := joinWatched(ctx, t, proxy.URL, srv.Token("bob", true, true), "bob", client.AdmitAll, useStore(bobStore))
	speak(ctx, t, bob2.e2eePeer, stop)
	for _, p := range []*watched{alice, carol} {
		waitMember(t, p.e2eePeer, "bob") // admitted again: same key, admitted before
		e := waitAlertThat(t, p.e2eePeer, "about bob's missing view", func(e *client.RosterMismatchError) bool {
			m, ok := mismatchOf(e, "bob")
			return ok && m.Missing
		})
		t.Logf("(B) %s: %v", p.identity, e)
	}
	nodeBarrier(t, proxy, bob2)
	relayBarrier(ctx, t, bob2, alice, carol)
	if st := bob2.c.RosterStatus(); st.Admitted {
		t.Fatalf("(B) bob sees himself admitted without any member's view: %+v", st)
	}
	for _, p := range []*watched{alice, carol} {
		if st := p.c.RosterStatus(); st.Agreed || !st.Alert {
			t.Fatalf("(B) %s: %+v; want the alert up and keys held", p.identity, st)
		}
	}
	if n := bob2.c.E2EEStats().KeysSent; n != 0 {
		t.Fatalf("(B) bob, waiting, sent %d key messages", n)
	}
	noKeyReaches(t, proxy, since, bob2.e2eePeer)
}
