package signaling_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// slowReader dials with a small receive buffer, so that a client that
// does not read fills its socket soon.
func (h *harness) slowReader(t *testing.T, name string) *client {
	t.Helper()
	return h.dialWith(t, name, &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				err = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
			}
			return conn, err
		},
	}}})
}

// F1 (issue 13): a member without grants floods large relays at one
// identity that does not read. The victim stays, its server messages and
// another member's relays still reach it; the flooder is refused with
// rate_limited and then ended with relay_flood.
func TestRelayFloodEndsTheSenderNotTheReceiver(t *testing.T) {
	tests := []struct {
		name   string
		limits signaling.ServerLimits
		reason string // the refusal the flood must meet
	}{
		// Defaults: the sender's byte budget stops it.
		{"sender byte budget", signaling.ServerLimits{}, "sender_budget"},
		// No budget to speak of: the sender's share of the victim's
		// queue stops it.
		{"receiver share", signaling.ServerLimits{
			MessagesPerSecond: 1e4, MessageBurst: 1e4,
			RelayBytesPerSecond: 1 << 30, RelayBurstBytes: 1 << 30,
			RelayQueueBytes: 256 << 10,
		}, "receiver_share"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *signaling.Config) {
				c.Limits = tt.limits
				c.PingInterval = time.Hour // the victim reads nothing for a while
			})
			// The victim reads nothing during the attack (its socket
			// buffers fill), then reads at loopback speed.
			victim := h.dial(t, "victim")
			victim.send(wire.Join{Type: wire.TypeJoin, Protocol: 1, Token: token(t, "victim", "r", pubSub)})
			victim.waitType(wire.TypeJoined)
			mallory, _ := h.join(t, "mallory", "r", noGrants)
			carol, _ := h.join(t, "carol", "r", pubSub)
			mallory.expectParticipantJoined(carol)

			// mallory reads on a goroutine of its own, so that its own
			// queue never fills; it floods until the server closes it.
			var (
				acked, limited int
				flood          msg
				firstLimited   = make(chan struct{})
				floodSeen      = make(chan struct{})
				malloryEnded   = make(chan error, 1)
			)
			go func() {
				for {
					m, err := mallory.read()
					if err != nil {
						malloryEnded <- err
						return
					}
					switch {
					case m.typ() == wire.TypeAck:
						acked++
					case m.typ() == wire.TypeError && m.str("code") == wire.CodeRateLimited:
						if m.boolean("fatal") || m.str("ref") != wire.TypeRelay || m.str("ref_id") == "" {
							t.Errorf("rate_limited: %s", m)
						}
						if limited == 0 {
							close(firstLimited)
						}
						limited++
					case m.typ() == wire.TypeError:
						flood = m
						close(floodSeen)
					}
				}
			}()
			data := json.RawMessage(`"` + strings.Repeat("m", 60<<10) + `"`)
			floodDone := make(chan int, 1)
			go func() {
				i := 0
				for ; ; i++ {
					select {
					case <-floodSeen:
						// The server reads no more; a write could block
						// the close handshake.
						floodDone <- i
						return
					default:
					}
					if mallory.trySend(wire.Relay{Type: wire.TypeRelay, ID: fmt.Sprint(i), To: []string{"victim"}, Data: data}) != nil {
						floodDone <- i
						return
					}
				}
			}()

			// While the flood meets its limit, carol's relays still go
			// through to the victim.
			select {
			case <-firstLimited:
			case <-time.After(waitTimeout):
				t.Fatal("the flood was never refused")
			}
			const fromCarol = 5
			for i := range fromCarol {
				id := fmt.Sprintf("c%d", i)
				carol.send(wire.Relay{Type: wire.TypeRelay, ID: id, To: []string{"victim"}, Data: json.RawMessage(`"hello"`)})
				carol.waitFor("ack "+id, func(m msg) bool {
					if m.typ() == wire.TypeError {
						t.Fatalf("carol's relay refused: %s", m)
					}
					return m.typ() == wire.TypeAck && m.str("id") == id
				})
			}

			// The victim reads nothing until the flooder is ended: a
			// victim that does not read for writeTimeout is dropped on
			// its own account.
			select {
			case <-floodSeen:
			case <-time.After(waitTimeout):
				t.Fatal("the flooder was not ended")
			}
			if flood.str("code") != wire.CodeRelayFlood || !flood.boolean("fatal") {
				t.Fatalf("flooder's last error %s, want a fatal relay_flood", flood)
			}
			sent := <-floodDone

			// The victim now reads: what mallory was acked, carol's
			// relays, mallory's departure (a server message), and it is
			// still connected.
			victim.waitFor("mallory's departure", func(m msg) bool {
				return m.typ() == wire.TypeParticipantLeft && m.str("identity") == "mallory"
			})
			victim.ping("still here")
			var fromMallory, carols int
			for _, m := range victim.seen {
				if m.typ() == wire.TypeRelay && m.str("from") == "mallory" {
					fromMallory++
				}
				if m.typ() == wire.TypeRelay && m.str("from") == "carol" {
					carols++
				}
			}
			select {
			case err := <-malloryEnded:
				if st := websocket.CloseStatus(err); st != wire.ClosePolicy {
					t.Fatalf("flooder ended with %v, want close 1008", err)
				}
			case <-time.After(waitTimeout):
				t.Fatal("the flooder's connection was not closed")
			}
			t.Logf("flooder sent %d relays: %d acked, %d rate_limited", sent, acked, limited)
			if fromMallory != acked {
				t.Fatalf("victim got %d of mallory's relays, mallory was acked %d", fromMallory, acked)
			}
			if carols != fromCarol {
				t.Fatalf("victim got %d of carol's relays, want %d", carols, fromCarol)
			}

			if got := counterValue(t, h, "sotto_signaling_relays_refused_total", "reason", tt.reason); got == 0 {
				t.Fatalf("relays_refused_total{reason=%s} did not move", tt.reason)
			}
			if got := counterValue(t, h, "sotto_signaling_errors_total", "code", wire.CodeRelayFlood); got != 1 {
				t.Fatalf("errors_total{code=relay_flood} = %v, want 1", got)
			}
			if got := counterValue(t, h, "sotto_signaling_slow_client_disconnects_total", "", ""); got != 0 {
				t.Fatalf("slow client disconnects = %v, want 0", got)
			}
			eventually(t, "victim and carol left in the room", func() bool { _, p := h.srv.Counts(); return p == 2 })
		})
	}
}

// dialFrom opens a WebSocket from a loopback source address of its own.
func dialFrom(t *testing.T, h *harness, ip string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, h.url, &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if conn != nil {
		t.Cleanup(func() { _ = conn.CloseNow() })
	}
	return conn, resp, err
}

// openUnjoined opens n WebSockets from ip that never join.
func openUnjoined(t *testing.T, h *harness, ip string, n int) []*websocket.Conn {
	t.Helper()
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conn, _, err := dialFrom(t, h, ip)
		if err != nil {
			t.Fatalf("unjoined connection %d from %s: %v", i, ip, err)
		}
		conns[i] = conn
	}
	return conns
}

// expectRefused dials from ip and checks the upgrade is refused with
// status, before any WebSocket.
func expectRefused(t *testing.T, h *harness, ip string, status int) {
	t.Helper()
	conn, resp, err := dialFrom(t, h, ip)
	if err == nil {
		_ = conn.CloseNow()
		t.Fatalf("dial from %s upgraded, want HTTP %d", ip, status)
	}
	if resp == nil || resp.StatusCode != status {
		t.Fatalf("dial from %s: %v (response %v), want HTTP %d", ip, err, resp, status)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "not joined") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("refusal body %q, Retry-After %q", body, resp.Header.Get("Retry-After"))
	}
}

// F5 (issue 13): WebSockets that never join are bounded per address and
// in all; beyond, the upgrade is refused cheaply and counted, and a
// legitimate join still gets in.
func TestUnjoinedConnectionsAreBounded(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		h := newHarness(t, func(c *signaling.Config) {
			c.Limits.UnjoinedPerAddress = 8
			c.JoinTimeout = time.Hour
			c.PingInterval = time.Hour
		})
		conns := openUnjoined(t, h, "127.0.0.2", 8)
		expectRefused(t, h, "127.0.0.2", http.StatusTooManyRequests)
		expectRefused(t, h, "127.0.0.2", http.StatusTooManyRequests)

		// Another address joins at once.
		alice, _ := h.join(t, "alice", "r", pubSub)
		alice.ping("in")

		// A slot comes back when one of them joins or closes.
		_ = conns[0].CloseNow()
		eventually(t, "a slot freed", func() bool { return gaugeValue(t, h, "sotto_signaling_unjoined_connections") == 7 })
		openUnjoined(t, h, "127.0.0.2", 1)
		expectRefused(t, h, "127.0.0.2", http.StatusTooManyRequests)

		if got := counterValue(t, h, "sotto_signaling_unjoined_refused_total", "limit", "address"); got != 3 {
			t.Fatalf("unjoined_refused_total{limit=address} = %v, want 3", got)
		}
	})
	t.Run("in total", func(t *testing.T) {
		h := newHarness(t, func(c *signaling.Config) {
			c.Limits.UnjoinedPerAddress = 4
			c.Limits.UnjoinedConnections = 6
			c.JoinTimeout = time.Hour
			c.PingInterval = time.Hour
		})
		openUnjoined(t, h, "127.0.0.2", 4)
		held := openUnjoined(t, h, "127.0.0.3", 2)
		expectRefused(t, h, "127.0.0.4", http.StatusServiceUnavailable)
		expectRefused(t, h, "127.0.0.1", http.StatusServiceUnavailable)
		if got := counterValue(t, h, "sotto_signaling_unjoined_refused_total", "limit", "total"); got != 2 {
			t.Fatalf("unjoined_refused_total{limit=total} = %v, want 2", got)
		}

		// One of them joins: its slot is free for a legitimate caller.
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		join, _ := json.Marshal(wire.Join{Type: wire.TypeJoin, Protocol: 1, Token: token(t, "mallory", "r", noGrants)})
		if err := held[0].Write(ctx, websocket.MessageText, join); err != nil {
			t.Fatal(err)
		}
		if _, data, err := held[0].Read(ctx); err != nil || !strings.Contains(string(data), `"joined"`) {
			t.Fatalf("join on an unjoined connection: %s %v", data, err)
		}
		alice, _ := h.join(t, "alice", "r", pubSub)
		alice.ping("in")
	})
}

// A member that does not read fills the sender's share of its queue; the
// sender's broadcasts then skip it and still reach everyone else, and the
// sender is not ended for relays only that member could not take.
func TestSlowMemberDoesNotCutOffBroadcasts(t *testing.T) {
	h := newHarness(t, func(c *signaling.Config) {
		c.Limits = signaling.ServerLimits{
			MessagesPerSecond: 1e4, MessageBurst: 1e4,
			RelayBytesPerSecond: 1 << 30, RelayBurstBytes: 1 << 30,
			RelayQueueBytes: 1 << 20, // the reader's share holds 17 relays: it reads all the time, but it may lag a few
		}
		c.PingInterval = time.Hour
	})
	slow := h.slowReader(t, "slow")
	slow.send(wire.Join{Type: wire.TypeJoin, Protocol: 1, Token: token(t, "slow", "r", pubSub)})
	slow.waitType(wire.TypeJoined)
	sender, _ := h.join(t, "sender", "r", pubSub)
	reader, _ := h.join(t, "reader", "r", pubSub)
	sender.expectParticipantJoined(reader)

	got := make(chan int, 1)
	go func() { // the reader reads all the time
		n := 0
		for {
			m, err := reader.read()
			if err != nil {
				got <- n
				return
			}
			if m.typ() == wire.TypeRelay && m.str("from") == "sender" {
				n++
				if m.str("data") == "last" {
					got <- n
					return
				}
			}
		}
	}()

	data := json.RawMessage(`"` + strings.Repeat("s", 30<<10) + `"`)
	sent, skipped := 0, 0
	// Until the slow member's share is full, then 40 more: well over the
	// 16 refusals a second that would end a flooder.
	for after := -1; after < 40; sent++ {
		if after >= 0 {
			after++
		}
		id := fmt.Sprint(sent)
		sender.send(wire.Relay{Type: wire.TypeRelay, ID: id, Data: data})
		m := sender.waitFor("answer to "+id, func(m msg) bool {
			return (m.typ() == wire.TypeAck || m.typ() == wire.TypeError) && (m.str("id") == id || m.str("ref_id") == id)
		})
		if m.typ() == wire.TypeError {
			if m.str("code") != wire.CodeRateLimited || m.boolean("fatal") || !strings.Contains(m.str("message"), `"slow"`) {
				t.Fatalf("relay %s: %s, want a non-fatal rate_limited naming slow", id, m)
			}
			skipped++
			if after < 0 {
				after = 0
			}
		}
		if sent > 5000 {
			t.Fatal("the slow member's share never filled")
		}
	}
	sender.send(wire.Relay{Type: wire.TypeRelay, ID: "last", Data: json.RawMessage(`"last"`)})
	select {
	case n := <-got:
		if n != sent+1 {
			t.Fatalf("the reader got %d of the sender's %d relays", n, sent+1)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the reader did not get the last relay")
	}
	sender.ping("still here")
	t.Logf("%d relays, %d skipped the slow member", sent, skipped)
	if got := counterValue(t, h, "sotto_signaling_errors_total", "code", wire.CodeRelayFlood); got != 0 {
		t.Fatalf("errors_total{code=relay_flood} = %v, want 0", got)
	}
}

// Relays waiting for a member that does not read never hold up the
// server's own messages to it: a participant_joined overtakes them, so
// "too slow" judges the member on its own traffic alone.
func TestServerMessagesOvertakeRelays(t *testing.T) {
	h := newHarness(t, func(c *signaling.Config) {
		c.Limits = signaling.ServerLimits{
			MessagesPerSecond: 1e4, MessageBurst: 1e4,
			RelayBytesPerSecond: 1 << 30, RelayBurstBytes: 1 << 30,
			RelayQueueBytes: 256 << 10,
		}
		c.PingInterval = time.Hour
	})
	victim := h.slowReader(t, "victim")
	victim.send(wire.Join{Type: wire.TypeJoin, Protocol: 1, Token: token(t, "victim", "r", pubSub)})
	victim.waitType(wire.TypeJoined)
	mallory, _ := h.join(t, "mallory", "r", noGrants)

	// Until mallory's share of the victim's queue is full: relays then
	// wait in the queue behind the one being written.
	data := json.RawMessage(`"` + strings.Repeat("m", 60<<10) + `"`)
	acked := 0
	for i := 0; ; i++ {
		if i > 5000 {
			t.Fatal("the victim's queue never filled")
		}
		id := fmt.Sprint(i)
		mallory.send(wire.Relay{Type: wire.TypeRelay, ID: id, To: []string{"victim"}, Data: data})
		m := mallory.waitFor("answer to "+id, func(m msg) bool {
			return (m.typ() == wire.TypeAck || m.typ() == wire.TypeError) && (m.str("id") == id || m.str("ref_id") == id)
		})
		if m.typ() == wire.TypeError {
			break
		}
		acked++
	}
	start := time.Now()
	h.join(t, "carol", "r", pubSub)
	victim.waitFor("carol's arrival", func(m msg) bool {
		return m.typ() == wire.TypeParticipantJoin
	})
	// Relays queued before carol joined still follow her arrival.
	m, err := victim.read()
	if err != nil || m.typ() != wire.TypeRelay {
		t.Fatalf("after participant_joined: %v %v, want a relay that waited behind it (of %d acked)", m, err, acked)
	}
	t.Logf("%d relays acked; the queue filled and carol joined within %v", acked, time.Since(start))
}
