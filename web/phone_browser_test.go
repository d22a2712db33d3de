package web_test

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserCallPageAtPhoneWidth: the page works on a phone. At 360 CSS
// pixels wide (a small Android phone) the join form and a two-party call
// fit the width: nothing scrolls sideways, and the controls stay on
// screen and large enough to tap.
func TestBrowserCallPageAtPhoneWidth(t *testing.T) {
	srv := startWebServer(t, nil)
	b := newBrowser(t)
	phone := b.tab(t, "phone")
	other := b.person(t, "desk") // another person's browser
	if err := chromedp.Do(phone, chromedp.EmulateViewport(360, 740, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch)); err != nil {
		t.Fatal(err)
	}
	fits := `document.documentElement.scrollWidth <= window.innerWidth + 1`
	layout := `({innerWidth, scrollWidth: document.documentElement.scrollWidth,
		wide: [...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 5).map(e => e.tagName + "#" + e.id + "." + e.className)})`

	if err := chromedp.Do(phone, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, phone, "the join form fits a phone's width", `!!document.querySelector("form") && `+fits, layout)

	if err := chromedp.Do(phone, chromedp.Navigate(srv.URL+"/?room=phone&name=phone")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(other, chromedp.Navigate(srv.URL+"/?room=phone&name=desk")); err != nil {
		t.Fatal(err)
	}
	admitWhoeverWaits(t, map[string]context.Context{"phone": phone, "desk": other})
	waitFor(t, phone, "the phone shows the other participant's video",
		`(() => { const v = document.querySelector('[data-identity="desk"] video'); return !!v && v.videoWidth > 0 })()`, layout)
	waitFor(t, phone, "the call fits a phone's width", fits, layout)
	var buttons []struct {
		Text          string
		Left, Right   float64
		Top, Bottom   float64
		Width, Height float64
	}
	if err := evaluate(phone, `[...document.querySelectorAll("button")].filter(b => b.offsetParent !== null).map(b => {
		const r = b.getBoundingClientRect(); return {text: b.textContent.trim(), left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height} })`, &buttons); err != nil {
		t.Fatal(err)
	}
	if len(buttons) == 0 {
		t.Fatal("no visible buttons in the call on a phone")
	}
	for _, btn := range buttons {
		if btn.Left < 0 || btn.Right > 361 || btn.Bottom > 741 || btn.Top < 0 {
			t.Errorf("button %q is off screen on a phone: %+v", btn.Text, btn)
		}
		if btn.Height < 32 {
			t.Errorf("button %q is %.0f px high: too small to tap", btn.Text, btn.Height)
		}
	}
}
