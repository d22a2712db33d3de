package sfu

import (
	"fmt"
	"time"

	"github.com/pion/webrtc/v4"
)

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
	p.pubLocal.Open()
	return answer, nil
}

// awaitPublisherTransport holds a renegotiation offer back until the
// publisher connection's ICE agent has started. pion starts it after the
// first offer, asynchronously; an offer applied before then is taken for
// an ICE restart, and the agent ends up with credentials the client was
// never given. Called with opMu held.
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
	p.pubEarly.Open()
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
	p.subEarly.Open()
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
// to are held (a bounded number) and added once it is set.
func (p *Participant) AddICECandidate(target string, c webrtc.ICECandidateInit) error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	pc, early := p.pub, p.pubEarly
	switch target {
	case targetPublisher:
	case targetSubscriber:
		pc, early = p.sub, p.subEarly
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
		if early.Len() >= maxPendingCandidates {
			return fmt.Errorf("%w: more than %d early %s candidates", ErrNegotiation, maxPendingCandidates, target)
		}
		early.Pass(c)
		return nil
	}
	if err := pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("%w: %s candidate: %w", ErrNegotiation, target, err)
	}
	return nil
}

func (p *Participant) addEarlyCandidate(pc *webrtc.PeerConnection, target string, c webrtc.ICECandidateInit) {
	if err := pc.AddICECandidate(c); err != nil {
		p.log.Debug("sfu: early candidate refused", "target", target, "err", err)
	}
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
		p.events.Push(func() { f(sdp) }, nil)
	}
	// Candidates go out only after the offer they belong to.
	p.subLocal.Open()
}
