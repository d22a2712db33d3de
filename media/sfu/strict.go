package sfu

import (
	"strings"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sotto-rtc/sotto/media/rtcpstrict"
)

// Directions of sotto_strict_refused_total: where a refused packet was
// going.
const (
	dirRTCPIn  = "rtcp_in"  // RTCP from a client, after SRTCP
	dirRTPIn   = "rtp_in"   // RTP from a publisher, after SRTP
	dirRTCPOut = "rtcp_out" // RTCP the SFU's own interceptors or code wrote
	dirRTPOut  = "rtp_out"  // RTP the SFU forwards
)

// strictCounters are the refusal counters of one direction, one per rule
// that direction's check can report, created up front so a refusal is a
// map read and an atomic add: no label lookup and no allocation, however
// fast refusals come.
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

// refused counts one refusal. A rule missing from the table (one added to
// rtcpstrict without being listed in Rules) is still counted, through the
// slow label lookup; TestStrictCountersCoverRules keeps that path cold.
func (c strictCounters) refused(rule rtcpstrict.Rule) {
	if ctr, ok := c.byRule[rule]; ok {
		ctr.Inc()
		return
	}
	c.vec.WithLabelValues(c.direction, string(rule)).Inc()
}

// strictMetrics holds the four directions' counters.
type strictMetrics struct {
	rtcpIn, rtpIn, rtcpOut, rtpOut strictCounters
}

func newStrictMetrics(vec *prometheus.CounterVec) *strictMetrics {
	var rtcpRules, rtpRules []rtcpstrict.Rule
	for _, r := range rtcpstrict.Rules() {
		// rtcpstrict names every rule of its RTP check rtp_*, and only
		// those; its Error type relies on the same convention.
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

// newStrictOptions are the checks the SFU applies: reduced-size RTCP,
// because WebRTC negotiates a=rtcp-rsize, and because pion's SRTCP session
// hands each packet of a compound to the interceptors on its own (see
// strictInterceptor), so the compound rules could not hold anyway. The
// limits are rtcpstrict's defaults.
func newStrictOptions() rtcpstrict.Options {
	return rtcpstrict.Options{ReducedSize: true}
}

// strictFactory builds the interceptor that heads both of the SFU's
// interceptor chains. It must be the first factory added to a Registry:
// pion's Chain binds interceptors in registration order, each wrapping the
// reader or writer the previous one returned, so the first registered is
// the innermost. For reads that makes it the first to see a packet (the
// outer readers call inward and then parse what comes back); for writes it
// is the last to see a packet before the SRTP layer.
type strictFactory struct {
	opts rtcpstrict.Options
	m    *strictMetrics
}

// NewInterceptor returns the strict interceptor for one peer connection.
func (f strictFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &strictInterceptor{opts: f.opts, m: f.m}, nil
}

// strictInterceptor applies rtcpstrict to every packet in both directions.
//
// Where it stands in pion v4.2.20: incoming SRTCP is decrypted by
// pion/srtp's SessionSRTCP, which then calls rtcp.Unmarshal on the whole
// datagram, re-marshals each packet and queues each on the read stream of
// its destination SSRC (srtp v3.0.13 session_srtcp.go, decrypt). Only then
// does an RTCP reader of the interceptor chain run, one packet at a time.
// So this check is the first thing after pion/srtp, not the first thing
// after SRTCP authentication: pion/rtcp's Unmarshal, Marshal and
// DestinationSSRC run before it on every authenticated datagram, and no
// webrtc/v4 API reaches in front of them. The fuzz targets FuzzRTCP and
// FuzzSRTCPUnprotect run exactly that code on every input to show it does
// not panic; see docs/FUZZING.md. Likewise pion/srtp parses an RTP header to
// find the SSRC and key before decrypting. Everything after that, every
// interceptor and every line of the SFU, sees only checked packets.
//
// A refused incoming packet is dropped by reading the next one in its
// place: returning an error would reach the reader (the SFU's forwarding
// loop or feedback reader, or pion's own probing reads), which treats
// errors as a sign the stream is failing, and would spend the budget of
// read errors a track is given. A refused outgoing packet is dropped
// without an error, since nothing upstream could do better with it; the
// rtp_out and rtcp_out counters are how a refusal shows.
type strictInterceptor struct {
	interceptor.NoOp
	opts rtcpstrict.Options
	m    *strictMetrics
}

// BindRTCPReader checks each incoming RTCP packet before any other
// interceptor parses it.
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

// BindRemoteStream checks each incoming RTP packet's header before any
// other interceptor, or the SFU, parses it.
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

// BindRTCPWriter checks what the SFU sends. The SFU's RTCP (receiver
// reports, NACKs, transport-wide CC, sender reports, picture-loss
// requests) is all written by pion's marshallers from structs, and some of
// them write packets pion itself cannot read back (docs/FUZZING.md lists
// them). Checking costs one marshal per batch, tens per second per
// connection; a refusal means a bug on this side, which the rtcp_out
// counter makes visible instead of leaving a browser to discard it. A batch
// that fails as a whole is retried packet by packet, so one bad packet
// does not take the others with it.
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

// checkRTCPOut marshals pkts as the SRTCP writer will and checks the
// result. A batch pion cannot marshal at all passes: the writer refuses it
// with an error of its own.
func (i *strictInterceptor) checkRTCPOut(pkts []rtcp.Packet) rtcpstrict.Rule {
	raw, err := rtcp.Marshal(pkts)
	if err != nil {
		return ""
	}
	return i.opts.Check(raw)
}

// BindLocalStream checks every RTP packet the SFU forwards. The SFU builds
// each header from one that passed the incoming check, but it rewrites
// extensions and carries padding over, and pion's marshaller trusts the
// header it is given: a header with the padding bit and no padding size
// makes rtp.MarshalPacketTo write 255 bytes past the payload. The check
// marshals the header alone into a stack buffer: no allocation, and no
// copy of the payload, which is the same for every subscriber.
func (i *strictInterceptor) BindLocalStream(_ *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if rule := checkOutgoingRTP(i.opts, h, payload); rule != "" {
			i.m.rtpOut.refused(rule)
			return 0, nil
		}
		return writer.Write(h, payload, a)
	})
}

// maxCheckedHeader is the largest outgoing header checkOutgoingRTP
// marshals on the stack: 12 bytes, 15 CSRCs, and header extensions the
// SFU's rewrite keeps to a few bytes each. A larger header is checked as
// a whole packet (checkOutgoingPacket).
const maxCheckedHeader = 256

// checkOutgoingRTP checks the packet that h and payload marshal to, as
// the SRTP writer will marshal it, without building it: the checks that
// read past the header (size, padding) depend only on the lengths and on
// the padding count, which rtp.MarshalPacketTo writes as the last byte. A
// header pion cannot marshal at all passes: the writer refuses it with an
// error of its own.
func checkOutgoingRTP(opts rtcpstrict.Options, h *rtp.Header, payload []byte) rtcpstrict.Rule {
	if h.Padding && h.PaddingSize == 0 {
		return rtcpstrict.RuleRTPPaddingZero
	}
	hs := h.MarshalSize()
	// maxPacketSize is rtcpstrict's default MaxDatagram, so a packet that
	// does not fit is one the check would refuse as too large.
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
	// The padding rules hold by construction: the count is not 0 (above)
	// and cannot exceed the bytes after the header, which are the payload
	// and the padding itself. Without the bit, the header alone is a
	// packet with an empty payload, and every other rule sees it whole.
	buf[0] &^= 0x20
	return opts.CheckRTP(buf[:n])
}

// checkOutgoingPacket is checkOutgoingRTP on the whole marshalled packet,
// for a header too large for its stack buffer.
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
