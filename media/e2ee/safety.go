package e2ee

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strconv"
	"strings"
)

// Member is one participant of a call as a safety number sees it: the
// identity its access token gave it and its identity public key.
type Member struct {
	// Identity is the member's name in the room, from its access token.
	Identity string
	// PublicKey is the member's identity public key (Identity.PublicKey,
	// or the Identity of ParseAnnouncement of what its join carried).
	PublicKey []byte
}

// A safety number lets a call's members check that the server gave each
// the same identity keys. Construction (version 2) and why 30 digits and
// 5200 iterations: docs/E2EE.md, "Safety number".

// safetyLabel starts the safety number encoding, naming it and its version.
const safetyLabel = "sotto safety number v2"

const (
	safetyIterations = 5200
	safetyGroups     = 6
	safetyGroupBytes = 5
	safetyGroupMod   = 100000
)

// SafetyNumber returns the call's safety number for room and its members
// (every participant, this one included): six groups of five decimal
// digits separated by spaces. The same room and set of members give the
// same number on every client whatever their order; any added, removed or
// changed member gives a different one. The members slice is not modified.
// The construction and the reasoning for its size are at the top of
// safety.go and in docs/E2EE.md.
func SafetyNumber(room string, members []Member) string {
	enc := make([]byte, 0, len(safetyLabel)+8+len(room)+len(members)*(16+len("participant")+PublicKeySize))
	enc = append(enc, safetyLabel...)
	enc = appendU64Bytes(enc, room)
	return digits(appendMembers(enc, members))
}

// verifyLabel starts the verification code encoding.
const verifyLabel = "sotto verification code v1"

// VerificationCode is the pairwise code of two people: SafetyNumber's
// construction over just a and b, with its own label and no room, so it is
// the same in every call for as long as neither changes identity key. Each
// compares it with the other once, out of band, and marks the other
// verified (docs/E2EE.md, "Verification codes").
func VerificationCode(a, b Member) string {
	enc := make([]byte, 0, len(verifyLabel)+2*(16+len(a.Identity)+PublicKeySize)+len(b.Identity))
	enc = append(enc, verifyLabel...)
	return digits(appendMembers(enc, []Member{a, b}))
}

// appendMembers appends each member, sorted by identity then key, as
// u64-prefixed identity and key. members is not modified.
func appendMembers(enc []byte, members []Member) []byte {
	sorted := slices.Clone(members)
	slices.SortFunc(sorted, func(a, b Member) int {
		return cmp.Or(strings.Compare(a.Identity, b.Identity), bytes.Compare(a.PublicKey, b.PublicKey))
	})
	for _, m := range sorted {
		enc = appendU64Bytes(enc, m.Identity)
		enc = appendU64Bytes(enc, m.PublicKey)
	}
	return enc
}

// digits turns an encoding into six groups of five digits: SHA-256
// iterated safetyIterations times, each group 40 bits modulo 10^5.
func digits(enc []byte) string {
	d := sha256.Sum256(enc)
	h := d
	var buf [2 * sha256.Size]byte
	copy(buf[sha256.Size:], d[:])
	for range safetyIterations {
		copy(buf[:sha256.Size], h[:])
		h = sha256.Sum256(buf[:])
	}

	var out strings.Builder
	out.Grow(safetyGroups*6 - 1)
	for i := range safetyGroups {
		var v uint64
		for _, b := range h[i*safetyGroupBytes : (i+1)*safetyGroupBytes] {
			v = v<<8 | uint64(b)
		}
		group := strconv.FormatUint(v%safetyGroupMod, 10)
		if i > 0 {
			out.WriteByte(' ')
		}
		out.WriteString(strings.Repeat("0", 5-len(group)))
		out.WriteString(group)
	}
	return out.String()
}

// appendU64Bytes appends b with an 8-byte big-endian length.
func appendU64Bytes[T string | []byte](dst []byte, b T) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(len(b)))
	return append(dst, b...)
}
