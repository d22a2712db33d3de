package signaling

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

const (
	// maxListedSIDs bounds the track sids named in one error message.
	maxListedSIDs = 8
	// maxEchoBytes bounds a client-supplied string quoted in an error.
	maxEchoBytes = 64
)

// testOfferHook, set only by tests, runs before a publisher offer is
// applied, so that a test can hold one there.
var testOfferHook atomic.Pointer[func(id string)]

// handle handles one message; false ends the session. What a decoding
// failure means depends on where the session is, so it is judged here.
func (c *session) handle(data []byte) bool {
	typ, msg, err := DecodeClientMessage(data)
	var bad *DecodeError
	if err != nil && !errors.As(err, &bad) {
		bad = &DecodeError{Code: wire.CodeBadMessage, Type: typ, Message: err.Error(), Err: err}
	}
	c.srv.metrics.message(typ)
	if !c.joined {
		return c.handleBeforeJoin(typ, msg, bad)
	}
	if bad != nil && (bad.Type == "" || bad.Code == wire.CodeUnknownType) {
		_, refID := requestRef(data, false)
		c.sendError(bad.Code, bad.Message, truncate(bad.Type, maxEchoBytes), refID)
		return true
	}
	if !c.afterPendingOffer(typ, msg) {
		return true
	}
	switch typ {
	case wire.TypeJoin:
		c.sendError(wire.CodeAlreadyJoined, "this connection has joined already", wire.TypeJoin, "")
		return true
	case wire.TypePong:
		return true // an answer to nothing the server asks
	case wire.TypeLeave:
		c.fail(closing{code: wire.CloseNormal, reason: reasonLeft, flush: true}, reasonLeft)
		return false
	case wire.TypePing:
		c.ping(msg, bad)
		return true
	}
	if bad != nil {
		// Every request with an id gets a reply naming it, even if another
		// field has the wrong type.
		_, refID := requestRef(data, false)
		c.sendError(wire.CodeBadMessage, bad.Message, typ, refID)
		return true
	}
	c.request(typ, msg)
	return true
}

// handleBeforeJoin takes only a join or a well-formed ping: anything else
// is a client that does not speak this protocol.
func (c *session) handleBeforeJoin(typ string, msg any, bad *DecodeError) bool {
	switch {
	case bad != nil && bad.Type == "":
		c.fatal(wire.CodeBadMessage, bad.Message+" (before join)", "", wire.CloseProtocolError)
		return false
	case typ == wire.TypeJoin:
		return c.join(msg, bad)
	case typ == wire.TypePing && bad == nil:
		c.ping(msg, nil)
		return true
	case typ == wire.TypePing:
		c.fatal(wire.CodeBadMessage, bad.Message+" (before join)", wire.TypePing, wire.CloseProtocolError)
		return false
	default:
		c.fatal(wire.CodeNotJoined, fmt.Sprintf("%q before join: only join and ping are accepted", truncate(typ, maxEchoBytes)), truncate(typ, maxEchoBytes), wire.CloseProtocolError)
		return false
	}
}

// afterPendingOffer waits for the publisher offer being applied, if any,
// so that messages are handled in order; a second offer meanwhile is
// refused with offer_pending instead (false).
func (c *session) afterPendingOffer(typ string, msg any) bool {
	if c.offerDone == nil {
		return true
	}
	select {
	case <-c.offerDone:
	default:
		if sd, ok := msg.(*wire.SessionDescription); ok && typ == wire.TypeOffer {
			c.sendError(wire.CodeOfferPending, "a publisher offer is still being answered: send the next one after its answer", wire.TypeOffer, sd.ID)
			return false
		}
		<-c.offerDone
	}
	c.offerDone = nil
	return true
}

func (c *session) request(typ string, msg any) {
	switch m := msg.(type) {
	case *wire.SessionDescription:
		if typ == wire.TypeOffer {
			c.startOffer(m)
		} else {
			c.answer(m)
		}
	case *wire.Candidate:
		c.candidate(m)
	case *wire.Subscribe:
		c.subscribe(typ, m)
	case *wire.Unpublish:
		c.unpublish(m)
	case *wire.Mute:
		c.mute(m)
	case *wire.Relay:
		c.relay(m)
	}
}

// startOffer applies a publisher offer aside, so that another offer
// meanwhile is seen and refused rather than answered out of turn.
func (c *session) startOffer(sd *wire.SessionDescription) {
	done := make(chan struct{})
	c.offerDone = done
	go func() {
		defer close(done)
		if hook := testOfferHook.Load(); hook != nil {
			(*hook)(sd.ID)
		}
		c.offer(sd)
	}()
}

// requestRef is the type and id of a message refused unread, when it has
// them, so that the refusal names the request.
func requestRef(data []byte, binary bool) (ref, refID string) {
	if binary {
		return "", ""
	}
	var head struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	}
	if json.Unmarshal(data, &head) != nil {
		return "", ""
	}
	return truncate(head.Type, maxEchoBytes), head.ID
}

func isServerType(typ string) bool {
	switch typ {
	case wire.TypeJoined, wire.TypeError, wire.TypeParticipantJoin, wire.TypeParticipantLeft,
		wire.TypeTrackPublished, wire.TypeTrackUnpublished, wire.TypeTrackMuted,
		wire.TypeGoingAway, wire.TypeAck:
		return true
	}
	return false
}

func (c *session) ping(msg any, bad *DecodeError) {
	if bad != nil {
		c.sendError(wire.CodeBadMessage, bad.Message, wire.TypePing, "")
		return
	}
	p, _ := msg.(*wire.Ping)
	c.send(wire.Ping{Type: wire.TypePong, ID: p.ID})
}

func (c *session) ack(id string) {
	if id != "" {
		c.send(wire.Ack{Type: wire.TypeAck, ID: id})
	}
}

// mediaCode maps a media error to the protocol's code, or fallback.
func mediaCode(err error, fallback string) string {
	switch {
	case errors.Is(err, sfu.ErrPermission):
		return wire.CodePermissionDenied
	case errors.Is(err, sfu.ErrNotOwner):
		return wire.CodeNotOwner
	case errors.Is(err, sfu.ErrUnknownTrack):
		return wire.CodeUnknownTrack
	case errors.Is(err, sfu.ErrTooManyTracks):
		return wire.CodeTooManyTracks
	case errors.Is(err, sfu.ErrNegotiation):
		return wire.CodeNegotiation
	case errors.Is(err, sfu.ErrClosed):
		return wire.CodeInternal
	}
	return fallback
}

// describes reports whether sd, an offer or answer (typ), has an SDP for
// target, the one connection clients send typ on; if not it says so.
func (c *session) describes(sd *wire.SessionDescription, typ, target string) bool {
	switch {
	case sd.Target != target:
		c.sendError(wire.CodeBadMessage, fmt.Sprintf("clients %s on the %s connection only", typ, target), typ, sd.ID)
		return false
	case sd.SDP == "":
		c.sendError(wire.CodeBadMessage, typ+" without sdp", typ, sd.ID)
		return false
	}
	return true
}

// offer answers a publisher offer. The publisher's candidates are held
// meanwhile and passed on after the answer (see session.pubCands).
func (c *session) offer(sd *wire.SessionDescription) {
	if !c.describes(sd, wire.TypeOffer, wire.TargetPublisher) {
		return
	}
	c.pubCands.Shut()
	answer, err := c.participant.HandleOffer(sd.SDP)
	if err != nil {
		c.sendError(mediaCode(err, wire.CodeNegotiation), err.Error(), wire.TypeOffer, sd.ID)
	} else {
		c.send(wire.SessionDescription{Type: wire.TypeAnswer, ID: sd.ID, Target: wire.TargetPublisher, SDP: answer})
	}
	c.pubCands.Open()
}

func (c *session) answer(sd *wire.SessionDescription) {
	if !c.describes(sd, wire.TypeAnswer, wire.TargetSubscriber) {
		return
	}
	if err := c.participant.HandleAnswer(sd.SDP); err != nil {
		c.sendError(mediaCode(err, wire.CodeNegotiation), err.Error(), wire.TypeAnswer, sd.ID)
		return
	}
	c.ack(sd.ID)
}

func (c *session) candidate(cand *wire.Candidate) {
	if cand.Target != wire.TargetPublisher && cand.Target != wire.TargetSubscriber {
		c.sendError(wire.CodeBadMessage, "candidate target must be publisher or subscriber", wire.TypeCandidate, "")
		return
	}
	if cand.Candidate == nil {
		return // end of candidates: ICE needs nothing more from it
	}
	if err := c.participant.AddICECandidate(cand.Target, *cand.Candidate); err != nil {
		c.sendError(mediaCode(err, wire.CodeNegotiation), err.Error(), wire.TypeCandidate, "")
	}
}

// subscribe handles subscribe and unsubscribe. Every sid is tried; one
// error reports those that failed, with the code of the first failure.
func (c *session) subscribe(typ string, s *wire.Subscribe) {
	if len(s.TrackSIDs) == 0 {
		c.sendError(wire.CodeBadMessage, "track_sids is empty", typ, s.ID)
		return
	}
	var (
		code   string
		failed []string
	)
	for _, sid := range s.TrackSIDs {
		var err error
		if typ == wire.TypeSubscribe {
			err = c.participant.Subscribe(sid)
		} else {
			err = c.participant.Unsubscribe(sid)
		}
		if err == nil {
			continue
		}
		if code == "" {
			code = mediaCode(err, wire.CodeInternal)
		}
		failed = append(failed, truncate(sid, maxEchoBytes))
		if errors.Is(err, sfu.ErrPermission) {
			break // the same answer for every sid
		}
	}
	if code == "" {
		c.ack(s.ID)
		return
	}
	listed := failed
	if len(listed) > maxListedSIDs {
		listed = append(listed[:maxListedSIDs:maxListedSIDs], fmt.Sprintf("and %d more", len(failed)-maxListedSIDs))
	}
	msg := fmt.Sprintf("%s failed for %s", typ, strings.Join(listed, ", "))
	if len(failed) < len(s.TrackSIDs) && code != wire.CodePermissionDenied {
		msg += "; the other tracks were done"
	}
	c.sendError(code, msg, typ, s.ID)
}

func (c *session) unpublish(u *wire.Unpublish) {
	if err := c.participant.Unpublish(u.TrackSID); err != nil {
		c.sendError(mediaCode(err, wire.CodeInternal), err.Error(), wire.TypeUnpublish, u.ID)
		return
	}
	c.ack(u.ID)
}

func (c *session) mute(m *wire.Mute) {
	t, err := c.participant.SetMuted(m.TrackSID, m.Muted)
	if err != nil {
		c.sendError(mediaCode(err, wire.CodeInternal), err.Error(), wire.TypeMute, m.ID)
		return
	}
	c.srv.trackMuted(c, t)
	c.ack(m.ID)
}
