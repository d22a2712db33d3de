package web_test

// A browser receiving on reused subscriber m-sections (docs/PROTOCOL.md,
// section 3, Subscribing, 4): when a forwarded track ends, the node shows
// its section inactive, and once the browser has answered that offer it
// puts the next track of the kind there, same mid, new msid and SSRC. The
// browser fires track again on the same receiver and the same
// MediaStreamTrack; the page must decrypt it under the new owner's keys and
// show it in the new owner's tile, the old owner's track reported ended.

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/sotto-rtc/sotto/signaling/client"
)

// reuseRecordJS, run before the page loads, keeps the page's peer
// connections (recordPeerConnectionsJS) and the ids of the subscriber
// answers it sends and of the acks it receives: the node acks an answer
// once it has applied it, and only then may it reuse what the answer saw
// go inactive. window.__reuse also describes the subscriber connection
// and what a participant's tile shows.
const reuseRecordJS = recordPeerConnectionsJS + `
	window.__reuse = {
		answers: [], acks: [], events: [], listening: null,
		subPC() {
			return window.__pcs.filter(pc => pc.remoteDescription && pc.remoteDescription.type === "offer" && pc.connectionState !== "closed").pop() || null;
		},
		// The subscriber offer's m-sections as applied.
		sections() {
			const pc = this.subPC();
			if (!pc) return [];
			return pc.remoteDescription.sdp.split(/\r\n(?=m=)/).slice(1).map(s => {
				const get = re => (s.match(re) || [])[1] || "";
				const msid = get(/^a=msid:(.*)$/m).trim().split(/\s+/);
				return {kind: get(/^m=(\w+)/), mid: get(/^a=mid:(\S+)/m), dir: get(/^a=(sendonly|recvonly|sendrecv|inactive)\s*$/m),
					participantSid: msid[0] || "", trackSid: msid[1] || ""};
			});
		},
		transceivers() {
			const pc = this.subPC();
			return pc ? pc.getTransceivers().map(tr => ({mid: tr.mid, kind: tr.receiver.track.kind, current: tr.currentDirection,
				muted: tr.receiver.track.muted, trackId: tr.receiver.track.id})) : [];
		},
		// Every subscriber answer sent so far has been acked.
		settled() {
			const pc = this.subPC();
			return !!pc && pc.signalingState === "stable" && this.answers.length > 0 && this.answers.every(id => this.acks.includes(id));
		},
		// Records the call's remote track events, with the mid they came on.
		listen() {
			const call = window.sotto.call;
			if (!call || this.listening === call) return !!call;
			this.listening = call;
			for (const type of ["track", "trackunpublished"]) {
				call.addEventListener(type, ev => {
					const d = ev.detail;
					if (d.local) return;
					const pc = this.subPC();
					const tr = d.receiver && pc ? pc.getTransceivers().find(x => x.receiver === d.receiver) : null;
					this.events.push({type, identity: d.participant.identity, sid: d.info.sid, kind: d.info.kind, mid: tr ? tr.mid : ""});
				});
			}
			return true;
		},
		// What identity's tile shows of the tracks videoSid and audioSid
		// ("" for none), and where they arrive.
		async view(identity, videoSid, audioSid) {
			const call = window.sotto.call;
			const pc = this.subPC();
			const secs = this.sections();
			const sec = sid => (sid && secs.find(s => s.trackSid === sid)) || {mid: "", dir: "", participantSid: ""};
			const vs = sec(videoSid), as = sec(audioSid);
			const rx = mid => pc && mid ? pc.getTransceivers().find(tr => tr.mid === mid) || null : null;
			const vtr = rx(vs.mid), atr = rx(as.mid);
			const tile = document.querySelector('[data-identity="' + CSS.escape(identity) + '"]:not([data-self])');
			const video = tile && tile.querySelector("video"), audio = tile && tile.querySelector("audio");
			const vsrc = video && video.srcObject ? video.srcObject.getVideoTracks()[0] || null : null;
			const asrc = audio && audio.srcObject ? audio.srcObject.getAudioTracks()[0] || null : null;
			const stats = call ? await call.inboundStats() : [];
			const st = sid => stats.find(s => s.trackSid === sid) || null;
			const e2 = sid => call && call.e2ee && sid ? call.e2ee.trackStats(sid) : {decrypted: 0, rejected: 0, noKey: 0};
			const own = call && call.participants.get(identity);
			return {
				mode: call && call.e2ee ? call.e2ee.transformMode : "",
				participantSid: own ? own.sid : "",
				tile: tile ? tile.dataset.e2eeState || "" : "none",
				videoMid: vs.mid, videoDir: vs.dir, videoOwner: vs.participantSid,
				audioMid: as.mid, audioDir: as.dir, audioOwner: as.participantSid,
				tileVideoIsReceiver: !!vtr && vsrc === vtr.receiver.track,
				tileAudioIsReceiver: !!atr && asrc === atr.receiver.track,
				tileVideo: !!vsrc, tileAudio: !!asrc,
				width: video ? video.videoWidth : 0,
				frames: video ? video.getVideoPlaybackQuality().totalVideoFrames : 0,
				audioEnergy: (st(audioSid) || {}).totalAudioEnergy || 0,
				videoDecrypted: e2(videoSid).decrypted, audioDecrypted: e2(audioSid).decrypted,
				videoRejected: e2(videoSid).rejected, audioRejected: e2(audioSid).rejected,
				stats: stats.filter(s => s.identity === identity).map(s => ({sid: s.trackSid, kind: s.kind})),
			};
		},
	};
	(() => {
		const Native = window.WebSocket;
		window.WebSocket = class extends Native {
			constructor(...args) {
				super(...args);
				this.addEventListener("message", ev => {
					try {
						const m = JSON.parse(ev.data);
						if (m.type === "ack") window.__reuse.acks.push(m.id);
					} catch {}
				});
			}
			send(data) {
				try {
					const m = JSON.parse(data);
					if (m.type === "answer" && m.target === "subscriber") window.__reuse.answers.push(m.id);
				} catch {}
				return super.send(data);
			}
		};
	})();`

// noScriptTransformJS makes the page's E2EE fall back to
// createEncodedStreams, as in a Chromium before RTCRtpScriptTransform:
// there a receiver's streams can be taken once, and a reused one is
// retargeted in the worker instead.
const noScriptTransformJS = `delete window.RTCRtpScriptTransform;`

// reuseDescribeJS is what a failed wait prints.
const reuseDescribeJS = `(() => ({
	sections: window.__reuse.sections(), transceivers: window.__reuse.transceivers(),
	answers: window.__reuse.answers, acks: window.__reuse.acks.slice(-10), events: window.__reuse.events,
	tiles: [...document.querySelectorAll("[data-identity]")].map(e => ({...e.dataset})),
	state: window.sotto && window.sotto.state,
}))()`

// reuseView is what __reuse.view reports.
type reuseView struct {
	Mode, ParticipantSid, Tile               string
	VideoMid, VideoDir, VideoOwner           string
	AudioMid, AudioDir, AudioOwner           string
	TileVideoIsReceiver, TileAudioIsReceiver bool
	TileVideo, TileAudio                     bool
	Width, Frames                            int
	AudioEnergy                              float64
	VideoDecrypted, AudioDecrypted           int
	VideoRejected, AudioRejected             int
	Stats                                    []struct{ Sid, Kind string }
}

type reuseEvent struct {
	Type, Identity, Sid, Kind, Mid string
}

type reuseSection struct {
	Kind, Mid, Dir, ParticipantSid, TrackSid string
}

// openReuseTab opens the call page as name with its peer connections,
// answers and acks recorded (without the page's own camera and microphone
// unless withMedia), and waits until it is in the call.
func openReuseTab(t *testing.T, b *browser, srv *webServer, room, name, mode string, withMedia bool) *callTab {
	t.Helper()
	ctx := b.person(t, name)
	script := reuseRecordJS
	if mode == "streams" {
		script = noScriptTransformJS + script
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: script}); err != nil {
		t.Fatalf("%s: init script: %v", name, err)
	}
	q := url.Values{"room": {room}, "name": {name}, "test-video": {callVideoSize}, "test-fps": {callVideoFPS}}
	if !withMedia {
		q.Set("test-media", "none")
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/?"+q.Encode())); err != nil {
		t.Fatalf("%s: open the call page: %v", name, err)
	}
	tab := &callTab{name: name, ctx: ctx}
	tab.waitInCall(t)
	return tab
}

func (c *callTab) reuseView(t *testing.T, identity, videoSid, audioSid string) reuseView {
	t.Helper()
	var v reuseView
	c.eval(t, fmt.Sprintf(`window.__reuse.view(%s, %s, %s)`, jsString(identity), jsString(videoSid), jsString(audioSid)), &v)
	return v
}

func (c *callTab) reuseSections(t *testing.T) []reuseSection {
	t.Helper()
	var s []reuseSection
	c.eval(t, `window.__reuse.sections()`, &s)
	return s
}

func (c *callTab) reuseEvents(t *testing.T) []reuseEvent {
	t.Helper()
	var e []reuseEvent
	c.eval(t, `window.__reuse.events`, &e)
	return e
}

// waitShows waits until identity's tile shows and plays the tracks
// videoSid and audioSid (audioSid "" for none): the tile's elements hold
// the receivers of the sections whose msid names them, the video decodes
// (at width, if not 0) with frames advancing, both
// decrypt, the audio has energy, and the tile says encrypted. It returns
// the view once all advanced.
func (c *callTab) waitShows(t *testing.T, identity, videoSid, audioSid string, width int, encrypted bool) reuseView {
	t.Helper()
	args := fmt.Sprintf(`%s, %s, %s`, jsString(identity), jsString(videoSid), jsString(audioSid))
	withAudio := audioSid != ""
	state := "not-encrypted"
	if encrypted {
		state = "encrypted"
	}
	c.waitFor(t, fmt.Sprintf("%s's tile plays %s %s, %s", identity, videoSid, audioSid, state),
		fmt.Sprintf(`(async () => { const v = await window.__reuse.view(%s); const audio = %v, enc = %v;
			return v.videoDir === "sendonly" && v.videoOwner === v.participantSid && v.tileVideoIsReceiver && (%d ? v.width === %d : v.width > 0) &&
				v.frames > 0 && (!enc || v.videoDecrypted > 0) && v.tile === %q &&
				(!audio || (v.audioDir === "sendonly" && v.audioOwner === v.participantSid && v.tileAudioIsReceiver && (!enc || v.audioDecrypted > 0))); })()`,
			args, withAudio, encrypted, width, width, state),
		fmt.Sprintf(`(async () => ({view: await window.__reuse.view(%s), more: %s}))()`, args, reuseDescribeJS))
	base := c.reuseView(t, identity, videoSid, audioSid)
	c.waitFor(t, fmt.Sprintf("%s's media keeps playing", identity),
		fmt.Sprintf(`(async () => { const v = await window.__reuse.view(%s); const audio = %v;
			const enc = %v;
			return v.frames >= %d && (!enc || v.videoDecrypted >= %d) && (!audio || ((!enc || v.audioDecrypted >= %d) && v.audioEnergy > %g)); })()`,
			args, withAudio, encrypted, base.Frames+20, base.VideoDecrypted+20, base.AudioDecrypted+25, base.AudioEnergy),
		fmt.Sprintf(`window.__reuse.view(%s)`, args))
	v := c.reuseView(t, identity, videoSid, audioSid)
	// Statistics of the section's earlier stream must not pass for this one's.
	seen := map[string]int{}
	for _, s := range v.Stats {
		seen[s.Sid]++
	}
	for sid, n := range seen {
		if n > 1 {
			t.Errorf("%s: inboundStats lists %s's track %s %d times: %+v", c.name, identity, sid, n, v.Stats)
		}
	}
	if !encrypted && (v.VideoDecrypted > 0 || v.AudioDecrypted > 0) {
		t.Errorf("%s: %s does not encrypt, yet frames of its tracks were decrypted: %+v", c.name, identity, v)
	}
	if v.VideoRejected > 0 || v.AudioRejected > 0 {
		t.Errorf("%s: frames of %s's tracks failed to decrypt: video %d, audio %d", c.name, identity, v.VideoRejected, v.AudioRejected)
	}
	return v
}

// waitEnded waits until the page has seen identity's tracks videoSid and
// audioSid ("" for none) end: the SDK reported each ended, their sections
// are inactive in an offer whose answer the node has acked (so it may
// reuse them), and identity's tile, if any, holds neither.
func (c *callTab) waitEnded(t *testing.T, identity, videoSid, audioSid string) {
	t.Helper()
	var sids []string
	for _, s := range []string{videoSid, audioSid} {
		if s != "" {
			sids = append(sids, s)
		}
	}
	c.waitFor(t, fmt.Sprintf("%s's %v ended, their sections inactive and the answer applied", identity, sids),
		fmt.Sprintf(`(() => { const r = window.__reuse; const sids = %s; const n = %s; const video = %v, audio = %v;
			const secs = r.sections();
			const tile = document.querySelector('[data-identity="' + CSS.escape(n) + '"]:not([data-self])');
			const empty = !tile || ((!video || !tile.querySelector("video").srcObject) && (!audio || !tile.querySelector("audio").srcObject));
			return sids.every(sid => r.events.some(e => e.type === "trackunpublished" && e.sid === sid && e.identity === n)) &&
				sids.every(sid => !secs.some(s => s.trackSid === sid)) && empty && r.settled() &&
				r.transceivers().every(tr => tr.current === "inactive" || secs.some(s => s.mid === tr.mid && s.dir === "sendonly" && s.trackSid)); })()`,
			callJSList(sids), jsString(identity), videoSid != "", audioSid != ""),
		reuseDescribeJS)
}

// checkReused fails unless v arrived on the mids of the first round and
// the subscriber offer still has one section of each kind.
func (c *callTab) checkReused(t *testing.T, round string, v, first reuseView, withAudio bool) {
	t.Helper()
	if v.VideoMid != first.VideoMid || (withAudio && v.AudioMid != first.AudioMid) {
		t.Fatalf("%s: %s arrived on mids video %q audio %q, not the reused %q and %q; sections %+v",
			c.name, round, v.VideoMid, v.AudioMid, first.VideoMid, first.AudioMid, c.reuseSections(t))
	}
	kinds := map[string]int{}
	for _, s := range c.reuseSections(t) {
		kinds[s.Kind]++
	}
	want := map[string]int{"video": 1}
	if withAudio {
		want["audio"] = 1
	}
	for k, n := range want {
		if kinds[k] != n {
			t.Fatalf("%s: %s: %d %s sections, want %d: %+v", c.name, round, kinds[k], k, n, c.reuseSections(t))
		}
	}
}

// checkTrackEvents fails unless the SDK reported the track sids on mids
// after it reported every one of ended ended.
func checkTrackEvents(t *testing.T, events []reuseEvent, ended []string, identity string, sids map[string]string) {
	t.Helper()
	last := -1
	for i, e := range events {
		for _, sid := range ended {
			if e.Type == "trackunpublished" && e.Sid == sid {
				last = max(last, i)
			}
		}
	}
	for sid, mid := range sids {
		found := false
		for i, e := range events {
			if e.Type == "track" && e.Sid == sid {
				found = true
				if e.Identity != identity || e.Mid != mid || i < last {
					t.Errorf("track %s reported as %+v (event %d, the old tracks ended at event %d); want %s's on mid %s after the end",
						sid, e, i, last, identity, mid)
				}
			}
		}
		if !found {
			t.Errorf("the SDK never reported track %s; events %+v", sid, events)
		}
	}
}

// reusePublisher is a Go SDK participant that publishes the ffmpeg
// fixtures as camera and microphone, E2EE on.
type reusePublisher struct {
	name     string
	c        *client.Client
	ivf, ogg string

	cam, mic       *client.Publication
	camSid, micSid string
	stop           context.CancelFunc
	sent           chan error
}

func connectReusePublisher(t *testing.T, ctx context.Context, srv *webServer, room, name, ivf, ogg string, clear bool) *reusePublisher {
	t.Helper()
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	c, err := client.Connect(ctx, srv.URL, client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll, Disabled: clear},
		Token:         srv.Token(room, name, true, true),
		SettingEngine: &se,
		Logger:        testLogger(),
	})
	if err != nil {
		t.Fatalf("%s: connect: %v", name, err)
	}
	p := &reusePublisher{name: name, c: c, ivf: ivf, ogg: ogg}
	t.Cleanup(func() {
		p.stopSending(t)
		_ = c.Close()
	})
	return p
}

// publish publishes camera and microphone, sends the fixtures, and waits
// until the node has announced both.
func (p *reusePublisher) publish(t *testing.T, ctx context.Context) {
	t.Helper()
	var err error
	if p.cam, err = p.c.PublishSample(ctx, "camera", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}); err != nil {
		t.Fatalf("%s: publish camera: %v", p.name, err)
	}
	if p.mic, err = p.c.PublishSample(ctx, "mic", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}); err != nil {
		t.Fatalf("%s: publish mic: %v", p.name, err)
	}
	sendCtx, stop := context.WithCancel(ctx)
	p.stop, p.sent = stop, make(chan error, 2)
	cam, mic := p.cam, p.mic
	go func() { p.sent <- sendIVF(sendCtx, cam, p.ivf) }()
	go func() { p.sent <- sendOgg(sendCtx, mic, p.ogg) }()
	for _, pub := range []*client.Publication{p.cam, p.mic} {
		info, err := pub.WaitPublished(ctx)
		if err != nil {
			t.Fatalf("%s: %s never announced: %v", p.name, pub.Track().ID(), err)
		}
		if pub == p.cam {
			p.camSid = info.SID
		} else {
			p.micSid = info.SID
		}
	}
}

func (p *reusePublisher) stopSending(t *testing.T) {
	t.Helper()
	if p.stop == nil {
		return
	}
	p.stop()
	for range 2 {
		if err := <-p.sent; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("%s: sending the fixtures: %v", p.name, err)
		}
	}
	p.stop = nil
}

// unpublish stops sending and unpublishes both tracks; it returns their sids.
func (p *reusePublisher) unpublish(t *testing.T, ctx context.Context) []string {
	t.Helper()
	p.stopSending(t)
	for _, pub := range []*client.Publication{p.cam, p.mic} {
		if err := p.c.Unpublish(ctx, pub); err != nil {
			t.Fatalf("%s: unpublish: %v", p.name, err)
		}
	}
	return []string{p.camSid, p.micSid}
}

func TestBrowserReusedSection(t *testing.T) {
	ivf, ogg := makeFixtures(t)
	for _, mode := range []string{"script", "streams"} {
		t.Run("go_publishers_"+mode, func(t *testing.T) { reusedSectionGoPublishers(t, mode, ivf, ogg) })
	}
	for _, mode := range []string{"script", "streams"} {
		t.Run("clear_and_encrypted_"+mode, func(t *testing.T) { reusedSectionClearAndEncrypted(t, mode, ivf, ogg) })
	}
	for _, mode := range []string{"script", "streams"} {
		t.Run("browser_republishes_"+mode, func(t *testing.T) { reusedSectionBrowserRepublishes(t, mode) })
	}
}

// reusedSectionGoPublishers: a browser receives, on the same two mids, Go
// participant a's camera and microphone, then b's, then b's again after b
// unpublished, then, b gone, a's again; each shown and decrypted as its
// owner's, the previous owner's ended.
func reusedSectionGoPublishers(t *testing.T, mode, ivf, ogg string) {
	srv := startWebServer(t, nil)
	b := newBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*browserTimeout)
	defer cancel()
	const room = "reuse"

	a := connectReusePublisher(t, ctx, srv, room, "a", ivf, ogg, false)
	bob := connectReusePublisher(t, ctx, srv, room, "b", ivf, ogg, false)
	a.publish(t, ctx)
	viewer := openReuseTab(t, b, srv, room, "viewer", mode, false)
	var ok bool
	viewer.eval(t, `window.__reuse.listen()`, &ok)

	first := viewer.waitShows(t, "a", a.camSid, a.micSid, fixtureWidth, true)
	if first.Mode != mode {
		t.Fatalf("the page's E2EE uses transform mode %q, want %q", first.Mode, mode)
	}
	t.Logf("round 1: a on mids video %s audio %s, %d frames", first.VideoMid, first.AudioMid, first.Frames)

	// a ends; b takes a's sections.
	ended := a.unpublish(t, ctx)
	viewer.waitEnded(t, "a", ended[0], ended[1])
	bob.publish(t, ctx)
	v := viewer.waitShows(t, "b", bob.camSid, bob.micSid, fixtureWidth, true)
	viewer.checkReused(t, "b's tracks", v, first, true)
	if av := viewer.reuseView(t, "a", ended[0], ended[1]); av.TileVideo || av.TileAudio || len(av.Stats) > 0 || av.Tile == "none" {
		t.Fatalf("a, who only unpublished, still shows media or lost its tile: %+v", av)
	}
	checkTrackEvents(t, viewer.reuseEvents(t), ended, "b", map[string]string{bob.camSid: first.VideoMid, bob.micSid: first.AudioMid})
	t.Logf("round 2: b on the same mids, %d frames, decrypted video %d audio %d", v.Frames, v.VideoDecrypted, v.AudioDecrypted)

	// b republishes: the same owner on the same sections, new tracks.
	ended = bob.unpublish(t, ctx)
	viewer.waitEnded(t, "b", ended[0], ended[1])
	bob.publish(t, ctx)
	v = viewer.waitShows(t, "b", bob.camSid, bob.micSid, fixtureWidth, true)
	viewer.checkReused(t, "b's new tracks", v, first, true)
	checkTrackEvents(t, viewer.reuseEvents(t), ended, "b", map[string]string{bob.camSid: first.VideoMid, bob.micSid: first.AudioMid})
	t.Logf("round 3: b again on the same mids, %d frames", v.Frames)

	// b leaves; a publishes again and takes the sections back.
	ended = []string{bob.camSid, bob.micSid}
	bob.stopSending(t)
	if err := bob.c.Leave(ctx); err != nil {
		t.Fatalf("b: leave: %v", err)
	}
	viewer.waitEnded(t, "b", ended[0], ended[1])
	viewer.waitFor(t, "b's tile gone", `!document.querySelector('[data-identity="b"]')`, reuseDescribeJS)
	a.publish(t, ctx)
	v = viewer.waitShows(t, "a", a.camSid, a.micSid, fixtureWidth, true)
	viewer.checkReused(t, "a's new tracks", v, first, true)
	checkTrackEvents(t, viewer.reuseEvents(t), ended, "a", map[string]string{a.camSid: first.VideoMid, a.micSid: first.AudioMid})
	t.Logf("round 4: a again on the same mids, %d frames", v.Frames)
	a.stopSending(t)
}

// reusedSectionBrowserRepublishes: between two pages, one unpublishes its
// camera and publishes the same track again; the other shows the new
// track from the same section.
func reusedSectionBrowserRepublishes(t *testing.T, mode string) {
	srv := startWebServer(t, nil)
	b := newBrowser(t)
	const room = "reuse-browsers"
	pub := openReuseTab(t, b, srv, room, "p", mode, true)
	viewer := openReuseTab(t, b, srv, room, "viewer", mode, false)
	pub.admit(t, "viewer")
	var ok bool
	viewer.eval(t, `window.__reuse.listen()`, &ok)

	camSid := func(c *callTab) string {
		var sid string
		c.waitFor(t, "the camera announced", `!!window.sotto.call.publications.find(p => p.source === "camera" && p.sid)`, reuseDescribeJS)
		c.eval(t, `window.sotto.call.publications.find(p => p.source === "camera").sid`, &sid)
		return sid
	}
	const width = 0 // Chromium may scale its camera down under load
	old := camSid(pub)
	first := viewer.waitShows(t, "p", old, "", width, true)
	if first.Mode != mode {
		t.Fatalf("the page's E2EE uses transform mode %q, want %q", first.Mode, mode)
	}

	pub.eval(t, `(async () => { const p = window.sotto.call.publications.find(p => p.source === "camera");
		window.__camera = p.track; await window.sotto.call.unpublish(p); return true; })()`, &ok)
	viewer.waitEnded(t, "p", old, "")
	pub.eval(t, `(async () => { await window.sotto.call.publish(window.__camera, {source: "camera"}); return true; })()`, &ok)
	sid := camSid(pub)
	if sid == old {
		t.Fatalf("the republished camera kept its sid %s", sid)
	}
	v := viewer.waitShows(t, "p", sid, "", width, true)
	viewer.checkReused(t, "p's new camera", v, first, true)
	checkTrackEvents(t, viewer.reuseEvents(t), []string{old}, "p", map[string]string{sid: first.VideoMid})
	t.Logf("p's camera again on mid %s, %d frames", v.VideoMid, v.Frames)
}

// reusedSectionClearAndEncrypted: a participant who does not encrypt
// publishes first, then an encrypting one takes the sections, then the
// first again: the clear media plays each time, marked not encrypted, and
// the encrypted media is decrypted under its owner's keys.
func reusedSectionClearAndEncrypted(t *testing.T, mode, ivf, ogg string) {
	srv := startWebServer(t, nil)
	b := newBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*browserTimeout)
	defer cancel()
	const room = "reuse-clear"

	a := connectReusePublisher(t, ctx, srv, room, "a", ivf, ogg, false)
	plain := connectReusePublisher(t, ctx, srv, room, "plain", ivf, ogg, true)
	plain.publish(t, ctx)
	viewer := openReuseTab(t, b, srv, room, "viewer", mode, false)
	var ok bool
	viewer.eval(t, `window.__reuse.listen()`, &ok)
	first := viewer.waitShows(t, "plain", plain.camSid, plain.micSid, fixtureWidth, false)
	if first.Mode != mode {
		t.Fatalf("the page's E2EE uses transform mode %q, want %q", first.Mode, mode)
	}
	t.Logf("plain in clear on mids video %s audio %s, %d frames", first.VideoMid, first.AudioMid, first.Frames)

	ended := plain.unpublish(t, ctx)
	viewer.waitEnded(t, "plain", ended[0], ended[1])
	a.publish(t, ctx)
	v := viewer.waitShows(t, "a", a.camSid, a.micSid, fixtureWidth, true)
	viewer.checkReused(t, "a's tracks", v, first, true)
	t.Logf("a on the same mids, %d frames, decrypted video %d audio %d", v.Frames, v.VideoDecrypted, v.AudioDecrypted)

	ended = a.unpublish(t, ctx)
	viewer.waitEnded(t, "a", ended[0], ended[1])
	plain.publish(t, ctx)
	v = viewer.waitShows(t, "plain", plain.camSid, plain.micSid, fixtureWidth, false)
	viewer.checkReused(t, "plain's new tracks", v, first, true)
	var state string
	viewer.eval(t, `document.querySelector('[data-identity="a"]').dataset.e2eeState`, &state)
	if state != "encrypted" {
		t.Errorf("a's tile says %q once plain's clear frames took a's sections; want encrypted (nothing of a's failed)", state)
	}
	t.Logf("plain again on the same mids, in clear, %d frames", v.Frames)
	plain.stopSending(t)
}
