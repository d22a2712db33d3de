package loadtest

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	return Config{URL: "http://127.0.0.1:7780", APIKey: "k", APISecret: "s", Rooms: 1, Publishers: 2, Subscribers: 3}
}

func TestConfigErrorsNameTheFlag(t *testing.T) {
	neg := -0.1
	over := 1.5
	nan := math.NaN()
	tests := []struct {
		name     string
		change   func(*Config)
		wantFlag string
	}{
		{"no url", func(c *Config) { c.URL = "" }, "--url"},
		{"url scheme", func(c *Config) { c.URL = "ftp://x" }, "--url"},
		{"url without host", func(c *Config) { c.URL = "http://" }, "--url"},
		{"no key", func(c *Config) { c.APIKey = "" }, "--api-key"},
		{"no secret", func(c *Config) { c.APISecret = "" }, "--api-secret"},
		{"no rooms", func(c *Config) { c.Rooms = 0 }, "--rooms"},
		{"negative publishers", func(c *Config) { c.Publishers = -1 }, "--publishers"},
		{"negative subscribers", func(c *Config) { c.Subscribers = -1 }, "--subscribers"},
		{"nobody", func(c *Config) { c.Publishers, c.Subscribers = 0, 0 }, "--publishers"},
		{"subscribers without publishers", func(c *Config) { c.Publishers = 0 }, "--publishers"},
		{"negative duration", func(c *Config) { c.Duration = -time.Second }, "--duration"},
		{"negative bitrate", func(c *Config) { c.VideoBitrate = -1 }, "--video-bitrate"},
		{"bitrate below a frame header", func(c *Config) { c.VideoBitrate = 1000 }, "--video-bitrate"},
		{"negative ramp", func(c *Config) { c.Ramp = -1 }, "--ramp"},
		{"infinite ramp", func(c *Config) { c.Ramp = math.Inf(1) }, "--ramp"},
		{"negative loss", func(c *Config) { c.Thresholds.MaxLoss = &neg }, "--max-loss"},
		{"loss above 1", func(c *Config) { c.Thresholds.MaxLoss = &over }, "--max-loss"},
		{"NaN loss", func(c *Config) { c.Thresholds.MaxLoss = &nan }, "--max-loss"},
		{"negative join limit", func(c *Config) { c.Thresholds.MaxP95Join = -time.Second }, "--max-p95-join"},
		{"unknown media", func(c *Config) { c.Media = 7 }, "--audio-only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			err := c.Validate()
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Validate = %v, want a *ConfigError", err)
			}
			if ce.Flag != tt.wantFlag || !strings.Contains(err.Error(), tt.wantFlag) {
				t.Errorf("error %q names %q, want %q", err, ce.Flag, tt.wantFlag)
			}
			// Run refuses the same way, before touching the network.
			if _, err := Run(context.Background(), c); !errors.As(err, &ce) {
				t.Errorf("Run = %v, want a *ConfigError", err)
			}
		})
	}
}

func TestSimulcastIsRefused(t *testing.T) {
	c := validConfig()
	c.Simulcast = true
	err := c.Validate()
	if !errors.Is(err, ErrSimulcast) {
		t.Fatalf("Validate = %v, want ErrSimulcast", err)
	}
	if !strings.Contains(err.Error(), "--simulcast") || !strings.Contains(err.Error(), "no simulcast") {
		t.Errorf("message %q should name the flag and say the SFU has no simulcast", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		url, metrics string
	}{
		{"http://127.0.0.1:7780", "http://127.0.0.1:7780/metrics"},
		{"https://sfu.example:443/", "https://sfu.example:443/metrics"},
		{"ws://127.0.0.1:7780/v1/signal", "http://127.0.0.1:7780/metrics"},
		{"wss://sfu.example/v1/signal?x=1", "https://sfu.example/metrics"},
	}
	for _, tt := range tests {
		c := validConfig()
		c.URL = tt.url
		got, err := c.withDefaults()
		if err != nil {
			t.Fatalf("%s: %v", tt.url, err)
		}
		if got.MetricsURL != tt.metrics {
			t.Errorf("%s: metrics at %q, want %q", tt.url, got.MetricsURL, tt.metrics)
		}
		if got.Duration != DefaultDuration || got.VideoBitrate != DefaultVideoBitrate || got.Ramp != DefaultRamp ||
			got.JoinTimeout != DefaultJoinTimeout || got.Settle != DefaultSettle {
			t.Errorf("%s: defaults not applied: %+v", tt.url, got)
		}
	}
}

func TestPlanCounts(t *testing.T) {
	tests := []struct {
		media                      Media
		rooms, pubs, subs          int
		wantParticipants, wantSubs int
	}{
		{AudioVideo, 1, 10, 10, 20, 200},
		{AudioOnly, 1, 5, 100, 105, 500},
		{VideoOnly, 1, 1, 200, 201, 200},
		{AudioVideo, 3, 2, 3, 15, 36},
		{AudioOnly, 2, 4, 0, 8, 0},
	}
	for _, tt := range tests {
		c := Config{Rooms: tt.rooms, Publishers: tt.pubs, Subscribers: tt.subs, Media: tt.media}
		if got := c.participants(); got != tt.wantParticipants {
			t.Errorf("%+v: %d participants, want %d", tt, got, tt.wantParticipants)
		}
		if got := c.expectedTracks(); got != tt.wantSubs {
			t.Errorf("%+v: %d subscriptions, want %d", tt, got, tt.wantSubs)
		}
		r := &runner{cfg: c, prefix: "p"}
		plan := r.plan()
		pubs := 0
		for _, p := range plan {
			if p.publisher {
				pubs++
			}
		}
		if len(plan) != tt.wantParticipants || pubs != tt.rooms*tt.pubs {
			t.Errorf("%+v: plan of %d with %d publishers", tt, len(plan), pubs)
		}
	}
}

func TestLoopbackURL(t *testing.T) {
	tests := map[string]bool{
		"http://127.0.0.1:7780":   true,
		"http://localhost:7780":   true,
		"http://[::1]:7780":       true,
		"http://127.9.9.9":        true,
		"https://sfu.example":     false,
		"http://10.0.0.1:7780":    false,
		"http://192.168.1.1:7780": false,
	}
	for u, want := range tests {
		if got := loopbackURL(u); got != want {
			t.Errorf("loopbackURL(%q) = %v, want %v", u, got, want)
		}
	}
}
