package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// RemoteTrack is the media of another participant's track, as the server
// forwards it on the subscriber connection. The application reads RTP from
// Track; reads end with an error when the track is unsubscribed or
// unpublished, and when the connection drops (after a reconnect a new
// RemoteTrack is delivered).
type RemoteTrack struct {
	Info        wire.TrackInfo
	Participant wire.ParticipantInfo
	Track       *webrtc.TrackRemote
	Receiver    *webrtc.RTPReceiver

	pc *webrtc.PeerConnection
	// keys decrypt the frames (nil: E2EE is off here). Whether a frame
	// must be decrypted, and under whose keys, is the owner's (owner),
	// never the track's (Info.E2EE, Info.Identity): see ReadFrame.
	keys        *e2ee.Session
	owner       *peerTrust
	acceptClear bool
	frames      frameReader
}

// RequestKeyframe asks the track's publisher for a keyframe: it writes a
// picture loss indication for the track on the subscriber connection. The
// server passes it on, throttled.
func (t *RemoteTrack) RequestKeyframe() error {
	if err := t.pc.WriteRTCP([]rtcp.Packet{
		&rtcp.PictureLossIndication{MediaSSRC: uint32(t.Track.SSRC())},
	}); err != nil {
		return fmt.Errorf("client: keyframe request for %s: %w", t.Info.SID, err)
	}
	return nil
}

// onTrack runs on a goroutine of pion's for each track the subscriber
// connection starts receiving. The WebRTC track id is the server's track
// SID; the description of the track normally arrived before its media, but
// if not, the track waits for it in held.
func (c *Client) onTrack(s *session, track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	rt := &RemoteTrack{Track: track, Receiver: receiver, pc: s.sub.pc}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != s || s.isFailed() {
		return
	}
	if owner, _ := c.others.track(track.ID()); owner == nil {
		c.held[track.ID()] = rt
		return
	}
	c.deliverTrackLocked(rt)
}

// releaseHeldLocked delivers a track whose media arrived before its
// description. Called with c.mu held.
func (c *Client) releaseHeldLocked(sid string) {
	if rt := c.held[sid]; rt != nil {
		delete(c.held, sid)
		c.deliverTrackLocked(rt)
	}
}

// deliverTrackLocked hands a track to the application, labelled with the
// participant whose Tracks list holds it (its owner, as the roster says). A
// track whose own Identity names someone else is refused: the server may
// have moved one participant's media under another's name, and the SDK
// would otherwise decrypt it with the keys of the one while the
// application shows the other. It is logged, counted (RefusedTracks) and
// never delivered. Called with c.mu held.
func (c *Client) deliverTrackLocked(rt *RemoteTrack) {
	owner, i := c.others.track(rt.Track.ID())
	if owner == nil {
		return
	}
	rt.Info = owner.info.Tracks[i]
	rt.Participant = copyParticipant(owner.info)
	if rt.Info.Identity != rt.Participant.Identity {
		c.refusedTracks.Add(1)
		c.log.Warn("client: track refused: its identity is not its owner's (a server relabelling media)",
			"track", rt.Info.SID, "track_identity", rt.Info.Identity,
			"owner", rt.Participant.Identity, "owner_sid", rt.Participant.SID)
		return
	}
	rt.keys = c.keys
	rt.owner = c.trustLocked(rt.Participant.Identity)
	rt.acceptClear = c.opts.E2EE.AcceptClear
	if f := c.opts.Handlers.Track; f != nil {
		c.emit(func() { f(rt) })
	}
}

// RefusedTracks counts the remote tracks this client refused to deliver
// because the track's TrackInfo.Identity differs from the identity of the
// participant whose track list holds it. An honest server never does
// that; a server that does is presenting one participant's media as
// another's (docs/E2EE.md).
func (c *Client) RefusedTracks() uint64 { return c.refusedTracks.Load() }

// Subscribe asks the server to forward the tracks with these SIDs and waits
// for its ack. Without the subscribe grant the server refuses with a
// *ServerError (permission_denied); an unknown SID gets unknown_track. The
// subscriptions are made again after a reconnect.
func (c *Client) Subscribe(ctx context.Context, trackSIDs ...string) error {
	if len(trackSIDs) == 0 {
		return nil
	}
	sids := slices.Clone(trackSIDs)
	err := c.request(ctx, func(id string) any {
		return wire.Subscribe{Type: wire.TypeSubscribe, ID: id, TrackSIDs: sids}
	})
	if err != nil {
		return fmt.Errorf("client: subscribe: %w", err)
	}
	c.mu.Lock()
	for _, sid := range sids {
		c.subscribed[sid] = struct{}{}
		delete(c.unsubscribed, sid)
	}
	c.mu.Unlock()
	return nil
}

// Unsubscribe asks the server to stop forwarding the tracks with these SIDs
// and waits for its ack. With auto-subscribe, the unsubscriptions are made
// again after a reconnect (the server would otherwise restore them).
func (c *Client) Unsubscribe(ctx context.Context, trackSIDs ...string) error {
	if len(trackSIDs) == 0 {
		return nil
	}
	sids := slices.Clone(trackSIDs)
	err := c.request(ctx, func(id string) any {
		return wire.Subscribe{Type: wire.TypeUnsubscribe, ID: id, TrackSIDs: sids}
	})
	if err != nil {
		return fmt.Errorf("client: unsubscribe: %w", err)
	}
	c.mu.Lock()
	for _, sid := range sids {
		delete(c.subscribed, sid)
		if c.autoSubscribe() {
			c.unsubscribed[sid] = struct{}{}
		}
	}
	c.mu.Unlock()
	return nil
}

func (c *Client) autoSubscribe() bool {
	return c.opts.AutoSubscribe == nil || *c.opts.AutoSubscribe
}

// SendRelay sends data, any JSON value, to the participants with the given
// identities (nil: everyone else in the room) and waits for the server's
// ack. The server passes it on byte for byte and never stores it.
func (c *Client) SendRelay(ctx context.Context, to []string, data json.RawMessage) error {
	if data == nil {
		data = json.RawMessage("null")
	}
	if !json.Valid(data) {
		return errors.New("client: relay data is not JSON")
	}
	to = slices.Clone(to)
	err := c.request(ctx, func(id string) any {
		return wire.Relay{Type: wire.TypeRelay, ID: id, To: to, Data: data}
	})
	if err != nil {
		return fmt.Errorf("client: relay: %w", err)
	}
	return nil
}
