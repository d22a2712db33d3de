package rtcptest

import (
	"encoding/binary"
	"testing"

	"github.com/pion/rtcp"
)

// Marshal joins pion-marshalled packets into one datagram, the way a peer
// built on pion sends them.
func Marshal(t testing.TB, packets ...rtcp.Packet) []byte {
	t.Helper()
	buf, err := rtcp.Marshal(packets)
	if err != nil {
		t.Fatalf("pion cannot marshal the fixture: %v", err)
	}
	return buf
}

// Join concatenates datagrams.
func Join(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Raw builds a packet from its type, count/FMT and word-aligned body, with
// the length field filled in.
func Raw(pt, count byte, body ...byte) []byte {
	if len(body)%4 != 0 {
		panic("rtcptest.Raw: body must be word-aligned")
	}
	b := []byte{0x80 | count, pt, 0, 0}
	binary.BigEndian.PutUint16(b[2:], uint16(len(body)/4))
	return append(b, body...)
}

// PadLast sets the padding bit on the last packet of buf, which starts at
// off, and appends n padding bytes ending in the count.
func PadLast(buf []byte, off, n int) []byte {
	out := append([]byte(nil), buf...)
	out[off] |= 0x20
	for i := 1; i < n; i++ {
		out = append(out, 0)
	}
	out = append(out, byte(n))
	binary.BigEndian.PutUint16(out[off+2:], uint16((len(out)-off)/4-1))
	return out
}

// RR and the builders after it return one packet of their type, filled as
// a pion-based peer fills it.
func RR() *rtcp.ReceiverReport {
	return &rtcp.ReceiverReport{
		SSRC: 0x11111111,
		Reports: []rtcp.ReceptionReport{{
			SSRC: 0x22222222, FractionLost: 12, TotalLost: 345, LastSequenceNumber: 0x00010203,
			Jitter: 40, LastSenderReport: 0x01020304, Delay: 5000,
		}},
	}
}

func SR() *rtcp.SenderReport {
	return &rtcp.SenderReport{
		SSRC: 0x22222222, NTPTime: 0xe0e1e2e3e4e5e6e7, RTPTime: 90000, PacketCount: 100, OctetCount: 120000,
		Reports: []rtcp.ReceptionReport{{SSRC: 0x33333333, TotalLost: 1, LastSequenceNumber: 9}},
	}
}

func SDES() *rtcp.SourceDescription {
	return &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{
		{Source: 0x22222222, Items: []rtcp.SourceDescriptionItem{
			{Type: rtcp.SDESCNAME, Text: "sotto-7f3a"},
			{Type: rtcp.SDESTool, Text: "sotto"},
		}},
		{Source: 0x33333333, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "abc"}}},
		{Source: 0x44444444},
	}}
}

func BYE() *rtcp.Goodbye {
	return &rtcp.Goodbye{Sources: []uint32{0x22222222, 0x33333333}, Reason: "call ended"}
}

func PLI() *rtcp.PictureLossIndication {
	return &rtcp.PictureLossIndication{SenderSSRC: 0x11111111, MediaSSRC: 0x22222222}
}

func FIR() *rtcp.FullIntraRequest {
	return &rtcp.FullIntraRequest{SenderSSRC: 0x11111111, FIR: []rtcp.FIREntry{{SSRC: 0x22222222, SequenceNumber: 7}, {SSRC: 0x33333333, SequenceNumber: 8}}}
}

func NACK() *rtcp.TransportLayerNack {
	return &rtcp.TransportLayerNack{
		SenderSSRC: 0x11111111, MediaSSRC: 0x22222222,
		Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{100, 101, 105, 116, 200, 65535}),
	}
}

func REMB() *rtcp.ReceiverEstimatedMaximumBitrate {
	return &rtcp.ReceiverEstimatedMaximumBitrate{SenderSSRC: 0x11111111, Bitrate: 1.5e6, SSRCs: []uint32{0x22222222, 0x33333333}}
}

// TWCC builds transport-wide CC feedback with all three chunk kinds and
// both delta sizes, as pion's interceptor fills it. padded leaves the body
// off a 32-bit boundary, so pion pads it with the P bit set, as libwebrtc
// does.
func TWCC(padded bool) *rtcp.TransportLayerCC {
	small := func(us int64) *rtcp.RecvDelta {
		return &rtcp.RecvDelta{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: us}
	}
	large := func(us int64) *rtcp.RecvDelta {
		return &rtcp.RecvDelta{Type: rtcp.TypeTCCPacketReceivedLargeDelta, Delta: us}
	}
	twcc := &rtcp.TransportLayerCC{
		SenderSSRC: 0x11111111, MediaSSRC: 0x22222222,
		BaseSequenceNumber: 65530, ReferenceTime: 0x123456, FbPktCount: 9,
		PacketChunks: []rtcp.PacketStatusChunk{
			&rtcp.RunLengthChunk{Type: rtcp.TypeTCCRunLengthChunk, PacketStatusSymbol: rtcp.TypeTCCPacketReceivedSmallDelta, RunLength: 3},
			&rtcp.StatusVectorChunk{Type: rtcp.TypeTCCStatusVectorChunk, SymbolSize: rtcp.TypeTCCSymbolSizeTwoBit, SymbolList: []uint16{
				rtcp.TypeTCCPacketReceivedSmallDelta, rtcp.TypeTCCPacketReceivedLargeDelta, rtcp.TypeTCCPacketNotReceived,
				rtcp.TypeTCCPacketReceivedSmallDelta, rtcp.TypeTCCPacketNotReceived, rtcp.TypeTCCPacketNotReceived,
				rtcp.TypeTCCPacketReceivedLargeDelta,
			}},
			&rtcp.StatusVectorChunk{Type: rtcp.TypeTCCStatusVectorChunk, SymbolSize: rtcp.TypeTCCSymbolSizeOneBit, SymbolList: []uint16{
				1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
			}},
			&rtcp.RunLengthChunk{Type: rtcp.TypeTCCRunLengthChunk, PacketStatusSymbol: rtcp.TypeTCCPacketNotReceived, RunLength: 20},
			&rtcp.RunLengthChunk{Type: rtcp.TypeTCCRunLengthChunk, PacketStatusSymbol: rtcp.TypeTCCPacketReceivedLargeDelta, RunLength: 1},
		},
		RecvDeltas: []*rtcp.RecvDelta{
			small(250), small(500), small(0),
			small(63750), large(-250), small(1000), large(8191750),
			small(250), small(250), small(750),
			large(-8192000),
		},
	}
	twcc.PacketStatusCount = 3 + 7 + 14 + 20 + 1
	// As built the body is 44 bytes, word-aligned. Dropping one small delta
	// and its symbol leaves 43, which needs one byte of padding.
	if padded {
		twcc.PacketChunks[2] = &rtcp.StatusVectorChunk{Type: rtcp.TypeTCCStatusVectorChunk, SymbolSize: rtcp.TypeTCCSymbolSizeOneBit, SymbolList: []uint16{
			1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		}}
		twcc.RecvDeltas = append(twcc.RecvDeltas[:9], twcc.RecvDeltas[10:]...)
	}
	size := twcc.MarshalSize()
	twcc.Header = rtcp.Header{
		Padding: padded,
		Count:   rtcp.FormatTCC,
		Type:    rtcp.TypeTransportSpecificFeedback,
		Length:  uint16(size/4 - 1),
	}
	return twcc
}

func CCFB() *rtcp.CCFeedbackReport {
	metrics := make([]rtcp.CCFeedbackMetricBlock, 11)
	for i := range metrics {
		if i%3 != 2 {
			metrics[i] = rtcp.CCFeedbackMetricBlock{Received: true, ECN: rtcp.ECNECT0, ArrivalTimeOffset: uint16(100 + i)}
		}
	}
	return &rtcp.CCFeedbackReport{
		SenderSSRC: 0x11111111,
		ReportBlocks: []rtcp.CCFeedbackReportBlock{
			// The first block's sequence numbers wrap past 65535, as they may.
			{MediaSSRC: 0x22222222, BeginSequence: 65530, MetricBlocks: metrics},
			{MediaSSRC: 0x33333333, BeginSequence: 7},
		},
		ReportTimestamp: 0xabcdef01,
	}
}

func XR() *rtcp.ExtendedReport {
	return &rtcp.ExtendedReport{SenderSSRC: 0x11111111, Reports: []rtcp.ReportBlock{
		&rtcp.ReceiverReferenceTimeReportBlock{NTPTimestamp: 0x0102030405060708},
		&rtcp.DLRRReportBlock{Reports: []rtcp.DLRRReport{{SSRC: 0x22222222, LastRR: 1, DLRR: 2}}},
		&rtcp.LossRLEReportBlock{T: 3, SSRC: 0x22222222, BeginSeq: 1, EndSeq: 50, Chunks: []rtcp.Chunk{0x4005, 0x8123}},
		&rtcp.StatisticsSummaryReportBlock{LossReports: true, JitterReports: true, TTLorHopLimit: rtcp.ToHIPv4, SSRC: 0x22222222, BeginSeq: 1, EndSeq: 9, MaxJitter: 4},
		&rtcp.VoIPMetricsReportBlock{SSRC: 0x22222222, LossRate: 1, RFactor: 90},
		&rtcp.UnknownReportBlock{XRHeader: rtcp.XRHeader{BlockType: 42, TypeSpecific: 0xff}, Bytes: []byte{1, 2, 3, 4}},
	}}
}

func APP() *rtcp.ApplicationDefined {
	return &rtcp.ApplicationDefined{SubType: 3, SSRC: 0x11111111, Name: "SOTO", Data: []byte("qualitysmpl!")}
}

// Datagrams is good traffic for a fuzz target to start from: RFC 3550
// compounds and the lone feedback of reduced-size RTCP.
func Datagrams(t testing.TB) [][]byte {
	return [][]byte{
		Marshal(t, SR(), SDES()),
		Marshal(t, RR(), SDES(), PLI()),
		Marshal(t, RR(), SDES(), BYE()),
		Marshal(t, RR(), SDES(), NACK(), FIR(), REMB()),
		Marshal(t, PLI()),
		Marshal(t, NACK()),
		Marshal(t, TWCC(false)),
		Marshal(t, TWCC(true)),
		Marshal(t, XR()),
		Marshal(t, CCFB()),
		Marshal(t, APP()),
	}
}
