package signaling

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// metrics are the server's Prometheus collectors. They exist whether or
// not a registerer was given, so that the code never checks.
type metrics struct {
	rooms          prometheus.Gauge
	participants   prometheus.Gauge
	joinDuration   prometheus.Histogram
	messages       *prometheus.CounterVec // by type
	errors         *prometheus.CounterVec // by code
	joins          *prometheus.CounterVec // by result
	connFailures   *prometheus.CounterVec // by target
	slowDisconnect prometheus.Counter
	relayRefused   *prometheus.CounterVec // by reason
	unjoined       prometheus.Gauge
	unjoinedRefuse *prometheus.CounterVec // by limit
}

// isClientType reports whether typ is a message type a client may send.
// Any other type is counted as "unknown" so that a client cannot invent
// label values.
func isClientType(typ string) bool {
	switch typ {
	case wire.TypeJoin, wire.TypeOffer, wire.TypeAnswer, wire.TypeCandidate, wire.TypeSubscribe,
		wire.TypeUnsubscribe, wire.TypeUnpublish, wire.TypeMute, wire.TypeRelay, wire.TypeLeave,
		wire.TypePing, wire.TypePong:
		return true
	}
	return false
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		rooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sotto_rooms", Help: "Rooms with at least one participant on this node.",
		}),
		participants: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sotto_participants", Help: "Participants joined (or joining) on this node.",
		}),
		joinDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sotto_join_duration_seconds",
			Help:    "Time from WebSocket accept to the joined message written.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_signaling_messages_total", Help: "Signaling messages received, by type (unknown for anything else).",
		}, []string{"type"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_signaling_errors_total", Help: "Error messages sent to clients, by code.",
		}, []string{"code"}),
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_joins_total", Help: "Join attempts, by result (ok or the refusal's error code).",
		}, []string{"result"}),
		connFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_signaling_media_connection_failures_total", Help: "ICE or DTLS failures reported by the SFU, by peer connection.",
		}, []string{"target"}),
		slowDisconnect: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sotto_signaling_slow_client_disconnects_total", Help: "Connections closed because their outbound queue overflowed.",
		}),
		relayRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_signaling_relays_refused_total", Help: "Relays refused to their sender, by reason (sender_budget, receiver_share, receiver_queue).",
		}, []string{"reason"}),
		unjoined: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sotto_signaling_unjoined_connections", Help: "WebSocket connections that have not joined.",
		}),
		unjoinedRefuse: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_signaling_unjoined_refused_total", Help: "Upgrades refused because too many connections had not joined, by limit (address, total).",
		}, []string{"limit"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.rooms, m.participants, m.joinDuration, m.messages, m.errors, m.joins, m.connFailures, m.slowDisconnect,
		m.relayRefused, m.unjoined, m.unjoinedRefuse,
	} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("signaling: metrics already registered (one Server per registerer): %w", err)
			}
			return nil, fmt.Errorf("signaling: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) message(typ string) {
	if !isClientType(typ) {
		typ = "unknown"
	}
	m.messages.WithLabelValues(typ).Inc()
}
