// Package sframe implements Secure Frame (SFrame, RFC 9605) for clients:
// the header (Header, ParseHeader), the five cipher suites with key
// derivation (CipherSuite, DeriveKey, Key), the sender-key ratchet
// (Ratchet), a Sender that never reuses a counter and a Receiver with a
// replay window. Key management is media/e2ee's; the SFU never links
// either. Only standard-library primitives are used.
package sframe

import "errors"

// Errors a caller may branch on with errors.Is; returned errors wrap them.
var (
	// ErrHeader: truncated or not the minimal encoding.
	ErrHeader     = errors.New("sframe: malformed header")
	ErrUnknownKID = errors.New("sframe: unknown KID")
	ErrAuth       = errors.New("sframe: authentication failed")
	ErrReplay     = errors.New("sframe: counter already seen")
	// ErrTooOld: below the replay window, so whether it was seen is unknown.
	ErrTooOld           = errors.New("sframe: counter below the replay window")
	ErrTooFarAhead      = errors.New("sframe: counter too far ahead of the replay window")
	ErrCounterExhausted = errors.New("sframe: counter exhausted")
	ErrUnsupportedSuite = errors.New("sframe: unsupported cipher suite")
)
