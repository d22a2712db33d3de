package sframe

import (
	"fmt"
	"math/bits"
)

// MaxHeaderSize is the largest SFrame header: the config byte and eight
// bytes each of KID and CTR.
const MaxHeaderSize = 17

// Header is an SFrame header (RFC 9605 section 4.3): the key ID that
// selects the key and the counter that makes the nonce. Both travel in the
// clear; the AEAD authenticates them.
type Header struct {
	KID uint64
	CTR uint64
}

// The config byte: |X|K K K|Y|C C C|. X (Y) set means K (C) holds the
// length of the KID (CTR) minus one, with the value in the bytes after the
// config byte; clear means K (C) holds the value itself.
const (
	flagExtendedKID = 0x80
	flagExtendedCTR = 0x08
	compactMax      = 7
)

// extendedSize returns how many bytes v takes after the config byte: none
// when it fits in the 3-bit field, else its minimal big-endian length.
func extendedSize(v uint64) int {
	if v <= compactMax {
		return 0
	}
	return (bits.Len64(v) + 7) / 8
}

// MarshalSize returns the length of h's encoding, 1 to MaxHeaderSize.
func (h Header) MarshalSize() int {
	return 1 + extendedSize(h.KID) + extendedSize(h.CTR)
}

// AppendTo appends h's encoding to b and returns the extended slice. The
// encoding is the minimal one, which RFC 9605 section 4.3 requires: a value
// of 0 to 7 sits in the config byte, a larger one in as few bytes as it
// needs.
func (h Header) AppendTo(b []byte) []byte {
	kn, cn := extendedSize(h.KID), extendedSize(h.CTR)
	var config byte
	if kn == 0 {
		config |= byte(h.KID) << 4
	} else {
		config |= flagExtendedKID | byte(kn-1)<<4
	}
	if cn == 0 {
		config |= byte(h.CTR)
	} else {
		config |= flagExtendedCTR | byte(cn-1)
	}
	b = append(b, config)
	b = appendBigEndian(b, h.KID, kn)
	return appendBigEndian(b, h.CTR, cn)
}

func appendBigEndian(b []byte, v uint64, n int) []byte {
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// ParseHeader parses the SFrame header at the start of b and returns it
// with its length in bytes; the ciphertext follows at b[n:]. An error
// wraps ErrHeader: b is empty, ends inside the header, or encodes a value
// in more bytes than it needs (RFC 9605 section 4.3 says the minimal
// encoding MUST be used, and accepting only it gives each header exactly
// one byte string).
func ParseHeader(b []byte) (Header, int, error) {
	if len(b) == 0 {
		return Header{}, 0, fmt.Errorf("%w: empty", ErrHeader)
	}
	config := b[0]
	at := 1
	kid, at, err := parseField(b, at, config>>4, "KID")
	if err != nil {
		return Header{}, 0, err
	}
	ctr, at, err := parseField(b, at, config&0x0f, "CTR")
	if err != nil {
		return Header{}, 0, err
	}
	return Header{KID: kid, CTR: ctr}, at, nil
}

// parseField reads one of the two fields given its 4 config bits (the
// extension flag and the 3-bit value or length) from b[at:].
func parseField(b []byte, at int, nibble byte, name string) (uint64, int, error) {
	if nibble&0x08 == 0 {
		return uint64(nibble), at, nil
	}
	n := int(nibble&0x07) + 1
	if len(b)-at < n {
		return 0, 0, fmt.Errorf("%w: %s of %d bytes, %d left", ErrHeader, name, n, len(b)-at)
	}
	var v uint64
	for _, c := range b[at : at+n] {
		v = v<<8 | uint64(c)
	}
	if extendedSize(v) != n {
		return 0, 0, fmt.Errorf("%w: %s %d in %d bytes is not the minimal encoding", ErrHeader, name, v, n)
	}
	return v, at + n, nil
}
