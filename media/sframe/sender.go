package sframe

import (
	"fmt"
	"math"
	"sync"
)

// Sender encrypts under one KID with a counter from 0, one per frame, so
// no nonce repeats; its base key must be its own. Safe for concurrent use.
type Sender struct {
	key *Key

	mu        sync.Mutex
	next      uint64 // the counter of the next frame
	exhausted bool   // the counter math.MaxUint64 has been used
}

func NewSender(suite CipherSuite, kid uint64, baseKey []byte) (*Sender, error) {
	k, err := DeriveKey(suite, kid, baseKey)
	if err != nil {
		return nil, err
	}
	return &Sender{key: k}, nil
}

func (s *Sender) KID() uint64 { return s.key.kid }

func (s *Sender) Suite() CipherSuite { return s.key.suite }

// SetCounter resumes a key's use at ctr (RFC 9605 section 9.1); it can
// only move forward, as going back would reuse nonces.
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

// Encrypt appends header || ciphertext || tag to dst, with metadata
// authenticated (AAD = header || metadata). Past counter 2^64-1 it fails
// with ErrCounterExhausted. dst's spare capacity must not overlap the inputs.
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
