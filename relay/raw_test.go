package relay

import (
	"encoding/binary"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// rawClient speaks TURN by hand over UDP, so that a test can send what a
// well-behaved client library never would: a peer address in its
// IPv4-mapped IPv6 form, a wrong realm, a forged integrity.
type rawClient struct {
	t      *testing.T
	conn   net.Conn
	user   string
	pass   string
	realm  string
	nonce  stun.Nonce
	noAuth bool
}

func dialRaw(t *testing.T, server net.Addr, user, pass string) *rawClient {
	t.Helper()
	c, err := net.Dial("udp", server.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawClient{t: t, conn: c, user: user, pass: pass}
}

// turnError is a TURN error response.
type turnError struct{ code stun.ErrorCode }

func (e *turnError) Error() string { return "turn error " + strconv.Itoa(int(e.code)) }

// errorCode returns the TURN error code of err, or 0.
func errorCode(err error) int {
	var te *turnError
	if errors.As(err, &te) {
		return int(te.code)
	}
	return 0
}

// do sends one request and returns the success response, or a *turnError.
// A 401 or 438 carrying a nonce is answered once more with credentials,
// as a client does; the realm is the one the server named unless the
// test set its own.
func (c *rawClient) do(method stun.Method, attrs ...stun.Setter) (*stun.Message, error) {
	c.t.Helper()
	for attempt := 0; ; attempt++ {
		m := new(stun.Message)
		m.TransactionID = stun.NewTransactionID()
		m.SetType(stun.NewType(method, stun.ClassRequest))
		m.WriteHeader()
		for _, a := range attrs {
			if err := a.AddTo(m); err != nil {
				c.t.Fatal(err)
			}
		}
		if c.nonce != nil && !c.noAuth {
			for _, a := range []stun.Setter{stun.NewUsername(c.user), stun.NewRealm(c.realm), c.nonce,
				stun.NewLongTermIntegrity(c.user, c.realm, c.pass)} {
				if err := a.AddTo(m); err != nil {
					c.t.Fatal(err)
				}
			}
		}
		resp := c.roundTrip(m)
		if resp.Type.Class == stun.ClassSuccessResponse {
			return resp, nil
		}
		var code stun.ErrorCodeAttribute
		if err := code.GetFrom(resp); err != nil {
			c.t.Fatalf("error response without ERROR-CODE: %v", resp)
		}
		if (code.Code == stun.CodeUnauthorized || code.Code == stun.CodeStaleNonce) && attempt == 0 && !c.noAuth {
			var n stun.Nonce
			var r stun.Realm
			if n.GetFrom(resp) == nil {
				c.nonce = n
				if c.realm == "" && r.GetFrom(resp) == nil {
					c.realm = r.String()
				}
				continue
			}
		}
		return resp, &turnError{code: code.Code}
	}
}

func (c *rawClient) roundTrip(m *stun.Message) *stun.Message {
	c.t.Helper()
	if _, err := c.conn.Write(m.Raw); err != nil {
		c.t.Fatal(err)
	}
	buf := make([]byte, 1600)
	for {
		// A deadline, not a sleep: the relay on loopback answers in
		// microseconds; 10 s only bounds a broken test.
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.conn.Read(buf)
		if err != nil {
			c.t.Fatalf("%s: no answer: %v", m.Type, err)
		}
		resp := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if resp.Decode() != nil || resp.TransactionID != m.TransactionID {
			continue // a Data indication or a late retransmission
		}
		return resp
	}
}

// allocate makes a UDP allocation.
func (c *rawClient) allocate() error {
	_, err := c.do(stun.MethodAllocate, requestedUDP{})
	return err
}

type requestedUDP struct{}

func (requestedUDP) AddTo(m *stun.Message) error {
	m.Add(stun.AttrRequestedTransport, []byte{17, 0, 0, 0})
	return nil
}

// channelNumber is a CHANNEL-NUMBER attribute.
type channelNumber uint16

func (n channelNumber) AddTo(m *stun.Message) error {
	v := make([]byte, 4)
	binary.BigEndian.PutUint16(v, uint16(n))
	m.Add(stun.AttrChannelNumber, v)
	return nil
}

// peerAddr is an XOR-PEER-ADDRESS written exactly as given: a 16-byte IP
// stays IPv6 on the wire even when it is an IPv4-mapped address, which
// pion's own encoder would turn into IPv4.
type peerAddr struct {
	ip   net.IP
	port int
}

func (p peerAddr) AddTo(m *stun.Message) error {
	family, ip := byte(1), p.ip.To4()
	if len(p.ip) == net.IPv6len && !isPlain4(p.ip) {
		family, ip = 2, p.ip
	}
	v := make([]byte, 4+len(ip))
	v[1] = family
	binary.BigEndian.PutUint16(v[2:], uint16(p.port)^uint16(magicCookie>>16))
	key := make([]byte, 16)
	binary.BigEndian.PutUint32(key, magicCookie)
	copy(key[4:], m.TransactionID[:])
	for i := range ip {
		v[4+i] = ip[i] ^ key[i]
	}
	m.Add(stun.AttrXORPeerAddress, v)
	return nil
}

// isPlain4 reports whether ip was written as IPv4 (net.ParseIP stores
// every address in 16 bytes; mapped ones are the tests' business).
func isPlain4(ip net.IP) bool { return len(ip) == net.IPv4len }

// magicCookie is STUN's fixed cookie (RFC 5389), the XOR key of addresses.
const magicCookie = 0x2112A442

// TestBatchedReadsDropOversized has the UDP listener's recvmmsg batch
// hold datagrams pion must refuse as too long (over its 1600-byte MTU,
// and over the batch's own slot) between requests, and expects those
// dropped and the requests answered, as with one read per datagram.
func TestBatchedReadsDropOversized(t *testing.T) {
	s := startRelay(t, nil)
	c := restClient(t, s, "batch")
	for _, size := range []int{1600, 1700, 4000} {
		// An Allocate request whose length field says size-20: pion
		// would answer it if it reached it whole.
		big := make([]byte, size)
		big[1] = 0x03
		big[2], big[3] = byte((size-20)>>8), byte(size-20)
		copy(big[4:], []byte{0x21, 0x12, 0xa4, 0x42})
		for range 3 {
			if _, err := c.conn.Write(big); err != nil {
				t.Fatal(err)
			}
		}
	}
	// pion handles one socket's datagrams in order, so the first answer
	// is to the Binding request unless an oversized one got through.
	bind := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	if _, err := c.conn.Write(bind.Raw); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1600)
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	first := &stun.Message{Raw: buf[:n]}
	if err := first.Decode(); err != nil || first.TransactionID != bind.TransactionID {
		t.Fatalf("first answer %v (%v) is not the Binding response: an oversized datagram was handled", first, err)
	}
	if err := c.allocate(); err != nil {
		t.Fatalf("allocate after oversized datagrams: %v", err)
	}
}
