package relay

import (
	"net/netip"

	"github.com/sotto-rtc/sotto/internal/peerpolicy"
)

// PeerPolicy decides which peers allocations may relay to: everything
// except the default deny list and the relay's own addresses, plus the
// ranges an operator explicitly allows. The SFU checks remote ICE
// candidates with the same code (package peerpolicy).
type PeerPolicy = peerpolicy.Policy

// PeerDeniedError is the refusal of a peer address by a PeerPolicy.
type PeerDeniedError = peerpolicy.DeniedError

// DefaultDenyList returns the peer ranges a relay refuses unless an
// operator opens them with an allow range.
func DefaultDenyList() []netip.Prefix { return peerpolicy.DefaultDenyList() }

// NewPeerPolicy returns a policy that allows exactly the ranges in allow
// on top of the default, and denies the relay's own addresses in own. An
// allow range wins over the deny list, including over own addresses: an
// operator who names 10.0.0.0/8 for its SFU means it.
func NewPeerPolicy(allow []netip.Prefix, own []netip.Addr) *PeerPolicy {
	return peerpolicy.New(peerpolicy.Options{Allow: allow, Own: own, OwnReason: "relay address", Who: "relay: peer"})
}

// Unmap returns the IPv4 address inside an IPv4-mapped or -compatible
// IPv6 address, and any other address unchanged (without zone).
func Unmap(a netip.Addr) netip.Addr { return peerpolicy.Unmap(a) }
