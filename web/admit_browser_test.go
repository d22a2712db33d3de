package web_test

// Admission by members (docs/E2EE.md, "Admission and rosters") on the
// call page: a newcomer hears and sees nothing until a member admits it,
// and the page never admits anyone on its own. Every test in which a tab
// (or a Go client) joins after a tab is in the call has a person click
// Admit for it on a member's page; these are the clicks.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// admissionDescribeJS is what a failed admission wait prints.
const admissionDescribeJS = `(() => ({
	self: window.sotto && window.sotto.state.selfAdmission,
	admissions: window.sotto && window.sotto.state.admissions,
	sdk: window.sotto && window.sotto.call && typeof window.sotto.call.admissions === "function"
		? window.sotto.call.admissions().map(a => ({identity: a.identity, state: a.state, by: a.by, root: a.root})) : null,
	roster: window.sotto && window.sotto.call && typeof window.sotto.call.rosterStatus === "function" ? window.sotto.call.rosterStatus() : null,
	cards: [...document.querySelectorAll("[data-candidate]")].map(e => ({...e.dataset, text: e.textContent,
		admit: !!e.querySelector("[data-admit]") && !e.querySelector("[data-admit]").disabled})),
	tiles: [...document.querySelectorAll("[data-identity]")].map(e => e.dataset.identity),
	selfPanel: document.getElementById("self-admission") && !document.getElementById("self-admission").hidden
		? document.getElementById("self-admission").textContent.trim() : "",
}))()`

// cssString quotes s as a CSS string: any name fits in an attribute
// selector, whatever its characters.
func cssString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == ' ':
			b.WriteRune(r)
		default:
			fmt.Fprintf(&b, "\\%x ", r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// admitIn is a person on page (the tab of ctx, a member of the call)
// admitting name: it waits until the page shows name waiting to join, on
// a card with an Admit button it can press (enabled: the page is a member
// itself), clicks the button with the mouse, as a user would, and waits
// until the page counts name as a member (its card gone, its tile there).
func admitIn(t *testing.T, ctx context.Context, page, name string) {
	t.Helper()
	clickAdmission(t, ctx, page, name, "admit")
	waitFor(t, ctx, fmt.Sprintf("%s: %s admitted (a member, its card gone)", page, name),
		fmt.Sprintf(`(() => { const n = %s; const a = window.sotto.state.admissions[n];
			return !!a && a.state === "member" && !document.querySelector('[data-candidate="' + CSS.escape(n) + '"]') &&
				!!document.querySelector('[data-identity="' + CSS.escape(n) + '"]:not([data-self])'); })()`, jsString(name)),
		admissionDescribeJS)
}

// refuseIn is a person on page refusing name: it waits for name's card
// with an enabled Refuse button, clicks it, and waits until the page
// shows name as refused.
func refuseIn(t *testing.T, ctx context.Context, page, name string) {
	t.Helper()
	clickAdmission(t, ctx, page, name, "refuse")
	waitFor(t, ctx, fmt.Sprintf("%s: %s shown refused", page, name),
		fmt.Sprintf(`(() => { const n = %s; const c = document.querySelector('[data-candidate="' + CSS.escape(n) + '"]');
			return !!c && c.dataset.admissionState === "refused" && window.sotto.state.admissions[n]?.state === "refused"; })()`, jsString(name)),
		admissionDescribeJS)
}

// clickAdmission waits for name's card on page with the button of what
// ("admit" or "refuse") enabled, and no modal dialog over it (a person
// cannot click past one), and clicks it with the mouse.
func clickAdmission(t *testing.T, ctx context.Context, page, name, what string) {
	t.Helper()
	attr := "data-" + what
	waitFor(t, ctx, fmt.Sprintf("%s: %s waits to join, %s can be pressed", page, name, what),
		fmt.Sprintf(`(() => { const b = document.querySelector('[%s="' + CSS.escape(%s) + '"]');
			return !!b && !b.disabled && b.offsetParent !== null && !document.querySelector("dialog:modal"); })()`, attr, jsString(name)),
		admissionDescribeJS)
	sel := chromedp.CSS("[" + attr + "=" + cssString(name) + "]")
	// The page may redraw the card between finding the button and
	// clicking it; then the button is found again.
	var err error
	for range 5 {
		if err = chromedp.Do(ctx, chromedp.Click(sel)); err == nil || !strings.Contains(err.Error(), "Could not find node") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("%s: click %s for %s: %v", page, what, name, err)
	}
}

// admit is admitIn on this tab.
func (c *callTab) admit(t *testing.T, name string) {
	t.Helper()
	admitIn(t, c.ctx, c.name, name)
}

// admitWhoeverWaits is for tabs opened at once, whose order of joining is
// not the test's (the two tabs of a development link): it waits until one
// of pages shows someone waiting to join with an Admit button it can
// press, and admits them there. It returns the page that admitted and the
// name admitted.
func admitWhoeverWaits(t *testing.T, pages map[string]context.Context) (string, string) {
	t.Helper()
	deadline := time.Now().Add(browserTimeout)
	for {
		for page, ctx := range pages {
			var name string
			if err := evaluate(ctx, `(() => { const b = [...document.querySelectorAll("[data-admit]")].find(b => !b.disabled && b.offsetParent !== null);
				return b ? b.dataset.admit : ""; })()`, &name); err != nil {
				t.Fatalf("%s: %v", page, err)
			}
			if name != "" {
				admitIn(t, ctx, page, name)
				return page, name
			}
		}
		if time.Now().After(deadline) {
			var states []any
			for _, ctx := range pages {
				var s any
				_ = evaluate(ctx, admissionDescribeJS, &s)
				states = append(states, s)
			}
			t.Fatalf("no page showed anyone waiting to join within %v: %v", browserTimeout, states)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
