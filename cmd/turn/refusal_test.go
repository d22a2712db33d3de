package main

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"

	"github.com/sotto-rtc/sotto/relay"
)

// TestRefusalCodes checks the codes a refused request gets, as coturn
// and RFC 8656 give them: 403 for a peer the policy refuses (ChannelBind,
// CreatePermission, Connect) and 401 with REALM and NONCE for a bad
// credential. turnutils_uclient prints the codes of ChannelBind and
// CreatePermission; a 401 makes it retry until it gives up, without a
// code, and it prints nothing for Connect, so those two are also checked
// with Go clients.
func TestRefusalCodes(t *testing.T) {
	uclient := requireProgram(t, "turnutils_uclient", "coturn")
	r := startCmd(t, "--auth-secret", testSecret, "--listen", "127.0.0.1:0")
	const messages = 3
	for _, transport := range []struct {
		name  string
		flags []string
	}{{"udp", nil}, {"tcp", []string{"-t"}}} {
		t.Run(transport.name, func(t *testing.T) {
			listen := r.listen[transport.name]
			tests := []struct {
				name   string
				flags  []string
				secret string
				want   string
			}{
				{name: "denied peer, ChannelBind", want: "channel bind: error 403"},
				{name: "denied peer, CreatePermission", flags: []string{"-s"}, want: "create permission error 403"},
				{name: "bad secret", secret: "not-the-secret-0123456789abcdef", want: "Cannot complete Allocation"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					flags := append(append([]string{}, transport.flags...), tt.flags...)
					secret := tt.secret
					if secret == "" {
						secret = testSecret
					}
					out, _ := runUclientSecret(t, uclient, secret, listen, 3480, messages, flags...)
					if !strings.Contains(out, tt.want) {
						t.Errorf("turnutils_uclient does not report %q:\n%s", tt.want, out)
					}
					if strings.Contains(out, "error 400") || strings.Contains(out, "error 401") {
						t.Errorf("turnutils_uclient got 400 or 401:\n%s", out)
					}
				})
			}
		})
	}
	if s := r.stderr.String(); !strings.Contains(s, "peer refused") || !strings.Contains(s, "credential refused") {
		t.Errorf("refusals not logged:\n%s", s)
	}

	t.Run("bad credential is 401 with REALM and NONCE", func(t *testing.T) {
		user, _ := relay.RESTCredentials(testSecret, "mallory", time.Hour, time.Now())
		_, pass := relay.RESTCredentials("not-the-secret-0123456789abcdef", "mallory", time.Hour, time.Now())
		for _, network := range []string{"udp", "tcp"} {
			c, err := net.Dial(network, r.listen[network])
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			transport := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
			first := stunRoundTrip(t, c, stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), transport))
			var nonce stun.Nonce
			if nonce.GetFrom(first) != nil {
				t.Fatalf("%s: first answer has no NONCE: %v", network, first)
			}
			resp := stunRoundTrip(t, c, stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), transport,
				stun.NewUsername(user), stun.NewRealm("sotto"), nonce, stun.NewLongTermIntegrity(user, "sotto", pass)))
			var code stun.ErrorCodeAttribute
			var realm stun.Realm
			if code.GetFrom(resp) != nil || code.Code != stun.CodeUnauthorized || realm.GetFrom(resp) != nil || realm.String() != "sotto" || nonce.GetFrom(resp) != nil {
				t.Errorf("%s: bad credential answered %v (%v), want 401 with REALM sotto and a NONCE", network, resp, code)
			}
		}
	})

	t.Run("Connect to the relay itself is 403", func(t *testing.T) {
		// Loopback opened: the policy passes the relay's own TCP
		// listener, and the relay refuses to dial it.
		open := startCmd(t, "--auth-secret", testSecret, "--listen", "127.0.0.1:0", "--allow-peer", "127.0.0.0/8")
		ctrl, err := net.Dial("tcp", open.listen["tcp"])
		if err != nil {
			t.Fatal(err)
		}
		user, pass := relay.RESTCredentials(testSecret, "connect", time.Hour, time.Now())
		pc, err := turn.NewClient(&turn.ClientConfig{
			STUNServerAddr: open.listen["tcp"], TURNServerAddr: open.listen["tcp"],
			Conn: turn.NewSTUNConn(ctrl), Username: user, Password: pass, Realm: "sotto",
		})
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		if err := pc.Listen(); err != nil {
			t.Fatal(err)
		}
		alloc, err := pc.AllocateTCP()
		if err != nil {
			t.Fatalf("AllocateTCP: %v", err)
		}
		defer alloc.Close()
		own, _ := net.ResolveTCPAddr("tcp", open.listen["tcp"])
		if _, err := alloc.Connect(own); err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("Connect to the relay's own listener: %v, want 403", err)
		}
	})
}

// stunRoundTrip sends m on c (UDP, or TCP where STUN frames itself) and
// returns the answer to its transaction.
func stunRoundTrip(t *testing.T, c net.Conn, m *stun.Message) *stun.Message {
	t.Helper()
	if _, err := c.Write(m.Raw); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1600)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("%s: no answer: %v", m.Type, err)
	}
	resp := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
	if err := resp.Decode(); err != nil || resp.TransactionID != m.TransactionID {
		t.Fatalf("%s: answer %v (%v) is not to this transaction", m.Type, resp, err)
	}
	return resp
}
