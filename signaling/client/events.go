package client

import (
	"sync"
)

// eventQueue calls a client's Handlers one at a time, in the order the
// events happened, on a goroutine of its own. Events come from the
// WebSocket reader, from pion's callbacks and from the supervisor; queueing
// them is what keeps a slow handler from stalling any of those, and lets a
// handler call the Client back.
type eventQueue struct {
	mu      sync.Mutex
	items   []func()
	closed  bool
	started bool

	wake chan struct{} // cap 1: "items may be non-empty, or closed"
	done chan struct{} // closed once the last event has been delivered
}

func newEventQueue() *eventQueue {
	return &eventQueue{
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
}

// push queues fn. After finish it is dropped.
func (q *eventQueue) push(fn func()) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.items = append(q.items, fn)
	q.mu.Unlock()
	q.signal()
}

func (q *eventQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// start begins delivery. Events queued before are delivered first.
func (q *eventQueue) start() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.started {
		return
	}
	q.started = true
	go q.run()
}

// finish queues last as the final event; nothing is queued after it. With
// dropPending, events not yet delivered are discarded first.
func (q *eventQueue) finish(last func(), dropPending bool) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	if dropPending {
		clear(q.items)
		q.items = q.items[:0]
	}
	q.items = append(q.items, last)
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *eventQueue) run() {
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
		fn := q.items[0]
		q.items[0] = nil
		q.items = q.items[1:]
		q.mu.Unlock()
		fn()
	}
}
