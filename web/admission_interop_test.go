package web_test

// TestBrowserAdmissionInterop: the browser's admissions and roster views
// (web/sdk/e2ee/admission.js, roster.js) and Go's (media/e2ee/admission.go,
// roster.go) agree byte for byte: what one signs the other parses to the
// same fields, the same inputs sign to the same text in both (Ed25519 is
// deterministic, and both hold the same identity keys), entries sort by
// their UTF-8 bytes in both, everything Go's tests refuse is refused by
// the browser too, and SameParticipants and Diff give the same answers.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/sotto-rtc/sotto/media/e2ee"
)

const (
	admitPrefix  = "sotto-admit-v1:"
	rosterPrefix = "sotto-roster-v1:"
	admitLabel   = "sotto e2ee v2 admit"
	rosterLabel  = "sotto e2ee v2 roster"
	b64Alphabet  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)

// jsResult is what the page's attempt() returns: a value, or the kind of
// error (its class name) and its message.
type jsResult[T any] struct {
	Value   T      `json:"value"`
	Error   string `json:"error"`
	Message string `json:"message"`
}

// hexAdmission is an e2ee.Admission as the page takes and gives it: names
// and keys in hex (names as their UTF-8 bytes), the time in decimal, and
// the type parseAdmission gave it.
type hexAdmission struct {
	Room        string `json:"room"`
	Admitter    string `json:"admitter"`
	AdmitterKey string `json:"admitterKey,omitempty"`
	Admitted    string `json:"admitted"`
	AdmittedKey string `json:"admittedKey"`
	Time        string `json:"time"`
	TimeType    string `json:"timeType,omitempty"`
}

func toHexAdmission(a e2ee.Admission) hexAdmission {
	return hexAdmission{
		Room: hex.EncodeToString([]byte(a.Room)), Admitter: hex.EncodeToString([]byte(a.Admitter)),
		AdmitterKey: hex.EncodeToString(a.AdmitterKey), Admitted: hex.EncodeToString([]byte(a.Admitted)),
		AdmittedKey: hex.EncodeToString(a.AdmittedKey), Time: strconv.FormatInt(a.UnixMilli, 10),
	}
}

// hexEntry and hexView are an e2ee.RosterEntry and RosterView as the page
// takes and gives them.
type hexEntry struct {
	Name   string `json:"name"`
	Key    string `json:"key"`
	KeySeq string `json:"keySeq"`
}

type hexView struct {
	Room      string     `json:"room"`
	Member    string     `json:"member"`
	MemberKey string     `json:"memberKey,omitempty"`
	ViewSeq   string     `json:"viewSeq"`
	Entries   []hexEntry `json:"entries"`
}

func toHexEntries(es []e2ee.RosterEntry) []hexEntry {
	out := make([]hexEntry, 0, len(es))
	for _, e := range es {
		out = append(out, hexEntry{hex.EncodeToString([]byte(e.Name)), hex.EncodeToString(e.Key), strconv.FormatUint(e.KeySeq, 10)})
	}
	return out
}

func toHexView(v e2ee.RosterView) hexView {
	return hexView{
		Room: hex.EncodeToString([]byte(v.Room)), Member: hex.EncodeToString([]byte(v.Member)),
		MemberKey: hex.EncodeToString(v.MemberKey), ViewSeq: strconv.FormatUint(v.Seq, 10), Entries: toHexEntries(v.Participants),
	}
}

// admPerson is one identity held by both sides: Go's e2ee.Identity (from
// a store file holding its seed), the raw key for signing statements by
// hand, and the page's Identity of the same seed under jsName.
type admPerson struct {
	name   string
	jsName string
	id     *e2ee.Identity
	priv   ed25519.PrivateKey
	pub    []byte
}

func newAdmPerson(t *testing.T, ctx context.Context, name string) *admPerson {
	t.Helper()
	seed := sha256.Sum256([]byte("sotto admission interop " + name))
	path := filepath.Join(t.TempDir(), "identity.json")
	data, err := json.Marshal(struct {
		Version int    `json:"version"`
		Seed    []byte `json:"identity_seed"`
	}{1, seed[:]})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := e2ee.OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	id, err := store.Identity()
	if err != nil {
		t.Fatal(err)
	}
	priv := ed25519.NewKeyFromSeed(seed[:])
	p := &admPerson{name: name, jsName: "adm " + name, id: id, priv: priv, pub: priv.Public().(ed25519.PublicKey)}
	if !bytes.Equal(id.PublicKey(), p.pub) {
		t.Fatalf("%s: the store's identity is not the seed's", name)
	}
	var imported string
	jsCall(t, ctx, &imported, "importIdentity", p.jsName, hex.EncodeToString(seed[:]), hex.EncodeToString(p.pub))
	if imported != hex.EncodeToString(p.pub) {
		t.Fatalf("%s: the page imported %s, want %x", name, imported, p.pub)
	}
	return p
}

// signedStatement is prefix, then body || Ed25519(priv, label || body) in
// unpadded base64url: how a member (or a thief of its key) could sign any
// body.
func signedStatement(prefix, label string, priv ed25519.PrivateKey, body []byte) string {
	sig := ed25519.Sign(priv, append([]byte(label), body...))
	return prefix + base64.RawURLEncoding.EncodeToString(append(bytes.Clone(body), sig...))
}

func appendU16Bytes(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// admissionBody is a's body, written out from docs/E2EE.md.
func admissionBody(a e2ee.Admission) []byte {
	b := []byte{0x01}
	b = appendU16Bytes(b, a.Room)
	b = appendU16Bytes(b, a.Admitter)
	b = append(b, a.AdmitterKey...)
	b = appendU16Bytes(b, a.Admitted)
	b = append(b, a.AdmittedKey...)
	return binary.BigEndian.AppendUint64(b, uint64(a.UnixMilli))
}

// rosterBody is v's body, written out from docs/E2EE.md, with the
// participants in the order given.
func rosterBody(v e2ee.RosterView) []byte {
	b := []byte{0x01}
	b = appendU16Bytes(b, v.Room)
	b = appendU16Bytes(b, v.Member)
	b = append(b, v.MemberKey...)
	b = binary.BigEndian.AppendUint64(b, v.Seq)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v.Participants)))
	for _, e := range v.Participants {
		b = appendU16Bytes(b, e.Name)
		b = append(b, e.Key...)
		b = binary.BigEndian.AppendUint64(b, e.KeySeq)
	}
	return b
}

// compareRosterEntries is the order of docs/E2EE.md: name, then key,
// bytewise.
func compareRosterEntries(a, b e2ee.RosterEntry) int {
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	return bytes.Compare(a.Key, b.Key)
}

// admSmallOrderKeys are Ed25519 encodings of points of small order
// (media/e2ee's smallOrderEd25519), non-canonical ones included.
var admSmallOrderKeys = []string{
	"0100000000000000000000000000000000000000000000000000000000000000",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"0000000000000000000000000000000000000000000000000000000000000080",
	"0000000000000000000000000000000000000000000000000000000000000000",
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
}

// admNotAPoint encodes no point of edwards25519 (y = 2 has no x).
func admNotAPoint() []byte {
	k := make([]byte, ed25519.PublicKeySize)
	k[0] = 2
	return k
}

// everyChange is good (prefix, then unpadded base64url) with any bit of
// any byte flipped, any byte complemented, or any character replaced: what
// media/e2ee's assertEveryChangeRefused tries.
func everyChange(t *testing.T, good, prefix string) map[string]string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(good, prefix))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for i := range raw {
		for _, x := range []byte{1, 2, 4, 8, 16, 32, 64, 128, 0xff} {
			b := bytes.Clone(raw)
			b[i] ^= x
			out[fmt.Sprintf("byte %d xor %#02x", i, x)] = prefix + base64.RawURLEncoding.EncodeToString(b)
		}
	}
	for i := range good {
		for _, c := range []byte{'A', 'z', '-', '_', '=', '.', 0} {
			if good[i] != c {
				out[fmt.Sprintf("character %d set to %q", i, c)] = good[:i] + string(c) + good[i+1:]
			}
		}
	}
	return out
}

// jsRefusesAll parses every text of tests in the page with fn
// ("parseAdmissions" or "parseRosters") and fails for each one it does not
// refuse with the error class want.
func jsRefusesAll[T any](t *testing.T, ctx context.Context, fn, want string, tests map[string]string) {
	t.Helper()
	names := slices.Sorted(maps.Keys(tests))
	list := make([]string, len(names))
	for i, n := range names {
		list[i] = tests[n]
	}
	var res []jsResult[*T]
	jsCall(t, ctx, &res, fn, list)
	if len(res) != len(list) {
		t.Fatalf("%s: %d results for %d texts", fn, len(res), len(list))
	}
	for i, r := range res {
		if r.Error != want {
			t.Errorf("%s: JS %s(%q) = %+v, %s %s; want %s", names[i], fn, list[i], r.Value, r.Error, r.Message, want)
		}
	}
}

func TestBrowserAdmissionInterop(t *testing.T) {
	srv := e2eeServer(t, nil)
	b := newBrowser(t)
	ctx := e2eeOpenPage(t, b, "admission", srv.URL+"/testdata/e2ee/interop.html", "typeof window.e2eeTest === 'object'")
	ps := map[string]*admPerson{}
	for _, n := range []string{"alice", "bob", "carol1", "carol2", "mallory", "ghost"} {
		ps[n] = newAdmPerson(t, ctx, n)
	}

	t.Run("admissions, Go signs, JS parses", func(t *testing.T) { admGoToJSTest(t, ctx, ps) })
	t.Run("admissions, JS signs, Go parses", func(t *testing.T) { admJSToGoTest(t, ctx, ps) })
	t.Run("admission refusals", func(t *testing.T) { admRefusalsTest(t, ctx, ps) })
	t.Run("admit arguments", func(t *testing.T) { admArgumentsTest(t, ctx, ps) })
	t.Run("admission check", func(t *testing.T) { admCheckTest(t, ctx, ps) })
	t.Run("rosters, Go signs, JS parses", func(t *testing.T) { rosterGoToJSTest(t, ctx, ps) })
	t.Run("rosters, JS signs, Go parses", func(t *testing.T) { rosterJSToGoTest(t, ctx, ps) })
	t.Run("roster sorting of tricky names", func(t *testing.T) { rosterSortingTest(t, ctx, ps) })
	t.Run("roster refusals", func(t *testing.T) { rosterRefusalsTest(t, ctx, ps) })
	t.Run("sign roster arguments", func(t *testing.T) { rosterArgumentsTest(t, ctx, ps) })
	t.Run("same participants and diff", func(t *testing.T) { rosterDiffTest(t, ctx, ps) })
}

// admFixture is media/e2ee's: alice admits bob.
func admFixture(ps map[string]*admPerson) e2ee.Admission {
	return e2ee.Admission{
		Room: "room ✓", Admitter: "alice", AdmitterKey: ps["alice"].pub,
		Admitted: "bob", AdmittedKey: ps["bob"].pub, UnixMilli: 1_700_000_000_123,
	}
}

// admCases are admissions both sides must make and read alike: empty and
// longest names, tricky UTF-8, times at the edges of a double's precision
// and of int64.
func admCases(ps map[string]*admPerson) map[string]e2ee.Admission {
	f := admFixture(ps)
	out := map[string]e2ee.Admission{"fixture": f}
	for name, edit := range map[string]func(*e2ee.Admission){
		"empty names":      func(a *e2ee.Admission) { a.Room, a.Admitter, a.Admitted = "", "", "" },
		"longest room":     func(a *e2ee.Admission) { a.Room = strings.Repeat("r", math.MaxUint16) },
		"longest admitted": func(a *e2ee.Admission) { a.Admitted = strings.Repeat("é", math.MaxUint16/2) + "b" },
		"time 0":           func(a *e2ee.Admission) { a.UnixMilli = 0 },
		"time 2^53-1":      func(a *e2ee.Admission) { a.UnixMilli = 1<<53 - 1 },
		"time 2^53":        func(a *e2ee.Admission) { a.UnixMilli = 1 << 53 },
		"time 2^53+1":      func(a *e2ee.Admission) { a.UnixMilli = 1<<53 + 1 },
		"time MaxInt64":    func(a *e2ee.Admission) { a.UnixMilli = math.MaxInt64 },
		"emoji and accents": func(a *e2ee.Admission) {
			a.Room, a.Admitter, a.Admitted = "salle d'été ☀", "zoë 😀", "\U0010ffff\u0301"
		},
		"BOM and NUL":          func(a *e2ee.Admission) { a.Room, a.Admitter, a.Admitted = "\ufeffroom", "a\x00lice", "\ufeff" },
		"admitted name is key": func(a *e2ee.Admission) { a.Admitted = hex.EncodeToString(a.AdmittedKey) },
	} {
		a := f
		edit(&a)
		out[name] = a
	}
	// Signed by bob instead.
	a := f
	a.Admitter, a.AdmitterKey, a.Admitted, a.AdmittedKey = "bob", ps["bob"].pub, "alice", ps["alice"].pub
	out["bob admits alice"] = a
	return out
}

func admSigner(ps map[string]*admPerson, a e2ee.Admission) *admPerson {
	for _, p := range ps {
		if bytes.Equal(p.pub, a.AdmitterKey) {
			return p
		}
	}
	return nil
}

func admTimeType(ms int64) string {
	if ms <= 1<<53-1 {
		return "number"
	}
	return "bigint"
}

func admGoToJSTest(t *testing.T, ctx context.Context, ps map[string]*admPerson) {
	cases := admCases(ps)
	names := slices.Sorted(maps.Keys(cases))
	texts := make([]string, len(names))
	for i, n := range names {
		a := cases[n]
		text, err := e2ee.Admit(admSigner(ps, a).id, a)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		// The test's own body is the spec's: Go's text is it, signed.
		if hand := signedStatement(admitPrefix, admitLabel, admSigner(ps, a).priv, admissionBody(a)); hand != text {
			t.Fatalf("%s: e2ee.Admit differs from the body written out from docs/E2EE.md", n)
		}
		texts[i] = text
	}
	var res []jsResult[*hexAdmission]
	jsCall(t, ctx, &res, "parseAdmissions", texts)
	for i, n := range names {
		want := toHexAdmission(cases[n])
		want.TimeType = admTimeType(cases[n].UnixMilli)
		if r := res[i]; r.Error != "" || r.Value == nil || *r.Value != want {
			t.Errorf("%s: Go's admission, parsed in JS: %+v, %s %s; want %+v", n, r.Value, r.Error, r.Message, want)
		}
	}
}

func admJSToGoTest(t *testing.T, ctx context.Context, ps map[string]*admPerson) {
	cases := admCases(ps)
	for _, n := range slices.Sorted(maps.Keys(cases)) {
		a := cases[n]
		signer := admSigner(ps, a)
		want, err := e2ee.Admit(signer.id, a)
		if err != nil {
			t.Fatal(err)
		}
		in := toHexAdmission(a)
		for _, withKey := range []bool{true, false} {
			if !withKey {
				in.AdmitterKey = "" // left out: the signer's
			}
			var res jsResult[string]
			jsCall(t, ctx, &res, "admit", signer.jsName, in)
			if res.Error != "" {
				t.Errorf("%s: JS admit (admitterKey given: %v): %s %s", n, withKey, res.Error, res.Message)
				continue
			}
			// Ed25519 is deterministic: the same inputs, the same text.
			if res.Value != want {
				t.Errorf("%s: JS admit (admitterKey given: %v) signs\n%.200s\nGo\n%.200s", n, withKey, res.Value, want)
			}
			got, err := e2ee.ParseAdmission(res.Value)
			if err != nil {
				t.Errorf("%s: Go refuses the JS admission: %v", n, err)
				continue
			}
			if toHexAdmission(got) != toHexAdmission(a) {
				t.Errorf("%s: Go reads the JS admission as %+v, want %+v", n, got, a)
			}
		}
	}
}

// admRefusalsTest: everything media/e2ee's TestParseAdmissionRefuses and
// TestParseAdmissionRefusesEveryByteChange refuse, the page refuses too;
// and a room or name that is not UTF-8, which Go takes, the page refuses.
func admRefusalsTest(t *testing.T, ctx context.Context, ps map[string]*admPerson) {
	alice, bob, mallory := ps["alice"], ps["bob"], ps["mallory"]
	f := admFixture(ps)
	good, err := e2ee.Admit(alice.id, f)
	if err != nil {
		t.Fatal(err)
	}
	b64 := strings.TrimPrefix(good, admitPrefix)
	raw, _ := base64.RawURLEncoding.DecodeString(b64)
	body := raw[:len(raw)-ed25519.SignatureSize]
	enc := func(b []byte) string { return admitPrefix + base64.RawURLEncoding.EncodeToString(b) }
	signed := func(b []byte) string { return signedStatement(admitPrefix, admitLabel, alice.priv, b) }
	edited := func(edit func(*e2ee.Admission)) []byte {
		a := f
		edit(&a)
		return admissionBody(a)
	}
	tests := map[string]string{
		"empty":                       "",
		"prefix only":                 admitPrefix,
		"no prefix":                   b64,
		"roster prefix":               rosterPrefix + b64,
		"announcement prefix":         announcePrefix + b64,
		"upper-case prefix":           strings.ToUpper(admitPrefix) + b64,
		"padded":                      good + "=",
		"newline inside":              admitPrefix + b64[:10] + "\n" + b64[10:],
		"CRLF at the end":             good + "\r\n",
		"space at the end":            good + " ",
		"standard base64":             admitPrefix + base64.RawStdEncoding.EncodeToString(raw),
		"one byte short":              enc(raw[:len(raw)-1]),
		"one byte long":               enc(append(bytes.Clone(raw), 0)),
		"signature only":              enc(raw[len(body):]),
		"body only":                   enc(body),
		"signature first":             enc(append(bytes.Clone(raw[len(body):]), body...)),
		"tampered signature":          enc(append(bytes.Clone(raw[:len(raw)-1]), raw[len(raw)-1]^1)),
		"signed by mallory":           signedStatement(admitPrefix, admitLabel, mallory.priv, body),
		"alice signs as bob":          signed(edited(func(a *e2ee.Admission) { a.AdmitterKey, a.AdmittedKey = bob.pub, mallory.pub })),
		"announcement label":          signedStatement(admitPrefix, "sotto e2ee v2 announce", alice.priv, body),
		"key box label":               signedStatement(admitPrefix, "sotto e2ee v2 key", alice.priv, body),
		"roster label":                signedStatement(admitPrefix, rosterLabel, alice.priv, body),
		"no label":                    signedStatement(admitPrefix, "", alice.priv, body),
		"signed trailing byte":        signed(append(bytes.Clone(body), 0)),
		"signed version 2":            signed(append([]byte{2}, body[1:]...)),
		"signed version 0":            signed(append([]byte{0}, body[1:]...)),
		"signed time before 1970":     signed(append(bytes.Clone(body[:len(body)-8]), 0x80, 0, 0, 0, 0, 0, 0, 0)),
		"signed time all ones":        signed(append(bytes.Clone(body[:len(body)-8]), bytes.Repeat([]byte{0xff}, 8)...)),
		"signed self admission":       signed(edited(func(a *e2ee.Admission) { a.AdmittedKey = a.AdmitterKey })),
		"signed admitted not a point": signed(edited(func(a *e2ee.Admission) { a.AdmittedKey = admNotAPoint() })),
		"signed admitter not a point": signedStatement(admitPrefix, admitLabel, alice.priv, edited(func(a *e2ee.Admission) { a.AdmitterKey = admNotAPoint() })),
	}
	// One byte more than the fixture leaves 4 bits over in the last
	// character, which must be zero.
	odd := f
	odd.Room += "!"
	oddText, err := e2ee.Admit(alice.id, odd)
	if err != nil {
		t.Fatal(err)
	}
	if (len(oddText)-len(admitPrefix))%4 == 0 {
		t.Fatalf("%q has no bits over in its last character", oddText)
	}
	last := strings.IndexByte(b64Alphabet, oddText[len(oddText)-1])
	tests["non-canonical trailing bits"] = oddText[:len(oddText)-1] + string(b64Alphabet[last^1])
	for n := range len(body) {
		tests[fmt.Sprintf("signed body cut to %d bytes", n)] = signed(body[:n])
	}
	for i, h := range admSmallOrderKeys {
		p, _ := hex.DecodeString(h)
		tests[fmt.Sprintf("signed small-order admitted key %d", i)] = signed(edited(func(a *e2ee.Admission) { a.AdmittedKey = p }))
		tests[fmt.Sprintf("small-order admitter key %d", i)] = signed(edited(func(a *e2ee.Admission) { a.AdmitterKey = p }))
	}
	for what, s := range everyChange(t, good, admitPrefix) {
		tests[what] = s
	}
	for name, in := range tests {
		if a, err := e2ee.ParseAdmission(in); !errors.Is(err, e2ee.ErrBadAdmission) {
			t.Fatalf("%s: Go's ParseAdmission = %+v, %v; the test expects a refusal", name, a, err)
		}
	}
	jsRefusesAll[hexAdmission](t, ctx, "parseAdmissions", "BadAdmissionError", tests)

	// The hand-signed good body is taken by both.
	var res []jsResult[*hexAdmission]
	jsCall(t, ctx, &res, "parseAdmissions", []string{signed(body)})
	if res[0].Error != "" {
		t.Fatalf("JS refuses the hand-signed good body: %s %s", res[0].Error, res[0].Message)
	}

	// Not UTF-8: Go takes any bytes; a JS string cannot hold them, so the
	// page refuses (as it refuses such key boxes).
	notUTF8 := map[string]string{}
	for name, edit := range map[string]func(*e2ee.Admission){
		"room":            func(a *e2ee.Admission) { a.Room = "room \xff" },
		"admitter":        func(a *e2ee.Admission) { a.Admitter = "ali\xc3" },
		"admitted":        func(a *e2ee.Admission) { a.Admitted = "\xed\xa0\x80" }, // an encoded surrogate
		"overlong NUL":    func(a *e2ee.Admission) { a.Admitted = "b\xc0\x80" },
		"beyond U+10FFFF": func(a *e2ee.Admission) { a.Admitted = "\xf4\x90\x80\x80" },
	} {
		text := signed(edited(edit))
		if _, err := e2ee.ParseAdmission(text); err != nil {
			t.Fatalf("not UTF-8, %s: Go refuses: %v", name, err)
		}
		notUTF8["not UTF-8: "+name] = text
	}
	jsRefusesAll[hexAdmission](t, ctx, "parseAdmissions", "BadAdmissionError", notUTF8)
	t.Logf("%d admissions refused by both, %d (not UTF-8) by JS only", len(tests), len(notUTF8))
}

// admArgumentsTest: what media/e2ee's TestAdmitArguments refuses to sign,
// the page refuses too, with the matching error.
func admArgumentsTest(t *testing.T, ctx context.Context, ps map[string]*admPerson) {
	alice, bob := ps["alice"], ps["bob"]
	f := admFixture(ps)
	long := strings.Repeat("x", math.MaxUint16+1)
	type argCase struct {
		edit   func(*e2ee.Admission)
		js     string // the page's error class
		goWant error  // what Go's error wraps; nil: any error
	}
	cases := map[string]argCase{
		"long room":            {func(a *e2ee.Admission) { a.Room = long }, "NameTooLongError", e2ee.ErrNameTooLong},
		"long admitter":        {func(a *e2ee.Admission) { a.Admitter = long }, "NameTooLongError", e2ee.ErrNameTooLong},
		"long admitted":        {func(a *e2ee.Admission) { a.Admitted = long }, "NameTooLongError", e2ee.ErrNameTooLong},
		"another admitter key": {func(a *e2ee.Admission) { a.AdmitterKey = bob.pub }, "TypeError", nil},
		"short admitter key":   {func(a *e2ee.Admission) { a.AdmitterKey = alice.pub[:31] }, "TypeError", nil},
		"short admitted key":   {func(a *e2ee.Admission) { a.AdmittedKey = bob.pub[:31] }, "BadPublicKeyError", e2ee.ErrBadPublicKey},
		"admitted not a point": {func(a *e2ee.Admission) { a.AdmittedKey = admNotAPoint() }, "BadPublicKeyError", e2ee.ErrBadPublicKey},
		"self":                 {func(a *e2ee.Admission) { a.AdmittedKey = a.AdmitterKey }, "TypeError", nil},
		"before 1970":          {func(a *e2ee.Admission) { a.UnixMilli = -1 }, "RangeError", nil},
		"long before 1970":     {func(a *e2ee.Admission) { a.UnixMilli = math.MinInt64 }, "RangeError", nil},
	}
	for i, h := range admSmallOrderKeys {
		p, _ := hex.DecodeString(h)
		cases[fmt.Sprintf("small-order admitted key %d", i)] = argCase{func(a *e2ee.Admission) { a.AdmittedKey = p }, "BadPublicKeyError", e2ee.ErrBadPublicKey}
	}
	for _, name := range slices.Sorted(maps.Keys(cases)) {
		c := cases[name]
		a := f
		c.edit(&a)
		if s, err := e2ee.Admit(alice.id, a); err == nil || c.goWant != nil && !errors.Is(err, c.goWant) {
			t.Fatalf("%s: Go's Admit = %q, %v; the test expects a refusal wrapping %v", name, s, err, c.goWant)
		}
		var res jsResult[string]
		jsCall(t, ctx, &res, "admit", alice.jsName, toHexAdmission(a))
		if res.Error != c.js {
			t.Errorf("%s: JS admit = %q, %s %s; want %s", name, res.Value, res.Error, res.Message, c.js)
		}
	}
	// Beyond Go's int64, and not integers: the page's own refusals.
	in := toHexAdmission(f)
	for _, tm := range []string{"9223372036854775808", "18446744073709551616"} {
		in.Time = tm
		var res jsResult[string]
		jsCall(t, ctx, &res, "admit", alice.jsName, in)
		if res.Error == "" {
			t.Errorf("time %s: JS admit = %q", tm, res.Value)
		}
	}
	// A signer that is not the admitter named: the page refuses, as Go.
	var res jsResult[string]
	jsCall(t, ctx, &res, "admit", bob.jsName, toHexAdmission(f))
	if res.Error != "TypeError" {
		t.Errorf("bob signs alice's admission: JS admit = %q, %s %s; want TypeError", res.Value, res.Error, res.Message)
	}
}

// admCheckTest: media/e2ee's TestAdmissionCheck, in both.
func admCheckTest(t *testing.T, ctx context.Context, ps map[string]*admPerson) {
	alice := ps["alice"]
	f := admFixture(ps)
	made := time.UnixMilli(f.UnixMilli)
	const minute = time.Minute
	type checkCase struct {
		name   string
		a      e2ee.Admission
		room   string
		now    time.Time
		maxAge time.Duration
	}
	late := f
	late.UnixMilli = math.MaxInt64
	cases := []checkCase{
		{"at once", f, "room ✓", made, minute},
		{"a minute later", f, "room ✓", made.Add(minute), minute},
		{"a minute earlier (clock behind)", f, "room ✓", made.Add(-minute), minute},
		{"a minute and 1 ms later", f, "room ✓", made.Add(minute + time.Millisecond), minute},
		{"a minute and 1 ms earlier", f, "room ✓", made.Add(-minute - time.Millisecond), minute},
		{"an hour later", f, "room ✓", made.Add(time.Hour), minute},
		{"sub-millisecond later", f, "room ✓", made.Add(minute + 999*time.Microsecond), minute},
		{"sub-millisecond earlier", f, "room ✓", made.Add(-minute - 999*time.Microsecond), minute},
		{"no window, same millisecond", f, "room ✓", made, 0},
		{"no window, 1 ms later", f, "room ✓", made.Add(time.Millisecond), 0},
		{"window of 1.5 ms, 1 ms later", f, "room ✓", made.Add(time.Millisecond), 1500 * time.Microsecond},
		{"negative window", f, "room ✓", made, -minute},
		{"another room", f, "room", made, minute},
		{"room differs in case", f, "ROOM ✓", made, minute},
		{"room in another normal form", f, "room \u2713\u0301", made, minute},
		{"no room", f, "", made, minute},
		{"now in year 1", f, "room ✓", time.Time{}, minute},
		{"now far in the past", f, "room ✓", time.UnixMilli(math.MinInt64), math.MaxInt64},
		{"now far in the future", f, "room ✓", time.UnixMilli(math.MaxInt64), minute},
		{"widest window", f, "room ✓", time.UnixMilli(0), math.MaxInt64},
		{"widest distance", late, "room ✓", time.UnixMilli(math.MinInt64), math.MaxInt64},
		{"latest time, now", late, "room ✓", time.UnixMilli(math.MaxInt64), 0},
	}
	type jsCase struct {
		Room   string `json:"room"`
		Now    string `json:"now"`
		MaxAge string `json:"maxAge"`
	}
	// now as the page takes it: whole milliseconds as a bigint, or a
	// Number with the fraction Go's UnixMilli drops.
	nowOf := func(tm time.Time) string {
		ms := tm.UnixMilli()
		if frac := tm.Sub(time.UnixMilli(ms)); frac > 0 && ms > 0 {
			return fmt.Sprintf("%d.%03d", ms, frac/time.Microsecond)
		}
		return strconv.FormatInt(ms, 10)
	}
	maxAgeOf := func(d time.Duration) string {
		if d%time.Millisecond != 0 && d > 0 {
			return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', -1, 64)
		}
		return strconv.FormatInt(d.Milliseconds(), 10)
	}
	byText := map[string][]checkCase{}
	for _, c := range cases {
		text, err := e2ee.Admit(alice.id, c.a)
		if err != nil {
			t.Fatal(err)
		}
		byText[text] = append(byText[text], c)
	}
	for text, cs := range byText {
		in := make([]jsCase, len(cs))
		for i, c := range cs {
			in[i] = jsCase{hex.EncodeToString([]byte(c.room)), nowOf(c.now), maxAgeOf(c.maxAge)}
		}
		var res []jsResult[any]
		jsCall(t, ctx, &res, "checkAdmissions", text, in)
		for i, c := range cs {
			goErr := c.a.Check(c.room, c.now, c.maxAge)
			if goErr != nil && !errors.Is(goErr, e2ee.ErrBadAdmission) {
				t.Fatalf("%s: Go's Check = %v", c.name, goErr)
			}
			want := ""
			if goErr != nil {
				want = "BadAdmissionError"
			}
			if res[i].Error != want {
				t.Errorf("%s (now %s, max age %s): JS checkAdmission: %q %s; Go: %v", c.name, in[i].Now, in[i].MaxAge, res[i].Error, res[i].Message, goErr)
			}
		}
	}
	// What only JavaScript can pass: not numbers, infinities, a negative
	// fraction.
	text, _ := e2ee.Admit(alice.id, f)
	room := hex.EncodeToString([]byte(f.Room))
	at := strconv.FormatInt(f.UnixMilli, 10)
	var res []jsResult[any]
	jsCall(t, ctx, &res, "checkAdmissions", text, []jsCase{
		{room, "NaN", "60000"}, {room, at, "NaN"}, {room, at, "Infinity"}, {room, "Infinity", "60000"},
		{room, at, "-0.5"}, {room, at + ".5", "0.9"},
	})
	for i, want := range []string{"BadAdmissionError", "BadAdmissionError", "BadAdmissionError", "BadAdmissionError", "BadAdmissionError", ""} {
		if res[i].Error != want {
			t.Errorf("JS-only check case %d: %q %s; want %q", i, res[i].Error, res[i].Message, want)
		}
	}
}

// rosterFixture is media/e2ee's: alice's view of alice, bob and two
// carols, given unsorted.
func rosterFixture(ps map[string]*admPerson) e2ee.RosterView {
	return e2ee.RosterView{
		Room: "room ✓", Member: "alice", MemberKey: ps["alice"].pub, Seq: 7,
		Participants: []e2ee.RosterEntry{
			{Name: "carol", Key: ps["carol1"].pub, KeySeq: 1_700_000_000_000_001},
			{Name: "bob", Key: ps["bob"].pub, KeySeq: 0},
			{Name: "alice", Key: ps["alice"].pub, KeySeq: math.MaxUint64},
			{Name: "carol", Key: ps["carol2"].pub, KeySeq: 3},
		},
	}
}

func sortedView(v e2ee.RosterView) e2ee.RosterView {
	v.Participants = slices.SortedFunc(slices.Values(v.Participants), compareRosterEntries)
	return v
}

// trickyNames sort differently by UTF-8 bytes (Go's order, and the
// format's) than by UTF-16 code units (JavaScript's <): characters of the
// BMP above the surrogates (U+E000 to U+FFFF) come before those beyond it
// in UTF-8, after them in UTF-16. With names differing only past the BMP,
// a BOM, NUL, prefixes and decomposed accents.
var trickyNames = []string{
	"", "a", "a\x00", "ab", "b", "B", "Z", "\u00e9", "e\u0301", "\u00ff", "\u0100", "\u07ff", "\u0800",
	"\ud7ff", "\ue000", "\uff61", "\ufeffa", "\uffff", "\U00010000", "😀", "😁",
	"x😀", "x😁", "x\U0010ffff", "x\uffff", "x\ue000", "zoë", "zoe\u0308",
}

// rosterTrickyView is alice's view of a participant under each tricky
// name, the keys taken in turn from the others, and two names under two
// keys each; given in reverse order.
func rosterTrickyView(ps map[string]*admPerson) e2ee.RosterView {
	keys := [][]byte{ps["bob"].pub, ps["carol1"].pub, ps["carol2"].pub, ps["ghost"].pub, ps["mallory"].pub}
	v := e2ee.RosterView{Room: "salle 😀", Member: "alice", MemberKey: ps["alice"].pub, Seq: 1<<53 + 1,
		Participants: []e2ee.RosterEntry{{Name: "alice", Key: ps["alice"].pub, KeySeq: 1}}}
	for i, n := range trickyNames {
		v.Participants = append(v.Participants, e2ee.RosterEntry{Name: n, Key: keys[i%len(keys)], KeySeq: uint64(i) << 40})
	}
	v.Participants = append(v.Participants,
		e2ee.RosterEntry{Name: "carol", Key: ps["carol1"].pub, KeySeq: 5}, e2ee.RosterEntry{Name: "carol", Key: ps["carol2"].pub, KeySeq: 6},
		e2ee.RosterEntry{Name: "😀", Key: ps["alice"].pub, KeySeq: 7})
	slices.Reverse(v.Participants)
	return v
}

// rosterFull is a view of 4096 participants with distinct keys.
func rosterFull(t *testing.T, ps map[string]*admPerson) e2ee.RosterView {
	v := rosterFixture(ps)
	v.Participants = []e2ee.RosterEntry{{Name: "alice", Key: ps["alice"].pub}}
	for i := len(v.Participants); i < e2ee.MaxRosterEntries; i++ {
		seed := sha256.Sum256(fmt.Appendf(nil, "participant %d", i))
		v.Participants = append(v.Participants, e2ee.RosterEntry{
			Name: fmt.Sprintf("p%04d", e2ee.MaxRosterEntries-i), Key: ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey), KeySeq: uint64(i),
		})
	}
	return v
}

// rosterCases are views both sides must make and read alike.
func rosterCases(t *testing.T, ps map[string]*admPerson) map[string]e2ee.RosterView {
	f := rosterFixture(ps)
	out := map[string]e2ee.RosterView{"fixture": f, "tricky names": rosterTrickyView(ps), "4096 participants": rosterFull(t, ps)}
	out["alone, empty names"] = e2ee.RosterView{MemberKey: ps["alice"].pub, Participants: []e2ee.RosterEntry{{Key: ps["alice"].pub}}}
	v := f
	v.Seq = math.MaxUint64
	out["view seq MaxUint64"] = v
	v = f
	v.Room, v.Member = strings.Repeat("r", math.MaxUint16), strings.Repeat("m", math.MaxUint16)
	v.Participants = append(slices.Clone(f.Participants), e2ee.RosterEntry{Name: v.Member, Key: ps["alice"].pub})
	out["longest room and member"] = v
	return out
}

func rosterSigner(ps map[string]*admPerson, v e2ee.RosterView) *admPerson {
	for _, p := range ps {
		if bytes.Equal(p.pub, v.MemberKey) {
			return p
		}
	}
	return nil
}

func rosterGoToJSTest(t *testing.T, ctx context.Context, ps map[string]*admPerson) {
	cases := rosterCases(t, ps)
	names := slices.Sorted(maps.Keys(cases))
	texts := make([]string, len(names))
	for i, n := range names {
		v := cases[n]
		text, err := e2ee.SignRoster(rosterSigner(ps, v).id, v)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if hand := signedStatement(rosterPrefix, rosterLabel, rosterSigner(ps, v).priv, rosterBody(sortedView(v))); hand != text {
			t.Fatalf("%s: e2ee.SignRoster differs from the body written out from docs/E2EE.md", n)
		}
		texts[i] = text
	}
	start := time.Now()
	var res []jsResult[*hexView]
	jsCall(t, ctx, &res, "parseRosters", texts)
	t.Logf("JS parsed %d views in %v", len(texts), time.Since(start).Round(time.Millisecond))
	for i, n := range names {
		want := toHexView(sortedView(cases[n]))
		if r := res[i]; r.Error != "" || r.Value == nil || !equalHexViews(*r.Value, want) {
			t.Errorf("%s: Go's view, parsed in JS: %s %s; entries %d, want %d", n, r.Error, r.Message, len(r.Value.entriesOrNil()), len(want.Entries))
		}
	}
}

func (v *hexView) entriesOrNil() []hexEntry {
	if v == nil {
		return nil
	}
	return v.Entries
}

func equalHexViews(a, b hexView) bool {
	return a.Room == b.Room && a.Member == b.Member && a.MemberKey == b.MemberKey && a.ViewSeq == b.ViewSeq && slices.Equal(a.Entries, b.Entries)
}

func rosterJSToGoTest(t *testing.T, ctx context.Context, ps map[string]*admPerson) {
	cases := rosterCases(t, ps)
	for _, n := range slices.Sorted(maps.Keys(cases)) {
		v := cases[n]
		signer := rosterSigner(ps, v)
		want, err := e2ee.SignRoster(signer.id, v)
		if err != nil {
			t.Fatal(err)
		}
		in := toHexView(v) // unsorted, as given
		for _, withKey := range []bool{true, false} {
			if !withKey {
				in.MemberKey = "" // left out: the signer's
			}
			var res jsResult[string]
			jsCall(t, ctx, &res, "signRoster", signer.jsName, in)
			if res.Error != "" {
				t.Errorf("%s: JS signRoster (memberKey given: %v): %s %s", n, withKey, res.Error, res.Message)
				continue
			}
			if res.Value != want {
				t.Errorf("%s: JS signRoster (memberKey given: %v) signs another text than Go:\n%.300s\n%.300s", n, withKey, res.Value, want)
			}
			got, err := e2ee.ParseRoster(res.Value)
			if err != nil {
				t.Errorf("%s: Go refuses the JS view: %v", n, err)
				continue
			}
			if !equalHexViews(toHexView(got), toHexView(sortedView(v))) {
				t.Errorf("%s: Go reads the JS view otherwise than it was given", n)
			}
		}
	}
}

// utf16Less is JavaScript's a < b on strings.
func utf16Less(a, b string) bool {
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b))) < 0
}

// rosterSortingTest: entries sort by their names' UTF-8 bytes, then keys,
// in both: JS signs the tricky names in every order given to Go's text,
// reads Go's order back as it is, and refuses a view sorted as JavaScript
// sorts strings, as Go does.
func rosterSortingTest(t *testing.T, ctx context.Context, ps map[string]*admPerson) {
	alice := ps["alice"]
	v := rosterTrickyView(ps)
	sorted := sortedView(v)
	// The test means something only if UTF-16 order differs.
	inversions := 0
	for i := 1; i < len(sorted.Participants); i++ {
		if utf16Less(sorted.Participants[i].Name, sorted.Participants[i-1].Name) {
			inversions++
		}
	}
	if inversions == 0 {
		t.Fatal("the tricky names sort the same in UTF-16: the test shows nothing")
	}
	want, err := e2ee.SignRoster(alice.id, v)
	if err != nil {
		t.Fatal(err)
	}
	orders := map[string][]e2ee.RosterEntry{"reversed": v.Participants, "sorted": sorted.Participants}
	for i := range 5 {
		shuffled := slices.Clone(sorted.Participants)
		seed := sha256.Sum256([]byte{byte(i)})
		for j := len(shuffled) - 1; j > 0; j-- {
			k := int(binary.BigEndian.Uint32(seed[j%28:])) % (j + 1)
			shuffled[j], shuffled[k] = shuffled[k], shuffled[j]
		}
		orders[fmt.Sprintf("shuffled %d", i)] = shuffled
	}
	for name, es := range orders {
		in := v
		in.Participants = es
		var res jsResult[string]
		jsCall(t, ctx, &res, "signRoster", alice.jsName, toHexView(in))
		if res.Error != "" || res.Value != want {
			t.Errorf("%s: JS signRoster = %.100s, %s %s; want Go's text", name, res.Value, res.Error, res.Message)
		}
	}
	// What JavaScript's sort would sign (by UTF-16, then key): refused.
	js := sorted
	js.Participants = slices.Clone(sorted.Participants)
	slices.SortStableFunc(js.Participants, func(a, b e2ee.RosterEntry) int {
		switch {
		case utf16Less(a.Name, b.Name):
			return -1
		case utf16Less(b.Name, a.Name):
			return 1
		}
		return bytes.Compare(a.Key, b.Key)
	})
	jsSorted := signedStatement(rosterPrefix, rosterLabel, alice.priv, rosterBody(js))
	if _, err := e2ee.ParseRoster(jsSorted); !errors.Is(err, e2ee.ErrBadRoster) {
		t.Fatalf("Go takes the view sorted by UTF-16: %v", err)
	}
	// Two names the same but for the key order.
	keysSwapped := sorted
	keysSwapped.Participants = slices.Clone(sorted.Participants)
	for i := 1; i < len(keysSwapped.Participants); i++ {
		if keysSwapped.Participants[i].Name == keysSwapped.Participants[i-1].Name {
			keysSwapped.Participants[i], keysSwapped.Participants[i-1] = keysSwapped.Participants[i-1], keysSwapped.Participants[i]
			break
		}
	}
	swapped := signedStatement(rosterPrefix, rosterLabel, alice.priv, rosterBody(keysSwapped))
	if _, err := e2ee.ParseRoster(swapped); !errors.Is(err, e2ee.ErrBadRoster) {
		t.Fatalf("Go takes the view with two keys of one name swapped: %v", err)
	}
	jsRefusesAll[hexView](t, ctx, "parseRosters", "BadRosterError", map[string]string{
		"sorted by UTF-16": jsSorted, "same name, keys swapped": swapped,
	})
	var res []jsResult[*hexView]
	jsCall(t, ctx, &res, "parseRosters", []string{want})
	if r := res[0]; r.Error != "" || r.Value == nil || !slices.Equal(r.Value.Entries, toHexEntries(sorted.Participants)) {
		t.Fatalf("JS reads Go's tricky view in another order: %s %s", r.Error, r.Message)
	}
}

// rosterRefusalsTest: everything media/e2ee's TestParseRosterRefuses and
// TestParseRosterRefusesEveryByteChange refuse, the page refuses too; and
// a name that is not UTF-8, which Go takes, the page refuses.
func rosterRefusalsTest(t *testing.T, ctx context.Context, ps map[string]*admPerson) {
	alice, bob, mallory := ps["alice"], ps["bob"], ps["mallory"]
	f := rosterFixture(ps)
	good, err := e2ee.SignRoster(alice.id, f)
	if err != nil {
		t.Fatal(err)
	}
	b64 := strings.TrimPrefix(good, rosterPrefix)
	raw, _ := base64.RawURLEncoding.DecodeString(b64)
	body := raw[:len(raw)-ed25519.SignatureSize]
	enc := func(b []byte) string { return rosterPrefix + base64.RawURLEncoding.EncodeToString(b) }
	signed := func(b []byte) string { return signedStatement(rosterPrefix, rosterLabel, alice.priv, b) }
	edited := func(edit func(*e2ee.RosterView)) []byte {
		v := sortedView(f)
		v.Participants = slices.Clone(v.Participants)
		edit(&v)
		return rosterBody(v)
	}
	last := strings.IndexByte(b64Alphabet, b64[len(b64)-1])
	if len(b64)%4 == 0 {
		t.Fatalf("%q has no bits over in its last character", b64)
	}
	countAt := 1 + 2 + len(f.Room) + 2 + len(f.Member) + ed25519.PublicKeySize + 8
	withCount := func(n uint16) []byte {
		b := bytes.Clone(body)
		binary.BigEndian.PutUint16(b[countAt:], n)
		return b
	}
	tests := map[string]string{
		"empty":                       "",
		"prefix only":                 rosterPrefix,
		"no prefix":                   b64,
		"admission prefix":            admitPrefix + b64,
		"padded":                      good + "=",
		"newline inside":              rosterPrefix + b64[:10] + "\n" + b64[10:],
		"non-canonical trailing bits": rosterPrefix + b64[:len(b64)-1] + string(b64Alphabet[last^1]),
		"standard base64":             rosterPrefix + base64.RawStdEncoding.EncodeToString(raw),
		"one byte short":              enc(raw[:len(raw)-1]),
		"one byte long":               enc(append(bytes.Clone(raw), 0)),
		"signature only":              enc(raw[len(body):]),
		"body only":                   enc(body),
		"tampered signature":          enc(append(bytes.Clone(raw[:len(raw)-1]), raw[len(raw)-1]^1)),
		"signed by mallory":           signedStatement(rosterPrefix, rosterLabel, mallory.priv, body),
		"alice signs as bob":          signed(edited(func(v *e2ee.RosterView) { v.Member, v.MemberKey = "bob", bob.pub })),
		"announcement label":          signedStatement(rosterPrefix, "sotto e2ee v2 announce", alice.priv, body),
		"key box label":               signedStatement(rosterPrefix, "sotto e2ee v2 key", alice.priv, body),
		"admission label":             signedStatement(rosterPrefix, admitLabel, alice.priv, body),
		"no label":                    signedStatement(rosterPrefix, "", alice.priv, body),
		"signed trailing byte":        signed(append(bytes.Clone(body), 0)),
		"signed version 2":            signed(append([]byte{2}, body[1:]...)),
		"signed version 0":            signed(append([]byte{0}, body[1:]...)),
		"signed count one less":       signed(withCount(3)),
		"signed count one more":       signed(withCount(5)),
		"signed count 4097":           signed(withCount(e2ee.MaxRosterEntries + 1)),
		"signed count 65535":          signed(withCount(math.MaxUint16)),
		"signed unsorted":             signed(edited(func(v *e2ee.RosterView) { slices.Reverse(v.Participants) })),
		"signed two swapped": signed(edited(func(v *e2ee.RosterView) {
			v.Participants[0], v.Participants[1] = v.Participants[1], v.Participants[0]
		})),
		"signed carols swapped": signed(edited(func(v *e2ee.RosterView) {
			v.Participants[2], v.Participants[3] = v.Participants[3], v.Participants[2]
		})),
		"signed bob twice": signed(edited(func(v *e2ee.RosterView) { v.Participants = slices.Insert(v.Participants, 1, v.Participants[1]) })),
		"signed bob twice, other seq": signed(edited(func(v *e2ee.RosterView) {
			e := v.Participants[1]
			e.KeySeq++
			v.Participants = slices.Insert(v.Participants, 2, e)
		})),
		"signed without the member":      signed(edited(func(v *e2ee.RosterView) { v.Participants = v.Participants[1:] })),
		"signed empty list":              signed(edited(func(v *e2ee.RosterView) { v.Participants = nil })),
		"signed member listed by key":    signed(edited(func(v *e2ee.RosterView) { v.Participants[0].Name = "alicia" })),
		"signed member listed by name":   signed(edited(func(v *e2ee.RosterView) { v.Participants[0].Key = bob.pub })),
		"signed participant not a point": signed(edited(func(v *e2ee.RosterView) { v.Participants[1].Key = admNotAPoint() })),
		"signed member key not a point":  signedStatement(rosterPrefix, rosterLabel, alice.priv, edited(func(v *e2ee.RosterView) { v.MemberKey = admNotAPoint() })),
	}
	for n := range len(body) {
		tests[fmt.Sprintf("signed body cut to %d bytes", n)] = signed(body[:n])
	}
	for i, h := range admSmallOrderKeys {
		p, _ := hex.DecodeString(h)
		tests[fmt.Sprintf("signed small-order participant key %d", i)] = signed(edited(func(v *e2ee.RosterView) { v.Participants[1].Key = p }))
		tests[fmt.Sprintf("small-order member key %d", i)] = signed(edited(func(v *e2ee.RosterView) {
			v.MemberKey = p
			v.Participants[0].Key = p
		}))
	}
	// 4097 entries, every one present and sorted, and signed.
	full := sortedView(rosterFull(t, ps))
	full.Participants = append(full.Participants, e2ee.RosterEntry{Name: "zz", Key: bob.pub})
	tests["signed 4097 entries"] = signed(rosterBody(full))
	for what, s := range everyChange(t, good, rosterPrefix) {
		tests[what] = s
	}
	for name, in := range tests {
		if v, err := e2ee.ParseRoster(in); !errors.Is(err, e2ee.ErrBadRoster) {
			t.Fatalf("%s: Go's ParseRoster = %+v, %v; the test expects a refusal", name, v, err)
		}
	}
	start := time.Now()
	jsRefusesAll[hexView](t, ctx, "parseRosters", "BadRosterError", tests)
	t.Logf("%d views refused by both (%v in JS)", len(tests), time.Since(start).Round(time.Millisecond))

	var res []jsResult[*hexView]
	jsCall(t, ctx, &res, "parseRosters", []string{signed(body)})
	if res[0].Error != "" {
		t.Fatalf("JS refuses the hand-signed good body: %s %s", res[0].Error, res[0].Message)
	}

	notUTF8 := map[string]string{}
	for name, edit := range map[string]func(*e2ee.RosterView){
		"room":        func(v *e2ee.RosterView) { v.Room = "\xff" },
		"member":      func(v *e2ee.RosterView) { v.Member, v.Participants[0].Name = "alice\xc3", "alice\xc3" },
		"participant": func(v *e2ee.RosterView) { v.Participants[1].Name = "bob\xed\xa0\x80" },
	} {
		text := signed(edited(edit))
		if _, err := e2ee.ParseRoster(text); err != nil {
			t.Fatalf("not UTF-8, %s: Go refuses: %v", name, err)
		}
		notUTF8["not UTF-8: "+name] = text
	}
	jsRefusesAll[hexView](t, ctx, "parseRosters", "BadRosterError", notUTF8)
}

// rosterArgumentsTest: what media/e2ee's TestSignRosterArguments refuses
// to sign, the page refuses too, with the matching error.
func rosterArgumentsTest(t *testing.T, ctx context.Context, ps map[string]*admPerson) {
	alice, bob := ps["alice"], ps["bob"]
	f := rosterFixture(ps)
	long := strings.Repeat("x", math.MaxUint16+1)
	type argCase struct {
		edit   func(*e2ee.RosterView)
		js     string
		goWant error
	}
	cases := map[string]argCase{
		"long room":          {func(v *e2ee.RosterView) { v.Room = long }, "NameTooLongError", e2ee.ErrNameTooLong},
		"long member":        {func(v *e2ee.RosterView) { v.Member = long; v.Participants[2].Name = long }, "NameTooLongError", e2ee.ErrNameTooLong},
		"long name":          {func(v *e2ee.RosterView) { v.Participants[0].Name = long }, "NameTooLongError", e2ee.ErrNameTooLong},
		"another member key": {func(v *e2ee.RosterView) { v.MemberKey = bob.pub }, "TypeError", nil},
		"short member key":   {func(v *e2ee.RosterView) { v.MemberKey = alice.pub[:31] }, "TypeError", nil},
		"short key":          {func(v *e2ee.RosterView) { v.Participants[0].Key = v.Participants[0].Key[:31] }, "BadPublicKeyError", e2ee.ErrBadPublicKey},
		"not a point":        {func(v *e2ee.RosterView) { v.Participants[1].Key = admNotAPoint() }, "BadPublicKeyError", e2ee.ErrBadPublicKey},
		"bob twice":          {func(v *e2ee.RosterView) { v.Participants = append(v.Participants, v.Participants[1]) }, "TypeError", nil},
		"bob twice, other seq": {func(v *e2ee.RosterView) {
			e := v.Participants[1]
			e.KeySeq = 99
			v.Participants = append(v.Participants, e)
		}, "TypeError", nil},
		"member missing":  {func(v *e2ee.RosterView) { v.Participants = slices.Delete(v.Participants, 2, 3) }, "TypeError", nil},
		"member misnamed": {func(v *e2ee.RosterView) { v.Member = "alicia" }, "TypeError", nil},
		"empty list":      {func(v *e2ee.RosterView) { v.Participants = nil }, "TypeError", nil},
		"too many": {func(v *e2ee.RosterView) {
			for i := len(v.Participants); i <= e2ee.MaxRosterEntries; i++ {
				v.Participants = append(v.Participants, e2ee.RosterEntry{Name: fmt.Sprintf("p%04d", i), Key: bob.pub})
			}
		}, "RangeError", nil},
	}
	for i, h := range admSmallOrderKeys {
		p, _ := hex.DecodeString(h)
		cases[fmt.Sprintf("small-order key %d", i)] = argCase{func(v *e2ee.RosterView) {
			v.Participants = append(v.Participants, e2ee.RosterEntry{Name: "ghost", Key: p})
		}, "BadPublicKeyError", e2ee.ErrBadPublicKey}
	}
	for _, name := range slices.Sorted(maps.Keys(cases)) {
		c := cases[name]
		v := f
		v.Participants = slices.Clone(f.Participants)
		c.edit(&v)
		if s, err := e2ee.SignRoster(alice.id, v); err == nil || c.goWant != nil && !errors.Is(err, c.goWant) {
			t.Fatalf("%s: Go's SignRoster = %q, %v; the test expects a refusal wrapping %v", name, s, err, c.goWant)
		}
		var res jsResult[string]
		jsCall(t, ctx, &res, "signRoster", alice.jsName, toHexView(v))
		if res.Error != c.js {
			t.Errorf("%s: JS signRoster = %.80q, %s %s; want %s", name, res.Value, res.Error, res.Message, c.js)
		}
	}
	// Beyond a u64, and not integers.
	for _, seq := range []string{"18446744073709551616", "-1"} {
		in := toHexView(f)
		in.ViewSeq = seq
		var res jsResult[string]
		jsCall(t, ctx, &res, "signRoster", alice.jsName, in)
		if res.Error == "" {
			t.Errorf("view seq %s: JS signRoster = %q", seq, res.Value)
		}
		in = toHexView(f)
		in.Entries[0].KeySeq = seq
		jsCall(t, ctx, &res, "signRoster", alice.jsName, in)
		if res.Error == "" {
			t.Errorf("key seq %s: JS signRoster = %q", seq, res.Value)
		}
	}
}

// rosterDiffTest: media/e2ee's TestRosterDiff cases, tricky names and
// signed views, through Go's Diff and SameParticipants and the page's
// diffRosters and sameParticipants: the same answers, entry for entry
// (key sequence numbers included: of a repeated entry, the first listed).
func rosterDiffTest(t *testing.T, ctx context.Context, ps map[string]*admPerson) {
	e := func(name, who string, seq uint64) e2ee.RosterEntry {
		return e2ee.RosterEntry{Name: name, Key: ps[who].pub, KeySeq: seq}
	}
	alice, bob, carol1, carol2 := e("alice", "alice", 1), e("bob", "bob", 2), e("carol", "carol1", 3), e("carol", "carol2", 4)
	list := func(es ...e2ee.RosterEntry) []e2ee.RosterEntry { return es }
	type pair struct {
		name string
		a, b []e2ee.RosterEntry
	}
	pairs := []pair{
		{"same", list(alice, bob), list(alice, bob)},
		{"same, other order", list(bob, alice), list(alice, bob)},
		{"same, other key seqs", list(alice, bob), list(e("alice", "alice", 9), e("bob", "bob", 0))},
		{"same, one listed twice", list(alice, bob, alice), list(alice, bob)},
		{"both empty", nil, nil},
		{"ghost shown to a only", list(alice, e("ghost", "ghost", 0), bob), list(alice, bob)},
		{"ghost shown to b only", list(alice, bob), list(bob, e("ghost", "ghost", 5), alice)},
		{"bob's key swapped for b", list(alice, bob), list(alice, e("bob", "ghost", 2))},
		{"the same key under another name", list(alice, bob), list(alice, e("bobby", "bob", 2))},
		{"one carol each", list(alice, carol1), list(carol2, alice)},
		{"a empty", nil, list(carol2, alice, carol1)},
		{"b empty", list(carol2, carol1, bob), nil},
		{"bob twice, other seqs, only in a", list(e("bob", "bob", 8), alice, e("bob", "bob", 3)), list(alice)},
		{"bob twice, other seqs, only in b", list(alice), list(e("bob", "bob", 3), e("bob", "bob", 8), alice)},
		{"composed and decomposed", list(e("\u00e9", "bob", 1)), list(e("e\u0301", "bob", 1))},
		{"names past the BMP", list(e("x😀", "bob", 1), e("x\uffff", "bob", 1)), list(e("x😁", "bob", 1), e("x\uffff", "bob", 1))},
		{"BOM", list(e("\ufeffbob", "bob", 1)), list(e("bob", "bob", 1))},
	}
	// Each tricky name against the tricky view, and against itself with
	// one name's key swapped.
	tricky := rosterTrickyView(ps).Participants
	for i := range tricky {
		swapped := slices.Clone(tricky)
		swapped[i].Key = ps["ghost"].pub
		if bytes.Equal(tricky[i].Key, ps["ghost"].pub) {
			swapped[i].Key = ps["mallory"].pub
		}
		pairs = append(pairs, pair{fmt.Sprintf("tricky, %+q swapped", tricky[i].Name), tricky, swapped})
		pairs = append(pairs, pair{fmt.Sprintf("tricky, without %+q", tricky[i].Name), slices.Delete(slices.Clone(tricky), i, i+1), tricky})
	}
	type jsPair struct {
		A []hexEntry `json:"a"`
		B []hexEntry `json:"b"`
	}
	in := make([]jsPair, len(pairs))
	for i, p := range pairs {
		in[i] = jsPair{toHexEntries(p.a), toHexEntries(p.b)}
	}
	var res []struct {
		Same, SameSwapped, Untouched bool
		OnlyA, OnlyB                 []hexEntry
	}
	jsCall(t, ctx, &res, "diffRosters", in)
	for i, p := range pairs {
		a, b := e2ee.RosterView{Participants: p.a}, e2ee.RosterView{Participants: p.b}
		onlyA, onlyB := e2ee.Diff(a, b)
		same := e2ee.SameParticipants(a, b)
		r := res[i]
		if r.Same != same || r.SameSwapped != e2ee.SameParticipants(b, a) {
			t.Errorf("%s: JS sameParticipants = %v, swapped %v; Go %v", p.name, r.Same, r.SameSwapped, same)
		}
		if !slices.Equal(r.OnlyA, toHexEntries(onlyA)) || !slices.Equal(r.OnlyB, toHexEntries(onlyB)) {
			t.Errorf("%s: JS diffRosters = %v, %v; Go %v, %v", p.name, r.OnlyA, r.OnlyB, toHexEntries(onlyA), toHexEntries(onlyB))
		}
		if !r.Untouched {
			t.Errorf("%s: changing what JS diffRosters returned changed the views", p.name)
		}
	}

	// Signed views of one call, parsed in JS: the same participants; a
	// ghost shown to bob only is what the diff names.
	alicesView := rosterFixture(ps)
	bobsView := e2ee.RosterView{Room: "room ✓", Member: "bob", MemberKey: ps["bob"].pub, Seq: 99, Participants: []e2ee.RosterEntry{alice, bob, carol1, carol2}}
	withGhost := bobsView
	withGhost.Participants = append(slices.Clone(bobsView.Participants), e("dave", "ghost", 0))
	var texts []string
	for _, sv := range []struct {
		who string
		v   e2ee.RosterView
	}{{"alice", alicesView}, {"bob", bobsView}, {"bob", withGhost}} {
		s, err := e2ee.SignRoster(ps[sv.who].id, sv.v)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, s)
	}
	var parsed []jsResult[*hexView]
	jsCall(t, ctx, &parsed, "parseRosters", texts)
	for i, r := range parsed {
		if r.Error != "" || r.Value == nil {
			t.Fatalf("view %d: %s %s", i, r.Error, r.Message)
		}
	}
	var views []struct {
		Same, SameSwapped bool
		OnlyA, OnlyB      []hexEntry
	}
	jsCall(t, ctx, &views, "diffRosters", []jsPair{{parsed[0].Value.Entries, parsed[1].Value.Entries}, {parsed[0].Value.Entries, parsed[2].Value.Entries}})
	if !views[0].Same || !views[0].SameSwapped {
		t.Error("JS: two signed views of the same call differ")
	}
	if views[1].Same || len(views[1].OnlyA) != 0 || !slices.Equal(views[1].OnlyB, toHexEntries([]e2ee.RosterEntry{e("dave", "ghost", 0)})) {
		t.Errorf("JS: a ghost shown to bob only: %+v", views[1])
	}
}
