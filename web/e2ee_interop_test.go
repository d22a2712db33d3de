package web_test

// TestBrowserGoInterop: the browser's end-to-end encryption (web/sdk/e2ee)
// and the Go SDK's (media/sframe, media/e2ee) agree byte for byte, without
// a call: frames, the H.264 framing functions, key boxes, announcements,
// safety numbers and verification codes, and key management between Go
// and JS sessions, replays of key messages included.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/media/sframe"
)

// jsCall calls e2eeTest.fn(args...) in the page, awaiting a promise, and
// decodes its result into out (nil: ignore it).
func jsCall(t *testing.T, ctx context.Context, out any, fn string, args ...any) {
	t.Helper()
	parts := make([]string, len(args))
	for i, a := range args {
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		parts[i] = string(b)
	}
	expr := fmt.Sprintf("e2eeTest.%s(%s)", fn, strings.Join(parts, ","))
	if err := evaluate(ctx, expr, out); err != nil {
		t.Fatalf("e2eeTest.%s: %v", fn, err)
	}
}

var codecNames = map[e2ee.Codec]string{e2ee.CodecOpus: "opus", e2ee.CodecVP8: "vp8", e2ee.CodecH264: "h264"}

type interopFrame struct {
	name  string
	codec e2ee.Codec
	data  []byte
}

// interopFrames are frames of every codec and shape the frame format
// treats differently.
func interopFrames() []interopFrame {
	// An IDR access unit, SPS, PPS and a slice whose data has runs of
	// zeros, so escaping has work to do (as media/e2ee's tests).
	idr := []byte{0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40}
	idr = append(idr, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80)
	idr = append(idr, 0, 0, 0, 1, 0x65, 0x88, 0x84)
	for i := range 3000 {
		idr = append(idr, byte(i*7), 0, 0, byte(i%4))
	}
	// What a browser's encoder may produce instead: three-byte start
	// codes, an access unit delimiter, SEI between SPS and PPS; the sender
	// normalizes it.
	messy := []byte{0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 1, 0x06, 0x05, 0x01, 0xaa, 0x80}
	messy = append(messy, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, 0, 0, 1, 0x65, 0xb8, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x01, 0xff, 0x00)
	delta := append([]byte{0, 0, 0, 1, 0x41, 0x9a, 0x02}, bytes.Repeat([]byte{0, 0, 0, 0, 1, 2, 3}, 100)...)
	return []interopFrame{
		{"opus", e2ee.CodecOpus, append([]byte{0xfc}, []byte("a frame of opus audio, encoded")...)},
		{"opus TOC only", e2ee.CodecOpus, []byte{0x78}},
		{"opus filling its bucket with the trailer", e2ee.CodecOpus, append([]byte{0xfc}, bytes.Repeat([]byte{0}, e2ee.DefaultAudioBucket-2)...)},
		{"opus one byte into the next bucket", e2ee.CodecOpus, append([]byte{0xfc}, bytes.Repeat([]byte{0}, e2ee.DefaultAudioBucket-1)...)},
		{"opus ending in zeros", e2ee.CodecOpus, append([]byte{0x78, 1, 2}, make([]byte, 40)...)},
		{"opus large", e2ee.CodecOpus, append([]byte{0xfc}, bytes.Repeat([]byte("speech "), 180)...)},
		{"vp8 key", e2ee.CodecVP8, append([]byte{0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00}, bytes.Repeat([]byte("vp8 key frame "), 200)...)},
		{"vp8 delta", e2ee.CodecVP8, append([]byte{0x51, 0x02, 0x00}, bytes.Repeat([]byte("delta "), 30)...)},
		{"h264 IDR", e2ee.CodecH264, idr},
		{"h264 unnormalized", e2ee.CodecH264, messy},
		{"h264 delta with zero runs", e2ee.CodecH264, delta},
	}
}

func normalizedIf(c e2ee.Codec, f []byte) []byte {
	if c == e2ee.CodecH264 {
		return e2ee.NormalizeAnnexB(f)
	}
	return f
}

// goEncryptFrame is e2ee.Session.EncryptFrame with a fixed key: the
// frame format of media/e2ee/transform.go around an sframe.Sender.
func goEncryptFrame(t *testing.T, s *sframe.Sender, c e2ee.Codec, frame []byte) []byte {
	t.Helper()
	frame = normalizedIf(c, frame)
	n, err := e2ee.PrefixLen(c, frame)
	if err != nil {
		t.Fatal(err)
	}
	plain := frame[n:]
	if c == e2ee.CodecOpus {
		plain = e2ee.PadAudio(nil, plain, e2ee.DefaultAudioBucket)
	}
	ct, err := s.Encrypt(nil, frame[:n], plain)
	if err != nil {
		t.Fatal(err)
	}
	out := bytes.Clone(frame[:n])
	if c == e2ee.CodecH264 {
		return e2ee.EscapeH264(out, ct)
	}
	return append(out, ct...)
}

// goDecryptFrame is e2ee.Session.DecryptFrame with a fixed receiver.
func goDecryptFrame(r *sframe.Receiver, c e2ee.Codec, wire []byte) ([]byte, sframe.Header, error) {
	n, err := e2ee.PrefixLen(c, wire)
	if err != nil {
		return nil, sframe.Header{}, err
	}
	body := wire[n:]
	if c == e2ee.CodecH264 {
		if body, err = e2ee.UnescapeH264(nil, body); err != nil {
			return nil, sframe.Header{}, err
		}
	}
	out, h, err := r.Decrypt(bytes.Clone(wire[:n]), wire[:n], body)
	if err == nil && c == e2ee.CodecOpus {
		var frame []byte
		if frame, err = e2ee.UnpadAudio(out[n:]); err != nil {
			return nil, h, err
		}
		out = out[:n+len(frame)]
	}
	return out, h, err
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBrowserGoInterop(t *testing.T) {
	srv := e2eeServer(t, nil)
	b := newBrowser(t)
	ctx := e2eeOpenPage(t, b, "interop", srv.URL+"/testdata/e2ee/interop.html", "typeof window.e2eeTest === 'object'")

	t.Run("frames", func(t *testing.T) { interopFramesTest(t, ctx) })
	t.Run("replay window", func(t *testing.T) { interopReplayTest(t, ctx) })
	t.Run("prefix", func(t *testing.T) { interopPrefixTest(t, ctx) })
	t.Run("audio padding", func(t *testing.T) { interopPaddingTest(t, ctx) })
	t.Run("key boxes", func(t *testing.T) { interopKeyBoxTest(t, ctx) })
	t.Run("announcements", func(t *testing.T) { interopAnnouncementsTest(t, ctx) })
	t.Run("safety number", func(t *testing.T) { interopSafetyNumberTest(t, ctx) })
	t.Run("key management", func(t *testing.T) { interopKeyManagementTest(t, ctx) })
	t.Run("ack timeout and reconnect", func(t *testing.T) { interopAckTimeoutTest(t, ctx) })
	t.Run("listeners", func(t *testing.T) { interopListenersTest(t, ctx) })
	t.Run("receivers do not guess keys", func(t *testing.T) { interopReceiverNoGuessTest(t, ctx) })
	t.Run("early keys", func(t *testing.T) { interopEarlyKeysTest(t, ctx) })
	t.Run("key replay", func(t *testing.T) { interopKeyReplayTest(t, ctx) })
	t.Run("epoch rollback", func(t *testing.T) { interopEpochRollbackTest(t, ctx) })
	t.Run("forged seal after identity key leak", func(t *testing.T) { interopForgedSealTest(t, ctx) })
	t.Run("frames install no keys", func(t *testing.T) { interopNoKeysFromFramesTest(t, ctx) })
	t.Run("leaver forges frames under ratchet of old key", func(t *testing.T) { interopLeaverForgesTest(t, ctx) })
	t.Run("ghost flood keeps replay records", func(t *testing.T) { interopGhostFloodTest(t, ctx) })
	t.Run("overlong ghost name does not stall a rekey", func(t *testing.T) { interopOverlongGhostTest(t, ctx) })
	t.Run("early queue cannot be filled for good", func(t *testing.T) { interopEarlyQueueTest(t, ctx) })
	t.Run("stores copy keys", func(t *testing.T) { interopStoreCopiesTest(t, ctx) })
	t.Run("sender tags are not reused", func(t *testing.T) { interopTagsNotReusedTest(t, ctx) })
	t.Run("skeletons of names", func(t *testing.T) { interopSkeletonTest(t, ctx) })
}

// skeletonNames are names whose skeletons are easy to get wrong: invisible
// characters, combining and enclosing marks, compatibility forms, case
// mappings that are not one to one, spaces and separators.
var skeletonNames = []string{
	"", "bob", "Bob", "BOB", "rob",
	"bob\u200b", "\u200bbob", "b\u200cob", "b\u200dob", "bob\u2060", "bob\ufeff", "\u202ebob", "bob\u00ad", "bob\U000e0001", "b\x00ob", "b\tob", "bob\u007f",
	"bob\u0301", "bo\u0301b", "b\u20ddob", "\u0301", "cafe\u0301", "caf\u00e9",
	"ｂｏｂ", "Ｂｏｂ", "\U0001d41b\U0001d428\U0001d41b", "ℌ", "\u212a", "\u212b", "\u2126", "①", "ﾊﾟ",
	"b\u00a0ob", "b ob", "b\u3000ob", "b\u2028ob", "b\u2029ob", "b\u1680ob",
	"bob\ufe0f", "bob\U000e0100", "\u2764\ufe0f",
	"İstanbul", "ISTANBUL", "istanbul", "ıstanbul", "I\u0307stanbul",
	"Straße", "STRASSE", "straẞe", "STRAẞE",
	"ﬁle", "ﬀ", "ﬃ", "Ǆ", "ǅ", "ǆ", "Ĳ", "ŉ",
	"Σ", "ΑΣ", "ΑΣΑ", "ΑΣ\u200b", "ΟΔΟΣ", "οδος", "ΟΔΟΣ ΟΔΟΣ",
}

// Go's e2ee.Skeleton and the browser's skeleton() agree on every name of
// skeletonNames: trust on first use takes the same names for look-alikes
// in both SDKs (docs/E2EE.md, "Known people").
func interopSkeletonTest(t *testing.T, ctx context.Context) {
	in := make([]string, len(skeletonNames))
	for i, n := range skeletonNames {
		in[i] = hex.EncodeToString([]byte(n))
	}
	var out []string
	jsCall(t, ctx, &out, "skeletons", in)
	if len(out) != len(in) {
		t.Fatalf("JS gave %d skeletons for %d names", len(out), len(in))
	}
	for i, n := range skeletonNames {
		js, err := hex.DecodeString(out[i])
		if err != nil {
			t.Fatal(err)
		}
		if got := e2ee.Skeleton(n); string(js) != got {
			t.Errorf("skeleton of %+q: Go %+q, JS %+q", n, got, js)
		}
	}
	// The look-alikes the attack tests use are look-alikes in both.
	for _, n := range []string{"bob\u200b", "ｂｏｂ", "bob\u0301", "b\u00a0ob", "bob\ufe0f", "Bob"} {
		if e2ee.Skeleton(n) != e2ee.Skeleton("bob") {
			t.Errorf("Go: %+q does not look like bob", n)
		}
	}
}

// (a) Frames encrypted by Go under fixed keys decrypt in JS to the
// normalized frame, frames encrypted in JS decrypt in Go, and with the
// same key, KID and counter both produce the same bytes, in every suite.
func interopFramesTest(t *testing.T, ctx context.Context) {
	frames := interopFrames()
	for _, tc := range []struct {
		suite sframe.CipherSuite
		kid   uint64
		ctr   uint64
	}{
		{sframe.AES128CTRHMACSHA256_80, 0, 0},
		{sframe.AES128CTRHMACSHA256_64, 7, 8},
		{sframe.AES128CTRHMACSHA256_32, 8, 255},
		{sframe.AES128GCMSHA256_128, 0x12345601, 0},
		{sframe.AES256GCMSHA512_128, 1<<64 - 1, 1<<53 + 1}, // beyond a double's precision
	} {
		t.Run(tc.suite.String(), func(t *testing.T) {
			base := randomBytes(t, tc.suite.HashSize())
			snd, err := sframe.NewSender(tc.suite, tc.kid, base)
			if err != nil {
				t.Fatal(err)
			}
			if err := snd.SetCounter(tc.ctr); err != nil {
				t.Fatal(err)
			}
			type jsFrame struct {
				Codec string `json:"codec"`
				Wire  string `json:"wire,omitempty"`
				Frame string `json:"frame,omitempty"`
			}
			var toJS, plain []jsFrame
			var goWire [][]byte
			for _, f := range frames {
				w := goEncryptFrame(t, snd, f.codec, f.data)
				goWire = append(goWire, w)
				toJS = append(toJS, jsFrame{Codec: codecNames[f.codec], Wire: hex.EncodeToString(w)})
				plain = append(plain, jsFrame{Codec: codecNames[f.codec], Frame: hex.EncodeToString(f.data)})
			}
			keyArgs := map[string]any{"suite": int(tc.suite), "kid": strconv.FormatUint(tc.kid, 10), "base": hex.EncodeToString(base)}

			// Go -> JS.
			var dec []struct {
				Data, KID, CTR, Error, Message string
			}
			args := map[string]any{"frames": toJS}
			for k, v := range keyArgs {
				args[k] = v
			}
			jsCall(t, ctx, &dec, "decryptFrames", args)
			for i, f := range frames {
				want := hex.EncodeToString(normalizedIf(f.codec, f.data))
				ctr := strconv.FormatUint(tc.ctr+uint64(i), 10)
				if dec[i].Error != "" || dec[i].Data != want || dec[i].KID != strconv.FormatUint(tc.kid, 10) || dec[i].CTR != ctr {
					t.Errorf("%s: Go -> JS: %s %s, KID %s CTR %s (want %d, %s); %d of %d bytes match",
						f.name, dec[i].Error, dec[i].Message, dec[i].KID, dec[i].CTR, tc.kid, ctr, len(dec[i].Data)/2, len(want)/2)
				}
			}

			// JS -> Go, from the same counter: the same bytes.
			var enc []struct{ Wire, Error, Message string }
			args = map[string]any{"frames": plain, "ctr": strconv.FormatUint(tc.ctr, 10)}
			for k, v := range keyArgs {
				args[k] = v
			}
			jsCall(t, ctx, &enc, "encryptFrames", args)
			rcv := sframe.NewReceiver(tc.suite, sframe.ReceiverOptions{})
			if err := rcv.SetKey(tc.kid, base); err != nil {
				t.Fatal(err)
			}
			for i, f := range frames {
				if enc[i].Error != "" {
					t.Errorf("%s: JS encrypt: %s %s", f.name, enc[i].Error, enc[i].Message)
					continue
				}
				w, _ := hex.DecodeString(enc[i].Wire)
				if !bytes.Equal(w, goWire[i]) {
					t.Errorf("%s: JS and Go encrypt to different bytes (%d and %d bytes)", f.name, len(w), len(goWire[i]))
				}
				got, h, err := goDecryptFrame(rcv, f.codec, w)
				if err != nil || !bytes.Equal(got, normalizedIf(f.codec, f.data)) || h.KID != tc.kid || h.CTR != tc.ctr+uint64(i) {
					t.Errorf("%s: JS -> Go: %v, KID %d CTR %d", f.name, err, h.KID, h.CTR)
				}
			}
		})
	}
}

// sframeErrorKind names an sframe error as sframe.js's SFrameError codes.
func sframeErrorKind(err error) string {
	for _, k := range []struct {
		err  error
		name string
	}{
		{sframe.ErrHeader, "header"}, {sframe.ErrUnknownKID, "unknown-kid"}, {sframe.ErrAuth, "auth"},
		{sframe.ErrReplay, "replay"}, {sframe.ErrTooOld, "too-old"}, {sframe.ErrTooFarAhead, "too-far-ahead"},
	} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// The JS Receiver accepts and refuses exactly the frames Go's does: the
// replay window's edge, ring and limits, forged frames (which must not
// move the window), non-minimal and truncated headers, and long random
// walks of the counter forwards, backwards and far ahead.
func interopReplayTest(t *testing.T, ctx context.Context) {
	const suite = sframe.AES128GCMSHA256_128
	const kid = 77
	base := randomBytes(t, 32)
	metadata := []byte{0x51, 0x02, 0x00}
	frame := func(ctr uint64, forged bool) []byte {
		s, err := sframe.NewSender(suite, kid, base)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetCounter(ctr); err != nil {
			t.Fatal(err)
		}
		f, err := s.Encrypt(nil, metadata, []byte("payload"))
		if err != nil {
			t.Fatal(err)
		}
		if forged {
			f[len(f)-1] ^= 1
		}
		return f
	}
	type step struct {
		ctr    uint64
		forged bool
	}
	steps := func(ctrs ...uint64) []step {
		out := make([]step, len(ctrs))
		for i, c := range ctrs {
			out[i] = step{ctr: c}
		}
		return out
	}
	// seq counts from a to b, up or down, b excluded.
	seq := func(a, b uint64) []uint64 {
		var out []uint64
		for c := a; c != b; {
			out = append(out, c)
			if a < b {
				c++
			} else {
				c--
			}
		}
		return out
	}
	const top = 1 << 40
	rng := mrand.New(mrand.NewPCG(1024, 20))
	// walk is a random sequence of frames around the highest counter a
	// receiver with opts has accepted: the next one, ones in and below the
	// window, repeats, forgeries, and jumps ahead, near and (perhaps too) far.
	walk := func(n int, opts sframe.ReceiverOptions) []step {
		window := cmp.Or(opts.Window, sframe.DefaultWindow)
		r := sframe.NewReceiver(suite, opts)
		if err := r.SetKey(kid, base); err != nil {
			t.Fatal(err)
		}
		top := rng.Uint64N(1 << 50)
		last := top
		var out []step
		for range n {
			s := step{}
			switch x := rng.IntN(100); {
			case x < 45:
				s.ctr = top + 1
			case x < 55: // just below the top: slots a jump skipped
				s.ctr = top - 1 - rng.Uint64N(4)
			case x < 65:
				s.ctr = top - rng.Uint64N(window+window/2)
			case x < 75:
				s.ctr = top + 1 + rng.Uint64N(window)
			case x < 85:
				s.ctr = last
			case x < 90:
				s.ctr, s.forged = top+rng.Uint64N(5000)-2500, true
			default:
				s.ctr = top + rng.Uint64N(1<<21)
			}
			if _, h, err := r.Decrypt(nil, metadata, frame(s.ctr, s.forged)); err == nil && h.CTR > top {
				top = h.CTR
			}
			last = s.ctr
			out = append(out, s)
		}
		return out
	}
	// Frames that are not made by a sender: headers the RFC forbids or
	// that end early, and a KID with no key.
	raw := [][]byte{
		{0x80, kid},             // KID 77 in one extended byte: minimal, but no ciphertext
		{0x90, 0, kid, 0x00},    // KID 77 in two bytes: not minimal
		{0x88, kid, 0x05},       // CTR 5 in one extended byte: not minimal
		{0x89, kid, 0x00, 0xff}, // CTR 255 in two bytes: not minimal
		{0x8a, kid, 0x00, 0x01}, // CTR ends early
		{0xff},                  // both extended, nothing follows
		{},                      // empty
		frame(3, false)[:4],     // too short for the tag
		append([]byte{0x80, 78}, frame(3, false)[2:]...), // another KID
	}
	for _, tc := range []struct {
		name    string
		window  uint64
		maxJump uint64
		steps   []step
	}{
		{"replay", 0, 0, steps(5, 5, 6, 5, 6)},
		{"reordered within a window of 4", 4, 0, steps(10, 8, 7, 9, 8, 6, 11, 7, 9)},
		{"default window edge", 0, 0, steps(5000, 5000-1023, 5000-1024, 0)},
		{"window of 100 in a 128-bit ring", 100, 0, steps(500, 401, 400, 372)},
		{"window clamped", 1 << 30, 0, steps(100000, 100000-65535, 100000-65536)},
		{"far ahead refused", 0, 100, steps(0, 100, 201, 200, 201, 1<<62)},
		{"first frame may start anywhere", 0, 10, steps(top, top-1, top+11, top+10)},
		{"default MaxJump", 0, 0, steps(7, 7+1<<20+1, 7+1<<20)},
		{"MaxJump off", 0, 1<<64 - 1, steps(0, 1<<64-1, 1<<64-2, 0, 1<<64-1)},
		{"jump beyond the ring clears it", 64, 0, steps(3, 72, 67, 67, 9, 8)},
		{"jump within the ring clears the skipped slots", 64, 0, steps(2, 3, 60, 70, 66, 67, 66, 6, 7, 60)},
		{"every slot a jump skips is cleared", 64, 0, append(steps(seq(0, 128)...), steps(seq(140, 128)...)...)},
		{"forged frames do not move the window", 4, 2000, []step{{ctr: 10}, {ctr: 1000, forged: true}, {ctr: 9}, {ctr: 11, forged: true}, {ctr: 11}, {ctr: 1000}}},
		{"a forged replay is still a replay", 0, 0, []step{{ctr: 4}, {ctr: 4, forged: true}}},
		{"random walk, defaults", 0, 0, walk(1500, sframe.ReceiverOptions{})},
		{"random walk, window 100, MaxJump 5000", 100, 5000, walk(1500, sframe.ReceiverOptions{Window: 100, MaxJump: 5000})},
		{"headers", 0, 0, nil},
	} {
		var frames [][]byte
		for _, s := range tc.steps {
			frames = append(frames, frame(s.ctr, s.forged))
		}
		if tc.steps == nil {
			frames = raw
		}
		r := sframe.NewReceiver(suite, sframe.ReceiverOptions{Window: tc.window, MaxJump: tc.maxJump})
		if err := r.SetKey(kid, base); err != nil {
			t.Fatal(err)
		}
		want := make([]string, len(frames))
		hexFrames := make([]string, len(frames))
		counts := map[string]int{}
		for i, f := range frames {
			_, _, err := r.Decrypt(nil, metadata, f)
			want[i] = sframeErrorKind(err)
			counts[want[i]]++
			hexFrames[i] = hex.EncodeToString(f)
		}
		var got []string
		jsCall(t, ctx, &got, "replay", map[string]any{
			"suite": int(suite), "kid": strconv.Itoa(kid), "base": hex.EncodeToString(base), "window": tc.window,
			"maxJump": strconv.FormatUint(tc.maxJump, 10), "metadata": hex.EncodeToString(metadata), "frames": hexFrames,
		})
		bad := 0
		for i := range frames {
			if i >= len(got) || got[i] != want[i] {
				bad++
				if bad <= 5 {
					var g string
					if i < len(got) {
						g = got[i]
					}
					t.Errorf("%s: frame %d (%x): JS %s, Go %s", tc.name, i, frames[i][:min(len(frames[i]), 12)], g, want[i])
				}
			}
		}
		if len(tc.steps) > 100 {
			t.Logf("%s: %d frames, Go's outcomes %v, %d differ in JS", tc.name, len(frames), counts, bad)
		}
	}
}

// e2eeErrorKind names an e2ee framing error as prefix.js's FrameError codes.
func e2eeErrorKind(err error) string {
	switch {
	case errors.Is(err, e2ee.ErrNoSlice):
		return "error:no-slice"
	case errors.Is(err, e2ee.ErrBadPadding):
		return "error:bad-padding"
	case errors.Is(err, e2ee.ErrMalformedFrame):
		return "error:malformed"
	case errors.Is(err, e2ee.ErrUnsupportedCodec):
		return "error:unsupported-codec"
	}
	return "error:" + err.Error()
}

// The frame functions of prefix.js give what media/e2ee/prefix.go gives,
// on hand-made frames and on random ones full of zeros, start codes and
// emulation-prevention bytes.
func interopPrefixTest(t *testing.T, ctx context.Context) {
	inputs := [][]byte{
		nil, {0}, {3}, {0, 0}, {0, 0, 3}, {0, 0, 3, 3}, {0, 0, 3, 4}, {0, 3}, {0, 0, 0, 3}, {0, 0, 1}, {0, 0, 2},
		{0, 0, 0, 1}, {0, 0, 0, 1, 0x65}, {0, 0, 0, 1, 0x65, 1, 2}, {0, 0, 1, 0x67, 0, 0, 1, 0x68, 0, 0, 1, 0x65, 0xaa, 0xbb},
		{0, 0, 1, 0x67, 0, 0, 1, 0x68}, {0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x65, 0x88, 0x84, 0},
		{0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00}, {0x50, 0x02, 0x00, 0x9d, 0x01, 0x2b, 0x40, 0x01, 0xf0, 0x00, 0x11},
		{0x51, 0x02}, {0x51, 0x02, 0x00},
	}
	for _, f := range interopFrames() {
		inputs = append(inputs, f.data[:min(len(f.data), 200)])
	}
	rng := mrand.New(mrand.NewPCG(9605, 1))
	alphabet := []byte{0, 0, 0, 0, 1, 2, 3, 3, 0x65, 0x41, 0x67, 0x68, 0x09, 0x0c, 0x06, 0x80, 0xff}
	for range 400 {
		b := make([]byte, rng.IntN(48))
		for i := range b {
			if rng.IntN(4) == 0 {
				b[i] = byte(rng.IntN(256))
			} else {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		inputs = append(inputs, b)
	}
	hexIn := make([]string, len(inputs))
	for i, in := range inputs {
		hexIn[i] = hex.EncodeToString(in)
	}
	var got []map[string]string
	jsCall(t, ctx, &got, "prefixFunctions", hexIn)
	result := func(v []byte, err error) string {
		if err != nil {
			return e2eeErrorKind(err)
		}
		return hex.EncodeToString(v)
	}
	length := func(n int, err error) string {
		if err != nil {
			return e2eeErrorKind(err)
		}
		return strconv.Itoa(n)
	}
	mismatches := 0
	for i, in := range inputs {
		want := map[string]string{
			"normalize": hex.EncodeToString(e2ee.NormalizeAnnexB(in)),
			"h264":      length(e2ee.PrefixLen(e2ee.CodecH264, in)),
			"vp8":       length(e2ee.PrefixLen(e2ee.CodecVP8, in)),
			"opus":      length(e2ee.PrefixLen(e2ee.CodecOpus, in)),
			"escape":    hex.EncodeToString(e2ee.EscapeH264(nil, in)),
			"unescape":  result(e2ee.UnescapeH264(nil, in)),
		}
		for _, fn := range []string{"normalize", "h264", "vp8", "opus", "escape", "unescape"} {
			if got[i][fn] != want[fn] {
				mismatches++
				if mismatches <= 20 {
					t.Errorf("%s(%x): JS %s, Go %s", fn, in, got[i][fn], want[fn])
				}
			}
		}
	}
	t.Logf("%d inputs, 6 functions each: %d mismatches", len(inputs), mismatches)
}

// Audio padding: prefix.js's padAudio and unpadAudio give what
// media/e2ee/pad.go's PadAudio and UnpadAudio give, on every bucket edge
// and on random plaintexts heavy with zeros; and audio frames whose
// padding is wrong, encrypted in Go under the right key (as only a key
// holder can), are refused by the browser as bad padding, not played.
func interopPaddingTest(t *testing.T, ctx context.Context) {
	buckets := []int{1, 2, 16, e2ee.DefaultAudioBucket, 100, e2ee.MaxAudioBucket}
	var inputs [][]byte
	for n := range 2*e2ee.DefaultAudioBucket + 3 {
		inputs = append(inputs, bytes.Repeat([]byte{0xfc}, n))
	}
	inputs = append(inputs, bytes.Repeat([]byte{7}, 300), []byte{0xfc, 0, 0, 5}, []byte{0xfc, 1, 0, 1, 0, 4}, []byte{0xfc, 0xff},
		append(append([]byte{0xfc}, make([]byte, 255)...), 255), append(make([]byte, 256), 255))
	rng := mrand.New(mrand.NewPCG(9605, 2))
	for range 400 {
		// A padded plaintext (frames heavy with zeros), then often one
		// thing wrong with it: a trailer off by one, a nonzero padding
		// byte, a cut end.
		frame := make([]byte, rng.IntN(20))
		for i := range frame {
			if rng.IntN(2) == 0 {
				frame[i] = byte(rng.IntN(256))
			}
		}
		p := rng.IntN(20)
		b := append(append(frame, make([]byte, p)...), byte(p))
		switch rng.IntN(6) {
		case 0:
			b[len(b)-1]++
		case 1:
			b[len(b)-1]--
		case 2:
			if p > 0 {
				b[len(b)-2-rng.IntN(p)] = byte(1 + rng.IntN(255))
			}
		case 3:
			b = b[:rng.IntN(len(b))]
		}
		inputs = append(inputs, b)
	}
	hexIn := make([]string, len(inputs))
	for i, in := range inputs {
		hexIn[i] = hex.EncodeToString(in)
	}
	var got []struct {
		Pad   []string
		Unpad string
	}
	jsCall(t, ctx, &got, "paddingFunctions", hexIn, buckets)
	mismatches, refused := 0, 0
	for i, in := range inputs {
		var want string
		if f, err := e2ee.UnpadAudio(in); err != nil {
			want = e2eeErrorKind(err)
			refused++
		} else {
			want = hex.EncodeToString(f)
		}
		if got[i].Unpad != want {
			mismatches++
			t.Errorf("unpadAudio(%x): JS %s, Go %s", in, got[i].Unpad, want)
		}
		for j, b := range buckets {
			if w := hex.EncodeToString(e2ee.PadAudio(nil, in, b)); got[i].Pad[j] != w {
				mismatches++
				t.Errorf("padAudio(%x, %d): JS %s, Go %s", in, b, got[i].Pad[j], w)
			}
		}
	}
	if refused < 100 || refused > len(inputs)-100 {
		t.Errorf("%d of %d plaintexts refused: the inputs do not test both sides", refused, len(inputs))
	}
	t.Logf("%d plaintexts, %d buckets: %d mismatches, %d refused by both", len(inputs), len(buckets), mismatches, refused)

	// Frames whose padding is wrong, authenticated under the key.
	base := randomBytes(t, e2ee.DefaultSuite.HashSize())
	snd, err := sframe.NewSender(e2ee.DefaultSuite, 5, base)
	if err != nil {
		t.Fatal(err)
	}
	bad := [][]byte{nil, {0xfc}, {0xfc, 1, 2, 3}, {0xfc, 0, 0, 5}, {0xfc, 0, 7, 0, 3}, {0, 0, 0, 3}}
	var toJS []map[string]string
	for _, plain := range bad {
		ct, err := snd.Encrypt(nil, nil, plain)
		if err != nil {
			t.Fatal(err)
		}
		toJS = append(toJS, map[string]string{"codec": "opus", "wire": hex.EncodeToString(ct)})
	}
	// A good one last: the receiver still works.
	ct, err := snd.Encrypt(nil, nil, []byte{0xfc, 9, 0, 0, 2})
	if err != nil {
		t.Fatal(err)
	}
	toJS = append(toJS, map[string]string{"codec": "opus", "wire": hex.EncodeToString(ct)})
	var dec []struct{ Data, Error, Message string }
	jsCall(t, ctx, &dec, "decryptFrames", map[string]any{"suite": int(e2ee.DefaultSuite), "kid": "5", "base": hex.EncodeToString(base), "frames": toJS})
	for i, plain := range bad {
		if dec[i].Error != "bad-padding" {
			t.Errorf("plaintext %x with bad padding: JS decrypts to %q (%s %s), want bad-padding", plain, dec[i].Data, dec[i].Error, dec[i].Message)
		}
	}
	if last := dec[len(bad)]; last.Error != "" || last.Data != "fc09" {
		t.Errorf("a well-padded frame after them: %q %s %s", last.Data, last.Error, last.Message)
	}

	// A browser told another bucket pads to it, and Go unpads that too.
	for _, bucket := range []int{1, 64} {
		var frames []map[string]string
		for n := 1; n <= 70; n++ {
			frames = append(frames, map[string]string{"codec": "opus", "frame": hex.EncodeToString(bytes.Repeat([]byte{byte(n)}, n))})
		}
		var enc []struct{ Wire, Error, Message string }
		jsCall(t, ctx, &enc, "encryptFrames", map[string]any{"suite": int(e2ee.DefaultSuite), "kid": "6", "base": hex.EncodeToString(base), "ctr": "0", "audioBucket": bucket, "frames": frames})
		rcv := sframe.NewReceiver(e2ee.DefaultSuite, sframe.ReceiverOptions{})
		if err := rcv.SetKey(6, base); err != nil {
			t.Fatal(err)
		}
		for i, e := range enc {
			n := i + 1
			w, _ := hex.DecodeString(e.Wire)
			_, hl, err := sframe.ParseHeader(w)
			if e.Error != "" || err != nil {
				t.Fatalf("bucket %d, %d-byte frame: %s %s %v", bucket, n, e.Error, e.Message, err)
			}
			if body := len(w) - hl - e2ee.DefaultSuite.TagSize(); body%bucket != 0 || body < n+1 || body > n+bucket {
				t.Errorf("bucket %d: JS sent a %d-byte frame as %d bytes of ciphertext", bucket, n, body)
			}
			got, _, err := goDecryptFrame(rcv, e2ee.CodecOpus, w)
			if err != nil || !bytes.Equal(got, bytes.Repeat([]byte{byte(n)}, n)) {
				t.Errorf("bucket %d, %d-byte frame: Go decrypts %x, %v", bucket, n, got, err)
			}
		}
	}
}

// jsPrivateKey is what the page reports of one of its private keys.
type jsPrivateKey struct {
	Extractable bool
	Exported    int
	Usages      []string
	Algorithm   string
}

// jsIdentity is an identity and session key the page made (newIdentity).
type jsIdentity struct {
	Announcement, IdentityKey, HPKE, SessionID string
	IdentityPrivate, SessionPrivate            jsPrivateKey
}

func newJSIdentity(t *testing.T, ctx context.Context, name string) (jsIdentity, e2ee.Announcement) {
	t.Helper()
	var js jsIdentity
	jsCall(t, ctx, &js, "newIdentity", name)
	ann, err := e2ee.ParseAnnouncement(js.Announcement)
	if err != nil {
		t.Fatalf("Go cannot parse the JS announcement %q: %v", js.Announcement, err)
	}
	if hex.EncodeToString(ann.Identity) != js.IdentityKey || hex.EncodeToString(ann.HPKE) != js.HPKE || hex.EncodeToString(ann.SessionID[:]) != js.SessionID {
		t.Fatalf("Go reads the JS announcement as identity %x, session key %x, session %x; JS made %s, %s, %s",
			ann.Identity, ann.HPKE, ann.SessionID, js.IdentityKey, js.HPKE, js.SessionID)
	}
	return js, ann
}

// hexBody is an e2ee.KeyBody as the page takes and gives it: bytes in
// hex, 64-bit integers in decimal.
type hexBody struct {
	Suite            int    `json:"suite"`
	KID              string `json:"kid"`
	Seq              string `json:"seq"`
	Room             string `json:"room"`
	Sender           string `json:"sender"`
	SenderKey        string `json:"senderKey"`
	SenderSession    string `json:"senderSession"`
	Recipient        string `json:"recipient"`
	RecipientKey     string `json:"recipientKey"`
	RecipientSession string `json:"recipientSession"`
	BaseKey          string `json:"baseKey"`
}

func toHexBody(b *e2ee.KeyBody) hexBody {
	return hexBody{
		Suite: int(b.Suite), KID: strconv.FormatUint(b.KID, 10), Seq: strconv.FormatUint(b.Seq, 10),
		Room: b.Room, Sender: b.Sender, SenderKey: hex.EncodeToString(b.SenderKey), SenderSession: hex.EncodeToString(b.SenderSession[:]),
		Recipient: b.Recipient, RecipientKey: hex.EncodeToString(b.RecipientKey), RecipientSession: hex.EncodeToString(b.RecipientSession[:]),
		BaseKey: hex.EncodeToString(b.BaseKey),
	}
}

// keyMessageJSON is a key message with one box, under boxes[to].
func keyMessageJSON(t *testing.T, kid uint64, to string, box []byte) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"sotto_e2ee": 2, "type": "key", "kid": kid, "boxes": map[string]string{to: base64.RawURLEncoding.EncodeToString(box)}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type jsBoxResult struct {
	Box, Error, Message string
	Body                *hexBody
}

// (b) Key boxes: a box sealed in Go opens in JS and one sealed in JS opens
// in Go, byte for byte the same body (UTF-8 names, an empty room, 64-bit
// KID and sequence number beyond a double's precision); a box opened with
// the wrong sender key, sealed to another session key, signed by someone
// else than the key it names, or changed anywhere is refused by both. The
// JS private keys cannot be exported. Then, in key sessions, a box bound
// to another room, sender, recipient, session, KID or suite is refused
// and counted by both, and one that is right is accepted once.
func interopKeyBoxTest(t *testing.T, ctx context.Context) {
	js, jsAnn := newJSIdentity(t, ctx, "jessie")
	for _, k := range []struct {
		what      string
		got       jsPrivateKey
		alg, want string
	}{{"identity", js.IdentityPrivate, "Ed25519", "sign"}, {"session", js.SessionPrivate, "X25519", "deriveBits"}} {
		if k.got.Extractable || k.got.Exported != 0 || !slices.Equal(k.got.Usages, []string{k.want}) || k.got.Algorithm != k.alg {
			t.Errorf("the JS %s private key: %+v; want a non-extractable %s key for %s only", k.what, k.got, k.alg, k.want)
		}
	}
	newJSIdentity(t, ctx, "mallory") // forges jessie's boxes
	goID, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	goSK, err := e2ee.NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	otherID, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	otherSK, err := e2ee.NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	rng := mrand.New(mrand.NewPCG(9180, 2))
	jsOpen := func(box []byte, senderKey []byte) jsBoxResult {
		var res jsBoxResult
		jsCall(t, ctx, &res, "openKeyBox", "jessie", hex.EncodeToString(senderKey), hex.EncodeToString(box))
		return res
	}
	jsSeal := func(signer string, to []byte, b *e2ee.KeyBody, forge bool) []byte {
		var res jsBoxResult
		jsCall(t, ctx, &res, "sealKeyBox", signer, hex.EncodeToString(to), toHexBody(b), forge)
		if res.Error != "" {
			t.Fatalf("JS sealKeyBox as %s: %s %s", signer, res.Error, res.Message)
		}
		box, _ := hex.DecodeString(res.Box)
		return box
	}
	for i, tc := range []struct{ room, goName, jsName string }{
		{"room", "gopher", "jessie"},
		{"salle d'été ☀", "zoë", "jessie 😀"},
		{"", "g", "j"},
	} {
		bodyLen := 1 + 2 + 8 + 8 + 2 + len(tc.room) + 2 + len(tc.goName) + 48 + 2 + len(tc.jsName) + 48 + 2 + 32
		wantLen := 1 + 32 + bodyLen + 64 + 16

		// Go -> JS.
		toJS := &e2ee.KeyBody{
			Suite: e2ee.DefaultSuite, KID: rng.Uint64(), Seq: 1<<62 + uint64(i)<<20 + 1, Room: tc.room,
			Sender: tc.goName, SenderKey: goID.PublicKey(), SenderSession: goSK.ID(),
			Recipient: tc.jsName, RecipientKey: jsAnn.Identity, RecipientSession: jsAnn.SessionID,
			BaseKey: randomBytes(t, 32),
		}
		box, err := e2ee.SealKeyBox(goID, jsAnn.HPKE, toJS)
		if err != nil {
			t.Fatal(err)
		}
		if len(box) != wantLen || box[0] != e2ee.BoxVersion {
			t.Errorf("room %q: Go sealed %d bytes starting %#x; want %d starting %#x", tc.room, len(box), box[0], wantLen, e2ee.BoxVersion)
		}
		if res := jsOpen(box, goID.PublicKey()); res.Error != "" || res.Body == nil || *res.Body != toHexBody(toJS) {
			t.Errorf("room %q: sealed in Go, opened in JS: %s %s; body %+v, want %+v", tc.room, res.Error, res.Message, res.Body, toHexBody(toJS))
		}
		toOther, err := e2ee.SealKeyBox(goID, otherSK.PublicKey(), toJS)
		if err != nil {
			t.Fatal(err)
		}
		refused := map[string][]byte{"sealed to another session key": toOther, "cut short": box[:len(box)-1]}
		for _, at := range []int{0, 1, 32, 33, len(box) / 2, len(box) - 1} {
			c := bytes.Clone(box)
			c[at] ^= 0x20
			refused[fmt.Sprintf("byte %d changed", at)] = c
		}
		for what, b := range refused {
			if res := jsOpen(b, goID.PublicKey()); res.Error != "SealOpenError" {
				t.Errorf("room %q: a Go box %s, opened in JS: %+v; want SealOpenError", tc.room, what, res)
			}
		}
		if res := jsOpen(box, otherID.PublicKey()); res.Error != "SealOpenError" {
			t.Errorf("room %q: a Go box opened in JS under another sender key: %+v; want SealOpenError (signature)", tc.room, res)
		}

		// JS -> Go.
		toGo := &e2ee.KeyBody{
			Suite: e2ee.DefaultSuite, KID: rng.Uint64(), Seq: 1<<63 + uint64(i)<<20 + 3, Room: tc.room,
			Sender: tc.jsName, SenderKey: jsAnn.Identity, SenderSession: jsAnn.SessionID,
			Recipient: tc.goName, RecipientKey: goID.PublicKey(), RecipientSession: goSK.ID(),
			BaseKey: randomBytes(t, 32),
		}
		fromJS := jsSeal("jessie", goSK.PublicKey(), toGo, false)
		if len(fromJS) != wantLen || fromJS[0] != e2ee.BoxVersion {
			t.Errorf("room %q: JS sealed %d bytes starting %#x; want %d starting %#x", tc.room, len(fromJS), fromJS[:1], wantLen, e2ee.BoxVersion)
		}
		got, err := e2ee.OpenKeyBox(goSK, jsAnn.Identity, fromJS)
		if err != nil || toHexBody(got) != toHexBody(toGo) {
			t.Errorf("room %q: sealed in JS, opened in Go: %v; body %+v, want %+v", tc.room, err, got, toGo)
		}
		if _, err := e2ee.OpenKeyBox(goSK, goID.PublicKey(), fromJS); !errors.Is(err, e2ee.ErrSealOpen) {
			t.Errorf("room %q: a JS box opened in Go under another sender key: %v, want ErrSealOpen", tc.room, err)
		}
		if _, err := e2ee.OpenKeyBox(otherSK, jsAnn.Identity, fromJS); !errors.Is(err, e2ee.ErrSealOpen) {
			t.Errorf("room %q: a JS box opened in Go with another session key: %v, want ErrSealOpen", tc.room, err)
		}
		for _, at := range []int{0, 5, len(fromJS) / 2, len(fromJS) - 1} {
			c := bytes.Clone(fromJS)
			c[at] ^= 0x20
			if _, err := e2ee.OpenKeyBox(goSK, jsAnn.Identity, c); !errors.Is(err, e2ee.ErrSealOpen) {
				t.Errorf("room %q: a JS box with byte %d changed, opened in Go: %v, want ErrSealOpen", tc.room, at, err)
			}
		}
		// mallory signs a body that names jessie's key: neither side
		// takes it as jessie's.
		forged := jsSeal("mallory", goSK.PublicKey(), toGo, true)
		if _, err := e2ee.OpenKeyBox(goSK, jsAnn.Identity, forged); !errors.Is(err, e2ee.ErrSealOpen) {
			t.Errorf("room %q: a box mallory signed as jessie, opened in Go: %v, want ErrSealOpen", tc.room, err)
		}
		forgedToJS := *toJS
		forgedToJS.SenderKey = jsAnn.Identity
		forged = jsSeal("mallory", jsAnn.HPKE, &forgedToJS, true)
		if res := jsOpen(forged, jsAnn.Identity); res.Error != "SealOpenError" {
			t.Errorf("room %q: a box mallory signed as jessie, opened in JS: %+v; want SealOpenError", tc.room, res)
		}
		// Neither seals a body that names another sender key than its own.
		var res jsBoxResult
		jsCall(t, ctx, &res, "sealKeyBox", "mallory", hex.EncodeToString(goSK.PublicKey()), toHexBody(toGo), false)
		if res.Error == "" {
			t.Errorf("room %q: JS sealed, as mallory, a body that names jessie's key", tc.room)
		}
		if _, err := e2ee.SealKeyBox(otherID, jsAnn.HPKE, toJS); err == nil {
			t.Errorf("room %q: Go sealed, as another identity, a body that names gopher's key", tc.room)
		}
	}

	interopKeyBindingTest(t, ctx, jsAnn)
}

// bindingCase is one way a box can be bound to something else than the
// session that receives it.
type bindingCase struct {
	name   string
	change func(b *e2ee.KeyBody)
	msgKID func(b *e2ee.KeyBody) uint64 // the message's KID; the body's by default
	signer string                       // JS: "forge" signs as mallory; Go: "other" signs with another identity
	sealTo string                       // "other": another session key than the recipient's
}

func bindingCases(room string, otherKey []byte) []bindingCase {
	return []bindingCase{
		{name: "another room", change: func(b *e2ee.KeyBody) { b.Room = room + "!" }},
		{name: "another sender name", change: func(b *e2ee.KeyBody) { b.Sender = "mallory" }},
		{name: "another sender session", change: func(b *e2ee.KeyBody) { b.SenderSession[15] ^= 1 }},
		{name: "another recipient name", change: func(b *e2ee.KeyBody) { b.Recipient += "2" }},
		{name: "another recipient key", change: func(b *e2ee.KeyBody) { b.RecipientKey = otherKey }},
		{name: "another recipient session", change: func(b *e2ee.KeyBody) { b.RecipientSession[0] ^= 0x80 }},
		{name: "another KID than the message's", change: func(b *e2ee.KeyBody) {}, msgKID: func(b *e2ee.KeyBody) uint64 { return b.KID + 1 }},
		{name: "another suite", change: func(b *e2ee.KeyBody) { b.Suite = sframe.AES256GCMSHA512_128 }},
		{name: "a base key the suite does not want", change: func(b *e2ee.KeyBody) { b.BaseKey = b.BaseKey[:16] }},
		{name: "signed by another key", change: func(b *e2ee.KeyBody) {}, signer: "other"},
		{name: "sealed to another session key", change: func(b *e2ee.KeyBody) {}, sealTo: "other"},
	}
}

// interopKeyBindingTest: key sessions, JS and Go, refuse and count boxes
// bound to something else, and take the right one once.
func interopKeyBindingTest(t *testing.T, ctx context.Context, jessie e2ee.Announcement) {
	const room = "binding room"
	otherID, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	otherSK, err := e2ee.NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	seq := uint64(time.Now().UnixMicro())
	kid := uint64(0xc0ffee00)

	// Go's gomez sends to JS's jules.
	gomezID, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	gomezSK, err := e2ee.NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	var julesText string
	jsCall(t, ctx, &julesText, "newSession", map[string]any{"room": room, "self": "jules"})
	jules, err := e2ee.ParseAnnouncement(julesText)
	if err != nil {
		t.Fatal(err)
	}
	jsCall(t, ctx, nil, "setMembers", "jules", []map[string]string{{"identity": "gomez", "publicKey": e2ee.Announce(gomezID, gomezSK)}})
	toJules := func() *e2ee.KeyBody {
		seq++
		kid++
		return &e2ee.KeyBody{
			Suite: e2ee.DefaultSuite, KID: kid, Seq: seq, Room: room,
			Sender: "gomez", SenderKey: gomezID.PublicKey(), SenderSession: gomezSK.ID(),
			Recipient: "jules", RecipientKey: jules.Identity, RecipientSession: jules.SessionID,
			BaseKey: randomBytes(t, 32),
		}
	}
	goMessage := func(b *e2ee.KeyBody, c bindingCase) string {
		signer, to := gomezID, jules.HPKE
		if c.signer == "other" {
			signer, b.SenderKey = otherID, otherID.PublicKey()
		}
		if c.sealTo == "other" {
			to = otherSK.PublicKey()
		}
		box, err := e2ee.SealKeyBox(signer, to, b)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		mk := b.KID
		if c.msgKID != nil {
			mk = c.msgKID(b)
		}
		return keyMessageJSON(t, mk, "jules", box)
	}
	jsHandle := func(msg string) string {
		var res string
		jsCall(t, ctx, &res, "handle", "jules", "gomez", msg)
		return res
	}
	cases := bindingCases(room, otherID.PublicKey())
	for _, c := range cases {
		b := toJules()
		c.change(b)
		if res := jsHandle(goMessage(b, c)); res != "KeyMessageError" {
			t.Errorf("JS jules, a Go box %s: %s, want KeyMessageError", c.name, res)
		}
	}
	var st jsSessionState
	jsCall(t, ctx, &st, "state", "jules")
	if st.Stats.BadKeyMessages != len(cases) || st.Stats.ReplayedKeyMessages != 0 || st.Stats.KeysReceived != 0 {
		t.Errorf("JS jules after %d bad boxes: %+v", len(cases), st.Stats)
	}
	goodMsg := goMessage(toJules(), bindingCase{name: "right"})
	if res := jsHandle(goodMsg); res != "ok" {
		t.Errorf("JS jules, the right Go box: %s", res)
	}
	if res := jsHandle(goodMsg); res != "KeyMessageError" {
		t.Errorf("JS jules, the right Go box again: %s, want KeyMessageError", res)
	}
	jsCall(t, ctx, &st, "state", "jules")
	if st.Stats.BadKeyMessages != len(cases)+1 || st.Stats.ReplayedKeyMessages != 1 || st.Stats.KeysReceived != 1 {
		t.Errorf("JS jules after the right box twice: %+v; want it taken once, then refused as a replay", st.Stats)
	}
	jsCall(t, ctx, nil, "close", "jules")

	// JS's jessie sends to Go's gaia.
	gaiaID, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	gaiaSK, err := e2ee.NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	gaia, err := e2ee.NewSession(e2ee.Options{Room: room, Self: "gaia", Identity: gaiaID, SessionKey: gaiaSK, Logger: testLogger(), Send: func([]string, json.RawMessage) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer gaia.Close()
	var jessieText string
	jsCall(t, ctx, &jessieText, "announce", "jessie")
	gaia.SetMembers([]e2ee.Peer{{Identity: "jessie", PublicKey: jessieText}})
	toGaia := func() *e2ee.KeyBody {
		seq++
		kid++
		return &e2ee.KeyBody{
			Suite: e2ee.DefaultSuite, KID: kid, Seq: seq, Room: room,
			Sender: "jessie", SenderKey: jessie.Identity, SenderSession: jessie.SessionID,
			Recipient: "gaia", RecipientKey: gaiaID.PublicKey(), RecipientSession: gaiaSK.ID(),
			BaseKey: randomBytes(t, 32),
		}
	}
	jsMessage := func(b *e2ee.KeyBody, c bindingCase) string {
		signer, to, forge := "jessie", gaiaSK.PublicKey(), false
		if c.signer == "other" {
			signer, forge = "mallory", true
		}
		if c.sealTo == "other" {
			to = otherSK.PublicKey()
		}
		mk := b.KID
		if c.msgKID != nil {
			mk = c.msgKID(b)
		}
		var msg string
		jsCall(t, ctx, &msg, "keyMessage", signer, mk, "gaia", hex.EncodeToString(to), toHexBody(b), forge)
		return msg
	}
	for _, c := range cases {
		b := toGaia()
		c.change(b)
		err := gaia.HandleMessage("jessie", json.RawMessage(jsMessage(b, c)))
		if !errors.Is(err, e2ee.ErrKeyMessage) || errors.Is(err, e2ee.ErrReplayedKey) {
			t.Errorf("Go gaia, a JS box %s: %v, want ErrKeyMessage", c.name, err)
		}
	}
	if st := gaia.Stats(); st.BadKeyMessages != uint64(len(cases)) || st.ReplayedKeyMessages != 0 || st.KeysReceived != 0 {
		t.Errorf("Go gaia after %d bad boxes: %+v", len(cases), st)
	}
	goodMsg = jsMessage(toGaia(), bindingCase{name: "right"})
	if err := gaia.HandleMessage("jessie", json.RawMessage(goodMsg)); err != nil {
		t.Errorf("Go gaia, the right JS box: %v", err)
	}
	if err := gaia.HandleMessage("jessie", json.RawMessage(goodMsg)); !errors.Is(err, e2ee.ErrReplayedKey) {
		t.Errorf("Go gaia, the right JS box again: %v, want ErrReplayedKey", err)
	}
	if st := gaia.Stats(); st.BadKeyMessages != uint64(len(cases))+1 || st.ReplayedKeyMessages != 1 || st.KeysReceived != 1 {
		t.Errorf("Go gaia after the right box twice: %+v; want it taken once, then refused as a replay", st)
	}
}

const announcePrefix = "sotto-e2ee-v2:"

// Announcements: Go's parses in JS and JS's in Go to the same keys and
// session id, and every bad one is refused by both for the same reason
// (the same words): prefix, base64, length, signature, and every Ed25519
// encoding of y < 19 and of the non-canonical y >= p, either sign, which
// take in every small-order point, points that are not on the curve and
// points that are (refused by the signature), and low-order X25519 keys.
func interopAnnouncementsTest(t *testing.T, ctx context.Context) {
	goID, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	goSK, err := e2ee.NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	goAnn := e2ee.Announce(goID, goSK)
	js, _ := newJSIdentity(t, ctx, "jade announcing")
	var back []string
	jsCall(t, ctx, &back, "parseAnnouncements", []string{goAnn})
	want := fmt.Sprintf("ok:%x:%x:%x", goID.PublicKey(), goSK.PublicKey(), goSK.ID())
	if back[0] != want {
		t.Fatalf("JS reads Go's announcement as %s, want %s", back[0], want)
	}

	// Hand-made announcements, signed by a key of the test's.
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sid := randomBytes(t, 16)
	encode := func(parts ...[]byte) string {
		return announcePrefix + base64.RawURLEncoding.EncodeToString(bytes.Join(parts, nil))
	}
	signed := func(identity, hpke []byte) string {
		body := bytes.Join([][]byte{identity, hpke, sid}, nil)
		return encode(body, ed25519.Sign(priv, append([]byte("sotto e2ee v2 announce"), body...)))
	}
	unhex := func(h string) []byte {
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := signed(pub, goSK.PublicKey())
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(good, announcePrefix))
	flipped := bytes.Clone(raw)
	flipped[len(flipped)-10] ^= 1
	resessioned := bytes.Clone(raw)
	resessioned[70] ^= 1
	list := []string{
		goAnn, js.Announcement, good,
		encode(flipped), encode(resessioned),
		strings.Replace(goAnn, announcePrefix, "sotto-e2ee-v1:", 1),
		"x25519:" + strings.TrimPrefix(goAnn, announcePrefix),
		strings.TrimPrefix(goAnn, announcePrefix),
		"",
		goAnn + "=",
		goAnn[:len(goAnn)-1] + string(goAnn[len(goAnn)-1]^1),
		goAnn[:40] + "\n" + goAnn[40:],
		goAnn + "AA",
		goAnn[:len(goAnn)-4],
		goAnn[:len(goAnn)-1],
		encode(raw[:80]),
	}
	// Session keys of low order (and a few that are not), validly signed.
	for _, h := range []string{
		strings.Repeat("00", 32),
		"01" + strings.Repeat("00", 31),
		strings.Repeat("00", 31) + "80",
		"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", // order 8
		"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", // order 8
		"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880", // order 8, top bit set
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p-1
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p+1
		"09" + strings.Repeat("00", 31),                                    // the base point
	} {
		list = append(list, signed(pub, unhex(h)))
	}
	// Identity keys: every encoding of y in 0..18, canonical and plus p,
	// either sign of x, the order-8 points, and random ones; signed with
	// R = the neutral element and S = 0, which a small-order key would
	// "verify".
	forgedSig := append([]byte{1}, make([]byte, 63)...)
	var idKeys [][]byte
	for y := range 19 {
		for _, sign := range []byte{0, 0x80} {
			k := make([]byte, 32)
			k[0], k[31] = byte(y), sign
			nc := bytes.Repeat([]byte{0xff}, 32)
			nc[0], nc[31] = 0xed+byte(y), 0x7f|sign
			idKeys = append(idKeys, k, nc)
		}
	}
	for _, h := range []string{
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
	} {
		idKeys = append(idKeys, unhex(h))
	}
	rng := mrand.New(mrand.NewPCG(8032, 5))
	for range 40 {
		k := make([]byte, 32)
		for i := range k {
			k[i] = byte(rng.IntN(256))
		}
		idKeys = append(idKeys, k)
	}
	for _, k := range idKeys {
		list = append(list, encode(k, goSK.PublicKey(), sid, forgedSig))
	}

	var got []string
	jsCall(t, ctx, &got, "parseAnnouncements", list)
	reasons := map[string]int{}
	for i, s := range list {
		a, err := e2ee.ParseAnnouncement(s)
		var w string
		if err == nil {
			w = fmt.Sprintf("ok:%x:%x:%x", a.Identity, a.HPKE, a.SessionID)
		} else {
			w = "error:BadPublicKeyError:" + err.Error()
		}
		g := got[i]
		// The base64 decoders word their errors differently.
		if strings.Contains(w, "illegal base64 data") && strings.Contains(g, "illegal base64 data") {
			w, g = "illegal base64 data", "illegal base64 data"
		}
		if g != w {
			t.Errorf("parseAnnouncement(%q): JS %s, Go %s", s, got[i], w)
		}
		reason, _ := strings.CutPrefix(w, "error:BadPublicKeyError:e2ee: bad public key: ")
		if strings.HasPrefix(reason, "ok:") {
			reason = "ok"
		}
		reasons[reason]++
	}
	t.Logf("%d announcements, Go's verdicts: %v", len(list), reasons)
	for _, r := range []string{"identity key is a small-order point", "identity key is not a curve point", "session key is a low-order point", "announcement signature does not verify"} {
		if reasons[r] == 0 {
			t.Errorf("no announcement was refused with %q: the list does not test it", r)
		}
	}
	if reasons["ok"] != 4 {
		t.Errorf("Go accepts %d announcements, want the 4 good ones (Go's, JS's, the test's and its base-point session key)", reasons["ok"])
	}
}

// (c) The safety number of the same room and members is the same in JS
// and Go: member order does not matter, duplicates count, and names sort
// by their UTF-8 bytes (U+FFFF before U+1F600, unlike JavaScript's order).
// So are the verification codes of two people, in either order.
func interopSafetyNumberTest(t *testing.T, ctx context.Context) {
	key := func() []byte {
		id, err := e2ee.NewIdentity()
		if err != nil {
			t.Fatal(err)
		}
		return id.PublicKey()
	}
	k1, k2, k3 := key(), key(), key()
	type member struct {
		Identity  string `json:"identity"`
		PublicKey string `json:"publicKey"`
	}
	toJS := func(m e2ee.Member) member { return member{m.Identity, hex.EncodeToString(m.PublicKey)} }
	for _, tc := range []struct {
		room    string
		members []e2ee.Member
	}{
		{"room", []e2ee.Member{{Identity: "alice", PublicKey: k1}}},
		{"room", []e2ee.Member{{Identity: "carol", PublicKey: k3}, {Identity: "alice", PublicKey: k1}, {Identity: "bob", PublicKey: k2}}},
		{"room", []e2ee.Member{{Identity: "alice", PublicKey: k2}, {Identity: "alice", PublicKey: k1}}},
		{"", []e2ee.Member{{Identity: "alice", PublicKey: k1}, {Identity: "alice", PublicKey: k1}}},
		{"été", []e2ee.Member{{Identity: "😀", PublicKey: k1}, {Identity: "\uffff", PublicKey: k2}, {Identity: "z", PublicKey: k3}}},
	} {
		var ms []member
		for _, m := range tc.members {
			ms = append(ms, toJS(m))
		}
		var got string
		jsCall(t, ctx, &got, "safetyNumber", tc.room, ms)
		checkSameSafetyNumbers(t, fmt.Sprintf("room %q, %d members", tc.room, len(tc.members)),
			map[string]string{"JS": got, "Go": e2ee.SafetyNumber(tc.room, tc.members)})
	}
	codes := map[string]bool{}
	for _, p := range [][2]e2ee.Member{
		{{Identity: "alice", PublicKey: k1}, {Identity: "bob", PublicKey: k2}},
		{{Identity: "bob", PublicKey: k2}, {Identity: "alice", PublicKey: k1}},
		{{Identity: "alice", PublicKey: k1}, {Identity: "bob", PublicKey: k3}},
		{{Identity: "alice", PublicKey: k1}, {Identity: "alice", PublicKey: k2}},
		{{Identity: "😀", PublicKey: k1}, {Identity: "\uffff", PublicKey: k2}},
		{{Identity: "", PublicKey: k3}, {Identity: "", PublicKey: k3}},
	} {
		var got string
		jsCall(t, ctx, &got, "verificationCode", toJS(p[0]), toJS(p[1]))
		goCode := e2ee.VerificationCode(p[0], p[1])
		checkSameSafetyNumbers(t, fmt.Sprintf("verification code of %q and %q", p[0].Identity, p[1].Identity),
			map[string]string{"JS": got, "Go": goCode, "Go, the other way round": e2ee.VerificationCode(p[1], p[0])})
		codes[goCode] = true
	}
	if len(codes) != 5 {
		t.Errorf("%d different verification codes for 5 different pairs", len(codes))
	}
}

// mixedRoom relays key messages between Go sessions and JS sessions (in
// the page) as signaling's relay would: to the listed identities, or to
// everyone else in the room.
type mixedRoom struct {
	t    *testing.T
	ctx  context.Context
	name string

	mu    sync.Mutex
	gos   map[string]*e2ee.Session
	keys  map[string]goKeys // each Go session's identity and session key
	logs  map[string][]e2ee.KeyEvent
	js    map[string]string // JS session name -> announcement
	queue []mixedRelay
	// sent records every message pump delivered, as it went.
	sent []mixedRelay
	// hold, when set, says which deliveries wait in held until release.
	hold func(from, to string) bool
	held []mixedRelay
}

func newMixedRoom(t *testing.T, ctx context.Context, name string) *mixedRoom {
	return &mixedRoom{t: t, ctx: ctx, name: name, gos: map[string]*e2ee.Session{}, keys: map[string]goKeys{}, logs: map[string][]e2ee.KeyEvent{}, js: map[string]string{}}
}

type goKeys struct {
	id *e2ee.Identity
	sk *e2ee.SessionKey
}

type mixedRelay struct {
	from string
	to   []string
	msg  json.RawMessage
}

// joinGo adds a Go session; one that publishes distributes its key (as
// the Go SDK's PublishSample makes it), one that listens does not.
// ackTimeout 0 means switching on acks only.
func (r *mixedRoom) joinGo(name string, publish bool, ackTimeout time.Duration) *e2ee.Session {
	r.t.Helper()
	id, err := e2ee.NewIdentity()
	if err != nil {
		r.t.Fatal(err)
	}
	sk, err := e2ee.NewSessionKey()
	if err != nil {
		r.t.Fatal(err)
	}
	s, err := e2ee.NewSession(e2ee.Options{
		Room: r.name, Self: name, Identity: id, SessionKey: sk, Logger: testLogger(),
		AckTimeout: cmp.Or(ackTimeout, 1<<40),
		Send: func(to []string, msg json.RawMessage) {
			r.mu.Lock()
			r.queue = append(r.queue, mixedRelay{from: name, to: to, msg: msg})
			r.mu.Unlock()
		},
		KeyLog: func(e e2ee.KeyEvent) {
			r.mu.Lock()
			r.logs[name] = append(r.logs[name], e)
			r.mu.Unlock()
		},
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(s.Close)
	if publish {
		s.StartPublishing()
	}
	r.mu.Lock()
	r.gos[name] = s
	r.keys[name] = goKeys{id, sk}
	r.mu.Unlock()
	return s
}

// joinJS adds a JS session, publishing or only listening.
func (r *mixedRoom) joinJS(name string, publish bool, ackTimeoutMs, graceMs int) {
	r.t.Helper()
	var pub string
	jsCall(r.t, r.ctx, &pub, "newSession", map[string]any{"room": r.name, "self": name, "ackTimeoutMs": ackTimeoutMs, "graceMs": graceMs, "publish": publish})
	r.js[name] = pub
}

func (r *mixedRoom) leave(name string) {
	r.mu.Lock()
	delete(r.gos, name)
	r.mu.Unlock()
	if _, ok := r.js[name]; ok {
		jsCall(r.t, r.ctx, nil, "close", name)
		delete(r.js, name)
	}
}

// announce tells every session who is in the room, as signaling does.
func (r *mixedRoom) announce() {
	r.t.Helper()
	type peer struct {
		Identity  string `json:"identity"`
		PublicKey string `json:"publicKey"`
	}
	var peers []e2ee.Peer
	r.mu.Lock()
	for name, s := range r.gos {
		peers = append(peers, e2ee.Peer{Identity: name, PublicKey: s.PublicKey()})
	}
	gos := make([]*e2ee.Session, 0, len(r.gos))
	for _, s := range r.gos {
		gos = append(gos, s)
	}
	r.mu.Unlock()
	for name, pub := range r.js {
		peers = append(peers, e2ee.Peer{Identity: name, PublicKey: pub})
	}
	for _, s := range gos {
		s.SetMembers(peers)
	}
	for name := range r.js {
		var others []peer
		for _, p := range peers {
			if p.Identity != name {
				others = append(others, peer{p.Identity, p.PublicKey})
			}
		}
		jsCall(r.t, r.ctx, nil, "setMembers", name, others)
	}
}

// pump delivers messages, Go's and JS's, until none is left; every one
// must be accepted.
func (r *mixedRoom) pump() {
	r.t.Helper()
	for {
		for name := range r.js {
			var out []struct {
				To  []string
				Msg string
			}
			jsCall(r.t, r.ctx, &out, "takeOutbox", name)
			r.mu.Lock()
			for _, m := range out {
				r.queue = append(r.queue, mixedRelay{from: name, to: m.To, msg: json.RawMessage(m.Msg)})
			}
			r.mu.Unlock()
		}
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.mu.Unlock()
			return
		}
		m := r.queue[0]
		r.queue = r.queue[1:]
		r.sent = append(r.sent, m)
		to := m.to
		if to == nil {
			for name := range r.gos {
				to = append(to, name)
			}
			for name := range r.js {
				to = append(to, name)
			}
		}
		targets := map[string]*e2ee.Session{}
		var jsTargets []string
		for _, name := range to {
			if name == m.from {
				continue
			}
			if r.hold != nil && r.hold(m.from, name) {
				r.held = append(r.held, mixedRelay{from: m.from, to: []string{name}, msg: m.msg})
				continue
			}
			if s := r.gos[name]; s != nil {
				targets[name] = s
			} else if _, ok := r.js[name]; ok {
				jsTargets = append(jsTargets, name)
			}
		}
		r.mu.Unlock()
		for name, s := range targets {
			if err := s.HandleMessage(m.from, m.msg); err != nil {
				r.t.Fatalf("Go %s refused a message of %s: %v\n%s", name, m.from, err, m.msg)
			}
		}
		for _, name := range jsTargets {
			var res string
			jsCall(r.t, r.ctx, &res, "handle", name, m.from, string(m.msg))
			if res != "ok" {
				r.t.Fatalf("JS %s refused a message of %s: %s\n%s", name, m.from, res, m.msg)
			}
		}
	}
}

// release delivers the held messages (with pump) and holds no more.
func (r *mixedRoom) release() {
	r.mu.Lock()
	r.hold = nil
	r.queue = append(r.queue, r.held...)
	r.held = nil
	r.mu.Unlock()
	r.pump()
}

func (r *mixedRoom) goKeys(name string) []e2ee.KeyEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.logs[name])
}

type jsSessionState struct {
	KID          uint64
	SendKID      string
	SafetyNumber string
	Stats        struct {
		Epoch, KeysSent, KeysReceived, BadKeyMessages, ReplayedKeyMessages, AcksReceived, SwitchesOnAck, SwitchesOnTimeout int
	}
}

func (r *mixedRoom) jsState(name string) jsSessionState {
	r.t.Helper()
	var st jsSessionState
	jsCall(r.t, r.ctx, &st, "state", name)
	return st
}

func (r *mixedRoom) jsEncrypt(name string, c e2ee.Codec, frame []byte) []byte {
	r.t.Helper()
	var res struct{ Wire, Error, Message string }
	jsCall(r.t, r.ctx, &res, "encrypt", name, codecNames[c], hex.EncodeToString(frame))
	if res.Error != "" {
		r.t.Fatalf("JS %s cannot encrypt: %s %s", name, res.Error, res.Message)
	}
	w, _ := hex.DecodeString(res.Wire)
	return w
}

type jsDecrypted struct {
	Data, Error, Message string
	KID                  uint64
}

func (r *mixedRoom) jsDecrypt(name, from string, c e2ee.Codec, wire []byte) jsDecrypted {
	r.t.Helper()
	var res jsDecrypted
	jsCall(r.t, r.ctx, &res, "decrypt", name, from, codecNames[c], hex.EncodeToString(wire))
	return res
}

// checkFramesBothWays: every frame the Go session encrypts decrypts in
// the JS session and the other way round.
func (r *mixedRoom) checkFramesBothWays(goName, jsName string) {
	r.t.Helper()
	r.checkGoToJS(goName, jsName)
	r.checkJSToGo(jsName, goName)
}

// checkGoToJS: every frame the Go session encrypts decrypts in the JS one.
func (r *mixedRoom) checkGoToJS(goName, jsName string) {
	r.t.Helper()
	g := r.gos[goName]
	for _, f := range interopFrames() {
		w, err := g.EncryptFrame(f.codec, f.data)
		if err != nil {
			r.t.Fatal(err)
		}
		want := hex.EncodeToString(normalizedIf(f.codec, f.data))
		if res := r.jsDecrypt(jsName, goName, f.codec, w); res.Error != "" || res.Data != want || res.KID != g.KID() {
			r.t.Errorf("%s: Go %s -> JS %s: %s %s, KID %#x (want %#x)", f.name, goName, jsName, res.Error, res.Message, res.KID, g.KID())
		}
	}
}

// checkJSToGo: every frame the JS session encrypts decrypts in the Go one.
func (r *mixedRoom) checkJSToGo(jsName, goName string) {
	r.t.Helper()
	g := r.gos[goName]
	kid := r.jsState(jsName).KID
	for _, f := range interopFrames() {
		w := r.jsEncrypt(jsName, f.codec, f.data)
		got, h, err := g.DecryptFrame(jsName, f.codec, w)
		if err != nil || !bytes.Equal(got, normalizedIf(f.codec, f.data)) || h.KID != kid {
			r.t.Errorf("%s: JS %s -> Go %s: %v, KID %#x (want %#x)", f.name, jsName, goName, err, h.KID, kid)
		}
	}
}

// (d) The key management of a JS session and of Go sessions interoperate:
// keys and acks flow both ways, joins ratchet, leaves refresh, and both
// sides count and switch as the rules say.
func interopKeyManagementTest(t *testing.T, ctx context.Context) {
	r := newMixedRoom(t, ctx, "mixed room")
	const grace = 50 // ms: the JS session retires a sender's older keys quickly
	gopher := r.joinGo("gopher", true, 0)
	r.joinJS("jessie", true, 3_600_000, grace) // switch on acks only: the test is about them
	r.announce()
	r.pump()

	js := r.jsState("jessie")
	if js.Stats.KeysSent != 1 || js.Stats.KeysReceived != 1 || js.Stats.BadKeyMessages != 0 || js.Stats.Epoch != 0 {
		t.Fatalf("JS after the first exchange: %+v", js.Stats)
	}
	if js.SendKID != strconv.FormatUint(js.KID, 10) || js.KID>>8 == 0 || js.KID>>32 != 0 {
		t.Fatalf("JS KID %#x, frames under %s: want a 24-bit tag and epoch 0", js.KID, js.SendKID)
	}
	if st := gopher.Stats(); st.KeysSent != 1 || st.KeysReceived != 1 || st.BadKeyMessages != 0 {
		t.Fatalf("Go after the first exchange: %+v", st)
	}
	jsFirst := r.goKeys("gopher")
	r.checkFramesBothWays("gopher", "jessie")
	checkSameSafetyNumbers(t, "JS and Go", map[string]string{"JS": js.SafetyNumber, "Go": gopher.SafetyNumber()})

	// A frame under gopher's first key, held back: it must stop
	// decrypting in JS once gopher's newer key is in use and the grace
	// period is over.
	oldGopherKID := gopher.KID()
	straggler, err := gopher.EncryptFrame(e2ee.CodecOpus, []byte{0xfc, 1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	jsBefore := r.jsEncrypt("jessie", e2ee.CodecOpus, []byte{0xfc, 9, 9, 9})

	// carol (Go) joins: JS ratchets its key, sends it to both, and
	// switches once both acknowledged; Go does the same with JS's acks.
	carol := r.joinGo("carol", true, 0)
	r.announce()
	r.pump()
	js = r.jsState("jessie")
	if js.Stats.Epoch != 1 || js.Stats.SwitchesOnAck != 1 || js.Stats.AcksReceived != 2 || js.Stats.SwitchesOnTimeout != 0 {
		t.Fatalf("JS after carol joined: %+v", js.Stats)
	}
	if js.KID>>8 != jsFirst[len(jsFirst)-1].KID>>8 || js.KID&0xff != 1 {
		t.Fatalf("JS KID %#x after carol joined, was %#x: want the same tag, epoch 1", js.KID, jsFirst[len(jsFirst)-1].KID)
	}
	var jsKeys []e2ee.KeyEvent // JS's keys as gopher received them
	for _, e := range r.goKeys("gopher") {
		if e.Sender == "jessie" {
			jsKeys = append(jsKeys, e)
		}
	}
	if len(jsKeys) != 2 {
		t.Fatalf("gopher received %d keys from JS, want 2", len(jsKeys))
	}
	if next, _ := sframe.Ratchet(e2ee.DefaultSuite, jsKeys[0].BaseKey); !bytes.Equal(next, jsKeys[1].BaseKey) {
		t.Fatal("JS's key after a join is not the RFC 9605 ratchet of its previous key")
	}
	if st := gopher.Stats(); st.SwitchesOnAck != 1 || st.Epoch != 1 {
		t.Fatalf("Go after carol joined (JS acks its key): %+v", st)
	}
	if _, _, err := carol.DecryptFrame("jessie", e2ee.CodecOpus, jsBefore); !errors.Is(err, e2ee.ErrNoKey) {
		t.Fatalf("carol decrypting a JS frame from before she joined: %v, want ErrNoKey", err)
	}
	r.checkFramesBothWays("gopher", "jessie")
	r.checkFramesBothWays("carol", "jessie")
	checkSameSafetyNumbers(t, "three", map[string]string{"JS": js.SafetyNumber, "gopher": gopher.SafetyNumber(), "carol": carol.SafetyNumber()})

	// gopher's newer key is in use in JS now: its first key goes after
	// the grace period.
	if gopher.KID() == oldGopherKID {
		t.Fatal("gopher did not switch keys")
	}
	var gone bool
	jsCall(t, ctx, &gone, "waitKeyGone", "jessie", "gopher", oldGopherKID, int(browserTimeout.Milliseconds()))
	if !gone {
		t.Fatal("JS kept gopher's previous key long after the grace period")
	}
	if res := r.jsDecrypt("jessie", "gopher", e2ee.CodecOpus, straggler); res.Error != "no-key" {
		t.Fatalf("a frame under gopher's retired key: %+v, want no-key", res)
	}

	// carol leaves: JS draws a fresh key for gopher alone.
	r.leave("carol")
	r.announce()
	var sent []struct {
		To  []string
		Msg string
	}
	jsCall(t, ctx, &sent, "takeOutbox", "jessie")
	if len(sent) != 1 {
		t.Fatalf("JS sent %d messages after carol left, want 1 key", len(sent))
	}
	var km struct {
		Version int               `json:"sotto_e2ee"`
		Type    string            `json:"type"`
		KID     uint64            `json:"kid"`
		Boxes   map[string]string `json:"boxes"`
	}
	if err := json.Unmarshal([]byte(sent[0].Msg), &km); err != nil {
		t.Fatal(err)
	}
	if km.Version != 2 || km.Type != "key" || len(km.Boxes) != 1 || km.Boxes["gopher"] == "" || sent[0].To != nil {
		t.Fatalf("JS's key after carol left: %s to %v; want a key for gopher alone, sent to everyone", sent[0].Msg, sent[0].To)
	}
	if err := gopher.HandleMessage("jessie", json.RawMessage(sent[0].Msg)); err != nil {
		t.Fatal(err)
	}
	r.pump()
	js = r.jsState("jessie")
	if js.Stats.Epoch != 2 || js.Stats.SwitchesOnAck != 2 {
		t.Fatalf("JS after carol left: %+v", js.Stats)
	}
	fresh := r.goKeys("gopher")
	freshKey := fresh[len(fresh)-1]
	if freshKey.Sender != "jessie" || freshKey.KID != js.KID {
		t.Fatalf("gopher's last key is %s's %#x, want JS's %#x", freshKey.Sender, freshKey.KID, js.KID)
	}
	for _, k := range jsKeys {
		b := k.BaseKey
		for range 4 {
			if bytes.Equal(b, freshKey.BaseKey) {
				t.Fatal("JS's key after carol left derives from one carol held")
			}
			b, _ = sframe.Ratchet(e2ee.DefaultSuite, b)
		}
	}
	w := r.jsEncrypt("jessie", e2ee.CodecOpus, []byte{0xfc, 7, 7, 7})
	if _, _, err := carol.DecryptFrame("jessie", e2ee.CodecOpus, w); err == nil {
		t.Fatal("carol decrypted a JS frame sent after she left")
	}
	r.checkFramesBothWays("gopher", "jessie")

	// Refused messages are counted, and change nothing.
	before := r.jsState("jessie")
	for _, msg := range []string{
		`{"sotto_e2ee":1,"type":"key","kid":1}`, // version 1, gone
		`{"sotto_e2ee":3,"type":"key","kid":1}`,
		`{"sotto_e2ee":2,"type":"rekey_all","kid":1}`,
		`{"sotto_e2ee":2,"type":"key","kid":1,"boxes":{"jessie":"***"}}`,
		`{"sotto_e2ee":2,"type":"key","kid":1,"boxes":{"jessie":"` + strings.Repeat("A", 100) + `"}}`,
		`{"sotto_e2ee":2,"type":"key","kid":1,"boxes":{"jessie":"` + strings.Repeat("A", 300) + `"}}`,
	} {
		var res string
		jsCall(t, ctx, &res, "handle", "jessie", "gopher", msg)
		if res != "KeyMessageError" {
			t.Errorf("JS handling %s: %s, want KeyMessageError", msg, res)
		}
	}
	var res string
	jsCall(t, ctx, &res, "handle", "jessie", "gopher", `{"sotto_e2ee":2,"type":"key","kid":1,"boxes":{"someone":"AAAA"}}`)
	if res != "ok" {
		t.Errorf("JS handling a key for others only: %s, want it ignored", res)
	}
	after := r.jsState("jessie")
	if after.Stats.BadKeyMessages != before.Stats.BadKeyMessages+6 || after.Stats.ReplayedKeyMessages != before.Stats.ReplayedKeyMessages ||
		after.KID != before.KID || after.Stats.KeysReceived != before.Stats.KeysReceived {
		t.Errorf("JS after refused messages: %+v (before %+v)", after.Stats, before.Stats)
	}
	r.checkFramesBothWays("gopher", "jessie")
}

// A JS sender whose new key one member never acknowledges switches after
// the ack timeout; after a reconnect (members reset, then announced again)
// it sends a fresh key to everyone, which Go takes.
func interopAckTimeoutTest(t *testing.T, ctx context.Context) {
	r := newMixedRoom(t, ctx, "silent room")
	gus := r.joinGo("gus", true, 0)
	r.joinJS("jade", true, 200, 3000)
	r.announce()
	r.pump()
	r.hold = func(from, to string) bool { return from == "gwen" && to == "jade" }
	r.joinGo("gwen", true, 0)
	r.announce()
	r.pump()
	waitFor(t, ctx, "JS switches keys although gwen stays silent",
		`e2eeTest.state("jade").then((s) => s.stats.switchesOnTimeout === 1)`, `e2eeTest.state("jade").then((s) => s.stats)`)
	st := r.jsState("jade")
	if st.Stats.Epoch != 1 || st.Stats.SwitchesOnAck != 0 || st.Stats.AcksReceived != 1 {
		t.Fatalf("JS after the ack timeout: %+v", st.Stats)
	}
	r.checkFramesBothWays("gus", "jade")
	r.checkJSToGo("jade", "gwen") // gwen has jade's key; jade lost gwen's

	// jade reconnects: the others saw her leave and come back.
	r.mu.Lock()
	r.hold, r.held = nil, nil
	r.mu.Unlock()
	jade := r.js["jade"]
	delete(r.js, "jade")
	r.announce() // without jade
	r.js["jade"] = jade
	jsCall(t, ctx, nil, "setMembers", "jade", nil) // what start() does after a reconnect
	r.announce()
	r.pump()
	st = r.jsState("jade")
	if st.Stats.Epoch != 2 || st.KID&0xff != 2 {
		t.Fatalf("JS after its reconnect: KID %#x, %+v; want epoch 2", st.KID, st.Stats)
	}
	got := r.goKeys("gus")
	if last := got[len(got)-1]; last.Sender != "jade" || last.KID != st.KID {
		t.Fatalf("gus's last key is %s's %#x, want jade's %#x", last.Sender, last.KID, st.KID)
	}
	r.checkFramesBothWays("gus", "jade")
	r.checkFramesBothWays("gwen", "jade")
	checkSameSafetyNumbers(t, "JS and Go", map[string]string{"JS": st.SafetyNumber, "Go": gus.SafetyNumber()})
}

// Participants that only listen send no key, in JS as in Go, and still
// decrypt; the first publication sends the key once.
func interopListenersTest(t *testing.T, ctx context.Context) {
	r := newMixedRoom(t, ctx, "quiet room")
	goTalker := r.joinGo("gia", true, 0)
	goListener := r.joinGo("gil", false, 0)
	r.joinJS("jan", false, 3_600_000, 3000)
	r.announce()
	r.pump()
	if st := r.jsState("jan"); st.Stats.KeysSent != 0 || st.Stats.KeysReceived != 1 {
		t.Fatalf("the JS listener: %+v; want no key sent, gia's received", st.Stats)
	}
	if st := goListener.Stats(); st.KeysSent != 0 {
		t.Fatalf("the Go listener sent %d keys", st.KeysSent)
	}
	r.checkGoToJS("gia", "jan")

	// jan starts publishing: one key, to both, once.
	jsCall(t, ctx, nil, "startPublishing", "jan")
	jsCall(t, ctx, nil, "startPublishing", "jan")
	r.pump()
	if st := r.jsState("jan"); st.Stats.KeysSent != 1 || st.Stats.AcksReceived != 0 || st.Stats.Epoch != 0 {
		t.Fatalf("the JS publisher: %+v; want one key sent as it was", st.Stats)
	}
	r.checkJSToGo("jan", "gia")
	r.checkJSToGo("jan", "gil")
	if st := goTalker.Stats(); st.KeysReceived != 1 {
		t.Fatalf("gia received %d keys, want jan's", st.KeysReceived)
	}
}

// Receivers do not guess keys (docs/E2EE.md), JS as Go: a sender that
// ratcheted for a joiner and switched (on the ack timeout) while one
// receiver's copy of the key message is held back. A frame under the
// sender's next KID, which the ratchet of the key the receiver holds would
// open, counts as without a key, on a JS receiver of a Go sender and on a
// Go receiver of a JS sender, and nothing is installed for it; once the
// key message arrives, the frames decrypt.
func interopReceiverNoGuessTest(t *testing.T, ctx context.Context) {
	r := newMixedRoom(t, ctx, "no guess room")
	gail := r.joinGo("gail", true, 50*time.Millisecond)
	r.joinJS("jade", true, 50, 3000)
	gil := r.joinGo("gil", false, 0)
	r.joinJS("jo", false, 3_600_000, 3000)
	r.announce()
	r.pump()
	r.checkGoToJS("gail", "jo")
	r.checkJSToGo("jade", "gil")
	goKID0, jsKID0 := gail.KID(), r.jsState("jade").KID

	// gina joins; gail's messages to jo and jade's to gil are held.
	r.hold = func(from, to string) bool {
		return from == "gail" && to == "jo" || from == "jade" && to == "gil"
	}
	r.joinGo("gina", false, 0)
	r.announce()
	r.pump()
	waitGoKIDChange(t, gail, goKID0, "gail switches to her ratcheted key without jo's ack")
	jsKID1 := waitJSKIDChange(t, r, "jade", jsKID0, "jade switches to her ratcheted key without gil's ack")
	goKID1 := gail.KID()
	if goKID1 != goKID0+1 || jsKID1 != jsKID0+1 {
		t.Fatalf("KIDs after gina joined: gail %#x (was %#x), jade %#x (was %#x); want each one epoch on (the ratchet)", goKID1, goKID0, jsKID1, jsKID0)
	}
	r.pump() // the acks of those who got the keys

	// Frames under the ratcheted keys, key messages held: no key.
	frame := []byte{0xfc, 1, 2, 3}
	w, err := gail.EncryptFrame(e2ee.CodecOpus, frame)
	if err != nil {
		t.Fatal(err)
	}
	if res := r.jsDecrypt("jo", "gail", e2ee.CodecOpus, w); res.Error != "no-key" {
		t.Errorf("JS jo, a frame under gail's ratcheted key %#x, its message held: %+v, want no-key", goKID1, res)
	}
	var has bool
	jsCall(t, ctx, &has, "hasKey", "jo", "gail", goKID1)
	if has {
		t.Error("JS jo holds a key for gail's ratcheted KID it never received")
	}
	before := gil.Stats()
	if _, _, err := gil.DecryptFrame("jade", e2ee.CodecOpus, r.jsEncrypt("jade", e2ee.CodecOpus, frame)); !errors.Is(err, e2ee.ErrNoKey) {
		t.Errorf("Go gil, a frame under jade's ratcheted key %#x, its message held: %v, want ErrNoKey", jsKID1, err)
	}
	if st := gil.Stats(); st.KeysReceived != before.KeysReceived {
		t.Errorf("Go gil took a key from a frame: %+v, before %+v", st, before)
	}
	if st := r.jsState("jo"); st.Stats.KeysReceived != 3 || st.Stats.BadKeyMessages != 0 {
		t.Errorf("JS jo: %+v; want gail's and jade's first keys and jade's ratchet only", st.Stats)
	}

	// The messages arrive: the frames decrypt.
	r.release()
	r.checkGoToJS("gail", "jo")
	r.checkJSToGo("jade", "gil")
	if st := r.jsState("jo"); st.Stats.KeysReceived != 4 || st.Stats.BadKeyMessages != 0 {
		t.Errorf("JS jo after the held messages: %+v", st.Stats)
	}
	if st := gil.Stats(); st.BadKeyMessages != 0 {
		t.Errorf("Go gil after the held messages: %+v", st)
	}
}

// waitJSKIDChange waits until JS session name's KID is no longer from
// and returns the new one.
func waitJSKIDChange(t *testing.T, r *mixedRoom, name string, from uint64, what string) uint64 {
	t.Helper()
	deadline := time.Now().Add(browserTimeout)
	for {
		if kid := r.jsState(name).KID; kid != from {
			return kid
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, browserTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitGoKIDChange(t *testing.T, s *e2ee.Session, from uint64, what string) {
	t.Helper()
	deadline := time.Now().Add(browserTimeout)
	for s.KID() == from {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, browserTimeout)
		}
		time.Sleep(5 * time.Millisecond) // the Go session's ack timer runs on its own; poll it
	}
}

// A key message that overtakes its sender's announcement is kept and
// used once the sender is a member, by JS and by Go. Messages are handed
// over by hand here, in the order under test.
func interopEarlyKeysTest(t *testing.T, ctx context.Context) {
	r := newMixedRoom(t, ctx, "early room")
	takeGo := func() []mixedRelay {
		r.mu.Lock()
		defer r.mu.Unlock()
		q := r.queue
		r.queue = nil
		return q
	}
	type outbox []struct {
		To  []string
		Msg string
	}

	// gale (Go) knows jay (JS); jay hears gale's key before gale's
	// announcement.
	gale := r.joinGo("gale", true, 0)
	r.joinJS("jay", false, 3_600_000, 3000)
	jsCall(t, ctx, nil, "setMembers", "jay", []map[string]string{})
	gale.SetMembers([]e2ee.Peer{{Identity: "jay", PublicKey: r.js["jay"]}})
	q := takeGo()
	if len(q) != 1 {
		t.Fatalf("gale sent %d messages, want her key", len(q))
	}
	var res string
	jsCall(t, ctx, &res, "handle", "jay", "gale", string(q[0].msg))
	if st := r.jsState("jay"); res != "ok" || st.Stats.KeysReceived != 0 || st.Stats.BadKeyMessages != 0 {
		t.Fatalf("jay, gale's key before gale's announcement: %s, %+v; want it kept", res, st.Stats)
	}
	jsCall(t, ctx, nil, "setMembers", "jay", []map[string]string{{"identity": "gale", "publicKey": gale.PublicKey()}})
	if st := r.jsState("jay"); st.Stats.KeysReceived != 1 || st.Stats.BadKeyMessages != 0 {
		t.Fatalf("jay after gale's announcement: %+v; want her key opened", st.Stats)
	}
	var out outbox
	jsCall(t, ctx, &out, "takeOutbox", "jay")
	if len(out) != 1 || !slices.Equal(out[0].To, []string{"gale"}) || !strings.Contains(out[0].Msg, `"key_ack"`) {
		t.Fatalf("jay sent %+v, want an ack to gale", out)
	}
	if err := gale.HandleMessage("jay", json.RawMessage(out[0].Msg)); err != nil {
		t.Fatal(err)
	}
	r.checkGoToJS("gale", "jay")

	// The other way: jill (JS) knows gus (Go), who hears her key before
	// her announcement.
	gus := r.joinGo("gus", false, 0)
	r.joinJS("jill", true, 3_600_000, 3000)
	jsCall(t, ctx, nil, "setMembers", "jill", []map[string]string{{"identity": "gus", "publicKey": gus.PublicKey()}})
	jsCall(t, ctx, &out, "takeOutbox", "jill")
	if len(out) != 1 || !strings.Contains(out[0].Msg, `"gus"`) {
		t.Fatalf("jill sent %+v, want her key for gus", out)
	}
	if err := gus.HandleMessage("jill", json.RawMessage(out[0].Msg)); err != nil {
		t.Fatalf("gus, jill's key before her announcement: %v", err)
	}
	if st := gus.Stats(); st.KeysReceived != 0 || st.BadKeyMessages != 0 {
		t.Fatalf("gus before jill's announcement: %+v", st)
	}
	gus.SetMembers([]e2ee.Peer{{Identity: "jill", PublicKey: r.js["jill"]}})
	if st := gus.Stats(); st.KeysReceived != 1 {
		t.Fatalf("gus after jill's announcement: %+v; want her key opened", st)
	}
	takeGo() // gus's ack
	r.checkJSToGo("jill", "gus")
}

// keyMessages returns the key messages (type "key") from sent that the
// pump delivered, oldest first.
func (r *mixedRoom) keyMessages(from string) []json.RawMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []json.RawMessage
	for _, m := range r.sent {
		var km struct {
			Type string `json:"type"`
		}
		if m.from == from && json.Unmarshal(m.msg, &km) == nil && km.Type == "key" {
			out = append(out, m.msg)
		}
	}
	return out
}

// goLeavesAndRejoins: the others see Go session name leave and come back
// with the same announcement, as after a reconnect; it starts again with
// a fresh key.
func (r *mixedRoom) goLeavesAndRejoins(name string) {
	r.t.Helper()
	r.mu.Lock()
	s := r.gos[name]
	delete(r.gos, name)
	r.mu.Unlock()
	r.announce()
	r.pump()
	s.SetMembers(nil)
	r.mu.Lock()
	r.gos[name] = s
	r.mu.Unlock()
	r.announce()
	r.pump()
}

// jsLeavesAndRejoins is goLeavesAndRejoins for a JS session.
func (r *mixedRoom) jsLeavesAndRejoins(name string) {
	r.t.Helper()
	ann := r.js[name]
	delete(r.js, name)
	r.announce()
	r.pump()
	jsCall(r.t, r.ctx, nil, "setMembers", name, nil) // what start() does after a reconnect
	r.js[name] = ann
	r.announce()
	r.pump()
}

// A key message recorded and played back later is refused, counted as a
// replay and changes nothing, by a JS receiver and by a Go one: the
// sender's first and latest messages after it rekeyed, the same after the
// sender left and came back in the same session (the receiver remembers
// its highest sequence number), and a box its sender signed anew for a
// KID the receiver retired, under a sequence number never seen. Frames
// keep decrypting both ways throughout; frames recorded under the first
// keys never decrypt again.
func interopKeyReplayTest(t *testing.T, ctx context.Context) {
	r := newMixedRoom(t, ctx, "replay room")
	gray := r.joinGo("gray", true, 0)
	r.joinJS("jill", true, 3_600_000, 50)
	r.announce()
	r.pump()
	jill, err := e2ee.ParseAnnouncement(r.js["jill"])
	if err != nil {
		t.Fatal(err)
	}
	grayFirstKID, jillFirstKID := gray.KID(), r.jsState("jill").KID
	r.checkFramesBothWays("gray", "jill")
	// A frame of each under its first key, recorded and held back.
	grayRecorded, err := gray.EncryptFrame(e2ee.CodecOpus, []byte{0xfc, 1, 1, 1})
	if err != nil {
		t.Fatal(err)
	}
	jillRecorded := r.jsEncrypt("jill", e2ee.CodecOpus, []byte{0xfc, 2, 2, 2})

	// gwyn joins and leaves: gray and jill rekey twice.
	r.joinGo("gwyn", false, 0)
	r.announce()
	r.pump()
	r.leave("gwyn")
	r.announce()
	r.pump()
	if gray.KID() == grayFirstKID || r.jsState("jill").KID == jillFirstKID {
		t.Fatalf("gray (%#x, was %#x) or jill (%#x, was %#x) did not rekey", gray.KID(), grayFirstKID, r.jsState("jill").KID, jillFirstKID)
	}
	r.checkFramesBothWays("gray", "jill")

	toJS := func(what string, msg json.RawMessage, replay bool) {
		t.Helper()
		before := r.jsState("jill")
		var res string
		jsCall(t, ctx, &res, "handle", "jill", "gray", string(msg))
		after := r.jsState("jill")
		var acks []struct{ To []string }
		jsCall(t, ctx, &acks, "takeOutbox", "jill")
		replays := 0
		if replay {
			replays = 1
		}
		if res != "KeyMessageError" || after.Stats.BadKeyMessages != before.Stats.BadKeyMessages+1 ||
			after.Stats.ReplayedKeyMessages != before.Stats.ReplayedKeyMessages+replays ||
			after.Stats.KeysReceived != before.Stats.KeysReceived || len(acks) != 0 {
			t.Errorf("JS jill, %s: %s, %d messages sent; stats %+v, before %+v; want it refused (replay: %v), nothing else changed",
				what, res, len(acks), after.Stats, before.Stats, replay)
		}
	}
	toGo := func(what string, msg json.RawMessage) {
		t.Helper()
		before := gray.Stats()
		err := gray.HandleMessage("jill", msg)
		after := gray.Stats()
		r.mu.Lock()
		sent := len(r.queue)
		r.mu.Unlock()
		if !errors.Is(err, e2ee.ErrReplayedKey) || after.BadKeyMessages != before.BadKeyMessages+1 ||
			after.ReplayedKeyMessages != before.ReplayedKeyMessages+1 || after.KeysReceived != before.KeysReceived || sent != 0 {
			t.Errorf("Go gray, %s: %v, %d messages sent; stats %+v, before %+v; want ErrReplayedKey, nothing else changed",
				what, err, sent, after, before)
		}
	}
	replayAll := func(when string) {
		t.Helper()
		grays, jills := r.keyMessages("gray"), r.keyMessages("jill")
		if len(grays) < 3 || len(jills) < 3 {
			t.Fatalf("%d key messages recorded from gray, %d from jill; want at least 3 each", len(grays), len(jills))
		}
		toJS("gray's first key message "+when, grays[0], true)
		toJS("gray's latest key message "+when, grays[len(grays)-1], true)
		toGo("jill's first key message "+when, jills[0])
		toGo("jill's latest key message "+when, jills[len(jills)-1])
		r.checkFramesBothWays("gray", "jill")
	}
	replayAll("after it rekeyed")

	// Each leaves and comes back in the same session; its old messages
	// stay old.
	r.goLeavesAndRejoins("gray")
	r.jsLeavesAndRejoins("jill")
	r.checkFramesBothWays("gray", "jill")
	replayAll("after its sender left and came back")

	// A KID retired (gray's and jill's first, dropped when each left),
	// signed anew by its sender under a sequence number never seen.
	seq := uint64(time.Now().UnixMicro()) + 1e12
	gk := r.keys["gray"]
	box, err := e2ee.SealKeyBox(gk.id, jill.HPKE, &e2ee.KeyBody{
		Suite: e2ee.DefaultSuite, KID: grayFirstKID, Seq: seq, Room: r.name,
		Sender: "gray", SenderKey: gk.id.PublicKey(), SenderSession: gk.sk.ID(),
		Recipient: "jill", RecipientKey: jill.Identity, RecipientSession: jill.SessionID,
		BaseKey: randomBytes(t, 32),
	})
	if err != nil {
		t.Fatal(err)
	}
	toJS("gray's first KID, retired, under a new sequence number", json.RawMessage(keyMessageJSON(t, grayFirstKID, "jill", box)), true)
	var msg string
	jsCall(t, ctx, &msg, "keyMessage", "jill", jillFirstKID, "gray", hex.EncodeToString(gk.sk.PublicKey()), toHexBody(&e2ee.KeyBody{
		Suite: e2ee.DefaultSuite, KID: jillFirstKID, Seq: seq, Room: r.name,
		Sender: "jill", SenderKey: jill.Identity, SenderSession: jill.SessionID,
		Recipient: "gray", RecipientKey: gk.id.PublicKey(), RecipientSession: gk.sk.ID(),
		BaseKey: randomBytes(t, 32),
	}), false)
	toGo("jill's first KID, retired, under a new sequence number", json.RawMessage(msg))
	r.checkFramesBothWays("gray", "jill")

	// The recorded frames stay undecryptable: their key is gone for good.
	if res := r.jsDecrypt("jill", "gray", e2ee.CodecOpus, grayRecorded); res.Error != "no-key" {
		t.Errorf("JS jill, gray's recorded frame under its first key: %+v, want no-key", res)
	}
	if _, _, err := gray.DecryptFrame("jill", e2ee.CodecOpus, jillRecorded); !errors.Is(err, e2ee.ErrNoKey) {
		t.Errorf("Go gray, jill's recorded frame under her first key: %v, want ErrNoKey", err)
	}
}

// Frames install no key, JS as Go: not the sender's next ratchet, not a
// KID the receiver retired. gus (made by hand, as only a sender can) sends
// his key for epoch 4; a frame under epoch 5, the ratchet of that key,
// finds no key on either side and installs none. gus then sends epoch 6
// and, under a higher sequence number, epoch 5 (the key epoch 6 ratchets
// from): the waiting frame now decrypts, frames under epoch 5 come into
// use, so epoch 4's and 6's keys are retired after the grace period, and
// a frame under epoch 6 then does not decrypt either, although the
// ratchet of the epoch 5 key the receiver holds would open it.
func interopNoKeysFromFramesTest(t *testing.T, ctx context.Context) {
	const room = "ratchet replay room"
	gusID, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	gusSK, err := e2ee.NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	gus := []map[string]string{{"identity": "gus", "publicKey": e2ee.Announce(gusID, gusSK)}}
	var jaxText string
	jsCall(t, ctx, &jaxText, "newSession", map[string]any{"room": room, "self": "jax", "graceMs": 50})
	defer jsCall(t, ctx, nil, "close", "jax")
	jax, err := e2ee.ParseAnnouncement(jaxText)
	if err != nil {
		t.Fatal(err)
	}
	jsCall(t, ctx, nil, "setMembers", "jax", gus)
	gwenID, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	gwenSK, err := e2ee.NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	gwen, err := e2ee.NewSession(e2ee.Options{Room: room, Self: "gwen", Identity: gwenID, SessionKey: gwenSK, Grace: 50 * time.Millisecond, Logger: testLogger(), Send: func([]string, json.RawMessage) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer gwen.Close()
	gwen.SetMembers([]e2ee.Peer{{Identity: "gus", PublicKey: gus[0]["publicKey"]}})

	const tag = 0x5a5a5a
	kid4, kid5, kid6 := e2ee.KIDOf(tag, 4), e2ee.KIDOf(tag, 5), e2ee.KIDOf(tag, 6)
	base4 := randomBytes(t, 32)
	base5, err := sframe.Ratchet(e2ee.DefaultSuite, base4)
	if err != nil {
		t.Fatal(err)
	}
	base6, err := sframe.Ratchet(e2ee.DefaultSuite, base5)
	if err != nil {
		t.Fatal(err)
	}
	seq := uint64(time.Now().UnixMicro())
	send := func(kid uint64, base []byte) {
		t.Helper()
		seq++
		for _, to := range []struct {
			name string
			ann  e2ee.Announcement
			pub  []byte
		}{{"jax", jax, jax.Identity}, {"gwen", e2ee.Announcement{HPKE: gwenSK.PublicKey(), SessionID: gwenSK.ID()}, gwenID.PublicKey()}} {
			box, err := e2ee.SealKeyBox(gusID, to.ann.HPKE, &e2ee.KeyBody{
				Suite: e2ee.DefaultSuite, KID: kid, Seq: seq, Room: room,
				Sender: "gus", SenderKey: gusID.PublicKey(), SenderSession: gusSK.ID(),
				Recipient: to.name, RecipientKey: to.pub, RecipientSession: to.ann.SessionID, BaseKey: base,
			})
			if err != nil {
				t.Fatal(err)
			}
			msg := keyMessageJSON(t, kid, to.name, box)
			if to.name == "jax" {
				var res string
				jsCall(t, ctx, &res, "handle", "jax", "gus", msg)
				if res != "ok" {
					t.Fatalf("JS jax refused gus's key %#x: %s", kid, res)
				}
			} else if err := gwen.HandleMessage("gus", json.RawMessage(msg)); err != nil {
				t.Fatalf("Go gwen refused gus's key %#x: %v", kid, err)
			}
		}
	}
	senders := map[uint64]*sframe.Sender{}
	frame := func(kid uint64, base []byte) []byte {
		if senders[kid] == nil {
			snd, err := sframe.NewSender(e2ee.DefaultSuite, kid, base)
			if err != nil {
				t.Fatal(err)
			}
			senders[kid] = snd
		}
		return goEncryptFrame(t, senders[kid], e2ee.CodecOpus, []byte{0xfc, 5, 6, 7})
	}
	var has bool
	send(kid4, base4)

	// A frame under epoch 5, the ratchet of the key both hold, before its
	// key message: no key, and none installed.
	early := frame(kid5, base5)
	if _, _, err := gwen.DecryptFrame("gus", e2ee.CodecOpus, early); !errors.Is(err, e2ee.ErrNoKey) {
		t.Errorf("Go gwen, a frame under gus's next ratchet (epoch 5) before its key message: %v, want ErrNoKey", err)
	}
	if res := jsDecryptAs(t, ctx, "jax", "gus", early); res.Error != "no-key" {
		t.Errorf("JS jax, a frame under gus's next ratchet (epoch 5) before its key message: %+v, want no-key", res)
	}
	jsCall(t, ctx, &has, "hasKey", "jax", "gus", kid5)
	if has {
		t.Error("JS jax installed gus's epoch 5 key from a frame")
	}
	if st := gwen.Stats(); st.KeysReceived != 1 {
		t.Errorf("Go gwen holds %d keys of gus's, want the one he sent", st.KeysReceived)
	}

	send(kid6, base6)
	send(kid5, base5)

	// The frame that waited decrypts now; frames under epoch 5 come into
	// use: epoch 4's and 6's keys go after the grace period.
	changed := gwen.Changed()
	if _, _, err := gwen.DecryptFrame("gus", e2ee.CodecOpus, early); err != nil {
		t.Fatalf("Go gwen, the frame under epoch 5 once its key message came: %v", err)
	}
	if res := jsDecryptAs(t, ctx, "jax", "gus", early); res.Error != "" {
		t.Fatalf("JS jax, the frame under epoch 5 once its key message came: %+v", res)
	}
	select {
	case <-changed:
	case <-time.After(browserTimeout):
		t.Fatal("Go gwen did not retire gus's epoch 6 key after the grace period")
	}
	var gone bool
	jsCall(t, ctx, &gone, "waitKeyGone", "jax", "gus", kid6, int(browserTimeout.Milliseconds()))
	if !gone {
		t.Fatal("JS jax did not retire gus's epoch 6 key after the grace period")
	}

	late := frame(kid6, base6)
	if _, _, err := gwen.DecryptFrame("gus", e2ee.CodecOpus, late); !errors.Is(err, e2ee.ErrNoKey) {
		t.Errorf("Go gwen, a frame under the retired epoch 6: %v, want ErrNoKey", err)
	}
	if res := jsDecryptAs(t, ctx, "jax", "gus", late); res.Error != "no-key" {
		t.Errorf("JS jax, a frame under the retired epoch 6: %+v, want no-key", res)
	}
	jsCall(t, ctx, &has, "hasKey", "jax", "gus", kid6)
	if has {
		t.Error("JS jax holds gus's retired epoch 6 key again")
	}
	if _, _, err := gwen.DecryptFrame("gus", e2ee.CodecOpus, frame(kid5, base5)); err != nil {
		t.Errorf("Go gwen, another frame under epoch 5: %v", err)
	}
	if res := jsDecryptAs(t, ctx, "jax", "gus", frame(kid5, base5)); res.Error != "" {
		t.Errorf("JS jax, another frame under epoch 5: %+v", res)
	}
}

// jsDecryptAs decrypts a frame in JS session name as from's, outside a mixedRoom.
func jsDecryptAs(t *testing.T, ctx context.Context, name, from string, wire []byte) jsDecrypted {
	t.Helper()
	var res jsDecrypted
	jsCall(t, ctx, &res, "decrypt", name, from, "opus", hex.EncodeToString(wire))
	return res
}
