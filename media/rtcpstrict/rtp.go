package rtcpstrict

import "encoding/binary"

// RTP header layout (RFC 3550 5.1) and RFC 8285 extension profiles.
const (
	rtpHeaderLen        = 12
	rtpFlagPadding      = 0x20
	rtpFlagExtension    = 0x10
	extProfileOneByte   = 0xBEDE
	extProfileTwoByte   = 0x1000 // the low 4 bits are appbits
	extProfileTwoByteMk = 0xFFF0
	extIDReserved       = 15
)

// ValidateRTP is Options{}.ValidateRTP.
func ValidateRTP(buf []byte) error { return Options{}.ValidateRTP(buf) }

// ValidateRTP checks the header, CSRCs, extension and padding so that all
// rtp.Packet.Unmarshal reads is inside buf and writes back the same; not
// the payload. It does not allocate when it accepts.
func (o Options) ValidateRTP(buf []byte) error {
	return o.checkRTP(buf).err()
}

// CheckRTP is ValidateRTP returning only the rule; it never allocates.
func (o Options) CheckRTP(buf []byte) Rule {
	return o.checkRTP(buf).rule
}

func (o Options) checkRTP(buf []byte) refusal {
	if limit := o.resolved().MaxDatagram; len(buf) > limit {
		return refuse(RuleRTPTooLarge, 0, "%d bytes, limit %d", len(buf), limit)
	}
	if len(buf) < rtpHeaderLen {
		return refuse(RuleRTPTooShort, 0, "%d bytes, an RTP header needs %d", len(buf), rtpHeaderLen)
	}
	// pion does not check the version.
	if v := buf[0] >> 6; v != 2 {
		return refuse(RuleRTPVersion, 0, "version %d, want 2", int(v))
	}
	n := rtpHeaderLen + 4*int(buf[0]&0x0f)
	if n > len(buf) {
		return refuse(RuleRTPCSRCOverrun, rtpHeaderLen, "%d CSRCs need %d bytes, packet has %d", int(buf[0]&0x0f), n, len(buf))
	}
	if buf[0]&rtpFlagExtension != 0 {
		if n+4 > len(buf) {
			return refuse(RuleRTPExtensionOverrun, n, "extension header runs past the packet")
		}
		profile := binary.BigEndian.Uint16(buf[n:])
		start := n + 4
		end := start + 4*int(binary.BigEndian.Uint16(buf[n+2:]))
		if end > len(buf) {
			return refuse(RuleRTPExtensionOverrun, n, "extension of %d bytes runs %d bytes past the packet", end-start, end-len(buf))
		}
		var r refusal
		switch {
		case profile == extProfileOneByte:
			r = checkOneByteExtensions(buf[start:end], start)
		case profile&extProfileTwoByteMk == extProfileTwoByte:
			r = checkTwoByteExtensions(buf[start:end], start)
		}
		// Other profiles are opaque RFC 3550 extension data.
		if r.rule != "" {
			return r
		}
		n = end
	}
	if buf[0]&rtpFlagPadding != 0 {
		last := len(buf) - 1
		pad := int(buf[last])
		if pad == 0 {
			return refuse(RuleRTPPaddingZero, last, "padding bit set, padding count 0")
		}
		// Padding may fill the whole payload: libwebrtc probes bandwidth
		// with padding-only packets.
		if pad > len(buf)-n {
			return refuse(RuleRTPPaddingOverrun, last, "padding count %d exceeds the %d bytes after the header", pad, len(buf)-n)
		}
	}
	return refusal{}
}

// checkOneByteExtensions walks RFC 8285 4.2 elements: a 4-bit ID and a 4-bit
// length minus one, zero bytes as padding.
func checkOneByteExtensions(ext []byte, base int) refusal {
	for i := 0; i < len(ext); {
		b := ext[i]
		if b == 0 {
			i++
			continue
		}
		id := b >> 4
		// ID 15 is reserved and stops pion's walk early.
		if id == 0 || id == extIDReserved {
			return refuse(RuleRTPExtensionProfile, base+i, "one-byte element with ID %d", int(id))
		}
		size := 1 + int(b&0x0f) + 1
		if i+size > len(ext) {
			return refuse(RuleRTPExtensionProfile, base+i, "one-byte element ID %d runs %d bytes past the extension", int(id), i+size-len(ext))
		}
		i += size
	}
	return refusal{}
}

// checkTwoByteExtensions walks RFC 8285 4.3 elements: an 8-bit ID and an
// 8-bit length, zero bytes as padding.
func checkTwoByteExtensions(ext []byte, base int) refusal {
	for i := 0; i < len(ext); {
		if ext[i] == 0 {
			i++
			continue
		}
		if i+2 > len(ext) {
			return refuse(RuleRTPExtensionProfile, base+i, "two-byte element ID %d has no length byte", int(ext[i]))
		}
		size := 2 + int(ext[i+1])
		if i+size > len(ext) {
			return refuse(RuleRTPExtensionProfile, base+i, "two-byte element ID %d runs %d bytes past the extension", int(ext[i]), i+size-len(ext))
		}
		i += size
	}
	return refusal{}
}
