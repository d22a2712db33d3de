package sfu

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/pion/ice/v4"
	"github.com/pion/sdp/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sotto-rtc/sotto/internal/peerpolicy"
)

// The SFU's ICE agent sends checks to the addresses remote candidates
// name, so a client could aim it at the node's own services or cloud
// metadata: signalled candidates pass package peerpolicy before pion sees
// them. Peer-reflexive ones are answered where they came from.

type candidatePolicy struct {
	policy  *peerpolicy.Policy
	refused *prometheus.CounterVec
}

// newCandidatePolicy: private ranges unless RefusePrivateCandidates,
// loopback with IncludeLoopback, never the node's own addresses;
// AllowCandidates wins.
func newCandidatePolicy(cfg Config, own []netip.Addr, reg prometheus.Registerer) (*candidatePolicy, error) {
	allow := append([]netip.Prefix(nil), cfg.AllowCandidates...)
	if cfg.IncludeLoopback {
		allow = append(allow, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
	}
	for _, s := range cfg.PublicIPs {
		if a, err := netip.ParseAddr(s); err == nil {
			own = append(own, a)
		}
	}
	cp := &candidatePolicy{
		policy: peerpolicy.New(peerpolicy.Options{
			Allow:        allow,
			Own:          own,
			OwnReason:    "node address",
			AllowPrivate: !cfg.RefusePrivateCandidates,
			Who:          "sfu: remote candidate",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_ice_candidates_refused_total",
			Help: "Remote ICE candidates the SFU refused to check, by the peer policy's reason (loopback, link-local, node address, ...).",
		}, []string{"reason"}),
	}
	if reg != nil {
		if err := reg.Register(cp.refused); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			cp.refused = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return cp, nil
}

func ownAddrs(mux ice.UDPMux) []netip.Addr {
	var out []netip.Addr
	for _, a := range mux.GetListenAddresses() {
		if ua, ok := a.(*net.UDPAddr); ok {
			if ip, ok := netip.AddrFromSlice(ua.IP); ok && !ip.IsUnspecified() {
				out = append(out, peerpolicy.Unmap(ip))
			}
		}
	}
	return out
}

// refuse reports, and counts, a candidate naming a refused address. c is
// read both as pion reads it and more loosely; either reading refused
// refuses it. Host names are left to pion, which drops them (mDNS is off).
func (cp *candidatePolicy) refuse(c string) (*peerpolicy.DeniedError, bool) {
	return cp.refuseAny(strings.TrimPrefix(c, "candidate:"), strings.TrimPrefix(strings.TrimSpace(c), "a="))
}

func (cp *candidatePolicy) refuseAny(values ...string) (*peerpolicy.DeniedError, bool) {
	for _, v := range values {
		if v == "" {
			continue
		}
		cand, err := ice.UnmarshalCandidate(v)
		if err != nil {
			continue
		}
		ip, err := netip.ParseAddr(cand.Address())
		if err != nil {
			continue
		}
		err = cp.policy.Check(ip)
		if err == nil {
			continue
		}
		var de *peerpolicy.DeniedError
		errors.As(err, &de)
		cp.refused.WithLabelValues(de.Reason).Inc()
		return de, true
	}
	return nil, false
}

var errCandidateSlipped = errors.New("a refused ICE candidate is written in a form this node does not filter")

// filterSDP drops refused a=candidate lines, splitting lines as pion's
// lexer does, then refuses the whole description if pion's parser still
// finds a refused candidate in it.
func (cp *candidatePolicy) filterSDP(desc string) (string, []*peerpolicy.DeniedError, error) {
	if !strings.Contains(desc, "candidate") {
		return desc, nil, nil
	}
	var (
		b       strings.Builder
		refused []*peerpolicy.DeniedError
	)
	b.Grow(len(desc))
	rest := desc
	for rest != "" {
		line := rest
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i+1], rest[i+1:]
		} else {
			rest = ""
		}
		if body, ok := strings.CutPrefix(strings.TrimLeft(line, "\r"), "a=candidate:"); ok {
			asPion := ""
			if trim := 1 + strings.Count(body, "\r"); strings.HasSuffix(body, "\n") && len(body) >= trim {
				asPion = body[:len(body)-trim]
			}
			if de, bad := cp.refuseAny(asPion, strings.TrimRight(body, "\r\n")); bad {
				refused = append(refused, de)
				continue
			}
		}
		b.WriteString(line)
	}
	out := b.String()
	var d sdp.SessionDescription
	if d.UnmarshalString(out) != nil {
		return out, refused, nil // pion refuses it too
	}
	attrs := d.Attributes
	for _, m := range d.MediaDescriptions {
		attrs = append(attrs, m.Attributes...)
	}
	for _, a := range attrs {
		if a.IsICECandidate() {
			if de, bad := cp.refuseAny(a.Value); bad {
				return "", append(refused, de), errCandidateSlipped
			}
		}
	}
	return out, refused, nil
}

func (p *Participant) filterCandidates(desc, target string) (string, error) {
	out, refused, err := p.sfu.cands.filterSDP(desc)
	for _, de := range refused {
		p.log.Debug("sfu: remote candidate refused", "target", target, "addr", de.Addr, "reason", de.Reason)
	}
	if err != nil {
		return "", fmt.Errorf("%w: %s description: %w", ErrNegotiation, target, err)
	}
	return out, nil
}
