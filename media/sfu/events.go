package sfu

import (
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/pion/webrtc/v4"
)

// eventQueue delivers one participant's Events in order, one at a time, on
// a goroutine of its own. Events are produced under the SFU's locks and on
// pion's goroutines; queueing them and calling out from elsewhere is what
// lets a callback call back into the SFU, and keeps a slow signaling session
// from stalling media or another participant.
type eventQueue struct {
	log *slog.Logger

	mu      sync.Mutex
	items   []queuedEvent
	started bool
	closed  bool

	wake chan struct{} // cap 1: "items may be non-empty"
	done chan struct{} // closed when the queue will deliver nothing more

	// inCallback is set while the dispatcher runs a callback, so that Close
	// called from inside a callback does not wait for its own goroutine.
	inCallback atomic.Bool
}

type queuedEvent struct {
	fn func()
	// delivered, when not nil, is closed once fn has run or was dropped.
	delivered chan struct{}
}

func newEventQueue(log *slog.Logger) *eventQueue {
	return &eventQueue{
		log:  log,
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
}

// push queues fn. Nothing runs before start. delivered may be nil.
func (q *eventQueue) push(fn func(), delivered chan struct{}) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		if delivered != nil {
			close(delivered)
		}
		return
	}
	q.items = append(q.items, queuedEvent{fn: fn, delivered: delivered})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// start begins delivery of what was queued so far and everything after.
func (q *eventQueue) start() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.started || q.closed {
		return
	}
	q.started = true
	go q.run()
}

// close stops accepting events. A started queue still delivers what it
// holds, then its goroutine ends; an unstarted one drops everything, since
// its participant was never told anything and should not be now.
func (q *eventQueue) close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	if q.started {
		q.mu.Unlock()
		select {
		case q.wake <- struct{}{}:
		default:
		}
		return
	}
	dropped := q.items
	q.items = nil
	q.mu.Unlock()
	for _, e := range dropped {
		if e.delivered != nil {
			close(e.delivered)
		}
	}
	close(q.done)
}

func (q *eventQueue) run() {
	defer close(q.done)
	for {
		q.mu.Lock()
		batch := q.items
		q.items = nil
		closed := q.closed
		q.mu.Unlock()
		if len(batch) == 0 {
			if closed {
				return
			}
			<-q.wake
			continue
		}
		for _, e := range batch {
			q.call(e.fn)
			if e.delivered != nil {
				close(e.delivered)
			}
		}
	}
}

// call runs one callback. A panic in the signaling layer's callback is
// logged and contained: it must not take down every other call on the node.
func (q *eventQueue) call(fn func()) {
	q.inCallback.Store(true)
	defer func() {
		q.inCallback.Store(false)
		if r := recover(); r != nil {
			q.log.Error("sfu: event callback panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	fn()
}

// candidateGate holds a connection's local ICE candidates until the SDP
// they belong to has been handed out, so that a client never receives a
// candidate for a description it has not seen yet.
type candidateGate struct {
	mu   sync.Mutex
	open bool
	held []*webrtc.ICECandidateInit
	emit func(c *webrtc.ICECandidateInit)
}

// offer passes c on, or holds it while the gate is shut. emit runs under
// the gate's lock so candidates keep their order; it only queues an event.
func (g *candidateGate) offer(c *webrtc.ICECandidateInit) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.open {
		g.held = append(g.held, c)
		return
	}
	g.emit(c)
}

// release opens the gate and passes on what it held.
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
