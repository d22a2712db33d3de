package fuzz

import (
	"slices"
	"strings"
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/sotto-rtc/sotto/media/rtcpstrict"
	"github.com/sotto-rtc/sotto/media/rtcpstrict/rtcptest"
)

// pionSRTCPDemux does to a decrypted SRTCP datagram what pion/srtp's
// SessionSRTCP does before any interceptor, and so rtcpstrict, sees it:
// split and parse it with rtcp.Unmarshal, marshal each packet again, and
// ask each for its destination SSRCs. A panic here is a crash of the SFU
// that no check of Sotto's can prevent.
func pionSRTCPDemux(buf []byte) {
	pkts, err := rtcp.Unmarshal(buf)
	if err != nil {
		return
	}
	for _, p := range pkts {
		if _, err := p.Marshal(); err != nil {
			continue
		}
		_ = p.DestinationSSRC()
	}
}

// FuzzRTCP: pion's SRTCP demux never panics; Validate never panics,
// refuses with a rule, and agrees with the allocation-free Check; and what
// it accepts pion parses, each parsed packet marshals to MarshalSize bytes
// that parse back to the same packet, and the re-marshalled datagram is
// accepted again. An input that breaks the last part is a pion defect
// rtcpstrict must learn to refuse; it then belongs in testdata/fuzz/FuzzRTCP
// as a regression seed.
func FuzzRTCP(f *testing.F) {
	for _, seed := range rtcptest.Datagrams(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		pionSRTCPDemux(slices.Clone(buf))
		for _, o := range []rtcpstrict.Options{{}, {ReducedSize: true}} {
			err := o.Validate(buf)
			rule, ok := rtcpstrict.RuleOf(err)
			if err != nil && !ok {
				t.Fatalf("refusal without a rule: %v", err)
			}
			if got := o.Check(buf); got != rule {
				t.Fatalf("Check says %q, Validate %v", got, err)
			}
			if err == nil {
				rtcptest.CheckRoundTrip(t, o, buf)
			}
		}
	})
}

// srtcpContexts returns fresh decryption contexts for the two profiles the
// SFU offers, keyed with the fixed test keys the authentic seeds in
// testdata/fuzz/FuzzSRTCPUnprotect were made with.
func srtcpContexts(t testing.TB) []*srtp.Context {
	t.Helper()
	key := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	salt := []byte{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad}
	cm, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAes128CmHmacSha1_80)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := srtp.CreateContext(key, salt[:12], srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		t.Fatal(err)
	}
	return []*srtp.Context{cm, gcm}
}

// FuzzSRTCPUnprotect feeds arbitrary bytes to pion/srtp's SRTCP decryption,
// the first code that touches an RTCP packet from the network, under both
// profiles; it must not panic. What decrypts is still attacker-chosen (the
// peer holds the key), so it goes on through the demux and the validator.
func FuzzSRTCPUnprotect(f *testing.F) {
	plain := rtcptest.Datagrams(f)[1]
	for _, ctx := range srtcpContexts(f) {
		enc, err := ctx.EncryptRTCP(nil, plain, nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		for _, ctx := range srtcpContexts(t) {
			out, err := ctx.DecryptRTCP(nil, slices.Clone(buf), nil)
			if err != nil {
				continue
			}
			pionSRTCPDemux(slices.Clone(out))
			for _, o := range []rtcpstrict.Options{{}, {ReducedSize: true}} {
				if o.Validate(out) == nil {
					rtcptest.CheckRoundTrip(t, o, out)
				}
			}
		}
	})
}

// TestSRTCPSeedsAuthenticate: the authentic seeds really decrypt under the
// fuzz target's fixed keys (so the fuzzer starts from packets that reach
// the validator), the forged ones do not, and what decrypts from a hostile
// plaintext is refused.
func TestSRTCPSeedsAuthenticate(t *testing.T) {
	seeds := readCorpus(t, "FuzzSRTCPUnprotect")
	if len(seeds) == 0 {
		t.Fatal("no seeds")
	}
	for name, buf := range seeds {
		t.Run(name, func(t *testing.T) {
			var plain []byte
			for _, ctx := range srtcpContexts(t) {
				if out, err := ctx.DecryptRTCP(nil, slices.Clone(buf), nil); err == nil {
					plain = out
				}
			}
			authentic := strings.Contains(name, "_authentic_")
			if authentic != (plain != nil) {
				t.Fatalf("authentic=%v but decrypted=%v", authentic, plain != nil)
			}
			if plain == nil {
				return
			}
			err := rtcpstrict.Options{ReducedSize: true}.Validate(plain)
			if strings.HasSuffix(name, "_compound") != (err == nil) {
				t.Fatalf("decrypted plaintext: %v", err)
			}
		})
	}
}

// FuzzRTP: pion's header parser, which pion/srtp runs on every packet
// before authenticating it, never panics; ValidateRTP never panics,
// refuses with a rule and agrees with CheckRTP; and what it accepts pion
// parses and writes back unchanged.
func FuzzRTP(f *testing.F) {
	for _, seed := range rtcptest.RTPPackets(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		var h rtp.Header
		_, _ = h.Unmarshal(buf)
		err := rtcpstrict.ValidateRTP(buf)
		rule, ok := rtcpstrict.RuleOf(err)
		if err != nil && !ok {
			t.Fatalf("refusal without a rule: %v", err)
		}
		if got := (rtcpstrict.Options{}).CheckRTP(buf); got != rule {
			t.Fatalf("CheckRTP says %q, ValidateRTP %v", got, err)
		}
		if err == nil {
			rtcptest.CheckRTPRoundTrip(t, rtcpstrict.ValidateRTP, buf)
		}
	})
}

// TestFixturesAccepted: the good traffic the targets start from is good,
// so the fuzzer mutates packets that reach the round-trip checks.
func TestFixturesAccepted(t *testing.T) {
	for i, buf := range rtcptest.Datagrams(t) {
		if err := (rtcpstrict.Options{ReducedSize: true}).Validate(buf); err != nil {
			t.Errorf("RTCP fixture %d refused: %v\n% x", i, err, buf)
		}
	}
	for i, buf := range rtcptest.RTPPackets(t) {
		if err := rtcpstrict.ValidateRTP(buf); err != nil {
			t.Errorf("RTP fixture %d refused: %v", i, err)
		}
	}
}
