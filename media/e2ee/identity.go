package e2ee

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"filippo.io/edwards25519"
)

// PublicKeySize is the size of an identity (Ed25519) or session (X25519) public key.
const PublicKeySize = 32

// SessionIDSize is the length in bytes of a session id.
const SessionIDSize = 16

const announcePrefix = "sotto-e2ee-v2:"

// announceLabel starts what an announcement's signature covers.
const announceLabel = "sotto e2ee v2 announce"

const announceSize = 2*PublicKeySize + SessionIDSize

// ErrBadPublicKey is returned, wrapped, for an announcement (a join's
// public_key) or key that cannot be used.
var ErrBadPublicKey = errors.New("e2ee: bad public key")

// Identity is a participant's Ed25519 identity key pair: it signs what the
// participant says about keys, and safety numbers cover its public key.
type Identity struct {
	priv ed25519.PrivateKey
}

// NewIdentity makes a fresh identity from crypto/rand.
func NewIdentity() (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("e2ee: generate identity key: %w", err)
	}
	return &Identity{priv: priv}, nil
}

// identityFromSeed rebuilds an identity from its RFC 8032 seed.
func identityFromSeed(seed []byte) (*Identity, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("e2ee: identity seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return &Identity{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// PublicKey returns a copy of the identity's 32-byte Ed25519 public key.
func (id *Identity) PublicKey() []byte {
	return append([]byte(nil), id.priv.Public().(ed25519.PublicKey)...)
}

func (id *Identity) sign(label string, msg []byte) []byte {
	return ed25519.Sign(id.priv, append([]byte(label), msg...))
}

// verify checks an Ed25519 signature over label || msg by pub.
func verify(pub []byte, label string, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(pub, append([]byte(label), msg...), sig)
}

// SessionKey is one call session's X25519 key pair (keys are sealed to it)
// and random id, both fresh per session so a key message opens in it only.
type SessionKey struct {
	priv *ecdh.PrivateKey
	id   [SessionIDSize]byte
}

// NewSessionKey makes a fresh session key and id from crypto/rand.
func NewSessionKey() (*SessionKey, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("e2ee: generate session key: %w", err)
	}
	k := &SessionKey{priv: priv}
	if _, err := rand.Read(k.id[:]); err != nil {
		return nil, fmt.Errorf("e2ee: session id: %w", err)
	}
	return k, nil
}

// PublicKey returns a copy of the session's 32-byte X25519 public key.
func (k *SessionKey) PublicKey() []byte { return k.priv.PublicKey().Bytes() }

// ID returns the session id.
func (k *SessionKey) ID() [SessionIDSize]byte { return k.id }

// Announcement is a join's checked, signed statement of its keys.
type Announcement struct {
	Identity  []byte // Ed25519, PublicKeySize bytes
	HPKE      []byte // X25519, PublicKeySize bytes
	SessionID [SessionIDSize]byte
}

// Announce returns what a join's public_key carries (docs/E2EE.md, "Announcement").
func Announce(id *Identity, k *SessionKey) string {
	a := make([]byte, 0, announceSize+ed25519.SignatureSize)
	a = append(a, id.PublicKey()...)
	a = append(a, k.PublicKey()...)
	a = append(a, k.id[:]...)
	a = append(a, id.sign(announceLabel, a)...)
	return announcePrefix + base64.RawURLEncoding.EncodeToString(a)
}

// ParseAnnouncement is the inverse of Announce; it refuses non-canonical
// text, a bad signature and unusable keys, with errors wrapping ErrBadPublicKey.
func ParseAnnouncement(s string) (Announcement, error) {
	enc, ok := strings.CutPrefix(s, announcePrefix)
	if !ok {
		return Announcement{}, fmt.Errorf("%w: missing %q prefix", ErrBadPublicKey, announcePrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return Announcement{}, fmt.Errorf("%w: %w", ErrBadPublicKey, err)
	}
	// Canonical form only, so each announcement has one text form.
	if base64.RawURLEncoding.EncodeToString(raw) != enc {
		return Announcement{}, fmt.Errorf("%w: not canonical unpadded base64url", ErrBadPublicKey)
	}
	if len(raw) != announceSize+ed25519.SignatureSize {
		return Announcement{}, fmt.Errorf("%w: %d bytes, want %d", ErrBadPublicKey, len(raw), announceSize+ed25519.SignatureSize)
	}
	a := Announcement{Identity: raw[:PublicKeySize:PublicKeySize], HPKE: raw[PublicKeySize : 2*PublicKeySize : 2*PublicKeySize]}
	copy(a.SessionID[:], raw[2*PublicKeySize:announceSize])
	if err := checkIdentityKey(a.Identity); err != nil {
		return Announcement{}, err
	}
	if err := checkHPKEKey(a.HPKE); err != nil {
		return Announcement{}, err
	}
	if !verify(a.Identity, announceLabel, raw[:announceSize], raw[announceSize:]) {
		return Announcement{}, fmt.Errorf("%w: announcement signature does not verify", ErrBadPublicKey)
	}
	return a, nil
}

// checkIdentityKey refuses a key that is not a curve point or is of small
// order: signatures by such a key can be made without its private key.
func checkIdentityKey(key []byte) error {
	if len(key) != PublicKeySize {
		return fmt.Errorf("%w: identity key is %d bytes, want %d", ErrBadPublicKey, len(key), PublicKeySize)
	}
	p, err := new(edwards25519.Point).SetBytes(key)
	if err != nil {
		return fmt.Errorf("%w: identity key is not a curve point", ErrBadPublicKey)
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return fmt.Errorf("%w: identity key is a small-order point", ErrBadPublicKey)
	}
	return nil
}

// checkHPKEKey refuses X25519 keys of the wrong length and low-order points
// (a public shared secret), by an ECDH with a throwaway key
// (docs/E2EE.md, "Announcement").
func checkHPKEKey(key []byte) error {
	if len(key) != PublicKeySize {
		return fmt.Errorf("%w: session key is %d bytes, want %d", ErrBadPublicKey, len(key), PublicKeySize)
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
		return fmt.Errorf("%w: session key is a low-order point", ErrBadPublicKey)
	}
	return nil
}
