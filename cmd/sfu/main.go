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
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
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
		// After the first signal, restore the default handling so that a
		// second Ctrl-C ends a drain that takes too long.
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

// errUsage means the command line was refused and the problem has been
// printed already.
var errUsage = errors.New("usage")

// runServe parses the gateway's flags, builds its configuration and runs
// it until ctx is cancelled.
func runServe(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	cfg, check, err := parseServe(args, env, stdout, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "sfu: invalid configuration:\n%s\n", indent(err.Error()))
		return exitUsage
	}
	if check {
		fmt.Fprintln(stdout, "config OK")
		if len(cfg.effectiveKeys()) == 0 {
			fmt.Fprintln(stderr, "sfu: note: no API keys configured; a development key will be generated at start")
		}
		return exitOK
	}

	log := newLogger(cfg, stderr)
	if err := serve(ctx, cfg, log, stdout); err != nil {
		log.Error("sfu: stopped", "err", err)
		fmt.Fprintf(stderr, "sfu: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// parseServe turns the gateway's command line and environment into a
// validated configuration, and reports whether --check-config was given.
// -h prints the usage on stdout (asked for, not an error); a refused
// command line is errUsage, with why on stderr; a bad setting is an
// error naming it.
func parseServe(args []string, env func(string) string, stdout, stderr io.Writer) (config, bool, error) {
	fs := flag.NewFlagSet("sfu", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML config file [SOTTO_CONFIG]")
	check := fs.Bool("check-config", false, `validate the configuration, print "config OK" and exit (status 2 if invalid)`)
	defaults := defaultConfig()
	var given []*settingValue
	for _, s := range settings() {
		v := &settingValue{s: s, def: s.get(&defaults)}
		fs.Var(v, s.name, s.usage+" ["+s.env()+"]")
		given = append(given, v)
	}
	fs.Usage = func() {} // printed below, where help and error differ
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, usageHeader, fs)
			return config{}, false, err
		}
		fmt.Fprintln(stderr, "sfu: 'sfu -h' lists every flag")
		return config{}, false, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sfu: unexpected argument %q (flags only; subcommands: token, help)\n", fs.Arg(0))
		return config{}, false, errUsage
	}
	path := *configPath
	if path == "" {
		path = env("SOTTO_CONFIG")
	}
	cfg, err := loadConfig(path, env, given)
	return cfg, *check, err
}

// loadConfig builds the configuration: defaults, then the file at path
// (if any), then the environment, then the flags given, and validates it.
// It reports every problem it finds in one error; only a file it cannot
// read or parse stops it early.
func loadConfig(path string, env func(string) string, given []*settingValue) (config, error) {
	cfg := defaultConfig()
	var errs []error
	if path != "" {
		err := loadFile(path, &cfg)
		var keys *fileKeysError
		if err != nil && !errors.As(err, &keys) {
			return cfg, err
		}
		errs = append(errs, err)
	}
	errs = append(errs, applyEnv(&cfg, env), applyFlags(&cfg, given), cfg.validate())
	return cfg, errors.Join(errs...)
}

// newLogger returns the process logger: text or JSON on w (stderr) at the
// configured level. The configuration has been validated.
func newLogger(cfg config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// printUsage writes header and fs's flags to w.
func printUsage(w io.Writer, header string, fs *flag.FlagSet) {
	fmt.Fprint(w, header)
	printFlags(w, fs)
}

// printFlags lists fs's flags on w, GNU style (--name arg), with their
// defaults. It replaces flag.PrintDefaults, which can only call a
// setting's argument "value".
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		if sv, ok := f.Value.(*settingValue); ok && arg == "value" {
			arg = sv.s.arg
		}
		line := "  --" + f.Name
		if arg != "" {
			line += " " + arg
		}
		line += "\n    \t" + usage
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			line += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintln(w, line)
	})
}

// indent prefixes every line of s with two spaces.
func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
