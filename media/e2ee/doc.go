// Package e2ee is the client side of Sotto's end-to-end encryption: frame
// transform and key management for Go clients; the SFU never links it.
//
// The SFU forwards media it cannot read. What it, and every RTP packetizer
// on the path, still needs in clear is the codec prefix of each frame, so
// this package says exactly which leading bytes of an Opus, VP8 or H.264
// frame stay readable (PrefixLen) and keeps the encrypted rest of an H.264
// frame from looking like a start code (EscapeH264, NormalizeAnnexB).
//
// Keys come from per-session identities: each participant makes a fresh
// X25519 Identity for the call, publishes its public key in the join
// message (Identity.EncodedPublicKey), and hands its media sender key to
// each other participant sealed to that participant's identity (Seal,
// Open). Users compare a SafetyNumber, computed from every member's name
// and identity key, to know that the server did not swap a key.
//
// The constructions are documented where they are defined, precisely
// enough to reimplement them (the browser client does), and collected in
// docs/E2EE.md. Only the standard library's primitives are used: crypto/ecdh,
// crypto/hkdf, crypto/sha256, crypto/aes and crypto/cipher.
package e2ee
