package rtcpstrict

import (
	"errors"
	"fmt"
	"strings"
)

// Rule names one check. The SFU labels its refusal counters with it, so
// the values are stable lower_snake_case.
type Rule string

func (r Rule) String() string { return string(r) }

// Rules for a whole RTCP datagram or every packet in it. The names say
// what was refused; docs/FUZZING.md ("Rules") has each in full.
const (
	RuleDatagramTooLarge Rule = "datagram_too_large"
	// RuleTooShort: shorter than a header, or than its type's fixed part.
	RuleTooShort       Rule = "too_short"
	RuleVersion        Rule = "version"
	RuleLengthMismatch Rule = "length_mismatch" // lengths do not add up to the datagram
	RuleTooManyPackets Rule = "too_many_packets"
	RulePaddingNotLast Rule = "padding_not_last"
	RulePaddingZero    Rule = "padding_zero"
	RulePaddingOverrun Rule = "padding_overrun"
	// RulePaddingMisaligned: not a multiple of 4 (RFC 3550 6.4.1); TWCC is exempt.
	RulePaddingMisaligned Rule = "padding_misaligned"
	RuleCompoundFirst     Rule = "compound_first_not_sr_rr" // strict mode only
	RuleCompoundNoCNAME   Rule = "compound_no_cname"        // strict mode only
	RuleUnknownType       Rule = "unknown_type"             // outside RFC 5761's 192-223
)

// Rules for individual RTCP packet types.
const (
	RuleReportCount      Rule = "report_count"
	RuleSDESChunkCount   Rule = "sdes_chunk_count"
	RuleSDESItemOverrun  Rule = "sdes_item_overrun"
	RuleSDESNoTerminator Rule = "sdes_no_terminator"
	RuleBYECount         Rule = "bye_count"
	RuleBYEReasonOverrun Rule = "bye_reason_overrun"
	RuleBYETrailing      Rule = "bye_trailing_bytes"
	RuleAPPTooShort      Rule = "app_too_short"
	RuleNACKEmpty        Rule = "nack_empty"
	RuleNACKTooMany      Rule = "nack_too_many"
	RuleTMMBR            Rule = "tmmbr_fci"
	RuleRRRHasFCI        Rule = "rrr_has_fci"
	RuleTWCCStatusCount  Rule = "twcc_status_count"
	RuleTWCCChunkOverrun Rule = "twcc_chunk_overrun"
	// RuleTWCCChunk: a reserved symbol, an empty or over-long run, or
	// packets beyond the status count marked received.
	RuleTWCCChunk        Rule = "twcc_bad_chunk"
	RuleTWCCDeltaOverrun Rule = "twcc_delta_overrun"
	RuleTWCCLength       Rule = "twcc_length_mismatch"
	RuleCCFBBlockOverrun Rule = "ccfb_block_overrun"
	RuleCCFBCount        Rule = "ccfb_num_reports"
	RulePLIHasFCI        Rule = "pli_has_fci"
	RuleSLI              Rule = "sli_fci"
	RuleSLIUnsupported   Rule = "sli_unsupported" // well formed, but pion cannot parse it
	RuleFIRFCI           Rule = "fir_fci"
	RuleAFBNotREMB       Rule = "afb_not_remb" // pion parses every AFB as REMB
	RuleREMBSSRCCount    Rule = "remb_ssrc_count"
	RuleREMBMediaSSRC    Rule = "remb_media_ssrc"
	RuleREMBZeroBitrate  Rule = "remb_zero_bitrate" // pion reads mantissa 0 as 2^(23+exp)
	RuleXRBlockOverrun   Rule = "xr_block_overrun"
	RuleXRBlockLength    Rule = "xr_block_length"
	RuleXRReserved       Rule = "xr_reserved_bits"
	// RuleParserRejected: pion refused what the validator accepted, a gap
	// in this package never expected in operation.
	RuleParserRejected Rule = "parser_rejected"
)

// Rules for RTP packets (ValidateRTP).
const (
	RuleRTPTooLarge         Rule = "rtp_too_large"
	RuleRTPTooShort         Rule = "rtp_too_short"
	RuleRTPVersion          Rule = "rtp_version"
	RuleRTPCSRCOverrun      Rule = "rtp_csrc_overrun"
	RuleRTPExtensionOverrun Rule = "rtp_extension_overrun"
	RuleRTPExtensionProfile Rule = "rtp_extension_profile" // a malformed RFC 8285 element list
	RuleRTPPaddingZero      Rule = "rtp_padding_zero"
	RuleRTPPaddingOverrun   Rule = "rtp_padding_overrun"
)

// Rules lists every rule, RTCP first, in a new slice on each call; the SFU
// pre-creates one counter per rule from it.
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

// Error is every refusal of this package; RuleOf reads its Rule.
type Error struct {
	Rule   Rule
	Offset int    // where the offending field or packet starts
	Detail string // what was found, for logs
}

func (e *Error) Error() string {
	what := "RTCP datagram"
	if strings.HasPrefix(string(e.Rule), "rtp_") {
		what = "RTP packet"
	}
	return fmt.Sprintf("rtcpstrict: %s refused by rule %s at byte %d: %s", what, e.Rule, e.Offset, e.Detail)
}

// RuleOf returns the rule an error from this package names, through
// wrapping; ok is false for nil and for foreign errors.
func RuleOf(err error) (rule Rule, ok bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Rule, true
	}
	return "", false
}

const maxRefusalArgs = 4

// refusal is an *Error not yet formatted, held by value so that Check and
// CheckRTP never allocate. The zero value means the input passed.
type refusal struct {
	rule   Rule
	offset int
	format string
	args   [maxRefusalArgs]int
	nargs  int
}

// refuse records a refusal; TestRefusalDetails keeps formats within
// maxRefusalArgs numbers.
func refuse(rule Rule, offset int, format string, args ...int) refusal {
	r := refusal{rule: rule, offset: offset, format: format, nargs: min(len(args), maxRefusalArgs)}
	copy(r.args[:], args)
	return r
}

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
