package sframe

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
)

func allSuites() []CipherSuite {
	return []CipherSuite{AES128CTRHMACSHA256_80, AES128CTRHMACSHA256_64, AES128CTRHMACSHA256_32,
		AES128GCMSHA256_128, AES256GCMSHA512_128}
}

const testBaseKey = "0123456789abcdef"

func newPair(t *testing.T, suite CipherSuite, kid uint64, opts ReceiverOptions) (*Sender, *Receiver) {
	t.Helper()
	s, err := NewSender(suite, kid, []byte(testBaseKey))
	if err != nil {
		t.Fatal(err)
	}
	r := NewReceiver(suite, opts)
	if err := r.SetKey(kid, []byte(testBaseKey)); err != nil {
		t.Fatal(err)
	}
	return s, r
}

func TestRoundTrip(t *testing.T) {
	for _, suite := range allSuites() {
		for _, kid := range []uint64{0, 7, 8, 300, math.MaxUint64} {
			t.Run(fmt.Sprintf("%v/kid_%d", suite, kid), func(t *testing.T) {
				s, r := newPair(t, suite, kid, ReceiverOptions{})
				for i, pt := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte("frame"), 1000)} {
					meta := []byte(fmt.Sprintf("meta %d", i))
					frame, err := s.Encrypt([]byte("dst"), meta, pt)
					if err != nil {
						t.Fatal(err)
					}
					h := Header{KID: kid, CTR: uint64(i)}
					wantLen := 3 + h.MarshalSize() + len(pt) + suite.TagSize()
					if len(frame) != wantLen || string(frame[:3]) != "dst" {
						t.Fatalf("frame of %d bytes (%q...), want %d after the dst prefix", len(frame), frame[:3], wantLen)
					}
					out, got, err := r.Decrypt([]byte("out:"), meta, frame[3:])
					if err != nil || got != h {
						t.Fatalf("Decrypt: %+v, %v; want %+v", got, err, h)
					}
					if !bytes.Equal(out, append([]byte("out:"), pt...)) {
						t.Fatalf("plaintext %q", out)
					}
				}
			})
		}
	}
}

// TestEveryBitFlipFails: one flipped bit anywhere in header, ciphertext
// or tag, or in the metadata, is refused for every suite, and the window
// is not moved by the refusals.
func TestEveryBitFlipFails(t *testing.T) {
	for _, suite := range allSuites() {
		t.Run(suite.String(), func(t *testing.T) {
			s, r := newPair(t, suite, 300, ReceiverOptions{})
			if err := s.SetCounter(70000); err != nil { // 3-byte CTR
				t.Fatal(err)
			}
			meta := []byte("rtp-ext")
			frame, err := s.Encrypt(nil, meta, []byte("twenty bytes of data"))
			if err != nil {
				t.Fatal(err)
			}
			for bit := range 8 * len(frame) {
				if out, _, err := r.Decrypt(nil, meta, flipBit(frame, bit)); err == nil || out != nil {
					t.Fatalf("frame bit %d flipped: accepted %q", bit, out)
				}
			}
			for bit := range 8 * len(meta) {
				if _, _, err := r.Decrypt(nil, flipBit(meta, bit), frame); !errors.Is(err, ErrAuth) {
					t.Fatalf("metadata bit %d flipped: %v, want ErrAuth", bit, err)
				}
			}
			if _, _, err := r.Decrypt(nil, append(slices.Clone(meta), 0), frame); !errors.Is(err, ErrAuth) {
				t.Fatalf("metadata extended: %v, want ErrAuth", err)
			}
			if _, _, err := r.Decrypt(nil, meta, append(slices.Clone(frame), 0)); !errors.Is(err, ErrAuth) {
				t.Fatalf("byte appended: %v, want ErrAuth", err)
			}
			if _, _, err := r.Decrypt(nil, meta, frame); err != nil {
				t.Fatalf("the genuine frame after all the forgeries: %v", err)
			}
		})
	}
}

func TestTruncatedFrames(t *testing.T) {
	for _, suite := range allSuites() {
		s, r := newPair(t, suite, 1000, ReceiverOptions{})
		frame, err := s.Encrypt(nil, nil, []byte("payload"))
		if err != nil {
			t.Fatal(err)
		}
		hlen := Header{KID: 1000}.MarshalSize()
		for n := range len(frame) {
			_, _, err := r.Decrypt(nil, nil, frame[:n])
			want := ErrAuth
			if n < hlen {
				want = ErrHeader
			}
			if !errors.Is(err, want) {
				t.Errorf("%v: %d of %d bytes: %v, want %v", suite, n, len(frame), err, want)
			}
		}
	}
}

func TestUnknownKIDAndRemoveKey(t *testing.T) {
	s, r := newPair(t, AES128GCMSHA256_128, 5, ReceiverOptions{})
	other, err := NewSender(AES128GCMSHA256_128, 6, []byte(testBaseKey))
	if err != nil {
		t.Fatal(err)
	}
	f6, _ := other.Encrypt(nil, nil, []byte("six"))
	if _, h, err := r.Decrypt(nil, nil, f6); !errors.Is(err, ErrUnknownKID) || h.KID != 6 {
		t.Fatalf("KID 6: %+v, %v", h, err)
	}
	f5, _ := s.Encrypt(nil, nil, []byte("five"))
	r.RemoveKey(5)
	if _, _, err := r.Decrypt(nil, nil, f5); !errors.Is(err, ErrUnknownKID) {
		t.Fatalf("after RemoveKey: %v", err)
	}
	// A frame for KID 5 offered to a Key for KID 6.
	k6, _ := DeriveKey(AES128GCMSHA256_128, 6, []byte(testBaseKey))
	if _, _, err := k6.Open(nil, nil, f5); !errors.Is(err, ErrUnknownKID) {
		t.Fatalf("Key.Open of another KID's frame: %v", err)
	}
}

// TestWrongKeyOrSuite: a frame decrypts only under its own base key and
// suite.
func TestWrongKeyOrSuite(t *testing.T) {
	s, _ := newPair(t, AES128GCMSHA256_128, 1, ReceiverOptions{})
	frame, _ := s.Encrypt(nil, nil, []byte("secret"))
	r := NewReceiver(AES128GCMSHA256_128, ReceiverOptions{})
	if err := r.SetKey(1, []byte("another base key")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Decrypt(nil, nil, frame); !errors.Is(err, ErrAuth) {
		t.Errorf("other base key: %v", err)
	}
	for _, suite := range allSuites()[:3] {
		r := NewReceiver(suite, ReceiverOptions{})
		if err := r.SetKey(1, []byte(testBaseKey)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Decrypt(nil, nil, frame); !errors.Is(err, ErrAuth) {
			t.Errorf("%v receiver, GCM frame: %v", suite, err)
		}
	}
}

func TestSenderCounter(t *testing.T) {
	s, r := newPair(t, AES128CTRHMACSHA256_32, 2, ReceiverOptions{MaxJump: math.MaxUint64})
	if err := s.SetCounter(10); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCounter(9); err == nil {
		t.Fatal("SetCounter moved the counter back")
	}
	if err := s.SetCounter(10); err != nil {
		t.Fatalf("SetCounter to the current value: %v", err)
	}
	f, _ := s.Encrypt(nil, nil, nil)
	if _, h, err := r.Decrypt(nil, nil, f); err != nil || h.CTR != 10 {
		t.Fatalf("first frame after SetCounter(10): %+v, %v", h, err)
	}

	if err := s.SetCounter(math.MaxUint64 - 1); err != nil {
		t.Fatal(err)
	}
	for _, want := range []uint64{math.MaxUint64 - 1, math.MaxUint64} {
		f, err := s.Encrypt(nil, nil, []byte("late"))
		if err != nil {
			t.Fatalf("CTR %d: %v", want, err)
		}
		if _, h, err := r.Decrypt(nil, nil, f); err != nil || h.CTR != want {
			t.Fatalf("CTR %d: %+v, %v", want, h, err)
		}
	}
	if _, err := s.Encrypt(nil, nil, []byte("wrapped")); !errors.Is(err, ErrCounterExhausted) {
		t.Fatalf("after CTR 2^64-1: %v, want ErrCounterExhausted", err)
	}
	if err := s.SetCounter(math.MaxUint64); !errors.Is(err, ErrCounterExhausted) {
		t.Fatalf("SetCounter on an exhausted sender: %v", err)
	}
}

// TestSenderConcurrent: concurrent Encrypts never share a counter.
func TestSenderConcurrent(t *testing.T) {
	s, _ := newPair(t, AES128GCMSHA256_128, 1, ReceiverOptions{})
	const workers, each = 8, 200
	ctrs := make(chan uint64, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				f, err := s.Encrypt(nil, nil, []byte("x"))
				if err != nil {
					t.Error(err)
					return
				}
				h, _, _ := ParseHeader(f)
				ctrs <- h.CTR
			}
		})
	}
	wg.Wait()
	close(ctrs)
	seen := map[uint64]bool{}
	for c := range ctrs {
		if seen[c] {
			t.Fatalf("counter %d used twice", c)
		}
		seen[c] = true
	}
	if len(seen) != workers*each {
		t.Fatalf("%d counters", len(seen))
	}
}

// TestReceiverConcurrent: tracks decrypting in parallel while keys change,
// and one frame raced by many goroutines is accepted once. Run with -race.
func TestReceiverConcurrent(t *testing.T) {
	const kids = 4
	r := NewReceiver(AES256GCMSHA512_128, ReceiverOptions{})
	frames := make([][][]byte, kids)
	for kid := range uint64(kids) {
		s, err := NewSender(AES256GCMSHA512_128, kid, []byte(testBaseKey))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.SetKey(kid, []byte(testBaseKey)); err != nil {
			t.Fatal(err)
		}
		for range 300 {
			f, _ := s.Encrypt(nil, nil, []byte("media"))
			frames[kid] = append(frames[kid], f)
		}
	}
	var wg sync.WaitGroup
	for kid := range kids {
		wg.Go(func() {
			for _, f := range frames[kid] {
				if _, _, err := r.Decrypt(nil, nil, f); err != nil {
					t.Errorf("KID %d: %v", kid, err)
				}
			}
		})
	}
	wg.Go(func() { // key management on its own goroutine
		for range 100 {
			if err := r.SetKey(kids, []byte("a fifth sender")); err != nil {
				t.Error(err)
			}
			r.SetKey(0, []byte(testBaseKey)) // the same key again: keeps the window
			r.RemoveKey(kids)
		}
	})
	wg.Wait()

	s, _ := NewSender(AES256GCMSHA512_128, 9, []byte(testBaseKey))
	r.SetKey(9, []byte(testBaseKey))
	f, _ := s.Encrypt(nil, nil, []byte("once"))
	var mu sync.Mutex
	accepted := 0
	for range 16 {
		wg.Go(func() {
			_, _, err := r.Decrypt(nil, nil, f)
			if err == nil {
				mu.Lock()
				accepted++
				mu.Unlock()
			} else if !errors.Is(err, ErrReplay) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if accepted != 1 {
		t.Fatalf("one frame accepted %d times", accepted)
	}
}

// TestDecryptAppends: the plaintext lands after dst's contents and a
// refusal appends nothing.
func TestDecryptAppends(t *testing.T) {
	s, r := newPair(t, AES128CTRHMACSHA256_80, 3, ReceiverOptions{})
	f, _ := s.Encrypt(nil, nil, []byte("abc"))
	buf := make([]byte, 2, 64)
	copy(buf, "hi")
	out, _, err := r.Decrypt(buf, nil, f)
	if err != nil || string(out) != "hiabc" || &out[0] != &buf[0] {
		t.Fatalf("%q, %v (reused buffer: %v)", out, err, &out[0] == &buf[0])
	}
	out, _, err = r.Decrypt(buf[:2], nil, f) // replay
	if !errors.Is(err, ErrReplay) || out != nil || string(buf[:2]) != "hi" {
		t.Fatalf("%q, %v", out, err)
	}
}
