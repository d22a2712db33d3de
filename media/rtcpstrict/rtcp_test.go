package rtcpstrict

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/sotto-rtc/sotto/media/rtcpstrict/rtcptest"

	"github.com/pion/rtcp"
)

// TestAcceptPionTraffic: what pion marshals for real traffic passes, in
// strict mode as RFC 3550 compounds and in reduced-size mode as lone
// feedback, and Parse then returns exactly what rtcp.Unmarshal does.
func TestAcceptPionTraffic(t *testing.T) {
	strict := Options{}
	reduced := Options{ReducedSize: true}
	tests := []struct {
		name string
		opts Options
		buf  []byte
	}{
		{"SR+SDES", strict, rtcptest.Marshal(t, rtcptest.SR(), rtcptest.SDES())},
		{"SR without reports+SDES", strict, rtcptest.Marshal(t, &rtcp.SenderReport{SSRC: 1}, rtcp.NewCNAMESourceDescription(1, "x"))},
		{"SR with profile extension+SDES", strict, rtcptest.Marshal(t, &rtcp.SenderReport{SSRC: 1, ProfileExtensions: []byte{1, 2, 3, 4}}, rtcptest.SDES())},
		{"RR+SDES+PLI", strict, rtcptest.Marshal(t, rtcptest.RR(), rtcptest.SDES(), rtcptest.PLI())},
		{"RR+SDES+BYE", strict, rtcptest.Marshal(t, rtcptest.RR(), rtcptest.SDES(), rtcptest.BYE())},
		{"empty RR+SDES+BYE without reason", strict, rtcptest.Marshal(t, &rtcp.ReceiverReport{SSRC: 1}, rtcp.NewCNAMESourceDescription(1, "x"), &rtcp.Goodbye{Sources: []uint32{1}})},
		{"RR+SDES+every feedback", strict, rtcptest.Marshal(t, rtcptest.RR(), rtcptest.SDES(), rtcptest.NACK(), rtcptest.FIR(), rtcptest.REMB(), rtcptest.XR(), rtcptest.APP(), rtcptest.CCFB(), rtcptest.TWCC(true))},
		{"SR+RR+SDES", strict, rtcptest.Marshal(t, rtcptest.SR(), rtcptest.RR(), rtcptest.SDES())},
		{"lone PLI", reduced, rtcptest.Marshal(t, rtcptest.PLI())},
		{"lone FIR", reduced, rtcptest.Marshal(t, rtcptest.FIR())},
		{"lone NACK", reduced, rtcptest.Marshal(t, rtcptest.NACK())},
		{"lone REMB", reduced, rtcptest.Marshal(t, rtcptest.REMB())},
		{"lone TWCC padded", reduced, rtcptest.Marshal(t, rtcptest.TWCC(true))},
		{"lone TWCC aligned", reduced, rtcptest.Marshal(t, rtcptest.TWCC(false))},
		{"lone CCFB", reduced, rtcptest.Marshal(t, rtcptest.CCFB())},
		{"lone XR", reduced, rtcptest.Marshal(t, rtcptest.XR())},
		{"lone RRR", reduced, rtcptest.Marshal(t, &rtcp.RapidResynchronizationRequest{SenderSSRC: 1, MediaSSRC: 2})},
		{"lone BYE", reduced, rtcptest.Marshal(t, rtcptest.BYE())},
		{"lone APP", reduced, rtcptest.Marshal(t, rtcptest.APP())},
		{"PLI+REMB+NACK", reduced, rtcptest.Marshal(t, rtcptest.PLI(), rtcptest.REMB(), rtcptest.NACK())},
		{"compound in reduced mode", reduced, rtcptest.Marshal(t, rtcptest.RR(), rtcptest.SDES(), rtcptest.PLI())},
		{"TMMBR", reduced, rtcptest.Raw(typeRTPFB, fmtTMMBR, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0x04, 0x01, 0x00, 0x28)},
		{"empty TMMBN", reduced, rtcptest.Raw(typeRTPFB, fmtTMMBN, 0, 0, 0, 1, 0, 0, 0, 0)},
		{"unassigned RTPFB FMT", reduced, rtcptest.Raw(typeRTPFB, 8, 0, 0, 0, 1, 0, 0, 0, 2)},
		{"RPSI", reduced, rtcptest.Raw(typePSFB, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 96, 1, 2)},
		{"unknown RTCP type in range", reduced, rtcptest.Raw(210, 0, 1, 2, 3, 4)},
		{"unknown RTCP type after SR+SDES", strict, rtcptest.Join(rtcptest.Marshal(t, rtcptest.SR(), rtcptest.SDES()), rtcptest.Raw(195, 1, 0, 0, 0, 9))},
		{"SDES with PRIV item", reduced, rtcptest.Raw(typeSDES, 1, 0, 0, 0, 1, sdesPRIV, 5, 2, 'a', 'b', 'x', 'y', 0)},
		{"empty SDES", reduced, rtcptest.Raw(typeSDES, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.opts.Validate(tt.buf); err != nil {
				t.Fatalf("Validate refused pion-marshalled traffic: %v", err)
			}
			got, err := tt.opts.Parse(tt.buf)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want, err := rtcp.Unmarshal(tt.buf)
			if err != nil {
				t.Fatalf("rtcp.Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Parse and rtcp.Unmarshal disagree:\n got %v\nwant %v", got, want)
			}
			rtcptest.CheckRoundTrip(t, tt.opts, tt.buf)
		})
	}
}

// TestAcceptPadding: RFC 3550 padding on the last packet is accepted, and
// Parse hands pion the packet without it, so the result is what pion
// returns for the unpadded datagram.
func TestAcceptPadding(t *testing.T) {
	rrSDES := rtcptest.Marshal(t, rtcptest.RR(), rtcptest.SDES())
	pli := rtcptest.Marshal(t, rtcptest.PLI())
	compound := rtcptest.Marshal(t, rtcptest.RR(), rtcptest.SDES(), rtcptest.BYE())
	tests := []struct {
		name     string
		opts     Options
		padded   []byte
		unpadded []byte
	}{
		{"SDES padded by 4", Options{}, rtcptest.PadLast(rrSDES, len(rtcptest.Marshal(t, rtcptest.RR())), 4), rrSDES},
		{"BYE padded by 8", Options{}, rtcptest.PadLast(compound, len(rrSDES), 8), compound},
		{"PLI padded by 4", Options{ReducedSize: true}, rtcptest.PadLast(pli, 0, 4), pli},
		{"lone RR padded", Options{ReducedSize: true}, rtcptest.PadLast(rtcptest.Marshal(t, rtcptest.RR()), 0, 4), rtcptest.Marshal(t, rtcptest.RR())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.opts.Parse(tt.padded)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want, err := rtcp.Unmarshal(tt.unpadded)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("padded datagram parsed as\n%v\nwant\n%v", got, want)
			}
			rtcptest.CheckRoundTrip(t, tt.opts, tt.padded)
		})
	}
	// The caller's buffer is never rewritten in place.
	padded := rtcptest.PadLast(pli, 0, 4)
	before := append([]byte(nil), padded...)
	if _, err := (Options{ReducedSize: true}).Parse(padded); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(padded, before) {
		t.Fatal("Parse modified its input")
	}
}

// TestRefuse: each hostile or pion-unsafe shape is refused with its rule.
// The seed corpus (TestSeedCorpusRefused) holds more; this table covers
// what depends on options or is easiest built from a valid packet.
func TestRefuse(t *testing.T) {
	rrSDES := rtcptest.Marshal(t, rtcptest.RR(), rtcptest.SDES())
	reduced := Options{ReducedSize: true}
	nack := func(entries int) []byte {
		body := make([]byte, 8+4*entries)
		return rtcptest.Raw(typeRTPFB, fmtNACK, body...)
	}
	twcc := rtcptest.Marshal(t, rtcptest.TWCC(true))
	twccPad := int(twcc[len(twcc)-1])
	tests := []struct {
		name string
		opts Options
		buf  []byte
		rule Rule
	}{
		{"nil", Options{}, nil, RuleTooShort},
		{"MaxDatagram", Options{MaxDatagram: 40, ReducedSize: true}, rtcptest.Marshal(t, rtcptest.RR(), rtcptest.SDES()), RuleDatagramTooLarge},
		{"MaxPackets", Options{MaxPackets: 2}, rtcptest.Marshal(t, rtcptest.RR(), rtcptest.SDES(), rtcptest.PLI()), RuleTooManyPackets},
		{"MaxNACKEntries", Options{MaxNACKEntries: 2, ReducedSize: true}, nack(3), RuleNACKTooMany},
		{"NACK entries at the default", reduced, nack(DefaultMaxNACKEntries + 1), RuleNACKTooMany},
		{"NACK entries past pion's marshal limit", Options{MaxNACKEntries: 1000, ReducedSize: true}, nack(maxNACKEntriesLimit + 1), RuleNACKTooMany},
		{"MaxTWCCStatusCount", Options{MaxTWCCStatusCount: 10, ReducedSize: true}, twcc, RuleTWCCStatusCount},
		{"TWCC padding moved onto a non-last packet", reduced, rtcptest.Join(twcc, rtcptest.Marshal(t, rtcptest.PLI())), RulePaddingNotLast},
		{"TWCC padded one word too far", reduced, rtcptest.PadLast(twcc[:len(twcc)-twccPad], 0, twccPad+4), RuleTWCCLength},
		{"RR+SDES with trailing byte", Options{}, append(append([]byte(nil), rrSDES...), 0), RuleLengthMismatch},
		{"RR with profile extension", reduced, rtcptest.Raw(typeRR, 0, 0, 0, 0, 1, 9, 9, 9, 9), RuleReportCount},
		{"SR in second place with too many reports", Options{}, rtcptest.Join(rrSDES, rtcptest.Raw(typeSR, 2, make([]byte, 24+24)...)), RuleReportCount},
		{"REMB zero bitrate", reduced, rtcptest.Raw(typePSFB, fmtAFB, 0, 0, 0, 1, 0, 0, 0, 0, 'R', 'E', 'M', 'B', 0, 0, 0, 0), RuleREMBZeroBitrate},
		{"SLI", reduced, rtcptest.Raw(typePSFB, fmtSLI, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0x41), RuleSLIUnsupported},
		{"empty SLI", reduced, rtcptest.Raw(typePSFB, fmtSLI, 0, 0, 0, 1, 0, 0, 0, 2), RuleSLI},
		{"RTP packet fed as RTCP", reduced, []byte{0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}, RuleUnknownType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertRefused(t, tt.opts, tt.buf, tt.rule)
		})
	}
}

// assertRefused checks that Validate and Parse refuse buf with rule, and
// that Parse never handed it to the parser.
func assertRefused(t *testing.T, o Options, buf []byte, rule Rule) {
	t.Helper()
	err := o.Validate(buf)
	got, ok := RuleOf(err)
	if !ok || got != rule {
		t.Fatalf("Validate: got %v, want rule %s", err, rule)
	}
	packets, perr := o.parse(buf, func([]byte) ([]rtcp.Packet, error) {
		t.Fatalf("Parse handed a refused datagram (%s) to pion", rule)
		return nil, nil
	})
	if packets != nil || perr == nil || perr.Error() != err.Error() {
		t.Fatalf("Parse: got %v, %v; want the Validate error %v", packets, perr, err)
	}
}

// TestParseRejectedByParser: if pion ever refuses what the validator
// accepted, Parse says so under its own rule instead of passing pion's
// error through unlabelled.
func TestParseRejectedByParser(t *testing.T) {
	_, err := Options{ReducedSize: true}.parse(rtcptest.Marshal(t, rtcptest.PLI()), func([]byte) ([]rtcp.Packet, error) {
		return nil, errors.New("boom")
	})
	if r, _ := RuleOf(err); r != RuleParserRejected || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("got %v", err)
	}
}

func TestValidateDoesNotAllocate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		buf  []byte
	}{
		{"SR+SDES+BYE", Options{}, rtcptest.Marshal(t, rtcptest.SR(), rtcptest.SDES(), rtcptest.BYE())},
		{"PLI", Options{ReducedSize: true}, rtcptest.Marshal(t, rtcptest.PLI())},
		{"TWCC", Options{ReducedSize: true}, rtcptest.Marshal(t, rtcptest.TWCC(true))},
		{"every feedback", Options{}, rtcptest.Marshal(t, rtcptest.RR(), rtcptest.SDES(), rtcptest.NACK(), rtcptest.FIR(), rtcptest.REMB(), rtcptest.XR(), rtcptest.APP(), rtcptest.CCFB())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.opts.Validate(tt.buf); err != nil {
				t.Fatal(err)
			}
			if n := rtcptest.Allocs(100, func() { _ = tt.opts.Validate(tt.buf) }); n != 0 {
				t.Fatalf("100 calls of Validate allocated %d times, want 0", n)
			}
		})
	}
}

func TestRules(t *testing.T) {
	seen := map[Rule]bool{}
	for _, r := range Rules() {
		if seen[r] {
			t.Errorf("rule %s listed twice", r)
		}
		seen[r] = true
		if r.String() == "" || strings.ToLower(r.String()) != r.String() || strings.ContainsAny(r.String(), " -.") {
			t.Errorf("rule %q is not a lower_snake_case label", r)
		}
	}
	// Every rule a refusal can carry is in the list: the SFU pre-creates
	// counters from it and would otherwise miss one.
	for _, r := range []Rule{RuleREMBZeroBitrate, RuleParserRejected, RuleRTPPaddingOverrun, RuleCompoundFirst} {
		if !seen[r] {
			t.Errorf("rule %s missing from Rules()", r)
		}
	}
	r := Rules()
	r[0] = "changed"
	if Rules()[0] == "changed" {
		t.Error("Rules returns shared state")
	}
}

func TestErrorMessage(t *testing.T) {
	err := Options{ReducedSize: true}.Validate(rtcptest.Raw(typePSFB, fmtPLI, 0, 0, 0, 1, 0, 0, 0, 2, 9, 9, 9, 9))
	want := "rtcpstrict: RTCP datagram refused by rule pli_has_fci at byte 12: PLI carries 4 bytes of FCI, want none"
	if err == nil || err.Error() != want {
		t.Fatalf("got %q\nwant %q", err, want)
	}
	err = ValidateRTP([]byte{0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	if err == nil || !strings.HasPrefix(err.Error(), "rtcpstrict: RTP packet refused by rule rtp_version at byte 0") {
		t.Fatalf("got %q", err)
	}
	if _, ok := RuleOf(errors.New("other")); ok {
		t.Fatal("RuleOf claimed a foreign error")
	}
}

func TestOptionsDefaults(t *testing.T) {
	if got, want := (Options{}).resolved(), DefaultOptions(); got != want {
		t.Fatalf("zero Options resolve to %+v, want %+v", got, want)
	}
	if got := (Options{MaxNACKEntries: 1000, MaxTWCCStatusCount: 1 << 20}).resolved(); got.MaxNACKEntries != maxNACKEntriesLimit || got.MaxTWCCStatusCount != maxTWCCStatusCountLimit {
		t.Fatalf("limits not clamped: %+v", got)
	}
}
