package e2ee

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// rosterFixture is a member's view of a call of four: itself, bob, and
// two participants both named carol, with different keys.
type rosterFixture struct {
	member, bob, carol1, carol2 *Identity
	v                           RosterView
}

func newRosterFixture(t testing.TB) *rosterFixture {
	t.Helper()
	f := &rosterFixture{member: newIdentityTB(t), bob: newIdentityTB(t), carol1: newIdentityTB(t), carol2: newIdentityTB(t)}
	f.v = RosterView{
		Room: "room ✓", Member: "alice", MemberKey: f.member.PublicKey(), Seq: 7,
		// Not sorted: SignRoster sorts.
		Participants: []RosterEntry{
			{Name: "carol", Key: f.carol1.PublicKey(), KeySeq: 1_700_000_000_000_001},
			{Name: "bob", Key: f.bob.PublicKey(), KeySeq: 0},
			{Name: "alice", Key: f.member.PublicKey(), KeySeq: math.MaxUint64},
			{Name: "carol", Key: f.carol2.PublicKey(), KeySeq: 3},
		},
	}
	return f
}

// sorted is v with its participants sorted, as SignRoster signs it.
func (f *rosterFixture) sorted() RosterView {
	v := f.v
	v.Participants = slices.SortedFunc(slices.Values(v.Participants), compareEntries)
	return v
}

// body marshals the sorted view after edit, in whatever order edit leaves.
func (f *rosterFixture) body(t testing.TB, edit func(*RosterView)) []byte {
	t.Helper()
	v := f.sorted()
	v.Participants = slices.Clone(v.Participants)
	if edit != nil {
		edit(&v)
	}
	b, err := v.marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func equalRosters(a, b RosterView) bool {
	return a.Room == b.Room && a.Member == b.Member && bytes.Equal(a.MemberKey, b.MemberKey) && a.Seq == b.Seq &&
		slices.EqualFunc(a.Participants, b.Participants, func(x, y RosterEntry) bool {
			return x.Name == y.Name && bytes.Equal(x.Key, y.Key) && x.KeySeq == y.KeySeq
		})
}

func TestRosterRoundTrip(t *testing.T) {
	f := newRosterFixture(t)
	given := slices.Clone(f.v.Participants)
	text, err := SignRoster(f.member, f.v)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(given, f.v.Participants, func(x, y RosterEntry) bool { return x.Name == y.Name && bytes.Equal(x.Key, y.Key) }) {
		t.Fatal("SignRoster reordered the caller's slice")
	}
	if !strings.HasPrefix(text, "sotto-roster-v1:") {
		t.Fatalf("SignRoster = %q, want the sotto-roster-v1: prefix", text)
	}
	got, err := ParseRoster(text)
	if err != nil {
		t.Fatal(err)
	}
	want := f.sorted()
	if !equalRosters(got, want) {
		t.Fatalf("parsed %+v, want %+v", got, want)
	}
	if got.Participants[0].Name != "alice" || got.Participants[1].Name != "bob" ||
		bytes.Compare(got.Participants[2].Key, got.Participants[3].Key) >= 0 {
		t.Fatalf("participants not sorted by name, then key: %+v", got.Participants)
	}
	if again, _ := SignRoster(f.member, got); again != text {
		t.Fatal("the parsed view signs to another text")
	}
	// The same set in another order is the same text.
	v := f.v
	v.Participants = slices.Clone(v.Participants)
	slices.Reverse(v.Participants)
	if other, _ := SignRoster(f.member, v); other != text {
		t.Fatal("the same participants in another order sign to another text")
	}

	// A view of the member alone, and a view with the largest count.
	alone := RosterView{Room: "", Member: "", MemberKey: f.member.PublicKey(), Participants: []RosterEntry{{Key: f.member.PublicKey()}}}
	if text, err := SignRoster(f.member, alone); err != nil {
		t.Fatal(err)
	} else if got, err := ParseRoster(text); err != nil || !equalRosters(got, alone) {
		t.Fatalf("ParseRoster = %+v, %v; want %+v", got, err, alone)
	}
	full := f.v
	full.Participants = []RosterEntry{{Name: "alice", Key: f.member.PublicKey()}}
	for i := len(full.Participants); i < MaxRosterEntries; i++ {
		full.Participants = append(full.Participants, RosterEntry{Name: fmt.Sprintf("p%04d", i), Key: newIdentityTB(t).PublicKey(), KeySeq: uint64(i)})
	}
	text, err = SignRoster(f.member, full)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseRoster(text); err != nil || len(got.Participants) != MaxRosterEntries {
		t.Fatalf("a view of %d participants: %d parsed, %v", MaxRosterEntries, len(got.Participants), err)
	}
}

// TestRosterMatchesSpec compares a view with the body written out by hand
// from docs/E2EE.md and checks its signature with crypto/ed25519.
func TestRosterMatchesSpec(t *testing.T) {
	f := newRosterFixture(t)
	text, err := SignRoster(f.member, f.v)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(text, "sotto-roster-v1:"))
	if err != nil {
		t.Fatal(err)
	}
	v := f.sorted()
	var want []byte
	str := func(s string) {
		want = binary.BigEndian.AppendUint16(want, uint16(len(s)))
		want = append(want, s...)
	}
	want = append(want, 0x01)
	str(v.Room)
	str(v.Member)
	want = append(want, v.MemberKey...)
	want = binary.BigEndian.AppendUint64(want, v.Seq)
	want = binary.BigEndian.AppendUint16(want, 4)
	for _, e := range v.Participants {
		str(e.Name)
		want = append(want, e.Key...)
		want = binary.BigEndian.AppendUint64(want, e.KeySeq)
	}
	if len(raw) != len(want)+ed25519.SignatureSize || !bytes.Equal(raw[:len(want)], want) {
		t.Fatalf("roster\n%x\nwant body\n%x\nand a 64-byte signature", raw, want)
	}
	if !ed25519.Verify(f.member.PublicKey(), append([]byte("sotto e2ee v2 roster"), want...), raw[len(want):]) {
		t.Fatal("the signature is not Ed25519 over \"sotto e2ee v2 roster\" || body")
	}
}

// TestParseRosterRefuses: every change to a view, and every statement its
// member did not sign as this view, is refused with ErrBadRoster.
func TestParseRosterRefuses(t *testing.T) {
	f := newRosterFixture(t)
	good, err := SignRoster(f.member, f.v)
	if err != nil {
		t.Fatal(err)
	}
	b64 := strings.TrimPrefix(good, rosterPrefix)
	raw, _ := base64.RawURLEncoding.DecodeString(b64)
	body := raw[:len(raw)-ed25519.SignatureSize]
	enc := func(b []byte) string { return rosterPrefix + base64.RawURLEncoding.EncodeToString(b) }
	signed := func(b []byte) string { return signedText(rosterPrefix, rosterLabel, f.member, b) }
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, b64[len(b64)-1])
	if len(b64)%4 == 0 {
		t.Fatalf("%q has no bits over in its last character", b64)
	}
	mallory := newIdentity(t)
	// The offset of the count: version, room, member, key, view seq.
	countAt := 1 + 2 + len(f.v.Room) + 2 + len(f.v.Member) + PublicKeySize + 8
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
		"non-canonical trailing bits": rosterPrefix + b64[:len(b64)-1] + string(alphabet[last^1]),
		"standard base64":             rosterPrefix + base64.RawStdEncoding.EncodeToString(raw),
		"one byte short":              enc(raw[:len(raw)-1]),
		"one byte long":               enc(append(bytes.Clone(raw), 0)),
		"signature only":              enc(raw[len(body):]),
		"body only":                   enc(body),
		"signed by mallory":           signedText(rosterPrefix, rosterLabel, mallory, body),
		"alice signs as bob":          signed(f.body(t, func(v *RosterView) { v.Member, v.MemberKey = "bob", f.bob.PublicKey() })),
		"announcement label":          signedText(rosterPrefix, announceLabel, f.member, body),
		"key box label":               signedText(rosterPrefix, keyLabel, f.member, body),
		"admission label":             signedText(rosterPrefix, admitLabel, f.member, body),
		"no label":                    signedText(rosterPrefix, "", f.member, body),
		"signed trailing byte":        signed(append(bytes.Clone(body), 0)),
		"signed version 2":            signed(append([]byte{2}, body[1:]...)),
		"signed count one less":       signed(withCount(3)),
		"signed count one more":       signed(withCount(5)),
		"signed count 4097":           signed(withCount(MaxRosterEntries + 1)),
		"signed count 65535":          signed(withCount(math.MaxUint16)),
		"signed unsorted":             signed(f.body(t, func(v *RosterView) { slices.Reverse(v.Participants) })),
		"signed two swapped":          signed(f.body(t, func(v *RosterView) { v.Participants[0], v.Participants[1] = v.Participants[1], v.Participants[0] })),
		"signed carols swapped":       signed(f.body(t, func(v *RosterView) { v.Participants[2], v.Participants[3] = v.Participants[3], v.Participants[2] })),
		"signed bob twice":            signed(f.body(t, func(v *RosterView) { v.Participants = slices.Insert(v.Participants, 1, v.Participants[1]) })),
		"signed bob twice, other seq": signed(f.body(t, func(v *RosterView) {
			e := v.Participants[1]
			e.KeySeq++
			v.Participants = slices.Insert(v.Participants, 2, e)
		})),
		"signed without the member":      signed(f.body(t, func(v *RosterView) { v.Participants = v.Participants[1:] })),
		"signed empty list":              signed(f.body(t, func(v *RosterView) { v.Participants = nil })),
		"signed member listed by key":    signed(f.body(t, func(v *RosterView) { v.Participants[0].Name = "alicia" })),
		"signed member listed by name":   signed(f.body(t, func(v *RosterView) { v.Participants[0].Key = f.bob.PublicKey() })),
		"signed participant not a point": signed(f.body(t, func(v *RosterView) { v.Participants[1].Key = notAPoint() })),
	}
	// Every truncation of the body, each signed as it is.
	for n := range len(body) {
		tests[fmt.Sprintf("signed body cut to %d bytes", n)] = signed(body[:n])
	}
	for name, p := range smallOrderEd25519(t) {
		tests["signed small-order participant key "+name] = signed(f.body(t, func(v *RosterView) { v.Participants[1].Key = p }))
		tests["small-order member key "+name] = signed(f.body(t, func(v *RosterView) { v.MemberKey = p }))
	}
	for name, in := range tests {
		if v, err := ParseRoster(in); !errors.Is(err, ErrBadRoster) {
			t.Errorf("%s: ParseRoster(%q) = %+v, %v; want ErrBadRoster", name, in, v, err)
		}
	}
	if _, err := ParseRoster(signed(body)); err != nil {
		t.Fatalf("the hand-signed good body is refused: %v", err)
	}
}

// TestParseRosterRefusesEveryByteChange: a view with any one bit of any
// byte flipped, or any byte complemented, or any one character of its
// text changed, is refused.
func TestParseRosterRefusesEveryByteChange(t *testing.T) {
	f := newRosterFixture(t)
	good, err := SignRoster(f.member, f.v)
	if err != nil {
		t.Fatal(err)
	}
	assertEveryChangeRefused(t, good, rosterPrefix, ErrBadRoster, func(s string) (any, error) { return ParseRoster(s) })
}

func TestSignRosterArguments(t *testing.T) {
	f := newRosterFixture(t)
	long := strings.Repeat("x", math.MaxUint16+1)
	for name, edit := range map[string]func(*RosterView){
		"long room":   func(v *RosterView) { v.Room = long },
		"long member": func(v *RosterView) { v.Member = long; v.Participants[2].Name = long },
		"long name":   func(v *RosterView) { v.Participants[0].Name = long },
	} {
		v := f.v
		v.Participants = slices.Clone(v.Participants)
		edit(&v)
		if _, err := SignRoster(f.member, v); !errors.Is(err, ErrNameTooLong) {
			t.Errorf("%s: %v, want ErrNameTooLong", name, err)
		}
	}
	for name, p := range smallOrderEd25519(t) {
		v := f.v
		v.Participants = append(slices.Clone(v.Participants), RosterEntry{Name: "ghost", Key: p})
		if _, err := SignRoster(f.member, v); !errors.Is(err, ErrBadPublicKey) {
			t.Errorf("participant with small-order key %s: %v, want ErrBadPublicKey", name, err)
		}
	}
	tooMany := f.v
	tooMany.Participants = slices.Clone(f.v.Participants)
	for i := len(tooMany.Participants); i <= MaxRosterEntries; i++ {
		tooMany.Participants = append(tooMany.Participants, RosterEntry{Name: fmt.Sprintf("p%04d", i), Key: f.bob.PublicKey()})
	}
	for name, edit := range map[string]func(*RosterView){
		"another member key": func(v *RosterView) { v.MemberKey = f.bob.PublicKey() },
		"no member key":      func(v *RosterView) { v.MemberKey = nil },
		"short key":          func(v *RosterView) { v.Participants[0].Key = v.Participants[0].Key[:31] },
		"bob twice":          func(v *RosterView) { v.Participants = append(v.Participants, v.Participants[1]) },
		"member missing":     func(v *RosterView) { v.Participants = slices.Delete(v.Participants, 2, 3) },
		"member misnamed":    func(v *RosterView) { v.Member = "alicia" },
		"too many":           func(v *RosterView) { v.Participants = tooMany.Participants },
	} {
		v := f.v
		v.Participants = slices.Clone(v.Participants)
		edit(&v)
		if s, err := SignRoster(f.member, v); err == nil {
			t.Errorf("%s: SignRoster = %q", name, s)
		}
	}
	if _, err := SignRoster(nil, f.v); err == nil {
		t.Error("SignRoster signed with a nil identity")
	}
}

func TestRosterDiff(t *testing.T) {
	f := newRosterFixture(t)
	ghost := newIdentity(t)
	e := func(name string, id *Identity, seq uint64) RosterEntry {
		return RosterEntry{Name: name, Key: id.PublicKey(), KeySeq: seq}
	}
	alice, bob, carol1, carol2 := e("alice", f.member, 1), e("bob", f.bob, 2), e("carol", f.carol1, 3), e("carol", f.carol2, 4)
	view := func(es ...RosterEntry) RosterView { return RosterView{Participants: es} }
	names := func(es []RosterEntry) string {
		var s []string
		for _, x := range es {
			s = append(s, fmt.Sprintf("%s/%x/%d", x.Name, x.Key[:2], x.KeySeq))
		}
		return strings.Join(s, " ")
	}
	for _, c := range []struct {
		name         string
		a, b         RosterView
		onlyA, onlyB []RosterEntry
	}{
		{"same", view(alice, bob), view(alice, bob), nil, nil},
		{"same, other order", view(bob, alice), view(alice, bob), nil, nil},
		{"same, other key seqs", view(alice, bob), view(e("alice", f.member, 9), e("bob", f.bob, 0)), nil, nil},
		{"same, one listed twice", view(alice, bob, alice), view(alice, bob), nil, nil},
		{"both empty", view(), view(), nil, nil},
		{"ghost shown to a only", view(alice, e("ghost", ghost, 0), bob), view(alice, bob), []RosterEntry{e("ghost", ghost, 0)}, nil},
		{"ghost shown to b only", view(alice, bob), view(bob, e("ghost", ghost, 5), alice), nil, []RosterEntry{e("ghost", ghost, 5)}},
		{"bob's key swapped for b", view(alice, bob), view(alice, e("bob", ghost, 2)), []RosterEntry{bob}, []RosterEntry{e("bob", ghost, 2)}},
		{"the same key under another name", view(alice, bob), view(alice, e("bobby", f.bob, 2)), []RosterEntry{bob}, []RosterEntry{e("bobby", f.bob, 2)}},
		{"one carol each", view(alice, carol1), view(carol2, alice), []RosterEntry{carol1}, []RosterEntry{carol2}},
		{"a empty", view(), view(carol2, alice, carol1), nil, []RosterEntry{alice, carol1, carol2}},
		{"b empty", view(carol2, carol1, bob), view(), []RosterEntry{bob, carol1, carol2}, nil},
	} {
		// The two carols' order depends on their random keys.
		wantA := slices.SortedFunc(slices.Values(c.onlyA), compareEntries)
		wantB := slices.SortedFunc(slices.Values(c.onlyB), compareEntries)
		onlyA, onlyB := Diff(c.a, c.b)
		if names(onlyA) != names(wantA) || names(onlyB) != names(wantB) {
			t.Errorf("%s: Diff = [%s], [%s]; want [%s], [%s]", c.name, names(onlyA), names(onlyB), names(wantA), names(wantB))
		}
		if same := SameParticipants(c.a, c.b); same != (c.onlyA == nil && c.onlyB == nil) {
			t.Errorf("%s: SameParticipants = %v", c.name, same)
		}
		if same := SameParticipants(c.b, c.a); same != (c.onlyA == nil && c.onlyB == nil) {
			t.Errorf("%s: SameParticipants, swapped = %v", c.name, same)
		}
	}

	// Two members' signed views of the same call compare equal, whatever
	// else differs; a ghost shown to one of them does not.
	bobsView := RosterView{Room: "room ✓", Member: "bob", MemberKey: f.bob.PublicKey(), Seq: 99, Participants: []RosterEntry{alice, bob, carol1, carol2}}
	texts := map[string]string{}
	for name, sv := range map[string]struct {
		id *Identity
		v  RosterView
	}{"alice": {f.member, f.v}, "bob": {f.bob, bobsView}} {
		s, err := SignRoster(sv.id, sv.v)
		if err != nil {
			t.Fatal(err)
		}
		texts[name] = s
	}
	a, errA := ParseRoster(texts["alice"])
	b, errB := ParseRoster(texts["bob"])
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if !SameParticipants(a, b) {
		t.Fatal("two views of the same call differ")
	}
	bobsView.Participants = append(bobsView.Participants, e("dave", ghost, 0))
	s, err := SignRoster(f.bob, bobsView)
	if err != nil {
		t.Fatal(err)
	}
	b, err = ParseRoster(s)
	if err != nil {
		t.Fatal(err)
	}
	if onlyA, onlyB := Diff(a, b); SameParticipants(a, b) || len(onlyA) != 0 || names(onlyB) != names([]RosterEntry{e("dave", ghost, 0)}) {
		t.Fatalf("a ghost shown to bob only: Diff = [%s], [%s]", names(onlyA), names(onlyB))
	}
}

// FuzzParseRoster: whatever a node relays as a roster view, parsing never
// panics, and what it accepts has exactly one text form: the body of the
// fields it returned, followed by a signature that verifies. The second
// input is signed as a body by a fixed member, so the fuzzer reaches past
// the signature: the seeds name that member.
func FuzzParseRoster(f *testing.F) {
	id, _ := identityFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	other, _ := identityFromSeed(bytes.Repeat([]byte{2}, ed25519.SeedSize))
	v := RosterView{Room: "room", Member: "alice", MemberKey: id.PublicKey(), Seq: 3, Participants: []RosterEntry{
		{Name: "alice", Key: id.PublicKey(), KeySeq: 10}, {Name: "bob", Key: other.PublicKey(), KeySeq: 20},
	}}
	good, _ := SignRoster(id, v)
	body, _ := v.marshal()
	f.Add(good, body)
	f.Add(good[:len(good)-1], body[:len(body)-1])
	f.Add(rosterPrefix, append(bytes.Clone(body), 0))
	f.Add(rosterPrefix+base64.RawURLEncoding.EncodeToString(make([]byte, 200)), []byte{RosterVersion})
	v.Participants = v.Participants[:1]
	one, _ := v.marshal()
	f.Add("", one)
	f.Fuzz(func(t *testing.T, s string, body []byte) {
		check := func(s string) {
			v, err := ParseRoster(s)
			if err != nil {
				if !errors.Is(err, ErrBadRoster) {
					t.Fatalf("ParseRoster(%q): %v, not an ErrBadRoster", s, err)
				}
				return
			}
			again, err := v.marshal()
			if err != nil {
				t.Fatalf("a parsed view does not marshal: %v", err)
			}
			raw, _ := base64.RawURLEncoding.DecodeString(s[len(rosterPrefix):])
			sig := raw[len(raw)-ed25519.SignatureSize:]
			if encodeSigned(rosterPrefix, again, sig) != s {
				t.Fatalf("view %q parsed as %+v, which encodes otherwise", s, v)
			}
			if !verify(v.MemberKey, rosterLabel, again, sig) {
				t.Fatalf("accepted %q without a valid signature", s)
			}
			if bytes.Equal(v.MemberKey, id.PublicKey()) {
				if text, err := SignRoster(id, v); err != nil || text != s {
					t.Fatalf("SignRoster of what %q parsed to = %q, %v", s, text, err)
				}
			}
			if !SameParticipants(v, v) {
				t.Fatalf("view %q differs from itself", s)
			}
		}
		check(s)
		check(signedText(rosterPrefix, rosterLabel, id, body))
	})
}
