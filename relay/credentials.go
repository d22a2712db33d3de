package relay

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // TURN REST credentials are HMAC-SHA1 by definition (coturn use-auth-secret)
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// RESTCredentials returns TURN REST credentials for identity, valid until
// now+ttl, as coturn's use-auth-secret checks them: "expiry:identity" and
// base64(HMAC-SHA1(secret, username)). Whoever holds secret can mint them.
func RESTCredentials(secret, identity string, ttl time.Duration, now time.Time) (username, password string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + identity
	return username, restPassword(secret, username)
}

func restPassword(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Reasons a credential is refused: sotto_turn_refusals_total's label.
const (
	reasonExpired     = "expired"
	reasonForged      = "forged"
	reasonWrongRealm  = "wrong_realm"
	reasonUnknownUser = "unknown_user"
	reasonPeerDenied  = "peer_denied"
	reasonQuotaUser   = "quota_user"
	reasonQuotaTotal  = "quota_total"
)

// authenticator checks TURN REST usernames against every shared secret,
// and static users.
type authenticator struct {
	realm   string
	secrets []string
	users   map[string]string
	now     func() time.Time
	tap     *requestTap
}

// key returns the long-term key for a request, the user allocations count
// under, or why it is refused. pion checks MESSAGE-INTEGRITY with one key,
// so during a rotation the tapped request picks the secret that verifies;
// if none does, pion refuses the first (counted as forged).
func (a *authenticator) key(ra *turn.RequestAttributes) (userID string, key []byte, reason string) {
	if ra.Realm != a.realm {
		return "", nil, reasonWrongRealm
	}
	if pw, ok := a.users[ra.Username]; ok {
		return ra.Username, turn.GenerateAuthKey(ra.Username, a.realm, pw), ""
	}
	// coturn also accepts a bare expiry as the whole username.
	expiry, identity, ok := strings.Cut(ra.Username, ":")
	if !ok {
		identity = ra.Username
	}
	if len(a.secrets) == 0 {
		return "", nil, reasonUnknownUser
	}
	t, err := strconv.ParseInt(expiry, 10, 64)
	if err != nil || t < 0 {
		return "", nil, reasonUnknownUser
	}
	if !a.now().Before(time.Unix(t, 0)) {
		return "", nil, reasonExpired
	}
	keys := make([][]byte, len(a.secrets))
	for i, s := range a.secrets {
		keys[i] = turn.GenerateAuthKey(ra.Username, a.realm, restPassword(s, ra.Username))
	}
	if len(keys) > 1 {
		for _, raw := range a.tap.recent(ra.SrcAddr) {
			m := &stun.Message{Raw: raw}
			if m.Decode() != nil {
				continue
			}
			var u stun.Username
			if u.GetFrom(m) != nil || u.String() != ra.Username || m.Type.Method != ra.Method {
				continue
			}
			for _, k := range keys {
				if stun.MessageIntegrity(k).Check(m) == nil {
					return identity, k, ""
				}
			}
		}
	}
	return identity, keys[0], ""
}

// tapDepth: a TCP client may pipeline a few requests, which pion may read
// in one go.
const tapDepth = 4

// requestTap remembers each client's last requests, for key. One entry
// per UDP listener and per TCP connection: spoofed sources cannot grow it.
type requestTap struct {
	mu   sync.Mutex
	last map[string][][]byte
}

func newRequestTap() *requestTap { return &requestTap{last: make(map[string][][]byte)} }

// isRequest reports whether b starts a STUN request; copying only those
// keeps the data path free of allocations.
func isRequest(b []byte) bool {
	if len(b) < 20 || b[0]&0xc0 != 0 || b[4] != 0x21 || b[5] != 0x12 || b[6] != 0xa4 || b[7] != 0x42 {
		return false
	}
	msgType := uint16(b[0])<<8 | uint16(b[1])
	return msgType&0x0110 == 0
}

func (t *requestTap) record(src string, b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	q := t.last[src]
	if len(q) == tapDepth {
		q = q[1:]
	}
	t.last[src] = append(q, append([]byte(nil), b...))
}

func (t *requestTap) forget(src string) {
	t.mu.Lock()
	delete(t.last, src)
	t.mu.Unlock()
}

func (t *requestTap) recent(src net.Addr) [][]byte {
	if src == nil {
		return nil
	}
	return t.recentBySrc(src.String())
}

func (t *requestTap) recentBySrc(src string) [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	// Copies: checking MESSAGE-INTEGRITY rewrites the length in place, maybe
	// on two listeners at once.
	last := t.last[src]
	out := make([][]byte, len(last))
	for i, b := range last {
		out[i] = bytes.Clone(b)
	}
	return out
}

// tapPacketConn records the requests read from a UDP listener, corrects
// pion's error codes on the way out, and reads with recvmmsg(2) when it can.
type tapPacketConn struct {
	net.PacketConn
	tap  *requestTap
	ans  *answers
	prev string // only the listener's read loop touches it

	batch      batchReader // nil: one ReadFrom per datagram
	msgs       []ipv4.Message
	next, have int
}

// batchReader is what ipv4.PacketConn and ipv6.PacketConn have in common.
type batchReader interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
}

// readSlotSize exceeds pion's inbound MTU, so that a datagram too long for
// pion still reaches it as such.
const (
	readBatchSize = 32
	readSlotSize  = 2048
)

func newTapPacketConn(c net.PacketConn, tap *requestTap, ans *answers) *tapPacketConn {
	t := &tapPacketConn{PacketConn: c, tap: tap, ans: ans}
	if u, ok := c.(*net.UDPConn); ok {
		if la, ok := u.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() == nil && !la.IP.IsUnspecified() {
			t.batch = ipv6.NewPacketConn(u)
		} else {
			t.batch = ipv4.NewPacketConn(u)
		}
		t.msgs = make([]ipv4.Message, readBatchSize)
		for i := range t.msgs {
			t.msgs[i].Buffers = [][]byte{make([]byte, readSlotSize)}
		}
	}
	return t
}

func (c *tapPacketConn) readFrom(p []byte) (int, net.Addr, error) {
	if c.batch == nil {
		return c.PacketConn.ReadFrom(p)
	}
	if c.next == c.have {
		n, err := c.batch.ReadBatch(c.msgs, 0)
		if err != nil {
			return 0, nil, err
		}
		c.next, c.have = 0, n
	}
	m := &c.msgs[c.next]
	c.next++
	n := copy(p, m.Buffers[0][:m.N])
	if m.N > n || m.Flags&syscall.MSG_TRUNC != 0 {
		n = len(p) // too long: pion drops a datagram that fills its buffer
	}
	return n, m.Addr, nil
}

func (c *tapPacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if isErrorResponse(p) {
		if q := c.ans.fix(addr.String(), p); len(q) != len(p) || &q[0] != &p[0] {
			if _, err := c.PacketConn.WriteTo(q, addr); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	return c.PacketConn.WriteTo(p, addr)
}

func (c *tapPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.readFrom(p)
	if err == nil && isRequest(p[:n]) {
		src := addr.String()
		if c.prev != "" && c.prev != src {
			c.tap.forget(c.prev)
		}
		c.prev = src
		c.tap.record(src, p[:n])
	}
	return n, addr, err
}

// tapListener hands out connections that record their STUN requests.
type tapListener struct {
	net.Listener
	tap *requestTap
	ans *answers
	log *slog.Logger
}

func (l *tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	// pion reads streams without deadlines: a silent client would hold a
	// goroutine and a descriptor forever.
	_ = c.SetReadDeadline(time.Now().Add(firstFrameTimeout))
	return &tapConn{Conn: c, tap: l.tap, ans: l.ans, log: l.log, src: c.RemoteAddr().String()}, nil
}

// firstFrameTimeout runs from accept to the first complete TURN message.
const firstFrameTimeout = 10 * time.Second

// tapConn follows the TURN framing of a TCP or TLS stream exactly as
// pion's STUNConn cuts it, records each STUN request, and ends the stream
// at a frame pion would size as 0: pion/turn v5.1.0 sizes frames in 16
// bits and would then spin on that empty frame for good (guarded by
// FuzzTURNMessage's stream_*_length_* seeds).
type tapConn struct {
	net.Conn
	tap *requestTap
	ans *answers
	log *slog.Logger
	src string
	// buf holds the head frame's first bytes: up to 20 until pion can size
	// it, then all of a request worth recording.
	buf     []byte
	size    int
	skip    int  // bytes left of a frame not worth keeping
	gone    bool // pion gives up on the stream at the head frame
	once    sync.Once
	started bool // a first complete frame has arrived (its deadline is lifted)
	// raw is set once a ConnectionBind succeeded: the stream then carries a
	// peer's TCP data (RFC 6062).
	raw atomic.Bool
}

// Write sends what pion writes with its error codes corrected, and notes
// a ConnectionBind success.
func (c *tapConn) Write(p []byte) (int, error) {
	if c.raw.Load() {
		return c.Conn.Write(p)
	}
	if len(p) >= stunHeader && p[0] == 0x01 && p[1] == 0x0b &&
		p[4] == 0x21 && p[5] == 0x12 && p[6] == 0xa4 && p[7] == 0x42 {
		c.raw.Store(true)
	}
	if isErrorResponse(p) {
		if q := c.ans.fix(c.src, p); len(q) != len(p) || &q[0] != &p[0] {
			if _, err := c.Conn.Write(q); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}

const maxTappedFrame = 1600

// errWrappingFrame ends a stream whose next frame pion would size as 0.
var errWrappingFrame = errors.New("relay: TURN frame length wraps to 0 in pion's framing")

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n == 0 || c.raw.Load() {
		return n, err
	}
	ended, ferr := c.follow(p[:n])
	if ferr != nil {
		// pion drops what a failed read returned, and closes.
		c.log.Info("turn: stream refused", "client", c.src, "err", ferr)
		return 0, ferr
	}
	if ended && !c.started {
		c.started = true
		_ = c.Conn.SetReadDeadline(time.Time{})
	}
	return n, err
}

// follow advances pion's framing over b and reports whether a frame ended.
func (c *tapConn) follow(b []byte) (ended bool, err error) {
	for !c.gone {
		switch {
		case c.skip > 0:
			k := min(c.skip, len(b))
			c.skip -= k
			b = b[k:]
			if c.skip > 0 {
				return ended, nil
			}
			ended = true
			continue
		case c.size > 0:
			k := min(c.size-len(c.buf), len(b))
			c.buf = append(c.buf, b[:k]...)
			b = b[k:]
			if len(c.buf) < c.size {
				return ended, nil
			}
			c.tap.record(c.src, c.buf)
			c.buf, c.size, ended = c.buf[:0], 0, true
			continue
		}
		k := min(stunHeader-len(c.buf), len(b))
		c.buf = append(c.buf, b[:k]...)
		b = b[k:]
		size, st := pionFrameSize(c.buf, len(c.buf)+len(b))
		switch {
		case st == frameInvalid:
			c.gone = true
			return ended, nil
		case st == frameIncomplete && len(c.buf) < stunHeader:
			// pion cannot size it until it has 20 bytes.
			return ended, nil
		case size == 0:
			return ended, errWrappingFrame
		case size <= len(c.buf):
			if isRequest(c.buf[:size]) {
				c.tap.record(c.src, c.buf[:size])
			}
			c.buf = c.buf[:copy(c.buf, c.buf[size:])]
			ended = true
		case size <= maxTappedFrame && isRequest(c.buf):
			c.size = size
		default:
			// ChannelData, a response, or oversized: let it pass.
			c.skip = size - len(c.buf)
			c.buf = c.buf[:0]
		}
		if len(b) == 0 && len(c.buf) == 0 && c.size == 0 && c.skip == 0 {
			return ended, nil
		}
	}
	return ended, nil
}

const stunHeader = 20

type frameState int

const (
	frameComplete frameState = iota
	frameIncomplete
	frameInvalid
)

// pionFrameSize sizes the frame at the head of pion's buffer as pion/turn
// v5.1.0 does, 16-bit wrap included.
func pionFrameSize(head []byte, avail int) (int, frameState) {
	if avail < 9 {
		return 0, frameIncomplete
	}
	var n uint16
	switch ch := uint16(head[0])<<8 | uint16(head[1]); {
	case avail >= stunHeader && head[4] == 0x21 && head[5] == 0x12 && head[6] == 0xa4 && head[7] == 0x42:
		n = (uint16(head[2])<<8 | uint16(head[3])) + stunHeader
	case ch >= 0x4000 && ch <= 0x7fff:
		n = uint16(head[2])<<8 | uint16(head[3])
		if over := (n + 4) % 4; over != 0 {
			n = n + 4 - over
		}
		n += 4
	case avail < stunHeader:
		return 0, frameIncomplete
	default:
		return 0, frameInvalid
	}
	if avail < int(n) {
		return int(n), frameIncomplete
	}
	return int(n), frameComplete
}

func (c *tapConn) Close() error {
	c.once.Do(func() { c.tap.forget(c.src) })
	return c.Conn.Close()
}
