package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// Two participants on an in-process server: alice publishes her
// microphone, bob receives it.
func Example() {
	srv, err := startLocalServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	url := srv.Frontend().URL // "http://127.0.0.1:port"

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Handlers run on the client's event goroutine; they hand work over
	// and return.
	tracks := make(chan *client.RemoteTrack, 1)
	bob, err := client.Connect(ctx, url, client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token("bob", false, true),
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
		Handlers: client.Handlers{
			Track: func(t *client.RemoteTrack) {
				select {
				case tracks <- t:
				default:
				}
			},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bob.Close()

	alice, err := client.Connect(ctx, url, client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token("alice", true, true),
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer alice.Close()

	mic, err := alice.PublishSample(ctx, "mic", webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The server announces the track, and forwards it, once media flows.
	stop := make(chan struct{})
	sent := sendAudio(mic, stop)
	defer func() { close(stop); <-sent }()

	select {
	case t := <-tracks:
		if _, _, err := t.Track.ReadRTP(); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("received %s track from %s\n", t.Info.Kind, t.Participant.Identity)
	case <-ctx.Done():
		fmt.Println("no track:", ctx.Err())
	}
	// Output: received audio track from alice
}

// A relay message goes from one participant to the others through the
// server, which passes it on byte for byte.
func ExampleClient_SendRelay() {
	srv, err := startLocalServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	url := srv.Frontend().URL
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	type relay struct {
		from string
		data json.RawMessage
	}
	relays := make(chan relay, 1)
	bob, err := client.Connect(ctx, url, client.Options{
		E2EE:   client.E2EEOptions{Admission: client.AdmitAll},
		Token:  srv.Token("bob", false, false),
		Logger: quietLogger(),
		// Without the subscribe grant, auto-subscribe must be off.
		AutoSubscribe: new(false),
		Handlers: client.Handlers{
			Relay: func(from wire.ParticipantInfo, data json.RawMessage) {
				relays <- relay{from.Identity, data}
			},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bob.Close()
	alice, err := client.Connect(ctx, url, client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token("alice", false, false),
		Logger:        quietLogger(),
		AutoSubscribe: new(false),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer alice.Close()

	// nil: to everyone else in the room.
	if err := alice.SendRelay(ctx, nil, json.RawMessage(`{"hello":"bob"}`)); err != nil {
		fmt.Println(err)
		return
	}
	r := <-relays
	fmt.Printf("%s says %s\n", r.from, r.data)
	// Output: alice says {"hello":"bob"}
}

// A refusal from the server is a *ServerError; its Code says which.
func ExampleServerError() {
	srv, err := startLocalServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	url := srv.Frontend().URL
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A listener's token: it may subscribe, not publish.
	c, err := client.Connect(ctx, url, client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token("listener", false, true),
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	_, err = c.PublishSample(ctx, "mic", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
	var se *client.ServerError
	if errors.As(err, &se) && se.Code == wire.CodePermissionDenied {
		fmt.Println("not allowed to publish")
	}
	// Output: not allowed to publish
}

// Without auto-subscribe, a client chooses the tracks it receives.
func ExampleClient_Subscribe() {
	srv, err := startLocalServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	url := srv.Frontend().URL
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	published := make(chan wire.TrackInfo, 1)
	tracks := make(chan *client.RemoteTrack, 1)
	bob, err := client.Connect(ctx, url, client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token("bob", false, true),
		AutoSubscribe: new(false),
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
		Handlers: client.Handlers{
			TrackPublished: func(t wire.TrackInfo) { published <- t },
			Track:          func(t *client.RemoteTrack) { tracks <- t },
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bob.Close()
	alice, err := client.Connect(ctx, url, client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token("alice", true, false),
		AutoSubscribe: new(false),
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer alice.Close()
	mic, err := alice.PublishSample(ctx, "mic", opus())
	if err != nil {
		fmt.Println(err)
		return
	}
	stop := make(chan struct{})
	sent := sendAudio(mic, stop)
	defer func() { close(stop); <-sent }()

	info := <-published
	if err := bob.Subscribe(ctx, info.SID); err != nil {
		fmt.Println(err)
		return
	}
	t := <-tracks
	fmt.Println("subscribed to", t.Participant.Identity, t.Info.Codec)
	// Output: subscribed to alice audio/opus
}

// The server names a track once its media arrives; the publisher learns
// the name from WaitPublished, and mutes and unpublishes by it.
func ExamplePublication_WaitPublished() {
	srv, err := startLocalServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	url := srv.Frontend().URL
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	events := make(chan string, 4)
	bob, err := client.Connect(ctx, url, client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token("bob", false, true),
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
		Handlers: client.Handlers{
			TrackMuted: func(t wire.TrackInfo) {
				events <- fmt.Sprintf("%s's %s muted: %v", t.Identity, t.ClientTrackID, t.Muted)
			},
			TrackUnpublished: func(t wire.TrackInfo) {
				events <- fmt.Sprintf("%s's %s unpublished", t.Identity, t.ClientTrackID)
			},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bob.Close()
	alice, err := client.Connect(ctx, url, client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token("alice", true, true),
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer alice.Close()

	mic, err := alice.PublishSample(ctx, "mic", opus())
	if err != nil {
		fmt.Println(err)
		return
	}
	stop := make(chan struct{})
	sent := sendAudio(mic, stop)
	defer func() { close(stop); <-sent }()

	info, err := mic.WaitPublished(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("published", info.Kind, info.Codec, info.SID == mic.SID())

	if err := alice.SetMuted(ctx, mic, true); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(<-events)
	if err := alice.Unpublish(ctx, mic); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(<-events)
	// Output:
	// published audio audio/opus true
	// alice's mic muted: true
	// alice's mic unpublished
}

// Leave tells the others why the participant is gone.
func ExampleClient_Leave() {
	srv, err := startLocalServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	url := srv.Frontend().URL
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	left := make(chan string, 1)
	bob, err := client.Connect(ctx, url, client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token("bob", false, false),
		AutoSubscribe: new(false),
		Logger:        quietLogger(),
		Handlers: client.Handlers{
			ParticipantLeft: func(p wire.ParticipantInfo, reason string) {
				left <- p.Identity + " " + reason
			},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bob.Close()
	alice, err := client.Connect(ctx, url, client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token("alice", false, false),
		AutoSubscribe: new(false),
		Logger:        quietLogger(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := alice.Leave(ctx); err != nil {
		fmt.Println(err)
		return
	}
	<-alice.Done()
	fmt.Println(<-left)
	fmt.Println(errors.Is(alice.Err(), client.ErrClosed))
	// Output:
	// alice left
	// true
}

// A client can publish raw RTP, here VP8 frames an encoder elsewhere made;
// a subscriber asks the publisher for a keyframe through the server.
func ExampleClient_PublishRTP() {
	srv, err := startLocalServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	url := srv.Frontend().URL
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	tracks := make(chan *client.RemoteTrack, 1)
	bob, err := client.Connect(ctx, url, client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token("bob", false, true),
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
		Handlers:      client.Handlers{Track: func(t *client.RemoteTrack) { tracks <- t }},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bob.Close()
	alice, err := client.Connect(ctx, url, client.Options{
		Token:         srv.Token("alice", true, false),
		AutoSubscribe: new(false),
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
		// Raw RTP cannot be end-to-end encrypted: the SDK encrypts
		// frames. Everyone sees alice's track marked e2ee false.
		E2EE: client.E2EEOptions{Disabled: true},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer alice.Close()

	cam, err := alice.PublishRTP(ctx, "cam", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000})
	if err != nil {
		fmt.Println(err)
		return
	}
	stop := make(chan struct{})
	sent := sendVP8(cam, stop)
	defer func() { close(stop); <-sent }()

	t := <-tracks
	if _, _, err := t.Track.ReadRTP(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(t.Participant.Identity, t.Info.ClientTrackID, t.Track.Codec().MimeType)
	if err := t.RequestKeyframe(); err != nil {
		fmt.Println(err)
		return
	}
	// Output: alice cam video/VP8
}

// Reconnecting is automatic: the application keeps writing to its
// publications, and the handlers tell it what happened. TokenSource gives
// every attempt a fresh token.
func ExampleReconnectPolicy() {
	srv, err := startLocalServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	front := srv.Frontend()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	events := make(chan string, 8)
	c, err := client.Connect(ctx, front.URL, client.Options{
		E2EE: client.E2EEOptions{Admission: client.AdmitAll},
		TokenSource: func(context.Context) (string, error) {
			return srv.Token("alice", false, false), nil
		},
		AutoSubscribe: new(false),
		Logger:        quietLogger(),
		Reconnect: client.ReconnectPolicy{
			MaxAttempts:    10,
			InitialBackoff: 50 * time.Millisecond,
			MaxBackoff:     time.Second,
		},
		Handlers: client.Handlers{
			Reconnecting: func(error) { events <- "reconnecting" },
			Reconnected:  func() { events <- "reconnected" },
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	front.Drop() // as a network failure would
	fmt.Println(<-events)
	fmt.Println(<-events)
	// Output:
	// reconnecting
	// reconnected
}

// Participants lists who else is in the room, with their tracks.
func ExampleClient_Participants() {
	srv, err := startLocalServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	url := srv.Frontend().URL
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, name := range []string{"alice", "carol"} {
		c, err := client.Connect(ctx, url, client.Options{
			E2EE:  client.E2EEOptions{Admission: client.AdmitAll},
			Token: srv.Token(name, false, false), AutoSubscribe: new(false), Logger: quietLogger(),
		})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer c.Close()
	}
	bob, err := client.Connect(ctx, url, client.Options{
		E2EE:  client.E2EEOptions{Admission: client.AdmitAll},
		Token: srv.Token("bob", false, false), AutoSubscribe: new(false), Logger: quietLogger(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bob.Close()

	var names []string
	for _, p := range bob.Participants() {
		names = append(names, p.Identity)
	}
	slices.Sort(names)
	fmt.Println(bob.Self().Identity, "sees", names)
	// Output: bob sees [alice carol]
}

// Publish takes any pion TrackLocal; the publication hands it back.
func ExampleClient_Publish() {
	srv, err := startLocalServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	url := srv.Frontend().URL
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	alice, err := client.Connect(ctx, url, client.Options{
		Token:         srv.Token("alice", true, false),
		AutoSubscribe: new(false),
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
		// A track of the application's own making cannot be end-to-end
		// encrypted (the SDK must see every frame): E2EE off.
		E2EE: client.E2EEOptions{Disabled: true},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer alice.Close()

	track, err := webrtc.NewTrackLocalStaticSample(
		webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
		"mic", alice.Self().SID)
	if err != nil {
		fmt.Println(err)
		return
	}
	mic, err := alice.Publish(ctx, track)
	if err != nil {
		fmt.Println(err)
		return
	}
	stop := make(chan struct{})
	sent := sendAudio(mic, stop)
	defer func() { close(stop); <-sent }()

	info, err := mic.WaitPublished(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(mic.Track() == track, info.ClientTrackID, info.Kind)
	// Output: true mic audio
}

// Unsubscribing stops the forwarding: reads on the track end.
func ExampleClient_Unsubscribe() {
	srv, err := startLocalServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	url := srv.Frontend().URL
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	tracks := make(chan *client.RemoteTrack, 1)
	bob, err := client.Connect(ctx, url, client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token("bob", false, true),
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
		Handlers:      client.Handlers{Track: func(t *client.RemoteTrack) { tracks <- t }},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bob.Close()
	alice, err := client.Connect(ctx, url, client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token("alice", true, false),
		AutoSubscribe: new(false),
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer alice.Close()
	mic, err := alice.PublishSample(ctx, "mic", opus())
	if err != nil {
		fmt.Println(err)
		return
	}
	stop := make(chan struct{})
	sent := sendAudio(mic, stop)
	defer func() { close(stop); <-sent }()

	t := <-tracks
	if err := bob.Unsubscribe(ctx, t.Info.SID); err != nil {
		fmt.Println(err)
		return
	}
	for {
		if _, _, err := t.Track.ReadRTP(); err != nil {
			break
		}
	}
	fmt.Println("no more of", t.Participant.Identity+"'s", t.Info.ClientTrackID)
	// Output: no more of alice's mic
}

// Handlers follow the room: who is in it and what they publish, including
// what was there before the client joined.
func ExampleHandlers() {
	srv, err := startLocalServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	url := srv.Frontend().URL
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	alice, err := client.Connect(ctx, url, client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token("alice", true, false),
		AutoSubscribe: new(false),
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer alice.Close()
	mic, err := alice.PublishSample(ctx, "mic", opus())
	if err != nil {
		fmt.Println(err)
		return
	}
	stop := make(chan struct{})
	sent := sendAudio(mic, stop)
	defer func() { close(stop); <-sent }()
	if _, err := mic.WaitPublished(ctx); err != nil {
		fmt.Println(err)
		return
	}

	events := make(chan string, 16)
	bob, err := client.Connect(ctx, url, client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token("bob", false, true),
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
		Handlers: client.Handlers{
			ParticipantJoined: func(p wire.ParticipantInfo) { events <- "joined: " + p.Identity },
			TrackPublished: func(t wire.TrackInfo) {
				events <- "published: " + t.Identity + "'s " + t.ClientTrackID
			},
			Track: func(t *client.RemoteTrack) {
				events <- "media: " + t.Participant.Identity + "'s " + t.Info.ClientTrackID
			},
			ParticipantLeft: func(p wire.ParticipantInfo, reason string) {
				events <- "left: " + p.Identity + " (" + reason + ")"
			},
			TrackUnpublished: func(t wire.TrackInfo) {
				events <- "unpublished: " + t.Identity + "'s " + t.ClientTrackID
			},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bob.Close()
	for range 3 {
		fmt.Println(<-events)
	}
	if err := alice.Leave(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(<-events)
	fmt.Println(<-events)
	// Output:
	// joined: alice
	// published: alice's mic
	// media: alice's mic
	// unpublished: alice's mic
	// left: alice (left)
}

// Close ends the session without a word to the server; Done and Err tell
// the rest of the application.
func ExampleClient_Close() {
	srv, err := startLocalServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	url := srv.Frontend().URL
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, err := client.Connect(ctx, url, client.Options{
		E2EE:  client.E2EEOptions{Admission: client.AdmitAll},
		Token: srv.Token("alice", false, false), AutoSubscribe: new(false), Logger: quietLogger(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	go func() { _ = c.Close() }()

	<-c.Done()
	fmt.Println(c.Err())
	fmt.Println(errors.Is(c.SendRelay(ctx, nil, json.RawMessage(`1`)), client.ErrClosed))
	// Output:
	// client: closed
	// true
}
