package rtcpstrict

import (
	"testing"

	"github.com/sotto-rtc/sotto/media/rtcpstrict/rtcptest"
)

func TestAcceptRTP(t *testing.T) {
	for name, buf := range rtcptest.RTPFixtures(t) {
		t.Run(name, func(t *testing.T) {
			if err := ValidateRTP(buf); err != nil {
				t.Fatalf("refused: %v\n% x", err, buf)
			}
			rtcptest.CheckRTPRoundTrip(t, ValidateRTP, buf)
			if n := rtcptest.Allocs(100, func() { _ = ValidateRTP(buf) }); n != 0 {
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
		{"over MaxDatagram option", Options{MaxDatagram: 20}, rtcptest.RTPBytes(0x80, make([]byte, 9)...), RuleRTPTooLarge},
		{"11 bytes", Options{}, rtcptest.RTPBytes(0x80)[:11], RuleRTPTooShort},
		{"version 3", Options{}, rtcptest.RTPBytes(0xc0), RuleRTPVersion},
		{"one CSRC missing", Options{}, rtcptest.RTPBytes(0x82, 0, 0, 0, 1), RuleRTPCSRCOverrun},
		{"extension header cut", Options{}, rtcptest.RTPBytes(0x90, 0xBE, 0xDE), RuleRTPExtensionOverrun},
		{"extension length past end", Options{}, rtcptest.RTPBytes(0x90, 0xBE, 0xDE, 0, 2, 0x10, 1, 0, 0), RuleRTPExtensionOverrun},
		{"one-byte element past extension", Options{}, rtcptest.RTPBytes(0x90, 0xBE, 0xDE, 0, 1, 0x13, 1, 2, 3, 'p'), RuleRTPExtensionProfile},
		{"one-byte ID 15", Options{}, rtcptest.RTPBytes(0x90, 0xBE, 0xDE, 0, 1, 0xf0, 1, 0, 0), RuleRTPExtensionProfile},
		{"one-byte ID 0 with length", Options{}, rtcptest.RTPBytes(0x90, 0xBE, 0xDE, 0, 1, 0x01, 1, 2, 0), RuleRTPExtensionProfile},
		{"two-byte element without length", Options{}, rtcptest.RTPBytes(0x90, 0x10, 0x00, 0, 1, 0, 0, 0, 7), RuleRTPExtensionProfile},
		{"two-byte element past extension", Options{}, rtcptest.RTPBytes(0x90, 0x10, 0x00, 0, 1, 7, 3, 1, 2), RuleRTPExtensionProfile},
		{"padding count 0", Options{}, rtcptest.RTPBytes(0xa0, 1, 2, 3, 0), RuleRTPPaddingZero},
		{"padding past payload", Options{}, rtcptest.RTPBytes(0xa0, 1, 2, 3, 5), RuleRTPPaddingOverrun},
		{"padding into extension", Options{}, rtcptest.RTPBytes(0xb0, 0xBE, 0xDE, 0, 1, 0x12, 0xaa, 0xbb, 3), RuleRTPPaddingOverrun},
		{"padding bit on bare header", Options{}, rtcptest.RTPBytes(0xa0), RuleRTPPaddingOverrun},
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
