package e2ee

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Roster views and agreement: docs/E2EE.md, "Admission and rosters", rules 4 and 5.

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
		// Far more people than are here: it cannot agree, so not kept.
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
		// Full: forget those not listed now; never a present member's
		// highest view, which would let an old view back in.
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
		// A root signing views was a member before; if the others disagree,
		// their views differ and the alert says so.
		s.makeMemberLocked(c, "")
	}
	after := s.syncLocked()
	s.mu.Unlock()
	after()
	s.drainEarly()
	return nil
}

// maxViewSlack is how many more participants than listed here a kept view may name.
const maxViewSlack = 16

// maxViewEntries bounds the entries of all views kept (about 360 members).
const maxViewEntries = 1 << 17

// roomForViewLocked reports whether c's view of n entries fits maxViewEntries.
func (s *Session) roomForViewLocked(c *candidate, n int) bool {
	total := n
	for _, o := range s.adm.cands {
		if o != c && o.view != nil {
			total += len(o.view.Participants)
		}
	}
	return total <= maxViewEntries
}

// rosterTimeout re-syncs after RosterTimeout: alert, or keys flow past silent roots.
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

// rootsPendingLocked reports whether a root has neither become a member nor
// had RosterTimeout to send its view: no key before, or a node could delay
// the real members' views until a ghost's agreed.
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

// reportMismatchLocked emits the mismatches if they changed.
func (s *Session) reportMismatchLocked() {
	a := s.adm
	ms := s.mismatchesLocked()
	if len(ms) == 0 || sameMismatches(ms, a.alerted) {
		return
	}
	a.alerted = ms
	a.emit(MembershipEvent{Kind: EventRosterMismatch, Mismatches: ms})
}

// entriesLocked is this session's view: itself and its members.
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

// mismatchesLocked lists members whose latest view is missing or differs.
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
	slices.SortFunc(ms, func(x, y RosterMismatch) int { return strings.Compare(x.Member, y.Member) })
	return ms
}

func sameMismatches(x, y []RosterMismatch) bool {
	return slices.EqualFunc(x, y, func(p, q RosterMismatch) bool {
		return p.Member == q.Member && p.Missing == q.Missing && sameEntries(p.OnlyTheirs, q.OnlyTheirs) && sameEntries(p.OnlyMine, q.OnlyMine)
	})
}
