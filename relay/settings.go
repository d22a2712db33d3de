package relay

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"time"
)

// Settings is a relay as operators write it, in cmd/turn's flags and
// cmd/sfu's turn: section: addresses as text, bandwidth in kbit/s, keys
// as the YAML keys of both.
type Settings struct {
	Realm                 string
	Secrets               []string
	Users                 map[string]string
	Listen                []string
	TLSCert, TLSKey       string
	RelayIP, PublicIP     string
	MinPort, MaxPort      int
	AllowPeers            []string
	MaxAllocationsPerUser int
	MaxAllocations        int
	BandwidthKbps         int
	MaxLifetime           time.Duration
}

// Check reports each problem of the listen addresses, realm, relay and
// public IP, port range and peer ranges to bad, by YAML key.
func (s Settings) Check(bad func(field, format string, args ...any)) {
	for i, l := range s.Listen {
		if _, err := ParseListen(l); err != nil {
			bad(fmt.Sprintf("listen[%d]", i), "%w", err)
		}
	}
	if s.Realm == "" {
		bad("realm", "must not be empty")
	}
	if _, err := netip.ParseAddr(s.RelayIP); err != nil {
		bad("relay_ip", "%q is not an IP address", s.RelayIP)
	}
	if s.PublicIP != "" {
		if ip, err := netip.ParseAddr(s.PublicIP); err != nil {
			bad("public_ip", "%q is not an IP address", s.PublicIP)
		} else if ip.IsUnspecified() {
			bad("public_ip", "%q cannot be reached by clients", s.PublicIP)
		}
	}
	switch {
	case s.MinPort == 0 && s.MaxPort == 0:
	case s.MinPort < 1 || s.MinPort > 65535:
		bad("min_port", "must be 1-65535 (or both ports 0 for any free port), got %d", s.MinPort)
	case s.MaxPort < s.MinPort || s.MaxPort > 65535:
		bad("max_port", "must be %d-65535, got %d", s.MinPort, s.MaxPort)
	}
	for i, p := range s.AllowPeers {
		if _, err := netip.ParsePrefix(p); err != nil {
			bad(fmt.Sprintf("allow_peers[%d]", i), "%q is not a CIDR range (e.g. 10.0.0.5/32): %v", p, err)
		}
	}
}

// HasTLS reports whether a listen address is tls://.
func (s Settings) HasTLS() bool {
	for _, l := range s.Listen {
		if ls, err := ParseListen(l); err == nil && ls[0].Network == TLS {
			return true
		}
	}
	return false
}

// Config is the Config of settings Check has accepted; the certificate
// is loaded only when a listener is tls://.
func (s Settings) Config() (Config, error) {
	c := Config{
		Realm:                 s.Realm,
		Secrets:               s.Secrets,
		Users:                 s.Users,
		MinPort:               uint16(s.MinPort),
		MaxPort:               uint16(s.MaxPort),
		MaxAllocationsPerUser: s.MaxAllocationsPerUser,
		MaxAllocations:        s.MaxAllocations,
		Bandwidth:             s.BandwidthKbps * 1000 / 8,
		MaxLifetime:           s.MaxLifetime,
	}
	for _, l := range s.Listen {
		ls, err := ParseListen(l)
		if err != nil {
			return c, err
		}
		c.Listeners = append(c.Listeners, ls...)
	}
	c.RelayIP, _ = netip.ParseAddr(s.RelayIP)
	if s.PublicIP != "" {
		c.PublicIP, _ = netip.ParseAddr(s.PublicIP)
	}
	for _, p := range s.AllowPeers {
		c.AllowPeers = append(c.AllowPeers, netip.MustParsePrefix(p))
	}
	if s.TLSCert != "" && s.HasTLS() {
		cert, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey)
		if err != nil {
			return c, fmt.Errorf("tls_cert: %w", err)
		}
		c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return c, nil
}
