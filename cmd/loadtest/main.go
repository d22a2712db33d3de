// Command loadtest drives a running Sotto SFU with simulated participants
// and reports what they saw and what the SFU spent; with --udp-reference
// it measures the machine's loopback UDP reference instead. The logic is
// package loadtest's (and loadtest/udpref's); this is flags and output.
// docs/BENCHMARKS.md has the method, the JSON schema and measured figures.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/sotto-rtc/sotto/loadtest"
	"github.com/sotto-rtc/sotto/loadtest/udpref"
)

// Exit statuses.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitThreshold   = 3
	exitInterrupted = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal the run stops cleanly; a second one
		// gets the default handling and ends the process.
		<-ctx.Done()
		stop()
	}()
	tty := term.IsTerminal(int(os.Stderr.Fd()))
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, tty)
	stop()
	os.Exit(code)
}

// run is the whole command minus the process.
func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer, tty bool) int {
	o, err := parseFlags(args, env, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "%v\n(loadtest -h lists the flags)\n", err)
		return exitUsage
	}
	if o.udp {
		return runUDP(ctx, o, stdout, stderr)
	}

	o.cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))
	display := loadtest.NewDisplay(stderr, tty)
	o.cfg.Progress = display.Update
	rep, err := loadtest.Run(ctx, o.cfg)
	display.Close()
	var ce *loadtest.ConfigError
	if errors.As(err, &ce) || errors.Is(err, loadtest.ErrSimulcast) {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	// With --json - the report owns stdout and the table goes to stderr.
	table := stdout
	if o.jsonPath == "-" {
		table = stderr
	}
	if rep.Schema != "" {
		if werr := rep.WriteTable(table); werr != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", werr)
		}
		if werr := writeJSON(o.jsonPath, stdout, rep.WriteJSON); werr != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", werr)
			return exitFailure
		}
	}
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return exitFailure
	case rep.Interrupted:
		fmt.Fprintln(stderr, "loadtest: interrupted before the end of the measurement; the report is partial")
		return exitInterrupted
	case len(rep.Violations) > 0:
		for _, v := range rep.Violations {
			fmt.Fprintf(stderr, "loadtest: threshold broken: %s\n", v.Message)
		}
		return exitThreshold
	}
	return exitOK
}

func runUDP(ctx context.Context, o options, stdout, stderr io.Writer) int {
	rep, err := udpref.Run(ctx, o.udpOpts)
	table := stdout
	if o.jsonPath == "-" {
		table = stderr
	}
	if len(rep.Results) > 0 {
		if werr := rep.WriteTable(table); werr != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", werr)
		}
		werr := writeJSON(o.jsonPath, stdout, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(rep)
		})
		if werr != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", werr)
			return exitFailure
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "loadtest: interrupted")
		return exitInterrupted
	case err != nil:
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// writeJSON writes with write to path: nowhere for "", stdout for "-".
func writeJSON(path string, stdout io.Writer, write func(io.Writer) error) error {
	switch path {
	case "":
		return nil
	case "-":
		return write(stdout)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	if err := write(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("--json %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--json %s: %w", path, err)
	}
	return nil
}
