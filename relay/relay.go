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
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pion/transport/v4"
	"github.com/pion/turn/v5"
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

// Server is a running TURN relay.
type Server struct {
	turn   *turn.Server
	log    *slog.Logger
	addrs  []net.Addr
	bound  []Listener
	policy *PeerPolicy
	m      *metrics
}

// New opens the listeners and starts the relay. It returns when the relay
// is serving, or an error naming what failed.
func New(ctx context.Context, cfg Config) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	switch {
	case cfg.Realm == "":
		return nil, errors.New("relay: Config.Realm is empty")
	case len(cfg.Secrets) == 0 && len(cfg.Users) == 0:
		return nil, errors.New("relay: no credentials: set Config.Secrets or Config.Users")
	case len(cfg.Listeners) == 0:
		return nil, errors.New("relay: no listeners")
	case (cfg.MinPort == 0) != (cfg.MaxPort == 0) || cfg.MinPort > cfg.MaxPort:
		return nil, fmt.Errorf("relay: bad relay port range %d-%d", cfg.MinPort, cfg.MaxPort)
	}
	// Registered only once the relay runs, so that a failed start (a
	// port in use) can be retried with the same registry.
	m, err := newMetrics(nil)
	if err != nil {
		return nil, err
	}

	s := &Server{log: log, m: m}
	tap := newRequestTap()
	var (
		packetConns []net.PacketConn
		listeners   []net.Listener
	)
	closeAll := func() {
		for _, c := range packetConns {
			_ = c.Close()
		}
		for _, l := range listeners {
			_ = l.Close()
		}
	}
	var lc net.ListenConfig
	for _, l := range cfg.Listeners {
		switch l.Network {
		case UDP:
			var (
				c   net.PacketConn
				err error
			)
			if cfg.Net != nil {
				c, err = cfg.Net.ListenPacket("udp4", l.Address)
			} else {
				c, err = lc.ListenPacket(ctx, "udp", l.Address)
			}
			if err != nil {
				closeAll()
				return nil, fmt.Errorf("relay: listen udp %s: %w", l.Address, err)
			}
			if u, ok := c.(*net.UDPConn); ok {
				// Every client's datagrams queue on this one socket;
				// the kernel's default (about 200 kB) overflows within
				// milliseconds of a descheduled read loop at 20k pps.
				// Linux caps it at net.core.rmem_max / wmem_max.
				_ = u.SetReadBuffer(listenerSocketBuffer)
				_ = u.SetWriteBuffer(listenerSocketBuffer)
			}
			packetConns = append(packetConns, c)
			s.addrs = append(s.addrs, c.LocalAddr())
			s.bound = append(s.bound, Listener{Network: UDP, Address: c.LocalAddr().String()})
		case TCP, TLS:
			if cfg.Net != nil {
				closeAll()
				return nil, fmt.Errorf("relay: %s listener %s: Config.Net supports UDP listeners only", l.Network, l.Address)
			}
			ln, err := lc.Listen(ctx, "tcp", l.Address)
			if err != nil {
				closeAll()
				return nil, fmt.Errorf("relay: listen %s %s: %w", l.Network, l.Address, err)
			}
			s.addrs = append(s.addrs, ln.Addr())
			s.bound = append(s.bound, Listener{Network: l.Network, Address: ln.Addr().String()})
			if l.Network == TLS {
				if cfg.TLS == nil {
					_ = ln.Close()
					closeAll()
					return nil, fmt.Errorf("relay: TLS listener %s without Config.TLS", l.Address)
				}
				ln = tls.NewListener(ln, cfg.TLS)
			}
			listeners = append(listeners, ln)
		default:
			closeAll()
			return nil, fmt.Errorf("relay: listener %s: unknown network %q (udp, tcp or tls)", l.Address, l.Network)
		}
	}

	relayIP := cfg.RelayIP
	if !relayIP.IsValid() {
		relayIP = netip.IPv4Unspecified()
	}
	announced := cfg.PublicIP
	if !announced.IsValid() && !relayIP.IsUnspecified() {
		announced = relayIP
	}
	if !announced.IsValid() {
		if ap, err := netip.ParseAddrPort(s.addrs[0].String()); err == nil && !ap.Addr().IsUnspecified() {
			announced = ap.Addr().Unmap()
		}
	}
	if !announced.IsValid() {
		announced = guessHostIP()
		log.Warn("turn: relayed address guessed from the interfaces; set the public IP if clients cannot reach it", "relayed_ip", announced)
	}

	own, ownEndpoints := ownAddresses(s.addrs, relayIP, announced)
	s.policy = NewPeerPolicy(cfg.AllowPeers, own)
	// An endpoint-only IP passes the IP policy; the relayed sockets then
	// hold it to the named ports.
	endpointIPs := make(map[netip.Addr][]uint16)
	for _, e := range cfg.AllowEndpoints {
		ip := Unmap(e.Addr())
		if s.policy.Check(ip) != nil {
			endpointIPs[ip] = append(endpointIPs[ip], e.Port())
		}
	}
	ownIPs := make(map[netip.Addr]struct{}, len(own))
	for _, a := range own {
		ownIPs[Unmap(a)] = struct{}{}
	}

	var inner turn.RelayAddressGenerator
	if cfg.MinPort != 0 {
		inner = &turn.RelayAddressGeneratorPortRange{
			RelayAddress: net.IP(announced.AsSlice()), Address: relayIP.String(),
			MinPort: cfg.MinPort, MaxPort: cfg.MaxPort, Net: cfg.Net,
		}
	} else {
		inner = &turn.RelayAddressGeneratorStatic{RelayAddress: net.IP(announced.AsSlice()), Address: relayIP.String(), Net: cfg.Net}
	}
	alloc := &allocator{
		inner: inner, quota: newQuota(cfg.MaxAllocationsPerUser, cfg.MaxAllocations), m: m,
		bandwidth: cfg.Bandwidth, maxLifetime: cfg.MaxLifetime,
		own: ownEndpoints, ownIPs: ownIPs, minPort: cfg.MinPort, maxPort: cfg.MaxPort,
		endpointOnly: endpointIPs,
	}
	auth := &authenticator{realm: cfg.Realm, secrets: cfg.Secrets, users: cfg.Users, now: now, tap: tap}
	ans := newAnswers(cfg.Realm, tap, func(peer net.Addr) bool { return alloc.isOwnEndpoint(peer) || alloc.isClosedEndpoint(peer) })

	permit := func(client net.Addr, peer net.IP) bool {
		if a, ok := netip.AddrFromSlice(peer); ok && endpointIPs[Unmap(a)] != nil {
			return true
		}
		if err := s.policy.CheckIP(peer); err != nil {
			m.refusals.WithLabelValues(reasonPeerDenied).Inc()
			log.Info("turn: peer refused", "client", client, "peer", peer, "err", err)
			return false
		}
		return true
	}
	sc := turn.ServerConfig{
		Realm:         cfg.Realm,
		LoggerFactory: pionLoggerFactory{log: log},
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			user, key, reason := auth.key(ra)
			if reason != "" {
				m.refusals.WithLabelValues(reason).Inc()
				log.Info("turn: credential refused", "client", ra.SrcAddr, "username", ra.Username, "realm", ra.Realm, "reason", reason)
				ans.refuseCredential(ra.SrcAddr, ra.Username, ra.Method.String())
				return "", nil, false
			}
			return user, key, true
		},
		QuotaHandler: func(user, _ string, src net.Addr) bool {
			if err := alloc.quota.check(user); err != nil {
				alloc.countQuota(err)
				log.Info("turn: allocation refused", "client", src, "user", user, "err", err)
				return false
			}
			return true
		},
		EventHandler: turn.EventHandler{
			OnAuth: func(src, _ net.Addr, _, username, _, method string, ok bool) {
				if !ok {
					m.refusals.WithLabelValues(reasonForged).Inc()
					log.Info("turn: credential refused", "client", src, "username", username, "method", method, "reason", reasonForged)
					ans.refuseCredential(src, username, method)
				}
			},
			OnAllocationCreated: func(src, _ net.Addr, proto, user, _ string, relayed net.Addr, _ int) {
				log.Debug("turn: allocation created", "client", src, "transport", proto, "user", user, "relayed", relayed)
			},
			OnAllocationDeleted: func(src, _ net.Addr, proto, user, _ string) {
				log.Debug("turn: allocation deleted", "client", src, "transport", proto, "user", user)
			},
		},
	}
	for _, c := range packetConns {
		sc.PacketConnConfigs = append(sc.PacketConnConfigs, turn.PacketConnConfig{
			PacketConn: newTapPacketConn(c, tap, ans), RelayAddressGenerator: alloc, PermissionHandler: permit,
		})
	}
	for _, l := range listeners {
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{
			Listener: &tapListener{Listener: l, tap: tap, ans: ans, log: log}, RelayAddressGenerator: alloc, PermissionHandler: permit,
		})
	}
	ts, err := turn.NewServer(sc)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("relay: %w", err)
	}
	if err := m.register(cfg.Registerer); err != nil {
		_ = ts.Close()
		return nil, err
	}
	s.turn = ts
	log.Info("turn: relay started", "listen", addrStrings(s.addrs), "relayed_ip", announced, "realm", cfg.Realm)
	return s, nil
}

// guessHostIP picks the address to announce when nothing says which: the
// first IPv4 address of an interface that is neither loopback nor
// link-local, as coturn does, else IPv4 loopback.
func guessHostIP() netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			ip := p.Addr().Unmap()
			if ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
				return ip
			}
		}
	}
	return netip.MustParseAddr("127.0.0.1")
}

// ownAddresses lists the relay's own IPs (every interface's when a
// listener or the relay binds a wildcard address) and its listening
// endpoints.
func ownAddresses(listen []net.Addr, relayIP, announced netip.Addr) ([]netip.Addr, map[netip.AddrPort]struct{}) {
	own := []netip.Addr{relayIP, announced}
	endpoints := make(map[netip.AddrPort]struct{})
	wildcard := relayIP.IsUnspecified()
	for _, a := range listen {
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			continue
		}
		ip := ap.Addr().Unmap()
		if ip.IsUnspecified() {
			wildcard = true
			continue
		}
		own = append(own, ip)
		endpoints[netip.AddrPortFrom(ip, ap.Port())] = struct{}{}
	}
	var ifaceIPs []netip.Addr
	if wildcard {
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if p, err := netip.ParsePrefix(a.String()); err == nil {
					ifaceIPs = append(ifaceIPs, p.Addr().Unmap())
				}
			}
		}
		own = append(own, ifaceIPs...)
	}
	// A wildcard listener's endpoints are its port on every own address.
	for _, a := range listen {
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil || !ap.Addr().Unmap().IsUnspecified() {
			continue
		}
		for _, ip := range own {
			if ip.IsValid() {
				endpoints[netip.AddrPortFrom(ip, ap.Port())] = struct{}{}
			}
		}
	}
	return own, endpoints
}

func addrStrings(addrs []net.Addr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.Network() + "/" + a.String()
	}
	return out
}

// Addrs returns the listening addresses, in the order of
// Config.Listeners, with the ports actually bound.
func (s *Server) Addrs() []net.Addr { return append([]net.Addr(nil), s.addrs...) }

// Listeners returns the listeners, in the order of Config.Listeners, with
// the ports actually bound.
func (s *Server) Listeners() []Listener { return append([]Listener(nil), s.bound...) }

// Policy returns the peer policy the relay enforces.
func (s *Server) Policy() *PeerPolicy { return s.policy }

// AllocationCount returns the number of open allocations.
func (s *Server) AllocationCount() int { return s.turn.AllocationCount() }

// Close stops the relay: it closes the listeners, which ends every
// allocation and its relayed sockets.
func (s *Server) Close() error {
	if err := s.turn.Close(); err != nil {
		return fmt.Errorf("relay: close: %w", err)
	}
	s.log.Info("turn: relay stopped")
	return nil
}
