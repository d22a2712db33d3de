package signaling

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/coder/websocket"

	"github.com/sotto-rtc/sotto/signaling/wire"
)

const (
	// outboundQueue is how many of the server's own messages may wait for
	// one client (relays are bounded by ServerLimits). A client that lets
	// more pile up is disconnected: one slow reader must never hold up a
	// broadcast to the others.
	outboundQueue = 256
	// writeTimeout bounds writing one message to a client.
	writeTimeout = 10 * time.Second
	// slowTimeout bounds the closing of a too-slow client, whose socket is
	// likely full.
	slowTimeout = time.Second
)

// outbound is one encoded message waiting for the writer.
type outbound struct {
	data    []byte
	written func()   // runs after the message is written, when set
	from    *session // the relay's sender; nil for the server's own messages
}

// relayLoad is an amount of relay traffic waiting in a queue.
type relayLoad struct{ msgs, bytes int }

// closing is the last thing the writer does for a session.
type closing struct {
	data   []byte               // a final message (error or going_away), or nil
	code   websocket.StatusCode // 0: drop the connection without a close handshake
	reason string
	// flush writes what is queued before data; false drops it.
	flush bool
	// within, when set, bounds the whole closing; otherwise writes take up
	// to writeTimeout and the closing closeGrace.
	within time.Duration
}

// enqueue queues one of the server's own messages without blocking, or
// finds the client too slow and disconnects it (CloseInternal, so that it
// reconnects). It reports whether m was queued.
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

func (c *session) send(v any) {
	data, err := json.Marshal(v)
	if err != nil {
		c.logger().Error("signaling: encode message", "type", fmt.Sprintf("%T", v), "err", err)
		return
	}
	c.enqueue(outbound{data: data})
}

func (c *session) sendError(code, message, ref, refID string) {
	c.srv.metrics.errors.WithLabelValues(code).Inc()
	c.enqueue(outbound{data: errorFrame(wire.Error{Code: code, Message: message, Ref: ref, RefID: refID})})
}

// fatal sends a fatal error after what is queued, then closes.
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

// goAway sends going_away and closes the connection with code.
func (c *session) goAway(reason, message string, code websocket.StatusCode, leftReason string) {
	data, err := json.Marshal(wire.GoingAway{Type: wire.TypeGoingAway, Reason: reason, Message: message})
	if err != nil {
		panic(fmt.Sprintf("signaling: encode going_away: %v", err)) // strings only
	}
	c.fail(closing{data: data, code: code, reason: reason, flush: true}, leftReason)
}

func errorFrame(e wire.Error) []byte {
	e.Type = wire.TypeError
	data, err := json.Marshal(e)
	if err != nil {
		panic(fmt.Sprintf("signaling: encode error: %v", err)) // strings and a bool
	}
	return data
}

// writeLoop writes queued messages until the session's closing is chosen,
// then carries it out. The server's own messages go before relays, so
// that relays from others never hold them up: "too slow" then judges a
// client on its own traffic alone.
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

// writeWithin writes m within timeout (0: writeTimeout), or aborts.
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
