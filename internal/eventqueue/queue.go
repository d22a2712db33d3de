// Package eventqueue delivers callbacks one at a time, in order, on a
// goroutine of its own. Events are produced under locks and on pion's
// goroutines; queueing them lets a callback call back into its producer,
// and keeps a slow consumer from stalling the producer.
package eventqueue

import (
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// Queue is one consumer's queue. The zero value is not usable; use New.
type Queue struct {
	onPanic func(r any, stack []byte)

	mu      sync.Mutex
	items   []item
	started bool
	closed  bool
	ended   bool // done was closed without a delivery goroutine

	wake chan struct{} // cap 1: "items may be non-empty, or closed"
	done chan struct{} // closed when the queue will deliver nothing more

	inCallback atomic.Bool
}

type item struct {
	fn        func()
	delivered chan struct{} // closed once fn has run or was dropped; may be nil
}

// New returns a queue that delivers nothing before Start. onPanic, when
// not nil, is told of a callback's panic and delivery goes on; when nil,
// a panic propagates.
func New(onPanic func(r any, stack []byte)) *Queue {
	return &Queue{onPanic: onPanic, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// Push queues fn; delivered, when not nil, is closed once fn has run or
// was dropped. After Close or Finish, fn is dropped.
func (q *Queue) Push(fn func(), delivered chan struct{}) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		if delivered != nil {
			close(delivered)
		}
		return
	}
	q.items = append(q.items, item{fn, delivered})
	q.mu.Unlock()
	q.signal()
}

func (q *Queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Start begins delivery of what was queued so far and everything after.
func (q *Queue) Start() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.started || q.ended {
		return
	}
	q.started = true
	go q.run()
}

// Close stops accepting events. A started queue still delivers what it
// holds; an unstarted one drops everything, since its consumer was never
// told anything and should not be now.
func (q *Queue) Close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	if q.started {
		q.mu.Unlock()
		q.signal()
		return
	}
	dropped := q.items
	q.items = nil
	q.ended = true
	q.mu.Unlock()
	for _, e := range dropped {
		if e.delivered != nil {
			close(e.delivered)
		}
	}
	close(q.done)
}

// Finish queues last as the final event; nothing is accepted after it.
// With dropPending, events not yet delivered are dropped first. Unlike
// Close, an unstarted queue keeps last for Start.
func (q *Queue) Finish(last func(), dropPending bool) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	var dropped []item
	if dropPending {
		dropped = q.items
		q.items = nil
	}
	q.items = append(q.items, item{fn: last})
	q.closed = true
	q.mu.Unlock()
	for _, e := range dropped {
		if e.delivered != nil {
			close(e.delivered)
		}
	}
	q.signal()
}

// Done is closed when the queue will deliver nothing more.
func (q *Queue) Done() <-chan struct{} { return q.done }

// InCallback reports whether a callback is running now, so that a Close
// called from one does not wait for its own goroutine.
func (q *Queue) InCallback() bool { return q.inCallback.Load() }

func (q *Queue) run() {
	defer close(q.done)
	for {
		q.mu.Lock()
		for len(q.items) == 0 {
			if q.closed {
				q.mu.Unlock()
				return
			}
			q.mu.Unlock()
			<-q.wake
			q.mu.Lock()
		}
		e := q.items[0]
		q.items[0] = item{}
		q.items = q.items[1:]
		q.mu.Unlock()
		q.call(e.fn)
		if e.delivered != nil {
			close(e.delivered)
		}
	}
}

func (q *Queue) call(fn func()) {
	q.inCallback.Store(true)
	defer q.inCallback.Store(false)
	if q.onPanic != nil {
		defer func() {
			if r := recover(); r != nil {
				q.onPanic(r, debug.Stack())
			}
		}()
	}
	fn()
}
