package loadtest

import (
	"errors"
	"testing"
	"time"

	"github.com/sotto-rtc/sotto/media/e2ee"
)

func TestFramesCarryTheirHeaderAfterTheClearPrefix(t *testing.T) {
	h := frameHeader{Track: 7, Seq: 123456, SentUS: 98765432101}
	key := h
	key.Keyframe = true
	tests := []struct {
		name   string
		codec  e2ee.Codec
		frame  []byte
		prefix int
		want   frameHeader
	}{
		{"opus", e2ee.CodecOpus, audioFrame(h, audioFrameBytes), 0, h}, // encrypted whole, TOC byte included
		{"vp8 interframe", e2ee.CodecVP8, videoFrame(h, 2000), 3, h},
		{"vp8 key frame", e2ee.CodecVP8, videoFrame(key, 10000), 10, key},
		{"vp8 smaller than its header is grown", e2ee.CodecVP8, videoFrame(key, 1), 10, key},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The SDK keeps exactly e2ee.PrefixLen bytes in clear; the
			// header must start at or after their end, inside the part
			// that is encrypted.
			n, err := e2ee.PrefixLen(tt.codec, tt.frame)
			if err != nil {
				t.Fatalf("PrefixLen: %v", err)
			}
			if n != tt.prefix {
				t.Errorf("clear prefix %d bytes, want %d", n, tt.prefix)
			}
			got, err := parseFrame(tt.codec, tt.frame)
			if err != nil {
				t.Fatalf("parseFrame: %v", err)
			}
			if got != tt.want {
				t.Errorf("parseFrame = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFrameSizes(t *testing.T) {
	if got := len(audioFrame(frameHeader{}, audioFrameBytes)); got != audioFrameBytes {
		t.Errorf("audio frame %d bytes, want %d", got, audioFrameBytes)
	}
	for _, bps := range []int{100_000, 500_000, 2_500_000} {
		inter, key := videoFrameSizes(bps)
		if key != keyframeRatio*inter {
			t.Errorf("%d bit/s: key frame %d, interframe %d: ratio is not %d", bps, key, inter, keyframeRatio)
		}
		perGOP := int(keyframeInterval.Seconds() * videoFPS)
		got := float64(key+(perGOP-1)*inter) * 8 / keyframeInterval.Seconds()
		if d := got/float64(bps) - 1; d > 0.01 || d < -0.01 {
			t.Errorf("%d bit/s: one key-frame interval averages %.0f bit/s", bps, got)
		}
	}
	if 1000*time.Millisecond/audioFrameInterval != 50 {
		t.Error("audio must be 50 frames per second")
	}
}

func TestParseFrameRefusesForeignFrames(t *testing.T) {
	tests := []struct {
		name  string
		codec e2ee.Codec
		frame []byte
	}{
		{"empty opus", e2ee.CodecOpus, nil},
		{"opus without header", e2ee.CodecOpus, []byte{opusTOC, 1, 2, 3}},
		{"opus with a short header", e2ee.CodecOpus, audioFrame(frameHeader{}, audioFrameBytes)[:10]},
		{"vp8 key frame without start code", e2ee.CodecVP8, make([]byte, 40)},
		{"wrong version", e2ee.CodecOpus, func() []byte {
			f := audioFrame(frameHeader{}, audioFrameBytes)
			f[3] = headerVersion + 1
			return f
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseFrame(tt.codec, tt.frame); !errors.Is(err, errNotLoadFrame) {
				t.Errorf("parseFrame = %v, want errNotLoadFrame", err)
			}
		})
	}
}
