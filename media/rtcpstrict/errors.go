package rtcpstrict

import (
	"errors"
	"fmt"
	"strings"
)

// Rule names one check this package enforces. The SFU labels its refusal
// counters with it, so the values are stable, lower_snake_case and safe as
// Prometheus label values.
type Rule string

// String returns the rule's name as it appears in metrics and logs.
func (r Rule) String() string { return string(r) }

// Rules that apply to a whole RTCP datagram or to every packet in it.
const (
	// RuleDatagramTooLarge: the datagram is longer than Options.MaxDatagram.
	RuleDatagramTooLarge Rule = "datagram_too_large"
	// RuleTooShort: the datagram is shorter than one RTCP header, or a packet
	// is shorter than the fixed part of its type (SR 28, RR 8, feedback 12,
	// TWCC 20, XR 8 bytes).
	RuleTooShort Rule = "too_short"
	// RuleVersion: a packet's version field is not 2.
	RuleVersion Rule = "version"
	// RuleLengthMismatch: the packets' length fields do not add up exactly to
	// the datagram (a length runs past the end, or bytes are left over).
	RuleLengthMismatch Rule = "length_mismatch"
	// RuleTooManyPackets: the datagram holds more than Options.MaxPackets
	// packets.
	RuleTooManyPackets Rule = "too_many_packets"
	// RulePaddingNotLast: a packet other than the last has the padding bit.
	RulePaddingNotLast Rule = "padding_not_last"
	// RulePaddingZero: the padding bit is set but the padding count is 0.
	RulePaddingZero Rule = "padding_zero"
	// RulePaddingOverrun: the padding count is larger than the packet's body.
	RulePaddingOverrun Rule = "padding_overrun"
	// RulePaddingMisaligned: the padding count is not a multiple of 4
	// (RFC 3550 6.4.1), except on transport-wide CC feedback, see the package
	// documentation.
	RulePaddingMisaligned Rule = "padding_misaligned"
	// RuleCompoundFirst: in strict RFC 3550 mode the first packet is not an
	// SR or RR.
	RuleCompoundFirst Rule = "compound_first_not_sr_rr"
	// RuleCompoundNoCNAME: in strict RFC 3550 mode no SDES packet carries a
	// CNAME item.
	RuleCompoundNoCNAME Rule = "compound_no_cname"
	// RuleUnknownType: the packet type is outside 192-223, the range RFC 5761
	// reserves for RTCP; it cannot be RTCP.
	RuleUnknownType Rule = "unknown_type"
)

// Rules for individual RTCP packet types.
const (
	// RuleReportCount: an SR or RR's report count does not fit its length, or
	// an RR carries bytes after its report blocks.
	RuleReportCount Rule = "report_count"
	// RuleSDESChunkCount: an SDES packet does not hold exactly SC chunks.
	RuleSDESChunkCount Rule = "sdes_chunk_count"
	// RuleSDESItemOverrun: an SDES item's length runs past the packet.
	RuleSDESItemOverrun Rule = "sdes_item_overrun"
	// RuleSDESNoTerminator: an SDES chunk's item list has no null
	// terminator, or is not null-padded to a 32-bit boundary.
	RuleSDESNoTerminator Rule = "sdes_no_terminator"
	// RuleBYECount: a BYE's SC SSRCs do not fit its length.
	RuleBYECount Rule = "bye_count"
	// RuleBYEReasonOverrun: a BYE's reason text runs past the packet.
	RuleBYEReasonOverrun Rule = "bye_reason_overrun"
	// RuleBYETrailing: a BYE carries bytes after its reason beyond the null
	// padding to the next 32-bit boundary, or that padding is not null.
	RuleBYETrailing Rule = "bye_trailing_bytes"
	// RuleAPPTooShort: an APP packet is shorter than 12 bytes.
	RuleAPPTooShort Rule = "app_too_short"
	// RuleNACKEmpty: a generic NACK carries no FCI entry.
	RuleNACKEmpty Rule = "nack_empty"
	// RuleNACKTooMany: a generic NACK carries more than
	// Options.MaxNACKEntries FCI entries.
	RuleNACKTooMany Rule = "nack_too_many"
	// RuleTMMBR: a TMMBR's FCI is empty or not a multiple of 8 bytes, or a
	// TMMBN's is not a multiple of 8 bytes.
	RuleTMMBR Rule = "tmmbr_fci"
	// RuleRRRHasFCI: a rapid resynchronisation request (RFC 6051) is not
	// exactly 12 bytes.
	RuleRRRHasFCI Rule = "rrr_has_fci"
	// RuleTWCCStatusCount: a transport-wide CC feedback's packet status count
	// is 0 or above Options.MaxTWCCStatusCount.
	RuleTWCCStatusCount Rule = "twcc_status_count"
	// RuleTWCCChunkOverrun: the status chunks needed to cover the status
	// count run past the packet.
	RuleTWCCChunkOverrun Rule = "twcc_chunk_overrun"
	// RuleTWCCChunk: a status chunk uses the reserved symbol, is an empty or
	// over-long run, or marks packets beyond the status count as received.
	RuleTWCCChunk Rule = "twcc_bad_chunk"
	// RuleTWCCDeltaOverrun: the receive deltas the chunks announce run past
	// the packet.
	RuleTWCCDeltaOverrun Rule = "twcc_delta_overrun"
	// RuleTWCCLength: bytes after the receive deltas are not exactly the
	// alignment to the next 32-bit boundary.
	RuleTWCCLength Rule = "twcc_length_mismatch"
	// RuleCCFBBlockOverrun: an RFC 8888 report block or its metric blocks run
	// past the report timestamp.
	RuleCCFBBlockOverrun Rule = "ccfb_block_overrun"
	// RuleCCFBCount: an RFC 8888 report block's num_reports exceeds 16384.
	RuleCCFBCount Rule = "ccfb_num_reports"
	// RulePLIHasFCI: a PLI is not exactly 12 bytes.
	RulePLIHasFCI Rule = "pli_has_fci"
	// RuleSLI: an SLI's FCI is empty.
	RuleSLI Rule = "sli_fci"
	// RuleSLIUnsupported: a well-formed SLI, which pion/rtcp cannot parse.
	RuleSLIUnsupported Rule = "sli_unsupported"
	// RuleFIRFCI: a FIR's FCI is empty or not a multiple of 8 bytes.
	RuleFIRFCI Rule = "fir_fci"
	// RuleAFBNotREMB: an application-layer feedback packet that is not REMB,
	// which pion/rtcp cannot parse.
	RuleAFBNotREMB Rule = "afb_not_remb"
	// RuleREMBSSRCCount: a REMB's SSRC count disagrees with its length.
	RuleREMBSSRCCount Rule = "remb_ssrc_count"
	// RuleREMBMediaSSRC: a REMB's media SSRC is not 0.
	RuleREMBMediaSSRC Rule = "remb_media_ssrc"
	// RuleREMBZeroBitrate: a REMB's mantissa is 0, which pion/rtcp decodes
	// as 2^(23+exp) bit/s instead of 0.
	RuleREMBZeroBitrate Rule = "remb_zero_bitrate"
	// RuleXRBlockOverrun: an XR report block's length runs past the packet.
	RuleXRBlockOverrun Rule = "xr_block_overrun"
	// RuleXRBlockLength: an RFC 3611 report block's length is wrong for its
	// block type.
	RuleXRBlockLength Rule = "xr_block_length"
	// RuleXRReserved: an RFC 3611 report block has reserved type-specific
	// bits set.
	RuleXRReserved Rule = "xr_reserved_bits"
	// RuleParserRejected: pion/rtcp refused a datagram the validator had
	// accepted. It means a gap in this package, never expected in operation.
	RuleParserRejected Rule = "parser_rejected"
)

// Rules for RTP packets (ValidateRTP).
const (
	// RuleRTPTooLarge: the packet is longer than Options.MaxDatagram.
	RuleRTPTooLarge Rule = "rtp_too_large"
	// RuleRTPTooShort: the packet is shorter than the 12-byte RTP header.
	RuleRTPTooShort Rule = "rtp_too_short"
	// RuleRTPVersion: the version field is not 2.
	RuleRTPVersion Rule = "rtp_version"
	// RuleRTPCSRCOverrun: the CSRC list runs past the packet.
	RuleRTPCSRCOverrun Rule = "rtp_csrc_overrun"
	// RuleRTPExtensionOverrun: the header extension runs past the packet or
	// into its padding.
	RuleRTPExtensionOverrun Rule = "rtp_extension_overrun"
	// RuleRTPExtensionProfile: the element list of an RFC 8285 one-byte or
	// two-byte header extension is malformed.
	RuleRTPExtensionProfile Rule = "rtp_extension_profile"
	// RuleRTPPaddingZero: the padding bit is set but the padding count is 0.
	RuleRTPPaddingZero Rule = "rtp_padding_zero"
	// RuleRTPPaddingOverrun: the padding count is larger than what follows
	// the header.
	RuleRTPPaddingOverrun Rule = "rtp_padding_overrun"
)

// Rules lists every rule this package can report, RTCP first, then RTP. It
// returns a new slice on each call so callers may keep or change it; the SFU
// calls it once at start-up to pre-create one counter per rule.
func Rules() []Rule {
	return []Rule{
		RuleDatagramTooLarge, RuleTooShort, RuleVersion, RuleLengthMismatch,
		RuleTooManyPackets, RulePaddingNotLast, RulePaddingZero,
		RulePaddingOverrun, RulePaddingMisaligned, RuleCompoundFirst,
		RuleCompoundNoCNAME, RuleUnknownType,
		RuleReportCount, RuleSDESChunkCount, RuleSDESItemOverrun,
		RuleSDESNoTerminator, RuleBYECount, RuleBYEReasonOverrun,
		RuleBYETrailing, RuleAPPTooShort, RuleNACKEmpty, RuleNACKTooMany,
		RuleTMMBR, RuleRRRHasFCI, RuleTWCCStatusCount, RuleTWCCChunkOverrun,
		RuleTWCCChunk, RuleTWCCDeltaOverrun, RuleTWCCLength,
		RuleCCFBBlockOverrun, RuleCCFBCount, RulePLIHasFCI, RuleSLI,
		RuleSLIUnsupported, RuleFIRFCI, RuleAFBNotREMB, RuleREMBSSRCCount,
		RuleREMBMediaSSRC, RuleREMBZeroBitrate, RuleXRBlockOverrun,
		RuleXRBlockLength, RuleXRReserved, RuleParserRejected,
		RuleRTPTooLarge, RuleRTPTooShort, RuleRTPVersion, RuleRTPCSRCOverrun,
		RuleRTPExtensionOverrun, RuleRTPExtensionProfile, RuleRTPPaddingZero,
		RuleRTPPaddingOverrun,
	}
}

// Error is the refusal every function in this package returns. Callers that
// count or log refusals branch on Rule; use errors.As or RuleOf to get it.
type Error struct {
	// Rule is the check the input failed.
	Rule Rule
	// Offset is the byte offset in the input where the offending field or
	// packet starts.
	Offset int
	// Detail says what was found, for logs.
	Detail string
}

// Error reports the rule and the offset in words an operator can act on.
func (e *Error) Error() string {
	what := "RTCP datagram"
	if strings.HasPrefix(string(e.Rule), "rtp_") {
		what = "RTP packet"
	}
	return fmt.Sprintf("rtcpstrict: %s refused by rule %s at byte %d: %s", what, e.Rule, e.Offset, e.Detail)
}

// RuleOf returns the rule an error from this package names, looking through
// wrapping. ok is false for nil and for errors from elsewhere.
func RuleOf(err error) (rule Rule, ok bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Rule, true
	}
	return "", false
}

// maxRefusalArgs is the most numbers a refusal's detail quotes.
const maxRefusalArgs = 4

// refusal is a refusal before it becomes an *Error: the rule, the offset
// and the numbers the detail quotes, kept by value so the checks return it
// without allocating. Only the error-returning API formats it, so Check and
// CheckRTP cost nothing more on a hostile packet than on a good one. The
// zero value means the input passed.
type refusal struct {
	rule   Rule
	offset int
	format string
	args   [maxRefusalArgs]int
	nargs  int
}

// refuse records a refusal. Every detail argument is a number, so it fits
// the fixed array; a format with more than maxRefusalArgs verbs is a bug a
// test catches (TestRefusalDetails).
func refuse(rule Rule, offset int, format string, args ...int) refusal {
	r := refusal{rule: rule, offset: offset, format: format, nargs: min(len(args), maxRefusalArgs)}
	copy(r.args[:], args)
	return r
}

// err formats the refusal as an *Error, or returns nil if there is none.
func (r refusal) err() error {
	if r.rule == "" {
		return nil
	}
	args := make([]any, r.nargs)
	for i := range args {
		args[i] = r.args[i]
	}
	return &Error{Rule: r.rule, Offset: r.offset, Detail: fmt.Sprintf(r.format, args...)}
}
