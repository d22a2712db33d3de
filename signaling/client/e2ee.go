package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/media/sframe"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// ErrE2EENeedsFrames: with end-to-end encryption on, every frame must pass
// through Publication.WriteSample, so tracks are made by PublishSample.
var ErrE2EENeedsFrames = errors.New("client: end-to-end encryption needs every frame: publish with PublishSample and write with Publication.WriteSample, or set Options.E2EE.Disabled")

// E2EEOptions configures end-to-end encryption (docs/E2EE.md), on unless
// Disabled: frames are encrypted with SFrame before they leave the client,
// and keys travel sealed in relay messages the server cannot read.
type E2EEOptions struct {
	// Disabled sends frames as the encoder made them; the others see this
	// client marked as not encrypting. Options.PublicKey is then free.
	Disabled bool
	Suite    sframe.CipherSuite // the room's; default e2ee.DefaultSuite
	// KeyLog is told every base key, for debugging and tests. It defeats
	// end-to-end encryption: never set it in production.
	KeyLog func(e2ee.KeyEvent)
	// AcceptClear returns frames that do not decrypt, on a track the server
	// marks as clear, with Frame.Encrypted false instead of dropping them.
	// It lets the server inject media under any participant.
	AcceptClear bool
	// Store keeps the identity key and those of people met (trust on first
	// use). Default e2ee.NewMemoryStore(); e2ee.OpenFileStore remembers.
	Store e2ee.IdentityStore
	// Admission decides about each waiting participant; nil leaves them to
	// Client.Admit and Client.Refuse (docs/E2EE.md, "Admission and rosters").
	Admission AdmissionPolicy
	// RosterTimeout is how long views may disagree before
	// Handlers.Admission.RosterMismatch; default e2ee.DefaultRosterTimeout.
	RosterTimeout time.Duration
}

// keyState is end-to-end encryption's (this file, admission.go, known.go);
// identity and keys are nil when it is off.
type keyState struct {
	identity   *e2ee.Identity
	sessionKey *e2ee.SessionKey // announced for the client's whole life
	store      e2ee.IdentityStore
	changed    map[string]KeyChange // changed keys not accepted yet, by identity
	metNow     map[string]bool      // identity+"\x00"+key first met during this life
	keys       *e2ee.Session
	keySess    atomic.Pointer[session] // the session key messages go out on
	trust      map[string]*peerTrust   // by identity, for the client's life
}

// peerTrust is what this client decided about one identity's media, from
// the participant's own announcements, never from the track fields the
// server writes (docs/E2EE.md, "Whether to decrypt"). encrypts, once set,
// is never cleared; until announced, frames must decrypt as if it were.
// Atomic: ReadFrame reads them per frame without c.mu.
type peerTrust struct {
	encrypts  atomic.Bool
	announced atomic.Bool
}

// trustLocked returns identity's record, made on first use.
func (c *Client) trustLocked(identity string) *peerTrust {
	if c.trust == nil {
		c.trust = make(map[string]*peerTrust)
	}
	pt := c.trust[identity]
	if pt == nil {
		pt = &peerTrust{}
		c.trust[identity] = pt
	}
	return pt
}

// updateTrustLocked applies the roster to peerTrust after every change of
// its participants.
func (c *Client) updateTrustLocked() {
	now := make(map[string]bool, len(c.others.order))
	for _, sid := range c.others.order {
		m := c.others.by[sid]
		if !m.announced {
			continue
		}
		pt := c.trustLocked(m.info.Identity)
		if m.info.E2EE && !pt.encrypts.Load() {
			pt.encrypts.Store(true)
		}
		pt.announced.Store(true)
		now[m.info.Identity] = true
	}
	for id, pt := range c.trust {
		if !now[id] {
			pt.announced.Store(false)
		}
	}
}

// startE2EE makes the client's identity key for the join; newKeys builds
// the key-management session once joined says who and where we are.
func (c *Client) startE2EE() error {
	if c.opts.E2EE.Disabled {
		return nil
	}
	if c.opts.PublicKey != "" {
		return errors.New("client: Options.PublicKey is set by end-to-end encryption (the identity key); set Options.E2EE.Disabled to carry a key of your own")
	}
	st := c.opts.E2EE.Store
	if st == nil {
		st = e2ee.NewMemoryStore()
	}
	c.store = st
	id, err := st.Identity()
	if err != nil {
		return fmt.Errorf("client: identity key: %w", err)
	}
	sk, err := e2ee.NewSessionKey()
	if err != nil {
		return fmt.Errorf("client: session key: %w", err)
	}
	c.identity, c.sessionKey = id, sk
	c.opts.PublicKey = e2ee.Announce(id, sk)
	return nil
}

func (c *Client) newKeys(j *wire.Joined) error {
	if c.identity == nil {
		return nil
	}
	keys, err := e2ee.NewSession(e2ee.Options{
		Room:       j.Room,
		Self:       j.Participant.Identity,
		Identity:   c.identity,
		SessionKey: c.sessionKey,
		Suite:      c.opts.E2EE.Suite,
		Send:       c.sendKeyMessage,
		KeyLog:     c.opts.E2EE.KeyLog,
		Logger:     c.log,
		Admission: &e2ee.AdmissionOptions{
			OnEvent:       c.onMembership,
			RosterTimeout: c.opts.E2EE.RosterTimeout,
		},
	})
	if err != nil {
		return fmt.Errorf("client: end-to-end encryption: %w", err)
	}
	c.keys = keys
	return nil
}

// sendKeyMessage queues a key-management relay without waiting: a refusal
// (the recipient left) concerns nobody.
func (c *Client) sendKeyMessage(to []string, msg json.RawMessage) {
	s := c.keySess.Load()
	if s == nil {
		return
	}
	id := c.nextID()
	s.requestAsync(id, wire.Relay{Type: wire.TypeRelay, ID: id, To: to, Data: msg})
}

// updateKeyMembersLocked tells key management who is in the call.
func (c *Client) updateKeyMembersLocked(s *session) {
	c.updateTrustLocked()
	if c.keys == nil {
		return
	}
	if prev := c.keySess.Swap(s); prev != nil && prev != s {
		// The others dropped this client's keys when it left: start over.
		c.keys.Rejoin()
	}
	var peers []e2ee.Peer
	for _, sid := range c.others.order {
		m := c.others.by[sid]
		if m.announced && m.info.E2EE && m.info.PublicKey != "" {
			// One held out still counts in the roster of whom the node shows.
			held := !c.trustedKeyLocked(m.info)
			peers = append(peers, e2ee.Peer{Identity: m.info.Identity, PublicKey: m.info.PublicKey, Held: held})
		}
	}
	c.keys.SetMembers(peers)
}

// SafetyNumber is derived from the identity keys of every participant with
// end-to-end encryption, this one included: the same on every screen iff
// no key was swapped (docs/E2EE.md). "" when E2EE is off.
func (c *Client) SafetyNumber() string {
	if c.keys == nil {
		return ""
	}
	return c.keys.SafetyNumber()
}

// E2EEStats reports the sending key's epoch and counts of keys sent,
// received and refused. Zero when E2EE is off.
func (c *Client) E2EEStats() e2ee.Stats {
	if c.keys == nil {
		return e2ee.Stats{}
	}
	return c.keys.Stats()
}

// E2EEChanged is closed at the next change of key state (a new sending
// key, a sender's expired keys dropped). Nil when E2EE is off.
func (c *Client) E2EEChanged() <-chan struct{} {
	if c.keys == nil {
		return nil
	}
	return c.keys.Changed()
}
