package e2ee

import (
	"errors"
	"fmt"

	"github.com/sotto-rtc/sotto/media/sframe"
)

// An encrypted frame is its clear, authenticated codec prefix, then the
// SFrame header and ciphertext (docs/E2EE.md, "The frame format on RTP").

// EncryptFrame encrypts one encoded frame under the current key, for the wire.
func (s *Session) EncryptFrame(codec Codec, frame []byte) ([]byte, error) {
	if codec == CodecH264 {
		frame = NormalizeAnnexB(frame)
	}
	n, err := PrefixLen(codec, frame)
	if err != nil {
		return nil, fmt.Errorf("e2ee: encrypt: %w", err)
	}
	prefix, plain := frame[:n], frame[n:]
	if codec == CodecOpus {
		plain = PadAudio(nil, plain, s.opts.AudioBucket)
	}
	s.StartPublishing()
	s.mu.Lock()
	ct, err := s.cur.sender.Encrypt(nil, prefix, plain)
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("e2ee: encrypt: %w", err)
	}
	out := make([]byte, 0, n+len(ct)+len(ct)/64+2)
	out = append(out, prefix...)
	if codec == CodecH264 {
		return EscapeH264(out, ct), nil
	}
	return append(out, ct...), nil
}

// DecryptFrame decrypts one frame from participant from and returns it as
// the sender's encoder made it, with its SFrame header. Errors: ErrNoKey
// when the key is missing, else a wrapped sframe error or ErrBadPadding.
func (s *Session) DecryptFrame(from string, codec Codec, frame []byte) ([]byte, sframe.Header, error) {
	n, err := PrefixLen(codec, frame)
	if err != nil {
		return nil, sframe.Header{}, fmt.Errorf("e2ee: decrypt: %w", err)
	}
	prefix, body := frame[:n], frame[n:]
	if codec == CodecH264 {
		if body, err = UnescapeH264(nil, body); err != nil {
			return nil, sframe.Header{}, fmt.Errorf("e2ee: decrypt: %w", err)
		}
	}
	s.mu.Lock()
	r := s.members[from]
	s.mu.Unlock()
	if r == nil {
		return nil, sframe.Header{}, fmt.Errorf("%w: %q is not a member with a key", ErrNoKey, from)
	}
	buf := make([]byte, 0, len(frame))
	buf = append(buf, prefix...)
	out, h, err := r.recv.Decrypt(buf, prefix, body)
	if err != nil {
		if errors.Is(err, sframe.ErrUnknownKID) {
			err = fmt.Errorf("%w: %w", ErrNoKey, err)
		}
		return nil, h, fmt.Errorf("e2ee: decrypt frame of %q: %w", from, err)
	}
	if codec == CodecOpus {
		plain, err := UnpadAudio(out[n:])
		if err != nil {
			return nil, h, fmt.Errorf("e2ee: decrypt frame of %q: %w", from, err)
		}
		out = out[:n+len(plain)]
	}
	s.mu.Lock()
	if s.members[from] == r {
		s.noteInUseLocked(r, h.KID)
	}
	s.mu.Unlock()
	return out, h, nil
}
