package e2ee

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/sotto-rtc/sotto/media/sframe"
)

// Key boxes: a signed body, HPKE-sealed to the recipient's session key
// (docs/E2EE.md, "Key messages"); freshness checks are Session's.

// BoxVersion is the first byte of every box and of its body.
const BoxVersion = 0x02

// keyLabel is both the HPKE info and the signature's context.
const keyLabel = "sotto e2ee v2 key"

const (
	hpkeKEMID  = 0x0020 // DHKEM(X25519, HKDF-SHA256)
	hpkeKDFID  = 0x0001 // HKDF-SHA256
	hpkeAEADID = 0x0002 // AES-256-GCM
	hpkeEncLen = 32
)

var hpkeCurve = ecdh.X25519()

func hpkeKDF() hpke.KDF   { return hpke.HKDFSHA256() }
func hpkeAEAD() hpke.AEAD { return hpke.AES256GCM() }

// ErrSealOpen is returned, wrapped, by OpenKeyBox for a box that does not
// open, parse, or verify under the sender's key.
var ErrSealOpen = errors.New("e2ee: cannot open key box")

// ErrNameTooLong is returned, wrapped, for a room or name over 65535 bytes.
var ErrNameTooLong = errors.New("e2ee: name longer than 65535 bytes")

// KeyBody is what a box carries: a base key and everything it is bound to.
type KeyBody struct {
	Suite            sframe.CipherSuite
	KID              uint64
	Seq              uint64 // the sender's key sequence number
	Room             string
	Sender           string // the sender's identity, as its token names it
	SenderKey        []byte // its Ed25519 identity key
	SenderSession    [SessionIDSize]byte
	Recipient        string
	RecipientKey     []byte // the recipient's Ed25519 identity key
	RecipientSession [SessionIDSize]byte
	BaseKey          []byte
}

func (b *KeyBody) marshal() ([]byte, error) {
	for _, s := range [...]struct{ what, v string }{
		{"room", b.Room}, {"sender name", b.Sender}, {"recipient name", b.Recipient},
	} {
		if len(s.v) > math.MaxUint16 {
			return nil, fmt.Errorf("%w: %s is %d bytes", ErrNameTooLong, s.what, len(s.v))
		}
	}
	if len(b.SenderKey) != PublicKeySize || len(b.RecipientKey) != PublicKeySize {
		return nil, fmt.Errorf("%w: identity keys must be %d bytes", ErrBadPublicKey, PublicKeySize)
	}
	if len(b.BaseKey) > math.MaxUint16 {
		return nil, errors.New("e2ee: base key longer than 65535 bytes")
	}
	out := make([]byte, 0, 64+len(b.Room)+len(b.Sender)+len(b.Recipient)+2*(PublicKeySize+SessionIDSize)+len(b.BaseKey))
	out = append(out, BoxVersion)
	out = binary.BigEndian.AppendUint16(out, uint16(b.Suite))
	out = binary.BigEndian.AppendUint64(out, b.KID)
	out = binary.BigEndian.AppendUint64(out, b.Seq)
	out = appendU16String(out, b.Room)
	out = appendU16String(out, b.Sender)
	out = append(out, b.SenderKey...)
	out = append(out, b.SenderSession[:]...)
	out = appendU16String(out, b.Recipient)
	out = append(out, b.RecipientKey...)
	out = append(out, b.RecipientSession[:]...)
	out = appendU16String(out, string(b.BaseKey))
	return out, nil
}

// unmarshalKeyBody parses a body exactly.
func unmarshalKeyBody(p []byte) (*KeyBody, error) {
	r := reader{p: p}
	if v := r.byte(); v != BoxVersion {
		return nil, fmt.Errorf("body version %#02x, want %#02x", v, BoxVersion)
	}
	b := &KeyBody{}
	b.Suite = sframe.CipherSuite(r.u16())
	b.KID = r.u64()
	b.Seq = r.u64()
	b.Room = string(r.u16bytes())
	b.Sender = string(r.u16bytes())
	b.SenderKey = r.bytes(PublicKeySize)
	copy(b.SenderSession[:], r.bytes(SessionIDSize))
	b.Recipient = string(r.u16bytes())
	b.RecipientKey = r.bytes(PublicKeySize)
	copy(b.RecipientSession[:], r.bytes(SessionIDSize))
	b.BaseKey = r.u16bytes()
	if r.short {
		return nil, errors.New("body is cut short")
	}
	if len(r.p) != 0 {
		return nil, fmt.Errorf("%d bytes after the body", len(r.p))
	}
	return b, nil
}

// reader takes fields off p; once one does not fit, short is set and all are zero.
type reader struct {
	p     []byte
	short bool
}

func (r *reader) bytes(n int) []byte {
	if r.short || len(r.p) < n {
		r.short = true
		return nil
	}
	b := r.p[:n:n]
	r.p = r.p[n:]
	return b
}

func (r *reader) byte() byte {
	if b := r.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if b := r.bytes(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.bytes(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (r *reader) u16bytes() []byte { return r.bytes(int(r.u16())) }

// appendU16String appends s with a u16 length; the caller checked it fits.
func appendU16String(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// SealKeyBox signs b by sender, whose public key b.SenderKey must be, and
// seals it to the recipient session's X25519 key.
func SealKeyBox(sender *Identity, recipientHPKE []byte, b *KeyBody) ([]byte, error) {
	if sender == nil || sender.priv == nil {
		return nil, errors.New("e2ee: seal: nil identity")
	}
	if string(b.SenderKey) != string(sender.PublicKey()) {
		return nil, errors.New("e2ee: seal: KeyBody.SenderKey is not the sender's identity key")
	}
	if err := checkHPKEKey(recipientHPKE); err != nil {
		return nil, fmt.Errorf("e2ee: seal: %w", err)
	}
	body, err := b.marshal()
	if err != nil {
		return nil, fmt.Errorf("e2ee: seal: %w", err)
	}
	pub, err := hpke.DHKEM(hpkeCurve).NewPublicKey(recipientHPKE)
	if err != nil {
		return nil, fmt.Errorf("e2ee: seal: %w: %w", ErrBadPublicKey, err)
	}
	pt := append(body, sender.sign(keyLabel, body)...)
	enc, s, err := hpke.NewSender(pub, hpkeKDF(), hpkeAEAD(), []byte(keyLabel))
	if err != nil {
		return nil, fmt.Errorf("e2ee: seal: %w", err)
	}
	ct, err := s.Seal(nil, pt)
	clear(pt)
	if err != nil {
		return nil, fmt.Errorf("e2ee: seal: %w", err)
	}
	out := make([]byte, 0, 1+len(enc)+len(ct))
	out = append(out, BoxVersion)
	out = append(out, enc...)
	return append(out, ct...), nil
}

// OpenKeyBox opens a box and checks its body is signed by senderKey; the
// caller must check every field it is bound to. Failures wrap ErrSealOpen.
func OpenKeyBox(recipient *SessionKey, senderKey []byte, box []byte) (*KeyBody, error) {
	if recipient == nil || recipient.priv == nil {
		return nil, errors.New("e2ee: open: nil session key")
	}
	if len(box) < 1+hpkeEncLen+ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrSealOpen, len(box))
	}
	if box[0] != BoxVersion {
		return nil, fmt.Errorf("%w: version %#02x, want %#02x", ErrSealOpen, box[0], BoxVersion)
	}
	priv, err := hpke.NewDHKEMPrivateKey(recipient.priv)
	if err != nil {
		return nil, fmt.Errorf("e2ee: open: %w", err)
	}
	r, err := hpke.NewRecipient(box[1:1+hpkeEncLen], priv, hpkeKDF(), hpkeAEAD(), []byte(keyLabel))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSealOpen, err)
	}
	pt, err := r.Open(nil, box[1+hpkeEncLen:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSealOpen, err)
	}
	if len(pt) < ed25519.SignatureSize {
		clear(pt)
		return nil, fmt.Errorf("%w: no signature", ErrSealOpen)
	}
	body, sig := pt[:len(pt)-ed25519.SignatureSize], pt[len(pt)-ed25519.SignatureSize:]
	if !verify(senderKey, keyLabel, body, sig) {
		clear(pt)
		return nil, fmt.Errorf("%w: signature does not verify under the sender's identity key", ErrSealOpen)
	}
	b, err := unmarshalKeyBody(body)
	if err != nil {
		clear(pt)
		return nil, fmt.Errorf("%w: %w", ErrSealOpen, err)
	}
	b.BaseKey = append([]byte(nil), b.BaseKey...)
	b.SenderKey = append([]byte(nil), b.SenderKey...)
	b.RecipientKey = append([]byte(nil), b.RecipientKey...)
	clear(pt)
	return b, nil
}
