package client

import (
	"fmt"
	"sync"

	"github.com/pion/webrtc/v4"

	"github.com/sotto-rtc/sotto/internal/hold"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// peer is one of the session's two peer connections. Its local candidates
// are held until the description they belong to has been sent (gathering
// starts in SetLocalDescription, before it goes out), and remote ones
// until the remote description is set.
type peer struct {
	s      *session
	target string
	pc     *webrtc.PeerConnection
	local  *hold.Gate[*webrtc.ICECandidateInit]
	early  *hold.Gate[webrtc.ICECandidateInit]

	mu        sync.Mutex // orders SetRemoteDescription with AddICECandidate
	remoteSet bool
}

func (s *session) newPeer(target string, pc *webrtc.PeerConnection) *peer {
	p := &peer{s: s, target: target, pc: pc}
	p.local = hold.NewGate(func(c *webrtc.ICECandidateInit) {
		_ = s.send(wire.Candidate{Type: wire.TypeCandidate, Target: target, Candidate: c})
	})
	p.early = hold.NewGate(func(c webrtc.ICECandidateInit) {
		if err := pc.AddICECandidate(c); err != nil {
			s.log.Debug("client: early candidate refused", "target", target, "err", err)
		}
	})
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		var init *webrtc.ICECandidateInit
		if c != nil {
			j := c.ToJSON()
			init = &j
		}
		p.local.Pass(init)
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed {
			s.fail(fmt.Errorf("client: %s connection failed", target))
		}
	})
	return p
}

func (p *peer) addRemoteCandidate(c webrtc.ICECandidateInit) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.remoteSet {
		if p.early.Len() >= maxEarlyCandidates {
			return fmt.Errorf("more than %d early %s candidates", maxEarlyCandidates, p.target)
		}
		p.early.Pass(c)
		return nil
	}
	if err := p.pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("%s candidate: %w", p.target, err)
	}
	return nil
}

// setRemoteLocked applies a remote description and the candidates that
// waited for it. Called with p.mu held.
func (p *peer) setRemoteLocked(d webrtc.SessionDescription) error {
	if err := p.pc.SetRemoteDescription(d); err != nil {
		return fmt.Errorf("client: %s remote %s: %w", p.target, d.Type, err)
	}
	p.remoteSet = true
	p.early.Open()
	return nil
}

// answer applies an offer and returns the answer.
func (p *peer) answer(offer string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.setRemoteLocked(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", err
	}
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("client: %s answer: %w", p.target, err)
	}
	if err := p.pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("client: %s answer: %w", p.target, err)
	}
	return answer.SDP, nil
}

// applyAnswer applies the server's answer to the last offer.
func (p *peer) applyAnswer(sdp string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.setRemoteLocked(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp})
}

// answerSubscriber answers the server's offer on the subscriber connection.
// A failure leaves the connection in a state no later offer can repair, so
// the session is dropped and the client reconnects.
func (s *session) answerSubscriber(m *wire.SessionDescription) error {
	if m.Target != wire.TargetSubscriber {
		return fmt.Errorf("offer for %q", m.Target)
	}
	answer, err := s.sub.answer(m.SDP)
	if err != nil {
		s.fail(err)
		return nil
	}
	if err := s.send(wire.SessionDescription{
		Type: wire.TypeAnswer, ID: m.ID, Target: wire.TargetSubscriber, SDP: answer,
	}); err != nil {
		return nil
	}
	s.sub.local.Open()
	return nil
}

// addCandidate adds a remote candidate to the connection it names.
func (s *session) addCandidate(m *wire.Candidate) error {
	var p *peer
	switch m.Target {
	case wire.TargetPublisher:
		p = s.pub
	case wire.TargetSubscriber:
		p = s.sub
	default:
		return fmt.Errorf("candidate for %q", m.Target)
	}
	if m.Candidate == nil {
		return nil
	}
	return p.addRemoteCandidate(*m.Candidate)
}
