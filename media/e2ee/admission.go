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
	"time"
)

// Admissions (docs/E2EE.md, "Admission and rosters"): ParseAdmission checks
// only form and signature; whom to believe is the caller's.

// AdmissionVersion is the first byte of an admission's body.
const AdmissionVersion = 0x01

const admitPrefix = "sotto-admit-v1:"

// admitLabel starts what an admission's signature covers.
const admitLabel = "sotto e2ee v2 admit"

// ErrBadAdmission is returned, wrapped, for an admission that is malformed,
// unverified or self-admitting, or (Check) for another room or time.
var ErrBadAdmission = errors.New("e2ee: bad admission")

// Admission is one member's statement that it admits another to a room.
type Admission struct {
	Room        string
	Admitter    string // the admitting member's identity, as its token names it
	AdmitterKey []byte // its Ed25519 identity key, which signs the admission
	Admitted    string // the admitted participant's identity
	AdmittedKey []byte // its Ed25519 identity key
	UnixMilli   int64  // when the admission was made, Unix milliseconds
}

func (a *Admission) marshal() ([]byte, error) {
	for _, s := range [...]struct{ what, v string }{
		{"room", a.Room}, {"admitter name", a.Admitter}, {"admitted name", a.Admitted},
	} {
		if len(s.v) > math.MaxUint16 {
			return nil, fmt.Errorf("%w: %s is %d bytes", ErrNameTooLong, s.what, len(s.v))
		}
	}
	if len(a.AdmitterKey) != PublicKeySize || len(a.AdmittedKey) != PublicKeySize {
		return nil, fmt.Errorf("%w: identity keys must be %d bytes", ErrBadPublicKey, PublicKeySize)
	}
	if a.UnixMilli < 0 {
		return nil, fmt.Errorf("e2ee: admission time %d is before 1970", a.UnixMilli)
	}
	out := make([]byte, 0, 1+3*2+len(a.Room)+len(a.Admitter)+len(a.Admitted)+2*PublicKeySize+8)
	out = append(out, AdmissionVersion)
	out = appendU16String(out, a.Room)
	out = appendU16String(out, a.Admitter)
	out = append(out, a.AdmitterKey...)
	out = appendU16String(out, a.Admitted)
	out = append(out, a.AdmittedKey...)
	out = binary.BigEndian.AppendUint64(out, uint64(a.UnixMilli))
	return out, nil
}

// unmarshalAdmission parses a body exactly; it checks no key nor signature.
func unmarshalAdmission(p []byte) (Admission, error) {
	r := reader{p: p}
	if v := r.byte(); v != AdmissionVersion {
		return Admission{}, fmt.Errorf("body version %#02x, want %#02x", v, AdmissionVersion)
	}
	var a Admission
	a.Room = string(r.u16bytes())
	a.Admitter = string(r.u16bytes())
	a.AdmitterKey = r.bytes(PublicKeySize)
	a.Admitted = string(r.u16bytes())
	a.AdmittedKey = r.bytes(PublicKeySize)
	t := r.u64()
	if r.short {
		return Admission{}, errors.New("body is cut short")
	}
	if len(r.p) != 0 {
		return Admission{}, fmt.Errorf("%d bytes after the body", len(r.p))
	}
	if t > math.MaxInt64 {
		return Admission{}, fmt.Errorf("time %#x is before 1970", t)
	}
	a.UnixMilli = int64(t)
	return a, nil
}

// Admit returns the text form of a, signed by admitter; a.AdmitterKey must be
// admitter's public key and a.AdmittedKey another usable identity key.
func Admit(admitter *Identity, a Admission) (string, error) {
	if admitter == nil || admitter.priv == nil {
		return "", errors.New("e2ee: admit: nil identity")
	}
	if !bytes.Equal(a.AdmitterKey, admitter.PublicKey()) {
		return "", errors.New("e2ee: admit: Admission.AdmitterKey is not the admitter's identity key")
	}
	if err := checkIdentityKey(a.AdmittedKey); err != nil {
		return "", fmt.Errorf("e2ee: admit: admitted %w", err)
	}
	if bytes.Equal(a.AdmittedKey, a.AdmitterKey) {
		return "", errors.New("e2ee: admit: a member cannot admit its own key")
	}
	body, err := a.marshal()
	if err != nil {
		return "", fmt.Errorf("e2ee: admit: %w", err)
	}
	return encodeSigned(admitPrefix, body, admitter.sign(admitLabel, body)), nil
}

// ParseAdmission is the inverse of Admit (errors wrap ErrBadAdmission). It
// checks neither the room nor the time: see Check.
func ParseAdmission(s string) (Admission, error) {
	body, sig, err := decodeSigned(admitPrefix, s)
	if err != nil {
		return Admission{}, fmt.Errorf("%w: %w", ErrBadAdmission, err)
	}
	a, err := unmarshalAdmission(body)
	if err != nil {
		return Admission{}, fmt.Errorf("%w: %w", ErrBadAdmission, err)
	}
	if err := checkIdentityKey(a.AdmitterKey); err != nil {
		return Admission{}, fmt.Errorf("%w: admitter %w", ErrBadAdmission, err)
	}
	if err := checkIdentityKey(a.AdmittedKey); err != nil {
		return Admission{}, fmt.Errorf("%w: admitted %w", ErrBadAdmission, err)
	}
	if bytes.Equal(a.AdmitterKey, a.AdmittedKey) {
		return Admission{}, fmt.Errorf("%w: the admitter admits its own key", ErrBadAdmission)
	}
	if !verify(a.AdmitterKey, admitLabel, body, sig) {
		return Admission{}, fmt.Errorf("%w: signature does not verify under the admitter's identity key", ErrBadAdmission)
	}
	return a, nil
}

// Check refuses an admission for another room, or made more than maxAge
// before or after now (clocks differ). Errors wrap ErrBadAdmission.
func (a Admission) Check(room string, now time.Time, maxAge time.Duration) error {
	if a.Room != room {
		return fmt.Errorf("%w: for room %q, not %q", ErrBadAdmission, a.Room, room)
	}
	if maxAge < 0 {
		return fmt.Errorf("%w: negative maximum age %v", ErrBadAdmission, maxAge)
	}
	// Unsigned differences: the distance between two int64s fits a uint64.
	made, at, window := a.UnixMilli, now.UnixMilli(), uint64(maxAge.Milliseconds())
	if made < at {
		if d := uint64(at) - uint64(made); d > window {
			return fmt.Errorf("%w: made %d ms before now, more than %v", ErrBadAdmission, d, maxAge)
		}
	} else if d := uint64(made) - uint64(at); d > window {
		return fmt.Errorf("%w: made %d ms after now, more than %v", ErrBadAdmission, d, maxAge)
	}
	return nil
}

// encodeSigned is prefix then body || sig in unpadded base64url.
func encodeSigned(prefix string, body, sig []byte) string {
	raw := make([]byte, 0, len(body)+len(sig))
	raw = append(append(raw, body...), sig...)
	return prefix + base64.RawURLEncoding.EncodeToString(raw)
}

// decodeSigned undoes encodeSigned, refusing non-canonical base64url (one
// text form per statement); it checks no signature.
func decodeSigned(prefix, s string) (body, sig []byte, err error) {
	enc, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return nil, nil, fmt.Errorf("missing %q prefix", prefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil, nil, err
	}
	// The decoder skips newlines and tolerates non-zero trailing bits.
	if base64.RawURLEncoding.EncodeToString(raw) != enc {
		return nil, nil, errors.New("not canonical unpadded base64url")
	}
	if len(raw) < ed25519.SignatureSize {
		return nil, nil, fmt.Errorf("%d bytes, shorter than a signature", len(raw))
	}
	n := len(raw) - ed25519.SignatureSize
	return raw[:n:n], raw[n:], nil
}
