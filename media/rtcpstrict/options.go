package rtcpstrict

// Default limits. Each is justified where it is used in the package
// documentation; they are constants, not variables, so nothing can change
// them behind the SFU's back.
const (
	// DefaultMaxDatagram is one Ethernet MTU. WebRTC stacks keep RTCP and
	// RTP under the path MTU (libwebrtc's IP_PACKET_SIZE is 1500), so a
	// longer datagram is not from a browser.
	DefaultMaxDatagram = 1500
	// DefaultMaxPackets bounds the packets in one compound. Real compounds
	// hold SR/RR, a few extra RRs, SDES, maybe BYE and a handful of feedback
	// messages; 32 is several times that, and it bounds pion's per-packet
	// allocations.
	DefaultMaxPackets = 32
	// DefaultMaxNACKEntries bounds the FCI entries of one generic NACK. Each
	// entry names up to 17 packets, so 64 entries name up to 1088 packets:
	// twice the SFU's default 512-packet cache. More only buys an attacker
	// retransmission work per NACK.
	DefaultMaxNACKEntries = 64
	// DefaultMaxTWCCStatusCount bounds the packet status count of one
	// transport-wide CC feedback. Browsers send one every 50-100 ms; 8192
	// statuses is eight seconds of 1000 packet/s media with no feedback in
	// between, and it bounds the per-status work of the bandwidth estimator
	// that consumes the feedback.
	DefaultMaxTWCCStatusCount = 8192

	// maxNACKEntriesLimit is the most NACK entries pion/rtcp v1.2.17 can
	// marshal (TransportLayerNack.Marshal refuses len(Nacks)+2 > 255), so the
	// validator never accepts more whatever the option says.
	maxNACKEntriesLimit = 253
	// maxTWCCStatusCountLimit keeps pion's uint16 count of processed
	// statuses from wrapping when a 14-symbol vector chunk overshoots the
	// status count; a wrap would make pion read chunks the validator did not.
	maxTWCCStatusCountLimit = 1 << 15
	// ccfbMaxReports is RFC 8888's cap on num_reports in one report block;
	// pion/rtcp refuses to marshal more.
	ccfbMaxReports = 16384
)

// Options tunes the checks. The zero value means the strict RFC 3550
// defaults: every zero or negative limit takes its Default* value, and
// ReducedSize is false. An Options value holds no state, so one value may
// serve every connection concurrently.
type Options struct {
	// MaxDatagram is the largest RTCP datagram or RTP packet accepted, in
	// bytes. Default DefaultMaxDatagram.
	MaxDatagram int
	// MaxPackets is the most RTCP packets accepted in one compound. Default
	// DefaultMaxPackets.
	MaxPackets int
	// MaxNACKEntries is the most FCI entries accepted in one generic NACK.
	// Default DefaultMaxNACKEntries; values above 253 are treated as 253
	// because pion/rtcp cannot marshal more.
	MaxNACKEntries int
	// MaxTWCCStatusCount is the largest packet status count accepted in one
	// transport-wide CC feedback. Default DefaultMaxTWCCStatusCount; values
	// above 32768 are treated as 32768.
	MaxTWCCStatusCount int
	// ReducedSize accepts RFC 5506 reduced-size RTCP: a datagram need not
	// start with an SR or RR nor carry an SDES CNAME. Every per-packet rule
	// still applies. The SFU sets it because WebRTC negotiates
	// a=rtcp-rsize.
	ReducedSize bool
}

// DefaultOptions returns the strict RFC 3550 defaults with every limit
// spelled out. It is equivalent to Options{}.
func DefaultOptions() Options {
	return Options{
		MaxDatagram:        DefaultMaxDatagram,
		MaxPackets:         DefaultMaxPackets,
		MaxNACKEntries:     DefaultMaxNACKEntries,
		MaxTWCCStatusCount: DefaultMaxTWCCStatusCount,
	}
}

// resolved fills defaults and applies the hard limits pion imposes.
func (o Options) resolved() Options {
	if o.MaxDatagram <= 0 {
		o.MaxDatagram = DefaultMaxDatagram
	}
	if o.MaxPackets <= 0 {
		o.MaxPackets = DefaultMaxPackets
	}
	if o.MaxNACKEntries <= 0 {
		o.MaxNACKEntries = DefaultMaxNACKEntries
	}
	o.MaxNACKEntries = min(o.MaxNACKEntries, maxNACKEntriesLimit)
	if o.MaxTWCCStatusCount <= 0 {
		o.MaxTWCCStatusCount = DefaultMaxTWCCStatusCount
	}
	o.MaxTWCCStatusCount = min(o.MaxTWCCStatusCount, maxTWCCStatusCountLimit)
	return o
}
