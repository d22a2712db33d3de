package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/pion/turn/v5"
)

// Server is a running TURN relay.
type Server struct {
	turn   *turn.Server
	log    *slog.Logger
	addrs  []net.Addr
	bound  []Listener
	policy *PeerPolicy
	m      *metrics
}

// New opens the listeners and returns once the relay serves.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	// Registered once the relay runs, so a failed start can be retried.
	m, err := newMetrics(nil)
	if err != nil {
		return nil, err
	}
	s := &Server{log: cfg.Logger, m: m}
	socks, err := s.listen(ctx, cfg)
	if err != nil {
		return nil, err
	}
	relayIP, announced := s.relayedAddress(cfg)
	alloc := s.allocator(cfg, relayIP, announced)
	ts, err := turn.NewServer(s.turnConfig(cfg, socks, alloc))
	if err != nil {
		socks.close()
		return nil, fmt.Errorf("relay: %w", err)
	}
	if err := m.register(cfg.Registerer); err != nil {
		_ = ts.Close()
		return nil, err
	}
	s.turn = ts
	s.log.Info("turn: relay started", "listen", addrStrings(s.addrs), "relayed_ip", announced, "realm", cfg.Realm)
	return s, nil
}

func (cfg *Config) check() error {
	switch {
	case cfg.Realm == "":
		return errors.New("relay: Config.Realm is empty")
	case len(cfg.Secrets) == 0 && len(cfg.Users) == 0:
		return errors.New("relay: no credentials: set Config.Secrets or Config.Users")
	case len(cfg.Listeners) == 0:
		return errors.New("relay: no listeners")
	case (cfg.MinPort == 0) != (cfg.MaxPort == 0) || cfg.MinPort > cfg.MaxPort:
		return fmt.Errorf("relay: bad relay port range %d-%d", cfg.MinPort, cfg.MaxPort)
	}
	return nil
}

type sockets struct {
	packetConns []net.PacketConn
	listeners   []net.Listener
}

func (k *sockets) close() {
	for _, c := range k.packetConns {
		_ = c.Close()
	}
	for _, l := range k.listeners {
		_ = l.Close()
	}
}

// listen opens cfg's listeners; on failure it closes those it opened.
func (s *Server) listen(ctx context.Context, cfg Config) (*sockets, error) {
	socks := &sockets{}
	for _, l := range cfg.Listeners {
		var err error
		switch l.Network {
		case UDP:
			err = s.listenUDP(ctx, cfg, l, socks)
		case TCP, TLS:
			err = s.listenTCP(ctx, cfg, l, socks)
		default:
			err = fmt.Errorf("relay: listener %s: unknown network %q (udp, tcp or tls)", l.Address, l.Network)
		}
		if err != nil {
			socks.close()
			return nil, err
		}
	}
	return socks, nil
}

func (s *Server) listenUDP(ctx context.Context, cfg Config, l Listener, socks *sockets) error {
	var (
		c   net.PacketConn
		err error
	)
	if cfg.Net != nil {
		c, err = cfg.Net.ListenPacket("udp4", l.Address)
	} else {
		c, err = (&net.ListenConfig{}).ListenPacket(ctx, "udp", l.Address)
	}
	if err != nil {
		return fmt.Errorf("relay: listen udp %s: %w", l.Address, err)
	}
	if u, ok := c.(*net.UDPConn); ok {
		// All clients' datagrams queue on this one socket.
		_ = u.SetReadBuffer(listenerSocketBuffer)
		_ = u.SetWriteBuffer(listenerSocketBuffer)
	}
	socks.packetConns = append(socks.packetConns, c)
	s.addrs = append(s.addrs, c.LocalAddr())
	s.bound = append(s.bound, Listener{Network: UDP, Address: c.LocalAddr().String()})
	return nil
}

func (s *Server) listenTCP(ctx context.Context, cfg Config, l Listener, socks *sockets) error {
	if cfg.Net != nil {
		return fmt.Errorf("relay: %s listener %s: Config.Net supports UDP listeners only", l.Network, l.Address)
	}
	if l.Network == TLS && cfg.TLS == nil {
		return fmt.Errorf("relay: TLS listener %s without Config.TLS", l.Address)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", l.Address)
	if err != nil {
		return fmt.Errorf("relay: listen %s %s: %w", l.Network, l.Address, err)
	}
	s.addrs = append(s.addrs, ln.Addr())
	s.bound = append(s.bound, Listener{Network: l.Network, Address: ln.Addr().String()})
	if l.Network == TLS {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	socks.listeners = append(socks.listeners, ln)
	return nil
}

// relayedAddress is the address relayed sockets bind to and the one
// announced: the public IP, else the relay IP, else the first listener's,
// else a guess.
func (s *Server) relayedAddress(cfg Config) (relayIP, announced netip.Addr) {
	relayIP = cfg.RelayIP
	if !relayIP.IsValid() {
		relayIP = netip.IPv4Unspecified()
	}
	announced = cfg.PublicIP
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
		s.log.Warn("turn: relayed address guessed from the interfaces; set the public IP if clients cannot reach it", "relayed_ip", announced)
	}
	return relayIP, announced
}

// allocator sets s's peer policy and returns the allocator enforcing it.
func (s *Server) allocator(cfg Config, relayIP, announced netip.Addr) *allocator {
	own, ownEndpoints := ownAddresses(s.addrs, relayIP, announced)
	s.policy = NewPeerPolicy(cfg.AllowPeers, own)
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
	return &allocator{
		inner: inner, quota: newQuota(cfg.MaxAllocationsPerUser, cfg.MaxAllocations), m: s.m,
		bandwidth: cfg.Bandwidth, maxLifetime: cfg.MaxLifetime,
		own: ownEndpoints, ownIPs: ownIPs, minPort: cfg.MinPort, maxPort: cfg.MaxPort,
		endpointOnly: endpointIPs,
	}
}

func (s *Server) turnConfig(cfg Config, socks *sockets, alloc *allocator) turn.ServerConfig {
	log, m := s.log, s.m
	tap := newRequestTap()
	auth := &authenticator{realm: cfg.Realm, secrets: cfg.Secrets, users: cfg.Users, now: cfg.Now, tap: tap}
	ans := newAnswers(cfg.Realm, tap, func(peer net.Addr) bool { return alloc.isOwnEndpoint(peer) || alloc.isClosedEndpoint(peer) })
	permit := func(client net.Addr, peer net.IP) bool {
		if a, ok := netip.AddrFromSlice(peer); ok && alloc.endpointOnly[Unmap(a)] != nil {
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
		EventHandler: s.events(ans),
	}
	for _, c := range socks.packetConns {
		sc.PacketConnConfigs = append(sc.PacketConnConfigs, turn.PacketConnConfig{
			PacketConn: newTapPacketConn(c, tap, ans), RelayAddressGenerator: alloc, PermissionHandler: permit,
		})
	}
	for _, l := range socks.listeners {
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{
			Listener: &tapListener{Listener: l, tap: tap, ans: ans, log: log}, RelayAddressGenerator: alloc, PermissionHandler: permit,
		})
	}
	return sc
}

func (s *Server) events(ans *answers) turn.EventHandler {
	log := s.log
	return turn.EventHandler{
		OnAuth: func(src, _ net.Addr, _, username, _, method string, ok bool) {
			if !ok {
				s.m.refusals.WithLabelValues(reasonForged).Inc()
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
	}
}

// guessHostIP is coturn's guess: the first IPv4 address of an interface
// that is neither loopback nor link-local, else 127.0.0.1.
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

// ownAddresses lists the relay's own IPs (every interface's behind a
// wildcard address) and its listening endpoints.
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

// Addrs and Listeners are in the order of Config.Listeners, as bound.
func (s *Server) Addrs() []net.Addr { return append([]net.Addr(nil), s.addrs...) }

func (s *Server) Listeners() []Listener { return append([]Listener(nil), s.bound...) }

func (s *Server) Policy() *PeerPolicy { return s.policy }

func (s *Server) AllocationCount() int { return s.turn.AllocationCount() }

// Close ends every allocation and closes the listeners.
func (s *Server) Close() error {
	if err := s.turn.Close(); err != nil {
		return fmt.Errorf("relay: close: %w", err)
	}
	s.log.Info("turn: relay stopped")
	return nil
}
