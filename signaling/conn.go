package signaling

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
	"golang.org/x/time/rate"

	"github.com/sotto-rtc/sotto/internal/hold"
	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

const (
	// closeGrace bounds everything after a session is told to close; then
	// the TCP connection is closed outright.
	closeGrace = 12 * time.Second
	// drainTimeout bounds reading the rest of an oversized message.
	drainTimeout = 5 * time.Second
)

// Participant-left reasons besides ReasonReplaced and ReasonShutdown.
const (
	reasonLeft         = "left"
	reasonDisconnected = "disconnected"
)

var errMessageTooLarge = errors.New("signaling: message too large")

// session is one WebSocket connection. Its reader runs on the HTTP
// handler's goroutine, its writer (writer.go) and keepalive on their own;
// media events for its participant only queue messages.
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

	// mu is the innermost lock: nothing blocks while it is held.
	mu          sync.Mutex
	closing     bool // the final is sent; nothing more is queued
	leftReason  string
	joinStarted bool
	forceClose  *time.Timer
	// Server messages and relays are bounded apart, each sender's relays
	// to a share (see relayShare).
	serverQueued int
	relayQueued  relayLoad
	relayFrom    map[*session]relayLoad

	// pubCands holds the publisher connection's local candidates while an
	// offer is answered: media hands them out as HandleOffer returns, before
	// the answer is queued, and browsers refuse a candidate ahead of it.
	pubCands *hold.Gate[*webrtc.ICECandidateInit]

	// Owned by the reader goroutine; media events, which start after the
	// join (Participant.Start), read room, member and participant too.
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
	c.pubCands = hold.NewGate(func(cand *webrtc.ICECandidateInit) {
		c.send(wire.Candidate{Type: wire.TypeCandidate, Target: wire.TargetPublisher, Candidate: cand})
	})
	c.pubCands.Open()
	c.logp.Store(srv.log.With("remote", addr))
	return c
}

func (c *session) logger() *slog.Logger { return c.logp.Load() }

// run serves the connection, then takes the participant out of its room
// and the SFU.
func (c *session) run() {
	// Twice our limit, so that a message just over it is read to its end
	// and the client told why it is closed (see readMessage).
	c.conn.SetReadLimit(2 * int64(c.srv.limits.MaxMessageBytes))
	go c.writeLoop()
	go c.keepalive()
	c.joinTimer = time.AfterFunc(c.srv.cfg.JoinTimeout, c.joinTimedOut)

	c.readLoop()

	c.joinTimer.Stop()
	c.releaseUnjoined()
	// If nothing else closed the session, the peer went away.
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
		// The writer may be stuck on a full socket: this is what ends it.
		grace = f.within
	}
	c.forceClose = time.AfterFunc(grace, c.abort)
}

// abort closes the TCP connection at once, which ends the session.
func (c *session) abort() {
	c.fail(closing{}, reasonDisconnected)
	if c.raw != nil {
		_ = c.raw.Close()
		return
	}
	_ = c.conn.CloseNow()
}

func (c *session) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// keepalive pings; a peer that does not answer within an interval is gone.
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
			// Replaced, shut down or too slow: nothing more is answered.
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
// one is read to its end (bounded by the library's limit and drainTimeout)
// and discarded, so that the error and close that follow reach the client:
// closing a socket with unread data would reset it.
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
		// Not past the library's limit: beyond it, it closes with its own reason.
		_, _ = io.CopyN(io.Discard, r, int64(limit))
		t.Stop()
		return nil, false, errMessageTooLarge
	}
	return data, typ == websocket.MessageBinary, nil
}
