package web_test

// TestBrowserCallAdmissionSDK: admission by members through the browser
// SDK's public API (web/sdk/client.js, without the call page): real calls
// of connect() in one page, through a node that can turn hostile
// (internal/hostilenode). The first in the call is admitted at once, and
// that event reaches listeners added after connect resolved; a newcomer
// waits, described ({identity, identityKey, known, verified}), until a
// member admits it with Call.admit or the admission option; refusals and
// admissions reach everyone as events; admissions() and rosterStatus()
// say where everyone stands; views the node drops raise
// "rostermismatch" with its message and the member named, and
// "rosteragreed" ends it; in a later call, people met before are known,
// and an admission option that admits verified keys admits them.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sotto-rtc/sotto/internal/hostilenode"
)

// sdkDetail is any admission event's detail, as the page records it.
type sdkDetail struct {
	Identity    string        `json:"identity"`
	IdentityKey string        `json:"identityKey"`
	Known       bool          `json:"known"`
	Verified    bool          `json:"verified"`
	By          *string       `json:"by"`
	Message     string        `json:"message"`
	Mismatches  []admMismatch `json:"mismatches"`
}

type sdkEvent struct {
	Type   string    `json:"type"`
	Detail sdkDetail `json:"detail"`
}

type sdkAdmission struct {
	Identity, IdentityKey, State, By string
	Root                             bool
}

type sdkPage struct {
	t   *testing.T
	ctx context.Context
	srv *webServer
}

// call runs callsTest.fn(args...) in the page.
func (p *sdkPage) call(out any, fn string, args ...any) {
	p.t.Helper()
	parts := make([]string, len(args))
	for i, a := range args {
		b, err := json.Marshal(a)
		if err != nil {
			p.t.Fatal(err)
		}
		parts[i] = string(b)
	}
	if err := evaluate(p.ctx, fmt.Sprintf("callsTest.%s(%s)", fn, strings.Join(parts, ",")), out); err != nil {
		p.t.Fatalf("callsTest.%s: %v", fn, err)
	}
}

// connect joins name to room; it returns name's identity key (hex).
func (p *sdkPage) connect(name, room, policy string, rosterTimeoutMs int) string {
	p.t.Helper()
	var key string
	p.call(&key, "connect", name, p.srv.Token(room, name, true, true), policy, rosterTimeoutMs)
	return key
}

func (p *sdkPage) events(name string) []sdkEvent {
	p.t.Helper()
	var evs []sdkEvent
	p.call(&evs, "events", name)
	return evs
}

// waitEvent waits for an event of name of type typ whose detail ok takes.
func (p *sdkPage) waitEvent(name, typ string, ok func(sdkDetail) bool) sdkDetail {
	p.t.Helper()
	deadline := time.Now().Add(browserTimeout)
	for {
		evs := p.events(name)
		if i := slices.IndexFunc(evs, func(e sdkEvent) bool { return e.Type == typ && ok(e.Detail) }); i >= 0 {
			return evs[i].Detail
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: no such %s event within %v; events %+v", name, typ, browserTimeout, evs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func by(who string) func(sdkDetail) bool {
	return func(d sdkDetail) bool { return d.By != nil && *d.By == who }
}

func identityBy(identity, who string) func(sdkDetail) bool {
	return func(d sdkDetail) bool { return d.Identity == identity && d.By != nil && *d.By == who }
}

func (p *sdkPage) hasEvent(name, typ string) bool {
	p.t.Helper()
	return slices.ContainsFunc(p.events(name), func(e sdkEvent) bool { return e.Type == typ })
}

func (p *sdkPage) status(name string) admStatus {
	p.t.Helper()
	var st admStatus
	p.call(&st, "rosterStatus", name)
	st.Mismatches = normalMismatches(st.Mismatches)
	return st
}

func (p *sdkPage) waitStatus(name, what string, ok func(admStatus) bool) {
	p.t.Helper()
	deadline := time.Now().Add(browserTimeout)
	for !ok(p.status(name)) {
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: not %s within %v: %+v", name, what, browserTimeout, p.status(name))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *sdkPage) admissions(name string) []sdkAdmission {
	p.t.Helper()
	var as []sdkAdmission
	p.call(&as, "admissions", name)
	return as
}

// attempt runs callsTest.fn(name, identity): "" or the error's class.
func (p *sdkPage) attempt(fn, name, identity string) string {
	p.t.Helper()
	var r struct {
		OK    bool
		Error string
	}
	p.call(&r, fn, name, identity)
	return r.Error
}

func (p *sdkPage) agreeing(names ...string) {
	p.t.Helper()
	numbers := map[string]string{}
	for _, n := range names {
		p.waitStatus(n, "admitted and agreeing", func(st admStatus) bool { return st.Admitted && st.Agreed && !st.Alert })
		var sn string
		p.call(&sn, "safetyNumber", n)
		numbers[n] = sn
	}
	checkSameSafetyNumbers(p.t, strings.Join(names, ", "), numbers)
}

func TestBrowserCallAdmissionSDK(t *testing.T) {
	srv := e2eeServer(t, nil)
	hn := hostilenode.New(t, srv.URL, nil)
	b := newBrowser(t)
	ctx := e2eeOpenPage(t, b, "calls", hn.URL+"/testdata/e2ee/calls.html", "typeof window.callsTest === 'object'")
	p := &sdkPage{t: t, ctx: ctx, srv: srv}
	const room = "admissions"

	// alice is alone: admitted at once, and the event, fired before
	// connect resolved, reaches the listeners added after.
	p.connect("alice", room, "ask", 1000)
	p.waitEvent("alice", "selfadmitted", by(""))
	p.waitStatus("alice", "admitted alone", func(st admStatus) bool { return st.Admitted && st.Agreed })

	// bob waits; alice is asked about him (the default: her UI decides).
	bobKey := p.connect("bob", room, "only:carol", 1000)
	d := p.waitEvent("alice", "waiting", func(d sdkDetail) bool { return d.Identity == "bob" })
	if d.IdentityKey != bobKey || d.Known || d.Verified {
		t.Fatalf("alice's waiting event for bob: %+v; want his key %s, not known, not verified", d, bobKey)
	}
	p.waitEvent("bob", "admitted", identityBy("alice", ""))
	if got := p.admissions("alice"); len(got) != 1 || got[0] != (sdkAdmission{"bob", bobKey, "waiting", "", false}) {
		t.Fatalf("alice's admissions: %+v", got)
	}
	if got := p.admissions("bob"); len(got) != 1 || got[0].Identity != "alice" || got[0].State != "member" || !got[0].Root || got[0].By != "" {
		t.Fatalf("bob's admissions: %+v", got)
	}
	if st := p.status("bob"); st.Admitted || st.Agreed || st.Refused {
		t.Fatalf("bob before anyone admitted him: %+v", st)
	}
	if p.hasEvent("bob", "selfadmitted") {
		t.Fatal("bob was told he is admitted")
	}
	if err := p.attempt("admit", "bob", "alice"); err != "NotAdmittedError" {
		t.Fatalf("bob, waiting, admitting: %q, want NotAdmittedError", err)
	}
	if err := p.attempt("admit", "alice", "nobody"); err != "NotWaitingError" {
		t.Fatalf("alice admitting nobody: %q, want NotWaitingError", err)
	}
	if err := p.attempt("admit", "alice", "bob"); err != "" {
		t.Fatalf("alice admitting bob: %s", err)
	}
	p.waitEvent("bob", "selfadmitted", by("alice"))
	p.waitEvent("alice", "admitted", identityBy("bob", "alice"))
	p.agreeing("alice", "bob")
	if err := p.attempt("admit", "alice", "bob"); err != "NotWaitingError" {
		t.Fatalf("alice admitting bob again: %q, want NotWaitingError", err)
	}
	// alice compared bob's code: his key is verified for her from now on.
	var marked struct{ Error, Message string }
	p.call(&marked, "markVerified", "alice", "bob", bobKey)
	if marked.Error != "" {
		t.Fatalf("alice marking bob verified: %s", marked.Message)
	}

	// carol: bob's admission option admits her; alice takes his admission.
	p.connect("carol", room, "ask", 1000)
	p.waitEvent("carol", "selfadmitted", by("bob"))
	p.waitEvent("alice", "admitted", identityBy("carol", "bob"))
	p.agreeing("alice", "bob", "carol")
	var asked []string
	p.call(&asked, "asked", "bob")
	if !slices.Contains(asked, "carol") {
		t.Fatalf("bob's admission option was asked about %v, not carol", asked)
	}

	// dave: alice refuses him; everyone is told, he too; he stays out.
	p.connect("dave", room, "ask", 1000)
	for _, n := range []string{"alice", "bob", "carol"} {
		p.waitEvent(n, "waiting", func(d sdkDetail) bool { return d.Identity == "dave" })
	}
	if err := p.attempt("refuse", "alice", "dave"); err != "" {
		t.Fatalf("alice refusing dave: %s", err)
	}
	p.waitEvent("dave", "selfrefused", by("alice"))
	for _, n := range []string{"bob", "carol"} {
		p.waitEvent(n, "refused", identityBy("dave", "alice"))
	}
	p.waitStatus("dave", "refused", func(st admStatus) bool { return !st.Admitted && st.Refused })
	if i := slices.IndexFunc(p.admissions("carol"), func(a sdkAdmission) bool { return a.Identity == "dave" }); i < 0 || p.admissions("carol")[i].State != "refused" {
		t.Fatalf("carol's admissions: %+v", p.admissions("carol"))
	}
	p.call(nil, "leave", "dave")

	// erin: alice admits her, but the node drops every relay of hers: her
	// view never comes, and after the roster timeout everyone raises the
	// alert, naming her. When she leaves, the views agree again.
	hn.SetFilter(hostilenode.DropRelaysFrom("erin"))
	p.connect("erin", room, "ask", 1000)
	p.waitEvent("alice", "waiting", func(d sdkDetail) bool { return d.Identity == "erin" })
	if err := p.attempt("admit", "alice", "erin"); err != "" {
		t.Fatalf("alice admitting erin: %s", err)
	}
	want := fmt.Sprint([]admMismatch{{Member: "erin", Missing: true, OnlyTheirs: []string{}, OnlyMine: []string{}}})
	for _, n := range []string{"alice", "bob", "carol"} {
		d := p.waitEvent(n, "rostermismatch", func(d sdkDetail) bool { return fmt.Sprint(normalMismatches(d.Mismatches)) == want })
		if d.Message != "The server is showing different people to different participants" {
			t.Fatalf("%s's alert says %q", n, d.Message)
		}
		if st := p.status(n); !st.Alert || st.Agreed || fmt.Sprint(st.Mismatches) != want {
			t.Fatalf("%s during the alert: %+v", n, st)
		}
	}
	p.call(nil, "leave", "erin")
	hn.SetFilter(nil)
	for _, n := range []string{"alice", "bob", "carol"} {
		p.waitEvent(n, "rosteragreed", func(sdkDetail) bool { return true })
	}
	p.agreeing("alice", "bob", "carol")
	for _, n := range []string{"alice", "bob", "carol"} {
		p.call(nil, "leave", n)
	}

	// Another call: alice admits whoever's key she marked verified. bob
	// (met, verified) is admitted at once; carol (met, not verified)
	// waits; frank was never met.
	const later = "admissions again"
	p.connect("alice", later, "verified", 1000)
	p.waitEvent("alice", "selfadmitted", by(""))
	p.connect("bob", later, "ask", 1000)
	d = p.waitEvent("alice", "waiting", func(d sdkDetail) bool { return d.Identity == "bob" })
	if !d.Known || !d.Verified || d.IdentityKey != bobKey {
		t.Fatalf("alice's waiting event for bob, met and verified: %+v", d)
	}
	p.waitEvent("bob", "selfadmitted", by("alice"))
	p.connect("carol", later, "ask", 1000)
	d = p.waitEvent("alice", "waiting", func(d sdkDetail) bool { return d.Identity == "carol" })
	if !d.Known || d.Verified {
		t.Fatalf("alice's waiting event for carol, met, not verified: %+v", d)
	}
	p.connect("frank", later, "ask", 1000)
	d = p.waitEvent("alice", "waiting", func(d sdkDetail) bool { return d.Identity == "frank" })
	if d.Known || d.Verified {
		t.Fatalf("alice's waiting event for frank, never met: %+v", d)
	}
	d = p.waitEvent("bob", "waiting", func(d sdkDetail) bool { return d.Identity == "frank" })
	if d.Known || d.Verified {
		t.Fatalf("bob's waiting event for frank, never met: %+v", d)
	}
	time.Sleep(300 * time.Millisecond)
	for _, n := range []string{"carol", "frank"} {
		if st := p.status(n); st.Admitted {
			t.Fatalf("%s admitted by an option that admits verified keys only: %+v", n, st)
		}
	}
	p.agreeing("alice", "bob")
}
