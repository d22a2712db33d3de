package e2ee

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sotto-rtc/sotto/media/sframe"
)

// DefaultSuite is the SFrame cipher suite Sotto clients use.
const DefaultSuite = sframe.AES128GCMSHA256_128

// Defaults of Options fields left zero.
const (
	// DefaultAckTimeout bounds how long a sender waits for acks before it
	// switches anyway: a silent recipient must not keep a leaver reading.
	DefaultAckTimeout = 2 * time.Second
	// DefaultGrace is how long a receiver keeps a sender's previous key once
	// its new one is in use, for frames in flight.
	DefaultGrace = 3 * time.Second
)

const (
	// maxKeysPerSender: current, previous in grace, next, one spare. A
	// sender flooding key messages only evicts its own oldest keys.
	maxKeysPerSender = 4
	// keyMessageVersion is the "sotto_e2ee" field of every key message.
	keyMessageVersion = 2
)

var (
	// ErrNoKey: no key (yet, or any more) for the frame's sender or KID.
	ErrNoKey = errors.New("e2ee: no key for this frame")
	// ErrNotKeyMessage: a relay message is not one of this package's.
	ErrNotKeyMessage = errors.New("e2ee: not a key-management message")
	// ErrKeyMessage: a key-management message was refused.
	ErrKeyMessage = errors.New("e2ee: bad key-management message")
)

// Options configures a Session.
type Options struct {
	// Room is the room's name; sealed keys are bound to it.
	Room string
	// Self is this participant's identity, as its access token names it.
	Self string
	// Identity is this participant's identity key pair.
	Identity *Identity
	// SessionKey defaults to a fresh one; set it only to announce before
	// the session exists.
	SessionKey *SessionKey
	// Suite defaults to DefaultSuite; the whole room must use the same.
	Suite sframe.CipherSuite
	// Send delivers a key message to identities (nil: everyone else). It is
	// called with no lock held and must not block (queue the message).
	Send func(to []string, msg json.RawMessage)
	// AckTimeout: see DefaultAckTimeout.
	AckTimeout time.Duration
	// Grace: see DefaultGrace.
	Grace time.Duration
	// KeyLog, when set, gets every base key made or received, like
	// SSLKEYLOGFILE: for debugging and tests, never in production.
	KeyLog func(KeyEvent)
	// Logger receives key-management logs. Default slog.Default().
	Logger *slog.Logger
	// AudioBucket is the audio padding bucket (PadAudio): 0 means
	// DefaultAudioBucket, 1 only the trailer, at most MaxAudioBucket.
	AudioBucket int
	// Admission turns on admission by members and roster checks
	// (members.go); every participant of a call must use the same setting.
	Admission *AdmissionOptions
}

// KeyEvent is one base key a session made (Sender == Options.Self) or got.
type KeyEvent struct {
	Sender  string
	KID     uint64
	BaseKey []byte
}

// Peer is another participant as signaling announced it, with the
// public_key its join carried.
type Peer struct {
	Identity  string
	PublicKey string
	// Held keeps it out of the keys both ways (a key change awaits the
	// user); with admission it stays in the roster, its admissions do not count.
	Held bool
}

// Stats counts key-management events of a session.
type Stats struct {
	Epoch          uint32 // this sender's key epoch: incremented by every key switch
	KeysSent       uint64 // key messages sent (one per rekey, with a box for each member)
	KeysReceived   uint64 // keys opened from other participants
	BadKeyMessages uint64 // key messages that were malformed or did not open
	// ReplayedKeyMessages: refused as old (seq or retired KID); also in BadKeyMessages.
	ReplayedKeyMessages uint64
	AcksReceived        uint64
	SwitchesOnAck       uint64 // key switches after every recipient acknowledged
	SwitchesOnTimeout   uint64 // key switches after AckTimeout, some recipient silent
}

// Session is one participant's E2EE state in a call: its sending keys and
// everyone else's (docs/E2EE.md, "Key management"). Safe for concurrent use.
type Session struct {
	opts     Options
	log      *slog.Logger
	suite    sframe.CipherSuite
	sk       *SessionKey
	selfPub  []byte // this participant's identity key
	announce string // what PublicKey returns

	mu         sync.Mutex
	closed     bool
	publishing bool // set by StartPublishing; until then no key goes out
	epoch      uint32
	cur        *sendKey
	next       *sendKey // nil unless a new key waits for acks
	pending    map[string]bool
	timer      *time.Timer
	members    map[string]*remote // by identity
	// tag is this sender's non-zero 24-bit KID tag, redrawn when the
	// epoch's low byte wraps, never reused (usedTags).
	tag      uint64
	usedTags map[uint64]bool
	seq      uint64 // sequence number of this sender's next key message
	// senders keeps replay protection per sender beyond its stay (receive.go).
	senders senderRecords
	// early holds, bounded, key messages from senders not yet members;
	// drainEarly replays them.
	early      map[string][]keyMessage
	earlyOrder []string // senders in early, first heard from first
	stats      Stats
	adm        *admission    // nil without Options.Admission
	changed    chan struct{} // closed and replaced on each change (Changed)
}

const (
	// maxEarlySenders and maxEarlyPerSender bound Session.early.
	maxEarlySenders   = 64
	maxEarlyPerSender = 4
)

// sendKey is one of this participant's own base keys.
type sendKey struct {
	kid    uint64
	epoch  uint32
	base   []byte
	shared bool            // sent to at least one member
	to     map[string]bool // the member sessions it was sealed to (recipientKey)
	sender *sframe.Sender
}

// remote is another participant's keys.
type remote struct {
	identity string
	encoded  string
	ann      Announcement
	rec      *senderRecord
	recv     *sframe.Receiver
	tag      uint64 // from its latest key; 0 until then
	keys     []remoteKey
	seq      uint64 // insertion counter for keys
	inUse    uint64 // KID of the latest key a frame decrypted with
	expiry   *time.Timer
}

type remoteKey struct {
	kid  uint64
	seq  uint64
	base []byte
}

// NewSession starts a participant's E2EE state with a fresh random key.
func NewSession(opts Options) (*Session, error) {
	if opts.Identity == nil {
		return nil, errors.New("e2ee: Options.Identity is required")
	}
	if opts.Self == "" {
		return nil, errors.New("e2ee: Options.Self is required")
	}
	if opts.Suite == 0 {
		opts.Suite = DefaultSuite
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = DefaultAckTimeout
	}
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.AudioBucket == 0 {
		opts.AudioBucket = DefaultAudioBucket
	}
	if opts.AudioBucket < 1 || opts.AudioBucket > MaxAudioBucket {
		return nil, errBadBucket
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	sk := opts.SessionKey
	if sk == nil {
		var err error
		if sk, err = NewSessionKey(); err != nil {
			return nil, err
		}
	}
	s := &Session{
		opts:     opts,
		log:      log,
		suite:    opts.Suite,
		sk:       sk,
		selfPub:  opts.Identity.PublicKey(),
		announce: Announce(opts.Identity, sk),
		members:  make(map[string]*remote),
		changed:  make(chan struct{}),
		seq:      uint64(time.Now().UnixMicro()),
	}
	if opts.Admission != nil {
		s.adm = newAdmission(*opts.Admission)
	}
	if err := s.newTag(); err != nil {
		return nil, err
	}
	base := make([]byte, baseKeySize(opts.Suite))
	if _, err := rand.Read(base); err != nil {
		return nil, fmt.Errorf("e2ee: base key: %w", err)
	}
	k, err := s.newSendKey(0, base)
	if err != nil {
		return nil, err
	}
	s.cur = k
	s.keyLog(opts.Self, k.kid, k.base)
	return s, nil
}

// baseKeySize is the suite's hash size, the most HKDF-Extract can use.
func baseKeySize(s sframe.CipherSuite) int { return s.HashSize() }

// KIDOf is the KID a sender with tag uses in epoch.
func KIDOf(tag uint64, epoch uint32) uint64 { return tag<<8 | uint64(epoch&0xff) }

// newTag draws a non-zero 24-bit tag this session never used, so a KID
// never comes back.
func (s *Session) newTag() error {
	var t [4]byte
	for s.tag == 0 || s.usedTags[s.tag] {
		if _, err := rand.Read(t[1:]); err != nil {
			return fmt.Errorf("e2ee: sender tag: %w", err)
		}
		s.tag = uint64(binary.BigEndian.Uint32(t[:]))
	}
	if s.usedTags == nil {
		s.usedTags = make(map[uint64]bool)
	}
	s.usedTags[s.tag] = true
	return nil
}

// newSendKey makes this sender's key for epoch, with a new tag when the
// epoch's low byte wraps so no KID repeats (docs/E2EE.md, "Sender keys").
func (s *Session) newSendKey(epoch uint32, base []byte) (*sendKey, error) {
	if epoch != 0 && epoch&0xff == 0 {
		if err := s.newTag(); err != nil {
			return nil, err
		}
	}
	kid := KIDOf(s.tag, epoch)
	snd, err := sframe.NewSender(s.suite, kid, base)
	if err != nil {
		return nil, fmt.Errorf("e2ee: sender key: %w", err)
	}
	return &sendKey{kid: kid, epoch: epoch, base: base, sender: snd}, nil
}

func (s *Session) keyLog(sender string, kid uint64, base []byte) {
	if f := s.opts.KeyLog; f != nil {
		f(KeyEvent{Sender: sender, KID: kid, BaseKey: slices.Clone(base)})
	}
}

// PublicKey is what this participant's join carries in public_key (Announce).
func (s *Session) PublicKey() string { return s.announce }

// KID is the KID frames are encrypted under now.
func (s *Session) KID() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.kid
}

// Stats returns the session's counters and current epoch.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Epoch = s.cur.epoch
	return st
}

// SafetyNumber is the call's safety number over this participant and its members.
func (s *Session) SafetyNumber() string {
	s.mu.Lock()
	ms := []Member{{Identity: s.opts.Self, PublicKey: s.selfPub}}
	for _, m := range s.members {
		ms = append(ms, Member{Identity: m.identity, PublicKey: m.ann.Identity})
	}
	s.mu.Unlock()
	return SafetyNumber(s.opts.Room, ms)
}

// Members lists exactly whom SafetyNumber covers, sorted by identity.
func (s *Session) Members() []Member {
	s.mu.Lock()
	ms := []Member{{Identity: s.opts.Self, PublicKey: s.selfPub}}
	for _, m := range s.members {
		ms = append(ms, Member{Identity: m.identity, PublicKey: slices.Clone(m.ann.Identity)})
	}
	s.mu.Unlock()
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.Identity, b.Identity) })
	return ms
}

// SetMembers tells the session who else is in the call with E2EE on.
// Joiners get the key ratcheted; a leaver, or a changed public key, brings
// a fresh key for those who remain. Unusable keys are left out (logged).
func (s *Session) SetMembers(members []Peer) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if s.adm != nil {
		after := s.listLocked(members)
		s.mu.Unlock()
		after()
		s.drainEarly()
		return
	}
	want := make(map[string]Peer, len(members))
	for _, m := range members {
		if m.Identity == s.opts.Self || m.Held {
			continue
		}
		want[m.Identity] = m
	}
	removed, added := s.applyMembersLocked(want)
	var send func()
	if (removed || added) && s.publishing {
		send = s.rekeyLocked(removed)
	}
	s.mu.Unlock()
	if send != nil {
		send()
	}
	s.drainEarly()
}

// applyMembersLocked makes the members those of want.
func (s *Session) applyMembersLocked(want map[string]Peer) (removed, added bool) {
	for id, r := range s.members {
		if m, ok := want[id]; !ok || m.PublicKey != r.encoded {
			s.dropMemberLocked(r)
			removed = true
		}
	}
	for id, m := range want {
		if s.members[id] != nil {
			continue
		}
		ann, err := ParseAnnouncement(m.PublicKey)
		if err != nil {
			s.log.Warn("e2ee: member without a usable public key is left out", "identity", id, "err", err)
			continue
		}
		if len(id) > math.MaxUint16 {
			s.log.Warn("e2ee: member with an identity longer than a key message can name is left out", "bytes", len(id))
			continue
		}
		rec := s.senders.get(id, ann.Identity)
		if rec == nil {
			s.log.Warn("e2ee: too many participants in this session to protect from replays; left out", "identity", id, "max", maxSenderRecords)
			continue
		}
		s.members[id] = &remote{
			identity: id,
			encoded:  m.PublicKey,
			ann:      ann,
			rec:      rec,
			recv:     sframe.NewReceiver(s.suite, sframe.ReceiverOptions{}),
		}
		added = true
	}
	return removed, added
}

// drainEarly handles the key messages of senders that became members.
func (s *Session) drainEarly() {
	s.mu.Lock()
	type pending struct {
		from string
		msgs []keyMessage
	}
	var ready []pending
	for from, msgs := range s.early {
		if s.members[from] != nil {
			ready = append(ready, pending{from, msgs})
			delete(s.early, from)
			s.earlyOrder = slices.DeleteFunc(s.earlyOrder, func(f string) bool { return f == from })
		}
	}
	s.mu.Unlock()
	for _, p := range ready {
		for _, m := range p.msgs {
			_ = s.handleKey(p.from, m) // refusals are logged and counted
		}
	}
}

// StartPublishing sends this participant's key to every member and rekeys
// on every later membership change; a listener that never calls it sends
// no key messages. EncryptFrame calls it; calling it again does nothing.
func (s *Session) StartPublishing() {
	s.mu.Lock()
	if s.closed || s.publishing {
		s.mu.Unlock()
		return
	}
	s.publishing = true
	var send func()
	if len(s.members) > 0 {
		send = s.rekeyLocked(false)
	}
	s.mu.Unlock()
	if send != nil {
		send()
	}
}

func (s *Session) dropMemberLocked(r *remote) {
	delete(s.members, r.identity)
	delete(s.pending, r.identity)
	if r.expiry != nil {
		r.expiry.Stop()
	}
	for _, k := range r.keys {
		r.rec.retire(r.ann.SessionID, k.kid)
	}
}

// keyMessage is the relay payload of key management (docs/E2EE.md, "Key messages").
type keyMessage struct {
	Version int               `json:"sotto_e2ee"`
	Type    string            `json:"type"`
	KID     uint64            `json:"kid"`
	Boxes   map[string]string `json:"boxes,omitempty"`
	// Admission ("admit"), Roster ("roster"), Identity ("refuse"): members.go.
	Admission string `json:"admission,omitempty"`
	Roster    string `json:"roster,omitempty"`
	Identity  string `json:"identity,omitempty"`
}

func (s *Session) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Changed returns a channel closed at the next key switch or expiry. Get
// it before reading the state, to miss nothing.
func (s *Session) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Close stops the session's timers and forgets its keys.
func (s *Session) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.adm != nil && s.adm.timer != nil {
		s.adm.timer.Stop()
	}
	for _, r := range s.members {
		s.dropMemberLocked(r)
	}
}
