package e2ee

import (
	"errors"
	"fmt"
)

// Audio padding hides frame sizes, which give speech away: docs/E2EE.md,
// "Padding of audio frames".

// DefaultAudioBucket is the default bucket size of audio padding, in bytes.
const DefaultAudioBucket = 32

// MaxAudioBucket is the largest bucket: the trailer counts at most 255 bytes.
const MaxAudioBucket = 256

// ErrBadPadding is returned, wrapped, by UnpadAudio; it wraps ErrMalformedFrame.
var ErrBadPadding = fmt.Errorf("%w: bad audio padding", ErrMalformedFrame)

// PadAudio appends frame, zero bytes and a one-byte count to dst, a multiple
// of bucket (1 to MaxAudioBucket) bytes in all.
func PadAudio(dst, frame []byte, bucket int) []byte {
	if bucket < 1 || bucket > MaxAudioBucket {
		panic(fmt.Sprintf("e2ee: audio bucket %d outside 1-%d", bucket, MaxAudioBucket))
	}
	n := len(frame) + 1
	p := (bucket - n%bucket) % bucket
	dst = append(dst, frame...)
	dst = append(dst, make([]byte, p)...)
	return append(dst, byte(p))
}

// UnpadAudio returns the frame inside a padded plaintext (a sub-slice),
// refusing bad trailers, nonzero padding and empty frames.
func UnpadAudio(plain []byte) ([]byte, error) {
	if len(plain) == 0 {
		return nil, fmt.Errorf("%w: no trailer", ErrBadPadding)
	}
	p := int(plain[len(plain)-1])
	end := len(plain) - 1 - p
	if end < 1 {
		return nil, fmt.Errorf("%w: %d padding bytes leave no frame in %d bytes", ErrBadPadding, p, len(plain))
	}
	for _, b := range plain[end : len(plain)-1] {
		if b != 0 {
			return nil, fmt.Errorf("%w: nonzero padding byte", ErrBadPadding)
		}
	}
	return plain[:end], nil
}

var errBadBucket = errors.New("e2ee: Options.AudioBucket must be 0 (the default) or 1 to 256")
