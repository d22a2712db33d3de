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
	if a := s.adm; a != nil && a.hold {
		// Rosters disagree (or this participant is not admitted yet):
		// no new key goes out until they agree (members.go).
		a.rekeyDue = true
		a.rekeyFresh = a.rekeyFresh || fresh
		return nil
	} else if a != nil {
		fresh = fresh || a.rekeyFresh
		a.rekeyDue, a.rekeyFresh = false, false
	}
	latest := s.cur
	if s.next != nil {
		latest = s.next
	}
	if len(s.members) == 0 {
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
	msg, err := s.keyMessageLocked(k)
	if err != nil {
		s.log.Error("e2ee: cannot seal the key", "err", err)
		return nil
	}
	if s.next == k {
		s.pending = make(map[string]bool, len(s.members))
		for id := range s.members {
			s.pending[id] = true
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

// keyMessageLocked seals k to every member, each box signed and bound to
// the member's session, under this sender's next sequence number.
func (s *Session) keyMessageLocked(k *sendKey) (json.RawMessage, error) {
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
	for id, r := range s.members {
		body.Recipient, body.RecipientKey, body.RecipientSession = id, r.ann.Identity, r.ann.SessionID
		sealed, err := SealKeyBox(s.opts.Identity, r.ann.HPKE, &body)
		if err != nil {
			// That member gets no key; the others must still get theirs,
			// or a leaver would keep reading.
			s.log.Error("e2ee: cannot seal the key to a member; it gets none", "identity", id, "err", err)
			continue
		}
		boxes[id] = base64.RawURLEncoding.EncodeToString(sealed)
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
