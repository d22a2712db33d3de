package hostilenode_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sotto-rtc/sotto/internal/hostilenode"
	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

const (
	testKey    = "test-key"
	testSecret = "test-secret-test-secret-test-secret-0123"
	room       = "test"
	wait       = 15 * time.Second
)

// realNode starts a real Sotto node on loopback and returns its base URL.
func realNode(t *testing.T) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sfu, err := sfu.New(sfu.Config{ListenIP: "127.0.0.1", IncludeLoopback: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signaling.NewServer(signaling.Config{
		Keys:   map[string]string{testKey: testSecret},
		Logger: log,
		Limits: signaling.ServerLimits{JoinsPerSecondPerIP: 1000, JoinBurst: 1000},
	}, sfu)
	if err != nil {
		_ = sfu.Close()
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(wire.Path, sig)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		_ = sfu.Close()
	})
	return hs.URL
}

// client is a raw signaling client: it records every message it gets.
type client struct {
	t        *testing.T
	identity string
	ws       *websocket.Conn

	mu   sync.Mutex
	got  []map[string]any
	wake chan struct{}
}

// join connects identity through the hostile node and waits for joined.
func join(t *testing.T, node *hostilenode.Node, identity string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(node.URL, "http")+wire.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	c := &client{t: t, identity: identity, ws: ws, wake: make(chan struct{}, 1)}
	go func() {
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			var m map[string]any
			if json.Unmarshal(b, &m) != nil {
				continue
			}
			c.mu.Lock()
			c.got = append(c.got, m)
			c.mu.Unlock()
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
	}()
	tok, err := wire.NewToken(testKey, testSecret, wire.Grant{
		Room: room, Identity: identity, CanPublish: true, CanSubscribe: true, TTL: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.send(wire.Join{Type: wire.TypeJoin, Protocol: wire.ProtocolVersion, Token: tok, Room: room})
	c.await(func(m map[string]any) bool { return m["type"] == wire.TypeJoined })
	return c
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatal(err)
	}
}

// relay sends data to the identities to.
func (c *client) relay(data map[string]any, to ...string) {
	c.t.Helper()
	b, err := json.Marshal(data)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(wire.Relay{Type: wire.TypeRelay, To: to, Data: b})
}

// await waits for a message matching match and returns every message
// received up to and including it.
func (c *client) await(match func(m map[string]any) bool) []map[string]any {
	c.t.Helper()
	deadline := time.After(wait)
	for {
		c.mu.Lock()
		for i, m := range c.got {
			if match(m) {
				c.mu.Unlock()
				return c.gotUpTo(i)
			}
		}
		c.mu.Unlock()
		select {
		case <-c.wake:
		case <-deadline:
			c.t.Fatalf("%s: no matching message in %d received", c.identity, len(c.got))
		}
	}
}

func (c *client) gotUpTo(i int) []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got[:i+1])
}

// mark has from send to c a relay with a fresh marker and waits for it:
// every message the node carried to c before it has then arrived.
func (c *client) mark(from *client) []map[string]any {
	c.t.Helper()
	marker := fmt.Sprintf("mark-%d", time.Now().UnixNano())
	from.relay(map[string]any{"type": "mark", "mark": marker}, c.identity)
	return c.await(func(m map[string]any) bool { return dataOf(m)["mark"] == marker })
}

func dataOf(m map[string]any) map[string]any {
	if m["type"] != wire.TypeRelay {
		return nil
	}
	d, _ := m["data"].(map[string]any)
	return d
}

// relays returns the data types of the relays among msgs, in order.
func relays(msgs []map[string]any) []string {
	var out []string
	for _, m := range msgs {
		if d := dataOf(m); d != nil {
			t, _ := d["type"].(string)
			out = append(out, t)
		}
	}
	return out
}

// mentions reports whether any of msgs names identity as a participant.
func mentions(msgs []map[string]any, identity string) bool {
	for _, m := range msgs {
		for _, p := range hostilenode.Participants(m) {
			if p["identity"] == identity {
				return true
			}
		}
		if m["type"] == wire.TypeParticipantLeft && m["identity"] == identity {
			return true
		}
	}
	return false
}

// awaitCarried waits until the node carried a message matching match.
func awaitCarried(t *testing.T, node *hostilenode.Node, match func(hostilenode.Frame) bool) hostilenode.Frame {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if fs := node.Recorded(match); len(fs) > 0 {
			return fs[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the node never carried the message")
	return hostilenode.Frame{}
}

func TestIdentityLookup(t *testing.T) {
	node := hostilenode.New(t, realNode(t), nil)
	alice := join(t, node, "alice")
	join(t, node, "bob")
	if got := node.ConnsOf("alice"); !slices.Equal(got, []int{0}) {
		t.Errorf("ConnsOf(alice) = %v, want [0]", got)
	}
	if got := node.ConnsOf("bob"); !slices.Equal(got, []int{1}) {
		t.Errorf("ConnsOf(bob) = %v, want [1]", got)
	}
	if got := node.ConnsOf("carol"); len(got) != 0 {
		t.Errorf("ConnsOf(carol) = %v, want none", got)
	}
	want := []hostilenode.Conn{{N: 0, Identity: "alice"}, {N: 1, Identity: "bob"}}
	if got := node.Conns(); !slices.Equal(got, want) {
		t.Errorf("Conns() = %v, want %v", got, want)
	}
	// The identity is known from the join on, and recorded with it.
	for _, f := range node.Carried() {
		if want := []string{"alice", "bob"}[f.Conn]; f.Identity != want {
			t.Errorf("frame on connection %d recorded as %q, want %q: %s", f.Conn, f.Identity, want, f.Data)
		}
	}
	// A closed connection is no longer open, but keeps its identity.
	_ = alice.ws.Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(wait)
	for len(node.ConnsOf("alice")) > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := node.ConnsOf("alice"); len(got) != 0 {
		t.Errorf("ConnsOf(alice) after close = %v, want none", got)
	}
	if got := node.IdentityOf(0); got != "alice" {
		t.Errorf("IdentityOf(0) = %q, want alice", got)
	}
	if err := node.Inject("alice", []byte(`{"type":"ping"}`)); err == nil {
		t.Error("Inject to a closed identity succeeded")
	}
}

// TestFilterDropsAndMultiplies: a filter drops and doubles messages both
// ways, per connection, after the rewrite.
func TestFilterDropsAndMultiplies(t *testing.T) {
	node := hostilenode.New(t, realNode(t), hostilenode.JSON(func(m map[string]any) bool {
		if d := dataOf(m); d != nil && d["type"] == "rename-me" {
			d["type"] = "renamed"
			return true
		}
		return false
	}))
	alice := join(t, node, "alice")
	bob := join(t, node, "bob")
	carol := join(t, node, "carol")
	var seen sync.Map // the Conns the filter was given
	node.SetFilter(func(c hostilenode.Conn, toClient bool, msg []byte) [][]byte {
		seen.Store(c, true)
		switch typ := hostilenode.RelayType(msg); {
		case toClient && c.Identity == "alice" && (typ == "drop" || typ == "renamed"):
			return nil
		case toClient && c.Identity == "alice" && typ == "twice":
			return [][]byte{msg, msg}
		case !toClient && c.Identity == "bob" && typ == "up-drop":
			return nil
		}
		return [][]byte{msg}
	})
	for _, typ := range []string{"drop", "twice", "up-drop", "rename-me", "keep"} {
		bob.relay(map[string]any{"type": typ}, "alice", "carol")
	}
	got := relays(alice.mark(bob))
	if want := []string{"twice", "twice", "keep", "mark"}; !slices.Equal(got, want) {
		t.Errorf("alice got relays %q, want %q", got, want)
	}
	// carol, whose connection the filter leaves alone, gets all but the
	// one dropped on its way up, after the rewrite.
	got = relays(carol.mark(bob))
	if want := []string{"drop", "twice", "renamed", "keep", "mark"}; !slices.Equal(got, want) {
		t.Errorf("carol got relays %q, want %q", got, want)
	}
	// The node recorded the dropped message as bob sent it.
	if len(node.Recorded(func(f hostilenode.Frame) bool {
		return !f.ToClient && f.Identity == "bob" && hostilenode.RelayType(f.Data) == "up-drop"
	})) != 1 {
		t.Error("the node did not record bob's dropped relay")
	}
	if _, ok := seen.Load(hostilenode.Conn{N: 1, Identity: "bob"}); !ok {
		t.Error("the filter was never given bob's connection")
	}
}

// TestInject: the node sends messages of its own to a client, replays a
// recorded relay to another, and re-sends one towards the real node as
// if from its sender.
func TestInject(t *testing.T) {
	node := hostilenode.New(t, realNode(t), nil)
	alice := join(t, node, "alice")
	bob := join(t, node, "bob")
	carol := join(t, node, "carol")

	forged := hostilenode.RelayFrom([]byte(`{"type":"relay","data":{"type":"forged"}}`), "mallory", "PA_x")
	if err := node.Inject("alice", forged); err != nil {
		t.Fatal(err)
	}
	m := alice.await(func(m map[string]any) bool { return dataOf(m)["type"] == "forged" })
	if last := m[len(m)-1]; last["from"] != "mallory" {
		t.Errorf("forged relay arrived from %v", last["from"])
	}
	if err := node.Inject("nobody", forged); err == nil {
		t.Error("Inject to an identity with no connection succeeded")
	}

	// bob sends alice a key message; the node replays it to carol.
	bob.relay(map[string]any{"sotto_e2ee": 2, "type": "key", "kid": 7}, "alice")
	alice.await(func(m map[string]any) bool { return dataOf(m)["type"] == "key" })
	rec := node.Recorded(func(f hostilenode.Frame) bool {
		return hostilenode.RelaysOfType("key")(f) && f.ToClient && f.Identity == "alice"
	})
	if len(rec) != 1 {
		t.Fatalf("recorded %d key relays to alice, want 1", len(rec))
	}
	if err := node.Inject("carol", rec[0].Data); err != nil {
		t.Fatal(err)
	}
	m = carol.await(func(m map[string]any) bool { return dataOf(m)["type"] == "key" })
	if last := m[len(m)-1]; last["from"] != "bob" || dataOf(last)["kid"] != 7.0 {
		t.Errorf("replayed key message = %v", last)
	}

	// The node re-sends bob's recorded message towards the real node, on
	// bob's connection: the real node relays it to alice again, as bob's.
	up := node.Recorded(func(f hostilenode.Frame) bool {
		return hostilenode.RelaysOfType("key")(f) && !f.ToClient && f.Identity == "bob"
	})
	if len(up) != 1 {
		t.Fatalf("recorded %d key relays from bob, want 1", len(up))
	}
	if err := node.InjectUpstream("bob", up[0].Data); err != nil {
		t.Fatal(err)
	}
	// And readdressed to carol.
	if err := node.InjectUpstream("bob", hostilenode.RelayTo(up[0].Data, "carol")); err != nil {
		t.Fatal(err)
	}
	if got := relays(alice.mark(bob)); !slices.Equal(got, []string{"forged", "key", "key", "mark"}) {
		t.Errorf("alice got relays %q", got)
	}
	if got := relays(carol.mark(bob)); !slices.Equal(got, []string{"key", "key", "mark"}) {
		t.Errorf("carol got relays %q", got)
	}

	// Injecting while the pumps write: the race detector watches.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_ = node.Inject("alice", hostilenode.RelayFrom([]byte(`{"type":"relay","data":{"type":"burst"}}`), "mallory", ""))
		})
		bob.relay(map[string]any{"type": "burst", "i": i}, "alice")
	}
	wg.Wait()
	n := 0
	for _, typ := range relays(alice.mark(bob)) {
		if typ == "burst" {
			n++
		}
	}
	if n != 40 {
		t.Errorf("alice got %d burst relays, want 40", n)
	}
}

// TestHideFrom: the node hides carol from alice only; bob sees her come
// and go. Composed with DropRelaysFrom, carol's broadcasts do not reach
// alice either.
func TestHideFrom(t *testing.T) {
	node := hostilenode.New(t, realNode(t), nil)
	node.SetFilter(hostilenode.HideFrom("carol", "alice", "dave"))
	node.AddFilter(hostilenode.DropRelaysFrom("carol", "alice"))
	alice := join(t, node, "alice")
	bob := join(t, node, "bob")
	carol := join(t, node, "carol")

	// The real node announced carol to alice; alice never sees it.
	awaitCarried(t, node, func(f hostilenode.Frame) bool {
		var m map[string]any
		return f.ToClient && f.Identity == "alice" && json.Unmarshal(f.Data, &m) == nil && mentions([]map[string]any{m}, "carol")
	})
	bob.await(func(m map[string]any) bool { return mentions([]map[string]any{m}, "carol") })
	carol.relay(map[string]any{"type": "hello"})
	bob.await(func(m map[string]any) bool { return dataOf(m)["type"] == "hello" })
	awaitCarried(t, node, func(f hostilenode.Frame) bool {
		return f.ToClient && f.Identity == "alice" && hostilenode.RelayType(f.Data) == "hello"
	})
	if got := alice.mark(bob); mentions(got, "carol") || slices.Contains(relays(got), "hello") {
		t.Errorf("alice saw carol: %v", got)
	}

	// dave joins after carol: his joined lists alice and bob, not carol.
	dave := join(t, node, "dave")
	joined := dave.await(func(m map[string]any) bool { return m["type"] == wire.TypeJoined })
	var listed []string
	for _, p := range hostilenode.Participants(joined[len(joined)-1]) {
		listed = append(listed, p["identity"].(string))
	}
	slices.Sort(listed)
	if !slices.Equal(listed, []string{"alice", "bob"}) {
		t.Errorf("dave's joined lists %q, want alice and bob", listed)
	}

	// carol leaves: bob is told, alice is not.
	carol.send(wire.Leave{Type: wire.TypeLeave})
	awaitCarried(t, node, func(f hostilenode.Frame) bool {
		return f.ToClient && f.Identity == "alice" && strings.Contains(string(f.Data), wire.TypeParticipantLeft)
	})
	if got := alice.mark(bob); mentions(got, "carol") {
		t.Errorf("alice was told of carol: %v", got)
	}
	bob.await(func(m map[string]any) bool {
		return m["type"] == wire.TypeParticipantLeft && m["identity"] == "carol"
	})
}
