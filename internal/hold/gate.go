// Package hold keeps ICE candidates back until the session description
// they belong to is in place: a local candidate until its description has
// been sent, a remote one until its description has been applied. Peers
// refuse a candidate for a description they have not seen.
package hold

import "sync"

// Gate passes items on while open and holds them while shut, passing the
// held ones on, in order, when it opens. It starts shut.
type Gate[T any] struct {
	mu   sync.Mutex
	open bool
	held []T
	emit func(T)
}

// NewGate returns a shut gate that passes items to emit. emit runs under
// the gate's lock, so items keep their order; it must not call the gate.
func NewGate[T any](emit func(T)) *Gate[T] { return &Gate[T]{emit: emit} }

// Pass passes c on, or holds it while the gate is shut.
func (g *Gate[T]) Pass(c T) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.open {
		g.held = append(g.held, c)
		return
	}
	g.emit(c)
}

// Open passes on what the gate held, then lets items through.
func (g *Gate[T]) Open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = true
	held := g.held
	g.held = nil
	for _, c := range held {
		g.emit(c)
	}
}

// Shut holds items from now on.
func (g *Gate[T]) Shut() {
	g.mu.Lock()
	g.open = false
	g.mu.Unlock()
}

// Len returns how many items the gate holds.
func (g *Gate[T]) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.held)
}

// Drop forgets what the gate holds.
func (g *Gate[T]) Drop() {
	g.mu.Lock()
	g.held = nil
	g.mu.Unlock()
}
