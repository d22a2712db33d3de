package sfu

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/sotto-rtc/sotto/internal/eventqueue"
	"github.com/sotto-rtc/sotto/internal/hold"
)

const (
	// maxPendingCandidates bounds the remote candidates held per
	// connection until its remote description is set.
	maxPendingCandidates = 64
	// closeDrainTimeout bounds how long Close waits for the last events.
	closeDrainTimeout = 5 * time.Second
)

// Participant is one participant's media session: a publisher connection
// the client offers on and a subscriber connection the SFU offers on.
type Participant struct {
	sfu    *SFU
	cfg    ParticipantConfig
	log    *slog.Logger
	pub    *webrtc.PeerConnection
	sub    *webrtc.PeerConnection
	events *eventqueue.Queue

	// Local candidates wait for their description to be handed out;
	// remote ones (early) for the remote description to be set.
	pubLocal, subLocal *hold.Gate[*webrtc.ICECandidateInit]
	pubEarly, subEarly *hold.Gate[webrtc.ICECandidateInit]

	closed         atomic.Bool   // set under SFU.mu, so registry decisions agree on it
	closing        chan struct{} // closed when Close starts: ends waits
	closeOnce      sync.Once
	pubStarted     chan struct{} // see awaitPublisherTransport
	pubStartedOnce sync.Once
	failedPub      atomic.Bool
	failedSub      atomic.Bool
	// The local ICE username fragments, for the candidates the SFU sends.
	pubUfrag, subUfrag atomic.Pointer[string]

	// Stream guards of each connection (ssrcguard.go). offered is the
	// sending sections of the client's last offer; refused is set once the
	// participant broke a bound and is being ended.
	pubGuard *ssrcGuard
	subGuard *ssrcGuard
	offered  atomic.Int32
	refused  atomic.Bool

	// opMu serialises everything done to the two peer connections, so
	// negotiations never interleave. Lock order: opMu, then SFU.mu; never
	// another participant's opMu while holding this one.
	opMu         sync.Mutex
	started      bool
	pendingOffer bool // the subscriber connection needs an offer once it can have one
	freeSections map[*webrtc.RTPTransceiver]sectionState

	// Guarded by SFU.mu.
	tracks    map[string]*publishedTrack // own tracks by SID
	kindLimit [3]*sharedLimiter          // all own tracks of a kind (ratelimit.go)
	subs      map[string]*downTrack      // subscriptions by track SID
}

// sectionState is how far a freed subscriber m-section has gone towards
// reuse (ReuseSections): only once the client has answered an offer
// showing it inactive, so a browser ends the old track there first.
type sectionState int

const (
	sectionFreed    sectionState = iota // no offer has shown it inactive yet
	sectionOffered                      // an outstanding offer shows it inactive
	sectionReusable                     // the client answered that offer
)

// newParticipant builds a participant and its two peer connections.
func (s *SFU) newParticipant(cfg ParticipantConfig) (*Participant, error) {
	log := s.log.With("room", cfg.Room, "participant", cfg.SID, "identity", cfg.Identity)
	p := &Participant{
		sfu: s,
		cfg: cfg,
		log: log,
		events: eventqueue.New(func(r any, stack []byte) {
			// A panic in signaling's callback must not end every call on the node.
			log.Error("sfu: event callback panicked", "panic", r, "stack", string(stack))
		}),
		closing:    make(chan struct{}),
		pubStarted: make(chan struct{}),
		tracks:     make(map[string]*publishedTrack),
		subs:       make(map[string]*downTrack),
		kindLimit: [3]*sharedLimiter{
			webrtc.RTPCodecTypeAudio: newSharedLimiter(s.cfg, webrtc.RTPCodecTypeAudio),
			webrtc.RTPCodecTypeVideo: newSharedLimiter(s.cfg, webrtc.RTPCodecTypeVideo),
		},
		freeSections: make(map[*webrtc.RTPTransceiver]sectionState),
	}
	p.pubLocal = hold.NewGate(func(c *webrtc.ICECandidateInit) { p.emitCandidate(targetPublisher, c) })
	p.subLocal = hold.NewGate(func(c *webrtc.ICECandidateInit) { p.emitCandidate(targetSubscriber, c) })
	p.pubEarly = hold.NewGate(func(c webrtc.ICECandidateInit) { p.addEarlyCandidate(p.pub, targetPublisher, c) })
	p.subEarly = hold.NewGate(func(c webrtc.ICECandidateInit) { p.addEarlyCandidate(p.sub, targetSubscriber, c) })
	p.pubGuard = p.newSSRCGuard(targetPublisher, func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return max(len(p.tracks), int(p.offered.Load()))
	})
	p.subGuard = p.newSSRCGuard(targetSubscriber, func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(p.subs)
	})

	pcCfg := webrtc.Configuration{
		ICEServers:    cfg.ICEServers,
		BundlePolicy:  webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
		SDPSemantics:  webrtc.SDPSemanticsUnifiedPlan,
	}
	var err error
	if p.pub, err = s.newPeerConnection(s.pubStack, p.pubGuard, pcCfg); err != nil {
		return nil, fmt.Errorf("sfu: publisher connection: %w", err)
	}
	if p.sub, err = s.newPeerConnection(s.subStack, p.subGuard, pcCfg); err != nil {
		_ = p.pub.Close()
		return nil, fmt.Errorf("sfu: subscriber connection: %w", err)
	}
	p.wire(p.pub, targetPublisher, p.pubLocal, &p.failedPub, &p.pubUfrag)
	p.wire(p.sub, targetSubscriber, p.subLocal, &p.failedSub, &p.subUfrag)
	p.pub.OnTrack(p.onTrack)
	p.pub.OnICEConnectionStateChange(func(st webrtc.ICEConnectionState) {
		if st != webrtc.ICEConnectionStateNew {
			p.pubStartedOnce.Do(func() { close(p.pubStarted) })
		}
	})
	return p, nil
}

// newSSRCGuard builds the stream guard of one of the participant's
// connections; tracks counts the tracks that connection carries.
func (p *Participant) newSSRCGuard(target string, tracks func() int) *ssrcGuard {
	return newSSRCGuard(tracks, func(kind string, live, limit int) {
		p.refuse(p.sfu.metrics.tooManySSRCs, ruleTooManySSRCs,
			"target", target, "kind", kind, "streams", live, "limit", limit)
	}, p.sfu.metrics.readDropped)
}

// wire connects a peer connection's callbacks to the participant's events.
func (p *Participant) wire(pc *webrtc.PeerConnection, target string, local *hold.Gate[*webrtc.ICECandidateInit], failed *atomic.Bool, ufrag *atomic.Pointer[string]) {
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		var init *webrtc.ICECandidateInit
		if c != nil {
			j := c.ToJSON()
			// pion leaves it out; clients match candidates to an ICE
			// generation by it.
			if u := ufrag.Load(); u != nil {
				j.UsernameFragment = u
			}
			init = &j
		}
		local.Pass(init)
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st != webrtc.PeerConnectionStateFailed || p.closed.Load() || !failed.CompareAndSwap(false, true) {
			return
		}
		p.log.Info("sfu: connection failed", "target", target)
		if f := p.cfg.Events.ConnectionFailed; f != nil {
			p.events.Push(func() { f(target) }, nil)
		}
	})
}

func (p *Participant) emitCandidate(target string, c *webrtc.ICECandidateInit) {
	if f := p.cfg.Events.ICECandidate; f != nil {
		p.events.Push(func() { f(target, c) }, nil)
	}
}

// keepUfrag stores the ICE username fragment of a local description the
// SFU is about to set. It is read from the SDP, not from pion, whose
// getters race with its own goroutines.
func keepUfrag(dst *atomic.Pointer[string], sdp string) {
	if u := sdpUfrag(sdp); u != "" {
		dst.Store(&u)
	}
}

func sdpUfrag(sdp string) string {
	const attr = "a=ice-ufrag:"
	i := strings.Index(sdp, attr)
	if i < 0 {
		return ""
	}
	v := sdp[i+len(attr):]
	if j := strings.IndexAny(v, "\r\n"); j >= 0 {
		v = v[:j]
	}
	return strings.TrimSpace(v)
}
