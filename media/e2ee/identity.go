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

// PublicKeySize is the length in bytes of an identity public key (Ed25519)
// and of a session's HPKE public key (X25519).
const PublicKeySize = 32

// SessionIDSize is the length in bytes of a session id.
const SessionIDSize = 16

// announcePrefix starts the text form of an announcement, so that a later
// format can be told apart from this one.
const announcePrefix = "sotto-e2ee-v2:"

// announceLabel starts what an announcement's signature covers.
const announceLabel = "sotto e2ee v2 announce"

const announceSize = 2*PublicKeySize + SessionIDSize

// ErrBadPublicKey is returned, wrapped, for an announcement (a join's
// public_key) that cannot be used: without the "sotto-e2ee-v2:" prefix,
// not canonical base64url, the wrong length, a signature that does not
// verify, or a key that is a small-order point.
var ErrBadPublicKey = errors.New("e2ee: bad public key")

// Identity is a participant's Ed25519 identity key pair. It signs the
// participant's announcements and key messages; its public key is what
// safety numbers and verification codes are computed over. It lives as long
// as its IdentityStore keeps it (MemoryStore: the process).
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

// identityFromSeed rebuilds an identity from its 32-byte seed (RFC 8032's
// private key), as an IdentityStore keeps it.
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

// SessionKey is one call session's X25519 key pair, on which the others
// seal keys to this participant (HPKE), and its random session id. Both are
// made fresh for the session and thrown away with it, so a key message
// opens in that session only.
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

// Announcement is what a participant's join says about its keys: its
// identity key, its session's HPKE key and its session id, checked to be
// signed by the identity key.
type Announcement struct {
	Identity  []byte // Ed25519, PublicKeySize bytes
	HPKE      []byte // X25519, PublicKeySize bytes
	SessionID [SessionIDSize]byte
}

// Announce returns the text a join's public_key field carries:
// "sotto-e2ee-v2:" then, in unpadded base64url, the identity key, the
// session's HPKE key and session id, and the identity's Ed25519 signature
// over "sotto e2ee v2 announce" and those 80 bytes (206 characters).
func Announce(id *Identity, k *SessionKey) string {
	a := make([]byte, 0, announceSize+ed25519.SignatureSize)
	a = append(a, id.PublicKey()...)
	a = append(a, k.PublicKey()...)
	a = append(a, k.id[:]...)
	a = append(a, id.sign(announceLabel, a)...)
	return announcePrefix + base64.RawURLEncoding.EncodeToString(a)
}

// ParseAnnouncement is the inverse of Announce. Errors wrap ErrBadPublicKey:
// a wrong prefix, base64 that is not canonical unpadded base64url, a wrong
// length, a signature that does not verify, an identity key that is not a
// point or of small order, or a low-order HPKE key.
func ParseAnnouncement(s string) (Announcement, error) {
	enc, ok := strings.CutPrefix(s, announcePrefix)
	if !ok {
		return Announcement{}, fmt.Errorf("%w: missing %q prefix", ErrBadPublicKey, announcePrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return Announcement{}, fmt.Errorf("%w: %w", ErrBadPublicKey, err)
	}
	// The decoder skips newlines and tolerates non-zero trailing bits; only
	// the canonical form is accepted, so each announcement has one text form.
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

// checkIdentityKey refuses an Ed25519 public key that does not decode to a
// curve point (edwards25519's SetBytes, which like RFC 8032 decoding takes
// some non-canonical encodings), or is a point of small order: signatures
// by such a key can be made without any private key.
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

// checkHPKEKey refuses X25519 keys of the wrong length and low-order points.
//
// A low-order point (of the curve or its twist, in any of its encodings)
// sends every clamped scalar to the identity, so X25519 with it yields all
// zeros: the "shared" secret is public. crypto/ecdh refuses that result in
// ECDH, so the check is an ECDH with a throwaway key rather than a list of
// bad encodings kept by hand. The scalar does not matter: clamped scalars
// are multiples of the cofactor 8 and smaller than 8 times the prime group
// order, so the result is zero exactly for the low-order points.
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
