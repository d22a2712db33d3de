package fuzz

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/sotto-rtc/sotto/media/rtcpstrict"
)

// TestPionDefects is the evidence behind the pion defects docs/FUZZING.md
// lists, each shown against the pinned pion/rtcp v1.2.17 and pion/rtp
// v1.10.5, each with the regression seed rtcpstrict refuses it by. When a
// pion upgrade fixes one, its case fails here: update the document, and
// decide whether the rule that shields it can be relaxed.
func TestPionDefects(t *testing.T) {
	seeds := readCorpus(t, "FuzzRTCP")
	rtpSeeds := readCorpus(t, "FuzzRTP")
	tests := []struct {
		name string
		// seed names the regression seed in FuzzRTCP (or FuzzRTP when
		// rtpSeed) that rtcpstrict must refuse; "" when the defect is in
		// pion's writing side and no incoming datagram carries it.
		seed    string
		rtpSeed bool
		// defect returns nil while pion still behaves as described.
		defect func(t *testing.T) string
	}{
		{"RR profile extensions are written outside the length field", "rr_profile_extension", false, func(t *testing.T) string {
			out, err := (&rtcp.ReceiverReport{SSRC: 1, ProfileExtensions: []byte{1, 2, 3, 4}}).Marshal()
			if err != nil {
				return "Marshal failed: " + err.Error()
			}
			if words := binary.BigEndian.Uint16(out[2:]); len(out) == 12 && words == 1 {
				return ""
			}
			return "the length field now counts the extensions"
		}},
		{"SLI is dispatched to a parser that demands PT 205", "sli_pion_cannot_parse", false, func(t *testing.T) string {
			sli := []byte{0x82, 206, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0x41}
			if _, err := rtcp.Unmarshal(sli); err != nil {
				return ""
			}
			return "a well-formed SLI parses"
		}},
		{"REMB with mantissa 0 reads as a non-zero bitrate", "remb_zero_mantissa", false, func(t *testing.T) string {
			// Exponent 1, mantissa 0: 0 bit/s.
			remb := []byte{0x8f, 206, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0, 'R', 'E', 'M', 'B', 0, 1 << 2, 0, 0}
			pkts, err := rtcp.Unmarshal(remb)
			if err != nil {
				return "does not parse: " + err.Error()
			}
			if br := pkts[0].(*rtcp.ReceiverEstimatedMaximumBitrate).Bitrate; br != 0 {
				t.Logf("exponent 1, mantissa 0 reads as %v bit/s", br)
				return ""
			}
			return "mantissa 0 reads as 0"
		}},
		{"application-layer feedback that is not REMB is parsed as REMB and fails", "remb_bad_identifier", false, func(t *testing.T) string {
			afb := []byte{0x8f, 206, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0, 'G', 'O', 'O', 'G', 1, 2, 3, 4}
			if _, err := rtcp.Unmarshal(afb); err != nil {
				return ""
			}
			return "non-REMB application feedback parses"
		}},
		{"TWCC whose last chunk ends at the packet's end is refused", "twcc_chunks_end_at_packet_end", false, func(t *testing.T) string {
			// Status count 2 in two run-length chunks of one "not
			// received" each: no deltas, so the second chunk ends the
			// packet, which libwebrtc writes and pion refuses.
			seed := seeds["twcc_chunks_end_at_packet_end"]
			if _, err := rtcp.Unmarshal(seed); err != nil {
				return ""
			}
			return "the seed parses"
		}},
		{"TWCC with words after its deltas parses but cannot be written back", "twcc_words_after_deltas", false, func(t *testing.T) string {
			cc, err := parseTWCC(seeds["twcc_words_after_deltas"])
			if err != nil {
				return "does not parse: " + err.Error()
			}
			out, err := cc.Marshal()
			if err != nil {
				t.Logf("Marshal: %v", err)
				return ""
			}
			if back, err := rtcp.Unmarshal(out); err != nil || len(out) != cc.MarshalSize() || len(back) != 1 {
				t.Logf("%d bytes written, MarshalSize %d, parsing them back: %v", len(out), cc.MarshalSize(), err)
				return ""
			}
			return "round-trips"
		}},
		{"TWCC vector symbols past the status count are read as deltas", "twcc_vector_beyond_count", false, func(t *testing.T) string {
			cc, err := parseTWCC(seeds["twcc_vector_beyond_count"])
			if err != nil {
				return "does not parse: " + err.Error()
			}
			if len(cc.RecvDeltas) > int(cc.PacketStatusCount) {
				t.Logf("status count %d, %d deltas read", cc.PacketStatusCount, len(cc.RecvDeltas))
				return ""
			}
			return "deltas stay within the status count"
		}},
		{"TWCC marshalled with Padding on a word-aligned body writes padding count 0 over its last delta", "", false, func(t *testing.T) string {
			cc := &rtcp.TransportLayerCC{
				Header:            rtcp.Header{Padding: true, Count: rtcp.FormatTCC, Type: rtcp.TypeTransportSpecificFeedback},
				SenderSSRC:        1,
				MediaSSRC:         2,
				PacketStatusCount: 2,
				PacketChunks:      []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{Type: rtcp.TypeTCCRunLengthChunk, PacketStatusSymbol: rtcp.TypeTCCPacketReceivedSmallDelta, RunLength: 2}},
				// 250 and 500 microseconds: delta bytes 1 and 2, which end
				// the 24-byte body on a word boundary.
				RecvDeltas: []*rtcp.RecvDelta{{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 250}, {Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 500}},
			}
			// pion writes Header.Length as given; its own interceptor
			// fills it in, and so must any caller.
			cc.Header.Length = uint16(cc.MarshalSize()/4 - 1)
			out, err := cc.Marshal()
			if err != nil {
				return "Marshal failed: " + err.Error()
			}
			if len(out) == 24 && out[0]&0x20 != 0 && out[22] == 1 && out[23] == 0 {
				if rule := (rtcpstrict.Options{ReducedSize: true}).Check(out); rule != rtcpstrict.RulePaddingZero {
					return "rtcpstrict does not refuse it as padding_zero: " + string(rule)
				}
				return ""
			}
			t.Logf("% x", out)
			return "the last delta survives"
		}},
		{"XR block running past the packet is clipped, not refused", "xr_block_overrun", false, func(t *testing.T) string {
			if _, err := rtcp.Unmarshal(seeds["xr_block_overrun"]); err == nil {
				return ""
			}
			return "the overrun is refused"
		}},
		{"XR MarshalSize leaves out the 4-byte header", "", false, func(t *testing.T) string {
			xr := &rtcp.ExtendedReport{SenderSSRC: 1, Reports: []rtcp.ReportBlock{&rtcp.ReceiverReferenceTimeReportBlock{NTPTimestamp: 1}}}
			out, err := xr.Marshal()
			if err != nil {
				return "Marshal failed: " + err.Error()
			}
			if len(out) == xr.MarshalSize()+4 {
				return ""
			}
			return "MarshalSize is right"
		}},
		{"CCFB metric blocks may run into the report timestamp, which is then read as metrics", "ccfb_metrics_overlap_timestamp", false, func(t *testing.T) string {
			pkts, err := rtcp.Unmarshal(seeds["ccfb_metrics_overlap_timestamp"])
			if err != nil {
				return "refused: " + err.Error()
			}
			for _, p := range pkts {
				if cc, ok := p.(*rtcp.CCFeedbackReport); ok && len(cc.ReportBlocks) == 1 && len(cc.ReportBlocks[0].MetricBlocks) == 2 {
					t.Logf("report timestamp %08x also read as metric blocks %+v", cc.ReportTimestamp, cc.ReportBlocks[0].MetricBlocks)
					return ""
				}
			}
			return "no overlapping metric blocks read"
		}},
		{"rtp.Header.Unmarshal accepts any version", "rtp_version_1", true, func(t *testing.T) string {
			var h rtp.Header
			if _, err := h.Unmarshal(rtpSeeds["rtp_version_1"]); err == nil && h.Version != 2 {
				return ""
			}
			return "version 1 is refused"
		}},
		{"a one-byte extension element with ID 15 ends pion's walk and drops what follows", "rtp_one_byte_id_15", true, func(t *testing.T) string {
			// ID 15 (reserved), then element ID 1 with one byte.
			pkt := []byte{0x90, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0xBE, 0xDE, 0, 1, 0xf0, 0x10, 0xaa, 0, 'p'}
			var h rtp.Header
			if _, err := h.Unmarshal(pkt); err != nil {
				return "does not parse: " + err.Error()
			}
			if h.GetExtension(1) == nil {
				return ""
			}
			return "the element after ID 15 is read"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.defect(t); got != "" {
				t.Fatalf("pion no longer shows this defect (%s); update docs/FUZZING.md", got)
			}
			if tt.seed == "" {
				return
			}
			if tt.rtpSeed {
				buf, ok := rtpSeeds[tt.seed]
				if !ok {
					t.Fatalf("no FuzzRTP seed %s", tt.seed)
				}
				if rtcpstrict.ValidateRTP(buf) == nil {
					t.Fatalf("rtcpstrict accepts regression seed %s", tt.seed)
				}
				return
			}
			buf, ok := seeds[tt.seed]
			if !ok {
				t.Fatalf("no FuzzRTCP seed %s", tt.seed)
			}
			if (rtcpstrict.Options{ReducedSize: true}).Validate(buf) == nil {
				t.Fatalf("rtcpstrict accepts regression seed %s", tt.seed)
			}
		})
	}
}

// parseTWCC parses a seed compound with pion and returns its transport-wide
// CC packet.
func parseTWCC(buf []byte) (*rtcp.TransportLayerCC, error) {
	pkts, err := rtcp.Unmarshal(buf)
	if err != nil {
		return nil, err
	}
	for _, p := range pkts {
		if cc, ok := p.(*rtcp.TransportLayerCC); ok {
			return cc, nil
		}
	}
	return nil, errors.New("no transport-wide CC packet in the seed")
}
