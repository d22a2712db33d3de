package e2ee

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Admission by members and roster consistency (docs/E2EE.md, "Admission
// and rosters"). With Options.Admission set, the participants the node
// lists (SetMembers) are only candidates: a candidate becomes a member,
// and gets this session's keys, once a member this session accepted
// admits it (a signed admission), or, for those listed when this session
// joined (its roots), once it sends a signed roster view of its own.
// Every member signs its view of the call whenever its set of members
// changes; this session sends no new key while any member's latest view
// lists other people than its own, and raises an alert when that lasts
// longer than AdmissionOptions.RosterTimeout.

// Defaults of AdmissionOptions.
const (
	DefaultRosterTimeout = 5 * time.Second
	DefaultAdmissionAge  = 2 * time.Minute
	// maxPendingAdmissions bounds the admissions kept until their
	// admitter or admitted participant is known.
	maxPendingAdmissions = 64
)

// Errors of Admit and Refuse.
var (
	// ErrNotAdmitted: this participant is not a member yet, so its
	// admissions would count with nobody.
	ErrNotAdmitted = errors.New("e2ee: this participant is not admitted yet")
	// ErrNotWaiting: the participant named is not waiting here (unknown,
	// gone, or already a member).
	ErrNotWaiting = errors.New("e2ee: no such participant waiting")
)

// AdmissionOptions turns admission by members on (Options.Admission).
type AdmissionOptions struct {
	// OnEvent receives every admission and roster event, in order, with
	// no session lock held (the caller of the Session method that caused
	// it may hold its own locks: queue the event, do not block).
	OnEvent func(MembershipEvent)
	// RosterTimeout is how long the members' views may disagree with
	// this session's (a view missing counts) before the alert: default
	// DefaultRosterTimeout.
	RosterTimeout time.Duration
	// MaxAge is how far an admission's time may be from this clock:
	// default DefaultAdmissionAge.
	MaxAge time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// MembershipEventKind says what a MembershipEvent reports.
type MembershipEventKind int

const (
	// EventWaiting: a participant is waiting to be admitted (Identity,
	// IdentityKey). Also for a participant that was present when this
	// session joined but sent no roster view of its own (yet).
	EventWaiting MembershipEventKind = iota + 1
	// EventAdmitted: a participant became a member (Identity,
	// IdentityKey; By: the member whose admission counted, "" for a
	// participant present at join that proved it is a member).
	EventAdmitted
	// EventRefused: a member refused a waiting participant (Identity; By).
	// It stays waiting: another member may still admit it.
	EventRefused
	// EventSelfAdmitted: this participant was admitted (By), or found an
	// empty call (By ""). Until then it is waiting itself.
	EventSelfAdmitted
	// EventSelfRefused: a member refused this participant (By).
	EventSelfRefused
	// EventRosterMismatch: the members' views have not agreed with this
	// session's for RosterTimeout; no new key is sent (Mismatches).
	// Repeated when what differs changes.
	EventRosterMismatch
	// EventRosterAgreed: after an EventRosterMismatch, every member's
	// view agrees again and keys flow again; or this participant rejoined
	// (Rejoin: the check starts over, and the alert rises again if views
	// still disagree a RosterTimeout after it is admitted again).
	EventRosterAgreed
)

func (k MembershipEventKind) String() string {
	switch k {
	case EventWaiting:
		return "waiting"
	case EventAdmitted:
		return "admitted"
	case EventRefused:
		return "refused"
	case EventSelfAdmitted:
		return "self admitted"
	case EventSelfRefused:
		return "self refused"
	case EventRosterMismatch:
		return "roster mismatch"
	case EventRosterAgreed:
		return "roster agreed"
	}
	return fmt.Sprintf("MembershipEventKind(%d)", int(k))
}

// MembershipEvent is one change of who is admitted, or of whether the
// members' rosters agree.
type MembershipEvent struct {
	Kind        MembershipEventKind
	Identity    string
	IdentityKey []byte
	By          string
	Mismatches  []RosterMismatch
}

// RosterMismatch is one member whose latest view differs from this
// session's: Missing if no view of it arrived since it became a member,
// else the participants only its view lists and only this session's does.
type RosterMismatch struct {
	Member     string
	Missing    bool
	OnlyTheirs []RosterEntry
	OnlyMine   []RosterEntry
}

// ParticipantState is where a participant stands in this session's eyes.
type ParticipantState int

const (
	StateWaiting ParticipantState = iota + 1
	StateMember
	StateRefused // waiting, and refused by a member
)

func (p ParticipantState) String() string {
	switch p {
	case StateWaiting:
		return "waiting"
	case StateMember:
		return "member"
	case StateRefused:
		return "refused"
	}
	return fmt.Sprintf("ParticipantState(%d)", int(p))
}

// ParticipantStatus is one participant the node lists, as this session
// sees it.
type ParticipantStatus struct {
	Identity    string
	IdentityKey []byte
	State       ParticipantState
	By          string // who admitted (StateMember) or refused (StateRefused) it
	Root        bool   // listed when this session joined
}

// RosterStatus is this session's standing in the call.
type RosterStatus struct {
	Admitted bool // this participant is a member
	Refused  bool // a member refused this participant (and none admitted it)
	// Agreed: every member's latest view lists the same people as this
	// session's; keys flow only then.
	Agreed bool
	// Alert: views have disagreed for longer than RosterTimeout.
	Alert      bool
	Mismatches []RosterMismatch
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

// admission is the admission state of a Session (nil without
// Options.Admission). Guarded by Session.mu.
type admission struct {
	opts   AdmissionOptions
	joined bool // the first list (the roots) was taken
	// rejoined: Rejoin was called; the roots of the next list are then
	// only those admitted before in this session.
	rejoined bool
	joinedAt time.Time // when the first list was taken
	admitted bool
	refused  string // who refused this participant, while waiting
	cands    map[string]*candidate
	// remembered holds the (identity, key) pairs this session admitted,
	// or took from an admission by one it remembers: one that leaves and
	// comes back is admitted again. met holds every
	// pair that was a member here (roots that proved it by their own view
	// too): after a reconnect, the roots are those present of them. A
	// root is never remembered, nor one a root admitted: it could be a
	// node's ghost that only this session saw listed (views agreeing
	// prove nothing when every member this session has is the node's),
	// and re-admitting it would show it to everyone as admitted by this
	// member.
	remembered map[string]bool
	met        map[string]bool
	pending    []Admission // valid admissions waiting for their admitter or admitted
	viewSeq    uint64
	lastView   []RosterEntry // participants of the last view signed
	viewMsg    json.RawMessage
	viewSeqs   map[string]uint64 // highest view_seq per identity and key
	// hold: no new key goes out (not admitted, or views disagree).
	hold       bool
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

// deliverEvents hands queued events to OnEvent, one at a time and in
// order, without s.mu held. A call made while another delivers returns
// at once: the one delivering takes its events too.
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

// Rejoin tells a session with admission that this participant joined the
// call again (after a reconnect): it is waiting again, and the next
// SetMembers lists its roots. What it remembers (who was admitted, the
// highest sequence numbers seen) stays.
func (s *Session) Rejoin() {
	s.mu.Lock()
	a := s.adm
	if a == nil || s.closed {
		s.mu.Unlock()
		return
	}
	a.joined, a.admitted, a.refused, a.rejoined = false, false, "", true
	// Views are awaited afresh: the timer starts again once admitted,
	// and a raised alert ends (it rises again if views still disagree
	// a RosterTimeout after the new admission).
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

// listLocked takes the node's list of participants. Called with s.mu held;
// the returned function runs after it is released.
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
		// After a reconnect only those who were members before are
		// roots: a node that makes everyone reconnect cannot slip in a
		// root of its own.
		root := first && (!a.rejoined || a.met[pairKey(id, ann.Identity)])
		c := &candidate{peer: m, ann: ann, state: StateWaiting, root: root}
		a.cands[id] = c
		newcomers = append(newcomers, id)
	}
	if first && a.rejoined && !slices.ContainsFunc(newcomers, func(id string) bool { return a.cands[id].root }) {
		// Nobody met before is here: roots as on a first join, the
		// same trust as then.
		for _, id := range newcomers {
			a.cands[id].root = true
		}
	}
	slices.Sort(newcomers)
	if first && len(a.cands) == 0 {
		// Alone in the call: nobody can admit this participant, and
		// nobody else is there to admit.
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
			// Present already: a member, once its view arrives, or
			// shown as waiting when this participant is admitted.
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

// admitLocked makes c a member on this session's own authority and
// returns the sending of the signed admission.
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
	s.makeMemberLocked(c, s.opts.Self)
	return func() { s.send(nil, msg) }, nil
}

// selfAdmittedLocked makes this participant a member (by: who admitted
// it, "" if nobody could) and shows it everyone still waiting, whom it
// may now admit.
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

// chained reports whether the member named identity is remembered: this
// session admitted it, or took its admission from a remembered member.
func (a *admission) chained(identity string) bool {
	c := a.cands[identity]
	return c != nil && a.remembered[pairKey(identity, c.ann.Identity)]
}

func (s *Session) makeMemberLocked(c *candidate, by string) {
	a := s.adm
	c.state, c.by = StateMember, by
	pk := pairKey(c.peer.Identity, c.ann.Identity)
	// Re-admitted on return only if this session admitted it, or took
	// the admission of one it admitted on that same footing: never one
	// whose trust comes from a root (the node chose the roots).
	if (by == s.opts.Self || by != "" && a.chained(by)) && len(a.remembered) < maxSenderRecords {
		a.remembered[pk] = true
	}
	if len(a.met) < maxSenderRecords {
		a.met[pk] = true
	}
	a.emit(MembershipEvent{Kind: EventAdmitted, Identity: c.peer.Identity, IdentityKey: slices.Clone(c.ann.Identity), By: by})
}

// Admit admits a waiting participant: it becomes a member here, and a
// signed admission goes to everyone, which makes it a member for every
// member that accepted this participant. It fails with ErrNotAdmitted
// while this participant is not a member itself, and ErrNotWaiting for
// an identity not waiting.
func (s *Session) Admit(identity string) error {
	s.mu.Lock()
	a := s.adm
	switch {
	case a == nil:
		s.mu.Unlock()
		return errors.New("e2ee: admission is off (Options.Admission)")
	case !a.admitted:
		s.mu.Unlock()
		return ErrNotAdmitted
	}
	c := a.cands[identity]
	if c == nil || c.state == StateMember {
		s.mu.Unlock()
		return ErrNotWaiting
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

// Refuse refuses a waiting participant: it stays out here, and everyone
// is told this member refused it (unsigned: a node could forge or drop
// it, which shows a participant as refused or waiting, never admits one).
func (s *Session) Refuse(identity string) error {
	s.mu.Lock()
	a := s.adm
	switch {
	case a == nil:
		s.mu.Unlock()
		return errors.New("e2ee: admission is off (Options.Admission)")
	case !a.admitted:
		s.mu.Unlock()
		return ErrNotAdmitted
	}
	c := a.cands[identity]
	if c == nil || c.state == StateMember {
		s.mu.Unlock()
		return ErrNotWaiting
	}
	c.state, c.by = StateRefused, s.opts.Self
	a.emit(MembershipEvent{Kind: EventRefused, Identity: identity, IdentityKey: slices.Clone(c.ann.Identity), By: s.opts.Self})
	msg, err := json.Marshal(keyMessage{Version: keyMessageVersion, Type: "refuse", Identity: identity})
	s.mu.Unlock()
	if err == nil {
		s.send(nil, msg)
	}
	s.deliverEvents()
	return nil
}

// Participants lists the participants the node lists, as this session
// sees them, sorted by identity. Without admission, nil.
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
	slices.SortFunc(ps, func(x, y ParticipantStatus) int { return compareStrings(x.Identity, y.Identity) })
	return ps
}

func compareStrings(x, y string) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// RosterStatus returns this session's standing. Without admission, the
// zero RosterStatus with Admitted and Agreed set.
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

// handleAdmission takes an "admit" message.
func (s *Session) handleAdmission(from string, m keyMessage) error {
	if s.alreadyAdmitted(m.Admission) {
		// Every member admits a newcomer it sees waiting, so most
		// admissions come after one already counted: skip their
		// signature checks.
		return nil
	}
	adm, err := ParseAdmission(m.Admission)
	if err == nil {
		s.mu.Lock()
		err = adm.Check(s.opts.Room, s.adm.opts.Now(), s.adm.opts.MaxAge)
		s.mu.Unlock()
	}
	if err != nil {
		return s.bad(from, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	a := s.adm
	if len(a.pending) >= maxPendingAdmissions {
		a.pending = a.pending[1:]
	}
	a.pending = append(a.pending, adm)
	after := s.syncLocked()
	s.mu.Unlock()
	after()
	s.drainEarly()
	return nil
}

// alreadyAdmitted reports whether an admission, read without checking
// it, names someone this session counts as a member already, with the
// key named: taking it could change nothing.
func (s *Session) alreadyAdmitted(str string) bool {
	body, _, err := decodeSigned(admitPrefix, str)
	if err != nil {
		return false
	}
	adm, err := unmarshalAdmission(body)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.adm
	if adm.Admitted == s.opts.Self {
		return a.admitted && bytes.Equal(adm.AdmittedKey, s.selfPub)
	}
	c := a.cands[adm.Admitted]
	return c != nil && c.state == StateMember && bytes.Equal(c.ann.Identity, adm.AdmittedKey)
}

// applyAdmissionsLocked applies every pending admission whose admitter is
// a member here (or, for this participant's own, a member) and whose
// admitted participant is listed with the key named. Admissions of
// members already, or of this participant once admitted, are dropped;
// the others wait (bounded) until their time is up. It reports whether
// anything changed.
func (s *Session) applyAdmissionsLocked() bool {
	a := s.adm
	changed := false
	for progress := true; progress; {
		progress = false
		// Each was checked for its time when it came: it may wait for its
		// admitter (a key change the user has yet to accept) as long as
		// it takes, within the bound.
		a.pending = slices.DeleteFunc(a.pending, func(adm Admission) bool {
			admitter := a.cands[adm.Admitter]
			if adm.Admitter == s.opts.Self || admitter == nil || admitter.state != StateMember || admitter.peer.Held || !bytes.Equal(admitter.ann.Identity, adm.AdmitterKey) {
				return false // not (yet) someone whose admissions count
			}
			if adm.Admitted == s.opts.Self {
				if !bytes.Equal(adm.AdmittedKey, s.selfPub) {
					return true
				}
				if !a.admitted {
					s.selfAdmittedLocked(adm.Admitter)
					progress, changed = true, true
				}
				return true
			}
			c := a.cands[adm.Admitted]
			if c == nil || !bytes.Equal(c.ann.Identity, adm.AdmittedKey) {
				return false // the admitted one is not listed (yet) with that key
			}
			if c.state != StateMember {
				s.makeMemberLocked(c, adm.Admitter)
				progress, changed = true, true
			}
			return true
		})
	}
	return changed
}

// handleRoster takes a "roster" message.
func (s *Session) handleRoster(from string, m keyMessage) error {
	v, err := ParseRoster(m.Roster)
	if err != nil {
		return s.bad(from, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	a := s.adm
	c := a.cands[v.Member]
	switch {
	case len(v.Participants) > len(a.cands)+1+maxViewSlack || !s.roomForViewLocked(c, len(v.Participants)):
		// It lists far more people than are here: it cannot agree with
		// this session's, and is not worth keeping.
		err = fmt.Errorf("roster view of %d participants, %d listed here", len(v.Participants), len(a.cands)+1)
	case v.Room != s.opts.Room:
		err = fmt.Errorf("roster view for room %q", v.Room)
	case v.Member != from:
		err = fmt.Errorf("roster view of %q", v.Member)
	case c == nil || !bytes.Equal(c.ann.Identity, v.MemberKey):
		err = errors.New("roster view of someone not listed with that key")
	case v.Seq <= a.viewSeqs[pairKey(v.Member, v.MemberKey)]:
		err = fmt.Errorf("%w: roster view %d, not above %d", ErrReplayedKey, v.Seq, a.viewSeqs[pairKey(v.Member, v.MemberKey)])
	}
	if err != nil {
		s.mu.Unlock()
		return s.bad(from, err)
	}
	pk := pairKey(v.Member, v.MemberKey)
	if _, ok := a.viewSeqs[pk]; !ok && len(a.viewSeqs) >= maxSenderRecords {
		// Full: forget those not listed now (one coming back needs a new
		// admission anyway); if all are, refuse rather than forget a
		// present member's highest view.
		for k := range a.viewSeqs {
			name, key, _ := strings.Cut(k, "\x00")
			if c := a.cands[name]; c == nil || string(c.ann.Identity) != key {
				delete(a.viewSeqs, k)
			}
		}
		if len(a.viewSeqs) >= maxSenderRecords {
			s.mu.Unlock()
			return s.bad(from, errors.New("too many roster views to remember"))
		}
	}
	a.viewSeqs[pk] = v.Seq
	c.view = &v
	if c.root && c.state != StateMember {
		// Listed when this session joined and signing views: a member
		// before this session came. If it is not one in the others'
		// eyes, their views differ from this one's and the alert says so.
		s.makeMemberLocked(c, "")
	}
	after := s.syncLocked()
	s.mu.Unlock()
	after()
	s.drainEarly()
	return nil
}

// handleRefusal takes a "refuse" message.
func (s *Session) handleRefusal(from string, m keyMessage) error {
	s.mu.Lock()
	a := s.adm
	by := a.cands[from]
	if s.closed || by == nil || by.state != StateMember {
		s.mu.Unlock()
		return nil // only a member's refusal is shown
	}
	if m.Identity == s.opts.Self {
		if !a.admitted && a.refused == "" {
			a.refused = from
			a.emit(MembershipEvent{Kind: EventSelfRefused, By: from})
		}
	} else if c := a.cands[m.Identity]; c != nil && c.state == StateWaiting {
		c.state, c.by = StateRefused, from
		a.emit(MembershipEvent{Kind: EventRefused, Identity: c.peer.Identity, IdentityKey: slices.Clone(c.ann.Identity), By: from})
	}
	s.mu.Unlock()
	s.deliverEvents()
	return nil
}

// syncLocked brings everything in line with the candidates' states:
// pending admissions, the key members, this session's signed view, the
// hold on keys and the alert. Called with s.mu held; the returned
// function sends what must be sent and delivers events, after s.mu is
// released.
func (s *Session) syncLocked() func() {
	a := s.adm
	s.applyAdmissionsLocked()
	want := make(map[string]Peer)
	if a.admitted {
		for id, c := range a.cands {
			if c.state == StateMember && !c.peer.Held {
				want[id] = c.peer
			}
		}
	}
	if removed, added := s.applyMembersLocked(want); removed || added {
		a.rekeyDue = true
		a.rekeyFresh = a.rekeyFresh || removed
	}
	var sends []func()
	if a.admitted {
		entries := s.entriesLocked()
		if !sameEntries(entries, a.lastView) {
			a.viewSeq = max(a.viewSeq+1, uint64(a.opts.Now().UnixMicro()))
			str, err := SignRoster(s.opts.Identity, RosterView{Room: s.opts.Room, Member: s.opts.Self, MemberKey: s.selfPub, Seq: a.viewSeq, Participants: entries})
			if err == nil {
				msg, err := json.Marshal(keyMessage{Version: keyMessageVersion, Type: "roster", Roster: str})
				if err == nil {
					a.lastView, a.viewMsg = entries, msg
					sends = append(sends, func() { s.send(nil, msg) })
				}
			}
			if err != nil {
				s.log.Error("e2ee: cannot sign this participant's roster view", "err", err)
			}
		}
	}
	// Keys flow only while every member's latest view lists the same
	// people as this one.
	now := a.opts.Now()
	agreed := a.admitted && len(s.mismatchesLocked()) == 0 && !s.rootsPendingLocked(now)
	a.hold = !agreed
	if agreed {
		a.since = time.Time{}
		if a.timer != nil {
			a.timer.Stop()
			a.timer = nil
		}
		if a.alert {
			a.alert, a.alerted = false, nil
			a.emit(MembershipEvent{Kind: EventRosterAgreed})
		}
		if s.publishing && a.rekeyDue {
			if f := s.rekeyLocked(false); f != nil {
				sends = append(sends, f)
			}
		}
	} else if a.admitted {
		if s.publishing && a.rekeyFresh {
			// A leaver must not read on while views disagree.
			if f := s.rekeyLocked(true); f != nil {
				sends = append(sends, f)
			}
		}
		if a.since.IsZero() {
			a.since = now
		}
		switch {
		case a.alert:
			s.reportMismatchLocked()
		case now.Sub(a.since) >= a.opts.RosterTimeout:
			// Still apart after the timeout: roots that sent no view
			// by now count as waiting, and any other difference
			// raises the alert.
			if len(s.mismatchesLocked()) > 0 {
				a.alert = true
				s.reportMismatchLocked()
			}
		case a.timer == nil:
			a.timer = time.AfterFunc(a.opts.RosterTimeout-now.Sub(a.since), s.rosterTimeout)
		}
	}
	return func() {
		for _, f := range sends {
			f()
		}
		s.deliverEvents()
	}
}

// rosterTimeout looks again once views have disagreed (or roots have
// been silent) for RosterTimeout: syncLocked then raises the alert, or
// lets keys flow if only silent roots held them.
func (s *Session) rosterTimeout() {
	s.mu.Lock()
	a := s.adm
	if s.closed || a.timer == nil {
		s.mu.Unlock()
		return
	}
	a.timer = nil
	after := s.syncLocked()
	s.mu.Unlock()
	after()
}

// maxViewSlack is how many more participants than are listed here a
// view may name and still be kept.
const maxViewSlack = 16

// maxViewEntries bounds the entries of all the views kept: a call of
// about 360 members fits.
const maxViewEntries = 1 << 17

// roomForViewLocked reports whether a view of n entries from c may be
// kept: the views kept (c's replaced) stay within maxViewEntries.
func (s *Session) roomForViewLocked(c *candidate, n int) bool {
	total := n
	for _, o := range s.adm.cands {
		if o != c && o.view != nil {
			total += len(o.view.Participants)
		}
	}
	return total <= maxViewEntries
}

// rootsPendingLocked reports whether a participant listed when this
// session joined has neither become a member nor had RosterTimeout to
// send its view: until then this session sends no key, so that a node
// that delays the real members' views cannot have it agree with a
// ghost's first.
func (s *Session) rootsPendingLocked(now time.Time) bool {
	a := s.adm
	if now.Sub(a.joinedAt) >= a.opts.RosterTimeout {
		return false
	}
	for _, c := range a.cands {
		if c.root && c.state != StateMember {
			return true
		}
	}
	return false
}

// reportMismatchLocked emits the mismatches if they differ from the last
// reported.
func (s *Session) reportMismatchLocked() {
	a := s.adm
	ms := s.mismatchesLocked()
	if len(ms) == 0 || sameMismatches(ms, a.alerted) {
		return
	}
	a.alerted = ms
	a.emit(MembershipEvent{Kind: EventRosterMismatch, Mismatches: ms})
}

// entriesLocked is this session's view: itself and its members, each with
// the latest key sequence number accepted from it.
func (s *Session) entriesLocked() []RosterEntry {
	own := uint64(0)
	if s.stats.KeysSent > 0 {
		own = s.seq - 1
	}
	es := []RosterEntry{{Name: s.opts.Self, Key: s.selfPub, KeySeq: own}}
	for _, c := range s.adm.cands {
		if c.state != StateMember {
			continue
		}
		e := RosterEntry{Name: c.peer.Identity, Key: c.ann.Identity}
		if r := s.members[c.peer.Identity]; r != nil {
			e.KeySeq = r.rec.highest
		}
		es = append(es, e)
	}
	return sortedEntries(es)
}

// sameEntries compares by (name, key) only.
func sameEntries(x, y []RosterEntry) bool {
	return slices.EqualFunc(x, y, func(p, q RosterEntry) bool { return p.Name == q.Name && bytes.Equal(p.Key, q.Key) })
}

// mismatchesLocked lists the members whose latest view is missing or
// lists other people than this session's.
func (s *Session) mismatchesLocked() []RosterMismatch {
	a := s.adm
	if !a.admitted {
		return nil
	}
	mine := RosterView{Participants: s.entriesLocked()}
	var ms []RosterMismatch
	for _, c := range a.cands {
		if c.state != StateMember {
			continue
		}
		if c.view == nil {
			ms = append(ms, RosterMismatch{Member: c.peer.Identity, Missing: true})
			continue
		}
		theirs, ours := Diff(*c.view, mine)
		if len(theirs) > 0 || len(ours) > 0 {
			ms = append(ms, RosterMismatch{Member: c.peer.Identity, OnlyTheirs: theirs, OnlyMine: ours})
		}
	}
	slices.SortFunc(ms, func(x, y RosterMismatch) int { return compareStrings(x.Member, y.Member) })
	return ms
}

func sameMismatches(x, y []RosterMismatch) bool {
	return slices.EqualFunc(x, y, func(p, q RosterMismatch) bool {
		return p.Member == q.Member && p.Missing == q.Missing && sameEntries(p.OnlyTheirs, q.OnlyTheirs) && sameEntries(p.OnlyMine, q.OnlyMine)
	})
}
