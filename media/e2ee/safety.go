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

// Member is one participant as a safety number sees it.
type Member struct {
	Identity  string // its name in the room, from its access token
	PublicKey []byte // its identity public key
}

// Construction, and why 30 digits and 5200 iterations: docs/E2EE.md, "Safety number".
const safetyLabel = "sotto safety number v2"

const (
	safetyIterations = 5200
	safetyGroups     = 6
	safetyGroupBytes = 5
	safetyGroupMod   = 100000
)

// SafetyNumber returns the call's safety number for room and every member:
// six groups of five digits, the same on every client whatever the order.
func SafetyNumber(room string, members []Member) string {
	enc := make([]byte, 0, len(safetyLabel)+8+len(room)+len(members)*(16+len("participant")+PublicKeySize))
	enc = append(enc, safetyLabel...)
	enc = appendU64Bytes(enc, room)
	return digits(appendMembers(enc, members))
}

const verifyLabel = "sotto verification code v1"

// VerificationCode is the pairwise code of two people, the same in every
// call while neither changes key (docs/E2EE.md, "Verification codes").
func VerificationCode(a, b Member) string {
	enc := make([]byte, 0, len(verifyLabel)+2*(16+len(a.Identity)+PublicKeySize)+len(b.Identity))
	enc = append(enc, verifyLabel...)
	return digits(appendMembers(enc, []Member{a, b}))
}

// appendMembers appends a sorted copy of members, each field u64-prefixed.
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

// digits is iterated SHA-256 of enc as six groups of 40 bits modulo 10^5.
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

func appendU64Bytes[T string | []byte](dst []byte, b T) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(len(b)))
	return append(dst, b...)
}
