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

// The receiving side of key management: opening other participants' key
// messages, refusing old ones, and the keys held per sender.

// ErrReplayedKey is returned, wrapped in an ErrKeyMessage, for a key
// message that is authentic but old: its sequence number is not above the
// highest accepted from that sender, or its KID was retired. A node that
// recorded key messages and plays them back gets this.
var ErrReplayedKey = errors.New("e2ee: replayed key message")

const (
	// maxSenderRecords bounds the senders remembered for replay
	// protection in one session. A record is never forgotten while the
	// session lives (forgetting one would let that sender's old key
	// messages in again); a sender beyond the bound is left out of key
	// management instead, so a node that floods a session with made-up
	// participants only keeps more of them out.
	maxSenderRecords = 4096
	// maxRetired bounds the retired KIDs kept per sender; the sequence
	// number refuses older ones anyway.
	maxRetired = 256
)

// senderRecord is what replay protection keeps about one sender (its
// identity and identity key) for the life of this session, across the
// sender leaving and coming back.
type senderRecord struct {
	highest uint64 // highest sequence number accepted; 0: none yet
	// retired lists, oldest first, the KIDs removed from use, each with
	// the sender session it belonged to.
	retired []retiredKID
}

type retiredKID struct {
	session [SessionIDSize]byte
	kid     uint64
}

// senderRecords holds the senderRecords, at most maxSenderRecords. Its
// zero value is ready; it is used with Session.mu held.
type senderRecords struct {
	by map[string]*senderRecord
}

// get returns the record of identity with key, making it if there is
// room; nil when the session already remembers maxSenderRecords others.
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

// IsKeyMessage reports whether a relay payload is one of this package's
// key-management messages (so the application need not see it).
func IsKeyMessage(data []byte) bool {
	var probe struct {
		Version *int `json:"sotto_e2ee"`
	}
	return bytes.Contains(data, []byte(`"sotto_e2ee"`)) && json.Unmarshal(data, &probe) == nil && probe.Version != nil
}

// HandleMessage takes a key-management message that participant from
// sent through signaling's relay. It returns ErrNotKeyMessage for
// anything else, and an ErrKeyMessage for a message that is malformed,
// does not open, is bound to something else, or is old (also wrapping
// ErrReplayedKey); nothing else in the session changes then.
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

// queueEarlyLocked keeps m from a sender that is not a member, bounded:
// the newest maxEarlyPerSender messages of the maxEarlySenders senders
// heard from last. Nothing in it is authenticated yet, so it evicts
// rather than refuses: a node that floods it with messages of senders
// who never come displaces them, but cannot fill it for good. Called with
// s.mu held.
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

// checkBody compares what a box says it is bound to with what this
// session knows: every rule 3 of docs/E2EE.md ("Key messages").
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
		// Every KID is a 24-bit tag, never 0, and an 8-bit epoch.
		return s.bad(from, fmt.Errorf("KID %#x is not a 24-bit tag and an 8-bit epoch", m.KID))
	}
	sealed, err := base64.RawURLEncoding.DecodeString(box)
	if err != nil {
		return s.bad(from, fmt.Errorf("box: %w", err))
	}
	s.mu.Lock()
	r := s.members[from]
	if r == nil {
		// Perhaps its announcement is still on its way (or the application
		// has not accepted its changed key yet): keep this client's box
		// for SetMembers.
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

// keepKeyLocked adds a key that r's receiver holds to r's keys, evicting
// (and retiring) the oldest beyond maxKeysPerSender. Called with s.mu
// held.
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

// noteInUse records that a frame from r decrypted under kid; the first
// time a newer key is seen in use, the older keys are dropped (and
// retired) after the grace period. Called with s.mu held.
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
