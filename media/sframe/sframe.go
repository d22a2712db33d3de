// Package sframe implements Secure Frame (SFrame, RFC 9605): end-to-end
// authenticated encryption of whole media frames, so that the SFU forwards
// frames it can neither read nor alter.
//
// It holds the four pieces a client needs and nothing more:
//
//   - the SFrame header (KID and CTR, section 4.3): [Header], [ParseHeader];
//   - the five cipher suites of the RFC's registry (section 4.5), with key
//     and salt derivation from a base key (section 4.4.2): [CipherSuite],
//     [DeriveKey], [Key];
//   - the sender-key ratchet of section 5.1: [Ratchet];
//   - a [Sender], which owns one KID and never reuses a counter, and a
//     [Receiver], which holds keys by KID and rejects replayed, stale and
//     implausibly far-ahead counters (section 9.3 leaves anti-replay to the
//     application; this is that application's choice).
//
// Key management (who gets which base key under which KID) is not here:
// media/e2ee does it. Only clients link this package; the SFU never holds
// an end-to-end key.
//
// The package uses the standard library's primitives only (AES, GCM, HMAC,
// HKDF, SHA-2); the AES-CTR+HMAC suites are the composition the RFC
// specifies in section 4.5.1, checked against the RFC's test vectors.
package sframe

import "errors"

// Errors a caller may branch on. Every error returned by this package that
// belongs to one of these classes wraps it, with the detail (KID, counter,
// sizes) in the message; test with errors.Is.
var (
	// ErrHeader: the SFrame header is truncated or not in the minimal
	// encoding RFC 9605 section 4.3 requires.
	ErrHeader = errors.New("sframe: malformed header")
	// ErrUnknownKID: no key is installed for the header's KID. RFC 9605
	// section 4.4.4 allows buffering such a frame until the key arrives.
	ErrUnknownKID = errors.New("sframe: unknown KID")
	// ErrAuth: the frame failed authentication (wrong key, altered header,
	// metadata, ciphertext or tag, or too short to hold a tag).
	ErrAuth = errors.New("sframe: authentication failed")
	// ErrReplay: a frame with this KID and counter was already accepted.
	ErrReplay = errors.New("sframe: counter already seen")
	// ErrTooOld: the counter is below the receiver's replay window, so
	// whether it was seen is no longer known.
	ErrTooOld = errors.New("sframe: counter below the replay window")
	// ErrTooFarAhead: the counter is more than ReceiverOptions.MaxJump
	// ahead of the highest accepted one.
	ErrTooFarAhead = errors.New("sframe: counter too far ahead of the replay window")
	// ErrCounterExhausted: the sender has used every counter value of its
	// KID; it needs a new KID or base key.
	ErrCounterExhausted = errors.New("sframe: counter exhausted")
	// ErrUnsupportedSuite: the cipher suite is not one of RFC 9605's five.
	ErrUnsupportedSuite = errors.New("sframe: unsupported cipher suite")
)
