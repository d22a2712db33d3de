package relay

import (
	"net"
	"sync"

	"github.com/pion/stun/v4"
)

// answers corrects, as they leave, the error responses pion/turn v5.1.0
// codes otherwise than RFC 8656 (and coturn):
//
//   - a peer refused on ChannelBind: pion 401, RFC 8656 section 12 403;
//   - a refused credential: pion 400, RFC 8489 section 9.2.4 401 with
//     REALM and NONCE;
//   - a Connect to one of the relay's own endpoints or a closed port of
//     an endpoint-only peer: pion 447 (the dial "failed"), RFC 6062
//     section 5.2 403.
//
// pion builds these answers inside its request handlers, with no hook, so
// the listener wrappers hand every datagram or stream write to fix; all
// but error responses pass after a one-byte check.
type answers struct {
	realm string
	tap   *requestTap
	// connectRefused reports whether a Connect peer is one the relay
	// holds back after the policy passed it.
	connectRefused func(net.Addr) bool

	mu sync.Mutex
	// refused maps the transaction of a request whose credential was
	// refused to the NONCE it carried (pion had validated it).
	refused map[[stun.TransactionIDSize]byte]string
}

// maxRefused bounds the refusals awaiting their answer. pion answers on
// the goroutine that refused, so an entry lives microseconds; the bound
// only matters if pion ever stops answering.
const maxRefused = 1024

func newAnswers(realm string, tap *requestTap, connectRefused func(net.Addr) bool) *answers {
	return &answers{realm: realm, tap: tap, connectRefused: connectRefused,
		refused: make(map[[stun.TransactionIDSize]byte]string)}
}

// refuseCredential notes that the credential of src's latest request of
// this method and username was refused, so that pion's 400 goes out as
// 401.
func (a *answers) refuseCredential(src net.Addr, username, method string) {
	if src == nil {
		return
	}
	for _, raw := range a.tap.recent(src) {
		m := &stun.Message{Raw: raw}
		if m.Decode() != nil || m.Type.Method.String() != method {
			continue
		}
		var u stun.Username
		var n stun.Nonce
		if u.GetFrom(m) != nil || u.String() != username || n.GetFrom(m) != nil {
			continue
		}
		a.mu.Lock()
		if len(a.refused) >= maxRefused {
			clear(a.refused)
		}
		a.refused[m.TransactionID] = n.String()
		a.mu.Unlock()
	}
}

// isErrorResponse reports whether b starts a STUN error response (class
// 0b11).
func isErrorResponse(b []byte) bool {
	return len(b) >= stunHeader && b[0]&0xc0 == 0 && b[0]&0x01 != 0 && b[1]&0x10 != 0 &&
		b[4] == 0x21 && b[5] == 0x12 && b[6] == 0xa4 && b[7] == 0x42
}

// fix returns what to send to dst in place of p: p itself, or the
// corrected error response.
func (a *answers) fix(dst string, p []byte) []byte {
	if !isErrorResponse(p) {
		return p
	}
	m := &stun.Message{Raw: append([]byte(nil), p...)}
	if m.Decode() != nil {
		return p
	}
	var code stun.ErrorCodeAttribute
	if code.GetFrom(m) != nil {
		return p
	}
	switch {
	case code.Code == stun.CodeBadRequest:
		a.mu.Lock()
		nonce, ok := a.refused[m.TransactionID]
		delete(a.refused, m.TransactionID)
		a.mu.Unlock()
		if ok {
			return rebuild(m, stun.ErrorCodeAttribute{Code: stun.CodeUnauthorized, Reason: []byte("Unauthorized")},
				stun.NewRealm(a.realm), stun.NewNonce(nonce))
		}
	case code.Code == stun.CodeUnauthorized && m.Type.Method == stun.MethodChannelBind && !m.Contains(stun.AttrNonce):
		// pion's only 401 without a NONCE: its permission handler said no.
		return rebuild(m, forbidden)
	case code.Code == stun.CodeConnTimeoutOrFailure && m.Type.Method == stun.MethodConnect:
		if peer := a.connectPeer(dst, m.TransactionID); peer != nil && a.connectRefused(peer) {
			return rebuild(m, forbidden)
		}
	}
	return p
}

var forbidden = stun.ErrorCodeAttribute{Code: stun.CodeForbidden, Reason: []byte("Forbidden")}

// connectPeer returns the XOR-PEER-ADDRESS of dst's recorded Connect
// request tid, or nil.
func (a *answers) connectPeer(dst string, tid [stun.TransactionIDSize]byte) net.Addr {
	for _, raw := range a.tap.recentBySrc(dst) {
		m := &stun.Message{Raw: raw}
		if m.Decode() != nil || m.TransactionID != tid {
			continue
		}
		var peer stun.XORMappedAddress // XOR-PEER-ADDRESS has the same encoding
		if peer.GetFromAs(m, stun.AttrXORPeerAddress) == nil {
			return &net.TCPAddr{IP: peer.IP, Port: peer.Port}
		}
	}
	return nil
}

// rebuild returns m's header with code and extra in place of its
// attributes. The responses rewritten carry nothing else (pion's
// ChannelBind 401, its 400s and its Connect 447 have no
// MESSAGE-INTEGRITY).
func rebuild(m *stun.Message, code stun.ErrorCodeAttribute, extra ...stun.Setter) []byte {
	out, err := stun.Build(append([]stun.Setter{stun.NewTransactionIDSetter(m.TransactionID), m.Type, code}, extra...)...)
	if err != nil {
		return m.Raw
	}
	return out.Raw
}
