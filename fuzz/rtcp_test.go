package fuzz

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/sotto-rtc/sotto/media/rtcpstrict"
)

// Well-formed packets as pion marshals them, added to each target in code
// so the fuzzer has good traffic to mutate; the seed files are all hostile.

func marshal(t testing.TB, packets ...rtcp.Packet) []byte {
	t.Helper()
	buf, err := rtcp.Marshal(packets)
	if err != nil {
		t.Fatalf("pion cannot marshal the fixture: %v", err)
	}
	return buf
}

func validRTCP(t testing.TB) [][]byte {
	rr := &rtcp.ReceiverReport{SSRC: 0x11111111, Reports: []rtcp.ReceptionReport{{SSRC: 0x22222222, FractionLost: 12, TotalLost: 345, LastSequenceNumber: 0x10203, Jitter: 40}}}
	sr := &rtcp.SenderReport{SSRC: 0x22222222, NTPTime: 0xe0e1e2e3e4e5e6e7, RTPTime: 90000, PacketCount: 100, OctetCount: 120000}
	sdes := rtcp.NewCNAMESourceDescription(0x22222222, "sotto-7f3a")
	pli := &rtcp.PictureLossIndication{SenderSSRC: 0x11111111, MediaSSRC: 0x22222222}
	nack := &rtcp.TransportLayerNack{SenderSSRC: 0x11111111, MediaSSRC: 0x22222222, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{100, 101, 105, 200})}
	fir := &rtcp.FullIntraRequest{SenderSSRC: 0x11111111, FIR: []rtcp.FIREntry{{SSRC: 0x22222222, SequenceNumber: 7}}}
	remb := &rtcp.ReceiverEstimatedMaximumBitrate{SenderSSRC: 0x11111111, Bitrate: 1.5e6, SSRCs: []uint32{0x22222222}}
	bye := &rtcp.Goodbye{Sources: []uint32{0x22222222}, Reason: "call ended"}
	twcc := &rtcp.TransportLayerCC{
		Header:             rtcp.Header{Count: rtcp.FormatTCC, Type: rtcp.TypeTransportSpecificFeedback, Length: 6},
		SenderSSRC:         0x11111111,
		MediaSSRC:          0x22222222,
		BaseSequenceNumber: 65530,
		PacketStatusCount:  3,
		ReferenceTime:      0x123456,
		PacketChunks: []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{
			Type: rtcp.TypeTCCRunLengthChunk, PacketStatusSymbol: rtcp.TypeTCCPacketReceivedSmallDelta, RunLength: 3,
		}},
		RecvDeltas: []*rtcp.RecvDelta{
			{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 250},
			{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 500},
			{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 0},
		},
	}
	xr := &rtcp.ExtendedReport{SenderSSRC: 0x11111111, Reports: []rtcp.ReportBlock{
		&rtcp.ReceiverReferenceTimeReportBlock{NTPTimestamp: 0x0102030405060708},
		&rtcp.DLRRReportBlock{Reports: []rtcp.DLRRReport{{SSRC: 0x22222222, LastRR: 1, DLRR: 2}}},
	}}
	ccfb := &rtcp.CCFeedbackReport{SenderSSRC: 0x11111111, ReportBlocks: []rtcp.CCFeedbackReportBlock{{
		MediaSSRC: 0x22222222, BeginSequence: 65534,
		MetricBlocks: []rtcp.CCFeedbackMetricBlock{{Received: true, ArrivalTimeOffset: 100}, {}, {Received: true, ECN: rtcp.ECNECT0}},
	}}, ReportTimestamp: 0xabcdef01}
	return [][]byte{
		marshal(t, sr, sdes),
		marshal(t, rr, sdes, pli),
		marshal(t, rr, sdes, bye),
		marshal(t, rr, sdes, nack, fir, remb),
		marshal(t, pli),
		marshal(t, nack),
		marshal(t, twcc),
		marshal(t, xr),
		marshal(t, ccfb),
	}
}

// pionSRTCPDemux does to a decrypted SRTCP datagram what pion/srtp v3.0.13
// does before any interceptor, and so before rtcpstrict, can see it
// (SessionSRTCP.decrypt): split and parse it with rtcp.Unmarshal, marshal
// each packet again, and ask each for its destination SSRCs. A panic here
// is a crash of the SFU that no check of Sotto's can prevent.
func pionSRTCPDemux(buf []byte) {
	pkts, err := rtcp.Unmarshal(buf)
	if err != nil {
		return
	}
	for _, p := range pkts {
		if _, err := p.Marshal(); err != nil {
			continue
		}
		_ = p.DestinationSSRC()
	}
}

// FuzzRTCP: pion's SRTCP demux never panics; Validate never panics,
// refuses with a rule, and agrees with the allocation-free Check; and what
// it accepts pion parses, each parsed packet marshals to MarshalSize bytes
// that parse back to the same packet, and the re-marshalled datagram is
// accepted again. An input that breaks the last part is a pion defect
// rtcpstrict must learn to refuse; it then belongs in testdata/fuzz/FuzzRTCP
// as a regression seed.
func FuzzRTCP(f *testing.F) {
	for _, seed := range validRTCP(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		pionSRTCPDemux(slices.Clone(buf))
		for _, o := range []rtcpstrict.Options{{}, {ReducedSize: true}} {
			err := o.Validate(buf)
			rule, ok := rtcpstrict.RuleOf(err)
			if err != nil && !ok {
				t.Fatalf("refusal without a rule: %v", err)
			}
			if got := o.Check(buf); got != rule {
				t.Fatalf("Check says %q, Validate %v", got, err)
			}
			if err == nil {
				checkRTCPRoundTrip(t, o, buf)
			}
		}
	})
}

// lastPacketPadded reports whether Parse strips padding from an accepted
// datagram: its last packet has the P bit and is not transport-wide CC,
// whose padding pion models itself.
func lastPacketPadded(buf []byte) bool {
	off := 0
	for {
		total := (int(binary.BigEndian.Uint16(buf[off+2:])) + 1) * 4
		if off+total == len(buf) {
			twcc := buf[off+1] == 205 && buf[off]&0x1f == 15
			return buf[off]&0x20 != 0 && !twcc
		}
		off += total
	}
}

// checkRTCPRoundTrip asserts what an accepted datagram promises.
func checkRTCPRoundTrip(t *testing.T, o rtcpstrict.Options, buf []byte) {
	t.Helper()
	packets, err := o.Parse(buf)
	if err != nil {
		t.Fatalf("Validate accepted but Parse failed: %v\n% x", err, buf)
	}
	if !lastPacketPadded(buf) {
		direct, err := rtcp.Unmarshal(buf)
		if err != nil {
			t.Fatalf("Validate accepted but rtcp.Unmarshal failed: %v\n% x", err, buf)
		}
		if !reflect.DeepEqual(direct, packets) {
			t.Fatalf("Parse differs from rtcp.Unmarshal\n% x", buf)
		}
	}
	// A second parse to compare against: some pion Marshal methods (XR)
	// rewrite the packet they are called on.
	pristine, err := o.Parse(buf)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range packets {
		size := p.MarshalSize()
		out, err := p.Marshal()
		if err != nil {
			t.Fatalf("packet %d (%T) does not marshal: %v\n% x", i, p, err, buf)
		}
		// pion v1.2.17's ExtendedReport.MarshalSize leaves out the 4-byte
		// header of every XR, whatever its content (TestPionDefects), so no
		// validator rule can help; nothing in pion or the SFU sizes a
		// buffer with it.
		if _, xr := p.(*rtcp.ExtendedReport); xr {
			size += 4
		}
		if len(out) != size {
			t.Fatalf("packet %d (%T): MarshalSize %d, Marshal wrote %d\n% x", i, p, size, len(out), buf)
		}
		back, err := rtcp.Unmarshal(out)
		if err != nil || len(back) != 1 {
			t.Fatalf("packet %d (%T) re-marshalled does not parse as one packet: %v %v\nin  % x\nout % x", i, p, err, back, buf, out)
		}
		if !reflect.DeepEqual(back[0], pristine[i]) {
			t.Fatalf("packet %d (%T) changes across marshal/unmarshal:\n got %v\nwant %v\nin  % x\nout % x", i, p, back[0], pristine[i], buf, out)
		}
	}
	again, err := rtcp.Marshal(packets)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(again); err != nil {
		t.Fatalf("re-marshalled datagram refused: %v\nin  % x\nout % x", err, buf, again)
	}
}

// srtcpContexts returns fresh decryption contexts for the two profiles the
// SFU offers, keyed with the fixed test keys the authentic seeds in
// testdata/fuzz/FuzzSRTCPUnprotect were made with.
func srtcpContexts(t testing.TB) []*srtp.Context {
	t.Helper()
	key := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	salt := []byte{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad}
	cm, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAes128CmHmacSha1_80)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := srtp.CreateContext(key, salt[:12], srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		t.Fatal(err)
	}
	return []*srtp.Context{cm, gcm}
}

// FuzzSRTCPUnprotect feeds arbitrary bytes to pion/srtp's SRTCP decryption,
// the first code that touches an RTCP packet from the network, under both
// profiles; it must not panic. What decrypts is still attacker-chosen (the
// peer holds the key), so it goes on through the demux and the validator.
func FuzzSRTCPUnprotect(f *testing.F) {
	plain := validRTCP(f)[1]
	for _, ctx := range srtcpContexts(f) {
		enc, err := ctx.EncryptRTCP(nil, plain, nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		for _, ctx := range srtcpContexts(t) {
			out, err := ctx.DecryptRTCP(nil, slices.Clone(buf), nil)
			if err != nil {
				continue
			}
			pionSRTCPDemux(slices.Clone(out))
			for _, o := range []rtcpstrict.Options{{}, {ReducedSize: true}} {
				if o.Validate(out) == nil {
					checkRTCPRoundTrip(t, o, out)
				}
			}
		}
	})
}

// TestSRTCPSeedsAuthenticate: the authentic seeds really decrypt under the
// fuzz target's fixed keys (so the fuzzer starts from packets that reach
// the validator), the forged ones do not, and what decrypts from a hostile
// plaintext is refused.
func TestSRTCPSeedsAuthenticate(t *testing.T) {
	seeds := readCorpus(t, "FuzzSRTCPUnprotect")
	if len(seeds) == 0 {
		t.Fatal("no seeds")
	}
	for name, buf := range seeds {
		t.Run(name, func(t *testing.T) {
			var plain []byte
			for _, ctx := range srtcpContexts(t) {
				if out, err := ctx.DecryptRTCP(nil, slices.Clone(buf), nil); err == nil {
					plain = out
				}
			}
			authentic := strings.Contains(name, "_authentic_")
			if authentic != (plain != nil) {
				t.Fatalf("authentic=%v but decrypted=%v", authentic, plain != nil)
			}
			if plain == nil {
				return
			}
			err := rtcpstrict.Options{ReducedSize: true}.Validate(plain)
			if strings.HasSuffix(name, "_compound") != (err == nil) {
				t.Fatalf("decrypted plaintext: %v", err)
			}
		})
	}
}

func validRTP(t testing.TB) [][]byte {
	h := rtp.Header{Version: 2, Marker: true, PayloadType: 111, SequenceNumber: 65535, Timestamp: 0xfedcba98, SSRC: 0x22222222}
	ext := h
	if err := ext.SetExtensionWithProfile(1, []byte{0x80}, rtp.ExtensionProfileOneByte); err != nil {
		t.Fatal(err)
	}
	if err := ext.SetExtensionWithProfile(3, []byte{1, 2, 3}, rtp.ExtensionProfileOneByte); err != nil {
		t.Fatal(err)
	}
	two := h
	if err := two.SetExtensionWithProfile(20, make([]byte, 20), rtp.ExtensionProfileTwoByte); err != nil {
		t.Fatal(err)
	}
	padded := h
	padded.Padding, padded.PaddingSize = true, 4
	csrc := h
	csrc.CSRC = []uint32{1, 2, 3}
	var out [][]byte
	for _, p := range []rtp.Packet{
		{Header: h, Payload: []byte("frame")},
		{Header: ext, Payload: []byte("frame")},
		{Header: two, Payload: []byte("frame")},
		{Header: padded, Payload: []byte("frame")},
		{Header: csrc, Payload: []byte{1}},
	} {
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzRTP: pion's header parser, which pion/srtp runs on every packet
// before authenticating it, never panics; ValidateRTP never panics,
// refuses with a rule and agrees with CheckRTP; and what it accepts pion
// parses and writes back unchanged.
func FuzzRTP(f *testing.F) {
	for _, seed := range validRTP(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		var h rtp.Header
		_, _ = h.Unmarshal(buf)
		err := rtcpstrict.ValidateRTP(buf)
		rule, ok := rtcpstrict.RuleOf(err)
		if err != nil && !ok {
			t.Fatalf("refusal without a rule: %v", err)
		}
		if got := (rtcpstrict.Options{}).CheckRTP(buf); got != rule {
			t.Fatalf("CheckRTP says %q, ValidateRTP %v", got, err)
		}
		if err == nil {
			checkRTPRoundTrip(t, buf)
		}
	})
}

func checkRTPRoundTrip(t *testing.T, buf []byte) {
	t.Helper()
	var p rtp.Packet
	if err := p.Unmarshal(buf); err != nil {
		t.Fatalf("ValidateRTP accepted but rtp.Packet.Unmarshal failed: %v\n% x", err, buf)
	}
	size := p.MarshalSize()
	out, err := p.Marshal()
	if err != nil {
		t.Fatalf("accepted packet does not marshal: %v\n% x", err, buf)
	}
	if len(out) != size {
		t.Fatalf("MarshalSize %d, Marshal wrote %d\n% x", size, len(out), buf)
	}
	var q rtp.Packet
	if err := q.Unmarshal(out); err != nil {
		t.Fatalf("re-marshalled packet does not parse: %v\nin  % x\nout % x", err, buf, out)
	}
	if !reflect.DeepEqual(p.Header, q.Header) || !bytes.Equal(p.Payload, q.Payload) {
		t.Fatalf("packet changes across marshal/unmarshal\n got %+v\nwant %+v\nin  % x\nout % x", q.Header, p.Header, buf, out)
	}
	if err := rtcpstrict.ValidateRTP(out); err != nil {
		t.Fatalf("re-marshalled packet refused: %v", err)
	}
}

// TestFixturesAccepted: the good traffic the targets start from is good,
// so the fuzzer mutates packets that reach the round-trip checks.
func TestFixturesAccepted(t *testing.T) {
	for i, buf := range validRTCP(t) {
		if err := (rtcpstrict.Options{ReducedSize: true}).Validate(buf); err != nil {
			t.Errorf("RTCP fixture %d refused: %v\n% x", i, err, buf)
		}
	}
	for i, buf := range validRTP(t) {
		if err := rtcpstrict.ValidateRTP(buf); err != nil {
			t.Errorf("RTP fixture %d refused: %v", i, err)
		}
	}
}
