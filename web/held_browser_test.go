package web_test

// A track whose owner the page does not know yet. A hostile node can
// offer a participant's media on the subscriber connection and keep back
// the participant_joined and track_published that say whose it is. The
// page must give that receiver to E2EE at once, with a transform that
// drops every frame: Chromium ignores a transform set on a receiver that
// has received without one, so a receiver left bare until the owner is
// known would feed ciphertext to the decoder for good. Once the node
// announces the owner, the same receiver decrypts under its keys.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/sotto-rtc/sotto/internal/hostilenode"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// announcementHold is a filter for a hostile node: it keeps from viewer
// every message about owner (its arrival, its tracks, its relays) until
// release, which sends them on in order.
type announcementHold struct {
	node          *hostilenode.Node
	owner, viewer string

	mu       sync.Mutex
	released bool
	held     []string // the types of the messages held, in order
	msgs     [][]byte
}

// about reports whether msg, from the node, is about owner.
func (h *announcementHold) about(msg []byte) (string, bool) {
	var m struct {
		Type        string `json:"type"`
		Identity    string `json:"identity"`
		From        string `json:"from"`
		Participant struct {
			Identity string `json:"identity"`
		} `json:"participant"`
		Track struct {
			Identity string `json:"identity"`
		} `json:"track"`
	}
	if json.Unmarshal(msg, &m) != nil {
		return "", false
	}
	switch m.Type {
	case wire.TypeParticipantJoin:
		return m.Type, m.Participant.Identity == h.owner
	case wire.TypeTrackPublished:
		return m.Type, m.Track.Identity == h.owner
	case wire.TypeParticipantLeft, wire.TypeTrackUnpublished, wire.TypeTrackMuted:
		return m.Type, m.Identity == h.owner
	case wire.TypeRelay:
		return m.Type, m.From == h.owner
	}
	return m.Type, false
}

func (h *announcementHold) filter(c hostilenode.Conn, toClient bool, msg []byte) [][]byte {
	if !toClient || c.Identity != h.viewer {
		return [][]byte{msg}
	}
	typ, ok := h.about(msg)
	if !ok {
		return [][]byte{msg}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return [][]byte{msg}
	}
	h.held = append(h.held, typ)
	h.msgs = append(h.msgs, slices.Clone(msg))
	return nil
}

// heldTypes returns the types of the messages held so far.
func (h *announcementHold) heldTypes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.held)
}

// release sends the held messages on, in order, before any later one
// about owner.
func (h *announcementHold) release(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs {
		if err := h.node.Inject(h.viewer, m); err != nil {
			t.Fatalf("release the held messages: %v", err)
		}
	}
	h.released = true
}

// heldVideoJS describes the subscriber connection's video receivers:
// packets in, frames decoded, and what the SDK made of them.
const heldVideoJS = `(async () => {
	const pc = window.__reuse.subPC();
	const out = {packets: 0, decoded: 0, keyDecoded: 0, receivers: 0, events: window.__reuse.events.length,
		known: !!window.sotto.call && window.sotto.call.participants.has("a"), tile: !!document.querySelector('[data-identity="a"]')};
	if (!pc) return out;
	out.receivers = pc.getTransceivers().filter(tr => tr.mid !== null && tr.receiver.track.kind === "video").length;
	(await pc.getStats()).forEach(r => {
		if (r.type !== "inbound-rtp" || r.kind !== "video") return;
		out.packets += r.packetsReceived || 0;
		out.decoded += r.framesDecoded || 0;
		out.keyDecoded += r.keyFramesDecoded || 0;
	});
	return out;
})()`

type heldVideo struct {
	Packets, Decoded, KeyDecoded, Receivers, Events int
	Known, Tile                                     bool
}

func TestBrowserHeldTrackGetsTransformAtOnce(t *testing.T) {
	ivf, ogg := makeFixtures(t)
	for _, mode := range []string{"script", "streams"} {
		t.Run(mode, func(t *testing.T) { heldTrackGetsTransformAtOnce(t, mode, ivf, ogg) })
	}
}

// heldTrackGetsTransformAtOnce: a page is in a call through a hostile
// node; a Go participant who encrypts joins and publishes, and the node
// keeps back everything about it from the page while its media flows.
// No frame reaches the page's decoder then. Once the node lets the
// announcements through and the page admits it, its video decodes under
// its keys, no frame rejected.
func heldTrackGetsTransformAtOnce(t *testing.T, mode, ivf, ogg string) {
	srv := startWebServer(t, nil)
	node := hostilenode.New(t, srv.URL, nil)
	hold := &announcementHold{node: node, owner: "a", viewer: "viewer"}
	node.SetFilter(hold.filter)
	b := newBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*browserTimeout)
	defer cancel()
	const room = "held"

	vctx := b.person(t, "viewer")
	script := reuseRecordJS
	if mode == "streams" {
		script = noScriptTransformJS + script
	}
	if _, err := chromedp.Call(vctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: script}); err != nil {
		t.Fatalf("viewer: init script: %v", err)
	}
	q := url.Values{"room": {room}, "name": {"viewer"}, "test-media": {"none"}}
	if err := chromedp.Do(vctx, chromedp.Navigate(node.URL+"/?"+q.Encode())); err != nil {
		t.Fatalf("viewer: open the call page: %v", err)
	}
	viewer := &callTab{name: "viewer", ctx: vctx}
	viewer.waitInCall(t)
	viewer.waitMemberAlone(t)
	var ok bool
	viewer.eval(t, `window.__reuse.listen()`, &ok)

	a := connectReusePublisher(t, ctx, srv, room, "a", ivf, ogg, false)
	a.publish(t, ctx)
	waitGo(t, "the node holds a's arrival and both its tracks from the viewer", func() bool {
		h := hold.heldTypes()
		return slices.Contains(h, wire.TypeParticipantJoin) &&
			len(slices.DeleteFunc(h, func(s string) bool { return s != wire.TypeTrackPublished })) == 2
	}, func() string { return fmt.Sprintf("held %v", hold.heldTypes()) })

	// a's video has been arriving for a while: several key frames' worth.
	var before heldVideo
	viewer.waitFor(t, "a's video arrives, its owner unknown",
		`(async () => { const v = await `+heldVideoJS+`; return v.receivers > 0 && v.packets >= 300; })()`,
		`(async () => ({video: await `+heldVideoJS+`, more: `+reuseDescribeJS+`}))()`)
	viewer.eval(t, heldVideoJS, &before)
	var mode2 string
	viewer.eval(t, `window.sotto.call.e2ee.transformMode`, &mode2)
	if mode2 != mode {
		t.Fatalf("the page's E2EE uses transform mode %q, want %q", mode2, mode)
	}
	if before.Known || before.Tile || before.Events != 0 {
		t.Fatalf("the page knows a before the node announced it: %+v; events %+v", before, viewer.reuseEvents(t))
	}
	if before.Decoded != 0 || before.KeyDecoded != 0 {
		t.Fatalf("%d frames (%d key frames) of a's video reached the decoder before its owner was known: %+v",
			before.Decoded, before.KeyDecoded, before)
	}
	t.Logf("before the announcement: %d video packets in, no frame decoded", before.Packets)

	hold.release(t)
	viewer.admitListed(t, "a")
	v := viewer.waitShows(t, "a", a.camSid, a.micSid, fixtureWidth, true)
	t.Logf("after: %d frames shown, decrypted video %d audio %d, rejected video %d audio %d",
		v.Frames, v.VideoDecrypted, v.AudioDecrypted, v.VideoRejected, v.AudioRejected)
	checkTrackEvents(t, viewer.reuseEvents(t), nil, "a", map[string]string{a.camSid: v.VideoMid, a.micSid: v.AudioMid})
	a.stopSending(t)
}
