package e2ee

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"
)

// hx decodes hex written with spaces between the bytes.
func hx(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCodecFromMime(t *testing.T) {
	tests := []struct {
		mime string
		want Codec
		ok   bool
	}{
		{"audio/opus", CodecOpus, true},
		{"AUDIO/OPUS", CodecOpus, true},
		{"audio/Opus", CodecOpus, true},
		{"video/VP8", CodecVP8, true},
		{"video/vp8", CodecVP8, true},
		{"video/H264", CodecH264, true},
		{"Video/h264", CodecH264, true},
		{"", 0, false},
		{"opus", 0, false},
		{"video/opus", 0, false},
		{"audio/VP8", 0, false},
		{"video/VP9", 0, false},
		{"video/H265", 0, false},
		{"video/AV1", 0, false},
		{"video/H264;packetization-mode=1", 0, false},
		{" video/H264", 0, false},
		{"video/H264 ", 0, false},
	}
	for _, tt := range tests {
		got, err := CodecFromMime(tt.mime)
		if tt.ok != (err == nil) || got != tt.want {
			t.Errorf("CodecFromMime(%q) = %v, %v; want %v, ok %v", tt.mime, got, err, tt.want, tt.ok)
		}
		if !tt.ok && !errors.Is(err, ErrUnsupportedCodec) {
			t.Errorf("CodecFromMime(%q): %v is not an ErrUnsupportedCodec", tt.mime, err)
		}
		if tt.ok {
			if back, err := CodecFromMime(got.String()); err != nil || back != got {
				t.Errorf("CodecFromMime(%v.String()) = %v, %v", got, back, err)
			}
		}
	}
	if s := Codec(0).String(); s != "Codec(0)" {
		t.Errorf("Codec(0).String() = %q", s)
	}
}

func TestPrefixLen(t *testing.T) {
	// A slice NAL header, then first_mb_in_slice 0, slice_type 7 (I),
	// pic_parameter_set_id 0: 65 88 84, as x264 writes.
	const (
		sps   = "67 42 c0 1f da 01 40 16 ec 04 40 00 00 03 00 40 00 00 0f 23 c6 0c a8"
		pps   = "68 ce 3c 80"
		idr   = "65 88 84 00 21 ff fe f6 f0"
		slice = "41 9a 24 6c 41 ff"
	)
	tests := []struct {
		name  string
		codec Codec
		frame string
		want  int
		err   error
	}{
		{"opus", CodecOpus, "fc ff fe", 0, nil},
		{"opus TOC only", CodecOpus, "fc", 0, nil},
		{"opus empty", CodecOpus, "", 0, ErrMalformedFrame},

		{"vp8 interframe", CodecVP8, "31 02 00 aa bb cc", 3, nil},
		{"vp8 interframe tag only", CodecVP8, "31 02 00", 3, nil},
		{"vp8 key frame", CodecVP8, "50 42 00 9d 01 2a 80 02 e0 01 ff", 10, nil},
		{"vp8 key frame header only", CodecVP8, "50 42 00 9d 01 2a 80 02 e0 01", 10, nil},
		{"vp8 empty", CodecVP8, "", 0, ErrMalformedFrame},
		{"vp8 two bytes", CodecVP8, "31 02", 0, ErrMalformedFrame},
		{"vp8 key frame short", CodecVP8, "50 42 00 9d 01 2a 80 02 e0", 0, ErrMalformedFrame},
		{"vp8 key frame tag only", CodecVP8, "50 42 00", 0, ErrMalformedFrame},
		{"vp8 key frame bad start code", CodecVP8, "50 42 00 9d 01 2b 80 02 e0 01 ff", 0, ErrMalformedFrame},

		{"h264 IDR with parameter sets", CodecH264, "00 00 00 01" + sps + "00 00 00 01" + pps + "00 00 00 01" + idr, 4 + 23 + 4 + 4 + 4 + 3, nil},
		{"h264 3-byte start codes", CodecH264, "00 00 01" + sps + "00 00 01" + pps + "00 00 01" + idr, 3 + 23 + 3 + 4 + 3 + 3, nil},
		{"h264 mixed start codes", CodecH264, "00 00 01" + sps + "00 00 00 01" + pps + "00 00 01" + idr, 3 + 23 + 4 + 4 + 3 + 3, nil},
		{"h264 AUD and SEI first", CodecH264, "00 00 00 01 09 f0 00 00 00 01 06 05 02 aa bb 80 00 00 00 01" + slice, 6 + 10 + 4 + 3, nil},
		{"h264 slice only", CodecH264, "00 00 00 01" + slice, 7, nil},
		{"h264 slice of exactly 3 bytes", CodecH264, "00 00 01 41 9a 24", 6, nil},
		{"h264 slice then more NAL units", CodecH264, "00 00 01" + slice + "00 00 01" + slice, 6, nil},
		{"h264 non-IDR types 1-5", CodecH264, "00 00 01 02 11 22 33", 6, nil},
		{"h264 prefix ends in zeros", CodecH264, "00 00 01 41 00 00 03 01", 6, nil},
		{"h264 slice bytes zero before next start code", CodecH264, "00 00 01 41 9a 00 00 00 01 41 11 22", 6, nil},

		{"h264 empty", CodecH264, "", 0, ErrMalformedFrame},
		{"h264 no start code", CodecH264, idr, 0, ErrMalformedFrame},
		{"h264 AVC length prefix", CodecH264, "00 00 00 09" + idr, 0, ErrMalformedFrame},
		{"h264 leading garbage", CodecH264, "ff 00 00 01" + idr, 0, ErrMalformedFrame},
		{"h264 extra leading zero", CodecH264, "00 00 00 00 01" + idr, 0, ErrMalformedFrame},
		{"h264 start code only", CodecH264, "00 00 01", 0, ErrMalformedFrame},
		{"h264 4-byte start code only", CodecH264, "00 00 00 01", 0, ErrMalformedFrame},
		{"h264 start codes only", CodecH264, "00 00 01 00 00 01 00 00 00 01", 0, ErrMalformedFrame},
		{"h264 empty NAL before slice", CodecH264, "00 00 01 00 00 01" + idr, 0, ErrMalformedFrame},
		{"h264 empty NAL before slice, 4-byte", CodecH264, "00 00 00 01 00 00 00 01" + idr, 0, ErrMalformedFrame},
		{"h264 trailing start code, no slice", CodecH264, "00 00 01" + sps + "00 00 01", 0, ErrMalformedFrame},
		{"h264 NAL type 0", CodecH264, "00 00 01 00 11 00 00 01" + idr, 0, ErrMalformedFrame},
		{"h264 STAP-A type", CodecH264, "00 00 01 78 00 04 68 ce 3c 80 00 00 01" + idr, 0, ErrMalformedFrame},
		{"h264 FU-A type", CodecH264, "00 00 01 7c 85 88 84 21", 0, ErrMalformedFrame},
		{"h264 type 31", CodecH264, "00 00 01 1f 00 00 01" + idr, 0, ErrMalformedFrame},
		{"h264 forbidden bit before slice", CodecH264, "00 00 01 e7 42 00 00 01" + idr, 0, ErrMalformedFrame},
		{"h264 forbidden bit on slice", CodecH264, "00 00 01 e5 88 84 21", 0, ErrMalformedFrame},
		{"h264 slice header only", CodecH264, "00 00 01 65", 0, ErrMalformedFrame},
		{"h264 slice of 2 bytes", CodecH264, "00 00 01 65 88", 0, ErrMalformedFrame},
		{"h264 slice cut by a start code", CodecH264, "00 00 01 65 00 00 01 65 88 84", 0, ErrMalformedFrame},
		{"h264 slice cut by a 4-byte start code", CodecH264, "00 00 01 65 88 00 00 01 65 88 84", 0, ErrMalformedFrame},

		{"h264 no slice", CodecH264, "00 00 00 01" + sps + "00 00 00 01" + pps, 0, ErrNoSlice},
		{"h264 AUD only", CodecH264, "00 00 00 01 09 f0", 0, ErrNoSlice},
		{"h264 IDR data partition types are not 1-5 but 20", CodecH264, "00 00 01 14 11 22 33", 0, ErrNoSlice},

		{"no codec", 0, "00", 0, ErrUnsupportedCodec},
		{"unknown codec", Codec(42), "00", 0, ErrUnsupportedCodec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := hx(t, tt.frame)
			got, err := PrefixLen(tt.codec, frame)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("PrefixLen = %d, %v; want %v", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("PrefixLen = %d, %v; want %d", got, err, tt.want)
			}
			if got > len(frame) {
				t.Fatalf("PrefixLen %d beyond the frame's %d bytes", got, len(frame))
			}
		})
	}
}

// hasStartCode reports whether b contains 00 00 followed by 00, 01 or 02.
func hasStartCode(b []byte) bool {
	for i := 0; i+2 < len(b); i++ {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] <= 2 {
			return true
		}
	}
	return false
}

// checkEscaped checks what EscapeH264 promises of e, the escaped form of
// x, whatever bytes come before it.
func checkEscaped(t testing.TB, x, e []byte) {
	t.Helper()
	if hasStartCode(e) {
		t.Fatalf("EscapeH264(%x) = %x contains a start code", x, e)
	}
	if len(e) > 0 && e[len(e)-1] == 0 {
		t.Fatalf("EscapeH264(%x) = %x ends in 0x00", x, e)
	}
	for _, before := range [][]byte{{0, 0}, {0}, {0x65, 0}, {0, 0, 3}} {
		if hasStartCode(append(bytes.Clone(before), e...)) {
			t.Fatalf("EscapeH264(%x) = %x makes a start code after %x", x, e, before)
		}
	}
	got, err := UnescapeH264(nil, e)
	if err != nil {
		t.Fatalf("UnescapeH264(EscapeH264(%x) = %x): %v", x, e, err)
	}
	if !bytes.Equal(got, x) {
		t.Fatalf("UnescapeH264(EscapeH264(%x) = %x) = %x", x, e, got)
	}
}

func TestEscapeH264(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"05", "05"},
		{"ff 00 ff", "ff 00 ff"},
		// The start counts as two zero bytes.
		{"00", "03 00 03"},
		{"01", "03 01"},
		{"02 05", "03 02 05"},
		{"03", "03 03"},
		{"04", "04"},
		// Inside, as ITU-T H.264 7.4.1.
		{"05 00 00 00", "05 00 00 03 00 03"},
		{"05 00 00 01", "05 00 00 03 01"},
		{"05 00 00 02", "05 00 00 03 02"},
		{"05 00 00 03", "05 00 00 03 03 03"},
		{"05 00 00 04", "05 00 00 04"},
		{"05 00 00 00 00", "05 00 00 03 00 00 03"},
		{"05 00 00 00 00 00 01", "05 00 00 03 00 00 03 00 01"},
		// The end: never 0x00, and a 0x03 after 00 (03...) is marked.
		{"05 00", "05 00 03"},
		{"05 00 00", "05 00 00 03"},
		{"05 00 03", "05 00 03 03"},
		{"05 00 03 03", "05 00 03 03 03"},
		{"05 03", "05 03"},
		{"05 03 00 05", "05 03 00 05"},
		{"00 00 00 00", "03 00 00 03 00 00 03"},
	}
	for _, tt := range tests {
		in, want := hx(t, tt.in), hx(t, tt.want)
		got := EscapeH264(nil, in)
		if !bytes.Equal(got, want) {
			t.Errorf("EscapeH264(%s) = % x, want %s", tt.in, got, tt.want)
			continue
		}
		checkEscaped(t, in, got)
		// It appends, and dst's bytes change nothing.
		for _, dst := range [][]byte{{0, 0}, {9}} {
			if got := EscapeH264(bytes.Clone(dst), in); !bytes.Equal(got, append(bytes.Clone(dst), want...)) {
				t.Errorf("EscapeH264(%x, %s) = % x", dst, tt.in, got)
			}
			back, err := UnescapeH264(bytes.Clone(dst), want)
			if err != nil || !bytes.Equal(back, append(bytes.Clone(dst), in...)) {
				t.Errorf("UnescapeH264(%x, %s) = % x, %v", dst, tt.want, back, err)
			}
		}
	}
}

func TestUnescapeH264Refuses(t *testing.T) {
	tests := []struct{ name, in string }{
		{"one zero", "00"},
		{"ends in zero", "05 00"},
		{"ends in two zeros", "05 00 00"},
		{"starts with 00 (after the assumed 00 00)", "00 05"},
		{"starts with 01", "01 05"},
		{"starts with 02", "02 05"},
		{"lone emulation byte", "03"},
		{"emulation byte then 04", "03 04"},
		{"start code inside", "05 00 00 01 05"},
		{"4-byte start code inside", "05 00 00 00 01 05"},
		{"00 00 00 inside", "05 00 00 00 05"},
		{"00 00 02 inside", "05 00 00 02 05"},
		{"emulation byte then ff", "05 00 00 03 ff"},
		{"emulation byte at the end, no mark", "05 00 00 03 03"},
		{"ends in 00 00 after removing the mark", "05 00 00 03 00 03 00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := UnescapeH264(nil, hx(t, tt.in))
			if !errors.Is(err, ErrMalformedFrame) {
				t.Fatalf("UnescapeH264(%s) = % x, %v; want ErrMalformedFrame", tt.in, got, err)
			}
		})
	}
}

// TestEscapeH264Exhaustive checks every string over 00-04 up to 7 bytes:
// UnescapeH264 inverts EscapeH264, and accepts exactly EscapeH264's
// outputs.
func TestEscapeH264Exhaustive(t *testing.T) {
	const alphabet, maxLen = 5, 7
	var buf []byte
	var walk func(n int)
	walk = func(n int) {
		x := buf
		checkEscaped(t, x, EscapeH264(nil, x))
		if got, err := UnescapeH264(nil, x); err == nil {
			if e := EscapeH264(nil, got); !bytes.Equal(e, x) {
				t.Fatalf("UnescapeH264(%x) = %x, but EscapeH264 of that is %x", x, got, e)
			}
		}
		if n == maxLen {
			return
		}
		for b := range byte(alphabet) {
			buf = append(buf, b)
			walk(n + 1)
			buf = buf[:len(buf)-1]
		}
	}
	walk(0)
}

// zeroHeavy returns n random bytes, most of them 00-03.
func zeroHeavy(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		if r.IntN(4) == 0 {
			b[i] = byte(r.Uint32())
		} else {
			b[i] = byte(r.IntN(4)) &^ byte(r.IntN(2)) // zeros twice as likely
		}
	}
	return b
}

func TestEscapeH264Random(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		var x []byte
		if r.IntN(2) == 0 {
			x = zeroHeavy(r, r.IntN(300))
		} else {
			x = make([]byte, r.IntN(3000))
			for i := range x {
				x[i] = byte(r.Uint32())
			}
		}
		checkEscaped(t, x, EscapeH264(nil, x))
		// Random input rarely unescapes; when it does, it is an output.
		y := zeroHeavy(r, r.IntN(40))
		if got, err := UnescapeH264(nil, y); err == nil && !bytes.Equal(EscapeH264(nil, got), y) {
			t.Fatalf("UnescapeH264(%x) = %x, not its EscapeH264 preimage", y, got)
		}
	}
}

func FuzzEscapeH264(f *testing.F) {
	for _, s := range []string{"", "00", "0000", "000001", "000003", "0003", "05000003", "ff00"} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, x []byte) {
		checkEscaped(t, x, EscapeH264(nil, x))
		if got, err := UnescapeH264(nil, x); err == nil && !bytes.Equal(EscapeH264(nil, got), x) {
			t.Fatalf("UnescapeH264(%x) = %x, not its EscapeH264 preimage", x, got)
		}
	})
}

func TestNormalizeAnnexB(t *testing.T) {
	const (
		sps = "67 42 c0 1f"
		pps = "68 ce 3c 80"
		sei = "06 05 01 aa 80"
		idr = "65 88 84 21"
		p   = "41 9a 24 6c"
		aud = "09 f0"
		fil = "0c ff ff 80"
		sc  = " 00 00 00 01 "
		sc3 = " 00 00 01 "
	)
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"already normal", sc + sps + sc + pps + sc + idr, sc + sps + sc + pps + sc + idr},
		{"3-byte start codes", sc3 + sps + sc3 + pps + sc3 + idr, sc + sps + sc + pps + sc + idr},
		{"mixed start codes", sc3 + p + sc + p + sc3 + p, sc + p + sc + p + sc + p},
		{"no start code: one NAL unit", p, sc + p},
		{"bytes before the first start code dropped", "ff ee" + sc3 + p, sc + p},
		{"extra leading zeros dropped", "00 00" + sc + p, sc + p},
		{"AUD dropped", sc + aud + sc + p, sc + p},
		{"filler dropped", sc + p + sc + fil, sc + p},
		{"empty NAL units dropped", sc3 + sc3 + sc + p + sc3, sc + p},
		{"start codes only", sc + sc3 + sc, ""},
		{"AUD only", sc + aud, ""},
		{"SEI before parameter sets", sc + sei + sc + sps + sc + pps + sc + idr, sc + sei + sc + sps + sc + pps + sc + idr},
		{"SEI after parameter sets", sc + sps + sc + pps + sc + sei + sc + idr, sc + sps + sc + pps + sc + sei + sc + idr},
		{"SEI between SPS and PPS moves ahead", sc + sps + sc + sei + sc + pps + sc + idr, sc + sei + sc + sps + sc + pps + sc + idr},
		{"PPS before SPS: SPS first", sc + pps + sc + sps + sc + idr, sc + sps + sc + pps + sc + idr},
		{"second SPS replaces the first", sc + sps + sc + "67 4d 00 28" + sc + pps + sc + idr, sc + "67 4d 00 28" + sc + pps + sc + idr},
		{"SPS without PPS dropped", sc + sps + sc + idr, sc + idr},
		{"parameter sets at the end dropped", sc + idr + sc + sps + sc + pps, sc + idr},
		{"one trailing zero joins the start code", sc + "41 9a 00" + sc3 + p, sc + "41 9a" + sc + p},
		{"more trailing zeros stay", sc + "41 9a 00 00 00" + sc3 + p, sc + "41 9a 00 00" + sc + p},
		{"nothing after the last start code", sc + p + sc, sc + p},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, want := hx(t, tt.in), hx(t, tt.want)
			inCopy := bytes.Clone(in)
			got := NormalizeAnnexB(in)
			if !bytes.Equal(got, want) {
				t.Fatalf("NormalizeAnnexB(%s) =\n% x\nwant\n%s", tt.in, got, tt.want)
			}
			if !bytes.Equal(in, inCopy) {
				t.Fatal("NormalizeAnnexB changed its input")
			}
			if again := NormalizeAnnexB(got); !bytes.Equal(again, got) {
				t.Fatalf("NormalizeAnnexB is not idempotent: % x", again)
			}
			if pion := pionH264(t, in, 1200, false); validForPion(got) && !bytes.Equal(pion, got) {
				t.Fatalf("pion delivers\n% x\nNormalizeAnnexB gives\n% x", pion, got)
			}
		})
	}
}

// pionH264 sends frame through a fresh pion H264Payloader and its
// depacketizer, concatenating what the depacketizer returns for each
// packet as pion's samplebuilder does.
func pionH264(t testing.TB, frame []byte, mtu uint16, disableStapA bool) []byte {
	t.Helper()
	payloader := &codecs.H264Payloader{DisableStapA: disableStapA}
	var depacketizer codecs.H264Packet
	var out []byte
	for _, pkt := range payloader.Payload(mtu, frame) {
		b, err := depacketizer.Unmarshal(pkt)
		if err != nil {
			t.Fatalf("pion depacketizer: %v", err)
		}
		out = append(out, b...)
	}
	return out
}

// validForPion reports whether a normalized frame is inside
// NormalizeAnnexB's guarantee: NAL unit types 1-23, forbidden_zero_bit 0,
// and parameter sets small enough to share a packet.
func validForPion(normal []byte) bool {
	ok := true
	splitAnnexB(normal, func(nal []byte) {
		if len(nal) == 0 {
			return
		}
		typ := nal[0] & nalTypeMask
		if nal[0]&nalForbiddenBit != 0 || typ == 0 || typ >= nalReserved ||
			((typ == nalSPS || typ == nalPPS) && len(nal) > 500) {
			ok = false
		}
	})
	return ok
}

// randomAnnexB returns a frame of random NAL units, with every kind of
// start code, empty units, zeros at unit ends and bytes before the first
// start code; the units' content may hold further start codes.
func randomAnnexB(r *rand.Rand) []byte {
	var f []byte
	if r.IntN(10) == 0 {
		f = append(f, zeroHeavy(r, r.IntN(4))...)
	}
	types := []byte{1, 5, 5, 6, 7, 7, 8, 8, 9, 12, 1, 14, 20, 23}
	for range 1 + r.IntN(8) {
		switch r.IntN(3) {
		case 0:
			f = append(f, 0, 0, 1)
		case 1:
			f = append(f, 0, 0, 0, 1)
		default:
			f = append(f, make([]byte, 1+r.IntN(3))...)
			f = append(f, 0, 0, 1)
		}
		if r.IntN(12) == 0 {
			continue // empty unit
		}
		typ := types[r.IntN(len(types))]
		f = append(f, byte(r.IntN(4))<<5|typ)
		n := r.IntN(40)
		if typ != nalSPS && typ != nalPPS && r.IntN(4) == 0 {
			n = r.IntN(4000)
		}
		var body []byte
		if r.IntN(3) == 0 {
			body = zeroHeavy(r, n)
		} else {
			body = EscapeH264(nil, zeroHeavy(r, n))
		}
		f = append(f, body...)
		if r.IntN(6) == 0 {
			f = append(f, make([]byte, 1+r.IntN(2))...)
		}
	}
	return f
}

// TestNormalizeAnnexBMatchesPion checks the guarantee in prefix.go on
// random frames: NormalizeAnnexB gives what pion delivers, and pion
// delivers a normalized frame unchanged, with STAP-A on or off.
func TestNormalizeAnnexBMatchesPion(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	checked := 0
	const rounds = 3000
	for range rounds {
		f := randomAnnexB(r)
		n := NormalizeAnnexB(f)
		if again := NormalizeAnnexB(n); !bytes.Equal(again, n) {
			t.Fatalf("not idempotent on %x", f)
		}
		if !validForPion(n) {
			continue
		}
		checked++
		if got := pionH264(t, f, 1200, false); !bytes.Equal(got, n) {
			t.Fatalf("frame %x:\npion delivers      %x\nNormalizeAnnexB gives %x", f, got, n)
		}
		for _, disable := range []bool{false, true} {
			if got := pionH264(t, n, 1200, disable); !bytes.Equal(got, n) {
				t.Fatalf("normalized frame %x (DisableStapA %v): pion delivers %x", n, disable, got)
			}
		}
	}
	if checked < rounds/2 {
		t.Fatalf("only %d of %d random frames were inside the guarantee", checked, rounds)
	}
}

func FuzzNormalizeAnnexB(f *testing.F) {
	for _, s := range []string{"", "000001", "0000000165888421", "00000001674200000168ce000001658884", "0000010900000141000001"} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		n := NormalizeAnnexB(frame)
		if again := NormalizeAnnexB(n); !bytes.Equal(again, n) {
			t.Fatalf("not idempotent: %x -> %x -> %x", frame, n, again)
		}
		if validForPion(n) {
			if got := pionH264(t, frame, 1200, false); !bytes.Equal(got, n) {
				t.Fatalf("pion delivers %x, NormalizeAnnexB gives %x", got, n)
			}
		}
	})
}

// sendH264 does what an encrypting sender does with the frame, with random
// bytes standing in for the SFrame ciphertext: normalize, keep the prefix,
// escape the rest. It returns the wire frame, the prefix and the
// "ciphertext".
func sendH264(t testing.TB, r *rand.Rand, frame []byte) (wire, prefix, ct []byte) {
	t.Helper()
	normal := NormalizeAnnexB(frame)
	n, err := PrefixLen(CodecH264, normal)
	if err != nil {
		t.Fatalf("PrefixLen: %v", err)
	}
	// Hostile ciphertext: zeros and start codes at both ends and inside.
	ct = append([]byte{0, 0, 1, 0}, zeroHeavy(r, 64)...)
	for range len(normal) - n {
		ct = append(ct, byte(r.Uint32()))
	}
	ct = append(ct, 0, 0, 0, 1, 0, 0)
	prefix = normal[:n]
	return EscapeH264(bytes.Clone(prefix), ct), prefix, ct
}

// receive checks that the receiver finds the sender's prefix and
// ciphertext in the depacketized frame.
func receive(t testing.TB, codec Codec, got, prefix, ct []byte) {
	t.Helper()
	n, err := PrefixLen(codec, got)
	if err != nil {
		t.Fatalf("receiver: PrefixLen: %v", err)
	}
	if !bytes.Equal(got[:n], prefix) {
		t.Fatalf("receiver's prefix\n% x\nsender authenticated\n% x", got[:n], prefix)
	}
	body := got[n:]
	if codec == CodecH264 {
		if body, err = UnescapeH264(nil, body); err != nil {
			t.Fatalf("receiver: UnescapeH264: %v", err)
		}
	}
	if !bytes.Equal(body, ct) {
		t.Fatal("receiver's ciphertext differs from the sender's")
	}
}

// throughPion sends frames through pion's RTP packetizer (MTU 1200), RTP
// marshalling and the samplebuilder with depacketizer, as a Sotto client
// receives a track, and returns the frames that come out.
func throughPion(t testing.TB, payloader rtp.Payloader, depacketizer rtp.Depacketizer, clockRate uint32, frames [][]byte) [][]byte {
	t.Helper()
	packetizer := rtp.NewPacketizer(1200, 96, 0x5eed, payloader, rtp.NewFixedSequencer(65000), clockRate)
	sb := samplebuilder.New(512, depacketizer, clockRate)
	var out [][]byte
	for _, frame := range frames {
		for _, p := range packetizer.Packetize(frame, clockRate/30) {
			raw, err := p.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if len(raw) > 1200 {
				t.Fatalf("packet of %d bytes over the MTU", len(raw))
			}
			var q rtp.Packet
			if err := q.Unmarshal(raw); err != nil {
				t.Fatal(err)
			}
			sb.Push(&q)
			for s := sb.Pop(); s != nil; s = sb.Pop() {
				out = append(out, s.Data)
			}
		}
	}
	sb.Flush()
	for s := sb.Pop(); s != nil; s = sb.Pop() {
		out = append(out, s.Data)
	}
	return out
}

// TestH264PrefixThroughPion is the guarantee end to end: frames as
// encoders write them (AUD, SEI, 3-byte start codes, several slices, large
// IDR) are encrypted the Sotto way, sent through pion's payloader and
// samplebuilder, and the receiver finds exactly the prefix the sender
// authenticated and the ciphertext it escaped.
func TestH264PrefixThroughPion(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const (
		sps = "67 42 c0 1f da 01 40 16 ec 04 40 00 00 03 00 40 00 00 0f 23 c6 0c a8"
		pps = "68 ce 3c 80"
		sei = "06 05 10 dc 45 e9 bd e6 d9 48 b7 96 2c d8 20 d9 23 ee ef 78 32 36 34 00 80"
		aud = "09 f0"
		sc  = " 00 00 00 01 "
		sc3 = " 00 00 01 "
	)
	slice := func(head string, n int) string {
		return head + hex.EncodeToString(EscapeH264(nil, zeroHeavy(r, n)))
	}
	frames := []struct {
		name  string
		frame string
	}{
		{"AUD, SPS, PPS, large IDR", sc + aud + sc + sps + sc + pps + sc + slice("65 88 84", 5000)},
		{"3-byte start codes, SEI", sc3 + sps + sc3 + pps + sc3 + sei + sc3 + slice("65 88 84", 2500)},
		{"P frame, one packet", sc + aud + sc + slice("41 9a 24", 300)},
		{"P frame, two slices", sc + slice("41 9a 24", 1500) + sc3 + slice("41 9a 02", 1500)},
		{"slice header bytes end in zeros", sc + slice("41 00 00", 2000)},
		{"slice header bytes end in one zero", sc + slice("41 e2 00", 20)},
		{"SEI between SPS and PPS", sc + sps + sc + sei + sc + pps + sc + slice("65 88 84", 3000)},
		{"filler after slice", sc + slice("41 9a 24", 100) + sc + "0c ff ff ff 80"},
		{"tiny slice", sc + "41 9a 24"},
	}
	var wires, prefixes, cts [][]byte
	for _, f := range frames {
		wire, prefix, ct := sendH264(t, r, hx(t, f.frame))
		wires, prefixes, cts = append(wires, wire), append(prefixes, prefix), append(cts, ct)
	}
	got := throughPion(t, &codecs.H264Payloader{}, &codecs.H264Packet{}, 90000, wires)
	if len(got) != len(frames) {
		t.Fatalf("%d frames out of pion, want %d", len(got), len(frames))
	}
	for i, f := range frames {
		t.Run(f.name, func(t *testing.T) {
			if !bytes.Equal(got[i], wires[i]) {
				t.Errorf("pion delivered\n% x\nthe sender sent\n% x", got[i][:min(len(got[i]), 80)], wires[i][:min(len(wires[i]), 80)])
			}
			receive(t, CodecH264, got[i], prefixes[i], cts[i])
		})
	}
}

// TestH264UnnormalizedPrefixBreaks shows why the sender normalizes: an AUD
// and 3-byte start codes in the authenticated prefix do not survive pion.
func TestH264UnnormalizedPrefixBreaks(t *testing.T) {
	frame := hx(t, "00 00 01 09 f0 00 00 01 67 42 c0 1f 00 00 01 68 ce 3c 80 00 00 01 65 88 84 21 22 23")
	n, err := PrefixLen(CodecH264, frame)
	if err != nil {
		t.Fatal(err)
	}
	got := pionH264(t, frame, 1200, false)
	m, err := PrefixLen(CodecH264, got)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got[:m], frame[:n]) {
		t.Fatal("the raw prefix survived pion; NormalizeAnnexB would not be needed")
	}
	normal := NormalizeAnnexB(frame)
	if n, err = PrefixLen(CodecH264, normal); err != nil || !bytes.Equal(got[:m], normal[:n]) {
		t.Fatalf("normalized prefix % x, pion's % x (%v)", normal[:n], got[:m], err)
	}
}

// TestH264PrefixStable checks PrefixLen's promise on random frames: with
// everything after the prefix replaced by escaped bytes, the prefix is
// found again.
func TestH264PrefixStable(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	found := 0
	for range 2000 {
		frame := NormalizeAnnexB(randomAnnexB(r))
		if r.IntN(2) == 0 {
			frame = randomAnnexB(r)
		}
		n, err := PrefixLen(CodecH264, frame)
		if err != nil {
			continue
		}
		found++
		checkPrefixStable(t, frame, n, zeroHeavy(r, r.IntN(50)))
	}
	if found < 300 {
		t.Fatalf("only %d random frames had a prefix", found)
	}
}

func checkPrefixStable(t testing.TB, frame []byte, n int, tail []byte) {
	t.Helper()
	if n <= 0 || n > len(frame) {
		t.Fatalf("PrefixLen %d outside the %d-byte frame", n, len(frame))
	}
	replaced := EscapeH264(bytes.Clone(frame[:n]), tail)
	m, err := PrefixLen(CodecH264, replaced)
	if err != nil || m != n {
		t.Fatalf("frame %x: prefix %d, but %d, %v after the tail is replaced", frame, n, m, err)
	}
}

func FuzzPrefixLen(f *testing.F) {
	for _, s := range []string{"", "00000001", "000001650000", "00000001674200000168ce00000165888421", "5042009d012a8002e001", "fc"} {
		b, _ := hex.DecodeString(s)
		for c := range 4 {
			f.Add(byte(c), b, []byte{0, 0, 1})
		}
	}
	f.Fuzz(func(t *testing.T, c byte, frame, tail []byte) {
		codec := Codec(c % 5)
		n, err := PrefixLen(codec, frame)
		if err != nil {
			if codec == CodecOpus && len(frame) > 0 {
				t.Fatalf("PrefixLen refused a %d-byte Opus frame: %v", len(frame), err)
			}
			return
		}
		switch {
		case n < 0 || n > len(frame):
			t.Fatalf("PrefixLen %d outside the %d-byte frame", n, len(frame))
		case codec == CodecOpus && n != 0:
			t.Fatalf("Opus frame with a clear prefix of %d bytes: Opus is encrypted whole", n)
		case codec != CodecOpus && n == 0:
			t.Fatalf("%v frame with an empty clear prefix", codec)
		}
		if codec == CodecH264 {
			checkPrefixStable(t, frame, n, tail)
		}
	})
}

// TestVP8ThroughPion sends VP8 frames, encrypted the Sotto way, through
// pion's VP8 payloader and samplebuilder: they come back unchanged, prefix
// and all.
func TestVP8ThroughPion(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	frames := [][]byte{
		append(hx(t, "50 42 00 9d 01 2a 80 02 e0 01"), random(6000)...), // key frame over several packets
		append(hx(t, "31 02 00"), random(900)...),                       // interframe in one packet
		append(hx(t, "31 02 00"), random(1187)...),                      // exactly one full packet
		append(hx(t, "31 02 00"), random(1188)...),                      // one byte into a second
		hx(t, "31 02 00 7f"),
	}
	var wires, prefixes, cts [][]byte
	for _, f := range frames {
		n, err := PrefixLen(CodecVP8, f)
		if err != nil {
			t.Fatal(err)
		}
		ct := random(len(f) - n + 16)
		wire := append(bytes.Clone(f[:n]), ct...)
		wires, prefixes, cts = append(wires, wire), append(prefixes, f[:n]), append(cts, ct)
	}
	for _, pictureID := range []bool{false, true} {
		got := throughPion(t, &codecs.VP8Payloader{EnablePictureID: pictureID}, &codecs.VP8Packet{}, 90000, wires)
		if len(got) != len(wires) {
			t.Fatalf("%d frames out of pion, want %d", len(got), len(wires))
		}
		for i := range wires {
			if !bytes.Equal(got[i], wires[i]) {
				t.Fatalf("frame %d changed on the way through pion", i)
			}
			receive(t, CodecVP8, got[i], prefixes[i], cts[i])
		}
	}
}

func BenchmarkEscapeH264(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	src := make([]byte, 100_000)
	for i := range src {
		src[i] = byte(r.Uint32())
	}
	dst := make([]byte, 0, 2*len(src))
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		dst = EscapeH264(dst[:0], src)
	}
}

func BenchmarkUnescapeH264(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	src := make([]byte, 100_000)
	for i := range src {
		src[i] = byte(r.Uint32())
	}
	esc := EscapeH264(nil, src)
	dst := make([]byte, 0, len(src))
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		dst, _ = UnescapeH264(dst[:0], esc)
	}
}
