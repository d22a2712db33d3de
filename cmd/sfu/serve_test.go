package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"

	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// syncBuffer is a bytes.Buffer that run may write while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// node is a run() in progress.
type node struct {
	base           string // "http://127.0.0.1:PORT"
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	exit           chan int
}

// startNode runs the command in-process with args and waits until it
// prints where it listens. The node is stopped at the end of the test.
// Its drain grace is 0 unless args set it.
func startNode(t *testing.T, args []string, env map[string]string) *node {
	t.Helper()
	args = append([]string{"--drain-grace", "0"}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, exit: make(chan int, 1)}
	go func() { n.exit <- run(ctx, args, envMap(env), n.stdout, n.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-n.exit:
		case <-time.After(30 * time.Second):
			t.Error("node did not stop")
		}
	})
	listening := regexp.MustCompile(`listening on (https?://\S+)`)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := listening.FindStringSubmatch(n.stdout.String()); m != nil {
			n.base = m[1]
			return n
		}
		select {
		case code := <-n.exit:
			t.Fatalf("run exited %d before listening; stderr:\n%s", code, n.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("node never printed its address; stdout:\n%s\nstderr:\n%s", n.stdout.String(), n.stderr.String())
	return nil
}

// get fetches base+path and returns the status and body.
func get(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// TestServe runs the gateway as `go run ./cmd/sfu` would, with only the
// ports moved so that parallel test runs do not collide: development
// credentials, every endpoint, a real join, and a graceful shutdown.
func TestServe(t *testing.T) {
	const drain = 5 * time.Second
	n := startNode(t, []string{"--http", "127.0.0.1:0", "--media-port", "0", "--drain-timeout", drain.String()}, nil)
	client := &http.Client{Timeout: 5 * time.Second}

	for _, tc := range []struct {
		path       string
		wantStatus int
		wantBody   []string
		wantType   string
	}{
		{"/healthz", http.StatusOK, []string{"ok"}, "text/plain"},
		{"/readyz", http.StatusOK, []string{"ready"}, "text/plain"},
		{"/metrics", http.StatusOK, []string{"process_cpu_seconds_total", "go_goroutines", "sotto_participants", "sotto_tracks"}, ""},
		{"/", http.StatusOK, []string{"<html", "Sotto"}, "text/html"},
		{"/app.js", http.StatusOK, nil, "text/javascript"},
		{"/sdk/index.js", http.StatusOK, nil, "text/javascript"},
		{"/dev/token?room=demo&identity=alice", http.StatusOK, []string{`"token":"ey`}, "application/json"},
		{"/dev/token?room=demo&identity=" + url.QueryEscape("<script>"), http.StatusBadRequest, []string{"identity"}, "application/json"},
		{"/nope", http.StatusNotFound, nil, ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := client.Get(n.base + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			for _, w := range tc.wantBody {
				if !strings.Contains(string(body), w) {
					t.Errorf("body does not contain %q", w)
				}
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.wantType) {
				t.Errorf("Content-Type %q, want %q", ct, tc.wantType)
			}
		})
	}

	// The banner's development credentials are consistent, and the token
	// joins room "demo" on this very node.
	out := n.stdout.String()
	key := regexp.MustCompile(`API key:\s+(dev[0-9a-f]{8})\n`).FindStringSubmatch(out)
	secret := regexp.MustCompile(`API secret:\s+([0-9a-f]{64})\n`).FindStringSubmatch(out)
	token := regexp.MustCompile(`(?m)^(eyJ[\w-]+\.[\w-]+\.[\w-]+)$`).FindStringSubmatch(out)
	if key == nil || secret == nil || token == nil {
		t.Fatalf("banner lacks the development key, secret or token:\n%s", out)
	}
	if !strings.Contains(out, "ws://"+strings.TrimPrefix(n.base, "http://")+wire.Path) {
		t.Errorf("banner lacks the signaling URL:\n%s", out)
	}
	v, err := signaling.NewVerifier(map[string]string{key[1]: secret[1]}, 0)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify(token[1])
	if err != nil {
		t.Fatalf("printed token does not verify: %v", err)
	}
	if claims.Room != devRoom || !strings.HasPrefix(claims.Subject, "guest-") || !claims.CanPublish || !claims.CanSubscribe {
		t.Errorf("printed token claims %+v", claims)
	}
	if ttl := time.Until(claims.ExpiresAt.Time); ttl < devTokenTTL-time.Minute || ttl > devTokenTTL {
		t.Errorf("printed token expires in %v, want %v", ttl, devTokenTTL)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.base, "http")+wire.Path, nil)
	if err != nil {
		t.Fatalf("dial signaling: %v", err)
	}
	defer ws.CloseNow()
	join, _ := json.Marshal(wire.Join{Type: wire.TypeJoin, Protocol: wire.ProtocolVersion, Token: token[1]})
	if err := ws.Write(ctx, websocket.MessageText, join); err != nil {
		t.Fatal(err)
	}
	if typ, raw := readMessage(ctx, t, ws); typ != wire.TypeJoined {
		t.Fatalf("answer to join is %s: %s", typ, raw)
	}

	// SIGTERM: the participant is told going_away, the node exits 0 within
	// the drain timeout.
	stopped := time.Now()
	n.cancel()
	for {
		typ, raw := readMessage(ctx, t, ws)
		if typ == "" {
			t.Fatal("connection closed without going_away")
		}
		if typ == wire.TypeGoingAway {
			var ga wire.GoingAway
			if err := json.Unmarshal(raw, &ga); err != nil || ga.Reason != wire.ReasonShutdown {
				t.Errorf("going_away = %s, want reason %q", raw, wire.ReasonShutdown)
			}
			break
		}
	}
	// Read on, as a client does, so that the close handshake completes.
	if _, raw, err := ws.Read(ctx); err == nil {
		t.Errorf("message after going_away: %s", raw)
	} else if got := websocket.CloseStatus(err); got != wire.CloseGoingAway {
		t.Errorf("closed with %v (%v), want status %d", got, err, wire.CloseGoingAway)
	}
	select {
	case code := <-n.exit:
		n.exit <- code // for the cleanup
		if code != exitOK {
			t.Errorf("exit %d after shutdown, want 0; stderr:\n%s", code, n.stderr.String())
		}
	case <-time.After(drain + 2*time.Second):
		t.Fatalf("not stopped %v after the signal", drain+2*time.Second)
	}
	t.Logf("stopped in %v", time.Since(stopped))
	for _, step := range []string{"readiness now fails", "going_away", "stopping the HTTP server", "closing the media plane", "shutdown: done"} {
		if !strings.Contains(n.stderr.String(), step) {
			t.Errorf("shutdown step %q not logged", step)
		}
	}
	if _, err := client.Get(n.base + "/healthz"); err == nil {
		t.Error("HTTP still served after shutdown")
	}
}

// readMessage reads one signaling message and returns its type; "" when
// the connection ended.
func readMessage(ctx context.Context, t *testing.T, ws *websocket.Conn) (string, []byte) {
	t.Helper()
	_, raw, err := ws.Read(ctx)
	if err != nil {
		if websocket.CloseStatus(err) != -1 || errors.Is(err, io.EOF) {
			return "", nil
		}
		t.Fatalf("read: %v", err)
	}
	var env wire.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("server sent non-JSON %q", raw)
	}
	return env.Type, raw
}

// TestReadyzWhileDraining checks the readiness flip that a load balancer
// relies on: readiness only, health stays good.
func TestReadyzWhileDraining(t *testing.T) {
	cfg := defaultConfig()
	cfg.HTTP, cfg.MediaPort = "127.0.0.1:0", 0
	g, err := newGateway(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	g.start()
	base := "http://" + g.ln.Addr().String()
	client := &http.Client{Timeout: 5 * time.Second}
	for _, step := range []struct {
		do                    func()
		wantReady, wantHealth int
	}{
		{func() {}, http.StatusOK, http.StatusOK},
		{g.markDraining, http.StatusServiceUnavailable, http.StatusOK},
	} {
		step.do()
		if got, _ := get(t, client, base+"/readyz"); got != step.wantReady {
			t.Errorf("/readyz %d, want %d", got, step.wantReady)
		}
		if got, _ := get(t, client, base+"/healthz"); got != step.wantHealth {
			t.Errorf("/healthz %d, want %d", got, step.wantHealth)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// TestDrainGrace: on a signal /readyz fails at once, but calls go on and
// joins are still taken for --drain-grace, so a load balancer sees the
// node go before any call is ended; only then comes going_away.
func TestDrainGrace(t *testing.T) {
	const grace = 3 * time.Second
	n := startNode(t, []string{"--http", "127.0.0.1:0", "--media-port", "0", "--drain-grace", grace.String()}, nil)
	client := &http.Client{Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	join := func(identity string) *websocket.Conn {
		t.Helper()
		_, body := get(t, client, n.base+"/dev/token?room=demo&identity="+identity)
		var tok struct{ Token string }
		if err := json.Unmarshal([]byte(body), &tok); err != nil || tok.Token == "" {
			t.Fatalf("dev token: %q", body)
		}
		ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.base, "http")+wire.Path, nil)
		if err != nil {
			t.Fatalf("dial signaling: %v", err)
		}
		t.Cleanup(func() { ws.CloseNow() })
		msg, _ := json.Marshal(wire.Join{Type: wire.TypeJoin, Protocol: wire.ProtocolVersion, Token: tok.Token})
		if err := ws.Write(ctx, websocket.MessageText, msg); err != nil {
			t.Fatal(err)
		}
		if typ, raw := readMessage(ctx, t, ws); typ != wire.TypeJoined {
			t.Fatalf("answer to join is %s: %s", typ, raw)
		}
		return ws
	}
	alice := join("alice")

	signalled := time.Now()
	n.cancel()
	for {
		if code, _ := get(t, client, n.base+"/readyz"); code == http.StatusServiceUnavailable {
			break
		}
		if time.Since(signalled) > grace {
			t.Fatal("/readyz never failed during the drain grace")
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	// A caller the load balancer sent before it noticed still gets in, and
	// alice's call goes on: her ping is answered, not with going_away.
	join("bob")
	ping, _ := json.Marshal(wire.Ping{Type: wire.TypePing, ID: "still-there"})
	if err := alice.Write(ctx, websocket.MessageText, ping); err != nil {
		t.Fatal(err)
	}
	for {
		typ, raw := readMessage(ctx, t, alice)
		if typ == wire.TypePong {
			break
		}
		if typ == "" || typ == wire.TypeGoingAway {
			t.Fatalf("during the drain grace (%v after the signal) alice got %q: %s", time.Since(signalled), typ, raw)
		}
	}
	if elapsed := time.Since(signalled); elapsed >= grace {
		t.Fatalf("the checks took %v, longer than the grace; nothing was shown", elapsed)
	}

	// Then the drain proper: going_away, not before the grace is over.
	for {
		typ, _ := readMessage(ctx, t, alice)
		if typ == "" {
			t.Fatal("connection closed without going_away")
		}
		if typ == wire.TypeGoingAway {
			break
		}
	}
	if elapsed := time.Since(signalled); elapsed < grace {
		t.Errorf("going_away %v after the signal, before the %v grace ended", elapsed, grace)
	}
	select {
	case code := <-n.exit:
		n.exit <- code // for the cleanup
		if code != exitOK {
			t.Errorf("exit %d after shutdown, want 0; stderr:\n%s", code, n.stderr.String())
		}
	case <-ctx.Done():
		t.Fatal("node did not stop after the grace")
	}
	if !strings.Contains(n.stderr.String(), "serving on for the drain grace") {
		t.Errorf("the grace was not logged:\n%s", n.stderr.String())
	}
}

// TestAllowedOrigin: --allowed-origin takes a page's host[:port] or
// scheme://host[:port]; a page it does not admit gets 403, and the node
// logs its origin once with the flag that would admit it.
func TestAllowedOrigin(t *testing.T) {
	n := startNode(t, []string{"--http", "127.0.0.1:0", "--media-port", "0",
		"--allowed-origin", "app.example:5173,https://secure.example", "--allowed-origin", "https://slash.example/"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dial := func(origin string) int {
		t.Helper()
		ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.base, "http")+wire.Path,
			&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
		if err == nil {
			ws.CloseNow()
			return http.StatusSwitchingProtocols
		}
		if resp == nil {
			t.Fatalf("dial with Origin %s: %v", origin, err)
		}
		return resp.StatusCode
	}
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"http://app.example:5173", http.StatusSwitchingProtocols},
		{"https://app.example:5173", http.StatusSwitchingProtocols},
		{"https://secure.example", http.StatusSwitchingProtocols},
		{"https://slash.example", http.StatusSwitchingProtocols},
		{"http://secure.example", http.StatusForbidden},
		{"http://app.example", http.StatusForbidden},
		{"http://app.example", http.StatusForbidden},
		{"https://last.example", http.StatusForbidden},
	} {
		if got := dial(tc.origin); got != tc.want {
			t.Errorf("Origin %s: status %d, want %d", tc.origin, got, tc.want)
		}
	}
	// The 403 reaches the client before the node logs it.
	for !strings.Contains(n.stderr.String(), "--allowed-origin last.example") {
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("refused origin not logged:\n%s", n.stderr.String())
		}
	}
	logs := n.stderr.String()
	if got := strings.Count(logs, "--allowed-origin app.example)"); got != 1 {
		t.Errorf("http://app.example logged %d times, want once:\n%s", got, logs)
	}
	if !strings.Contains(logs, "--allowed-origin secure.example") {
		t.Errorf("http://secure.example not logged:\n%s", logs)
	}
}

func TestPortInUse(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	udpPort := strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port)

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"http", []string{"--http", tcp.Addr().String(), "--media-port", "0"}, "http " + tcp.Addr().String() + ": address already in use — pick another with --http"},
		{"media", []string{"--http", "127.0.0.1:0", "--media-port", udpPort}, "media port " + udpPort + ": address already in use — pick another with --media-port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			code := run(context.Background(), tc.args, envMap(nil), &stdout, &stderr)
			if code != exitFailure {
				t.Errorf("exit %d, want %d", code, exitFailure)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tc.want)
			}
		})
	}
}

func TestServeTLS(t *testing.T) {
	certFile, keyFile, pool := selfSignedCert(t)
	n := startNode(t, []string{"--http", "127.0.0.1:0", "--media-port", "0", "--tls-cert", certFile, "--tls-key", keyFile,
		"--api-key", "k1", "--api-secret", testSecret}, nil)
	if !strings.HasPrefix(n.base, "https://") {
		t.Fatalf("listening on %s, want https", n.base)
	}
	if strings.Contains(n.stdout.String(), "Development mode") || strings.Contains(n.stdout.String(), testSecret) {
		t.Errorf("banner shows credentials although keys are configured:\n%s", n.stdout.String())
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if code, body := get(t, client, n.base+"/healthz"); code != http.StatusOK || !strings.Contains(body, "ok") {
		t.Errorf("/healthz over TLS: %d %q", code, body)
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key, and
// returns their paths and a pool trusting the certificate.
func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sotto test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func writePEM(t *testing.T, name, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMediaThroughNode sends audio from one SDK client to another through
// a node with the command's default media settings (every interface,
// loopback candidates, ICE-TCP), as a developer running `go run ./cmd/sfu`
// and the SDK on one machine would.
func TestMediaThroughNode(t *testing.T) {
	n := startNode(t, []string{"--http", "127.0.0.1:0", "--media-port", "0"}, nil)
	out := n.stdout.String()
	key := regexp.MustCompile(`API key:\s+(\S+)\n`).FindStringSubmatch(out)
	secret := regexp.MustCompile(`API secret:\s+(\S+)\n`).FindStringSubmatch(out)
	if key == nil || secret == nil {
		t.Fatalf("no development key in the banner:\n%s", out)
	}
	token := func(identity string) string {
		tok, err := wire.NewToken(key[1], secret[1], wire.Grant{
			Room: devRoom, Identity: identity, CanPublish: true, CanSubscribe: true, TTL: time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)
	tracks := make(chan *client.RemoteTrack, 1)
	bob, err := client.Connect(ctx, n.base, client.Options{
		E2EE:   client.E2EEOptions{Admission: client.AdmitAll},
		Token:  token("bob"),
		Logger: quiet,
		Handlers: client.Handlers{Track: func(rt *client.RemoteTrack) {
			select {
			case tracks <- rt:
			default:
			}
		}},
	})
	if err != nil {
		t.Fatalf("bob: %v", err)
	}
	defer bob.Close()
	alice, err := client.Connect(ctx, n.base, client.Options{Token: token("alice"), Logger: quiet, E2EE: client.E2EEOptions{Admission: client.AdmitAll}})
	if err != nil {
		t.Fatalf("alice: %v", err)
	}
	defer alice.Close()

	mic, err := alice.PublishSample(ctx, "mic", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			_ = mic.WriteSample(pionmedia.Sample{Data: fmt.Appendf(nil, "sotto-%d", i), Duration: 20 * time.Millisecond})
		}
	}()
	defer func() { close(stop); <-sent }()

	select {
	case rt := <-tracks:
		if rt.Participant.Identity != "alice" || rt.Info.Kind != wire.KindAudio {
			t.Errorf("received %s from %s, want audio from alice", rt.Info.Kind, rt.Participant.Identity)
		}
		// End-to-end encryption is on by default: the frame arrives
		// encrypted and the SDK decrypts it.
		f, err := rt.ReadFrame()
		if err != nil {
			t.Fatalf("read frame: %v", err)
		}
		if !f.Encrypted || !bytes.HasPrefix(f.Data, []byte("sotto-")) {
			t.Errorf("frame %q (end-to-end encrypted: %v), want what alice sent, encrypted", f.Data, f.Encrypted)
		}
	case <-ctx.Done():
		t.Fatalf("bob received no track: %v; node log:\n%s", ctx.Err(), n.stderr.String())
	}
}

// TestDevTokenOnlyInDevelopment: a node with configured keys serves the
// page but mints no tokens; only development mode does.
func TestDevTokenOnlyInDevelopment(t *testing.T) {
	n := startNode(t, []string{"--http", "127.0.0.1:0", "--media-port", "0"}, map[string]string{
		"SOTTO_API_KEY":    "prod",
		"SOTTO_API_SECRET": strings.Repeat("s", 32),
	})
	client := &http.Client{Timeout: 5 * time.Second}
	for path, want := range map[string]int{
		"/":                                   http.StatusOK,
		"/dev/token?room=demo&identity=alice": http.StatusNotFound,
	} {
		resp, err := client.Get(n.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: status %d, want %d", path, resp.StatusCode, want)
		}
	}
	if strings.Contains(n.stdout.String(), "autojoin") {
		t.Error("the banner offers a self-joining link although tokens are not minted")
	}
}
