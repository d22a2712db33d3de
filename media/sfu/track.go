package sfu

import (
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// maxConsecutiveReadErrors bounds the failed reads in a row before a track
// is given up on; a live stream never gets near it.
const maxConsecutiveReadErrors = 1000

// publishedTrack is one track a participant publishes.
type publishedTrack struct {
	log      *slog.Logger
	metrics  *metrics
	counters trackCounters

	sid           string
	owner         *Participant // nil only in tests of the forwarding path
	clientTrackID string
	kind          webrtc.RTPCodecType
	codec         webrtc.RTPCodecParameters // the codec at publication
	ssrc          webrtc.SSRC
	mid           string

	remote   *webrtc.TrackRemote
	receiver *webrtc.RTPReceiver
	// publisher is where key-frame requests go; nil in forwarding tests.
	publisher *webrtc.PeerConnection

	srcCodecs []webrtc.RTPCodecParameters
	srcExtIDs map[string]uint8

	cache *packetCache
	// limit is nil for none; overrun: far beyond it, the owner is being ended.
	limit   *trackLimiter
	shared  *sharedLimiter
	overrun bool

	// fanout is read without a lock; replaced, never modified, under SFU.mu.
	fanout atomic.Pointer[[]*downTrack]
	ended  atomic.Bool

	rx    rtp.Header
	tap   func(trackSID string, h *rtp.Header, payload []byte)
	batch *batchGroup

	// The last key-frame request, in nanoseconds since created; 0: none.
	created          time.Time
	interval         time.Duration
	lastKeyframeSent atomic.Int64

	// Guarded by SFU.mu.
	reported    bool // TrackPublished is queued: TrackUnpublished must follow
	announced   bool // visible to the room: others may subscribe
	muted       bool
	subscribers map[string]*downTrack // by subscriber SID
}

// newTrackSID returns "TR_" and 12 random base32 characters (60 bits).
func newTrackSID() string {
	return "TR_" + rand.Text()[:12]
}

func newPublishedTrack(m *metrics, log *slog.Logger, kind webrtc.RTPCodecType, codec webrtc.RTPCodecParameters,
	cacheSize int, keyframeInterval time.Duration,
) *publishedTrack {
	sid := newTrackSID()
	return &publishedTrack{
		log:         log.With("track", sid, "kind", kind.String(), "codec", codec.MimeType),
		metrics:     m,
		counters:    m.forKind(kind),
		sid:         sid,
		kind:        kind,
		codec:       codec,
		cache:       newPacketCache(cacheSize),
		created:     time.Now(),
		interval:    keyframeInterval,
		subscribers: make(map[string]*downTrack),
		srcExtIDs:   make(map[string]uint8),
	}
}

func (t *publishedTrack) infoLocked() TrackInfo {
	info := TrackInfo{
		SID:           t.sid,
		ClientTrackID: t.clientTrackID,
		Kind:          t.kind,
		Codec:         t.codec.MimeType,
		Muted:         t.muted,
	}
	if t.owner != nil {
		info.ParticipantSID = t.owner.cfg.SID
		info.Identity = t.owner.cfg.Identity
		info.E2EE = t.owner.cfg.E2EE
	}
	return info
}

// rebuildFanoutLocked hands the subscribers to forwarding. SFU.mu held.
func (t *publishedTrack) rebuildFanoutLocked() {
	fan := make([]*downTrack, 0, len(t.subscribers))
	for _, dt := range t.subscribers {
		fan = append(fan, dt)
	}
	t.fanout.Store(&fan)
}

func (t *publishedTrack) readLoop() {
	var buf [maxPacketSize]byte
	failures := 0
	for {
		n, _, err := t.remote.Read(buf[:])
		if err != nil {
			if t.ended.Load() || errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) ||
				errors.Is(err, net.ErrClosed) {
				return
			}
			failures++
			if failures >= maxConsecutiveReadErrors {
				t.log.Warn("sfu: giving up on a track that only fails to read", "err", err)
				return
			}
			t.metrics.droppedMalformed.Inc()
			continue
		}
		failures = 0
		if t.ended.Load() {
			return
		}
		t.forward(buf[:n])
	}
}

// forward is the per-packet path; it allocates nothing (alloc_test.go).
func (t *publishedTrack) forward(packet []byte) {
	payload, ok := parseRTP(&t.rx, packet)
	if !ok {
		t.metrics.droppedMalformed.Inc()
		return
	}
	t.counters.packetsIn.Inc()
	t.counters.bytesIn.Add(float64(len(packet)))
	if (t.limit != nil && !t.withinLimits(len(packet))) || (t.shared != nil && !t.shared.allow(len(packet))) {
		t.metrics.droppedRateLimited.Inc()
		return
	}
	t.cache.store(t.rx.SequenceNumber, packet)
	if t.tap != nil {
		t.tap(t.sid, &t.rx, payload)
	}
	fan := t.fanout.Load()
	if fan == nil {
		return
	}
	switch len(*fan) {
	case 0:
	case 1:
		(*fan)[0].forward(&t.rx, payload) // nothing to batch
	default:
		t.fanOut(*fan, payload)
	}
}

// withinLimits applies the rate limits, ending the owner far beyond them.
func (t *publishedTrack) withinLimits(size int) bool {
	if t.overrun {
		return false
	}
	ok, end := t.limit.allow(size)
	if end {
		t.overrun = true
		if t.owner != nil {
			l := t.limit.limit
			t.owner.refuse(t.metrics.rateExceeded, RuleRateExceeded, "track", t.sid,
				"limit_packets_per_second", l.packets, "limit_bits_per_second", l.bytes*8)
		}
		return false
	}
	return ok
}

// fanOut holds the SFU's sockets so the copies leave in one batch.
func (t *publishedTrack) fanOut(fan []*downTrack, payload []byte) {
	t.batch.hold()
	defer t.batch.release() // a held socket that is never released would only send full batches
	for _, dt := range fan {
		dt.forward(&t.rx, payload)
	}
}

// parseRTP parses into h, reusing its slices, and returns the payload
// without padding; h.PaddingSize reproduces it.
func parseRTP(h *rtp.Header, packet []byte) ([]byte, bool) {
	hl, err := h.Unmarshal(packet)
	if err != nil {
		return nil, false
	}
	end := len(packet)
	h.PaddingSize = 0
	if h.Padding {
		if end <= hl {
			return nil, false
		}
		pad := packet[end-1]
		if pad == 0 || int(pad) > end-hl {
			return nil, false
		}
		h.PaddingSize = pad
		end -= int(pad)
	}
	return packet[hl:end], true
}

// requestKeyframe asks the publisher for a key frame, at most once per
// KeyframeRequestInterval, however many subscribers ask.
func (t *publishedTrack) requestKeyframe() {
	if t.kind != webrtc.RTPCodecTypeVideo || t.ended.Load() {
		return
	}
	now := int64(time.Since(t.created)) + 1 // never 0, which means "none yet"
	last := t.lastKeyframeSent.Load()
	if last != 0 && now-last < int64(t.interval) {
		t.metrics.keyframeThrottled.Inc()
		return
	}
	if !t.lastKeyframeSent.CompareAndSwap(last, now) {
		t.metrics.keyframeThrottled.Inc() // another request won the race
		return
	}
	if t.publisher == nil {
		t.metrics.keyframeSent.Inc()
		return
	}
	err := t.publisher.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(t.ssrc)}})
	if err != nil {
		t.metrics.keyframeFailed.Inc()
		t.log.Debug("sfu: key-frame request not sent", "err", err)
		return
	}
	t.metrics.keyframeSent.Inc()
}

// drainRTCP reads the publisher's RTCP so the interceptors see it.
func drainRTCP(r *webrtc.RTPReceiver) {
	var buf [maxPacketSize]byte
	for {
		if _, _, err := r.Read(buf[:]); err != nil {
			return
		}
	}
}

// sendingMids returns the mids of an offer's sending audio and video
// sections (not rejected: port 0 unless bundle-only), and their count.
func sendingMids(offer string) (map[string]bool, int, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(offer); err != nil {
		return nil, 0, err
	}
	sessionDir := directionOf(sd.Attributes)
	mids := make(map[string]bool, len(sd.MediaDescriptions))
	count := 0
	for _, md := range sd.MediaDescriptions {
		media := strings.ToLower(md.MediaName.Media)
		if media != "audio" && media != "video" {
			continue
		}
		mid, _ := md.Attribute(sdp.AttrKeyMID)
		_, bundleOnly := md.Attribute("bundle-only")
		if md.MediaName.Port.Value == 0 && !bundleOnly {
			mids[mid] = false
			continue
		}
		dir := directionOf(md.Attributes)
		if dir == "" {
			dir = sessionDir
		}
		sends := dir == "" || dir == sdp.AttrKeySendRecv || dir == sdp.AttrKeySendOnly
		mids[mid] = sends
		if sends {
			count++
		}
	}
	return mids, count, nil
}

func directionOf(attrs []sdp.Attribute) string {
	for _, a := range attrs {
		switch a.Key {
		case sdp.AttrKeySendRecv, sdp.AttrKeySendOnly, sdp.AttrKeyRecvOnly, sdp.AttrKeyInactive:
			return a.Key
		}
	}
	return ""
}
