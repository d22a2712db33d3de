package client_test

// A hostile node rewrites the per-track fields it sends (TrackInfo.E2EE,
// TrackInfo.Identity, which participant lists a track) to make a client
// take one participant's media for another's, or clear media for
// encrypted. The SDK decides from the owning participant only.

import (
	"bytes"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sotto-rtc/sotto/internal/hostilenode"
	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// moveTrack moves the track sid, in a joined message, from the
// participant that lists it into the one with identity to, and lets
// relabel change the track on the way. It reports whether it moved it.
func moveTrack(m map[string]any, sid, to string, relabel func(track, owner map[string]any)) bool {
	var from, dest map[string]any
	var track map[string]any
	for _, p := range hostilenode.Participants(m) {
		if p["identity"] == to {
			dest = p
		}
		list, _ := p["tracks"].([]any)
		for i, t := range list {
			if tm, ok := t.(map[string]any); ok && tm["sid"] == sid {
				from, track = p, tm
				p["tracks"] = slices.Delete(list, i, i+1)
				break
			}
		}
	}
	if track == nil || dest == nil || from == nil {
		return false
	}
	relabel(track, dest)
	list, _ := dest["tracks"].([]any)
	dest["tracks"] = append(list, track)
	return true
}

// hostileRecv records every remote track a client is given and every
// frame ReadFrame returns from it.
type hostileRecv struct {
	mu     sync.Mutex
	tracks []*gotTrack
	wake   chan struct{} // cap 1
}

type gotTrack struct {
	rt     *client.RemoteTrack
	frames []client.Frame
}

func newHostileRecv() *hostileRecv { return &hostileRecv{wake: make(chan struct{}, 1)} }

func (h *hostileRecv) signal() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// conf makes a client deliver its tracks to h.
func (h *hostileRecv) conf(o *client.Options) { o.Handlers.Track = h.track }

func (h *hostileRecv) track(rt *client.RemoteTrack) {
	g := &gotTrack{rt: rt}
	h.mu.Lock()
	h.tracks = append(h.tracks, g)
	h.mu.Unlock()
	h.signal()
	go func() {
		for {
			f, err := rt.ReadFrame()
			if err != nil {
				return
			}
			h.mu.Lock()
			g.frames = append(g.frames, f)
			h.mu.Unlock()
			h.signal()
		}
	}()
}

// of returns the tracks delivered with this SID, in order.
func (h *hostileRecv) of(sid string) []*gotTrack {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*gotTrack
	for _, g := range h.tracks {
		if g.rt.Info.SID == sid {
			out = append(out, g)
		}
	}
	return out
}

// waitUntil waits until cond, called with h.mu held, holds. It wakes on
// every delivered track and returned frame, and every 20ms for what has
// no event of its own (frames ReadFrame drops, refused tracks); the
// deadline is generous.
func (h *hostileRecv) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		h.mu.Lock()
		ok := cond()
		h.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-h.wake:
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("%s: not after %v", what, testTimeout)
		}
	}
}

// framesOf returns a copy of the frames returned from g so far.
func (h *hostileRecv) framesOf(g *gotTrack) []client.Frame {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(g.frames)
}

// expectDecrypted checks that every frame h got from g decrypted and is
// one owner sent on a track of kind.
func (h *hostileRecv) expectDecrypted(t *testing.T, who string, g *gotTrack, owner, kind string) {
	t.Helper()
	info := g.rt.Info
	info.Identity, info.Kind = owner, kind
	for _, f := range h.framesOf(g) {
		if !f.Encrypted {
			t.Fatalf("%s: a frame of %s's track came up as clear: %.40q", who, owner, f.Data)
		}
		if err := checkFrame(info, f.Data); err != nil {
			t.Fatalf("%s: %v", who, err)
		}
	}
}

func TestHostileNodeFlipsTrackE2EEOff(t *testing.T) {
	srv := newServer(t)
	ctx := testContext(t)
	direct, up := srv.Frontend(), srv.Frontend()

	// The node marks every track of alice's as not end-to-end encrypted;
	// once downgrade is set it also says alice herself does not encrypt,
	// and has no identity key.
	var mu sync.Mutex
	downgrade := false
	proxy := hostilenode.New(t, up.URL, hostilenode.JSON(func(m map[string]any) bool {
		mu.Lock()
		all := downgrade
		mu.Unlock()
		changed := false
		for _, p := range hostilenode.Participants(m) {
			if p["identity"] == "alice" && all {
				p["e2ee"] = false
				delete(p, "public_key")
				changed = true
			}
		}
		for _, tr := range hostilenode.Tracks(m) {
			if tr["identity"] == "alice" {
				tr["e2ee"] = false
				changed = true
			}
		}
		return changed
	}))

	alice := joinE2EE(ctx, t, direct.URL, srv.Token("alice", true, false), "alice")
	// bob hears of alice's track in track_published, carol in joined.
	bobRecv, carolRecv := newHostileRecv(), newHostileRecv()
	bob := joinE2EE(ctx, t, proxy.URL, srv.Token("bob", false, true), "bob", bobRecv.conf)
	waitJoined(t, alice, "bob")
	pub, err := alice.c.PublishSample(ctx, "alice-audio", opus())
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go writeFrames(pub, "alice", wire.KindAudio, 20*time.Millisecond, 0, stop)
	info, err := pub.WaitPublished(ctx) // the server announces a track at its first packet
	if err != nil {
		t.Fatal(err)
	}
	joinE2EE(ctx, t, proxy.URL, srv.Token("carol", false, true), "carol", carolRecv.conf)

	const enough = 20
	for _, r := range []struct {
		who  string
		recv *hostileRecv
	}{{"bob", bobRecv}, {"carol", carolRecv}} {
		r.recv.waitUntil(t, r.who+" decrypts alice's frames", func() bool {
			for _, g := range r.recv.tracks {
				if g.rt.Info.SID != info.SID {
					continue
				}
				if len(g.frames) > 0 && !g.frames[len(g.frames)-1].Encrypted {
					return true // checked below
				}
				if len(g.frames) >= enough {
					return true
				}
			}
			return false
		})
		gs := r.recv.of(info.SID)
		g := gs[0]
		if g.rt.Info.E2EE {
			t.Fatalf("%s: the proxy did not mark alice's track as clear", r.who)
		}
		r.recv.expectDecrypted(t, r.who, g, "alice", wire.KindAudio)
		if st := g.rt.Stats(); st.Clear != 0 || st.Decrypted < enough {
			t.Fatalf("%s: %+v; want every frame decrypted, none clear", r.who, st)
		}
	}

	// Then the node says alice does not encrypt at all, and makes bob and
	// carol reconnect to hear it. bob saw alice encrypt: her frames must
	// still decrypt or be dropped, never come up as clear.
	mu.Lock()
	downgrade = true
	mu.Unlock()
	before := len(bobRecv.of(info.SID))
	if up.Drop() == 0 {
		t.Fatal("no connection to drop")
	}
	var again *gotTrack
	bobRecv.waitUntil(t, "bob gets alice's track again after reconnecting, and drops its frames", func() bool {
		n := 0
		for _, g := range bobRecv.tracks {
			if g.rt.Info.SID == info.SID {
				if n++; n > before {
					again = g
				}
			}
		}
		return again != nil && (len(again.frames) > 0 || again.rt.Stats().ClearRefused >= enough)
	})
	if again.rt.Participant.E2EE || again.rt.Participant.PublicKey != "" {
		t.Fatal("the proxy did not downgrade alice in bob's roster")
	}
	bobRecv.expectDecrypted(t, "bob after the downgrade", again, "alice", wire.KindAudio)
	st := again.rt.Stats()
	t.Logf("before the downgrade: bob %+v, carol %+v; after: bob %+v",
		bobRecv.of(info.SID)[0].rt.Stats(), carolRecv.of(info.SID)[0].rt.Stats(), st)
	if st.Clear != 0 || st.ClearRefused < enough {
		t.Fatalf("bob after the downgrade: %+v; want alice's frames refused, none clear", st)
	}
	// The lie shows: bob's roster says alice does not encrypt, and bob's
	// safety number, without alice, differs from hers.
	for _, p := range bob.c.Participants() {
		if p.Identity == "alice" && p.E2EE {
			t.Fatal("bob's roster still says alice encrypts")
		}
	}
	if bob.c.SafetyNumber() == alice.c.SafetyNumber() {
		t.Fatal("bob's safety number did not change when the node hid alice's key")
	}
}

func TestHostileNodeInjectsClearMediaUnderEncryptingParticipant(t *testing.T) {
	hostileInjectsClearMedia(t)
}

// hostileInjectsClearMedia: the node presents a clear track of dave's (who
// does not encrypt) as a track of alice's (who does). bob refuses and
// counts every frame; erin, who opted in to clear media (AcceptClear),
// gets them flagged as clear. Also TestHostileServer/inject_clear_media.
func hostileInjectsClearMedia(t *testing.T) {
	srv := newServer(t)
	ctx := testContext(t)
	direct := srv.Frontend().URL

	joinE2EE(ctx, t, direct, srv.Token("alice", false, true), "alice")
	dave, err := client.Connect(ctx, direct, client.Options{
		Token:         srv.Token("dave", true, false),
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
		E2EE:          client.E2EEOptions{Disabled: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dave.Close()
	pub, err := dave.PublishSample(ctx, "dave-audio", opus())
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go writeFrames(pub, "dave", wire.KindAudio, 20*time.Millisecond, 0, stop)
	info, err := pub.WaitPublished(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The node presents dave's clear track as alice's: in alice's track
	// list, with her identity and session, marked as not encrypted.
	proxy := hostilenode.New(t, direct, hostilenode.JSON(func(m map[string]any) bool {
		if m["type"] != wire.TypeJoined {
			return false
		}
		return moveTrack(m, info.SID, "alice", func(track, owner map[string]any) {
			track["identity"] = "alice"
			track["participant_sid"] = owner["sid"]
			track["e2ee"] = false
		})
	}))
	bobRecv, erinRecv := newHostileRecv(), newHostileRecv()
	joinE2EE(ctx, t, proxy.URL, srv.Token("bob", false, true), "bob", bobRecv.conf)
	joinE2EE(ctx, t, proxy.URL, srv.Token("erin", false, true), "erin", erinRecv.conf,
		func(o *client.Options) { o.E2EE.AcceptClear = true })

	const enough = 20
	// bob drops every frame, and counts them.
	bobRecv.waitUntil(t, "bob refuses the injected frames", func() bool {
		for _, g := range bobRecv.tracks {
			if g.rt.Info.SID == info.SID && (len(g.frames) > 0 || g.rt.Stats().ClearRefused >= enough) {
				return true
			}
		}
		return false
	})
	g := bobRecv.of(info.SID)[0]
	if g.rt.Participant.Identity != "alice" || !g.rt.Participant.E2EE || g.rt.Info.E2EE {
		t.Fatalf("the proxy did not present dave's track as alice's clear track: %+v, %+v", g.rt.Participant, g.rt.Info)
	}
	if fs := bobRecv.framesOf(g); len(fs) > 0 {
		t.Fatalf("bob's application received %d clear frames as alice's (first %.40q)", len(fs), fs[0].Data)
	}
	st := g.rt.Stats()
	if st.Clear != 0 || st.Decrypted != 0 || st.ClearRefused < enough {
		t.Fatalf("bob: %+v; want only refused frames", st)
	}

	// erin opted in to clear media: the frames come up, flagged as clear,
	// as they were sent.
	erinRecv.waitUntil(t, "erin receives the injected frames in clear", func() bool {
		for _, g := range erinRecv.tracks {
			if g.rt.Info.SID == info.SID && len(g.frames) >= enough {
				return true
			}
		}
		return false
	})
	ge := erinRecv.of(info.SID)[0]
	for _, f := range erinRecv.framesOf(ge) {
		if f.Encrypted {
			t.Fatal("erin: an injected clear frame came up marked encrypted")
		}
		if !bytes.Contains(f.Data, []byte(marker+"|dave|")) {
			t.Fatalf("erin: frame %.40q is not one dave sent", f.Data)
		}
	}
	ste := ge.rt.Stats()
	if ste.Clear < enough || ste.ClearRefused != 0 || ste.Decrypted != 0 {
		t.Fatalf("erin: %+v; want every frame returned in clear", ste)
	}
	t.Logf("bob (refuses) %+v; erin (AcceptClear) %+v", st, ste)
}

func TestHostileNodeRelabelsTrackToAnotherOwner(t *testing.T) {
	hostileRelabelsTrack(t)
}

// hostileRelabelsTrack: the node moves bob's track into carol's
// participant entry. dave, for whom the track still says bob, refuses it;
// erin, for whom it is relabelled carol's, gets it but none of bob's
// frames decrypts under carol's keys. Also TestHostileServer/relabel_track.
func hostileRelabelsTrack(t *testing.T) {
	srv := newServer(t)
	ctx := testContext(t)
	direct := srv.Frontend().URL

	// bob and carol both publish encrypted audio, so that the receivers
	// hold keys of both.
	stop := make(chan struct{})
	defer close(stop)
	sids := map[string]string{}
	for _, id := range []string{"bob", "carol"} {
		p := joinE2EE(ctx, t, direct, srv.Token(id, true, false), id)
		pub, err := p.c.PublishSample(ctx, id+"-audio", opus())
		if err != nil {
			t.Fatal(err)
		}
		go writeFrames(pub, id, wire.KindAudio, 20*time.Millisecond, 0, stop)
		info, err := pub.WaitPublished(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sids[id] = info.SID
	}

	// The node moves bob's track into carol's participant entry: for dave
	// with bob's identity left on the track, for erin relabelled carol's.
	relabel := func(identity string) func([]byte) []byte {
		return hostilenode.JSON(func(m map[string]any) bool {
			if m["type"] != wire.TypeJoined {
				return false
			}
			return moveTrack(m, sids["bob"], "carol", func(track, owner map[string]any) {
				track["participant_sid"] = owner["sid"]
				track["identity"] = identity
			})
		})
	}
	daveRecv, erinRecv := newHostileRecv(), newHostileRecv()
	dave := joinE2EE(ctx, t, hostilenode.New(t, direct, relabel("bob")).URL, srv.Token("dave", false, true), "dave", daveRecv.conf)
	joinE2EE(ctx, t, hostilenode.New(t, direct, relabel("carol")).URL, srv.Token("erin", false, true), "erin", erinRecv.conf)

	const enough = 20
	// dave: the track is refused and counted; carol's own track plays.
	daveRecv.waitUntil(t, "dave refuses bob's track and decrypts carol's", func() bool {
		carolOK := false
		for _, g := range daveRecv.tracks {
			switch g.rt.Info.SID {
			case sids["bob"]:
				return true // delivered: checked below
			case sids["carol"]:
				carolOK = len(g.frames) >= enough
			}
		}
		return carolOK && dave.c.RefusedTracks() >= 1
	})
	for _, g := range daveRecv.of(sids["bob"]) {
		t.Fatalf("dave was given bob's track as %s's (track identity %q), and %d of its frames",
			g.rt.Participant.Identity, g.rt.Info.Identity, len(daveRecv.framesOf(g)))
	}
	daveRecv.expectDecrypted(t, "dave", daveRecv.of(sids["carol"])[0], "carol", wire.KindAudio)
	if n := dave.c.RefusedTracks(); n != 1 {
		t.Fatalf("dave refused %d tracks; want bob's", n)
	}

	// erin: the track is carol's by every label, so it is delivered, but
	// bob's frames do not decrypt under carol's keys: none comes up.
	erinRecv.waitUntil(t, "erin drops bob's frames under carol's name and decrypts carol's", func() bool {
		carolOK, dropped := false, false
		for _, g := range erinRecv.tracks {
			switch g.rt.Info.SID {
			case sids["bob"]:
				st := g.rt.Stats()
				if len(g.frames) > 0 {
					return true // checked below
				}
				dropped = st.NoKey+st.Rejected >= enough
			case sids["carol"]:
				carolOK = len(g.frames) >= enough
			}
		}
		return carolOK && dropped
	})
	g := erinRecv.of(sids["bob"])[0]
	if g.rt.Participant.Identity != "carol" || g.rt.Info.Identity != "carol" {
		t.Fatalf("the proxy did not relabel bob's track as carol's: %+v", g.rt.Info)
	}
	n := len(erinRecv.framesOf(g))
	erinRecv.expectDecrypted(t, "erin", erinRecv.of(sids["carol"])[0], "carol", wire.KindAudio)
	st := g.rt.Stats()
	if n != 0 || st.Decrypted != 0 || st.Clear != 0 {
		t.Fatalf("erin received %d of bob's frames as carol's (%+v)", n, st)
	}
	t.Logf("dave refused %d track(s); erin on bob's track relabelled carol's: %+v", dave.c.RefusedTracks(), st)
}
