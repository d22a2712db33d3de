package main

import (
	"fmt"
	"strings"
	"time"

	conf "github.com/sotto-rtc/sotto/internal/config"
	"github.com/sotto-rtc/sotto/relay"
)

const (
	defaultListen    = "0.0.0.0:3478"
	defaultRealm     = "sotto"
	defaultMetrics   = "127.0.0.1:9641"
	defaultMinPort   = 49152
	defaultMaxPort   = 65535
	defaultBandwidth = relay.DefaultBandwidth * 8 / 1000 // kbit/s
	// minSecretBytes: anyone who guesses the shared secret can mint
	// credentials.
	minSecretBytes = 16
)

// config is everything the turn command can be told; errors name the
// YAML keys.
type config struct {
	// Listen: "host:port" is UDP and TCP, "udp://", "tcp://" and
	// "tls://host:port" one transport each.
	Listen      conf.Strings      `yaml:"listen"`
	Realm       string            `yaml:"realm"`
	AuthSecrets conf.Strings      `yaml:"auth_secrets"`
	Users       map[string]string `yaml:"users"` // static long-term users, name to password
	TLSCert     string            `yaml:"tls_cert"`
	TLSKey      string            `yaml:"tls_key"`
	RelayIP     string            `yaml:"relay_ip"`
	PublicIP    string            `yaml:"public_ip"`
	MinPort     int               `yaml:"min_port"`
	MaxPort     int               `yaml:"max_port"`
	AllowPeers  conf.Strings      `yaml:"allow_peers"`

	MaxAllocationsPerUser int           `yaml:"max_allocations_per_user"`
	MaxAllocations        int           `yaml:"max_allocations"`
	BandwidthKbps         int           `yaml:"bandwidth_kbps"`
	MaxLifetime           time.Duration `yaml:"max_lifetime"`
	Metrics               string        `yaml:"metrics"` // "" or "off" turns it off
	LogLevel              string        `yaml:"log_level"`
	LogFormat             string        `yaml:"log_format"`
}

func defaultConfig() config {
	return config{
		Listen:                conf.Strings{defaultListen},
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

var command = conf.Command[config]{
	Name:        "turn",
	Header:      usageHeader,
	EnvPrefix:   "SOTTO_TURN_",
	ConfigEnv:   "SOTTO_TURN_CONFIG",
	ConfigUsage: "YAML config `file`",
	ArgsNote:    " (flags only)",
	Defaults:    defaultConfig,
	Settings:    settings,
	Validate:    (*config).validate,
}

// settings lists every setting a flag or environment variable can change.
func settings() []conf.Setting[config] {
	type s = config
	return []conf.Setting[config]{
		conf.List("listen", "listen", "listen `address`: host:port serves UDP and TCP; udp://, tcp:// or tls://host:port one transport (repeatable)", func(c *s) *conf.Strings { return &c.Listen }),
		conf.String("realm", "realm", "TURN `realm`", func(c *s) *string { return &c.Realm }),
		conf.List("auth-secret", "auth_secrets", "TURN REST shared `secret` (repeatable: every one is accepted, for rotation; prefer the environment variable)", func(c *s) *conf.Strings { return &c.AuthSecrets }).
			WithEnv("SOTTO_TURN_SECRET").HideDefault(),
		conf.String("tls-cert", "tls_cert", "PEM certificate `file` for tls:// listeners", func(c *s) *string { return &c.TLSCert }),
		conf.String("tls-key", "tls_key", "PEM private key `file` for --tls-cert", func(c *s) *string { return &c.TLSKey }),
		conf.String("relay-ip", "relay_ip", "`IP` relayed sockets bind to", func(c *s) *string { return &c.RelayIP }),
		conf.String("public-ip", "public_ip", "relayed `IP` announced to clients (the public address behind 1:1 NAT)", func(c *s) *string { return &c.PublicIP }),
		conf.Int("min-port", "min_port", "lowest relayed port (0 with --max-port 0: any free port)", func(c *s) *int { return &c.MinPort }),
		conf.Int("max-port", "max_port", "highest relayed port", func(c *s) *int { return &c.MaxPort }),
		conf.List("allow-peer", "allow_peers", "peer `CIDR` range opened despite the default deny list (repeatable), e.g. the SFU's private address", func(c *s) *conf.Strings { return &c.AllowPeers }),
		conf.Int("max-allocations-per-user", "max_allocations_per_user", "open allocations per user (0: unlimited)", func(c *s) *int { return &c.MaxAllocationsPerUser }),
		conf.Int("max-allocations", "max_allocations", "open allocations in total (0: unlimited)", func(c *s) *int { return &c.MaxAllocations }),
		conf.Int("bandwidth-kbps", "bandwidth_kbps", "relayed kbit/s per allocation, both directions (0: unlimited)", func(c *s) *int { return &c.BandwidthKbps }),
		conf.Duration("max-lifetime", "max_lifetime", "an allocation ends this long after it began, refreshed or not (0: unlimited)", func(c *s) *time.Duration { return &c.MaxLifetime }),
		conf.String("metrics", "metrics", "Prometheus /metrics listen `address` (\"off\" to disable)", func(c *s) *string { return &c.Metrics }),
		conf.String("log-level", "log_level", "log `level`: debug, info, warn or error", func(c *s) *string { return &c.LogLevel }),
		conf.String("log-format", "log_format", "log `format`: text or json (logs go to stderr)", func(c *s) *string { return &c.LogFormat }),
	}
}

// relaySettings is the relay part of the configuration.
func (c *config) relaySettings() relay.Settings {
	return relay.Settings{
		Realm: c.Realm, Secrets: c.AuthSecrets, Users: c.Users, Listen: c.Listen,
		TLSCert: c.TLSCert, TLSKey: c.TLSKey, RelayIP: c.RelayIP, PublicIP: c.PublicIP,
		MinPort: c.MinPort, MaxPort: c.MaxPort, AllowPeers: c.AllowPeers,
		MaxAllocationsPerUser: c.MaxAllocationsPerUser, MaxAllocations: c.MaxAllocations,
		BandwidthKbps: c.BandwidthKbps, MaxLifetime: c.MaxLifetime,
	}
}

// validate returns every problem found, one per line, each naming its key.
func (c *config) validate() error {
	var p conf.Problems
	if len(c.Listen) == 0 {
		p.Add("listen", "must name at least one address")
	}
	rs := c.relaySettings()
	rs.Check(p.Add)
	c.validateTLS(&p, rs.HasTLS())
	c.validateCredentials(&p)
	for _, q := range []struct {
		field string
		n     int
	}{
		{"max_allocations_per_user", c.MaxAllocationsPerUser},
		{"max_allocations", c.MaxAllocations},
		{"bandwidth_kbps", c.BandwidthKbps},
	} {
		if q.n < 0 {
			p.Add(q.field, "must be 0 (unlimited) or more, got %d", q.n)
		}
	}
	if c.MaxLifetime < 0 {
		p.Add("max_lifetime", "must be 0 (unlimited) or a positive duration, got %v", c.MaxLifetime)
	}
	if m := c.Metrics; m != "" && m != "off" {
		if err := conf.CheckHostPort(m); err != nil {
			p.Add("metrics", "invalid address %q: %w", m, err)
		}
	}
	p.Logging(c.LogLevel, c.LogFormat)
	return p.Err()
}

func (c *config) validateTLS(p *conf.Problems, hasTLS bool) {
	p.CertPair(c.TLSCert, c.TLSKey)
	switch {
	case c.TLSCert != "" && c.TLSKey != "" && !hasTLS:
		p.Add("tls_cert", "is set but no listen address is tls://")
	case c.TLSCert == "" && c.TLSKey == "" && hasTLS:
		p.Add("tls_cert", "a tls:// listener needs tls_cert and tls_key")
	}
}

func (c *config) validateCredentials(p *conf.Problems) {
	if len(c.AuthSecrets) == 0 && len(c.Users) == 0 {
		p.Add("auth_secrets", "no credentials: set --auth-secret (SOTTO_TURN_SECRET) or users in the config file")
	}
	for i, s := range c.AuthSecrets {
		p.AddErr(fmt.Sprintf("auth_secrets[%d]", i), conf.CheckSecret(s, minSecretBytes))
	}
	for name, pw := range c.Users {
		switch {
		case name == "" || strings.Contains(name, ":"):
			p.Add("users", "user name %q must not be empty or contain ':' (that is the REST credential format)", name)
		case pw == "" || conf.IsPlaceholder(pw):
			p.Add("users."+name, "needs a real password")
		}
	}
}
