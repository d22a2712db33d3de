package sfu

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/sdp/v3"
	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// policySFU is an SFU on every interface that does not offer loopback, so
// its candidate policy refuses loopback candidates other than allow. It
// reaches loopback from its interface address as a production node would.
func policySFU(t *testing.T, reg *prometheus.Registry, allow ...string) *SFU {
	t.Helper()
	cfg := Config{ListenIP: "0.0.0.0", Logger: testLogger(), Registerer: reg}
	for _, a := range allow {
		cfg.AllowCandidates = append(cfg.AllowCandidates, netip.MustParsePrefix(a))
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// stunSink is a UDP socket named in a candidate; it counts the STUN
// binding requests the SFU sends it.
type stunSink struct {
	conn *net.UDPConn
	port int
}

func newSink(t *testing.T, ip string) *stunSink {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &stunSink{conn: c, port: c.LocalAddr().(*net.UDPAddr).Port}
}

func (k *stunSink) candidate(foundation int) string {
	ip := k.conn.LocalAddr().(*net.UDPAddr).IP
	return fmt.Sprintf("candidate:%d 1 udp %d %s %d typ host", foundation, 2130706431-foundation, ip, k.port)
}

// waitRequests blocks until n binding requests arrived.
func (k *stunSink) waitRequests(t *testing.T, n int) {
	t.Helper()
	buf := make([]byte, 1500)
	_ = k.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	for got := 0; got < n; {
		m, _, err := k.conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("%s: %d of %d binding requests before %v", k.conn.LocalAddr(), got, n, err)
		}
		if stun.IsMessage(buf[:m]) {
			got++
		}
	}
}

// queued returns the datagrams already waiting on the socket.
func (k *stunSink) queued() int {
	buf := make([]byte, 1500)
	_ = k.conn.SetReadDeadline(time.Now())
	n := 0
	for {
		if _, _, err := k.conn.ReadFromUDP(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return n
			}
			return n
		}
		n++
	}
}

// TestRemoteCandidatePolicy runs F4 of the live attack: a client names
// loopback addresses and the node's own address as its candidates, in its
// offer and trickled. The SFU sends no check there, counts each refusal,
// and still checks the candidates the operator allowed.
func TestRemoteCandidatePolicy(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := policySFU(t, reg, "127.0.0.3/32", "127.0.0.5/32")
	addrs := ownAddrs(s.udpMux)
	if len(addrs) == 0 {
		t.Fatal("the SFU listens on no interface address besides loopback; this test needs one")
	}
	refusedOffer, own, allowedOffer := newSink(t, "127.0.0.2"), newSink(t, addrs[0].String()), newSink(t, "127.0.0.3")
	refusedTrickle, allowedTrickle := newSink(t, "127.0.0.4"), newSink(t, "127.0.0.5")

	var lines []string
	for i, k := range []*stunSink{refusedOffer, own, allowedOffer} {
		lines = append(lines, "a="+k.candidate(i+1))
	}
	p := joinWithOffer(t, s, lines...)
	mid := "0"
	for i, k := range []*stunSink{refusedTrickle, allowedTrickle} {
		if err := p.AddICECandidate(targetPublisher, webrtc.ICECandidateInit{Candidate: k.candidate(10 + i), SDPMid: &mid}); err != nil {
			t.Fatalf("AddICECandidate: %v", err)
		}
	}

	// Checks go to every accepted pair in turn: once both allowed sinks
	// saw several, a refused one would have seen its share.
	allowedOffer.waitRequests(t, 3)
	allowedTrickle.waitRequests(t, 3)
	for _, k := range []*stunSink{refusedOffer, own, refusedTrickle} {
		if n := k.queued(); n != 0 {
			t.Errorf("%s got %d datagrams from the SFU; its candidate should have been refused", k.conn.LocalAddr(), n)
		}
	}
	if got := counterValue(t, reg, "sotto_ice_candidates_refused_total", map[string]string{"reason": "loopback"}); got != 2 {
		t.Errorf("loopback refusals %v, want 2", got)
	}
	if got := counterValue(t, reg, "sotto_ice_candidates_refused_total", map[string]string{"reason": "node address"}); got != 1 {
		t.Errorf("node address refusals %v, want 1", got)
	}
}

// TestCallWorksUnderCandidatePolicy: with every candidate the clients
// signal refused (they are on loopback, which this SFU does not offer),
// the call still connects on peer-reflexive candidates, the source of the
// checks that arrive, and media flows both ways through the SFU.
func TestCallWorksUnderCandidatePolicy(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := policySFU(t, reg)
	a := join(t, s, ParticipantConfig{SID: "PA_a", CanPublish: true, CanSubscribe: true, AutoSubscribe: true})
	b := join(t, s, ParticipantConfig{SID: "PA_b", CanSubscribe: true, AutoSubscribe: true})
	_, _, infos := a.publishAV(t)
	checkForwarded(t, b, "PA_a", infos)
	if got := counterValue(t, reg, "sotto_ice_candidates_refused_total", map[string]string{"reason": "loopback"}); got == 0 {
		t.Error("no refusal counted: the clients' loopback candidates should have been refused")
	}
}

func TestFilterSDPKeepsOtherLines(t *testing.T) {
	cp, err := newCandidatePolicy(Config{}, []netip.Addr{netip.MustParseAddr("198.18.0.1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := "v=0\r\na=mid:0\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n" +
		"a=candidate:2 1 udp 1 10.0.0.7 9 typ host\r\n" +
		"a=candidate:3 1 udp 1 169.254.169.254 80 typ host\r\n" +
		"a=candidate:4 1 udp 1 198.18.0.1 7781 typ host\r\n" +
		"a=candidate:5 1 udp 1 ::ffff:127.0.0.1 9 typ host\r\n" +
		"a=candidate:6 1 udp 1 abc.local 9 typ host\r\n" +
		"a=end-of-candidates\r\n"
	want := "v=0\r\na=mid:0\r\na=candidate:2 1 udp 1 10.0.0.7 9 typ host\r\n" +
		"a=candidate:6 1 udp 1 abc.local 9 typ host\r\na=end-of-candidates\r\n"
	got, refused, err := cp.filterSDP(in)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("filterSDP:\n%q\nwant\n%q", got, want)
	}
	var reasons []string
	for _, de := range refused {
		reasons = append(reasons, de.Reason)
	}
	if r := strings.Join(reasons, ","); r != "loopback,link-local,node address,loopback" {
		t.Errorf("reasons %s", r)
	}
	cp, _ = newCandidatePolicy(Config{RefusePrivateCandidates: true}, nil, nil)
	if _, bad := cp.refuse("candidate:2 1 udp 1 10.0.0.7 9 typ host"); !bad {
		t.Error("RefusePrivateCandidates let 10.0.0.7 through")
	}
}

// TestCandidatePolicyParsesAsPion: candidates written so that a looser or
// stricter reading than pion's would miss them — a line that starts with
// a carriage return, which pion's SDP lexer skips, and a trickled
// "candidate:candidate:", whose prefix pion strips twice — are refused
// like any other, in an offer to a real SFU and trickled to it.
func TestCandidatePolicyParsesAsPion(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := policySFU(t, reg, "127.0.0.3/32")
	inOffer, allowed, trickled := newSink(t, "127.0.0.2"), newSink(t, "127.0.0.3"), newSink(t, "127.0.0.4")

	p := joinWithOffer(t, s, "\ra="+inOffer.candidate(1), "a="+allowed.candidate(2))
	mid := "0"
	if err := p.AddICECandidate(targetPublisher, webrtc.ICECandidateInit{Candidate: "candidate:" + trickled.candidate(3), SDPMid: &mid}); err != nil {
		t.Fatalf("AddICECandidate: %v", err)
	}
	allowed.waitRequests(t, 3)
	for _, k := range []*stunSink{inOffer, trickled} {
		if n := k.queued(); n != 0 {
			t.Errorf("%s got %d datagrams from the SFU; its candidate should have been refused", k.conn.LocalAddr(), n)
		}
	}
	if got := counterValue(t, reg, "sotto_ice_candidates_refused_total", map[string]string{"reason": "loopback"}); got != 2 {
		t.Errorf("loopback refusals %v, want 2", got)
	}
}

// TestFilterSDPAsPionReadsIt: whatever the line endings, no candidate
// pion reads from a filtered description names a refused address.
func TestFilterSDPAsPionReadsIt(t *testing.T) {
	cp, err := newCandidatePolicy(Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const head = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
	const media = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
	const c = "candidate:1 1 udp 1 127.0.0.1 9 typ host"
	for name, desc := range map[string]string{
		"leading CR":      head + media + "\ra=" + c + "\r\n",
		"leading CRs":     head + media + "\r\r\ra=" + c + "\n",
		"LF only":         head + media + "a=" + c + "\n",
		"session level":   head + "a=" + c + "\r\n" + media,
		"CR inside":       head + media + "a=" + c + " generation 0\rx\n",
		"CR at the start": "\r" + head + media + "\r\ra=" + c + "\r\n",
	} {
		out, _, err := cp.filterSDP(desc)
		if err != nil {
			continue // refused whole: nothing reaches pion
		}
		var d sdp.SessionDescription
		if d.UnmarshalString(out) != nil {
			continue
		}
		attrs := d.Attributes
		for _, m := range d.MediaDescriptions {
			attrs = append(attrs, m.Attributes...)
		}
		for _, a := range attrs {
			if !a.IsICECandidate() {
				continue
			}
			if cand, err := ice.UnmarshalCandidate(a.Value); err == nil {
				t.Errorf("%s: pion reads %s from the filtered description", name, cand)
			}
		}
	}
}

// joinWithOffer joins an attacker to s with a real offer whose own
// candidates are replaced by lines, put after its a=mid. The attacker
// never answers checks, so the SFU keeps checking all it accepted.
func joinWithOffer(t *testing.T, s *SFU, lines ...string) *Participant {
	t.Helper()
	pc, err := newClientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	var sdp strings.Builder
	for line := range strings.SplitSeq(strings.TrimSuffix(offer.SDP, "\r\n"), "\r\n") {
		if strings.HasPrefix(line, "a=candidate:") || line == "a=end-of-candidates" {
			continue
		}
		sdp.WriteString(line + "\r\n")
		if strings.HasPrefix(line, "a=mid:") {
			for _, l := range lines {
				sdp.WriteString(l + "\r\n")
			}
		}
	}
	p, err := s.Join(ParticipantConfig{Room: "room", SID: "PA_attacker", Identity: "attacker", CanPublish: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	p.Start()
	if _, err := p.HandleOffer(sdp.String()); err != nil {
		t.Fatalf("HandleOffer: %v", err)
	}
	return p
}
