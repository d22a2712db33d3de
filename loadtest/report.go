package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// SchemaVersion is the report's "schema" field. It changes only when a
// field is renamed, removed or changes meaning.
const SchemaVersion = "sotto-loadtest/1"

// Report is the outcome of a run. Its JSON form is a public contract, each
// field described in docs/BENCHMARKS.md, "The JSON report". Figures are on
// frames, by the sequence number and send time each carries inside its
// encrypted part, over the measurement window unless said otherwise;
// bitrates are media bitrates, without any packet overhead.
type Report struct {
	Schema          string       `json:"schema"`
	StartedAt       time.Time    `json:"started_at"`
	Config          ReportConfig `json:"config"`
	Interrupted     bool         `json:"interrupted"` // stopped before the window ended
	MeasuredSeconds float64      `json:"measured_seconds"`

	ParticipantsExpected  int         `json:"participants_expected"`
	ParticipantsJoined    int         `json:"participants_joined"`
	ParticipantsConnected int         `json:"participants_connected"` // at the window's end
	JoinFailures          int         `json:"join_failures"`
	JoinRetries           int         `json:"join_retries"` // refused as join_rate_limited, tried again
	JoinMS                Percentiles `json:"join_ms"`

	TracksPublished int `json:"tracks_published"`
	TracksExpected  int `json:"tracks_expected"` // subscriptions that should deliver
	TracksReceived  int `json:"tracks_received"`

	FramesSent uint64 `json:"frames_sent"` // over the whole run
	// FramesSkipped are ticks this process was too late for: above a few
	// percent the load tool, not the SFU, is the bottleneck.
	FramesSkipped  uint64    `json:"frames_skipped"`
	FramesExpected uint64    `json:"frames_expected"`
	FramesReceived uint64    `json:"frames_received"`
	PacketLoss     float64   `json:"packet_loss"` // of frames, 0-1
	Ramp           PhaseLoss `json:"ramp"`        // the same before the window
	JitterMS       float64   `json:"jitter_ms"`   // RFC 3550, on send times

	SentBitrateBPS           float64     `json:"sent_bitrate_bps"`
	ReceivedBitrateBPS       float64     `json:"received_bitrate_bps"`
	ReceivedBitrateBPSByKind KindRates   `json:"received_bitrate_bps_by_kind"`
	E2ELatencyMS             Percentiles `json:"e2e_latency_ms"` // WriteSample to ReadFrame

	DecryptFailures uint64 `json:"decrypt_failures"` // RemoteTrack.Stats().Rejected: must be 0
	DecryptNoKey    uint64 `json:"decrypt_no_key"`   // arrived before their key
	MalformedFrames uint64 `json:"malformed_frames"` // without the load tool's header

	Reconnects   int      `json:"reconnects"`
	Errors       int      `json:"errors"`
	ErrorSamples []string `json:"error_samples"`

	Admission          *AdmissionReport `json:"admission"` // nil without E2EE
	SFU                SFUReport        `json:"sfu"`
	LoadtestCPUSeconds float64          `json:"loadtest_cpu_seconds"`
	Violations         []Violation      `json:"violations"`
}

// AdmissionReport counts admissions under client.AdmitAll; RosterAlerts
// must be 0 against an honest node.
type AdmissionReport struct {
	Policy       string `json:"policy"`
	Admitted     int    `json:"admitted"`
	Admissions   int    `json:"admissions"`
	RosterAlerts int    `json:"roster_alerts"`
}

// ReportConfig is the run's configuration as the report records it.
type ReportConfig struct {
	URL              string   `json:"url"`
	Rooms            int      `json:"rooms"`
	Publishers       int      `json:"publishers"`
	Subscribers      int      `json:"subscribers"`
	DurationSeconds  float64  `json:"duration_seconds"`
	Media            string   `json:"media"` // "audio+video", "audio" or "video"
	VideoBitrateBPS  int      `json:"video_bitrate_bps"`
	E2EE             bool     `json:"e2ee"`
	RampPerSecond    float64  `json:"ramp_per_second"`
	MaxLoss          *float64 `json:"max_loss"`        // null: no threshold
	MaxP95JoinMS     float64  `json:"max_p95_join_ms"` // 0: no threshold
	AudioFrameBytes  int      `json:"audio_frame_bytes"`
	VideoFPS         int      `json:"video_fps"`
	KeyframeInterval float64  `json:"keyframe_interval_seconds"`
}

// PhaseLoss is frame loss over a phase of the run.
type PhaseLoss struct {
	FramesExpected uint64  `json:"frames_expected"`
	FramesReceived uint64  `json:"frames_received"`
	PacketLoss     float64 `json:"packet_loss"`
}

// KindRates are bitrates by track kind.
type KindRates struct {
	Audio float64 `json:"audio"`
	Video float64 `json:"video"`
}

// SFUReport is read from the SFU's own /metrics at the window's edges, so
// the load tool's CPU does not count: counters are deltas over the window,
// RSS at its end, and the signaling figures over the whole run.
type SFUReport struct {
	Available              bool    `json:"available"` // else Note says why
	WindowSeconds          float64 `json:"window_seconds"`
	CPUSeconds             float64 `json:"cpu_seconds"`
	RSSBytes               float64 `json:"rss_bytes"`
	RSSBytesBefore         float64 `json:"rss_bytes_before"`
	RSSBytesPerParticipant float64 `json:"rss_bytes_per_participant"`
	ForwardedPackets       float64 `json:"forwarded_packets"` // retransmissions included
	ReceivedPackets        float64 `json:"received_packets"`
	DroppedPackets         float64 `json:"dropped_packets"`
	NACKRetransmissions    float64 `json:"nack_retransmissions"`
	ForwardedPerCPUSecond  float64 `json:"forwarded_packets_per_cpu_second"`
	SignalingMessages      float64 `json:"signaling_messages"`
	RelayMessages          float64 `json:"relay_messages"`
	SignalingErrors        float64 `json:"signaling_errors"`
	SlowClientDisconnects  float64 `json:"slow_client_disconnects"`
	Note                   string  `json:"note"`
}

// Violation is a broken threshold.
type Violation struct {
	Flag     string  `json:"threshold"` // the flag that set it, e.g. "--max-loss"
	Limit    float64 `json:"limit"`     // in the unit of the flag: a fraction, milliseconds
	Measured float64 `json:"measured"`
	Message  string  `json:"message"`
}

// Evaluate returns the thresholds r breaks. A participant that never
// joined breaks MaxP95Join, a subscription that never delivered a frame
// breaks MaxLoss: a limit that an outage cannot break would be no limit.
func Evaluate(r Report, t Thresholds) []Violation {
	var vs []Violation
	if l := t.MaxLoss; l != nil {
		if r.PacketLoss > *l {
			vs = append(vs, Violation{Flag: "--max-loss", Limit: *l, Measured: r.PacketLoss,
				Message: fmt.Sprintf("--max-loss %g broken: packet_loss %.4f (%.2f %% of %d frames)", *l, r.PacketLoss, 100*r.PacketLoss, r.FramesExpected)})
		}
		if missing := r.TracksExpected - r.TracksReceived; missing > 0 {
			vs = append(vs, Violation{Flag: "--max-loss", Limit: *l, Measured: 1,
				Message: fmt.Sprintf("--max-loss %g broken: %d of %d subscriptions never delivered a frame", *l, missing, r.TracksExpected)})
		}
	}
	if d := t.MaxP95Join; d > 0 {
		lim := float64(d) / float64(time.Millisecond)
		if r.JoinMS.P95 > lim {
			vs = append(vs, Violation{Flag: "--max-p95-join", Limit: lim, Measured: r.JoinMS.P95,
				Message: fmt.Sprintf("--max-p95-join %v broken: join_ms.p95 %.1f ms", d, r.JoinMS.P95)})
		}
		if failed := r.ParticipantsExpected - r.ParticipantsJoined; failed > 0 {
			vs = append(vs, Violation{Flag: "--max-p95-join", Limit: lim, Measured: r.JoinMS.P95,
				Message: fmt.Sprintf("--max-p95-join %v broken: %d of %d participants never joined", d, failed, r.ParticipantsExpected)})
		}
	}
	return vs
}

// WriteJSON writes r as indented JSON.
func (r Report) WriteJSON(w io.Writer) error {
	if r.ErrorSamples == nil {
		r.ErrorSamples = []string{}
	}
	if r.Violations == nil {
		r.Violations = []Violation{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("loadtest: write report: %w", err)
	}
	return nil
}

// WriteTable writes r for a person to read.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", name, fmt.Sprintf(format, args...))
	}
	c := r.Config
	e2ee := "on"
	if !c.E2EE {
		e2ee = "off"
	}
	media := c.Media
	if c.Media != "audio" {
		media += fmt.Sprintf(", video %s", bitrate(float64(c.VideoBitrateBPS)))
	}
	state := ""
	if r.Interrupted {
		state = " (INTERRUPTED: partial)"
	}
	fmt.Fprintf(tw, "Sotto load test: %d room(s) x %d publisher(s) x %d subscriber(s), %s, E2EE %s, %.1f s measured%s\n",
		c.Rooms, c.Publishers, c.Subscribers, media, e2ee, r.MeasuredSeconds, state)
	row("participants", "%d/%d connected at the end, %d joined (%d join failures, %d rate-limited retries)",
		r.ParticipantsConnected, r.ParticipantsExpected, r.ParticipantsJoined, r.JoinFailures, r.JoinRetries)
	row("join latency", "%s", pct(r.JoinMS))
	row("subscriptions", "%d/%d delivering media (%d tracks published)", r.TracksReceived, r.TracksExpected, r.TracksPublished)
	row("frame loss", "%.3f %% in the window (%d of %d frames; %d frames sent in all)", 100*r.PacketLoss, r.FramesExpected-r.FramesReceived, r.FramesExpected, r.FramesSent)
	row("before the window", "%.3f %% lost (%d of %d frames: joins, key exchanges, settling)", 100*r.Ramp.PacketLoss, r.Ramp.FramesExpected-r.Ramp.FramesReceived, r.Ramp.FramesExpected)
	if due := r.FramesSent + r.FramesSkipped; due > 0 && float64(r.FramesSkipped) > 0.02*float64(due) {
		row("LOAD TOOL BEHIND", "%d of %d frames (%.1f %%) not sent on time: this process is short of CPU; the SFU got less load than asked", r.FramesSkipped, due, 100*float64(r.FramesSkipped)/float64(due))
	}
	row("jitter", "%.2f ms (mean per subscription)", r.JitterMS)
	row("e2e latency", "%s", pct(r.E2ELatencyMS))
	row("bitrate", "%s per subscription received (audio %s, video %s); %s per track sent",
		bitrate(r.ReceivedBitrateBPS), bitrate(r.ReceivedBitrateBPSByKind.Audio), bitrate(r.ReceivedBitrateBPSByKind.Video), bitrate(r.SentBitrateBPS))
	row("decryption", "%d failed, %d before their key arrived, %d malformed", r.DecryptFailures, r.DecryptNoKey, r.MalformedFrames)
	if a := r.Admission; a != nil {
		row("admission", "%s: %d participants admitted, %d admissions made, %d roster alerts", a.Policy, a.Admitted, a.Admissions, a.RosterAlerts)
	}
	row("errors", "%d (%d reconnects)", r.Errors, r.Reconnects)
	for _, s := range r.ErrorSamples {
		row("", "  %s", s)
	}
	if s := r.SFU; s.Available {
		row("SFU cpu", "%.2f s in %.1f s (%.0f %% of a core)", s.CPUSeconds, s.WindowSeconds, 100*s.CPUSeconds/max(s.WindowSeconds, 1e-9))
		row("SFU forwarded", "%.0f packets (%.0f/s), %.0f per SFU CPU-second; %.0f received, %.0f dropped, %.0f NACK retransmissions",
			s.ForwardedPackets, s.ForwardedPackets/max(s.WindowSeconds, 1e-9), s.ForwardedPerCPUSecond, s.ReceivedPackets, s.DroppedPackets, s.NACKRetransmissions)
		row("SFU memory", "rss %s (%s before the run, %s per participant)", mib(s.RSSBytes), mib(s.RSSBytesBefore), mib(s.RSSBytesPerParticipant))
		row("signaling", "%.0f messages received in the run, %.0f of them relays (E2EE keys and acks); %.0f errors sent, %.0f slow clients dropped",
			s.SignalingMessages, s.RelayMessages, s.SignalingErrors, s.SlowClientDisconnects)
	} else {
		row("SFU", "metrics not available")
	}
	if s := r.SFU; s.Note != "" {
		row("", "  %s", s.Note)
	}
	row("load tool cpu", "%.2f s in the window", r.LoadtestCPUSeconds)
	if len(r.Violations) == 0 {
		row("thresholds", "none broken")
	}
	for _, v := range r.Violations {
		row("THRESHOLD", "%s", v.Message)
	}
	return tw.Flush()
}

func pct(p Percentiles) string {
	return fmt.Sprintf("p50 %.1f ms  p95 %.1f ms  p99 %.1f ms  max %.1f ms", p.P50, p.P95, p.P99, p.Max)
}

func bitrate(bps float64) string {
	switch {
	case bps >= 1e6:
		return fmt.Sprintf("%.2f Mbit/s", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.1f kbit/s", bps/1e3)
	}
	return fmt.Sprintf("%.0f bit/s", bps)
}

func mib(b float64) string {
	return fmt.Sprintf("%.1f MiB", b/(1<<20))
}
