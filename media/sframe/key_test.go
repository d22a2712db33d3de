package sframe

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"hash"
	"testing"
)

func TestCipherSuiteConstants(t *testing.T) {
	// RFC 9605 table 1.
	for _, tc := range []struct {
		s              CipherSuite
		name           string
		nh, nk, nn, nt int
	}{
		{AES128CTRHMACSHA256_80, "AES_128_CTR_HMAC_SHA256_80", 32, 48, 12, 10},
		{AES128CTRHMACSHA256_64, "AES_128_CTR_HMAC_SHA256_64", 32, 48, 12, 8},
		{AES128CTRHMACSHA256_32, "AES_128_CTR_HMAC_SHA256_32", 32, 48, 12, 4},
		{AES128GCMSHA256_128, "AES_128_GCM_SHA256_128", 32, 16, 12, 16},
		{AES256GCMSHA512_128, "AES_256_GCM_SHA512_128", 64, 32, 12, 16},
		{0, "CipherSuite(0x0000)", 0, 0, 0, 0},
		{0xf000, "CipherSuite(0xf000)", 0, 0, 0, 0},
	} {
		if tc.s.String() != tc.name || tc.s.HashSize() != tc.nh || tc.s.KeySize() != tc.nk ||
			tc.s.NonceSize() != tc.nn || tc.s.TagSize() != tc.nt || tc.s.Supported() != (tc.nk != 0) {
			t.Errorf("0x%04x: %s Nh %d Nk %d Nn %d Nt %d supported %v", uint16(tc.s), tc.s,
				tc.s.HashSize(), tc.s.KeySize(), tc.s.NonceSize(), tc.s.TagSize(), tc.s.Supported())
		}
	}
}

func TestUnsupportedSuiteAndEmptyKey(t *testing.T) {
	base := []byte("base key")
	if _, err := DeriveKey(6, 1, base); !errors.Is(err, ErrUnsupportedSuite) {
		t.Errorf("DeriveKey(suite 6): %v", err)
	}
	if _, err := NewSender(0, 1, base); !errors.Is(err, ErrUnsupportedSuite) {
		t.Errorf("NewSender(suite 0): %v", err)
	}
	if _, err := Ratchet(0xffff, base); !errors.Is(err, ErrUnsupportedSuite) {
		t.Errorf("Ratchet(suite 0xffff): %v", err)
	}
	if err := NewReceiver(9, ReceiverOptions{}).SetKey(1, base); !errors.Is(err, ErrUnsupportedSuite) {
		t.Errorf("SetKey on a suite-9 receiver: %v", err)
	}
	if _, err := DeriveKey(AES128GCMSHA256_128, 1, nil); err == nil {
		t.Error("DeriveKey accepted an empty base key")
	}
	if _, err := Ratchet(AES128GCMSHA256_128, []byte{}); err == nil {
		t.Error("Ratchet accepted an empty base key")
	}
}

// hkdfByHand is RFC 5869 written out with crypto/hmac, independent of
// crypto/hkdf: PRK = HMAC(zeros, ikm); T(i) = HMAC(PRK, T(i-1) || info || i).
func hkdfByHand(h func() hash.Hash, ikm []byte, info string, n int) []byte {
	ext := hmac.New(h, make([]byte, h().Size()))
	ext.Write(ikm)
	prk := ext.Sum(nil)
	var okm, prev []byte
	for i := byte(1); len(okm) < n; i++ {
		mac := hmac.New(h, prk)
		mac.Write(prev)
		mac.Write([]byte(info))
		mac.Write([]byte{i})
		prev = mac.Sum(nil)
		okm = append(okm, prev...)
	}
	return okm[:n]
}

func TestRatchet(t *testing.T) {
	base, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f")
	// Known answers computed with Python's hmac/hashlib (an independent
	// HKDF that also reproduces the RFC vectors' sframe_key).
	for _, tc := range []struct {
		s     CipherSuite
		h     func() hash.Hash
		steps []string
	}{
		{AES128GCMSHA256_128, sha256.New, []string{
			"fb75d8d5782da6c6cbf18ac43eca5da9e47f7e6ac7926a78e486226bd2af0f87",
			"e24577b569963f5222734f2f57c43927c10dd36180e6124cf9f10cd43ab4598e",
		}},
		{AES128CTRHMACSHA256_32, sha256.New, []string{
			"fb75d8d5782da6c6cbf18ac43eca5da9e47f7e6ac7926a78e486226bd2af0f87",
		}},
		{AES256GCMSHA512_128, sha512.New, []string{
			"895fe5603750295ccbe0d5ed9745617b46e9cf9b428179b8f29f3147492bb08faa190560720ee0e4570760b64e7d5931120c391b7c7becc429ea35a9d07475aa",
		}},
	} {
		key := base
		for i, want := range tc.steps {
			next, err := Ratchet(tc.s, key)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(next); got != want {
				t.Errorf("%v step %d: %s, want %s", tc.s, i+1, got, want)
			}
			if byHand := hkdfByHand(tc.h, key, "SFrame 1.0 Ratchet", tc.s.HashSize()); !bytes.Equal(next, byHand) {
				t.Errorf("%v step %d disagrees with RFC 5869 by hand", tc.s, i+1)
			}
			if len(next) != tc.s.HashSize() || bytes.Equal(next, key) {
				t.Errorf("%v step %d: %d bytes, equal to the previous: %v", tc.s, i+1, len(next), bytes.Equal(next, key))
			}
			key = next
		}
	}
}

// TestRatchetSenderReceiverAgree: a sender ratchets to a new KID (the
// RFC's KID = generation << R | step, here R = 4) and a receiver that
// ratchets its own copy decrypts; the old key does not.
func TestRatchetSenderReceiverAgree(t *testing.T) {
	const r = 4
	kid := func(gen, step uint64) uint64 { return gen<<r | step%(1<<r) }
	for _, suite := range allSuites() {
		t.Run(suite.String(), func(t *testing.T) {
			base0 := []byte("generation 3 key, step 0")
			base1, err := Ratchet(suite, base0)
			if err != nil {
				t.Fatal(err)
			}
			sender, err := NewSender(suite, kid(3, 1), base1)
			if err != nil {
				t.Fatal(err)
			}
			frame, err := sender.Encrypt(nil, nil, []byte("after the ratchet"))
			if err != nil {
				t.Fatal(err)
			}

			rcv := NewReceiver(suite, ReceiverOptions{})
			if err := rcv.SetKey(kid(3, 0), base0); err != nil {
				t.Fatal(err)
			}
			if _, _, err := rcv.Decrypt(nil, nil, frame); !errors.Is(err, ErrUnknownKID) {
				t.Fatalf("before ratcheting: %v, want ErrUnknownKID", err)
			}
			// The old base key under the new KID does not authenticate.
			if err := rcv.SetKey(kid(3, 1), base0); err != nil {
				t.Fatal(err)
			}
			if _, _, err := rcv.Decrypt(nil, nil, frame); !errors.Is(err, ErrAuth) {
				t.Fatalf("old key under the new KID: %v, want ErrAuth", err)
			}
			mine, err := Ratchet(suite, base0)
			if err != nil {
				t.Fatal(err)
			}
			if err := rcv.SetKey(kid(3, 1), mine); err != nil {
				t.Fatal(err)
			}
			pt, h, err := rcv.Decrypt(nil, nil, frame)
			if err != nil || string(pt) != "after the ratchet" || h.KID != kid(3, 1) {
				t.Fatalf("after ratcheting: %q, %+v, %v", pt, h, err)
			}
		})
	}
}

func TestCTRHMACOpenRefusesShortInput(t *testing.T) {
	p, _ := AES128CTRHMACSHA256_80.params()
	c, err := newCTRHMAC(p, make([]byte, 48))
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, 12)
	for n := range p.nt {
		if out, err := c.Open(nil, nonce, make([]byte, n), nil); !errors.Is(err, ErrAuth) || out != nil {
			t.Errorf("%d bytes: %x, %v", n, out, err)
		}
	}
	if _, err := c.Open(nil, nonce[:11], make([]byte, 20), nil); !errors.Is(err, ErrAuth) {
		t.Errorf("11-byte nonce: %v", err)
	}
	if _, err := newCTRHMAC(p, make([]byte, 47)); err == nil {
		t.Error("47-byte key accepted")
	}
}
