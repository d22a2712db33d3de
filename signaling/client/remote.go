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

// RemoteTrack is another participant's track as the server forwards it.
// Reads from Track end with an error when it is unsubscribed, unpublished,
// or the connection drops (a reconnect delivers a new RemoteTrack).
type RemoteTrack struct {
	Info        wire.TrackInfo
	Participant wire.ParticipantInfo
	Track       *webrtc.TrackRemote
	Receiver    *webrtc.RTPReceiver

	pc *webrtc.PeerConnection
	// Whether to decrypt is the owner's to say, never Info's: see ReadFrame.
	keys        *e2ee.Session
	owner       *peerTrust
	acceptClear bool
	frames      frameReader
}

// RequestKeyframe sends a picture loss indication, which the server passes
// on to the publisher, throttled.
func (t *RemoteTrack) RequestKeyframe() error {
	if err := t.pc.WriteRTCP([]rtcp.Packet{
		&rtcp.PictureLossIndication{MediaSSRC: uint32(t.Track.SSRC())},
	}); err != nil {
		return fmt.Errorf("client: keyframe request for %s: %w", t.Info.SID, err)
	}
	return nil
}

// onTrack runs on pion's goroutine per track received; the track id is the
// server's SID. Media that beats its description waits in held.
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
// description.
func (c *Client) releaseHeldLocked(sid string) {
	if rt := c.held[sid]; rt != nil {
		delete(c.held, sid)
		c.deliverTrackLocked(rt)
	}
}

// deliverTrackLocked hands a track to the application under its owner, the
// participant whose Tracks list holds it. One whose Identity names someone
// else is refused: the server would be showing one's media as another's.
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

// RefusedTracks counts tracks not delivered because their
// TrackInfo.Identity is not their owner's, which an honest server never sends.
func (c *Client) RefusedTracks() uint64 { return c.refusedTracks.Load() }

// Subscribe asks the server to forward these tracks and waits for its ack
// (or a *ServerError: permission_denied, unknown_track). Re-sent after a
// reconnect.
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

// Unsubscribe asks the server to stop forwarding these tracks and waits for
// its ack. With auto-subscribe it is re-sent after a reconnect.
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

// SendRelay sends a JSON value to these identities (nil: everyone else) and
// waits for the ack; the server passes it on unread and unstored.
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
