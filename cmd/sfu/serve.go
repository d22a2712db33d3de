package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/relay"
	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/signaling/wire"
	"github.com/sotto-rtc/sotto/web"
)

// Development credentials: what a node with no configured API key
// generates, and the join token it prints with them.
const (
	devRoom     = "demo"
	devTokenTTL = 24 * time.Hour
)

// HTTP server bounds. Signaling connections are hijacked WebSockets, so
// no write timeout applies to them; these bound the plain requests.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
)

// devCredentials are generated when no API key is configured.
type devCredentials struct {
	key, secret string
	identity    string
	token       string
}

// gateway is one running node: the SFU, the signaling server and the
// HTTP server in front of them.
type gateway struct {
	cfg      config
	log      *slog.Logger
	sfu      *sfu.SFU
	sig      *signaling.Server
	http     *http.Server
	ln       net.Listener
	dev      *devCredentials // nil when keys are configured
	relay    *relay.Server   // the in-process TURN relay, or nil
	draining atomic.Bool
	served   chan error // the HTTP server's Serve result
}

// newGateway builds a node from a validated configuration and binds its
// ports: media first, then HTTP, so that nothing accepts a caller before
// the media plane exists.
func newGateway(cfg config, log *slog.Logger) (*gateway, error) {
	g := &gateway{cfg: cfg, log: log, served: make(chan error, 1)}
	keys, err := g.keys()
	if err != nil {
		return nil, err
	}
	// One registry per gateway, so tests can run several and /metrics
	// shows exactly this node.
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if g.sfu, err = newSFU(cfg, log, reg); err != nil {
		return nil, err
	}
	turnServers, err := g.turnServers(reg)
	if err == nil {
		g.sig, err = newSignaling(cfg, keys, turnServers, log, reg, g.sfu)
	}
	if err == nil {
		err = g.listenHTTP(reg)
	}
	if err != nil {
		if g.relay != nil {
			_ = g.relay.Close()
		}
		_ = g.sfu.Close()
		return nil, err
	}
	return g, nil
}

// keys are the API keys tokens are verified with; with none configured,
// development credentials generated for this run.
func (g *gateway) keys() (map[string]string, error) {
	keys := make(map[string]string)
	for _, k := range g.cfg.effectiveKeys() {
		keys[k.Key] = k.Secret
	}
	if len(keys) > 0 {
		return keys, nil
	}
	dev, err := newDevCredentials()
	if err != nil {
		return nil, err
	}
	g.dev = dev
	keys[dev.key] = dev.secret
	addr := g.cfg.HTTP
	g.log.Warn("no API key configured: generated a development key for this run (set keys: in the config file, or SOTTO_API_KEY and SOTTO_API_SECRET, for production)", "api_key", dev.key)
	if host, _, err := net.SplitHostPort(addr); err != nil || !isLoopbackHost(host) {
		g.log.Warn("development mode on a non-loopback address: the web page mints join tokens for anyone who can reach "+addr+"; configure API keys before exposing it", "http", addr)
	}
	return keys, nil
}

func newSFU(cfg config, log *slog.Logger, reg prometheus.Registerer) (*sfu.SFU, error) {
	l := cfg.Limits
	s, err := sfu.New(sfu.Config{
		ListenIP:   cfg.MediaIP,
		Port:       cfg.MediaPort,
		DisableTCP: cfg.NoICETCP,
		PublicIPs:  cfg.PublicIP,
		// Without a public IP this is most likely a developer's machine;
		// behind 1:1 NAT loopback candidates would only add noise.
		IncludeLoopback:         len(cfg.PublicIP) == 0,
		AllowCandidates:         prefixes(cfg.AllowCandidates),
		RefusePrivateCandidates: cfg.RefusePrivateCandidates,
		AudioLevelExtension:     cfg.Media.AudioLevelExtension,
		PacketCacheSize:         cfg.PacketCacheSize,
		KeyframeRequestInterval: cfg.KeyframeRequestInterval,
		ICEDisconnectedTimeout:  cfg.ICEDisconnectedTimeout,
		ICEFailedTimeout:        cfg.ICEFailedTimeout,
		AudioMaxBitrate:         noLimit(l.AudioMaxBitrate),
		AudioMaxPacketRate:      noLimit(l.AudioMaxPacketRate),
		VideoMaxBitrate:         noLimit(l.VideoMaxBitrate),
		VideoMaxPacketRate:      noLimit(l.VideoMaxPacketRate),
		RateLimitEndFactor:      l.RateLimitEndFactor,
		RateLimitEndAfter:       l.RateLimitEndAfter,
		Logger:                  log,
		Registerer:              reg,
	})
	if err != nil {
		return nil, bindError(fmt.Sprintf("media port %d", cfg.MediaPort), "--media-port", "--media-ip", err)
	}
	return s, nil
}

func newSignaling(cfg config, keys map[string]string, turnServers func(string) []wire.ICEServer,
	log *slog.Logger, reg prometheus.Registerer, media *sfu.SFU) (*signaling.Server, error) {
	l := cfg.Limits
	return signaling.NewServer(signaling.Config{
		Keys:        keys,
		TokenLeeway: cfg.TokenLeeway,
		Limits: signaling.ServerLimits{
			MaxMessageBytes:      l.MaxMessageBytes,
			MessagesPerSecond:    l.MessagesPerSecond,
			MessageBurst:         l.MessageBurst,
			ParticipantsPerRoom:  l.ParticipantsPerRoom,
			RoomsPerNode:         l.RoomsPerNode,
			TracksPerParticipant: l.TracksPerParticipant,
			JoinsPerSecondPerIP:  l.JoinsPerSecondPerIP,
			JoinBurst:            l.JoinBurst,
			RelayBytesPerSecond:  l.RelayBytesPerSecond,
			RelayBurstBytes:      l.RelayBurstBytes,
			RelayQueueBytes:      l.RelayQueueBytes,
			RelayQueueMessages:   l.RelayQueueMessages,
			UnjoinedPerAddress:   l.UnjoinedPerAddress,
			UnjoinedConnections:  l.UnjoinedConnections,
		},
		ICEServers:     staticICEServers(cfg),
		ICEServersFunc: turnServers,
		JoinTimeout:    cfg.JoinTimeout,
		PingInterval:   cfg.PingInterval,
		OriginPatterns: originPatterns(cfg.AllowedOrigins),
		Logger:         log,
		Registerer:     reg,
	}, media)
}

// listenHTTP binds the HTTP server's port, with TLS when configured.
func (g *gateway) listenHTTP(reg *prometheus.Registry) error {
	cfg := g.cfg
	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return bindError("http "+cfg.HTTP, "--http", "--http", err)
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("tls_cert: %w", err)
		}
		// HTTP/1.1 only: a WebSocket upgrade needs it.
		ln = tls.NewListener(ln, &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"http/1.1"},
		})
	}
	g.ln = ln
	g.http = &http.Server{
		Handler:           g.routes(reg),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	return nil
}

// routes is the node's HTTP surface.
func (g *gateway) routes(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(wire.Path, g.sig)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if g.draining.Load() || !g.sig.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "draining\n")
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(reg,
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
	// The browser client. In development mode the page mints its own
	// tokens (/dev/token), so /?room=R&name=N joins at once.
	var webOpts web.Options
	if d := g.dev; d != nil {
		webOpts.DevToken = func(room, identity string) (string, error) {
			return wire.NewToken(d.key, d.secret, wire.Grant{
				Room: room, Identity: identity, CanPublish: true, CanSubscribe: true, TTL: devTokenTTL,
			})
		}
	}
	mux.Handle("/", web.Handler(webOpts))
	return mux
}

// start serves HTTP in the background; the result arrives on g.served.
func (g *gateway) start() {
	go func() { g.served <- g.http.Serve(g.ln) }()
	g.log.Info("http: listening", "addr", g.ln.Addr().String(), "tls", g.cfg.TLSCert != "")
	if len(g.cfg.PublicIP) > 0 {
		g.log.Info("media: announcing public addresses (1:1 NAT)", "public_ip", []string(g.cfg.PublicIP))
	}
}

// markDraining makes /readyz fail, so a load balancer stops sending new
// callers here.
func (g *gateway) markDraining() { g.draining.Store(true) }

// holdReadiness fails /readyz and serves on, calls and joins included,
// for grace: a load balancer polls readiness every few seconds, and must
// see the node go before its calls end, or their reconnects come back
// here. It returns early, with the error, if the HTTP server stops.
func (g *gateway) holdReadiness(grace time.Duration) error {
	g.markDraining()
	if grace <= 0 {
		return nil
	}
	g.log.Info("shutdown: readiness now fails; serving on for the drain grace", "drain_grace", grace)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case err := <-g.served:
		return fmt.Errorf("http: %w", err)
	}
}

// shutdown drains the node within ctx: readiness fails, signaling sends
// going_away to every participant and closes them, the HTTP server stops,
// the media plane closes. It runs every step even when one fails, and
// returns the errors of all.
func (g *gateway) shutdown(ctx context.Context) error {
	start := time.Now()
	var errs []error
	g.markDraining()
	g.log.Info("shutdown: readiness now fails; no new joins")

	g.log.Info("shutdown: sending going_away and closing signaling sessions")
	if err := g.sig.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}

	g.log.Info("shutdown: stopping the HTTP server")
	if err := g.http.Shutdown(ctx); err != nil {
		// Out of time: drop the idle and in-flight plain requests.
		_ = g.http.Close()
		errs = append(errs, fmt.Errorf("http: shutdown: %w", err))
	}

	g.log.Info("shutdown: closing the media plane")
	if err := g.sfu.Close(); err != nil {
		errs = append(errs, err)
	}
	if g.relay != nil {
		g.log.Info("shutdown: closing the TURN relay")
		if err := g.relay.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	g.log.Info("shutdown: done", "took", time.Since(start).Round(time.Millisecond))
	return errors.Join(errs...)
}

// serve runs a node until ctx is cancelled (SIGTERM, SIGINT), then fails
// readiness for cfg.DrainGrace and drains it within cfg.DrainTimeout. The banner with the node's addresses (and,
// in development, its credentials) goes to stdout.
func serve(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	g, err := newGateway(cfg, log)
	if err != nil {
		return err
	}
	g.start()
	if err := g.printBanner(stdout); err != nil {
		log.Warn("could not print the start banner", "err", err)
	}

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutdown: signal received", "drain_grace", cfg.DrainGrace, "drain_timeout", cfg.DrainTimeout)
		if serveErr = g.holdReadiness(cfg.DrainGrace); serveErr != nil {
			log.Error("http: server stopped", "err", serveErr)
		}
	case serveErr = <-g.served:
		log.Error("http: server stopped", "err", serveErr)
		serveErr = fmt.Errorf("http: %w", serveErr)
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.DrainTimeout)
	defer cancel()
	if err := g.shutdown(dctx); err != nil {
		// A drain that ran out of time still ended every session: the
		// process stops as asked, and says what it had to cut short.
		log.Warn("shutdown: not clean", "err", err)
	}
	return serveErr
}

// printBanner tells the person who started the node where it is and, in
// development, how to join it.
func (g *gateway) printBanner(w io.Writer) error {
	scheme, wsScheme := "http", "ws"
	if g.cfg.TLSCert != "" {
		scheme, wsScheme = "https", "wss"
	}
	host := displayAddr(g.ln.Addr())
	base := scheme + "://" + host
	b := fmt.Appendf(nil, "Sotto listening on %s\n\n", base)
	b = fmt.Appendf(b, "  Signaling:  %s://%s%s\n", wsScheme, host, wire.Path)
	b = fmt.Appendf(b, "  Health:     %s/healthz  %s/readyz\n", base, base)
	b = fmt.Appendf(b, "  Metrics:    %s/metrics\n", base)
	transports := "UDP and TCP"
	if g.cfg.NoICETCP {
		transports = "UDP"
	}
	b = fmt.Appendf(b, "  Media:      %s port %d on %s", transports, g.sfu.Port(), g.cfg.MediaIP)
	if len(g.cfg.PublicIP) > 0 {
		b = fmt.Appendf(b, ", announced as %v", []string(g.cfg.PublicIP))
	}
	b = append(b, '\n')
	if g.relay != nil {
		for _, l := range g.relay.Listeners() {
			b = fmt.Appendf(b, "  TURN:       %s %s\n", l.Network, l.Address)
		}
	}
	b = fmt.Appendf(b, "  Web client: %s/\n", base)
	if d := g.dev; d != nil {
		b = fmt.Appendf(b, `
Development mode: no API key is configured, so this one was generated for
this run only, and the page mints tokens for anyone who can reach it.
Configure keys (deploy/sfu.yaml) before anyone else joins.

Open this link in two browser tabs to be in an end-to-end encrypted call
(the first tab admits the second with one click: nobody hears or sees a
call before a member admits them):

  %s/?room=%s&autojoin=1
`, base, devRoom)
		b = fmt.Appendf(b, `
  API key:     %s
  API secret:  %s

Join token for room %q as %q (publish and subscribe, valid %gh):

%s

Mint more:
  SOTTO_API_KEY=%s SOTTO_API_SECRET=%s go run ./cmd/sfu token --room %s --identity alice
`, d.key, d.secret, devRoom, d.identity, devTokenTTL.Hours(), d.token, d.key, d.secret, devRoom)
	}
	_, err := w.Write(b)
	return err
}

// isLoopbackHost reports whether host (an IP or a name) is loopback only.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// displayAddr is addr as a client would dial it: an unspecified host
// (0.0.0.0, ::) becomes loopback.
func displayAddr(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if ip.To4() != nil {
			host = "127.0.0.1"
		} else {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}

// newDevCredentials generates a development API key and secret and a
// join token for devRoom.
func newDevCredentials() (*devCredentials, error) {
	random := func(n int) (string, error) {
		b := make([]byte, n)
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("development key: %w", err)
		}
		return hex.EncodeToString(b), nil
	}
	key, err := random(4)
	if err != nil {
		return nil, err
	}
	secret, err := random(32)
	if err != nil {
		return nil, err
	}
	guest, err := random(3)
	if err != nil {
		return nil, err
	}
	d := &devCredentials{key: "dev" + key, secret: secret, identity: "guest-" + guest}
	d.token, err = wire.NewToken(d.key, d.secret, wire.Grant{
		Room: devRoom, Identity: d.identity, CanPublish: true, CanSubscribe: true, TTL: devTokenTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("development token: %w", err)
	}
	return d, nil
}

// bindError turns a failure to bind into advice: which setting to change.
// portFlag fixes a port in use, addrFlag an address this host lacks.
func bindError(what, portFlag, addrFlag string, err error) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%s: address already in use — pick another with %s: %w", what, portFlag, err)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%s: permission denied (ports below 1024 need privileges) — pick another with %s: %w", what, portFlag, err)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("%s: no such address on this host — check %s: %w", what, addrFlag, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
