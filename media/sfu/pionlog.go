package sfu

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pion/logging"
	"github.com/prometheus/client_golang/prometheus"
)

// pion's logs, counted and kept in proportion.
//
// Much of what pion drops it drops with a log line and nothing else: a
// datagram larger than its receive MTU (an ERROR per datagram), SRTP and
// SRTCP that fail authentication or parsing (INFO), STUN that does not
// decode. The adapter below recognises those lines, by the format string
// pion logs them with, and counts each under sotto_network_dropped_total
// whatever the log level. It writes at most one line per message per
// logRepeatWindow at warning and error level, and the next one it writes
// says how many it held back; and it turns into debug lines the warnings
// pion writes when a connection closes under its readers, which every
// normal leave causes.

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

// logRepeatWindow is the least time between two lines of the same message.
const logRepeatWindow = 10 * time.Second

// maxLogKeys bounds the messages whose repeats are tracked; beyond it,
// messages of a scope and level share one entry.
const maxLogKeys = 512

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

// pionLoggerFactory sends pion's logs to the SFU's slog logger. pion's info
// and below are library internals, so they go to debug.
type pionLoggerFactory struct {
	log   *slog.Logger
	state *pionLogState
}

func newPionLoggerFactory(log *slog.Logger, m *metrics) pionLoggerFactory {
	return pionLoggerFactory{log: log, state: &pionLogState{
		drops:      m.network,
		suppressed: m.logSuppressed,
		window:     logRepeatWindow,
		seen:       make(map[logKey]*logRepeat),
	}}
}

// NewLogger returns the logger of one pion subsystem.
func (f pionLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope), scope: scope, st: f.state}
}

// pionLogState is what every pion logger of an SFU shares.
type pionLogState struct {
	drops      *networkDrops
	suppressed prometheus.Counter
	window     time.Duration

	mu   sync.Mutex
	seen map[logKey]*logRepeat
}

type logKey struct {
	scope, format string
	level         slog.Level
}

type logRepeat struct {
	last time.Time // when a line was last written
	held int       // repeats not written since
}

// admit decides whether a line of key is written now, and how many
// repeats it stands for besides itself.
func (st *pionLogState) admit(k logKey) (bool, int) {
	now := time.Now()
	st.mu.Lock()
	defer st.mu.Unlock()
	r := st.seen[k]
	if r == nil {
		if len(st.seen) >= maxLogKeys {
			for key, old := range st.seen {
				if now.Sub(old.last) >= st.window {
					delete(st.seen, key)
				}
			}
		}
		if len(st.seen) >= maxLogKeys {
			k.format = ""
			if r = st.seen[k]; r == nil {
				r = &logRepeat{}
				st.seen[k] = r
			}
		} else {
			r = &logRepeat{}
			st.seen[k] = r
		}
	}
	if !r.last.IsZero() && now.Sub(r.last) < st.window {
		r.held++
		st.suppressed.Inc()
		return false, 0
	}
	held := r.held
	r.last, r.held = now, 0
	return true, held
}

type pionLogger struct {
	log   *slog.Logger
	scope string
	st    *pionLogState
}

// write writes one line of pion's. format is what identifies the message:
// the format string, or (with no args) the message itself, for pion's
// unformatted calls.
func (l pionLogger) write(level slog.Level, format string, args []any) {
	l.count(format, args)
	ctx := context.Background()
	if level >= slog.LevelWarn && closingNoise(l.scope, format, args) {
		level = slog.LevelDebug
	}
	// Formatting is skipped when the level is off: pion logs per packet
	// at debug in places.
	if !l.log.Enabled(ctx, level) {
		return
	}
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	if level < slog.LevelWarn {
		l.log.Log(ctx, level, msg)
		return
	}
	ok, held := l.st.admit(logKey{scope: l.scope, format: format, level: level})
	if !ok {
		return
	}
	if held > 0 {
		l.log.Log(ctx, level, msg, "repeats_suppressed", held)
		return
	}
	l.log.Log(ctx, level, msg)
}

// count counts the drops pion reports by a line: format is compared with
// the literal pion v4.2.20 (ice v4.4.2, srtp v3.0.13) logs them with.
func (l pionLogger) count(format string, args []any) {
	d := l.st.drops
	switch l.scope {
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
		// pion/srtp logs every decryption error as its message (session.go).
		if len(args) != 0 {
			return
		}
		msg := format
		switch {
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
// while its readers are still reading: an ICE candidate's read loop and
// the accept loop of undeclared streams fail on the closed transport, a
// packet that arrives as a connection closes finds its buffer closed (in
// the shared socket's demux or in the ICE agent), and
// the demux holds a packet that comes after its SRTP session closed (as
// it holds one that comes before the session opens: nothing is lost).
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

func (l pionLogger) Trace(string) {}
func (l pionLogger) Tracef(format string, args ...any) {
	if format == "Dropping packet from %s" && l.scope == "udpmux" {
		l.st.drops.unknownSource.Inc()
	}
}
func (l pionLogger) Debug(msg string)                  { l.write(slog.LevelDebug, msg, nil) }
func (l pionLogger) Debugf(format string, args ...any) { l.write(slog.LevelDebug, format, args) }
func (l pionLogger) Info(msg string)                   { l.write(slog.LevelDebug, msg, nil) }
func (l pionLogger) Infof(format string, args ...any)  { l.write(slog.LevelDebug, format, args) }
func (l pionLogger) Warn(msg string)                   { l.write(slog.LevelWarn, msg, nil) }
func (l pionLogger) Warnf(format string, args ...any)  { l.write(slog.LevelWarn, format, args) }
func (l pionLogger) Error(msg string)                  { l.write(slog.LevelError, msg, nil) }
func (l pionLogger) Errorf(format string, args ...any) { l.write(slog.LevelError, format, args) }
