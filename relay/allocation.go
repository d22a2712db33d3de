package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/turn/v5"
	"golang.org/x/time/rate"
)

// QuotaError is an allocation refused because a quota is full.
type QuotaError struct {
	User string
	// Total is true when the relay-wide limit is full.
	Total bool
	Limit int
}

func (e *QuotaError) Error() string {
	if e.Total {
		return fmt.Sprintf("relay: allocation quota reached (%d in total)", e.Limit)
	}
	return fmt.Sprintf("relay: allocation quota reached for %q (%d per user)", e.User, e.Limit)
}

// quota counts open allocations per user and in total, from pion's request
// for the relayed socket to that socket's close: no event is missed or
// counted twice.
type quota struct {
	perUser, total int // limits; 0 is unlimited

	mu    sync.Mutex
	users map[string]int
	open  int
}

func newQuota(perUser, total int) *quota {
	return &quota{perUser: perUser, total: total, users: make(map[string]int)}
}

func (q *quota) check(user string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.checkLocked(user)
}

func (q *quota) checkLocked(user string) error {
	if q.total > 0 && q.open >= q.total {
		return &QuotaError{User: user, Total: true, Limit: q.total}
	}
	if q.perUser > 0 && q.users[user] >= q.perUser {
		return &QuotaError{User: user, Limit: q.perUser}
	}
	return nil
}

// acquire settles two Allocates racing past check; the loser gets 508.
func (q *quota) acquire(user string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.checkLocked(user); err != nil {
		return err
	}
	q.users[user]++
	q.open++
	return nil
}

func (q *quota) release(user string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.open--
	if q.users[user]--; q.users[user] <= 0 {
		delete(q.users, user)
	}
}

// allocator wraps pion's relay address generator so that every relayed
// socket is counted, metered, rate limited, closed at the maximum lifetime
// and kept from sending to the relay itself.
type allocator struct {
	inner       turn.RelayAddressGenerator
	quota       *quota
	m           *metrics
	bandwidth   int // bytes per second per allocation, both directions; 0 is unlimited
	maxLifetime time.Duration
	own         map[netip.AddrPort]struct{} // the relay's listening endpoints
	ownIPs      map[netip.Addr]struct{}
	minPort     uint16 // the relayed port range, to keep relays from relaying to each other
	maxPort     uint16
	// endpointOnly: IPs the policy refuses but AllowEndpoints opens at ports.
	endpointOnly map[netip.Addr][]uint16
}

func (a *allocator) isClosedEndpoint(addr net.Addr) bool {
	if len(a.endpointOnly) == 0 {
		return false
	}
	ap, ok := addrPort(addr)
	if !ok {
		return false
	}
	ports, ok := a.endpointOnly[Unmap(ap.Addr())]
	return ok && !slices.Contains(ports, ap.Port())
}

func (a *allocator) Validate() error { return a.inner.Validate() }

// limiter is nil when unlimited; its burst is one second of traffic and
// at least two full datagrams.
func (a *allocator) limiter() *rate.Limiter {
	if a.bandwidth <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(a.bandwidth), max(a.bandwidth, 2*1600))
}

func (a *allocator) AllocatePacketConn(conf turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	if err := a.quota.acquire(conf.UserID); err != nil {
		a.countQuota(err)
		return nil, nil, err
	}
	conn, addr, err := a.inner.AllocatePacketConn(conf)
	if err != nil {
		a.quota.release(conf.UserID)
		return nil, nil, err
	}
	rc := &relayedPacketConn{PacketConn: conn, a: a, user: conf.UserID, lim: a.limiter()}
	rc.timer.Store(a.opened(rc.close))
	return rc, addr, nil
}

func (a *allocator) AllocateListener(conf turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	if err := a.quota.acquire(conf.UserID); err != nil {
		a.countQuota(err)
		return nil, nil, err
	}
	ln, addr, err := a.inner.AllocateListener(conf)
	if err != nil {
		a.quota.release(conf.UserID)
		return nil, nil, err
	}
	rl := &relayedListener{Listener: ln, a: a, user: conf.UserID}
	rl.timer.Store(a.opened(rl.close))
	return rl, addr, nil
}

// AllocateConn dials a Connect peer, which the policy has passed.
func (a *allocator) AllocateConn(conf turn.AllocateConnConfig) (net.Conn, error) {
	if a.isOwnEndpoint(conf.RemoteAddr) || a.isClosedEndpoint(conf.RemoteAddr) {
		a.m.refusals.WithLabelValues(reasonPeerDenied).Inc()
		return nil, fmt.Errorf("relay: peer %s refused (endpoint)", conf.RemoteAddr)
	}
	c, err := a.inner.AllocateConn(conf)
	if err != nil {
		return nil, err
	}
	return newMeteredConn(c, a), nil
}

func (a *allocator) countQuota(err error) {
	var qe *QuotaError
	if errors.As(err, &qe) {
		reason := reasonQuotaUser
		if qe.Total {
			reason = reasonQuotaTotal
		}
		a.m.refusals.WithLabelValues(reason).Inc()
	}
}

// opened counts an allocation and arms its maximum lifetime: closing the
// relayed socket makes pion delete it.
func (a *allocator) opened(closeFn func()) *time.Timer {
	a.m.allocations.Inc()
	a.m.allocationsTotal.Inc()
	if a.maxLifetime <= 0 {
		return nil
	}
	return time.AfterFunc(a.maxLifetime, closeFn)
}

// isOwnEndpoint reports whether addr is a listening endpoint or relayed
// port of the relay: a policy that opens its network must not turn the
// relay onto itself.
func (a *allocator) isOwnEndpoint(addr net.Addr) bool {
	ap, ok := addrPort(addr)
	if !ok {
		return false
	}
	ap = netip.AddrPortFrom(Unmap(ap.Addr()), ap.Port())
	if _, ok := a.own[ap]; ok {
		return true
	}
	if _, ok := a.ownIPs[ap.Addr()]; ok && a.minPort != 0 && ap.Port() >= a.minPort && ap.Port() <= a.maxPort {
		return true
	}
	return false
}

// addrPort avoids formatting and parsing an address on every datagram.
func addrPort(addr net.Addr) (netip.AddrPort, bool) {
	var (
		ip   net.IP
		port int
	)
	switch a := addr.(type) {
	case *net.UDPAddr:
		ip, port = a.IP, a.Port
	case *net.TCPAddr:
		ip, port = a.IP, a.Port
	default:
		ap, err := netip.ParseAddrPort(addr.String())
		return ap, err == nil
	}
	ipa, ok := netip.AddrFromSlice(ip)
	if !ok || port < 0 || port > 65535 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ipa, uint16(port)), true
}

// relayedPacketConn is the relayed UDP socket of one allocation.
type relayedPacketConn struct {
	net.PacketConn
	a     *allocator
	user  string
	lim   *rate.Limiter
	once  sync.Once
	timer atomic.Pointer[time.Timer]
}

func (c *relayedPacketConn) close() {
	c.once.Do(func() {
		if t := c.timer.Load(); t != nil {
			t.Stop()
		}
		c.a.quota.release(c.user)
		c.a.m.allocations.Dec()
		_ = c.PacketConn.Close()
	})
}

func (c *relayedPacketConn) Close() error {
	c.close()
	return nil
}

// WriteTo drops a datagram over the bandwidth or aimed at the relay
// itself, silently, as any lossy path would.
func (c *relayedPacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.a.isOwnEndpoint(addr) {
		c.a.m.dropped.WithLabelValues(dropRelayAddress).Inc()
		return len(p), nil
	}
	if c.a.isClosedEndpoint(addr) {
		c.a.m.dropped.WithLabelValues(dropEndpointPort).Inc()
		return len(p), nil
	}
	if c.lim != nil && !c.lim.AllowN(time.Now(), len(p)) {
		c.a.m.droppedBandwidth.Inc()
		return len(p), nil
	}
	n, err := c.PacketConn.WriteTo(p, addr)
	if err == nil {
		c.a.m.bytesToPeer.Add(float64(n))
		c.a.m.packetsToPeer.Inc()
	}
	return n, err
}

func (c *relayedPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		if c.lim != nil && !c.lim.AllowN(time.Now(), n) {
			c.a.m.droppedBandwidth.Inc()
			continue
		}
		c.a.m.bytesFromPeer.Add(float64(n))
		c.a.m.packetsFromPeer.Inc()
		return n, addr, nil
	}
}

// Reasons a datagram is dropped: sotto_turn_dropped_packets_total's label.
const (
	dropBandwidth    = "bandwidth"
	dropRelayAddress = "relay_address"
	dropEndpointPort = "endpoint_port"
)

// relayedListener is the relayed TCP listener of one RFC 6062 allocation.
type relayedListener struct {
	net.Listener
	a     *allocator
	user  string
	once  sync.Once
	timer atomic.Pointer[time.Timer]
}

func (l *relayedListener) close() {
	l.once.Do(func() {
		if t := l.timer.Load(); t != nil {
			t.Stop()
		}
		l.a.quota.release(l.user)
		l.a.m.allocations.Dec()
		_ = l.Listener.Close()
	})
}

func (l *relayedListener) Close() error {
	l.close()
	return nil
}

func (l *relayedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newMeteredConn(c, l.a), nil
}

// meteredConn is a peer connection of a TCP allocation: counted, and paced
// (TCP has back pressure, so it waits instead of dropping).
type meteredConn struct {
	net.Conn
	a      *allocator
	lim    *rate.Limiter
	ctx    context.Context
	cancel context.CancelFunc
}

func newMeteredConn(c net.Conn, a *allocator) *meteredConn {
	ctx, cancel := context.WithCancel(context.Background())
	return &meteredConn{Conn: c, a: a, lim: a.limiter(), ctx: ctx, cancel: cancel}
}

func (c *meteredConn) pace(n int) error {
	if c.lim == nil || n == 0 {
		return nil
	}
	for n > 0 { // WaitN refuses more than the burst at once
		k := min(n, c.lim.Burst())
		if err := c.lim.WaitN(c.ctx, k); err != nil {
			return fmt.Errorf("relay: %w", net.ErrClosed)
		}
		n -= k
	}
	return nil
}

func (c *meteredConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.a.m.bytesFromPeer.Add(float64(n))
		c.a.m.packetsFromPeer.Inc()
		if perr := c.pace(n); perr != nil && err == nil {
			err = perr
		}
	}
	return n, err
}

func (c *meteredConn) Write(p []byte) (int, error) {
	if err := c.pace(len(p)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	c.a.m.bytesToPeer.Add(float64(n))
	c.a.m.packetsToPeer.Inc()
	return n, err
}

func (c *meteredConn) Close() error {
	c.cancel()
	return c.Conn.Close()
}
