package relay

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the relay's Prometheus collectors. They exist whether or not
// a registerer was given, so that the code never checks.
type metrics struct {
	allocations      prometheus.Gauge
	allocationsTotal prometheus.Counter
	bytes            *prometheus.CounterVec // by direction
	packets          *prometheus.CounterVec // by direction
	refusals         *prometheus.CounterVec // by reason
	dropped          *prometheus.CounterVec // by reason

	// The per-datagram series, looked up once: WithLabelValues hashes
	// its labels on every call.
	bytesToPeer, bytesFromPeer     prometheus.Counter
	packetsToPeer, packetsFromPeer prometheus.Counter
	droppedBandwidth               prometheus.Counter
}

// Directions of relayed traffic, the "direction" label.
const (
	toPeer   = "to_peer"
	fromPeer = "from_peer"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		allocations: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sotto_turn_allocations", Help: "TURN allocations currently open.",
		}),
		allocationsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sotto_turn_allocations_total", Help: "TURN allocations created.",
		}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_turn_relayed_bytes_total", Help: "Payload bytes relayed, by direction (to_peer, from_peer).",
		}, []string{"direction"}),
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_turn_relayed_packets_total", Help: "Datagrams (or TCP reads) relayed, by direction (to_peer, from_peer).",
		}, []string{"direction"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_turn_refusals_total",
			Help: "Requests refused, by reason: expired, forged, wrong_realm, unknown_user, peer_denied, quota_user, quota_total.",
		}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_turn_dropped_packets_total",
			Help: "Relayed datagrams dropped, by reason: bandwidth (over the per-allocation limit), relay_address (aimed at the relay itself), endpoint_port (a port not opened on an endpoint-only peer).",
		}, []string{"reason"}),
	}
	for _, d := range []string{toPeer, fromPeer} {
		m.bytes.WithLabelValues(d)
		m.packets.WithLabelValues(d)
	}
	for _, r := range []string{reasonExpired, reasonForged, reasonWrongRealm, reasonUnknownUser, reasonPeerDenied, reasonQuotaUser, reasonQuotaTotal} {
		m.refusals.WithLabelValues(r)
	}
	for _, r := range []string{dropBandwidth, dropRelayAddress, dropEndpointPort} {
		m.dropped.WithLabelValues(r)
	}
	m.bytesToPeer, m.bytesFromPeer = m.bytes.WithLabelValues(toPeer), m.bytes.WithLabelValues(fromPeer)
	m.packetsToPeer, m.packetsFromPeer = m.packets.WithLabelValues(toPeer), m.packets.WithLabelValues(fromPeer)
	m.droppedBandwidth = m.dropped.WithLabelValues(dropBandwidth)
	return m, m.register(reg)
}

// register adds the collectors to reg (nil: nowhere).
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.allocations, m.allocationsTotal, m.bytes, m.packets, m.refusals, m.dropped} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return fmt.Errorf("relay: metrics already registered (one relay per registry): %w", err)
			}
			return fmt.Errorf("relay: metrics: %w", err)
		}
	}
	return nil
}
