package e2ee

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// PublicKeySize is the length in bytes of an identity public key.
const PublicKeySize = 32

// publicKeyPrefix starts the text form of an identity public key, so that a
// later key type can be told apart from this one.
const publicKeyPrefix = "x25519:"

// ErrBadPublicKey is returned, wrapped, for an identity public key that
// cannot be used: a text form without the "x25519:" prefix or with bad
// base64, a length other than PublicKeySize, or a low-order point (all
// zero among them) that would make every shared secret the same.
var ErrBadPublicKey = errors.New("e2ee: bad identity public key")

// Identity is one participant's identity key pair for one session: an
// X25519 private key made fresh for the call and thrown away after it. Its
// public key travels in the join message's public_key field; the private
// key never leaves the process.
type Identity struct {
	priv *ecdh.PrivateKey
}

// NewIdentity makes a fresh X25519 identity from crypto/rand.
func NewIdentity() (*Identity, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("e2ee: generate identity key: %w", err)
	}
	return &Identity{priv: priv}, nil
}

// PublicKey returns a copy of the identity's PublicKeySize-byte X25519
// public key.
func (id *Identity) PublicKey() []byte {
	return id.priv.PublicKey().Bytes()
}

// EncodedPublicKey returns the text form carried in the join message's
// public_key field: "x25519:" followed by the 32 key bytes in unpadded
// base64url (RFC 4648 section 5), 50 characters in all.
func (id *Identity) EncodedPublicKey() string {
	return publicKeyPrefix + base64.RawURLEncoding.EncodeToString(id.PublicKey())
}

// ParsePublicKey is the inverse of EncodedPublicKey. It returns the
// PublicKeySize key bytes, or an error wrapping ErrBadPublicKey for a wrong
// prefix, base64 that is not canonical unpadded base64url, a wrong length,
// or a low-order point.
func ParsePublicKey(s string) ([]byte, error) {
	enc, ok := strings.CutPrefix(s, publicKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: missing %q prefix", ErrBadPublicKey, publicKeyPrefix)
	}
	key, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPublicKey, err)
	}
	// The decoder skips newlines and tolerates non-zero trailing bits; only
	// the canonical form is accepted, so each key has exactly one text form.
	if base64.RawURLEncoding.EncodeToString(key) != enc {
		return nil, fmt.Errorf("%w: not canonical unpadded base64url", ErrBadPublicKey)
	}
	if err := checkPublicKey(key); err != nil {
		return nil, err
	}
	return key, nil
}

// checkPublicKey refuses keys of the wrong length and low-order points.
//
// A low-order point (of the curve or its twist, in any of its encodings)
// sends every clamped scalar to the identity, so X25519 with it yields all
// zeros: the "shared" secret is public. crypto/ecdh refuses that result in
// ECDH, so the check is an ECDH with a throwaway key rather than a list of
// bad encodings kept by hand. The scalar does not matter: clamped scalars
// are multiples of the cofactor 8 and smaller than 8 times the prime group
// order, so the result is zero exactly for the low-order points.
func checkPublicKey(key []byte) error {
	if len(key) != PublicKeySize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrBadPublicKey, len(key), PublicKeySize)
	}
	pub, err := ecdh.X25519().NewPublicKey(key)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadPublicKey, err)
	}
	probe, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("e2ee: generate probe key: %w", err)
	}
	if _, err := probe.ECDH(pub); err != nil {
		return fmt.Errorf("%w: low-order point", ErrBadPublicKey)
	}
	return nil
}
