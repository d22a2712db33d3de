// Package peerpolicy decides which addresses a node may send to on a
// client's word: the peers a TURN allocation relays to, and the remote ICE
// candidates the SFU checks. Both refuse the same places by default —
// the node itself, loopback, link-local (cloud metadata), multicast and
// addresses that are never a peer — so a caller cannot point the node at
// anything behind it.
package peerpolicy

import (
	"fmt"
	"net"
	"net/netip"
)

type deniedRange struct {
	prefix netip.Prefix
	reason string
}

// Reason a private range is refused with (RFC 1918, RFC 6598, RFC 4193).
const ReasonPrivate = "private"

// DefaultDenyList returns the ranges refused unless allowed, private
// ranges included. It is a function so that no caller can change another's
// policy.
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
		{p("10.0.0.0/8"), ReasonPrivate},
		{p("172.16.0.0/12"), ReasonPrivate},
		{p("192.168.0.0/16"), ReasonPrivate},
		{p("100.64.0.0/10"), ReasonPrivate}, // carrier-grade NAT, RFC 6598
		{p("fc00::/7"), ReasonPrivate},      // unique local, RFC 4193
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

// DeniedError is a refusal by a Policy.
type DeniedError struct {
	// Addr is the address as checked, after Unmap.
	Addr netip.Addr
	// Reason names the class it fell in ("loopback", "private", the
	// policy's OwnReason, ...).
	Reason string
	// Who prefixes the message ("relay: peer", "media: candidate").
	Who string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("%s %s refused (%s)", e.Who, e.Addr, e.Reason)
}

// Options configure a Policy.
type Options struct {
	// Allow lists ranges allowed whatever else says; it wins over Own too.
	Allow []netip.Prefix
	// Own are the node's own addresses, refused with OwnReason.
	Own []netip.Addr
	// OwnReason is the Reason for Own (default "own address").
	OwnReason string
	// AllowPrivate lets private ranges through (an SFU's LAN calls).
	AllowPrivate bool
	// Who prefixes refusal messages (default "peer").
	Who string
}

// Policy is immutable and safe for concurrent use.
type Policy struct {
	allow     []netip.Prefix
	deny      []deniedRange
	own       map[netip.Addr]struct{}
	ownReason string
	who       string
}

// New returns the policy opts describe.
func New(opts Options) *Policy {
	p := &Policy{own: make(map[netip.Addr]struct{}, len(opts.Own)), ownReason: opts.OwnReason, who: opts.Who}
	if p.ownReason == "" {
		p.ownReason = "own address"
	}
	if p.who == "" {
		p.who = "peer"
	}
	for _, d := range defaultDeny() {
		if opts.AllowPrivate && d.reason == ReasonPrivate {
			continue
		}
		p.deny = append(p.deny, d)
	}
	for _, a := range opts.Allow {
		// ::ffff:10.0.0.0/104 means 10.0.0.0/8: addresses are unmapped
		// before the check, so ranges are too.
		if a.Addr().Is4In6() && a.Bits() >= 96 {
			a = netip.PrefixFrom(a.Addr().Unmap(), a.Bits()-96)
		}
		p.allow = append(p.allow, a.Masked())
	}
	for _, a := range opts.Own {
		p.own[Unmap(a)] = struct{}{}
	}
	return p
}

// Unmap returns the IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d)
// or IPv4-compatible (::a.b.c.d) IPv6 address, and any other address
// unchanged (without zone). Both forms reach IPv4 hosts through a
// dual-stack socket, so checking them as IPv6 would let ::ffff:127.0.0.1
// through: the bypass coturn shipped.
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
		// ::/128 and ::1/128 are IPv6's own unspecified and loopback.
		if a == netip.IPv6Unspecified() || a == netip.IPv6Loopback() {
			return a
		}
		return netip.AddrFrom4([4]byte(b[12:]))
	}
	return a
}

// Check returns nil when ip may be sent to, or a *DeniedError.
func (p *Policy) Check(ip netip.Addr) error {
	ip = Unmap(ip)
	for _, a := range p.allow {
		if a.Contains(ip) {
			return nil
		}
	}
	if !ip.IsValid() {
		return &DeniedError{Addr: ip, Reason: "invalid", Who: p.who}
	}
	if _, mine := p.own[ip]; mine {
		return &DeniedError{Addr: ip, Reason: p.ownReason, Who: p.who}
	}
	for _, d := range p.deny {
		if d.prefix.Contains(ip) {
			return &DeniedError{Addr: ip, Reason: d.reason, Who: p.who}
		}
	}
	return nil
}

// CheckIP is Check for a net.IP.
func (p *Policy) CheckIP(ip net.IP) error {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return &DeniedError{Reason: "invalid", Who: p.who}
	}
	return p.Check(a)
}
