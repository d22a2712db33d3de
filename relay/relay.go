// Package relay is Sotto's TURN relay on pion/turn/v5: listeners, TURN
// REST ephemeral credentials (coturn's use-auth-secret), a peer policy
// that is safe by default, and quotas.
//
// A TURN relay is a classic attack surface. An open relay, or one that
// relays into the operator's own network (loopback, RFC 1918 space, cloud
// metadata at 169.254.169.254), hands an attacker the operator's network.
// So a Server refuses every peer in DefaultDenyList and its own addresses
// unless the operator names a range to open, checks every peer after
// unmapping IPv4-mapped and IPv4-compatible IPv6 forms (the coturn bypass
// through ::ffff:127.0.0.1), and authenticates every allocation.
//
// cmd/turn runs a Server as a process; cmd/sfu can run one in-process.
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

// The transports a listener can speak: TURN over UDP and TCP (RFC 5766,
// usually port 3478) and over TLS (RFC 5766 section 2.1, usually 5349).
const (
	UDP Network = "udp"
	TCP Network = "tcp"
	TLS Network = "tls"
)

// Listener is one address clients reach the relay on.
type Listener struct {
	Network Network
	// Address is host:port; port 0 picks a free port (tests).
	Address string
}

// ParseListen turns a listen address as operators write it into the
// listeners it names: "host:port" is UDP and TCP on that port (TURN's
// classic 3478 pair), "udp://", "tcp://" and "tls://host:port" one
// transport each.
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

// Default quotas: what cmd/turn and the sfu's in-process relay start
// with. Ten allocations are a few calls' worth for one identity (two per
// call); 20 Mbit/s carries several HD video streams.
const (
	DefaultMaxAllocationsPerUser = 10
	DefaultMaxAllocations        = 10000
	DefaultBandwidth             = 2_500_000 // bytes per second
	DefaultMaxLifetime           = 24 * time.Hour
)

// listenerSocketBuffer is the receive and send buffer asked for on each
// UDP listener (Linux doubles it; coturn's listeners get 4 MiB).
const listenerSocketBuffer = 4 << 20

// Config configures a Server. Zero quotas are unlimited.
type Config struct {
	// Realm is the TURN realm (the long-term credential's scope).
	Realm string
	// Secrets are the TURN REST shared secrets; any one of them may have
	// signed a credential, so that a new secret can be introduced before
	// the old one is retired.
	Secrets []string
	// Users are static long-term users, name to password.
	Users map[string]string
	// Listeners are the addresses the relay serves TURN on.
	Listeners []Listener
	// TLS is the configuration of TLS listeners (certificates).
	TLS *tls.Config

	// RelayIP is the address relayed sockets bind to. Unspecified
	// (0.0.0.0) binds all interfaces.
	RelayIP netip.Addr
	// PublicIP is the relayed address announced to clients, for a relay
	// behind 1:1 NAT. Unset: RelayIP, or the first listener's address,
	// when specified.
	PublicIP netip.Addr
	// MinPort and MaxPort bound the relayed ports; zero picks any free
	// port.
	MinPort, MaxPort uint16

	// AllowPeers are the peer ranges opened on top of the default policy.
	AllowPeers []netip.Prefix
	// AllowEndpoints are single peer endpoints opened on top of the
	// default policy, port and all: an SFU on the relay's own host or
	// network (an in-process relay's media port). Permissions are per IP
	// in TURN, so the IP is granted, and whatever is relayed to its other
	// ports is dropped (and a TCP Connect refused).
	AllowEndpoints []netip.AddrPort

	// MaxAllocationsPerUser and MaxAllocations bound open allocations per
	// user (REST identity or static user) and in total.
	MaxAllocationsPerUser int
	MaxAllocations        int
	// Bandwidth bounds the relayed bytes per second of one allocation,
	// both directions together.
	Bandwidth int
	// MaxLifetime closes an allocation this long after it was created,
	// whatever refreshes it got. TURN's own lifetime (at most an hour
	// per refresh in pion) still applies within it.
	MaxLifetime time.Duration

	// Net, when set, is the network UDP listeners and relayed sockets
	// use instead of the host's: pion's vnet, for tests of NAT
	// traversal. TCP and TLS listeners need the host network.
	Net transport.Net

	// Logger receives the relay's logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the relay's metrics. Nil: not registered.
	Registerer prometheus.Registerer
	// Now is the clock credentials are checked against. Default
	// time.Now.
	Now func() time.Time
}
