package e2ee

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// lowOrderPoints are the X25519 u-coordinates of small order (libsodium's
// blocklist): 0, 1, the two of order 8, p-1, p and p+1.
func lowOrderPoints(t *testing.T) map[string][]byte {
	t.Helper()
	h := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ff := strings.Repeat("ff", 30)
	pts := map[string][]byte{
		"zero":    make([]byte, 32),
		"one":     h("01" + strings.Repeat("00", 31)),
		"order8a": h("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
		"order8b": h("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
		"p-1":     h("ec" + ff + "7f"),
		"p":       h("ed" + ff + "7f"),
		"p+1":     h("ee" + ff + "7f"),
	}
	// X25519 ignores the top bit (RFC 7748 section 5), so each has a
	// second encoding.
	for name, p := range pts {
		q := bytes.Clone(p)
		q[31] |= 0x80
		pts[name+"+topbit"] = q
	}
	return pts
}

// smallOrderEd25519 are the encodings of the eight points of small order
// on edwards25519 (the torsion subgroup), as listed in "Taming the many
// EdDSAs" (Chalkias et al., 2020): signatures under them forge easily.
func smallOrderEd25519(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for i, s := range []string{
		"0100000000000000000000000000000000000000000000000000000000000000",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"0000000000000000000000000000000000000000000000000000000000000080",
		"0000000000000000000000000000000000000000000000000000000000000000",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
	} {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		out[string(rune('a'+i))] = b
	}
	return out
}

func newIdentity(t *testing.T) *Identity {
	t.Helper()
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newSessionKey(t *testing.T) *SessionKey {
	t.Helper()
	k, err := NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signedAnnouncement is the text of an announcement of the raw fields,
// signed by id (whatever its own key is).
func signedAnnouncement(id *Identity, identityKey, hpkeKey []byte, sid [SessionIDSize]byte) string {
	a := append(append(append([]byte{}, identityKey...), hpkeKey...), sid[:]...)
	a = append(a, id.sign(announceLabel, a)...)
	return announcePrefix + base64.RawURLEncoding.EncodeToString(a)
}

func TestAnnounceRoundTrip(t *testing.T) {
	id, sk := newIdentity(t), newSessionKey(t)
	text := Announce(id, sk)
	if !strings.HasPrefix(text, "sotto-e2ee-v2:") || len(text) != 206 {
		t.Fatalf("Announce = %q (%d characters), want sotto-e2ee-v2: and 206 characters", text, len(text))
	}
	a, err := ParseAnnouncement(text)
	if err != nil {
		t.Fatal(err)
	}
	sid := sk.ID()
	if !bytes.Equal(a.Identity, id.PublicKey()) || !bytes.Equal(a.HPKE, sk.PublicKey()) || a.SessionID != sid {
		t.Fatalf("ParseAnnouncement gave %x/%x/%x, want %x/%x/%x", a.Identity, a.HPKE, a.SessionID, id.PublicKey(), sk.PublicKey(), sid)
	}
	if other := newSessionKey(t); other.ID() == sid || bytes.Equal(other.PublicKey(), sk.PublicKey()) {
		t.Fatal("two session keys share a key or an id")
	}
}

func TestParseAnnouncementRefuses(t *testing.T) {
	id, sk := newIdentity(t), newSessionKey(t)
	good := Announce(id, sk)
	b64 := strings.TrimPrefix(good, announcePrefix)
	raw, _ := base64.RawURLEncoding.DecodeString(b64)
	enc := func(b []byte) string { return announcePrefix + base64.RawURLEncoding.EncodeToString(b) }
	flip := func(i int) string { b := bytes.Clone(raw); b[i] ^= 1; return enc(b) }
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, b64[len(b64)-1])
	noncanon := b64[:len(b64)-1] + string(alphabet[last^1])
	mallory := newIdentity(t)

	tests := map[string]string{
		"empty":                       "",
		"prefix only":                 announcePrefix,
		"no prefix":                   b64,
		"old x25519 form":             "x25519:" + base64.RawURLEncoding.EncodeToString(sk.PublicKey()),
		"padded":                      good + "=",
		"newline inside":              announcePrefix + b64[:10] + "\n" + b64[10:],
		"non-canonical trailing bits": announcePrefix + noncanon,
		"one byte short":              enc(raw[:len(raw)-1]),
		"one byte long":               enc(append(bytes.Clone(raw), 0)),
		"identity key changed":        flip(0),
		"session key changed":         flip(PublicKeySize),
		"session id changed":          flip(2 * PublicKeySize),
		"signature changed":           flip(len(raw) - 1),
		"signed by another identity":  signedAnnouncement(mallory, id.PublicKey(), sk.PublicKey(), sk.ID()),
	}
	for name, p := range lowOrderPoints(t) {
		tests["low-order session key "+name] = signedAnnouncement(id, id.PublicKey(), p, sk.ID())
	}
	for name, p := range smallOrderEd25519(t) {
		tests["small-order identity key "+name] = signedAnnouncement(id, p, sk.PublicKey(), sk.ID())
	}
	// y = 2 is not the y of any point (notAPoint): refused for that, not
	// only for its signature.
	tests["identity key not a point"] = signedAnnouncement(id, notAPoint(), sk.PublicKey(), sk.ID())
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if a, err := ParseAnnouncement(in); !errors.Is(err, ErrBadPublicKey) {
				t.Fatalf("ParseAnnouncement(%q) = %+v, %v; want an ErrBadPublicKey", in, a, err)
			}
		})
	}
	if _, err := ParseAnnouncement(tests["identity key not a point"]); err == nil || !strings.Contains(err.Error(), "not a curve point") {
		t.Fatalf("an identity key that is no point: %v, want \"not a curve point\"", err)
	}
}

func TestIdentityFromSeed(t *testing.T) {
	id := newIdentity(t)
	again, err := identityFromSeed(id.priv.Seed())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.PublicKey(), id.PublicKey()) {
		t.Fatal("an identity rebuilt from its seed has another public key")
	}
	if _, err := identityFromSeed(make([]byte, ed25519.SeedSize-1)); err == nil {
		t.Fatal("a short seed was taken")
	}
}
