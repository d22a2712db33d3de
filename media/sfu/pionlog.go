package sfu

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sotto-rtc/sotto/internal/pionlog"
)

// Much of what pion drops it drops with a log line and nothing else. The
// SFU's hook on pion's logs counts those lines under
// sotto_network_dropped_total, whatever the log level, by the format string
// pion logs them with (TestNetworkFloodIsCountedQuietly fails if those
// change), and demotes the warnings every normal leave causes.

// Reasons of sotto_network_dropped_total.
const (
	netOversized     = "oversized_datagram" // larger than the receive MTU (socket or demux)
	netSRTPAuth      = "srtp_auth_failed"   // SRTP or SRTCP that failed authentication
	netSRTPReplay    = "srtp_replay"        // SRTP or SRTCP replayed or too old
	netSRTPMalformed = "srtp_malformed"     // too short, or an RTP header pion/srtp cannot parse
	netRTCPMalformed = "rtcp_malformed"     // authenticated SRTCP that pion/rtcp cannot parse
	netSTUNMalformed = "stun_malformed"     // STUN that does not decode or names no user
	netUnknownSource = "unknown_source"     // a datagram from an address no connection knows
	netDemuxNoMatch  = "demux_unmatched"    // a datagram no protocol on the connection claims
	netDemuxFull     = "demux_buffer_full"  // the connection's demux buffer was full
)

// logRepeatWindow is the least time between two warning or error lines of
// the same message.
const logRepeatWindow = 10 * time.Second

// networkDrops holds sotto_network_dropped_total's children, created up
// front: pion logs a drop per packet.
type networkDrops struct {
	oversized, srtpAuth, srtpReplay, srtpMalformed, rtcpMalformed,
	stunMalformed, unknownSource, demuxNoMatch, demuxFull prometheus.Counter
}

func newNetworkDrops(vec *prometheus.CounterVec) *networkDrops {
	c := func(r string) prometheus.Counter { return vec.WithLabelValues(r) }
	return &networkDrops{
		oversized: c(netOversized), srtpAuth: c(netSRTPAuth), srtpReplay: c(netSRTPReplay),
		srtpMalformed: c(netSRTPMalformed), rtcpMalformed: c(netRTCPMalformed),
		stunMalformed: c(netSTUNMalformed), unknownSource: c(netUnknownSource),
		demuxNoMatch: c(netDemuxNoMatch), demuxFull: c(netDemuxFull),
	}
}

func newPionLoggerFactory(log *slog.Logger, m *metrics) *pionlog.Factory {
	return pionlog.New(log, pionlog.Options{
		Hook:       m.network.hook,
		Repeat:     logRepeatWindow,
		Suppressed: m.logSuppressed.Inc,
	})
}

// hook counts the drops pion reports by a line and returns the level the
// line is written at.
func (d *networkDrops) hook(scope string, level slog.Level, format string, args []any) slog.Level {
	if level == pionlog.LevelTrace {
		if scope == "udpmux" && format == "Dropping packet from %s" {
			d.unknownSource.Inc()
		}
		return level
	}
	d.count(scope, format, args)
	if level >= slog.LevelWarn && closingNoise(scope, format, args) {
		return slog.LevelDebug
	}
	return level
}

func (d *networkDrops) count(scope, format string, args []any) {
	switch scope {
	case "mux":
		switch format {
		case "mux: failed to read from packetio.Buffer %s":
			if len(args) == 1 && strings.Contains(fmt.Sprint(args[0]), "short buffer") {
				d.oversized.Inc()
			}
		case "mux: endpoint buffer is full, dropping packet":
			d.demuxFull.Inc()
		case "Warning: mux: no endpoint for packet starting with %d, not adding to queue size(%d)",
			"Warning: mux: unable to dispatch zero length packet":
			d.demuxNoMatch.Inc()
		}
	case "udpmux", "tcpmux":
		switch format {
		case "Failed to handle decode ICE from %s: %v", "No Username attribute in STUN message from %s":
			d.stunMalformed.Inc()
		}
	case "srtp":
		// pion/srtp logs each decryption error as the message itself.
		if len(args) != 0 {
			return
		}
		switch msg := format; {
		case strings.Contains(msg, "failed to verify auth tag"), strings.Contains(msg, "MKI not found"):
			d.srtpAuth.Inc()
		case strings.Contains(msg, "duplicated packet"), strings.Contains(msg, "exceeded the maximum number of packets"):
			d.srtpReplay.Inc()
		case strings.HasPrefix(msg, "rtcp:"):
			d.rtcpMalformed.Inc()
		case msg != "":
			d.srtpMalformed.Inc()
		}
	}
}

// closingNoise reports the warnings pion writes when a connection closes
// under its readers: read, write and accept loops failing on the closed
// transport, and a packet queued for an SRTP session that just closed.
func closingNoise(scope, format string, args []any) bool {
	if scope == "mux" && format == "Warning: mux: no endpoint for packet starting with %d, adding to queue size(%d)" {
		return true
	}
	switch {
	case scope == "ice" && (format == "Failed to read from candidate %s: %v" || format == "Failed to write packet: %s"),
		scope == "udpmux" && format == "Failed to write packet: %v",
		scope == "pc" && (format == "Failed to accept RTP %v" || format == "Failed to accept RTCP %v"):
	default:
		return false
	}
	if len(args) == 0 {
		return false
	}
	err := fmt.Sprint(args[len(args)-1])
	return strings.Contains(err, "closed pipe") || strings.Contains(err, "already closed") ||
		strings.Contains(err, "use of closed network connection") || strings.Contains(err, "EOF")
}
