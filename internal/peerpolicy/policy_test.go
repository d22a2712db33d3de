package peerpolicy

import (
	"errors"
	"net/netip"
	"testing"
)

func TestPolicyOptions(t *testing.T) {
	own := netip.MustParseAddr("198.18.0.1")
	relay := New(Options{Own: []netip.Addr{own}, OwnReason: "relay address", Who: "relay: peer"})
	sfu := New(Options{Own: []netip.Addr{own}, AllowPrivate: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	tests := []struct {
		addr               string
		relayWant, sfuWant string // "" allowed
	}{
		{"8.8.8.8", "", ""},
		{"10.1.2.3", "private", ""},
		{"::ffff:192.168.1.1", "private", ""},
		{"fd00::1", "private", ""},
		{"127.0.0.2", "loopback", ""},
		{"::1", "loopback", "loopback"},
		{"169.254.169.254", "link-local", "link-local"},
		{"198.18.0.1", "relay address", "own address"},
		{"::ffff:198.18.0.1", "relay address", "own address"},
		{"224.0.0.1", "multicast", "multicast"},
		{"0.0.0.0", "unspecified", "unspecified"},
	}
	for _, tt := range tests {
		for _, c := range []struct {
			p    *Policy
			want string
		}{{relay, tt.relayWant}, {sfu, tt.sfuWant}} {
			err := c.p.Check(netip.MustParseAddr(tt.addr))
			var de *DeniedError
			switch {
			case c.want == "" && err != nil:
				t.Errorf("%s: refused (%v), want allowed", tt.addr, err)
			case c.want != "" && (!errors.As(err, &de) || de.Reason != c.want):
				t.Errorf("%s: %v, want refusal %q", tt.addr, err, c.want)
			}
		}
	}
	if got := relay.Check(netip.MustParseAddr("10.0.0.1")).Error(); got != "relay: peer 10.0.0.1 refused (private)" {
		t.Errorf("message %q", got)
	}
}
