package sframe

import (
	"fmt"
	"math/bits"
)

// MaxHeaderSize is the config byte and eight bytes each of KID and CTR.
const MaxHeaderSize = 17

// Header is an SFrame header (RFC 9605 section 4.3), clear but authenticated.
type Header struct {
	KID uint64
	CTR uint64
}

// The config byte: |X|K K K|Y|C C C|. X (Y) set: K (C) is the length minus
// one of the KID (CTR) that follows; clear: K (C) is the value.
const (
	flagExtendedKID = 0x80
	flagExtendedCTR = 0x08
	compactMax      = 7
)

// extendedSize is v's length after the config byte: 0 if it fits in 3 bits.
func extendedSize(v uint64) int {
	if v <= compactMax {
		return 0
	}
	return (bits.Len64(v) + 7) / 8
}

func (h Header) MarshalSize() int {
	return 1 + extendedSize(h.KID) + extendedSize(h.CTR)
}

// AppendTo appends h's minimal encoding (RFC 9605 section 4.3) to b.
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

// ParseHeader parses the header at the start of b and returns its length.
// Only the minimal encoding parses, so each header has one byte string;
// errors wrap ErrHeader.
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

// parseField reads a field given its 4 config bits.
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
