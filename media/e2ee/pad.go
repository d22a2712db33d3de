package e2ee

import (
	"errors"
	"fmt"
)

// Audio padding (docs/E2EE.md, "Padding of audio frames"): the plaintext is
// frame || p zero bytes || p, its length a multiple of the sender's bucket,
// so frame sizes do not give speech away. Anything else wraps ErrBadPadding.

// DefaultAudioBucket is the default bucket size of audio padding, in
// bytes: the SFrame plaintext of an audio frame (frame, padding and the
// one-byte trailer) is a multiple of it.
const DefaultAudioBucket = 32

// MaxAudioBucket is the largest bucket size: the one-byte trailer counts
// at most 255 padding bytes.
const MaxAudioBucket = 256

// ErrBadPadding is returned, wrapped, for an audio frame whose decrypted
// plaintext does not end in a well-formed padding trailer (see
// UnpadAudio). It wraps ErrMalformedFrame.
var ErrBadPadding = fmt.Errorf("%w: bad audio padding", ErrMalformedFrame)

// PadAudio appends frame to dst, then the zero bytes and the one-byte
// trailer that make the appended plaintext a multiple of bucket bytes
// long. bucket must be 1 (no padding but the trailer) to MaxAudioBucket.
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

// UnpadAudio returns the frame inside a padded audio plaintext (a
// sub-slice of plain). It refuses, with an error wrapping ErrBadPadding,
// an empty plaintext, a trailer counting more padding than there is room
// for before it, a nonzero padding byte, and an empty frame.
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
