package sfu

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sotto-rtc/sotto/media/rtcpstrict"
)

// newStrictTestMetrics returns the SFU's metrics registered on a fresh
// registry, so a test can read the strict counters.
func newStrictTestMetrics(t *testing.T) (*metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func refusedCount(t *testing.T, reg prometheus.Gatherer, direction string, rule rtcpstrict.Rule) float64 {
	t.Helper()
	return counterValue(t, reg, "sotto_strict_refused_total", map[string]string{"direction": direction, "rule": string(rule)})
}

// queueReader is the bottom of a chain under test: it plays pion's SRTP
// read stream, returning queued packets in order and then io.EOF.
type queueReader struct{ packets [][]byte }

func (q *queueReader) read(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	if len(q.packets) == 0 {
		return 0, a, io.EOF
	}
	n := copy(b, q.packets[0])
	q.packets = q.packets[1:]
	return n, a, nil
}

// streamInfo describes a publisher's Opus stream as pion hands it to the
// interceptors, with NACK feedback and the transport-wide CC extension so
// that every interceptor of the publisher chain binds a reader to it.
func streamInfo() *interceptor.StreamInfo {
	return &interceptor.StreamInfo{
		SSRC:                0x22222222,
		ClockRate:           48000,
		MimeType:            "audio/opus",
		RTCPFeedback:        []interceptor.RTCPFeedback{{Type: "nack"}},
		RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: 3}},
	}
}

// buildChain builds the publisher chain with the strict interceptor at
// position at: 0 is what the SFU does, -1 puts it last.
func buildChain(t *testing.T, m *metrics, at int) interceptor.Interceptor {
	t.Helper()
	strict := strictFactory{opts: newStrictOptions(), m: m.strict}
	reg, err := newInterceptorRegistry(strict, newPublisherInterceptors)
	if err != nil {
		t.Fatal(err)
	}
	if at == -1 {
		reg = &interceptor.Registry{}
		if err := newPublisherInterceptors(reg); err != nil {
			t.Fatal(err)
		}
		reg.Add(strict)
	}
	chain, err := reg.Build("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = chain.Close() })
	return chain
}

func marshalRTCP(t *testing.T, pkts ...rtcp.Packet) []byte {
	t.Helper()
	b, err := rtcp.Marshal(pkts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func marshalRTPPacket(t *testing.T, p *rtp.Packet) []byte {
	t.Helper()
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStrictInterceptorIsFirst proves, with pion's real interceptors, that
// the strict check sees an incoming packet before any of them parses it.
// The hostile packets are ones pion's parsers refuse: an interceptor that
// parses one before the strict check fails the whole Read, which is what
// happens with the strict interceptor placed last (the control). Placed
// first, as the SFU does, the hostile packet is dropped and counted and
// Read returns the good packet behind it.
func TestStrictInterceptorIsFirst(t *testing.T) {
	sr := marshalRTCP(t, &rtcp.SenderReport{SSRC: 0x22222222, NTPTime: 1 << 32, RTPTime: 960, PacketCount: 1, OctetCount: 100})
	// A generic NACK whose length field claims 64 KiB.
	hostileRTCP := []byte{0x81, 205, 0xff, 0xff, 0, 0, 0, 1, 0x22, 0x22, 0x22, 0x22, 0, 1, 0, 0}
	good := marshalRTPPacket(t, &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: 7, SSRC: 0x22222222}, Payload: []byte{1, 2, 3}})
	// Fifteen CSRCs announced in a 16-byte packet.
	hostileRTP := append([]byte{0x8f, 111, 0, 6, 0, 0, 0, 0, 0x22, 0x22, 0x22, 0x22}, 1, 2, 3, 4)

	tests := []struct {
		name      string
		at        int
		wantError bool
	}{
		{"strict first, as the SFU builds it", 0, false},
		{"control: strict last", -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newStrictTestMetrics(t)
			chain := buildChain(t, m, tt.at)

			rtcpQ := &queueReader{packets: [][]byte{hostileRTCP, sr}}
			rtcpReader := chain.BindRTCPReader(interceptor.RTCPReaderFunc(rtcpQ.read))
			buf := make([]byte, maxPacketSize)
			n, _, err := rtcpReader.Read(buf, nil)
			if tt.wantError {
				if err == nil {
					t.Fatal("RTCP: a parser behind the check accepted the hostile packet; the control proves nothing")
				}
			} else {
				if err != nil || string(buf[:n]) != string(sr) {
					t.Fatalf("RTCP: Read returned %d bytes, %v; want the sender report", n, err)
				}
				if got := refusedCount(t, reg, dirRTCPIn, rtcpstrict.RuleLengthMismatch); got != 1 {
					t.Fatalf("rtcp_in length_mismatch = %v, want 1", got)
				}
			}

			info := streamInfo()
			rtpQ := &queueReader{packets: [][]byte{hostileRTP, good}}
			rtpReader := chain.BindRemoteStream(info, interceptor.RTPReaderFunc(rtpQ.read))
			defer chain.UnbindRemoteStream(info)
			n, _, err = rtpReader.Read(buf, nil)
			if tt.wantError {
				if err == nil {
					t.Fatal("RTP: a parser behind the check accepted the hostile packet; the control proves nothing")
				}
				return
			}
			if err != nil || string(buf[:n]) != string(good) {
				t.Fatalf("RTP: Read returned %d bytes, %v; want the good packet", n, err)
			}
			if got := refusedCount(t, reg, dirRTPIn, rtcpstrict.RuleRTPCSRCOverrun); got != 1 {
				t.Fatalf("rtp_in rtp_csrc_overrun = %v, want 1", got)
			}
		})
	}
}

// recorder is an interceptor that notes, in a shared log, when it sees a
// packet in each direction.
type recorder struct {
	interceptor.NoOp
	name string
	log  *[]string
}

func (r *recorder) NewInterceptor(string) (interceptor.Interceptor, error) { return r, nil }

func (r *recorder) BindRTCPReader(next interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := next.Read(b, a)
		*r.log = append(*r.log, "read "+r.name)
		return n, a, err
	})
}

func (r *recorder) BindRTCPWriter(next interceptor.RTCPWriter) interceptor.RTCPWriter {
	return interceptor.RTCPWriterFunc(func(p []rtcp.Packet, a interceptor.Attributes) (int, error) {
		*r.log = append(*r.log, "write "+r.name)
		return next.Write(p, a)
	})
}

// TestPionChainOrder pins down the pion behaviour newInterceptorRegistry
// relies on: the first interceptor registered is the first to see what is
// read and the last to see what is written. If a pion upgrade changes
// that, the strict check would silently move behind the parsers.
func TestPionChainOrder(t *testing.T) {
	var log []string
	reg := &interceptor.Registry{}
	reg.Add(&recorder{name: "first", log: &log})
	reg.Add(&recorder{name: "second", log: &log})
	chain, err := reg.Build("order")
	if err != nil {
		t.Fatal(err)
	}
	q := &queueReader{packets: [][]byte{{0x80, 201, 0, 1, 0, 0, 0, 1}}}
	if _, _, err := chain.BindRTCPReader(interceptor.RTCPReaderFunc(q.read)).Read(make([]byte, 64), nil); err != nil {
		t.Fatal(err)
	}
	w := chain.BindRTCPWriter(interceptor.RTCPWriterFunc(func([]rtcp.Packet, interceptor.Attributes) (int, error) { return 0, nil }))
	if _, err := w.Write(nil, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"read first", "read second", "write second", "write first"}
	if !slices.Equal(log, want) {
		t.Fatalf("pion ran the chain as %v, want %v", log, want)
	}
}

// TestStrictDropKeepsStreamAlive: refusals never surface as read errors,
// however many come in a row, and the stream's own end still does.
func TestStrictDropKeepsStreamAlive(t *testing.T) {
	m, reg := newStrictTestMetrics(t)
	chain := buildChain(t, m, 0)
	pli := marshalRTCP(t, &rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 0x22222222})
	// The same PLI carrying an FCI a PLI must not have.
	pliWithFCI := []byte{0x81, 206, 0, 3, 0, 0, 0, 1, 0x22, 0x22, 0x22, 0x22, 9, 9, 9, 9}
	var packets [][]byte
	for range 1000 {
		packets = append(packets, pliWithFCI)
	}
	packets = append(packets, pli)
	q := &queueReader{packets: packets}
	r := chain.BindRTCPReader(interceptor.RTCPReaderFunc(q.read))
	buf := make([]byte, maxPacketSize)
	n, _, err := r.Read(buf, nil)
	if err != nil || string(buf[:n]) != string(pli) {
		t.Fatalf("Read returned %d bytes, %v; want the PLI behind 1000 refusals", n, err)
	}
	if got := refusedCount(t, reg, dirRTCPIn, rtcpstrict.RulePLIHasFCI); got != 1000 {
		t.Fatalf("rtcp_in pli_has_fci = %v, want 1000", got)
	}
	if _, _, err := r.Read(buf, nil); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last packet: %v, want io.EOF", err)
	}
}

// TestStrictCountersCoverRules: every rule has its counter in the
// directions whose check can report it, created before any refusal, so
// /metrics shows the zero and the hot path never looks a label up.
func TestStrictCountersCoverRules(t *testing.T) {
	m, reg := newStrictTestMetrics(t)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "sotto_strict_refused_total" {
			continue
		}
		for _, metric := range mf.GetMetric() {
			var dir, rule string
			for _, lp := range metric.GetLabel() {
				switch lp.GetName() {
				case "direction":
					dir = lp.GetValue()
				case "rule":
					rule = lp.GetValue()
				}
			}
			series[dir+"/"+rule] = true
		}
	}
	for _, r := range rtcpstrict.Rules() {
		dirs := []string{dirRTCPIn, dirRTCPOut}
		table := m.strict.rtcpIn.byRule
		if strings.HasPrefix(string(r), "rtp_") {
			dirs = []string{dirRTPIn, dirRTPOut}
			table = m.strict.rtpIn.byRule
		}
		if _, ok := table[r]; !ok {
			t.Errorf("rule %s has no pre-created counter", r)
		}
		for _, d := range dirs {
			if !series[d+"/"+string(r)] {
				t.Errorf("/metrics lacks sotto_strict_refused_total{direction=%q,rule=%q}", d, r)
			}
		}
	}
	// A rule that only a later rtcpstrict knows is still counted.
	m.strict.rtpIn.refused("rtp_from_the_future")
	if got := refusedCount(t, reg, dirRTPIn, "rtp_from_the_future"); got != 1 {
		t.Fatalf("unlisted rule counted %v times, want 1", got)
	}
}

// TestStrictWriters: what the SFU sends is checked as it will go out; a
// refused RTCP packet is dropped from its batch without the others, and a
// refused RTP packet is dropped before pion's marshaller sees it.
func TestStrictWriters(t *testing.T) {
	m, reg := newStrictTestMetrics(t)
	si := &strictInterceptor{opts: newStrictOptions(), m: m.strict}

	var written [][]rtcp.Packet
	w := si.BindRTCPWriter(interceptor.RTCPWriterFunc(func(p []rtcp.Packet, _ interceptor.Attributes) (int, error) {
		written = append(written, p)
		return 0, nil
	}))
	pli := &rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 2}
	// pion v1.2.17 writes an RR's profile extensions without counting them
	// in the length field: a datagram no receiver can split.
	badRR := &rtcp.ReceiverReport{SSRC: 1, ProfileExtensions: []byte{1, 2, 3, 4}}
	if _, err := w.Write([]rtcp.Packet{pli}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]rtcp.Packet{badRR, pli}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]rtcp.Packet{badRR}, nil); err != nil {
		t.Fatal(err)
	}
	if len(written) != 2 || len(written[0]) != 1 || len(written[1]) != 1 || written[1][0] != pli {
		t.Fatalf("written %v; want the PLI alone, twice", written)
	}
	// The 4 extension bytes left over read as a packet of version 0.
	if got := refusedCount(t, reg, dirRTCPOut, rtcpstrict.RuleVersion); got != 2 {
		t.Fatalf("rtcp_out version = %v, want 2", got)
	}

	var sent int
	rw := si.BindLocalStream(streamInfo(), interceptor.RTPWriterFunc(func(*rtp.Header, []byte, interceptor.Attributes) (int, error) {
		sent++
		return 0, nil
	}))
	rtpTests := []struct {
		name    string
		header  rtp.Header
		payload []byte
		rule    rtcpstrict.Rule // "" when the packet must go out
	}{
		{"plain", rtp.Header{Version: 2, PayloadType: 111, SSRC: 7}, []byte{1, 2}, ""},
		{"padded", rtp.Header{Version: 2, Padding: true, PaddingSize: 4, SSRC: 7}, []byte{1, 2}, ""},
		{"padding bit without size", rtp.Header{Version: 2, Padding: true, SSRC: 7}, []byte{1, 2, 3}, rtcpstrict.RuleRTPPaddingZero},
		{"version 1", rtp.Header{Version: 1, SSRC: 7}, []byte{1}, rtcpstrict.RuleRTPVersion},
		{"over the MTU", rtp.Header{Version: 2, SSRC: 7}, make([]byte, maxPacketSize), rtcpstrict.RuleRTPTooLarge},
	}
	for _, tt := range rtpTests {
		t.Run(tt.name, func(t *testing.T) {
			before, beforeRefused := sent, refusedCount(t, reg, dirRTPOut, tt.rule)
			if _, err := rw.Write(&tt.header, tt.payload, nil); err != nil {
				t.Fatal(err)
			}
			if tt.rule == "" {
				if sent != before+1 {
					t.Fatal("a well-formed packet was not written")
				}
				return
			}
			if sent != before {
				t.Fatal("a refused packet was written")
			}
			if got := refusedCount(t, reg, dirRTPOut, tt.rule); got != beforeRefused+1 {
				t.Fatalf("rtp_out %s = %v, want %v", tt.rule, got, beforeRefused+1)
			}
		})
	}
}

// TestPaddingWithoutSizeOverrunsPionMarshal is the evidence behind the
// outgoing RTP check's padding rule: rtp.MarshalPacketTo, which pion's
// SRTP writer uses, indexes 255 bytes past the payload when the padding
// bit is set with a size of 0.
func TestPaddingWithoutSizeOverrunsPionMarshal(t *testing.T) {
	h := &rtp.Header{Version: 2, Padding: true, SSRC: 7}
	payload := []byte{1, 2, 3}
	buf := make([]byte, h.MarshalSize()+len(payload)+20) // what pion's writer allocates when its pool buffer is too small
	defer func() {
		if recover() == nil {
			t.Fatal("rtp.MarshalPacketTo no longer panics on padding without a size; the guard in checkOutgoingRTP may be relaxed")
		}
	}()
	_, _ = rtp.MarshalPacketTo(buf, h, payload) //nolint:staticcheck // the function pion's SRTP writer calls
}
