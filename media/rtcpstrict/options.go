package rtcpstrict

// Default limits (docs/FUZZING.md, "Limits", says why each is enough).
const (
	DefaultMaxDatagram        = 1500 // one Ethernet MTU, libwebrtc's IP_PACKET_SIZE
	DefaultMaxPackets         = 32
	DefaultMaxNACKEntries     = 64 // up to 1088 packets: twice the SFU's packet cache
	DefaultMaxTWCCStatusCount = 8192

	// Hard caps whatever the options say: pion cannot marshal more NACK
	// entries, and its 16-bit count of TWCC statuses must not wrap.
	maxNACKEntriesLimit     = 253
	maxTWCCStatusCountLimit = 1 << 15
	ccfbMaxReports          = 16384 // RFC 8888's cap on num_reports
)

// Options tunes the checks. The zero value is the strict RFC 3550
// defaults; a zero or negative limit takes its Default* value. It holds no
// state, so one value may serve every connection concurrently.
type Options struct {
	MaxDatagram        int // bytes of an RTCP datagram or RTP packet
	MaxPackets         int // RTCP packets in one compound
	MaxNACKEntries     int // FCI entries of one generic NACK; at most 253
	MaxTWCCStatusCount int // status count of one transport-wide CC; at most 32768
	// ReducedSize accepts RFC 5506 reduced-size RTCP: no SR/RR first and no
	// CNAME needed. Every per-packet rule still applies.
	ReducedSize bool
}

// DefaultOptions is Options{} with every limit spelled out.
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
