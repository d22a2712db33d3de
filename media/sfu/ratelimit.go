package sfu

import (
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// Publisher rate limits.
//
// Every published track has a packet and a bit budget per second, by kind
// (Config's AudioMax* and VideoMax*), as two token buckets holding one
// second's worth each: bursts of that size (a key frame) pass, and what a
// track sends beyond its budget is dropped before the packet cache and
// the fan-out, so no subscriber receives it. A track sending more than
// RateLimitEndFactor times either limit for RateLimitEndAfter in a row is
// not a client having a moment: its owner's session is ended (rule
// RuleRateExceeded, Events.Refused).
//
// The defaults (Config fields left zero take them):
//   - video, 8 Mbit/s and 1500 packets/s: 1080p30 from a browser is 2–4
//     Mbit/s, key frames and screen sharing peak higher; 8 Mbit/s of
//     full-size packets is about 830 packets/s, and 1500 leaves room for
//     the small packets of padding, probing and small frames;
//   - audio, 320 kbit/s and 250 packets/s: the SFU negotiates
//     minptime=10, so Opus sends at most 100 packets/s, and browsers at
//     most 128 kbit/s, doubled by RED, plus headers; the margin on the
//     packet rate is for bursts after a stall on the way, and for
//     clients that ignore minptime down to 5 ms frames.
const (
	DefaultAudioMaxBitrate    = 320_000
	DefaultAudioMaxPacketRate = 250
	DefaultVideoMaxBitrate    = 8_000_000
	DefaultVideoMaxPacketRate = 1500
	DefaultRateLimitEndFactor = 4
	DefaultRateLimitEndAfter  = 3 * time.Second

	// maxLimitPackets and maxLimitBits are the largest limits kept.
	maxLimitPackets = 1 << 24
	maxLimitBits    = 1 << 33

	// clockEvery is the most packets allowed between two readings of
	// the clock.
	clockEvery = 16

	// rateWindow is the period over which a track's offered rate is
	// compared with RateLimitEndFactor times its limits.
	rateWindow = time.Second
)

// RuleRateExceeded is the rule Events.Refused names when a participant's
// track sent far beyond its rate limits (Config.RateLimitEndFactor).
const RuleRateExceeded = "rate_exceeded"

// rateLimit is one kind's limits: per second, with a second's burst.
// Zero disables a limit.
type rateLimit struct {
	packets int64 // packets per second
	bytes   int64 // bytes per second
}

// limitFor returns kind's limits from a Config with defaults applied; a
// negative field is no limit.
func limitFor(cfg Config, kind webrtc.RTPCodecType) rateLimit {
	bits, pkts := cfg.AudioMaxBitrate, cfg.AudioMaxPacketRate
	if kind == webrtc.RTPCodecTypeVideo {
		bits, pkts = cfg.VideoMaxBitrate, cfg.VideoMaxPacketRate
	}
	// Clamped so that a second of tokens, in nano-units, fits an int64.
	return rateLimit{packets: int64(min(max(pkts, 0), maxLimitPackets)), bytes: int64(min(max(bits, 0), maxLimitBits)) / 8}
}

// trackLimiter is a track's two token buckets and its overrun watch. It
// is used only by the track's forwarding goroutine, so it takes no lock.
// Tokens are kept in units of 1/1e9 packet or byte, so a refill is
// elapsed nanoseconds times the rate, in integers.
type trackLimiter struct {
	limit  rateLimit
	factor int64
	// endAfter is the number of rateWindows in a row over factor times
	// the limits that ends the publisher.
	endAfter int
	start    time.Time // the clock's origin

	last               int64 // ns since start of the last refill
	pktTokens, byteTok int64

	windowStart          int64
	windowPkts, windowBy int64
	over                 int // windows in a row over factor times a limit
	unclocked            int // packets since the clock was last read
}

// newTrackLimiter returns the limiter of a track of kind, or nil when
// both of its limits are off.
func newTrackLimiter(cfg Config, kind webrtc.RTPCodecType) *trackLimiter {
	l := limitFor(cfg, kind)
	if l.packets == 0 && l.bytes == 0 {
		return nil
	}
	after := max(int(cfg.RateLimitEndAfter/rateWindow), 1)
	return &trackLimiter{
		limit:     l,
		factor:    int64(max(cfg.RateLimitEndFactor, 1)),
		endAfter:  after,
		start:     time.Now(),
		pktTokens: l.packets * int64(time.Second),
		byteTok:   l.bytes * int64(time.Second),
	}
}

// allow reports whether a packet of size bytes is within the limits, and
// whether the track has now been far beyond them for long enough to end
// its publisher. The clock is read only every clockEvery packets while
// the buckets have tokens (reading it costs more than the rest of the
// check): the refill then comes late, not short.
func (l *trackLimiter) allow(size int) (ok, end bool) {
	const unit = int64(time.Second)
	cost := int64(size) * unit
	l.windowPkts++
	l.windowBy += int64(size)
	l.unclocked++
	if l.unclocked >= clockEvery || !l.has(cost) {
		l.unclocked = 0
		now := int64(time.Since(l.start))
		end = l.watch(now)
		// A bucket holds a second: any longer gap refills it completely,
		// and clamping the gap keeps elapsed × rate within int64.
		elapsed := min(now-l.last, unit)
		l.last = now
		if l.limit.packets > 0 {
			l.pktTokens = min(l.pktTokens+elapsed*l.limit.packets, l.limit.packets*unit)
		}
		if l.limit.bytes > 0 {
			l.byteTok = min(l.byteTok+elapsed*l.limit.bytes, l.limit.bytes*unit)
		}
		if !l.has(cost) {
			return false, end
		}
	}
	if l.limit.packets > 0 {
		l.pktTokens -= unit
	}
	if l.limit.bytes > 0 {
		l.byteTok -= cost
	}
	return true, end
}

// has reports whether the buckets hold a packet of cost byte tokens.
func (l *trackLimiter) has(cost int64) bool {
	return (l.limit.packets == 0 || l.pktTokens >= int64(time.Second)) && (l.limit.bytes == 0 || l.byteTok >= cost)
}

// watch closes the current rateWindow once it has lasted that long: it
// compares what the track offered in it, dropped or not, with factor
// times the limits, and reports true once endAfter windows in a row were
// over.
func (l *trackLimiter) watch(now int64) bool {
	span := now - l.windowStart
	if span < int64(rateWindow) {
		return l.over >= l.endAfter
	}
	// Rates over the window as it really was: a gap makes it longer.
	over := (l.limit.packets > 0 && l.windowPkts*int64(time.Second) > l.factor*l.limit.packets*span) ||
		(l.limit.bytes > 0 && l.windowBy*int64(time.Second)/span > l.factor*l.limit.bytes)
	if over {
		l.over++
	} else {
		l.over = 0
	}
	l.windowStart, l.windowPkts, l.windowBy = now, 0, 0
	return l.over >= l.endAfter
}

// orDefault is v, or def when v is zero.
func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// publisherTracksOfKind is how many tracks' worth of one kind's limits a
// participant's tracks of that kind may send together: a camera and a
// screen share, but not eight tracks each at its limit.
const publisherTracksOfKind = 2

// sharedLimiter is a participant's limit over all its tracks of a kind,
// whose forwarding goroutines share it.
type sharedLimiter struct {
	mu sync.Mutex
	l  *trackLimiter
}

// newSharedLimiter returns nil when kind has no limits.
func newSharedLimiter(cfg Config, kind webrtc.RTPCodecType) *sharedLimiter {
	l := newTrackLimiter(cfg, kind)
	if l == nil {
		return nil
	}
	l.limit.packets *= publisherTracksOfKind
	l.limit.bytes *= publisherTracksOfKind
	l.pktTokens *= publisherTracksOfKind
	l.byteTok *= publisherTracksOfKind
	return &sharedLimiter{l: l}
}

// allow is trackLimiter.allow for the participant: excess is dropped;
// ending a publisher is left to the per-track check.
func (s *sharedLimiter) allow(size int) bool {
	s.mu.Lock()
	ok, _ := s.l.allow(size)
	s.mu.Unlock()
	return ok
}
