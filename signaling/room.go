package signaling

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/pion/webrtc/v4"

	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// The room directory. Every message that tells participants about each
// other is queued under its room's lock, and queueing never blocks. So a
// newcomer's "joined" snapshot (members and the tracks the room recorded
// for them) and its announcement happen in one critical section, and each
// participant and track is told once, in "joined" or in a later event; a
// removal's track_unpublished and participant_left go out together. Nothing
// calls into media with a room lock held.

// room is one room's participants; in the directory while it has a member.
type room struct {
	name string

	mu      sync.Mutex
	members map[string]*member // by identity: one session per identity
}

// member is one session's place in its room. Guarded by its room's mu.
type member struct {
	sess *session
	info wire.ParticipantInfo // its Tracks are unused: see tracks
	// announced is set once "joined" is queued and the others told; until
	// then the member holds a place but receives and is shown nothing.
	announced bool
	tracks    map[string]wire.TrackInfo // as the room was told of them
}

// reserve holds a place in room for sess (as m) before the media join. A
// session of the same identity already there is removed (reason
// "replaced") and told to go away. It returns a refusal code and message.
func (s *Server) reserve(sess *session, roomName string, m *member) (code, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return wire.CodeShuttingDown, "the server is shutting down; join another node"
	}
	r := s.rooms[roomName]
	if r == nil {
		if len(s.rooms) >= s.limits.RoomsPerNode {
			return wire.CodeTooManyRooms, fmt.Sprintf("this node holds its maximum of %d rooms", s.limits.RoomsPerNode)
		}
		r = &room{name: roomName, members: make(map[string]*member)}
		s.rooms[roomName] = r
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.members[m.info.Identity]
	if old == nil && len(r.members) >= s.limits.ParticipantsPerRoom {
		return wire.CodeRoomFull, fmt.Sprintf("the room holds its maximum of %d participants", s.limits.ParticipantsPerRoom)
	}
	if old != nil {
		r.removeLocked(old, wire.ReasonReplaced)
		s.participants--
		old.sess.goAway(wire.ReasonReplaced, "the same identity joined the room again", wire.CloseNormal, wire.ReasonReplaced)
	}
	r.members[m.info.Identity] = m
	s.participants++
	sess.room = r
	s.updateGaugesLocked()
	return "", ""
}

// release removes sess from its room, if it is still there, telling the
// others with reason; an emptied room leaves the directory.
func (s *Server) release(sess *session, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := sess.room
	r.mu.Lock()
	if r.members[sess.member.info.Identity] == sess.member {
		r.removeLocked(sess.member, reason)
		s.participants--
	}
	empty := len(r.members) == 0
	r.mu.Unlock()
	if empty && s.rooms[r.name] == r {
		delete(s.rooms, r.name)
	}
	s.updateGaugesLocked()
}

func (s *Server) updateGaugesLocked() {
	s.metrics.rooms.Set(float64(len(s.rooms)))
	s.metrics.participants.Set(float64(s.participants))
}

// announce queues "joined" to sess and participant_joined to the others;
// false if sess lost its place meanwhile (replaced, or closing).
func (s *Server) announce(sess *session, joinedMsg wire.Joined) bool {
	r := sess.room
	m := sess.member
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.members[m.info.Identity] != m {
		return false
	}
	others := make([]wire.ParticipantInfo, 0, len(r.members))
	for _, o := range r.members {
		if o != m && o.announced {
			others = append(others, o.snapshot())
		}
	}
	slices.SortFunc(others, func(a, b wire.ParticipantInfo) int { return strings.Compare(a.Identity, b.Identity) })
	joinedMsg.Participant = m.snapshot()
	joinedMsg.Participants = others
	data, err := json.Marshal(joinedMsg)
	if err != nil {
		sess.logger().Error("signaling: encode joined", "err", err)
		return false
	}
	if !sess.enqueue(outbound{data: data, written: sess.observeJoin}) {
		return false
	}
	m.announced = true
	r.broadcastLocked(wire.ParticipantJoined{Type: wire.TypeParticipantJoin, Participant: m.snapshot()}, m)
	return true
}

// removeLocked takes m out of the room and, if the others knew of it,
// tells them its tracks ended and it left.
func (r *room) removeLocked(m *member, reason string) {
	delete(r.members, m.info.Identity)
	if !m.announced {
		return
	}
	m.announced = false
	for _, sid := range sortedKeys(m.tracks) {
		r.broadcastLocked(wire.TrackUnpublished{
			Type: wire.TypeTrackUnpublished, SID: sid, ParticipantSID: m.info.SID, Identity: m.info.Identity,
		}, m)
	}
	clear(m.tracks)
	r.broadcastLocked(wire.ParticipantLeft{
		Type: wire.TypeParticipantLeft, SID: m.info.SID, Identity: m.info.Identity, Reason: reason,
	}, m)
}

// broadcastLocked queues msg to every announced member but except (nil: all).
func (r *room) broadcastLocked(msg any, except *member) {
	data, err := json.Marshal(msg)
	if err != nil {
		panic(fmt.Sprintf("signaling: encode %T: %v", msg, err))
	}
	for _, o := range r.members {
		if o != except && o.announced {
			o.sess.enqueue(outbound{data: data})
		}
	}
}

// currentLocked reports whether m is in r and announced.
func (r *room) currentLocked(m *member) bool {
	return m.announced && r.members[m.info.Identity] == m
}

// snapshot is m's ParticipantInfo with its tracks, sorted by sid.
func (m *member) snapshot() wire.ParticipantInfo {
	p := m.info
	p.Tracks = make([]wire.TrackInfo, 0, len(m.tracks))
	for _, sid := range sortedKeys(m.tracks) {
		p.Tracks = append(p.Tracks, m.tracks[sid])
	}
	return p
}

// trackPublished records t and tells the whole room, the owner included
// (so it learns the sid), before media offers the track to anyone.
func (s *Server) trackPublished(sess *session, t sfu.TrackInfo) {
	r, m := sess.room, sess.member
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.currentLocked(m) {
		return
	}
	ti := wireTrack(t)
	m.tracks[ti.SID] = ti
	r.broadcastLocked(wire.TrackPublished{Type: wire.TypeTrackPublished, Track: ti}, nil)
}

// trackUnpublished forgets t and tells the room, the owner included.
func (s *Server) trackUnpublished(sess *session, t sfu.TrackInfo) {
	r, m := sess.room, sess.member
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.currentLocked(m) {
		return // removeLocked told the room already
	}
	if _, ok := m.tracks[t.SID]; !ok {
		return
	}
	delete(m.tracks, t.SID)
	r.broadcastLocked(wire.TrackUnpublished{
		Type: wire.TypeTrackUnpublished, SID: t.SID, ParticipantSID: m.info.SID, Identity: m.info.Identity,
	}, nil)
}

// trackMuted records a mute change and tells the room, the owner included.
func (s *Server) trackMuted(sess *session, t sfu.TrackInfo) {
	r, m := sess.room, sess.member
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.currentLocked(m) {
		return
	}
	if ti, ok := m.tracks[t.SID]; ok {
		ti.Muted = t.Muted
		m.tracks[t.SID] = ti
	}
	r.broadcastLocked(wire.TrackMuted{
		Type: wire.TypeTrackMuted, SID: t.SID, ParticipantSID: m.info.SID, Identity: m.info.Identity, Muted: t.Muted,
	}, nil)
}

// wireTrack is media's TrackInfo in the protocol's form.
func wireTrack(t sfu.TrackInfo) wire.TrackInfo {
	kind := ""
	switch t.Kind {
	case webrtc.RTPCodecTypeAudio:
		kind = wire.KindAudio
	case webrtc.RTPCodecTypeVideo:
		kind = wire.KindVideo
	}
	return wire.TrackInfo{
		SID:            t.SID,
		ParticipantSID: t.ParticipantSID,
		Identity:       t.Identity,
		ClientTrackID:  t.ClientTrackID,
		Kind:           kind,
		Codec:          t.Codec,
		Muted:          t.Muted,
		E2EE:           t.E2EE,
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
