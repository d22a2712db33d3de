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
	t.Cleanup(cancel)
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
	// Stopped in a cleanup registered before the tabs, so after they close:
	// a page must not see its server go away (and report it) before the
	// test has judged the errors it reported.
	t.Cleanup(func() { cancel(); _ = sfu.Wait() })

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
	// Whichever tab joined second waits; the first admits it with one click.
	admitWhoeverWaits(t, map[string]context.Context{"tab1": tabs[0], "tab2": tabs[1]})
	for i, tab := range tabs {
		remote := `[...document.querySelectorAll('[data-identity]')].filter(e => !e.matches('[data-self], .self') && !e.textContent.includes('(you)'))`
		describe := `({tiles: [...document.querySelectorAll('[data-identity]')].map(e => [e.dataset.identity, e.dataset.e2eeState, (e.querySelector('video')||{}).videoWidth]),
			status: document.body.innerText.slice(0, 300)})`
		waitFor(t, tab, "tab "+string(rune('1'+i))+" sees the other tab's video, encrypted end to end",
			`(() => { const r = `+remote+`; return r.length === 1 && r[0].dataset.e2eeState === "encrypted" &&
				(r[0].querySelector('video') || {}).videoWidth > 0 })()`, describe)
	}
	// Each tab shows a safety number over both guests (its "…" placeholder
	// until then), and the two agree. A page can show the number of a
	// moment ago while key management catches up, so tab 2 is waited on
	// until it shows tab 1's.
	safety := `document.getElementById("safety-number")`
	numbers := map[string]string{}
	for i, tab := range tabs {
		name := "tab" + string(rune('1'+i))
		waitFor(t, tab, name+" shows a safety number over both tabs",
			`(() => { const e = `+safety+`; return `+safetyNumberJS+`.test(e.textContent.trim()) && (e.dataset.participants || "").split(",").length === 2 })()`,
			`({text: `+safety+`.textContent, participants: `+safety+`.dataset.participants})`)
		var n string
		if err := evaluate(tab, safety+`.textContent.trim()`, &n); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			waitFor(t, tab, "both tabs show the same safety number",
				safety+`.textContent.trim() === `+jsString(numbers["tab1"]), safety+`.textContent`)
			if err := evaluate(tab, safety+`.textContent.trim()`, &n); err != nil {
				t.Fatal(err)
			}
		}
		numbers[name] = n
	}
	checkSameSafetyNumbers(t, "the two tabs", numbers)
	t.Logf("two tabs of %s are in an encrypted call; safety number %q on both", link, numbers["tab2"])
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
