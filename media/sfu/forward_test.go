package sfu

import (
	"bytes"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// bindContext is the TrackLocalContext pion hands a downtrack's Bind,
// filled in by hand so the forwarding path can be measured and checked
// without a network.
type bindContext struct {
	codecs []webrtc.RTPCodecParameters
	exts   []webrtc.RTPHeaderExtensionParameter
	ssrc   webrtc.SSRC
	w      webrtc.TrackLocalWriter
}

func (c *bindContext) CodecParameters() []webrtc.RTPCodecParameters { return c.codecs }
func (c *bindContext) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter {
	return c.exts
}
func (c *bindContext) SSRC() webrtc.SSRC                       { return c.ssrc }
func (c *bindContext) SSRCRetransmission() webrtc.SSRC         { return 0 }
func (c *bindContext) SSRCForwardErrorCorrection() webrtc.SSRC { return 0 }
func (c *bindContext) WriteStream() webrtc.TrackLocalWriter    { return c.w }
func (c *bindContext) ID() string                              { return "ctx" }
func (c *bindContext) RTCPReader() interceptor.RTCPReader      { return nil }

// discardWriter is the end of the line for the benchmark: it only counts.
type discardWriter struct{ n int }

func (w *discardWriter) WriteRTP(*rtp.Header, []byte) (int, error) { w.n++; return 0, nil }
func (w *discardWriter) Write([]byte) (int, error)                 { w.n++; return 0, nil }

// captureWriter keeps every packet written, marshalled as it would go on
// the wire.
type captureWriter struct{ packets [][]byte }

func (w *captureWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	b, err := (&rtp.Packet{Header: *h, Payload: payload}).Marshal()
	if err != nil {
		return 0, err
	}
	w.packets = append(w.packets, b)
	return len(b), nil
}
func (w *captureWriter) Write(b []byte) (int, error) { return 0, errors.New("unused") }

// Source (publisher) side of the forwarding fixtures: VP8 at 96 with mid,
// abs-send-time and transport-cc at IDs 1, 2 and 3.
var srcVP8 = webrtc.RTPCodecParameters{
	RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
	PayloadType:        96,
}

func newForwardFixture(t testing.TB) *publishedTrack {
	t.Helper()
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := newPublishedTrack(m, testLogger(), webrtc.RTPCodecTypeVideo, srcVP8, 512, defaultKeyframeRequestInterval)
	// A limiter whose packet limit a benchmark's loop cannot reach, so
	// forwarding pays for the check and drops nothing.
	tr.limit = newTrackLimiter(Config{VideoMaxPacketRate: maxLimitPackets, VideoMaxBitrate: -1, RateLimitEndFactor: 4, RateLimitEndAfter: time.Second}, webrtc.RTPCodecTypeVideo)
	tr.ssrc = 0x1234
	tr.srcCodecs = []webrtc.RTPCodecParameters{srcVP8}
	tr.srcExtIDs[sdp.SDESMidURI] = 1
	tr.srcExtIDs[sdp.ABSSendTimeURI] = 2
	tr.srcExtIDs[sdp.TransportCCURI] = 3
	return tr
}

// subscribe binds a downtrack of tr the way pion would, with the
// subscriber's own payload type and extension IDs.
func subscribe(t testing.TB, tr *publishedTrack, sid string, w webrtc.TrackLocalWriter, ssrc webrtc.SSRC) *downTrack {
	t.Helper()
	dt := newDownTrack(tr, nil)
	_, err := dt.Bind(&bindContext{
		codecs: []webrtc.RTPCodecParameters{{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
			PayloadType:        100,
		}},
		exts: []webrtc.RTPHeaderExtensionParameter{
			{URI: sdp.SDESMidURI, ID: 4},
			{URI: sdp.ABSSendTimeURI, ID: 9},
			{URI: sdp.TransportCCURI, ID: 5},
		},
		ssrc: ssrc,
		w:    w,
	})
	if err != nil {
		t.Fatal(err)
	}
	tr.subscribers[sid] = dt
	tr.rebuildFanoutLocked()
	return dt
}

func sourcePacket(t testing.TB, seq uint16, ts uint32, payload []byte, padding byte) []byte {
	t.Helper()
	h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, SSRC: 0x1234, Marker: true}
	for _, e := range []struct {
		id uint8
		p  []byte
	}{{1, []byte("0")}, {2, []byte{1, 2, 3}}, {3, []byte{0, 7}}} {
		if err := h.SetExtension(e.id, e.p); err != nil {
			t.Fatal(err)
		}
	}
	if padding > 0 {
		h.Padding = true
		h.PaddingSize = padding
	}
	b, err := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestForwardRewritesHeaders(t *testing.T) {
	tests := []struct {
		name    string
		seqs    []uint16 // source sequence numbers, in arrival order
		padding byte
	}{
		{name: "in order", seqs: []uint16{10, 11, 12}},
		{name: "gap stays a gap", seqs: []uint16{10, 13, 14}},
		{name: "wraps around", seqs: []uint16{65534, 65535, 0, 1}},
		{name: "reordered", seqs: []uint16{20, 22, 21}},
		{name: "padding kept", seqs: []uint16{5, 6}, padding: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newForwardFixture(t)
			w1, w2 := &captureWriter{}, &captureWriter{}
			subscribe(t, tr, "one", w1, 1111)
			subscribe(t, tr, "two", w2, 2222)
			for i, seq := range tc.seqs {
				tr.forward(sourcePacket(t, seq, uint32(seq)*3000, []byte{byte(i), 0xAA, byte(seq)}, tc.padding))
			}
			for _, w := range []*captureWriter{w1, w2} {
				if len(w.packets) != len(tc.seqs) {
					t.Fatalf("%d packets forwarded, want %d", len(w.packets), len(tc.seqs))
				}
			}
			var first [2]rtp.Packet
			for i, seq := range tc.seqs {
				for j, w := range []*captureWriter{w1, w2} {
					var p rtp.Packet
					if err := p.Unmarshal(w.packets[i]); err != nil {
						t.Fatal(err)
					}
					if i == 0 {
						first[j] = p
					}
					wantSSRC := []uint32{1111, 2222}[j]
					if p.SSRC != wantSSRC || p.PayloadType != 100 || !p.Marker {
						t.Errorf("header %+v, want SSRC %d, PT 100, marker", p.Header, wantSSRC)
					}
					// Offsets are fixed per subscriber from its first packet.
					if got, want := p.SequenceNumber-first[j].SequenceNumber, seq-tc.seqs[0]; got != want {
						t.Errorf("seq delta %d, want %d", got, want)
					}
					if got, want := p.Timestamp-first[j].Timestamp, (uint32(seq)-uint32(tc.seqs[0]))*3000; got != want {
						t.Errorf("timestamp delta %d, want %d", got, want)
					}
					if !bytes.Equal(p.Payload, []byte{byte(i), 0xAA, byte(seq)}) {
						t.Errorf("payload %x", p.Payload)
					}
					if p.PaddingSize != tc.padding {
						t.Errorf("padding %d, want %d", p.PaddingSize, tc.padding)
					}
					// abs-send-time moves to the subscriber's ID; mid and
					// transport-cc describe the publisher's transport and
					// are dropped.
					if ids := p.GetExtensionIDs(); len(ids) != 1 || ids[0] != 9 || !bytes.Equal(p.GetExtension(9), []byte{1, 2, 3}) {
						t.Errorf("extensions %v", ids)
					}
				}
			}
		})
	}
}

func TestNACKTranslatesSequenceNumbers(t *testing.T) {
	tr := newForwardFixture(t)
	w := &captureWriter{}
	dt := subscribe(t, tr, "one", w, 1111)
	for seq := uint16(100); seq < 110; seq++ {
		tr.forward(sourcePacket(t, seq, uint32(seq), []byte{byte(seq)}, 0))
	}
	var p rtp.Packet
	if err := p.Unmarshal(w.packets[3]); err != nil {
		t.Fatal(err)
	}
	lost := p.SequenceNumber // the subscriber's number for source seq 103

	dt.handleRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{
		MediaSSRC: 1111,
		Nacks:     rtcp.NackPairsFromSequenceNumbers([]uint16{lost, lost + 200}),
	}})
	if len(w.packets) != 11 {
		t.Fatalf("%d packets written, want 10 and one retransmission", len(w.packets))
	}
	var rtx rtp.Packet
	if err := rtx.Unmarshal(w.packets[10]); err != nil {
		t.Fatal(err)
	}
	if rtx.SequenceNumber != lost || rtx.SSRC != 1111 || !bytes.Equal(rtx.Payload, []byte{103}) {
		t.Errorf("retransmitted %+v payload %x", rtx.Header, rtx.Payload)
	}

	// Feedback about another SSRC is not this downtrack's business.
	dt.handleRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{
		MediaSSRC: 999,
		Nacks:     rtcp.NackPairsFromSequenceNumbers([]uint16{lost}),
	}})
	if len(w.packets) != 11 {
		t.Errorf("NACK for another SSRC retransmitted")
	}
}

func TestPacketCache(t *testing.T) {
	tests := []struct {
		name     string
		size     int
		wantSize int
		stored   []uint16
		lookup   uint16
		hit      bool
	}{
		{name: "default size", size: 512, wantSize: 512, stored: []uint16{1, 2, 3}, lookup: 2, hit: true},
		{name: "rounded up", size: 100, wantSize: 128, stored: []uint16{7}, lookup: 7, hit: true},
		{name: "clamped", size: 1 << 20, wantSize: 1 << 16, stored: []uint16{65535}, lookup: 65535, hit: true},
		{name: "never stored", size: 16, wantSize: 16, stored: []uint16{1}, lookup: 2, hit: false},
		{name: "overwritten by a later packet", size: 16, wantSize: 16, stored: []uint16{3, 19}, lookup: 3, hit: false},
		{name: "survivor after overwrite", size: 16, wantSize: 16, stored: []uint16{3, 19}, lookup: 19, hit: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newPacketCache(tc.size)
			if c.size() != tc.wantSize {
				t.Fatalf("size %d, want %d", c.size(), tc.wantSize)
			}
			for _, seq := range tc.stored {
				c.store(seq, []byte{byte(seq), byte(seq >> 8), 0xEE})
			}
			var dst [maxPacketSize]byte
			n := c.load(tc.lookup, dst[:])
			if (n > 0) != tc.hit {
				t.Fatalf("load(%d) = %d bytes, want hit %v", tc.lookup, n, tc.hit)
			}
			if tc.hit && !bytes.Equal(dst[:n], []byte{byte(tc.lookup), byte(tc.lookup >> 8), 0xEE}) {
				t.Errorf("load(%d) = %x", tc.lookup, dst[:n])
			}
		})
	}
	c := newPacketCache(16)
	c.store(1, make([]byte, maxPacketSize+1))
	var dst [maxPacketSize]byte
	if n := c.load(1, dst[:]); n != 0 {
		t.Errorf("oversized packet cached")
	}
}

func TestSendingMids(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
	section := func(media, mid, dir string, port int) string {
		s := "m=" + media + " " + strconv.Itoa(port) + " UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:" + mid + "\r\n"
		if dir != "" {
			s += "a=" + dir + "\r\n"
		}
		return s
	}
	tests := []struct {
		name      string
		sdp       string
		wantCount int
		wantMids  map[string]bool
	}{
		{"send directions", head + section("audio", "0", "sendrecv", 9) + section("video", "1", "sendonly", 9) +
			section("video", "2", "recvonly", 9) + section("audio", "3", "inactive", 9), 2,
			map[string]bool{"0": true, "1": true, "2": false, "3": false}},
		{"default is sendrecv", head + section("audio", "a", "", 9), 1, map[string]bool{"a": true}},
		{"rejected section", head + section("video", "v", "sendrecv", 0), 0, map[string]bool{"v": false}},
		{"data channel ignored", head + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:d\r\n", 0,
			map[string]bool{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mids, n, err := sendingMids(tc.sdp)
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.wantCount {
				t.Errorf("count %d, want %d", n, tc.wantCount)
			}
			for mid, want := range tc.wantMids {
				if mids[mid] != want {
					t.Errorf("mid %s sends %v, want %v", mid, mids[mid], want)
				}
			}
			if len(mids) != len(tc.wantMids) {
				t.Errorf("mids %v", mids)
			}
		})
	}
	if _, _, err := sendingMids("garbage"); err == nil {
		t.Error("garbage parsed")
	}
}

// forwardLoad is the benchmark's shape: one VP8 packet of a typical size
// fanned out to three subscribers.
func forwardLoad(t testing.TB) (tr *publishedTrack, packet []byte, w *discardWriter) {
	tr = newForwardFixture(t)
	w = &discardWriter{}
	for i, sid := range []string{"one", "two", "three"} {
		subscribe(t, tr, sid, w, webrtc.SSRC(1000+i))
	}
	return tr, sourcePacket(t, 0, 0, make([]byte, 1100), 0), w
}

func BenchmarkForward(b *testing.B) {
	tr, packet, _ := forwardLoad(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(packet)))
	seq := uint16(0)
	for b.Loop() {
		seq++
		packet[2], packet[3] = byte(seq>>8), byte(seq)
		tr.forward(packet)
	}
}
