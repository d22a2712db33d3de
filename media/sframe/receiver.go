package sframe

import (
	"fmt"
	"sync"
)

// Replay-window bounds; docs/E2EE.md ("The SFrame receiver") says why.
const (
	DefaultWindow = 1024
	// MaxWindow caps Window: 8 KiB of bitmap per KID.
	MaxWindow = 1 << 16
	// DefaultMaxJump is about six hours of frames at 50 a second.
	DefaultMaxJump = 1 << 20
)

// ReceiverOptions configure anti-replay (left to the application by RFC
// 9605 section 9.3); the zero value gives the defaults.
type ReceiverOptions struct {
	// Window: counters below the highest accepted H, each accepted once;
	// lower ones fail with ErrTooOld. Capped at MaxWindow.
	Window uint64
	// MaxJump: a counter above H+MaxJump fails with ErrTooFarAhead, so that a
	// holder of the key cannot silence the sender with a counter near 2^64.
	// math.MaxUint64 turns it off; a key's first frame is not checked.
	MaxJump uint64
}

// Receiver holds one key and replay window per KID; a window moves only
// when a frame authenticates. It is safe for concurrent use.
type Receiver struct {
	suite   CipherSuite
	window  uint64
	maxJump uint64

	mu   sync.RWMutex
	keys map[uint64]*receiveKey
}

type receiveKey struct {
	key *Key

	mu  sync.Mutex
	win replayWindow
}

// NewReceiver returns a Receiver with no keys; SetKey reports a bad suite.
func NewReceiver(suite CipherSuite, opts ReceiverOptions) *Receiver {
	window := opts.Window
	switch {
	case window == 0:
		window = DefaultWindow
	case window > MaxWindow:
		window = MaxWindow
	}
	maxJump := opts.MaxJump
	if maxJump == 0 {
		maxJump = DefaultMaxJump
	}
	return &Receiver{suite: suite, window: window, maxJump: maxJump, keys: make(map[uint64]*receiveKey)}
}

// SetKey installs kid's key with an empty window; the key a KID already
// has keeps its window, so redistribution cannot reopen replays.
func (r *Receiver) SetKey(kid uint64, baseKey []byte) error {
	k, err := DeriveKey(r.suite, kid, baseKey)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.keys[kid]; old != nil && old.key.sameAs(k) {
		return nil
	}
	r.keys[kid] = &receiveKey{key: k, win: newReplayWindow(r.window, r.maxJump)}
	return nil
}

func (r *Receiver) RemoveKey(kid uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.keys, kid)
}

// Decrypt appends the plaintext of header || ciphertext || tag to dst and
// returns the header whenever it parsed. Counters are checked before and
// after decryption, so of two concurrent copies one succeeds. dst's spare
// capacity must not overlap the inputs.
func (r *Receiver) Decrypt(dst, metadata, frame []byte) ([]byte, Header, error) {
	h, n, err := ParseHeader(frame)
	if err != nil {
		return nil, Header{}, err
	}
	r.mu.RLock()
	rk := r.keys[h.KID]
	r.mu.RUnlock()
	if rk == nil {
		return nil, h, fmt.Errorf("%w: %d", ErrUnknownKID, h.KID)
	}

	rk.mu.Lock()
	err = rk.win.check(h)
	rk.mu.Unlock()
	if err != nil {
		return nil, h, err
	}

	out, err := rk.key.open(dst, h, frame[:n], metadata, frame[n:])
	if err != nil {
		return nil, h, err
	}

	rk.mu.Lock()
	if err = rk.win.check(h); err == nil {
		rk.win.accept(h.CTR)
	}
	rk.mu.Unlock()
	if err != nil {
		clear(out[len(dst):])
		return nil, h, err
	}
	return out, h, nil
}

// replayWindow is an RFC 3711 style window: the highest counter and a ring
// bitmap, indexed by counter modulo its size, of those below it.
type replayWindow struct {
	size    uint64
	maxJump uint64
	started bool   // a counter has been accepted
	top     uint64 // the highest accepted counter
	bits    []uint64
}

func newReplayWindow(size, maxJump uint64) replayWindow {
	return replayWindow{size: size, maxJump: maxJump, bits: make([]uint64, (size+63)/64)}
}

func (w *replayWindow) ring() uint64 { return uint64(len(w.bits)) * 64 }

func (w *replayWindow) seen(ctr uint64) bool {
	i := ctr % w.ring()
	return w.bits[i/64]&(1<<(i%64)) != 0
}

func (w *replayWindow) set(ctr uint64, on bool) {
	i := ctr % w.ring()
	if on {
		w.bits[i/64] |= 1 << (i % 64)
	} else {
		w.bits[i/64] &^= 1 << (i % 64)
	}
}

func (w *replayWindow) check(h Header) error {
	if !w.started {
		return nil
	}
	ctr := h.CTR
	if ctr > w.top {
		if ctr-w.top > w.maxJump {
			return fmt.Errorf("%w: KID %d CTR %d is %d past the highest accepted %d (limit %d)",
				ErrTooFarAhead, h.KID, ctr, ctr-w.top, w.top, w.maxJump)
		}
		return nil
	}
	if w.top-ctr >= w.size {
		return fmt.Errorf("%w: KID %d CTR %d, highest accepted %d, window %d", ErrTooOld, h.KID, ctr, w.top, w.size)
	}
	if w.seen(ctr) {
		return fmt.Errorf("%w: KID %d CTR %d", ErrReplay, h.KID, ctr)
	}
	return nil
}

func (w *replayWindow) accept(ctr uint64) {
	switch {
	case !w.started:
		w.started = true
		w.top = ctr
	case ctr > w.top:
		// Slots between the old and new top still hold older counters.
		if jump := ctr - w.top; jump >= w.ring() {
			clear(w.bits)
		} else {
			for c := w.top + 1; c != ctr; c++ {
				w.set(c, false)
			}
		}
		w.top = ctr
	}
	w.set(ctr, true)
}
