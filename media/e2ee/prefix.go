package e2ee

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// The clear codec prefix and H.264 escaping: docs/E2EE.md, "The frame
// format on RTP" and "H.264 through pion".

// Codec names the codecs whose frames this package knows how to split.
type Codec int

// The codecs Sotto encrypts. The zero Codec is none of them.
const (
	CodecOpus Codec = iota + 1
	CodecVP8
	CodecH264
)

// ErrUnsupportedCodec is returned, wrapped, for a codec this package does not handle.
var ErrUnsupportedCodec = errors.New("e2ee: unsupported codec")

// ErrMalformedFrame is returned, wrapped, for a frame that cannot be split
// or unescaped. The frame should be dropped.
var ErrMalformedFrame = errors.New("e2ee: malformed frame")

// ErrNoSlice is returned for an H.264 frame without a coded slice: it would
// go entirely in clear, so drop it.
var ErrNoSlice = errors.New("e2ee: H.264 frame has no slice")

// String returns the codec's MIME type, as CodecFromMime takes it.
func (c Codec) String() string {
	switch c {
	case CodecOpus:
		return "audio/opus"
	case CodecVP8:
		return "video/VP8"
	case CodecH264:
		return "video/H264"
	}
	return fmt.Sprintf("Codec(%d)", int(c))
}

// CodecFromMime returns the Codec for a MIME type, compared without regard to case.
func CodecFromMime(mime string) (Codec, error) {
	for _, c := range [...]Codec{CodecOpus, CodecVP8, CodecH264} {
		if strings.EqualFold(mime, c.String()) {
			return c, nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrUnsupportedCodec, mime)
}

// Lengths of the clear prefixes that do not depend on the frame's content.
const (
	opusPrefixLen     = 0  // nothing: the TOC byte (RFC 6716 section 3.1) is encrypted too
	vp8DeltaPrefixLen = 3  // the frame tag (RFC 6386 section 9.1)
	vp8KeyPrefixLen   = 10 // frame tag, start code 9d 01 2a, width, height
	h264SliceHeadLen  = 3  // NAL header, then first_mb_in_slice, slice_type, pic_parameter_set_id
)

// PrefixLen returns how many leading bytes of a frame stay in clear
// (docs/E2EE.md, "The frame format on RTP"); the answer is the same once
// the rest is replaced by EscapeH264 output.
func PrefixLen(c Codec, frame []byte) (int, error) {
	switch c {
	case CodecOpus:
		if len(frame) == 0 {
			return 0, fmt.Errorf("%w: empty Opus frame", ErrMalformedFrame)
		}
		return opusPrefixLen, nil
	case CodecVP8:
		return vp8PrefixLen(frame)
	case CodecH264:
		return h264PrefixLen(frame)
	}
	return 0, fmt.Errorf("%w: %v", ErrUnsupportedCodec, c)
}

func vp8PrefixLen(frame []byte) (int, error) {
	if len(frame) < vp8DeltaPrefixLen {
		return 0, fmt.Errorf("%w: VP8 frame of %d bytes, shorter than its frame tag", ErrMalformedFrame, len(frame))
	}
	if frame[0]&0x01 != 0 {
		return vp8DeltaPrefixLen, nil
	}
	if len(frame) < vp8KeyPrefixLen {
		return 0, fmt.Errorf("%w: VP8 key frame of %d bytes, shorter than its header", ErrMalformedFrame, len(frame))
	}
	if frame[3] != 0x9d || frame[4] != 0x01 || frame[5] != 0x2a {
		return 0, fmt.Errorf("%w: VP8 key frame without start code 9d 01 2a", ErrMalformedFrame)
	}
	return vp8KeyPrefixLen, nil
}

// NAL unit types this file names (ITU-T H.264 table 7-1).
const (
	nalTypeMask     = 0x1f
	nalForbiddenBit = 0x80
	nalSliceFirst   = 1  // coded slice of a non-IDR picture
	nalSliceLast    = 5  // coded slice of an IDR picture
	nalSPS          = 7  // sequence parameter set
	nalPPS          = 8  // picture parameter set
	nalAUD          = 9  // access unit delimiter
	nalFiller       = 12 // filler data
	nalReserved     = 24 // 24-31 are unspecified; RTP uses them for STAP, FU...
)

const startCode3 = "\x00\x00\x01"

// startCodeLen returns the length of the start code b begins with, or 0.
func startCodeLen(b []byte) int {
	switch {
	case len(b) >= 3 && b[0] == 0 && b[1] == 0 && b[2] == 1:
		return 3
	case len(b) >= 4 && b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 1:
		return 4
	}
	return 0
}

func h264PrefixLen(frame []byte) (int, error) {
	sc := startCodeLen(frame)
	if sc == 0 {
		return 0, fmt.Errorf("%w: H.264 frame does not begin with an Annex B start code", ErrMalformedFrame)
	}
	p := sc // the NAL header of the current unit
	for {
		if p == len(frame) || startCodeLen(frame[p:]) != 0 {
			return 0, fmt.Errorf("%w: empty H.264 NAL unit at byte %d", ErrMalformedFrame, p)
		}
		// The unit runs to the next 00 00 01; where a zero before it is
		// counted does not change the prefix length.
		end := len(frame)
		if i := bytes.Index(frame[p+1:], []byte(startCode3)); i >= 0 {
			end = p + 1 + i
		}
		if frame[p]&nalForbiddenBit != 0 {
			return 0, fmt.Errorf("%w: H.264 NAL unit with forbidden_zero_bit set at byte %d", ErrMalformedFrame, p)
		}
		switch typ := frame[p] & nalTypeMask; {
		case typ >= nalSliceFirst && typ <= nalSliceLast:
			if end-p < h264SliceHeadLen {
				return 0, fmt.Errorf("%w: H.264 slice NAL unit of %d bytes at byte %d", ErrMalformedFrame, end-p, p)
			}
			return p + h264SliceHeadLen, nil
		case typ == 0 || typ >= nalReserved:
			return 0, fmt.Errorf("%w: H.264 NAL unit type %d at byte %d", ErrMalformedFrame, typ, p)
		}
		if end == len(frame) {
			return 0, ErrNoSlice
		}
		p = end + len(startCode3)
	}
}

// NormalizeAnnexB returns a copy of frame as pion's depacketizer delivers it
// (docs/E2EE.md, "H.264 through pion"). The sender normalizes first: the
// prefix is authenticated, so both ends must see the same bytes.
func NormalizeAnnexB(frame []byte) []byte {
	out := make([]byte, 0, len(frame)+len(frame)/64+8)
	var sps, pps []byte
	splitAnnexB(frame, func(nal []byte) {
		if len(nal) == 0 {
			return
		}
		switch nal[0] & nalTypeMask {
		case nalAUD, nalFiller:
			return
		case nalSPS:
			sps = nal
			return
		case nalPPS:
			pps = nal
			return
		}
		if sps != nil && pps != nil {
			out = appendNAL(out, sps)
			out = appendNAL(out, pps)
			sps, pps = nil, nil
		}
		out = appendNAL(out, nal)
	})
	return out
}

func appendNAL(dst, nal []byte) []byte {
	dst = append(dst, 0, 0, 0, 1)
	return append(dst, nal...)
}

// splitAnnexB calls emit with each NAL unit of b, split exactly as pion's
// H264Payloader splits (docs/E2EE.md, "H.264 through pion").
func splitAnnexB(b []byte, emit func(nal []byte)) {
	start := bytes.Index(b, []byte(startCode3))
	if start < 0 {
		emit(b)
		return
	}
	offset := len(startCode3)
	for start < len(b) {
		i := bytes.Index(b[start+offset:], []byte(startCode3))
		if i < 0 {
			emit(b[start+offset:])
			return
		}
		next := start + offset + i
		four := b[next-1] == 0
		if four {
			next--
		}
		emit(b[start+offset : next])
		start = next
		offset = len(startCode3)
		if four {
			offset++
		}
	}
}

// EscapeH264 appends src to dst with H.264 emulation prevention, as if two
// zero bytes came before it and with a final 0x03 after a trailing 0x00, so
// the result contains no start code and cannot form one with its neighbours
// (docs/E2EE.md, "The frame format on RTP").
func EscapeH264(dst, src []byte) []byte {
	base := len(dst)
	zeros := 2
	from := 0
	for i := 0; i < len(src); {
		b := src[i]
		if zeros >= 2 && b <= 3 {
			dst = append(dst, src[from:i]...)
			dst = append(dst, 3)
			from = i
			zeros = 0
		}
		if b == 0 {
			zeros++
			i++
			continue
		}
		// Nothing happens before the next zero byte: skip to it.
		zeros = 0
		j := bytes.IndexByte(src[i+1:], 0)
		if j < 0 {
			break
		}
		i += 1 + j
	}
	dst = append(dst, src[from:]...)
	if endsZeroThrees(dst[base:]) {
		dst = append(dst, 3)
	}
	return dst
}

// endsZeroThrees reports whether b ends in 0x00 and zero or more 0x03.
func endsZeroThrees(b []byte) bool {
	i := len(b)
	for i > 0 && b[i-1] == 3 {
		i--
	}
	return i > 0 && b[i-1] == 0
}

// UnescapeH264 is the exact inverse of EscapeH264: it appends to dst what
// produced src and refuses (ErrMalformedFrame) anything EscapeH264 cannot make.
func UnescapeH264(dst, src []byte) ([]byte, error) {
	if len(src) == 0 {
		return dst, nil
	}
	if src[len(src)-1] == 0 {
		return nil, fmt.Errorf("%w: escaped H.264 data ends in 0x00", ErrMalformedFrame)
	}
	if src[len(src)-1] == 3 && endsZeroThrees(src[:len(src)-1]) {
		src = src[:len(src)-1]
	}
	zeros := 2
	from := 0
	for i := 0; i < len(src); {
		b := src[i]
		if zeros >= 2 && b <= 3 {
			if b != 3 {
				return nil, fmt.Errorf("%w: 00 00 %02x in escaped H.264 data at byte %d", ErrMalformedFrame, b, i)
			}
			if i+1 == len(src) || src[i+1] > 3 {
				return nil, fmt.Errorf("%w: emulation prevention byte at %d not followed by 00-03", ErrMalformedFrame, i)
			}
			dst = append(dst, src[from:i]...)
			from = i + 1
			zeros = 0
			i++
			continue
		}
		if b == 0 {
			zeros++
			i++
			continue
		}
		// Nothing happens before the next zero byte: skip to it.
		zeros = 0
		j := bytes.IndexByte(src[i+1:], 0)
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return append(dst, src[from:]...), nil
}
