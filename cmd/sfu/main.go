// Command sfu runs a Sotto node: WebSocket signaling that admits callers
// with access tokens, the SFU that forwards their media, health and
// readiness endpoints, and Prometheus metrics.
//
// With no flags and no config it is a complete gateway on this machine,
// with a development API key it generates and prints together with a join
// token. In production it reads a YAML file (--config), environment
// variables (SOTTO_*) and flags, in that order of precedence (flags win).
// See deploy/sfu.yaml for every setting and docs/PROTOCOL.md for the wire
// protocol.
//
//	sfu [flags]                  run the gateway
//	sfu --check-config [flags]   validate the configuration and exit
//	sfu token [flags]            print a signed access token
//
// Exit status: 0 on success and after a graceful shutdown, 1 when the
// gateway fails at run time (a port in use, say), 2 for bad flags or
// configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	conf "github.com/sotto-rtc/sotto/internal/config"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// A second Ctrl-C ends a drain that takes too long.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command, minus the process: main passes it the signal
// context, the arguments, the environment and the standard streams, and
// tests call it the same way.
func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "token":
			return runToken(ctx, args[1:], env, stdout, stderr)
		case "help":
			return runServe(ctx, []string{"-h"}, env, stdout, stderr)
		}
	}
	return runServe(ctx, args, env, stdout, stderr)
}

const usageHeader = `Sotto secure calling gateway.

Usage:
  sfu [flags]                  run the gateway
  sfu --check-config [flags]   validate the configuration, print "config OK" and exit
  sfu token [flags]            print a signed access token (sfu token -h)

With no API key configured, a development key is generated and printed with
a ready-to-use join token. Every flag below also has an environment variable
(shown in brackets) and a key in the --config YAML file (see deploy/sfu.yaml).
Precedence: defaults < config file < environment < flags.

Flags:
`

// runServe parses the gateway's flags, builds its configuration and runs
// it until ctx is cancelled.
func runServe(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
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
		if len(cfg.effectiveKeys()) == 0 {
			fmt.Fprintln(stderr, "sfu: note: no API keys configured; a development key will be generated at start")
		}
		return exitOK
	}
	log := conf.NewLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	if err := serve(ctx, cfg, log, stdout); err != nil {
		log.Error("sfu: stopped", "err", err)
		fmt.Fprintf(stderr, "sfu: %v\n", err)
		return exitFailure
	}
	return exitOK
}
