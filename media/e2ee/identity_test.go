package e2ee

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestIdentityPublicKey(t *testing.T) {
	a, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if got := len(a.PublicKey()); got != PublicKeySize {
		t.Fatalf("PublicKey is %d bytes, want %d", got, PublicKeySize)
	}
	if bytes.Equal(a.PublicKey(), b.PublicKey()) {
		t.Fatal("two identities share a public key")
	}
	// PublicKey returns a copy: changing it changes nothing.
	pk := a.PublicKey()
	pk[0] ^= 0xff
	if bytes.Equal(pk, a.PublicKey()) {
		t.Fatal("PublicKey returned the identity's own slice")
	}

	enc := a.EncodedPublicKey()
	if !strings.HasPrefix(enc, "x25519:") || len(enc) != 50 {
		t.Fatalf("EncodedPublicKey = %q, want x25519: and 43 base64url characters", enc)
	}
	if strings.ContainsAny(enc, "=+/") {
		t.Fatalf("EncodedPublicKey = %q is not unpadded base64url", enc)
	}
	got, err := ParsePublicKey(enc)
	if err != nil {
		t.Fatalf("ParsePublicKey(%q): %v", enc, err)
	}
	if !bytes.Equal(got, a.PublicKey()) {
		t.Fatal("ParsePublicKey(EncodedPublicKey()) is not the public key")
	}
}

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

func TestParsePublicKey(t *testing.T) {
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	good := id.EncodedPublicKey()
	b64 := strings.TrimPrefix(good, "x25519:")
	raw := id.PublicKey()
	enc := func(b []byte) string { return "x25519:" + base64.RawURLEncoding.EncodeToString(b) }

	// A last character whose unused low bits are not zero decodes to the
	// same key in a lenient decoder.
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", b64[len(b64)-1])
	noncanon := b64[:len(b64)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last^1])

	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"valid", good, true},
		{"empty", "", false},
		{"prefix only", "x25519:", false},
		{"no prefix", b64, false},
		{"upper-case prefix", "X25519:" + b64, false},
		{"other key type", "ed25519:" + b64, false},
		{"space after prefix", "x25519: " + b64, false},
		{"padded", good + "=", false},
		{"standard alphabet", "x25519:" + base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, 16)), false},
		{"newline inside", "x25519:" + b64[:10] + "\n" + b64[10:], false},
		{"trailing newline", good + "\n", false},
		{"non-canonical trailing bits", "x25519:" + noncanon, false},
		{"31 bytes", enc(raw[:31]), false},
		{"33 bytes", enc(append(bytes.Clone(raw), 9)), false},
		{"64 bytes", enc(append(bytes.Clone(raw), raw...)), false},
	}
	for name, p := range lowOrderPoints(t) {
		tests = append(tests, struct {
			name string
			in   string
			ok   bool
		}{"low order " + name, enc(p), false})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePublicKey(tt.in)
			if tt.ok {
				if err != nil {
					t.Fatalf("ParsePublicKey(%q): %v", tt.in, err)
				}
				if !bytes.Equal(got, raw) {
					t.Fatalf("ParsePublicKey(%q) = %x, want %x", tt.in, got, raw)
				}
				return
			}
			if !errors.Is(err, ErrBadPublicKey) {
				t.Fatalf("ParsePublicKey(%q) = %x, %v; want an ErrBadPublicKey", tt.in, got, err)
			}
			if got != nil {
				t.Fatalf("ParsePublicKey(%q) returned a key with its error", tt.in)
			}
		})
	}
}
