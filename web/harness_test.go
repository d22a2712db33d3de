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
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sotto-rtc/sotto/internal/testneeds"
	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/signaling/wire"
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
	Node *sfu.SFU
	Sig  *signaling.Server

	key, secret string
}

const (
	testAPIKey    = "test-key"
	testAPISecret = "test-secret-test-secret-test-secret-0123"
)

// startWebServer starts a node; extra routes (test pages, test data) are
// added to its mux, and media options applied to the SFU's config.
func startWebServer(t *testing.T, extra map[string]http.Handler, mediaOpts ...func(*sfu.Config)) *webServer {
	t.Helper()
	log := testLogger()
	cfg := sfu.Config{ListenIP: "127.0.0.1", IncludeLoopback: true, Logger: log}
	for _, f := range mediaOpts {
		f(&cfg)
	}
	node, err := sfu.New(cfg)
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
	mux.Handle(wire.Path, sig)
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
	tok, err := wire.NewToken(s.key, s.secret, wire.Grant{
		Room: room, Identity: identity, CanPublish: canPublish, CanSubscribe: canSubscribe, TTL: time.Hour,
	})
	if err != nil {
		panic(fmt.Sprintf("token: %v", err))
	}
	return tok
}

// chromiumPath finds Debian's Chromium (CHROMIUM overrides). Missing, the
// test fails naming the package to install, unless the user opted out of
// the browser tests (SOTTO_TEST_SKIP=browser; see internal/testneeds).
func chromiumPath(t *testing.T) string {
	t.Helper()
	return testneeds.Program(t, testneeds.Browser, "chromium", os.Getenv("CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser")
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
// the test log, prefixed with name. An error the page reports
// (console.error, an uncaught exception or unhandled rejection, an entry
// of level error in the browser's log, such as a failed request or an
// error in a worker, the E2EE worker among them) fails
// the test when it ends, unless the test declared it with expectPageError.
// No noise of Chromium's own is let through: the suite sees none (the
// call page names its icon, data:, so no favicon request 404s; background
// networking is off). Should some appear, allow it by its exact text here,
// with the reason, rather than loosening the check.
func (b *browser) tab(t *testing.T, name string) context.Context {
	t.Helper()
	return b.tabIn(t, b.root, name)
}

// person opens a tab in a browser profile of its own (a new browser
// context: its own IndexedDB, so its own identity key and known people),
// as another person's browser would be. Tabs of one profile share the
// identity key, and a member cannot admit its own key.
func (b *browser) person(t *testing.T, name string) context.Context {
	t.Helper()
	return b.tabIn(t, b.root, name, chromedp.WithNewBrowserContext())
}

// beside opens another tab in the profile of the tab ctx: the same
// person, in another tab of the same browser.
func (b *browser) beside(t *testing.T, ctx context.Context, name string) context.Context {
	t.Helper()
	return b.tabIn(t, ctx, name)
}

// tabIn opens a tab as a child of parent (the browser, or a tab whose
// profile it shares), as tab describes.
func (b *browser) tabIn(t *testing.T, parent context.Context, name string, opts ...chromedp.ContextOption) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent, opts...)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: open tab: %v", name, err)
	}
	pe := &pageErrors{name: name}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			t.Logf("[%s %s] %s", name, m.Type, m.Text)
			if m.Type == chromedp.ConsoleError || m.IsException() {
				pe.add(m)
			}
		}
	}()
	// The logger must stop before the test ends (t.Logf after that
	// panics): cancel, then wait; then what the page reported is judged.
	t.Cleanup(func() {
		cancel()
		<-done
		pe.check(t)
	})
	return context.WithValue(ctx, pageErrorsKey{}, pe)
}

// pageErrorsKey finds a tab's pageErrors in its context.
type pageErrorsKey struct{}

// pageErrors is what one tab reported as an error, and what its test said
// it expects.
type pageErrors struct {
	name string

	mu       sync.Mutex
	got      []chromedp.ConsoleMessage
	expected []*expectedError
}

// expectedError is an error a test provokes on purpose: a message
// containing substr, of which the page must report at least one.
type expectedError struct {
	substr, why string
}

// expectPageError declares that the tab of ctx will report an error whose
// text (or URL) contains substr, because of what the test does (why, for
// the reader). Every message containing substr is then allowed, and at
// least one must come: a declared error that never happens fails the test
// too, so the declaration cannot outlive the behaviour it describes.
// substr must name the error, so it cannot allow everything.
func expectPageError(t *testing.T, ctx context.Context, substr, why string) {
	t.Helper()
	pe, _ := ctx.Value(pageErrorsKey{}).(*pageErrors)
	if pe == nil {
		t.Fatal("expectPageError: the context is not a tab's (browser.tab)")
	}
	if err := checkExpectation(substr, why); err != nil {
		t.Fatal(err)
	}
	pe.mu.Lock()
	defer pe.mu.Unlock()
	pe.expected = append(pe.expected, &expectedError{substr: substr, why: why})
}

// minExpectedLen is the shortest substring expectPageError takes: enough
// to name one error ("token_malformed", "Uncaught Error: "), too much to
// match whatever comes.
const minExpectedLen = 12

func checkExpectation(substr, why string) error {
	if len(strings.TrimSpace(substr)) < minExpectedLen || strings.TrimSpace(why) == "" {
		return fmt.Errorf("expectPageError(%q, %q): name the error (%d characters at least) and say why it is expected",
			substr, why, minExpectedLen)
	}
	return nil
}

func (pe *pageErrors) add(m chromedp.ConsoleMessage) {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	pe.got = append(pe.got, m)
}

// count is how many errors the page has reported so far.
func (pe *pageErrors) count() int {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	return len(pe.got)
}

// describePageMessage is how a message reads in a failure: its kind,
// where it came from, and its text.
func describePageMessage(m chromedp.ConsoleMessage) string {
	kind := "console.error"
	switch {
	case m.IsException():
		kind = "uncaught exception"
	case m.Source != "":
		kind = "browser log (" + m.Source + ") error"
	}
	where := ""
	if m.URL != "" {
		where = fmt.Sprintf(" at %s:%d", m.URL, m.Line+1)
	}
	return fmt.Sprintf("%s%s: %s", kind, where, m.Text)
}

// problems lists what fails the test: every error the page reported that
// the test did not expect, and every expected error that did not come.
func (pe *pageErrors) problems() []string {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	seen := make([]int, len(pe.expected))
	var unexpected []string
	for _, m := range pe.got {
		text := m.Text + " " + m.URL
		matched := false
		for i, e := range pe.expected {
			if strings.Contains(text, e.substr) {
				seen[i]++
				matched = true
			}
		}
		if !matched {
			unexpected = append(unexpected, describePageMessage(m))
		}
	}
	var out []string
	if len(unexpected) > 0 {
		out = append(out, fmt.Sprintf("page %q reported %d error(s) the test does not expect (declare one the test provokes with expectPageError):\n  %s",
			pe.name, len(unexpected), strings.Join(unexpected, "\n  ")))
	}
	for i, e := range pe.expected {
		if seen[i] == 0 {
			out = append(out, fmt.Sprintf("page %q never reported the error the test expects: %q (%s)", pe.name, e.substr, e.why))
		}
	}
	return out
}

// check fails t with the page's problems.
func (pe *pageErrors) check(t *testing.T) {
	t.Helper()
	for _, p := range pe.problems() {
		t.Error(p)
	}
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
