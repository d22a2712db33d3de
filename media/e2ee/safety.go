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
	// or ParsePublicKey of what its join carried).
	PublicKey []byte
}

// A safety number lets the people in a call check, by reading it aloud or
// comparing screens, that the server handed every one of them the same
// identity keys. If the server swapped a key to sit in the middle, the
// participants' numbers differ.
//
// Construction, version 1 (docs/E2EE.md copies this):
//
//	enc   = "sotto safety number v1"                 22 ASCII bytes
//	        || u64(len(room)) || room
//	        || for each member, sorted by Identity (bytewise) then by
//	           PublicKey (bytewise): u64(len(Identity)) || Identity
//	                                 || u64(len(PublicKey)) || PublicKey
//	d     = SHA-256(enc)
//	h     = d; repeat 5200 times: h = SHA-256(h || d)
//	digits: for i in 0..5, the 5-byte big-endian integer h[5i:5i+5]
//	        mod 100000, as 5 decimal digits with leading zeros
//	number = the six groups joined by single spaces ("01234 56789 ...")
//
// u64 is an 8-byte big-endian length, so the encoding is injective for any
// input and needs no error path. Sorting makes the number independent of
// the order members are listed in, so every participant computes the same
// number from the same set; the list is a multiset: a member listed twice
// counts twice. Every byte of every name and key, and the room, goes in,
// so adding, removing or re-keying a member changes the number.
//
// Why 30 digits: each group takes 40 bits modulo 10^5 (a bias under 10^-7),
// so the number carries about 99.7 bits. To make two participants see the
// same number while holding different keys, a man in the middle must find
// keys M_A, M_B with number({A, M_B}) = number({M_A, B}): a claw between
// two functions, about 2^50 evaluations of the number for 100 bits. It
// cannot be precomputed, because the honest keys are fresh per session and
// the room and names go in too; it has to be done between seeing the honest
// keys and the call starting. Matching one given number needs about 2^100.
//
// Why 5200 iterations (as Signal's fingerprints use): they multiply the
// attacker's per-candidate cost by about 2^12, putting the claw search near
// 2^62 SHA-256 evaluations, far beyond what can be done in the seconds to
// minutes of call setup, while an honest client pays about a millisecond
// once per change of membership. A single hash would leave
// 2^50: hours on a rack of GPUs, which is too close.

// safetyLabel starts the safety number encoding, naming it and its version.
const safetyLabel = "sotto safety number v1"

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
	sorted := slices.Clone(members)
	slices.SortFunc(sorted, func(a, b Member) int {
		return cmp.Or(strings.Compare(a.Identity, b.Identity), bytes.Compare(a.PublicKey, b.PublicKey))
	})

	enc := make([]byte, 0, len(safetyLabel)+8+len(room)+len(sorted)*(16+len("participant")+PublicKeySize))
	enc = append(enc, safetyLabel...)
	enc = appendU64Bytes(enc, room)
	for _, m := range sorted {
		enc = appendU64Bytes(enc, m.Identity)
		enc = appendU64Bytes(enc, m.PublicKey)
	}

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
