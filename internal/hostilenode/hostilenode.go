// Package hostilenode is a test fixture: a Sotto node that turned hostile,
// standing in front of a real one. It serves the real node's HTTP
// (reverse-proxied) and relays every signaling WebSocket both ways,
// recording each message and handing the node's messages to a rewrite
// function on their way to the client, as an operator compelled to attack
// its own users could. End-to-end tests of the Go SDK (signaling/client)
// and the browser SDK (web/) use it to show that clients take no trust
// decision from a field the node writes.
//
// Beyond the global rewrite, a test can mount per-connection attacks in
// both directions: SetFilter (and AddFilter, Chain, HideFrom,
// DropRelaysFrom, JSONFilter) drops, changes or multiplies any message;
// Inject and InjectUpstream send a message of the test's making, or one
// recorded earlier (Recorded, RelayType), as if the node or a client had
// sent it; ConnsOf and Conns tell which connection is whose.
//
// Identities: a connection's identity is first read from the client's
// join message, from its token's sub claim (decoded, not verified: the
// real node verifies it), so it is known already when the join itself
// and everything after it pass the filter. The real node's joined reply
// (its participant.identity, as the node sent it, before any rewrite)
// then confirms or corrects it, before that reply passes the filter.
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
	// Identity is the identity the connection joined as, as known when
	// the message was carried (see the package comment); "" before.
	Identity string
}

// Conn identifies one client connection to a filter: its number (as in
// Frame.Conn) and the identity it joined as, "" while not yet known.
type Conn struct {
	N        int
	Identity string
}

// Filter sees every message the node carries, both ways (toClient: from
// the real node to the client c; else from c to the real node), after
// it is recorded, and returns the messages to send on in its place, in
// order: none drops it, one passes or changes it, several multiply it.
// It is called from every connection's pumps at once, so must be safe
// for concurrent use; it must not keep msg past its return.
type Filter func(c Conn, toClient bool, msg []byte) [][]byte

// injectTimeout bounds one injected write.
const injectTimeout = 10 * time.Second

// relayConn is one relayed client connection.
type relayConn struct {
	n      int
	ctx    context.Context // ends with the relay
	client *websocket.Conn // the client's side
	server *websocket.Conn // the real node's side
	// websocket.Conn.Write is safe for concurrent use; these only keep
	// the several messages a filter returns together, not interleaved
	// with injected ones.
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

// Node is the hostile node. URL is its base URL, to give clients in place
// of the real node's.
type Node struct {
	URL string

	mu      sync.Mutex
	frames  []Frame
	conns   []*relayConn      // every relay, by number
	clients []*websocket.Conn // the clients' side of the open relays
	rewrite func([]byte) []byte
	filter  Filter
}

// New starts a hostile node in front of the node at upstream (an http://
// base URL), closed at the test's end. rewrite, if not nil, may change
// every message from the node to a client (SetRewrite changes it later).
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

// relay joins one client WebSocket to a new one to the real node and
// pumps messages both ways until either side ends.
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

// identityIn returns the identity a message names for its connection: a
// client's join's token's sub claim (unverified), or the real node's
// joined's participant.identity; "" for any other message.
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

// SetRewrite changes how the node's messages to clients are rewritten
// from now on; nil passes them on unchanged.
func (n *Node) SetRewrite(rewrite func([]byte) []byte) {
	n.mu.Lock()
	n.rewrite = rewrite
	n.mu.Unlock()
}

// Carried returns every message carried so far, both ways, as the real
// node and the clients sent them (before any rewrite).
func (n *Node) Carried() []Frame {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.frames)
}

// DropClients cuts every client's open signaling connection, so that the
// clients reconnect (through this node again). It returns how many it cut.
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

// SetFilter sets the filter every message goes through from now on,
// both ways, in place of any earlier one; nil passes every message on.
// A message from the node to a client goes through the rewrite (New,
// SetRewrite) first, then the filter. Messages sent with Inject,
// InjectUpstream or InjectConn go through neither.
func (n *Node) SetFilter(f Filter) {
	n.mu.Lock()
	n.filter = f
	n.mu.Unlock()
}

// AddFilter chains f after the filter already set (see Chain).
func (n *Node) AddFilter(f Filter) {
	n.mu.Lock()
	n.filter = Chain(n.filter, f)
	n.mu.Unlock()
}

// Chain makes one filter of several: each message goes through the
// first, each message that returns through the second, and so on. nil
// filters are skipped.
func Chain(filters ...Filter) Filter {
	filters = slices.DeleteFunc(slices.Clone(filters), func(f Filter) bool { return f == nil })
	return func(c Conn, toClient bool, msg []byte) [][]byte {
		out := [][]byte{msg}
		for _, f := range filters {
			var next [][]byte
			for _, m := range out {
				next = append(next, f(c, toClient, m)...)
			}
			out = next
		}
		return out
	}
}

// JSONFilter makes a filter from fix: every message is decoded and given
// to fix; it is dropped if fix reports keep false, and re-encoded only if
// fix reports it changed it, so the messages it leaves alone go through
// byte for byte. Messages that are not JSON objects go through.
func JSONFilter(fix func(c Conn, toClient bool, m map[string]any) (keep, changed bool)) Filter {
	return func(c Conn, toClient bool, msg []byte) [][]byte {
		var m map[string]any
		if json.Unmarshal(msg, &m) != nil {
			return [][]byte{msg}
		}
		keep, changed := fix(c, toClient, m)
		switch {
		case !keep:
			return nil
		case !changed:
			return [][]byte{msg}
		}
		out, err := json.Marshal(m)
		if err != nil {
			return [][]byte{msg}
		}
		return [][]byte{out}
	}
}

// viewing reports whether a message to c is one a filter for viewers
// (all but exempt, if none) acts on.
func viewing(c Conn, toClient bool, exempt string, viewers []string) bool {
	if !toClient || c.Identity == exempt {
		return false
	}
	return len(viewers) == 0 || slices.Contains(viewers, c.Identity)
}

// HideFrom makes a filter that hides the participant ghost from the
// clients that joined as one of viewers (from every client but ghost's
// own if viewers is empty): it takes ghost out of joined's participants,
// and drops the participant_joined, participant_left, track_published,
// track_unpublished and track_muted messages about ghost. It leaves
// relays from ghost alone (chain DropRelaysFrom for those) and cannot
// hide ghost's media from the subscriber connection's SDP.
func HideFrom(ghost string, viewers ...string) Filter {
	viewers = slices.Clone(viewers)
	hide := JSONFilter(func(_ Conn, _ bool, m map[string]any) (keep, changed bool) {
		switch m["type"] {
		case wire.TypeJoined:
			list, _ := m["participants"].([]any)
			kept := slices.DeleteFunc(slices.Clone(list), func(p any) bool {
				pm, _ := p.(map[string]any)
				return pm != nil && pm["identity"] == ghost
			})
			if len(kept) == len(list) {
				return true, false
			}
			m["participants"] = kept
			return true, true
		case wire.TypeParticipantJoin:
			pm, _ := m["participant"].(map[string]any)
			return pm == nil || pm["identity"] != ghost, false
		case wire.TypeTrackPublished:
			tm, _ := m["track"].(map[string]any)
			return tm == nil || tm["identity"] != ghost, false
		case wire.TypeParticipantLeft, wire.TypeTrackUnpublished, wire.TypeTrackMuted:
			return m["identity"] != ghost, false
		}
		return true, false
	})
	return func(c Conn, toClient bool, msg []byte) [][]byte {
		if !viewing(c, toClient, ghost, viewers) {
			return [][]byte{msg}
		}
		return hide(c, toClient, msg)
	}
}

// DropRelaysFrom makes a filter that drops the relays the node delivers
// from sender to the clients that joined as one of viewers (to every
// client but sender's own if viewers is empty).
func DropRelaysFrom(sender string, viewers ...string) Filter {
	viewers = slices.Clone(viewers)
	return func(c Conn, toClient bool, msg []byte) [][]byte {
		if !viewing(c, toClient, sender, viewers) {
			return [][]byte{msg}
		}
		var r struct {
			Type string `json:"type"`
			From string `json:"from"`
		}
		if json.Unmarshal(msg, &r) == nil && r.Type == wire.TypeRelay && r.From == sender {
			return nil
		}
		return [][]byte{msg}
	}
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

// ConnsOf returns the numbers of the open connections that joined as
// identity, in order of arrival.
func (n *Node) ConnsOf(identity string) []int {
	var out []int
	for _, c := range n.Conns() {
		if c.Identity == identity {
			out = append(out, c.N)
		}
	}
	return out
}

// IdentityOf returns the identity connection conn (open or not) joined
// as, "" if not known or no such connection.
func (n *Node) IdentityOf(conn int) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if conn < 0 || conn >= len(n.conns) {
		return ""
	}
	return n.conns[conn].identity
}

// Inject sends msg, as a text message, to every open connection of
// identity as if the real node had sent it. It is not recorded and goes
// through no rewrite or filter. It fails if identity has no open
// connection, or a write fails.
func (n *Node) Inject(identity string, msg []byte) error {
	return n.injectAll(identity, true, msg)
}

// InjectUpstream sends msg, as a text message, to the real node on every
// open connection of identity, as if that client had sent it (the real
// node takes it as that identity's). Like Inject, it is not recorded
// and goes through no filter.
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

// InjectConn sends msg, as a text message, on connection conn: to its
// client as if from the real node (toClient), else to the real node as
// if from its client. It fails if conn is not open.
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

// Recorded returns the messages carried so far (as Carried) for which
// match reports true; all of them if match is nil.
func (n *Node) Recorded(match func(Frame) bool) []Frame {
	frames := n.Carried()
	if match == nil {
		return frames
	}
	return slices.DeleteFunc(frames, func(f Frame) bool { return !match(f) })
}

// RelaysOfType matches, for Recorded, the relay messages (either way)
// whose data is a JSON object with this "type" (e.g. "key").
func RelaysOfType(dataType string) func(Frame) bool {
	return func(f Frame) bool { return RelayType(f.Data) == dataType }
}

// RelayData returns the data of a relay message, decoded, if it is a
// JSON object; nil if msg is not a relay or its data not an object.
func RelayData(msg []byte) map[string]any {
	var r struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(msg, &r) != nil || r.Type != wire.TypeRelay {
		return nil
	}
	var data map[string]any
	if json.Unmarshal(r.Data, &data) != nil {
		return nil
	}
	return data
}

// RelayType returns the "type" of a relay message's data (e.g. "key"
// for {"sotto_e2ee":2,"type":"key",...}); "" if it has none.
func RelayType(msg []byte) string {
	t, _ := RelayData(msg)["type"].(string)
	return t
}

// RelayFrom returns a relay message (either way) made into one the node
// delivers from sender: from and from_sid set, to and id taken out, data
// byte for byte. nil if msg is not a relay.
func RelayFrom(msg []byte, from, fromSID string) []byte {
	return readdress(msg, wire.Relay{From: from, FromSID: fromSID})
}

// RelayTo returns a relay message (either way) made into one a client
// sends to the identities to (to everyone else in the room if none):
// from, from_sid and id taken out (so no ack comes back), data byte for
// byte. nil if msg is not a relay.
func RelayTo(msg []byte, to ...string) []byte {
	return readdress(msg, wire.Relay{To: to})
}

func readdress(msg []byte, r wire.Relay) []byte {
	var in wire.Relay
	if json.Unmarshal(msg, &in) != nil || in.Type != wire.TypeRelay {
		return nil
	}
	r.Type, r.Data = wire.TypeRelay, in.Data
	out, err := json.Marshal(r)
	if err != nil {
		return nil
	}
	return out
}

// JSON makes a rewrite from fix: every message is decoded and given to
// fix, and re-encoded only if fix reports it changed it, so the messages
// it leaves alone go through byte for byte.
func JSON(fix func(m map[string]any) bool) func([]byte) []byte {
	return func(b []byte) []byte {
		var m map[string]any
		if json.Unmarshal(b, &m) != nil || !fix(m) {
			return b
		}
		out, err := json.Marshal(m)
		if err != nil {
			return b
		}
		return out
	}
}

// Participants returns the participants a node's message describes:
// those of a joined, or a participant_joined's.
func Participants(m map[string]any) []map[string]any {
	var ps []map[string]any
	switch m["type"] {
	case wire.TypeJoined:
		list, _ := m["participants"].([]any)
		for _, p := range list {
			if pm, ok := p.(map[string]any); ok {
				ps = append(ps, pm)
			}
		}
	case wire.TypeParticipantJoin:
		if pm, ok := m["participant"].(map[string]any); ok {
			ps = append(ps, pm)
		}
	}
	return ps
}

// Tracks returns the tracks a node's message describes: its
// participants' and a track_published's.
func Tracks(m map[string]any) []map[string]any {
	var ts []map[string]any
	for _, p := range Participants(m) {
		list, _ := p["tracks"].([]any)
		for _, t := range list {
			if tm, ok := t.(map[string]any); ok {
				ts = append(ts, tm)
			}
		}
	}
	if m["type"] == wire.TypeTrackPublished {
		if tm, ok := m["track"].(map[string]any); ok {
			ts = append(ts, tm)
		}
	}
	return ts
}
