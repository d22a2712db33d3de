package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sotto-rtc/sotto/signaling/wire"
)

// response is what answers a request: an ack (nothing), an answer's SDP, or
// an error.
type response struct {
	sdp string
	err error
}

// request sends msg, which carries id, and waits for the response with
// that id.
func (s *session) request(ctx context.Context, id string, msg any) (response, error) {
	ch, err := s.expect(id)
	if err != nil {
		return response{}, err
	}
	if err := s.send(msg); err != nil {
		s.forget(id)
		return response{}, err
	}
	select {
	case r := <-ch:
		return r, r.err
	case <-ctx.Done():
		s.forget(id)
		return response{}, ctx.Err()
	}
}

// requestAsync sends a request whose outcome nobody waits for.
func (s *session) requestAsync(id string, msg any) {
	if _, err := s.expect(id); err != nil {
		return
	}
	if err := s.send(msg); err != nil {
		s.forget(id)
	}
}

func (s *session) expect(id string) (chan response, error) {
	ch := make(chan response, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed {
		return nil, s.requestErrLocked()
	}
	s.pending[id] = ch
	return ch, nil
}

func (s *session) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pending, id)
}

// resolve hands r to the request with id, and reports whether there was one.
func (s *session) resolve(id string, r response) bool {
	if id == "" {
		return false
	}
	s.mu.Lock()
	ch, ok := s.pending[id]
	delete(s.pending, id)
	s.mu.Unlock()
	if ok {
		ch <- r
	}
	return ok
}

// handle acts on one message from the server.
func (s *session) handle(b []byte) error {
	var env wire.Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	c := s.c
	switch env.Type {
	case wire.TypePing:
		return decode(b, env.Type, func(m *wire.Ping) error {
			return s.send(wire.Ping{Type: wire.TypePong, ID: m.ID})
		})
	case wire.TypePong:
		return nil
	case wire.TypeAnswer:
		return decode(b, env.Type, s.onAnswer)
	case wire.TypeOffer:
		return decode(b, env.Type, s.answerSubscriber)
	case wire.TypeCandidate:
		return decode(b, env.Type, s.addCandidate)
	case wire.TypeAck:
		return decode(b, env.Type, func(m *wire.Ack) error {
			s.resolve(m.ID, response{})
			return nil
		})
	case wire.TypeError:
		return decode(b, env.Type, s.onError)
	case wire.TypeGoingAway:
		return decode(b, env.Type, s.onGoingAway)
	case wire.TypeParticipantJoin:
		return decode(b, env.Type, tell(s, c.onParticipantJoined))
	case wire.TypeParticipantLeft:
		return decode(b, env.Type, tell(s, c.onParticipantLeft))
	case wire.TypeTrackPublished:
		return decode(b, env.Type, func(m *wire.TrackPublished) error {
			c.onTrackPublished(s, m.Track)
			return nil
		})
	case wire.TypeTrackUnpublished:
		return decode(b, env.Type, tell(s, c.onTrackUnpublished))
	case wire.TypeTrackMuted:
		return decode(b, env.Type, tell(s, c.onTrackMuted))
	case wire.TypeRelay:
		return decode(b, env.Type, tell(s, c.onRelay))
	}
	// A newer server may send more; v1 clients ignore what they do not know.
	s.log.Debug("client: unknown message type", "type", env.Type)
	return nil
}

// decode unmarshals b as a T and passes it to f.
func decode[T any](b []byte, typ string, f func(*T) error) error {
	var m T
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%s: %w", typ, err)
	}
	return f(&m)
}

// tell adapts a Client's room-event method to decode.
func tell[T any](s *session, f func(*session, *T)) func(*T) error {
	return func(m *T) error {
		f(s, m)
		return nil
	}
}

func (s *session) onAnswer(m *wire.SessionDescription) error {
	if m.Target != wire.TargetPublisher || !s.resolve(m.ID, response{sdp: m.SDP}) {
		return fmt.Errorf("answer %q for %s matches no offer", m.ID, m.Target)
	}
	return nil
}

// onError fails the request it refers to, or tells the application.
func (s *session) onError(m *wire.Error) error {
	se := serverError(m)
	if se.Fatal {
		s.mu.Lock()
		s.fatal = se
		s.mu.Unlock()
	}
	if !s.resolve(se.RefID, response{err: se}) && !se.Fatal {
		s.c.onServerError(s, se)
	}
	s.log.Debug("client: server error", "code", se.Code, "message", se.Message, "ref", se.Ref, "fatal", se.Fatal)
	return nil
}

func (s *session) onGoingAway(m *wire.GoingAway) error {
	s.mu.Lock()
	s.goingAway = m.Reason
	s.mu.Unlock()
	s.log.Info("client: server going away", "reason", m.Reason, "message", m.Message)
	return nil
}
