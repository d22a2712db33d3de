package e2ee

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/sotto-rtc/sotto/media/sframe"
)

// The sending side of key management: making this sender's next key,
// sealing it to every member, and switching to it.

// rekeyLocked makes and distributes the key that fits the membership
// change and returns the send to make once s.mu is released. fresh: a
// member left, so the new key must not be derivable from any earlier one.
func (s *Session) rekeyLocked(fresh bool) func() {
	var only map[string]bool
	if a := s.adm; a != nil && a.hold {
		// Rosters disagree (or this participant is not admitted yet):
		// no key goes to anyone new until they agree (members.go).
		a.rekeyDue = true
		if !fresh {
			return nil
		}
		a.rekeyFresh = false
		// Someone left: the leaver must not read what follows, so a
		// fresh key goes now, but only to members that had one of this
		// sender's current keys already (they learn nothing new).
		only = make(map[string]bool)
		for id := range s.members {
			r := s.members[id]
			if s.cur.to[recipientKey(r)] || s.next != nil && s.next.to[recipientKey(r)] {
				only[id] = true
			}
		}
		// Those left out get the key (ratcheted) once views agree;
		// if nobody is, nothing more is due.
		a.rekeyDue = len(only) < len(s.members)
	} else if a != nil {
		fresh = fresh || a.rekeyFresh
		a.rekeyDue, a.rekeyFresh = false, false
	}
	latest := s.cur
	if s.next != nil {
		latest = s.next
	}
	if len(s.members) == 0 || only != nil && len(only) == 0 {
		// Nobody to tell. A fresh key still matters: a leaver had the
		// current one.
		if fresh && latest.shared {
			s.switchToFreshLocked()
		}
		return nil
	}
	var k *sendKey
	switch {
	case fresh || latest.shared:
		var base []byte
		var err error
		if fresh {
			base = make([]byte, baseKeySize(s.suite))
			_, err = rand.Read(base)
		} else {
			base, err = sframe.Ratchet(s.suite, latest.base)
		}
		if err == nil {
			k, err = s.newSendKey(latest.epoch+1, base)
		}
		if err != nil {
			s.log.Error("e2ee: cannot make a new key; keeping the current one", "err", err)
			return nil
		}
		s.keyLog(s.opts.Self, k.kid, k.base)
		s.next = k
	default:
		// Nobody has the latest key yet: send it as it is.
		k = latest
	}
	k.shared = true
	msg, err := s.keyMessageLocked(k, only)
	if err != nil {
		s.log.Error("e2ee: cannot seal the key", "err", err)
		return nil
	}
	if s.next == k {
		s.pending = make(map[string]bool, len(s.members))
		for id := range s.members {
			if only == nil || only[id] {
				s.pending[id] = true
			}
		}
		if s.timer != nil {
			s.timer.Stop()
		}
		kid := k.kid
		s.timer = time.AfterFunc(s.opts.AckTimeout, func() { s.switchOnTimeout(kid) })
	}
	s.stats.KeysSent++
	send := s.opts.Send
	return func() {
		if send != nil {
			send(nil, msg)
		}
	}
}

// recipientKey names one member's session in sendKey.to: its identity,
// identity key and session, so that someone else shown under the same
// name (a key swapped after a reconnect) is not taken for it.
func recipientKey(r *remote) string {
	return r.identity + "\x00" + string(r.ann.Identity) + string(r.ann.SessionID[:])
}

// switchToFreshLocked replaces the current key at once with a fresh one
// nobody has (the room is empty apart from this participant).
func (s *Session) switchToFreshLocked() {
	base := make([]byte, baseKeySize(s.suite))
	if _, err := rand.Read(base); err != nil {
		s.log.Error("e2ee: cannot make a new key", "err", err)
		return
	}
	k, err := s.newSendKey(s.cur.epoch+1, base)
	if err != nil {
		s.log.Error("e2ee: cannot make a new key", "err", err)
		return
	}
	if s.next != nil && s.next.epoch >= k.epoch {
		k, err = s.newSendKey(s.next.epoch+1, base)
		if err != nil {
			return
		}
	}
	s.keyLog(s.opts.Self, k.kid, k.base)
	s.cur, s.next, s.pending = k, nil, nil
	if s.timer != nil {
		s.timer.Stop()
	}
	s.notifyLocked()
}

// keyMessageLocked seals k to every member (only those in only, if not
// nil), each box signed and bound to the member's session, under this
// sender's next sequence number, and notes them in k.to.
func (s *Session) keyMessageLocked(k *sendKey, only map[string]bool) (json.RawMessage, error) {
	body := KeyBody{
		Suite:         s.suite,
		KID:           k.kid,
		Seq:           s.seq,
		Room:          s.opts.Room,
		Sender:        s.opts.Self,
		SenderKey:     s.selfPub,
		SenderSession: s.sk.id,
		BaseKey:       k.base,
	}
	s.seq++
	boxes := make(map[string]string, len(s.members))
	if k.to == nil {
		k.to = make(map[string]bool)
	}
	for id, r := range s.members {
		if only != nil && !only[id] {
			continue
		}
		body.Recipient, body.RecipientKey, body.RecipientSession = id, r.ann.Identity, r.ann.SessionID
		sealed, err := SealKeyBox(s.opts.Identity, r.ann.HPKE, &body)
		if err != nil {
			// That member gets no key; the others must still get theirs,
			// or a leaver would keep reading.
			s.log.Error("e2ee: cannot seal the key to a member; it gets none", "identity", id, "err", err)
			continue
		}
		boxes[id] = base64.RawURLEncoding.EncodeToString(sealed)
		k.to[recipientKey(r)] = true
	}
	return json.Marshal(keyMessage{Version: keyMessageVersion, Type: "key", KID: k.kid, Boxes: boxes})
}

func (s *Session) switchOnTimeout(kid uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.next == nil || s.next.kid != kid {
		return
	}
	s.log.Info("e2ee: switching key before every recipient acknowledged it", "kid", kid, "silent", len(s.pending))
	s.stats.SwitchesOnTimeout++
	s.switchLocked()
}

func (s *Session) switchLocked() {
	s.cur, s.next, s.pending = s.next, nil, nil
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.notifyLocked()
}
