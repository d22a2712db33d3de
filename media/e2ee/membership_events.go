package e2ee

import "fmt"

// MembershipEventKind says what a MembershipEvent reports.
type MembershipEventKind int

const (
	// EventWaiting: a participant waits to be admitted (also a root that
	// sent no view yet).
	EventWaiting MembershipEventKind = iota + 1
	// EventAdmitted: a participant became a member; By is the admitter,
	// "" for a root that proved it by its view.
	EventAdmitted
	// EventRefused: a member refused a participant, who may still be admitted.
	EventRefused
	// EventSelfAdmitted: this participant was admitted (By "": an empty call).
	EventSelfAdmitted
	// EventSelfRefused: a member refused this participant (By).
	EventSelfRefused
	// EventRosterMismatch: views have disagreed for RosterTimeout; no new
	// key is sent. Repeated when what differs changes.
	EventRosterMismatch
	// EventRosterAgreed: after EventRosterMismatch, views agree again, or
	// Rejoin started the check over.
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

// MembershipEvent is one change of who is admitted or whether rosters agree.
type MembershipEvent struct {
	Kind        MembershipEventKind
	Identity    string
	IdentityKey []byte
	By          string
	Mismatches  []RosterMismatch
}

// RosterMismatch is one member whose latest view is Missing or differs
// from this session's.
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

// ParticipantStatus is one participant the node lists, as this session sees it.
type ParticipantStatus struct {
	Identity    string
	IdentityKey []byte
	State       ParticipantState
	By          string // who admitted (StateMember) or refused (StateRefused) it
	Root        bool   // listed when this session joined
}

// RosterStatus is this session's standing in the call.
type RosterStatus struct {
	Admitted   bool // this participant is a member
	Refused    bool // a member refused this participant (and none admitted it)
	Agreed     bool // every member's latest view agrees; keys flow only then
	Alert      bool // views have disagreed for longer than RosterTimeout
	Mismatches []RosterMismatch
}
