package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
	"github.com/sotto-rtc/sotto/signaling/wire"
	"golang.org/x/time/rate"
)

// session is one connection to the server: the WebSocket, the two peer
// connections built for it, and the requests waiting for an answer on it.
// A reconnect builds a new session; nothing of the old one is reused but
// the application's TrackLocals.
type session struct {
	c   *Client
	log *slog.Logger
	ws  *websocket.Conn
	// ctx ends when the session fails or is closed; every goroutine of the
	// session watches it.
	ctx    context.Context
	cancel context.CancelFunc
	pub    *peer
	sub    *peer

	loops sync.WaitGroup // reader, writer, negotiator, keepalive
	media sync.WaitGroup // RTCP readers of the publisher's senders

	negWake chan struct{} // cap 1: a negotiation round is due

	// The server's limits on this connection, as joined told them: the
	// writer keeps to the message rate (the server drops what exceeds it,
	// and closes a connection that keeps exceeding it) and a message
	// above the size limit is refused here rather than by a fatal error.
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

// response is what answers a request: an ack (nothing), an answer's SDP, or
// an error.
type response struct {
	sdp string
	err error
}

type outgoing struct {
	data    []byte
	written chan error // optional, cap 1
}

// dial connects and joins, and builds the session's peer connections. The
// session is not started. ctx bounds only the dial and the join.
func (c *Client) dial(ctx context.Context) (*session, *wire.Joined, error) {
	token := c.opts.Token
	if c.opts.TokenSource != nil {
		t, err := c.opts.TokenSource(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("client: token source: %w", err)
		}
		token = t
	}

	// The connection must outlive ctx, so it is dialled with a context of
	// its own that ctx cancels only until the join is through.
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
		// pion stops a transceiver for good when its section goes
		// inactive (pion/webrtc#2226), so a reused section would stay
		// silent here.
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

// err is why the session ended: a fatal server error or going_away if the
// server sent one, the cause given to fail otherwise.
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

// fail ends the session: its requests fail, its goroutines stop. Only the
// first call does anything.
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

// close ends the session gracefully: a WebSocket close handshake, so the
// server sees the client go rather than vanish.
func (s *session) close() {
	if !s.isFailed() {
		_ = s.ws.Close(websocket.StatusNormalClosure, "")
	}
	s.fail(ErrClosed)
	s.teardown()
}

// teardown waits for the session's goroutines and closes its connections.
// The session must have failed (or never started).
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

// goMedia runs fn as a media goroutine of the session, unless the session
// has failed (then teardown may already be waiting).
func (s *session) goMedia(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed {
		return
	}
	s.media.Go(fn)
}

// send queues a message for the writer.
func (s *session) send(msg any) error {
	return s.enqueue(msg, nil)
}

func (s *session) enqueue(msg any, written chan error) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("client: encode message: %w", err)
	}
	if s.maxMessage > 0 && len(b) > s.maxMessage {
		return fmt.Errorf("%w: message of %d bytes, the server accepts at most %d",
			ErrMessageTooLarge, len(b), s.maxMessage)
	}
	s.mu.Lock()
	if s.failed {
		err := s.requestErrLocked()
		s.mu.Unlock()
		return err
	}
	if len(s.queue) >= maxQueuedMessages {
		s.mu.Unlock()
		s.fail(errors.New("client: server is not reading: send queue full"))
		return s.requestErr()
	}
	s.queue = append(s.queue, outgoing{data: b, written: written})
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

func (s *session) requestErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requestErrLocked()
}

// sendSync sends msg and waits until it is written.
func (s *session) sendSync(ctx context.Context, msg any) error {
	written := make(chan error, 1)
	if err := s.enqueue(msg, written); err != nil {
		return err
	}
	select {
	case err := <-written:
		if err != nil {
			return fmt.Errorf("%w: %w", ErrDisconnected, err)
		}
		return nil
	case <-s.done:
		return s.requestErr()
	case <-ctx.Done():
		return ctx.Err()
	}
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

func (s *session) writeLoop() {
	for {
		select {
		case <-s.wake:
		case <-s.ctx.Done():
			return
		}
		for {
			s.mu.Lock()
			if len(s.queue) == 0 || s.failed {
				s.mu.Unlock()
				break
			}
			m := s.queue[0]
			s.queue[0] = outgoing{}
			s.queue = s.queue[1:]
			s.mu.Unlock()

			if s.limiter != nil {
				if err := s.limiter.Wait(s.ctx); err != nil {
					if m.written != nil {
						m.written <- err
					}
					return
				}
			}
			ctx, cancel := context.WithTimeout(s.ctx, writeTimeout)
			err := s.ws.Write(ctx, websocket.MessageText, m.data)
			cancel()
			if m.written != nil {
				m.written <- err
			}
			if err != nil {
				s.fail(fmt.Errorf("client: write: %w", err))
				return
			}
		}
	}
}

func (s *session) keepalive() {
	t := time.NewTicker(keepaliveInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, keepaliveInterval)
		err := s.ws.Ping(ctx)
		cancel()
		if err != nil {
			s.fail(fmt.Errorf("client: keepalive: %w", err))
			return
		}
	}
}

func (s *session) readLoop() {
	for {
		typ, b, err := s.ws.Read(s.ctx)
		if err != nil {
			s.fail(fmt.Errorf("client: read: %w", err))
			return
		}
		if typ != websocket.MessageText {
			continue
		}
		if err := s.handle(b); err != nil {
			s.log.Warn("client: message from server ignored", "err", err)
		}
	}
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
		var m wire.Ping
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		return s.send(wire.Ping{Type: wire.TypePong, ID: m.ID})
	case wire.TypePong:
		return nil
	case wire.TypeAnswer:
		var m wire.SessionDescription
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("answer: %w", err)
		}
		if m.Target != wire.TargetPublisher || !s.resolve(m.ID, response{sdp: m.SDP}) {
			return fmt.Errorf("answer %q for %s matches no offer", m.ID, m.Target)
		}
	case wire.TypeOffer:
		var m wire.SessionDescription
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("offer: %w", err)
		}
		if m.Target != wire.TargetSubscriber {
			return fmt.Errorf("offer for %q", m.Target)
		}
		s.answerSubscriber(m)
	case wire.TypeCandidate:
		var m wire.Candidate
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("candidate: %w", err)
		}
		var p *peer
		switch m.Target {
		case wire.TargetPublisher:
			p = s.pub
		case wire.TargetSubscriber:
			p = s.sub
		default:
			return fmt.Errorf("candidate for %q", m.Target)
		}
		if m.Candidate != nil {
			return p.addRemoteCandidate(*m.Candidate)
		}
	case wire.TypeAck:
		var m wire.Ack
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("ack: %w", err)
		}
		s.resolve(m.ID, response{})
	case wire.TypeError:
		var m wire.Error
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("error: %w", err)
		}
		se := serverError(&m)
		if se.Fatal {
			s.mu.Lock()
			s.fatal = se
			s.mu.Unlock()
		}
		if !s.resolve(se.RefID, response{err: se}) && !se.Fatal {
			c.onServerError(s, se)
		}
		s.log.Debug("client: server error", "code", se.Code, "message", se.Message, "ref", se.Ref, "fatal", se.Fatal)
	case wire.TypeGoingAway:
		var m wire.GoingAway
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("going_away: %w", err)
		}
		s.mu.Lock()
		s.goingAway = m.Reason
		s.mu.Unlock()
		s.log.Info("client: server going away", "reason", m.Reason, "message", m.Message)
	case wire.TypeParticipantJoin:
		var m wire.ParticipantJoined
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("participant_joined: %w", err)
		}
		c.onParticipantJoined(s, &m)
	case wire.TypeParticipantLeft:
		var m wire.ParticipantLeft
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("participant_left: %w", err)
		}
		c.onParticipantLeft(s, &m)
	case wire.TypeTrackPublished:
		var m wire.TrackPublished
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("track_published: %w", err)
		}
		c.onTrackPublished(s, m.Track)
	case wire.TypeTrackUnpublished:
		var m wire.TrackUnpublished
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("track_unpublished: %w", err)
		}
		c.onTrackUnpublished(s, &m)
	case wire.TypeTrackMuted:
		var m wire.TrackMuted
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("track_muted: %w", err)
		}
		c.onTrackMuted(s, &m)
	case wire.TypeRelay:
		var m wire.Relay
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		c.onRelay(s, &m)
	default:
		// A newer server may send more; v1 clients ignore what they do
		// not know.
		s.log.Debug("client: unknown message type", "type", env.Type)
	}
	return nil
}

// answerSubscriber answers the server's offer on the subscriber connection.
// A failure leaves the connection in a state no later offer can repair, so
// the session is dropped and the client reconnects.
func (s *session) answerSubscriber(m wire.SessionDescription) {
	answer, err := s.sub.answer(m.SDP)
	if err != nil {
		s.fail(err)
		return
	}
	if err := s.send(wire.SessionDescription{
		Type: wire.TypeAnswer, ID: m.ID, Target: wire.TargetSubscriber, SDP: answer,
	}); err != nil {
		return
	}
	// Local candidates go out only after the answer they belong to.
	s.sub.gate.release()
}

// peer is one of the session's two peer connections, with the remote
// candidates that arrived before its remote description and the local ones
// held back until the description they belong to has been sent.
type peer struct {
	s      *session
	target string
	pc     *webrtc.PeerConnection
	gate   candidateGate

	mu        sync.Mutex // orders SetRemoteDescription with AddICECandidate
	remoteSet bool
	early     []webrtc.ICECandidateInit
}

func (s *session) newPeer(target string, pc *webrtc.PeerConnection) *peer {
	p := &peer{s: s, target: target, pc: pc}
	p.gate.emit = func(c *webrtc.ICECandidateInit) {
		_ = s.send(wire.Candidate{Type: wire.TypeCandidate, Target: target, Candidate: c})
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		var init *webrtc.ICECandidateInit
		if c != nil {
			j := c.ToJSON()
			init = &j
		}
		p.gate.offer(init)
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed {
			s.fail(fmt.Errorf("client: %s connection failed", target))
		}
	})
	return p
}

func (p *peer) addRemoteCandidate(c webrtc.ICECandidateInit) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.remoteSet {
		if len(p.early) >= maxEarlyCandidates {
			return fmt.Errorf("more than %d early %s candidates", maxEarlyCandidates, p.target)
		}
		p.early = append(p.early, c)
		return nil
	}
	if err := p.pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("%s candidate: %w", p.target, err)
	}
	return nil
}

// setRemoteLocked applies a remote description and the candidates that waited
// for it. Called with p.mu held.
func (p *peer) setRemoteLocked(d webrtc.SessionDescription) error {
	if err := p.pc.SetRemoteDescription(d); err != nil {
		return fmt.Errorf("client: %s remote %s: %w", p.target, d.Type, err)
	}
	p.remoteSet = true
	for _, c := range p.early {
		if err := p.pc.AddICECandidate(c); err != nil {
			p.s.log.Debug("client: early candidate refused", "target", p.target, "err", err)
		}
	}
	p.early = nil
	return nil
}

// answer applies an offer and returns the answer.
func (p *peer) answer(offer string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.setRemoteLocked(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", err
	}
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("client: %s answer: %w", p.target, err)
	}
	if err := p.pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("client: %s answer: %w", p.target, err)
	}
	return answer.SDP, nil
}

// applyAnswer applies the server's answer to the last offer.
func (p *peer) applyAnswer(sdp string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.setRemoteLocked(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp})
}

// candidateGate holds local candidates until the description they belong
// to has been sent, so the server never sees a candidate first. Gathering
// starts in SetLocalDescription, before the description goes out.
type candidateGate struct {
	mu   sync.Mutex
	open bool
	held []*webrtc.ICECandidateInit
	emit func(*webrtc.ICECandidateInit)
}

func (g *candidateGate) offer(c *webrtc.ICECandidateInit) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.open {
		g.held = append(g.held, c)
		return
	}
	g.emit(c)
}

func (g *candidateGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open {
		return
	}
	g.open = true
	for _, c := range g.held {
		g.emit(c)
	}
	g.held = nil
}
