package e2ee

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"testing"
)

func testMembers(n int) []Member {
	ms := make([]Member, n)
	for i := range ms {
		key := make([]byte, PublicKeySize)
		for j := range key {
			key[j] = byte(i*31 + j)
		}
		ms[i] = Member{Identity: fmt.Sprintf("user-%d", i), PublicKey: key}
	}
	return ms
}

var safetyFormat = regexp.MustCompile(`^[0-9]{5}( [0-9]{5}){5}$`)

func TestSafetyNumberFormat(t *testing.T) {
	for n := range 5 {
		got := SafetyNumber("room", testMembers(n))
		if !safetyFormat.MatchString(got) {
			t.Fatalf("%d members: %q is not six groups of five digits", n, got)
		}
	}
}

// TestSafetyNumberKnownAnswer pins the construction: a change of format
// or of any step shows here (and docs/E2EE.md must follow).
func TestSafetyNumberKnownAnswer(t *testing.T) {
	members := []Member{
		{Identity: "bob", PublicKey: bytes.Repeat([]byte{0x02}, 32)},
		{Identity: "alice", PublicKey: bytes.Repeat([]byte{0x01}, 32)},
	}
	const want = "41186 14989 78810 85771 02788 82751"
	if got := SafetyNumber("room-1", members); got != want {
		t.Errorf("SafetyNumber = %q, want %q", got, want)
	}
	if got := specSafetyNumber("room-1", members); got != want {
		t.Errorf("spec safety number = %q, want %q", got, want)
	}
}

// specSafetyNumber follows the construction as written in safety.go's
// comment, without this package's helpers.
func specSafetyNumber(room string, members []Member) string {
	return specDigits("sotto safety number v2", &room, members)
}

// specVerificationCode follows docs/E2EE.md's "Verification codes".
func specVerificationCode(a, b Member) string {
	return specDigits("sotto verification code v1", nil, []Member{b, a})
}

func specDigits(label string, room *string, members []Member) string {
	ms := slices.Clone(members)
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].Identity != ms[j].Identity {
			return ms[i].Identity < ms[j].Identity
		}
		return bytes.Compare(ms[i].PublicKey, ms[j].PublicKey) < 0
	})
	var enc bytes.Buffer
	enc.WriteString(label)
	put := func(b []byte) {
		_ = binary.Write(&enc, binary.BigEndian, uint64(len(b)))
		enc.Write(b)
	}
	if room != nil {
		put([]byte(*room))
	}
	for _, m := range ms {
		put([]byte(m.Identity))
		put(m.PublicKey)
	}
	d := sha256.Sum256(enc.Bytes())
	h := d
	for range 5200 {
		h = sha256.Sum256(append(h[:], d[:]...))
	}
	s := ""
	for i := range 6 {
		var v uint64
		for _, b := range h[5*i : 5*i+5] {
			v = v<<8 | uint64(b)
		}
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%05d", v%100000)
	}
	return s
}

func TestSafetyNumberOrderIndependent(t *testing.T) {
	members := testMembers(6)
	// Two members with the same identity (two devices) sort by key.
	members = append(members, Member{Identity: "user-2", PublicKey: bytes.Repeat([]byte{0xee}, 32)})
	want := SafetyNumber("room", members)
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		shuffled := slices.Clone(members)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		before := slices.Clone(shuffled)
		if got := SafetyNumber("room", shuffled); got != want {
			t.Fatalf("order %v: %q, want %q", shuffled, got, want)
		}
		if !slices.EqualFunc(before, shuffled, func(a, b Member) bool { return a.Identity == b.Identity && bytes.Equal(a.PublicKey, b.PublicKey) }) {
			t.Fatal("SafetyNumber reordered the caller's slice")
		}
	}
}

func TestSafetyNumberChanges(t *testing.T) {
	base := testMembers(3)
	want := SafetyNumber("room", base)
	edit := func(f func(ms []Member) []Member) []Member {
		ms := slices.Clone(base)
		for i := range ms {
			ms[i].PublicKey = bytes.Clone(ms[i].PublicKey)
		}
		return f(ms)
	}
	tests := []struct {
		name    string
		room    string
		members []Member
	}{
		{"other room", "room2", base},
		{"no members", "room", nil},
		{"member added", "room", edit(func(ms []Member) []Member { return append(ms, testMembers(4)[3]) })},
		{"member removed", "room", edit(func(ms []Member) []Member { return ms[1:] })},
		{"member listed twice", "room", edit(func(ms []Member) []Member { return append(ms, ms[0]) })},
		{"one key bit changed", "room", edit(func(ms []Member) []Member { ms[1].PublicKey[31] ^= 1; return ms })},
		{"one key replaced", "room", edit(func(ms []Member) []Member { ms[0].PublicKey = bytes.Repeat([]byte{9}, 32); return ms })},
		{"keys swapped between members", "room", edit(func(ms []Member) []Member {
			ms[0].PublicKey, ms[1].PublicKey = ms[1].PublicKey, ms[0].PublicKey
			return ms
		})},
		{"member renamed", "room", edit(func(ms []Member) []Member { ms[2].Identity = "user-9"; return ms })},
		{"name byte moved into key", "room", edit(func(ms []Member) []Member {
			ms[0].PublicKey = append([]byte("0"), ms[0].PublicKey...)
			ms[0].Identity = "user-"
			return ms
		})},
		{"room byte moved into name", "roo", edit(func(ms []Member) []Member { ms[0].Identity = "m" + ms[0].Identity; return ms })},
	}
	seen := map[string]string{want: "base"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SafetyNumber(tt.room, tt.members)
			if prev, dup := seen[got]; dup {
				t.Fatalf("%q gives %q, as %s does", tt.name, got, prev)
			}
			seen[got] = tt.name
		})
	}
}

func BenchmarkSafetyNumber(b *testing.B) {
	members := testMembers(10)
	for b.Loop() {
		SafetyNumber("room", members)
	}
}

// TestVerificationCode: the pairwise code follows the spec, is the same
// from either side, and changes with either key or name but not with a
// room (it has none).
func TestVerificationCode(t *testing.T) {
	a := Member{Identity: "alice", PublicKey: bytes.Repeat([]byte{0x01}, 32)}
	b := Member{Identity: "bob", PublicKey: bytes.Repeat([]byte{0x02}, 32)}
	const want = "22736 86991 46347 90804 87091 19795"
	if got := VerificationCode(a, b); got != want || VerificationCode(b, a) != want {
		t.Fatalf("VerificationCode = %q / %q, want %q", got, VerificationCode(b, a), want)
	}
	if got := specVerificationCode(a, b); got != want {
		t.Fatalf("spec verification code = %q, want %q", got, want)
	}
	if VerificationCode(a, b) == SafetyNumber("", []Member{a, b}) {
		t.Fatal("a verification code equals the safety number of a room named \"\"")
	}
	c := b
	c.PublicKey = bytes.Repeat([]byte{0x03}, 32)
	if VerificationCode(a, c) == want {
		t.Fatal("bob's new key left the code unchanged")
	}
	c = b
	c.Identity = "bobby"
	if VerificationCode(a, c) == want {
		t.Fatal("another name left the code unchanged")
	}
}
