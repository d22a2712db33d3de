package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	// maxPendingCandidates bounds the remote candidates kept per
	// connection while its remote description is not set yet.
	maxPendingCandidates = 64
	// closeDrainTimeout bounds how long Close waits for the participant's
	// last events (TrackUnpublished) to be delivered.
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
	events *eventQueue

	pubGate candidateGate
	subGate candidateGate

	closed    atomic.Bool   // set under SFU.mu, so registry decisions agree on it
	closing   chan struct{} // closed when Close starts: ends waits
	closeOnce sync.Once
	// pubStarted is closed once the publisher connection's ICE agent has
	// started, see awaitPublisherTransport.
	pubStarted     chan struct{}
	pubStartedOnce sync.Once
	failedPub      atomic.Bool
	failedSub      atomic.Bool
	// pubUfrag and subUfrag are the local ICE username fragments, for
	// the candidates the SFU sends.
	pubUfrag, subUfrag atomic.Pointer[string]

	// pubGuard and subGuard count the SRTP and SRTCP streams pion opens on
	// each connection (ssrcguard.go); offered is the number of sending
	// media sections in the client's last offer, the tracks the publisher
	// connection may carry before they are published. refused is set once
	// the participant broke a bound and its session is being ended.
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
	pendingPub   []webrtc.ICECandidateInit
	pendingSub   []webrtc.ICECandidateInit
	// freeSections are the subscriber transceivers of ended tracks, with
	// how far the client has seen them go inactive (ReuseSections).
	freeSections map[*webrtc.RTPTransceiver]sectionState

	// Guarded by SFU.mu.
	tracks map[string]*publishedTrack // own tracks by SID

	// kindLimit bounds all of this participant's tracks of a kind together
	// (ratelimit.go), by webrtc.RTPCodecType.
	kindLimit [3]*sharedLimiter
	subs      map[string]*downTrack // subscriptions by track SID
}

// sectionState is how far a freed subscriber m-section has gone towards
// reuse: a section is reused only once the client has answered an offer
// showing it inactive, so that a browser ends the old track there (the
// receiver's track is muted) and fires track again for the new one.
type sectionState int

const (
	sectionFreed    sectionState = iota // no offer has shown it inactive yet
	sectionOffered                      // an outstanding offer shows it inactive
	sectionReusable                     // the client answered that offer
)

// Join adds a participant to its room, creating the room on first join,
// and creates its two peer connections. It subscribes the participant to
// the room's tracks when AutoSubscribe allows, but no event fires and no
// offer is made before Start.
func (s *SFU) Join(cfg ParticipantConfig) (*Participant, error) {
	if cfg.Room == "" || cfg.SID == "" {
		return nil, errors.New("sfu: join needs a room and a participant SID")
	}
	log := s.log.With("room", cfg.Room, "participant", cfg.SID, "identity", cfg.Identity)
	p := &Participant{
		sfu:        s,
		cfg:        cfg,
		log:        log,
		events:     newEventQueue(log),
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
	p.pubGate.emit = func(c *webrtc.ICECandidateInit) { p.emitCandidate(targetPublisher, c) }
	p.subGate.emit = func(c *webrtc.ICECandidateInit) { p.emitCandidate(targetSubscriber, c) }

	pcCfg := webrtc.Configuration{
		ICEServers:    cfg.ICEServers,
		BundlePolicy:  webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
		SDPSemantics:  webrtc.SDPSemanticsUnifiedPlan,
	}
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
	var err error
	if p.pub, err = s.newPeerConnection(s.pubStack, p.pubGuard, pcCfg); err != nil {
		return nil, fmt.Errorf("sfu: publisher connection: %w", err)
	}
	if p.sub, err = s.newPeerConnection(s.subStack, p.subGuard, pcCfg); err != nil {
		_ = p.pub.Close()
		return nil, fmt.Errorf("sfu: subscriber connection: %w", err)
	}
	p.wire(p.pub, targetPublisher, &p.pubGate, &p.failedPub, &p.pubUfrag)
	p.wire(p.sub, targetSubscriber, &p.subGate, &p.failedSub, &p.subUfrag)
	p.pub.OnTrack(p.onTrack)
	p.pub.OnICEConnectionStateChange(func(st webrtc.ICEConnectionState) {
		if st != webrtc.ICEConnectionStateNew {
			p.pubStartedOnce.Do(func() { close(p.pubStarted) })
		}
	})

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		p.closePeerConnections()
		return nil, ErrClosed
	}
	r := s.rooms[cfg.Room]
	if r == nil {
		r = &room{
			participants: make(map[string]*Participant),
			tracks:       make(map[string]*publishedTrack),
		}
		s.rooms[cfg.Room] = r
	}
	if _, dup := r.participants[cfg.SID]; dup {
		s.mu.Unlock()
		p.closePeerConnections()
		return nil, fmt.Errorf("sfu: participant %q is already in room %q", cfg.SID, cfg.Room)
	}
	r.participants[cfg.SID] = p
	var existing []*publishedTrack
	if cfg.AutoSubscribe && cfg.CanSubscribe {
		for _, t := range r.tracks {
			if t.announced {
				existing = append(existing, t)
			}
		}
	}
	s.mu.Unlock()

	if len(existing) > 0 {
		p.opMu.Lock()
		for _, t := range existing {
			if err := p.subscribeLocked(t); err != nil && !errors.Is(err, ErrUnknownTrack) {
				p.log.Warn("sfu: auto-subscribe failed", "track", t.sid, "err", err)
			}
		}
		p.opMu.Unlock()
	}
	log.Debug("sfu: joined")
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

// refuse ends the session of a participant that broke one of the SFU's
// bounds: counted under rule, logged with what it did, and closed on a
// goroutine of its own, so that it may be called from anywhere. Only its
// own connections go; the room carries on without it.
func (p *Participant) refuse(counter prometheus.Counter, rule string, attrs ...any) {
	if p.closed.Load() || !p.refused.CompareAndSwap(false, true) {
		return
	}
	counter.Inc()
	p.log.Warn("sfu: participant refused, ending its session", append([]any{"rule", rule}, attrs...)...)
	go func() {
		p.Close()
		if f := p.cfg.Events.Refused; f != nil {
			f(rule)
		}
	}()
}

// wire connects a peer connection's callbacks to the participant's events.
func (p *Participant) wire(pc *webrtc.PeerConnection, target string, gate *candidateGate, failed *atomic.Bool, ufrag *atomic.Pointer[string]) {
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
		gate.offer(init)
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st != webrtc.PeerConnectionStateFailed || p.closed.Load() || !failed.CompareAndSwap(false, true) {
			return
		}
		p.log.Info("sfu: connection failed", "target", target)
		if f := p.cfg.Events.ConnectionFailed; f != nil {
			p.events.push(func() { f(target) }, nil)
		}
	})
}

// keepUfrag stores the ICE username fragment of a local description the
// SFU is about to set, before gathering starts. It is read from the SDP
// string the SFU holds: pion's GetLocalParameters and LocalDescription
// race with its own goroutines. Without ICE restarts it never changes.
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

func (p *Participant) emitCandidate(target string, c *webrtc.ICECandidateInit) {
	if f := p.cfg.Events.ICECandidate; f != nil {
		p.events.push(func() { f(target, c) }, nil)
	}
}

// Start lets events fire from now on. If the participant already has
// subscriptions, the first subscriber offer is made now.
func (p *Participant) Start() {
	p.events.start()
	p.opMu.Lock()
	defer p.opMu.Unlock()
	if p.started || p.closed.Load() {
		return
	}
	p.started = true
	if p.pendingOffer {
		p.negotiateLocked()
	}
}

// HandleOffer applies the client's offer on the publisher connection and
// returns the SFU's answer. ICE is trickled: the answer goes back before
// gathering ends, and candidates follow through Events.ICECandidate.
func (p *Participant) HandleOffer(offer string) (string, error) {
	mids, sending, err := sendingMids(offer)
	if err != nil {
		return "", fmt.Errorf("%w: offer does not parse: %w", ErrNegotiation, err)
	}
	if sending > 0 && !p.cfg.CanPublish {
		return "", ErrPermission
	}
	if p.cfg.MaxTracks > 0 && sending > p.cfg.MaxTracks {
		return "", fmt.Errorf("%w: offer sends %d tracks, at most %d allowed", ErrTooManyTracks, sending, p.cfg.MaxTracks)
	}

	p.opMu.Lock()
	if p.closed.Load() {
		p.opMu.Unlock()
		return "", ErrClosed
	}
	if err := p.awaitPublisherTransport(); err != nil {
		p.opMu.Unlock()
		return "", err
	}
	// Before pion opens the sections' streams: they count against it.
	p.offered.Store(int32(sending)) //nolint:gosec // sending is at most the offer's media sections
	answer, err := p.applyOfferLocked(offer)
	var gone []*publishedTrack
	if err == nil {
		// A track whose section no longer sends was removed by the client.
		p.sfu.mu.Lock()
		for _, t := range p.tracks {
			if t.mid != "" && !mids[t.mid] {
				gone = append(gone, t)
			}
		}
		p.sfu.mu.Unlock()
	}
	p.opMu.Unlock()
	if err != nil {
		return "", err
	}

	for _, t := range gone {
		p.sfu.endTrack(t, "client stopped sending")
	}
	p.pubGate.release()
	return answer, nil
}

// awaitPublisherTransport holds a renegotiation offer back until the
// publisher connection's ICE agent has started. pion starts it
// asynchronously after the first offer; an offer applied before then finds
// no remote credentials on the agent, takes that for an ICE restart, and
// the agent ends up with credentials the client was never given, so the
// connection never comes up. Clients that publish audio and then video at
// once renegotiate within that window. Called with opMu held.
func (p *Participant) awaitPublisherTransport() error {
	if p.pub.RemoteDescription() == nil {
		return nil // first offer: nothing started yet, nothing to race
	}
	timer := time.NewTimer(p.sfu.cfg.ICEFailedTimeout)
	defer timer.Stop()
	select {
	case <-p.pubStarted:
		return nil
	case <-p.closing:
		return ErrClosed
	case <-timer.C:
		return fmt.Errorf("%w: publisher transport did not start", ErrNegotiation)
	}
}

func (p *Participant) applyOfferLocked(offer string) (string, error) {
	offer, err := p.filterCandidates(offer, targetPublisher)
	if err != nil {
		return "", err
	}
	if err := p.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("%w: publisher offer: %w", ErrNegotiation, err)
	}
	answer, err := p.pub.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: publisher answer: %w", ErrNegotiation, err)
	}
	keepUfrag(&p.pubUfrag, answer.SDP)
	if err := p.pub.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("%w: publisher answer: %w", ErrNegotiation, err)
	}
	p.flushCandidatesLocked(p.pub, &p.pendingPub, targetPublisher)
	return answer.SDP, nil
}

// HandleAnswer applies the client's answer to the SFU's last offer on the
// subscriber connection, and makes the next offer if changes queued up
// while this one was out.
func (p *Participant) HandleAnswer(answer string) error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	if p.closed.Load() {
		return ErrClosed
	}
	if p.sub.SignalingState() != webrtc.SignalingStateHaveLocalOffer {
		return fmt.Errorf("%w: no subscriber offer is outstanding", ErrNegotiation)
	}
	answer, err := p.filterCandidates(answer, targetSubscriber)
	if err != nil {
		return err
	}
	if err := p.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("%w: subscriber answer: %w", ErrNegotiation, err)
	}
	p.flushCandidatesLocked(p.sub, &p.pendingSub, targetSubscriber)
	for tr, st := range p.freeSections {
		if st == sectionOffered {
			p.freeSections[tr] = sectionReusable
		}
	}
	if p.pendingOffer {
		p.negotiateLocked()
	}
	return nil
}

// AddICECandidate adds a remote candidate to the publisher or subscriber
// connection. Candidates that arrive before the description they belong
// to are kept (a bounded number) and applied once it is set.
func (p *Participant) AddICECandidate(target string, c webrtc.ICECandidateInit) error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	var (
		pc      *webrtc.PeerConnection
		pending *[]webrtc.ICECandidateInit
	)
	switch target {
	case targetPublisher:
		pc, pending = p.pub, &p.pendingPub
	case targetSubscriber:
		pc, pending = p.sub, &p.pendingSub
	default:
		return fmt.Errorf("%w: unknown candidate target %q", ErrNegotiation, target)
	}
	if p.closed.Load() {
		return ErrClosed
	}
	if de, bad := p.sfu.cands.refuse(c.Candidate); bad {
		p.log.Debug("sfu: remote candidate refused", "target", target, "addr", de.Addr, "reason", de.Reason)
		return nil
	}
	if pc.RemoteDescription() == nil {
		if len(*pending) >= maxPendingCandidates {
			return fmt.Errorf("%w: more than %d early %s candidates", ErrNegotiation, maxPendingCandidates, target)
		}
		*pending = append(*pending, c)
		return nil
	}
	if err := pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("%w: %s candidate: %w", ErrNegotiation, target, err)
	}
	return nil
}

func (p *Participant) flushCandidatesLocked(pc *webrtc.PeerConnection, pending *[]webrtc.ICECandidateInit, target string) {
	for _, c := range *pending {
		if err := pc.AddICECandidate(c); err != nil {
			p.log.Debug("sfu: early candidate refused", "target", target, "err", err)
		}
	}
	*pending = nil
}

// negotiateLocked offers the subscriber connection's current tracks, or
// notes that an offer is due when one cannot be made now (before Start,
// or while the previous offer awaits its answer). Called with opMu held.
func (p *Participant) negotiateLocked() {
	if p.closed.Load() {
		return
	}
	if !p.started || p.sub.SignalingState() != webrtc.SignalingStateStable {
		p.pendingOffer = true
		return
	}
	p.pendingOffer = false
	offer, err := p.sub.CreateOffer(nil)
	if err != nil {
		p.log.Warn("sfu: subscriber offer failed", "err", err)
		return
	}
	keepUfrag(&p.subUfrag, offer.SDP)
	if err := p.sub.SetLocalDescription(offer); err != nil {
		p.log.Warn("sfu: subscriber offer failed", "err", err)
		return
	}
	for tr, st := range p.freeSections {
		if st == sectionFreed {
			p.freeSections[tr] = sectionOffered
		}
	}
	if f := p.cfg.Events.SubscriberOffer; f != nil {
		sdp := offer.SDP
		p.events.push(func() { f(sdp) }, nil)
	}
	// Candidates go out only after the offer they belong to.
	p.subGate.release()
}

// Subscribe forwards a track of another participant in the room to this
// one. Subscribing again to the same track does nothing.
func (p *Participant) Subscribe(trackSID string) error {
	if !p.cfg.CanSubscribe {
		return ErrPermission
	}
	p.opMu.Lock()
	defer p.opMu.Unlock()
	p.sfu.mu.Lock()
	t := p.sfu.roomTrackLocked(p.cfg.Room, trackSID)
	p.sfu.mu.Unlock()
	if t == nil {
		return fmt.Errorf("%w: %q", ErrUnknownTrack, trackSID)
	}
	return p.subscribeLocked(t)
}

// subscribeLocked adds t to the subscriber connection and renegotiates.
// Called with opMu held.
func (p *Participant) subscribeLocked(t *publishedTrack) error {
	s := p.sfu
	s.mu.Lock()
	if p.closed.Load() {
		s.mu.Unlock()
		return ErrClosed
	}
	if t.ended.Load() || !t.announced || t.owner == p || t.owner.cfg.Room != p.cfg.Room {
		s.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrUnknownTrack, t.sid)
	}
	if _, ok := p.subs[t.sid]; ok {
		s.mu.Unlock()
		return nil
	}
	dt := newDownTrack(t, p)
	p.subs[t.sid] = dt
	t.subscribers[p.cfg.SID] = dt
	t.rebuildFanoutLocked()
	s.mu.Unlock()
	s.metrics.subscriptions.Inc()

	tr, err := p.addSubscriberTrackLocked(dt)
	if err != nil {
		s.mu.Lock()
		if p.subs[t.sid] == dt {
			delete(p.subs, t.sid)
			delete(t.subscribers, p.cfg.SID)
			t.rebuildFanoutLocked()
			s.metrics.subscriptions.Dec()
		}
		s.mu.Unlock()
		return fmt.Errorf("%w: add track %s: %w", ErrNegotiation, t.sid, err)
	}
	dt.transceiver = tr
	dt.sender = tr.Sender()
	go dt.readRTCP()
	p.log.Debug("sfu: subscribed", "track", t.sid)
	p.negotiateLocked()
	return nil
}

// addSubscriberTrackLocked gives dt an m-section on the subscriber
// connection: a reusable one of its kind if there is one, else a new one.
// Called with opMu held.
func (p *Participant) addSubscriberTrackLocked(dt *downTrack) (*webrtc.RTPTransceiver, error) {
	if p.cfg.ReuseSections && p.canReuseLocked(dt.Kind()) {
		// pion's AddTrack takes the first transceiver of the kind that has
		// no sender and is not currently sending: one of the reusable ones,
		// as canReuseLocked made sure no other freed one is a candidate.
		sender, err := p.sub.AddTrack(dt)
		if err != nil {
			return nil, err
		}
		for _, tr := range p.sub.GetTransceivers() {
			if tr.Sender() == sender {
				delete(p.freeSections, tr)
				return tr, nil
			}
		}
		return nil, errors.New("sfu: added track has no transceiver")
	}
	return p.sub.AddTransceiverFromTrack(dt, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
}

// canReuseLocked reports whether a freed section of kind is reusable and
// no freed section of kind is still on its way there (pion might pick it).
func (p *Participant) canReuseLocked(kind webrtc.RTPCodecType) bool {
	reusable := false
	for tr, st := range p.freeSections {
		if tr.Kind() != kind {
			continue
		}
		if st != sectionReusable {
			return false
		}
		reusable = true
	}
	return reusable
}

// Unsubscribe stops forwarding a track to this participant. Unsubscribing
// from a track of the room one is not subscribed to does nothing.
func (p *Participant) Unsubscribe(trackSID string) error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	s := p.sfu
	s.mu.Lock()
	dt := p.subs[trackSID]
	if dt == nil {
		known := s.roomTrackLocked(p.cfg.Room, trackSID) != nil
		s.mu.Unlock()
		if !known {
			return fmt.Errorf("%w: %q", ErrUnknownTrack, trackSID)
		}
		return nil
	}
	delete(p.subs, trackSID)
	delete(dt.track.subscribers, p.cfg.SID)
	dt.track.rebuildFanoutLocked()
	s.mu.Unlock()
	s.metrics.subscriptions.Dec()
	p.detachLocked(dt)
	return nil
}

// detach removes a downtrack whose track ended from the subscriber
// connection. The registry entries are already gone.
func (p *Participant) detach(dt *downTrack) {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	p.detachLocked(dt)
}

func (p *Participant) detachLocked(dt *downTrack) {
	dt.stop()
	if p.closed.Load() || dt.sender == nil {
		return
	}
	// The section goes inactive in the next offer, with its mid.
	if err := p.sub.RemoveTrack(dt.sender); err != nil {
		p.log.Debug("sfu: remove track", "track", dt.track.sid, "err", err)
	} else if p.cfg.ReuseSections {
		// Not stopped: Stop marks it inactive at once, and AddTrack would
		// reuse it before the client has seen it end.
		p.freeSections[dt.transceiver] = sectionFreed
	}
	if !p.cfg.ReuseSections {
		if err := dt.transceiver.Stop(); err != nil {
			p.log.Debug("sfu: stop transceiver", "track", dt.track.sid, "err", err)
		}
	}
	p.negotiateLocked()
}

// Unpublish ends one of this participant's tracks.
func (p *Participant) Unpublish(trackSID string) error {
	t, err := p.ownTrack(trackSID)
	if err != nil {
		return err
	}
	p.sfu.endTrack(t, "unpublished")
	return nil
}

// SetMuted records the mute state of one of this participant's tracks and
// returns the track as it is now. Forwarding goes on: a muted client sends
// little or nothing, and a receiver that sees packets again must not have
// to renegotiate.
func (p *Participant) SetMuted(trackSID string, muted bool) (TrackInfo, error) {
	s := p.sfu
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := p.ownTrackLocked(trackSID)
	if err != nil {
		return TrackInfo{}, err
	}
	t.muted = muted
	return t.infoLocked(), nil
}

func (p *Participant) ownTrack(trackSID string) (*publishedTrack, error) {
	p.sfu.mu.Lock()
	defer p.sfu.mu.Unlock()
	return p.ownTrackLocked(trackSID)
}

func (p *Participant) ownTrackLocked(trackSID string) (*publishedTrack, error) {
	t := p.sfu.roomTrackLocked(p.cfg.Room, trackSID)
	if t == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTrack, trackSID)
	}
	if t.owner != p {
		return nil, fmt.Errorf("%w: %q", ErrNotOwner, trackSID)
	}
	return t, nil
}

// Tracks returns this participant's live tracks.
func (p *Participant) Tracks() []TrackInfo {
	p.sfu.mu.Lock()
	defer p.sfu.mu.Unlock()
	out := make([]TrackInfo, 0, len(p.tracks))
	for _, t := range p.tracks {
		if t.announced {
			out = append(out, t.infoLocked())
		}
	}
	sortTracks(out)
	return out
}

// Close ends the participant's session: its tracks are unpublished
// (TrackUnpublished fires for each), its subscriptions dropped, both
// connections closed, and it leaves its room. It is safe to call more
// than once and from an event callback. It waits (a bounded time) for the
// last events to be delivered, except while one of this participant's
// callbacks is running, called from it or not: then the remaining events
// are delivered after Close returns, so a callback may still be running
// or still to come when it does.
func (p *Participant) Close() {
	p.closeOnce.Do(p.close)
}

func (p *Participant) close() {
	close(p.closing)
	s := p.sfu
	s.mu.Lock()
	p.closed.Store(true)
	own := make([]*publishedTrack, 0, len(p.tracks))
	for _, t := range p.tracks {
		own = append(own, t)
	}
	subs := make([]*downTrack, 0, len(p.subs))
	for sid, dt := range p.subs {
		subs = append(subs, dt)
		delete(dt.track.subscribers, p.cfg.SID)
		dt.track.rebuildFanoutLocked()
		delete(p.subs, sid)
	}
	s.mu.Unlock()
	s.metrics.subscriptions.Sub(float64(len(subs)))
	for _, dt := range subs {
		dt.stop()
	}
	for _, t := range own {
		s.endTrack(t, "participant left")
	}

	p.opMu.Lock()
	p.closePeerConnections()
	p.pendingPub, p.pendingSub = nil, nil
	p.opMu.Unlock()

	s.mu.Lock()
	if r := s.rooms[p.cfg.Room]; r != nil && r.participants[p.cfg.SID] == p {
		delete(r.participants, p.cfg.SID)
		if len(r.participants) == 0 {
			delete(s.rooms, p.cfg.Room)
		}
	}
	s.mu.Unlock()

	p.events.close()
	// From inside one of this participant's callbacks, the rest of the
	// queue can only be delivered after we return: do not wait for it.
	if !p.events.inCallback.Load() {
		select {
		case <-p.events.done:
		case <-time.After(closeDrainTimeout):
			p.log.Warn("sfu: events still undelivered at close")
		}
	}
	p.log.Debug("sfu: closed")
}

func (p *Participant) closePeerConnections() {
	if err := p.pub.Close(); err != nil {
		p.log.Debug("sfu: close publisher connection", "err", err)
	}
	if err := p.sub.Close(); err != nil {
		p.log.Debug("sfu: close subscriber connection", "err", err)
	}
}

// onTrack runs on its own goroutine for each track the client publishes;
// after announcing the track it becomes the track's forwarding loop.
func (p *Participant) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	s := p.sfu
	mid := ""
	for _, tr := range p.pub.GetTransceivers() {
		if tr.Receiver() == receiver {
			mid = tr.Mid()
			break
		}
	}
	if mid == "" {
		// pion answers RTP on an SSRC the offer did not declare, when the
		// offer has a single media section and no a=ssrc lines, by adding
		// a transceiver of its own (webrtc v4.2.20 handleUndeclaredSSRC).
		// Left alone, a client could mint a track per SSRC, past MaxTracks,
		// each one offered to every subscriber in the room. A track must
		// belong to a media section the client offered; browsers declare
		// their SSRCs or send the mid extension, so they never land here.
		s.metrics.tracksRefused.Inc()
		p.log.Debug("sfu: refused a track outside any offered media section", "ssrc", remote.SSRC())
		if err := receiver.Stop(); err != nil {
			p.log.Debug("sfu: stop receiver", "err", err)
		}
		return
	}
	t := newPublishedTrack(s.metrics, p.log, remote.Kind(), remote.Codec(), s.cfg.PacketCacheSize, s.cfg.KeyframeRequestInterval)
	t.tap = s.cfg.Tap
	t.batch = s.batch
	t.limit = newTrackLimiter(s.cfg, t.kind)
	if k := int(t.kind); k < len(p.kindLimit) {
		t.shared = p.kindLimit[k]
	}
	t.owner = p
	t.clientTrackID = remote.ID()
	t.ssrc = remote.SSRC()
	t.remote = remote
	t.receiver = receiver
	t.publisher = p.pub
	t.mid = mid
	params := receiver.GetParameters()
	t.srcCodecs = params.Codecs
	for _, e := range params.HeaderExtensions {
		if e.ID > 0 && e.ID <= 255 {
			t.srcExtIDs[e.URI] = uint8(e.ID)
		}
	}
	go drainRTCP(receiver)

	delivered, ok := s.registerTrack(t)
	if !ok {
		return
	}
	// Others are offered the track only after its owner has been told of
	// it (Events.TrackPublished), so signaling can announce it first.
	<-delivered
	for _, other := range s.announceTrack(t) {
		other.opMu.Lock()
		err := other.subscribeLocked(t)
		other.opMu.Unlock()
		if err != nil && !errors.Is(err, ErrUnknownTrack) && !errors.Is(err, ErrClosed) {
			other.log.Warn("sfu: auto-subscribe failed", "track", t.sid, "err", err)
		}
	}
	t.readLoop()
	s.endTrack(t, "stream ended")
}

// registerTrack adds t to its owner and room and queues TrackPublished.
// The returned channel closes once the owner's callback has run (or will
// never run). ok is false if the owner is already leaving.
func (s *SFU) registerTrack(t *publishedTrack) (delivered chan struct{}, ok bool) {
	p := t.owner
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[p.cfg.Room]
	if p.closed.Load() || r == nil {
		return nil, false
	}
	r.tracks[t.sid] = t
	p.tracks[t.sid] = t
	s.metrics.tracks.Inc()
	t.reported = true
	info := t.infoLocked()
	delivered = make(chan struct{})
	f := p.cfg.Events.TrackPublished
	// Queued under SFU.mu so that a TrackUnpublished can never be queued
	// ahead of it. The track becomes visible to the room as the owner is
	// told, not later: signaling announces it from this callback, and a
	// subscribe request prompted by that announcement must find it.
	p.events.push(func() {
		s.mu.Lock()
		if !t.ended.Load() {
			t.announced = true
		}
		s.mu.Unlock()
		if f != nil {
			f(info)
		}
	}, delivered)
	t.log.Info("sfu: track published", "participant", p.cfg.SID, "client_track", t.clientTrackID)
	return delivered, true
}

// announceTrack returns the participants to subscribe to t now that its
// owner has been told of it.
func (s *SFU) announceTrack(t *publishedTrack) []*Participant {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.ended.Load() || !t.announced {
		return nil
	}
	r := s.rooms[t.owner.cfg.Room]
	if r == nil {
		return nil
	}
	var out []*Participant
	for _, o := range r.participants {
		if o != t.owner && o.cfg.AutoSubscribe && o.cfg.CanSubscribe && !o.closed.Load() {
			out = append(out, o)
		}
	}
	return out
}

// endTrack unpublishes t: it leaves the room, every subscriber's
// connection drops it, its reading stops and its owner hears
// TrackUnpublished. Only the first call does anything.
func (s *SFU) endTrack(t *publishedTrack, reason string) {
	if !t.ended.CompareAndSwap(false, true) {
		return
	}
	p := t.owner
	s.mu.Lock()
	subs := make([]*downTrack, 0, len(t.subscribers))
	for sid, dt := range t.subscribers {
		subs = append(subs, dt)
		delete(dt.sub.subs, t.sid)
		delete(t.subscribers, sid)
	}
	empty := []*downTrack{}
	t.fanout.Store(&empty)
	if r := s.rooms[p.cfg.Room]; r != nil && r.tracks[t.sid] == t {
		delete(r.tracks, t.sid)
	}
	registered := p.tracks[t.sid] == t
	delete(p.tracks, t.sid)
	if t.reported {
		info := t.infoLocked()
		if f := p.cfg.Events.TrackUnpublished; f != nil {
			p.events.push(func() { f(info) }, nil)
		}
	}
	s.mu.Unlock()
	if registered {
		s.metrics.tracks.Dec()
	}
	s.metrics.subscriptions.Sub(float64(len(subs)))

	// Stopping the receiver ends the forwarding loop even if the client
	// keeps sending; a later offer from it may reuse the section.
	if err := t.receiver.Stop(); err != nil {
		t.log.Debug("sfu: stop receiver", "err", err)
	}
	for _, dt := range subs {
		dt.sub.detach(dt)
	}
	t.log.Info("sfu: track unpublished", "participant", p.cfg.SID, "reason", reason)
}

// roomTrackLocked returns the announced track sid of the room, or nil.
// Called with SFU.mu held.
func (s *SFU) roomTrackLocked(roomName, sid string) *publishedTrack {
	r := s.rooms[roomName]
	if r == nil {
		return nil
	}
	t := r.tracks[sid]
	if t == nil || !t.announced {
		return nil
	}
	return t
}
