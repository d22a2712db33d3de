package sfu

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// room is the participants of one room and the tracks they publish. It
// exists while it has a participant. Guarded by SFU.mu.
type room struct {
	participants map[string]*Participant // by participant SID
	tracks       map[string]*publishedTrack
}

// Join adds a participant to its room, creating the room on first join,
// and creates its two peer connections. It subscribes the participant to
// the room's tracks when AutoSubscribe allows, but no event fires and no
// offer is made before Start.
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

// enterRoom adds p to its room and returns the room's tracks p is to be
// subscribed to.
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
			p.events.Push(func() { f(info) }, nil)
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

// RoomTracks returns every live track of the room: the tracks a
// participant joining now would be offered.
func (s *SFU) RoomTracks(roomName string) []TrackInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[roomName]
	if r == nil {
		return nil
	}
	out := make([]TrackInfo, 0, len(r.tracks))
	for _, t := range r.tracks {
		if t.announced {
			out = append(out, t.infoLocked())
		}
	}
	sortTracks(out)
	return out
}

// sortTracks orders tracks by SID, so listings are stable.
func sortTracks(ts []TrackInfo) {
	slices.SortFunc(ts, func(a, b TrackInfo) int { return strings.Compare(a.SID, b.SID) })
}

// Counts returns how many rooms, participants, tracks and subscriptions
// the SFU holds right now.
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
