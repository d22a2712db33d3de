package sfu

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// room exists while it has a participant. Guarded by SFU.mu.
type room struct {
	participants map[string]*Participant // by participant SID
	tracks       map[string]*publishedTrack
}

// Join adds a participant to its room, subscribing it to the room's tracks
// when AutoSubscribe allows; no event fires and no offer is made before Start.
func (s *SFU) Join(cfg ParticipantConfig) (*Participant, error) {
	if cfg.Room == "" || cfg.SID == "" {
		return nil, errors.New("sfu: join needs a room and a participant SID")
	}
	p, err := s.newParticipant(cfg)
	if err != nil {
		return nil, err
	}
	existing, err := s.enterRoom(p)
	if err != nil {
		p.closePeerConnections()
		return nil, err
	}
	if len(existing) > 0 {
		p.opMu.Lock()
		for _, t := range existing {
			if err := p.subscribeLocked(t); err != nil && !errors.Is(err, ErrUnknownTrack) {
				p.log.Warn("sfu: auto-subscribe failed", "track", t.sid, "err", err)
			}
		}
		p.opMu.Unlock()
	}
	p.log.Debug("sfu: joined")
	return p, nil
}

// enterRoom returns the room's tracks p is to be subscribed to.
func (s *SFU) enterRoom(p *Participant) ([]*publishedTrack, error) {
	cfg := p.cfg
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
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
	return existing, nil
}

// registerTrack adds t to its owner and room and queues TrackPublished;
// delivered closes once that has run. ok is false if the owner is leaving.
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
	// Queued under SFU.mu, so no TrackUnpublished comes first; visible to
	// the room as the owner is told, for the subscribes that prompts.
	p.events.Push(func() {
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

// announceTrack returns the participants to subscribe to t.
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

// endTrack unpublishes t; only the first call does anything.
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
			p.events.Push(func() { f(info) }, nil)
		}
	}
	s.mu.Unlock()
	if registered {
		s.metrics.tracks.Dec()
	}
	s.metrics.subscriptions.Sub(float64(len(subs)))

	// Ends the forwarding loop even if the client keeps sending.
	if err := t.receiver.Stop(); err != nil {
		t.log.Debug("sfu: stop receiver", "err", err)
	}
	for _, dt := range subs {
		dt.sub.detach(dt)
	}
	t.log.Info("sfu: track unpublished", "participant", p.cfg.SID, "reason", reason)
}

// roomTrackLocked returns the room's announced track sid, or nil. SFU.mu held.
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

// RoomTracks returns every live track of the room.
func (s *SFU) RoomTracks(roomName string) []TrackInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[roomName]
	if r == nil {
		return nil
	}
	return announcedInfos(r.tracks)
}

// announcedInfos describes the announced tracks of ts, by SID. SFU.mu held.
func announcedInfos(ts map[string]*publishedTrack) []TrackInfo {
	out := make([]TrackInfo, 0, len(ts))
	for _, t := range ts {
		if t.announced {
			out = append(out, t.infoLocked())
		}
	}
	slices.SortFunc(out, func(a, b TrackInfo) int { return strings.Compare(a.SID, b.SID) })
	return out
}

// Counts returns what the SFU holds now.
func (s *SFU) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	var c Counts
	c.Rooms = len(s.rooms)
	for _, r := range s.rooms {
		c.Participants += len(r.participants)
		c.Tracks += len(r.tracks)
		for _, p := range r.participants {
			c.Subscriptions += len(p.subs)
		}
	}
	return c
}
