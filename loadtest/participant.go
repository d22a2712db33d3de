package loadtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// Join retries after join_rate_limited back off from joinRetryMin to
// joinRetryMax.
const (
	joinRetryMin = 250 * time.Millisecond
	joinRetryMax = 2 * time.Second
)

// participant is one simulated caller: a publisher sends and never
// subscribes, a subscriber receives every track of its room.
type participant struct {
	r         *runner
	room      int
	identity  string
	publisher bool

	c    *client.Client // nil until joined
	live atomic.Bool    // connected now
	pubs []*pubTrack
}

// pubTrack is one published track and its synthetic encoder's state.
type pubTrack struct {
	id    uint32 // in every frame's header
	kind  string // "audio" or "video"
	pub   *client.Publication
	owner *participant

	// last is the sequence number of the last frame written (-1: none);
	// start the first one of the measurement window and cutoff its last
	// (-1: not set yet).
	last, start, cutoff atomic.Int64
	frames              atomic.Uint64
	bytes               atomic.Uint64
	// bytes when the window started and ended, for the sent bitrate.
	bytesAtStart, bytesAtEnd atomic.Uint64
	firstUS                  atomic.Int64 // send time of the first frame
	lastUS                   atomic.Int64 // send time of the last frame
}

// subTrack is what a subscriber received of a track, over every
// RemoteTrack delivered for it (one per reconnect).
type subTrack struct {
	kind string

	mu      sync.Mutex
	remotes []*client.RemoteTrack
	pt      *pubTrack // from the first frame's header
	win     seqWindow // every frame, for loss before and in the window
	high    uint32    // highest sequence number seen
	frames  uint64    // frames seen, in any phase
	// Of the frames in the measurement window only:
	wFrames  uint64
	wBytes   uint64 // of every window frame but the first
	wFirstUS int64  // send time of the first window frame
	wLastUS  int64  // send time of the last window frame
	jit      jitter
}

// join connects the participant, publishes its tracks and reports whether
// it is in the room.
func (p *participant) join(ctx context.Context) bool {
	r := p.r
	ctx, cancel := context.WithTimeout(ctx, r.cfg.JoinTimeout)
	defer cancel()
	tok, err := wire.NewToken(r.cfg.APIKey, r.cfg.APISecret, wire.Grant{
		Room:         r.roomName(p.room),
		Identity:     p.identity,
		CanPublish:   p.publisher,
		CanSubscribe: !p.publisher,
		TTL:          r.tokenTTL,
	})
	if err != nil {
		r.joinFailed(p, fmt.Errorf("token: %w", err))
		return false
	}
	if !p.connect(ctx, p.options(tok)) {
		return false
	}
	return !p.publisher || p.publish(ctx)
}

// options are the participant's client options: every event is counted.
func (p *participant) options(tok string) client.Options {
	r := p.r
	autoSubscribe := !p.publisher
	opts := client.Options{
		Token:         tok,
		Room:          r.roomName(p.room),
		AutoSubscribe: &autoSubscribe,
		SettingEngine: r.se,
		Logger:        r.log.With("participant", p.identity),
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll, Disabled: r.cfg.DisableE2EE},
		Handlers: client.Handlers{
			Reconnecting: func(err error) {
				if p.live.Swap(false) {
					r.connected.Add(-1)
				}
				r.reconnects.Add(1)
				r.noteError(fmt.Errorf("%s: connection dropped, reconnecting: %w", p.identity, err))
			},
			Reconnected: func() {
				if !p.live.Swap(true) {
					r.connected.Add(1)
				}
			},
			Disconnected: func(err error) {
				if p.live.Swap(false) {
					r.connected.Add(-1)
				}
				if !errors.Is(err, client.ErrClosed) {
					r.noteError(fmt.Errorf("%s: disconnected: %w", p.identity, err))
				}
			},
			Error: func(se *client.ServerError) {
				r.noteError(fmt.Errorf("%s: %w", p.identity, se))
			},
			Admission: client.AdmissionHandlers{
				Admitted: func(string) { r.admitted.Add(1) },
				ParticipantAdmitted: func(_, by string) {
					if by == p.identity {
						r.admissions.Add(1)
					}
				},
				RosterMismatch: func(err *client.RosterMismatchError) {
					r.rosterAlerts.Add(1)
					r.noteError(fmt.Errorf("%s: %w", p.identity, err))
				},
			},
		},
	}
	if !p.publisher {
		opts.Handlers.Track = func(rt *client.RemoteTrack) { r.onTrack(p, rt) }
	}
	return opts
}

// connect joins, retrying with backoff while the server says joins from
// this address are rate limited.
func (p *participant) connect(ctx context.Context, opts client.Options) bool {
	r := p.r
	backoff := joinRetryMin
	for {
		start := time.Now()
		c, err := client.Connect(ctx, r.cfg.URL, opts)
		if err == nil {
			r.joined(p, c, time.Since(start))
			return true
		}
		var se *client.ServerError
		if !errors.As(err, &se) || se.Code != wire.CodeJoinRateLimited {
			r.joinFailed(p, err)
			return false
		}
		r.joinRetry()
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			r.joinFailed(p, fmt.Errorf("still rate limited when the join timed out: %w", err))
			return false
		}
		backoff = min(2*backoff, joinRetryMax)
	}
}

// publish publishes the configured media, one track per kind.
func (p *participant) publish(ctx context.Context) bool {
	r := p.r
	type kind struct {
		name  string
		codec webrtc.RTPCodecCapability
	}
	var kinds []kind
	if r.cfg.Media.audio() {
		kinds = append(kinds, kind{"audio", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}})
	}
	if r.cfg.Media.video() {
		kinds = append(kinds, kind{"video", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}})
	}
	for _, k := range kinds {
		pub, err := p.c.PublishSample(ctx, k.name, k.codec)
		if err != nil {
			r.joinFailed(p, fmt.Errorf("publish %s: %w", k.name, err))
			return false
		}
		r.startTrack(p, k.name, pub)
	}
	return true
}

// pace is one track's synthetic encoder until stop. A late process drops
// ticks as a loaded encoder skips frames; sequence numbers count frames
// written, so a skipped tick is not a lost frame.
func (r *runner) pace(stop <-chan struct{}, pt *pubTrack) {
	interval := audioFrameInterval
	var inter, key int
	if pt.kind == "video" {
		interval = time.Second / videoFPS
		inter, key = videoFrameSizes(r.cfg.VideoBitrate)
	}
	perKey := uint32(keyframeInterval / interval)
	t := time.NewTicker(interval)
	defer t.Stop()
	for seq := uint32(0); ; seq++ {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		h := frameHeader{Track: pt.id, Seq: seq, SentUS: r.now()}
		var data []byte
		if pt.kind == "video" {
			h.Keyframe = seq%perKey == 0
			size := inter
			if h.Keyframe {
				size = key
			}
			data = videoFrame(h, size)
		} else {
			data = audioFrame(h, audioFrameBytes)
		}
		// Recorded before the write: a subscriber may read the frame
		// before WriteSample returns.
		pt.last.Store(int64(seq))
		if seq == 0 {
			pt.firstUS.Store(h.SentUS)
		}
		pt.lastUS.Store(h.SentUS)
		if err := pt.pub.WriteSample(media.Sample{Data: data, Duration: interval}); err != nil {
			r.noteError(fmt.Errorf("%s: write %s frame: %w", pt.owner.identity, pt.kind, err))
			continue
		}
		pt.frames.Add(1)
		pt.bytes.Add(uint64(len(data)))
		r.bytesOut.Add(uint64(len(data)))
	}
}

// onTrack runs on a subscriber's event goroutine for each track the SDK
// delivers: it starts a reader for it.
func (r *runner) onTrack(p *participant, rt *client.RemoteTrack) {
	codec, err := e2ee.CodecFromMime(rt.Track.Codec().MimeType)
	if err != nil {
		r.noteError(fmt.Errorf("%s: track %s: %w", p.identity, rt.Info.SID, err))
		return
	}
	st := r.subTrack(p, rt)
	st.mu.Lock()
	st.remotes = append(st.remotes, rt)
	st.mu.Unlock()
	r.readers.Add(1)
	go func() {
		defer r.readers.Done()
		for {
			f, err := rt.ReadFrame()
			if err != nil {
				return // the track ended: unpublished, reconnect, or Close
			}
			r.onFrame(p, st, codec, f)
		}
	}()
}

// onFrame counts one decrypted frame.
func (r *runner) onFrame(p *participant, st *subTrack, codec e2ee.Codec, f client.Frame) {
	arrived := r.now()
	h, err := parseFrame(codec, f.Data)
	var pt *pubTrack
	if err == nil {
		if pt = r.pubTrackByID(h.Track); pt == nil {
			err = fmt.Errorf("%w: unknown track id %d", errNotLoadFrame, h.Track)
		}
	}
	if err != nil {
		if r.malformed.Add(1) == 1 {
			r.noteError(fmt.Errorf("%s: %w", p.identity, err))
		}
		return
	}
	n := uint64(len(f.Data))
	r.bytesIn.Add(n) // the live rate counts every frame
	if c := pt.cutoff.Load(); c >= 0 && int64(h.Seq) > c {
		return // sent after the measurement ended
	}
	start := pt.start.Load()
	inWindow := start >= 0 && int64(h.Seq) >= start
	st.mu.Lock()
	if st.pt == nil {
		st.pt = pt
	}
	if st.pt != pt || !st.win.add(h.Seq) {
		st.mu.Unlock()
		return // a duplicate (or another track's frame, which cannot happen)
	}
	st.frames++
	st.high = max(st.high, h.Seq)
	if inWindow {
		if st.wFrames == 0 {
			st.wFirstUS = h.SentUS
		} else {
			st.wBytes += n
		}
		st.wFrames++
		st.wLastUS = max(st.wLastUS, h.SentUS)
		st.jit.add(h.SentUS, arrived)
	}
	st.mu.Unlock()
	if inWindow {
		r.latency.Add(arrived - h.SentUS)
	}
}

// frameCounts are frames expected and received over a span of a
// subscription.
type frameCounts struct{ expected, received uint64 }

// counts returns the subscription's frames before the window and in it
// (through the publisher's cutoff, or the highest frame before one).
func (st *subTrack) counts() (ramp, window frameCounts) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.pt == nil {
		return
	}
	last := st.high
	if c := st.pt.cutoff.Load(); c >= 0 {
		last = uint32(c)
	}
	start := st.pt.start.Load()
	if start < 0 {
		ramp.expected, ramp.received = st.win.count(0, last)
		return
	}
	if start > 0 {
		ramp.expected, ramp.received = st.win.count(0, min(uint32(start-1), last))
	}
	window.expected, window.received = st.win.count(uint32(start), last)
	return
}
