package relay

import (
	"net"
	"sync"

	"github.com/pion/stun/v4"
)

// answers corrects, as they leave, the error codes pion gives otherwise
// than RFC 8656 and coturn: 401 to 403 for a peer refused on ChannelBind,
// 400 to 401 with REALM and NONCE for a refused credential, and 447 to 403
// for a Connect to the relay itself or a closed endpoint port. pion has no
// hook for these, so every write passes through fix.
type answers struct {
	realm          string
	tap            *requestTap
	connectRefused func(net.Addr) bool

	mu sync.Mutex
	// refused maps a refused request's transaction to its NONCE.
	refused map[[stun.TransactionIDSize]byte]string
}

// maxRefused only matters if pion ever stops answering.
const maxRefused = 1024

func newAnswers(realm string, tap *requestTap, connectRefused func(net.Addr) bool) *answers {
	return &answers{realm: realm, tap: tap, connectRefused: connectRefused,
		refused: make(map[[stun.TransactionIDSize]byte]string)}
}

// refuseCredential notes a refused credential, so that pion's 400 goes
// out as 401.
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

func isErrorResponse(b []byte) bool {
	return len(b) >= stunHeader && b[0]&0xc0 == 0 && b[0]&0x01 != 0 && b[1]&0x10 != 0 &&
		b[4] == 0x21 && b[5] == 0x12 && b[6] == 0xa4 && b[7] == 0x42
}

// fix returns what to send to dst in place of p.
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

// rebuild returns m's header with code and extra as its attributes; the
// answers rewritten carry no MESSAGE-INTEGRITY.
func rebuild(m *stun.Message, code stun.ErrorCodeAttribute, extra ...stun.Setter) []byte {
	out, err := stun.Build(append([]stun.Setter{stun.NewTransactionIDSetter(m.TransactionID), m.Type, code}, extra...)...)
	if err != nil {
		return m.Raw
	}
	return out.Raw
}
