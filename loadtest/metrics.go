package loadtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The SFU's metrics the report uses (cmd/sfu serves them on /metrics;
// media/sfu/metrics.go defines the sotto_ ones). Forwarded packets are
// sotto_rtp_packets_out_total summed over its kind label: every RTP packet
// the SFU wrote to a subscriber, retransmissions included.
const (
	metricCPU       = "process_cpu_seconds_total"
	metricRSS       = "process_resident_memory_bytes"
	metricForwarded = "sotto_rtp_packets_out_total"
	metricReceived  = "sotto_rtp_packets_in_total"
	metricDropped   = "sotto_rtp_packets_dropped_total"
	metricNACK      = "sotto_nack_retransmissions_total"
	// Signaling (signaling/metrics.go): every message received, relay
	// messages alone (end-to-end encryption's key exchange travels as
	// relays), error messages sent, and connections dropped for not
	// reading.
	metricMessages = "sotto_signaling_messages_total"
	metricRelays   = `sotto_signaling_messages_total{type="relay"}`
	metricErrors   = "sotto_signaling_errors_total"
	metricSlow     = "sotto_signaling_slow_client_disconnects_total"
)

// wantedMetrics are the families parseMetrics sums.
var wantedMetrics = []string{metricCPU, metricRSS, metricForwarded, metricReceived, metricDropped, metricNACK, metricMessages, metricErrors, metricSlow}

// scrapeTimeout bounds one read of /metrics.
const scrapeTimeout = 10 * time.Second

// sample is one read of the SFU's metrics. present says which of the
// wanted families the server exposed at all: a counter vector without
// children yet (no track so far) is absent and counts as zero.
type sample struct {
	at      time.Time
	values  map[string]float64
	present map[string]bool
}

// scrape reads the metrics at url (Prometheus text format).
func scrape(ctx context.Context, hc *http.Client, url string) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return sample{}, fmt.Errorf("loadtest: metrics: %w", err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := hc.Do(req)
	if err != nil {
		return sample{}, fmt.Errorf("loadtest: metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return sample{}, fmt.Errorf("loadtest: metrics: %s: %s", url, resp.Status)
	}
	s, err := parseMetrics(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return sample{}, fmt.Errorf("loadtest: metrics: %s: %w", url, err)
	}
	s.at = time.Now()
	return s, nil
}

// parseMetrics sums each wanted family over its labels.
func parseMetrics(r io.Reader) (sample, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return sample{}, err
	}
	s := sample{values: make(map[string]float64), present: make(map[string]bool)}
	for _, name := range wantedMetrics {
		f := fams[name]
		if f == nil {
			continue
		}
		s.present[name] = true
		for _, m := range f.GetMetric() {
			v := metricValue(m)
			s.values[name] += v
			if name == metricMessages {
				for _, l := range m.GetLabel() {
					if l.GetName() == "type" && l.GetValue() == "relay" {
						s.values[metricRelays] += v
					}
				}
			}
		}
	}
	return s, nil
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}
