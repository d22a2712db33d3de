// Package e2ee is the client side of Sotto's end-to-end encryption: frame
// transform and key management for Go clients; the SFU never links it.
//
// PrefixLen says which leading bytes of an Opus, VP8 or H.264 frame stay in
// clear for the SFU and packetizers; EscapeH264 keeps the encrypted rest of
// an H.264 frame free of start codes. Each participant has an Ed25519
// Identity and, per call, a SessionKey its join announces signed; a Session
// seals its media key to each member (SealKeyBox) and refuses boxes that are
// replayed or bound to anything else. SafetyNumber and VerificationCode let
// users check that the server swapped no key. docs/E2EE.md specifies every
// construction precisely enough to reimplement it (the browser does).
package e2ee
