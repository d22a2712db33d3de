package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	conf "github.com/sotto-rtc/sotto/internal/config"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// defaultTokenTTL is the lifetime of a token minted by `sfu token` unless
// --ttl says otherwise. Short, because a token is a bearer credential.
const defaultTokenTTL = time.Hour

const tokenUsage = `Usage:
  sfu token --room R --identity I [--api-key K --api-secret S | --config F] [--ttl D] [--no-publish] [--no-subscribe]

Prints an access token (HS256 JWT, kid = API key) admitting identity I to
room R, followed by a newline. The key comes from --api-key/--api-secret,
else SOTTO_API_KEY/SOTTO_API_SECRET, else the first entry of keys: in the
config file (--config or SOTTO_CONFIG). Prefer the environment for the
secret: a command line is visible to other users of the machine.

Flags:
`

// runToken is the token subcommand.
func runToken(_ context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sfu token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	apiKey := fs.String("api-key", "", "API key, sent as the token's kid [SOTTO_API_KEY]")
	apiSecret := fs.String("api-secret", "", "API secret the token is signed with [SOTTO_API_SECRET]")
	configPath := fs.String("config", "", "take the key from the first keys: entry of this config file [SOTTO_CONFIG]")
	room := fs.String("room", "", "room the token admits to (required)")
	identity := fs.String("identity", "", "participant identity, the token's sub (required)")
	ttl := fs.Duration("ttl", defaultTokenTTL, "token lifetime")
	noPublish := fs.Bool("no-publish", false, "do not grant publishing")
	noSubscribe := fs.Bool("no-subscribe", false, "do not grant subscribing")
	fs.Usage = func() {} // printed below, where help and error differ
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			conf.PrintUsage(stdout, tokenUsage, fs)
			return exitOK
		}
		fmt.Fprintln(stderr, "sfu token: 'sfu token -h' lists every flag")
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sfu token: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}

	key, secret := firstSet(*apiKey, env("SOTTO_API_KEY")), firstSet(*apiSecret, env("SOTTO_API_SECRET"))
	if path := firstSet(*configPath, env("SOTTO_CONFIG")); key == "" && secret == "" && path != "" {
		cfg := defaultConfig()
		if err := conf.LoadFile(path, &cfg); err != nil {
			fmt.Fprintf(stderr, "sfu token: %v\n", err)
			return exitUsage
		}
		if len(cfg.Keys) == 0 {
			fmt.Fprintf(stderr, "sfu token: %s has no keys: entry\n", path)
			return exitUsage
		}
		key, secret = cfg.Keys[0].Key, cfg.Keys[0].Secret
	}

	var missing []string
	for _, f := range []struct{ name, val string }{
		{"--api-key (or SOTTO_API_KEY)", key},
		{"--api-secret (or SOTTO_API_SECRET)", secret},
		{"--room", *room},
		{"--identity", *identity},
	} {
		if f.val == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "sfu token: missing required flags: %s\n", strings.Join(missing, ", "))
		return exitUsage
	}
	if *ttl <= 0 {
		fmt.Fprintf(stderr, "sfu token: --ttl must be positive, got %v\n", *ttl)
		return exitUsage
	}
	var p conf.Problems
	checkKey(&p, "--api-key", "--api-secret", keyConfig{Key: key, Secret: secret})
	if err := p.Err(); err != nil {
		fmt.Fprintf(stderr, "sfu token: %v\n", err)
		return exitUsage
	}

	tok, err := wire.NewToken(key, secret, wire.Grant{
		Room:         *room,
		Identity:     *identity,
		CanPublish:   !*noPublish,
		CanSubscribe: !*noSubscribe,
		TTL:          *ttl,
	})
	if err != nil {
		fmt.Fprintf(stderr, "sfu token: %v\n", err)
		return exitUsage
	}
	fmt.Fprintln(stdout, tok)
	return exitOK
}

// firstSet returns the first of vals that is not empty.
func firstSet(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
