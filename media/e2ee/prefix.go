package e2ee

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// The clear codec prefix is what packetizers and the SFU read after
// encryption; it is authenticated as SFrame metadata. What pion does to an
// H.264 frame, and why NormalizeAnnexB makes the receiver see the sender's
// prefix byte for byte, is in docs/E2EE.md ("H.264 through pion").

// Codec names the codecs whose frames this package knows how to split.
type Codec int

// The codecs Sotto encrypts. The zero Codec is none of them.
const (
	CodecOpus Codec = iota + 1
	CodecVP8
	CodecH264
)

// ErrUnsupportedCodec is returned, wrapped, for a MIME type or Codec this
// package does not handle.
var ErrUnsupportedCodec = errors.New("e2ee: unsupported codec")

// ErrMalformedFrame is returned, wrapped, for a frame that cannot be split
// into its clear prefix and the rest (too short, not Annex B, an empty or
// reserved NAL unit before the first slice), and by UnescapeH264 for data
// EscapeH264 cannot have produced. The frame should be dropped.
var ErrMalformedFrame = errors.New("e2ee: malformed frame")

// ErrNoSlice is returned, wrapped, for an H.264 frame without a coded slice
// (NAL unit types 1-5). Such a frame would have nothing to encrypt and be
// sent entirely in clear, so the caller should drop it.
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

// CodecFromMime returns the Codec for a MIME type ("audio/opus",
// "video/VP8", "video/H264"), compared without regard to case as RFC 6838
// asks. Other types, and types with parameters, wrap ErrUnsupportedCodec.
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

// PrefixLen returns how many leading bytes of a frame of codec c stay in
// clear (docs/E2EE.md, "The frame format on RTP"): 0 for Opus, the RFC 7741
// payload header for VP8, and for H.264 every NAL unit before the first
// slice plus the slice's start code, NAL header and 2 bytes. The answer is
// the same once the rest is replaced by EscapeH264 output. Errors wrap
// ErrMalformedFrame, ErrNoSlice or ErrUnsupportedCodec.
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

// startCode3 is the three-byte Annex B start code; a four-byte one has a
// zero byte before it.
const startCode3 = "\x00\x00\x01"

// startCodeLen returns the length of the start code b begins with: 3, 4, or
// 0 if it begins with none.
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
		// The unit runs to the next 00 00 01; a zero before that belongs
		// to a four-byte start code, but the prefix is a byte range, so
		// which unit it is counted in does not matter.
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

// NormalizeAnnexB returns frame as pion's H.264 depacketizer delivers it
// after pion's payloader sent it: every NAL unit behind a four-byte start
// code 00 00 00 01, empty units, access unit delimiters and filler data
// left out, and SPS and PPS placed the way the payloader's STAP-A places
// them (see the comment at the top of this file for the exact rules and
// the guarantee). The sender normalizes before it computes the prefix,
// because the prefix is authenticated and both ends must see the same
// bytes. The result is a new slice; frame is not modified.
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

// appendNAL appends a four-byte start code and nal.
func appendNAL(dst, nal []byte) []byte {
	dst = append(dst, 0, 0, 0, 1)
	return append(dst, nal...)
}

// splitAnnexB calls emit with each NAL unit of b, split exactly as pion's
// H264Payloader splits (emitNalus in pion/rtp codecs/h264_packet.go): at
// each 00 00 01, a zero byte before it taken as part of a four-byte start
// code, bytes before the first start code dropped, and b as one unit if it
// has no start code at all.
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

// EscapeH264 appends src to dst with emulation-prevention bytes (0x03)
// inserted as ITU-T H.264 section 7.4.1 does, so that the appended bytes
// contain no start code: wherever two zero bytes are followed by a byte
// 0x00-0x03, a 0x03 goes in between. Two differences make the result safe
// to place anywhere inside a NAL unit, and make UnescapeH264 its exact
// inverse:
//
//   - src is escaped as if two zero bytes came before it, so a first byte
//     0x00-0x03 gets a 0x03 in front. Whatever the bytes before it (a
//     clear prefix may end in 00 00), no start code forms at the seam.
//   - If the escaped bytes end in 0x00 followed by zero or more 0x03, one
//     more 0x03 is appended. The result never ends in 0x00 (which a
//     following start code would swallow: pion takes it as the first byte
//     of a four-byte start code), and an appended 0x03 is never mistaken
//     for data.
//
// Random data such as ciphertext grows by about one byte in 2^24, plus at
// most one at each end; the worst case, all zeros, grows by half.
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

// endsZeroThrees reports whether b ends in 0x00 followed by zero or more
// 0x03.
func endsZeroThrees(b []byte) bool {
	i := len(b)
	for i > 0 && b[i-1] == 3 {
		i--
	}
	return i > 0 && b[i-1] == 0
}

// UnescapeH264 appends to dst the bytes EscapeH264 was given to produce
// src: it drops the 0x03 appended at the end (after 0x00 and any 0x03s) and
// turns each 00 00 03 back into 00 00 (with src read as if two zero bytes
// came before it, as EscapeH264 writes it). Anything EscapeH264 cannot have
// produced is refused with an error wrapping ErrMalformedFrame: 00 00
// followed by 0x00-0x02 (a start code or a forbidden sequence), an
// emulation-prevention byte not followed by 0x00-0x03, or a final 0x00.
// So for every x, UnescapeH264(nil, EscapeH264(nil, x)) gives x, and every
// src it accepts is EscapeH264 of what it returns.
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
