package e2ee

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"
)

// Admission by members and roster checks: docs/E2EE.md, "Admission and rosters".

// Defaults of AdmissionOptions.
const (
	DefaultRosterTimeout = 5 * time.Second
	DefaultAdmissionAge  = 2 * time.Minute
	maxPendingAdmissions = 64 // admissions waiting for their admitter or admitted
)

// Errors of Admit and Refuse.
var (
	// ErrNotAdmitted: this participant is not a member yet.
	ErrNotAdmitted = errors.New("e2ee: this participant is not admitted yet")
	// ErrNotWaiting: the participant named is not waiting here.
	ErrNotWaiting = errors.New("e2ee: no such participant waiting")
)

// AdmissionOptions turns admission by members on (Options.Admission).
type AdmissionOptions struct {
	// OnEvent receives every event in order, with no session lock held;
	// the caller may hold its own locks, so queue the event, do not block.
	OnEvent func(MembershipEvent)
	// RosterTimeout is how long views may disagree before the alert.
	RosterTimeout time.Duration
	// MaxAge is how far an admission's time may be from this clock.
	MaxAge time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// candidate is a participant the node lists, in admission mode.
type candidate struct {
	peer  Peer
	ann   Announcement
	state ParticipantState
	by    string
	root  bool
	view  *RosterView // its latest valid view
}

// admission is a Session's admission state, guarded by Session.mu.
type admission struct {
	opts     AdmissionOptions
	joined   bool      // the first list (the roots) was taken
	rejoined bool      // Rejoin was called: the next roots are only those met before
	joinedAt time.Time // when the first list was taken
	admitted bool
	refused  string // who refused this participant, while waiting
	cands    map[string]*candidate
	// remembered: pairs this session admitted, or took from one it
	// remembers; they are re-admitted on return. Never a root nor one a
	// root admitted: it could be a ghost (docs/E2EE.md, rule 3). met: every
	// pair that was a member here; after a reconnect the roots are among them.
	remembered map[string]bool
	met        map[string]bool
	pending    []Admission // valid admissions waiting for their admitter or admitted
	viewSeq    uint64
	lastView   []RosterEntry // participants of the last view signed
	viewMsg    json.RawMessage
	viewSeqs   map[string]uint64 // highest view_seq per identity and key
	hold       bool              // no new key goes out (not admitted, or views disagree)
	rekeyDue   bool
	rekeyFresh bool
	since      time.Time // views disagree since; zero when they agree
	timer      *time.Timer
	alert      bool
	alerted    []RosterMismatch // the mismatches last reported
	events     []MembershipEvent
	delivering bool
}

func pairKey(identity string, key []byte) string { return identity + "\x00" + string(key) }

func newAdmission(o AdmissionOptions) *admission {
	if o.RosterTimeout <= 0 {
		o.RosterTimeout = DefaultRosterTimeout
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultAdmissionAge
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &admission{
		opts:       o,
		cands:      make(map[string]*candidate),
		remembered: make(map[string]bool),
		met:        make(map[string]bool),
		viewSeqs:   make(map[string]uint64),
		hold:       true,
	}
}

func (a *admission) emit(e MembershipEvent) { a.events = append(a.events, e) }

// deliverEvents hands queued events to OnEvent in order, without s.mu held;
// a call made while another delivers leaves its events to that one.
func (s *Session) deliverEvents() {
	s.mu.Lock()
	a := s.adm
	if a == nil || a.delivering {
		s.mu.Unlock()
		return
	}
	a.delivering = true
	for len(a.events) > 0 {
		e := a.events[0]
		a.events = a.events[1:]
		s.mu.Unlock()
		if a.opts.OnEvent != nil {
			a.opts.OnEvent(e)
		}
		s.mu.Lock()
	}
	a.delivering = false
	s.mu.Unlock()
}

// Rejoin tells the session this participant joined again: it waits again,
// the next SetMembers lists its roots, and what it remembers stays.
func (s *Session) Rejoin() {
	s.mu.Lock()
	a := s.adm
	if a == nil || s.closed {
		s.mu.Unlock()
		return
	}
	a.joined, a.admitted, a.refused, a.rejoined = false, false, "", true
	// Views are awaited afresh; a raised alert ends until they disagree again.
	a.since = time.Time{}
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
	if a.alert {
		a.alert, a.alerted = false, nil
		a.emit(MembershipEvent{Kind: EventRosterAgreed})
	}
	clear(a.cands)
	a.pending = nil
	a.lastView, a.viewMsg = nil, nil
	after := s.syncLocked()
	s.mu.Unlock()
	after()
}

// listLocked takes the node's list; the returned function runs after s.mu is released.
func (s *Session) listLocked(members []Peer) func() {
	a := s.adm
	want := make(map[string]Peer, len(members))
	for _, m := range members {
		if m.Identity != s.opts.Self {
			want[m.Identity] = m
		}
	}
	first := !a.joined
	a.joined = true
	if first {
		a.joinedAt = a.opts.Now()
	}
	for id, c := range a.cands {
		if m, ok := want[id]; !ok || m.PublicKey != c.peer.PublicKey {
			delete(a.cands, id)
		} else {
			c.peer.Held = m.Held
		}
	}
	var newcomers []string
	for id, m := range want {
		if a.cands[id] != nil {
			continue
		}
		ann, err := ParseAnnouncement(m.PublicKey)
		if err != nil {
			s.log.Warn("e2ee: participant without a usable public key is left out", "identity", id, "err", err)
			continue
		}
		// After a reconnect only former members are roots: a node that forces
		// a reconnect cannot slip in a root of its own.
		root := first && (!a.rejoined || a.met[pairKey(id, ann.Identity)])
		c := &candidate{peer: m, ann: ann, state: StateWaiting, root: root}
		a.cands[id] = c
		newcomers = append(newcomers, id)
	}
	if first && a.rejoined && !slices.ContainsFunc(newcomers, func(id string) bool { return a.cands[id].root }) {
		// Nobody met before is here: roots as on a first join.
		for _, id := range newcomers {
			a.cands[id].root = true
		}
	}
	slices.Sort(newcomers)
	if first && len(a.cands) == 0 {
		// Alone in the call: nobody can admit this participant.
		s.selfAdmittedLocked("")
	}
	var sends []func()
	for _, id := range newcomers {
		c := a.cands[id]
		if a.admitted && a.remembered[pairKey(id, c.ann.Identity)] {
			// Admitted before in this session: admitted again.
			if f, err := s.admitLocked(c); err == nil {
				sends = append(sends, f)
				continue
			}
		}
		if c.root {
			// A member once its view arrives, else shown as waiting.
			continue
		}
		a.emit(MembershipEvent{Kind: EventWaiting, Identity: id, IdentityKey: slices.Clone(c.ann.Identity)})
		if a.admitted && a.viewMsg != nil {
			// A newcomer learns who this member counts as admitted.
			msg, to := a.viewMsg, []string{id}
			sends = append(sends, func() { s.send(to, msg) })
		}
	}
	if !a.admitted && len(a.cands) == 0 && !first {
		// Everyone who could have admitted this participant left.
		s.selfAdmittedLocked("")
	}
	after := s.syncLocked()
	return func() {
		for _, f := range sends {
			f()
		}
		after()
	}
}

func (s *Session) send(to []string, msg json.RawMessage) {
	if s.opts.Send != nil {
		s.opts.Send(to, msg)
	}
}

// admitLocked makes c a member on this session's authority and returns the send.
func (s *Session) admitLocked(c *candidate) (func(), error) {
	a := s.adm
	str, err := Admit(s.opts.Identity, Admission{
		Room:        s.opts.Room,
		Admitter:    s.opts.Self,
		AdmitterKey: s.selfPub,
		Admitted:    c.peer.Identity,
		AdmittedKey: c.ann.Identity,
		UnixMilli:   a.opts.Now().UnixMilli(),
	})
	if err != nil {
		return nil, err
	}
	msg, err := json.Marshal(keyMessage{Version: keyMessageVersion, Type: "admit", Admission: str})
	if err != nil {
		return nil, err
	}
	if c.state == StateMember {
		// Another's admission came first, but may not count for everyone (the
		// newcomer may hold that member out): send this one too, and stand by it.
		if len(a.remembered) < maxSenderRecords {
			a.remembered[pairKey(c.peer.Identity, c.ann.Identity)] = true
		}
	} else {
		s.makeMemberLocked(c, s.opts.Self)
	}
	return func() { s.send(nil, msg) }, nil
}

// selfAdmittedLocked makes this participant a member (by "" if nobody could admit it).
func (s *Session) selfAdmittedLocked(by string) {
	a := s.adm
	a.admitted, a.refused = true, ""
	a.emit(MembershipEvent{Kind: EventSelfAdmitted, By: by})
	ids := make([]string, 0, len(a.cands))
	for id, c := range a.cands {
		if c.state != StateMember {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		c := a.cands[id]
		a.emit(MembershipEvent{Kind: EventWaiting, Identity: id, IdentityKey: slices.Clone(c.ann.Identity)})
	}
}

// chained reports whether the member named identity is remembered.
func (a *admission) chained(identity string) bool {
	c := a.cands[identity]
	return c != nil && a.remembered[pairKey(identity, c.ann.Identity)]
}

func (s *Session) makeMemberLocked(c *candidate, by string) {
	a := s.adm
	c.state, c.by = StateMember, by
	pk := pairKey(c.peer.Identity, c.ann.Identity)
	// Remembered only on this session's own chain of admissions, never on a
	// root's: the node chose the roots.
	if (by == s.opts.Self || by != "" && a.chained(by)) && len(a.remembered) < maxSenderRecords {
		a.remembered[pk] = true
	}
	if len(a.met) < maxSenderRecords {
		a.met[pk] = true
	}
	a.emit(MembershipEvent{Kind: EventAdmitted, Identity: c.peer.Identity, IdentityKey: slices.Clone(c.ann.Identity), By: by})
}

// waitingLocked returns the candidate Admit or Refuse may act on.
func (s *Session) waitingLocked(identity string) (*candidate, error) {
	a := s.adm
	switch {
	case a == nil:
		return nil, errors.New("e2ee: admission is off (Options.Admission)")
	case !a.admitted:
		return nil, ErrNotAdmitted
	}
	c := a.cands[identity]
	if c == nil || c.state == StateMember && (c.root || c.by == s.opts.Self) {
		return nil, ErrNotWaiting
	}
	return c, nil
}

// Admit admits a waiting participant here and sends everyone a signed
// admission (also for one another member admitted first). It fails with
// ErrNotAdmitted before this participant is a member, else ErrNotWaiting.
func (s *Session) Admit(identity string) error {
	s.mu.Lock()
	c, err := s.waitingLocked(identity)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	f, err := s.admitLocked(c)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	after := s.syncLocked()
	s.mu.Unlock()
	f()
	after()
	s.drainEarly()
	return nil
}

// Refuse refuses a waiting participant and tells everyone, unsigned: a
// forged or dropped refusal changes only how someone is shown.
func (s *Session) Refuse(identity string) error {
	s.mu.Lock()
	c, err := s.waitingLocked(identity)
	if err == nil && c.state == StateMember {
		err = ErrNotWaiting
	}
	if err != nil {
		s.mu.Unlock()
		return err
	}
	c.state, c.by = StateRefused, s.opts.Self
	s.adm.emit(MembershipEvent{Kind: EventRefused, Identity: identity, IdentityKey: slices.Clone(c.ann.Identity), By: s.opts.Self})
	msg, err := json.Marshal(keyMessage{Version: keyMessageVersion, Type: "refuse", Identity: identity})
	s.mu.Unlock()
	if err == nil {
		s.send(nil, msg)
	}
	s.deliverEvents()
	return nil
}

// Participants lists the node's participants as this session sees them (nil without admission).
func (s *Session) Participants() []ParticipantStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.adm == nil {
		return nil
	}
	var ps []ParticipantStatus
	for _, c := range s.adm.cands {
		ps = append(ps, ParticipantStatus{Identity: c.peer.Identity, IdentityKey: slices.Clone(c.ann.Identity), State: c.state, By: c.by, Root: c.root})
	}
	slices.SortFunc(ps, func(x, y ParticipantStatus) int { return strings.Compare(x.Identity, y.Identity) })
	return ps
}

// RosterStatus returns this session's standing (Admitted and Agreed without admission).
func (s *Session) RosterStatus() RosterStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.adm
	if a == nil {
		return RosterStatus{Admitted: true, Agreed: true}
	}
	return RosterStatus{
		Admitted:   a.admitted,
		Refused:    !a.admitted && a.refused != "",
		Agreed:     a.admitted && !a.hold,
		Alert:      a.alert,
		Mismatches: s.mismatchesLocked(),
	}
}
