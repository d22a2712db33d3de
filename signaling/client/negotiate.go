package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sotto-rtc/sotto/signaling/wire"
)

// round is one publisher negotiation: every change made before it starts
// is in its offer.
type round struct {
	done chan struct{}
	err  error
}

// negotiate waits for an offer that includes every change made so far.
func (s *session) negotiate(ctx context.Context) error {
	r, err := s.scheduleRound()
	if err != nil {
		return err
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// kickNegotiation schedules a round without waiting for it.
func (s *session) kickNegotiation() {
	_, _ = s.scheduleRound()
}

func (s *session) scheduleRound() (*round, error) {
	s.mu.Lock()
	if s.failed {
		err := s.requestErrLocked()
		s.mu.Unlock()
		return nil, err
	}
	r := s.nextRound
	if r == nil {
		r = &round{done: make(chan struct{})}
		s.nextRound = r
	}
	s.mu.Unlock()
	select {
	case s.negWake <- struct{}{}:
	default:
	}
	return r, nil
}

// negotiateLoop runs the rounds, one at a time.
func (s *session) negotiateLoop() {
	for {
		select {
		case <-s.negWake:
		case <-s.ctx.Done():
			return
		}
		s.mu.Lock()
		r := s.nextRound
		s.nextRound = nil
		s.mu.Unlock()
		if r == nil {
			continue
		}
		r.err = s.offerPublisher()
		close(r.done)
	}
}

// offerPublisher makes one offer and applies the answer. pion cannot roll
// back a local offer, so a refusal drops the publications it added and
// fails the session; the reconnect rebuilds it with the others.
func (s *session) offerPublisher() error {
	pc := s.pub.pc
	c := s.c
	// Under c.mu, so the offer holds exactly the publications attached now.
	c.mu.Lock()
	var inOffer []*Publication
	for _, p := range c.pubs {
		if p.sess == s && !p.negotiated {
			inOffer = append(inOffer, p)
		}
	}
	offer, err := pc.CreateOffer(nil)
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("client: publisher offer: %w", err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("client: publisher offer: %w", err)
	}
	timer := time.NewTimer(negotiationTimeout)
	defer timer.Stop()
	for {
		r, err := s.sendOffer(offer.SDP, timer.C)
		if err != nil {
			return err
		}
		var se *ServerError
		switch {
		case r.err == nil:
		case errors.As(r.err, &se) && se.Code == wire.CodeRateLimited:
			// Dropped unread: the same offer is still the one to send.
			select {
			case <-time.After(rateLimitedRetry):
				continue
			case <-timer.C:
				s.fail(fmt.Errorf("client: publisher offer still rate limited after %v", negotiationTimeout))
				return s.requestErr()
			case <-s.done:
				return s.requestErr()
			}
		case se != nil:
			c.mu.Lock()
			for _, p := range inOffer {
				c.removePublicationLocked(p)
			}
			c.mu.Unlock()
			s.fail(fmt.Errorf("client: publisher offer refused: %w", se))
			return r.err
		default:
			return r.err
		}

		if err := s.pub.applyAnswer(r.sdp); err != nil {
			s.fail(err)
			return s.requestErr()
		}
		c.mu.Lock()
		for _, p := range inOffer {
			if p.sess == s {
				p.negotiated = true
			}
		}
		c.mu.Unlock()
		return nil
	}
}

// sendOffer sends the offer with a new id and waits for the response, or
// fails the session at timeout.
func (s *session) sendOffer(sdp string, timeout <-chan time.Time) (response, error) {
	id := s.c.nextID()
	ch, err := s.expect(id)
	if err != nil {
		return response{}, err
	}
	if err := s.send(wire.SessionDescription{
		Type: wire.TypeOffer, ID: id, Target: wire.TargetPublisher, SDP: sdp,
	}); err != nil {
		return response{}, err
	}
	s.pub.local.Open()
	select {
	case r := <-ch:
		return r, nil
	case <-timeout:
		s.fail(fmt.Errorf("client: no answer to the publisher offer within %v", negotiationTimeout))
		return response{}, s.requestErr()
	case <-s.done:
		return response{}, s.requestErr()
	}
}
