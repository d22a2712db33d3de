package loadtest_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sotto-rtc/sotto/loadtest"
	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// node is a Sotto node on loopback, in this process: the SFU, signaling in
// front of it and /metrics with the process collector, as cmd/sfu serves
// them.
type node struct {
	URL         string
	key, secret string
}

func startNode(t *testing.T) node {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("SOTTO_TEST_LOG") == "1" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		t.Fatal(err)
	}
	sfu, err := sfu.New(sfu.Config{ListenIP: "127.0.0.1", IncludeLoopback: true, Logger: log, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	const key, secret = "loadtest-key", "loadtest-secret-loadtest-secret-0123"
	sig, err := signaling.NewServer(signaling.Config{
		Keys:       map[string]string{key: secret},
		Logger:     log,
		Registerer: reg,
		// One address joins everyone, faster than a person would.
		Limits: signaling.ServerLimits{JoinsPerSecondPerIP: 1000, JoinBurst: 1000},
	}, sfu)
	if err != nil {
		_ = sfu.Close()
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(wire.Path, sig)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sig.Shutdown(ctx)
		hs.Close()
		_ = sfu.Close()
	})
	return node{URL: hs.URL, key: key, secret: secret}
}

// loopbackICE keeps the participants' ICE on loopback, without mDNS.
func loopbackICE() *webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return &se
}

// TestSmoke is the load tool's CI run: 1 room, 2 publishers (Opus and
// VP8, end-to-end encrypted), 3 subscribers, 10 s measured against an
// in-process SFU on loopback. It fails when more than 1 % of the frames
// are lost or any frame fails to decrypt. Nothing here waits on the wall
// clock but the run itself: joins and settling have generous bounds.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("a 10 s load run; skipped with -short")
	}
	n := startNode(t)
	maxLoss := 0.01
	var progress []loadtest.Progress
	cfg := loadtest.Config{
		URL:          n.URL,
		APIKey:       n.key,
		APISecret:    n.secret,
		Rooms:        1,
		Publishers:   2,
		Subscribers:  3,
		Duration:     10 * time.Second,
		VideoBitrate: 300_000,
		Ramp:         20,
		Thresholds:   loadtest.Thresholds{MaxLoss: &maxLoss},
		JoinTimeout:  2 * time.Minute,
		Settle:       2 * time.Minute,
		// Progress is called from one goroutine that has ended when
		// Run returns.
		Progress:      func(p loadtest.Progress) { progress = append(progress, p) },
		SettingEngine: loopbackICE(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rep, err := loadtest.Run(ctx, cfg)
	var buf bytes.Buffer
	_ = rep.WriteTable(&buf)
	t.Logf("report:\n%s", buf.String())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Interrupted {
		t.Fatal("the run was interrupted (test deadline)")
	}

	if rep.ParticipantsJoined != 5 || rep.ParticipantsConnected != 5 {
		t.Errorf("participants: %d joined, %d connected at the end; want 5 and 5", rep.ParticipantsJoined, rep.ParticipantsConnected)
	}
	if rep.TracksPublished != 4 || rep.TracksExpected != 12 || rep.TracksReceived != 12 {
		t.Errorf("tracks: %d published, %d of %d subscriptions delivered; want 4, 12 of 12", rep.TracksPublished, rep.TracksReceived, rep.TracksExpected)
	}
	if rep.PacketLoss > maxLoss {
		t.Errorf("frame loss %.4f above %.2f (%d of %d frames)", rep.PacketLoss, maxLoss, rep.FramesExpected-rep.FramesReceived, rep.FramesExpected)
	}
	if rep.DecryptFailures != 0 {
		t.Errorf("%d frames failed to decrypt", rep.DecryptFailures)
	}
	if rep.MalformedFrames != 0 {
		t.Errorf("%d frames decrypted without the load tool's header", rep.MalformedFrames)
	}
	if len(rep.Violations) != 0 {
		t.Errorf("violations: %+v", rep.Violations)
	}
	// Bounds that only a broken measurement breaks, whatever the load:
	// every subscription got frames, so latency and bitrate exist; the
	// SFU's metrics were read and it forwarded what was received.
	if rep.FramesReceived == 0 || rep.E2ELatencyMS.P50 <= 0 || rep.E2ELatencyMS.P50 > rep.E2ELatencyMS.P99 {
		t.Errorf("latency percentiles %+v over %d frames", rep.E2ELatencyMS, rep.FramesReceived)
	}
	if rep.ReceivedBitrateBPSByKind.Audio <= 0 || rep.ReceivedBitrateBPSByKind.Video <= 0 {
		t.Errorf("received bitrates %+v", rep.ReceivedBitrateBPSByKind)
	}
	if !rep.SFU.Available || rep.SFU.ForwardedPackets <= 0 || rep.SFU.CPUSeconds <= 0 || rep.SFU.RSSBytes <= 0 {
		t.Errorf("sfu section %+v", rep.SFU)
	}
	if len(progress) == 0 || progress[len(progress)-1].Phase != "leaving" {
		t.Errorf("progress: %d calls, want some ending in phase leaving", len(progress))
	}
	if err := rep.WriteJSON(io.Discard); err != nil {
		t.Error(err)
	}
}

// TestInterruptStopsCleanly cancels a run as Ctrl-C does, once it is
// measuring: Run returns a partial report marked interrupted, and every
// participant has left (the SFU's room is empty again).
func TestInterruptStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("a load run; skipped with -short")
	}
	n := startNode(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := loadtest.Config{
		URL: n.URL, APIKey: n.key, APISecret: n.secret,
		Rooms: 1, Publishers: 1, Subscribers: 1, Media: loadtest.AudioOnly,
		Duration: time.Hour, Ramp: 20, JoinTimeout: 2 * time.Minute, Settle: 2 * time.Minute,
		SettingEngine: loopbackICE(),
		Progress: func(p loadtest.Progress) {
			if p.Phase == "measuring" {
				cancel()
			}
		},
	}
	rep, err := loadtest.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !rep.Interrupted {
		t.Error("report not marked interrupted")
	}
	if rep.ParticipantsJoined != 2 || rep.TracksReceived != 1 {
		t.Errorf("%d joined, %d subscriptions delivered; want 2 and 1", rep.ParticipantsJoined, rep.TracksReceived)
	}
	if rep.MeasuredSeconds >= time.Hour.Seconds() {
		t.Errorf("measured %v s of an hour: the cancel was not seen", rep.MeasuredSeconds)
	}
	// The server ends a session when its leave arrives, just after Run
	// returns: wait for it, boundedly.
	deadline := time.Now().Add(time.Minute)
	for {
		m := metricsText(t, n.URL)
		if strings.Contains(m, "\nsotto_participants 0\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("participants still in the SFU a minute after Run returned:\n%s", m)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func metricsText(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
