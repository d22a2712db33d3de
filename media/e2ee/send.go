package e2ee

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/sotto-rtc/sotto/media/sframe"
)

// rekeyLocked makes the key a membership change calls for and returns its
// send. fresh: a member left, so the key must not derive from an earlier one.
func (s *Session) rekeyLocked(fresh bool) func() {
	var only map[string]bool
	if a := s.adm; a != nil && a.hold {
		// Not admitted, or rosters disagree: no key goes out until they agree.
		a.rekeyDue = true
		if !fresh {
			return nil
		}
		a.rekeyFresh = false
		// Someone left: a fresh key goes now, but only to members that
		// had a current key (they learn nothing new).
		only = make(map[string]bool)
		for id := range s.members {
			r := s.members[id]
			if s.cur.to[recipientKey(r)] || s.next != nil && s.next.to[recipientKey(r)] {
				only[id] = true
			}
		}
		// Those left out get the key once views agree.
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
		// Nobody to tell, but a leaver had the current key.
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

// recipientKey names one member's session in sendKey.to, so someone else
// under the same name (a swapped key) is not taken for it.
func recipientKey(r *remote) string {
	return r.identity + "\x00" + string(r.ann.Identity) + string(r.ann.SessionID[:])
}

// switchToFreshLocked switches at once to a fresh key nobody has.
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

// keyMessageLocked seals k to every member (or those in only) under the
// next sequence number, noting them in k.to.
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
			// The others must still get theirs, or a leaver would read on.
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
