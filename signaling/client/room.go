package client

import (
	"slices"
	"sync/atomic"

	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// roomState is what the client knows of the room (this file, remote.go).
type roomState struct {
	self         wire.ParticipantInfo
	limits       wire.Limits
	others       roster
	held         map[string]*RemoteTrack // media that arrived before its track_published
	subscribed   map[string]struct{}     // by Subscribe, re-sent after a reconnect
	unsubscribed map[string]struct{}     // by Unsubscribe, re-sent after a reconnect when auto-subscribing
	// refusedTracks counts tracks refused for naming another owner.
	refusedTracks atomic.Uint64
}

// Self returns this client's participant as the server last described it,
// with the tracks the server has announced for it.
func (c *Client) Self() wire.ParticipantInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return copyParticipant(c.self)
}

// Participants returns the other participants in the room, with their
// tracks, in the order they became known.
func (c *Client) Participants() []wire.ParticipantInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.others.list()
}

// roster is the other participants and their tracks, in order.
type roster struct {
	order []string // participant SIDs in the order they became known
	by    map[string]*member
}

type member struct {
	info wire.ParticipantInfo
	// announced is false while it is known only from one of its tracks.
	announced bool
}

func newRoster(ps []wire.ParticipantInfo) roster {
	r := roster{by: make(map[string]*member, len(ps))}
	for _, p := range ps {
		if p.SID == "" || r.by[p.SID] != nil {
			continue
		}
		r.order = append(r.order, p.SID)
		r.by[p.SID] = &member{info: copyParticipant(p), announced: true}
	}
	return r
}

func (r *roster) get(sid string) *member { return r.by[sid] }

func (r *roster) add(m *member) {
	if r.by[m.info.SID] == nil {
		r.order = append(r.order, m.info.SID)
	}
	r.by[m.info.SID] = m
}

func (r *roster) remove(sid string) *member {
	m := r.by[sid]
	if m == nil {
		return nil
	}
	delete(r.by, sid)
	if i := slices.Index(r.order, sid); i >= 0 {
		r.order = slices.Delete(r.order, i, i+1)
	}
	return m
}

// track finds a track by SID.
func (r *roster) track(sid string) (*member, int) {
	for _, psid := range r.order {
		m := r.by[psid]
		for i := range m.info.Tracks {
			if m.info.Tracks[i].SID == sid {
				return m, i
			}
		}
	}
	return nil, -1
}

func (r *roster) list() []wire.ParticipantInfo {
	out := make([]wire.ParticipantInfo, 0, len(r.order))
	for _, sid := range r.order {
		if m := r.by[sid]; m.announced {
			out = append(out, copyParticipant(m.info))
		}
	}
	return out
}

func copyParticipant(p wire.ParticipantInfo) wire.ParticipantInfo {
	p.Tracks = slices.Clone(p.Tracks)
	return p
}

func trackIndex(ts []wire.TrackInfo, sid string) int {
	return slices.IndexFunc(ts, func(t wire.TrackInfo) bool { return t.SID == sid })
}

// The on* methods apply one message of s to the client's state and queue
// the handler calls; messages of a session no longer current are ignored.

// installLocked makes s current and takes joined's room, announcing the
// differences.
func (c *Client) installLocked(s *session, j *wire.Joined) {
	c.sess = s
	c.self = copyParticipant(j.Participant)
	c.self.Tracks = nil // own tracks are announced by track_published
	c.limits = j.Limits
	c.held = make(map[string]*RemoteTrack)

	old, next := c.others, newRoster(j.Participants)
	h := &c.opts.Handlers
	for _, sid := range old.order {
		m := old.by[sid]
		if next.get(sid) != nil {
			continue
		}
		for _, t := range m.info.Tracks {
			c.emitTrackUnpublished(t)
		}
		if m.announced && h.ParticipantLeft != nil {
			p := copyParticipant(m.info)
			c.emit(func() { h.ParticipantLeft(p, "disconnected") })
		}
	}
	for _, sid := range next.order {
		nm := next.by[sid]
		om := old.get(sid)
		if om == nil || !om.announced {
			if h.ParticipantJoined != nil {
				p := copyParticipant(nm.info)
				c.emit(func() { h.ParticipantJoined(p) })
			}
		}
		var before []wire.TrackInfo
		if om != nil {
			before = om.info.Tracks
		}
		for _, t := range before {
			if trackIndex(nm.info.Tracks, t.SID) < 0 {
				c.emitTrackUnpublished(t)
			}
		}
		for _, t := range nm.info.Tracks {
			i := trackIndex(before, t.SID)
			switch {
			case i < 0:
				c.emitTrackPublished(t)
			case before[i].Muted != t.Muted:
				c.emitTrackMuted(t)
			}
		}
	}
	c.others = next
	c.updateKeyMembersLocked(s)
}

func (c *Client) emitTrackPublished(t wire.TrackInfo) {
	if f := c.opts.Handlers.TrackPublished; f != nil {
		c.emit(func() { f(t) })
	}
}

func (c *Client) emitTrackUnpublished(t wire.TrackInfo) {
	if f := c.opts.Handlers.TrackUnpublished; f != nil {
		c.emit(func() { f(t) })
	}
}

func (c *Client) emitTrackMuted(t wire.TrackInfo) {
	if f := c.opts.Handlers.TrackMuted; f != nil {
		c.emit(func() { f(t) })
	}
}

func (c *Client) onParticipantJoined(s *session, m *wire.ParticipantJoined) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != s || m.Participant.SID == "" || m.Participant.SID == c.self.SID {
		return
	}
	p := copyParticipant(m.Participant)
	old := c.others.get(p.SID)
	if old != nil && old.announced {
		return
	}
	if old != nil {
		// Tracks announced before the participant: keep them.
		for _, t := range old.info.Tracks {
			if trackIndex(p.Tracks, t.SID) < 0 {
				p.Tracks = append(p.Tracks, t)
			}
		}
	}
	c.others.add(&member{info: p, announced: true})
	c.updateKeyMembersLocked(s)
	if f := c.opts.Handlers.ParticipantJoined; f != nil {
		pc := copyParticipant(p)
		c.emit(func() { f(pc) })
	}
	for _, t := range m.Participant.Tracks {
		if old == nil || trackIndex(old.info.Tracks, t.SID) < 0 {
			c.emitTrackPublished(t)
			c.releaseHeldLocked(t.SID)
		}
	}
}

func (c *Client) onParticipantLeft(s *session, m *wire.ParticipantLeft) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != s {
		return
	}
	gone := c.others.remove(m.SID)
	if gone == nil {
		return
	}
	c.updateKeyMembersLocked(s)
	for _, t := range gone.info.Tracks {
		delete(c.held, t.SID)
		c.emitTrackUnpublished(t)
	}
	if f := c.opts.Handlers.ParticipantLeft; f != nil && gone.announced {
		p := copyParticipant(gone.info)
		reason := m.Reason
		c.emit(func() { f(p, reason) })
	}
}

func (c *Client) onTrackPublished(s *session, t wire.TrackInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != s || t.SID == "" {
		return
	}
	if t.ParticipantSID == c.self.SID {
		c.onOwnTrackPublishedLocked(s, t)
		return
	}
	if m, _ := c.others.track(t.SID); m != nil {
		return // already known
	}
	m := c.others.get(t.ParticipantSID)
	if m == nil {
		m = &member{info: wire.ParticipantInfo{SID: t.ParticipantSID, Identity: t.Identity}}
		c.others.add(m)
	}
	m.info.Tracks = append(m.info.Tracks, t)
	c.emitTrackPublished(t)
	c.releaseHeldLocked(t.SID)
}

func (c *Client) onOwnTrackPublishedLocked(s *session, t wire.TrackInfo) {
	if i := trackIndex(c.self.Tracks, t.SID); i >= 0 {
		return
	}
	c.self.Tracks = append(c.self.Tracks, t)
	for _, p := range c.pubs {
		if p.info.SID != "" || p.track.ID() != t.ClientTrackID {
			continue
		}
		p.info = t
		p.notifyLocked()
		if p.muted && !t.Muted {
			// Muted before a reconnect: tell the new session.
			id := c.nextID()
			muted := p.muted
			s.requestAsync(id, wire.Mute{Type: wire.TypeMute, ID: id, TrackSID: t.SID, Muted: muted})
			p.info.Muted = muted
			t.Muted = muted
			c.self.Tracks[len(c.self.Tracks)-1].Muted = muted
		}
		break
	}
	c.emitTrackPublished(t)
}

func (c *Client) onTrackUnpublished(s *session, m *wire.TrackUnpublished) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != s {
		return
	}
	if i := trackIndex(c.self.Tracks, m.SID); i >= 0 {
		t := c.self.Tracks[i]
		c.self.Tracks = slices.Delete(c.self.Tracks, i, i+1)
		for _, p := range c.pubs {
			if p.info.SID == m.SID {
				p.info = wire.TrackInfo{}
				p.notifyLocked()
			}
		}
		c.emitTrackUnpublished(t)
		return
	}
	delete(c.held, m.SID)
	delete(c.subscribed, m.SID)
	delete(c.unsubscribed, m.SID)
	owner, i := c.others.track(m.SID)
	if owner == nil {
		return
	}
	t := owner.info.Tracks[i]
	owner.info.Tracks = slices.Delete(owner.info.Tracks, i, i+1)
	c.emitTrackUnpublished(t)
}

func (c *Client) onTrackMuted(s *session, m *wire.TrackMuted) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != s {
		return
	}
	var t *wire.TrackInfo
	if i := trackIndex(c.self.Tracks, m.SID); i >= 0 {
		t = &c.self.Tracks[i]
		for _, p := range c.pubs {
			if p.info.SID == m.SID {
				p.info.Muted = m.Muted
			}
		}
	} else if owner, i := c.others.track(m.SID); owner != nil {
		t = &owner.info.Tracks[i]
	}
	if t == nil {
		return
	}
	t.Muted = m.Muted
	c.emitTrackMuted(*t)
}

func (c *Client) onRelay(s *session, m *wire.Relay) {
	if e2ee.IsKeyMessage(m.Data) {
		// Key management's, not the application's.
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.sess == s && c.keys != nil {
			_ = c.keys.HandleMessage(m.From, m.Data) // refusals are logged and counted
		}
		return
	}
	f := c.opts.Handlers.Relay
	if f == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != s {
		return
	}
	from := wire.ParticipantInfo{SID: m.FromSID, Identity: m.From}
	if mem := c.others.get(m.FromSID); mem != nil {
		from = copyParticipant(mem.info)
	}
	data := m.Data
	c.emit(func() { f(from, data) })
}

func (c *Client) onServerError(s *session, se *ServerError) {
	f := c.opts.Handlers.Error
	if f == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != s {
		return
	}
	c.emit(func() { f(se) })
}
