package e2ee

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sotto-rtc/sotto/media/sframe"
)

// boxFixture is a sender, a recipient session and a body between them.
type boxFixture struct {
	sender, recipient *Identity
	senderSK, recipSK *SessionKey
	body              KeyBody
}

func newBoxFixture(t *testing.T) *boxFixture {
	t.Helper()
	f := &boxFixture{sender: newIdentity(t), recipient: newIdentity(t), senderSK: newSessionKey(t), recipSK: newSessionKey(t)}
	f.body = KeyBody{
		Suite: DefaultSuite, KID: 0xabcdef01, Seq: 1_700_000_000_000_000, Room: "room ✓",
		Sender: "alice", SenderKey: f.sender.PublicKey(), SenderSession: f.senderSK.ID(),
		Recipient: "bob", RecipientKey: f.recipient.PublicKey(), RecipientSession: f.recipSK.ID(),
		BaseKey: bytes.Repeat([]byte{7}, baseKeySize(DefaultSuite)),
	}
	return f
}

func (f *boxFixture) seal(t *testing.T) []byte {
	t.Helper()
	box, err := SealKeyBox(f.sender, f.recipSK.PublicKey(), &f.body)
	if err != nil {
		t.Fatal(err)
	}
	return box
}

func TestKeyBoxRoundTrip(t *testing.T) {
	f := newBoxFixture(t)
	box := f.seal(t)
	if box[0] != BoxVersion {
		t.Fatalf("box starts with %#02x", box[0])
	}
	got, err := OpenKeyBox(f.recipSK, f.sender.PublicKey(), box)
	if err != nil {
		t.Fatal(err)
	}
	want := f.body
	if got.Suite != want.Suite || got.KID != want.KID || got.Seq != want.Seq || got.Room != want.Room ||
		got.Sender != want.Sender || !bytes.Equal(got.SenderKey, want.SenderKey) || got.SenderSession != want.SenderSession ||
		got.Recipient != want.Recipient || !bytes.Equal(got.RecipientKey, want.RecipientKey) || got.RecipientSession != want.RecipientSession ||
		!bytes.Equal(got.BaseKey, want.BaseKey) {
		t.Fatalf("opened %+v, sealed %+v", got, want)
	}
	if again := f.seal(t); bytes.Equal(again[:1+hpkeEncLen], box[:1+hpkeEncLen]) {
		t.Fatal("two boxes share an HPKE encapsulation: the ephemeral key is not fresh")
	}
}

// TestKeyBoxRefused: every change to a box, and every other key on either
// side, fails to open (ErrSealOpen) and returns no body.
func TestKeyBoxRefused(t *testing.T) {
	f := newBoxFixture(t)
	box := f.seal(t)
	cases := map[string]struct {
		sk     *SessionKey
		sender []byte
		box    []byte
	}{
		"empty":                     {f.recipSK, f.sender.PublicKey(), nil},
		"version 1":                 {f.recipSK, f.sender.PublicKey(), append([]byte{1}, box[1:]...)},
		"cut short":                 {f.recipSK, f.sender.PublicKey(), box[:len(box)-1]},
		"one byte more":             {f.recipSK, f.sender.PublicKey(), append(bytes.Clone(box), 0)},
		"other recipient session":   {newSessionKey(t), f.sender.PublicKey(), box},
		"checked against mallory":   {f.recipSK, newIdentity(t).PublicKey(), box},
		"checked against no key":    {f.recipSK, nil, box},
		"sender key is small order": {f.recipSK, smallOrderEd25519(t)["a"], box},
	}
	for i := range box {
		b := bytes.Clone(box)
		b[i] ^= 0x80
		cases[fmt.Sprintf("bit flipped in byte %d", i)] = struct {
			sk     *SessionKey
			sender []byte
			box    []byte
		}{f.recipSK, f.sender.PublicKey(), b}
	}
	for name, c := range cases {
		got, err := OpenKeyBox(c.sk, c.sender, c.box)
		if !errors.Is(err, ErrSealOpen) || got != nil {
			t.Errorf("%s: OpenKeyBox = %+v, %v; want ErrSealOpen", name, got, err)
		}
	}
}

// TestKeyBoxSignedBodyOnly: a body signed correctly but not parsing
// exactly (a byte left over, a field cut short) is refused, as is a box
// whose plaintext is the body without a signature, and a body signed
// under another label (an announcement's).
func TestKeyBoxSignedBodyOnly(t *testing.T) {
	f := newBoxFixture(t)
	body, err := f.body.marshal()
	if err != nil {
		t.Fatal(err)
	}
	sealRaw := func(pt []byte) []byte {
		pub, err := hpke.DHKEM(hpkeCurve).NewPublicKey(f.recipSK.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		enc, s, err := hpke.NewSender(pub, hpkeKDF(), hpkeAEAD(), []byte(keyLabel))
		if err != nil {
			t.Fatal(err)
		}
		ct, err := s.Seal(nil, pt)
		if err != nil {
			t.Fatal(err)
		}
		return append(append([]byte{BoxVersion}, enc...), ct...)
	}
	signed := func(b []byte, label string) []byte { return append(bytes.Clone(b), f.sender.sign(label, b)...) }
	if _, err := OpenKeyBox(f.recipSK, f.sender.PublicKey(), sealRaw(signed(body, keyLabel))); err != nil {
		t.Fatalf("the hand-made box of a good body did not open: %v", err)
	}
	for name, pt := range map[string][]byte{
		"trailing byte":      signed(append(bytes.Clone(body), 0), keyLabel),
		"base key cut short": signed(body[:len(body)-1], keyLabel),
		"no signature":       body,
		"announcement label": signed(body, announceLabel),
		"version 1 body":     signed(append([]byte{1}, body[1:]...), keyLabel),
		"signature only":     f.sender.sign(keyLabel, body),
	} {
		if got, err := OpenKeyBox(f.recipSK, f.sender.PublicKey(), sealRaw(pt)); !errors.Is(err, ErrSealOpen) {
			t.Errorf("%s: OpenKeyBox = %+v, %v; want ErrSealOpen", name, got, err)
		}
	}
}

func TestSealKeyBoxArguments(t *testing.T) {
	f := newBoxFixture(t)
	long := strings.Repeat("x", 65536)
	for name, edit := range map[string]func(b *KeyBody){
		"long room":      func(b *KeyBody) { b.Room = long },
		"long sender":    func(b *KeyBody) { b.Sender = long },
		"long recipient": func(b *KeyBody) { b.Recipient = long },
	} {
		b := f.body
		edit(&b)
		if _, err := SealKeyBox(f.sender, f.recipSK.PublicKey(), &b); !errors.Is(err, ErrNameTooLong) {
			t.Errorf("%s: %v, want ErrNameTooLong", name, err)
		}
	}
	b := f.body
	b.SenderKey = newIdentity(t).PublicKey()
	if _, err := SealKeyBox(f.sender, f.recipSK.PublicKey(), &b); err == nil {
		t.Error("SealKeyBox signed a body naming another sender key")
	}
	for name, p := range lowOrderPoints(t) {
		if _, err := SealKeyBox(f.sender, p, &f.body); !errors.Is(err, ErrBadPublicKey) {
			t.Errorf("sealed to low-order point %s: %v", name, err)
		}
	}
	b = f.body
	b.Room = strings.Repeat("x", 65535)
	if _, err := SealKeyBox(f.sender, f.recipSK.PublicKey(), &b); err != nil {
		t.Errorf("a 65535-byte room: %v", err)
	}
}

// TestKeyBoxMatchesSpec opens a box with HPKE directly and compares its
// plaintext with the body written out by hand from docs/E2EE.md.
func TestKeyBoxMatchesSpec(t *testing.T) {
	f := newBoxFixture(t)
	f.body.Suite = sframe.AES256GCMSHA512_128
	box := f.seal(t)
	priv, err := hpke.NewDHKEMPrivateKey(f.recipSK.priv)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte("sotto e2ee v2 key"), box[1:])
	if err != nil {
		t.Fatalf("the box is not HPKE base mode X25519/HKDF-SHA256/AES-256-GCM with info %q: %v", "sotto e2ee v2 key", err)
	}
	b := f.body
	var want []byte
	u16 := func(n int) { want = binary.BigEndian.AppendUint16(want, uint16(n)) }
	want = append(want, 0x02)
	want = binary.BigEndian.AppendUint16(want, 0x0005)
	want = binary.BigEndian.AppendUint64(want, b.KID)
	want = binary.BigEndian.AppendUint64(want, b.Seq)
	u16(len(b.Room))
	want = append(want, b.Room...)
	u16(len(b.Sender))
	want = append(want, b.Sender...)
	want = append(want, b.SenderKey...)
	want = append(want, b.SenderSession[:]...)
	u16(len(b.Recipient))
	want = append(want, b.Recipient...)
	want = append(want, b.RecipientKey...)
	want = append(want, b.RecipientSession[:]...)
	u16(len(b.BaseKey))
	want = append(want, b.BaseKey...)
	if len(pt) != len(want)+ed25519.SignatureSize || !bytes.Equal(pt[:len(want)], want) {
		t.Fatalf("plaintext\n%x\nwant body\n%x\nand a 64-byte signature", pt, want)
	}
	if !ed25519.Verify(f.sender.PublicKey(), append([]byte("sotto e2ee v2 key"), want...), pt[len(want):]) {
		t.Fatal("the signature is not Ed25519 over \"sotto e2ee v2 key\" || body")
	}
}
