package web_test

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserDevLinkTwoTabs is the promise of the README: run the gateway
// with no configuration, open the link it prints in two tabs, and the two
// are in an end-to-end encrypted call. It builds and runs cmd/sfu itself.
func TestBrowserDevLinkTwoTabs(t *testing.T) {
	b := newBrowser(t)
	bin := filepath.Join(t.TempDir(), "sfu")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sfu")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/sfu: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Ephemeral ports instead of 7780/7781, so the test runs beside a
	// developer's own node; otherwise exactly `go run ./cmd/sfu`.
	sfu := exec.CommandContext(ctx, bin, "--http", "127.0.0.1:0", "--media-port", "0")
	stdout, err := sfu.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sfu.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = sfu.Wait() }()

	linkRE := regexp.MustCompile(`^\s+(http://\S+/\?room=\S+&autojoin=1)\s*$`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := linkRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	var link string
	select {
	case link = <-found:
	case <-time.After(browserTimeout):
		t.Fatal("cmd/sfu printed no link to open")
	}
	t.Logf("cmd/sfu printed %s", link)

	tabs := []context.Context{b.tab(t, "tab1"), b.tab(t, "tab2")}
	for _, tab := range tabs {
		if err := chromedp.Do(tab, chromedp.Navigate(link)); err != nil {
			t.Fatal(err)
		}
	}
	for i, tab := range tabs {
		remote := `[...document.querySelectorAll('[data-identity]')].filter(e => !e.matches('[data-self], .self') && !e.textContent.includes('(you)'))`
		describe := `({tiles: [...document.querySelectorAll('[data-identity]')].map(e => [e.dataset.identity, e.dataset.e2eeState, (e.querySelector('video')||{}).videoWidth]),
			status: document.body.innerText.slice(0, 300)})`
		waitFor(t, tab, "tab "+string(rune('1'+i))+" sees the other tab's video, encrypted end to end",
			`(() => { const r = `+remote+`; return r.length === 1 && r[0].dataset.e2eeState === "encrypted" &&
				(r[0].querySelector('video') || {}).videoWidth > 0 })()`, describe)
	}
	var n1, n2 string
	if err := evaluate(tabs[0], `document.getElementById("safety-number").textContent.trim()`, &n1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, tabs[1], "both tabs show the same safety number",
		`document.getElementById("safety-number").textContent.trim() === `+jsString(n1), `document.getElementById("safety-number").textContent`)
	if err := evaluate(tabs[1], `document.getElementById("safety-number").textContent.trim()`, &n2); err != nil {
		t.Fatal(err)
	}
	t.Logf("two tabs of %s are in an encrypted call; safety number %q on both", link, n2)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	q := []byte{'"'}
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			q = append(q, '\\', byte(r))
		case r < 0x20:
			q = append(q, []byte(`\u00`)...)
			q = append(q, "0123456789abcdef"[r>>4], "0123456789abcdef"[r&15])
		default:
			q = append(q, string(r)...)
		}
	}
	return string(append(q, '"'))
}
