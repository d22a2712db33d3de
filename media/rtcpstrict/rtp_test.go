package rtcpstrict

import (
	"testing"

	"github.com/pion/rtp"
)

func marshalRTP(t testing.TB, p *rtp.Packet) []byte {
	t.Helper()
	buf, err := p.Marshal()
	if err != nil {
		t.Fatalf("pion cannot marshal the fixture: %v", err)
	}
	return buf
}

func rtpHeader() rtp.Header {
	return rtp.Header{Version: 2, Marker: true, PayloadType: 96, SequenceNumber: 65535, Timestamp: 0xfedcba98, SSRC: 0x22222222}
}

// rtpFixtures are the RTP shapes real peers send, as pion marshals them,
// plus hand-built extension layouts pion reads but never writes.
func rtpFixtures(t testing.TB) map[string][]byte {
	t.Helper()
	oneByte := rtpHeader()
	for _, e := range []struct {
		id      uint8
		payload []byte
	}{{1, []byte{0x80}}, {3, []byte{1, 2, 3}}, {14, make([]byte, 16)}} {
		if err := oneByte.SetExtensionWithProfile(e.id, e.payload, rtp.ExtensionProfileOneByte); err != nil {
			t.Fatal(err)
		}
	}
	twoByte := rtpHeader()
	for _, e := range []struct {
		id      uint8
		payload []byte
	}{{20, make([]byte, 40)}, {2, nil}, {255, []byte{1}}} {
		if err := twoByte.SetExtensionWithProfile(e.id, e.payload, rtp.ExtensionProfileTwoByte); err != nil {
			t.Fatal(err)
		}
	}
	csrc := rtpHeader()
	csrc.CSRC = []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	padded := rtpHeader()
	padded.Padding = true
	padded.PaddingSize = 4
	probe := rtpHeader()
	probe.Padding = true
	probe.PaddingSize = 255
	return map[string][]byte{
		"plain":              marshalRTP(t, &rtp.Packet{Header: rtpHeader(), Payload: []byte("frame")}),
		"empty payload":      marshalRTP(t, &rtp.Packet{Header: rtpHeader()}),
		"15 CSRCs":           marshalRTP(t, &rtp.Packet{Header: csrc, Payload: []byte{1}}),
		"one-byte ext":       marshalRTP(t, &rtp.Packet{Header: oneByte, Payload: []byte("frame")}),
		"two-byte ext":       marshalRTP(t, &rtp.Packet{Header: twoByte, Payload: []byte("frame")}),
		"padding":            marshalRTP(t, &rtp.Packet{Header: padded, Payload: []byte("frame")}),
		"padding-only probe": marshalRTP(t, &rtp.Packet{Header: probe}),
		"one-byte ext with padding between elements": append(rtpBytes(0x90, 0xBE, 0xDE, 0, 2, 0x10, 0xaa, 0, 0, 0x21, 1, 2, 0), 'p'),
		"empty one-byte ext":                         rtpBytes(0x90, 0xBE, 0xDE, 0, 0),
		"two-byte ext with appbits":                  rtpBytes(0x90, 0x10, 0x07, 0, 1, 5, 1, 0xff, 0),
		"RFC 3550 ext, opaque profile":               rtpBytes(0x90, 0x12, 0x34, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8),
		"ext then padding":                           rtpBytes(0xb0, 0xBE, 0xDE, 0, 1, 0x10, 0xaa, 0, 0, 0, 0, 2),
	}
}

// rtpBytes is a 12-byte header with first byte b0 and PT 96, followed by
// rest.
func rtpBytes(b0 byte, rest ...byte) []byte {
	return append([]byte{b0, 96, 0, 1, 0, 0, 0, 2, 0x22, 0x22, 0x22, 0x22}, rest...)
}

func TestAcceptRTP(t *testing.T) {
	for name, buf := range rtpFixtures(t) {
		t.Run(name, func(t *testing.T) {
			if err := ValidateRTP(buf); err != nil {
				t.Fatalf("refused: %v\n% x", err, buf)
			}
			checkRTPRoundTrip(t, buf)
			if n := allocs(100, func() { _ = ValidateRTP(buf) }); n != 0 {
				t.Fatalf("100 calls of ValidateRTP allocated %d times, want 0", n)
			}
		})
	}
}

// TestRefuseRTP covers the options-dependent and derived cases; the
// hostile seeds in testdata/fuzz/FuzzRTP cover the rest.
func TestRefuseRTP(t *testing.T) {
	big := make([]byte, DefaultMaxDatagram+1)
	big[0] = 0x80
	tests := []struct {
		name string
		opts Options
		buf  []byte
		rule Rule
	}{
		{"over default MaxDatagram", Options{}, big, RuleRTPTooLarge},
		{"over MaxDatagram option", Options{MaxDatagram: 20}, rtpBytes(0x80, make([]byte, 9)...), RuleRTPTooLarge},
		{"11 bytes", Options{}, rtpBytes(0x80)[:11], RuleRTPTooShort},
		{"version 3", Options{}, rtpBytes(0xc0), RuleRTPVersion},
		{"one CSRC missing", Options{}, rtpBytes(0x82, 0, 0, 0, 1), RuleRTPCSRCOverrun},
		{"extension header cut", Options{}, rtpBytes(0x90, 0xBE, 0xDE), RuleRTPExtensionOverrun},
		{"extension length past end", Options{}, rtpBytes(0x90, 0xBE, 0xDE, 0, 2, 0x10, 1, 0, 0), RuleRTPExtensionOverrun},
		{"one-byte element past extension", Options{}, rtpBytes(0x90, 0xBE, 0xDE, 0, 1, 0x13, 1, 2, 3, 'p'), RuleRTPExtensionProfile},
		{"one-byte ID 15", Options{}, rtpBytes(0x90, 0xBE, 0xDE, 0, 1, 0xf0, 1, 0, 0), RuleRTPExtensionProfile},
		{"one-byte ID 0 with length", Options{}, rtpBytes(0x90, 0xBE, 0xDE, 0, 1, 0x01, 1, 2, 0), RuleRTPExtensionProfile},
		{"two-byte element without length", Options{}, rtpBytes(0x90, 0x10, 0x00, 0, 1, 0, 0, 0, 7), RuleRTPExtensionProfile},
		{"two-byte element past extension", Options{}, rtpBytes(0x90, 0x10, 0x00, 0, 1, 7, 3, 1, 2), RuleRTPExtensionProfile},
		{"padding count 0", Options{}, rtpBytes(0xa0, 1, 2, 3, 0), RuleRTPPaddingZero},
		{"padding past payload", Options{}, rtpBytes(0xa0, 1, 2, 3, 5), RuleRTPPaddingOverrun},
		{"padding into extension", Options{}, rtpBytes(0xb0, 0xBE, 0xDE, 0, 1, 0x12, 0xaa, 0xbb, 3), RuleRTPPaddingOverrun},
		{"padding bit on bare header", Options{}, rtpBytes(0xa0), RuleRTPPaddingOverrun},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.ValidateRTP(tt.buf)
			if got, ok := RuleOf(err); !ok || got != tt.rule {
				t.Fatalf("got %v, want rule %s", err, tt.rule)
			}
		})
	}
}
