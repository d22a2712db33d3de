package e2ee

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// admissionFixture is a member admitting a newcomer.
type admissionFixture struct {
	admitter, admitted *Identity
	a                  Admission
}

func newAdmissionFixture(t testing.TB) *admissionFixture {
	t.Helper()
	f := &admissionFixture{admitter: newIdentityTB(t), admitted: newIdentityTB(t)}
	f.a = Admission{
		Room: "room ✓", Admitter: "alice", AdmitterKey: f.admitter.PublicKey(),
		Admitted: "bob", AdmittedKey: f.admitted.PublicKey(), UnixMilli: 1_700_000_000_123,
	}
	return f
}

func newIdentityTB(t testing.TB) *Identity {
	t.Helper()
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// signedText is the text form of body signed by id under label, whatever
// the body says: how a member (or a thief of its key) could sign anything.
func signedText(prefix, label string, id *Identity, body []byte) string {
	return encodeSigned(prefix, body, id.sign(label, body))
}

func (f *admissionFixture) body(t testing.TB, edit func(*Admission)) []byte {
	t.Helper()
	a := f.a
	if edit != nil {
		edit(&a)
	}
	b, err := a.marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// notAPoint is an encoding of no point on edwards25519 (y = 2 has no x).
// 32 bytes of 0xff, by contrast, decode: y = 2^255-1 is taken mod p.
func notAPoint() []byte {
	k := make([]byte, PublicKeySize)
	k[0] = 2
	return k
}

func equalAdmissions(a, b Admission) bool {
	return a.Room == b.Room && a.Admitter == b.Admitter && bytes.Equal(a.AdmitterKey, b.AdmitterKey) &&
		a.Admitted == b.Admitted && bytes.Equal(a.AdmittedKey, b.AdmittedKey) && a.UnixMilli == b.UnixMilli
}

func TestAdmissionRoundTrip(t *testing.T) {
	f := newAdmissionFixture(t)
	text, err := Admit(f.admitter, f.a)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, "sotto-admit-v1:") {
		t.Fatalf("Admit = %q, want the sotto-admit-v1: prefix", text)
	}
	got, err := ParseAdmission(text)
	if err != nil {
		t.Fatal(err)
	}
	if !equalAdmissions(got, f.a) {
		t.Fatalf("parsed %+v, admitted %+v", got, f.a)
	}
	if again, _ := Admit(f.admitter, got); again != text {
		t.Fatalf("the parsed admission signs to another text:\n%s\n%s", again, text)
	}
	// Empty names and the longest ones go through.
	for _, edit := range []func(*Admission){
		func(a *Admission) { a.Room, a.Admitter, a.Admitted = "", "", "" },
		func(a *Admission) { a.Room = strings.Repeat("r", math.MaxUint16) },
		func(a *Admission) { a.Admitted = strings.Repeat("b", math.MaxUint16) },
		func(a *Admission) { a.UnixMilli = 0 },
		func(a *Admission) { a.UnixMilli = math.MaxInt64 },
	} {
		a := f.a
		edit(&a)
		text, err := Admit(f.admitter, a)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := ParseAdmission(text); err != nil || !equalAdmissions(got, a) {
			t.Fatalf("ParseAdmission = %+v, %v; want %+v", got, err, a)
		}
	}
}

// TestAdmissionMatchesSpec compares an admission with the body written out
// by hand from docs/E2EE.md and checks its signature with crypto/ed25519.
func TestAdmissionMatchesSpec(t *testing.T) {
	f := newAdmissionFixture(t)
	text, err := Admit(f.admitter, f.a)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(text, "sotto-admit-v1:"))
	if err != nil {
		t.Fatal(err)
	}
	a := f.a
	var want []byte
	str := func(s string) {
		want = binary.BigEndian.AppendUint16(want, uint16(len(s)))
		want = append(want, s...)
	}
	want = append(want, 0x01)
	str(a.Room)
	str(a.Admitter)
	want = append(want, a.AdmitterKey...)
	str(a.Admitted)
	want = append(want, a.AdmittedKey...)
	want = binary.BigEndian.AppendUint64(want, uint64(a.UnixMilli))
	if len(raw) != len(want)+ed25519.SignatureSize || !bytes.Equal(raw[:len(want)], want) {
		t.Fatalf("admission\n%x\nwant body\n%x\nand a 64-byte signature", raw, want)
	}
	if !ed25519.Verify(f.admitter.PublicKey(), append([]byte("sotto e2ee v2 admit"), want...), raw[len(want):]) {
		t.Fatal("the signature is not Ed25519 over \"sotto e2ee v2 admit\" || body")
	}
}

// TestParseAdmissionRefuses: every change to an admission, and every
// statement its admitter did not sign as an admission, is refused with
// ErrBadAdmission.
func TestParseAdmissionRefuses(t *testing.T) {
	f := newAdmissionFixture(t)
	good, err := Admit(f.admitter, f.a)
	if err != nil {
		t.Fatal(err)
	}
	b64 := strings.TrimPrefix(good, admitPrefix)
	raw, _ := base64.RawURLEncoding.DecodeString(b64)
	body := raw[:len(raw)-ed25519.SignatureSize]
	enc := func(b []byte) string { return admitPrefix + base64.RawURLEncoding.EncodeToString(b) }
	signed := func(b []byte) string { return signedText(admitPrefix, admitLabel, f.admitter, b) }
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	mallory := newIdentity(t)

	tests := map[string]string{
		"empty":                       "",
		"prefix only":                 admitPrefix,
		"no prefix":                   b64,
		"roster prefix":               rosterPrefix + b64,
		"announcement prefix":         announcePrefix + b64,
		"padded":                      good + "=",
		"newline inside":              admitPrefix + b64[:10] + "\n" + b64[10:],
		"space at the end":            good + " ",
		"standard base64":             admitPrefix + base64.RawStdEncoding.EncodeToString(raw),
		"one byte short":              enc(raw[:len(raw)-1]),
		"one byte long":               enc(append(bytes.Clone(raw), 0)),
		"signature only":              enc(raw[len(body):]),
		"body only":                   enc(body),
		"signature first":             enc(append(bytes.Clone(raw[len(body):]), body...)),
		"signed by mallory":           signedText(admitPrefix, admitLabel, mallory, body),
		"alice signs as bob":          signed(f.body(t, func(a *Admission) { a.AdmitterKey = f.admitted.PublicKey(); a.AdmittedKey = mallory.PublicKey() })),
		"announcement label":          signedText(admitPrefix, announceLabel, f.admitter, body),
		"key box label":               signedText(admitPrefix, keyLabel, f.admitter, body),
		"roster label":                signedText(admitPrefix, rosterLabel, f.admitter, body),
		"no label":                    signedText(admitPrefix, "", f.admitter, body),
		"signed trailing byte":        signed(append(bytes.Clone(body), 0)),
		"signed version 2":            signed(append([]byte{2}, body[1:]...)),
		"signed version 0":            signed(append([]byte{0}, body[1:]...)),
		"signed time before 1970":     signed(append(bytes.Clone(body[:len(body)-8]), 0x80, 0, 0, 0, 0, 0, 0, 0)),
		"signed self admission":       signed(f.body(t, func(a *Admission) { a.AdmittedKey = a.AdmitterKey })),
		"signed admitted not a point": signed(f.body(t, func(a *Admission) { a.AdmittedKey = notAPoint() })),
	}
	// The fixture's 159 bytes fill the last character; one byte more
	// leaves 4 bits over, which must be zero.
	odd := f.a
	odd.Room += "!"
	oddText, err := Admit(f.admitter, odd)
	if err != nil {
		t.Fatal(err)
	}
	if (len(oddText)-len(admitPrefix))%4 == 0 {
		t.Fatalf("%q has no bits over in its last character", oddText)
	}
	tests["non-canonical trailing bits"] = oddText[:len(oddText)-1] + string(alphabet[strings.IndexByte(alphabet, oddText[len(oddText)-1])^1])
	// Every truncation of the body, each signed as it is.
	for n := range len(body) {
		tests[fmt.Sprintf("signed body cut to %d bytes", n)] = signed(body[:n])
	}
	for name, p := range smallOrderEd25519(t) {
		tests["signed small-order admitted key "+name] = signed(f.body(t, func(a *Admission) { a.AdmittedKey = p }))
		tests["small-order admitter key "+name] = signed(f.body(t, func(a *Admission) { a.AdmitterKey = p }))
	}
	for name, in := range tests {
		if a, err := ParseAdmission(in); !errors.Is(err, ErrBadAdmission) {
			t.Errorf("%s: ParseAdmission(%q) = %+v, %v; want ErrBadAdmission", name, in, a, err)
		}
	}
	if _, err := ParseAdmission(signed(body)); err != nil {
		t.Fatalf("the hand-signed good body is refused: %v", err)
	}
}

// TestParseAdmissionRefusesEveryByteChange: an admission with any one bit
// of any byte flipped, or any byte complemented, or any one character of
// its text changed, is refused. (All 255 other values of every byte pass
// as well, but take 20 s under -race.)
func TestParseAdmissionRefusesEveryByteChange(t *testing.T) {
	f := newAdmissionFixture(t)
	good, err := Admit(f.admitter, f.a)
	if err != nil {
		t.Fatal(err)
	}
	assertEveryChangeRefused(t, good, admitPrefix, ErrBadAdmission, func(s string) (any, error) { return ParseAdmission(s) })
}

// assertEveryChangeRefused checks that parse refuses, with want, the signed
// text good (prefix, then unpadded base64url) with any bit of any byte
// flipped, any byte complemented, or any character of the text replaced.
func assertEveryChangeRefused(t *testing.T, good, prefix string, want error, parse func(string) (any, error)) {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(good, prefix))
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		for _, x := range []byte{1, 2, 4, 8, 16, 32, 64, 128, 0xff} {
			b := bytes.Clone(raw)
			b[i] ^= x
			if v, err := parse(prefix + base64.RawURLEncoding.EncodeToString(b)); !errors.Is(err, want) {
				t.Fatalf("byte %d xor %#02x: %+v, %v; want %v", i, x, v, err, want)
			}
		}
	}
	for i := range good {
		for _, c := range []byte{'A', 'z', '-', '_', '=', '.', 0} {
			if good[i] == c {
				continue
			}
			if v, err := parse(good[:i] + string(c) + good[i+1:]); !errors.Is(err, want) {
				t.Fatalf("character %d set to %q: %+v, %v; want %v", i, c, v, err, want)
			}
		}
	}
}

func TestAdmitArguments(t *testing.T) {
	f := newAdmissionFixture(t)
	long := strings.Repeat("x", math.MaxUint16+1)
	for name, edit := range map[string]func(*Admission){
		"long room":     func(a *Admission) { a.Room = long },
		"long admitter": func(a *Admission) { a.Admitter = long },
		"long admitted": func(a *Admission) { a.Admitted = long },
	} {
		a := f.a
		edit(&a)
		if _, err := Admit(f.admitter, a); !errors.Is(err, ErrNameTooLong) {
			t.Errorf("%s: %v, want ErrNameTooLong", name, err)
		}
	}
	for name, p := range smallOrderEd25519(t) {
		a := f.a
		a.AdmittedKey = p
		if _, err := Admit(f.admitter, a); !errors.Is(err, ErrBadPublicKey) {
			t.Errorf("admitted small-order key %s: %v, want ErrBadPublicKey", name, err)
		}
	}
	for name, edit := range map[string]func(*Admission){
		"another admitter key": func(a *Admission) { a.AdmitterKey = f.admitted.PublicKey() },
		"no admitter key":      func(a *Admission) { a.AdmitterKey = nil },
		"short admitted key":   func(a *Admission) { a.AdmittedKey = a.AdmittedKey[:31] },
		"self":                 func(a *Admission) { a.AdmittedKey = a.AdmitterKey },
		"before 1970":          func(a *Admission) { a.UnixMilli = -1 },
	} {
		a := f.a
		edit(&a)
		if s, err := Admit(f.admitter, a); err == nil {
			t.Errorf("%s: Admit = %q", name, s)
		}
	}
	if _, err := Admit(nil, f.a); err == nil {
		t.Error("Admit signed with a nil identity")
	}
	if _, err := Admit(&Identity{}, f.a); err == nil {
		t.Error("Admit signed with an empty identity")
	}
}

func TestAdmissionCheck(t *testing.T) {
	f := newAdmissionFixture(t)
	made := time.UnixMilli(f.a.UnixMilli)
	const minute = time.Minute
	for _, c := range []struct {
		name   string
		room   string
		now    time.Time
		maxAge time.Duration
		ok     bool
	}{
		{"at once", "room ✓", made, minute, true},
		{"a minute later", "room ✓", made.Add(minute), minute, true},
		{"a minute earlier (clock behind)", "room ✓", made.Add(-minute), minute, true},
		{"a minute and 1 ms later", "room ✓", made.Add(minute + time.Millisecond), minute, false},
		{"a minute and 1 ms earlier", "room ✓", made.Add(-minute - time.Millisecond), minute, false},
		{"an hour later", "room ✓", made.Add(time.Hour), minute, false},
		{"sub-millisecond later", "room ✓", made.Add(minute + 999*time.Microsecond), minute, true},
		{"no window, same millisecond", "room ✓", made, 0, true},
		{"no window, 1 ms later", "room ✓", made.Add(time.Millisecond), 0, false},
		{"negative window", "room ✓", made, -minute, false},
		{"another room", "room", made, minute, false},
		{"room differs in case", "ROOM ✓", made, minute, false},
		{"no room", "", made, minute, false},
		{"now in year 1", "room ✓", time.Time{}, minute, false},
		{"now far in the past", "room ✓", time.UnixMilli(math.MinInt64), math.MaxInt64, false},
		{"now far in the future", "room ✓", time.UnixMilli(math.MaxInt64), minute, false},
		{"widest window", "room ✓", time.UnixMilli(0), math.MaxInt64, true},
	} {
		err := f.a.Check(c.room, c.now, c.maxAge)
		if c.ok && err != nil || !c.ok && !errors.Is(err, ErrBadAdmission) {
			t.Errorf("%s: Check = %v, want ok=%v", c.name, err, c.ok)
		}
	}
	a := f.a
	a.UnixMilli = math.MaxInt64
	if err := a.Check(a.Room, time.UnixMilli(math.MinInt64), math.MaxInt64); !errors.Is(err, ErrBadAdmission) {
		t.Errorf("the widest distance passed Check: %v", err)
	}
}

// FuzzParseAdmission: whatever a node relays as an admission, parsing
// never panics, and what it accepts has exactly one text form: the body
// of the fields it returned, followed by a signature that verifies. The
// second input is signed as a body by a fixed admitter, so the fuzzer
// reaches past the signature: the seeds name that admitter.
func FuzzParseAdmission(f *testing.F) {
	id, _ := identityFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	other, _ := identityFromSeed(bytes.Repeat([]byte{2}, ed25519.SeedSize))
	a := Admission{Room: "room", Admitter: "alice", AdmitterKey: id.PublicKey(), Admitted: "bob", AdmittedKey: other.PublicKey(), UnixMilli: 1_700_000_000_000}
	good, _ := Admit(id, a)
	body, _ := a.marshal()
	f.Add(good, body)
	f.Add(good[:len(good)-1], body[:len(body)-1])
	f.Add(admitPrefix, append(bytes.Clone(body), 0))
	f.Add(admitPrefix+base64.RawURLEncoding.EncodeToString(make([]byte, 200)), []byte{AdmissionVersion})
	f.Add("", []byte{})
	f.Fuzz(func(t *testing.T, s string, body []byte) {
		check := func(s string) {
			a, err := ParseAdmission(s)
			if err != nil {
				if !errors.Is(err, ErrBadAdmission) {
					t.Fatalf("ParseAdmission(%q): %v, not an ErrBadAdmission", s, err)
				}
				return
			}
			again, err := a.marshal()
			if err != nil {
				t.Fatalf("a parsed admission does not marshal: %v", err)
			}
			raw, _ := base64.RawURLEncoding.DecodeString(s[len(admitPrefix):])
			sig := raw[len(raw)-ed25519.SignatureSize:]
			if encodeSigned(admitPrefix, again, sig) != s {
				t.Fatalf("admission %q parsed as %+v, which encodes otherwise", s, a)
			}
			if !verify(a.AdmitterKey, admitLabel, again, sig) {
				t.Fatalf("accepted %q without a valid signature", s)
			}
			if bytes.Equal(a.AdmitterKey, id.PublicKey()) {
				if text, err := Admit(id, a); err != nil || text != s {
					t.Fatalf("Admit of what %q parsed to = %q, %v", s, text, err)
				}
			}
		}
		check(s)
		check(signedText(admitPrefix, admitLabel, id, body))
	})
}
