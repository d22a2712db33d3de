package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// testTimeout bounds every wait; nothing in these tests takes a fraction
// of it on a healthy machine.
const testTimeout = 30 * time.Second

// recorder collects what a client's handlers report. Its channels are large
// enough that a handler never blocks.
type recorder struct {
	joined       chan wire.ParticipantInfo
	left         chan string // "identity reason"
	published    chan wire.TrackInfo
	unpublished  chan wire.TrackInfo
	muted        chan wire.TrackInfo
	tracks       chan *client.RemoteTrack
	relays       chan relayMsg
	reconnecting chan error
	reconnected  chan struct{}
	disconnected chan error
	errs         chan *client.ServerError
}

type relayMsg struct {
	from wire.ParticipantInfo
	data json.RawMessage
}

const recorderDepth = 256

func newRecorder() *recorder {
	return &recorder{
		joined:       make(chan wire.ParticipantInfo, recorderDepth),
		left:         make(chan string, recorderDepth),
		published:    make(chan wire.TrackInfo, recorderDepth),
		unpublished:  make(chan wire.TrackInfo, recorderDepth),
		muted:        make(chan wire.TrackInfo, recorderDepth),
		tracks:       make(chan *client.RemoteTrack, recorderDepth),
		relays:       make(chan relayMsg, recorderDepth),
		reconnecting: make(chan error, recorderDepth),
		reconnected:  make(chan struct{}, recorderDepth),
		disconnected: make(chan error, recorderDepth),
		errs:         make(chan *client.ServerError, recorderDepth),
	}
}

func (r *recorder) handlers() client.Handlers {
	return client.Handlers{
		ParticipantJoined: func(p wire.ParticipantInfo) { r.joined <- p },
		ParticipantLeft:   func(p wire.ParticipantInfo, reason string) { r.left <- p.Identity + " " + reason },
		TrackPublished:    func(t wire.TrackInfo) { r.published <- t },
		TrackUnpublished:  func(t wire.TrackInfo) { r.unpublished <- t },
		TrackMuted:        func(t wire.TrackInfo) { r.muted <- t },
		Track:             func(t *client.RemoteTrack) { r.tracks <- t },
		Relay:             func(from wire.ParticipantInfo, data json.RawMessage) { r.relays <- relayMsg{from, data} },
		Reconnecting:      func(err error) { r.reconnecting <- err },
		Reconnected:       func() { r.reconnected <- struct{}{} },
		Disconnected:      func(err error) { r.disconnected <- err },
		Error:             func(e *client.ServerError) { r.errs <- e },
	}
}

func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// waitFor receives from ch until keep accepts a value.
func waitFor[T any](t *testing.T, ch <-chan T, what string, keep func(T) bool) T {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		select {
		case v := <-ch:
			if keep(v) {
				return v
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func newServer(t *testing.T) *localServer {
	t.Helper()
	srv, err := startLocalServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*testTimeout)
	t.Cleanup(cancel)
	return ctx
}

type conf func(*client.Options)

func noAutoSubscribe(o *client.Options) { o.AutoSubscribe = new(false) }

// connect joins url with token and returns the client and its recorder.
// The client is closed when the test ends.
func connect(t *testing.T, url, token string, confs ...conf) (*client.Client, *recorder) {
	t.Helper()
	rec := newRecorder()
	opts := client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         token,
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
		Handlers:      rec.handlers(),
		// Reconnect fast: the tests drop connections on purpose.
		Reconnect: client.ReconnectPolicy{InitialBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
	}
	for _, c := range confs {
		c(&opts)
	}
	c, err := client.Connect(testContext(t), url, opts)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, rec
}

// publishAudio publishes an Opus sample track that sends until the test
// ends.
func publishAudio(t *testing.T, c *client.Client, id string) *client.Publication {
	t.Helper()
	p, err := c.PublishSample(testContext(t), id, opus())
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	stop := make(chan struct{})
	sent := sendAudio(p, stop)
	t.Cleanup(func() { close(stop); <-sent })
	return p
}

// readPayloads reads a remote track's frames and passes them on, until the
// track ends; then the channel closes.
func readPayloads(rt *client.RemoteTrack) <-chan []byte {
	out := make(chan []byte, 1024)
	go func() {
		defer close(out)
		for {
			// E2EE is on: frames arrive encrypted and ReadFrame
			// decrypts them. A clear frame is marked so it fails.
			f, err := rt.ReadFrame()
			if err != nil {
				return
			}
			data := f.Data
			if !f.Encrypted {
				data = append([]byte("NOT END-TO-END ENCRYPTED: "), data...)
			}
			select {
			case out <- data:
			default: // the test stopped looking
			}
		}
	}()
	return out
}

// expectPayloads waits for n packets sent by sendAudio.
func expectPayloads(t *testing.T, payloads <-chan []byte, n int) {
	t.Helper()
	for range n {
		p, ok := <-payloads
		if !ok {
			t.Fatal("track ended before its packets arrived")
		}
		if !bytes.HasPrefix(p, []byte("sotto-")) {
			t.Fatalf("payload %q is not what was sent", p)
		}
	}
}

func serverErrorCode(err error) string {
	var se *client.ServerError
	if errors.As(err, &se) {
		return se.Code
	}
	return ""
}

func TestConnectAndJoin(t *testing.T) {
	srv := newServer(t)
	front := srv.Frontend()

	alice, arec := connect(t, front.URL, srv.Token("alice", true, true))
	if self := alice.Self(); self.Identity != "alice" || self.SID == "" || !self.CanPublish || !self.CanSubscribe {
		t.Fatalf("Self() = %+v", self)
	}
	if ps := alice.Participants(); len(ps) != 0 {
		t.Fatalf("alice sees %d participants in an empty room", len(ps))
	}

	// The full form of the URL works as well as the short one.
	wsURL := "ws" + strings.TrimPrefix(front.URL, "http") + wire.Path
	bob, brec := connect(t, wsURL, srv.Token("bob", false, true))

	if p := wait(t, arec.joined, "alice: bob joined"); p.Identity != "bob" || p.SID != bob.Self().SID {
		t.Fatalf("alice: joined %+v, want bob", p)
	}
	// Those already in the room are announced on join too.
	if p := wait(t, brec.joined, "bob: alice announced"); p.Identity != "alice" {
		t.Fatalf("bob: joined %+v, want alice", p)
	}
	if ps := bob.Participants(); len(ps) != 1 || ps[0].SID != alice.Self().SID {
		t.Fatalf("bob.Participants() = %+v", ps)
	}

	if err := bob.Leave(testContext(t)); err != nil {
		t.Fatalf("leave: %v", err)
	}
	select {
	case <-bob.Done():
	case <-testContext(t).Done():
		t.Fatal("Done not closed after Leave returned")
	}
	if !errors.Is(bob.Err(), client.ErrClosed) {
		t.Fatalf("Err() = %v, want ErrClosed", bob.Err())
	}
	if err := wait(t, brec.disconnected, "bob: disconnected"); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Disconnected(%v), want ErrClosed", err)
	}
	if got := wait(t, arec.left, "alice: bob left"); got != "bob left" {
		t.Fatalf("alice: left %q, want %q", got, "bob left")
	}
	if err := bob.Subscribe(testContext(t), "TR_x"); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Subscribe after Leave: %v, want ErrClosed", err)
	}
}

func TestConnectRefused(t *testing.T) {
	srv := newServer(t)
	front := srv.Frontend()
	good := srv.Token("alice", true, true)

	tests := []struct {
		name string
		opts client.Options
		code string
	}{
		{"bad signature", client.Options{Token: good[:len(good)-4] + "AAAA", E2EE: client.E2EEOptions{Admission: client.AdmitAll}}, wire.CodeTokenSignature},
		{"not a token", client.Options{Token: "nope", E2EE: client.E2EEOptions{Admission: client.AdmitAll}}, wire.CodeTokenMalformed},
		{"other room", client.Options{Token: good, Room: "elsewhere", E2EE: client.E2EEOptions{Admission: client.AdmitAll}}, wire.CodeRoomMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Logger = quietLogger()
			c, err := client.Connect(testContext(t), front.URL, tt.opts)
			if err == nil {
				_ = c.Close()
				t.Fatal("connected")
			}
			var se *client.ServerError
			if !errors.As(err, &se) || se.Code != tt.code || !se.Fatal {
				t.Fatalf("err = %v, want fatal %s", err, tt.code)
			}
		})
	}
}

func TestPublishAndReceive(t *testing.T) {
	srv := newServer(t)
	front := srv.Frontend()
	alice, arec := connect(t, front.URL, srv.Token("alice", true, true))
	bob, brec := connect(t, front.URL, srv.Token("bob", false, true))

	mic := publishAudio(t, alice, "mic")
	info, err := mic.WaitPublished(testContext(t))
	if err != nil {
		t.Fatalf("wait published: %v", err)
	}
	if info.ClientTrackID != "mic" || info.Kind != wire.KindAudio || info.Codec != webrtc.MimeTypeOpus ||
		info.ParticipantSID != alice.Self().SID || info.SID != mic.SID() {
		t.Fatalf("published %+v", info)
	}
	// The owner is told of its own track, like everyone else.
	if own := wait(t, arec.published, "alice: own track published"); own.SID != info.SID {
		t.Fatalf("alice: published %+v, want %s", own, info.SID)
	}
	if self := alice.Self(); len(self.Tracks) != 1 || self.Tracks[0].SID != info.SID {
		t.Fatalf("alice.Self().Tracks = %+v", self.Tracks)
	}
	if got := wait(t, brec.published, "bob: track published"); got.SID != info.SID {
		t.Fatalf("bob: published %+v, want %s", got, info.SID)
	}

	rt := wait(t, brec.tracks, "bob: track")
	if rt.Info.SID != info.SID || rt.Participant.Identity != "alice" || rt.Track.ID() != info.SID ||
		rt.Track.StreamID() != alice.Self().SID || rt.Track.Codec().MimeType != webrtc.MimeTypeOpus {
		t.Fatalf("bob: track %+v (id %s stream %s)", rt.Info, rt.Track.ID(), rt.Track.StreamID())
	}
	payloads := readPayloads(rt)
	expectPayloads(t, payloads, 10)
	if err := rt.RequestKeyframe(); err != nil {
		t.Fatalf("keyframe request: %v", err)
	}

	ctx := testContext(t)
	if err := alice.SetMuted(ctx, mic, true); err != nil {
		t.Fatalf("mute: %v", err)
	}
	if m := wait(t, brec.muted, "bob: track muted"); m.SID != info.SID || !m.Muted {
		t.Fatalf("bob: muted %+v", m)
	}

	if err := alice.Unpublish(ctx, mic); err != nil {
		t.Fatalf("unpublish: %v", err)
	}
	if u := wait(t, brec.unpublished, "bob: track unpublished"); u.SID != info.SID {
		t.Fatalf("bob: unpublished %+v", u)
	}
	for range payloads {
		// Reading ends once the server removes the track.
	}
	if ps := bob.Participants(); len(ps) != 1 || len(ps[0].Tracks) != 0 {
		t.Fatalf("bob.Participants() = %+v", ps)
	}
	if mic.SID() != "" {
		t.Fatalf("SID after unpublish = %q", mic.SID())
	}
	if _, err := mic.WaitPublished(ctx); !errors.Is(err, client.ErrNotPublished) {
		t.Fatalf("WaitPublished after unpublish: %v", err)
	}
}

func TestRelay(t *testing.T) {
	srv := newServer(t)
	front := srv.Frontend()
	alice, arec := connect(t, front.URL, srv.Token("alice", false, false), noAutoSubscribe)
	bob, brec := connect(t, front.URL, srv.Token("bob", false, false), noAutoSubscribe)
	ctx := testContext(t)

	if err := alice.SendRelay(ctx, nil, json.RawMessage(`{"n":1}`)); err != nil {
		t.Fatalf("relay to all: %v", err)
	}
	m := wait(t, brec.relays, "bob: relay")
	if m.from.Identity != "alice" || m.from.SID != alice.Self().SID || string(m.data) != `{"n":1}` {
		t.Fatalf("bob: relay %+v %s", m.from, m.data)
	}

	if err := bob.SendRelay(ctx, []string{"alice"}, json.RawMessage(`["back"]`)); err != nil {
		t.Fatalf("relay to alice: %v", err)
	}
	m = wait(t, arec.relays, "alice: relay")
	if m.from.Identity != "bob" || string(m.data) != `["back"]` {
		t.Fatalf("alice: relay %+v %s", m.from, m.data)
	}

	err := bob.SendRelay(ctx, []string{"nobody"}, json.RawMessage(`1`))
	if code := serverErrorCode(err); code != wire.CodeUnknownParticipant {
		t.Fatalf("relay to nobody: %v, want %s", err, wire.CodeUnknownParticipant)
	}
	// Invalid JSON is refused by the client itself: never sent, so no
	// server error (the server would answer bad_message).
	if err := bob.SendRelay(ctx, nil, json.RawMessage(`{`)); err == nil || serverErrorCode(err) != "" || !strings.Contains(err.Error(), "not JSON") {
		t.Fatalf("relay of invalid JSON: %v, want the client's own refusal", err)
	}
}

func TestSubscribeWithoutGrant(t *testing.T) {
	srv := newServer(t)
	front := srv.Frontend()
	alice, _ := connect(t, front.URL, srv.Token("alice", true, true))
	bob, brec := connect(t, front.URL, srv.Token("bob", false, false), noAutoSubscribe)

	publishAudio(t, alice, "mic")
	info := wait(t, brec.published, "bob: track published")
	err := bob.Subscribe(testContext(t), info.SID)
	if code := serverErrorCode(err); code != wire.CodePermissionDenied {
		t.Fatalf("subscribe: %v, want %s", err, wire.CodePermissionDenied)
	}
	// A refused request leaves the session as it was.
	if err := bob.SendRelay(testContext(t), nil, json.RawMessage(`"still here"`)); err != nil {
		t.Fatalf("relay after refusal: %v", err)
	}
}

func TestPublishWithoutGrant(t *testing.T) {
	srv := newServer(t)
	front := srv.Frontend()
	bob, _ := connect(t, front.URL, srv.Token("bob", false, true))

	_, err := bob.PublishSample(testContext(t), "mic", opus())
	if code := serverErrorCode(err); code != wire.CodePermissionDenied {
		t.Fatalf("publish: %v, want %s", err, wire.CodePermissionDenied)
	}
	if err := bob.SendRelay(testContext(t), nil, json.RawMessage(`"still here"`)); err != nil {
		t.Fatalf("relay after refusal: %v", err)
	}
}

// TestReconnect drops one client's WebSocket from the server side, as a
// network failure would, and checks that media flows again afterwards.
func TestReconnect(t *testing.T) {
	for _, drop := range []string{"subscriber", "publisher"} {
		t.Run("drop "+drop, func(t *testing.T) {
			srv := newServer(t)
			aliceFront, bobFront := srv.Frontend(), srv.Frontend()
			var tokens atomic.Int32
			alice, arec := connect(t, aliceFront.URL, "", func(o *client.Options) {
				o.TokenSource = func(context.Context) (string, error) {
					tokens.Add(1)
					return srv.Token("alice", true, true), nil
				}
			})
			_, brec := connect(t, bobFront.URL, srv.Token("bob", false, true))

			mic := publishAudio(t, alice, "mic")
			first, err := mic.WaitPublished(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			rt := wait(t, brec.tracks, "bob: track")
			payloads := readPayloads(rt)
			expectPayloads(t, payloads, 5)

			front, rec := bobFront, brec
			if drop == "publisher" {
				front, rec = aliceFront, arec
			}
			if n := front.Drop(); n != 1 {
				t.Fatalf("dropped %d connections, want 1", n)
			}
			if err := wait(t, rec.reconnecting, "reconnecting"); err == nil {
				t.Fatal("Reconnecting(nil)")
			}
			wait(t, rec.reconnected, "reconnected")

			// The old track's reads end with its connection; a new one
			// is delivered and carries the same publication's media.
			for range payloads {
			}
			rt2 := wait(t, brec.tracks, "bob: track after reconnect")
			if rt2 == rt || rt2.Participant.Identity != "alice" {
				t.Fatalf("track after reconnect: %+v", rt2.Info)
			}
			expectPayloads(t, readPayloads(rt2), 5)

			second, err := mic.WaitPublished(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			if drop == "publisher" {
				if second.SID == first.SID {
					t.Fatal("the republished track kept its SID")
				}
				if tokens.Load() != 2 {
					t.Fatalf("token source called %d times, want 2", tokens.Load())
				}
				// Bob saw the old track go and the new one come.
				waitFor(t, brec.unpublished, "bob: old track unpublished", func(ti wire.TrackInfo) bool { return ti.SID == first.SID })
				waitFor(t, brec.published, "bob: new track published", func(ti wire.TrackInfo) bool { return ti.SID == second.SID })
			} else if second.SID != first.SID {
				t.Fatal("the track changed SID though its publisher stayed")
			}
		})
	}
}

func TestReconnectDisabled(t *testing.T) {
	srv := newServer(t)
	front := srv.Frontend()
	c, rec := connect(t, front.URL, srv.Token("alice", false, false), noAutoSubscribe,
		func(o *client.Options) { o.Reconnect.Disabled = true })

	front.Drop()
	err := wait(t, rec.disconnected, "disconnected")
	if !errors.Is(err, client.ErrDisconnected) {
		t.Fatalf("Disconnected(%v), want ErrDisconnected", err)
	}
	<-c.Done()
	if !errors.Is(c.Err(), client.ErrDisconnected) {
		t.Fatalf("Err() = %v", c.Err())
	}
	if err := c.SendRelay(testContext(t), nil, json.RawMessage(`1`)); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("relay after the end: %v, want ErrClosed", err)
	}
	select {
	case <-rec.reconnecting:
		t.Fatal("Reconnecting fired with reconnects disabled")
	default:
	}
}

// TestReconnectManualSubscription checks that a subscription made with
// Subscribe is made again after a reconnect (the server only restores
// auto-subscriptions by itself).
func TestReconnectManualSubscription(t *testing.T) {
	srv := newServer(t)
	aliceFront, bobFront := srv.Frontend(), srv.Frontend()
	alice, _ := connect(t, aliceFront.URL, srv.Token("alice", true, true))
	bob, brec := connect(t, bobFront.URL, srv.Token("bob", false, true), noAutoSubscribe)

	mic := publishAudio(t, alice, "mic")
	info, err := mic.WaitPublished(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.Subscribe(testContext(t), info.SID); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	expectPayloads(t, readPayloads(wait(t, brec.tracks, "bob: track")), 5)

	bobFront.Drop()
	wait(t, brec.reconnected, "bob: reconnected")
	rt := wait(t, brec.tracks, "bob: track after reconnect")
	if rt.Info.SID != info.SID {
		t.Fatalf("track after reconnect: %+v", rt.Info)
	}
	expectPayloads(t, readPayloads(rt), 5)
}

func TestTooManyTracks(t *testing.T) {
	srv, err := startLocalServerWith(signaling.ServerLimits{TracksPerParticipant: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	front := srv.Frontend()
	alice, _ := connect(t, front.URL, srv.Token("alice", true, true))

	publishAudio(t, alice, "mic")
	_, err = alice.PublishSample(testContext(t), "mic2", opus())
	if code := serverErrorCode(err); code != wire.CodeTooManyTracks {
		t.Fatalf("second track: %v, want %s", err, wire.CodeTooManyTracks)
	}
}

func TestReplaced(t *testing.T) {
	srv := newServer(t)
	front := srv.Frontend()
	first, rec := connect(t, front.URL, srv.Token("alice", false, false), noAutoSubscribe)
	connect(t, front.URL, srv.Token("alice", false, false), noAutoSubscribe)

	if err := wait(t, rec.disconnected, "first: disconnected"); !errors.Is(err, client.ErrReplaced) {
		t.Fatalf("Disconnected(%v), want ErrReplaced", err)
	}
	<-first.Done()
	if !errors.Is(first.Err(), client.ErrReplaced) {
		t.Fatalf("Err() = %v", first.Err())
	}
	select {
	case err := <-rec.reconnecting:
		t.Fatalf("Reconnecting(%v) after being replaced", err)
	default:
	}
}

// TestShutdownGivesUp: a draining node says going_away, then refuses joins
// with shutting_down; a client with MaxAttempts stops after that many.
func TestShutdownGivesUp(t *testing.T) {
	srv := newServer(t)
	front := srv.Frontend()
	c, rec := connect(t, front.URL, srv.Token("alice", false, false), noAutoSubscribe,
		func(o *client.Options) { o.Reconnect.MaxAttempts = 2 })

	if err := srv.sig.Shutdown(testContext(t)); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := wait(t, rec.reconnecting, "reconnecting"); !strings.Contains(err.Error(), "going away") {
		t.Fatalf("Reconnecting(%v), want the going_away", err)
	}
	err := wait(t, rec.disconnected, "disconnected")
	if !errors.Is(err, client.ErrDisconnected) || serverErrorCode(err) != wire.CodeShuttingDown {
		t.Fatalf("Disconnected(%v), want ErrDisconnected after shutting_down", err)
	}
	<-c.Done()
}

func TestCloseFromHandler(t *testing.T) {
	srv := newServer(t)
	front := srv.Frontend()
	closed := make(chan error, 1)
	var alice *client.Client
	ready := make(chan struct{})
	alice, _ = connect(t, front.URL, srv.Token("alice", false, false), noAutoSubscribe, func(o *client.Options) {
		o.Handlers.ParticipantJoined = func(wire.ParticipantInfo) {
			<-ready
			closed <- alice.Close()
		}
	})
	close(ready)
	connect(t, front.URL, srv.Token("bob", false, false), noAutoSubscribe)
	if err := wait(t, closed, "Close in a handler"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	<-alice.Done()
	if !errors.Is(alice.Err(), client.ErrClosed) {
		t.Fatalf("Err() = %v", alice.Err())
	}
}

// TestNoGoroutineLeak runs a call with a reconnect and checks that, once
// the clients are closed, none of the package's goroutines is left.
func TestNoGoroutineLeak(t *testing.T) {
	srv := newServer(t)
	aliceFront, bobFront := srv.Frontend(), srv.Frontend()
	alice, _ := connect(t, aliceFront.URL, srv.Token("alice", true, true))
	bob, brec := connect(t, bobFront.URL, srv.Token("bob", false, true))
	mic := publishAudio(t, alice, "mic")
	expectPayloads(t, readPayloads(wait(t, brec.tracks, "bob: track")), 3)
	bobFront.Drop()
	wait(t, brec.reconnected, "bob: reconnected")
	expectPayloads(t, readPayloads(wait(t, brec.tracks, "bob: track after reconnect")), 3)
	if err := alice.Unpublish(testContext(t), mic); err != nil {
		t.Fatal(err)
	}

	_ = alice.Close()
	_ = bob.Close()
	<-alice.Done()
	<-bob.Done()
	// The clients' goroutines have all been waited for, but a goroutine
	// that closed a channel may not have returned yet: give them a moment
	// to be scheduled, bounded.
	var leaked []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if leaked = clientGoroutines(); len(leaked) == 0 {
			return
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d goroutines of package client left after Close:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
}

// clientGoroutines returns the stacks of goroutines running in, or started
// by, package client.
func clientGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	const pkg = "github.com/sotto-rtc/sotto/signaling/client."
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "\n"+pkg) || strings.Contains(g, "created by "+pkg) {
			out = append(out, g)
		}
	}
	return out
}
