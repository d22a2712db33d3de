package web_test

// The page's waiting card and the SDK's list of who waits
// (call.admissions()): the node may show a newcomer before the SDK has
// taken their announcement, and the page then draws the card at once.

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// alice (the page) is alone in the call, a member. Her SDK is kept busy
// (its trust queue held) when bob (a Go client) joins: the page shows his
// card before the SDK lists him as waiting. Admit and Refuse stay
// disabled then, and a click on them does nothing (before, a quick click
// showed "Could not admit bob: e2ee: no such participant waiting").
// Once the SDK lists him (its "waiting" event), they are enabled, and
// alice admits him with a click.
func TestBrowserAdmitWaitsForTheSDK(t *testing.T) {
	srv := startWebServer(t, nil)
	const room = "admit-race"
	alice, _ := openKnownTab(t, newBrowser(t), srv.URL, room, "alice")
	alice.waitFor(t, "alone, alice is a member at once",
		`window.sotto.state.selfAdmission.state === "member" && window.sotto.call.rosterStatus().admitted`, admissionDescribeJS)

	alice.eval(t, `(() => { window.testHeld = new Promise((r) => { window.testRelease = r; });
		window.sotto.call.e2ee.runTrust(() => window.testHeld); return true; })()`, nil)
	knownGoPeer(t, srv, srv.URL, room, "bob", nil, nil)
	alice.waitFor(t, "bob's card is up before the SDK lists him, Admit and Refuse disabled",
		`(() => { const c = document.querySelector('[data-candidate="bob"]');
			return !!c && c.offsetParent !== null && c.dataset.admissionState === "waiting" &&
				c.querySelector('[data-admit="bob"]').disabled && c.querySelector('[data-refuse="bob"]').disabled &&
				!window.sotto.call.admissions().some(a => a.identity === "bob") && !window.sotto.state.admissions.bob; })()`,
		admissionDescribeJS)
	// A person clicking them with the mouse decides nothing and sees no
	// error.
	for _, sel := range []string{`[data-admit="bob"]`, `[data-refuse="bob"]`} {
		if err := chromedp.Do(alice.ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
			t.Fatalf("click %s: %v", sel, err)
		}
	}
	var after struct {
		Error string
		Busy  bool
	}
	alice.eval(t, `(async () => { await new Promise((r) => setTimeout(r, 300)); const c = document.querySelector('[data-candidate="bob"]');
		const e = c.querySelector(".admission-error"); return {error: e.hidden ? "" : e.textContent, busy: c.dataset.busy === "true"}; })()`, &after)
	if after.Error != "" || after.Busy {
		t.Fatalf("a click on bob's card before the SDK listed him: %+v", after)
	}

	alice.eval(t, `window.testRelease(), true`, nil)
	alice.waitFor(t, "once the SDK lists bob waiting, Admit and Refuse are enabled",
		`(() => { const c = document.querySelector('[data-candidate="bob"]');
			return !!c && !c.querySelector('[data-admit="bob"]').disabled && !c.querySelector('[data-refuse="bob"]').disabled &&
				window.sotto.call.admissions().some(a => a.identity === "bob" && a.state === "waiting"); })()`,
		admissionDescribeJS)
	alice.admit(t, "bob")
}
