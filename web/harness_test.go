package web_test

// The browser tests' harness: a real Sotto node (SFU and signaling) on
// loopback serving the embedded page, and Debian's Chromium, headless,
// with a fake camera and microphone, driven by chromedp.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sotto-rtc/sotto/media"
	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/web"
)

// browserTimeout bounds every wait on a browser: generous, because three
// headless Chromiums encoding video share two loaded cores.
const browserTimeout = 90 * time.Second

func testLogger() *slog.Logger {
	if os.Getenv("SOTTO_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// webServer is a Sotto node on loopback with the web client at "/" and a
// development token endpoint, as `go run ./cmd/sfu` serves it.
type webServer struct {
	URL  string
	Node *media.SFU
	Sig  *signaling.Server

	key, secret string
}

const (
	testAPIKey    = "test-key"
	testAPISecret = "test-secret-test-secret-test-secret-0123"
)

// startWebServer starts a node; extra routes (test pages, test data) are
// added to its mux, and media options applied to the SFU's config.
func startWebServer(t *testing.T, extra map[string]http.Handler, mediaOpts ...func(*media.Config)) *webServer {
	t.Helper()
	log := testLogger()
	cfg := media.Config{ListenIP: "127.0.0.1", IncludeLoopback: true, Logger: log}
	for _, f := range mediaOpts {
		f(&cfg)
	}
	node, err := media.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signaling.NewServer(signaling.Config{
		Keys:   map[string]string{testAPIKey: testAPISecret},
		Logger: log,
		Limits: signaling.ServerLimits{JoinsPerSecondPerIP: 1000, JoinBurst: 1000},
	}, node)
	if err != nil {
		_ = node.Close()
		t.Fatal(err)
	}
	s := &webServer{Node: node, Sig: sig, key: testAPIKey, secret: testAPISecret}
	mux := http.NewServeMux()
	mux.Handle(signaling.Path, sig)
	mux.Handle("/", web.Handler(web.Options{DevToken: func(room, identity string) (string, error) {
		return s.Token(room, identity, true, true), nil
	}}))
	for pattern, h := range extra {
		mux.Handle(pattern, h)
	}
	hs := httptest.NewServer(mux)
	s.URL = hs.URL
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		_ = node.Close()
	})
	return s
}

// Token mints an access token.
func (s *webServer) Token(room, identity string, canPublish, canSubscribe bool) string {
	tok, err := signaling.NewToken(s.key, s.secret, signaling.Grant{
		Room: room, Identity: identity, CanPublish: canPublish, CanSubscribe: canSubscribe, TTL: time.Hour,
	})
	if err != nil {
		panic(fmt.Sprintf("token: %v", err))
	}
	return tok
}

// chromiumPath finds Debian's Chromium (CHROMIUM overrides). Missing, the
// test skips loudly — or fails under CI=true, where .ci/run installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: the browser tests need Debian's chromium (apt-get install chromium); .ci/run installs it")
	}
	t.Skip("SKIPPING BROWSER TEST: chromium is not installed (apt-get install chromium, or set CHROMIUM=/path/to/chromium)")
	return ""
}

// browser is one headless Chromium; each tab is a separate page, so a
// separate participant.
type browser struct {
	alloc context.Context
	root  context.Context
}

// newBrowser starts Chromium with a fake camera and microphone that need
// no permission prompt. It is closed when the test ends.
func newBrowser(t *testing.T, extraFlags ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	path := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// The node listens on loopback; Chromium gathers loopback
		// candidates only when asked, and must not hide host addresses
		// behind mDNS names the SFU cannot resolve.
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.WindowSize(1280, 800),
	}
	opts = append(opts, extraFlags...)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	root, cancelRoot := chromedp.NewContext(alloc)
	if err := chromedp.Do(root); err != nil {
		cancelRoot()
		cancelAlloc()
		t.Fatalf("start chromium %s: %v", path, err)
	}
	t.Cleanup(func() {
		cancelRoot()
		cancelAlloc()
	})
	return &browser{alloc: alloc, root: root}
}

// tab opens a new tab; its console output and uncaught exceptions go to
// the test log, prefixed with name.
func (b *browser) tab(t *testing.T, name string) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.root)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: open tab: %v", name, err)
	}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			t.Logf("[%s %s] %s", name, m.Type, m.Text)
		}
	}()
	// The logger must stop before the test ends (t.Logf after that
	// panics): cancel, then wait.
	t.Cleanup(func() { cancel(); <-done })
	return ctx
}

// evaluate runs expr in the page (awaiting a promise it returns) and
// decodes its JSON value into out (nil: ignore it).
func evaluate(ctx context.Context, expr string, out any) error {
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// waitFor waits until the page's boolean expression expr is true; the
// page polls it (chromedp.Poll), so no time passes in the test in
// between. On timeout it fails with what describe (a JS expression) says.
func waitFor(t *testing.T, ctx context.Context, what, expr, describe string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(browserTimeout)))
	if err != nil {
		var state any
		if describe != "" {
			_ = evaluate(ctx, describe, &state)
		}
		t.Fatalf("%s: not within %v (%v); state: %v", what, browserTimeout, err, state)
	}
}

// repoRoot is the directory holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// artifactDir is where tests leave files for a person to look at (CI
// keeps them; they are never committed): $SOTTO_ARTIFACTS, or
// artifacts/ at the repository root.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SOTTO_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
