package web_test

// A hostile node in front of the call page: it writes every signaling
// field the page reads (which participant lists a track, the track's
// identity, the participants' and tracks' e2ee, the subscriber offer's
// msid), and the SDK must take no trust decision from them that would
// present one participant's media as another's, or clear media as
// encrypted (docs/E2EE.md, "What a receiver trusts").

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/sotto-rtc/sotto/internal/hostilenode"
	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// hostileGoPeer joins room as a Go SDK client, E2EE on, and, when publish,
// publishes Opus audio (ffmpeg's sine) until the test ends. It returns
// the client and its audio track's sid ("" when it does not publish).
func hostileGoPeer(t *testing.T, srv *webServer, room, identity string, publish bool, ogg string) (*client.Client, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	jctx, jcancel := context.WithTimeout(ctx, browserTimeout)
	defer jcancel()
	c, err := client.Connect(jctx, srv.URL, client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token(room, identity, publish, true),
		SettingEngine: &se,
		Logger:        testLogger(),
	})
	if err != nil {
		t.Fatalf("%s: %v", identity, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if !publish {
		return c, ""
	}
	mic, err := c.PublishSample(jctx, "microphone", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
	if err != nil {
		t.Fatalf("%s: %v", identity, err)
	}
	sent := make(chan error, 1)
	go func() { sent <- sendOgg(ctx, mic, ogg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-sent; err != nil {
			t.Errorf("%s: sending audio: %v", identity, err)
		}
	})
	info, err := mic.WaitPublished(jctx)
	if err != nil {
		t.Fatalf("%s: %v", identity, err)
	}
	return c, info.SID
}

// openHostileTab opens the call page through the hostile node, joining
// room as name without a camera or microphone, and records every 'track'
// event the SDK dispatches (window.__tracks: the track's sid, the
// identity it names and the participant it is delivered as), every
// 'e2eestate' event (window.__e2ee) and every text the header showed
// (window.__status).
func openHostileTab(t *testing.T, b *browser, node *hostilenode.Node, room, name string) *callTab {
	t.Helper()
	ctx := b.tab(t, name)
	const record = `window.sottoTestMode = true;
		window.__tracks = [];
		window.__e2ee = [];
		window.__status = [];
		(() => {
			const dispatch = EventTarget.prototype.dispatchEvent;
			EventTarget.prototype.dispatchEvent = function (ev) {
				if (ev.type === "track" && ev.detail && ev.detail.info && ev.detail.participant) {
					window.__tracks.push({sid: ev.detail.info.sid, identity: ev.detail.info.identity, owner: ev.detail.participant.identity});
				}
				if (ev.type === "e2eestate" && ev.detail) {
					window.__e2ee.push({identity: ev.detail.identity, state: ev.detail.state});
				}
				return dispatch.call(this, ev);
			};
			document.addEventListener("DOMContentLoaded", () => {
				const s = document.getElementById("status");
				new MutationObserver(() => window.__status.push(s.textContent))
					.observe(s, {childList: true, characterData: true, subtree: true});
			});
		})();`
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: record}); err != nil {
		t.Fatalf("%s: test mode: %v", name, err)
	}
	q := url.Values{"room": {room}, "name": {name}, "test-media": {"none"}}
	if err := chromedp.Do(ctx, chromedp.Navigate(node.URL+"/?"+q.Encode())); err != nil {
		t.Fatalf("%s: open the call page: %v", name, err)
	}
	tab := &callTab{name: name, ctx: ctx}
	tab.waitInCall(t)
	return tab
}

// hostileDescribeJS is what a failed wait prints.
const hostileDescribeJS = `(async () => ({
	tracks: window.__tracks,
	refused: window.sotto && window.sotto.call && window.sotto.call.refusedTracks,
	status: document.getElementById("status").textContent,
	state: window.sotto && window.sotto.state,
	tiles: [...document.querySelectorAll("[data-identity]")].map(e => ({...e.dataset})),
	media: window.sotto && window.sotto.call ? await window.sotto.call.inboundStats() : null,
}))()`

// The node moves bob's encrypted audio into carol's participant entry (her
// track list, her participant sid in the track and in the subscriber
// offer's msid), leaving the track's identity bob's. The SDK must not
// deliver it as carol's: no 'track' event, the track counted as refused.
func TestBrowserRefusesTrackRelabelledToAnotherOwner(t *testing.T) {
	_, ogg := makeFixtures(t)
	srv := startWebServer(t, nil)
	node := hostilenode.New(t, srv.URL, nil)
	const room = "relabel"
	hostileGoPeer(t, srv, room, "carol", false, "")
	_, bobTrack := hostileGoPeer(t, srv, room, "bob", true, ogg)

	var mu sync.Mutex
	sids := map[string]string{} // identity → participant sid, as the node said
	node.SetRewrite(hostilenode.JSON(func(m map[string]any) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range hostilenode.Participants(m) {
			if id, _ := p["identity"].(string); id != "" {
				sids[id], _ = p["sid"].(string)
			}
		}
		bobSID, carolSID := sids["bob"], sids["carol"]
		if bobSID == "" || carolSID == "" {
			return false
		}
		changed := false
		var bob, carol map[string]any
		for _, p := range hostilenode.Participants(m) {
			switch p["identity"] {
			case "bob":
				bob = p
			case "carol":
				carol = p
			}
		}
		if bob != nil && carol != nil {
			list, _ := bob["tracks"].([]any)
			for i, tr := range list {
				if tm, ok := tr.(map[string]any); ok && tm["sid"] == bobTrack {
					bob["tracks"] = slices.Delete(list, i, i+1)
					carolList, _ := carol["tracks"].([]any)
					carol["tracks"] = append(carolList, tm)
					changed = true
					break
				}
			}
		}
		for _, tm := range hostilenode.Tracks(m) {
			if tm["sid"] == bobTrack {
				tm["participant_sid"] = carolSID // the identity stays bob's
				changed = true
			}
		}
		if m["type"] == wire.TypeOffer {
			if sdp, ok := m["sdp"].(string); ok && strings.Contains(sdp, bobSID+" "+bobTrack) {
				m["sdp"] = strings.ReplaceAll(sdp, bobSID+" "+bobTrack, carolSID+" "+bobTrack)
				changed = true
			}
		}
		return changed
	}))

	dave := openHostileTab(t, newBrowser(t), node, room, "dave")
	dave.waitFor(t, "bob's track arrives: refused, or delivered",
		fmt.Sprintf(`window.sotto.call.refusedTracks >= 1 || window.__tracks.some(e => e.sid === %q)`, bobTrack),
		hostileDescribeJS)
	var got struct {
		Tracks []struct {
			SID, Identity, Owner string
		}
		Refused   any  `json:"refused"`
		CarolSees bool `json:"carolSees"`
		Owner     string
	}
	dave.eval(t, fmt.Sprintf(`(() => {
		const call = window.sotto.call;
		const owner = [...call.participants.values()].find(p => p.tracks.has(%q));
		const carol = document.querySelector('[data-identity="carol"] audio');
		return {tracks: window.__tracks, refused: call.refusedTracks, carolSees: !!(carol && carol.srcObject), owner: owner ? owner.identity : ""};
	})()`, bobTrack), &got)
	if got.Owner != "carol" {
		t.Fatalf("the node did not move bob's track into carol's entry (its owner on the page: %q)", got.Owner)
	}
	for _, tr := range got.Tracks {
		if tr.SID == bobTrack {
			t.Fatalf("the page was given bob's track (identity %q) as %s's", tr.Identity, tr.Owner)
		}
	}
	if got.CarolSees {
		t.Fatal("carol's tile plays audio, and carol sends none: bob's")
	}
	if n, _ := got.Refused.(float64); n != 1 {
		t.Fatalf("call.refusedTracks is %v; want 1 (bob's track)", got.Refused)
	}
	t.Logf("dave refused bob's track presented as carol's; track events: %+v", got.Tracks)
}

// The node says bob does not encrypt after all (his entry and his track
// e2ee false, his identity key left as it was) once the page has seen him
// encrypting, and makes the page reconnect to hear it. bob still
// encrypts: the page must keep decrypting his frames, never play them as
// they come, show him as encrypted, and its header must claim nothing
// false.
func TestBrowserKeepsDecryptingAfterNodeSaysParticipantStoppedEncrypting(t *testing.T) {
	_, ogg := makeFixtures(t)
	srv := startWebServer(t, nil)
	node := hostilenode.New(t, srv.URL, nil)
	const room = "downgrade"
	_, bobTrack := hostileGoPeer(t, srv, room, "bob", true, ogg)

	dave := openHostileTab(t, newBrowser(t), node, room, "dave")
	bobAudio := fmt.Sprintf(`(async () => (await window.sotto.call.inboundStats()).find(s => s.trackSid === %q) || null)()`, bobTrack)
	const status = `document.getElementById("status").textContent`
	dave.waitFor(t, "bob's audio decrypts, his tile and the header say encrypted",
		fmt.Sprintf(`(async () => { const a = await %s; return !!a && !!a.e2ee && a.e2ee.decrypted > 50 &&
			document.querySelector('[data-identity="bob"]').dataset.e2eeState === "encrypted" &&
			%s === "Connected · end-to-end encrypted"; })()`, bobAudio, status),
		hostileDescribeJS)

	node.SetRewrite(hostilenode.JSON(func(m map[string]any) bool {
		changed := false
		for _, p := range hostilenode.Participants(m) {
			if p["identity"] == "bob" {
				p["e2ee"] = false
				changed = true
			}
		}
		for _, tm := range hostilenode.Tracks(m) {
			if tm["identity"] == "bob" {
				tm["e2ee"] = false
				changed = true
			}
		}
		return changed
	}))
	if node.DropClients() == 0 {
		t.Fatal("no page connection to drop")
	}
	dave.waitFor(t, "reconnected, told bob does not encrypt",
		`(() => { const h = window.sotto.state.connectionHistory; const bob = window.sotto.call.participants.get("bob");
			return h.includes("reconnecting") && h[h.length - 1] === "connected" && !!bob && bob.tracks.size > 0 &&
				[...bob.tracks.values()].every(t => !t.e2ee); })()`,
		hostileDescribeJS)
	var before float64
	dave.eval(t, fmt.Sprintf(`(async () => { const a = await %s; return a && a.e2ee ? a.e2ee.decrypted : 0; })()`, bobAudio), &before)

	// The new subscriber connection gets bob's audio again: it must be
	// decrypted there (fresh frames counted as decrypted), not played as
	// it comes (e2ee null: not decrypted here).
	dave.waitFor(t, "bob's audio arrives again after the reconnect",
		fmt.Sprintf(`(async () => { const a = await %s; return !!a && a.packetsReceived > 100 && (!a.e2ee || a.e2ee.decrypted > %d); })()`,
			bobAudio, int(before)+100),
		hostileDescribeJS)
	var got struct {
		E2EE *struct {
			Decrypted, Rejected, NoKey float64
		} `json:"e2ee"`
		PacketsReceived float64 `json:"packetsReceived"`
	}
	dave.eval(t, bobAudio, &got)
	if got.E2EE == nil {
		t.Fatalf("after the node said bob does not encrypt, the page plays his audio as it comes (%v packets, not decrypted)", got.PacketsReceived)
	}
	dave.waitFor(t, "bob shows as encrypted, and the header says encrypted",
		`window.sotto.call.e2eeState("bob") === "encrypted" &&
			document.querySelector('[data-identity="bob"]').dataset.e2eeState === "encrypted" &&
			`+status+` === "Connected · end-to-end encrypted"`,
		hostileDescribeJS)
	var seen struct {
		Tracks []struct{ SID, Owner string }
		E2EE   []struct{ Identity, State string }
		Status []string
	}
	dave.eval(t, `({tracks: window.__tracks, e2ee: window.__e2ee, status: window.__status})`, &seen)
	for _, e := range seen.E2EE {
		if e.Identity == "bob" && e.State == "not-encrypted" {
			t.Fatalf("the page was told bob does not encrypt: e2eestate events %+v", seen.E2EE)
		}
	}
	for _, s := range seen.Status {
		if strings.Contains(s, "does not encrypt") || strings.Contains(s, "do not encrypt") {
			t.Fatalf("the header said %q; every text it showed: %q", s, seen.Status)
		}
	}
	t.Logf("after the reconnect: bob's audio %+v (%v packets); track events %+v; e2eestate events %+v; header texts %q",
		*got.E2EE, got.PacketsReceived, seen.Tracks, seen.E2EE, seen.Status)
}
