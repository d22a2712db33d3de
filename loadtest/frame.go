package loadtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/sotto-rtc/sotto/media/e2ee"
)

// Synthetic frames: the codec's header, the load tool's header (encrypted
// with E2EE, so the SFU cannot read or rewrite it), then filler. The load
// tool's header, big-endian:
//
//	0  2  magic "SL"
//	2  1  version (1)
//	3  1  flags: bit 0 set on a key frame
//	4  4  track id, assigned by the run to each published track
//	8  4  frame sequence number, per track, from 0
//	12 8  send time, microseconds since the run began (monotonic clock)
const (
	headerLen     = 20
	headerVersion = 1
	flagKeyframe  = 1 << 0
)

var headerMagic = [2]byte{'S', 'L'}

// opusTOCBytes is what audioFrame writes before the load tool's header.
var opusTOCBytes = []byte{opusTOC}

// Frame sizes and cadences: what a real encoder sends.
const (
	audioFrameInterval = 20 * time.Millisecond
	// audioFrameBytes is a 20 ms Opus frame at 32 kbit/s, wide-band speech.
	audioFrameBytes = 80
	// opusTOC: config 15 (hybrid, full band, 20 ms), mono, one frame.
	opusTOC          = 15 << 3
	videoFPS         = 30
	keyframeInterval = 3 * time.Second
	keyframeRatio    = 5
	// videoWidth and videoHeight go into key frames' headers.
	videoWidth, videoHeight = 640, 360
)

// vp8PrefixLen returns the clear prefix of a VP8 frame of the given type:
// the frame tag, and for a key frame the start code and dimensions
// (RFC 6386 section 9.1).
func vp8PrefixLen(key bool) int {
	if key {
		return 10
	}
	return 3
}

// videoFrameSizes returns the sizes of interframes and key frames that
// average bitrate bps at videoFPS with a key frame every keyframeInterval.
func videoFrameSizes(bps int) (inter, key int) {
	perGOP := int(keyframeInterval.Seconds() * videoFPS) // frames per key frame
	avg := float64(bps) / 8 / videoFPS
	inter = int(avg * float64(perGOP) / float64(perGOP-1+keyframeRatio))
	key = inter * keyframeRatio
	inter = max(inter, vp8PrefixLen(false)+headerLen)
	key = max(key, vp8PrefixLen(true)+headerLen)
	return inter, key
}

// frameHeader is the load tool's header in a frame.
type frameHeader struct {
	Track    uint32
	Seq      uint32
	SentUS   int64 // microseconds since the run's epoch
	Keyframe bool
}

// appendHeader appends h's wire form to b.
func appendHeader(b []byte, h frameHeader) []byte {
	var flags byte
	if h.Keyframe {
		flags |= flagKeyframe
	}
	b = append(b, headerMagic[0], headerMagic[1], headerVersion, flags)
	b = binary.BigEndian.AppendUint32(b, h.Track)
	b = binary.BigEndian.AppendUint32(b, h.Seq)
	return binary.BigEndian.AppendUint64(b, uint64(h.SentUS))
}

// errNotLoadFrame: a frame without the load tool's header; after decryption
// it means the tool and the SDK disagree about the clear prefix.
var errNotLoadFrame = errors.New("loadtest: frame without a load-test header")

// audioFrame builds an Opus-shaped frame of size bytes.
func audioFrame(h frameHeader, size int) []byte {
	b := make([]byte, 0, max(size, 1+headerLen))
	b = append(b, opusTOCBytes...)
	b = appendHeader(b, h)
	return fill(b, size)
}

// videoFrame builds a VP8-shaped frame of size bytes: a key frame when
// h.Keyframe, otherwise an interframe.
func videoFrame(h frameHeader, size int) []byte {
	pre := vp8PrefixLen(h.Keyframe)
	size = max(size, pre+headerLen)
	b := make([]byte, 0, size)
	// Frame tag: key frame bit 0 clear, show_frame set, a plausible
	// first_part_size.
	first := uint32(size-pre) / 2
	tag := first<<5 | 1<<4
	if !h.Keyframe {
		tag |= 1
	}
	b = append(b, byte(tag), byte(tag>>8), byte(tag>>16))
	if h.Keyframe {
		b = append(b, 0x9d, 0x01, 0x2a)
		b = binary.LittleEndian.AppendUint16(b, videoWidth)
		b = binary.LittleEndian.AppendUint16(b, videoHeight)
	}
	b = appendHeader(b, h)
	return fill(b, size)
}

// fill pads b to size bytes with a pattern that looks like data.
func fill(b []byte, size int) []byte {
	for i := len(b); i < size; i++ {
		b = append(b, byte(i*31+7))
	}
	return b
}

// parseFrame finds the load tool's header in a decrypted frame.
func parseFrame(c e2ee.Codec, data []byte) (frameHeader, error) {
	pre := len(opusTOCBytes) // the TOC byte audioFrame writes
	if c != e2ee.CodecOpus {
		var err error
		if pre, err = e2ee.PrefixLen(c, data); err != nil {
			return frameHeader{}, fmt.Errorf("%w: %w", errNotLoadFrame, err)
		}
	}
	if len(data) < pre {
		return frameHeader{}, errNotLoadFrame
	}
	b := data[pre:]
	if len(b) < headerLen || b[0] != headerMagic[0] || b[1] != headerMagic[1] || b[2] != headerVersion {
		return frameHeader{}, errNotLoadFrame
	}
	return frameHeader{
		Keyframe: b[3]&flagKeyframe != 0,
		Track:    binary.BigEndian.Uint32(b[4:]),
		Seq:      binary.BigEndian.Uint32(b[8:]),
		SentUS:   int64(binary.BigEndian.Uint64(b[12:])),
	}, nil
}
