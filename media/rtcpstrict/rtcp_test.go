package rtcpstrict

import (
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/pion/rtcp"
)

// marshal joins pion-marshalled packets into one datagram, the way a peer
// built on pion would send them.
func marshal(t testing.TB, packets ...rtcp.Packet) []byte {
	t.Helper()
	buf, err := rtcp.Marshal(packets)
	if err != nil {
		t.Fatalf("pion cannot marshal the fixture: %v", err)
	}
	return buf
}

func join(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func testRR() *rtcp.ReceiverReport {
	return &rtcp.ReceiverReport{
		SSRC: 0x11111111,
		Reports: []rtcp.ReceptionReport{{
			SSRC: 0x22222222, FractionLost: 12, TotalLost: 345, LastSequenceNumber: 0x00010203,
			Jitter: 40, LastSenderReport: 0x01020304, Delay: 5000,
		}},
	}
}

func testSR() *rtcp.SenderReport {
	return &rtcp.SenderReport{
		SSRC: 0x22222222, NTPTime: 0xe0e1e2e3e4e5e6e7, RTPTime: 90000, PacketCount: 100, OctetCount: 120000,
		Reports: []rtcp.ReceptionReport{{SSRC: 0x33333333, TotalLost: 1, LastSequenceNumber: 9}},
	}
}

func testSDES() *rtcp.SourceDescription {
	return &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{
		{Source: 0x22222222, Items: []rtcp.SourceDescriptionItem{
			{Type: rtcp.SDESCNAME, Text: "sotto-7f3a"},
			{Type: rtcp.SDESTool, Text: "sotto"},
		}},
		{Source: 0x33333333, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "abc"}}},
		{Source: 0x44444444},
	}}
}

func testBYE() *rtcp.Goodbye {
	return &rtcp.Goodbye{Sources: []uint32{0x22222222, 0x33333333}, Reason: "call ended"}
}

func testPLI() *rtcp.PictureLossIndication {
	return &rtcp.PictureLossIndication{SenderSSRC: 0x11111111, MediaSSRC: 0x22222222}
}

func testFIR() *rtcp.FullIntraRequest {
	return &rtcp.FullIntraRequest{SenderSSRC: 0x11111111, FIR: []rtcp.FIREntry{{SSRC: 0x22222222, SequenceNumber: 7}, {SSRC: 0x33333333, SequenceNumber: 8}}}
}

func testNACK() *rtcp.TransportLayerNack {
	return &rtcp.TransportLayerNack{
		SenderSSRC: 0x11111111, MediaSSRC: 0x22222222,
		Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{100, 101, 105, 116, 200, 65535}),
	}
}

func testREMB() *rtcp.ReceiverEstimatedMaximumBitrate {
	return &rtcp.ReceiverEstimatedMaximumBitrate{SenderSSRC: 0x11111111, Bitrate: 1.5e6, SSRCs: []uint32{0x22222222, 0x33333333}}
}

// testTWCC builds transport-wide CC feedback with all three chunk kinds and
// both delta sizes, the way pion's interceptor fills the struct. padded
// makes the body end off a 32-bit boundary, so pion pads it with the P bit
// set, as libwebrtc does. (pion writes a padding count of 0 if Padding is
// set on an aligned body; the validator refuses that.)
func testTWCC(padded bool) *rtcp.TransportLayerCC {
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

func testCCFB() *rtcp.CCFeedbackReport {
	metrics := make([]rtcp.CCFeedbackMetricBlock, 11)
	for i := range metrics {
		if i%3 != 2 {
			metrics[i] = rtcp.CCFeedbackMetricBlock{Received: true, ECN: rtcp.ECNECT0, ArrivalTimeOffset: uint16(100 + i)}
		}
	}
	return &rtcp.CCFeedbackReport{
		SenderSSRC: 0x11111111,
		ReportBlocks: []rtcp.CCFeedbackReportBlock{
			// begin_seq+num_reports-1 passes 65535: a legal wrap of the
			// sequence space.
			{MediaSSRC: 0x22222222, BeginSequence: 65530, MetricBlocks: metrics},
			{MediaSSRC: 0x33333333, BeginSequence: 7},
		},
		ReportTimestamp: 0xabcdef01,
	}
}

func testXR() *rtcp.ExtendedReport {
	return &rtcp.ExtendedReport{SenderSSRC: 0x11111111, Reports: []rtcp.ReportBlock{
		&rtcp.ReceiverReferenceTimeReportBlock{NTPTimestamp: 0x0102030405060708},
		&rtcp.DLRRReportBlock{Reports: []rtcp.DLRRReport{{SSRC: 0x22222222, LastRR: 1, DLRR: 2}}},
		&rtcp.LossRLEReportBlock{T: 3, SSRC: 0x22222222, BeginSeq: 1, EndSeq: 50, Chunks: []rtcp.Chunk{0x4005, 0x8123}},
		&rtcp.StatisticsSummaryReportBlock{LossReports: true, JitterReports: true, TTLorHopLimit: rtcp.ToHIPv4, SSRC: 0x22222222, BeginSeq: 1, EndSeq: 9, MaxJitter: 4},
		&rtcp.VoIPMetricsReportBlock{SSRC: 0x22222222, LossRate: 1, RFactor: 90},
		&rtcp.UnknownReportBlock{XRHeader: rtcp.XRHeader{BlockType: 42, TypeSpecific: 0xff}, Bytes: []byte{1, 2, 3, 4}},
	}}
}

func testAPP() *rtcp.ApplicationDefined {
	return &rtcp.ApplicationDefined{SubType: 3, SSRC: 0x11111111, Name: "SOTO", Data: []byte("qualitysmpl!")}
}

// raw builds a packet from its type, count/FMT and body words, with the
// length field filled in.
func raw(pt, count byte, body ...byte) []byte {
	if len(body)%4 != 0 {
		panic("raw: body must be word-aligned")
	}
	b := []byte{0x80 | count, pt, 0, 0}
	binary.BigEndian.PutUint16(b[2:], uint16(len(body)/4))
	return append(b, body...)
}

// padLast sets the padding bit on the last packet of buf, which starts at
// off, and appends n padding bytes ending in the count.
func padLast(buf []byte, off, n int) []byte {
	out := append([]byte(nil), buf...)
	out[off] |= 0x20
	for i := 1; i < n; i++ {
		out = append(out, 0)
	}
	out = append(out, byte(n))
	binary.BigEndian.PutUint16(out[off+2:], uint16((len(out)-off)/4-1))
	return out
}

// TestAcceptPionTraffic: what pion marshals for real traffic passes, in
// strict mode as RFC 3550 compounds and in reduced-size mode as lone
// feedback, and Parse then returns exactly what rtcp.Unmarshal does.
func TestAcceptPionTraffic(t *testing.T) {
	strict := Options{}
	reduced := Options{ReducedSize: true}
	tests := []struct {
		name string
		opts Options
		buf  []byte
	}{
		{"SR+SDES", strict, marshal(t, testSR(), testSDES())},
		{"SR without reports+SDES", strict, marshal(t, &rtcp.SenderReport{SSRC: 1}, rtcp.NewCNAMESourceDescription(1, "x"))},
		{"SR with profile extension+SDES", strict, marshal(t, &rtcp.SenderReport{SSRC: 1, ProfileExtensions: []byte{1, 2, 3, 4}}, testSDES())},
		{"RR+SDES+PLI", strict, marshal(t, testRR(), testSDES(), testPLI())},
		{"RR+SDES+BYE", strict, marshal(t, testRR(), testSDES(), testBYE())},
		{"empty RR+SDES+BYE without reason", strict, marshal(t, &rtcp.ReceiverReport{SSRC: 1}, rtcp.NewCNAMESourceDescription(1, "x"), &rtcp.Goodbye{Sources: []uint32{1}})},
		{"RR+SDES+every feedback", strict, marshal(t, testRR(), testSDES(), testNACK(), testFIR(), testREMB(), testXR(), testAPP(), testCCFB(), testTWCC(true))},
		{"SR+RR+SDES", strict, marshal(t, testSR(), testRR(), testSDES())},
		{"lone PLI", reduced, marshal(t, testPLI())},
		{"lone FIR", reduced, marshal(t, testFIR())},
		{"lone NACK", reduced, marshal(t, testNACK())},
		{"lone REMB", reduced, marshal(t, testREMB())},
		{"lone TWCC padded", reduced, marshal(t, testTWCC(true))},
		{"lone TWCC aligned", reduced, marshal(t, testTWCC(false))},
		{"lone CCFB", reduced, marshal(t, testCCFB())},
		{"lone XR", reduced, marshal(t, testXR())},
		{"lone RRR", reduced, marshal(t, &rtcp.RapidResynchronizationRequest{SenderSSRC: 1, MediaSSRC: 2})},
		{"lone BYE", reduced, marshal(t, testBYE())},
		{"lone APP", reduced, marshal(t, testAPP())},
		{"PLI+REMB+NACK", reduced, marshal(t, testPLI(), testREMB(), testNACK())},
		{"compound in reduced mode", reduced, marshal(t, testRR(), testSDES(), testPLI())},
		{"TMMBR", reduced, raw(typeRTPFB, fmtTMMBR, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0x04, 0x01, 0x00, 0x28)},
		{"empty TMMBN", reduced, raw(typeRTPFB, fmtTMMBN, 0, 0, 0, 1, 0, 0, 0, 0)},
		{"unassigned RTPFB FMT", reduced, raw(typeRTPFB, 8, 0, 0, 0, 1, 0, 0, 0, 2)},
		{"RPSI", reduced, raw(typePSFB, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 96, 1, 2)},
		{"unknown RTCP type in range", reduced, raw(210, 0, 1, 2, 3, 4)},
		{"unknown RTCP type after SR+SDES", strict, join(marshal(t, testSR(), testSDES()), raw(195, 1, 0, 0, 0, 9))},
		{"SDES with PRIV item", reduced, raw(typeSDES, 1, 0, 0, 0, 1, sdesPRIV, 5, 2, 'a', 'b', 'x', 'y', 0)},
		{"empty SDES", reduced, raw(typeSDES, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.opts.Validate(tt.buf); err != nil {
				t.Fatalf("Validate refused pion-marshalled traffic: %v", err)
			}
			got, err := tt.opts.Parse(tt.buf)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want, err := rtcp.Unmarshal(tt.buf)
			if err != nil {
				t.Fatalf("rtcp.Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Parse and rtcp.Unmarshal disagree:\n got %v\nwant %v", got, want)
			}
			checkRoundTrip(t, tt.opts, tt.buf)
		})
	}
}

// TestAcceptPadding: RFC 3550 padding on the last packet is accepted, and
// Parse hands pion the packet without it, so the result is what pion
// returns for the unpadded datagram.
func TestAcceptPadding(t *testing.T) {
	rrSDES := marshal(t, testRR(), testSDES())
	pli := marshal(t, testPLI())
	compound := marshal(t, testRR(), testSDES(), testBYE())
	tests := []struct {
		name     string
		opts     Options
		padded   []byte
		unpadded []byte
	}{
		{"SDES padded by 4", Options{}, padLast(rrSDES, len(marshal(t, testRR())), 4), rrSDES},
		{"BYE padded by 8", Options{}, padLast(compound, len(rrSDES), 8), compound},
		{"PLI padded by 4", Options{ReducedSize: true}, padLast(pli, 0, 4), pli},
		{"lone RR padded", Options{ReducedSize: true}, padLast(marshal(t, testRR()), 0, 4), marshal(t, testRR())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.opts.Parse(tt.padded)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want, err := rtcp.Unmarshal(tt.unpadded)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("padded datagram parsed as\n%v\nwant\n%v", got, want)
			}
			checkRoundTrip(t, tt.opts, tt.padded)
		})
	}
	// The caller's buffer is never rewritten in place.
	padded := padLast(pli, 0, 4)
	before := append([]byte(nil), padded...)
	if _, err := (Options{ReducedSize: true}).Parse(padded); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(padded, before) {
		t.Fatal("Parse modified its input")
	}
}

// TestRefuse: each hostile or pion-unsafe shape is refused with its rule.
// The seed corpus (TestSeedCorpusRefused) holds more; this table covers
// what depends on options or is easiest built from a valid packet.
func TestRefuse(t *testing.T) {
	rrSDES := marshal(t, testRR(), testSDES())
	reduced := Options{ReducedSize: true}
	nack := func(entries int) []byte {
		body := make([]byte, 8+4*entries)
		return raw(typeRTPFB, fmtNACK, body...)
	}
	twcc := marshal(t, testTWCC(true))
	twccPad := int(twcc[len(twcc)-1])
	tests := []struct {
		name string
		opts Options
		buf  []byte
		rule Rule
	}{
		{"nil", Options{}, nil, RuleTooShort},
		{"MaxDatagram", Options{MaxDatagram: 40, ReducedSize: true}, marshal(t, testRR(), testSDES()), RuleDatagramTooLarge},
		{"MaxPackets", Options{MaxPackets: 2}, marshal(t, testRR(), testSDES(), testPLI()), RuleTooManyPackets},
		{"MaxNACKEntries", Options{MaxNACKEntries: 2, ReducedSize: true}, nack(3), RuleNACKTooMany},
		{"NACK entries at the default", reduced, nack(DefaultMaxNACKEntries + 1), RuleNACKTooMany},
		{"NACK entries past pion's marshal limit", Options{MaxNACKEntries: 1000, ReducedSize: true}, nack(maxNACKEntriesLimit + 1), RuleNACKTooMany},
		{"MaxTWCCStatusCount", Options{MaxTWCCStatusCount: 10, ReducedSize: true}, twcc, RuleTWCCStatusCount},
		{"TWCC padding moved onto a non-last packet", reduced, join(twcc, marshal(t, testPLI())), RulePaddingNotLast},
		{"TWCC padded one word too far", reduced, padLast(twcc[:len(twcc)-twccPad], 0, twccPad+4), RuleTWCCLength},
		{"RR+SDES with trailing byte", Options{}, append(append([]byte(nil), rrSDES...), 0), RuleLengthMismatch},
		{"RR with profile extension", reduced, raw(typeRR, 0, 0, 0, 0, 1, 9, 9, 9, 9), RuleReportCount},
		{"SR in second place with too many reports", Options{}, join(rrSDES, raw(typeSR, 2, make([]byte, 24+24)...)), RuleReportCount},
		{"REMB zero bitrate", reduced, raw(typePSFB, fmtAFB, 0, 0, 0, 1, 0, 0, 0, 0, 'R', 'E', 'M', 'B', 0, 0, 0, 0), RuleREMBZeroBitrate},
		{"SLI", reduced, raw(typePSFB, fmtSLI, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0x41), RuleSLIUnsupported},
		{"empty SLI", reduced, raw(typePSFB, fmtSLI, 0, 0, 0, 1, 0, 0, 0, 2), RuleSLI},
		{"RTP packet fed as RTCP", reduced, []byte{0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}, RuleUnknownType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertRefused(t, tt.opts, tt.buf, tt.rule)
		})
	}
}

// assertRefused checks that Validate and Parse refuse buf with rule, and
// that Parse never handed it to the parser.
func assertRefused(t *testing.T, o Options, buf []byte, rule Rule) {
	t.Helper()
	err := o.Validate(buf)
	got, ok := RuleOf(err)
	if !ok || got != rule {
		t.Fatalf("Validate: got %v, want rule %s", err, rule)
	}
	packets, perr := o.parse(buf, func([]byte) ([]rtcp.Packet, error) {
		t.Fatalf("Parse handed a refused datagram (%s) to pion", rule)
		return nil, nil
	})
	if packets != nil || perr == nil || perr.Error() != err.Error() {
		t.Fatalf("Parse: got %v, %v; want the Validate error %v", packets, perr, err)
	}
}

// TestParseRejectedByParser: if pion ever refuses what the validator
// accepted, Parse says so under its own rule instead of passing pion's
// error through unlabelled.
func TestParseRejectedByParser(t *testing.T) {
	_, err := Options{ReducedSize: true}.parse(marshal(t, testPLI()), func([]byte) ([]rtcp.Packet, error) {
		return nil, errors.New("boom")
	})
	if r, _ := RuleOf(err); r != RuleParserRejected || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("got %v", err)
	}
}

func TestValidateDoesNotAllocate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		buf  []byte
	}{
		{"SR+SDES+BYE", Options{}, marshal(t, testSR(), testSDES(), testBYE())},
		{"PLI", Options{ReducedSize: true}, marshal(t, testPLI())},
		{"TWCC", Options{ReducedSize: true}, marshal(t, testTWCC(true))},
		{"every feedback", Options{}, marshal(t, testRR(), testSDES(), testNACK(), testFIR(), testREMB(), testXR(), testAPP(), testCCFB())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.opts.Validate(tt.buf); err != nil {
				t.Fatal(err)
			}
			if n := allocs(100, func() { _ = tt.opts.Validate(tt.buf) }); n != 0 {
				t.Fatalf("100 calls of Validate allocated %d times, want 0", n)
			}
		})
	}
}

func TestRules(t *testing.T) {
	seen := map[Rule]bool{}
	for _, r := range Rules() {
		if seen[r] {
			t.Errorf("rule %s listed twice", r)
		}
		seen[r] = true
		if r.String() == "" || strings.ToLower(r.String()) != r.String() || strings.ContainsAny(r.String(), " -.") {
			t.Errorf("rule %q is not a lower_snake_case label", r)
		}
	}
	// Every rule a refusal can carry is in the list: the SFU pre-creates
	// counters from it and would otherwise miss one.
	for _, r := range []Rule{RuleREMBZeroBitrate, RuleParserRejected, RuleRTPPaddingOverrun, RuleCompoundFirst} {
		if !seen[r] {
			t.Errorf("rule %s missing from Rules()", r)
		}
	}
	r := Rules()
	r[0] = "changed"
	if Rules()[0] == "changed" {
		t.Error("Rules returns shared state")
	}
}

func TestErrorMessage(t *testing.T) {
	err := Options{ReducedSize: true}.Validate(raw(typePSFB, fmtPLI, 0, 0, 0, 1, 0, 0, 0, 2, 9, 9, 9, 9))
	want := "rtcpstrict: RTCP datagram refused by rule pli_has_fci at byte 12: PLI carries 4 bytes of FCI, want none"
	if err == nil || err.Error() != want {
		t.Fatalf("got %q\nwant %q", err, want)
	}
	err = ValidateRTP([]byte{0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	if err == nil || !strings.HasPrefix(err.Error(), "rtcpstrict: RTP packet refused by rule rtp_version at byte 0") {
		t.Fatalf("got %q", err)
	}
	if _, ok := RuleOf(errors.New("other")); ok {
		t.Fatal("RuleOf claimed a foreign error")
	}
}

func TestOptionsDefaults(t *testing.T) {
	if got, want := (Options{}).resolved(), DefaultOptions(); got != want {
		t.Fatalf("zero Options resolve to %+v, want %+v", got, want)
	}
	if got := (Options{MaxNACKEntries: 1000, MaxTWCCStatusCount: 1 << 20}).resolved(); got.MaxNACKEntries != maxNACKEntriesLimit || got.MaxTWCCStatusCount != maxTWCCStatusCountLimit {
		t.Fatalf("limits not clamped: %+v", got)
	}
}
