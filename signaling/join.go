package signaling

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// maxPublicKeyBytes bounds join.public_key.
const maxPublicKeyBytes = 1024

// refusal is why a join is refused, and the close code that follows.
type refusal struct {
	code, msg string
	close     websocket.StatusCode
}

func refuse(code, msg string, closeCode websocket.StatusCode) *refusal {
	return &refusal{code: code, msg: msg, close: closeCode}
}

// join admits the client: it checks the request and token, holds a place
// in the room, joins the SFU, then (in one critical section, see room.go)
// sends "joined" and tells the room. Every refusal is fatal.
func (c *session) join(msg any, bad *DecodeError) bool {
	if !c.beginJoin() {
		return false
	}
	j, claims, r := c.checkJoin(msg, bad)
	if r == nil {
		r = c.reservePlace(j, claims)
	}
	if r == nil {
		r = c.joinMedia(j, claims)
	}
	if r != nil {
		c.srv.metrics.joins.WithLabelValues(r.code).Inc()
		c.fatal(r.code, r.msg, wire.TypeJoin, r.close)
		return false
	}
	return c.announceJoin(claims)
}

// checkJoin checks the request, its address's join rate and its token.
func (c *session) checkJoin(msg any, bad *DecodeError) (*wire.Join, *wire.Claims, *refusal) {
	if bad != nil {
		return nil, nil, refuse(wire.CodeBadMessage, bad.Message, wire.CloseProtocolError)
	}
	j, _ := msg.(*wire.Join)
	if j.Protocol != wire.ProtocolVersion {
		return nil, nil, refuse(wire.CodeVersion, fmt.Sprintf("protocol %d is not supported; this server speaks protocol %d", j.Protocol, wire.ProtocolVersion), wire.CloseProtocolError)
	}
	if len(j.PublicKey) > maxPublicKeyBytes {
		return nil, nil, refuse(wire.CodeBadMessage, fmt.Sprintf("public_key is longer than %d bytes", maxPublicKeyBytes), wire.ClosePolicy)
	}
	if !c.srv.joins.allow(c.addr, time.Now()) {
		return nil, nil, refuse(wire.CodeJoinRateLimited, "too many joins from this address; retry later", wire.ClosePolicy)
	}
	claims, err := c.srv.verifier.Verify(j.Token)
	if err != nil {
		var te *TokenError
		if !errors.As(err, &te) {
			te = &TokenError{Code: wire.CodeTokenMalformed, Err: err}
		}
		msg := "token refused"
		if te.Err != nil {
			msg = te.Err.Error()
		}
		return nil, nil, refuse(te.Code, msg, wire.ClosePolicy)
	}
	if j.Room != "" && j.Room != claims.Room {
		return nil, nil, refuse(wire.CodeRoomMismatch, fmt.Sprintf("the token is for another room than %q", truncate(j.Room, maxEchoBytes)), wire.ClosePolicy)
	}
	if j.AutoSubscribe != nil && *j.AutoSubscribe && !claims.CanSubscribe {
		// Only an explicit true: the default is quietly off without the grant.
		return nil, nil, refuse(wire.CodePermissionDenied, "auto_subscribe is true but the token does not grant subscribing", wire.ClosePolicy)
	}
	return j, claims, nil
}

// reservePlace makes the session's member and holds its place in the room.
func (c *session) reservePlace(j *wire.Join, claims *wire.Claims) *refusal {
	sid := "PA_" + rand.Text()
	m := &member{
		sess: c,
		info: wire.ParticipantInfo{
			SID:          sid,
			Identity:     claims.Subject,
			PublicKey:    j.PublicKey,
			E2EE:         j.E2EE,
			CanPublish:   claims.CanPublish,
			CanSubscribe: claims.CanSubscribe,
		},
		tracks: make(map[string]wire.TrackInfo),
	}
	if code, msg := c.srv.reserve(c, claims.Room, m); code != "" {
		closeCode := websocket.StatusCode(wire.ClosePolicy)
		if code == wire.CodeShuttingDown {
			closeCode = wire.CloseGoingAway
		}
		return refuse(code, msg, closeCode)
	}
	c.member = m
	c.logp.Store(c.logger().With("room", claims.Room, "identity", claims.Subject, "sid", sid))
	return nil
}

// joinMedia adds the participant to the SFU, or gives its place back.
func (c *session) joinMedia(j *wire.Join, claims *wire.Claims) *refusal {
	p, err := c.srv.sfu.Join(sfu.ParticipantConfig{
		Room:          claims.Room,
		SID:           c.member.info.SID,
		Identity:      claims.Subject,
		CanPublish:    claims.CanPublish,
		CanSubscribe:  claims.CanSubscribe,
		AutoSubscribe: j.AutoSubscribe == nil || *j.AutoSubscribe,
		ReuseSections: j.ReuseSections == nil || *j.ReuseSections,
		MaxTracks:     c.srv.limits.TracksPerParticipant,
		E2EE:          j.E2EE,
		Events:        c.mediaEvents(),
	})
	if err != nil {
		c.srv.release(c, reasonDisconnected)
		c.member = nil
		if errors.Is(err, sfu.ErrClosed) {
			return refuse(wire.CodeShuttingDown, "the media server is shutting down", wire.CloseGoingAway)
		}
		c.logger().Error("signaling: media join failed", "err", err)
		return refuse(wire.CodeInternal, "the media server could not add this participant", wire.CloseInternal)
	}
	c.participant = p
	return nil
}

// announceJoin sends "joined", tells the room and starts media events.
func (c *session) announceJoin(claims *wire.Claims) bool {
	joined := wire.Joined{
		Type:       wire.TypeJoined,
		Protocol:   wire.ProtocolVersion,
		Room:       claims.Room,
		ICEServers: c.srv.iceServers(claims.Subject),
		Limits:     c.srv.limits.wire(),
	}
	// Given back before the client can see joined, so its slot is free
	// by the time it acts on it.
	c.releaseUnjoined()
	if !c.srv.announce(c, joined) {
		// Replaced or closed meanwhile; whoever closed it told the client why.
		c.srv.metrics.joins.WithLabelValues("aborted").Inc()
		return false
	}
	c.joined = true
	c.srv.metrics.joins.WithLabelValues("ok").Inc()
	c.logger().Info("signaling: participant joined", "publish", claims.CanPublish, "subscribe", claims.CanSubscribe)
	c.participant.Start()
	return true
}

func (c *session) observeJoin() {
	c.srv.metrics.joinDuration.Observe(time.Since(c.accepted).Seconds())
}

// mediaEvents are the callbacks media makes for this session's
// participant, one at a time on its goroutine; they only queue messages.
func (c *session) mediaEvents() sfu.Events {
	return sfu.Events{
		SubscriberOffer: func(sdp string) {
			c.send(wire.SessionDescription{Type: wire.TypeOffer, Target: wire.TargetSubscriber, SDP: sdp})
		},
		ICECandidate: func(target string, cand *webrtc.ICECandidateInit) {
			if target == wire.TargetPublisher {
				c.pubCands.Pass(cand)
				return
			}
			c.send(wire.Candidate{Type: wire.TypeCandidate, Target: target, Candidate: cand})
		},
		TrackPublished: func(t sfu.TrackInfo) {
			c.srv.trackPublished(c, t)
		},
		TrackUnpublished: func(t sfu.TrackInfo) {
			c.srv.trackUnpublished(c, t)
		},
		ConnectionFailed: func(target string) {
			// The client sees the failure too and reconnects.
			c.srv.metrics.connFailures.WithLabelValues(target).Inc()
			c.logger().Warn("signaling: media connection failed", "target", target)
		},
		Refused: func(rule string) {
			if rule == sfu.RuleRateExceeded {
				c.fatal(wire.CodeMediaRateExceeded, "the media server ended this session: a published track sent far beyond its rate limits (see docs/PROTOCOL.md, Limits)", "", wire.ClosePolicy)
				return
			}
			c.fatal(wire.CodeMediaRefused, fmt.Sprintf("the media server ended this session: the client broke its bound %q (see docs/PROTOCOL.md, Limits)", rule), "", wire.ClosePolicy)
		},
	}
}
