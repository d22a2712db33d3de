package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sotto-rtc/sotto/relay"
)

// envPrefix starts the name of every environment variable the command
// reads: a setting's variable is envPrefix + its flag name in upper snake
// case (--realm is SOTTO_TURN_REALM), except where the table names one.
const envPrefix = "SOTTO_TURN_"

const (
	defaultListen    = "0.0.0.0:3478"
	defaultRealm     = "sotto"
	defaultMetrics   = "127.0.0.1:9641"
	defaultMinPort   = 49152
	defaultMaxPort   = 65535
	defaultBandwidth = relay.DefaultBandwidth * 8 / 1000 // kbit/s
	// minSecretBytes is what a shared secret must have at least; anyone
	// who guesses it can mint credentials.
	minSecretBytes = 16
	// secretPlaceholder starts the secrets of the example configuration,
	// which validate refuses so that the example is never deployed as is.
	secretPlaceholder = "CHANGE-ME"
)

// config is everything the turn command can be told, from the YAML file,
// the environment and flags. Field names in errors are the YAML paths.
type config struct {
	// Listen are the addresses served: "host:port" is UDP and TCP,
	// "udp://", "tcp://" and "tls://host:port" one transport each.
	Listen stringList `yaml:"listen"`
	// Realm is the TURN realm.
	Realm string `yaml:"realm"`
	// AuthSecrets are TURN REST shared secrets; several allow rotation.
	AuthSecrets stringList `yaml:"auth_secrets"`
	// Users are static long-term users, name to password.
	Users map[string]string `yaml:"users"`
	// TLSCert and TLSKey are PEM files for tls:// listeners.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// RelayIP is the address relayed sockets bind to; PublicIP the
	// relayed address announced to clients (1:1 NAT).
	RelayIP  string `yaml:"relay_ip"`
	PublicIP string `yaml:"public_ip"`
	// MinPort and MaxPort bound the relayed ports.
	MinPort int `yaml:"min_port"`
	MaxPort int `yaml:"max_port"`
	// AllowPeers are peer ranges (CIDR) opened on top of the safe
	// default.
	AllowPeers stringList `yaml:"allow_peers"`
	// Quotas.
	MaxAllocationsPerUser int           `yaml:"max_allocations_per_user"`
	MaxAllocations        int           `yaml:"max_allocations"`
	BandwidthKbps         int           `yaml:"bandwidth_kbps"`
	MaxLifetime           time.Duration `yaml:"max_lifetime"`
	// Metrics is the address of the Prometheus endpoint; "" or "off"
	// turns it off.
	Metrics string `yaml:"metrics"`
	// LogLevel is debug, info, warn or error; LogFormat is text or json.
	LogLevel  string `yaml:"log_level"`
	LogFormat string `yaml:"log_format"`
}

// stringList is a YAML list of strings that also accepts a single string.
type stringList []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Tag == "!!null" {
			*l = nil
			return nil
		}
		*l = stringList{n.Value}
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*l = s
	return nil
}

func defaultConfig() config {
	return config{
		Listen:                stringList{defaultListen},
		Realm:                 defaultRealm,
		RelayIP:               "0.0.0.0",
		MinPort:               defaultMinPort,
		MaxPort:               defaultMaxPort,
		MaxAllocationsPerUser: relay.DefaultMaxAllocationsPerUser,
		MaxAllocations:        relay.DefaultMaxAllocations,
		BandwidthKbps:         defaultBandwidth,
		MaxLifetime:           relay.DefaultMaxLifetime,
		Metrics:               defaultMetrics,
		LogLevel:              "info",
		LogFormat:             "text",
	}
}

// loadFile decodes the YAML file at name over c. Unknown keys are errors,
// so a misspelt setting is never silently ignored.
func loadFile(name string, c *config) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			unknownField := regexp.MustCompile(`field (\S+) not found in type \S+`)
			lines := make([]string, len(te.Errors))
			for i, e := range te.Errors {
				lines[i] = unknownField.ReplaceAllString(e, `unknown key "$1"`)
			}
			return fmt.Errorf("config %s: %s", name, strings.Join(lines, "; "))
		}
		return fmt.Errorf("config %s: %w", name, err)
	}
	return nil
}

// fieldError is a problem with one setting, named by its YAML path.
type fieldError struct {
	Field string
	Err   error
}

func (e *fieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *fieldError) Unwrap() error { return e.Err }

// validate checks every setting and returns all problems found, each
// naming its field, joined one per line.
func (c *config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &fieldError{Field: field, Err: fmt.Errorf(format, args...)})
	}
	if len(c.Listen) == 0 {
		bad("listen", "must name at least one address")
	}
	hasTLS := false
	for i, l := range c.Listen {
		ls, err := relay.ParseListen(l)
		if err != nil {
			bad(fmt.Sprintf("listen[%d]", i), "%w", err)
			continue
		}
		hasTLS = hasTLS || ls[0].Network == relay.TLS
	}
	switch {
	case c.TLSCert != "" && c.TLSKey == "":
		bad("tls_key", "must be set when tls_cert is")
	case c.TLSCert == "" && c.TLSKey != "":
		bad("tls_cert", "must be set when tls_key is")
	case c.TLSCert != "":
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			bad("tls_cert", "%w", err)
		}
		if !hasTLS {
			bad("tls_cert", "is set but no listen address is tls://")
		}
	case hasTLS:
		bad("tls_cert", "a tls:// listener needs tls_cert and tls_key")
	}
	if c.Realm == "" {
		bad("realm", "must not be empty")
	}
	if len(c.AuthSecrets) == 0 && len(c.Users) == 0 {
		bad("auth_secrets", "no credentials: set --auth-secret (SOTTO_TURN_SECRET) or users in the config file")
	}
	for i, s := range c.AuthSecrets {
		field := fmt.Sprintf("auth_secrets[%d]", i)
		switch {
		case strings.HasPrefix(strings.ToUpper(s), secretPlaceholder):
			bad(field, "is the example's placeholder; generate a secret with `openssl rand -hex 32`")
		case len(s) < minSecretBytes:
			bad(field, "must be at least %d bytes, got %d (e.g. `openssl rand -hex 32`)", minSecretBytes, len(s))
		}
	}
	for name, pw := range c.Users {
		switch {
		case name == "" || strings.Contains(name, ":"):
			bad("users", "user name %q must not be empty or contain ':' (that is the REST credential format)", name)
		case pw == "" || strings.HasPrefix(strings.ToUpper(pw), secretPlaceholder):
			bad("users."+name, "needs a real password")
		}
	}
	if _, err := netip.ParseAddr(c.RelayIP); err != nil {
		bad("relay_ip", "%q is not an IP address", c.RelayIP)
	}
	if c.PublicIP != "" {
		if ip, err := netip.ParseAddr(c.PublicIP); err != nil {
			bad("public_ip", "%q is not an IP address", c.PublicIP)
		} else if ip.IsUnspecified() {
			bad("public_ip", "%q cannot be reached by clients", c.PublicIP)
		}
	}
	switch {
	case c.MinPort == 0 && c.MaxPort == 0:
	case c.MinPort < 1 || c.MinPort > 65535:
		bad("min_port", "must be 1-65535 (or both ports 0 for any free port), got %d", c.MinPort)
	case c.MaxPort < c.MinPort || c.MaxPort > 65535:
		bad("max_port", "must be %d-65535, got %d", c.MinPort, c.MaxPort)
	}
	for i, p := range c.AllowPeers {
		if _, err := netip.ParsePrefix(p); err != nil {
			bad(fmt.Sprintf("allow_peers[%d]", i), "%q is not a CIDR range (e.g. 10.0.0.5/32): %v", p, err)
		}
	}
	nonNegative := func(field string, n int) {
		if n < 0 {
			bad(field, "must be 0 (unlimited) or more, got %d", n)
		}
	}
	nonNegative("max_allocations_per_user", c.MaxAllocationsPerUser)
	nonNegative("max_allocations", c.MaxAllocations)
	nonNegative("bandwidth_kbps", c.BandwidthKbps)
	if c.MaxLifetime < 0 {
		bad("max_lifetime", "must be 0 (unlimited) or a positive duration, got %v", c.MaxLifetime)
	}
	if m := c.Metrics; m != "" && m != "off" {
		if _, port, err := net.SplitHostPort(m); err != nil {
			bad("metrics", "invalid address %q: %w", m, err)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad("metrics", "port %q is not a number 0-65535", port)
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("log_level", "%w", err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log_format", "must be text or json, got %q", c.LogFormat)
	}
	return errors.Join(errs...)
}

// relayConfig is the relay.Config of a validated configuration.
func (c *config) relayConfig() (relay.Config, error) {
	rc := relay.Config{
		Realm:                 c.Realm,
		Secrets:               c.AuthSecrets,
		Users:                 c.Users,
		MinPort:               uint16(c.MinPort),
		MaxPort:               uint16(c.MaxPort),
		MaxAllocationsPerUser: c.MaxAllocationsPerUser,
		MaxAllocations:        c.MaxAllocations,
		Bandwidth:             c.BandwidthKbps * 1000 / 8,
		MaxLifetime:           c.MaxLifetime,
	}
	for _, l := range c.Listen {
		ls, err := relay.ParseListen(l)
		if err != nil {
			return rc, err
		}
		rc.Listeners = append(rc.Listeners, ls...)
	}
	rc.RelayIP, _ = netip.ParseAddr(c.RelayIP)
	if c.PublicIP != "" {
		rc.PublicIP, _ = netip.ParseAddr(c.PublicIP)
	}
	for _, p := range c.AllowPeers {
		rc.AllowPeers = append(rc.AllowPeers, netip.MustParsePrefix(p))
	}
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return rc, fmt.Errorf("tls_cert: %w", err)
		}
		rc.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return rc, nil
}

// parseLevel maps a log level name to its slog level.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("must be debug, info, warn or error, got %q", s)
}

// settingKind says how a setting's flag and environment variable parse.
type settingKind int

const (
	kindValue settingKind = iota // one value; a later one replaces it
	kindList                     // repeatable flag; each value may be a comma list
)

// setting is one configurable value: its flag, its environment variable,
// the YAML path it overrides, and how to apply a string form of it. One
// table drives flags, environment and the documentation.
type setting struct {
	name    string // flag name, without dashes
	field   string // YAML path
	envName string // environment variable, when not derived from name
	usage   string
	arg     string
	kind    settingKind
	get     func(c *config) string
	set     func(c *config, vals []string) error
}

// env is the setting's environment variable.
func (s setting) env() string {
	if s.envName != "" {
		return s.envName
	}
	return envPrefix + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

// settings lists every setting a flag or environment variable can change.
func settings() []setting {
	str := func(name, field, usage string, p func(c *config) *string) setting {
		return setting{name: name, field: field, usage: usage, arg: "string",
			get: func(c *config) string { return *p(c) },
			set: func(c *config, v []string) error { *p(c) = v[0]; return nil }}
	}
	integer := func(name, field, usage string, p func(c *config) *int) setting {
		return setting{name: name, field: field, usage: usage, arg: "n",
			get: func(c *config) string { return strconv.Itoa(*p(c)) },
			set: func(c *config, v []string) error {
				n, err := strconv.Atoi(strings.TrimSpace(v[0]))
				if err != nil {
					return fmt.Errorf("%q is not an integer", v[0])
				}
				*p(c) = n
				return nil
			}}
	}
	duration := func(name, field, usage string, p func(c *config) *time.Duration) setting {
		return setting{name: name, field: field, usage: usage, arg: "duration",
			get: func(c *config) string { return p(c).String() },
			set: func(c *config, v []string) error {
				d, err := time.ParseDuration(strings.TrimSpace(v[0]))
				if err != nil {
					return fmt.Errorf("%q is not a duration (e.g. 10s, 1h)", v[0])
				}
				*p(c) = d
				return nil
			}}
	}
	list := func(name, field, usage string, p func(c *config) *stringList) setting {
		return setting{name: name, field: field, usage: usage, arg: "list", kind: kindList,
			get: func(c *config) string { return strings.Join(*p(c), ",") },
			set: func(c *config, v []string) error { *p(c) = v; return nil }}
	}
	secrets := list("auth-secret", "auth_secrets", "TURN REST shared `secret` (repeatable: every one is accepted, for rotation; prefer the environment variable)", func(c *config) *stringList { return &c.AuthSecrets })
	secrets.envName = "SOTTO_TURN_SECRET"
	secrets.get = func(*config) string { return "" } // never print a secret in -h

	return []setting{
		list("listen", "listen", "listen `address`: host:port serves UDP and TCP; udp://, tcp:// or tls://host:port one transport (repeatable)", func(c *config) *stringList { return &c.Listen }),
		str("realm", "realm", "TURN `realm`", func(c *config) *string { return &c.Realm }),
		secrets,
		str("tls-cert", "tls_cert", "PEM certificate `file` for tls:// listeners", func(c *config) *string { return &c.TLSCert }),
		str("tls-key", "tls_key", "PEM private key `file` for --tls-cert", func(c *config) *string { return &c.TLSKey }),
		str("relay-ip", "relay_ip", "`IP` relayed sockets bind to", func(c *config) *string { return &c.RelayIP }),
		str("public-ip", "public_ip", "relayed `IP` announced to clients (the public address behind 1:1 NAT)", func(c *config) *string { return &c.PublicIP }),
		integer("min-port", "min_port", "lowest relayed port (0 with --max-port 0: any free port)", func(c *config) *int { return &c.MinPort }),
		integer("max-port", "max_port", "highest relayed port", func(c *config) *int { return &c.MaxPort }),
		list("allow-peer", "allow_peers", "peer `CIDR` range opened despite the default deny list (repeatable), e.g. the SFU's private address", func(c *config) *stringList { return &c.AllowPeers }),
		integer("max-allocations-per-user", "max_allocations_per_user", "open allocations per user (0: unlimited)", func(c *config) *int { return &c.MaxAllocationsPerUser }),
		integer("max-allocations", "max_allocations", "open allocations in total (0: unlimited)", func(c *config) *int { return &c.MaxAllocations }),
		integer("bandwidth-kbps", "bandwidth_kbps", "relayed kbit/s per allocation, both directions (0: unlimited)", func(c *config) *int { return &c.BandwidthKbps }),
		duration("max-lifetime", "max_lifetime", "an allocation ends this long after it began, refreshed or not (0: unlimited)", func(c *config) *time.Duration { return &c.MaxLifetime }),
		str("metrics", "metrics", "Prometheus /metrics listen `address` (\"off\" to disable)", func(c *config) *string { return &c.Metrics }),
		str("log-level", "log_level", "log `level`: debug, info, warn or error", func(c *config) *string { return &c.LogLevel }),
		str("log-format", "log_format", "log `format`: text or json (logs go to stderr)", func(c *config) *string { return &c.LogFormat }),
	}
}

// settingValue is the flag.Value of a setting: it collects the strings
// given, applied after the file and the environment (flags win).
type settingValue struct {
	s    setting
	def  string
	vals []string
}

func (v *settingValue) String() string {
	if v == nil {
		return ""
	}
	return v.def
}

func (v *settingValue) Set(x string) error {
	if v.s.kind == kindList {
		v.vals = append(v.vals, splitList(x)...)
	} else {
		v.vals = []string{x}
	}
	return nil
}

// splitList splits a comma list, dropping empty items and spaces.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// applyEnv overrides c with every setting's environment variable that is
// set and not empty.
func applyEnv(c *config, env func(string) string) error {
	var errs []error
	for _, s := range settings() {
		raw := env(s.env())
		if raw == "" {
			continue
		}
		vals := []string{raw}
		if s.kind == kindList {
			vals = splitList(raw)
		}
		if err := s.set(c, vals); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.env(), err))
		}
	}
	return errors.Join(errs...)
}

// applyFlags overrides c with the flags given on the command line.
func applyFlags(c *config, given []*settingValue) error {
	var errs []error
	for _, v := range given {
		if len(v.vals) == 0 {
			continue
		}
		if err := v.s.set(c, v.vals); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", v.s.name, err))
		}
	}
	return errors.Join(errs...)
}
