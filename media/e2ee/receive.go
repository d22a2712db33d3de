package e2ee

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrReplayedKey is returned, wrapped in an ErrKeyMessage, for an authentic
// but old key message (rules 4 and 5 of docs/E2EE.md, "Key messages").
var ErrReplayedKey = errors.New("e2ee: replayed key message")

const (
	// maxSenderRecords bounds replay records per session. A record is never
	// forgotten (that would let old key messages in again): a sender beyond
	// the bound is left out of key management instead.
	maxSenderRecords = 4096
	// maxRetired bounds retired KIDs per sender; seq refuses older ones anyway.
	maxRetired = 256
)

// senderRecord is what replay protection keeps about one sender (identity
// and key) for the session's life, across the sender leaving and returning.
type senderRecord struct {
	highest uint64       // highest sequence number accepted; 0: none yet
	retired []retiredKID // oldest first, per sender session
}

type retiredKID struct {
	session [SessionIDSize]byte
	kid     uint64
}

// senderRecords holds at most maxSenderRecords records, under Session.mu.
type senderRecords struct {
	by map[string]*senderRecord
}

// get returns the record of identity with key, or nil when there is no room.
func (rs *senderRecords) get(identity string, key []byte) *senderRecord {
	k := identity + "\x00" + string(key)
	if r := rs.by[k]; r != nil {
		return r
	}
	if len(rs.by) >= maxSenderRecords {
		return nil
	}
	if rs.by == nil {
		rs.by = make(map[string]*senderRecord)
	}
	r := &senderRecord{}
	rs.by[k] = r
	return r
}

func (r *senderRecord) retire(session [SessionIDSize]byte, kid uint64) {
	if r.isRetired(session, kid) {
		return
	}
	if len(r.retired) >= maxRetired {
		r.retired = r.retired[1:]
	}
	r.retired = append(r.retired, retiredKID{session, kid})
}

func (r *senderRecord) isRetired(session [SessionIDSize]byte, kid uint64) bool {
	return slices.Contains(r.retired, retiredKID{session, kid})
}

// IsKeyMessage reports whether a relay payload is one of this package's messages.
func IsKeyMessage(data []byte) bool {
	var probe struct {
		Version *int `json:"sotto_e2ee"`
	}
	return bytes.Contains(data, []byte(`"sotto_e2ee"`)) && json.Unmarshal(data, &probe) == nil && probe.Version != nil
}

// HandleMessage takes a relayed key-management message from participant
// from: ErrNotKeyMessage for anything else; a refused one returns an
// ErrKeyMessage and changes nothing but the counters.
func (s *Session) HandleMessage(from string, data []byte) error {
	var m keyMessage
	if err := json.Unmarshal(data, &m); err != nil || m.Version == 0 {
		return ErrNotKeyMessage
	}
	if m.Version != keyMessageVersion {
		return s.bad(from, fmt.Errorf("version %d, this client speaks %d", m.Version, keyMessageVersion))
	}
	switch m.Type {
	case "key":
		return s.handleKey(from, m)
	case "key_ack":
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.next == nil || s.next.kid != m.KID || !s.pending[from] {
			return nil // a late or duplicate ack
		}
		s.stats.AcksReceived++
		delete(s.pending, from)
		if len(s.pending) == 0 {
			s.stats.SwitchesOnAck++
			s.switchLocked()
		}
		return nil
	case "admit", "refuse", "roster":
		if s.adm == nil {
			return nil // admission is off here
		}
		switch m.Type {
		case "admit":
			return s.handleAdmission(from, m)
		case "refuse":
			return s.handleRefusal(from, m)
		}
		return s.handleRoster(from, m)
	default:
		return s.bad(from, fmt.Errorf("unknown type %q", m.Type))
	}
}

func (s *Session) bad(from string, err error) error {
	s.mu.Lock()
	s.stats.BadKeyMessages++
	if errors.Is(err, ErrReplayedKey) {
		s.stats.ReplayedKeyMessages++
	}
	s.mu.Unlock()
	s.log.Warn("e2ee: key message refused", "from", from, "err", err)
	return fmt.Errorf("%w from %q: %w", ErrKeyMessage, from, err)
}

// queueEarlyLocked keeps m from a non-member, bounded. Nothing in it is
// authenticated, so it evicts rather than refuses: a flood cannot fill it for good.
func (s *Session) queueEarlyLocked(from string, m keyMessage) {
	if s.early == nil {
		s.early = make(map[string][]keyMessage)
	}
	q, ok := s.early[from]
	if !ok {
		for len(s.earlyOrder) >= maxEarlySenders {
			delete(s.early, s.earlyOrder[0])
			s.earlyOrder = s.earlyOrder[1:]
		}
		s.earlyOrder = append(s.earlyOrder, from)
	}
	if len(q) >= maxEarlyPerSender {
		q = q[1:]
	}
	s.early[from] = append(q, m)
}

// checkBody checks a box's bindings: rule 3 of docs/E2EE.md, "Key messages".
func (s *Session) checkBody(from string, r *remote, m keyMessage, b *KeyBody) error {
	switch {
	case b.Suite != s.suite:
		return fmt.Errorf("cipher suite %#04x, this client uses %#04x", uint16(b.Suite), uint16(s.suite))
	case b.KID != m.KID:
		return errors.New("sealed KID differs from the message's")
	case b.Room != s.opts.Room:
		return errors.New("sealed for another room")
	case b.Sender != from:
		return fmt.Errorf("sealed as from %q", b.Sender)
	case !bytes.Equal(b.SenderKey, r.ann.Identity) || b.SenderSession != r.ann.SessionID:
		return errors.New("sealed by another key or session of the sender than it announced")
	case b.Recipient != s.opts.Self:
		return fmt.Errorf("sealed for %q", b.Recipient)
	case !bytes.Equal(b.RecipientKey, s.selfPub) || b.RecipientSession != s.sk.id:
		return errors.New("sealed for another key or session of this participant")
	case len(b.BaseKey) != baseKeySize(s.suite):
		return fmt.Errorf("base key of %d bytes, the suite wants %d", len(b.BaseKey), baseKeySize(s.suite))
	}
	return nil
}

func (s *Session) handleKey(from string, m keyMessage) error {
	box, ok := m.Boxes[s.opts.Self]
	if !ok {
		return nil // a key for others only (we joined after it was sent)
	}
	if m.KID >= 1<<32 || m.KID>>8 == 0 {
		return s.bad(from, fmt.Errorf("KID %#x is not a 24-bit tag and an 8-bit epoch", m.KID))
	}
	sealed, err := base64.RawURLEncoding.DecodeString(box)
	if err != nil {
		return s.bad(from, fmt.Errorf("box: %w", err))
	}
	s.mu.Lock()
	r := s.members[from]
	if r == nil {
		// Its announcement may still be on its way: keep this client's box.
		s.queueEarlyLocked(from, keyMessage{Version: m.Version, Type: m.Type, KID: m.KID, Boxes: map[string]string{s.opts.Self: box}})
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	b, err := OpenKeyBox(s.sk, r.ann.Identity, sealed)
	if err != nil {
		return s.bad(from, err)
	}
	if err := s.checkBody(from, r, m, b); err != nil {
		return s.bad(from, err)
	}
	kid, base := b.KID, b.BaseKey

	s.mu.Lock()
	if s.members[from] != r {
		s.mu.Unlock()
		return nil // left meanwhile
	}
	if b.Seq <= r.rec.highest {
		s.mu.Unlock()
		return s.bad(from, fmt.Errorf("%w: sequence number %d, already accepted %d", ErrReplayedKey, b.Seq, r.rec.highest))
	}
	if r.rec.isRetired(r.ann.SessionID, kid) {
		s.mu.Unlock()
		return s.bad(from, fmt.Errorf("%w: KID %#x was retired", ErrReplayedKey, kid))
	}
	if r.tag != 0 && kid>>8 != r.tag && kid&0xff != 0 {
		s.mu.Unlock()
		return s.bad(from, fmt.Errorf("KID %#x neither carries the sender's tag %#x nor starts a new one", kid, r.tag))
	}
	for _, k := range r.keys {
		if k.kid == kid && !bytes.Equal(k.base, base) {
			s.mu.Unlock()
			return s.bad(from, fmt.Errorf("KID %#x sent again with another key", kid))
		}
	}
	if err := r.recv.SetKey(kid, base); err != nil {
		s.mu.Unlock()
		return s.bad(from, err)
	}
	r.rec.highest = b.Seq
	r.tag = kid >> 8
	s.keepKeyLocked(r, kid, base)
	s.stats.KeysReceived++
	send := s.opts.Send
	s.mu.Unlock()

	s.keyLog(from, kid, base)
	if send != nil {
		ack, _ := json.Marshal(keyMessage{Version: keyMessageVersion, Type: "key_ack", KID: kid})
		send([]string{from}, ack)
	}
	return nil
}

// keepKeyLocked adds a key to r's, retiring the oldest beyond maxKeysPerSender.
func (s *Session) keepKeyLocked(r *remote, kid uint64, base []byte) {
	r.keys = slices.DeleteFunc(r.keys, func(k remoteKey) bool { return k.kid == kid })
	r.seq++
	r.keys = append(r.keys, remoteKey{kid: kid, seq: r.seq, base: base})
	for len(r.keys) > maxKeysPerSender {
		r.recv.RemoveKey(r.keys[0].kid)
		r.rec.retire(r.ann.SessionID, r.keys[0].kid)
		r.keys = r.keys[1:]
	}
}

// noteInUseLocked records that a frame from r decrypted under kid; once a
// newer key is in use, older ones are retired after the grace period.
func (s *Session) noteInUseLocked(r *remote, kid uint64) {
	if r.inUse == kid {
		return
	}
	var seq uint64
	for _, k := range r.keys {
		if k.kid == kid {
			seq = k.seq
		}
	}
	var oldSeq uint64
	for _, k := range r.keys {
		if k.kid == r.inUse {
			oldSeq = k.seq
		}
	}
	if r.inUse != 0 && seq < oldSeq {
		return // a late frame under an older key
	}
	r.inUse = kid
	if r.expiry != nil {
		r.expiry.Stop()
	}
	r.expiry = time.AfterFunc(s.opts.Grace, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.members[r.identity] != r || r.inUse != kid {
			return
		}
		r.keys = slices.DeleteFunc(r.keys, func(k remoteKey) bool {
			if k.seq < seq {
				r.recv.RemoveKey(k.kid)
				r.rec.retire(r.ann.SessionID, k.kid)
				return true
			}
			return false
		})
		s.notifyLocked()
	})
}
