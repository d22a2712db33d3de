package sfu

import (
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// Publisher rate limits: each track has a packet and a bit budget per
// second, as token buckets of a second's worth; excess is dropped before
// the cache and the fan-out. Defaults: video 8 Mbit/s (1080p30 is 2-4,
// key frames and screen sharing peak higher) and 1500 packets/s (room for
// small packets); audio 320 kbit/s (Opus at 128 kbit/s doubled by RED,
// plus headers) and 250 packets/s (minptime=10 gives 100, plus bursts).
const (
	DefaultAudioMaxBitrate    = 320_000
	DefaultAudioMaxPacketRate = 250
	DefaultVideoMaxBitrate    = 8_000_000
	DefaultVideoMaxPacketRate = 1500
	DefaultRateLimitEndFactor = 4
	DefaultRateLimitEndAfter  = 3 * time.Second

	maxLimitPackets = 1 << 24
	maxLimitBits    = 1 << 33

	// clockEvery is the most packets between two readings of the clock.
	clockEvery = 16

	// rateWindow is the period of the RateLimitEndFactor comparison.
	rateWindow = time.Second
)

// RuleRateExceeded is the rule of a track far beyond its limits.
const RuleRateExceeded = "rate_exceeded"

// rateLimit is one kind's limits per second; zero disables one.
type rateLimit struct {
	packets int64 // packets per second
	bytes   int64 // bytes per second
}

func limitFor(cfg Config, kind webrtc.RTPCodecType) rateLimit {
	bits, pkts := cfg.AudioMaxBitrate, cfg.AudioMaxPacketRate
	if kind == webrtc.RTPCodecTypeVideo {
		bits, pkts = cfg.VideoMaxBitrate, cfg.VideoMaxPacketRate
	}
	// Clamped so that a second of tokens, in nano-units, fits an int64.
	return rateLimit{packets: int64(min(max(pkts, 0), maxLimitPackets)), bytes: int64(min(max(bits, 0), maxLimitBits)) / 8}
}

// trackLimiter is a track's two token buckets and its overrun watch, for
// its forwarding goroutine alone. Tokens are in 1/1e9 packet or byte, so a
// refill is elapsed nanoseconds times the rate.
type trackLimiter struct {
	limit    rateLimit
	factor   int64
	endAfter int
	start    time.Time // the clock's origin

	last               int64 // ns since start of the last refill
	pktTokens, byteTok int64

	windowStart          int64
	windowPkts, windowBy int64
	over                 int // windows in a row over factor times a limit
	unclocked            int // packets since the clock was last read
}

// newTrackLimiter returns nil when both limits are off.
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
// whether the publisher is to be ended. The clock, dearer than the rest,
// is read every clockEvery packets while tokens last.
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
		// Clamped to the bucket's second, which keeps the product in int64.
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

func (l *trackLimiter) has(cost int64) bool {
	return (l.limit.packets == 0 || l.pktTokens >= int64(time.Second)) && (l.limit.bytes == 0 || l.byteTok >= cost)
}

// watch reports true once endAfter rateWindows in a row saw the track
// offer over factor times its limits, dropped packets included.
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

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// publisherTracksOfKind is the tracks' worth of a kind's limits one
// participant's tracks of that kind share: a camera and a screen share.
const publisherTracksOfKind = 2

// sharedLimiter is a participant's limit over all its tracks of a kind.
type sharedLimiter struct {
	mu sync.Mutex
	l  *trackLimiter
}

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

// allow drops excess; ending a publisher is left to the per-track check.
func (s *sharedLimiter) allow(size int) bool {
	s.mu.Lock()
	ok, _ := s.l.allow(size)
	s.mu.Unlock()
	return ok
}
