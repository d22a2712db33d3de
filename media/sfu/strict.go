package sfu

import (
	"strings"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sotto-rtc/sotto/media/rtcpstrict"
)

// Directions of sotto_strict_refused_total.
const (
	dirRTCPIn  = "rtcp_in"  // RTCP from a client, after SRTCP
	dirRTPIn   = "rtp_in"   // RTP from a publisher, after SRTP
	dirRTCPOut = "rtcp_out" // RTCP the SFU's own interceptors or code wrote
	dirRTPOut  = "rtp_out"  // RTP the SFU forwards
)

// strictCounters are one direction's refusal counters by rule, created up
// front so that counting a refusal allocates nothing.
type strictCounters struct {
	vec       *prometheus.CounterVec
	direction string
	byRule    map[rtcpstrict.Rule]prometheus.Counter // read-only once built
}

func newStrictCounters(vec *prometheus.CounterVec, direction string, rules []rtcpstrict.Rule) strictCounters {
	c := strictCounters{vec: vec, direction: direction, byRule: make(map[rtcpstrict.Rule]prometheus.Counter, len(rules))}
	for _, r := range rules {
		c.byRule[r] = vec.WithLabelValues(direction, string(r))
	}
	return c
}

// refused counts one refusal; a rule missing from the table takes the slow
// label lookup (TestStrictCountersCoverRules keeps that path cold).
func (c strictCounters) refused(rule rtcpstrict.Rule) {
	if ctr, ok := c.byRule[rule]; ok {
		ctr.Inc()
		return
	}
	c.vec.WithLabelValues(c.direction, string(rule)).Inc()
}

type strictMetrics struct {
	rtcpIn, rtpIn, rtcpOut, rtpOut strictCounters
}

func newStrictMetrics(vec *prometheus.CounterVec) *strictMetrics {
	var rtcpRules, rtpRules []rtcpstrict.Rule
	for _, r := range rtcpstrict.Rules() {
		if strings.HasPrefix(string(r), "rtp_") {
			rtpRules = append(rtpRules, r)
		} else {
			rtcpRules = append(rtcpRules, r)
		}
	}
	return &strictMetrics{
		rtcpIn:  newStrictCounters(vec, dirRTCPIn, rtcpRules),
		rtpIn:   newStrictCounters(vec, dirRTPIn, rtpRules),
		rtcpOut: newStrictCounters(vec, dirRTCPOut, rtcpRules),
		rtpOut:  newStrictCounters(vec, dirRTPOut, rtpRules),
	}
}

// newStrictOptions allows reduced-size RTCP: WebRTC negotiates it, and the
// interceptors see a compound's packets one at a time anyway.
func newStrictOptions() rtcpstrict.Options {
	return rtcpstrict.Options{ReducedSize: true}
}

// strictFactory builds the interceptor that heads both of the SFU's chains;
// registered first, it is innermost: the first reader and the last writer.
type strictFactory struct {
	opts rtcpstrict.Options
	m    *strictMetrics
}

func (f strictFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &strictInterceptor{opts: f.opts, m: f.m}, nil
}

// strictInterceptor applies rtcpstrict to every packet in both directions.
// What pion runs before it is in docs/FUZZING.md. A refused incoming packet
// is dropped by reading the next one in its place, as an error would spend
// the track's read-error budget; a refused outgoing one is dropped silently
// and counted.
type strictInterceptor struct {
	interceptor.NoOp
	opts rtcpstrict.Options
	m    *strictMetrics
}

func (i *strictInterceptor) BindRTCPReader(reader interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attr, err := reader.Read(b, a)
			if err != nil {
				return n, attr, err
			}
			rule := i.opts.Check(b[:n])
			if rule == "" {
				return n, attr, nil
			}
			i.m.rtcpIn.refused(rule)
		}
	})
}

func (i *strictInterceptor) BindRemoteStream(_ *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attr, err := reader.Read(b, a)
			if err != nil {
				return n, attr, err
			}
			rule := i.opts.CheckRTP(b[:n])
			if rule == "" {
				return n, attr, nil
			}
			i.m.rtpIn.refused(rule)
		}
	})
}

// BindRTCPWriter checks the SFU's own RTCP: some of pion's marshallers write
// packets pion cannot read back (docs/FUZZING.md). A refused batch is
// retried packet by packet, so one bad packet does not take the others.
func (i *strictInterceptor) BindRTCPWriter(writer interceptor.RTCPWriter) interceptor.RTCPWriter {
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, a interceptor.Attributes) (int, error) {
		rule := i.checkRTCPOut(pkts)
		if rule == "" {
			return writer.Write(pkts, a)
		}
		if len(pkts) == 1 {
			i.m.rtcpOut.refused(rule)
			return 0, nil
		}
		kept := make([]rtcp.Packet, 0, len(pkts))
		for _, p := range pkts {
			if rule := i.checkRTCPOut([]rtcp.Packet{p}); rule != "" {
				i.m.rtcpOut.refused(rule)
				continue
			}
			kept = append(kept, p)
		}
		if len(kept) == 0 {
			return 0, nil
		}
		return writer.Write(kept, a)
	})
}

// checkRTCPOut checks pkts as the SRTCP writer will marshal them; a batch
// that does not marshal passes, for the writer to refuse.
func (i *strictInterceptor) checkRTCPOut(pkts []rtcp.Packet) rtcpstrict.Rule {
	raw, err := rtcp.Marshal(pkts)
	if err != nil {
		return ""
	}
	return i.opts.Check(raw)
}

// BindLocalStream checks every RTP packet the SFU forwards: its rewritten
// headers reach a marshaller that trusts them. Only the header is
// marshalled, on the stack, so the check allocates nothing.
func (i *strictInterceptor) BindLocalStream(_ *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if rule := checkOutgoingRTP(i.opts, h, payload); rule != "" {
			i.m.rtpOut.refused(rule)
			return 0, nil
		}
		return writer.Write(h, payload, a)
	})
}

// maxCheckedHeader is the largest header checked on the stack; a larger
// one is checked as a whole packet.
const maxCheckedHeader = 256

// checkOutgoingRTP checks the packet h and payload marshal to without
// building it: past the header, the rules need only lengths and the
// padding count. A header that does not marshal passes, for the writer.
func checkOutgoingRTP(opts rtcpstrict.Options, h *rtp.Header, payload []byte) rtcpstrict.Rule {
	if h.Padding && h.PaddingSize == 0 {
		return rtcpstrict.RuleRTPPaddingZero
	}
	hs := h.MarshalSize()
	if hs+len(payload)+int(h.PaddingSize) > maxPacketSize {
		return rtcpstrict.RuleRTPTooLarge
	}
	if hs > maxCheckedHeader {
		return checkOutgoingPacket(opts, h, payload)
	}
	var buf [maxCheckedHeader]byte
	n, err := h.MarshalTo(buf[:])
	if err != nil {
		return ""
	}
	// The padding rules hold by construction (count not 0, and within the
	// packet); without the bit, the header alone is a whole packet.
	buf[0] &^= 0x20
	return opts.CheckRTP(buf[:n])
}

func checkOutgoingPacket(opts rtcpstrict.Options, h *rtp.Header, payload []byte) rtcpstrict.Rule {
	var buf [maxPacketSize]byte
	n, err := h.MarshalTo(buf[:])
	if err != nil {
		return ""
	}
	n += copy(buf[n:], payload)
	if h.Padding {
		n += int(h.PaddingSize)
		buf[n-1] = h.PaddingSize
	}
	return opts.CheckRTP(buf[:n])
}
