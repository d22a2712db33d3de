package sfu

import (
	"fmt"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Reasons of sotto_rtp_packets_dropped_total.
const (
	dropWriteError    = "write_error"           // the subscriber's transport refused the write
	dropNoBinding     = "no_subscriber_binding" // the subscriber has not finished negotiating the track
	dropCacheMiss     = "cache_miss"            // a NACKed packet is no longer in the cache
	dropMalformed     = "malformed"             // the RTP header or padding does not parse
	dropCodecMismatch = "codec_mismatch"        // payload type the subscriber did not negotiate
	dropRateLimited   = "rate_limited"          // the publisher's track sent more than its rate limits
)

// Reasons of sotto_nack_suppressed_total.
const (
	nackReasonBudget    = "budget"    // the subscription's retransmission budget was spent
	nackReasonDuplicate = "duplicate" // the same packet was resent moments ago
)

// metrics holds the SFU's collectors, registered only with a Registerer.
// Children used per packet are resolved up front: no lookup when forwarding.
type metrics struct {
	tracks        prometheus.Gauge
	subscriptions prometheus.Gauge

	packetsIn  *prometheus.CounterVec
	bytesIn    *prometheus.CounterVec
	packetsOut *prometheus.CounterVec
	bytesOut   *prometheus.CounterVec
	dropped    *prometheus.CounterVec

	nackRetransmissions            prometheus.Counter
	nackSuppressed                 *prometheus.CounterVec
	nackOverBudget, nackDuplicates prometheus.Counter
	rateExceeded                   prometheus.Counter
	// network counts what pion dropped unseen (pionlog.go).
	network             *networkDrops
	networkVec          *prometheus.CounterVec
	logSuppressed       prometheus.Counter
	keyframeRequests    *prometheus.CounterVec
	tracksRefused       prometheus.Counter
	participantsRefused *prometheus.CounterVec
	tooManySSRCs        prometheus.Counter
	// readDropped are readBufferDropped's children by ssrcGuard kind.
	readBufferDropped *prometheus.CounterVec
	readDropped       [2]prometheus.Counter

	droppedWrite, droppedNoBinding, droppedCacheMiss, droppedMalformed, droppedCodec prometheus.Counter
	droppedRateLimited                                                               prometheus.Counter
	keyframeSent, keyframeThrottled, keyframeFailed                                  prometheus.Counter

	strictRefused *prometheus.CounterVec
	strict        *strictMetrics
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		tracks: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sotto_tracks", Help: "Published tracks being forwarded.",
		}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sotto_subscriptions", Help: "Subscriptions of participants to tracks.",
		}),
		packetsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_rtp_packets_in_total", Help: "RTP packets received from publishers.",
		}, []string{"kind"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_rtp_bytes_in_total", Help: "RTP bytes (header and payload) received from publishers.",
		}, []string{"kind"}),
		packetsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_rtp_packets_out_total", Help: "RTP packets forwarded to subscribers, retransmissions included.",
		}, []string{"kind"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_rtp_bytes_out_total", Help: "RTP payload bytes forwarded to subscribers, retransmissions included.",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_rtp_packets_dropped_total", Help: "RTP packets not forwarded, by reason.",
		}, []string{"reason"}),
		nackRetransmissions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sotto_nack_retransmissions_total", Help: "Packets retransmitted from the packet cache in answer to NACKs.",
		}),
		nackSuppressed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_nack_suppressed_total",
			Help: "NACKed packets not retransmitted, by reason (budget: the subscription's retransmission budget was spent; duplicate: the packet was resent moments ago).",
		}, []string{"reason"}),
		networkVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_network_dropped_total",
			Help: "Datagrams and packets dropped before the SFU's forwarding saw them, by reason (oversized_datagram, srtp_auth_failed, srtp_replay, srtp_malformed, rtcp_malformed, stun_malformed, unknown_source, demux_unmatched, demux_buffer_full).",
		}, []string{"reason"}),
		logSuppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sotto_log_lines_suppressed_total",
			Help: "Repeated warning and error lines from the WebRTC stack collapsed into a count on a later line.",
		}),
		keyframeRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_keyframe_requests_total", Help: "Key-frame requests toward publishers, by result.",
		}, []string{"result"}),
		tracksRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sotto_tracks_refused_total",
			Help: "Tracks refused because they arrived on an SSRC outside any media section the client offered.",
		}),
		participantsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_participants_refused_total",
			Help: "Participants whose session the SFU ended because they broke one of its bounds, by rule (too_many_ssrcs: more SRTP or SRTCP streams on one connection than its tracks can use; rate_exceeded: a track sent far beyond its rate limits for seconds).",
		}, []string{"rule"}),
		readBufferDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_read_buffer_dropped_total",
			Help: "Decrypted RTP and RTCP packets dropped because their peer connection's read buffers were full, by kind (rtp, rtcp).",
		}, []string{"kind"}),
		strictRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_strict_refused_total",
			Help: "RTP and RTCP packets the strict checks refused and dropped, by direction (rtcp_in, rtp_in, rtcp_out, rtp_out) and rule.",
		}, []string{"direction", "rule"}),
	}
	m.strict = newStrictMetrics(m.strictRefused)
	m.tooManySSRCs = m.participantsRefused.WithLabelValues(ruleTooManySSRCs)
	m.rateExceeded = m.participantsRefused.WithLabelValues(RuleRateExceeded)
	m.nackOverBudget = m.nackSuppressed.WithLabelValues(nackReasonBudget)
	m.nackDuplicates = m.nackSuppressed.WithLabelValues(nackReasonDuplicate)
	m.network = newNetworkDrops(m.networkVec)
	for k := range m.readDropped {
		m.readDropped[k] = m.readBufferDropped.WithLabelValues(streamKindName(k))
	}
	m.droppedWrite = m.dropped.WithLabelValues(dropWriteError)
	m.droppedNoBinding = m.dropped.WithLabelValues(dropNoBinding)
	m.droppedCacheMiss = m.dropped.WithLabelValues(dropCacheMiss)
	m.droppedMalformed = m.dropped.WithLabelValues(dropMalformed)
	m.droppedCodec = m.dropped.WithLabelValues(dropCodecMismatch)
	m.droppedRateLimited = m.dropped.WithLabelValues(dropRateLimited)
	m.keyframeSent = m.keyframeRequests.WithLabelValues("sent")
	m.keyframeThrottled = m.keyframeRequests.WithLabelValues("throttled")
	m.keyframeFailed = m.keyframeRequests.WithLabelValues("failed")

	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.tracks, m.subscriptions, m.packetsIn, m.bytesIn, m.packetsOut, m.bytesOut,
		m.dropped, m.nackRetransmissions, m.keyframeRequests, m.tracksRefused, m.strictRefused,
		m.participantsRefused, m.readBufferDropped, m.nackSuppressed, m.networkVec, m.logSuppressed,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("sfu: register metrics: %w", err)
		}
	}
	return m, nil
}

// trackCounters are one track's per-kind counters, resolved at creation.
type trackCounters struct {
	packetsIn, bytesIn, packetsOut, bytesOut prometheus.Counter
}

func (m *metrics) forKind(kind webrtc.RTPCodecType) trackCounters {
	k := kind.String()
	return trackCounters{
		packetsIn:  m.packetsIn.WithLabelValues(k),
		bytesIn:    m.bytesIn.WithLabelValues(k),
		packetsOut: m.packetsOut.WithLabelValues(k),
		bytesOut:   m.bytesOut.WithLabelValues(k),
	}
}
