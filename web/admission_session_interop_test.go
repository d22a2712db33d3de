package web_test

// TestBrowserGoAdmissionInterop: admission by members and roster checks
// (docs/E2EE.md, "Admission and rosters") between Go sessions
// (media/e2ee, Options.Admission) and browser sessions (web/sdk/e2ee
// keys.js, the admission option) in one room, messages shuttled both
// ways as signaling's relay would: a Go founder admits a browser newcomer
// and the other way round; keys flow only after admission and agreement;
// a participant one side admits or refuses is taken so by the other
// through the signed admission or the refusal; members admit again those
// who come back; a view dropped by the node raises the same alert on both
// sides, naming the same member and people; replayed views and forged
// admissions are refused by both. And what the attack review changed
// (bd5dcf8, 4bb6305), the same on both sides: a leave while views
// disagree sends a fresh key at once, only to those who had the current
// one; a joiner sends no key until its roots had the roster timeout to
// send their views, and a ghost root's view alone does not get it one;
// after a mass reconnect a ghost listed is no root; a root confirmed only
// by its own view is not admitted again when it comes back. The messages
// the browser sends are byte for byte what Go's json.Marshal makes of the
// same fields.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sotto-rtc/sotto/media/e2ee"
)

func TestBrowserGoAdmissionInterop(t *testing.T) {
	srv := e2eeServer(t, nil)
	b := newBrowser(t)
	ctx := e2eeOpenPage(t, b, "interop", srv.URL+"/testdata/e2ee/interop.html", "typeof window.e2eeTest === 'object'")

	t.Run("go founder admits browser newcomer", func(t *testing.T) {
		r := newAdmRoom(t, ctx, "room go first", time.Hour)
		r.founderAdmitsNewcomer("gopher", true, "jessie", false)
		r.checkWire()
	})
	t.Run("browser founder admits go newcomer", func(t *testing.T) {
		r := newAdmRoom(t, ctx, "room js first", time.Hour)
		r.founderAdmitsNewcomer("jessie", false, "gopher", true)
		r.checkWire()
	})
	t.Run("admissions and refusals of one side count on the other", func(t *testing.T) {
		r := newAdmRoom(t, ctx, "room of four", time.Hour)
		r.founderAdmitsNewcomer("gopher", true, "jessie", false)
		r.thirdParties()
		r.checkWire()
	})
	t.Run("readmission after a reconnect", func(t *testing.T) {
		r := newAdmRoom(t, ctx, "room of returns", time.Hour)
		r.founderAdmitsNewcomer("gopher", true, "jessie", false)
		r.thirdParties()
		r.rejoins()
		r.checkWire()
	})
	t.Run("held out over a key change, counted in the roster", func(t *testing.T) {
		r := newAdmRoom(t, ctx, "room of doubts", time.Hour)
		r.founderAdmitsNewcomer("gopher", true, "jessie", false)
		r.heldOut("jessie", "carol", true, "dave", false)
		r.heldOut("gopher", "erin", false, "fred", true)
		r.checkWire()
	})
	t.Run("dropped views raise the same alert on both sides", func(t *testing.T) {
		r := newAdmRoom(t, ctx, "room of drops", 400*time.Millisecond)
		r.droppedViews()
		r.checkWire()
	})
	t.Run("replayed views and forged admissions are refused by both", func(t *testing.T) {
		r := newAdmRoom(t, ctx, "room of forgeries", time.Hour)
		r.founderAdmitsNewcomer("gopher", true, "jessie", false)
		r.thirdParties()
		r.forgeries()
		r.checkWire()
	})
	t.Run("a leave while views disagree: a fresh key only to those who had the current one", func(t *testing.T) {
		r := newAdmRoom(t, ctx, "room of leaves", time.Hour)
		r.leaveWhileApart()
		r.checkWire()
	})
	for _, joinerGo := range []bool{true, false} {
		joiner := map[bool]string{true: "carol", false: "dave"}[joinerGo]
		t.Run("a joiner sends no key until its roots had time: "+joiner, func(t *testing.T) {
			r := newAdmRoom(t, ctx, "room of late roots "+joiner, lateRootsTimeout)
			r.lateRoots(joiner, joinerGo)
			r.checkWire()
		})
		t.Run("silent roots hold keys until the timeout, with no alert: "+joiner, func(t *testing.T) {
			r := newAdmRoom(t, ctx, "room of silent roots "+joiner, lateRootsTimeout)
			r.silentRoots(joiner, joinerGo)
			r.checkWire()
		})
		t.Run("a root confirmed only by its own view is not admitted again: "+joiner, func(t *testing.T) {
			r := newAdmRoom(t, ctx, "room of laundering "+joiner, time.Hour)
			r.rootNotReadmitted(joiner, joinerGo)
			r.checkWire()
		})
	}
	t.Run("a rejoin after a mass reconnect takes no ghost as a root", func(t *testing.T) {
		r := newAdmRoom(t, ctx, "room of reconnects", time.Hour)
		r.massReconnect()
		r.checkWire()
	})
}

// admEvent is a membership event of either side, in the browser's words.
type admEvent struct {
	Kind        string        `json:"kind"`
	Identity    string        `json:"identity"`
	IdentityKey string        `json:"identityKey"`
	By          string        `json:"by"`
	Mismatches  []admMismatch `json:"mismatches"`
}

type admMismatch struct {
	Member     string   `json:"member"`
	Missing    bool     `json:"missing"`
	OnlyTheirs []string `json:"onlyTheirs"`
	OnlyMine   []string `json:"onlyMine"`
}

type admStatus struct {
	Admitted, Refused, Agreed, Alert bool
	Mismatches                       []admMismatch
}

type admParticipant struct {
	Identity, IdentityKey, State, By string
	Root                             bool
}

var goEventKinds = map[e2ee.MembershipEventKind]string{
	e2ee.EventWaiting: "waiting", e2ee.EventAdmitted: "admitted", e2ee.EventRefused: "refused",
	e2ee.EventSelfAdmitted: "selfadmitted", e2ee.EventSelfRefused: "selfrefused",
	e2ee.EventRosterMismatch: "rostermismatch", e2ee.EventRosterAgreed: "rosteragreed",
}

func goMismatches(ms []e2ee.RosterMismatch) []admMismatch {
	out := []admMismatch{}
	names := func(es []e2ee.RosterEntry) []string {
		ns := []string{}
		for _, e := range es {
			ns = append(ns, e.Name)
		}
		return ns
	}
	for _, m := range ms {
		out = append(out, admMismatch{Member: m.Member, Missing: m.Missing, OnlyTheirs: names(m.OnlyTheirs), OnlyMine: names(m.OnlyMine)})
	}
	return out
}

func normalMismatches(ms []admMismatch) []admMismatch {
	out := []admMismatch{}
	for _, m := range ms {
		if m.OnlyTheirs == nil {
			m.OnlyTheirs = []string{}
		}
		if m.OnlyMine == nil {
			m.OnlyMine = []string{}
		}
		out = append(out, m)
	}
	return out
}

// admRelay is one relay message: to nil is everyone else in the room.
type admRelay struct {
	from string
	to   []string
	msg  json.RawMessage
}

// admDelivery is one message delivered to one participant.
type admDelivery struct {
	from, to string
	msg      json.RawMessage
}

// admRoom relays messages between Go and browser sessions with admission
// on, as signaling would: to the listed participants present, or to
// everyone else present.
type admRoom struct {
	t       *testing.T
	ctx     context.Context
	name    string
	timeout time.Duration

	mu        sync.Mutex
	gos       map[string]*e2ee.Session
	ids       map[string]*e2ee.Identity // Go sessions' identities
	logs      map[string][]e2ee.KeyEvent
	events    map[string][]admEvent // both sides', accumulated
	js        map[string]string     // browser session -> announcement
	present   []string              // the room, in order of joining
	queue     []admRelay
	delivered []admDelivery
	// drop, when set, holds back the deliveries it names until release.
	drop func(from, to, typ string) bool
	held []admRelay
	// holds[viewer][name]: viewer lists name as held out of its keys
	// (a key change awaiting its user: Peer.Held, the browser's held).
	holds map[string]map[string]bool
	// ghosts[viewer]: participants the node makes up and lists to viewer
	// (after those present); they are in no one else's list, and the
	// relay delivers them nothing.
	ghosts map[string][]*admGhost
	// sent is every relay message Go and the browser sent, in order,
	// whether or not it was delivered.
	sent []admRelay
}

func newAdmRoom(t *testing.T, ctx context.Context, name string, timeout time.Duration) *admRoom {
	r := &admRoom{t: t, ctx: ctx, name: name, timeout: timeout, gos: map[string]*e2ee.Session{}, ids: map[string]*e2ee.Identity{},
		logs: map[string][]e2ee.KeyEvent{}, events: map[string][]admEvent{}, js: map[string]string{}, holds: map[string]map[string]bool{},
		ghosts: map[string][]*admGhost{}}
	t.Cleanup(func() {
		for name := range r.js {
			jsCall(t, ctx, nil, "close", name)
		}
	})
	return r
}

// join adds a participant (Go or browser), publishing, and announces the
// room to everyone: the newcomer's first list names those present.
func (r *admRoom) join(name string, goSide bool) {
	r.t.Helper()
	r.joinAs(name, goSide, true)
}

// joinAs adds a participant that publishes, or only listens until
// startPublishing.
func (r *admRoom) joinAs(name string, goSide, publish bool) {
	r.t.Helper()
	if goSide {
		id, err := e2ee.NewIdentity()
		if err != nil {
			r.t.Fatal(err)
		}
		sk, err := e2ee.NewSessionKey()
		if err != nil {
			r.t.Fatal(err)
		}
		s, err := e2ee.NewSession(e2ee.Options{
			Room: r.name, Self: name, Identity: id, SessionKey: sk, Logger: testLogger(), AckTimeout: 1 << 40,
			Send: func(to []string, msg json.RawMessage) {
				r.mu.Lock()
				r.queue = append(r.queue, admRelay{from: name, to: to, msg: msg})
				r.sent = append(r.sent, admRelay{from: name, to: to, msg: msg})
				r.mu.Unlock()
			},
			KeyLog: func(e e2ee.KeyEvent) {
				r.mu.Lock()
				r.logs[name] = append(r.logs[name], e)
				r.mu.Unlock()
			},
			Admission: &e2ee.AdmissionOptions{
				RosterTimeout: r.timeout,
				OnEvent: func(ev e2ee.MembershipEvent) {
					e := admEvent{Kind: goEventKinds[ev.Kind], Identity: ev.Identity, IdentityKey: hex.EncodeToString(ev.IdentityKey), By: ev.By, Mismatches: goMismatches(ev.Mismatches)}
					r.mu.Lock()
					r.events[name] = append(r.events[name], e)
					r.mu.Unlock()
				},
			},
		})
		if err != nil {
			r.t.Fatal(err)
		}
		r.t.Cleanup(s.Close)
		if publish {
			s.StartPublishing()
		}
		r.mu.Lock()
		r.gos[name], r.ids[name] = s, id
		r.mu.Unlock()
	} else {
		var pub string
		jsCall(r.t, r.ctx, &pub, "newSession", map[string]any{"room": r.name, "self": name, "ackTimeoutMs": 3_600_000, "graceMs": 3000, "publish": publish,
			"admission": map[string]any{"rosterTimeoutMs": r.timeout.Milliseconds()}})
		r.js[name] = pub
	}
	r.present = append(r.present, name)
	r.announce()
}

// leave takes name out of the room (as the node does when its connection
// drops) and announces the room.
func (r *admRoom) leave(name string) {
	r.present = slices.DeleteFunc(r.present, func(n string) bool { return n == name })
	r.announce()
}

// back puts name back in the room after leave, as a reconnect does: it
// rejoins (waiting again), then the room is announced.
func (r *admRoom) back(name string) {
	r.t.Helper()
	if s := r.gos[name]; s != nil {
		s.Rejoin()
	} else {
		jsCall(r.t, r.ctx, nil, "rejoin", name)
	}
	r.present = append(r.present, name)
	r.announce()
}

// startPublishing makes name a publisher: its key goes to its members,
// unless views disagree.
func (r *admRoom) startPublishing(name string) {
	r.t.Helper()
	if s := r.gos[name]; s != nil {
		s.StartPublishing()
		return
	}
	jsCall(r.t, r.ctx, nil, "startPublishing", name)
}

func (r *admRoom) publicKey(name string) string {
	if s := r.gos[name]; s != nil {
		return s.PublicKey()
	}
	return r.js[name]
}

func (r *admRoom) isGo(name string) bool { return r.gos[name] != nil }

// announce tells every participant present who is in the room.
func (r *admRoom) announce() {
	r.t.Helper()
	type peer struct {
		Identity  string `json:"identity"`
		PublicKey string `json:"publicKey"`
		Held      bool   `json:"held,omitempty"`
	}
	for _, n := range r.present {
		var peers []e2ee.Peer
		others := []peer{}
		for _, o := range r.present {
			held := r.holds[n][o]
			peers = append(peers, e2ee.Peer{Identity: o, PublicKey: r.publicKey(o), Held: held})
			if o != n {
				others = append(others, peer{o, r.publicKey(o), held})
			}
		}
		for _, g := range r.ghosts[n] {
			peers = append(peers, e2ee.Peer{Identity: g.name, PublicKey: g.pub})
			others = append(others, peer{Identity: g.name, PublicKey: g.pub})
		}
		if s := r.gos[n]; s != nil {
			s.SetMembers(peers)
			continue
		}
		jsCall(r.t, r.ctx, nil, "setMembers", n, others)
	}
}

func messageType(msg json.RawMessage) string {
	var m struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(msg, &m)
	return m.Type
}

// deliver hands msg from from to name: "ok", or why it was refused (for
// Go, the error; for the browser, the error's class).
func (r *admRoom) deliver(name, from string, msg json.RawMessage) (string, error) {
	r.t.Helper()
	r.mu.Lock()
	r.delivered = append(r.delivered, admDelivery{from, name, msg})
	r.mu.Unlock()
	if s := r.gos[name]; s != nil {
		if err := s.HandleMessage(from, msg); err != nil {
			return err.Error(), err
		}
		return "ok", nil
	}
	var res string
	jsCall(r.t, r.ctx, &res, "handle", name, from, string(msg))
	if res != "ok" {
		return res, errors.New(res)
	}
	return "ok", nil
}

// pump delivers messages, Go's and the browser's, until none is left;
// every one must be accepted.
func (r *admRoom) pump() {
	r.t.Helper()
	for {
		for name := range r.js {
			var out []struct {
				To  []string
				Msg string
			}
			jsCall(r.t, r.ctx, &out, "takeOutbox", name)
			r.mu.Lock()
			for _, m := range out {
				r.queue = append(r.queue, admRelay{from: name, to: m.To, msg: json.RawMessage(m.Msg)})
				r.sent = append(r.sent, admRelay{from: name, to: m.To, msg: json.RawMessage(m.Msg)})
			}
			r.mu.Unlock()
		}
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.mu.Unlock()
			return
		}
		m := r.queue[0]
		r.queue = r.queue[1:]
		to := m.to
		if to == nil {
			to = slices.Clone(r.present)
		}
		var targets []string
		for _, name := range to {
			if name == m.from || !slices.Contains(r.present, name) {
				continue
			}
			if r.drop != nil && r.drop(m.from, name, messageType(m.msg)) {
				r.held = append(r.held, admRelay{from: m.from, to: []string{name}, msg: m.msg})
				continue
			}
			targets = append(targets, name)
		}
		r.mu.Unlock()
		for _, name := range targets {
			if why, err := r.deliver(name, m.from, m.msg); err != nil {
				r.t.Fatalf("%s refused a message of %s: %s\n%s", name, m.from, why, m.msg)
			}
		}
	}
}

// release delivers what drop held back (with pump), and holds no more.
func (r *admRoom) release() {
	r.t.Helper()
	r.mu.Lock()
	r.drop = nil
	r.queue = append(r.queue, r.held...)
	r.held = nil
	r.mu.Unlock()
	r.pump()
}

// eventsOf returns every membership event name had so far.
func (r *admRoom) eventsOf(name string) []admEvent {
	r.t.Helper()
	if _, ok := r.js[name]; ok {
		var evs []admEvent
		jsCall(r.t, r.ctx, &evs, "events", name)
		r.mu.Lock()
		r.events[name] = append(r.events[name], evs...)
		r.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events[name])
}

// forget drops the events of name (and of everyone, with no name) had so far.
func (r *admRoom) forget(names ...string) {
	r.t.Helper()
	if len(names) == 0 {
		names = slices.Clone(r.present)
	}
	for _, n := range names {
		r.eventsOf(n)
		r.mu.Lock()
		r.events[n] = nil
		r.mu.Unlock()
	}
}

func (r *admRoom) hasEvent(name, kind, identity, by string) bool {
	return slices.ContainsFunc(r.eventsOf(name), func(e admEvent) bool { return e.Kind == kind && e.Identity == identity && e.By == by })
}

func (r *admRoom) wantEvent(name, kind, identity, by string) {
	r.t.Helper()
	if !r.hasEvent(name, kind, identity, by) {
		r.t.Fatalf("%s had no %s event for %q by %q: %+v", name, kind, identity, by, r.eventsOf(name))
	}
}

// waitEvent waits (up to browserTimeout) for an event of name that ok
// takes, and returns it.
func (r *admRoom) waitEvent(name, what string, ok func(admEvent) bool) admEvent {
	r.t.Helper()
	deadline := time.Now().Add(browserTimeout)
	for {
		if i := slices.IndexFunc(r.eventsOf(name), ok); i >= 0 {
			return r.eventsOf(name)[i]
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: no %s within %v; events %+v", name, what, browserTimeout, r.eventsOf(name))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *admRoom) status(name string) admStatus {
	r.t.Helper()
	if s := r.gos[name]; s != nil {
		st := s.RosterStatus()
		return admStatus{st.Admitted, st.Refused, st.Agreed, st.Alert, goMismatches(st.Mismatches)}
	}
	var st admStatus
	jsCall(r.t, r.ctx, &st, "rosterStatus", name)
	st.Mismatches = normalMismatches(st.Mismatches)
	return st
}

func (r *admRoom) participants(name string) []admParticipant {
	r.t.Helper()
	if s := r.gos[name]; s != nil {
		var ps []admParticipant
		for _, p := range s.Participants() {
			ps = append(ps, admParticipant{p.Identity, hex.EncodeToString(p.IdentityKey), p.State.String(), p.By, p.Root})
		}
		return ps
	}
	var ps []admParticipant
	jsCall(r.t, r.ctx, &ps, "participants", name)
	return ps
}

func (r *admRoom) participant(name, of string) admParticipant {
	r.t.Helper()
	for _, p := range r.participants(name) {
		if p.Identity == of {
			return p
		}
	}
	r.t.Fatalf("%s does not list %s: %+v", name, of, r.participants(name))
	return admParticipant{}
}

// admit makes name admit (or refuse) identity: "" or the error's kind.
func (r *admRoom) admit(name, identity string, refuse bool) string {
	r.t.Helper()
	if s := r.gos[name]; s != nil {
		f := s.Admit
		if refuse {
			f = s.Refuse
		}
		switch err := f(identity); {
		case err == nil:
			return ""
		case errors.Is(err, e2ee.ErrNotAdmitted):
			return "NotAdmittedError"
		case errors.Is(err, e2ee.ErrNotWaiting):
			return "NotWaitingError"
		default:
			return err.Error()
		}
	}
	fn := "admitParticipant"
	if refuse {
		fn = "refuseParticipant"
	}
	var res string
	jsCall(r.t, r.ctx, &res, fn, name, identity)
	if res == "ok" {
		return ""
	}
	return res
}

func (r *admRoom) mustAdmit(name, identity string) {
	r.t.Helper()
	if err := r.admit(name, identity, false); err != "" {
		r.t.Fatalf("%s admitting %s: %s", name, identity, err)
	}
}

func (r *admRoom) mustRefuse(name, identity string) {
	r.t.Helper()
	if err := r.admit(name, identity, true); err != "" {
		r.t.Fatalf("%s refusing %s: %s", name, identity, err)
	}
}

// keysFrom is how many keys name took from sender.
func (r *admRoom) keysFrom(name, sender string) int {
	r.t.Helper()
	n := 0
	if r.isGo(name) {
		r.mu.Lock()
		for _, e := range r.logs[name] {
			if e.Sender == sender {
				n++
			}
		}
		r.mu.Unlock()
		return n
	}
	var st struct {
		Log []struct{ Sender string }
	}
	jsCall(r.t, r.ctx, &st, "state", name)
	for _, e := range st.Log {
		if e.Sender == sender {
			n++
		}
	}
	return n
}

// keysFromOthers is how many keys name took from anyone else.
func (r *admRoom) keysFromOthers(name string) int {
	r.t.Helper()
	n := 0
	for _, o := range r.present {
		if o != name {
			n += r.keysFrom(name, o)
		}
	}
	return n
}

type jsKeyStats struct {
	KeysSent, KeysReceived, BadKeyMessages, ReplayedKeyMessages int
}

func (r *admRoom) keyStats(name string) jsKeyStats {
	r.t.Helper()
	if s := r.gos[name]; s != nil {
		st := s.Stats()
		return jsKeyStats{int(st.KeysSent), int(st.KeysReceived), int(st.BadKeyMessages), int(st.ReplayedKeyMessages)}
	}
	var st struct{ Stats jsKeyStats }
	jsCall(r.t, r.ctx, &st, "state", name)
	return st.Stats
}

func (r *admRoom) safetyNumber(name string) string {
	r.t.Helper()
	if s := r.gos[name]; s != nil {
		return s.SafetyNumber()
	}
	var st struct{ SafetyNumber string }
	jsCall(r.t, r.ctx, &st, "state", name)
	return st.SafetyNumber
}

// decrypts reports whether a frame sender encrypts now decrypts at
// receiver.
func (r *admRoom) decrypts(sender, receiver string) bool {
	r.t.Helper()
	frame := []byte{0xfc, 1, 2, 3, 4, 5}
	var wire []byte
	if s := r.gos[sender]; s != nil {
		w, err := s.EncryptFrame(e2ee.CodecOpus, frame)
		if err != nil {
			r.t.Fatal(err)
		}
		wire = w
	} else {
		var res struct{ Wire, Error, Message string }
		jsCall(r.t, r.ctx, &res, "encrypt", sender, "opus", hex.EncodeToString(frame))
		if res.Error != "" {
			return false
		}
		wire, _ = hex.DecodeString(res.Wire)
	}
	if s := r.gos[receiver]; s != nil {
		got, _, err := s.DecryptFrame(sender, e2ee.CodecOpus, wire)
		return err == nil && bytes.Equal(got, frame)
	}
	var res struct{ Data, Error string }
	jsCall(r.t, r.ctx, &res, "decrypt", receiver, sender, "opus", hex.EncodeToString(wire))
	return res.Error == "" && res.Data == hex.EncodeToString(frame)
}

// allAgree checks that everyone present is admitted and agrees, that
// frames decrypt between every two, and that the safety numbers match.
func (r *admRoom) allAgree(what string) {
	r.t.Helper()
	numbers := map[string]string{}
	for _, n := range r.present {
		if st := r.status(n); !st.Admitted || !st.Agreed || st.Alert || len(st.Mismatches) != 0 {
			r.t.Fatalf("%s: %s: %+v", what, n, st)
		}
		numbers[n] = r.safetyNumber(n)
	}
	checkSameSafetyNumbers(r.t, what, numbers)
	for _, a := range r.present {
		for _, b := range r.present {
			if a != b && !r.decrypts(a, b) {
				r.t.Errorf("%s: %s's frames do not decrypt at %s", what, a, b)
			}
		}
	}
}

// founderAdmitsNewcomer: founder, alone, is a member at once; newcomer
// joins and waits, with no key either way; the founder admits it, while
// the node holds the newcomer's views back from the founder: the
// newcomer is admitted and sends its key, but the founder, which starts
// publishing then, sends none until the newcomer's view agrees with its
// own; then keys flow both ways.
func (r *admRoom) founderAdmitsNewcomer(founder string, founderGo bool, newcomer string, newcomerGo bool) {
	t := r.t
	t.Helper()
	r.joinAs(founder, founderGo, false)
	r.pump()
	if st := r.status(founder); !st.Admitted || !st.Agreed {
		t.Fatalf("%s alone in the call: %+v", founder, st)
	}
	r.wantEvent(founder, "selfadmitted", "", "")

	r.join(newcomer, newcomerGo)
	r.pump()
	if st := r.status(newcomer); st.Admitted || st.Agreed {
		t.Fatalf("%s admitted itself: %+v", newcomer, st)
	}
	var key string
	for _, e := range r.eventsOf(founder) {
		if e.Kind == "waiting" && e.Identity == newcomer {
			key = e.IdentityKey
		}
	}
	if key == "" || key != r.participant(founder, newcomer).IdentityKey {
		t.Fatalf("%s was not told %s waits, with its key: %+v", founder, newcomer, r.eventsOf(founder))
	}
	if p := r.participant(founder, newcomer); p.State != "waiting" || p.Root {
		t.Fatalf("%s sees %s as %+v", founder, newcomer, p)
	}
	// The founder's view came: the newcomer counts it as a member present
	// before it (a root), with no admitter.
	if p := r.participant(newcomer, founder); p.State != "member" || !p.Root || p.By != "" {
		t.Fatalf("%s sees %s as %+v", newcomer, founder, p)
	}
	r.wantEvent(newcomer, "admitted", founder, "")
	if n, m := r.keysFrom(newcomer, founder), r.keysFrom(founder, newcomer); n != 0 || m != 0 {
		t.Fatalf("keys before anyone admitted %s: %d to it, %d from it", newcomer, n, m)
	}
	if err := r.admit(newcomer, founder, false); err != "NotAdmittedError" {
		t.Fatalf("%s, waiting, admitting: %q, want NotAdmittedError", newcomer, err)
	}
	if err := r.admit(founder, "nobody", false); err != "NotWaitingError" {
		t.Fatalf("%s admitting nobody: %q, want NotWaitingError", founder, err)
	}
	if err := r.admit(founder, founder, false); err != "NotWaitingError" {
		t.Fatalf("%s admitting itself: %q, want NotWaitingError", founder, err)
	}

	// The node holds the newcomer's views back from the founder.
	r.drop = func(from, to, typ string) bool { return from == newcomer && to == founder && typ == "roster" }
	r.mustAdmit(founder, newcomer)
	r.pump()
	r.startPublishing(founder)
	r.pump()
	if st := r.status(newcomer); !st.Admitted || !st.Agreed {
		t.Fatalf("%s after %s admitted it: %+v", newcomer, founder, st)
	}
	r.wantEvent(newcomer, "selfadmitted", "", founder)
	r.wantEvent(founder, "admitted", newcomer, founder)
	st := r.status(founder)
	if !st.Admitted || st.Agreed || len(st.Mismatches) != 1 || st.Mismatches[0].Member != newcomer || !st.Mismatches[0].Missing {
		t.Fatalf("%s without %s's view: %+v", founder, newcomer, st)
	}
	if n := r.keysFrom(newcomer, founder); n != 0 {
		t.Fatalf("%s sent %s %d keys before its view came", founder, newcomer, n)
	}
	if n := r.keyStats(founder).KeysSent; n != 0 {
		t.Fatalf("%s sent %d key messages before the views agreed", founder, n)
	}
	if n := r.keysFrom(founder, newcomer); n != 1 {
		t.Fatalf("%s took %d keys from %s, who agrees and was admitted, want 1", founder, n, newcomer)
	}
	r.release()
	r.allAgree("after " + founder + " admitted " + newcomer)
	if n, m := r.keysFrom(newcomer, founder), r.keysFrom(founder, newcomer); n != 1 || m != 1 {
		t.Fatalf("keys once the views agree: %d to %s, %d from it; want one each", n, newcomer, m)
	}
	for _, n := range []string{founder, newcomer} {
		if st := r.keyStats(n); st.BadKeyMessages != 0 {
			t.Fatalf("%s refused messages: %+v", n, st)
		}
	}
	if p := r.participant(founder, newcomer); p.State != "member" || p.By != founder {
		t.Fatalf("%s sees %s as %+v", founder, newcomer, p)
	}
}

// thirdParties, after founderAdmitsNewcomer("gopher", Go, "jessie",
// browser): carol (Go) comes; gopher refuses her, and jessie and carol
// are told so; jessie admits her, and gopher takes jessie's admission.
// dave (browser) comes; jessie refuses him; gopher admits him, and jessie
// takes gopher's admission.
func (r *admRoom) thirdParties() {
	t := r.t
	t.Helper()
	r.forget()
	r.join("carol", true)
	r.pump()
	for _, n := range []string{"gopher", "jessie"} {
		r.wantEvent(n, "waiting", "carol", "")
	}
	r.mustRefuse("gopher", "carol")
	r.pump()
	r.wantEvent("jessie", "refused", "carol", "gopher")
	r.wantEvent("carol", "selfrefused", "", "gopher")
	if st := r.status("carol"); st.Admitted || !st.Refused {
		t.Fatalf("carol after gopher refused her: %+v", st)
	}
	if p := r.participant("jessie", "carol"); p.State != "refused" || p.By != "gopher" {
		t.Fatalf("jessie sees carol as %+v", p)
	}
	if n := r.keysFromOthers("carol"); n != 0 {
		t.Fatalf("carol took %d keys, refused", n)
	}
	r.mustAdmit("jessie", "carol")
	r.pump()
	r.wantEvent("gopher", "admitted", "carol", "jessie")
	r.wantEvent("carol", "selfadmitted", "", "jessie")
	r.allAgree("after jessie admitted carol")

	r.forget()
	r.join("dave", false)
	r.pump()
	for _, n := range []string{"gopher", "jessie", "carol"} {
		r.wantEvent(n, "waiting", "dave", "")
	}
	r.mustRefuse("jessie", "dave")
	r.pump()
	r.wantEvent("gopher", "refused", "dave", "jessie")
	r.wantEvent("dave", "selfrefused", "", "jessie")
	if st := r.status("dave"); st.Admitted || !st.Refused {
		t.Fatalf("dave after jessie refused him: %+v", st)
	}
	if err := r.admit("dave", "gopher", true); err != "NotAdmittedError" {
		t.Fatalf("dave, waiting, refusing: %q, want NotAdmittedError", err)
	}
	r.mustAdmit("gopher", "dave")
	r.pump()
	r.wantEvent("jessie", "admitted", "dave", "gopher")
	r.wantEvent("carol", "admitted", "dave", "gopher")
	r.wantEvent("dave", "selfadmitted", "", "gopher")
	if err := r.admit("jessie", "dave", false); err != "NotWaitingError" {
		t.Fatalf("jessie admitting dave, a member: %q, want NotWaitingError", err)
	}
	r.allAgree("after gopher admitted dave")
}

// rejoins, after thirdParties: jessie (browser), then gopher (Go), drop
// and come back as after a reconnect: waiting again, each is admitted
// again by those who admitted anyone present (every member remembers),
// and sends a fresh key.
func (r *admRoom) rejoins() {
	t := r.t
	t.Helper()
	for _, who := range []string{"jessie", "gopher"} {
		r.forget()
		before := r.keysFrom("carol", who)
		r.leave(who)
		r.pump()
		r.back(who)
		if st := r.status(who); st.Admitted {
			t.Fatalf("%s admitted before anyone admitted it again: %+v", who, st)
		}
		r.pump()
		// Only a member that admitted who before admits it again on its
		// own; one that had who as a root does not (its trust came from
		// the node's list). gopher founded the call, so nobody admitted
		// it: jessie admits it by hand.
		admitter := map[string]string{"jessie": "gopher"}[who]
		if admitter == "" {
			if !r.hasEvent("jessie", "waiting", who, "") {
				t.Fatalf("jessie was not asked about %s, a root of hers, back: %+v", who, r.eventsOf("jessie"))
			}
			r.mustAdmit("jessie", who)
			r.pump()
			admitter = "jessie"
		}
		evs := r.eventsOf(who)
		i := slices.IndexFunc(evs, func(e admEvent) bool { return e.Kind == "selfadmitted" })
		if i < 0 || evs[i].By == "" || evs[i].By == who {
			t.Fatalf("%s back: %+v; want admitted again by a member", who, evs)
		}
		r.wantEvent(admitter, "admitted", who, admitter)
		if r.hasEvent(admitter, "waiting", who, "") && admitter == "gopher" {
			t.Fatalf("%s was asked about %s, whom it admitted before", admitter, who)
		}
		for _, n := range r.present {
			if n != who && n != admitter {
				r.wantEvent(n, "admitted", who, admitter)
			}
		}
		r.allAgree(who + " back")
		if r.keysFrom("carol", who) <= before {
			t.Fatalf("carol has no new key of %s after its return", who)
		}
	}
}

// heldOut: viewer holds newcomer out of its keys (a key change awaits
// its user) while another member admits newcomer: viewer counts it in the
// roster (a member, the views agree) but no key goes either way between
// them. Then next comes and newcomer admits it: the others take that
// admission, viewer does not (a held participant's admissions do not
// count), so viewer's view lacks next and keys wait. When viewer stops
// holding newcomer out, keys flow, newcomer's admission counts after all,
// and every view agrees.
func (r *admRoom) heldOut(viewer, newcomer string, newcomerGo bool, next string, nextGo bool) {
	t := r.t
	t.Helper()
	r.forget()
	r.holds[viewer] = map[string]bool{newcomer: true}
	r.join(newcomer, newcomerGo)
	r.pump()
	admitter := "gopher"
	if viewer == admitter {
		admitter = "jessie"
	}
	r.wantEvent(viewer, "waiting", newcomer, "")
	r.mustAdmit(admitter, newcomer)
	r.pump()
	r.wantEvent(viewer, "admitted", newcomer, admitter)
	if p := r.participant(viewer, newcomer); p.State != "member" || p.By != admitter {
		t.Fatalf("%s sees %s, held out, as %+v", viewer, newcomer, p)
	}
	for _, n := range r.present {
		if st := r.status(n); !st.Admitted || !st.Agreed {
			t.Fatalf("%s with %s held out by %s: %+v; want the views to agree", n, newcomer, viewer, st)
		}
	}
	if a, b := r.keysFrom(viewer, newcomer), r.keysFrom(newcomer, viewer); a != 0 || b != 0 {
		t.Fatalf("keys between %s and %s, held out: %d one way, %d the other", viewer, newcomer, a, b)
	}
	if r.decrypts(newcomer, viewer) || r.decrypts(viewer, newcomer) {
		t.Fatalf("frames between %s and %s, held out, decrypt", viewer, newcomer)
	}
	if !r.decrypts(admitter, newcomer) || !r.decrypts(newcomer, admitter) {
		t.Fatalf("frames between %s and %s do not decrypt", admitter, newcomer)
	}

	r.join(next, nextGo)
	r.pump()
	r.mustAdmit(newcomer, next)
	r.pump()
	r.wantEvent(admitter, "admitted", next, newcomer)
	if p := r.participant(viewer, next); p.State != "waiting" {
		t.Fatalf("%s took the admission of %s by %s, whom it holds out: %+v", viewer, next, newcomer, p)
	}
	if st := r.status(viewer); !st.Admitted || st.Agreed {
		t.Fatalf("%s not counting %s: %+v; want keys held", viewer, next, st)
	}
	if k := r.keysFrom(next, viewer); k != 0 {
		t.Fatalf("%s sent %s %d keys", viewer, next, k)
	}

	r.holds[viewer] = nil
	r.announce()
	r.pump()
	r.wantEvent(viewer, "admitted", next, newcomer)
	r.allAgree(viewer + " holds nobody out")
}

// droppedViews: once gopher (Go), jessie (browser) and carol (Go) agree,
// erin (browser) comes and gopher admits her, but the node drops every
// view of hers: after the roster timeout gopher, jessie and carol all
// raise the alert naming erin, her view missing, and send her no key.
// Released, the views agree and the alert ends. Then fred (Go) comes and
// jessie admits him, but the node drops carol's views to gopher and
// jessie: both raise the alert naming carol, whose view lacks fred.
func (r *admRoom) droppedViews() {
	t := r.t
	t.Helper()
	r.join("gopher", true)
	r.pump()
	r.join("jessie", false)
	r.pump()
	r.mustAdmit("gopher", "jessie")
	r.pump()
	r.join("carol", true)
	r.pump()
	r.mustAdmit("jessie", "carol")
	r.pump()
	r.allAgree("three")
	r.forget()

	r.join("erin", false)
	r.drop = func(from, to, typ string) bool { return from == "erin" && typ == "roster" }
	r.pump()
	r.mustAdmit("gopher", "erin")
	r.pump()
	want := []admMismatch{{Member: "erin", Missing: true, OnlyTheirs: []string{}, OnlyMine: []string{}}}
	r.expectAlert([]string{"gopher", "jessie", "carol"}, want)
	for _, n := range []string{"gopher", "jessie", "carol"} {
		if k := r.keysFrom("erin", n); k != 0 {
			t.Errorf("%s sent erin %d keys, her view missing", n, k)
		}
	}
	r.release()
	for _, n := range []string{"gopher", "jessie", "carol"} {
		r.waitEvent(n, "rosteragreed", func(e admEvent) bool { return e.Kind == "rosteragreed" })
	}
	r.allAgree("erin's views released")
	r.forget()

	r.join("fred", true)
	r.drop = func(from, to, typ string) bool {
		return from == "carol" && (to == "gopher" || to == "jessie") && typ == "roster"
	}
	r.pump()
	r.mustAdmit("jessie", "fred")
	r.pump()
	want = []admMismatch{{Member: "carol", OnlyTheirs: []string{}, OnlyMine: []string{"fred"}}}
	r.expectAlert([]string{"gopher", "jessie"}, want)
	r.release()
	for _, n := range []string{"gopher", "jessie"} {
		r.waitEvent(n, "rosteragreed", func(e admEvent) bool { return e.Kind == "rosteragreed" })
	}
	r.allAgree("carol's views released")
}

// expectAlert waits for each of names to raise the alert with exactly
// want, and checks each one's status says so, keys held.
func (r *admRoom) expectAlert(names []string, want []admMismatch) {
	r.t.Helper()
	for _, n := range names {
		r.waitEvent(n, fmt.Sprintf("alert %+v", want), func(e admEvent) bool {
			return e.Kind == "rostermismatch" && fmt.Sprint(normalMismatches(e.Mismatches)) == fmt.Sprint(want)
		})
		st := r.status(n)
		if !st.Admitted || st.Agreed || !st.Alert || fmt.Sprint(st.Mismatches) != fmt.Sprint(want) {
			r.t.Fatalf("%s during the alert: %+v, want mismatches %+v", n, st, want)
		}
	}
}

// forgeries, after thirdParties: replayed and misattributed views, and
// admissions the node could make or replay, are refused by Go and the
// browser alike, and admit nobody.
func (r *admRoom) forgeries() {
	t := r.t
	t.Helper()
	// Every view delivered so far comes back: refused as a replay by both
	// sides, whoever signed it.
	r.mu.Lock()
	var views []admDelivery
	for _, d := range r.delivered {
		if messageType(d.msg) == "roster" {
			views = append(views, d)
		}
	}
	r.mu.Unlock()
	replayed := 0
	for _, d := range views {
		for _, to := range []string{"gopher", "jessie"} {
			if to == d.from {
				continue
			}
			before := r.keyStats(to)
			why, err := r.deliver(to, d.from, d.msg)
			if err == nil {
				t.Fatalf("%s took a replayed view of %s: %s", to, d.from, d.msg)
			}
			if r.isGo(to) && !errors.Is(err, e2ee.ErrReplayedKey) {
				t.Fatalf("Go %s refused a replayed view of %s, but not as a replay: %s", to, d.from, why)
			}
			if after := r.keyStats(to); after.ReplayedKeyMessages != before.ReplayedKeyMessages+1 || after.BadKeyMessages != before.BadKeyMessages+1 {
				t.Fatalf("%s's counters after a replayed view: %+v, before %+v", to, after, before)
			}
			replayed++
		}
	}
	if replayed < 10 {
		t.Fatalf("only %d views replayed", replayed)
	}
	// A view relayed as another member's.
	for _, to := range []string{"gopher", "jessie"} {
		var v admDelivery
		for _, d := range views {
			if d.from == "carol" {
				v = d
			}
		}
		if why, err := r.deliver(to, "dave", v.msg); err == nil || (!r.isGo(to) && why != "KeyMessageError") {
			t.Fatalf("%s took carol's view as dave's: %s", to, why)
		}
	}

	// mallory (Go) comes and waits.
	r.forget()
	r.join("mallory", true)
	r.pump()
	mallory := r.participant("gopher", "mallory").IdentityKey
	malloryKey, _ := hex.DecodeString(mallory)
	gopherID := r.ids["gopher"]
	admission := func(a e2ee.Admission, signer *e2ee.Identity) string {
		s, err := e2ee.Admit(signer, a)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()
	good := e2ee.Admission{Room: r.name, Admitter: "gopher", AdmitterKey: gopherID.PublicKey(), Admitted: "mallory", AdmittedKey: malloryKey, UnixMilli: now.UnixMilli()}
	genuine := admission(good, gopherID)
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(genuine, admitPrefix))
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 1
	badSig := admitPrefix + base64.RawURLEncoding.EncodeToString(raw)
	otherRoom := good
	otherRoom.Room = r.name + " next door"
	stale := good
	stale.UnixMilli = now.Add(-10 * time.Minute).UnixMilli()
	future := good
	future.UnixMilli = now.Add(10 * time.Minute).UnixMilli()
	refused := map[string]string{
		"bad signature":    badSig,
		"another room":     admission(otherRoom, gopherID),
		"too old":          admission(stale, gopherID),
		"too far ahead":    admission(future, gopherID),
		"not an admission": admitPrefix + "AAAA",
	}
	// What parses and is in time, but admits nobody: "gopher" with a key
	// the node made, and gopher's own admission of someone else by that
	// name (another key).
	fake, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	byFake := good
	byFake.AdmitterKey = fake.PublicKey()
	otherPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherMallory := good
	otherMallory.AdmittedKey = otherPub
	inert := map[string]string{
		"signed by a key gopher never announced": admission(byFake, fake),
		"of mallory with another key":            admission(otherMallory, gopherID),
	}
	msg := func(a string) json.RawMessage {
		b, err := json.Marshal(goKeyMessage{Version: 2, Type: "admit", Admission: a})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for what, a := range refused {
		for _, to := range []string{"gopher", "jessie", "mallory"} {
			why, err := r.deliver(to, "gopher", msg(a))
			switch {
			case err == nil:
				t.Errorf("%s took an admission (%s)", to, what)
			case r.isGo(to) && !errors.Is(err, e2ee.ErrKeyMessage):
				t.Errorf("Go %s refused an admission (%s) with %s", to, what, why)
			case !r.isGo(to) && why != "KeyMessageError":
				t.Errorf("browser %s refused an admission (%s) with %s", to, what, why)
			}
		}
	}
	// An admission of someone both count as a member already is skipped
	// unchecked (Go's alreadyAdmitted): a broken signature changes nothing.
	daveKey, _ := hex.DecodeString(r.participant("gopher", "dave").IdentityKey)
	ofDave := good
	ofDave.Admitted, ofDave.AdmittedKey = "dave", daveKey
	raw, err = base64.RawURLEncoding.DecodeString(strings.TrimPrefix(admission(ofDave, gopherID), admitPrefix))
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 1
	for _, to := range []string{"gopher", "jessie"} {
		before := r.keyStats(to)
		if why, err := r.deliver(to, "gopher", msg(admitPrefix+base64.RawURLEncoding.EncodeToString(raw))); err != nil {
			t.Errorf("%s refused an admission of dave, a member, instead of skipping it: %s", to, why)
		}
		if after := r.keyStats(to); after != before {
			t.Errorf("%s's counters after an admission of a member: %+v, before %+v", to, after, before)
		}
	}
	for what, a := range inert {
		for _, to := range []string{"gopher", "jessie", "mallory"} {
			if why, err := r.deliver(to, "gopher", msg(a)); err != nil {
				t.Errorf("%s refused a well-formed admission (%s): %s", to, what, why)
			}
		}
	}
	r.pump()
	for _, n := range []string{"gopher", "jessie"} {
		if p := r.participant(n, "mallory"); p.State != "waiting" {
			t.Errorf("%s sees mallory as %+v after forged admissions", n, p)
		}
		if r.hasEvent(n, "admitted", "mallory", "gopher") {
			t.Errorf("%s reports mallory admitted", n)
		}
	}
	if st := r.status("mallory"); st.Admitted {
		t.Errorf("mallory admitted by forged admissions: %+v", st)
	}
	if n := r.keysFromOthers("mallory"); n != 0 {
		t.Errorf("mallory took %d keys", n)
	}
	// The genuine one admits her, everywhere.
	for _, to := range []string{"jessie", "mallory", "carol", "dave"} {
		if why, err := r.deliver(to, "gopher", msg(genuine)); err != nil {
			t.Fatalf("%s refused gopher's genuine admission: %s", to, why)
		}
	}
	r.pump()
	r.wantEvent("jessie", "admitted", "mallory", "gopher")
	// gopher itself never signed it: it still counts mallory as waiting,
	// so the views disagree until it admits her too.
	if p := r.participant("gopher", "mallory"); p.State != "waiting" {
		t.Fatalf("gopher sees mallory as %+v", p)
	}
	r.mustAdmit("gopher", "mallory")
	r.pump()
	r.allAgree("mallory admitted")
}

// goKeyMessage is media/e2ee's keyMessage, as json.Marshal writes it.
type goKeyMessage struct {
	Version   int               `json:"sotto_e2ee"`
	Type      string            `json:"type"`
	KID       uint64            `json:"kid"`
	Boxes     map[string]string `json:"boxes,omitempty"`
	Admission string            `json:"admission,omitempty"`
	Roster    string            `json:"roster,omitempty"`
	Identity  string            `json:"identity,omitempty"`
}

// checkWire: every admission, view and refusal delivered, the browser's
// as Go's, is byte for byte what Go's json.Marshal makes of its fields.
func (r *admRoom) checkWire() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	sent := map[string]map[string]int{"go": {}, "browser": {}}
	for _, d := range r.delivered {
		typ := messageType(d.msg)
		if typ != "admit" && typ != "roster" && typ != "refuse" {
			continue
		}
		var m goKeyMessage
		if err := json.Unmarshal(d.msg, &m); err != nil {
			r.t.Fatalf("%s's %s: %v", d.from, d.msg, err)
		}
		again, err := json.Marshal(m)
		if err != nil {
			r.t.Fatal(err)
		}
		side := "browser"
		if r.gos[d.from] != nil {
			side = "go"
		}
		if !bytes.Equal(again, d.msg) {
			r.t.Errorf("%s (%s) sent %s; Go writes %s", d.from, side, d.msg, again)
		}
		sent[side][typ]++
	}
	r.t.Logf("admission messages delivered: %v", sent)
}

// admGhost is a participant the node makes up (issue 12's ghost): the
// test holds its identity key, lists it to whom it likes (admRoom.ghosts),
// and signs its views and admissions; the relay delivers it nothing.
type admGhost struct {
	name string
	id   *e2ee.Identity
	pub  string // its announcement
	seq  uint64
}

func (r *admRoom) ghost(name string) *admGhost {
	r.t.Helper()
	id, err := e2ee.NewIdentity()
	if err != nil {
		r.t.Fatal(err)
	}
	sk, err := e2ee.NewSessionKey()
	if err != nil {
		r.t.Fatal(err)
	}
	return &admGhost{name: name, id: id, pub: e2ee.Announce(id, sk), seq: uint64(time.Now().UnixMicro())}
}

// identityKey is the identity key name announced.
func (r *admRoom) identityKey(name string) []byte {
	r.t.Helper()
	ann, err := e2ee.ParseAnnouncement(r.publicKey(name))
	if err != nil {
		r.t.Fatal(err)
	}
	return ann.Identity
}

// view is a roster view g signs, listing itself and names.
func (g *admGhost) view(r *admRoom, names ...string) json.RawMessage {
	r.t.Helper()
	g.seq++
	es := []e2ee.RosterEntry{{Name: g.name, Key: g.id.PublicKey()}}
	for _, n := range names {
		es = append(es, e2ee.RosterEntry{Name: n, Key: r.identityKey(n)})
	}
	str, err := e2ee.SignRoster(g.id, e2ee.RosterView{Room: r.name, Member: g.name, MemberKey: g.id.PublicKey(), Seq: g.seq, Participants: es})
	if err != nil {
		r.t.Fatal(err)
	}
	msg, err := json.Marshal(goKeyMessage{Version: 2, Type: "roster", Roster: str})
	if err != nil {
		r.t.Fatal(err)
	}
	return msg
}

// admission is g's signed admission of name.
func (g *admGhost) admission(r *admRoom, name string) json.RawMessage {
	r.t.Helper()
	str, err := e2ee.Admit(g.id, e2ee.Admission{Room: r.name, Admitter: g.name, AdmitterKey: g.id.PublicKey(), Admitted: name, AdmittedKey: r.identityKey(name), UnixMilli: time.Now().UnixMilli()})
	if err != nil {
		r.t.Fatal(err)
	}
	msg, err := json.Marshal(goKeyMessage{Version: 2, Type: "admit", Admission: str})
	if err != nil {
		r.t.Fatal(err)
	}
	return msg
}

// fromGhost hands each of to msg as g's; every one must take it.
func (r *admRoom) fromGhost(g *admGhost, msg json.RawMessage, to ...string) {
	r.t.Helper()
	for _, n := range to {
		if why, err := r.deliver(n, g.name, msg); err != nil {
			r.t.Fatalf("%s refused %s's %s: %s", n, g.name, messageType(msg), why)
		}
	}
}

// keyBoxes lists, for each key message sender sent from the index from
// of r.sent on, the recipients it has a box for, sorted.
func (r *admRoom) keyBoxes(sender string, from int) [][]string {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]string
	for _, m := range r.sent[from:] {
		var k goKeyMessage
		if m.from != sender || json.Unmarshal(m.msg, &k) != nil || k.Type != "key" {
			continue
		}
		to := []string{}
		for n := range k.Boxes {
			to = append(to, n)
		}
		slices.Sort(to)
		out = append(out, to)
	}
	return out
}

// boxedTo reports whether anyone ever sealed a key to name.
func (r *admRoom) boxedTo(name string) bool {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.sent {
		var k goKeyMessage
		if json.Unmarshal(m.msg, &k) == nil && k.Type == "key" {
			if _, ok := k.Boxes[name]; ok {
				return true
			}
		}
	}
	return false
}

// admittedBy lists whom the admissions admitter sent admit, read
// unchecked (the body's admitted field).
func (r *admRoom) admittedBy(admitter string) []string {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.sent {
		var k goKeyMessage
		if m.from != admitter || json.Unmarshal(m.msg, &k) != nil || k.Type != "admit" {
			continue
		}
		a, err := e2ee.ParseAdmission(k.Admission)
		if err != nil {
			r.t.Fatalf("%s sent an admission that does not parse: %v", admitter, err)
		}
		out = append(out, a.Admitted)
	}
	return out
}

// call makes the first of names (Go where goSide says so) found the call
// and each next one join and be admitted by the one before it; every view
// agrees then.
func (r *admRoom) call(names []string, goSide []bool) {
	r.t.Helper()
	for i, n := range names {
		r.join(n, goSide[i])
		r.pump()
		if i > 0 {
			r.mustAdmit(names[i-1], n)
			r.pump()
		}
	}
	r.allAgree(strings.Join(names, ", "))
}

// leaveWhileApart (rule 5's exception): gopher (Go), jessie (browser) and
// carol (Go) agree; erin (browser) comes and gopher admits her, but the
// node drops her views, so that every view of gopher's and jessie's
// disagrees (hers is missing) and erin gets no key. Then carol leaves:
// both send a fresh key at once, each to the other only (the one member
// that had its current key; not erin), so that carol reads neither of
// them any more while erin still gets nothing. Released, erin's views
// agree and keys reach her. Then the same with everyone left having had
// the current key: no further key once views agree.
func (r *admRoom) leaveWhileApart() {
	t := r.t
	t.Helper()
	r.call([]string{"gopher", "jessie", "carol"}, []bool{true, false, true})
	r.join("erin", false)
	r.drop = func(from, to, typ string) bool { return from == "erin" && typ == "roster" }
	r.pump()
	r.mustAdmit("gopher", "erin")
	r.pump()
	for _, n := range []string{"gopher", "jessie", "carol"} {
		if st := r.status(n); !st.Admitted || st.Agreed || st.Alert {
			t.Fatalf("%s, erin's views dropped: %+v; want keys held, no alert yet", n, st)
		}
		if k := r.keysFrom("erin", n); k != 0 {
			t.Fatalf("%s sent erin %d keys, her view missing", n, k)
		}
	}
	r.mu.Lock()
	mark := len(r.sent)
	r.mu.Unlock()
	r.leave("carol")
	r.pump()
	for _, pair := range [][2]string{{"gopher", "jessie"}, {"jessie", "gopher"}} {
		n, other := pair[0], pair[1]
		boxes := r.keyBoxes(n, mark)
		if len(boxes) == 0 {
			t.Fatalf("%s sent no key after carol left while views disagreed", n)
		}
		for _, to := range boxes {
			if !slices.Equal(to, []string{other}) {
				t.Fatalf("%s's keys after carol left went to %v; want only %s, who had its current key", n, boxes, other)
			}
		}
		if st := r.status(n); !st.Admitted || st.Agreed || st.Alert {
			t.Fatalf("%s after carol left: %+v; want keys still held", n, st)
		}
		if k := r.keysFrom("erin", n); k != 0 {
			t.Fatalf("%s sent erin %d keys, her view missing", n, k)
		}
		if !r.decrypts(n, other) {
			t.Fatalf("%s's frames do not decrypt at %s after its fresh key", n, other)
		}
		if r.decrypts(n, "carol") {
			t.Fatalf("carol left, and still decrypts %s's frames", n)
		}
	}
	r.release()
	r.allAgree("erin's views released")
	for _, n := range []string{"gopher", "jessie"} {
		if !r.decrypts(n, "erin") {
			t.Fatalf("%s's frames do not decrypt at erin once views agree", n)
		}
	}

	// fred (Go) comes and is admitted; then the node drops his views, and
	// erin leaves: fred's last view still lists her, so views disagree,
	// and the fresh keys go to everyone left, who all had the current
	// ones. Once fred's views come, nothing more is due: no key follows.
	r.join("fred", true)
	r.pump()
	r.mustAdmit("jessie", "fred")
	r.pump()
	r.allAgree("fred admitted")
	r.drop = func(from, to, typ string) bool { return from == "fred" && typ == "roster" }
	r.mu.Lock()
	mark = len(r.sent)
	r.mu.Unlock()
	r.leave("erin")
	r.pump()
	for _, n := range []string{"gopher", "jessie"} {
		others := slices.DeleteFunc([]string{"fred", "gopher", "jessie"}, func(o string) bool { return o == n })
		boxes := r.keyBoxes(n, mark)
		if len(boxes) == 0 {
			t.Fatalf("%s sent no key after erin left while views disagreed", n)
		}
		for _, to := range boxes {
			if !slices.Equal(to, others) {
				t.Fatalf("%s's keys after erin left went to %v; want %v, who all had its current key", n, boxes, others)
			}
		}
		if st := r.status(n); !st.Admitted || st.Agreed {
			t.Fatalf("%s after erin left, fred's views dropped: %+v; want keys held", n, st)
		}
		if r.decrypts(n, "erin") {
			t.Fatalf("erin left, and still decrypts %s's frames", n)
		}
	}
	r.mu.Lock()
	mark = len(r.sent)
	r.mu.Unlock()
	r.release()
	r.allAgree("fred's views released")
	for _, n := range []string{"gopher", "jessie"} {
		if boxes := r.keyBoxes(n, mark); len(boxes) != 0 {
			t.Fatalf("%s sent keys %v once views agreed, though everyone had its fresh key", n, boxes)
		}
	}
}

// lateRootsTimeout is the roster timeout of lateRoots and silentRoots:
// long enough for a few steps in the browser before it, short enough to
// wait for.
const lateRootsTimeout = 3 * time.Second

// lateRoots (rule 5, roots' time): gopher (Go) and jessie (browser)
// agree. joiner comes, and the node lists it gopher, jessie and a ghost,
// mallory, as present, and holds gopher's and jessie's messages to it
// back. mallory's view (joiner and mallory) and admission make joiner a
// member whose one member, mallory, agrees with it: yet it sends mallory
// no key, gopher and jessie (roots) having neither sent a view nor had
// the roster timeout to. Their views then come: they differ, and the
// alert rises naming them and mallory, with no key ever sealed to
// mallory.
func (r *admRoom) lateRoots(joiner string, joinerGo bool) {
	t := r.t
	t.Helper()
	r.call([]string{"gopher", "jessie"}, []bool{true, false})
	g := r.ghost("mallory")
	r.ghosts[joiner] = []*admGhost{g}
	r.drop = func(from, to, typ string) bool { return to == joiner && (from == "gopher" || from == "jessie") }
	start := time.Now()
	r.join(joiner, joinerGo)
	r.pump()
	r.fromGhost(g, g.view(r, joiner), joiner)
	r.fromGhost(g, g.admission(r, joiner), joiner)
	r.pump()
	st := r.status(joiner)
	if time.Since(start) >= lateRootsTimeout {
		t.Fatalf("too slow: %v since %s joined, the roster timeout is %v", time.Since(start), joiner, lateRootsTimeout)
	}
	if !st.Admitted || st.Agreed || st.Alert || len(st.Mismatches) != 0 {
		t.Fatalf("%s admitted by mallory, whose view agrees, its roots silent: %+v; want admitted, keys held, nothing differing", joiner, st)
	}
	for _, root := range []string{"gopher", "jessie", "mallory"} {
		if p := r.participant(joiner, root); !p.Root {
			t.Fatalf("%s sees %s as %+v; want a root", joiner, root, p)
		}
	}
	if p := r.participant(joiner, "mallory"); p.State != "member" {
		t.Fatalf("%s sees mallory, whose view came, as %+v", joiner, p)
	}
	if r.boxedTo("mallory") {
		t.Fatalf("%s sealed a key to mallory before its roots had time to send their views", joiner)
	}
	r.release()
	want := []admMismatch{
		{Member: "gopher", OnlyTheirs: []string{}, OnlyMine: []string{joiner, "mallory"}},
		{Member: "jessie", OnlyTheirs: []string{}, OnlyMine: []string{joiner, "mallory"}},
		{Member: "mallory", OnlyTheirs: []string{}, OnlyMine: []string{"gopher", "jessie"}},
	}
	r.expectAlert([]string{joiner}, want)
	r.pump()
	if r.boxedTo("mallory") {
		t.Fatalf("a key was sealed to mallory")
	}
}

// silentRoots (rule 5, roots' time, honest): gopher (Go) founds the call;
// wendy (the other side from joiner) joins and waits, unadmitted, so she
// signs no view. joiner comes: gopher and wendy are its roots, and gopher
// admits it. Its views agree with gopher's, but wendy, a root, has sent
// none: joiner holds its key until the roster timeout since it joined,
// then sends it, with no alert, wendy shown waiting.
func (r *admRoom) silentRoots(joiner string, joinerGo bool) {
	t := r.t
	t.Helper()
	r.join("gopher", true)
	r.pump()
	r.join("wendy", !joinerGo)
	r.pump()
	start := time.Now()
	r.join(joiner, joinerGo)
	r.pump()
	r.mustAdmit("gopher", joiner)
	r.pump()
	st := r.status(joiner)
	if time.Since(start) >= lateRootsTimeout {
		t.Fatalf("too slow: %v since %s joined, the roster timeout is %v", time.Since(start), joiner, lateRootsTimeout)
	}
	if !st.Admitted || st.Agreed || st.Alert || len(st.Mismatches) != 0 {
		t.Fatalf("%s, wendy a silent root: %+v; want admitted, keys held, nothing differing", joiner, st)
	}
	if k := r.keysFrom("gopher", joiner); k != 0 {
		t.Fatalf("%s sent gopher %d keys before wendy, a root, had time to send a view", joiner, k)
	}
	if p := r.participant(joiner, "wendy"); p.State != "waiting" || !p.Root {
		t.Fatalf("%s sees wendy as %+v", joiner, p)
	}
	deadline := time.Now().Add(browserTimeout)
	for !r.status(joiner).Agreed {
		if time.Now().After(deadline) {
			t.Fatalf("%s still holds its keys %v after joining: %+v", joiner, time.Since(start), r.status(joiner))
		}
		time.Sleep(50 * time.Millisecond)
		r.pump()
	}
	if since := time.Since(start); since < lateRootsTimeout {
		t.Fatalf("%s sent keys %v after joining, before the roster timeout (%v)", joiner, since, lateRootsTimeout)
	}
	r.pump()
	if slices.ContainsFunc(r.eventsOf(joiner), func(e admEvent) bool { return e.Kind == "rostermismatch" }) {
		t.Fatalf("%s alerted, only a waiting root silent: %+v", joiner, r.eventsOf(joiner))
	}
	r.wantEvent(joiner, "waiting", "wendy", "")
	if k := r.keysFrom("gopher", joiner); k == 0 {
		t.Fatalf("%s sent gopher no key after the roster timeout", joiner)
	}
	if !r.decrypts(joiner, "gopher") || !r.decrypts("gopher", joiner) {
		t.Fatalf("frames between %s and gopher do not decrypt", joiner)
	}
	if r.keysFrom("wendy", joiner) != 0 || r.keysFrom("wendy", "gopher") != 0 {
		t.Fatal("wendy, waiting, got a key")
	}
}

// rootNotReadmitted (rule 3, who is admitted again): gopher (Go) and
// jessie (browser) agree. joiner comes; the node lists it mallory (a
// ghost) as present too, and mallory's view makes it a member for joiner
// (a root), but for nobody else: joiner's views never agree with
// gopher's and jessie's while mallory is there. Then the node shows
// joiner mallory leaving and coming back, and now shows mallory to
// everyone: joiner does not admit it again (no admission of mallory
// leaves it), so it waits everywhere and gets no key. No root is admitted
// again on anyone's own authority, not even one every view agreed on
// (views agreeing prove nothing when every member one has is the node's):
// jessie, back after a reconnect, is admitted again by gopher, who
// admitted her, and joiner takes gopher's admission.
func (r *admRoom) rootNotReadmitted(joiner string, joinerGo bool) {
	t := r.t
	t.Helper()
	r.call([]string{"gopher", "jessie"}, []bool{true, false})
	g := r.ghost("mallory")
	r.ghosts[joiner] = []*admGhost{g}
	r.join(joiner, joinerGo)
	r.pump()
	r.fromGhost(g, g.view(r, joiner, "gopher", "jessie"), joiner)
	r.pump()
	if p := r.participant(joiner, "mallory"); p.State != "member" || !p.Root || p.By != "" {
		t.Fatalf("%s sees mallory, whose view came, as %+v", joiner, p)
	}
	r.mustAdmit("gopher", joiner)
	r.pump()
	if st := r.status(joiner); !st.Admitted || st.Agreed {
		t.Fatalf("%s, mallory listed to it alone: %+v; want admitted, keys held", joiner, st)
	}
	// mallory leaves and comes back in joiner's eyes; the others see her
	// come.
	r.ghosts[joiner] = nil
	r.announce()
	r.pump()
	r.forget()
	for _, n := range []string{"gopher", "jessie", joiner} {
		r.ghosts[n] = []*admGhost{g}
	}
	r.announce()
	r.pump()
	if got := r.admittedBy(joiner); slices.Contains(got, "mallory") {
		t.Fatalf("%s admitted mallory, a root only by its own view, again: its admissions %v", joiner, got)
	}
	for _, n := range []string{"gopher", "jessie", joiner} {
		if p := r.participant(n, "mallory"); p.State != "waiting" {
			t.Fatalf("%s sees mallory, back, as %+v; want waiting", n, p)
		}
		r.wantEvent(n, "waiting", "mallory", "")
		if slices.ContainsFunc(r.eventsOf(n), func(e admEvent) bool { return e.Kind == "admitted" && e.Identity == "mallory" }) {
			t.Fatalf("%s reports mallory admitted: %+v", n, r.eventsOf(n))
		}
	}
	r.allAgree("mallory waiting")
	if r.boxedTo("mallory") {
		t.Fatal("a key was sealed to mallory")
	}
	// jessie, a root of joiner's that gopher admitted, comes back after a
	// reconnect: gopher admits her again, and joiner takes it.
	for _, n := range []string{"gopher", "jessie", joiner} {
		r.ghosts[n] = nil
	}
	r.forget()
	r.leave("jessie")
	r.pump()
	r.back("jessie")
	r.pump()
	r.wantEvent(joiner, "admitted", "jessie", "gopher")
	if slices.Contains(r.admittedBy(joiner), "jessie") {
		t.Fatalf("%s admitted jessie, a root of its, again on its own authority", joiner)
	}
	r.allAgree("jessie back")
}

// massReconnect (rule 1, roots after a reconnect): gopher (Go), jessie
// (browser) and carol (Go) agree. The node drops gopher's and jessie's
// connections at once; both come back (Rejoin) and the node lists each
// the other, carol and a ghost, mallory, whose view (listing all four)
// and admission of each reach them before anything else. Neither takes
// mallory as a root (it was never a member for them): it waits, and its
// admissions count for nothing; carol admits both again (by hand: they
// were her roots), their views agree, and no key is sealed to mallory.
func (r *admRoom) massReconnect() {
	t := r.t
	t.Helper()
	r.call([]string{"gopher", "jessie", "carol"}, []bool{true, false, true})
	g := r.ghost("mallory")
	r.present = []string{"carol"}
	r.announce()
	r.pump()
	r.forget("gopher", "jessie", "carol")
	r.gos["gopher"].Rejoin()
	jsCall(t, r.ctx, nil, "rejoin", "jessie")
	r.present = append(r.present, "gopher", "jessie")
	r.ghosts["gopher"] = []*admGhost{g}
	r.ghosts["jessie"] = []*admGhost{g}
	r.announce()
	// mallory's messages come first.
	v := g.view(r, "gopher", "jessie", "carol")
	for _, n := range []string{"gopher", "jessie"} {
		r.fromGhost(g, v, n)
		r.fromGhost(g, g.admission(r, n), n)
	}
	for _, n := range []string{"gopher", "jessie"} {
		if p := r.participant(n, "mallory"); p.Root || p.State != "waiting" {
			t.Fatalf("%s, back, sees mallory, never a member for it, as %+v; want waiting, not a root", n, p)
		}
		if st := r.status(n); st.Admitted {
			t.Fatalf("%s admitted by mallory's admission: %+v", n, st)
		}
	}
	for _, p := range [][2]string{{"gopher", "jessie"}, {"gopher", "carol"}, {"jessie", "gopher"}, {"jessie", "carol"}} {
		if q := r.participant(p[0], p[1]); !q.Root {
			t.Fatalf("%s, back, sees %s, a member before, as %+v; want a root", p[0], p[1], q)
		}
	}
	// gopher and jessie were carol's roots (there when she joined), so
	// she does not admit them again on her own: she admits them by hand.
	r.mustAdmit("carol", "gopher")
	r.mustAdmit("carol", "jessie")
	r.pump()
	for _, n := range []string{"gopher", "jessie"} {
		r.wantEvent(n, "selfadmitted", "", "carol")
		if p := r.participant(n, "mallory"); p.State != "waiting" {
			t.Fatalf("%s sees mallory as %+v; want waiting", n, p)
		}
	}
	r.allAgree("gopher and jessie back")
	if r.boxedTo("mallory") {
		t.Fatal("a key was sealed to mallory")
	}
}
