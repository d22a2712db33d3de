// Package relay is Sotto's TURN relay on pion/turn/v5: listeners, TURN
// REST credentials (coturn's use-auth-secret), quotas, and a peer policy
// that is safe by default. A relay into the operator's own network
// (loopback, RFC 1918, cloud metadata) hands it to an attacker, so every
// peer in DefaultDenyList and the relay's own addresses are refused unless
// opened, IPv4-mapped IPv6 forms are unmapped before the check (the
// ::ffff:127.0.0.1 bypass), and every allocation is authenticated.
package relay

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pion/transport/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Network names a listener's transport.
type Network string

// TURN over UDP and TCP (usually port 3478) and over TLS (usually 5349).
const (
	UDP Network = "udp"
	TCP Network = "tcp"
	TLS Network = "tls"
)

// Listener is one address clients reach the relay on.
type Listener struct {
	Network Network
	Address string
}

// ParseListen turns a listen address as operators write it into its
// listeners: "host:port" is UDP and TCP, "udp://", "tcp://" and
// "tls://host:port" one transport each.
func ParseListen(s string) ([]Listener, error) {
	scheme, addr, found := strings.Cut(s, "://")
	if !found {
		addr = s
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("relay: listen %q: %w", s, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return nil, fmt.Errorf("relay: listen %q: port %q is not a number 0-65535", s, port)
	}
	switch {
	case !found:
		return []Listener{{Network: UDP, Address: addr}, {Network: TCP, Address: addr}}, nil
	case scheme == string(UDP) || scheme == string(TCP) || scheme == string(TLS):
		return []Listener{{Network: Network(scheme), Address: addr}}, nil
	}
	return nil, fmt.Errorf("relay: listen %q: unknown scheme %q (udp://, tcp://, tls:// or none for UDP and TCP)", s, scheme)
}

// Default quotas of cmd/turn and the sfu's in-process relay: a few calls'
// worth of allocations per identity; 20 Mbit/s carries several HD videos.
const (
	DefaultMaxAllocationsPerUser = 10
	DefaultMaxAllocations        = 10000
	DefaultBandwidth             = 2_500_000 // bytes per second
	DefaultMaxLifetime           = 24 * time.Hour
)

// listenerSocketBuffer is asked for on each UDP listener, as coturn does.
const listenerSocketBuffer = 4 << 20

// Config configures a Server. Zero quotas are unlimited.
type Config struct {
	Realm string
	// Secrets are TURN REST shared secrets; several allow rotation.
	Secrets   []string
	Users     map[string]string
	Listeners []Listener
	TLS       *tls.Config

	// RelayIP is what relayed sockets bind to; unset binds all interfaces.
	RelayIP netip.Addr
	// PublicIP is the relayed address announced (1:1 NAT). Unset: RelayIP,
	// or the first listener's address, when specified.
	PublicIP netip.Addr
	// MinPort and MaxPort bound the relayed ports; zero: any free port.
	MinPort, MaxPort uint16

	AllowPeers []netip.Prefix
	// AllowEndpoints are single peer endpoints opened, port and all (an
	// in-process relay's SFU). TURN permits per IP, so the IP is granted and
	// what goes to its other ports is dropped.
	AllowEndpoints []netip.AddrPort

	// Quotas per user (REST identity or static user) and in total.
	MaxAllocationsPerUser int
	MaxAllocations        int
	// Bandwidth is bytes per second per allocation, both directions.
	Bandwidth int
	// MaxLifetime ends an allocation this long after its creation, whatever
	// its refreshes.
	MaxLifetime time.Duration

	// Net, when set, replaces the host network for UDP listeners and relayed
	// sockets (pion's vnet, in tests).
	Net transport.Net

	// Logger defaults to slog.Default(); a nil Registerer registers nothing.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock credentials are checked against; default time.Now.
	Now func() time.Time
}
