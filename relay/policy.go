package relay

import (
	"fmt"
	"net"
	"net/netip"
)

// deniedRange is one block of the default deny list and why it is there.
type deniedRange struct {
	prefix netip.Prefix
	reason string
}

// DefaultDenyList returns the peer ranges a relay refuses unless an
// operator opens them with an allow range. It is a function, not a
// variable, so that no caller can change the policy of another.
//
// The list is the classic set of places a TURN relay must not reach on an
// attacker's behalf: the relay host itself, the operator's private
// networks, cloud metadata (169.254.169.254), and addresses that are never
// a legitimate peer. Broadcast (255.255.255.255) is inside 240.0.0.0/4.
func DefaultDenyList() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(defaultDeny()))
	for _, d := range defaultDeny() {
		out = append(out, d.prefix)
	}
	return out
}

func defaultDeny() []deniedRange {
	p := netip.MustParsePrefix
	return []deniedRange{
		{p("0.0.0.0/8"), "unspecified"},
		{p("::/128"), "unspecified"},
		{p("127.0.0.0/8"), "loopback"},
		{p("::1/128"), "loopback"},
		{p("10.0.0.0/8"), "private"},
		{p("172.16.0.0/12"), "private"},
		{p("192.168.0.0/16"), "private"},
		{p("100.64.0.0/10"), "private"}, // carrier-grade NAT, RFC 6598
		{p("fc00::/7"), "private"},      // unique local, RFC 4193
		{p("169.254.0.0/16"), "link-local"},
		{p("fe80::/10"), "link-local"},
		{p("224.0.0.0/4"), "multicast"},
		{p("ff00::/8"), "multicast"},
		{p("255.255.255.255/32"), "broadcast"},
		{p("240.0.0.0/4"), "reserved"},
		{p("192.0.2.0/24"), "documentation"},
		{p("198.51.100.0/24"), "documentation"},
		{p("203.0.113.0/24"), "documentation"},
		{p("2001:db8::/32"), "documentation"},
	}
}

// PeerDeniedError is the refusal of a peer address by a PeerPolicy.
type PeerDeniedError struct {
	// Addr is the address as checked, after unmapping.
	Addr netip.Addr
	// Reason names the deny-list class it fell in ("loopback",
	// "private", "relay address", ...).
	Reason string
}

func (e *PeerDeniedError) Error() string {
	return fmt.Sprintf("relay: peer %s refused (%s)", e.Addr, e.Reason)
}

// PeerPolicy decides which peers allocations may relay to: everything
// except the default deny list and the relay's own addresses, plus the
// ranges an operator explicitly allows. It is immutable and safe for
// concurrent use.
type PeerPolicy struct {
	allow []netip.Prefix
	deny  []deniedRange
	own   map[netip.Addr]struct{}
}

// NewPeerPolicy returns a policy that allows exactly the ranges in allow
// on top of the default, and denies the relay's own addresses in own. An
// allow range wins over the deny list, including over own addresses: an
// operator who names 10.0.0.0/8 for its SFU means it.
func NewPeerPolicy(allow []netip.Prefix, own []netip.Addr) *PeerPolicy {
	p := &PeerPolicy{deny: defaultDeny(), own: make(map[netip.Addr]struct{}, len(own))}
	for _, a := range allow {
		// A range written as ::ffff:10.0.0.0/104 means 10.0.0.0/8: peers
		// are unmapped before the check, so ranges are too.
		if a.Addr().Is4In6() && a.Bits() >= 96 {
			a = netip.PrefixFrom(a.Addr().Unmap(), a.Bits()-96)
		}
		p.allow = append(p.allow, a.Masked())
	}
	for _, a := range own {
		p.own[Unmap(a)] = struct{}{}
	}
	return p
}

// Unmap returns the IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d)
// or IPv4-compatible (::a.b.c.d) IPv6 address, and any other address
// unchanged (without zone). Both forms reach IPv4 hosts through a
// dual-stack socket, so a policy that checked them as IPv6 would let
// ::ffff:127.0.0.1 through: the bypass coturn shipped.
func Unmap(a netip.Addr) netip.Addr {
	a = a.WithZone("")
	if a.Is4In6() {
		return a.Unmap()
	}
	if a.Is6() {
		b := a.As16()
		for _, x := range b[:12] {
			if x != 0 {
				return a
			}
		}
		// ::/128 and ::1/128 are IPv6's own unspecified and loopback
		// addresses, not compatible forms of 0.0.0.0 and 0.0.0.1.
		if a == netip.IPv6Unspecified() || a == netip.IPv6Loopback() {
			return a
		}
		return netip.AddrFrom4([4]byte(b[12:]))
	}
	return a
}

// Check returns nil when ip may be a peer, or a *PeerDeniedError.
func (p *PeerPolicy) Check(ip netip.Addr) error {
	ip = Unmap(ip)
	for _, a := range p.allow {
		if a.Contains(ip) {
			return nil
		}
	}
	if !ip.IsValid() {
		return &PeerDeniedError{Addr: ip, Reason: "invalid"}
	}
	if _, mine := p.own[ip]; mine {
		return &PeerDeniedError{Addr: ip, Reason: "relay address"}
	}
	for _, d := range p.deny {
		if d.prefix.Contains(ip) {
			return &PeerDeniedError{Addr: ip, Reason: d.reason}
		}
	}
	return nil
}

// checkIP is Check for the net.IP pion hands over.
func (p *PeerPolicy) checkIP(ip net.IP) error {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return &PeerDeniedError{Reason: "invalid"}
	}
	return p.Check(a)
}
