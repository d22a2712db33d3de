package sfu

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// maxForwardedExtensions bounds the extensions rewritten per packet.
const maxForwardedExtensions = 8

// downTrack is one published track as one subscriber receives it, with
// its own SSRC, and sequence numbers and timestamps offset at random from
// the source's: gaps stay gaps, NACKs map back, and nothing of the
// publisher's numbering leaks across subscriptions.
type downTrack struct {
	track *publishedTrack
	sub   *Participant // nil only in tests of the forwarding path

	// Set under the subscriber's opMu before any other goroutine looks.
	transceiver *webrtc.RTPTransceiver
	sender      *webrtc.RTPSender

	mu    sync.Mutex
	bound bool
	ws    webrtc.TrackLocalWriter
	ssrc  uint32
	// ptMap maps a source payload type to the subscriber's plus one; 0: none.
	ptMap   [128]uint8
	exts    [maxForwardedExtensions]extensionMapping
	numExts int

	started   bool
	seqOffset uint16
	tsOffset  uint32

	out      rtp.Header
	outExts  [maxForwardedExtensions]rtp.Extension
	payloads [maxForwardedExtensions][]byte
	dsts     [maxForwardedExtensions]uint8
	rtxBuf   [maxPacketSize]byte
	rtxHdr   rtp.Header

	nack nackBudget
}

type extensionMapping struct{ src, dst uint8 }

func newDownTrack(t *publishedTrack, sub *Participant) *downTrack {
	return &downTrack{track: t, sub: sub, nack: newNackBudget(time.Since(t.created))}
}

func (dt *downTrack) ID() string { return dt.track.sid }

func (dt *downTrack) RID() string { return "" }

func (dt *downTrack) StreamID() string {
	if dt.track.owner == nil {
		return ""
	}
	return dt.track.owner.cfg.SID
}

func (dt *downTrack) Kind() webrtc.RTPCodecType { return dt.track.kind }

// forwardableExtension reports whether an extension means the same after
// forwarding: not mid, stream ids or transport-wide sequence numbers.
func forwardableExtension(uri string) bool {
	switch uri {
	case sdp.SDESMidURI, sdp.SDESRTPStreamIDURI, sdp.SDESRepairRTPStreamIDURI, sdp.TransportCCURI:
		return false
	}
	return true
}

// matchCodec prefers the same MIME type and format parameters, then MIME type alone.
func matchCodec(src webrtc.RTPCodecParameters, negotiated []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	var fallback *webrtc.RTPCodecParameters
	for i := range negotiated {
		c := &negotiated[i]
		if !strings.EqualFold(c.MimeType, src.MimeType) {
			continue
		}
		if c.SDPFmtpLine == src.SDPFmtpLine {
			return *c, true
		}
		if fallback == nil {
			fallback = c
		}
	}
	if fallback == nil {
		return webrtc.RTPCodecParameters{}, false
	}
	return *fallback, true
}

// Bind fixes the SSRC, payload types and extension IDs the subscriber
// negotiated.
func (dt *downTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	t := dt.track
	negotiated := ctx.CodecParameters()
	chosen, ok := matchCodec(t.codec, negotiated)
	if !ok {
		return webrtc.RTPCodecParameters{}, fmt.Errorf("sfu: subscriber did not negotiate %s: %w",
			t.codec.MimeType, webrtc.ErrUnsupportedCodec)
	}
	var ptMap [128]uint8
	ptMap[t.codec.PayloadType&0x7f] = uint8(chosen.PayloadType) + 1
	for _, src := range t.srcCodecs {
		if dst, ok := matchCodec(src, negotiated); ok && ptMap[src.PayloadType&0x7f] == 0 {
			ptMap[src.PayloadType&0x7f] = uint8(dst.PayloadType) + 1
		}
	}
	var exts [maxForwardedExtensions]extensionMapping
	n := 0
	for _, e := range ctx.HeaderExtensions() {
		src, ok := t.srcExtIDs[e.URI]
		if !ok || !forwardableExtension(e.URI) || e.ID <= 0 || e.ID > 255 || n == len(exts) {
			continue
		}
		exts[n] = extensionMapping{src: src, dst: uint8(e.ID)}
		n++
	}

	// A late subscriber shows nothing until a key frame: ask now, before
	// its own first picture-loss report races this one for the throttle.
	t.requestKeyframe()

	dt.mu.Lock()
	dt.ws = ctx.WriteStream()
	dt.ssrc = uint32(ctx.SSRC())
	dt.ptMap = ptMap
	dt.exts = exts
	dt.numExts = n
	dt.bound = true
	dt.mu.Unlock()
	return chosen, nil
}

func (dt *downTrack) Unbind(webrtc.TrackLocalContext) error {
	dt.stop()
	return nil
}

func (dt *downTrack) stop() {
	dt.mu.Lock()
	dt.bound = false
	dt.ws = nil
	dt.mu.Unlock()
}

func (dt *downTrack) forward(src *rtp.Header, payload []byte) {
	m := dt.track.metrics
	dt.mu.Lock()
	if !dt.bound {
		dt.mu.Unlock()
		m.droppedNoBinding.Inc()
		return
	}
	pt := dt.ptMap[src.PayloadType&0x7f]
	if pt == 0 {
		dt.mu.Unlock()
		m.droppedCodec.Inc()
		return
	}
	if !dt.started {
		dt.started = true
		dt.seqOffset = uint16(rand.Uint32()) - src.SequenceNumber
		dt.tsOffset = rand.Uint32() - src.Timestamp
	}
	dt.rewrite(src, pt-1)
	size := dt.out.MarshalSize() + len(payload) + int(dt.out.PaddingSize)
	_, err := dt.ws.WriteRTP(&dt.out, payload)
	if err == nil {
		dt.nack.earn(size)
	}
	dt.mu.Unlock()
	if err != nil {
		m.droppedWrite.Inc()
		return
	}
	dt.track.counters.packetsOut.Inc()
	dt.track.counters.bytesOut.Add(float64(size))
}

// rewrite fills dt.out with src as this subscriber sees it. dt.mu held.
func (dt *downTrack) rewrite(src *rtp.Header, pt uint8) {
	o := &dt.out
	o.Version = 2
	o.Padding = src.Padding
	o.PaddingSize = src.PaddingSize
	o.Marker = src.Marker
	o.PayloadType = pt
	o.SequenceNumber = src.SequenceNumber + dt.seqOffset
	o.Timestamp = src.Timestamp + dt.tsOffset
	o.SSRC = dt.ssrc
	o.CSRC = src.CSRC
	o.Extension = false
	o.ExtensionProfile = 0
	o.Extensions = dt.outExts[:0]

	// The profile (one- or two-byte) depends on all the extensions.
	n := 0
	twoByte := false
	if src.Extension {
		for i := 0; i < dt.numExts; i++ {
			e := dt.exts[i]
			p := src.GetExtension(e.src)
			if p == nil {
				continue
			}
			if e.dst > 14 || len(p) == 0 || len(p) > 16 {
				twoByte = true
			}
			dt.dsts[n] = e.dst
			dt.payloads[n] = p
			n++
		}
	}
	if n == 0 {
		return
	}
	o.Extension = true
	o.ExtensionProfile = rtp.ExtensionProfileOneByte
	if twoByte {
		o.ExtensionProfile = rtp.ExtensionProfileTwoByte
	}
	for i := 0; i < n; i++ {
		// Cannot fail: IDs and lengths were checked, IDs are distinct.
		_ = o.SetExtension(dt.dsts[i], dt.payloads[i])
		dt.payloads[i] = nil
	}
}

// readRTCP passes picture-loss requests on (throttled) and answers NACKs
// from the cache until the sender stops.
func (dt *downTrack) readRTCP() {
	var buf [maxPacketSize]byte
	for {
		n, _, err := dt.sender.Read(buf[:])
		if err != nil {
			return
		}
		// After the strict check an error would be a gap in rtcpstrict;
		// it still must not end the feedback.
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		dt.handleRTCP(pkts)
	}
}

func (dt *downTrack) handleRTCP(pkts []rtcp.Packet) {
	dt.mu.Lock()
	ssrc := dt.ssrc
	dt.mu.Unlock()
	for _, pkt := range pkts {
		switch p := pkt.(type) {
		case *rtcp.PictureLossIndication:
			if p.MediaSSRC == ssrc {
				dt.track.requestKeyframe()
			}
		case *rtcp.FullIntraRequest:
			for _, e := range p.FIR {
				if e.SSRC == ssrc || p.MediaSSRC == ssrc {
					dt.track.requestKeyframe()
					break
				}
			}
		case *rtcp.TransportLayerNack:
			if p.MediaSSRC == ssrc {
				dt.retransmit(p)
			}
		}
	}
}

// retransmit resends what a NACK lists, within budget, looking up no
// more sequence numbers than the cache holds.
func (dt *downTrack) retransmit(nack *rtcp.TransportLayerNack) {
	m := dt.track.metrics
	now := time.Since(dt.track.created)
	dt.mu.Lock()
	dt.nack.refill(now)
	dt.mu.Unlock()
	dt.track.batch.hold()
	defer dt.track.batch.release()
	budget := dt.track.cache.size()
	spent := false
	for i := range nack.Nacks {
		nack.Nacks[i].Range(func(seq uint16) bool {
			if budget == 0 {
				return false
			}
			budget--
			if spent || !dt.resend(seq, now) {
				spent = true
				m.nackOverBudget.Inc()
			}
			return true
		})
	}
}

// resend resends seq unless it was just resent; false when out of budget.
func (dt *downTrack) resend(seq uint16, now time.Duration) bool {
	m := dt.track.metrics
	dt.mu.Lock()
	if !dt.bound || !dt.started {
		dt.mu.Unlock()
		return true
	}
	if dt.nack.repeated(seq, now) {
		dt.mu.Unlock()
		m.nackDuplicates.Inc()
		return true
	}
	if !dt.nack.hasPacket() {
		dt.mu.Unlock()
		return false
	}
	n := dt.track.cache.load(seq-dt.seqOffset, dt.rtxBuf[:])
	if n == 0 {
		dt.mu.Unlock()
		m.droppedCacheMiss.Inc()
		return true
	}
	payload, ok := parseRTP(&dt.rtxHdr, dt.rtxBuf[:n])
	if !ok {
		dt.mu.Unlock()
		m.droppedMalformed.Inc()
		return true
	}
	pt := dt.ptMap[dt.rtxHdr.PayloadType&0x7f]
	if pt == 0 {
		dt.mu.Unlock()
		m.droppedCodec.Inc()
		return true
	}
	dt.rewrite(&dt.rtxHdr, pt-1)
	size := dt.out.MarshalSize() + len(payload) + int(dt.out.PaddingSize)
	if !dt.nack.spend(size) {
		dt.mu.Unlock()
		return false
	}
	dt.nack.resent(seq, now)
	_, err := dt.ws.WriteRTP(&dt.out, payload)
	dt.mu.Unlock()
	if err != nil {
		m.droppedWrite.Inc()
		return true
	}
	m.nackRetransmissions.Inc()
	dt.track.counters.packetsOut.Inc()
	dt.track.counters.bytesOut.Add(float64(size))
	return true
}
