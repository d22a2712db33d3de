package e2ee

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Roster views: each member's signed view of the call (docs/E2EE.md,
// "Admission and rosters"); sorted entries give a set one byte form.

// RosterVersion is the first byte of a roster view's body.
const RosterVersion = 0x01

// MaxRosterEntries bounds the participants one view lists.
const MaxRosterEntries = 4096

const rosterPrefix = "sotto-roster-v1:"

// rosterLabel starts what a roster view's signature covers.
const rosterLabel = "sotto e2ee v2 roster"

// rosterEntrySize is the fixed part of one entry: name length, key, key seq.
const rosterEntrySize = 2 + PublicKeySize + 8

// ErrBadRoster is returned, wrapped, for a roster view that is malformed,
// out of order, lacks its member, has an unusable key or does not verify.
var ErrBadRoster = errors.New("e2ee: bad roster")

// RosterEntry is one admitted participant in a member's view.
type RosterEntry struct {
	Name   string // the participant's identity, as its token names it
	Key    []byte // its Ed25519 identity key
	KeySeq uint64 // the latest key sequence number the member accepted from it; 0 if none
}

// RosterView is one member's signed view of who is in the call.
type RosterView struct {
	Room      string
	Member    string // the member whose view this is, as its token names it
	MemberKey []byte // its Ed25519 identity key, which signs the view
	Seq       uint64 // the member's view sequence number, higher for every change
	// Participants: the admitted, the member included, sorted by Name then Key.
	Participants []RosterEntry
}

// compareEntries orders entries by name, then key, bytewise.
func compareEntries(a, b RosterEntry) int {
	return cmp.Or(cmp.Compare(a.Name, b.Name), bytes.Compare(a.Key, b.Key))
}

// marshal is the view's body, participants in the order given.
func (v *RosterView) marshal() ([]byte, error) {
	if len(v.Room) > math.MaxUint16 || len(v.Member) > math.MaxUint16 {
		return nil, fmt.Errorf("%w: room or member name", ErrNameTooLong)
	}
	if len(v.MemberKey) != PublicKeySize {
		return nil, fmt.Errorf("%w: identity keys must be %d bytes", ErrBadPublicKey, PublicKeySize)
	}
	if len(v.Participants) > MaxRosterEntries {
		return nil, fmt.Errorf("e2ee: %d participants in a roster, at most %d", len(v.Participants), MaxRosterEntries)
	}
	n := 1 + 2 + len(v.Room) + 2 + len(v.Member) + PublicKeySize + 8 + 2
	for _, e := range v.Participants {
		if len(e.Name) > math.MaxUint16 {
			return nil, fmt.Errorf("%w: participant name is %d bytes", ErrNameTooLong, len(e.Name))
		}
		if len(e.Key) != PublicKeySize {
			return nil, fmt.Errorf("%w: identity keys must be %d bytes", ErrBadPublicKey, PublicKeySize)
		}
		n += rosterEntrySize + len(e.Name)
	}
	out := make([]byte, 0, n)
	out = append(out, RosterVersion)
	out = appendU16String(out, v.Room)
	out = appendU16String(out, v.Member)
	out = append(out, v.MemberKey...)
	out = binary.BigEndian.AppendUint64(out, v.Seq)
	out = binary.BigEndian.AppendUint16(out, uint16(len(v.Participants)))
	for _, e := range v.Participants {
		out = appendU16String(out, e.Name)
		out = append(out, e.Key...)
		out = binary.BigEndian.AppendUint64(out, e.KeySeq)
	}
	return out, nil
}

// unmarshalRoster parses a body exactly; it checks no order, key nor signature.
func unmarshalRoster(p []byte) (RosterView, error) {
	r := reader{p: p}
	if v := r.byte(); v != RosterVersion {
		return RosterView{}, fmt.Errorf("body version %#02x, want %#02x", v, RosterVersion)
	}
	var v RosterView
	v.Room = string(r.u16bytes())
	v.Member = string(r.u16bytes())
	v.MemberKey = r.bytes(PublicKeySize)
	v.Seq = r.u64()
	count := int(r.u16())
	if r.short {
		return RosterView{}, errors.New("body is cut short")
	}
	if count > MaxRosterEntries {
		return RosterView{}, fmt.Errorf("%d participants, at most %d", count, MaxRosterEntries)
	}
	// A count the rest cannot hold allocates nothing.
	if count > len(r.p)/rosterEntrySize {
		return RosterView{}, fmt.Errorf("%d participants in %d bytes: body is cut short", count, len(r.p))
	}
	v.Participants = make([]RosterEntry, 0, count)
	for range count {
		var e RosterEntry
		e.Name = string(r.u16bytes())
		e.Key = r.bytes(PublicKeySize)
		e.KeySeq = r.u64()
		if r.short {
			return RosterView{}, errors.New("body is cut short")
		}
		v.Participants = append(v.Participants, e)
	}
	if len(r.p) != 0 {
		return RosterView{}, fmt.Errorf("%d bytes after the body", len(r.p))
	}
	return v, nil
}

// checkRosterOrder refuses entries not strictly increasing, or without the member.
func checkRosterOrder(v *RosterView) error {
	self := false
	for i, e := range v.Participants {
		if i > 0 {
			switch c := compareEntries(v.Participants[i-1], e); {
			case c == 0:
				return fmt.Errorf("participant %q listed twice", e.Name)
			case c > 0:
				return fmt.Errorf("participant %q listed out of order", e.Name)
			}
		}
		if e.Name == v.Member && bytes.Equal(e.Key, v.MemberKey) {
			self = true
		}
	}
	if !self {
		return fmt.Errorf("member %q is not in its own roster", v.Member)
	}
	return nil
}

// SignRoster returns the text form of v signed by id, whose public key
// v.MemberKey must be; it sorts the participants.
func SignRoster(id *Identity, v RosterView) (string, error) {
	if id == nil || id.priv == nil {
		return "", errors.New("e2ee: roster: nil identity")
	}
	if !bytes.Equal(v.MemberKey, id.PublicKey()) {
		return "", errors.New("e2ee: roster: RosterView.MemberKey is not the member's identity key")
	}
	for _, e := range v.Participants {
		if err := checkIdentityKey(e.Key); err != nil {
			return "", fmt.Errorf("e2ee: roster: participant %q: %w", e.Name, err)
		}
	}
	v.Participants = slices.SortedFunc(slices.Values(v.Participants), compareEntries)
	if err := checkRosterOrder(&v); err != nil {
		return "", fmt.Errorf("e2ee: roster: %w", err)
	}
	body, err := v.marshal()
	if err != nil {
		return "", fmt.Errorf("e2ee: roster: %w", err)
	}
	return encodeSigned(rosterPrefix, body, id.sign(rosterLabel, body)), nil
}

// ParseRoster is the inverse of SignRoster (errors wrap ErrBadRoster). The
// room, and a Seq above the member's last, are the caller's to check.
func ParseRoster(s string) (RosterView, error) {
	body, sig, err := decodeSigned(rosterPrefix, s)
	if err != nil {
		return RosterView{}, fmt.Errorf("%w: %w", ErrBadRoster, err)
	}
	v, err := unmarshalRoster(body)
	if err != nil {
		return RosterView{}, fmt.Errorf("%w: %w", ErrBadRoster, err)
	}
	if err := checkIdentityKey(v.MemberKey); err != nil {
		return RosterView{}, fmt.Errorf("%w: member %w", ErrBadRoster, err)
	}
	// Signature first: only a member can make the costly key checks run.
	if !verify(v.MemberKey, rosterLabel, body, sig) {
		return RosterView{}, fmt.Errorf("%w: signature does not verify under the member's identity key", ErrBadRoster)
	}
	if err := checkRosterOrder(&v); err != nil {
		return RosterView{}, fmt.Errorf("%w: %w", ErrBadRoster, err)
	}
	for _, e := range v.Participants {
		if err := checkIdentityKey(e.Key); err != nil {
			return RosterView{}, fmt.Errorf("%w: participant %q: %w", ErrBadRoster, e.Name, err)
		}
	}
	return v, nil
}

// SameParticipants reports whether a and b list the same (name, key) pairs.
func SameParticipants(a, b RosterView) bool {
	onlyA, onlyB := Diff(a, b)
	return len(onlyA) == 0 && len(onlyB) == 0
}

// Diff returns the (name, key) pairs only a lists and those only b lists, sorted.
func Diff(a, b RosterView) (onlyA, onlyB []RosterEntry) {
	as := sortedEntries(a.Participants)
	bs := sortedEntries(b.Participants)
	i, j := 0, 0
	for i < len(as) || j < len(bs) {
		var c int
		switch {
		case i == len(as):
			c = 1
		case j == len(bs):
			c = -1
		default:
			c = compareEntries(as[i], bs[j])
		}
		switch {
		case c < 0:
			onlyA = append(onlyA, as[i])
			i++
		case c > 0:
			onlyB = append(onlyB, bs[j])
			j++
		default:
			i++
			j++
		}
	}
	return onlyA, onlyB
}

// sortedEntries is a sorted copy of es without repeated (name, key) pairs.
func sortedEntries(es []RosterEntry) []RosterEntry {
	out := slices.Clone(es)
	slices.SortStableFunc(out, compareEntries)
	return slices.CompactFunc(out, func(x, y RosterEntry) bool { return compareEntries(x, y) == 0 })
}
