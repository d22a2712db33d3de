package rtcpstrict

import (
	"path/filepath"
	"testing"

	"github.com/sotto-rtc/sotto/media/rtcpstrict/rtcptest"
)

// corpusDir is where the fuzz targets keep their seed corpora: in the fuzz
// package, with the targets (the README's map). The rules each hostile seed
// must break are this package's business, so the tables are here.
const corpusDir = "../../fuzz/testdata/fuzz"

// TestSeedCorpusRefused: every hostile RTCP seed is refused by Validate and
// Parse with the rule its name promises, and never reaches pion. Seeds that
// break only RFC 3550 compound rules are accepted in reduced-size mode
// (reduced == ""), and must then parse and round-trip.
func TestSeedCorpusRefused(t *testing.T) {
	type want struct{ strict, reduced Rule }
	same := func(r Rule) want { return want{r, r} }
	onlyStrict := func(r Rule) want { return want{r, ""} }
	expect := map[string]want{
		"app_too_short":                   same(RuleAPPTooShort),
		"bye_count_overrun":               same(RuleBYECount),
		"bye_reason_overrun":              same(RuleBYEReasonOverrun),
		"bye_reason_padding_not_null":     same(RuleBYETrailing),
		"bye_words_after_reason":          same(RuleBYETrailing),
		"ccfb_block_header_overrun":       same(RuleCCFBBlockOverrun),
		"ccfb_block_overrun":              same(RuleCCFBBlockOverrun),
		"ccfb_count_wrap":                 same(RuleCCFBCount),
		"ccfb_metrics_overlap_timestamp":  same(RuleCCFBBlockOverrun),
		"compound_lone_pli":               onlyStrict(RuleCompoundFirst),
		"compound_lone_rr":                onlyStrict(RuleCompoundNoCNAME),
		"compound_starts_with_sdes":       onlyStrict(RuleCompoundFirst),
		"compound_without_cname":          onlyStrict(RuleCompoundNoCNAME),
		"datagram_over_1500_bytes":        same(RuleDatagramTooLarge),
		"empty_datagram":                  same(RuleTooShort),
		"feedback_without_media_ssrc":     same(RuleTooShort),
		"fir_empty_fci":                   same(RuleFIRFCI),
		"fir_fci_not_multiple_of_8":       same(RuleFIRFCI),
		"length_disagrees_with_datagram":  same(RuleLengthMismatch),
		"length_ffff":                     same(RuleLengthMismatch),
		"length_zero":                     same(RuleTooShort),
		"nack_65_entries":                 same(RuleNACKTooMany),
		"nack_empty_fci":                  same(RuleNACKEmpty),
		"nack_fci_not_multiple_of_4":      same(RulePaddingMisaligned),
		"padding_larger_than_packet":      same(RulePaddingOverrun),
		"padding_not_multiple_of_4":       same(RulePaddingMisaligned),
		"padding_on_non_last":             same(RulePaddingNotLast),
		"padding_zero_count":              same(RulePaddingZero),
		"pli_with_fci":                    same(RulePLIHasFCI),
		"pli_without_media_ssrc":          same(RuleTooShort),
		"remb_bad_identifier":             same(RuleAFBNotREMB),
		"remb_cut_before_bitrate":         same(RuleTooShort),
		"remb_nonzero_media_ssrc":         same(RuleREMBMediaSSRC),
		"remb_ssrc_count_overflow":        same(RuleREMBSSRCCount),
		"remb_ssrc_count_short":           same(RuleREMBSSRCCount),
		"remb_zero_mantissa":              same(RuleREMBZeroBitrate),
		"rr_profile_extension":            same(RuleReportCount),
		"rr_report_count_exceeds_body":    same(RuleReportCount),
		"rrr_with_fci":                    same(RuleRRRHasFCI),
		"rtp_packet_sent_as_rtcp":         {RuleCompoundFirst, RuleUnknownType},
		"sdes_chunk_overrun":              same(RuleSDESChunkCount),
		"sdes_extra_chunk":                same(RuleSDESChunkCount),
		"sdes_item_length_octet_missing":  same(RuleSDESItemOverrun),
		"sdes_item_overrun":               same(RuleSDESItemOverrun),
		"sdes_missing_terminator":         same(RuleSDESNoTerminator),
		"sdes_padding_not_null":           same(RuleSDESNoTerminator),
		"sdes_priv_prefix_overrun":        same(RuleSDESItemOverrun),
		"sli_pion_cannot_parse":           same(RuleSLIUnsupported),
		"sr_report_count_exceeds_body":    same(RuleReportCount),
		"sr_shorter_than_sender_info":     same(RuleTooShort),
		"stun_binding_request":            same(RuleVersion),
		"thirty_three_packets":            same(RuleTooManyPackets),
		"three_bytes":                     same(RuleTooShort),
		"tmmbr_empty_fci":                 same(RuleTMMBR),
		"tmmbr_fci_not_multiple_of_8":     same(RuleTMMBR),
		"trailing_bytes_after_compound":   same(RuleLengthMismatch),
		"truncated_compound":              same(RuleLengthMismatch),
		"twcc_chunk_overrun":              same(RuleTWCCChunkOverrun),
		"twcc_chunks_end_at_packet_end":   same(RuleTWCCChunkOverrun),
		"twcc_cut_before_chunks":          same(RuleTooShort),
		"twcc_delta_overrun":              same(RuleTWCCDeltaOverrun),
		"twcc_empty_run":                  same(RuleTWCCChunk),
		"twcc_huge_status_count":          same(RuleTWCCStatusCount),
		"twcc_large_delta_overrun":        same(RuleTWCCDeltaOverrun),
		"twcc_padding_past_deltas":        same(RuleTWCCLength),
		"twcc_reserved_symbol":            same(RuleTWCCChunk),
		"twcc_run_past_count":             same(RuleTWCCChunk),
		"twcc_vector_beyond_count":        same(RuleTWCCChunk),
		"twcc_words_after_deltas":         same(RuleTWCCLength),
		"twcc_zero_status_count":          same(RuleTWCCStatusCount),
		"unknown_type_outside_rtcp_range": same(RuleUnknownType),
		"version_0_in_second_packet":      same(RuleVersion),
		"version_1":                       same(RuleVersion),
		"xr_block_overrun":                same(RuleXRBlockOverrun),
		"xr_dlrr_partial_subblock":        same(RuleXRBlockLength),
		"xr_reserved_bits_set":            same(RuleXRReserved),
		"xr_rle_too_short":                same(RuleXRBlockLength),
		"xr_rrtr_wrong_length":            same(RuleXRBlockLength),
		"xr_too_short":                    same(RuleTooShort),
		// Overruns of exactly one 32-bit word at each length and count
		// limit, so an off-by-one-word slip in a bound fails here and
		// not only under fuzzing.
		"bye_count_one_past":                        same(RuleBYECount),
		"bye_reason_one_word_past":                  same(RuleBYEReasonOverrun),
		"ccfb_block_header_one_word_into_timestamp": same(RuleCCFBBlockOverrun),
		"ccfb_num_reports_one_past":                 same(RuleCCFBCount),
		"datagram_one_word_over_1500_bytes":         same(RuleDatagramTooLarge),
		"padding_one_word_past_body":                same(RulePaddingOverrun),
		"remb_ssrc_count_one_past":                  same(RuleREMBSSRCCount),
		"remb_ssrc_count_one_short":                 same(RuleREMBSSRCCount),
		"rr_report_block_one_word_short":            same(RuleReportCount),
		"sdes_chunk_count_one_past":                 same(RuleSDESChunkCount),
		"sdes_item_one_word_past":                   same(RuleSDESItemOverrun),
		"sdes_priv_prefix_one_word_past":            same(RuleSDESItemOverrun),
		"sr_report_block_one_word_short":            same(RuleReportCount),
		"sr_sender_info_one_word_short":             same(RuleTooShort),
		"twcc_status_count_one_past":                same(RuleTWCCStatusCount),
		"xr_block_one_word_past":                    same(RuleXRBlockOverrun),
		"xr_second_block_one_word_past":             same(RuleXRBlockOverrun),
	}
	seeds := rtcptest.ReadCorpus(t, corpusDir, "FuzzRTCP")
	if len(seeds) < 40 {
		t.Fatalf("only %d hostile RTCP seeds, want at least 40", len(seeds))
	}
	for name, buf := range seeds {
		t.Run(name, func(t *testing.T) {
			w, ok := expect[name]
			if !ok {
				t.Fatalf("seed %s has no expected rule; add it to the table", name)
			}
			assertRefused(t, Options{}, buf, w.strict)
			if w.reduced == "" {
				rtcptest.CheckRoundTrip(t, Options{ReducedSize: true}, buf)
			} else {
				assertRefused(t, Options{ReducedSize: true}, buf, w.reduced)
			}
		})
	}
	for name := range expect {
		if _, ok := seeds[name]; !ok {
			t.Errorf("expected seed %s is missing from %s", name, filepath.Join(corpusDir, "FuzzRTCP"))
		}
	}
}

// TestRTPSeedCorpusRefused: every hostile RTP seed is refused with the rule
// its name promises.
func TestRTPSeedCorpusRefused(t *testing.T) {
	expect := map[string]Rule{
		"rtp_csrc_overrun":                RuleRTPCSRCOverrun,
		"rtp_eleven_bytes":                RuleRTPTooShort,
		"rtp_empty":                       RuleRTPTooShort,
		"rtp_extension_header_cut":        RuleRTPExtensionOverrun,
		"rtp_extension_length_ffff":       RuleRTPExtensionOverrun,
		"rtp_one_byte_element_overrun":    RuleRTPExtensionProfile,
		"rtp_one_byte_id_0_with_length":   RuleRTPExtensionProfile,
		"rtp_one_byte_id_15":              RuleRTPExtensionProfile,
		"rtp_over_1500_bytes":             RuleRTPTooLarge,
		"rtp_padding_bit_on_bare_header":  RuleRTPPaddingOverrun,
		"rtp_padding_ff_on_short_packet":  RuleRTPPaddingOverrun,
		"rtp_padding_into_extension":      RuleRTPPaddingOverrun,
		"rtp_padding_larger_than_payload": RuleRTPPaddingOverrun,
		"rtp_padding_zero_count":          RuleRTPPaddingZero,
		"rtp_two_byte_element_overrun":    RuleRTPExtensionProfile,
		"rtp_two_byte_length_missing":     RuleRTPExtensionProfile,
		"rtp_version_1":                   RuleRTPVersion,
	}
	seeds := rtcptest.ReadCorpus(t, corpusDir, "FuzzRTP")
	if len(seeds) != len(expect) {
		t.Errorf("%d RTP seeds, %d expectations", len(seeds), len(expect))
	}
	for name, buf := range seeds {
		t.Run(name, func(t *testing.T) {
			want, ok := expect[name]
			if !ok {
				t.Fatalf("seed %s has no expected rule; add it to the table", name)
			}
			if got, _ := RuleOf(ValidateRTP(buf)); got != want {
				t.Fatalf("got %v, want rule %s", ValidateRTP(buf), want)
			}
		})
	}
}
