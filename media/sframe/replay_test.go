package sframe

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

// TestReplayWindow feeds frames with chosen counters to a fresh Receiver
// and checks each outcome.
func TestReplayWindow(t *testing.T) {
	type step struct {
		ctr    uint64
		forged bool  // the frame's tag is altered
		want   error // nil: accepted
	}
	ok := func(ctr uint64) step { return step{ctr: ctr} }
	bad := func(ctr uint64, err error) step { return step{ctr: ctr, want: err} }
	forged := func(ctr uint64) step { return step{ctr: ctr, forged: true, want: ErrAuth} }
	const top = 1 << 40
	for _, tc := range []struct {
		name  string
		opts  ReceiverOptions
		steps []step
	}{
		{"in order", ReceiverOptions{}, []step{ok(0), ok(1), ok(2), ok(3)}},
		{"replay", ReceiverOptions{}, []step{ok(5), bad(5, ErrReplay), ok(6), bad(5, ErrReplay), bad(6, ErrReplay)}},
		{"reordered within a window of 4", ReceiverOptions{Window: 4}, []step{
			ok(10), ok(8), ok(7), ok(9), bad(8, ErrReplay),
			bad(6, ErrTooOld), // 10-6 = 4 = the window
			ok(11), bad(7, ErrTooOld), bad(9, ErrReplay),
		}},
		{"default window edge", ReceiverOptions{}, []step{
			ok(5000), ok(5000 - (DefaultWindow - 1)), bad(5000-DefaultWindow, ErrTooOld), bad(0, ErrTooOld),
		}},
		{"window of 100 in a 128-bit ring", ReceiverOptions{Window: 100}, []step{
			ok(500), ok(401), bad(400, ErrTooOld), bad(372, ErrTooOld),
		}},
		{"window clamped to MaxWindow", ReceiverOptions{Window: 1 << 30}, []step{
			ok(100000), ok(100000 - (MaxWindow - 1)), bad(100000-MaxWindow, ErrTooOld),
		}},
		{"far ahead refused", ReceiverOptions{MaxJump: 100}, []step{
			ok(0), ok(100), bad(201, ErrTooFarAhead), ok(200), ok(201), bad(1<<62, ErrTooFarAhead),
		}},
		{"first frame may start anywhere", ReceiverOptions{MaxJump: 10}, []step{
			ok(top), ok(top - 1), bad(top+11, ErrTooFarAhead), ok(top + 10),
		}},
		{"default MaxJump", ReceiverOptions{}, []step{
			ok(7), bad(7+DefaultMaxJump+1, ErrTooFarAhead), ok(7 + DefaultMaxJump),
		}},
		{"MaxJump off", ReceiverOptions{MaxJump: math.MaxUint64}, []step{
			ok(0), ok(math.MaxUint64), ok(math.MaxUint64 - 1), bad(0, ErrTooOld), bad(math.MaxUint64, ErrReplay),
		}},
		{"jump beyond the ring clears it", ReceiverOptions{Window: 64}, []step{
			ok(3), ok(72), ok(67), bad(67, ErrReplay), ok(9), bad(8, ErrTooOld),
		}},
		{"jump within the ring clears the skipped slots", ReceiverOptions{Window: 64}, []step{
			// 66 and 67 share ring slots with 2 and 3, skipped on the way
			// from 60 to 70: stale bits there would make them replays.
			ok(2), ok(3), ok(60), ok(70), ok(66), ok(67), bad(66, ErrReplay),
			bad(6, ErrTooOld), ok(7), bad(60, ErrReplay),
		}},
		{"forged frames do not move the window", ReceiverOptions{Window: 4, MaxJump: 2000}, []step{
			ok(10), forged(1000), ok(9), forged(11), ok(11), ok(1000),
		}},
		{"a forged replay is still a replay", ReceiverOptions{}, []step{
			ok(4), {ctr: 4, forged: true, want: ErrReplay},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const kid = 77
			k, err := DeriveKey(AES128GCMSHA256_128, kid, []byte(testBaseKey))
			if err != nil {
				t.Fatal(err)
			}
			r := NewReceiver(AES128GCMSHA256_128, tc.opts)
			if err := r.SetKey(kid, []byte(testBaseKey)); err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				pt := fmt.Appendf(nil, "frame %d", s.ctr)
				frame, err := k.seal(nil, s.ctr, nil, pt)
				if err != nil {
					t.Fatal(err)
				}
				if s.forged {
					frame[len(frame)-1] ^= 1
				}
				out, h, err := r.Decrypt(nil, nil, frame)
				if h != (Header{KID: kid, CTR: s.ctr}) {
					t.Fatalf("step %d: header %+v", i, h)
				}
				switch {
				case s.want == nil && (err != nil || string(out) != string(pt)):
					t.Fatalf("step %d (CTR %d): %q, %v; want it accepted", i, s.ctr, out, err)
				case s.want != nil && (!errors.Is(err, s.want) || out != nil):
					t.Fatalf("step %d (CTR %d): %q, %v; want %v", i, s.ctr, out, err, s.want)
				}
			}
		})
	}
}

// TestSetKeyAndWindow: reinstalling a KID's key keeps its window, a new
// key or RemoveKey starts a fresh one.
func TestSetKeyAndWindow(t *testing.T) {
	s, r := newPair(t, AES128CTRHMACSHA256_64, 4, ReceiverOptions{})
	f, _ := s.Encrypt(nil, nil, []byte("once"))
	if _, _, err := r.Decrypt(nil, nil, f); err != nil {
		t.Fatal(err)
	}
	if err := r.SetKey(4, []byte(testBaseKey)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Decrypt(nil, nil, f); !errors.Is(err, ErrReplay) {
		t.Fatalf("after reinstalling the same key: %v, want ErrReplay", err)
	}
	r.RemoveKey(4)
	if err := r.SetKey(4, []byte(testBaseKey)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Decrypt(nil, nil, f); err != nil {
		t.Fatalf("after RemoveKey and SetKey: %v", err)
	}
	if err := r.SetKey(4, []byte("a new base key for KID 4")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Decrypt(nil, nil, f); !errors.Is(err, ErrAuth) {
		t.Fatalf("old frame under the new key: %v, want ErrAuth", err)
	}
}
