package sfu

import (
	"errors"
	"fmt"

	"github.com/pion/webrtc/v4"
)

// onTrack runs on its own goroutine for each track the client publishes;
// after announcing the track it becomes the track's forwarding loop.
func (p *Participant) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	s := p.sfu
	mid := ""
	for _, tr := range p.pub.GetTransceivers() {
		if tr.Receiver() == receiver {
			mid = tr.Mid()
			break
		}
	}
	if mid == "" {
		// A transceiver pion added for an undeclared SSRC: refused, or a
		// client could mint a track per SSRC (docs/FUZZING.md,
		// TestUndeclaredSSRCsMintNoTracks).
		s.metrics.tracksRefused.Inc()
		p.log.Debug("sfu: refused a track outside any offered media section", "ssrc", remote.SSRC())
		if err := receiver.Stop(); err != nil {
			p.log.Debug("sfu: stop receiver", "err", err)
		}
		return
	}
	t := newPublishedTrack(s.metrics, p.log, remote.Kind(), remote.Codec(), s.cfg.PacketCacheSize, s.cfg.KeyframeRequestInterval)
	t.tap = s.cfg.Tap
	t.batch = s.batch
	t.limit = newTrackLimiter(s.cfg, t.kind)
	if k := int(t.kind); k < len(p.kindLimit) {
		t.shared = p.kindLimit[k]
	}
	t.owner = p
	t.clientTrackID = remote.ID()
	t.ssrc = remote.SSRC()
	t.remote = remote
	t.receiver = receiver
	t.publisher = p.pub
	t.mid = mid
	params := receiver.GetParameters()
	t.srcCodecs = params.Codecs
	for _, e := range params.HeaderExtensions {
		if e.ID > 0 && e.ID <= 255 {
			t.srcExtIDs[e.URI] = uint8(e.ID)
		}
	}
	go drainRTCP(receiver)

	delivered, ok := s.registerTrack(t)
	if !ok {
		return
	}
	// Others are offered the track only after its owner has been told of
	// it (Events.TrackPublished), so signaling can announce it first.
	<-delivered
	for _, other := range s.announceTrack(t) {
		other.opMu.Lock()
		err := other.subscribeLocked(t)
		other.opMu.Unlock()
		if err != nil && !errors.Is(err, ErrUnknownTrack) && !errors.Is(err, ErrClosed) {
			other.log.Warn("sfu: auto-subscribe failed", "track", t.sid, "err", err)
		}
	}
	t.readLoop()
	s.endTrack(t, "stream ended")
}

func (p *Participant) Unpublish(trackSID string) error {
	t, err := p.ownTrack(trackSID)
	if err != nil {
		return err
	}
	p.sfu.endTrack(t, "unpublished")
	return nil
}

// SetMuted records the mute state of an own track. Forwarding goes on: a
// muted client sends little, and unmuting must not need renegotiation.
func (p *Participant) SetMuted(trackSID string, muted bool) (TrackInfo, error) {
	s := p.sfu
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := p.ownTrackLocked(trackSID)
	if err != nil {
		return TrackInfo{}, err
	}
	t.muted = muted
	return t.infoLocked(), nil
}

func (p *Participant) ownTrack(trackSID string) (*publishedTrack, error) {
	p.sfu.mu.Lock()
	defer p.sfu.mu.Unlock()
	return p.ownTrackLocked(trackSID)
}

func (p *Participant) ownTrackLocked(trackSID string) (*publishedTrack, error) {
	t := p.sfu.roomTrackLocked(p.cfg.Room, trackSID)
	if t == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTrack, trackSID)
	}
	if t.owner != p {
		return nil, fmt.Errorf("%w: %q", ErrNotOwner, trackSID)
	}
	return t, nil
}

// Tracks returns this participant's live tracks.
func (p *Participant) Tracks() []TrackInfo {
	p.sfu.mu.Lock()
	defer p.sfu.mu.Unlock()
	return announcedInfos(p.tracks)
}
