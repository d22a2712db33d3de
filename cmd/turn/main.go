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
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

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

// errUsage means the command line was refused and the problem has been
// printed already.
var errUsage = errors.New("usage")

// run is the whole command, minus the process: main passes it the signal
// context, the arguments, the environment and the standard streams, and
// tests call it the same way. Once the relay serves, it prints one line
// per listener ("listening udp 127.0.0.1:3478"), the metrics URL before
// them, and "ready" after them on stdout.
func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	cfg, check, err := parse(args, env, stdout, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "turn: invalid configuration:\n  %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return exitUsage
	}
	if check {
		fmt.Fprintln(stdout, "config OK")
		return exitOK
	}
	log := newLogger(cfg, stderr)
	if err := serve(ctx, cfg, log, stdout); err != nil {
		log.Error("turn: stopped", "err", err)
		fmt.Fprintf(stderr, "turn: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// parse turns the command line and environment into a validated
// configuration, and reports whether --check-config was given.
func parse(args []string, env func(string) string, stdout, stderr io.Writer) (config, bool, error) {
	fs := flag.NewFlagSet("turn", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML config `file` [SOTTO_TURN_CONFIG]")
	check := fs.Bool("check-config", false, `validate the configuration, print "config OK" and exit (status 2 if invalid)`)
	defaults := defaultConfig()
	var given []*settingValue
	for _, s := range settings() {
		v := &settingValue{s: s, def: s.get(&defaults)}
		fs.Var(v, s.name, s.usage+" ["+s.env()+"]")
		given = append(given, v)
	}
	usage := func(w io.Writer) {
		fs.SetOutput(w)
		fmt.Fprint(w, usageHeader)
		fs.PrintDefaults()
	}
	fs.Usage = func() {} // printed below: -h on stdout, a mistake on stderr
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return config{}, false, err
		}
		usage(stderr)
		return config{}, false, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "turn: unexpected argument %q (flags only)\n", fs.Arg(0))
		return config{}, false, errUsage
	}
	path := *configPath
	if path == "" {
		path = env("SOTTO_TURN_CONFIG")
	}
	cfg := defaultConfig()
	if path != "" {
		if err := loadFile(path, &cfg); err != nil {
			return cfg, *check, err
		}
	}
	if err := applyEnv(&cfg, env); err != nil {
		return cfg, *check, err
	}
	if err := applyFlags(&cfg, given); err != nil {
		return cfg, *check, err
	}
	return cfg, *check, cfg.validate()
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs the relay (and its metrics endpoint) until ctx ends.
func serve(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	rc, err := cfg.relayConfig()
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
