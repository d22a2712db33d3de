package sframe

import (
	"fmt"
	"sync"
)

// Replay-window defaults and limits; see ReceiverOptions.
const (
	// DefaultWindow is the replay window when ReceiverOptions.Window is 0.
	//
	// The counter counts frames of one KID, and one KID may carry several
	// tracks (audio at 50 frames a second, video at 30 or 60, a screen
	// share), or single packets where SFrame is applied per packet (RFC
	// 9605 table 6: 780 a second at 1080p60). Each track reassembles its
	// frames separately and a video frame recovered by retransmission can
	// arrive half a second late, behind hundreds of newer frames of the
	// same KID. 1024 counters cover more than a second at the per-packet
	// rate and several seconds per frame, at a cost of 128 bytes per KID.
	DefaultWindow = 1024
	// MaxWindow bounds ReceiverOptions.Window (8 KiB of bitmap per KID).
	MaxWindow = 1 << 16
	// DefaultMaxJump is the largest forward jump of the counter accepted
	// when ReceiverOptions.MaxJump is 0: about six hours of frames at 50
	// a second.
	DefaultMaxJump = 1 << 20
)

// ReceiverOptions configure a Receiver's anti-replay checks (RFC 9605
// section 9.3 leaves anti-replay to the application). The zero value gives
// the defaults.
type ReceiverOptions struct {
	// Window is how many counters, counting down from the highest
	// accepted one, are still accepted (each once): with highest counter
	// H, a counter C <= H is accepted only if H-C < Window and C was not
	// accepted before; lower counters are refused with ErrTooOld, seen
	// ones with ErrReplay. 0 means DefaultWindow; values above MaxWindow
	// are reduced to MaxWindow.
	Window uint64
	// MaxJump is how far above the highest accepted counter a frame's
	// counter may be: C > H+MaxJump is refused with ErrTooFarAhead, before
	// any decryption. 0 means DefaultMaxJump; math.MaxUint64 turns the
	// check off. The first frame of a key is not checked: there is no H.
	//
	// The check is there because SFrame has no per-sender authentication
	// (RFC 9605 section 7.2): anyone holding a KID's key can make frames
	// that authenticate, and one such frame with a counter near 2^64 would
	// otherwise move the window past every counter the real sender will
	// ever use, silencing it. A genuine sender advances by one per frame,
	// so only a gap of more than MaxJump lost frames trips the check; to
	// accept such a sender again, RemoveKey and SetKey its key.
	MaxJump uint64
}

// Receiver decrypts frames from any number of KIDs, holding one key and
// one replay window per KID. The window moves only when a frame
// authenticates, so forged frames cannot disturb it.
//
// A Receiver is safe for concurrent use: tracks may decrypt in their own
// goroutines while keys are set and removed from another.
type Receiver struct {
	suite   CipherSuite
	window  uint64
	maxJump uint64

	mu   sync.RWMutex
	keys map[uint64]*receiveKey
}

// receiveKey is one KID's key and replay window.
type receiveKey struct {
	key *Key

	mu  sync.Mutex
	win replayWindow
}

// NewReceiver returns a Receiver for suite with no keys. An unsupported
// suite is reported by SetKey.
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

// SetKey installs the key derived from baseKey for kid, with an empty
// replay window. Installing the key a KID already has is a no-op that
// keeps its window, so redistributing keys cannot reopen replays; a
// different key for the KID replaces the old one and its window.
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

// RemoveKey forgets kid's key and replay window. Frames for kid then fail
// with ErrUnknownKID.
func (r *Receiver) RemoveKey(kid uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.keys, kid)
}

// Decrypt decrypts one SFrame ciphertext (header || ciphertext || tag),
// authenticating metadata with it, and appends the plaintext to dst. It
// returns the frame's header whenever it parsed, also with an error.
//
// Errors wrap ErrHeader, ErrUnknownKID, ErrAuth, ErrReplay, ErrTooOld or
// ErrTooFarAhead. The counter checks run before decryption (a refused
// counter costs no AES), and again after it, when the counter is recorded:
// of two concurrent calls with one frame, one succeeds. On error nothing
// is appended to dst. dst's spare capacity must not overlap metadata or
// frame.
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

// replayWindow is an RFC 3711 style sliding window over one KID's
// counters: the highest accepted counter and a bitmap of which of the
// counters below it were accepted. The bitmap is a ring indexed by counter
// modulo its size in bits, which is at least the window.
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

// check returns nil if a frame with h's counter may be accepted.
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

// accept records ctr, which check has passed.
func (w *replayWindow) accept(ctr uint64) {
	switch {
	case !w.started:
		w.started = true
		w.top = ctr
	case ctr > w.top:
		// The counters between the old and the new top were not seen;
		// their ring slots still hold counters a ring's length older.
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
