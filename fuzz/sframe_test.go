package fuzz

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/sotto-rtc/sotto/media/sframe"
)

// The SFrame targets. A browser or another client chooses every byte of
// an SFrame ciphertext and of the metadata that travels beside it, and
// since SFrame has no per-sender authentication a participant can also
// make frames that authenticate. So: the header parser must survive
// anything, and decryption must never hand out plaintext for a frame that
// is not exactly what a Sender with the key would have produced.

// sframeFuzzKIDs are the KIDs the fuzz receivers hold keys for, one per
// header length class: in the config byte, one extension byte, two, eight.
func sframeFuzzKIDs() []uint64 { return []uint64{0, 8, 300, math.MaxUint64} }

// sframeFuzzBaseKey is the fixed base key of a KID; the valid seeds in
// testdata/fuzz/FuzzSFrameDecrypt were made with it.
func sframeFuzzBaseKey(kid uint64) []byte {
	return fmt.Appendf(nil, "sotto fuzz base key for KID %d", kid)
}

// splitSFrameInput turns one fuzz input into a decryption: byte 0 names the
// cipher suite (1 to 5; other values map onto those), byte 1 the metadata
// length (cut to what is there), then the metadata and the frame. Missing
// leading bytes mean suite AES_128_GCM_SHA256_128 and no metadata. One
// []byte keeps the seeds in the one-value format the corpus checks read.
func splitSFrameInput(data []byte) (suite sframe.CipherSuite, metadata, frame []byte) {
	suite = sframe.AES128GCMSHA256_128
	if len(data) > 0 {
		if suite = sframe.CipherSuite(data[0]); !suite.Supported() {
			suite = sframe.CipherSuite(data[0]%5 + 1)
		}
		data = data[1:]
	}
	if len(data) > 0 {
		n := min(int(data[0]), len(data)-1)
		metadata, data = data[1:1+n], data[1+n:]
	}
	return suite, metadata, data
}

func joinSFrameInput(suite sframe.CipherSuite, metadata, frame []byte) []byte {
	return slices.Concat([]byte{byte(suite), byte(len(metadata))}, metadata, frame)
}

// sframeFuzzReceiver is a fresh Receiver holding every fuzz KID's key, so
// each input meets the same state.
func sframeFuzzReceiver(t testing.TB, suite sframe.CipherSuite) *sframe.Receiver {
	r := sframe.NewReceiver(suite, sframe.ReceiverOptions{})
	for _, kid := range sframeFuzzKIDs() {
		if err := r.SetKey(kid, sframeFuzzBaseKey(kid)); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// sframeFuzzEncrypt is what a genuine sender of kid produces at ctr.
func sframeFuzzEncrypt(t testing.TB, suite sframe.CipherSuite, kid, ctr uint64, metadata, plaintext []byte) []byte {
	s, err := sframe.NewSender(suite, kid, sframeFuzzBaseKey(kid))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetCounter(ctr); err != nil {
		t.Fatal(err)
	}
	frame, err := s.Encrypt(nil, metadata, plaintext)
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

// FuzzSFrameHeader parses arbitrary bytes as an SFrame header. It never
// panics; a refusal wraps ErrHeader; an accepted header consumed at most
// MaxHeaderSize bytes, exactly MarshalSize of them, and those bytes are
// what AppendTo writes (only the minimal encoding parses), and no shorter
// prefix parses.
func FuzzSFrameHeader(f *testing.F) {
	for _, h := range []sframe.Header{{}, {KID: 7, CTR: 7}, {KID: 8, CTR: 8}, {KID: 291, CTR: 17767},
		{KID: 1 << 56, CTR: 255}, {KID: math.MaxUint64, CTR: math.MaxUint64}} {
		f.Add(h.AppendTo(nil))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, n, err := sframe.ParseHeader(data)
		if err != nil {
			if !errors.Is(err, sframe.ErrHeader) || n != 0 || h != (sframe.Header{}) {
				t.Fatalf("refusal %+v, %d, %v does not wrap ErrHeader with a zero result", h, n, err)
			}
			return
		}
		if n < 1 || n > len(data) || n > sframe.MaxHeaderSize || n != h.MarshalSize() {
			t.Fatalf("%+v: consumed %d of %d bytes, MarshalSize %d", h, n, len(data), h.MarshalSize())
		}
		if enc := h.AppendTo(nil); !bytes.Equal(enc, data[:n]) {
			t.Fatalf("%+v parsed from %x encodes as %x", h, data[:n], enc)
		}
		for i := range n {
			if _, _, err := sframe.ParseHeader(data[:i]); err == nil {
				t.Fatalf("the %d-byte prefix of a %d-byte header parses", i, n)
			}
		}
	})
}

// FuzzSFrameDecrypt decrypts arbitrary bytes and metadata under a fresh
// Receiver of the suite byte 0 names (see splitSFrameInput), which holds
// fixed keys for sframeFuzzKIDs. It never panics; a refusal wraps
// ErrHeader, ErrUnknownKID or ErrAuth, returns no plaintext, and names the
// header whenever one parsed. A success is reproduced: a Sender for the
// header's KID at its counter, encrypting the returned plaintext with the
// same metadata, must produce the input frame byte for byte; so nothing
// but a frame the key's holder made (or, with 2^-Nt luck, a forgery that
// is one) ever yields plaintext. The same frame then fails as a replay.
func FuzzSFrameDecrypt(f *testing.F) {
	for i, suite := range []sframe.CipherSuite{sframe.AES128CTRHMACSHA256_80, sframe.AES128CTRHMACSHA256_64,
		sframe.AES128CTRHMACSHA256_32, sframe.AES128GCMSHA256_128, sframe.AES256GCMSHA512_128} {
		for j, kid := range sframeFuzzKIDs() {
			meta := bytes.Repeat([]byte{byte(j)}, i)
			frame := sframeFuzzEncrypt(f, suite, kid, uint64(i*j*100), meta, fmt.Appendf(nil, "frame %d/%d", i, j))
			f.Add(joinSFrameInput(suite, meta, frame))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		suite, metadata, frame := splitSFrameInput(data)
		r := sframeFuzzReceiver(t, suite)
		pt, h, err := r.Decrypt(nil, metadata, frame)
		parsed, _, perr := sframe.ParseHeader(frame)
		if perr == nil && h != parsed {
			t.Fatalf("Decrypt names header %+v, the frame has %+v", h, parsed)
		}
		if err != nil {
			if !errors.Is(err, sframe.ErrHeader) && !errors.Is(err, sframe.ErrUnknownKID) && !errors.Is(err, sframe.ErrAuth) {
				t.Fatalf("refusal of a first frame wraps none of ErrHeader, ErrUnknownKID, ErrAuth: %v", err)
			}
			if pt != nil {
				t.Fatalf("refusal (%v) came with plaintext %x", err, pt)
			}
			return
		}
		if want := sframeFuzzEncrypt(t, suite, h.KID, h.CTR, metadata, pt); !bytes.Equal(want, frame) {
			t.Fatalf("%v accepted a frame no sender made: KID %d CTR %d\ngot  %x\nmade %x", suite, h.KID, h.CTR, frame, want)
		}
		if _, _, err := r.Decrypt(nil, metadata, frame); !errors.Is(err, sframe.ErrReplay) {
			t.Fatalf("the same frame again: %v, want ErrReplay", err)
		}
	})
}

// TestSFrameHeaderSeeds: every header seed parses, or is refused, the way
// its name says.
func TestSFrameHeaderSeeds(t *testing.T) {
	type want struct {
		h sframe.Header
		n int // 0: refused with ErrHeader
	}
	refused := want{}
	expect := map[string]want{
		"empty":                       refused,
		"config_only_both_extended":   refused,
		"kid_len_8_truncated":         refused,
		"ctr_len_8_truncated":         refused,
		"both_len_8_short_by_one":     refused,
		"ctr_len_overrun":             refused,
		"kid_extended_below_8":        refused,
		"ctr_extended_below_8":        refused,
		"kid_leading_zero_8_bytes":    refused,
		"ctr_leading_zero":            refused,
		"compact_kid_7_ctr_7":         {sframe.Header{KID: 7, CTR: 7}, 1},
		"max_kid_max_ctr":             {sframe.Header{KID: math.MaxUint64, CTR: math.MaxUint64}, 17},
		"trailing_bytes_after_header": {sframe.Header{KID: 291, CTR: 17767}, 5},
	}
	seeds := readCorpus(t, "FuzzSFrameHeader")
	checkSeedTable(t, "FuzzSFrameHeader", seeds, expect)
	for name, data := range seeds {
		w, found := expect[name]
		if !found {
			continue
		}
		t.Run(name, func(t *testing.T) {
			h, n, err := sframe.ParseHeader(data)
			if w.n == 0 {
				if !errors.Is(err, sframe.ErrHeader) {
					t.Fatalf("%x: %+v, %d, %v; want ErrHeader", data, h, n, err)
				}
				return
			}
			if err != nil || h != w.h || n != w.n {
				t.Fatalf("%x: %+v, %d, %v; want %+v, %d", data, h, n, err, w.h, w.n)
			}
		})
	}
}

// TestSFrameDecryptSeeds: the valid seeds decrypt under the fuzz keys (so
// the fuzzer starts from frames that reach the AEAD and the window), and
// every hostile one is refused with the error its name says.
func TestSFrameDecryptSeeds(t *testing.T) {
	expect := map[string]error{
		"empty":                           sframe.ErrHeader,
		"metadata_length_past_end":        sframe.ErrHeader,
		"config_only_no_tag":              sframe.ErrAuth,
		"header_only_no_tag":              sframe.ErrAuth,
		"kid_len_8_truncated":             sframe.ErrHeader,
		"ctr_len_overrun":                 sframe.ErrHeader,
		"ctr_nonminimal_encoding":         sframe.ErrHeader,
		"unknown_kid":                     sframe.ErrUnknownKID,
		"tag_truncated_gcm":               sframe.ErrAuth,
		"tag_flipped_ctr80":               sframe.ErrAuth,
		"ciphertext_flipped_gcm256":       sframe.ErrAuth,
		"metadata_altered_ctr64":          sframe.ErrAuth,
		"metadata_dropped_ctr80":          sframe.ErrAuth,
		"kid_swapped_gcm":                 sframe.ErrAuth,
		"ctr_swapped_ctr32":               sframe.ErrAuth,
		"gcm_frame_to_ctr32_receiver":     sframe.ErrAuth,
		"max_kid_max_ctr_short_ctr32":     sframe.ErrAuth,
		"trailing_byte_after_tag_gcm256":  sframe.ErrAuth,
		"valid_frame_gcm128":              nil,
		"valid_frame_gcm256_kid_max":      nil,
		"valid_frame_ctr80_with_metadata": nil,
		"valid_frame_ctr32_empty_payload": nil,
	}
	seeds := readCorpus(t, "FuzzSFrameDecrypt")
	checkSeedTable(t, "FuzzSFrameDecrypt", seeds, expect)
	for name, data := range seeds {
		want, found := expect[name]
		if !found {
			continue
		}
		t.Run(name, func(t *testing.T) {
			suite, metadata, frame := splitSFrameInput(data)
			pt, h, err := sframeFuzzReceiver(t, suite).Decrypt(nil, metadata, frame)
			if want == nil {
				if err != nil {
					t.Fatalf("valid seed refused: %v", err)
				}
				if again := sframeFuzzEncrypt(t, suite, h.KID, h.CTR, metadata, pt); !bytes.Equal(again, frame) {
					t.Fatalf("valid seed does not re-encrypt to itself")
				}
				return
			}
			if !errors.Is(err, want) || pt != nil {
				t.Fatalf("%v, plaintext %x; want %v", err, pt, want)
			}
		})
	}
}
