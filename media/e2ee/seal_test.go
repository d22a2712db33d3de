package e2ee

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// RFC 7748 section 6.1: Alice's and Bob's X25519 keys and their secret.
const (
	rfcAlicePriv = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
	rfcBobPriv   = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
	rfcShared    = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
)

func fixedIdentity(t *testing.T, privHex string) *Identity {
	t.Helper()
	b, err := hex.DecodeString(privHex)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return &Identity{priv: priv}
}

func newIdentity(t *testing.T) *Identity {
	t.Helper()
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestSealOpen(t *testing.T) {
	alice, bob := newIdentity(t), newIdentity(t)
	tests := []struct {
		name                   string
		room, sender, receiver string
		plaintext              []byte
	}{
		{"empty plaintext", "room", "alice", "bob", nil},
		{"one byte", "room", "alice", "bob", []byte{7}},
		{"key and metadata", "room", "alice", "bob", bytes.Repeat([]byte{0xa5}, 45)},
		{"large", "room", "alice", "bob", bytes.Repeat([]byte("k"), 70000)},
		{"empty names", "", "", "", []byte("key")},
		{"unicode names", "salle à manger", "zoë", "匿名", []byte("key")},
		{"longest names", strings.Repeat("r", 65535), strings.Repeat("s", 65535), strings.Repeat("t", 65535), []byte("key")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := Seal(alice, tt.sender, bob.PublicKey(), tt.receiver, tt.room, tt.plaintext)
			if err != nil {
				t.Fatal(err)
			}
			if len(sealed) != len(tt.plaintext)+SealOverhead {
				t.Fatalf("sealed is %d bytes, want %d", len(sealed), len(tt.plaintext)+SealOverhead)
			}
			if sealed[0] != SealVersion {
				t.Fatalf("version byte %#x", sealed[0])
			}
			got, err := Open(bob, tt.receiver, alice.PublicKey(), tt.sender, tt.room, sealed)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Fatal("Open did not return the plaintext")
			}
		})
	}
}

func TestSealIsRandomized(t *testing.T) {
	alice, bob := newIdentity(t), newIdentity(t)
	a, err := Seal(alice, "alice", bob.PublicKey(), "bob", "room", []byte("key"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Seal(alice, "alice", bob.PublicKey(), "bob", "room", []byte("key"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a[1:sealHeader], b[1:sealHeader]) || bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext share salt and nonce")
	}
}

// TestOpenRefuses checks that a sealed message opens only for the room,
// names and keys it was made for, and that nothing malformed panics.
func TestOpenRefuses(t *testing.T) {
	alice, bob, eve := newIdentity(t), newIdentity(t), newIdentity(t)
	plaintext := []byte("sender base key and metadata")
	sealed, err := Seal(alice, "alice", bob.PublicKey(), "bob", "room", plaintext)
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(sealed)) }

	type args struct {
		recipient                 *Identity
		recipientName, senderName string
		senderPub                 []byte
		room                      string
		sealed                    []byte
	}
	ok := args{bob, "bob", "alice", alice.PublicKey(), "room", sealed}
	tests := []struct {
		name   string
		change func(a *args)
	}{
		{"other room", func(a *args) { a.room = "room2" }},
		{"room differs in case", func(a *args) { a.room = "Room" }},
		{"other sender name", func(a *args) { a.senderName = "mallory" }},
		{"other recipient name", func(a *args) { a.recipientName = "carol" }},
		{"names moved between fields", func(a *args) { a.room, a.senderName = "roomalice", "" }},
		{"names swapped", func(a *args) { a.recipientName, a.senderName = "alice", "bob" }},
		{"other sender key", func(a *args) { a.senderPub = eve.PublicKey() }},
		{"other recipient", func(a *args) { a.recipient = eve }},
		{"reflected to the sender", func(a *args) {
			a.recipient, a.recipientName, a.senderPub, a.senderName = alice, "alice", bob.PublicKey(), "bob"
		}},
		{"empty", func(a *args) { a.sealed = nil }},
		{"version only", func(a *args) { a.sealed = []byte{SealVersion} }},
		{"one byte short of a tag", func(a *args) { a.sealed = sealed[:SealOverhead-1] }},
		{"tag only, no plaintext", func(a *args) { a.sealed = sealed[:SealOverhead] }},
		{"truncated by one", func(a *args) { a.sealed = sealed[:len(sealed)-1] }},
		{"one byte appended", func(a *args) { a.sealed = append(bytes.Clone(sealed), 0) }},
		{"version 0", func(a *args) { a.sealed = with(func(b []byte) []byte { b[0] = 0; return b }) }},
		{"version 2", func(a *args) { a.sealed = with(func(b []byte) []byte { b[0] = 2; return b }) }},
	}
	for i := range sealed {
		tests = append(tests, struct {
			name   string
			change func(a *args)
		}{fmt.Sprintf("bit flipped in byte %d", i), func(a *args) {
			a.sealed = with(func(b []byte) []byte { b[i] ^= 0x01 << (i % 8); return b })
		}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := ok
			tt.change(&a)
			got, err := Open(a.recipient, a.recipientName, a.senderPub, a.senderName, a.room, a.sealed)
			if !errors.Is(err, ErrSealOpen) {
				t.Fatalf("Open = %q, %v; want an ErrSealOpen", got, err)
			}
			if got != nil {
				t.Fatal("Open returned plaintext with its error")
			}
		})
	}
	// The unchanged arguments still open.
	if _, err := Open(ok.recipient, ok.recipientName, ok.senderPub, ok.senderName, ok.room, ok.sealed); err != nil {
		t.Fatal(err)
	}
}

func TestSealArguments(t *testing.T) {
	alice, bob := newIdentity(t), newIdentity(t)
	long := strings.Repeat("x", 65536)
	sealed, err := Seal(alice, "alice", bob.PublicKey(), "bob", "room", []byte("key"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                  string
		room, sender, recvr   string
		senderPub, recvrPub   []byte
		wantSeal, wantOpenErr error
	}{
		{"room too long", long, "alice", "bob", alice.PublicKey(), bob.PublicKey(), ErrNameTooLong, ErrNameTooLong},
		{"sender name too long", "room", long, "bob", alice.PublicKey(), bob.PublicKey(), ErrNameTooLong, ErrNameTooLong},
		{"recipient name too long", "room", "alice", long, alice.PublicKey(), bob.PublicKey(), ErrNameTooLong, ErrNameTooLong},
		{"short key", "room", "alice", "bob", alice.PublicKey()[:31], bob.PublicKey()[:31], ErrBadPublicKey, ErrBadPublicKey},
		{"no key", "room", "alice", "bob", nil, nil, ErrBadPublicKey, ErrBadPublicKey},
	}
	for name, p := range lowOrderPoints(t) {
		tests = append(tests, struct {
			name                  string
			room, sender, recvr   string
			senderPub, recvrPub   []byte
			wantSeal, wantOpenErr error
		}{"low order " + name, "room", "alice", "bob", p, p, ErrBadPublicKey, ErrBadPublicKey})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Seal(alice, tt.sender, tt.recvrPub, tt.recvr, tt.room, []byte("key")); !errors.Is(err, tt.wantSeal) {
				t.Errorf("Seal: %v, want %v", err, tt.wantSeal)
			}
			if _, err := Open(bob, tt.recvr, tt.senderPub, tt.sender, tt.room, sealed); !errors.Is(err, tt.wantOpenErr) {
				t.Errorf("Open: %v, want %v", err, tt.wantOpenErr)
			}
		})
	}
	if _, err := Seal(nil, "alice", bob.PublicKey(), "bob", "room", nil); err == nil {
		t.Error("Seal with a nil identity succeeded")
	}
	if _, err := Open(&Identity{}, "bob", alice.PublicKey(), "alice", "room", sealed); err == nil {
		t.Error("Open with a zero identity succeeded")
	}
}

// specOpen opens a sealed message following the construction as written
// in seal.go's comment, byte by byte, without this package's helpers.
func specOpen(t *testing.T, recipientPriv, senderPub []byte, senderNamee, recipientName, room string, sealed []byte) []byte {
	t.Helper()
	priv, err := ecdh.X25519().NewPrivateKey(recipientPriv)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ecdh.X25519().NewPublicKey(senderPub)
	if err != nil {
		t.Fatal(err)
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		t.Fatal(err)
	}
	lp := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	var info []byte
	info = append(info, "sotto e2ee v1 seal"...)
	info = append(info, lp(room)...)
	info = append(info, lp(senderNamee)...)
	info = append(info, senderPub...)
	info = append(info, lp(recipientName)...)
	info = append(info, priv.PublicKey().Bytes()...)
	if sealed[0] != 0x01 {
		t.Fatalf("version %#x", sealed[0])
	}
	salt, nonce, ct := sealed[1:33], sealed[33:45], sealed[45:]
	key, err := hkdf.Key(sha256.New, shared, salt, string(info), 32)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := gcm.Open(nil, nonce, ct, info)
	if err != nil {
		t.Fatalf("spec open: %v", err)
	}
	return pt
}

// TestSealKnownAnswer pins the construction with RFC 7748's keys, a fixed
// salt and nonce: a vector for other implementations (docs/E2EE.md).
func TestSealKnownAnswer(t *testing.T) {
	alice, bob := fixedIdentity(t, rfcAlicePriv), fixedIdentity(t, rfcBobPriv)
	shared, err := sharedSecret(alice, bob.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(shared) != rfcShared {
		t.Fatalf("shared secret %x, want RFC 7748's %s", shared, rfcShared)
	}
	var saltNonce [44]byte
	for i := range saltNonce {
		saltNonce[i] = byte(i) // salt 00..1f, nonce 20..2b
	}
	plaintext := []byte("sotto sender key")
	sealed, err := sealWith(saltNonce, alice, "alice", bob.PublicKey(), "bob", "room-1", plaintext)
	if err != nil {
		t.Fatal(err)
	}
	const want = "01" +
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" +
		"202122232425262728292a2b" +
		"df90c69c8bb6c2c6d7084839879da18bb9bb8f5ef3f1eea0bcf5671657c12794"
	if got := hex.EncodeToString(sealed); got != want {
		t.Errorf("sealed =\n%s\nwant\n%s", got, want)
	}
	bobPriv, _ := hex.DecodeString(rfcBobPriv)
	if got := specOpen(t, bobPriv, alice.PublicKey(), "alice", "bob", "room-1", sealed); !bytes.Equal(got, plaintext) {
		t.Fatal("spec open: wrong plaintext")
	}
	got, err := Open(bob, "bob", alice.PublicKey(), "alice", "room-1", sealed)
	if err != nil || !bytes.Equal(got, plaintext) {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

// TestSealMatchesSpec opens random seals with specOpen.
func TestSealMatchesSpec(t *testing.T) {
	alice := newIdentity(t)
	bobPriv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, names := range [][3]string{{"r", "a", "b"}, {"", "", ""}, {"room with spaces", "ü", strings.Repeat("z", 300)}} {
		pt := []byte("key for " + names[2])
		sealed, err := Seal(alice, names[1], bobPriv.PublicKey().Bytes(), names[2], names[0], pt)
		if err != nil {
			t.Fatal(err)
		}
		if got := specOpen(t, bobPriv.Bytes(), alice.PublicKey(), names[1], names[2], names[0], sealed); !bytes.Equal(got, pt) {
			t.Fatalf("%q: spec open: wrong plaintext", names)
		}
	}
}
