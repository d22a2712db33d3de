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
// other (joined, participant_joined/left, track_published/unpublished/
// muted, relay) is queued while its room's lock is held, and queueing never
// blocks. That one rule gives the ordering guarantees:
//
//   - A newcomer's snapshot in "joined" and its announcement to the others
//     happen in one critical section, so every participant learns of every
//     other exactly once: from "joined" if it was announced before, from
//     participant_joined if after.
//   - The room keeps, per participant, the tracks it has announced. The
//     snapshot reads that record under the same lock as the broadcasts
//     that change it, so a newcomer sees every track once, in "joined" or
//     in a later track_published. (Asking media for the tracks instead
//     would read another lock's state and could miss a track published
//     in between, or report one twice.)
//   - When a participant is removed, track_unpublished for each of its
//     tracks and then participant_left go out in one critical section;
//     media events for it that arrive later are ignored.
//
// Nothing calls into media with a room lock held.

// room is one room's participants. It is in the directory while it has a
// member (joined or joining).
type room struct {
	name string

	mu      sync.Mutex
	members map[string]*member // by identity: one session per identity
}

// member is one session's place in its room. Guarded by its room's mu.
type member struct {
	sess *session
	// info describes the participant; its Tracks field is unused (see
	// tracks).
	info wire.ParticipantInfo
	// announced is set once "joined" is queued and the others have been
	// told; until then the member holds a place but receives and is shown
	// nothing. Cleared on removal.
	announced bool
	// tracks are the member's tracks as the room was told of them.
	tracks map[string]wire.TrackInfo
}

// reserve holds a place in room for sess (as m) before the media join, so
// that capacity and identity are settled first. A session of the same
// identity already in the room is removed (the others see participant_left
// with reason "replaced") and told to go away. It returns a refusal code
// and message, or "".
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

// announce completes sess's join: it queues "joined" (the room as it is
// now) to sess and participant_joined to everyone else. It fails if sess
// lost its place meanwhile (replaced, or closing).
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

// broadcastLocked queues msg to every announced member but except (which
// may be nil). It is encoded once.
func (r *room) broadcastLocked(msg any, except *member) {
	data, err := json.Marshal(msg)
	if err != nil {
		// Only server-made values of protocol types get here.
		panic(fmt.Sprintf("signaling: encode %T: %v", msg, err))
	}
	for _, o := range r.members {
		if o != except && o.announced {
			o.sess.enqueue(outbound{data: data})
		}
	}
}

// current reports whether m is in r and announced. Called with r.mu held.
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

// trackPublished records t for sess and tells the whole room, its owner
// included (that is how the owner learns the sid). Called from sess's
// media events, before media offers the track to any subscriber.
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

// trackUnpublished forgets t and tells the room. The owner is included; if
// its connection is gone its queue takes nothing, so only the others hear.
func (s *Server) trackUnpublished(sess *session, t sfu.TrackInfo) {
	r, m := sess.room, sess.member
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.currentLocked(m) {
		// Removed: removeLocked has told the room already.
		return
	}
	if _, ok := m.tracks[t.SID]; !ok {
		return
	}
	delete(m.tracks, t.SID)
	r.broadcastLocked(wire.TrackUnpublished{
		Type: wire.TypeTrackUnpublished, SID: t.SID, ParticipantSID: m.info.SID, Identity: m.info.Identity,
	}, nil)
}

// trackMuted records a mute change made through media and tells the whole
// room, the owner included.
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

// relay passes data from sess to the identities in to (everyone else when
// empty). Every identity in to must be an announced member, or nobody gets
// it. A recipient without room for it in sess's share of its queue (one
// that does not read) is skipped: the others still get it, so one slow
// member cannot cut a sender off from the room. skipped names those
// skipped; refused is true when nobody got it for that reason. The sender
// never receives its own relay.
func (s *Server) relay(sess *session, to []string, data json.RawMessage) (code, msg string, refused bool) {
	r, m := sess.room, sess.member
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.currentLocked(m) {
		return wire.CodeInternal, "not in the room", false
	}
	var recipients []*member
	if len(to) == 0 {
		for _, o := range r.members {
			if o != m && o.announced {
				recipients = append(recipients, o)
			}
		}
	} else {
		var unknown []string
		seen := make(map[string]bool, len(to))
		for _, id := range to {
			if seen[id] {
				continue
			}
			seen[id] = true
			o := r.members[id]
			switch {
			case o == nil || !o.announced:
				unknown = append(unknown, truncate(id, 64))
			case o != m:
				recipients = append(recipients, o)
			}
		}
		if len(unknown) > 0 {
			return wire.CodeUnknownParticipant, fmt.Sprintf("not in the room: %q; the relay was delivered to no one", unknown), false
		}
	}
	frame, err := encodeRelay(m.info.Identity, m.info.SID, data)
	if err != nil {
		return wire.CodeInternal, "relay could not be encoded", false
	}
	share := s.limits.relayShare(len(r.members) - 1)
	var skipped []string
	delivered := 0
	for _, o := range recipients {
		if why := o.sess.relayFits(sess, len(frame), share); why != "" {
			s.metrics.relayRefused.WithLabelValues(why).Inc()
			skipped = append(skipped, truncate(o.info.Identity, 64))
			continue
		}
		o.sess.enqueueRelay(sess, frame)
		delivered++
	}
	switch {
	case len(skipped) == 0:
		return "", "", false
	case delivered == 0:
		return wire.CodeRateLimited, fmt.Sprintf("too many relays wait for %q; the relay was delivered to no one", skipped), true
	default:
		return wire.CodeRateLimited, fmt.Sprintf("too many relays wait for %q; the relay was delivered to the %d others", skipped, delivered), false
	}
}

// encodeRelay builds a relay frame around data without re-encoding it:
// encoding/json would compact it and escape HTML characters, and the
// protocol promises the recipient the sender's bytes.
func encodeRelay(from, fromSID string, data json.RawMessage) ([]byte, error) {
	head, err := json.Marshal(struct {
		Type    string `json:"type"`
		From    string `json:"from"`
		FromSID string `json:"from_sid"`
	}{wire.TypeRelay, from, fromSID})
	if err != nil {
		return nil, fmt.Errorf("signaling: encode relay: %w", err)
	}
	out := make([]byte, 0, len(head)+len(`,"data":`)+len(data))
	out = append(out, head[:len(head)-1]...) // without the closing brace
	out = append(out, `,"data":`...)
	out = append(out, data...)
	out = append(out, '}')
	return out, nil
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
