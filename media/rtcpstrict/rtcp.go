package rtcpstrict

import (
	"encoding/binary"

	"github.com/pion/rtcp"
)

// RTCP packet types (RFC 3550, 4585, 3611) and RFC 5761's RTCP range.
const (
	typeSR    = 200
	typeRR    = 201
	typeSDES  = 202
	typeBYE   = 203
	typeAPP   = 204
	typeRTPFB = 205
	typePSFB  = 206
	typeXR    = 207

	rtcpTypeFirst = 192
	rtcpTypeLast  = 223
)

// Feedback message formats (the FMT field of PT 205 and 206).
const (
	fmtNACK  = 1  // RTPFB, RFC 4585
	fmtTMMBR = 3  // RTPFB, RFC 5104
	fmtTMMBN = 4  // RTPFB, RFC 5104
	fmtRRR   = 5  // RTPFB, RFC 6051
	fmtCCFB  = 11 // RTPFB, RFC 8888
	fmtTWCC  = 15 // RTPFB, draft-holmer-rmcat-transport-wide-cc-extensions

	fmtPLI = 1  // PSFB, RFC 4585
	fmtSLI = 2  // PSFB, RFC 4585
	fmtFIR = 4  // PSFB, RFC 5104
	fmtAFB = 15 // PSFB, RFC 4585 application layer feedback (REMB)
)

// Fixed sizes, in bytes.
const (
	headerLen   = 4
	srMinLen    = 28 // header, sender SSRC, sender info
	rrMinLen    = 8  // header, reporter SSRC
	reportLen   = 24 // one reception report block
	appMinLen   = 12 // header, SSRC, name
	fbMinLen    = 12 // header, sender SSRC, media SSRC (RFC 4585 6.1)
	twccMinLen  = 20 // feedback header and base seq, count, ref time, fb count
	rembMinLen  = 20 // feedback header, "REMB", num SSRC, exp, mantissa
	xrMinLen    = 8  // header, sender SSRC
	sdesCNAME   = 1
	sdesPRIV    = 8
	paddingFlag = 0x20
)

// Validate is Options{}.Validate: the strict RFC 3550 defaults.
func Validate(buf []byte) error { return Options{}.Validate(buf) }

// Parse is Options{}.Parse: the strict RFC 3550 defaults.
func Parse(buf []byte) ([]rtcp.Packet, error) { return Options{}.Parse(buf) }

// Validate checks one decrypted RTCP datagram: nil, or an *Error naming
// the first rule it breaks. It does not allocate when it accepts.
func (o Options) Validate(buf []byte) error {
	_, r := o.resolved().check(buf)
	return r.err()
}

// Check is Validate returning only the rule ("" when it passes); it never
// allocates, so a flood of hostile packets makes no garbage.
func (o Options) Check(buf []byte) Rule {
	_, r := o.resolved().check(buf)
	return r.rule
}

// Parse validates buf and only then hands it to rtcp.Unmarshal, without
// the last packet's RFC 3550 padding, which pion would read as data
// (except on transport-wide CC, where pion models it).
func (o Options) Parse(buf []byte) ([]rtcp.Packet, error) {
	return o.parse(buf, rtcp.Unmarshal)
}

// parse takes the parser so a test can prove a refused datagram never
// reaches it.
func (o Options) parse(buf []byte, unmarshal func([]byte) ([]rtcp.Packet, error)) ([]rtcp.Packet, error) {
	lay, r := o.resolved().check(buf)
	if r.rule != "" {
		return nil, r.err()
	}
	packets, err := unmarshal(lay.forParser(buf))
	if err != nil {
		return nil, &Error{Rule: RuleParserRejected, Detail: "pion/rtcp refused a datagram the validator accepted: " + err.Error()}
	}
	return packets, nil
}

// layout is the last packet's padding, which Parse strips.
type layout struct {
	off   int // start of the padded packet
	total int // its length including padding
	pad   int // padding to strip; 0 when nothing is stripped
}

// forParser returns buf, or a copy (sized by len(buf)) without the last
// packet's padding, its length and P bit rewritten.
func (l layout) forParser(buf []byte) []byte {
	if l.pad == 0 {
		return buf
	}
	out := make([]byte, len(buf)-l.pad)
	copy(out, buf)
	out[l.off] &^= paddingFlag
	binary.BigEndian.PutUint16(out[l.off+2:], uint16((l.total-l.pad)/4-1)) //nolint:gosec // smaller than the 16-bit length it replaces
	return out
}

// check walks the compound. o must be resolved.
func (o Options) check(buf []byte) (layout, refusal) {
	var lay layout
	if len(buf) > o.MaxDatagram {
		return lay, refuse(RuleDatagramTooLarge, 0, "%d bytes, limit %d", len(buf), o.MaxDatagram)
	}
	if len(buf) < headerLen {
		return lay, refuse(RuleTooShort, 0, "datagram of %d bytes cannot hold a 4-byte RTCP header", len(buf))
	}
	cname := false
	index := 0
	for off := 0; off < len(buf); {
		rest := len(buf) - off
		if rest < headerLen {
			return lay, refuse(RuleLengthMismatch, off, "%d bytes left after packet %d, too few for a header", rest, index)
		}
		index++
		if index > o.MaxPackets {
			return lay, refuse(RuleTooManyPackets, off, "more than %d packets in one datagram", o.MaxPackets)
		}
		b0, pt := buf[off], buf[off+1]
		if v := b0 >> 6; v != 2 {
			return lay, refuse(RuleVersion, off, "packet %d has version %d, want 2", index, int(v))
		}
		total := (int(binary.BigEndian.Uint16(buf[off+2:])) + 1) * 4
		if total > rest {
			return lay, refuse(RuleLengthMismatch, off, "packet %d (type %d) claims %d bytes, only %d remain", index, int(pt), total, rest)
		}
		if index == 1 && !o.ReducedSize && pt != typeSR && pt != typeRR {
			return lay, refuse(RuleCompoundFirst, off, "first packet is type %d; RFC 3550 compounds start with SR or RR", int(pt))
		}
		twcc := pt == typeRTPFB && b0&0x1f == fmtTWCC
		pad := 0
		if b0&paddingFlag != 0 {
			if off+total != len(buf) {
				return lay, refuse(RulePaddingNotLast, off, "packet %d of a compound has the padding bit; only the last may", index)
			}
			padAt := off + total - 1
			pad = int(buf[padAt])
			if pad == 0 {
				return lay, refuse(RulePaddingZero, padAt, "padding bit set, padding count 0")
			}
			if pad > total-headerLen {
				return lay, refuse(RulePaddingOverrun, padAt, "padding count %d exceeds the %d-byte body", pad, total-headerLen)
			}
			// libwebrtc pads TWCC by 1-3 bytes and pion models it; other
			// types keep RFC 3550's multiple of four.
			if !twcc {
				if pad%4 != 0 {
					return lay, refuse(RulePaddingMisaligned, padAt, "padding count %d is not a multiple of 4", pad)
				}
				lay = layout{off: off, total: total, pad: pad}
			}
		}
		hasCNAME, r := o.checkPacket(buf[off:off+total], pad, off)
		if r.rule != "" {
			return lay, r
		}
		cname = cname || hasCNAME
		off += total
	}
	if !o.ReducedSize && !cname {
		return lay, refuse(RuleCompoundNoCNAME, 0, "no SDES packet carries a CNAME item")
	}
	return lay, refusal{}
}

// checkPacket applies pkt's type's rules (pkt includes pad bytes of
// padding; base is its offset) and reports an SDES with a CNAME.
func (o Options) checkPacket(pkt []byte, pad, base int) (cname bool, r refusal) {
	body := pkt[:len(pkt)-pad]
	count := int(pkt[0] & 0x1f)
	switch pt := pkt[1]; pt {
	case typeSR:
		return false, checkSR(body, count, base)
	case typeRR:
		return false, checkRR(body, count, base)
	case typeSDES:
		return checkSDES(body, count, base)
	case typeBYE:
		return false, checkBYE(body, count, base)
	case typeAPP:
		if len(body) < appMinLen {
			return false, refuse(RuleAPPTooShort, base, "APP of %d bytes, needs %d", len(body), appMinLen)
		}
		return false, refusal{}
	case typeRTPFB:
		return false, o.checkRTPFB(pkt, pad, count, base)
	case typePSFB:
		return false, checkPSFB(body, count, base)
	case typeXR:
		return false, checkXR(body, base)
	default:
		// Newer types (RFC 5760 RSI, RFC 6284 TOKEN...) pass as RawPacket;
		// outside RFC 5761's range a packet is not RTCP.
		if pt < rtcpTypeFirst || pt > rtcpTypeLast {
			return false, refuse(RuleUnknownType, base, "packet type %d is outside the RTCP range %d-%d", int(pt), rtcpTypeFirst, rtcpTypeLast)
		}
		return false, refusal{}
	}
}

func checkSR(body []byte, rc, base int) refusal {
	if len(body) < srMinLen {
		return refuse(RuleTooShort, base, "SR of %d bytes, needs %d", len(body), srMinLen)
	}
	// Profile extension data may follow; pion round-trips it.
	if need := srMinLen + reportLen*rc; need > len(body) {
		return refuse(RuleReportCount, base, "SR with %d reports needs %d bytes, has %d", rc, need, len(body))
	}
	return refusal{}
}

func checkRR(body []byte, rc, base int) refusal {
	if len(body) < rrMinLen {
		return refuse(RuleTooShort, base, "RR of %d bytes, needs %d", len(body), rrMinLen)
	}
	need := rrMinLen + reportLen*rc
	if need > len(body) {
		return refuse(RuleReportCount, base, "RR with %d reports needs %d bytes, has %d", rc, need, len(body))
	}
	// Not so for an RR: pion writes its extensions under a length that
	// leaves them out, and no WebRTC stack sends them.
	if need != len(body) {
		return refuse(RuleReportCount, base+need, "RR with %d reports has %d bytes after them", rc, len(body)-need)
	}
	return refusal{}
}

// checkSDES walks SC chunks exactly as RFC 3550 6.5 lays them out: pion
// recomputes chunk lengths, so any slack shifts the next chunk.
func checkSDES(body []byte, sc, base int) (cname bool, r refusal) {
	p := headerLen
	for chunk := 1; chunk <= sc; chunk++ {
		if p+4 > len(body) {
			return false, refuse(RuleSDESChunkCount, base+p, "SC is %d but chunk %d starts past the end", sc, chunk)
		}
		p += 4
		for {
			if p >= len(body) {
				return false, refuse(RuleSDESNoTerminator, base+p, "chunk %d's item list runs to the end without a null item", chunk)
			}
			typ := body[p]
			if typ == 0 {
				p++
				break
			}
			if p+2 > len(body) {
				return false, refuse(RuleSDESItemOverrun, base+p, "item type %d has no length octet", int(typ))
			}
			n := int(body[p+1])
			if p+2+n > len(body) {
				return false, refuse(RuleSDESItemOverrun, base+p, "item type %d of %d bytes runs %d bytes past the packet", int(typ), n, p+2+n-len(body))
			}
			if typ == sdesPRIV && (n == 0 || 1+int(body[p+2]) > n) {
				return false, refuse(RuleSDESItemOverrun, base+p, "PRIV item's prefix runs past the item")
			}
			cname = cname || typ == sdesCNAME
			p += 2 + n
		}
		for ; p%4 != 0; p++ {
			if p >= len(body) || body[p] != 0 {
				return false, refuse(RuleSDESNoTerminator, base+p, "chunk %d is not null-padded to a 32-bit boundary", chunk)
			}
		}
	}
	if p != len(body) {
		return false, refuse(RuleSDESChunkCount, base+p, "%d bytes follow the %d chunks SC announces", len(body)-p, sc)
	}
	return cname, refusal{}
}

// checkBYE: SC SSRCs, then an optional null-padded reason (RFC 3550 6.6).
func checkBYE(body []byte, sc, base int) refusal {
	p := headerLen + 4*sc
	if p > len(body) {
		return refuse(RuleBYECount, base, "BYE with %d SSRCs needs %d bytes, has %d", sc, p, len(body))
	}
	if p == len(body) {
		return refusal{}
	}
	end := p + 1 + int(body[p])
	if end > len(body) {
		return refuse(RuleBYEReasonOverrun, base+p, "reason of %d bytes runs %d bytes past the packet", int(body[p]), end-len(body))
	}
	aligned := (end + 3) &^ 3
	if aligned != len(body) {
		return refuse(RuleBYETrailing, base+aligned, "%d bytes follow the reason's padding", len(body)-aligned)
	}
	for i := end; i < aligned; i++ {
		if body[i] != 0 {
			return refuse(RuleBYETrailing, base+i, "reason padding is not null")
		}
	}
	return refusal{}
}

// checkRTPFB: pkt includes the padding, part of TWCC's layout in pion.
func (o Options) checkRTPFB(pkt []byte, pad, format, base int) refusal {
	if format == fmtTWCC {
		return o.checkTWCC(pkt, pad, base)
	}
	body := pkt[:len(pkt)-pad]
	if len(body) < fbMinLen {
		return refuse(RuleTooShort, base, "transport feedback (FMT %d) of %d bytes, needs %d", format, len(body), fbMinLen)
	}
	fci := len(body) - fbMinLen
	switch format {
	case fmtNACK:
		if fci == 0 {
			return refuse(RuleNACKEmpty, base, "generic NACK without FCI entries")
		}
		if n := fci / 4; n > o.MaxNACKEntries {
			return refuse(RuleNACKTooMany, base+fbMinLen, "generic NACK with %d entries, limit %d", n, o.MaxNACKEntries)
		}
	case fmtTMMBR:
		if fci == 0 || fci%8 != 0 {
			return refuse(RuleTMMBR, base+fbMinLen, "TMMBR FCI of %d bytes, want a non-zero multiple of 8", fci)
		}
	case fmtTMMBN:
		if fci%8 != 0 {
			return refuse(RuleTMMBR, base+fbMinLen, "TMMBN FCI of %d bytes, want a multiple of 8", fci)
		}
	case fmtRRR:
		if fci != 0 {
			return refuse(RuleRRRHasFCI, base+fbMinLen, "RRR carries %d bytes of FCI, want none", fci)
		}
	case fmtCCFB:
		return checkCCFB(body, base)
	}
	// Other formats (TLLEI, ECN, PAUSE-RESUME...) reach pion as RawPacket.
	return refusal{}
}

// checkTWCC follows pion's TransportLayerCC.Unmarshal: all it reads is
// inside, and the packet ends at the last delta rounded up to 32 bits.
func (o Options) checkTWCC(pkt []byte, pad, base int) refusal {
	total := len(pkt)
	body := total - pad
	if body < twccMinLen {
		return refuse(RuleTooShort, base, "transport-wide CC of %d bytes, needs %d", body, twccMinLen)
	}
	count := int(binary.BigEndian.Uint16(pkt[14:]))
	if count == 0 || count > o.MaxTWCCStatusCount {
		return refuse(RuleTWCCStatusCount, base+14, "packet status count %d, want 1 to %d", count, o.MaxTWCCStatusCount)
	}
	p := twccMinLen
	seen, deltaBytes := 0, 0
	for seen < count {
		// pion wants a byte left after every chunk, delta or not.
		if p+2 > body || p+2 >= total {
			return refuse(RuleTWCCChunkOverrun, base+p, "status chunks cover %d of %d packets when the packet ends", seen, count)
		}
		chunk := binary.BigEndian.Uint16(pkt[p:])
		left := count - seen
		switch {
		case chunk&0x8000 == 0: // run length: 2-bit symbol, 13-bit run
			sym, run := int(chunk>>13)&3, int(chunk&0x1fff)
			if sym == 3 {
				return refuse(RuleTWCCChunk, base+p, "run-length chunk uses the reserved symbol")
			}
			if run == 0 || run > left {
				return refuse(RuleTWCCChunk, base+p, "run of %d with %d statuses left", run, left)
			}
			deltaBytes += run * sym // a symbol's value is its delta's size
			seen += run
		case chunk&0x4000 == 0: // status vector of 14 one-bit symbols
			for i := range 14 {
				sym := int(chunk>>(13-i)) & 1
				// pion reads deltas past the count; libwebrtc does not.
				if sym != 0 && i >= left {
					return refuse(RuleTWCCChunk, base+p, "vector marks packet %d received, beyond the status count", count+i-left)
				}
				deltaBytes += sym
			}
			seen += min(14, left)
		default: // status vector of 7 two-bit symbols
			for i := range 7 {
				sym := int(chunk>>(12-2*i)) & 3
				if sym == 3 {
					return refuse(RuleTWCCChunk, base+p, "status vector uses the reserved symbol")
				}
				if sym != 0 && i >= left {
					return refuse(RuleTWCCChunk, base+p, "vector marks packet %d received, beyond the status count", count+i-left)
				}
				deltaBytes += sym
			}
			seen += min(7, left)
		}
		p += 2
	}
	end := p + deltaBytes
	if end > body {
		return refuse(RuleTWCCDeltaOverrun, base+p, "%d bytes of receive deltas, %d available", deltaBytes, body-p)
	}
	if pad > 0 {
		if end != body || pad > 3 {
			return refuse(RuleTWCCLength, base+end, "deltas end at byte %d, padding of %d starts at %d; want padding to the next 32-bit boundary only", end, pad, body)
		}
	} else if total-end > 3 {
		return refuse(RuleTWCCLength, base+end, "%d bytes follow the receive deltas", total-end)
	}
	return refusal{}
}

// checkCCFB walks RFC 8888 report blocks; counts are ints, since
// begin_seq+num_reports-1 may legally pass 65535.
func checkCCFB(body []byte, base int) refusal {
	end := len(body) - 4 // report timestamp
	for p := 8; p < end; {
		if p+8 > end {
			return refuse(RuleCCFBBlockOverrun, base+p, "report block header runs into the report timestamp")
		}
		n := int(binary.BigEndian.Uint16(body[p+6:]))
		if n > ccfbMaxReports {
			return refuse(RuleCCFBCount, base+p+6, "num_reports %d, RFC 8888 allows %d", n, ccfbMaxReports)
		}
		size := (8 + 2*n + 3) &^ 3
		if p+size > end {
			return refuse(RuleCCFBBlockOverrun, base+p, "report block of %d metrics runs %d bytes past the report timestamp", n, p+size-end)
		}
		p += size
	}
	return refusal{}
}

func checkPSFB(body []byte, format, base int) refusal {
	if len(body) < fbMinLen {
		return refuse(RuleTooShort, base, "payload feedback (FMT %d) of %d bytes, needs %d", format, len(body), fbMinLen)
	}
	fci := len(body) - fbMinLen
	switch format {
	case fmtPLI:
		if fci != 0 {
			return refuse(RulePLIHasFCI, base+fbMinLen, "PLI carries %d bytes of FCI, want none", fci)
		}
	case fmtSLI:
		if fci == 0 {
			return refuse(RuleSLI, base, "SLI without FCI entries")
		}
		// pion parses SLI as PT 205 and fails (TestPionDefects); browsers
		// no longer send it.
		return refuse(RuleSLIUnsupported, base, "SLI is well-formed but pion/rtcp cannot parse it")
	case fmtFIR:
		if fci == 0 || fci%8 != 0 {
			return refuse(RuleFIRFCI, base+fbMinLen, "FIR FCI of %d bytes, want a non-zero multiple of 8", fci)
		}
	case fmtAFB:
		return checkAFB(body, base)
	}
	// Other formats (RPSI, TSTR, TSTN, VBCM, ...) reach pion as RawPacket.
	return refusal{}
}

// checkAFB admits only REMB, as pion parses all FMT 15 as REMB.
func checkAFB(body []byte, base int) refusal {
	if len(body) < 16 || body[12] != 'R' || body[13] != 'E' || body[14] != 'M' || body[15] != 'B' {
		return refuse(RuleAFBNotREMB, base+fbMinLen, "application-layer feedback without the REMB identifier")
	}
	if len(body) < rembMinLen {
		return refuse(RuleTooShort, base, "REMB of %d bytes, needs %d", len(body), rembMinLen)
	}
	if binary.BigEndian.Uint32(body[8:]) != 0 {
		return refuse(RuleREMBMediaSSRC, base+8, "REMB media SSRC is not 0")
	}
	if n := int(body[16]); rembMinLen+4*n != len(body) {
		return refuse(RuleREMBSSRCCount, base+16, "REMB lists %d SSRCs in %d bytes, want %d bytes", n, len(body), rembMinLen+4*n)
	}
	if body[17]&3 == 0 && body[18] == 0 && body[19] == 0 {
		return refuse(RuleREMBZeroBitrate, base+17, "REMB mantissa 0, which pion/rtcp misreads as a non-zero bitrate")
	}
	return refusal{}
}

// XR report block types (RFC 3611 4.1-4.7).
const (
	xrLossRLE   = 1
	xrDupRLE    = 2
	xrPRT       = 3
	xrRRTR      = 4
	xrDLRR      = 5
	xrStats     = 6
	xrVoIP      = 7
	xrRLEMinLen = 12 // block header, SSRC, begin_seq, end_seq
	xrRRTRLen   = 12
	xrStatsLen  = 40
	xrVoIPLen   = 36
	xrDLRRSub   = 12
)

// checkXR: known blocks must have their exact length and zero reserved
// bits, since pion reads them into fixed structs and rewrites both.
func checkXR(body []byte, base int) refusal {
	if len(body) < xrMinLen {
		return refuse(RuleTooShort, base, "XR of %d bytes, needs %d", len(body), xrMinLen)
	}
	for p := xrMinLen; p < len(body); {
		if p+4 > len(body) {
			return refuse(RuleXRBlockOverrun, base+p, "block header runs past the packet")
		}
		typ, spec := body[p], body[p+1]
		size := (int(binary.BigEndian.Uint16(body[p+2:])) + 1) * 4
		if p+size > len(body) {
			return refuse(RuleXRBlockOverrun, base+p, "block type %d of %d bytes runs %d bytes past the packet", int(typ), size, p+size-len(body))
		}
		ok, reserved := true, byte(0)
		switch typ {
		case xrLossRLE, xrDupRLE, xrPRT:
			ok, reserved = size >= xrRLEMinLen, 0xf0
		case xrRRTR:
			ok, reserved = size == xrRRTRLen, 0xff
		case xrDLRR:
			ok, reserved = (size-4)%xrDLRRSub == 0, 0xff
		case xrStats:
			ok, reserved = size == xrStatsLen, 0x07
		case xrVoIP:
			ok, reserved = size == xrVoIPLen, 0xff
		}
		if !ok {
			return refuse(RuleXRBlockLength, base+p, "block type %d of %d bytes has the wrong length for its type", int(typ), size)
		}
		if spec&reserved != 0 {
			return refuse(RuleXRReserved, base+p+1, "block type %d has reserved bits set (0x%02x)", int(typ), int(spec))
		}
		p += size
	}
	return refusal{}
}
