// Package hostilenode is a test fixture: a Sotto node that turned hostile,
// standing in front of a real one. It serves the real node's HTTP
// (reverse-proxied) and relays every signaling WebSocket both ways,
// recording each message and handing the node's messages to a rewrite
// function on their way to the client, as an operator compelled to attack
// its own users could. End-to-end tests of the Go SDK (signaling/client)
// and the browser SDK (web/) use it to show that clients take no trust
// decision from a field the node writes.
package hostilenode

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/sotto-rtc/sotto/signaling"
)

// Frame is one WebSocket message the node carried.
type Frame struct {
	Conn     int  // the client connection, numbered from 0 in order of arrival
	ToClient bool // from the real node; else from the client
	Data     []byte
}

// Node is the hostile node. URL is its base URL, to give clients in place
// of the real node's.
type Node struct {
	URL string

	mu      sync.Mutex
	frames  []Frame
	conns   int
	clients []*websocket.Conn // the clients' side of the open relays
	rewrite func([]byte) []byte
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
	n.mu.Lock()
	conn := n.conns
	n.conns++
	n.clients = append(n.clients, cc)
	n.mu.Unlock()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	pump := func(from, to *websocket.Conn, toClient bool) {
		defer cancel()
		for {
			typ, b, err := from.Read(ctx)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.frames = append(n.frames, Frame{Conn: conn, ToClient: toClient, Data: b})
			rewrite := n.rewrite
			n.mu.Unlock()
			if toClient && rewrite != nil {
				b = rewrite(b)
			}
			if to.Write(ctx, typ, b) != nil {
				return
			}
		}
	}
	go pump(cc, sc, false)
	pump(sc, cc, true)
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
	case signaling.TypeJoined:
		list, _ := m["participants"].([]any)
		for _, p := range list {
			if pm, ok := p.(map[string]any); ok {
				ps = append(ps, pm)
			}
		}
	case signaling.TypeParticipantJoin:
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
	if m["type"] == signaling.TypeTrackPublished {
		if tm, ok := m["track"].(map[string]any); ok {
			ts = append(ts, tm)
		}
	}
	return ts
}
