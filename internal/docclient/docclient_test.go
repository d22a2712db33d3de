// Package docclient is a client of Sotto's signaling protocol written from
// docs/PROTOCOL.md alone (and README.md for running the node). It starts
// the real sfu binary and checks that the node does what the document says;
// every assertion is the documented behaviour, so a failure is a mismatch
// between the node and the document.
package docclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

const (
	apiKey    = "doc-key"
	apiSecret = "doc-secret-0123456789abcdef0123456789"
	wait      = 10 * time.Second
)

// ---------------------------------------------------------------- node

type node struct {
	http   string // http://127.0.0.1:port
	ws     string // ws://127.0.0.1:port/v1/signal
	cmd    *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	stderr strings.Builder
}

func buildSFU(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sfu")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/sotto-rtc/sotto/cmd/sfu")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build sfu: %v\n%s", err, out)
	}
	return bin
}

// startNode runs the node with loopback HTTP on a free port (README: --http
// 127.0.0.1:0 prints the address it listens on), media port 0, no drain
// grace and our own API key.
func startNode(t *testing.T, bin string, extra ...string) *node {
	t.Helper()
	args := append([]string{
		"--http", "127.0.0.1:0", "--media-port", "0", "--drain-grace", "0",
		"--api-key", apiKey, "--log-level", "debug",
	}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "SOTTO_API_SECRET="+apiSecret)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	n := &node{cmd: cmd, exited: make(chan struct{})}
	cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.stderr.Write(p)
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(n.exited) }()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		found := false
		for sc.Scan() {
			line := sc.Text()
			if !found && strings.HasPrefix(line, "Sotto listening on ") {
				found = true
				addr <- strings.TrimSpace(strings.TrimPrefix(line, "Sotto listening on "))
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	t.Cleanup(func() {
		select {
		case <-n.exited:
		default:
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-n.exited:
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				<-n.exited
			}
		}
		if t.Failed() {
			n.mu.Lock()
			s := n.stderr.String()
			n.mu.Unlock()
			if d := os.Getenv("DOCCLIENT_LOGS"); d != "" {
				os.WriteFile(filepath.Join(d, fmt.Sprintf("node-%d.log", cmd.Process.Pid)), []byte(s), 0o644)
			}
			if len(s) > 20000 {
				s = s[len(s)-20000:]
			}
			t.Logf("node %v stderr (tail):\n%s", extra, s)
		}
	})
	select {
	case a := <-addr:
		n.http = a
		n.ws = "ws" + strings.TrimPrefix(a, "http") + "/v1/signal"
	case <-n.exited:
		t.Fatalf("node exited before listening: %s", n.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("node did not print its address")
	}
	return n
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// ---------------------------------------------------------------- tokens

type grant struct {
	sub, room      string
	pub, subscribe bool
	omitGrants     bool
}

func token(t *testing.T, g grant) string {
	claims := jwt.MapClaims{"sub": g.sub, "room": g.room, "exp": time.Now().Add(time.Hour).Unix()}
	if !g.omitGrants {
		claims["can_publish"] = g.pub
		claims["can_subscribe"] = g.subscribe
	}
	return signToken(t, jwt.SigningMethodHS256, apiKey, apiSecret, claims)
}

func signToken(t *testing.T, m jwt.SigningMethod, kid, secret string, claims jwt.MapClaims) string {
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ---------------------------------------------------------------- messages

type msg struct {
	raw    []byte
	fields map[string]json.RawMessage

	Type      string          `json:"type"`
	ID        string          `json:"id"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Ref       string          `json:"ref"`
	RefID     string          `json:"ref_id"`
	Fatal     bool            `json:"fatal"`
	Target    string          `json:"target"`
	SDP       string          `json:"sdp"`
	Candidate json.RawMessage `json:"candidate"`
	Reason    string          `json:"reason"`
	From      string          `json:"from"`
	FromSid   string          `json:"from_sid"`
	Data      json.RawMessage `json:"data"`
	Track     *trackInfo      `json:"track"`
	Sid       string          `json:"sid"`
	PSid      string          `json:"participant_sid"`
	Identity  string          `json:"identity"`
	Muted     bool            `json:"muted"`
	Room      string          `json:"room"`
	Protocol  int             `json:"protocol"`

	Participant  *participantInfo `json:"participant"`
	Participants []participantInfo
}

type participantInfo struct {
	Sid          string      `json:"sid"`
	Identity     string      `json:"identity"`
	CanPublish   bool        `json:"can_publish"`
	CanSubscribe bool        `json:"can_subscribe"`
	Tracks       []trackInfo `json:"tracks"`
}

type trackInfo struct {
	Sid           string `json:"sid"`
	PSid          string `json:"participant_sid"`
	Identity      string `json:"identity"`
	ClientTrackID string `json:"client_track_id"`
	Kind          string `json:"kind"`
	Codec         string `json:"codec"`
	Muted         bool   `json:"muted"`
}

func (m *msg) String() string {
	s := string(m.raw)
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

func hasFields(t *testing.T, what string, raw json.RawMessage, names ...string) map[string]json.RawMessage {
	t.Helper()
	var f map[string]json.RawMessage
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Errorf("%s: not an object: %s", what, raw)
		return nil
	}
	for _, n := range names {
		if _, ok := f[n]; !ok {
			t.Errorf("%s: field %q absent (PROTOCOL.md §5: every field not marked optional is always present): %s", what, n, raw)
		}
	}
	return f
}

// ---------------------------------------------------------------- connection

type conn struct {
	t    *testing.T
	name string
	c    *websocket.Conn
	wmu  sync.Mutex
	ch   chan *msg
	done chan struct{}
	err  error

	hmu  sync.Mutex
	hook func(*msg)

	lmu sync.Mutex
	log []*msg

	pending []*msg // received, not yet taken by a wait (test goroutine only)
}

func dialRaw(ctx context.Context, n *node, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	return websocket.Dial(ctx, n.ws, &websocket.DialOptions{HTTPHeader: hdr})
}

func dial(t *testing.T, n *node, name string) *conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, _, err := dialRaw(ctx, n, nil)
	if err != nil {
		t.Fatalf("%s: dial: %v", name, err)
	}
	return wrap(t, c, name)
}

func wrap(t *testing.T, c *websocket.Conn, name string) *conn {
	c.SetReadLimit(8 << 20) // §1: accept at least 4 MiB
	w := &conn{t: t, name: name, c: c, ch: make(chan *msg, 20000), done: make(chan struct{})}
	go w.readLoop()
	t.Cleanup(func() { c.CloseNow() })
	return w
}

func (w *conn) readLoop() {
	for {
		typ, b, err := w.c.Read(context.Background())
		if err != nil {
			w.err = err
			close(w.done)
			return
		}
		m := &msg{raw: b}
		if typ != websocket.MessageText {
			m.Type = "<binary frame from node>"
		} else if err := json.Unmarshal(b, m); err != nil {
			m.Type = "<undecodable: " + err.Error() + ">"
		}
		json.Unmarshal(b, &m.fields)
		if ps, ok := m.fields["participants"]; ok {
			json.Unmarshal(ps, &m.Participants)
		}
		w.lmu.Lock()
		w.log = append(w.log, m)
		w.lmu.Unlock()
		w.hmu.Lock()
		h := w.hook
		w.hmu.Unlock()
		if h != nil {
			h(m)
		}
		w.ch <- m
	}
}

func (w *conn) setHook(h func(*msg)) { w.hmu.Lock(); w.hook = h; w.hmu.Unlock() }

func (w *conn) sendRaw(s string) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return w.c.Write(ctx, websocket.MessageText, []byte(s))
}

func (w *conn) send(v any) {
	w.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.sendRaw(string(b)); err != nil {
		w.t.Fatalf("%s: write: %v", w.name, err)
	}
}

func (w *conn) sendBinary(b []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return w.c.Write(ctx, websocket.MessageBinary, b)
}

// next returns the next message from the node not yet taken, or fails.
func (w *conn) next(d time.Duration) *msg {
	w.t.Helper()
	return w.waitFor("any message", func(*msg) bool { return true })
}

// waitFor returns the first message not yet taken that satisfies f, in the
// order received; messages that do not match stay for later waits.
func (w *conn) waitFor(desc string, f func(*msg) bool) *msg {
	w.t.Helper()
	for i, m := range w.pending {
		if f(m) {
			w.pending = append(w.pending[:i:i], w.pending[i+1:]...)
			return m
		}
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		select {
		case m := <-w.ch:
			if f(m) {
				return m
			}
			w.pending = append(w.pending, m)
			continue
		case <-deadline.C:
			w.t.Fatalf("%s: no %s within %v; pending: %v", w.name, desc, wait, w.pendingStrings())
		case <-w.done:
		}
		// closed: take what is left
		for {
			select {
			case m := <-w.ch:
				if f(m) {
					return m
				}
				w.pending = append(w.pending, m)
				continue
			default:
			}
			break
		}
		code, reason := closeOf(w.err)
		w.t.Fatalf("%s: connection ended (close %d %q) before %s; pending: %v", w.name, code, reason, desc, w.pendingStrings())
	}
}

func (w *conn) pendingStrings() []string {
	var out []string
	for _, m := range w.pending {
		out = append(out, m.String())
	}
	return out
}

func (w *conn) waitType(typ string) *msg {
	w.t.Helper()
	return w.waitFor(typ, func(m *msg) bool { return m.Type == typ })
}

func closeOf(err error) (websocket.StatusCode, string) {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code, ce.Reason
	}
	return -1, ""
}

// waitClose waits for the end of the connection and returns the close frame.
func (w *conn) waitClose() (websocket.StatusCode, string) {
	w.t.Helper()
	select {
	case <-w.done:
	case <-time.After(wait):
		w.t.Fatalf("%s: connection not closed within %v", w.name, wait)
	}
	return closeOf(w.err)
}

func (w *conn) expectClose(code websocket.StatusCode, reason, where string) {
	w.t.Helper()
	gc, gr := w.waitClose()
	if gc != code || gr != reason {
		w.t.Errorf("%s: close %d %q, want %d %q (%s) [err %v]", w.name, gc, gr, code, reason, where, w.err)
	}
}

// checkError checks an error message against the documented form (§5 error).
func checkError(t *testing.T, m *msg, code string, fatal bool, ref, refID, where string) {
	t.Helper()
	if m.Type != "error" {
		t.Errorf("got %s, want error %s (%s)", m, code, where)
		return
	}
	hasFields(t, "error", m.raw, "code", "message", "fatal")
	if m.Code != code || m.Fatal != fatal {
		t.Errorf("error code=%q fatal=%v, want code=%q fatal=%v (%s): %s", m.Code, m.Fatal, code, fatal, where, m)
	}
	if ref != "" && m.Ref != ref {
		t.Errorf("error ref=%q, want %q (%s): %s", m.Ref, ref, where, m)
	}
	if refID != "-" && m.RefID != refID {
		t.Errorf("error ref_id=%q, want %q (%s): %s", m.RefID, refID, where, m)
	}
}

// expectFatal: the fatal error, then the close with the error's code as reason (§8).
func (w *conn) expectFatal(code string, close websocket.StatusCode, where string) *msg {
	w.t.Helper()
	m := w.next(wait)
	checkError(w.t, m, code, true, "", "-", where)
	w.expectClose(close, code, where)
	return m
}

func joinMsg(tok string, extra map[string]any) map[string]any {
	j := map[string]any{"type": "join", "protocol": 1, "token": tok}
	for k, v := range extra {
		j[k] = v
	}
	return j
}

// join connects and joins, returning the joined message.
func join(t *testing.T, n *node, g grant, extra map[string]any) (*conn, *msg) {
	t.Helper()
	w := dial(t, n, g.sub)
	w.send(joinMsg(token(t, g), extra))
	m := w.next(wait)
	if m.Type != "joined" {
		t.Fatalf("%s: join answered by %s", g.sub, m)
	}
	return w, m
}

// joinMedia dials, installs the media client's hook, then joins, so that no
// offer or candidate can slip past the hook.
func joinMedia(t *testing.T, n *node, g grant, extra map[string]any) (*mediaClient, *msg) {
	t.Helper()
	w := dial(t, n, g.sub)
	mc := newMediaClient(t, w)
	w.send(joinMsg(token(t, g), extra))
	m := w.next(wait)
	if m.Type != "joined" {
		t.Fatalf("%s: join answered by %s", g.sub, m)
	}
	return mc, m
}

func pingSync(t *testing.T, w *conn, id string) {
	t.Helper()
	w.send(map[string]any{"type": "ping", "id": id})
	w.waitFor("pong "+id, func(m *msg) bool { return m.Type == "pong" && m.ID == id })
}

// ---------------------------------------------------------------- media client

type mediaClient struct {
	*conn
	t *testing.T

	mu        sync.Mutex
	pub, sub  *webrtc.PeerConnection
	descSeen  map[string]bool
	ufrag     map[string]string
	subOffers []string
	acked     map[string]bool
	problems  []string
	answerN   int
	rtp       chan remoteTrack
}

type remoteTrack struct {
	id, stream, mid string
}

var iceUfragRe = regexp.MustCompile(`(?m)^a=ice-ufrag:(\S+)`)

func pcConfig() webrtc.Configuration {
	return webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle, RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire}
}

func newMediaClient(t *testing.T, w *conn) *mediaClient {
	mc := &mediaClient{conn: w, t: t, descSeen: map[string]bool{}, ufrag: map[string]string{}, acked: map[string]bool{}, rtp: make(chan remoteTrack, 16)}
	w.setHook(mc.hook)
	t.Cleanup(func() {
		mc.mu.Lock()
		pub, sub := mc.pub, mc.sub
		mc.mu.Unlock()
		if pub != nil {
			pub.Close()
		}
		if sub != nil {
			sub.Close()
		}
	})
	return mc
}

func (mc *mediaClient) problem(f string, a ...any) {
	mc.problems = append(mc.problems, fmt.Sprintf(f, a...))
}

func (mc *mediaClient) trickle(pc *webrtc.PeerConnection, target string) {
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			mc.sendRaw(`{"type":"candidate","target":"` + target + `","candidate":null}`)
			return
		}
		b, _ := json.Marshal(map[string]any{"type": "candidate", "target": target, "candidate": c.ToJSON()})
		mc.sendRaw(string(b))
	})
}

func (mc *mediaClient) newPublisher() *webrtc.PeerConnection {
	pc, err := webrtc.NewPeerConnection(pcConfig())
	if err != nil {
		mc.t.Fatal(err)
	}
	mc.trickle(pc, "publisher")
	mc.mu.Lock()
	mc.pub = pc
	mc.mu.Unlock()
	return pc
}

// hook runs in the read loop, before the test sees the message.
func (mc *mediaClient) hook(m *msg) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	switch {
	case m.Type == "answer" && m.Target == "publisher":
		mc.descSeen["publisher"] = true
		if u := iceUfragRe.FindStringSubmatch(m.SDP); u != nil {
			mc.ufrag["publisher"] = u[1]
		}
		if mc.pub != nil && mc.pub.SignalingState() == webrtc.SignalingStateHaveLocalOffer {
			if err := mc.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
				mc.problem("publisher answer %q: %v", m.ID, err)
			}
		}
	case m.Type == "offer":
		if m.Target != "subscriber" {
			mc.problem("offer from the node with target %q (§5 offer: S→C always \"subscriber\")", m.Target)
		}
		if _, ok := m.fields["id"]; ok {
			mc.problem("subscriber offer carries an id (§5 offer: S→C absent): %s", m)
		}
		mc.descSeen["subscriber"] = true
		if u := iceUfragRe.FindStringSubmatch(m.SDP); u != nil {
			mc.ufrag["subscriber"] = u[1]
		}
		mc.subOffers = append(mc.subOffers, m.SDP)
		if mc.sub == nil {
			pc, err := webrtc.NewPeerConnection(pcConfig())
			if err != nil {
				mc.problem("sub pc: %v", err)
				return
			}
			mc.trickle(pc, "subscriber")
			pc.OnTrack(func(tr *webrtc.TrackRemote, rc *webrtc.RTPReceiver) {
				mid := ""
				for _, tx := range pc.GetTransceivers() {
					if tx.Receiver() == rc {
						mid = tx.Mid()
					}
				}
				id, stream := tr.ID(), tr.StreamID()
				go func() {
					if _, _, err := tr.ReadRTP(); err == nil {
						mc.rtp <- remoteTrack{id: id, stream: stream, mid: mid}
					}
					buf := make([]byte, 1500)
					for {
						if _, _, err := tr.Read(buf); err != nil {
							return
						}
					}
				}()
			})
			mc.sub = pc
		}
		if err := mc.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
			mc.problem("subscriber offer: SetRemoteDescription: %v", err)
			return
		}
		ans, err := mc.sub.CreateAnswer(nil)
		if err == nil {
			err = mc.sub.SetLocalDescription(ans)
		}
		if err != nil {
			mc.problem("subscriber answer: %v", err)
			return
		}
		mc.answerN++
		b, _ := json.Marshal(map[string]any{"type": "answer", "id": fmt.Sprintf("sa-%d", mc.answerN), "target": "subscriber", "sdp": mc.sub.LocalDescription().SDP})
		go mc.sendRaw(string(b))
	case m.Type == "candidate":
		if m.Target != "publisher" && m.Target != "subscriber" {
			mc.problem("candidate with target %q", m.Target)
			return
		}
		if !mc.descSeen[m.Target] {
			mc.problem("§3: node candidate for %s before its description: %s", m.Target, m)
		}
		if string(m.Candidate) == "null" {
			return
		}
		var ci struct {
			Candidate        *string `json:"candidate"`
			SDPMid           *string `json:"sdpMid"`
			SDPMLineIndex    *uint16 `json:"sdpMLineIndex"`
			UsernameFragment *string `json:"usernameFragment"`
		}
		if err := json.Unmarshal(m.Candidate, &ci); err != nil || ci.Candidate == nil {
			mc.problem("candidate not an RTCIceCandidateInit: %s", m)
			return
		}
		if ci.SDPMid == nil || ci.SDPMLineIndex == nil || ci.UsernameFragment == nil {
			mc.problem("§5 ICE candidate: node candidate without sdpMid, sdpMLineIndex or usernameFragment: %s", m)
		} else if *ci.UsernameFragment != mc.ufrag[m.Target] {
			mc.problem("§5 ICE candidate: usernameFragment %q, the node's description on %s has a=ice-ufrag:%s", *ci.UsernameFragment, m.Target, mc.ufrag[m.Target])
		}
		pc := mc.pub
		if m.Target == "subscriber" {
			pc = mc.sub
		}
		if pc != nil {
			init := webrtc.ICECandidateInit{Candidate: *ci.Candidate, SDPMid: ci.SDPMid, SDPMLineIndex: ci.SDPMLineIndex, UsernameFragment: ci.UsernameFragment}
			if err := pc.AddICECandidate(init); err != nil {
				mc.problem("AddICECandidate(%s): %v", m, err)
			}
		}
	case m.Type == "ack" && strings.HasPrefix(m.ID, "sa-"):
		mc.acked[m.ID] = true
	case m.Type == "error" && strings.HasPrefix(m.RefID, "sa-"):
		mc.problem("subscriber answer refused: %s", m)
	}
}

func (mc *mediaClient) checkProblems() {
	mc.t.Helper()
	mc.mu.Lock()
	defer mc.mu.Unlock()
	for _, p := range mc.problems {
		mc.t.Errorf("%s: %s", mc.name, p)
	}
	mc.problems = nil
}

func (mc *mediaClient) offers() []string {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return append([]string(nil), mc.subOffers...)
}

// publishOffer makes and sends a publisher offer and waits for its answer
// (applied by the hook) or error.
func (mc *mediaClient) publishOffer(id string) *msg {
	mc.t.Helper()
	mc.mu.Lock()
	pc := mc.pub
	mc.mu.Unlock()
	off, err := pc.CreateOffer(nil)
	if err != nil {
		mc.t.Fatal(err)
	}
	if err := pc.SetLocalDescription(off); err != nil {
		mc.t.Fatal(err)
	}
	mc.send(map[string]any{"type": "offer", "id": id, "target": "publisher", "sdp": pc.LocalDescription().SDP})
	return mc.waitFor("answer or error for offer "+id, func(m *msg) bool {
		return (m.Type == "answer" && m.ID == id) || (m.Type == "error" && m.RefID == id)
	})
}

// sendRTP writes Opus-typed RTP on tr every 20 ms until stop is closed.
func sendRTP(tr *webrtc.TrackLocalStaticRTP, stop chan struct{}) {
	go func() {
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		var seq uint16
		var ts uint32
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			seq++
			ts += 960
			tr.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts}, Payload: make([]byte, 60)})
		}
	}()
}

type section struct {
	mid, dir, msid string
	port0          bool
	ssrc           bool
	media          string
}

func sections(sdp string) []section {
	var out []section
	var cur *section
	for _, l := range strings.Split(strings.ReplaceAll(sdp, "\r\n", "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "m="):
			out = append(out, section{})
			cur = &out[len(out)-1]
			f := strings.Fields(l[2:])
			cur.media = f[0]
			cur.port0 = len(f) > 1 && f[1] == "0"
		case cur == nil:
		case strings.HasPrefix(l, "a=mid:"):
			cur.mid = l[6:]
		case l == "a=sendonly" || l == "a=recvonly" || l == "a=inactive" || l == "a=sendrecv":
			cur.dir = l[2:]
		case strings.HasPrefix(l, "a=msid:"):
			cur.msid = l[7:]
		case strings.HasPrefix(l, "a=ssrc:"):
			cur.ssrc = true
		}
	}
	return out
}

func findMsid(ss []section, msid string) *section {
	for i := range ss {
		if ss[i].msid == msid {
			return &ss[i]
		}
	}
	return nil
}

func findMid(ss []section, mid string) *section {
	for i := range ss {
		if ss[i].mid == mid {
			return &ss[i]
		}
	}
	return nil
}

// waitOffer waits until the client has answered a subscriber offer
// satisfying f, returning its SDP.
func (mc *mediaClient) waitOffer(desc string, f func(string) bool) string {
	mc.t.Helper()
	var sdp string
	mc.waitFor(desc, func(m *msg) bool {
		if m.Type == "offer" && f(m.SDP) {
			sdp = m.SDP
			return true
		}
		return false
	})
	return sdp
}

func (mc *mediaClient) waitRTP(trackSid string) remoteTrack {
	mc.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case r := <-mc.rtp:
			if r.id == trackSid {
				return r
			}
		case <-deadline:
			mc.mu.Lock()
			var st string
			if mc.sub != nil {
				st = fmt.Sprintf("sub ice=%s pc=%s sig=%s", mc.sub.ICEConnectionState(), mc.sub.ConnectionState(), mc.sub.SignalingState())
			}
			diag := fmt.Sprintf("%s; problems %v; offers %d answered %d acked %v", st, mc.problems, len(mc.subOffers), mc.answerN, mc.acked)
			mc.mu.Unlock()
			mc.t.Fatalf("%s: no RTP received on track %s within %v (%s)", mc.name, trackSid, wait, diag)
		}
	}
}

// ---------------------------------------------------------------- the test

var goNameRe = regexp.MustCompile(`\b[a-z][a-z0-9]*\.[A-Z]\w*|struct|unmarshal|Go value|json:`)

func TestProtocolDoc(t *testing.T) {
	bin := buildSFU(t)
	// The default node; only the join burst is raised (not part of
	// joined.limits) because this test joins many times from one address.
	def := startNode(t, bin, "--join-burst", "1000", "--joins-per-second-per-ip", "1000")

	t.Run("1_before_join", func(t *testing.T) {
		// §2.2: before join only a well-formed ping is accepted.
		w := dial(t, def, "pre")
		// §1: no subprotocol and no compression extension negotiated
		{
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			c, resp, err := websocket.Dial(ctx, def.ws, &websocket.DialOptions{CompressionMode: websocket.CompressionContextTakeover, Subprotocols: []string{"sotto"}})
			cancel()
			if err != nil {
				t.Fatalf("dial offering compression: %v", err)
			}
			if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" || c.Subprotocol() != "" {
				t.Errorf("§1: node negotiated extension %q / subprotocol %q", ext, c.Subprotocol())
			}
			c.CloseNow()
		}
		w.send(map[string]any{"type": "ping", "id": "p1"})
		m := w.next(wait)
		if m.Type != "pong" || m.ID != "p1" {
			t.Errorf("§5 ping before join: got %s, want {\"type\":\"pong\",\"id\":\"p1\"}", m)
		}
		w.send(map[string]any{"type": "ping"})
		if m := w.next(wait); m.Type != "pong" {
			t.Errorf("ping without id before join: got %s, want pong", m)
		}
		// the connection is still usable: join works after pings
		w.send(joinMsg(token(t, grant{sub: "pre", room: "r1", pub: true, subscribe: true}), nil))
		if m := w.next(wait); m.Type != "joined" {
			t.Errorf("join after pings: got %s", m)
		}

		cases := []struct {
			name, frame string
			binary      bool
			code        string
		}{
			{"invalid JSON", `{"type":`, false, "bad_message"},
			{"not an object", `["join"]`, false, "bad_message"},
			{"type not a string", `{"type":7}`, false, "bad_message"},
			{"no type", `{"id":"x"}`, false, "bad_message"},
			{"binary frame", `{"type":"ping"}`, true, "bad_message"},
			{"malformed ping", `{"type":"ping","id":5}`, false, "bad_message"},
			{"unknown type", `{"type":"frobnicate","id":"u1"}`, false, "not_joined"},
			{"known type", `{"type":"subscribe","id":"s1","track_sids":["TR_X"]}`, false, "not_joined"},
			{"server-only type", `{"type":"joined"}`, false, "not_joined"},
			{"relay", `{"type":"relay","data":1}`, false, "not_joined"},
			{"leave", `{"type":"leave"}`, false, "not_joined"},
		}
		for _, c := range cases {
			t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
				w := dial(t, def, c.name)
				var err error
				if c.binary {
					err = w.sendBinary([]byte(c.frame))
				} else {
					err = w.sendRaw(c.frame)
				}
				if err != nil {
					t.Fatal(err)
				}
				// §2.2 and §8: fatal, close 1002 with the code as reason.
				w.expectFatal(c.code, websocket.StatusProtocolError, "§2.2 before join: "+c.name)
			})
		}
	})

	t.Run("2_join", func(t *testing.T) {
		room := "join-room"
		a, j := join(t, def, grant{sub: "zed", room: room, pub: true, subscribe: true}, nil)
		f := hasFields(t, "joined", j.raw, "protocol", "room", "participant", "participants", "ice_servers", "limits")
		if j.Protocol != 1 || j.Room != room {
			t.Errorf("joined protocol=%d room=%q, want 1 %q", j.Protocol, j.Room, room)
		}
		p := j.Participant
		if p == nil {
			t.Fatal("joined without participant")
		}
		hasFields(t, "joined.participant", f["participant"], "sid", "identity", "e2ee", "can_publish", "can_subscribe", "tracks")
		if !strings.HasPrefix(p.Sid, "PA_") || p.Identity != "zed" || !p.CanPublish || !p.CanSubscribe {
			t.Errorf("joined.participant = %s", f["participant"])
		}
		var pf map[string]json.RawMessage
		json.Unmarshal(f["participant"], &pf)
		if string(pf["tracks"]) != "[]" {
			t.Errorf("joined.participant.tracks = %s, want [] (§5 ParticipantInfo: `[]` when none)", pf["tracks"])
		}
		if string(f["participants"]) != "[]" {
			t.Errorf("joined.participants = %s, want [] in an empty room", f["participants"])
		}
		if !strings.HasPrefix(string(f["ice_servers"]), "[") {
			t.Errorf("joined.ice_servers = %s, want an array", f["ice_servers"])
		}
		lf := hasFields(t, "joined.limits", f["limits"], "max_message_bytes", "messages_per_second", "tracks_per_participant", "relay_bytes_per_second", "relay_burst_bytes")
		want := map[string]string{"max_message_bytes": "65536", "messages_per_second": "50", "tracks_per_participant": "8", "relay_bytes_per_second": "262144", "relay_burst_bytes": "1048576"}
		for k, v := range want {
			if string(lf[k]) != v {
				t.Errorf("joined.limits.%s = %s, want the default %s (§9)", k, lf[k], v)
			}
		}

		// A second participant: sees the first in participants (sorted by
		// identity), the first receives participant_joined with tracks [].
		_, j2 := join(t, def, grant{sub: "amy", room: room, pub: false, subscribe: true}, map[string]any{"room": room, "public_key": "pk-amy", "e2ee": true})
		if len(j2.Participants) != 1 || j2.Participants[0].Sid != p.Sid {
			t.Errorf("second joined.participants = %s", j2.fields["participants"])
		}
		var j2p map[string]json.RawMessage
		json.Unmarshal(j2.fields["participant"], &j2p)
		if string(j2p["public_key"]) != `"pk-amy"` || string(j2p["e2ee"]) != "true" || string(j2p["can_publish"]) != "false" {
			t.Errorf("second joined.participant = %s (public_key verbatim, e2ee true, can_publish false expected)", j2.fields["participant"])
		}
		pj := a.waitType("participant_joined")
		if pj.Participant == nil || pj.Participant.Identity != "amy" || pj.Participant.Sid != j2.Participant.Sid {
			t.Errorf("participant_joined = %s", pj)
		}
		var pjp map[string]json.RawMessage
		json.Unmarshal(pj.fields["participant"], &pjp)
		if string(pjp["tracks"]) != "[]" {
			t.Errorf("participant_joined.participant.tracks = %s, want []", pjp["tracks"])
		}
		// a third sorted by identity: amy before zed
		_, j3 := join(t, def, grant{sub: "mid", room: room, subscribe: true}, nil)
		if len(j3.Participants) != 2 || j3.Participants[0].Identity != "amy" || j3.Participants[1].Identity != "zed" {
			t.Errorf("§5 joined.participants not sorted by identity: %s", j3.fields["participants"])
		}

		// After join: second join, unknown type, binary frame, field type errors.
		a.send(joinMsg(token(t, grant{sub: "zed", room: room}), nil))
		checkError(t, a.waitType("error"), "already_joined", false, "", "-", "§7 already_joined")
		a.sendRaw(`{"type":"frobnicate","id":"f1"}`)
		checkError(t, a.waitType("error"), "unknown_type", false, "", "-", "§7 unknown_type after join")
		a.sendRaw(`{"type":"joined","id":"f2"}`)
		checkError(t, a.waitType("error"), "unknown_type", false, "", "-", "§7 unknown_type: server-only types included")
		a.sendBinary([]byte(`{"type":"ping"}`))
		checkError(t, a.waitType("error"), "bad_message", false, "", "-", "§1 binary frame after join")
		// §4: a request carrying an id gets exactly one reply naming it
		// (an error whose ref_id is that id), also when a field has the wrong type.
		for _, c := range []struct{ frame, ref, id, field string }{
			{`{"type":"subscribe","id":"s1","track_sids":"TR_X"}`, "subscribe", "s1", "track_sids"},
			{`{"type":"mute","id":"m1","track_sid":"TR_X","muted":"yes"}`, "mute", "m1", "muted"},
			{`{"type":"relay","id":"r1","to":"bob","data":1}`, "relay", "r1", "to"},
		} {
			a.sendRaw(c.frame)
			e := a.waitType("error")
			checkError(t, e, "bad_message", false, c.ref, c.id, "§4/§7 field of the wrong type in a request with an id: "+c.frame)
			if !strings.Contains(e.Message, `field "`+c.field+`"`) || goNameRe.MatchString(e.Message) {
				t.Errorf("§7 bad_message names the JSON field without Go names; got %q", e.Message)
			}
		}
		pingSync(t, a, "alive")

		typeCases := []struct{ name, frame, field, typ string }{
			{"token number", `{"type":"join","protocol":1,"token":123}`, "token", "string"},
			{"protocol string", `{"type":"join","protocol":"1","token":"x"}`, "protocol", ""},
			{"auto_subscribe string", `{"type":"join","protocol":1,"token":"x","auto_subscribe":"yes"}`, "auto_subscribe", ""},
		}
		for _, c := range typeCases {
			t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
				w := dial(t, def, c.name)
				w.sendRaw(c.frame)
				m := w.expectFatal("bad_message", websocket.StatusProtocolError, "§7 field of the wrong type in join")
				if !strings.Contains(m.Message, `field "`+c.field+`"`) {
					t.Errorf("§7: message %q does not name the JSON field %q", m.Message, c.field)
				}
				if c.name == "token number" && !strings.Contains(m.Message, `join: field "token" must be a string, not number`) {
					t.Errorf("§7: message %q, doc example is `join: field \"token\" must be a string, not number`", m.Message)
				}
				if goNameRe.MatchString(m.Message) {
					t.Errorf("§7: message %q shows Go names", m.Message)
				}
			})
		}

		now := time.Now().Unix()
		good := jwt.MapClaims{"sub": "x", "room": room, "exp": now + 600}
		with := func(k string, v any) jwt.MapClaims {
			c := jwt.MapClaims{}
			for a, b := range good {
				c[a] = b
			}
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
			return c
		}
		refusals := []struct {
			name string
			join map[string]any
			code string
			cc   websocket.StatusCode
		}{
			{"unsupported_version", map[string]any{"type": "join", "protocol": 2, "token": token(t, grant{sub: "x", room: room})}, "unsupported_version", websocket.StatusProtocolError},
			{"token_missing", map[string]any{"type": "join", "protocol": 1}, "token_missing", websocket.StatusPolicyViolation},
			{"token_malformed", joinMsg("not-a-jwt", nil), "token_malformed", websocket.StatusPolicyViolation},
			{"no_sub", joinMsg(signToken(t, jwt.SigningMethodHS256, apiKey, apiSecret, with("sub", nil)), nil), "token_malformed", websocket.StatusPolicyViolation},
			{"no_exp", joinMsg(signToken(t, jwt.SigningMethodHS256, apiKey, apiSecret, with("exp", nil)), nil), "token_malformed", websocket.StatusPolicyViolation},
			{"grant_wrong_type", joinMsg(signToken(t, jwt.SigningMethodHS256, apiKey, apiSecret, with("can_publish", "yes")), nil), "token_malformed", websocket.StatusPolicyViolation},
			{"sub_too_long", joinMsg(signToken(t, jwt.SigningMethodHS256, apiKey, apiSecret, with("sub", strings.Repeat("s", 257))), nil), "token_malformed", websocket.StatusPolicyViolation},
			{"hs512", joinMsg(signToken(t, jwt.SigningMethodHS512, apiKey, apiSecret, good), nil), "token_algorithm", websocket.StatusPolicyViolation},
			{"no_kid", joinMsg(signToken(t, jwt.SigningMethodHS256, "", apiSecret, good), nil), "token_unknown_key", websocket.StatusPolicyViolation},
			{"unknown_kid", joinMsg(signToken(t, jwt.SigningMethodHS256, "other", apiSecret, good), nil), "token_unknown_key", websocket.StatusPolicyViolation},
			{"bad_signature", joinMsg(signToken(t, jwt.SigningMethodHS256, apiKey, "wrong-secret-0123456789", good), nil), "token_signature", websocket.StatusPolicyViolation},
			{"expired", joinMsg(signToken(t, jwt.SigningMethodHS256, apiKey, apiSecret, with("exp", now-60)), nil), "token_expired", websocket.StatusPolicyViolation},
			{"nbf_future", joinMsg(signToken(t, jwt.SigningMethodHS256, apiKey, apiSecret, with("nbf", now+60)), nil), "token_not_yet_valid", websocket.StatusPolicyViolation},
			{"iat_future", joinMsg(signToken(t, jwt.SigningMethodHS256, apiKey, apiSecret, with("iat", now+60)), nil), "token_not_yet_valid", websocket.StatusPolicyViolation},
			{"room_mismatch", joinMsg(token(t, grant{sub: "x", room: room}), map[string]any{"room": "other"}), "room_mismatch", websocket.StatusPolicyViolation},
			{"public_key_too_long", joinMsg(token(t, grant{sub: "x", room: room}), map[string]any{"public_key": strings.Repeat("k", 1025)}), "bad_message", websocket.StatusPolicyViolation},
		}
		for _, c := range refusals {
			t.Run(c.name, func(t *testing.T) {
				w := dial(t, def, c.name)
				w.send(c.join)
				w.expectFatal(c.code, c.cc, "§7/§8 join refusal "+c.name)
			})
		}
		t.Run("expired_within_leeway", func(t *testing.T) {
			w := dial(t, def, "leeway")
			w.send(joinMsg(signToken(t, jwt.SigningMethodHS256, apiKey, apiSecret, with("exp", now-3)), nil))
			if m := w.next(wait); m.Type != "joined" {
				t.Errorf("§6 leeway 10 s: token expired 3 s ago refused: %s", m)
			}
		})
		t.Run("absent_grants_mean_false", func(t *testing.T) {
			_, j := join(t, def, grant{sub: "nogrants", room: "grants", omitGrants: true}, nil)
			if j.Participant.CanPublish || j.Participant.CanSubscribe {
				t.Errorf("§6 absent grants must mean false: %s", j.fields["participant"])
			}
		})
	})

	t.Run("3_auto_subscribe_without_grant", func(t *testing.T) {
		w := dial(t, def, "nosub-explicit")
		w.send(joinMsg(token(t, grant{sub: "ns", room: "ns-room", pub: true}), map[string]any{"auto_subscribe": true}))
		w.expectFatal("permission_denied", websocket.StatusPolicyViolation, "§5 join.auto_subscribe: explicit true without the grant")

		// default true is quietly turned off
		ns, j := join(t, def, grant{sub: "ns", room: "ns-room", pub: true}, nil)
		if j.Participant.CanSubscribe {
			t.Errorf("can_subscribe true without the grant")
		}
		ns.send(map[string]any{"type": "subscribe", "id": "sub1", "track_sids": []string{"TR_NOPE"}})
		checkError(t, ns.waitType("error"), "permission_denied", false, "subscribe", "sub1", "§5 subscribe without the grant")
		// explicit false is fine
		w2 := dial(t, def, "nosub-false")
		w2.send(joinMsg(token(t, grant{sub: "ns2", room: "ns-room"}), map[string]any{"auto_subscribe": false}))
		if m := w2.next(wait); m.Type != "joined" {
			t.Errorf("auto_subscribe false without the grant: %s", m)
		}
	})

	// Points 4, 5 and 6 share one call.
	room := "media"
	alice, aj := joinMedia(t, def, grant{sub: "alice", room: room, pub: true, subscribe: true}, map[string]any{"reuse_sections": false})
	aw := alice.conn
	aliceSid := aj.Participant.Sid
	var trackSid string
	stop1 := make(chan struct{})
	defer close(stop1)
	var sender *webrtc.RTPSender

	t.Run("5_publish", func(t *testing.T) {
		pc := alice.newPublisher()
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "alice-stream")
		if err != nil {
			t.Fatal(err)
		}
		tx, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		sender = tx.Sender()
		m := alice.publishOffer("o1")
		if m.Type != "answer" || m.Target != "publisher" {
			t.Fatalf("§3 publishing: offer o1 answered by %s", m)
		}
		sendRTP(tr, stop1)
		tp := alice.waitType("track_published")
		hasFields(t, "track_published.track", tp.fields["track"], "sid", "participant_sid", "identity", "client_track_id", "kind", "codec", "muted", "e2ee")
		if tp.Track == nil || !strings.HasPrefix(tp.Track.Sid, "TR_") || tp.Track.PSid != aliceSid || tp.Track.Identity != "alice" ||
			tp.Track.ClientTrackID != "mic" || tp.Track.Kind != "audio" || !strings.EqualFold(tp.Track.Codec, "audio/opus") || tp.Track.Muted {
			t.Fatalf("§3.4 track_published to the owner = %s", tp)
		}
		trackSid = tp.Track.Sid

		// Overlapping publisher offers (§3.5): the second, sent while the
		// node applies the first, is refused with offer_pending (non-fatal).
		var gotPending bool
		for i := 0; i < 5 && !gotPending; i++ {
			off, err := pc.CreateOffer(nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := pc.SetLocalDescription(off); err != nil {
				t.Fatal(err)
			}
			b1, _ := json.Marshal(map[string]any{"type": "offer", "id": fmt.Sprintf("x%d", i), "target": "publisher", "sdp": pc.LocalDescription().SDP})
			b2, _ := json.Marshal(map[string]any{"type": "offer", "id": fmt.Sprintf("y%d", i), "target": "publisher", "sdp": pc.LocalDescription().SDP})
			alice.sendRaw(string(b1))
			alice.sendRaw(string(b2))
			var ansX, repY *msg
			for ansX == nil || repY == nil {
				m := alice.waitFor("replies to x/y", func(m *msg) bool {
					return m.ID == fmt.Sprintf("x%d", i) || m.RefID == fmt.Sprintf("x%d", i) || m.ID == fmt.Sprintf("y%d", i) || m.RefID == fmt.Sprintf("y%d", i)
				})
				if m.ID == fmt.Sprintf("x%d", i) || m.RefID == fmt.Sprintf("x%d", i) {
					ansX = m
				} else {
					repY = m
				}
			}
			if ansX.Type != "answer" {
				t.Fatalf("first of two overlapping offers: %s", ansX)
			}
			if repY.Type == "error" {
				checkError(t, repY, "offer_pending", false, "offer", fmt.Sprintf("y%d", i), "§3.5 overlapping publisher offer")
				gotPending = true
			} else {
				t.Logf("attempt %d: second offer answered too (the first was applied before it arrived)", i)
			}
		}
		if !gotPending {
			t.Errorf("§3.5: no offer_pending in 5 attempts of two back-to-back publisher offers")
		}
		pingSync(t, aw, "after-pending")
		alice.checkProblems()

		// Errors on offers: wrong target, empty sdp.
		aw.sendRaw(`{"type":"offer","id":"bt","target":"subscriber","sdp":"v=0"}`)
		checkError(t, aw.waitFor("error bt", func(m *msg) bool { return m.RefID == "bt" }), "bad_message", false, "offer", "bt", "§5 offer: target must be publisher")
		aw.sendRaw(`{"type":"offer","id":"es","target":"publisher","sdp":""}`)
		checkError(t, aw.waitFor("error es", func(m *msg) bool { return m.RefID == "es" }), "bad_message", false, "offer", "es", "§5 offer: sdp must not be empty")
		aw.sendRaw(`{"type":"answer","id":"na","target":"subscriber","sdp":"v=0\r\n"}`)
		checkError(t, aw.waitFor("error na", func(m *msg) bool { return m.RefID == "na" }), "negotiation_failed", false, "answer", "na", "§5 answer to no outstanding subscriber offer")
	})
	if trackSid == "" {
		t.Fatal("no published track; cannot go on with points 4 and 6")
	}

	t.Run("4_trickle_candidates", func(t *testing.T) {
		// The hook checked every node candidate (order, sdpMid,
		// sdpMLineIndex, usernameFragment = a=ice-ufrag). Make sure some came.
		var n, null int
		alice.lmu.Lock()
		for _, m := range alice.log {
			if m.Type == "candidate" && m.Target == "publisher" {
				if string(m.Candidate) == "null" {
					null++
				} else {
					n++
				}
			}
		}
		alice.lmu.Unlock()
		if n == 0 {
			t.Errorf("no publisher candidate from the node")
		}
		t.Logf("node sent %d publisher candidates and %d end-of-candidates", n, null)
		alice.checkProblems()
	})

	t.Run("6_subscribe_unpublish_republish", func(t *testing.T) {
		bob, bj := joinMedia(t, def, grant{sub: "bob", room: room, pub: true, subscribe: true}, map[string]any{"reuse_sections": false})
		bw := bob.conn
		carol, _ := joinMedia(t, def, grant{sub: "carol", room: room, pub: true, subscribe: true}, nil) // reuse_sections default true
		cw := carol.conn
		dw, dj := join(t, def, grant{sub: "dave", room: room, pub: true}, nil) // no subscribe grant
		if len(bj.Participants) != 1 || len(bj.Participants[0].Tracks) != 1 || bj.Participants[0].Tracks[0].Sid != trackSid {
			t.Errorf("§2.3 bob's joined should list alice with her track: %s", bj.fields["participants"])
		}
		if len(dj.Participants) != 3 {
			t.Errorf("dave's joined.participants: %s", dj.fields["participants"])
		}
		msid1 := aliceSid + " " + trackSid
		sdpB := bob.waitOffer("subscriber offer with alice's track", func(s string) bool { return findMsid(sections(s), msid1) != nil })
		s1 := findMsid(sections(sdpB), msid1)
		if s1.dir != "sendonly" || s1.port0 {
			t.Errorf("§3 subscriber section %+v, want sendonly", *s1)
		}
		oldMid := s1.mid
		r := bob.waitRTP(trackSid)
		if r.stream != aliceSid || r.mid != oldMid {
			t.Errorf("§3.3 received track id=%s stream=%s mid=%s, want %s %s %s", r.id, r.stream, r.mid, trackSid, aliceSid, oldMid)
		}
		sdpC := carol.waitOffer("carol's offer with alice's track", func(s string) bool { return findMsid(sections(s), msid1) != nil })
		carolMid := findMsid(sections(sdpC), msid1).mid
		carol.waitRTP(trackSid)

		// candidates on the subscriber connection were checked by the hook
		bob.checkProblems()

		// not_owner / unknown_track
		bw.send(map[string]any{"type": "unpublish", "id": "u-no", "track_sid": trackSid})
		checkError(t, bw.waitFor("error u-no", func(m *msg) bool { return m.RefID == "u-no" }), "not_owner", false, "unpublish", "u-no", "§5 unpublish of another's track")
		bw.send(map[string]any{"type": "mute", "id": "m-unk", "track_sid": "TR_NOPE", "muted": true})
		checkError(t, bw.waitFor("error m-unk", func(m *msg) bool { return m.RefID == "m-unk" }), "unknown_track", false, "mute", "m-unk", "§5 mute of unknown track")
		bw.send(map[string]any{"type": "subscribe", "id": "s-mix", "track_sids": []string{trackSid, "TR_NOPE"}})
		e := bw.waitFor("error s-mix", func(m *msg) bool { return m.RefID == "s-mix" })
		checkError(t, e, "unknown_track", false, "subscribe", "s-mix", "§5 subscribe: one error naming the failed sids")
		if !strings.Contains(e.Message, "TR_NOPE") {
			t.Errorf("§5 subscribe error should name the sids that failed: %q", e.Message)
		}

		// mute: everyone, the owner included, gets track_muted, then the ack
		aw.send(map[string]any{"type": "mute", "id": "mu1", "track_sid": trackSid, "muted": true})
		tm := aw.waitType("track_muted")
		if tm.Sid != trackSid || tm.PSid != aliceSid || tm.Identity != "alice" || !tm.Muted {
			t.Errorf("track_muted = %s", tm)
		}
		aw.waitFor("ack mu1", func(m *msg) bool { return m.Type == "ack" && m.ID == "mu1" })
		if m := bw.waitType("track_muted"); m.Sid != trackSid || !m.Muted {
			t.Errorf("bob's track_muted = %s", m)
		}

		// unpublish: ack, track_unpublished to everyone, and an offer
		// showing the section inactive, same mid, no msid, no ssrc.
		aw.send(map[string]any{"type": "unpublish", "id": "up1", "track_sid": trackSid})
		var upAck bool
		m := aw.waitFor("track_unpublished", func(m *msg) bool {
			if m.Type == "ack" && m.ID == "up1" {
				upAck = true
			}
			if m.RefID == "up1" {
				t.Errorf("unpublish refused: %s", m)
			}
			return m.Type == "track_unpublished"
		})
		if m.Sid != trackSid || m.PSid != aliceSid || m.Identity != "alice" {
			t.Errorf("owner's track_unpublished = %s", m)
		}
		if !upAck {
			aw.waitFor("ack up1", func(m *msg) bool { return m.Type == "ack" && m.ID == "up1" })
		}
		for _, w := range []*conn{bw, cw, dw} {
			m := w.waitType("track_unpublished")
			if m.Sid != trackSid || m.PSid != aliceSid || m.Identity != "alice" {
				t.Errorf("%s: track_unpublished = %s", w.name, m)
			}
		}
		checkInactive := func(mc *mediaClient, mid string) {
			sdp := mc.waitOffer("offer ending alice's track", func(s string) bool { return findMsid(sections(s), msid1) == nil })
			s := findMid(sections(sdp), mid)
			if s == nil {
				t.Errorf("%s: §3.4 the ended track's section (mid %s) was removed from the offer:\n%s", mc.name, mid, sdp)
			} else if s.dir != "inactive" || s.msid != "" || s.ssrc || s.port0 {
				t.Errorf("%s: §3.4 ended section %+v, want a=inactive, no msid, no ssrc, port not 0", mc.name, *s)
			}
		}
		checkInactive(bob, oldMid)
		checkInactive(carol, carolMid)

		// The owner removes the track and offers again (§5 unpublish), then
		// publishes a new track on the same transceiver (§3.5).
		pc := alice.pub
		if err := pc.RemoveTrack(sender); err != nil {
			t.Fatal(err)
		}
		if m := alice.publishOffer("o-rm"); m.Type != "answer" {
			t.Fatalf("offer after removeTrack: %s", m)
		}
		tr2, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic2", "alice-stream")
		if _, err := pc.AddTrack(tr2); err != nil {
			t.Fatal(err)
		}
		stop2 := make(chan struct{})
		defer close(stop2)
		if m := alice.publishOffer("o-re"); m.Type != "answer" {
			t.Fatalf("republish offer: %s", m)
		}
		sendRTP(tr2, stop2)
		tp := aw.waitFor("track_published mic2", func(m *msg) bool {
			return m.Type == "track_published" && m.Track != nil && m.Track.ClientTrackID == "mic2"
		})
		sid2 := tp.Track.Sid
		if sid2 == trackSid {
			t.Errorf("republished track kept its sid")
		}
		msid2 := aliceSid + " " + sid2

		// bob (reuse_sections false): a new section, the old one stays inactive.
		sdpB2 := bob.waitOffer("offer with mic2", func(s string) bool { return findMsid(sections(s), msid2) != nil })
		ss := sections(sdpB2)
		n := findMsid(ss, msid2)
		if n.mid == oldMid {
			t.Errorf("§3.4 reuse_sections false: the new track got the ended section's mid %s", oldMid)
		}
		if n.dir != "sendonly" {
			t.Errorf("new section %+v, want sendonly", *n)
		}
		if o := findMid(ss, oldMid); o == nil || o.dir != "inactive" || o.port0 {
			t.Errorf("§3.4 reuse_sections false: ended section should stay inactive (not removed, not port 0): %+v", o)
		}
		if r := bob.waitRTP(sid2); r.stream != aliceSid || r.mid != n.mid {
			t.Errorf("bob received mic2 as %+v, want stream %s mid %s", r, aliceSid, n.mid)
		}

		// carol (reuse_sections default true): the ended section is reused.
		sdpC2 := carol.waitOffer("carol's offer with mic2", func(s string) bool { return findMsid(sections(s), msid2) != nil })
		cs := sections(sdpC2)
		cn := findMsid(cs, msid2)
		if cn.mid != carolMid || cn.dir != "sendonly" || !cn.ssrc {
			t.Errorf("§3.4 reuse: carol's offer shows mic2 in section %+v, want the ended section's mid %s sendonly with a new ssrc", *cn, carolMid)
		}
		audio := 0
		for _, s := range cs {
			if s.media == "audio" {
				audio++
			}
			if s.port0 {
				t.Errorf("§3.4 the node never stops (rejects) a section: %+v", s)
			}
		}
		if audio != 1 {
			t.Errorf("§3.4: carol's offer has %d audio sections for 1 audio track forwarded", audio)
		}

		// dave (no subscribe grant, auto_subscribe quietly off) was never offered anything.
		pingSync(t, dw, "dave")
		dw.lmu.Lock()
		for _, m := range dw.log {
			if m.Type == "offer" {
				t.Errorf("§5 join.auto_subscribe: dave without the subscribe grant got an offer: %s", m)
			}
		}
		dw.lmu.Unlock()
		// bob learned alice's first track from joined: no track_published for it.
		bw.lmu.Lock()
		for _, m := range bw.log {
			if m.Type == "track_published" && m.Track != nil && m.Track.Sid == trackSid {
				t.Errorf("§2.4 track announced twice (joined and track_published): %s", m)
			}
		}
		bw.lmu.Unlock()
		for _, mc := range []*mediaClient{alice, bob} {
			mc.checkProblems()
		}
		bob.mu.Lock()
		if len(bob.acked) != bob.answerN {
			t.Errorf("§4: bob's subscriber answers with ids: %d acked of %d", len(bob.acked), bob.answerN)
		}
		bob.mu.Unlock()
		carol.mu.Lock()
		for _, p := range carol.problems {
			t.Logf("carol (pion with reuse_sections true, expected to struggle): %s", p)
		}
		carol.mu.Unlock()
	})

	t.Run("7_relay", func(t *testing.T) {
		room := "relay"
		a, aj := join(t, def, grant{sub: "alice", room: room}, nil)
		// alone: succeeds, reaches no one
		a.send(map[string]any{"type": "relay", "id": "solo", "data": 1})
		if m := a.waitFor("reply solo", func(m *msg) bool { return m.ID == "solo" || m.RefID == "solo" }); m.Type != "ack" {
			t.Errorf("§5 relay alone in the room: %s, want ack", m)
		}
		b, _ := join(t, def, grant{sub: "bob", room: room}, nil)
		c, _ := join(t, def, grant{sub: "carol", room: room}, nil)
		a.waitType("participant_joined")
		a.waitType("participant_joined")
		b.waitType("participant_joined")

		data := `{ "z" : [1, 2.50, "é\u00e9"],"a":null }`
		a.sendRaw(`{"type":"relay","id":"r1","to":["bob"],"data":` + data + `}`)
		m := b.waitType("relay")
		f := hasFields(t, "relay", m.raw, "from", "from_sid", "data")
		if m.From != "alice" || m.FromSid != aj.Participant.Sid {
			t.Errorf("§5 relay from=%q from_sid=%q, want alice %s", m.From, m.FromSid, aj.Participant.Sid)
		}
		if string(f["data"]) != data {
			t.Errorf("§5 relay data not byte for byte: got %s, sent %s", f["data"], data)
		}
		if _, ok := f["id"]; ok {
			t.Errorf("§5 relay S→C: id must be absent: %s", m)
		}
		if _, ok := f["to"]; ok {
			t.Errorf("§5 relay S→C: to must be absent: %s", m)
		}
		if m := a.waitFor("reply r1", func(m *msg) bool { return m.ID == "r1" || m.RefID == "r1" }); m.Type != "ack" {
			t.Errorf("relay r1: %s, want ack", m)
		}
		// to everyone else; data null; from ignored when sent
		a.sendRaw(`{"type":"relay","id":"r2","from":"mallory","from_sid":"PA_FAKE","data":null}`)
		for _, w := range []*conn{b, c} {
			m := w.waitType("relay")
			if m.From != "alice" || string(m.fields["data"]) != "null" {
				t.Errorf("%s: broadcast relay = %s", w.name, m)
			}
		}
		a.waitFor("ack r2", func(m *msg) bool { return m.Type == "ack" && m.ID == "r2" })
		// to: [] means everyone else
		a.sendRaw(`{"type":"relay","id":"r3","to":[],"data":"all"}`)
		for _, w := range []*conn{b, c} {
			if m := w.waitType("relay"); string(m.fields["data"]) != `"all"` {
				t.Errorf("%s: relay with empty to = %s", w.name, m)
			}
		}
		a.waitFor("ack r3", func(m *msg) bool { return m.Type == "ack" && m.ID == "r3" })
		// unknown participant: nobody receives it, not even bob
		a.sendRaw(`{"type":"relay","id":"r4","to":["bob","nobody"],"data":"lost"}`)
		checkError(t, a.waitFor("reply r4", func(m *msg) bool { return m.ID == "r4" || m.RefID == "r4" }), "unknown_participant", false, "relay", "r4", "§5 relay to an identity not in the room")
		// absent data
		a.sendRaw(`{"type":"relay","id":"r5","to":["bob"]}`)
		checkError(t, a.waitFor("reply r5", func(m *msg) bool { return m.ID == "r5" || m.RefID == "r5" }), "bad_message", false, "relay", "r5", "§5 relay without data")
		a.sendRaw(`{"type":"relay","id":"r6","to":["bob"],"data":"marker"}`)
		a.waitFor("ack r6", func(m *msg) bool { return m.Type == "ack" && m.ID == "r6" })
		if m := b.waitType("relay"); string(m.fields["data"]) != `"marker"` {
			t.Errorf("§5: bob got %s after a relay refused for unknown_participant; want the marker", m)
		}
		// the sender never receives its own relay
		pingSync(t, a, "a-end")
		a.lmu.Lock()
		for _, m := range a.log {
			if m.Type == "relay" {
				t.Errorf("§5 the sender received its own relay: %s", m)
			}
		}
		a.lmu.Unlock()

		// byte budget, on a node with a small relay budget
		tight := startNode(t, bin, "--relay-burst-bytes", "65536", "--relay-bytes-per-second", "100")
		ta, tj := join(t, tight, grant{sub: "alice", room: "t"}, nil)
		if l := string(tj.fields["limits"]); !strings.Contains(l, `"relay_bytes_per_second":100`) || !strings.Contains(l, `"relay_burst_bytes":65536`) {
			t.Errorf("joined.limits does not report the configured relay budget: %s", l)
		}
		tb, _ := join(t, tight, grant{sub: "bob", room: "t"}, nil)
		tc, _ := join(t, tight, grant{sub: "carol", room: "t"}, nil)
		ta.waitType("participant_joined")
		ta.waitType("participant_joined")
		tb.waitType("participant_joined")
		big := `"` + strings.Repeat("x", 39998) + `"` // 40000 bytes of data
		// to two recipients: counted once (40000 ≤ 65536)
		ta.sendRaw(`{"type":"relay","id":"b1","data":` + big + `}`)
		if m := ta.waitFor("reply b1", func(m *msg) bool { return m.ID == "b1" || m.RefID == "b1" }); m.Type != "ack" {
			t.Errorf("§5 relay data counted once whatever the recipients: 40000 bytes to two recipients with a 65536 burst: %s", m)
		}
		tb.waitType("relay")
		tc.waitType("relay")
		ta.sendRaw(`{"type":"relay","id":"b2","to":["bob"],"data":` + big + `}`)
		checkError(t, ta.waitFor("reply b2", func(m *msg) bool { return m.ID == "b2" || m.RefID == "b2" }), "rate_limited", false, "relay", "b2", "§5 relay over the byte budget")
		ta.sendRaw(`{"type":"relay","id":"b3","to":["bob"],"data":"after"}`)
		ta.waitFor("ack b3", func(m *msg) bool { return m.Type == "ack" && m.ID == "b3" })
		if m := tb.waitType("relay"); string(m.fields["data"]) != `"after"` {
			t.Errorf("§5 a relay over budget reaches nobody; bob got %s", m)
		}

		// relay_flood: more than 16 refused within one second. 1 refused
		// already (b2); 15 more keep the session, the 17th ends it.
		for i := 0; i < 15; i++ {
			ta.sendRaw(fmt.Sprintf(`{"type":"relay","id":"f%d","to":["bob"],"data":%s}`, i, big))
		}
		pingSync(t, ta, "after16")
		ta.sendRaw(`{"type":"relay","id":"f15","to":["bob"],"data":` + big + `}`)
		m = ta.waitFor("relay_flood", func(m *msg) bool { return m.Type == "error" && m.Fatal })
		checkError(t, m, "relay_flood", true, "", "-", "§9 relay_flood")
		ta.expectClose(websocket.StatusPolicyViolation, "relay_flood", "§8 relay_flood")
		if m := tb.waitType("participant_left"); m.Reason != "disconnected" {
			t.Errorf("§5 participant_left after a fatal error: reason %q, want disconnected", m.Reason)
		}
	})

	t.Run("8_close_reasons", func(t *testing.T) {
		t.Run("join_timeout", func(t *testing.T) {
			n := startNode(t, bin, "--join-timeout", "1s")
			w := dial(t, n, "idle")
			start := time.Now()
			w.expectFatal("not_joined", websocket.StatusProtocolError, "§2 no join within join_timeout")
			if d := time.Since(start); d < 800*time.Millisecond {
				t.Errorf("not_joined after %v, before the 1 s join timeout", d)
			}
		})
		t.Run("leave", func(t *testing.T) {
			a, aj := join(t, def, grant{sub: "alice", room: "leave"}, nil)
			b, _ := join(t, def, grant{sub: "bob", room: "leave"}, nil)
			a.waitType("participant_joined")
			a.send(map[string]any{"type": "leave"})
			a.expectClose(websocket.StatusNormalClosure, "left", "§8 leave")
			a.lmu.Lock()
			for _, m := range a.log[1:] {
				if m.Type != "participant_joined" {
					t.Errorf("§5 leave: node sent %s after leave", m)
				}
			}
			a.lmu.Unlock()
			m := b.waitType("participant_left")
			if m.Sid != aj.Participant.Sid || m.Identity != "alice" || m.Reason != "left" {
				t.Errorf("participant_left after leave = %s", m)
			}
		})
		t.Run("disconnected", func(t *testing.T) {
			a, aj := join(t, def, grant{sub: "alice", room: "disc"}, nil)
			b, _ := join(t, def, grant{sub: "bob", room: "disc"}, nil)
			a.waitType("participant_joined")
			a.c.CloseNow()
			m := b.waitType("participant_left")
			if m.Sid != aj.Participant.Sid || m.Reason != "disconnected" {
				t.Errorf("participant_left after close = %s", m)
			}
		})
		t.Run("replaced", func(t *testing.T) {
			a, aj := join(t, def, grant{sub: "alice", room: "repl"}, nil)
			b, _ := join(t, def, grant{sub: "bob", room: "repl"}, nil)
			a.waitType("participant_joined")
			a2, a2j := join(t, def, grant{sub: "alice", room: "repl"}, nil)
			m := a.waitType("going_away")
			hasFields(t, "going_away", m.raw, "reason", "message")
			if m.Reason != "replaced" {
				t.Errorf("going_away reason %q, want replaced", m.Reason)
			}
			a.expectClose(websocket.StatusNormalClosure, "replaced", "§8 replaced")
			l := b.waitFor("participant_left or joined", func(m *msg) bool { return m.Type == "participant_left" || m.Type == "participant_joined" })
			if l.Type != "participant_left" || l.Sid != aj.Participant.Sid || l.Reason != "replaced" {
				t.Errorf("§2 replaced: bob's first event = %s, want participant_left reason replaced for %s", l, aj.Participant.Sid)
			}
			j := b.waitType("participant_joined")
			if j.Participant == nil || j.Participant.Sid != a2j.Participant.Sid {
				t.Errorf("§2 replaced: then participant_joined for the new sid: %s", j)
			}
			if len(a2j.Participants) != 1 || a2j.Participants[0].Identity != "bob" {
				t.Errorf("new session's joined.participants = %s", a2j.fields["participants"])
			}
			_ = a2
		})
		t.Run("message_too_large", func(t *testing.T) {
			a, _ := join(t, def, grant{sub: "big", room: "big"}, nil)
			a.sendRaw(`{"type":"relay","data":"` + strings.Repeat("y", 70000) + `"}`)
			a.expectFatal("message_too_large", websocket.StatusMessageTooBig, "§1 message over max_message_bytes")
		})
		t.Run("flood", func(t *testing.T) {
			a, _ := join(t, def, grant{sub: "flood", room: "flood"}, nil)
			go func() {
				for i := 0; i < 600; i++ {
					if a.sendRaw(fmt.Sprintf(`{"type":"ping","id":"fp%d"}`, i)) != nil {
						return
					}
				}
			}()
			var limited int
			m := a.waitFor("fatal error", func(m *msg) bool {
				if m.Type == "error" && m.Code == "rate_limited" {
					limited++
					if m.Fatal || m.Ref != "ping" || !strings.HasPrefix(m.RefID, "fp") {
						t.Errorf("§7 rate_limited for a ping with an id: ref and ref_id name it, non-fatal: %s", m)
					}
				}
				return m.Type == "error" && m.Fatal
			})
			checkError(t, m, "flood", true, "", "-", "§9 flood")
			a.expectClose(websocket.StatusPolicyViolation, "flood", "§8 flood")
			if limited == 0 || limited > 8 {
				t.Errorf("§9: %d rate_limited errors before flood, want 1..8 (at most 8 per second)", limited)
			}
		})
		t.Run("shutdown", func(t *testing.T) {
			n := startNode(t, bin)
			a, _ := join(t, n, grant{sub: "alice", room: "s"}, nil)
			n.cmd.Process.Signal(syscall.SIGTERM)
			m := a.waitType("going_away")
			if m.Reason != "shutdown" {
				t.Errorf("going_away reason %q, want shutdown", m.Reason)
			}
			a.expectClose(websocket.StatusGoingAway, "shutdown", "§8 shutdown")
		})
	})

	t.Run("9_unjoined_limit", func(t *testing.T) {
		n := startNode(t, bin, "--unjoined-per-address", "2")
		w1 := dial(t, n, "u1")
		dial(t, n, "u2")
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		c, resp, err := dialRaw(ctx, n, nil)
		if err == nil {
			c.CloseNow()
			t.Fatalf("§9: third unjoined WebSocket from one address accepted with --unjoined-per-address 2")
		}
		if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("§1/§9: over the per-address limit: %v %v, want HTTP 429", resp, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.Header.Get("Retry-After") == "" || len(body) == 0 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/") {
			t.Errorf("§9: 429 without Retry-After or text body: headers %v body %q", resp.Header, body)
		}
		// in all: HTTP 503 (§1, §9)
		n2 := startNode(t, bin, "--unjoined-connections", "1")
		dial(t, n2, "all1")
		if c, resp, err := dialRaw(ctx, n2, nil); err == nil {
			c.CloseNow()
			t.Errorf("§9: second unjoined WebSocket accepted with --unjoined-connections 1")
		} else if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("§9: over the node-wide unjoined limit: %v %v, want HTTP 503 with Retry-After", resp, err)
		}
		// joining frees the slot
		w1.send(joinMsg(token(t, grant{sub: "u1", room: "u"}), nil))
		w1.waitType("joined")
		c, _, err = dialRaw(ctx, n, nil)
		if err != nil {
			t.Errorf("§9: after one joined, a new unjoined connection is refused: %v", err)
		} else {
			c.CloseNow()
		}
	})

	t.Run("10_origin", func(t *testing.T) {
		try := func(n *node, origin string) int {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			c, resp, err := dialRaw(ctx, n, http.Header{"Origin": {origin}})
			if err == nil {
				c.CloseNow()
				return 101
			}
			if resp == nil {
				t.Fatalf("dial with origin %s: %v", origin, err)
			}
			return resp.StatusCode
		}
		if s := try(def, "https://evil.example"); s != http.StatusForbidden {
			t.Errorf("§1 page on another origin: HTTP %d, want 403", s)
		}
		if s := try(def, def.http); s != 101 {
			t.Errorf("§1 the node's own origin %s: HTTP %d, want accepted", def.http, s)
		}
		n := startNode(t, bin, "--allowed-origin", "app.example.com,*.corp.example,localhost:5173,https://secure.example.org")
		for origin, want := range map[string]int{
			"https://app.example.com":              101,
			"http://app.example.com":               101,
			"https://x.corp.example":               101,
			"http://localhost:5173":                101,
			"http://localhost:5174":                403,
			"https://secure.example.org":           101,
			"http://secure.example.org":            403,
			"https://evil.example":                 403,
			"https://app.example.com.evil.example": 403,
		} {
			if s := try(n, origin); s != want {
				t.Errorf("--allowed-origin app.example.com,*.corp.example,localhost:5173,https://secure.example.org: origin %s got HTTP %d, want %d", origin, s, want)
			}
		}
		// no Origin: the token admits it
		w := dial(t, n, "native")
		w.send(joinMsg(token(t, grant{sub: "n", room: "o"}), nil))
		w.waitType("joined")
	})
}
