package signaling

import (
	"fmt"
	"math"
	"net"
	"sync"
	"time"

	"github.com/sotto-rtc/sotto/signaling/wire"
	"golang.org/x/time/rate"
)

// ServerLimits are the bounds the server enforces so that no caller can
// take more than its share of a node (wire.Limits is what a client is told
// of them). A zero field takes its default.
type ServerLimits struct {
	// MaxMessageBytes bounds one WebSocket message. Default 64 KiB.
	MaxMessageBytes int
	// MessagesPerSecond and MessageBurst: each connection's message rate
	// limit. Defaults 50 and 100.
	MessagesPerSecond float64
	MessageBurst      int
	// ParticipantsPerRoom bounds a room. Default 100.
	ParticipantsPerRoom int
	// RoomsPerNode bounds the rooms this server holds. Default 1000.
	RoomsPerNode int
	// TracksPerParticipant bounds one participant's tracks. Default 8.
	TracksPerParticipant int
	// JoinsPerSecondPerIP and JoinBurst: the join rate limit of one source
	// address. Defaults 5 and 20.
	JoinsPerSecondPerIP float64
	JoinBurst           int
	// RelayBytesPerSecond and RelayBurstBytes: one connection's relay rate
	// limit, in bytes of "data" counted once however many recipients.
	// Defaults 256 KiB/s and 1 MiB (E2EE messages of a full room are tens
	// of KiB per membership change). The burst must hold MaxMessageBytes.
	RelayBytesPerSecond float64
	RelayBurstBytes     int
	// RelayQueueBytes and RelayQueueMessages bound the relays waiting for
	// one receiver. Each sender may hold max(1/N of them, 1/16 of them,
	// two maximal messages), N being the others in the room; beyond it
	// the relay is refused to the sender. Defaults 4 MiB and 1024.
	RelayQueueBytes    int
	RelayQueueMessages int
	// UnjoinedPerAddress and UnjoinedConnections bound the WebSockets not
	// joined yet, per source address (IPv6 by its /64) and in all; beyond
	// them an upgrade is refused with HTTP 429 or 503. Defaults 32 (above
	// JoinBurst, so callers behind one NAT meet the join rate first) and 1024.
	UnjoinedPerAddress  int
	UnjoinedConnections int
}

// Defaults of ServerLimits fields left zero.
const (
	DefaultMaxMessageBytes      = 64 << 10
	DefaultMessagesPerSecond    = 50
	DefaultMessageBurst         = 100
	DefaultParticipantsPerRoom  = 100
	DefaultRoomsPerNode         = 1000
	DefaultTracksPerParticipant = 8
	DefaultJoinsPerSecondPerIP  = 5
	DefaultJoinBurst            = 20
	DefaultRelayBytesPerSecond  = 256 << 10
	DefaultRelayBurstBytes      = 1 << 20
	DefaultRelayQueueBytes      = 4 << 20
	DefaultRelayQueueMessages   = 1024
	DefaultUnjoinedPerAddress   = 32
	DefaultUnjoinedConnections  = 1024
)

// minMessageBytes is the least MaxMessageBytes accepted: a join with a
// token and an SDP offer for one track must fit.
const minMessageBytes = 4 << 10

// withDefaults validates l and fills its zero fields.
func (l ServerLimits) withDefaults() (ServerLimits, error) {
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxMessageBytes", &l.MaxMessageBytes, DefaultMaxMessageBytes},
		{"MessageBurst", &l.MessageBurst, DefaultMessageBurst},
		{"ParticipantsPerRoom", &l.ParticipantsPerRoom, DefaultParticipantsPerRoom},
		{"RoomsPerNode", &l.RoomsPerNode, DefaultRoomsPerNode},
		{"TracksPerParticipant", &l.TracksPerParticipant, DefaultTracksPerParticipant},
		{"JoinBurst", &l.JoinBurst, DefaultJoinBurst},
		{"RelayBurstBytes", &l.RelayBurstBytes, DefaultRelayBurstBytes},
		{"RelayQueueBytes", &l.RelayQueueBytes, DefaultRelayQueueBytes},
		{"RelayQueueMessages", &l.RelayQueueMessages, DefaultRelayQueueMessages},
		{"UnjoinedPerAddress", &l.UnjoinedPerAddress, DefaultUnjoinedPerAddress},
		{"UnjoinedConnections", &l.UnjoinedConnections, DefaultUnjoinedConnections},
	}
	for _, f := range ints {
		if *f.v < 0 {
			return l, fmt.Errorf("signaling: Limits.%s is negative (%d)", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	floats := []struct {
		name string
		v    *float64
		def  float64
	}{
		{"MessagesPerSecond", &l.MessagesPerSecond, DefaultMessagesPerSecond},
		{"JoinsPerSecondPerIP", &l.JoinsPerSecondPerIP, DefaultJoinsPerSecondPerIP},
		{"RelayBytesPerSecond", &l.RelayBytesPerSecond, DefaultRelayBytesPerSecond},
	}
	for _, f := range floats {
		if *f.v < 0 || math.IsNaN(*f.v) || math.IsInf(*f.v, 0) {
			return l, fmt.Errorf("signaling: Limits.%s must be a positive number (got %v)", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if l.MaxMessageBytes < minMessageBytes {
		return l, fmt.Errorf("signaling: Limits.MaxMessageBytes %d is below the minimum %d", l.MaxMessageBytes, minMessageBytes)
	}
	if l.RelayBurstBytes < l.MaxMessageBytes {
		return l, fmt.Errorf("signaling: Limits.RelayBurstBytes %d is below MaxMessageBytes %d: a full-size relay could never pass", l.RelayBurstBytes, l.MaxMessageBytes)
	}
	if l.RelayQueueBytes < 2*l.MaxMessageBytes {
		return l, fmt.Errorf("signaling: Limits.RelayQueueBytes %d is below twice MaxMessageBytes (%d)", l.RelayQueueBytes, 2*l.MaxMessageBytes)
	}
	return l, nil
}

// wire is what a client is told about its connection's limits.
func (l ServerLimits) wire() wire.Limits {
	return wire.Limits{
		MaxMessageBytes: l.MaxMessageBytes,
		// Rounded down, so that a client keeping to them stays within.
		MessagesPerSecond:    int(math.Floor(l.MessagesPerSecond)),
		TracksPerParticipant: l.TracksPerParticipant,
		RelayBytesPerSecond:  int(math.Floor(l.RelayBytesPerSecond)),
		RelayBurstBytes:      l.RelayBurstBytes,
	}
}

const (
	// floodWindow is the window in which refusals count toward a flood.
	floodWindow = time.Second
	// rateLimitedReplies is how many dropped messages per window get a
	// rate_limited error, so that the replies are no flood of their own.
	rateLimitedReplies = 8
)

type verdict int

const (
	verdictAllow verdict = iota
	verdictDropReply
	verdictDropSilent
	verdictFlood
)

// messageGuard is one connection's message rate limit (reader goroutine
// only). A message over the rate is dropped; more than twice the burst
// dropped within floodWindow is a flood, and the connection is closed.
type messageGuard struct {
	lim         *rate.Limiter
	floodAt     int
	windowStart time.Time
	dropped     int
}

func newMessageGuard(l ServerLimits) *messageGuard {
	return &messageGuard{
		lim:     rate.NewLimiter(rate.Limit(l.MessagesPerSecond), l.MessageBurst),
		floodAt: 2 * l.MessageBurst,
	}
}

func (g *messageGuard) check(now time.Time) verdict {
	if g.lim.AllowN(now, 1) {
		return verdictAllow
	}
	if now.Sub(g.windowStart) > floodWindow {
		g.windowStart = now
		g.dropped = 0
	}
	g.dropped++
	switch {
	case g.dropped > g.floodAt:
		return verdictFlood
	case g.dropped <= rateLimitedReplies:
		return verdictDropReply
	default:
		return verdictDropSilent
	}
}

const (
	// joinLimiterSweep is how often limiters that carry no state are swept.
	joinLimiterSweep = time.Minute
	// maxJoinAddrs bounds the addresses tracked, so memory stays bounded:
	// joins from further addresses are refused until entries refill.
	maxJoinAddrs = 1 << 16
)

// joinLimiter rate-limits joins per source address.
type joinLimiter struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex
	byAddr    map[string]*rate.Limiter
	lastSweep time.Time
}

func newJoinLimiter(l ServerLimits) *joinLimiter {
	return &joinLimiter{
		limit:  rate.Limit(l.JoinsPerSecondPerIP),
		burst:  l.JoinBurst,
		byAddr: make(map[string]*rate.Limiter),
	}
}

// allow reports whether a join from addr may go ahead now.
func (j *joinLimiter) allow(addr string, now time.Time) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if now.Sub(j.lastSweep) >= joinLimiterSweep || len(j.byAddr) >= maxJoinAddrs {
		j.sweepLocked(now)
	}
	lim := j.byAddr[addr]
	if lim == nil {
		if len(j.byAddr) >= maxJoinAddrs {
			return false
		}
		lim = rate.NewLimiter(j.limit, j.burst)
		j.byAddr[addr] = lim
	}
	return lim.AllowN(now, 1)
}

// sweepLocked forgets limiters whose bucket has refilled, which is what a
// new limiter would be.
func (j *joinLimiter) sweepLocked(now time.Time) {
	j.lastSweep = now
	for addr, lim := range j.byAddr {
		if lim.TokensAt(now) >= float64(j.burst) {
			delete(j.byAddr, addr)
		}
	}
}

// relayShare is the most of a receiver's relay queue one sender may hold
// with others others in the room (see RelayQueueBytes).
func (l ServerLimits) relayShare(others int) relayLoad {
	others = max(others, 1)
	return relayLoad{
		msgs:  min(max(l.RelayQueueMessages/others, l.RelayQueueMessages/16, 1), l.RelayQueueMessages),
		bytes: min(max(l.RelayQueueBytes/others, l.RelayQueueBytes/16, 2*l.MaxMessageBytes), l.RelayQueueBytes),
	}
}

// refusalTally counts refusals within floodWindow. Reader goroutine only.
type refusalTally struct {
	windowStart time.Time
	n           int
}

// add counts one refusal at now and returns the count in its window.
func (t *refusalTally) add(now time.Time) int {
	if now.Sub(t.windowStart) > floodWindow {
		t.windowStart = now
		t.n = 0
	}
	t.n++
	return t.n
}

// Which unjoined bound refused a connection (metric label values).
const (
	unjoinedAddress = "address"
	unjoinedTotal   = "total"
)

// unjoinedLimiter counts the connections that have not joined, per source
// address and in all; its map is bounded by UnjoinedConnections.
type unjoinedLimiter struct {
	perAddr, total int

	mu     sync.Mutex
	byAddr map[string]int
	n      int
}

func newUnjoinedLimiter(l ServerLimits) *unjoinedLimiter {
	return &unjoinedLimiter{perAddr: l.UnjoinedPerAddress, total: l.UnjoinedConnections, byAddr: make(map[string]int)}
}

// acquire takes a slot for key, or returns the bound that refused it.
func (u *unjoinedLimiter) acquire(key string) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.byAddr[key] >= u.perAddr:
		return unjoinedAddress
	case u.n >= u.total:
		return unjoinedTotal
	}
	u.byAddr[key]++
	u.n++
	return ""
}

func (u *unjoinedLimiter) release(key string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.n--
	if u.byAddr[key] <= 1 {
		delete(u.byAddr, key)
		return
	}
	u.byAddr[key]--
}

// unjoinedKey is addr, or for IPv6 its /64, which one host usually holds.
func unjoinedKey(addr string) string {
	ip := net.ParseIP(addr)
	if ip == nil || ip.To4() != nil {
		return addr
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
