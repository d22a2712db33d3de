package e2ee

import (
	"bytes"
	"encoding/json"
	"slices"
	"time"
)

// handleAdmission takes an "admit" message.
func (s *Session) handleAdmission(from string, m keyMessage) error {
	if s.alreadyAdmitted(m.Admission) {
		// Most admissions repeat one already counted: skip the checks.
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

// alreadyAdmitted reports whether an admission, unchecked, names a member
// already with that key, so taking it could change nothing.
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

// applyAdmissionsLocked applies pending admissions whose admitter is a
// member with the key named and whose admitted is listed with its key (rule 3).
func (s *Session) applyAdmissionsLocked() {
	a := s.adm
	for progress := true; progress; {
		progress = false
		// Time was checked on arrival: it may wait for its admitter, within the bound.
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
					progress = true
				}
				return true
			}
			c := a.cands[adm.Admitted]
			if c == nil || !bytes.Equal(c.ann.Identity, adm.AdmittedKey) {
				return false // the admitted one is not listed (yet) with that key
			}
			if c.state != StateMember {
				s.makeMemberLocked(c, adm.Admitter)
				progress = true
			}
			return true
		})
	}
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

// syncLocked brings admissions, key members, this session's view, the hold on
// keys and the alert in line; the returned function runs after s.mu is released.
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
	// Keys flow only while every member's latest view lists the same people.
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
			// Still apart after the timeout: silent roots count as
			// waiting, any other difference raises the alert.
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
