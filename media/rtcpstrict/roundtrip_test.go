package rtcpstrict

import (
	"bytes"
	"reflect"
	"slices"
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// Hostile seeds live in testdata/fuzz/<target>/, one file per attack, named
// for it; `go test` replays them. The valid seeds added in code give the
// fuzzer well-formed packets to mutate.

// FuzzRTCP holds the package's promise: Validate never panics, and whatever
// it accepts pion parses, and every parsed packet marshals to MarshalSize
// bytes that parse back to the same packet. An input that breaks the last
// part is a pion limitation the validator must learn to refuse; it then
// belongs in testdata/fuzz/FuzzRTCP as a regression seed.
func FuzzRTCP(f *testing.F) {
	for _, seed := range [][]rtcp.Packet{
		{testSR(), testSDES()},
		{testRR(), testSDES(), testPLI()},
		{testRR(), testSDES(), testBYE()},
		{testRR(), testSDES(), testNACK(), testFIR(), testREMB(), testAPP()},
		{testXR()},
		{testCCFB()},
		{testTWCC(true)},
		{testTWCC(false)},
		{testPLI(), testNACK()},
	} {
		f.Add(marshal(f, seed...))
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		for _, o := range []Options{{}, {ReducedSize: true}} {
			err := o.Validate(buf)
			if err != nil {
				if _, ok := RuleOf(err); !ok {
					t.Fatalf("refusal without a rule: %v", err)
				}
				continue
			}
			checkRoundTrip(t, o, buf)
		}
	})
}

// checkRoundTrip asserts what an accepted datagram promises.
func checkRoundTrip(t *testing.T, o Options, buf []byte) {
	t.Helper()
	packets, err := o.Parse(buf)
	if err != nil {
		t.Fatalf("Validate accepted but Parse failed: %v\n% x", err, buf)
	}
	// Without padding to strip, Parse is rtcp.Unmarshal on the same bytes.
	if lay, _ := o.resolved().check(buf); lay.pad == 0 {
		direct, err := rtcp.Unmarshal(buf)
		if err != nil {
			t.Fatalf("Validate accepted but rtcp.Unmarshal failed: %v\n% x", err, buf)
		}
		if !reflect.DeepEqual(direct, packets) {
			t.Fatalf("Parse differs from rtcp.Unmarshal\n% x", buf)
		}
	}
	// A second parse to compare against: some pion Marshal methods (XR)
	// rewrite the packet they are called on.
	pristine, err := o.Parse(buf)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range packets {
		size := p.MarshalSize()
		out, err := p.Marshal()
		if err != nil {
			t.Fatalf("packet %d (%T) does not marshal: %v\n% x", i, p, err, buf)
		}
		// pion v1.2.17's ExtendedReport.MarshalSize leaves out the 4-byte
		// header for every XR, whatever its content, so no validator rule
		// can help; nothing in pion or the SFU sizes a buffer with it.
		if _, xr := p.(*rtcp.ExtendedReport); xr {
			size += headerLen
		}
		if len(out) != size {
			t.Fatalf("packet %d (%T): MarshalSize %d, Marshal wrote %d\n% x", i, p, size, len(out), buf)
		}
		back, err := rtcp.Unmarshal(out)
		if err != nil || len(back) != 1 {
			t.Fatalf("packet %d (%T) re-marshalled does not parse as one packet: %v %v\nin  % x\nout % x", i, p, err, back, buf, out)
		}
		if !reflect.DeepEqual(back[0], pristine[i]) {
			t.Fatalf("packet %d (%T) changes across marshal/unmarshal:\n got %v\nwant %v\nin  % x\nout % x", i, p, back[0], pristine[i], buf, out)
		}
	}
	// What pion writes back is itself acceptable.
	again, err := rtcp.Marshal(packets)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(again); err != nil {
		t.Fatalf("re-marshalled datagram refused: %v\nin  % x\nout % x", err, buf, again)
	}
}

// FuzzRTP: ValidateRTP never panics, and what it accepts pion parses and
// writes back unchanged.
func FuzzRTP(f *testing.F) {
	for _, seed := range rtpFixtures(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		if err := ValidateRTP(buf); err != nil {
			if _, ok := RuleOf(err); !ok {
				t.Fatalf("refusal without a rule: %v", err)
			}
			return
		}
		checkRTPRoundTrip(t, buf)
	})
}

func checkRTPRoundTrip(t *testing.T, buf []byte) {
	t.Helper()
	var p rtp.Packet
	if err := p.Unmarshal(buf); err != nil {
		t.Fatalf("ValidateRTP accepted but rtp.Packet.Unmarshal failed: %v\n% x", err, buf)
	}
	size := p.MarshalSize()
	out, err := p.Marshal()
	if err != nil {
		t.Fatalf("accepted packet does not marshal: %v\n% x", err, buf)
	}
	if len(out) != size {
		t.Fatalf("MarshalSize %d, Marshal wrote %d\n% x", size, len(out), buf)
	}
	var q rtp.Packet
	if err := q.Unmarshal(out); err != nil {
		t.Fatalf("re-marshalled packet does not parse: %v\nin  % x\nout % x", err, buf, out)
	}
	if !reflect.DeepEqual(p.Header, q.Header) || !bytes.Equal(p.Payload, q.Payload) {
		t.Fatalf("packet changes across marshal/unmarshal\n got %+v\nwant %+v\nin  % x\nout % x", q.Header, p.Header, buf, out)
	}
	if err := ValidateRTP(out); err != nil {
		t.Fatalf("re-marshalled packet refused: %v", err)
	}
}

// srtcpContexts returns fresh decryption contexts for the two profiles the
// SFU offers, keyed with the fixed test keys the encrypted seeds in
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
// the first code that touches an RTCP datagram from the network, under
// both profiles; it must not panic. What decrypts is still attacker-chosen
// (the peer holds the key), so it goes through the validator too.
func FuzzSRTCPUnprotect(f *testing.F) {
	plain := marshal(f, testRR(), testSDES(), testPLI())
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
			for _, o := range []Options{{}, {ReducedSize: true}} {
				if o.Validate(out) == nil {
					checkRoundTrip(t, o, out)
				}
			}
		}
	})
}
