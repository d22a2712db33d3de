// Package e2ee is the client side of Sotto's end-to-end encryption: frame
// transform and key management for Go clients; the SFU never links it.
//
// The SFU forwards media it cannot read. What it, and every RTP packetizer
// on the path, still needs in clear is the codec prefix of each frame, so
// this package says exactly which leading bytes of an Opus, VP8 or H.264
// frame stay readable (PrefixLen) and keeps the encrypted rest of an H.264
// frame from looking like a start code (EscapeH264, NormalizeAnnexB).
//
// Keys come from identities: each participant has an Ed25519 Identity
// (kept by an IdentityStore) and, per call session, a SessionKey (X25519)
// and session id, which its join announces signed (Announce,
// ParseAnnouncement). A sender hands its media key to each other
// participant in a box signed by its identity and sealed with HPKE to that
// participant's session key (SealKeyBox, OpenKeyBox); a Session refuses
// boxes that are replayed or bound to anything else. Users compare a
// SafetyNumber over every member's name and identity key, and pairwise
// VerificationCodes, to know that the server did not swap a key.
//
// docs/E2EE.md documents every construction precisely enough to
// reimplement it (the browser client does). Only standard-library
// primitives are used, with filippo.io/edwards25519 to refuse small-order
// identity keys.
package e2ee
