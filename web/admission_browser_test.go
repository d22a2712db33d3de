package web_test

// Admission by members on the call page (docs/E2EE.md, "Admission and
// rosters"): a newcomer hears and sees nothing, and gets no media key,
// until a member clicks Admit; a refused one is shown as refused to
// everyone and never as a participant.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/sotto-rtc/sotto/internal/hostilenode"
)

// waitingText is what every member's page says of a newcomer.
func waitingText(name string) string {
	return name + " is waiting to join — they hear and see nothing until admitted"
}

// keysReceivedJS is how many media keys the page's key management has
// opened from others (E2EE.stats).
const keysReceivedJS = `window.sotto.call.e2ee.stats().keysReceived`

// TestBrowserAdmission: alice alone is a member at once. bob joins: alice
// sees a card (not a tile) saying bob is waiting, bob sees that he waits,
// and bob gets no key while alice's encrypted media reaches him. alice
// clicks Admit: both show normal tiles and the media decrypts both ways.
// carol joins and alice refuses her: every page shows carol refused, and
// none ever draws her a tile or plays her media, though it arrives.
// dave joins while carol is refused: carol sees him waiting but cannot
// admit him (her buttons are disabled); alice can.
func TestBrowserAdmission(t *testing.T) {
	srv := startWebServer(t, nil)
	b := newBrowser(t)
	const room = "admission"

	alice := joinCallTab(t, b, srv, room, "alice", nil)
	alice.waitInCall(t)
	alice.waitFor(t, "alone, alice is a member at once", `window.sotto.state.selfAdmission.state === "member" &&
		window.sotto.call.rosterStatus().admitted && document.getElementById("self-admission").hidden`, admissionDescribeJS)

	bob := joinCallTab(t, b, srv, room, "bob", nil)
	bob.waitInCall(t)

	// alice: a card with the words, Admit and Refuse; no tile for bob.
	alice.waitFor(t, "a card says bob is waiting, with Admit and Refuse",
		fmt.Sprintf(`(() => { const c = document.querySelector('[data-candidate="bob"]');
			return !!c && c.dataset.admissionState === "waiting" && c.querySelector(".admission-text").textContent === %s &&
				!!c.querySelector('[data-admit="bob"]') && !c.querySelector('[data-admit="bob"]').disabled &&
				!!c.querySelector('[data-refuse="bob"]') && !c.querySelector('[data-refuse="bob"]').disabled; })()`, jsString(waitingText("bob"))),
		admissionDescribeJS)
	// bob: he is told he waits.
	bob.waitFor(t, `bob's page says "Waiting to be admitted"`,
		`(() => { const p = document.getElementById("self-admission"); return !p.hidden && p.offsetParent !== null &&
			document.getElementById("self-admission-title").textContent === "Waiting to be admitted" &&
			window.sotto.state.selfAdmission.state === "waiting"; })()`,
		admissionDescribeJS)
	// alice's encrypted video reaches bob, and no key opens it.
	bob.waitFor(t, "alice's media reaches bob, without a key",
		fmt.Sprintf(`(async () => { const m = (await %s(["alice"])).alice; return m.videoPackets > 60 && m.noKey > 0; })()`, callMediaJS),
		callDescribeJS)
	var before struct {
		BobKeys, AliceKeys float64
		BobTile            bool
		Bob                callReceived
	}
	bob.eval(t, keysReceivedJS, &before.BobKeys)
	alice.eval(t, keysReceivedJS, &before.AliceKeys)
	alice.eval(t, `!!document.querySelector('[data-identity="bob"]')`, &before.BobTile)
	before.Bob = bob.media(t, []string{"alice"})["alice"]
	t.Logf("before the click: bob opened %v keys, alice %v; bob received %v video packets of alice's, %v without a key, %v decoded",
		before.BobKeys, before.AliceKeys, before.Bob.VideoPackets, before.Bob.NoKey, before.Bob.FramesDecoded)
	if before.BobKeys != 0 || before.Bob.FramesDecoded != 0 || before.Bob.Decrypted != 0 {
		t.Fatalf("bob, waiting, received a media key (%v opened) or decrypted alice (%v frames decrypted, %v decoded)",
			before.BobKeys, before.Bob.Decrypted, before.Bob.FramesDecoded)
	}
	if before.BobTile {
		t.Fatal("alice's page shows bob, who waits, as a participant tile")
	}
	saveViewportScreenshot(t, alice.ctx, "admission-waiting.png")
	saveViewportScreenshot(t, bob.ctx, "admission-waiting-self.png")

	// alice admits bob: one click.
	alice.admit(t, "bob")
	bob.waitFor(t, "bob is admitted: his page stops saying he waits",
		`window.sotto.state.selfAdmission.state === "member" && document.getElementById("self-admission").hidden`, admissionDescribeJS)
	pair := []*callTab{alice, bob}
	checkEveryoneSeesEveryone(t, pair)
	checkSameSafetyNumber(t, pair)
	var bobKeys float64
	bob.eval(t, keysReceivedJS, &bobKeys)
	if bobKeys == 0 {
		t.Fatal("bob decrypts alice and opened no key")
	}

	// carol joins; alice refuses her.
	carol := joinCallTab(t, b, srv, room, "carol", nil)
	carol.waitInCall(t)
	bob.waitFor(t, "bob, a member, sees carol waiting and could admit her",
		fmt.Sprintf(`(() => { const c = document.querySelector('[data-candidate="carol"]'); return !!c &&
			c.querySelector(".admission-text").textContent === %s && !c.querySelector('[data-admit="carol"]').disabled; })()`,
			jsString(waitingText("carol"))),
		admissionDescribeJS)
	refuseIn(t, alice.ctx, alice.name, "carol")
	for _, c := range []*callTab{alice, bob} {
		by := "alice"
		if c == alice {
			by = "alice (you)"
		}
		c.waitFor(t, "carol is shown refused by alice, not as a participant",
			fmt.Sprintf(`(() => { const c = document.querySelector('[data-candidate="carol"]');
				return !!c && c.dataset.admissionState === "refused" && c.querySelector(".admission-text").textContent === %s &&
					!document.querySelector('[data-identity="carol"]'); })()`, jsString("carol was refused by "+by)),
			admissionDescribeJS)
	}
	carol.waitFor(t, "carol's page says alice refused her, and offers to leave",
		`(() => { const p = document.getElementById("self-admission"); return !p.hidden && p.dataset.state === "refused" &&
			document.getElementById("self-admission-title").textContent === "alice refused to admit you" &&
			!document.getElementById("leave-while-waiting").hidden && window.sotto.state.selfAdmission.state === "refused"; })()`,
		admissionDescribeJS)
	// carol's media reaches alice and bob; neither shows it anywhere.
	for _, c := range []*callTab{alice, bob} {
		c.waitFor(t, "carol's media arrives, and is in no tile",
			fmt.Sprintf(`(async () => { const m = (await %s(["carol"])).carol;
				const loose = [...document.querySelectorAll("video, audio")].filter(e => e.id !== "preview" && e.srcObject && !e.closest("[data-identity]"));
				return m.videoPackets > 60 && m.tile === "" && !m.hasVideoElement && loose.length === 0 &&
					!document.querySelector('[data-identity="carol"]'); })()`, callMediaJS),
			callDescribeJS)
	}
	var carolKeys float64
	carol.eval(t, keysReceivedJS, &carolKeys)
	carolGot := carol.media(t, []string{"alice", "bob"})
	t.Logf("carol, refused: opened %v keys; receives alice %+v, bob %+v", carolKeys, carolGot["alice"], carolGot["bob"])
	if carolKeys != 0 || carolGot["alice"].FramesDecoded != 0 || carolGot["bob"].FramesDecoded != 0 {
		t.Fatalf("carol, refused, opened %v keys or decoded alice's or bob's video: %+v", carolKeys, carolGot)
	}
	checkSameSafetyNumber(t, pair)

	// dave comes while carol is refused: carol sees him waiting and may
	// not decide; alice admits him.
	dave := joinCallTab(t, b, srv, room, "dave", url.Values{"test-media": {"none"}})
	dave.waitInCall(t)
	carol.waitFor(t, "carol, refused herself, sees dave waiting with Admit and Refuse disabled",
		`(() => { const c = document.querySelector('[data-candidate="dave"]'); return !!c &&
			c.querySelector('[data-admit="dave"]').disabled && c.querySelector('[data-refuse="dave"]').disabled; })()`,
		admissionDescribeJS)
	alice.admit(t, "dave")
	dave.waitFor(t, "dave is admitted", `window.sotto.state.selfAdmission.state === "member" && document.getElementById("self-admission").hidden`,
		admissionDescribeJS)
	bob.waitFor(t, "bob shows dave as a participant", `!document.querySelector('[data-candidate="dave"]') && !!document.querySelector('[data-identity="dave"]')`,
		admissionDescribeJS)
	for _, c := range []*callTab{alice, bob} {
		c.waitFor(t, "carol is still shown refused, never a tile",
			`document.querySelector('[data-candidate="carol"]')?.dataset.admissionState === "refused" && !document.querySelector('[data-identity="carol"]')`,
			admissionDescribeJS)
	}
	// dave came after the refusal (an unsigned word to those present):
	// carol is someone not admitted to him, a card, never a tile.
	dave.waitFor(t, "carol is a card, not admitted, never a tile",
		fmt.Sprintf(`(() => { const c = document.querySelector('[data-candidate="carol"]'); return !!c && c.querySelector(".admission-text").textContent === %s &&
			!document.querySelector('[data-identity="carol"]') && window.sotto.state.admissions.carol?.state !== "member"; })()`, jsString(waitingText("carol"))),
		admissionDescribeJS)
}

// saveViewportScreenshot writes what the tab shows (its viewport, as a
// person sees it) as a PNG among the test artifacts.
func saveViewportScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(artifactDir(t), name)
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// TestBrowserRosterAlert: the node drops every relay of bob's (a Go
// client) to alice (the page), so bob's signed view of the call never
// reaches her. Once she admitted him, the views cannot agree: after the
// roster timeout her page raises the blocking alert, naming bob's view as
// missing, saying no new media key goes out, with Leave call focused;
// Escape does not dismiss it. When bob leaves, the views agree again: the
// alert closes itself and the page says so.
func TestBrowserRosterAlert(t *testing.T) {
	srv := startWebServer(t, nil)
	node := hostilenode.New(t, srv.URL, nil)
	const room = "roster-alert"
	b := newBrowser(t)

	alice, _ := openKnownTab(t, b, node.URL, room, "alice")
	node.SetFilter(hostilenode.DropRelaysFrom("bob"))
	bob := knownGoPeer(t, srv, srv.URL, room, "bob", nil, nil)
	alice.admit(t, "bob")

	const dialog = `document.getElementById("roster-alert")`
	alice.waitFor(t, "the roster alert is up, naming bob's view as missing",
		`(() => { const d = `+dialog+`; const li = d.querySelector('#roster-alert-list li[data-member="bob"]');
			return d.open && d.matches(":modal") && document.getElementById("roster-alert-title").textContent === "The server is showing different people to different participants" &&
				!!li && li.textContent === "bob's view of the call did not arrive." &&
				/sends no new media key/.test(d.textContent) && document.activeElement === document.getElementById("leave-after-roster-alert") &&
				window.sotto.state.rosterAlert?.mismatches.some(m => m.member === "bob" && m.missing); })()`,
		admissionDescribeJS)
	saveViewportScreenshot(t, alice.ctx, "roster-alert.png")
	if err := chromedp.Do(alice.ctx, chromedp.KeyEvent(kb.Escape)); err != nil {
		t.Fatal(err)
	}
	alice.waitFor(t, "Escape leaves the alert up", dialog+`.open`, admissionDescribeJS)

	_ = bob.Close()
	alice.waitFor(t, "bob gone, the views agree: the alert closes itself, and the page says so",
		`!`+dialog+`.open && window.sotto.state.rosterAlert === null && !document.getElementById("call-note").hidden &&
			/same people again/.test(document.getElementById("call-note").textContent)`,
		admissionDescribeJS)
}
