package sfu

import (
	"errors"
	"fmt"

	"github.com/pion/webrtc/v4"
)

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

// subscribeLocked adds t to the subscriber connection. opMu held.
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

// addSubscriberTrackLocked gives dt a reusable m-section, or a new one.
func (p *Participant) addSubscriberTrackLocked(dt *downTrack) (*webrtc.RTPTransceiver, error) {
	if p.cfg.ReuseSections && p.canReuseLocked(dt.Kind()) {
		// AddTrack takes a free transceiver of the kind: canReuseLocked
		// made sure only reusable ones are free.
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

// canReuseLocked: a freed section of kind is reusable, and none is still
// on its way there (pion might pick it).
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

// detach removes an ended track's downtrack from the subscriber connection.
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
