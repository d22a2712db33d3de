package e2ee

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// events collects one session's membership events.
type events struct {
	mu      sync.Mutex
	got     []MembershipEvent
	changed chan struct{}
}

func (e *events) add(ev MembershipEvent) {
	e.mu.Lock()
	e.got = append(e.got, ev)
	if e.changed != nil {
		close(e.changed)
	}
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

// waitFor waits, with a generous deadline, for an event of kind k.
func (e *events) waitFor(t *testing.T, k MembershipEventKind) MembershipEvent {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		e.mu.Lock()
		if i := slices.IndexFunc(e.got, func(ev MembershipEvent) bool { return ev.Kind == k }); i >= 0 {
			ev := e.got[i]
			e.mu.Unlock()
			return ev
		}
		if e.changed == nil {
			e.changed = make(chan struct{})
		}
		ch := e.changed
		e.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no %v event; got %v", k, e.kinds())
		}
	}
}

func (e *events) kinds() []MembershipEventKind {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ks []MembershipEventKind
	for _, ev := range e.got {
		ks = append(ks, ev.Kind)
	}
	return ks
}

func (e *events) has(k MembershipEventKind, identity string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.ContainsFunc(e.got, func(ev MembershipEvent) bool { return ev.Kind == k && ev.Identity == identity })
}

// admitting returns options for a session with admission on, its events
// going to ev.
func admitting(ev *events, timeout time.Duration) func(*Options) {
	return func(o *Options) {
		o.Admission = &AdmissionOptions{OnEvent: ev.add, RosterTimeout: timeout}
	}
}

func TestAdmissionByMembers(t *testing.T) {
	r := newRoom(t)
	var ea, eb, ec events
	a := r.join("alice", admitting(&ea, time.Hour))
	r.pump()
	if !a.RosterStatus().Admitted || !ea.has(EventSelfAdmitted, "") {
		t.Fatalf("alone in the call, alice is not admitted: %v", ea.kinds())
	}
	b := r.join("bob", admitting(&eb, time.Hour))
	r.pump()
	if b.RosterStatus().Admitted {
		t.Fatal("bob admitted himself")
	}
	if !ea.has(EventWaiting, "bob") {
		t.Fatalf("alice was not told bob waits: %v", ea.kinds())
	}
	if n := len(r.keys("bob")) - len(r.own("bob")); n != 0 {
		t.Fatalf("bob got %d keys before anyone admitted him", n)
	}
	if err := b.Admit("alice"); err != ErrNotAdmitted {
		t.Fatalf("a waiting participant admitted someone: %v", err)
	}
	if err := a.Admit("bob"); err != nil {
		t.Fatal(err)
	}
	r.pump()
	if st := b.RosterStatus(); !st.Admitted || !st.Agreed {
		t.Fatalf("bob after alice admitted him: %+v", st)
	}
	if st := a.RosterStatus(); !st.Agreed {
		t.Fatalf("alice after admitting bob: %+v", st)
	}
	if n := len(r.keys("bob")) - len(r.own("bob")); n == 0 {
		t.Fatal("bob got no key once admitted")
	}
	if n := len(r.keys("alice")) - len(r.own("alice")); n == 0 {
		t.Fatal("alice got no key from bob")
	}
	wire := mustEncrypt(t, a, CodecOpus, opusFrame)
	if _, _, err := b.DecryptFrame("alice", CodecOpus, wire); err != nil {
		t.Fatal(err)
	}
	// carol joins: bob admits her; alice takes bob's admission.
	c := r.join("carol", admitting(&ec, time.Hour))
	r.pump()
	if err := b.Admit("carol"); err != nil {
		t.Fatal(err)
	}
	r.pump()
	for name, s := range map[string]*Session{"alice": a, "bob": b, "carol": c} {
		if st := s.RosterStatus(); !st.Admitted || !st.Agreed {
			t.Fatalf("%s: %+v", name, st)
		}
	}
	if !ec.has(EventAdmitted, "alice") || !ec.has(EventAdmitted, "bob") {
		t.Fatalf("carol does not count those present as members: %v", ec.kinds())
	}
	if a.SafetyNumber() != c.SafetyNumber() {
		t.Fatal("safety numbers differ")
	}
}

func TestRosterMismatchAlertsAndHoldsKeys(t *testing.T) {
	r := newRoom(t)
	var ea, eb events
	a := r.join("alice", admitting(&ea, time.Millisecond))
	r.pump()
	b := r.join("bob", admitting(&eb, time.Millisecond))
	r.pump()
	// The node drops alice's views to bob from now on.
	r.drop = func(from, to string) bool { return from == "alice" && to == "bob" }
	if err := a.Admit("bob"); err != nil {
		t.Fatal(err)
	}
	r.pump()
	// bob is admitted only through alice's admission, which is dropped
	// too: he waits, and alice's view has nobody to agree with but him.
	if b.RosterStatus().Admitted {
		t.Fatal("bob admitted without an admission")
	}
	ev := ea.waitFor(t, EventRosterMismatch)
	if len(ev.Mismatches) != 1 || ev.Mismatches[0].Member != "bob" || !ev.Mismatches[0].Missing {
		t.Fatalf("mismatches %+v", ev.Mismatches)
	}
	if st := a.RosterStatus(); !st.Alert || st.Agreed {
		t.Fatalf("alice's status after the alert: %+v", st)
	}
	if n := len(r.keys("bob")) - len(r.own("bob")); n != 0 {
		t.Fatalf("bob got %d keys while alice's roster disagreed", n)
	}
}
