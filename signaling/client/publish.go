package client

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// Publication is a local track the client publishes. It survives
// reconnects (the same TrackLocal joins every new publisher connection);
// only its SID changes.
type Publication struct {
	c      *Client
	track  webrtc.TrackLocal
	sample *webrtc.TrackLocalStaticSample
	rtp    *webrtc.TrackLocalStaticRTP
	keys   *e2ee.Session
	codec  e2ee.Codec

	// Guarded by Client.mu.
	info       wire.TrackInfo // from track_published; zero until then
	muted      bool           // as last acknowledged by the server
	removed    bool
	sender     *webrtc.RTPSender // on the current session's publisher connection
	sess       *session
	negotiated bool          // an offer with the track was answered on sess
	changed    chan struct{} // closed and replaced when info or removed change
}

// Track returns the published track.
func (p *Publication) Track() webrtc.TrackLocal { return p.track }

// WriteSample writes one encoded frame (Opus, VP8, H.264 Annex B),
// encrypted first with E2EE on, to a sample track. While the client
// reconnects, samples are dropped and nil is returned.
func (p *Publication) WriteSample(s media.Sample) error {
	if p.sample == nil {
		return fmt.Errorf("client: track %q is not a sample track", p.track.ID())
	}
	if p.keys != nil {
		data, err := p.keys.EncryptFrame(p.codec, s.Data)
		if err != nil {
			return fmt.Errorf("client: track %q: %w", p.track.ID(), err)
		}
		s.Data = data
	}
	return p.sample.WriteSample(s)
}

// WriteRTP writes an RTP packet to an RTP track; pion sets the negotiated
// SSRC and payload type.
func (p *Publication) WriteRTP(pkt *rtp.Packet) error {
	if p.rtp == nil {
		return fmt.Errorf("client: track %q is not an RTP track", p.track.ID())
	}
	return p.rtp.WriteRTP(pkt)
}

// SID returns the server's id for the track, or "" until it has announced
// it (again, after a reconnect).
func (p *Publication) SID() string {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	return p.info.SID
}

// WaitPublished waits until the server announces the track, which it does
// once media arrives, so the application must be writing. It fails with
// ErrNotPublished once unpublished, ErrClosed once the client is finished.
func (p *Publication) WaitPublished(ctx context.Context) (wire.TrackInfo, error) {
	c := p.c
	for {
		c.mu.Lock()
		info, removed, finished, ch := p.info, p.removed, c.finished, p.changed
		c.mu.Unlock()
		switch {
		case info.SID != "":
			return info, nil
		case removed:
			return wire.TrackInfo{}, fmt.Errorf("%w: %q was unpublished", ErrNotPublished, p.track.ID())
		case finished:
			return wire.TrackInfo{}, ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return wire.TrackInfo{}, ctx.Err()
		}
	}
}

// notifyLocked wakes WaitPublished.
func (p *Publication) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Publish adds track to the publisher connection, negotiates, and returns
// once the server has answered. A refusal is a *ServerError
// (permission_denied, too_many_tracks); the client refuses those itself
// when joined said the server would, since pion cannot roll back a refused
// offer and a refusal costs a reconnect. Concurrent calls may share one
// offer and its refusal. With E2EE on it fails with ErrE2EENeedsFrames;
// while reconnecting, with ErrDisconnected.
func (c *Client) Publish(ctx context.Context, track webrtc.TrackLocal) (*Publication, error) {
	if track == nil {
		return nil, errors.New("client: Publish needs a track")
	}
	if c.keys != nil {
		return nil, fmt.Errorf("client: publish %q: %w", track.ID(), ErrE2EENeedsFrames)
	}
	return c.publish(ctx, &Publication{c: c, track: track, changed: make(chan struct{})})
}

func (c *Client) publish(ctx context.Context, p *Publication) (*Publication, error) {
	track := p.track
	switch t := track.(type) {
	case *webrtc.TrackLocalStaticSample:
		p.sample = t
	case *webrtc.TrackLocalStaticRTP:
		p.rtp = t
	}

	c.mu.Lock()
	s, err := c.liveSessionLocked()
	if err == nil {
		err = c.canPublishLocked(1)
	}
	if err == nil {
		err = s.attachLocked(p)
	}
	if err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("client: publish %q: %w", track.ID(), err)
	}
	c.pubs = append(c.pubs, p)
	c.mu.Unlock()

	if err := s.negotiate(ctx); err != nil {
		// Unless refused (the session is rebuilt), a renegotiation tells
		// the server the track is gone.
		c.removePublication(p, true)
		return nil, fmt.Errorf("client: publish %q: %w", track.ID(), err)
	}
	return p, nil
}

// canPublishLocked refuses adding tracks when joined said the server would.
func (c *Client) canPublishLocked(adding int) error {
	if !c.self.CanPublish {
		return &ServerError{
			Code:    wire.CodePermissionDenied,
			Message: "the access token does not grant publishing",
			Ref:     wire.TypeOffer,
		}
	}
	if n := c.limits.TracksPerParticipant; n > 0 && len(c.pubs)+adding > n {
		return &ServerError{
			Code:    wire.CodeTooManyTracks,
			Message: fmt.Sprintf("the server allows %d tracks per participant", n),
			Ref:     wire.TypeOffer,
		}
	}
	return nil
}

// PublishSample publishes a new sample track with codec and id trackID;
// the application writes with Publication.WriteSample.
func (c *Client) PublishSample(ctx context.Context, trackID string, codec webrtc.RTPCodecCapability) (*Publication, error) {
	t, err := webrtc.NewTrackLocalStaticSample(codec, trackID, c.streamID())
	if err != nil {
		return nil, fmt.Errorf("client: new sample track: %w", err)
	}
	p := &Publication{c: c, track: t, keys: c.keys, changed: make(chan struct{})}
	if c.keys != nil {
		if p.codec, err = e2ee.CodecFromMime(codec.MimeType); err != nil {
			return nil, fmt.Errorf("client: publish %q with end-to-end encryption: %w", trackID, err)
		}
		// Receivers need the key before the first frame.
		c.keys.StartPublishing()
	}
	return c.publish(ctx, p)
}

// PublishRTP publishes a new RTP track with codec and id trackID. With E2EE
// on it fails with ErrE2EENeedsFrames: the SDK encrypts frames, not packets.
func (c *Client) PublishRTP(ctx context.Context, trackID string, codec webrtc.RTPCodecCapability) (*Publication, error) {
	t, err := webrtc.NewTrackLocalStaticRTP(codec, trackID, c.streamID())
	if err != nil {
		return nil, fmt.Errorf("client: new RTP track: %w", err)
	}
	return c.Publish(ctx, t)
}

func (c *Client) streamID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.self.SID != "" {
		return c.self.SID
	}
	return "sotto"
}

// Unpublish tells the server (waiting for its ack), removes the track and
// renegotiates; while reconnecting it only drops p locally. Twice is a no-op.
func (c *Client) Unpublish(ctx context.Context, p *Publication) error {
	if p == nil || p.c != c {
		return errors.New("client: publication of another client")
	}
	c.mu.Lock()
	if p.removed {
		c.mu.Unlock()
		return nil
	}
	sid := p.info.SID
	s, _ := c.liveSessionLocked()
	c.mu.Unlock()

	var errs []error
	if s != nil && sid != "" {
		id := c.nextID()
		_, err := s.request(ctx, id, wire.Unpublish{Type: wire.TypeUnpublish, ID: id, TrackSID: sid})
		var se *ServerError
		if err != nil && !(errors.As(err, &se) && se.Code == wire.CodeUnknownTrack) {
			errs = append(errs, err)
		}
	}
	if s = c.removePublication(p, false); s != nil {
		if err := s.negotiate(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("client: unpublish %q: %w", p.track.ID(), err)
	}
	return nil
}

// removePublication drops p and its sender, and returns the session if it
// is live and needs a renegotiation (started at once with renegotiate).
func (c *Client) removePublication(p *Publication, renegotiate bool) *session {
	c.mu.Lock()
	if p.removed {
		c.mu.Unlock()
		return nil
	}
	sender, s := c.removePublicationLocked(p)
	c.mu.Unlock()

	if sender == nil || s.isFailed() {
		return nil
	}
	if err := s.pub.pc.RemoveTrack(sender); err != nil {
		s.log.Debug("client: remove track", "track", p.track.ID(), "err", err)
	}
	if renegotiate {
		s.kickNegotiation()
	}
	return s
}

// removePublicationLocked returns the sender and session p was on.
func (c *Client) removePublicationLocked(p *Publication) (*webrtc.RTPSender, *session) {
	if p.removed {
		return nil, nil
	}
	p.removed = true
	p.info = wire.TrackInfo{}
	p.notifyLocked()
	if i := slices.Index(c.pubs, p); i >= 0 {
		c.pubs = slices.Delete(c.pubs, i, i+1)
	}
	sender, s := p.sender, p.sess
	p.sender, p.sess, p.negotiated = nil, nil, false
	return sender, s
}

// SetMuted tells the server p is muted or not and waits for its ack; the
// application stops sending itself. Restored after a reconnect; fails with
// ErrNotPublished until the server has announced the track.
func (c *Client) SetMuted(ctx context.Context, p *Publication, muted bool) error {
	if p == nil || p.c != c {
		return errors.New("client: publication of another client")
	}
	c.mu.Lock()
	sid, removed := p.info.SID, p.removed
	s, err := c.liveSessionLocked()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if removed || sid == "" {
		return fmt.Errorf("%w: %q has no server id yet", ErrNotPublished, p.track.ID())
	}
	id := c.nextID()
	if _, err := s.request(ctx, id, wire.Mute{Type: wire.TypeMute, ID: id, TrackSID: sid, Muted: muted}); err != nil {
		return fmt.Errorf("client: mute %q: %w", p.track.ID(), err)
	}
	c.mu.Lock()
	p.muted = muted
	if p.info.SID == sid {
		p.info.Muted = muted
	}
	if i := trackIndex(c.self.Tracks, sid); i >= 0 {
		c.self.Tracks[i].Muted = muted
	}
	c.mu.Unlock()
	return nil
}

// attachLocked adds p's track to the publisher connection.
func (s *session) attachLocked(p *Publication) error {
	tr, err := s.pub.pc.AddTransceiverFromTrack(p.track, webrtc.RTPTransceiverInit{
		Direction: webrtc.RTPTransceiverDirectionSendonly,
	})
	if err != nil {
		return fmt.Errorf("client: add track %q: %w", p.track.ID(), err)
	}
	sender := tr.Sender()
	p.sender, p.sess, p.negotiated = sender, s, false
	// RTCP must be read for the interceptors to see it.
	s.goMedia(func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	})
	return nil
}
