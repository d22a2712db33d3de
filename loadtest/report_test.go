package loadtest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/report_schema.golden")

// fullReport has every field set, so that its JSON shows every key.
func fullReport() Report {
	loss := 0.01
	return Report{
		Schema: SchemaVersion, StartedAt: time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC),
		Config: ReportConfig{URL: "http://127.0.0.1:7780", Rooms: 1, Publishers: 10, Subscribers: 10,
			DurationSeconds: 60, Media: "audio+video", VideoBitrateBPS: 500000, E2EE: true, RampPerSecond: 5,
			MaxLoss: &loss, MaxP95JoinMS: 2000, AudioFrameBytes: 80, VideoFPS: 30, KeyframeInterval: 3},
		Interrupted: true, MeasuredSeconds: 60,
		ParticipantsExpected: 20, ParticipantsJoined: 20, ParticipantsConnected: 20, JoinFailures: 1, JoinRetries: 2,
		JoinMS:          Percentiles{1, 2, 3, 4},
		TracksPublished: 20, TracksExpected: 200, TracksReceived: 200,
		FramesSent: 1, FramesSkipped: 1, FramesExpected: 1, FramesReceived: 1,
		PacketLoss: 0.5, Ramp: PhaseLoss{1, 1, 0.5}, JitterMS: 1, SentBitrateBPS: 1, ReceivedBitrateBPS: 1,
		ReceivedBitrateBPSByKind: KindRates{1, 1}, E2ELatencyMS: Percentiles{1, 2, 3, 4},
		DecryptFailures: 1, DecryptNoKey: 1, MalformedFrames: 1, Reconnects: 1, Errors: 1,
		ErrorSamples: []string{"e"},
		Admission:    &AdmissionReport{Policy: "admit all", Admitted: 1, Admissions: 1, RosterAlerts: 1},
		SFU: SFUReport{Available: true, WindowSeconds: 1, CPUSeconds: 1, RSSBytes: 1, RSSBytesBefore: 1,
			RSSBytesPerParticipant: 1, ForwardedPackets: 1, ReceivedPackets: 1, DroppedPackets: 1,
			NACKRetransmissions: 1, ForwardedPerCPUSecond: 1, SignalingMessages: 1, RelayMessages: 1,
			SignalingErrors: 1, SlowClientDisconnects: 1, Note: "n"},
		LoadtestCPUSeconds: 1,
		Violations:         []Violation{{Flag: "--max-loss", Limit: 0.01, Measured: 0.5, Message: "m"}},
	}
}

// schemaLines flattens JSON into "path: type" lines, sorted.
func schemaLines(t *testing.T, data []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	var lines []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(p, e)
			}
		case []any:
			if len(x) > 0 {
				walk(path+"[]", x[0])
			} else {
				lines = append(lines, path+": array")
			}
		case string:
			lines = append(lines, path+": string")
		case float64:
			lines = append(lines, path+": number")
		case bool:
			lines = append(lines, path+": boolean")
		case nil:
			lines = append(lines, path+": null")
		}
	}
	walk("", v)
	slices.Sort(lines)
	return lines
}

// TestReportSchemaGolden holds the report's JSON field names and types:
// they are a public contract (docs/BENCHMARKS.md). A change here must be
// deliberate: run with -update, and bump SchemaVersion if a field was
// renamed, removed or changed meaning.
func TestReportSchemaGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := fullReport().WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(schemaLines(t, buf.Bytes()), "\n") + "\n"
	path := filepath.Join("testdata", "report_schema.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./loadtest -run TestReportSchemaGolden -update)", err)
	}
	if got != string(want) {
		t.Errorf("report schema changed (-update to accept, and see SchemaVersion):\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// TestReportHasTheContractFields names the fields the issue and the
// documentation promise, independently of the golden file.
func TestReportHasTheContractFields(t *testing.T) {
	var buf bytes.Buffer
	if err := fullReport().WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	lines := schemaLines(t, buf.Bytes())
	for _, f := range []string{
		"participants_connected: number",
		"join_ms.p50: number", "join_ms.p95: number", "join_ms.p99: number",
		"packet_loss: number",
		"jitter_ms: number",
		"received_bitrate_bps: number",
		"e2e_latency_ms.p50: number", "e2e_latency_ms.p95: number", "e2e_latency_ms.p99: number",
		"decrypt_failures: number",
		"decrypt_no_key: number",
		"sfu.cpu_seconds: number", "sfu.rss_bytes: number", "sfu.forwarded_packets: number",
	} {
		if !slices.Contains(lines, f) {
			t.Errorf("report lacks %q", f)
		}
	}
}

func TestEmptyReportJSONHasArraysNotNull(t *testing.T) {
	var buf bytes.Buffer
	if err := (Report{Schema: SchemaVersion}).WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"violations", "error_samples"} {
		if _, ok := m[k].([]any); !ok {
			t.Errorf("%s is %v, want an empty array", k, m[k])
		}
	}
	if m["config"].(map[string]any)["max_loss"] != nil {
		t.Errorf("max_loss without a threshold should be null")
	}
}

func TestEvaluate(t *testing.T) {
	base := Report{
		ParticipantsExpected: 10, ParticipantsJoined: 10,
		TracksExpected: 20, TracksReceived: 20, FramesExpected: 1000,
		PacketLoss: 0.005, JoinMS: Percentiles{P95: 800},
	}
	f := func(x float64) *float64 { return &x }
	tests := []struct {
		name      string
		change    func(*Report)
		th        Thresholds
		wantFlags []string
	}{
		{"no thresholds, nothing broken", func(r *Report) { r.PacketLoss = 0.9 }, Thresholds{}, nil},
		{"loss within", nil, Thresholds{MaxLoss: f(0.01)}, nil},
		{"loss at the limit is within", func(r *Report) { r.PacketLoss = 0.01 }, Thresholds{MaxLoss: f(0.01)}, nil},
		{"loss above", func(r *Report) { r.PacketLoss = 0.0101 }, Thresholds{MaxLoss: f(0.01)}, []string{"--max-loss"}},
		{"zero loss allowed, some lost", nil, Thresholds{MaxLoss: f(0)}, []string{"--max-loss"}},
		{"silent subscription breaks loss", func(r *Report) { r.TracksReceived = 19 }, Thresholds{MaxLoss: f(0.5)}, []string{"--max-loss"}},
		{"join within", nil, Thresholds{MaxP95Join: time.Second}, nil},
		{"join above", func(r *Report) { r.JoinMS.P95 = 1000.5 }, Thresholds{MaxP95Join: time.Second}, []string{"--max-p95-join"}},
		{"failed join breaks join", func(r *Report) { r.ParticipantsJoined = 9 }, Thresholds{MaxP95Join: time.Second}, []string{"--max-p95-join"}},
		{"both", func(r *Report) { r.PacketLoss, r.JoinMS.P95 = 0.2, 5000 },
			Thresholds{MaxLoss: f(0.1), MaxP95Join: time.Second}, []string{"--max-loss", "--max-p95-join"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			if tt.change != nil {
				tt.change(&r)
			}
			var got []string
			for _, v := range Evaluate(r, tt.th) {
				got = append(got, v.Flag)
				if !strings.Contains(v.Message, v.Flag) {
					t.Errorf("message %q does not name %s", v.Message, v.Flag)
				}
			}
			if !slices.Equal(got, tt.wantFlags) {
				t.Errorf("Evaluate = %v, want %v", got, tt.wantFlags)
			}
		})
	}
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	if err := fullReport().WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"INTERRUPTED", "join latency", "frame loss", "e2e latency", "SFU forwarded", "per SFU CPU-second", "THRESHOLD", "m"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
