package client

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"
	"github.com/sotto-rtc/sotto/media/e2ee"
)

// Frame is one media frame of a remote track, as its sender's encoder made
// it.
type Frame struct {
	Data      []byte
	Timestamp uint32 // RTP timestamp
	Encrypted bool   // it came end-to-end encrypted and was decrypted here
	KID       uint64 // the SFrame key id it carried
}

// FrameStats counts a remote track's frames.
type FrameStats struct {
	Decrypted uint64 // decrypted and returned by ReadFrame
	Rejected  uint64 // failed to decrypt (tampered, replayed, malformed): dropped
	NoKey     uint64 // no key for them (yet): dropped
	Clear     uint64 // returned without decryption: the owner does not encrypt (or E2EEOptions.AcceptClear)
	// ClearRefused: did not decrypt on a track the server marks as clear
	// although its owner encrypts (injected media): dropped unless AcceptClear.
	ClearRefused uint64
}

// frameReader turns a remote track's RTP into frames and decrypts them.
type frameReader struct {
	mu    sync.Mutex // one ReadFrame at a time
	sb    *samplebuilder.SampleBuilder
	codec e2ee.Codec
	err   error

	decrypted, rejected, noKey, clear, clearRefused atomic.Uint64
}

// maxLatePackets is how long, in packets, a frame waits for a missing one.
const maxLatePackets = 256

// ReadFrame returns the track's next complete frame. Whether it must
// decrypt, and under whose keys, is decided by the track's owner
// (Participant), never by the track's fields the server writes
// (docs/E2EE.md, "Whether to decrypt"). Frames that fail are dropped and
// counted (Stats); those of an owner announced without E2EE, or all with
// E2EE off here, come with Encrypted false. Call it from one goroutine, and
// do not mix it with reading Track.
func (t *RemoteTrack) ReadFrame() (Frame, error) {
	fr := &t.frames
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if fr.err != nil {
		return Frame{}, fr.err
	}
	if fr.sb == nil {
		codec, err := e2ee.CodecFromMime(t.Track.Codec().MimeType)
		if err != nil {
			fr.err = fmt.Errorf("client: track %s: %w", t.Info.SID, err)
			return Frame{}, fr.err
		}
		var dep rtp.Depacketizer
		switch codec {
		case e2ee.CodecOpus:
			dep = &codecs.OpusPacket{}
		case e2ee.CodecVP8:
			dep = &codecs.VP8Packet{}
		case e2ee.CodecH264:
			dep = &codecs.H264Packet{}
		}
		fr.codec = codec
		fr.sb = samplebuilder.New(maxLatePackets, dep, t.Track.Codec().ClockRate)
	}
	for {
		if s := fr.sb.Pop(); s != nil {
			f := Frame{Data: s.Data, Timestamp: s.PacketTimestamp}
			if t.keys == nil || (t.owner.announced.Load() && !t.owner.encrypts.Load()) {
				fr.clear.Add(1)
				return f, nil
			}
			pt, h, err := t.keys.DecryptFrame(t.Participant.Identity, fr.codec, s.Data)
			if err != nil {
				switch {
				case !t.Info.E2EE && t.acceptClear:
					fr.clear.Add(1)
					return f, nil
				case !t.Info.E2EE:
					fr.clearRefused.Add(1)
				case errors.Is(err, e2ee.ErrNoKey):
					fr.noKey.Add(1)
				default:
					fr.rejected.Add(1)
				}
				continue
			}
			fr.decrypted.Add(1)
			f.Data, f.Encrypted, f.KID = pt, true, h.KID
			return f, nil
		}
		pkt, _, err := t.Track.ReadRTP()
		if err != nil {
			return Frame{}, err
		}
		fr.sb.Push(pkt)
	}
}

// Stats counts the frames ReadFrame has handled.
func (t *RemoteTrack) Stats() FrameStats {
	fr := &t.frames
	return FrameStats{
		Decrypted:    fr.decrypted.Load(),
		Rejected:     fr.rejected.Load(),
		NoKey:        fr.noKey.Load(),
		Clear:        fr.clear.Load(),
		ClearRefused: fr.clearRefused.Load(),
	}
}
