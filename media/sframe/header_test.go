package sframe

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func TestHeaderEncoding(t *testing.T) {
	for _, tc := range []struct {
		h    Header
		want string
	}{
		{Header{0, 0}, "00"},
		{Header{7, 7}, "77"},
		{Header{8, 0}, "8008"},
		{Header{0, 8}, "0808"},
		{Header{5, 255}, "58ff"},
		{Header{256, 3}, "930100"},         // KID in 2 bytes, CTR in the config byte
		{Header{291, 17767}, "9901234567"}, // the RFC's sframe vectors
		{Header{math.MaxUint64, 0}, "f0ffffffffffffffff"},
		{Header{math.MaxUint64, math.MaxUint64}, "ff" + "ffffffffffffffff" + "ffffffffffffffff"},
		{Header{1 << 56, 1 << 8}, "f9" + "0100000000000000" + "0100"},
	} {
		got := tc.h.AppendTo([]byte{0xee})
		want, _ := hex.DecodeString("ee" + tc.want)
		if !bytes.Equal(got, want) {
			t.Errorf("%+v.AppendTo = %x, want %x", tc.h, got, want)
		}
		if n := tc.h.MarshalSize(); n != len(want)-1 {
			t.Errorf("%+v.MarshalSize = %d, want %d", tc.h, n, len(want)-1)
		}
	}
}

func TestParseHeaderRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"kid_len_1_missing", "80"},
		{"kid_len_8_truncated", "f0" + "ffffffffffffff"},
		{"ctr_len_8_truncated", "0f" + "ffffffffffffff"},
		{"both_len_8_short_by_one", "ff" + "ffffffffffffffff" + "ffffffffffffff"},
		{"ctr_after_kid_missing", "88" + "08"},
		{"kid_extended_below_8", "80" + "07"},
		{"ctr_extended_below_8", "08" + "00"},
		{"kid_leading_zero", "90" + "00ff"},
		{"ctr_leading_zero", "0b" + "00000001"},
		{"ctr_8_bytes_leading_zero", "0f" + "00ffffffffffffff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, _ := hex.DecodeString(tc.in)
			h, n, err := ParseHeader(in)
			if !errors.Is(err, ErrHeader) || n != 0 || h != (Header{}) {
				t.Fatalf("ParseHeader(%x) = %+v, %d, %v; want ErrHeader", in, h, n, err)
			}
		})
	}
}

// TestHeaderRoundTrip: random values of every length encode and parse
// back, and the encoding is the only one that parses to them.
func TestHeaderRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	value := func() uint64 { return rng.Uint64() >> rng.IntN(65) } // every bit length
	for range 20000 {
		h := Header{KID: value(), CTR: value()}
		enc := h.AppendTo(nil)
		if len(enc) != h.MarshalSize() || len(enc) > MaxHeaderSize {
			t.Fatalf("%+v: %d bytes, MarshalSize %d", h, len(enc), h.MarshalSize())
		}
		got, n, err := ParseHeader(append(enc, 0xff))
		if err != nil || got != h || n != len(enc) {
			t.Fatalf("%+v: %x parses as %+v, %d, %v", h, enc, got, n, err)
		}
	}
}
