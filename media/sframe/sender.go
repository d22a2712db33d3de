package sframe

import (
	"fmt"
	"math"
	"sync"
)

// Sender encrypts frames under one KID with a counter that starts at 0 and
// increases by one per frame, so no (key, nonce) pair is ever used twice
// (RFC 9605 sections 4.3 and 9.1). The base key it was made from must be
// used by this Sender only: two senders with one key and KID would reuse
// nonces.
//
// A Sender is safe for concurrent use: each Encrypt takes the next counter
// under a lock, and frames encrypted concurrently may leave in any order
// (a receiver's replay window absorbs that).
type Sender struct {
	key *Key

	mu        sync.Mutex
	next      uint64 // the counter of the next frame
	exhausted bool   // the counter math.MaxUint64 has been used
}

// NewSender returns a Sender for kid whose key is derived from baseKey
// under suite.
func NewSender(suite CipherSuite, kid uint64, baseKey []byte) (*Sender, error) {
	k, err := DeriveKey(suite, kid, baseKey)
	if err != nil {
		return nil, err
	}
	return &Sender{key: k}, nil
}

// KID returns the key ID the Sender encrypts under.
func (s *Sender) KID() uint64 { return s.key.kid }

// Suite returns the Sender's cipher suite.
func (s *Sender) Suite() CipherSuite { return s.key.suite }

// SetCounter sets the counter of the next frame, for a Sender that
// continues a key's use (RFC 9605 section 9.1: a stored context resumes at
// its stored counter). The counter can only move forward: setting one
// below the next unused value returns an error and changes nothing, since
// going back would reuse nonces.
func (s *Sender) SetCounter(next uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exhausted {
		return fmt.Errorf("%w: KID %d", ErrCounterExhausted, s.key.kid)
	}
	if next < s.next {
		return fmt.Errorf("sframe: KID %d: counter cannot move back from %d to %d", s.key.kid, s.next, next)
	}
	s.next = next
	return nil
}

// Encrypt encrypts plaintext as one SFrame ciphertext, authenticating
// metadata along with it (RFC 9605 section 4.4.3: AAD = header ||
// metadata), and appends header || ciphertext || tag to dst. dst's spare
// capacity must not overlap metadata or plaintext.
//
// After the frame with counter 2^64-1 every call returns an error wrapping
// ErrCounterExhausted: the counter would wrap and reuse nonces. (At a
// thousand frames a second that takes 500 million years; it matters when
// SetCounter was given a large value.)
func (s *Sender) Encrypt(dst, metadata, plaintext []byte) ([]byte, error) {
	if uint64(len(plaintext)) > maxPlaintext {
		return nil, fmt.Errorf("sframe: plaintext of %d bytes is over the %d-byte limit", len(plaintext), uint64(maxPlaintext))
	}
	ctr, err := s.take()
	if err != nil {
		return nil, err
	}
	return s.key.seal(dst, ctr, metadata, plaintext)
}

// take reserves the next counter.
func (s *Sender) take() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exhausted {
		return 0, fmt.Errorf("%w: KID %d", ErrCounterExhausted, s.key.kid)
	}
	ctr := s.next
	if ctr == math.MaxUint64 {
		s.exhausted = true
	} else {
		s.next++
	}
	return ctr, nil
}
