package web_test

// The audio-level leak (docs/E2EE.md, "Threat model"): with the RFC 6464
// header extension negotiated, a browser stamps every audio packet with
// the speaker's level in clear, and the node learns who speaks and when.
// media's TestAudioLevelExtensionOffByDefault shows the node does not
// negotiate it unless the operator turns it on; this shows it with the
// call page in Chromium, whose WebRTC offers it by default.

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/sotto-rtc/sotto/media/sfu"
)

// audioLevelURI is the RFC 6464 client-to-mixer audio level extension.
const audioLevelURI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

// recordPeerConnectionsJS, run before the page loads, keeps every
// RTCPeerConnection the page makes in window.__pcs: the SDK keeps its
// own private, and the test reads their descriptions and what they
// negotiated. Nothing else about them changes.
const recordPeerConnectionsJS = `window.sottoTestMode = true;
	window.__pcs = [];
	(() => {
		const Native = window.RTCPeerConnection;
		window.RTCPeerConnection = class extends Native {
			constructor(...args) {
				super(...args);
				window.__pcs.push(this);
			}
		};
	})();`

// peerConnectionsJS describes the page's peer connections: their state,
// their descriptions, and the header extensions negotiated for each audio
// sender with a track and each audio receiver that receives.
const peerConnectionsJS = `window.__pcs.map(pc => ({
	state: pc.connectionState,
	localType: pc.localDescription ? pc.localDescription.type : "",
	local: pc.localDescription ? pc.localDescription.sdp : "",
	remote: pc.remoteDescription ? pc.remoteDescription.sdp : "",
	sending: pc.getSenders().filter(s => s.track && s.track.kind === "audio")
		.map(s => (s.getParameters().headerExtensions || []).map(h => h.uri)),
	receiving: pc.getTransceivers().filter(tr => tr.receiver.track.kind === "audio" && /recv/.test(tr.currentDirection || ""))
		.map(tr => (tr.receiver.getParameters().headerExtensions || []).map(h => h.uri)),
}))`

type pagePeerConnection struct {
	State, LocalType, Local, Remote string
	Sending, Receiving              [][]string
}

// openRecordedCallTab opens the call page on srv as name in room, with
// the fake camera and microphone, its peer connections recorded.
func openRecordedCallTab(t *testing.T, b *browser, srv *webServer, room, name string) *callTab {
	t.Helper()
	ctx := b.person(t, name)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: recordPeerConnectionsJS}); err != nil {
		t.Fatalf("%s: test mode: %v", name, err)
	}
	q := url.Values{"room": {room}, "name": {name}, "test-video": {callVideoSize}, "test-fps": {callVideoFPS}}
	tab := &callTab{name: name, ctx: ctx}
	tab.load(t, srv.URL+"/?"+q.Encode())
	return tab
}

// In a call between two pages, each sending the other its microphone:
// with the node's default configuration, the node's answer to each page's
// publisher offer, and its offer to each page's subscriber connection and
// the page's answer, leave the extension out, and neither the page's audio
// sender nor its audio receiver negotiated it, although each page offered
// it. With the operator's sfu.audio_level_extension (the flag
// --audio-level-extension) on, it is negotiated, both ways: the test sees
// the difference.
func TestBrowserSendsNoAudioLevel(t *testing.T) {
	b := newBrowser(t)
	for _, tc := range []struct {
		name string
		on   bool
	}{{"default", false}, {"audio_level_extension on", true}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startWebServer(t, nil, func(c *sfu.Config) { c.AudioLevelExtension = tc.on })
			room := "audio-level-" + strings.ReplaceAll(tc.name, " ", "-")
			alice := openRecordedCallTab(t, b, srv, room, "alice")
			bob := openRecordedCallTab(t, b, srv, room, "bob")
			alice.admit(t, "bob")
			tabs := []*callTab{alice, bob}
			checkEveryoneSeesEveryone(t, tabs)
			for _, tab := range tabs {
				var pcs []pagePeerConnection
				tab.eval(t, peerConnectionsJS, &pcs)
				var pub, sub *pagePeerConnection
				for i := range pcs {
					switch {
					case pcs[i].LocalType == "offer" && len(pcs[i].Sending) > 0:
						pub = &pcs[i]
					case pcs[i].LocalType == "answer" && len(pcs[i].Receiving) > 0:
						sub = &pcs[i]
					}
				}
				if len(pcs) != 2 || pub == nil || sub == nil {
					t.Fatalf("%s: peer connections %+v; want a publisher sending audio and a subscriber receiving it", tab.name, pcs)
				}
				if !strings.Contains(pub.Local, audioLevelURI) {
					t.Fatalf("%s: the page's publisher offer does not name %s; the test checks nothing", tab.name, audioLevelURI)
				}
				for what, sdp := range map[string]string{
					"the node's answer to the page's publisher offer": pub.Remote,
					"the node's offer to the page's subscriber":       sub.Remote,
					"the page's subscriber answer":                    sub.Local,
				} {
					if got := strings.Contains(sdp, audioLevelURI); got != tc.on {
						t.Errorf("%s: %s names %s: %v, want %v", tab.name, what, audioLevelURI, got, tc.on)
					}
				}
				for what, lists := range map[string][][]string{"audio sender": pub.Sending, "audio receiver": sub.Receiving} {
					for _, exts := range lists {
						if len(exts) == 0 {
							t.Errorf("%s: its %s negotiated no header extension at all; the test reads nothing", tab.name, what)
						}
						if got := slices.Contains(exts, audioLevelURI); got != tc.on {
							t.Errorf("%s: its %s negotiated %s: %v, want %v (it negotiated %q)", tab.name, what, audioLevelURI, got, tc.on, exts)
						}
					}
				}
				t.Logf("%s: audio sender negotiated %q; audio receiver %q", tab.name, pub.Sending, sub.Receiving)
			}
		})
	}
}
