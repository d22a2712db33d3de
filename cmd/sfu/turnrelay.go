package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sotto-rtc/sotto/relay"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// staticICEServers are the configured STUN and TURN servers, the same
// for every participant.
func staticICEServers(cfg config) []wire.ICEServer {
	out := make([]wire.ICEServer, 0, len(cfg.ICEServers))
	for _, s := range cfg.ICEServers {
		out = append(out, wire.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	return out
}

// turnServers starts the in-process relay, if configured, and returns
// what each participant's joined lists: the static servers and, with a
// TURN relay, fresh credentials for it. Fresh per participant and join,
// so the relay can count and refuse per identity, and a leaked
// credential dies with its TTL.
func (g *gateway) turnServers(reg prometheus.Registerer) (func(identity string) []wire.ICEServer, error) {
	t := g.cfg.TURN
	urls := t.URLs
	if len(t.Listen) > 0 {
		var err error
		if g.relay, err = startRelay(g.cfg, g.sfu.Port(), g.log, reg); err != nil {
			return nil, err
		}
		if len(urls) == 0 {
			urls = relayURLs(g.cfg, g.relay)
		}
	}
	if len(urls) == 0 {
		return nil, nil
	}
	static := staticICEServers(g.cfg)
	return func(identity string) []wire.ICEServer {
		user, pass := relay.RESTCredentials(t.Secret, identity, t.CredentialTTL, time.Now())
		return append(slices.Clone(static), wire.ICEServer{URLs: urls, Username: user, Credential: pass})
	}, nil
}

// startRelay runs the in-process TURN relay of a single-box deployment.
// The SFU's media endpoints (mediaPort on its addresses) are opened to it
// port and all: the SFU is typically on the relay's own host address,
// which the peer policy otherwise refuses.
func startRelay(cfg config, mediaPort int, log *slog.Logger, reg prometheus.Registerer) (*relay.Server, error) {
	rc, err := cfg.relaySettings().Config()
	if err != nil {
		return nil, fmt.Errorf("turn: %w", err)
	}
	rc.Logger, rc.Registerer = log, reg
	var mediaIPs []netip.Addr
	for _, s := range cfg.PublicIP {
		if ip, err := netip.ParseAddr(s); err == nil {
			mediaIPs = append(mediaIPs, ip)
		}
	}
	if ip, err := netip.ParseAddr(cfg.MediaIP); err == nil && !ip.IsUnspecified() {
		mediaIPs = append(mediaIPs, ip)
	} else if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				mediaIPs = append(mediaIPs, p.Addr())
			}
		}
	}
	for _, ip := range mediaIPs {
		rc.AllowEndpoints = append(rc.AllowEndpoints, netip.AddrPortFrom(ip.Unmap(), uint16(mediaPort)))
	}
	srv, err := relay.New(context.Background(), rc)
	if err != nil {
		return nil, fmt.Errorf("turn: %w", err)
	}
	return srv, nil
}

// relayURLs are the in-process relay's TURN URLs when the configuration
// names none: its listeners, at the public IP when there is one.
func relayURLs(cfg config, srv *relay.Server) []string {
	var urls []string
	for _, l := range srv.Listeners() {
		host, port, err := net.SplitHostPort(l.Address)
		if err != nil {
			continue
		}
		if cfg.TURN.PublicIP != "" {
			host = cfg.TURN.PublicIP
		}
		hp := net.JoinHostPort(host, port)
		switch l.Network {
		case relay.UDP:
			urls = append(urls, "turn:"+hp+"?transport=udp")
		case relay.TCP:
			urls = append(urls, "turn:"+hp+"?transport=tcp")
		case relay.TLS:
			urls = append(urls, "turns:"+hp+"?transport=tcp")
		}
	}
	return urls
}

// prefixes parses CIDR ranges validate has checked.
func prefixes(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range list {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

// noLimit turns the command's 0 (no limit) into media's -1 (media reads 0
// as its default).
func noLimit(v int) int {
	if v == 0 {
		return -1
	}
	return v
}
