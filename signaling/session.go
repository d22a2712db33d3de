package signaling

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
	"golang.org/x/time/rate"

	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

const (
	// outboundQueue is how many of the server's own messages may wait for
	// one client (relays are bounded apart, by ServerLimits). A client that
	// lets more pile up is disconnected: one slow reader must never hold up
	// a broadcast to the others.
	outboundQueue = 256
	// relayFloodAt is how many relays may be refused to one sender within
	// floodWindow before it is ended with relay_flood.
	relayFloodAt = 16
	// writeTimeout bounds writing one message to a client.
	writeTimeout = 10 * time.Second
	// closeGrace bounds everything after a session is told to close
	// (flushing its queue, the close handshake); then the TCP connection
	// is closed outright.
	closeGrace = 12 * time.Second
	// drainTimeout bounds reading the rest of an oversized message.
	drainTimeout = 5 * time.Second
	// slowTimeout bounds the closing of a too-slow client: its socket is
	// likely full, and the attempt to tell it why may never complete.
	slowTimeout = time.Second
	// maxListedSIDs bounds the track sids named in one error message.
	maxListedSIDs = 8
	// maxPublicKeyBytes bounds join.public_key.
	maxPublicKeyBytes = 1024
	// maxEchoBytes bounds a client-supplied string quoted in an error.
	maxEchoBytes = 64
)

// Participant-left reasons besides ReasonReplaced and ReasonShutdown.
const (
	reasonLeft         = "left"
	reasonDisconnected = "disconnected"
)

// errMessageTooLarge is readMessage's report of a frame above the limit.
var errMessageTooLarge = errors.New("signaling: message too large")

// outbound is one encoded message waiting for the writer.
type outbound struct {
	data []byte
	// written, when set, runs after the message is written.
	written func()
	// from is the relay's sender; nil for the server's own messages.
	from *session
}

// relayLoad is an amount of relay traffic waiting in a queue.
type relayLoad struct{ msgs, bytes int }

// closing is the last thing the writer does for a session.
type closing struct {
	data   []byte               // a final message (error or going_away), or nil
	code   websocket.StatusCode // 0: drop the connection without a close handshake
	reason string
	// flush writes what is queued before data; false drops it (a client
	// that is too slow to take its queue).
	flush bool
	// within, when set, bounds the whole closing (writing data included);
	// otherwise writes take up to writeTimeout and the closing closeGrace.
	within time.Duration
}

// session is one WebSocket connection. Its reader runs on the HTTP
// handler's goroutine; a writer goroutine drains its outbound queue; a
// keepalive goroutine pings. Media events for its participant run on
// media's goroutine and only queue messages.
type session struct {
	srv      *Server
	conn     *websocket.Conn
	raw      net.Conn // the hijacked TCP connection: the last resort to close
	addr     string
	accepted time.Time
	logp     atomic.Pointer[slog.Logger]

	out        chan outbound // the server's own messages
	relays     chan outbound // relays from others, written after out
	final      chan closing  // capacity 1; sent to exactly once
	writerDone chan struct{}
	ctx        context.Context
	cancel     context.CancelFunc

	// mu is the innermost lock: no other lock is taken and nothing blocks
	// while it is held.
	mu          sync.Mutex
	closing     bool // the final is sent; nothing more is queued
	leftReason  string
	joinStarted bool
	forceClose  *time.Timer
	// The outbound queue's accounting: the server's own messages and
	// relays are bounded apart, and each sender's relays to a share, so
	// that a peer can fill neither the server's part nor another's share.
	serverQueued int
	relayQueued  relayLoad
	relayFrom    map[*session]relayLoad

	// negMu orders the publisher's answer before its candidates. Media
	// hands out the answer's candidates once HandleOffer returns, on its
	// own goroutine, while the answer is queued here after the return: a
	// candidate could otherwise reach the client ahead of the answer it
	// belongs to, and browsers refuse those. Lock order: negMu, then mu.
	negMu        sync.Mutex
	offerPending bool
	heldCands    []*webrtc.ICECandidateInit

	// Owned by the reader goroutine. room and member are set when a place
	// is reserved, participant after the media join; media events, which
	// start only after that (Participant.Start), read them too.
	guard       *messageGuard
	offerDone   chan struct{} // closed when the publisher offer being applied is answered
	relayBudget *rate.Limiter
	relayTally  refusalTally
	unjoinedKey string // set while the connection holds an unjoined slot
	joinTimer   *time.Timer
	joined      bool
	room        *room
	member      *member
	participant *sfu.Participant
}

func newSession(srv *Server, conn *websocket.Conn, raw net.Conn, addr string) *session {
	ctx, cancel := context.WithCancel(context.Background())
	c := &session{
		srv:         srv,
		conn:        conn,
		raw:         raw,
		addr:        addr,
		accepted:    time.Now(),
		out:         make(chan outbound, outboundQueue),
		relays:      make(chan outbound, srv.limits.RelayQueueMessages),
		final:       make(chan closing, 1),
		writerDone:  make(chan struct{}),
		ctx:         ctx,
		cancel:      cancel,
		guard:       newMessageGuard(srv.limits),
		relayBudget: rate.NewLimiter(rate.Limit(srv.limits.RelayBytesPerSecond), srv.limits.RelayBurstBytes),
		relayFrom:   make(map[*session]relayLoad),
	}
	c.logp.Store(srv.log.With("remote", addr))
	return c
}

func (c *session) logger() *slog.Logger { return c.logp.Load() }

// run serves the connection until it ends, then takes the participant out
// of its room and the SFU.
func (c *session) run() {
	// The library's own limit is twice ours: a message just over our limit
	// is then read to its end, so the client can be told why it is being
	// closed (see readMessage). Of a message beyond twice the limit only
	// that much is read: the close (1009, message_too_large) then follows
	// unread data, which the kernel may turn into a reset.
	c.conn.SetReadLimit(2 * int64(c.srv.limits.MaxMessageBytes))
	go c.writeLoop()
	go c.keepalive()
	c.joinTimer = time.AfterFunc(c.srv.cfg.JoinTimeout, c.joinTimedOut)

	c.readLoop()

	c.joinTimer.Stop()
	c.releaseUnjoined()
	// If nothing else closed the session, the peer went away: drop the
	// connection without a handshake.
	c.fail(closing{}, reasonDisconnected)
	reason := c.reason()
	if c.member != nil {
		c.srv.release(c, reason)
	}
	if c.participant != nil {
		c.participant.Close()
	}
	if c.offerDone != nil {
		<-c.offerDone // its media calls end with the participant
	}
	<-c.writerDone
	c.cancel()
	_ = c.conn.CloseNow()
	c.mu.Lock()
	if c.forceClose != nil {
		c.forceClose.Stop()
	}
	c.mu.Unlock()
	if c.joined {
		c.logger().Info("signaling: participant left", "reason", reason)
	}
}

func (c *session) reason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leftReason
}

// enqueue queues one of the server's own messages for the writer without
// blocking. If outboundQueue of them wait already the client is too slow:
// it is disconnected (CodeInternal, close CloseInternal so that it
// reconnects) and the message dropped. It reports whether m was queued.
func (c *session) enqueue(m outbound) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	if c.serverQueued < outboundQueue {
		select {
		case c.out <- m:
			c.serverQueued++
			c.mu.Unlock()
			return true
		default:
		}
	}
	c.failLocked(closing{
		data:   errorFrame(wire.Error{Code: wire.CodeInternal, Message: fmt.Sprintf("too slow: more than %d messages waited for this client", outboundQueue), Fatal: true}),
		code:   wire.CloseInternal,
		reason: wire.CodeInternal,
		within: slowTimeout,
	}, reasonDisconnected)
	c.mu.Unlock()

	c.srv.metrics.slowDisconnect.Inc()
	c.srv.metrics.errors.WithLabelValues(wire.CodeInternal).Inc()
	c.logger().Warn("signaling: client too slow; outbound queue full", "queued", outboundQueue)
	return false
}

// Why a relay does not fit a receiver's queue (metric label values).
const (
	refusedSenderBudget = "sender_budget"
	refusedShare        = "receiver_share"
	refusedQueue        = "receiver_queue"
)

// relayFits reports why a relay frame of n bytes from from would not fit
// c's queue, or "" if it fits. Relays are added only under the room's
// lock, which the caller holds, so a fit stays one until enqueueRelay.
func (c *session) relayFits(from *session, n int, share relayLoad) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		// Dropped at enqueueRelay: a leaving receiver refuses nobody.
		return ""
	}
	lim := c.srv.limits
	if c.relayQueued.msgs >= lim.RelayQueueMessages || c.relayQueued.bytes+n > lim.RelayQueueBytes {
		return refusedQueue
	}
	if l := c.relayFrom[from]; l.msgs >= share.msgs || l.bytes+n > share.bytes {
		return refusedShare
	}
	return ""
}

// enqueueRelay queues a relay frame from from; relayFits said it fits.
// A relay never makes the receiver too slow: its sender is refused.
func (c *session) enqueueRelay(from *session, frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	select {
	case c.relays <- outbound{data: frame, from: from}:
	default:
		// Not reached: the channel holds both bounds.
		return
	}
	c.relayQueued.msgs++
	c.relayQueued.bytes += len(frame)
	l := c.relayFrom[from]
	c.relayFrom[from] = relayLoad{l.msgs + 1, l.bytes + len(frame)}
}

// dequeued gives m's place in the queue back once it is written.
func (c *session) dequeued(m outbound) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.from == nil {
		c.serverQueued--
		return
	}
	c.relayQueued.msgs--
	c.relayQueued.bytes -= len(m.data)
	l := c.relayFrom[m.from]
	if l.msgs <= 1 {
		delete(c.relayFrom, m.from)
		return
	}
	c.relayFrom[m.from] = relayLoad{l.msgs - 1, l.bytes - len(m.data)}
}

// releaseUnjoined gives back the connection's unjoined slot, once.
func (c *session) releaseUnjoined() {
	if c.unjoinedKey != "" {
		c.srv.unjoined.release(c.unjoinedKey)
		c.srv.metrics.unjoined.Dec()
		c.unjoinedKey = ""
	}
}

// fail makes f the session's last act, unless one was already chosen.
func (c *session) fail(f closing, leftReason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failLocked(f, leftReason)
}

func (c *session) failLocked(f closing, leftReason string) {
	if c.closing {
		return
	}
	c.closing = true
	c.leftReason = leftReason
	c.final <- f // never blocks: capacity 1, sent once
	grace := closeGrace
	if f.within > 0 {
		// The writer may be stuck in a write to a full socket: this is
		// what ends it.
		grace = f.within
	}
	c.forceClose = time.AfterFunc(grace, c.abort)
}

// abort closes the TCP connection at once. Everything blocked on it
// returns, and the session ends.
func (c *session) abort() {
	c.fail(closing{}, reasonDisconnected)
	if c.raw != nil {
		_ = c.raw.Close()
		return
	}
	_ = c.conn.CloseNow()
}

// goAway sends going_away and closes the connection with code.
func (c *session) goAway(reason, message string, code websocket.StatusCode, leftReason string) {
	data, err := json.Marshal(wire.GoingAway{Type: wire.TypeGoingAway, Reason: reason, Message: message})
	if err != nil {
		// Strings only: cannot fail.
		panic(fmt.Sprintf("signaling: encode going_away: %v", err))
	}
	c.fail(closing{data: data, code: code, reason: reason, flush: true}, leftReason)
}

// send encodes v and queues it.
func (c *session) send(v any) {
	data, err := json.Marshal(v)
	if err != nil {
		c.logger().Error("signaling: encode message", "type", fmt.Sprintf("%T", v), "err", err)
		return
	}
	c.enqueue(outbound{data: data})
}

// sendError queues a non-fatal error.
func (c *session) sendError(code, message, ref, refID string) {
	c.srv.metrics.errors.WithLabelValues(code).Inc()
	c.enqueue(outbound{data: errorFrame(wire.Error{Code: code, Message: message, Ref: ref, RefID: refID})})
}

// fatal sends a fatal error after what is queued and closes the
// connection with code.
func (c *session) fatal(code, message, ref string, closeCode websocket.StatusCode) {
	c.srv.metrics.errors.WithLabelValues(code).Inc()
	c.logger().Info("signaling: closing connection", "code", code, "message", message)
	c.fail(closing{
		data:   errorFrame(wire.Error{Code: code, Message: message, Ref: ref, Fatal: true}),
		code:   closeCode,
		reason: code,
		flush:  true,
	}, reasonDisconnected)
}

func errorFrame(e wire.Error) []byte {
	e.Type = wire.TypeError
	data, err := json.Marshal(e)
	if err != nil {
		// Strings and a bool: cannot fail.
		panic(fmt.Sprintf("signaling: encode error: %v", err))
	}
	return data
}

// writeLoop writes queued messages until the session's closing is chosen,
// then carries it out.
// writeLoop writes the server's own messages before relays, so that
// relays from others, however many wait, never hold them up: "too slow"
// then judges a client on its own traffic alone.
func (c *session) writeLoop() {
	defer close(c.writerDone)
	for {
		var m outbound
		select {
		case m = <-c.out:
		case f := <-c.final:
			c.finish(f)
			return
		default:
			select {
			case m = <-c.out:
			case m = <-c.relays:
			case f := <-c.final:
				c.finish(f)
				return
			}
		}
		if !c.write(m) {
			return
		}
	}
}

func (c *session) finish(f closing) {
	if f.flush {
		// Once closing is set nothing more is queued, so this ends.
		for m, ok := c.queued(); ok; m, ok = c.queued() {
			if !c.write(m) {
				return
			}
		}
	}
	if f.data != nil && !c.writeWithin(outbound{data: f.data}, f.within) {
		return
	}
	if f.code == 0 {
		_ = c.conn.CloseNow()
		return
	}
	if err := c.conn.Close(f.code, f.reason); err != nil {
		c.logger().Debug("signaling: close handshake", "err", err)
	}
}

// queued takes the next message waiting, the server's own first.
func (c *session) queued() (outbound, bool) {
	select {
	case m := <-c.out:
		return m, true
	default:
	}
	select {
	case m := <-c.relays:
		return m, true
	default:
		return outbound{}, false
	}
}

func (c *session) write(m outbound) bool {
	ok := c.writeWithin(m, writeTimeout)
	c.dequeued(m)
	return ok
}

// writeWithin writes m within timeout (0: writeTimeout). On failure the
// connection is closed.
func (c *session) writeWithin(m outbound, timeout time.Duration) bool {
	if timeout <= 0 {
		timeout = writeTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, m.data); err != nil {
		c.logger().Debug("signaling: write failed", "err", err)
		c.abort()
		return false
	}
	if m.written != nil {
		m.written()
	}
	return true
}

// keepalive pings at the WebSocket level; a peer that does not answer
// within an interval is gone.
func (c *session) keepalive() {
	interval := c.srv.cfg.PingInterval
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.ctx, interval)
		err := c.conn.Ping(ctx)
		cancel()
		if err != nil {
			if c.ctx.Err() == nil {
				c.logger().Info("signaling: keepalive failed", "err", err)
				c.abort()
			}
			return
		}
	}
}

func (c *session) joinTimedOut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.joinStarted || c.closing {
		return
	}
	msg := fmt.Sprintf("no join within %v", c.srv.cfg.JoinTimeout)
	c.srv.metrics.errors.WithLabelValues(wire.CodeNotJoined).Inc()
	c.failLocked(closing{
		data:   errorFrame(wire.Error{Code: wire.CodeNotJoined, Message: msg, Fatal: true}),
		code:   wire.CloseProtocolError,
		reason: wire.CodeNotJoined,
		flush:  true,
	}, reasonDisconnected)
}

// beginJoin stops the join timer's effect; false if it already fired.
func (c *session) beginJoin() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.joinStarted = true
	return true
}

func (c *session) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// readLoop reads and handles messages until the connection ends or a
// handler ends the session.
func (c *session) readLoop() {
	for {
		data, binary, err := c.readMessage()
		if errors.Is(err, errMessageTooLarge) {
			c.fatal(wire.CodeMessageTooLarge, fmt.Sprintf("messages are limited to %d bytes", c.srv.limits.MaxMessageBytes), "", wire.CloseTooBig)
			return
		}
		if err != nil {
			if !c.isClosing() {
				c.logger().Debug("signaling: read ended", "err", err)
			}
			return
		}
		if c.isClosing() {
			// Replaced, shut down or too slow: what it asks for now would
			// not be answered.
			return
		}
		switch c.guard.check(time.Now()) {
		case verdictAllow:
		case verdictDropReply:
			ref, refID := requestRef(data, binary)
			c.sendError(wire.CodeRateLimited, fmt.Sprintf("more than %v messages per second; message dropped", c.srv.limits.MessagesPerSecond), ref, refID)
			continue
		case verdictDropSilent:
			continue
		case verdictFlood:
			c.logger().Warn("signaling: flood")
			c.fatal(wire.CodeFlood, "rate limit exceeded persistently", "", wire.ClosePolicy)
			return
		}
		if binary {
			c.srv.metrics.message("")
			if !c.joined {
				c.fatal(wire.CodeBadMessage, "messages are JSON in text frames (before join)", "", wire.CloseProtocolError)
				return
			}
			c.sendError(wire.CodeBadMessage, "messages are JSON in text frames", "", "")
			continue
		}
		if !c.handle(data) {
			return
		}
	}
}

// readMessage reads one message, at most MaxMessageBytes of it. A larger
// message is read to its end and discarded (bounded in size by the
// library's limit and in time by drainTimeout), so that the error and the
// close that follow reach a client that is not reading yet: closing a
// socket with unread data would reset it and could lose them.
func (c *session) readMessage() (data []byte, binary bool, err error) {
	typ, r, err := c.conn.Reader(c.ctx)
	if err != nil {
		return nil, false, fmt.Errorf("signaling: read: %w", err)
	}
	limit := c.srv.limits.MaxMessageBytes
	data, err = io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, false, fmt.Errorf("signaling: read: %w", err)
	}
	if len(data) > limit {
		t := time.AfterFunc(drainTimeout, c.abort)
		// Up to the library's limit and not past it: beyond, the library
		// would close with a reason of its own, not our code.
		_, _ = io.CopyN(io.Discard, r, int64(limit))
		t.Stop()
		return nil, false, errMessageTooLarge
	}
	return data, typ == websocket.MessageBinary, nil
}

// handle handles one message; false ends the session. Decoding is
// DecodeClientMessage's; what a decoding failure means depends on where
// the session is, so it is judged here.
func (c *session) handle(data []byte) bool {
	typ, msg, err := DecodeClientMessage(data)
	var bad *DecodeError
	if err != nil && !errors.As(err, &bad) {
		bad = &DecodeError{Code: wire.CodeBadMessage, Type: typ, Message: err.Error(), Err: err}
	}
	c.srv.metrics.message(typ)
	if !c.joined {
		// Before join only a well-formed ping or a join is taken: anything
		// else is a client that does not speak this protocol.
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
	if bad != nil && (bad.Type == "" || bad.Code == wire.CodeUnknownType) {
		_, refID := requestRef(data, false)
		c.sendError(bad.Code, bad.Message, truncate(bad.Type, maxEchoBytes), refID)
		return true
	}
	if c.offerDone != nil {
		select {
		case <-c.offerDone:
			c.offerDone = nil
		default:
			if sd, ok := msg.(*wire.SessionDescription); ok && typ == wire.TypeOffer {
				c.sendError(wire.CodeOfferPending, "a publisher offer is still being answered: send the next one after its answer", wire.TypeOffer, sd.ID)
				return true
			}
			// Everything else is handled in order, after the offer.
			<-c.offerDone
			c.offerDone = nil
		}
	}
	switch typ {
	case wire.TypeJoin:
		c.sendError(wire.CodeAlreadyJoined, "this connection has joined already", wire.TypeJoin, "")
		return true
	case wire.TypePong:
		// An answer to nothing the server asks; nothing to do, whatever
		// it holds.
		return true
	case wire.TypeLeave:
		c.fail(closing{code: wire.CloseNormal, reason: reasonLeft, flush: true}, reasonLeft)
		return false
	case wire.TypePing:
		c.ping(msg, bad)
		return true
	}
	if bad != nil {
		// The request's id, when it has one, even if another field is
		// of the wrong type: every request with an id gets a reply naming it.
		_, refID := requestRef(data, false)
		c.sendError(wire.CodeBadMessage, bad.Message, typ, refID)
		return true
	}
	switch m := msg.(type) {
	case *wire.SessionDescription:
		if typ == wire.TypeOffer {
			// Applied aside, so that another offer meanwhile is seen and
			// refused (offer_pending) rather than answered out of turn.
			done := make(chan struct{})
			c.offerDone = done
			go func() {
				defer close(done)
				if hook := testOfferHook.Load(); hook != nil {
					(*hook)(m.ID)
				}
				c.offer(m)
			}()
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
	return true
}

// testOfferHook, set only by tests, runs before a publisher offer is
// applied, so that a test can hold one there.
var testOfferHook atomic.Pointer[func(id string)]

// requestRef is the type and id of a message that is refused unread, when
// it has them, so that the refusal names the request.
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

// join admits the client: it checks the version, the join rate of its
// address and its token, holds a place in the room, joins the SFU, and
// then (one critical section, see room.go) sends "joined" and tells the
// room. Every refusal is fatal.
func (c *session) join(msg any, bad *DecodeError) bool {
	if !c.beginJoin() {
		return false
	}
	refuse := func(code, msg string, closeCode websocket.StatusCode) bool {
		c.srv.metrics.joins.WithLabelValues(code).Inc()
		c.fatal(code, msg, wire.TypeJoin, closeCode)
		return false
	}
	if bad != nil {
		return refuse(wire.CodeBadMessage, bad.Message, wire.CloseProtocolError)
	}
	j, _ := msg.(*wire.Join)
	if j.Protocol != wire.ProtocolVersion {
		return refuse(wire.CodeVersion, fmt.Sprintf("protocol %d is not supported; this server speaks protocol %d", j.Protocol, wire.ProtocolVersion), wire.CloseProtocolError)
	}
	if len(j.PublicKey) > maxPublicKeyBytes {
		return refuse(wire.CodeBadMessage, fmt.Sprintf("public_key is longer than %d bytes", maxPublicKeyBytes), wire.ClosePolicy)
	}
	if !c.srv.joins.allow(c.addr, time.Now()) {
		return refuse(wire.CodeJoinRateLimited, "too many joins from this address; retry later", wire.ClosePolicy)
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
		return refuse(te.Code, msg, wire.ClosePolicy)
	}
	if j.Room != "" && j.Room != claims.Room {
		return refuse(wire.CodeRoomMismatch, fmt.Sprintf("the token is for another room than %q", truncate(j.Room, maxEchoBytes)), wire.ClosePolicy)
	}
	if j.AutoSubscribe != nil && *j.AutoSubscribe && !claims.CanSubscribe {
		// Only an explicit true: the default is quietly off without the grant.
		return refuse(wire.CodePermissionDenied, "auto_subscribe is true but the token does not grant subscribing", wire.ClosePolicy)
	}

	identity := claims.Subject
	sid := "PA_" + rand.Text()
	m := &member{
		sess: c,
		info: wire.ParticipantInfo{
			SID:          sid,
			Identity:     identity,
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
	c.logp.Store(c.logger().With("room", claims.Room, "identity", identity, "sid", sid))

	p, err := c.srv.sfu.Join(sfu.ParticipantConfig{
		Room:          claims.Room,
		SID:           sid,
		Identity:      identity,
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

	joined := wire.Joined{
		Type:       wire.TypeJoined,
		Protocol:   wire.ProtocolVersion,
		Room:       claims.Room,
		ICEServers: c.srv.iceServers(identity),
		Limits:     c.srv.limits.wire(),
	}
	// Given back before the client can see joined, so its slot is free
	// by the time it acts on it.
	c.releaseUnjoined()
	if !c.srv.announce(c, joined) {
		// Replaced or closed while joining; whoever closed it has told
		// the client why.
		c.srv.metrics.joins.WithLabelValues("aborted").Inc()
		return false
	}
	c.joined = true
	c.srv.metrics.joins.WithLabelValues("ok").Inc()
	c.logger().Info("signaling: participant joined", "publish", claims.CanPublish, "subscribe", claims.CanSubscribe)
	p.Start()
	return true
}

func (c *session) observeJoin() {
	c.srv.metrics.joinDuration.Observe(time.Since(c.accepted).Seconds())
}

// mediaEvents are the callbacks media makes for this session's
// participant. They run on media's goroutine for it, one at a time, and
// only queue messages.
func (c *session) mediaEvents() sfu.Events {
	return sfu.Events{
		SubscriberOffer: func(sdp string) {
			c.send(wire.SessionDescription{Type: wire.TypeOffer, Target: wire.TargetSubscriber, SDP: sdp})
		},
		ICECandidate: func(target string, cand *webrtc.ICECandidateInit) {
			if target == wire.TargetPublisher {
				c.negMu.Lock()
				defer c.negMu.Unlock()
				if c.offerPending {
					c.heldCands = append(c.heldCands, cand)
					return
				}
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
			// The client sees the failure too and reconnects; the session
			// stays until it does.
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

// mediaCode maps a media error to the protocol's code; fallback is used
// for anything media does not name.
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

func (c *session) offer(sd *wire.SessionDescription) {
	switch {
	case sd.Target != wire.TargetPublisher:
		c.sendError(wire.CodeBadMessage, "clients offer on the publisher connection only", wire.TypeOffer, sd.ID)
		return
	case sd.SDP == "":
		c.sendError(wire.CodeBadMessage, "offer without sdp", wire.TypeOffer, sd.ID)
		return
	}
	c.negMu.Lock()
	c.offerPending = true
	c.negMu.Unlock()
	answer, err := c.participant.HandleOffer(sd.SDP)

	c.negMu.Lock()
	defer c.negMu.Unlock()
	if err != nil {
		c.sendError(mediaCode(err, wire.CodeNegotiation), err.Error(), wire.TypeOffer, sd.ID)
	} else {
		c.send(wire.SessionDescription{Type: wire.TypeAnswer, ID: sd.ID, Target: wire.TargetPublisher, SDP: answer})
	}
	for _, cand := range c.heldCands {
		c.send(wire.Candidate{Type: wire.TypeCandidate, Target: wire.TargetPublisher, Candidate: cand})
	}
	c.heldCands = nil
	c.offerPending = false
}

func (c *session) answer(sd *wire.SessionDescription) {
	switch {
	case sd.Target != wire.TargetSubscriber:
		c.sendError(wire.CodeBadMessage, "clients answer on the subscriber connection only", wire.TypeAnswer, sd.ID)
		return
	case sd.SDP == "":
		c.sendError(wire.CodeBadMessage, "answer without sdp", wire.TypeAnswer, sd.ID)
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
		// End of candidates: ICE needs nothing more from it.
		return
	}
	if err := c.participant.AddICECandidate(cand.Target, *cand.Candidate); err != nil {
		c.sendError(mediaCode(err, wire.CodeNegotiation), err.Error(), wire.TypeCandidate, "")
	}
}

func (c *session) subscribe(typ string, s *wire.Subscribe) {
	if len(s.TrackSIDs) == 0 {
		c.sendError(wire.CodeBadMessage, "track_sids is empty", typ, s.ID)
		return
	}
	// Every sid is tried; one error reports those that failed, with the
	// code of the first failure.
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
			// The same answer for every sid; do not ask media again.
			break
		}
	}
	if code != "" {
		listed := failed
		if len(listed) > maxListedSIDs {
			listed = append(listed[:maxListedSIDs:maxListedSIDs], fmt.Sprintf("and %d more", len(failed)-maxListedSIDs))
		}
		msg := fmt.Sprintf("%s failed for %s", typ, strings.Join(listed, ", "))
		if len(failed) < len(s.TrackSIDs) && code != wire.CodePermissionDenied {
			msg += "; the other tracks were done"
		}
		c.sendError(code, msg, typ, s.ID)
		return
	}
	c.ack(s.ID)
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

func (c *session) relay(r *wire.Relay) {
	if len(r.Data) == 0 || !json.Valid(r.Data) {
		c.sendError(wire.CodeBadMessage, "relay needs data, a JSON value", wire.TypeRelay, r.ID)
		return
	}
	if !c.relayBudget.AllowN(time.Now(), len(r.Data)) {
		c.srv.metrics.relayRefused.WithLabelValues(refusedSenderBudget).Inc()
		c.relayRefused(r.ID, fmt.Sprintf("relay data over %v bytes per second (bursts of %d); relay dropped",
			c.srv.limits.RelayBytesPerSecond, c.srv.limits.RelayBurstBytes))
		return
	}
	code, msg, refused := c.srv.relay(c, r.To, r.Data)
	switch {
	case code == "":
		c.ack(r.ID)
	case refused:
		c.relayRefused(r.ID, msg)
	default:
		c.sendError(code, msg, wire.TypeRelay, r.ID)
	}
}

// relayRefused tells the sender its relay was dropped, or ends it once
// more than relayFloodAt were within floodWindow.
func (c *session) relayRefused(id, msg string) {
	if c.relayTally.add(time.Now()) > relayFloodAt {
		c.logger().Warn("signaling: relay flood")
		c.fatal(wire.CodeRelayFlood, fmt.Sprintf("more than %d relays refused within %v", relayFloodAt, floodWindow), wire.TypeRelay, wire.ClosePolicy)
		return
	}
	c.sendError(wire.CodeRateLimited, msg, wire.TypeRelay, id)
}
