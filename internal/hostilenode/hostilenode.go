// Package hostilenode is a test fixture: a Sotto node turned hostile in
// front of a real one. It proxies the real node's HTTP and relays every
// signaling WebSocket both ways, recording each message and letting a test
// rewrite, filter (filters.go) or inject any of them, as an operator
// compelled to attack its own users could. The end-to-end tests of both
// SDKs use it to show that clients take no trust decision from a field the
// node writes.
//
// A connection's identity is read from its join's token (unverified: the
// real node verifies it), so filters know it from the join on; the real
// node's joined reply then confirms or corrects it.
package hostilenode

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// Frame is one WebSocket message the node carried.
type Frame struct {
	Conn     int  // the client connection, numbered from 0 in order of arrival
	ToClient bool // from the real node; else from the client
	Data     []byte
	Identity string // as known when carried; "" before
}

// Conn identifies a client connection: its number and identity ("" until known).
type Conn struct {
	N        int
	Identity string
}

// injectTimeout bounds one injected write.
const injectTimeout = 10 * time.Second

// relayConn is one relayed client connection.
type relayConn struct {
	n      int
	ctx    context.Context // ends with the relay
	client *websocket.Conn // the client's side
	server *websocket.Conn // the real node's side
	// Keep a filter's messages together, not interleaved with injected ones.
	toClientMu, toServerMu sync.Mutex

	// Guarded by Node.mu.
	identity string
	open     bool
}

// write sends msgs, in order, to the client (toClient) or to the real node.
func (c *relayConn) write(ctx context.Context, toClient bool, typ websocket.MessageType, msgs ...[]byte) error {
	to, mu := c.server, &c.toServerMu
	if toClient {
		to, mu = c.client, &c.toClientMu
	}
	mu.Lock()
	defer mu.Unlock()
	for _, m := range msgs {
		if err := to.Write(ctx, typ, m); err != nil {
			return err
		}
	}
	return nil
}

// Node is the hostile node; clients are given URL in place of the real one.
type Node struct {
	URL string

	mu      sync.Mutex
	frames  []Frame
	conns   []*relayConn      // every relay, by number
	clients []*websocket.Conn // the clients' side of the open relays
	rewrite func([]byte) []byte
	filter  Filter
}

// New starts a node in front of upstream (http://), closed at the test's
// end; rewrite, if not nil, may change every message to a client.
func New(t testing.TB, upstream string, rewrite func([]byte) []byte) *Node {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{rewrite: rewrite}
	pages := httputil.NewSingleHostReverseProxy(target)
	ws := "ws" + strings.TrimPrefix(upstream, "http")
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			pages.ServeHTTP(w, r)
			return
		}
		n.relay(w, r, ws+r.URL.RequestURI())
	}))
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
	})
	n.URL = hs.URL
	return n
}

// relay joins a client WebSocket to a new one to the real node until either
// side ends.
func (n *Node) relay(w http.ResponseWriter, r *http.Request, upstream string) {
	cc, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer cc.CloseNow()
	sc, _, err := websocket.Dial(r.Context(), upstream, nil)
	if err != nil {
		return
	}
	defer sc.CloseNow()
	cc.SetReadLimit(4 << 20)
	sc.SetReadLimit(4 << 20)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	c := &relayConn{ctx: ctx, client: cc, server: sc, open: true}
	n.mu.Lock()
	c.n = len(n.conns)
	n.conns = append(n.conns, c)
	n.clients = append(n.clients, cc)
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		c.open = false
		n.mu.Unlock()
	}()
	pump := func(from *websocket.Conn, toClient bool) {
		defer cancel()
		for {
			typ, b, err := from.Read(ctx)
			if err != nil {
				return
			}
			id := identityIn(toClient, b)
			n.mu.Lock()
			if id != "" && (toClient || c.identity == "") {
				c.identity = id
			}
			n.frames = append(n.frames, Frame{Conn: c.n, ToClient: toClient, Data: b, Identity: c.identity})
			rewrite, filter := n.rewrite, n.filter
			who := Conn{N: c.n, Identity: c.identity}
			n.mu.Unlock()
			if toClient && rewrite != nil {
				b = rewrite(b)
			}
			out := [][]byte{b}
			if filter != nil {
				out = filter(who, toClient, b)
			}
			if c.write(ctx, toClient, typ, out...) != nil {
				return
			}
		}
	}
	go pump(cc, false)
	pump(sc, true)
}

// identityIn returns the identity a join (its token's sub) or a joined
// names; "" for any other message.
func identityIn(toClient bool, b []byte) string {
	var m struct {
		Type        string `json:"type"`
		Token       string `json:"token"`
		Participant struct {
			Identity string `json:"identity"`
		} `json:"participant"`
	}
	if !bytes.Contains(b, []byte(wire.TypeJoin)) || json.Unmarshal(b, &m) != nil {
		return ""
	}
	switch {
	case toClient && m.Type == wire.TypeJoined:
		return m.Participant.Identity
	case !toClient && m.Type == wire.TypeJoin:
		parts := strings.Split(m.Token, ".")
		if len(parts) != 3 {
			return ""
		}
		payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
		if err != nil {
			return ""
		}
		var claims struct {
			Sub string `json:"sub"`
		}
		if json.Unmarshal(payload, &claims) != nil {
			return ""
		}
		return claims.Sub
	}
	return ""
}

// SetRewrite replaces the rewrite; nil passes messages unchanged.
func (n *Node) SetRewrite(rewrite func([]byte) []byte) {
	n.mu.Lock()
	n.rewrite = rewrite
	n.mu.Unlock()
}

// Carried returns every message carried so far, before any rewrite.
func (n *Node) Carried() []Frame {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.frames)
}

// DropClients cuts every open client connection, so clients reconnect, and
// returns how many.
func (n *Node) DropClients() int {
	n.mu.Lock()
	clients := n.clients
	n.clients = nil
	n.mu.Unlock()
	for _, c := range clients {
		_ = c.CloseNow()
	}
	return len(clients)
}

// Conns returns the open client connections, in order of arrival.
func (n *Node) Conns() []Conn {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Conn
	for _, c := range n.conns {
		if c.open {
			out = append(out, Conn{N: c.n, Identity: c.identity})
		}
	}
	return out
}

// ConnsOf returns the open connections of identity, in order.
func (n *Node) ConnsOf(identity string) []int {
	var out []int
	for _, c := range n.Conns() {
		if c.Identity == identity {
			out = append(out, c.N)
		}
	}
	return out
}

// IdentityOf returns connection conn's identity, open or not; "" if unknown.
func (n *Node) IdentityOf(conn int) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if conn < 0 || conn >= len(n.conns) {
		return ""
	}
	return n.conns[conn].identity
}

// Inject sends msg to identity's open connections as if from the real
// node, unrecorded and unfiltered; it fails if there is none.
func (n *Node) Inject(identity string, msg []byte) error {
	return n.injectAll(identity, true, msg)
}

// InjectUpstream sends msg to the real node as if from identity's clients.
func (n *Node) InjectUpstream(identity string, msg []byte) error {
	return n.injectAll(identity, false, msg)
}

func (n *Node) injectAll(identity string, toClient bool, msg []byte) error {
	conns := n.ConnsOf(identity)
	if len(conns) == 0 {
		return fmt.Errorf("hostilenode: no open connection joined as %q", identity)
	}
	var errs []error
	for _, c := range conns {
		errs = append(errs, n.InjectConn(c, toClient, msg))
	}
	return errors.Join(errs...)
}

// InjectConn sends msg on connection conn, to its client (toClient) or to
// the real node; it fails if conn is not open.
func (n *Node) InjectConn(conn int, toClient bool, msg []byte) error {
	n.mu.Lock()
	var c *relayConn
	if conn >= 0 && conn < len(n.conns) && n.conns[conn].open {
		c = n.conns[conn]
	}
	n.mu.Unlock()
	if c == nil {
		return fmt.Errorf("hostilenode: connection %d is not open", conn)
	}
	ctx, cancel := context.WithTimeout(c.ctx, injectTimeout)
	defer cancel()
	if err := c.write(ctx, toClient, websocket.MessageText, msg); err != nil {
		return fmt.Errorf("hostilenode: inject on connection %d: %w", conn, err)
	}
	return nil
}

// Recorded returns the carried messages match accepts (all if nil).
func (n *Node) Recorded(match func(Frame) bool) []Frame {
	frames := n.Carried()
	if match == nil {
		return frames
	}
	return slices.DeleteFunc(frames, func(f Frame) bool { return !match(f) })
}
