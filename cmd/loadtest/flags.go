package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"

	"github.com/sotto-rtc/sotto/loadtest"
	"github.com/sotto-rtc/sotto/loadtest/udpref"
)

// options is the parsed command line.
type options struct {
	cfg      loadtest.Config
	jsonPath string // "" none, "-" stdout
	logLevel slog.Level
	// udp: --udp-reference, measure loopback UDP instead of the SFU.
	udp     bool
	udpOpts udpref.Options
}

// errUsage means the command line was refused and the reason printed.
var errUsage = errors.New("usage")

const usageHeader = `loadtest drives a running Sotto SFU with simulated participants (the Go
SDK, end-to-end encryption on) publishing synthetic Opus and VP8 paced like
real encoders, and reports join latency, frame loss, jitter, end-to-end
latency, decryption failures and the SFU's own CPU, memory and forwarded
packets (from its /metrics). docs/BENCHMARKS.md has the method.

Usage:
  loadtest --url http://HOST:7780 --api-key K --api-secret S --rooms N
           --publishers P --subscribers S --duration D [flags]
  loadtest --udp-reference [--udp-duration D] [--udp-size N] [--udp-batch N]

Exit status: 0 ok, 1 the run failed, 2 bad flags, 3 a threshold was
broken, 130 interrupted (SIGINT/SIGTERM; the partial report is written).

Flags:
`

// parseFlags turns the command line into options. env supplies
// SOTTO_API_KEY and SOTTO_API_SECRET when the flags are absent. Errors
// name the flag: errUsage when the flag package refused the line (it has
// printed why on stderr), a *loadtest.ConfigError or loadtest.ErrSimulcast
// for a bad value.
func parseFlags(args []string, env func(string) string, stderr io.Writer) (options, error) {
	var o options
	c := &o.cfg
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	// The flag package would print the whole usage after every error;
	// parse quietly and say only what was wrong.
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.URL, "url", "", "the SFU's base `URL`, e.g. http://127.0.0.1:7780 (signaling /v1/signal, metrics /metrics)")
	fs.StringVar(&c.APIKey, "api-key", env("SOTTO_API_KEY"), "API `key` the participants' tokens are signed with [SOTTO_API_KEY]")
	fs.StringVar(&c.APISecret, "api-secret", env("SOTTO_API_SECRET"), "API `secret` for --api-key; prefer the environment variable [SOTTO_API_SECRET]")
	fs.IntVar(&c.Rooms, "rooms", 1, "`number` of rooms")
	fs.IntVar(&c.Publishers, "publishers", 1, "publishing participants per room (they send, never subscribe)")
	fs.IntVar(&c.Subscribers, "subscribers", 1, "subscribing participants per room (they receive every track of the room)")
	fs.DurationVar(&c.Duration, "duration", loadtest.DefaultDuration, "how long the full load is measured, after every join and every subscription's first frame")
	fs.Var(bitrateValue{&c.VideoBitrate}, "video-bitrate", "each video track's `bitrate`: bit/s, or with k or M (default 500k)")
	audioOnly := fs.Bool("audio-only", false, "publish only an Opus track")
	videoOnly := fs.Bool("video-only", false, "publish only a VP8 track")
	fs.BoolVar(&c.Simulcast, "simulcast", false, "refused: the SFU has no simulcast yet")
	fs.Var(rampValue{&c.Ramp}, "ramp", "joins started per second, `R` or R/s (default 5/s, the SFU's default join limit per address)")
	e2ee := fs.Bool("e2ee", true, "end-to-end encryption in every participant (--e2ee=false to turn it off)")
	fs.StringVar(&o.jsonPath, "json", "", "write the JSON report to `FILE` (- for stdout)")
	fs.Var(fractionValue{&c.Thresholds.MaxLoss}, "max-loss", "exit 3 when frame loss exceeds `X`, a fraction (0.01) or a percentage (1%); a subscription without media breaks it too")
	fs.DurationVar(&c.Thresholds.MaxP95Join, "max-p95-join", 0, "exit 3 when the p95 join latency exceeds `D`; a failed join breaks it too")
	fs.StringVar(&c.RoomPrefix, "room-prefix", "", "room name `prefix` (default loadtest-<random>)")
	fs.StringVar(&c.MetricsURL, "metrics-url", "", "the SFU's Prometheus `URL` (default --url + /metrics; off to skip)")
	fs.DurationVar(&c.JoinTimeout, "join-timeout", loadtest.DefaultJoinTimeout, "bound on one participant's join and publish, rate-limited retries included")
	logLevel := fs.String("log-level", "error", "SDK and run log `level` on stderr: debug, info, warn or error")
	fs.BoolVar(&o.udp, "udp-reference", false, "measure loopback UDP packets per second (sendto, sendmmsg, each with and without SRTP) instead of an SFU")
	fs.DurationVar(&o.udpOpts.Duration, "udp-duration", udpref.DefaultDuration, "with --udp-reference: how long each method sends")
	fs.IntVar(&o.udpOpts.Size, "udp-size", udpref.DefaultSize, "with --udp-reference: packet size in `bytes`")
	fs.IntVar(&o.udpOpts.Batch, "udp-batch", udpref.DefaultBatch, "with --udp-reference: messages per sendmmsg")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usageHeader)
			printFlags(stderr, fs)
			return o, err
		}
		fmt.Fprintf(stderr, "loadtest: %s\n(loadtest -h lists the flags)\n", strings.ReplaceAll(err.Error(), "flag -", "flag --"))
		return o, errUsage
	}
	if fs.NArg() > 0 {
		return o, &loadtest.ConfigError{Flag: fs.Arg(0), Msg: "unexpected argument (flags only)"}
	}
	if err := o.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return o, &loadtest.ConfigError{Flag: "--log-level", Msg: fmt.Sprintf("%q is not debug, info, warn or error", *logLevel)}
	}
	if o.udp {
		return o, nil
	}
	switch {
	case *audioOnly && *videoOnly:
		return o, &loadtest.ConfigError{Flag: "--audio-only", Msg: "and --video-only exclude each other"}
	case *audioOnly:
		c.Media = loadtest.AudioOnly
	case *videoOnly:
		c.Media = loadtest.VideoOnly
	}
	c.DisableE2EE = !*e2ee
	if c.Duration <= 0 {
		return o, &loadtest.ConfigError{Flag: "--duration", Msg: fmt.Sprintf("must be positive (got %v)", c.Duration)}
	}
	if c.JoinTimeout <= 0 {
		return o, &loadtest.ConfigError{Flag: "--join-timeout", Msg: fmt.Sprintf("must be positive (got %v)", c.JoinTimeout)}
	}
	return o, c.Validate()
}

// printFlags lists fs's flags GNU style (--name arg), with their
// defaults, as cmd/sfu does.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if arg != "" {
			line += " " + arg
		}
		line += "\n    \t" + usage
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			line += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintln(w, line)
	})
}

// bitrateValue parses "500000", "500k", "1.5M", optionally ending in
// "bps" or "bit/s".
type bitrateValue struct{ p *int }

func (v bitrateValue) String() string {
	if v.p == nil || *v.p == 0 {
		return ""
	}
	return strconv.Itoa(*v.p)
}

func (v bitrateValue) Set(s string) error {
	n, err := parseBitrate(s)
	if err != nil {
		return err
	}
	*v.p = n
	return nil
}

func parseBitrate(s string) (int, error) {
	t := strings.TrimSpace(s)
	for _, suf := range []string{"bit/s", "bps"} {
		t = strings.TrimSuffix(t, suf)
	}
	mult := 1.0
	switch {
	case strings.HasSuffix(t, "k"), strings.HasSuffix(t, "K"):
		mult, t = 1e3, t[:len(t)-1]
	case strings.HasSuffix(t, "M"), strings.HasSuffix(t, "m"):
		mult, t = 1e6, t[:len(t)-1]
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) || f*mult > math.MaxInt32 {
		return 0, fmt.Errorf("%q is not a bitrate (bit/s, e.g. 500000, 500k or 1.5M)", s)
	}
	return int(math.Round(f * mult)), nil
}

// rampValue parses "5" or "5/s".
type rampValue struct{ p *float64 }

func (v rampValue) String() string {
	if v.p == nil || *v.p == 0 {
		return ""
	}
	return strconv.FormatFloat(*v.p, 'g', -1, 64) + "/s"
}

func (v rampValue) Set(s string) error {
	f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "/s"), 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) {
		return fmt.Errorf("%q is not a rate (joins per second, e.g. 5 or 5/s)", s)
	}
	*v.p = f
	return nil
}

// fractionValue parses "0.01" or "1%" into a fraction in [0, 1].
type fractionValue struct{ p **float64 }

func (v fractionValue) String() string {
	if v.p == nil || *v.p == nil {
		return ""
	}
	return strconv.FormatFloat(**v.p, 'g', -1, 64)
}

func (v fractionValue) Set(s string) error {
	t := strings.TrimSpace(s)
	pct := strings.HasSuffix(t, "%")
	f, err := strconv.ParseFloat(strings.TrimSuffix(t, "%"), 64)
	if pct {
		f /= 100
	}
	if err != nil || f < 0 || f > 1 || math.IsNaN(f) {
		return fmt.Errorf("%q is not a fraction from 0 to 1 (e.g. 0.01 or 1%%)", s)
	}
	*v.p = &f
	return nil
}
