package web_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserPageErrorsFailTests checks the harness's guard on the page:
// an uncaught exception, an unhandled promise rejection, console.error, a
// failed request and an error in a worker (such as the E2EE worker; the
// last two come through the browser's log) are each caught and fail the
// test, unless the test declared it; and a declared error that never
// comes fails the test as well.
func TestBrowserPageErrorsFailTests(t *testing.T) {
	srv := startWebServer(t, nil)
	b := newBrowser(t)
	ctx := b.tab(t, "errors")
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	pe := ctx.Value(pageErrorsKey{}).(*pageErrors)
	if p := pe.problems(); len(p) != 0 {
		t.Fatalf("the call page reports errors by itself: %v", p)
	}

	if err := evaluate(ctx, `(() => {
		setTimeout(() => { throw new Error("self-test: an uncaught exception"); }, 0);
		Promise.reject(new Error("self-test: an unhandled rejection"));
		console.error("self-test: a console error");
		fetch("/self-test-missing-file").catch(() => {});
		const worker = 'setTimeout(() => { throw new Error("self-test: a worker\'s uncaught exception"); }, 0);';
		window.selfTestWorker = new Worker(URL.createObjectURL(new Blob([worker], {type: "text/javascript"})));
		return true;
	})()`, nil); err != nil {
		t.Fatal(err)
	}
	const provoked = 5
	deadline := time.Now().Add(15 * time.Second) // they come at once
	for pe.count() < provoked {
		if time.Now().After(deadline) {
			t.Fatalf("the harness caught %d of the %d errors the page made: %v", pe.count(), provoked, pe.problems())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Undeclared, each is a failure, named with its kind.
	p := pe.problems()
	if len(p) != 1 || !strings.Contains(p[0], "reported 5 error(s) the test does not expect") {
		t.Fatalf("the undeclared errors: %q", p)
	}
	lines := strings.Split(p[0], "\n")[1:]
	for _, want := range [][2]string{
		{"uncaught exception", "Uncaught Error: self-test: an uncaught exception"},
		{"uncaught exception", "Uncaught (in promise) Error: self-test: an unhandled rejection"},
		{"console.error", "self-test: a console error"},
		{"browser log (network) error at " + srv.URL + "/self-test-missing-file", "404"},
		{"browser log (worker) error at blob:", "Uncaught Error: self-test: a worker's uncaught exception"},
	} {
		found := false
		for _, l := range lines {
			found = found || strings.HasPrefix(strings.TrimSpace(l), want[0]) && strings.Contains(l, want[1])
		}
		if !found {
			t.Errorf("the failure has no line saying %s: ...%s:\n%s", want[0], want[1], p[0])
		}
	}

	// A declared error that never comes fails the test too.
	never := &pageErrors{name: "quiet", expected: []*expectedError{{substr: "an error that never comes", why: "self-test"}}}
	if p := never.problems(); len(p) != 1 || !strings.Contains(p[0], `never reported the error the test expects: "an error that never comes"`) {
		t.Errorf("a declared error that never came: %q", p)
	}
	// An expectation must name its error.
	for _, substr := range []string{"", "Error", "           x"} {
		if checkExpectation(substr, "self-test") == nil {
			t.Errorf("expectPageError takes %q, which does not name one error", substr)
		}
	}
	if checkExpectation("self-test: an uncaught exception", "") == nil {
		t.Error("expectPageError takes an expectation without a reason")
	}

	// Declared, as a test that provokes them does, they pass.
	for _, substr := range []string{
		"self-test: an uncaught exception",
		"self-test: an unhandled rejection",
		"self-test: a console error",
		"/self-test-missing-file",
		"self-test: a worker's uncaught exception",
	} {
		expectPageError(t, ctx, substr, "this test makes the page report it")
	}
	if p := pe.problems(); len(p) != 0 {
		t.Errorf("with every error declared, the page still fails the test: %v", p)
	}
}
