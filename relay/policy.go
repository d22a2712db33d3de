package relay

import (
	"net/netip"

	"github.com/sotto-rtc/sotto/internal/peerpolicy"
)

// PeerPolicy decides which peers allocations may relay to; the SFU checks
// ICE candidates with the same code.
type PeerPolicy = peerpolicy.Policy

// PeerDeniedError is the refusal of a peer address by a PeerPolicy.
type PeerDeniedError = peerpolicy.DeniedError

// DefaultDenyList returns the peer ranges a relay refuses unless an
// operator opens them with an allow range.
func DefaultDenyList() []netip.Prefix { return peerpolicy.DefaultDenyList() }

// NewPeerPolicy allows the ranges in allow on top of the default and
// denies own; an allow range wins even over own addresses.
func NewPeerPolicy(allow []netip.Prefix, own []netip.Addr) *PeerPolicy {
	return peerpolicy.New(peerpolicy.Options{Allow: allow, Own: own, OwnReason: "relay address", Who: "relay: peer"})
}

func Unmap(a netip.Addr) netip.Addr { return peerpolicy.Unmap(a) }
