package relay

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // TURN REST credentials are HMAC-SHA1 by definition (coturn use-auth-secret)
	"encoding/base64"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
)

// RESTCredentials returns TURN REST ephemeral credentials for identity,
// valid until now+ttl, in the format coturn's use-auth-secret accepts:
// username "expiry:identity" (expiry in Unix seconds) and password
// base64(HMAC-SHA1(secret, username)). Anyone holding secret can mint
// them, which is why the secret is shared only between the relay and the
// service that admits callers.
func RESTCredentials(secret, identity string, ttl time.Duration, now time.Time) (username, password string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + identity
	return username, restPassword(secret, username)
}

func restPassword(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Reasons a credential is refused; they are the "reason" label of
// sotto_turn_refusals_total.
const (
	reasonExpired     = "expired"
	reasonForged      = "forged"
	reasonWrongRealm  = "wrong_realm"
	reasonUnknownUser = "unknown_user"
	reasonPeerDenied  = "peer_denied"
	reasonQuotaUser   = "quota_user"
	reasonQuotaTotal  = "quota_total"
)

// authenticator checks long-term credentials: TURN REST usernames against
// every shared secret (rotation), and static users.
type authenticator struct {
	realm   string
	secrets []string
	users   map[string]string
	now     func() time.Time
	tap     *requestTap
}

// key returns the long-term key (MD5(username:realm:password)) for a
// request, the user ID allocations are counted under, and the refusal
// reason when there is no key to give.
//
// pion checks MESSAGE-INTEGRITY with exactly one key, but during a secret
// rotation a username may be signed with any of several secrets. So when
// there is more than one candidate key, the request the tap recorded is
// checked against each, and the one that verifies is returned. If none
// does, the first is returned and pion's own check refuses the request
// (counted as forged through the auth event).
func (a *authenticator) key(ra *turn.RequestAttributes) (userID string, key []byte, reason string) {
	if ra.Realm != a.realm {
		return "", nil, reasonWrongRealm
	}
	if pw, ok := a.users[ra.Username]; ok {
		return ra.Username, turn.GenerateAuthKey(ra.Username, a.realm, pw), ""
	}
	// coturn also accepts a bare expiry (turnutils_uclient -W without
	// -u); the whole username then stands for the user.
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

// tapDepth is how many recent requests are kept per client: a TCP client
// may pipeline a few (CreatePermission and ChannelBind together), and
// pion's stream reader may read them in one go.
const tapDepth = 4

// requestTap remembers the last few STUN requests each client sent, so
// that the authenticator can pick the secret a request was signed with.
// It holds one entry per UDP listener (the entry of the last sender) and
// one per TCP or TLS connection, so a flood of spoofed sources cannot
// grow it.
type requestTap struct {
	mu   sync.Mutex
	last map[string][][]byte
}

func newRequestTap() *requestTap { return &requestTap{last: make(map[string][][]byte)} }

// isRequest reports whether b starts a STUN request (class 0b00); only
// requests carry credentials, and copying nothing else keeps the relayed
// data path free of allocations.
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
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([][]byte(nil), t.last[src.String()]...)
}

// tapPacketConn records the STUN requests read from a UDP listener.
type tapPacketConn struct {
	net.PacketConn
	tap  *requestTap
	prev string // only the listener's read loop touches it
}

func (c *tapPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(p)
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

// tapListener hands out connections that record the STUN requests read
// from them.
type tapListener struct {
	net.Listener
	tap *requestTap
}

func (l *tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	// pion reads a stream without deadlines, so a client that connects
	// and says nothing (or stalls its TLS handshake) would hold a
	// goroutine and a descriptor forever. It gets firstFrameTimeout to
	// send its first TURN message.
	_ = c.SetReadDeadline(time.Now().Add(firstFrameTimeout))
	return &tapConn{Conn: c, tap: l.tap, src: c.RemoteAddr().String()}, nil
}

// firstFrameTimeout bounds the time from TCP accept to the first complete
// TURN message (TLS handshake included).
const firstFrameTimeout = 10 * time.Second

// tapConn follows the TURN framing of a TCP or TLS stream (RFC 5766
// section 11.5: STUN messages and ChannelData padded to 4 bytes) as the
// bytes go by, and records each complete STUN request.
type tapConn struct {
	net.Conn
	tap     *requestTap
	src     string
	buf     []byte // the current frame, while it is a STUN request
	skip    int    // bytes left of a frame not worth keeping
	once    sync.Once
	started bool // a first complete frame has arrived (its deadline is lifted)
}

// maxTappedFrame bounds what a tapped stream buffers; pion refuses larger
// messages anyway.
const maxTappedFrame = 1600

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.follow(p[:n]) && !c.started {
		c.started = true
		_ = c.Conn.SetReadDeadline(time.Time{})
	}
	return n, err
}

// follow advances the framing over b and reports whether a frame ended
// in it.
func (c *tapConn) follow(b []byte) (ended bool) {
	for len(b) > 0 {
		if c.skip > 0 {
			k := min(c.skip, len(b))
			c.skip -= k
			b = b[k:]
			continue
		}
		need := 4 - len(c.buf)
		if len(c.buf) >= 4 {
			need = frameLen(c.buf) - len(c.buf)
		}
		k := min(need, len(b))
		c.buf = append(c.buf, b[:k]...)
		b = b[k:]
		if len(c.buf) < 4 {
			continue
		}
		total := frameLen(c.buf)
		if total > maxTappedFrame || c.buf[0]&0xc0 != 0 {
			// ChannelData or oversized: let it pass untouched.
			c.skip = total - len(c.buf)
			c.buf = c.buf[:0]
			ended = ended || c.skip == 0
			continue
		}
		if len(c.buf) == total {
			if isRequest(c.buf) {
				c.tap.record(c.src, c.buf)
			}
			c.buf = c.buf[:0]
			ended = true
		}
	}
	return ended
}

// frameLen is the length on the wire of the frame whose first 4 bytes h
// holds.
func frameLen(h []byte) int {
	l := int(h[2])<<8 | int(h[3])
	if h[0]&0xc0 == 0 {
		return 20 + l
	}
	return 4 + (l+3)&^3
}

func (c *tapConn) Close() error {
	c.once.Do(func() { c.tap.forget(c.src) })
	return c.Conn.Close()
}
