package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
	"github.com/sotto-rtc/sotto/signaling/wire"
	"golang.org/x/time/rate"
)

// session is one connection to the server: the WebSocket, its two peer
// connections and its pending requests. A reconnect builds a new one.
type session struct {
	c   *Client
	log *slog.Logger
	ws  *websocket.Conn
	// ctx ends when the session fails or is closed.
	ctx    context.Context
	cancel context.CancelFunc
	pub    *peer
	sub    *peer

	loops sync.WaitGroup // reader, writer, negotiator, keepalive
	media sync.WaitGroup // RTCP readers of the publisher's senders

	negWake chan struct{} // cap 1: a negotiation round is due

	// joined's limits: the writer keeps to the rate, and an oversized
	// message is refused here rather than by the server, fatally.
	limiter    *rate.Limiter // nil: no rate given
	maxMessage int           // 0: no size given

	mu        sync.Mutex
	pending   map[string]chan response // requests by id
	queue     []outgoing               // messages for the writer
	failed    bool
	cause     error
	fatal     *ServerError // last fatal error message received
	goingAway string       // reason of a going_away received
	nextRound *round       // negotiation round not started yet
	done      chan struct{}
	wake      chan struct{} // cap 1: the writer has something to do
}

// dial connects, joins and builds an unstarted session; ctx bounds only
// the dial and the join.
func (c *Client) dial(ctx context.Context) (*session, *wire.Joined, error) {
	token := c.opts.Token
	if c.opts.TokenSource != nil {
		t, err := c.opts.TokenSource(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("client: token source: %w", err)
		}
		token = t
	}

	// The connection outlives ctx, which cancels it only until joined.
	sctx, cancel := context.WithCancel(c.life)
	stopWatch := context.AfterFunc(ctx, cancel)
	fail := func(err error) (*session, *wire.Joined, error) {
		stopWatch()
		cancel()
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("client: connect %s: %w", c.url, ctx.Err())
		}
		if c.life.Err() != nil {
			return nil, nil, ErrClosed
		}
		return nil, nil, err
	}

	ws, _, err := websocket.Dial(sctx, c.url, nil)
	if err != nil {
		return fail(fmt.Errorf("client: dial %s: %w", c.url, err))
	}
	ws.SetReadLimit(readLimit)
	joined, err := join(sctx, ws, wire.Join{
		Type:          wire.TypeJoin,
		Protocol:      wire.ProtocolVersion,
		Token:         token,
		Room:          c.opts.Room,
		AutoSubscribe: c.opts.AutoSubscribe,
		// pion cannot revive a transceiver whose section went inactive.
		ReuseSections: new(bool),
		PublicKey:     c.opts.PublicKey,
		E2EE:          c.identity != nil,
	})
	if err != nil {
		_ = ws.CloseNow()
		return fail(err)
	}
	s, err := c.newSession(sctx, cancel, ws, joined)
	if err != nil {
		_ = ws.CloseNow()
		return fail(err)
	}
	if !stopWatch() {
		// ctx ended just now: the session is already cancelled.
		s.teardown()
		return fail(ctx.Err())
	}
	return s, joined, nil
}

// join sends the join message and reads until the server answers it.
func join(ctx context.Context, ws *websocket.Conn, j wire.Join) (*wire.Joined, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("client: join: %w", err)
	}
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		return nil, fmt.Errorf("client: send join: %w", err)
	}
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			return nil, fmt.Errorf("client: connection closed before joined: %w", err)
		}
		var env wire.Envelope
		if err := json.Unmarshal(b, &env); err != nil {
			return nil, fmt.Errorf("client: bad message from server: %w", err)
		}
		switch env.Type {
		case wire.TypeJoined:
			var m wire.Joined
			if err := json.Unmarshal(b, &m); err != nil {
				return nil, fmt.Errorf("client: bad joined message: %w", err)
			}
			return &m, nil
		case wire.TypeError:
			var m wire.Error
			if err := json.Unmarshal(b, &m); err != nil {
				return nil, fmt.Errorf("client: bad error message: %w", err)
			}
			return nil, serverError(&m)
		case wire.TypePing:
			var m wire.Ping
			if json.Unmarshal(b, &m) == nil {
				pong, _ := json.Marshal(wire.Ping{Type: wire.TypePong, ID: m.ID})
				if err := ws.Write(ctx, websocket.MessageText, pong); err != nil {
					return nil, fmt.Errorf("client: send pong: %w", err)
				}
			}
		case wire.TypeGoingAway:
			var m wire.GoingAway
			_ = json.Unmarshal(b, &m)
			if m.Reason == wire.ReasonReplaced {
				return nil, ErrReplaced
			}
			return nil, fmt.Errorf("client: server going away before joined: %s", m.Reason)
		}
	}
}

func (c *Client) newSession(ctx context.Context, cancel context.CancelFunc, ws *websocket.Conn, j *wire.Joined) (*session, error) {
	s := &session{
		c:       c,
		log:     c.log.With("sid", j.Participant.SID),
		ws:      ws,
		ctx:     ctx,
		cancel:  cancel,
		negWake: make(chan struct{}, 1),
		pending: make(map[string]chan response),
		done:    make(chan struct{}),
		wake:    make(chan struct{}, 1),

		maxMessage: j.Limits.MaxMessageBytes,
	}
	if mps := j.Limits.MessagesPerSecond; mps > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(mps), mps)
	}
	cfg := webrtc.Configuration{
		ICEServers:         iceServers(j.ICEServers),
		ICETransportPolicy: c.opts.ICETransportPolicy,
		BundlePolicy:       webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy:      webrtc.RTCPMuxPolicyRequire,
		SDPSemantics:       webrtc.SDPSemanticsUnifiedPlan,
	}
	pub, err := c.api.NewPeerConnection(cfg)
	if err != nil {
		return nil, fmt.Errorf("client: publisher connection: %w", err)
	}
	sub, err := c.api.NewPeerConnection(cfg)
	if err != nil {
		_ = pub.Close()
		return nil, fmt.Errorf("client: subscriber connection: %w", err)
	}
	s.pub = s.newPeer(wire.TargetPublisher, pub)
	s.sub = s.newPeer(wire.TargetSubscriber, sub)
	sub.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) { c.onTrack(s, t, r) })
	return s, nil
}

func iceServers(in []wire.ICEServer) []webrtc.ICEServer {
	out := make([]webrtc.ICEServer, 0, len(in))
	for _, s := range in {
		out = append(out, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	return out
}

// start runs the session's goroutines.
func (s *session) start() {
	s.loops.Go(s.readLoop)
	s.loops.Go(s.writeLoop)
	s.loops.Go(s.negotiateLoop)
	s.loops.Go(s.keepalive)
}

func (s *session) isFailed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// err is why the session ended: the server's fatal error or going_away,
// else fail's cause.
func (s *session) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.goingAway == wire.ReasonReplaced:
		return ErrReplaced
	case s.fatal != nil:
		return s.fatal
	case s.goingAway != "":
		return fmt.Errorf("client: server going away (%s): %w", s.goingAway, s.cause)
	}
	return s.cause
}

// fail ends the session, its requests and goroutines; once.
func (s *session) fail(cause error) {
	s.mu.Lock()
	if s.failed {
		s.mu.Unlock()
		return
	}
	s.failed = true
	s.cause = cause
	pending := s.pending
	s.pending = nil
	r := s.nextRound
	s.nextRound = nil
	s.queue = nil
	reqErr := s.requestErrLocked()
	s.mu.Unlock()
	s.log.Debug("client: session ended", "cause", cause)

	s.cancel()
	close(s.done)
	for _, ch := range pending {
		ch <- response{err: reqErr}
	}
	if r != nil {
		r.err = reqErr
		close(r.done)
	}
}

// requestErrLocked is what a request on a failed session returns.
func (s *session) requestErrLocked() error {
	if errors.Is(s.cause, ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrDisconnected, s.cause)
}

// close ends the session with a close handshake, so the server sees the
// client go rather than vanish.
func (s *session) close() {
	if !s.isFailed() {
		_ = s.ws.Close(websocket.StatusNormalClosure, "")
	}
	s.fail(ErrClosed)
	s.teardown()
}

// teardown waits for the goroutines and closes the connections.
func (s *session) teardown() {
	s.fail(ErrClosed)
	_ = s.ws.CloseNow()
	s.loops.Wait()
	if err := s.pub.pc.Close(); err != nil {
		s.log.Debug("client: close publisher connection", "err", err)
	}
	if err := s.sub.pc.Close(); err != nil {
		s.log.Debug("client: close subscriber connection", "err", err)
	}
	s.media.Wait()
}

// goMedia runs fn as a media goroutine unless the session has failed
// (teardown may already be waiting).
func (s *session) goMedia(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed {
		return
	}
	s.media.Go(fn)
}
