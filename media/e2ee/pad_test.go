package e2ee

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sotto-rtc/sotto/media/sframe"
)

func TestPadAudioBucketsAndRoundTrip(t *testing.T) {
	for _, bucket := range []int{1, 2, 16, DefaultAudioBucket, 100, MaxAudioBucket} {
		for n := 1; n <= 1300; n++ {
			frame := bytes.Repeat([]byte{0xa5}, n)
			frame[0] = byte(n)
			p := PadAudio([]byte("dst"), frame, bucket)
			if !bytes.HasPrefix(p, []byte("dst")) {
				t.Fatal("PadAudio does not append to dst")
			}
			p = p[3:]
			if len(p)%bucket != 0 || len(p) <= n || len(p) > n+bucket {
				t.Fatalf("bucket %d: %d-byte frame padded to %d bytes", bucket, n, len(p))
			}
			got, err := UnpadAudio(p)
			if err != nil || !bytes.Equal(got, frame) {
				t.Fatalf("bucket %d: %d-byte frame: UnpadAudio gives %d bytes, %v", bucket, n, len(got), err)
			}
		}
	}
	// The format, byte for byte.
	if got := PadAudio(nil, []byte{0xfc, 1, 2}, 8); !bytes.Equal(got, []byte{0xfc, 1, 2, 0, 0, 0, 0, 4}) {
		t.Errorf("PadAudio(fc 01 02, 8) = % x", got)
	}
	if got := PadAudio(nil, []byte{0xfc, 1, 2}, 4); !bytes.Equal(got, []byte{0xfc, 1, 2, 0}) {
		t.Errorf("PadAudio(fc 01 02, 4) = % x", got)
	}
	for _, bad := range []int{0, -1, MaxAudioBucket + 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("PadAudio with bucket %d did not panic", bad)
				}
			}()
			PadAudio(nil, []byte{1}, bad)
		}()
	}
}

func TestUnpadAudioRejectsMalformedPadding(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plain []byte
	}{
		{"empty", nil},
		{"trailer only", []byte{0}},
		{"padding only", []byte{0, 0, 0, 3}},
		{"length beyond the plaintext", []byte{0xfc, 0, 0, 9}},
		{"length 255 in a short plaintext", []byte{0xfc, 0xff}},
		{"nonzero padding byte", []byte{0xfc, 1, 0, 1, 0, 4}},
		{"nonzero padding byte next to the trailer", []byte{0xfc, 1, 0, 0, 7, 4}},
		{"nonzero first padding byte", []byte{0xfc, 9, 0, 0, 0, 4}[1:]},
	} {
		if got, err := UnpadAudio(tc.plain); !errors.Is(err, ErrBadPadding) || !errors.Is(err, ErrMalformedFrame) || got != nil {
			t.Errorf("%s: UnpadAudio(% x) = % x, %v; want ErrBadPadding", tc.name, tc.plain, got, err)
		}
	}
	// What is right is accepted, whatever the bucket: the receiver does
	// not check it.
	for _, tc := range []struct{ plain, frame []byte }{
		{[]byte{0xfc, 0}, []byte{0xfc}},
		{[]byte{0, 0}, []byte{0}},
		{[]byte{0xfc, 0, 0, 2}, []byte{0xfc}},
		{append(append([]byte{0xfc}, make([]byte, 255)...), 255), []byte{0xfc}},
		{[]byte{0xfc, 1, 1, 0}, []byte{0xfc, 1, 1}},
	} {
		if got, err := UnpadAudio(tc.plain); err != nil || !bytes.Equal(got, tc.frame) {
			t.Errorf("UnpadAudio(% x) = % x, %v; want % x", tc.plain, got, err, tc.frame)
		}
	}
}

// TestOpusWireSizesFallInBuckets: what the SFU sees of an audio frame is
// the SFrame header, then a multiple of the bucket, then the tag.
func TestOpusWireSizesFallInBuckets(t *testing.T) {
	for _, bucket := range []int{0, 1, 64} {
		r := newRoom(t)
		a := r.join("alice", func(o *Options) { o.AudioBucket = bucket })
		b := r.join("bob")
		r.pump()
		want := bucket
		if want == 0 {
			want = DefaultAudioBucket
		}
		sizes := map[int]bool{}
		for n := 1; n <= 200; n++ {
			frame := bytes.Repeat([]byte{0x5a}, n)
			wire := mustEncrypt(t, a, CodecOpus, frame)
			h, hl, err := sframe.ParseHeader(wire)
			if err != nil {
				t.Fatalf("an Opus frame does not begin with an SFrame header: %v", err)
			}
			body := len(wire) - hl - DefaultSuite.TagSize()
			if body%want != 0 || body < n+1 || body > n+want {
				t.Fatalf("bucket %d: %d-byte frame sent as %d bytes of ciphertext", want, n, body)
			}
			sizes[body] = true
			got, gh, err := b.DecryptFrame("alice", CodecOpus, wire)
			if err != nil || !bytes.Equal(got, frame) || gh != h {
				t.Fatalf("bucket %d: %d-byte frame: %v", want, n, err)
			}
		}
		ceil := func(n int) int { return (n + want - 1) / want }
		if distinct := ceil(201) - ceil(2) + 1; len(sizes) != distinct {
			t.Errorf("bucket %d: 200 frame sizes became %d ciphertext sizes, want %d", want, len(sizes), distinct)
		}
	}
	id, _ := NewIdentity()
	for _, bad := range []int{-1, MaxAudioBucket + 1} {
		if _, err := NewSession(Options{Self: "x", Identity: id, AudioBucket: bad}); err == nil {
			t.Errorf("NewSession took AudioBucket %d", bad)
		}
	}
}

// encryptPlaintext encrypts plain as is (no padding added) under alice's
// first key, as a participant holding the key could: the padding is inside
// the authenticated plaintext, so only a key holder can get it wrong.
func encryptPlaintext(t testing.TB, k KeyEvent, ctr uint64, plain []byte) []byte {
	t.Helper()
	return encryptPlaintextWithPrefix(t, k, ctr, nil, plain)
}

// TestDecryptFrameRejectsMalformedPadding: an audio frame that
// authenticates but whose padding is wrong is refused, as a frame that
// fails to decrypt; a video frame is never unpadded.
func TestDecryptFrameRejectsMalformedPadding(t *testing.T) {
	r := newRoom(t)
	r.join("alice")
	b := r.join("bob")
	r.pump()
	k := r.own("alice")[0]
	for i, plain := range [][]byte{
		nil,
		{0xfc},                   // no trailer: the last byte is read as one
		{0xfc, 1, 2, 3},          // unpadded, as a sender before padding
		{0xfc, 0, 0, 5},          // length beyond the frame
		{0xfc, 0, 7, 0, 3},       // nonzero padding
		{0, 0, 0, 0, 0, 0, 0, 7}, // padding only
	} {
		wire := encryptPlaintext(t, k, uint64(1000+i), plain)
		got, _, err := b.DecryptFrame("alice", CodecOpus, wire)
		if !errors.Is(err, ErrBadPadding) || errors.Is(err, ErrNoKey) || got != nil {
			t.Errorf("plaintext % x: DecryptFrame = % x, %v; want ErrBadPadding", plain, got, err)
		}
	}
	good := encryptPlaintext(t, k, 2000, []byte{0xfc, 1, 0, 0, 2})
	if got, _, err := b.DecryptFrame("alice", CodecOpus, good); err != nil || !bytes.Equal(got, []byte{0xfc, 1}) {
		t.Errorf("well-padded frame: % x, %v", got, err)
	}
	// VP8 is not padded: its plaintext is returned as is.
	vp8 := append([]byte{0x51, 0x02, 0x00}, encryptPlaintextWithPrefix(t, k, 3000, []byte{0x51, 0x02, 0x00}, []byte{1, 2, 3})...)
	if got, _, err := b.DecryptFrame("alice", CodecVP8, vp8); err != nil || !bytes.Equal(got, []byte{0x51, 0x02, 0x00, 1, 2, 3}) {
		t.Errorf("VP8 frame: % x, %v", got, err)
	}
}

// encryptPlaintextWithPrefix encrypts plain as is under k at counter ctr,
// with prefix as the clear metadata, and returns the SFrame part of the
// frame (header, ciphertext, tag).
func encryptPlaintextWithPrefix(t testing.TB, k KeyEvent, ctr uint64, prefix, plain []byte) []byte {
	t.Helper()
	s, err := sframe.NewSender(DefaultSuite, k.KID, k.BaseKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetCounter(ctr); err != nil {
		t.Fatal(err)
	}
	ct, err := s.Encrypt(nil, prefix, plain)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

// FuzzUnpadAudio: UnpadAudio never panics, accepts exactly the plaintexts
// PadAudio can produce with some bucket, and gives back the frame.
func FuzzUnpadAudio(f *testing.F) {
	for _, s := range [][]byte{nil, {0}, {0xfc, 0}, {0xfc, 0, 0, 2}, {0xfc, 0, 0, 5}, {0xfc, 1, 0, 1, 0, 4}, {0xfc, 0xff}, PadAudio(nil, []byte("opus"), 32)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, plain []byte) {
		frame, err := UnpadAudio(plain)
		// The specification, written the other way round: the last byte
		// counts zero bytes before it, and something is left before those.
		valid := len(plain) >= 2 && int(plain[len(plain)-1]) <= len(plain)-2 &&
			bytes.Count(plain[len(plain)-1-int(plain[len(plain)-1]):len(plain)-1], []byte{0}) == int(plain[len(plain)-1])
		if valid != (err == nil) {
			t.Fatalf("UnpadAudio(% x) = %v, but the plaintext is valid: %v", plain, err, valid)
		}
		if err != nil {
			if !errors.Is(err, ErrBadPadding) || frame != nil {
				t.Fatalf("UnpadAudio(% x) = % x, %v", plain, frame, err)
			}
			return
		}
		p := int(plain[len(plain)-1])
		again := append(append(bytes.Clone(frame), make([]byte, p)...), byte(p))
		if !bytes.Equal(again, plain) {
			t.Fatalf("UnpadAudio(% x) = % x, which does not pad back to it", plain, frame)
		}
		if p < MaxAudioBucket && (len(frame)+1+p)%(p+1) == 0 {
			if again := PadAudio(nil, frame, p+1); !bytes.Equal(again, plain) {
				t.Fatalf("PadAudio(% x, %d) = % x, want % x", frame, p+1, again, plain)
			}
		}
	})
}

// FuzzDecryptAudioFrame sends any plaintext, authenticated under the
// sender's key, through DecryptFrame: it never panics, refuses exactly
// what UnpadAudio refuses, as ErrBadPadding, and otherwise returns the
// frame; any bytes flipped on the way make it fail authentication.
func FuzzDecryptAudioFrame(f *testing.F) {
	for _, s := range [][]byte{nil, {0}, {0xfc, 0}, {0xfc, 0, 0, 5}, {0xfc, 1, 0, 1, 0, 4}, PadAudio(nil, []byte("opus"), 32)} {
		f.Add(s, uint16(0))
		f.Add(s, uint16(3))
	}
	r := newRoom(f)
	r.join("alice")
	b := r.join("bob")
	r.pump()
	k := r.own("alice")[0]
	ctr := uint64(0)
	f.Fuzz(func(t *testing.T, plain []byte, flip uint16) {
		ctr++
		wire := encryptPlaintext(t, k, ctr, plain)
		if flip != 0 {
			wire[int(flip)%len(wire)] ^= byte(flip>>8 | 1)
		}
		got, _, err := b.DecryptFrame("alice", CodecOpus, wire)
		if flip != 0 {
			if err == nil {
				t.Fatalf("a flipped frame decrypted")
			}
			return
		}
		want, werr := UnpadAudio(plain)
		switch {
		case werr != nil && !errors.Is(err, ErrBadPadding):
			t.Fatalf("malformed padding % x: DecryptFrame = %v", plain, err)
		case werr == nil && (err != nil || !bytes.Equal(got, want)):
			t.Fatalf("padded plaintext % x: DecryptFrame = % x, %v", plain, got, err)
		}
	})
}
