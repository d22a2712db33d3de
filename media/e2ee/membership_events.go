package e2ee

import "fmt"

// The events and states admission by members reports (members.go).

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
