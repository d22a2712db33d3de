// Command turn runs Sotto's TURN relay: TURN over UDP, TCP and TLS with
// TURN REST ephemeral credentials (compatible with coturn's
// use-auth-secret), a peer policy that refuses loopback, private,
// link-local, metadata and other internal addresses by default, quotas,
// Prometheus metrics and structured logs.
//
// It reads a YAML file (--config), environment variables (SOTTO_TURN_*,
// the shared secret SOTTO_TURN_SECRET) and flags, in that order of
// precedence (flags win). See deploy/turn.yaml and docs/OPERATIONS.md.
//
//	turn --auth-secret S [flags]           run the relay
//	turn --check-config [flags]            validate the configuration and exit
//
// Exit status: 0 on success and after a graceful shutdown, 1 when the
// relay fails at run time (a port in use, say), 2 for bad flags or
// configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	conf "github.com/sotto-rtc/sotto/internal/config"
	"github.com/sotto-rtc/sotto/relay"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// shutdownTimeout bounds the metrics server's shutdown; the relay itself
// closes at once (TURN has no in-flight requests worth waiting for, and
// clients re-allocate elsewhere).
const shutdownTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usageHeader = `Sotto TURN relay.

Usage:
  turn --auth-secret S [flags]   run the relay
  turn --check-config [flags]    validate the configuration, print "config OK" and exit

Peers on loopback, private, link-local, multicast, reserved and documentation
addresses, and the relay's own addresses, are refused unless --allow-peer
names them. Every flag also has an environment variable (in brackets) and a
key in the --config YAML file (see deploy/turn.yaml).
Precedence: defaults < config file < environment < flags.

Flags:
`

// run is the whole command, minus the process: main passes it the signal
// context, the arguments, the environment and the standard streams, and
// tests call it the same way. Once the relay serves, it prints one line
// per listener ("listening udp 127.0.0.1:3478"), the metrics URL before
// them, and "ready" after them on stdout.
func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	cfg, check, err := command.Parse(args, env, stdout, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, conf.ErrUsage):
		return exitUsage
	case err != nil:
		command.Invalid(stderr, err)
		return exitUsage
	}
	if check {
		fmt.Fprintln(stdout, "config OK")
		return exitOK
	}
	log := conf.NewLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	if err := serve(ctx, cfg, log, stdout); err != nil {
		log.Error("turn: stopped", "err", err)
		fmt.Fprintf(stderr, "turn: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// serve runs the relay (and its metrics endpoint) until ctx ends.
func serve(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	rc, err := cfg.relaySettings().Config()
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	rc.Logger, rc.Registerer = log, reg

	var (
		metricsSrv *http.Server
		served     = make(chan error, 1)
	)
	if cfg.Metrics != "" && cfg.Metrics != "off" {
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.Metrics)
		if err != nil {
			return fmt.Errorf("metrics: listen %s (--metrics): %w", cfg.Metrics, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { served <- metricsSrv.Serve(ln) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
			defer cancel()
			_ = metricsSrv.Shutdown(sctx)
		}()
		fmt.Fprintf(stdout, "metrics http://%s/metrics\n", ln.Addr())
	}

	srv, err := relay.New(ctx, rc)
	if err != nil {
		return err
	}
	for _, l := range srv.Listeners() {
		fmt.Fprintf(stdout, "listening %s %s\n", l.Network, l.Address)
	}
	fmt.Fprintln(stdout, "ready")
	select {
	case <-ctx.Done():
		log.Info("turn: shutting down", "allocations", srv.AllocationCount())
	case err := <-served:
		_ = srv.Close()
		return fmt.Errorf("metrics: %w", err)
	}
	return srv.Close()
}
