package sfu

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Start lets events fire from now on. If the participant already has
// subscriptions, the first subscriber offer is made now.
func (p *Participant) Start() {
	p.events.Start()
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

// refuse ends the session of a participant that broke one of the SFU's
// bounds, on a goroutine of its own so that it may be called from anywhere.
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

// Close unpublishes the participant's tracks, drops its subscriptions,
// closes its connections and leaves its room. It waits a bounded time for
// the last events, unless one of its callbacks is running: then they are
// delivered after Close returns.
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
	p.pubEarly.Drop()
	p.subEarly.Drop()
	p.opMu.Unlock()

	s.mu.Lock()
	if r := s.rooms[p.cfg.Room]; r != nil && r.participants[p.cfg.SID] == p {
		delete(r.participants, p.cfg.SID)
		if len(r.participants) == 0 {
			delete(s.rooms, p.cfg.Room)
		}
	}
	s.mu.Unlock()

	p.events.Close()
	if !p.events.InCallback() {
		select {
		case <-p.events.Done():
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
