package loadtest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// exposition is what cmd/sfu's /metrics shows, trimmed to what matters.
const exposition = `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 4.2e+07
# HELP sotto_rtp_packets_out_total RTP packets forwarded to subscribers, retransmissions included.
# TYPE sotto_rtp_packets_out_total counter
sotto_rtp_packets_out_total{kind="audio"} 1000
sotto_rtp_packets_out_total{kind="video"} 2500
# HELP sotto_rtp_packets_in_total RTP packets received from publishers.
# TYPE sotto_rtp_packets_in_total counter
sotto_rtp_packets_in_total{kind="audio"} 100
# HELP sotto_rtp_packets_dropped_total RTP packets not forwarded, by reason.
# TYPE sotto_rtp_packets_dropped_total counter
sotto_rtp_packets_dropped_total{reason="cache_miss"} 1
sotto_rtp_packets_dropped_total{reason="write_error"} 2
# HELP sotto_signaling_messages_total Signaling messages received, by type (unknown for anything else).
# TYPE sotto_signaling_messages_total counter
sotto_signaling_messages_total{type="join"} 5
sotto_signaling_messages_total{type="relay"} 40
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
`

func TestParseMetricsSumsOverLabels(t *testing.T) {
	s, err := parseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		metricCPU: 12.5, metricRSS: 42e6, metricForwarded: 3500, metricReceived: 100, metricDropped: 3, metricNACK: 0,
		metricMessages: 45, metricRelays: 40,
	}
	for name, v := range want {
		if s.values[name] != v {
			t.Errorf("%s = %v, want %v", name, s.values[name], v)
		}
	}
	if s.present[metricNACK] || !s.present[metricForwarded] {
		t.Errorf("present = %v", s.present)
	}
}

func TestSFUReport(t *testing.T) {
	at := time.Now()
	before := sample{values: map[string]float64{metricRSS: 10e6}}
	w0 := sample{at: at, values: map[string]float64{metricCPU: 10, metricForwarded: 1000}, present: map[string]bool{}}
	w1 := sample{at: at.Add(10 * time.Second),
		values:  map[string]float64{metricCPU: 12, metricForwarded: 301000, metricRSS: 30e6},
		present: map[string]bool{metricCPU: true, metricRSS: true, metricForwarded: true}}
	got := sfuReport("http://x/metrics", before, nil, w0, nil, w1, nil, 20)
	if !got.Available || got.CPUSeconds != 2 || got.ForwardedPackets != 300000 || got.ForwardedPerCPUSecond != 150000 ||
		got.WindowSeconds != 10 || got.RSSBytes != 30e6 || got.RSSBytesPerParticipant != 1e6 || got.Note != "" {
		t.Errorf("sfuReport = %+v", got)
	}

	w1.present = map[string]bool{metricCPU: true, metricRSS: true}
	if got := sfuReport("http://x/metrics", before, nil, w0, nil, w1, nil, 20); !strings.Contains(got.Note, metricForwarded) {
		t.Errorf("a missing forwarded counter should be named: %q", got.Note)
	}
	if got := sfuReport("http://x/metrics", before, nil, w0, errors.New("refused"), w1, nil, 20); got.Available || got.Note == "" {
		t.Errorf("a failed read: %+v", got)
	}
	if got := sfuReport("off", before, nil, w0, nil, w1, nil, 20); got.Available {
		t.Errorf("metrics off: %+v", got)
	}
}

func TestScrape(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(exposition))
	}))
	defer hs.Close()
	s, err := scrape(context.Background(), hs.Client(), hs.URL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if s.values[metricForwarded] != 3500 || s.at.IsZero() {
		t.Errorf("scrape = %+v", s)
	}
	if _, err := scrape(context.Background(), hs.Client(), hs.URL+"/nothing"); err == nil {
		t.Error("a 404 should be an error")
	}
}
