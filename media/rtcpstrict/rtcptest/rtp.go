package rtcptest

import (
	"slices"
	"testing"

	"github.com/pion/rtp"
)

// MarshalRTP marshals p, failing t if pion cannot.
func MarshalRTP(t testing.TB, p *rtp.Packet) []byte {
	t.Helper()
	buf, err := p.Marshal()
	if err != nil {
		t.Fatalf("pion cannot marshal the fixture: %v", err)
	}
	return buf
}

// RTPHeader is a plain header: no CSRC, extension or padding.
func RTPHeader() rtp.Header {
	return rtp.Header{Version: 2, Marker: true, PayloadType: 96, SequenceNumber: 65535, Timestamp: 0xfedcba98, SSRC: 0x22222222}
}

// RTPBytes is a 12-byte header with first byte b0 and PT 96, followed by
// rest.
func RTPBytes(b0 byte, rest ...byte) []byte {
	return append([]byte{b0, 96, 0, 1, 0, 0, 0, 2, 0x22, 0x22, 0x22, 0x22}, rest...)
}

// RTPFixtures are the RTP shapes real peers send, as pion marshals them,
// plus hand-built extension layouts pion reads but never writes.
func RTPFixtures(t testing.TB) map[string][]byte {
	t.Helper()
	oneByte := RTPHeader()
	for _, e := range []struct {
		id      uint8
		payload []byte
	}{{1, []byte{0x80}}, {3, []byte{1, 2, 3}}, {14, make([]byte, 16)}} {
		if err := oneByte.SetExtensionWithProfile(e.id, e.payload, rtp.ExtensionProfileOneByte); err != nil {
			t.Fatal(err)
		}
	}
	twoByte := RTPHeader()
	for _, e := range []struct {
		id      uint8
		payload []byte
	}{{20, make([]byte, 40)}, {2, nil}, {255, []byte{1}}} {
		if err := twoByte.SetExtensionWithProfile(e.id, e.payload, rtp.ExtensionProfileTwoByte); err != nil {
			t.Fatal(err)
		}
	}
	csrc := RTPHeader()
	csrc.CSRC = []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	padded := RTPHeader()
	padded.Padding = true
	padded.PaddingSize = 4
	probe := RTPHeader()
	probe.Padding = true
	probe.PaddingSize = 255
	return map[string][]byte{
		"plain":              MarshalRTP(t, &rtp.Packet{Header: RTPHeader(), Payload: []byte("frame")}),
		"empty payload":      MarshalRTP(t, &rtp.Packet{Header: RTPHeader()}),
		"15 CSRCs":           MarshalRTP(t, &rtp.Packet{Header: csrc, Payload: []byte{1}}),
		"one-byte ext":       MarshalRTP(t, &rtp.Packet{Header: oneByte, Payload: []byte("frame")}),
		"two-byte ext":       MarshalRTP(t, &rtp.Packet{Header: twoByte, Payload: []byte("frame")}),
		"padding":            MarshalRTP(t, &rtp.Packet{Header: padded, Payload: []byte("frame")}),
		"padding-only probe": MarshalRTP(t, &rtp.Packet{Header: probe}),
		"one-byte ext with padding between elements": append(RTPBytes(0x90, 0xBE, 0xDE, 0, 2, 0x10, 0xaa, 0, 0, 0x21, 1, 2, 0), 'p'),
		"empty one-byte ext":                         RTPBytes(0x90, 0xBE, 0xDE, 0, 0),
		"two-byte ext with appbits":                  RTPBytes(0x90, 0x10, 0x07, 0, 1, 5, 1, 0xff, 0),
		"RFC 3550 ext, opaque profile":               RTPBytes(0x90, 0x12, 0x34, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8),
		"ext then padding":                           RTPBytes(0xb0, 0xBE, 0xDE, 0, 1, 0x10, 0xaa, 0, 0, 0, 0, 2),
	}
}

// RTPPackets is RTPFixtures in a fixed order, for a fuzz target's seeds.
func RTPPackets(t testing.TB) [][]byte {
	fixtures := RTPFixtures(t)
	names := make([]string, 0, len(fixtures))
	for name := range fixtures {
		names = append(names, name)
	}
	slices.Sort(names)
	out := make([][]byte, 0, len(names))
	for _, name := range names {
		out = append(out, fixtures[name])
	}
	return out
}
