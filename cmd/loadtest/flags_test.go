package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sotto-rtc/sotto/loadtest"
)

// base is a valid command line to which the cases add.
var base = []string{"--url", "http://127.0.0.1:7780", "--api-key", "k", "--api-secret", "s", "--rooms", "1", "--publishers", "2", "--subscribers", "3"}

func noEnv(string) string { return "" }

func TestBadFlagsExit2NamingTheFlag(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"unknown flag", []string{"--frobnicate"}, "frobnicate"},
		{"rooms not a number", []string{"--rooms", "many"}, "-rooms"},
		{"zero rooms", []string{"--rooms", "0"}, "--rooms"},
		{"negative publishers", []string{"--publishers", "-1"}, "--publishers"},
		{"negative subscribers", []string{"--subscribers", "-2"}, "--subscribers"},
		{"no publisher for the subscribers", []string{"--publishers", "0"}, "--publishers"},
		{"duration not a duration", []string{"--duration", "10"}, "-duration"},
		{"zero duration", []string{"--duration", "0s"}, "--duration"},
		{"bitrate garbage", []string{"--video-bitrate", "fast"}, "-video-bitrate"},
		{"bitrate too low", []string{"--video-bitrate", "1k"}, "--video-bitrate"},
		{"both media exclusions", []string{"--audio-only", "--video-only"}, "--audio-only"},
		{"simulcast refused", []string{"--simulcast"}, "--simulcast"},
		{"ramp garbage", []string{"--ramp", "quick"}, "-ramp"},
		{"ramp zero", []string{"--ramp", "0/s"}, "-ramp"},
		{"e2ee not a bool", []string{"--e2ee=maybe"}, "-e2ee"},
		{"loss above one", []string{"--max-loss", "1.5"}, "-max-loss"},
		{"loss above 100 percent", []string{"--max-loss", "150%"}, "-max-loss"},
		{"negative join limit", []string{"--max-p95-join", "-1s"}, "--max-p95-join"},
		{"url scheme", []string{"--url", "ftp://x"}, "--url"},
		{"log level", []string{"--log-level", "loud"}, "--log-level"},
		{"stray argument", []string{"extra"}, "extra"},
		{"zero join timeout", []string{"--join-timeout", "0s"}, "--join-timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append(append([]string{}, base...), tt.args...)
			code := run(context.Background(), args, noEnv, &stdout, &stderr, false)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr does not name %q:\n%s", tt.want, stderr.String())
			}
		})
	}
}

func TestRequiredFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"url", []string{"--api-key", "k", "--api-secret", "s"}, nil, "--url"},
		{"key", []string{"--url", "http://127.0.0.1:1", "--api-secret", "s"}, nil, "--api-key"},
		{"secret", []string{"--url", "http://127.0.0.1:1", "--api-key", "k"}, nil, "--api-secret"},
		{"secret from the environment is enough", []string{"--url", "http://127.0.0.1:1", "--api-key", "k"},
			map[string]string{"SOTTO_API_SECRET": "s"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, err := parseFlags(tt.args, func(k string) string { return tt.env[k] }, &stderr)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("parseFlags = %v, want success", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("parseFlags = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestFlagsFillTheConfig(t *testing.T) {
	args := append(append([]string{}, base...),
		"--duration", "45s", "--video-bitrate", "1.5M", "--audio-only", "--ramp", "12.5/s", "--e2ee=false",
		"--json", "out.json", "--max-loss", "2%", "--max-p95-join", "1500ms", "--room-prefix", "bench")
	o, err := parseFlags(args, noEnv, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.URL != "http://127.0.0.1:7780" || c.Rooms != 1 || c.Publishers != 2 || c.Subscribers != 3 ||
		c.Duration != 45*time.Second || c.VideoBitrate != 1_500_000 || c.Media != loadtest.AudioOnly ||
		c.Ramp != 12.5 || !c.DisableE2EE || c.RoomPrefix != "bench" ||
		c.Thresholds.MaxLoss == nil || *c.Thresholds.MaxLoss != 0.02 || c.Thresholds.MaxP95Join != 1500*time.Millisecond {
		t.Errorf("config %+v", c)
	}
	if o.jsonPath != "out.json" {
		t.Errorf("json path %q", o.jsonPath)
	}

	o, err = parseFlags(base, noEnv, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.DisableE2EE || o.cfg.Thresholds.MaxLoss != nil || o.cfg.Thresholds.MaxP95Join != 0 || o.cfg.Media != loadtest.AudioVideo {
		t.Errorf("defaults: E2EE must be on, no thresholds, audio and video: %+v", o.cfg)
	}
}

func TestParseBitrate(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"500000", 500_000, true},
		{"500k", 500_000, true},
		{"500K", 500_000, true},
		{"1.5M", 1_500_000, true},
		{"2m", 2_000_000, true},
		{"800kbps", 800_000, true},
		{"64kbit/s", 64_000, true},
		{"", 0, false},
		{"k", 0, false},
		{"-5k", 0, false},
		{"0", 0, false},
		{"1e12", 0, false},
		{"fast", 0, false},
	}
	for _, tt := range tests {
		got, err := parseBitrate(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseBitrate(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestFractionAndRamp(t *testing.T) {
	fracs := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"0.01", 0.01, true}, {"1%", 0.01, true}, {"0", 0, true}, {"100%", 1, true},
		{"1.01", 0, false}, {"-1%", 0, false}, {"lots", 0, false}, {"NaN", 0, false},
	}
	for _, tt := range fracs {
		var p *float64
		err := fractionValue{&p}.Set(tt.in)
		if (err == nil) != tt.ok || (tt.ok && *p != tt.want) {
			t.Errorf("fraction %q: %v, %v", tt.in, p, err)
		}
	}
	ramps := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"5", 5, true}, {"5/s", 5, true}, {"0.5/s", 0.5, true}, {"0", 0, false}, {"-1", 0, false}, {"x/s", 0, false},
	}
	for _, tt := range ramps {
		var f float64
		err := rampValue{&f}.Set(tt.in)
		if (err == nil) != tt.ok || f != tt.want {
			t.Errorf("ramp %q: %v, %v", tt.in, f, err)
		}
	}
}

func TestHelpExits0(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, noEnv, &stdout, &stderr, false); code != exitOK {
		t.Errorf("-h: exit %d", code)
	}
	for _, want := range []string{"--udp-reference", "-max-loss", "-simulcast", "Exit status"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("usage lacks %q", want)
		}
	}
}

// TestNoServerExits1 runs against a port nothing listens on: every join
// fails at once, the command says so and exits 1, with the report.
func TestNoServerExits1(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "report.json")
	var stdout, stderr bytes.Buffer
	args := []string{"--url", "http://127.0.0.1:1", "--api-key", "k", "--api-secret", "s",
		"--publishers", "1", "--subscribers", "1", "--ramp", "100", "--metrics-url", "off", "--json", out}
	code := run(context.Background(), args, noEnv, &stdout, &stderr, false)
	if code != exitFailure {
		t.Errorf("exit %d, want %d; stderr:\n%s", code, exitFailure, stderr.String())
	}
	if !strings.Contains(stderr.String(), "no participant could join") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep loadtest.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.ParticipantsExpected != 2 || rep.JoinFailures != 2 || rep.ParticipantsJoined != 0 {
		t.Errorf("report: %+v", rep)
	}
}

func TestUDPReferenceMode(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"--udp-reference", "--udp-duration", "50ms", "--udp-size", "200", "--json", "-"}
	if code := run(context.Background(), args, noEnv, &stdout, &stderr, false); code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	var rep struct {
		Results []struct {
			Method  string `json:"method"`
			Packets uint64 `json:"packets"`
		} `json:"results"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout.String())
	}
	if len(rep.Results) != 4 {
		t.Errorf("results %+v", rep.Results)
	}
	if !strings.Contains(stderr.String(), "sendmmsg") {
		t.Errorf("the table should go to stderr with --json -:\n%s", stderr.String())
	}
}
