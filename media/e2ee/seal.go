package e2ee

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Seal and Open hand a sender's media key to one recipient at a time,
// bound to both identities and to the room.
//
// Construction, version 1 (docs/E2EE.md copies this):
//
//	shared = X25519(sender_priv, recipient_pub)          32 bytes, never all zero
//	info   = "sotto e2ee v1 seal"                        18 ASCII bytes, no terminator
//	         || u16(len(room))          || room          UTF-8 as given, not normalized
//	         || u16(len(senderName))    || senderName
//	         || sender_pub                               32 bytes
//	         || u16(len(recipientName)) || recipientName
//	         || recipient_pub                            32 bytes
//	salt   = 32 fresh random bytes per message
//	key    = HKDF-SHA256(secret = shared, salt = salt, info = info, L = 32)  (RFC 5869)
//	nonce  = 12 fresh random bytes per message
//	ct     = AES-256-GCM-Seal(key, nonce, plaintext, aad = info)             (16-byte tag appended)
//	sealed = 0x01 || salt || nonce || ct
//
// u16 is a 2-byte big-endian length; a room or name longer than 65535
// bytes is refused. The names are the identities the access tokens gave
// (what the room reports for each participant), not what clients say.
// Open recomputes the shared secret from the other side,
// X25519(recipient_priv, sender_pub), and the same info, so a sealed
// message made for another room, another sender or recipient name, or
// another key on either side fails authentication. Because the info puts
// the sender first, a message cannot be reflected back to its sender as if
// it came from the recipient.
//
// The key is fresh per message (random salt) and so is the nonce, so
// neither a nonce nor a key is ever reused even though the X25519 secret is
// the same for every message between the same two identities. Salting the
// derivation makes a nonce collision under one key need a salt collision as
// well (2^-128 per pair of messages at worst).
//
// What it does not give: the X25519 is static-static, so whoever later
// learns either identity private key can open every message sealed between
// the two (no forward secrecy of the seal itself), and whoever learns the
// recipient's private key can forge seals to that recipient from anyone
// (key-compromise impersonation). Both are accepted because identity keys
// live only in the memory of one session and are thrown away when it ends;
// there is no long-term key to compromise later. Sealing authenticates the
// sender's identity key, not the person: that is what the SafetyNumber is
// compared for.

// SealVersion is the first byte of every sealed message.
const SealVersion = 0x01

// sealLabel starts the HKDF info of a seal, naming the protocol and version.
const sealLabel = "sotto e2ee v1 seal"

const (
	sealSaltSize  = 32
	sealNonceSize = 12
	sealTagSize   = 16
	sealKeySize   = 32
	sealHeader    = 1 + sealSaltSize + sealNonceSize
)

// SealOverhead is how many bytes Seal adds to the plaintext: the version
// byte, the salt, the nonce and the GCM tag, 61 in all.
const SealOverhead = sealHeader + sealTagSize

// ErrSealOpen is returned, wrapped, by Open for anything it cannot open: a
// sealed message that is too short, has an unknown version, was changed, or
// was made for another room, name or key.
var ErrSealOpen = errors.New("e2ee: cannot open sealed message")

// ErrNameTooLong is returned, wrapped, when a room or participant name is
// longer than the 65535 bytes a seal can bind.
var ErrNameTooLong = errors.New("e2ee: name longer than 65535 bytes")

// Seal encrypts plaintext (a sender base key and its metadata) from sender,
// known in the room as senderName, to the holder of recipientPub, known as
// recipientName, in room. The result is SealOverhead bytes longer than
// plaintext and opens only with Open given the same room, names and the
// matching keys. Errors wrap ErrBadPublicKey for an unusable recipient key
// and ErrNameTooLong for an overlong room or name. The construction, and
// what it does not protect against, is spelled out at the top of seal.go
// and in docs/E2EE.md.
func Seal(sender *Identity, senderName string, recipientPub []byte, recipientName string, room string, plaintext []byte) ([]byte, error) {
	var saltNonce [sealSaltSize + sealNonceSize]byte
	if _, err := rand.Read(saltNonce[:]); err != nil {
		return nil, fmt.Errorf("e2ee: seal: random: %w", err)
	}
	return sealWith(saltNonce, sender, senderName, recipientPub, recipientName, room, plaintext)
}

// sealWith is Seal with the salt and nonce given, for known-answer tests.
func sealWith(saltNonce [sealSaltSize + sealNonceSize]byte, sender *Identity, senderName string, recipientPub []byte, recipientName string, room string, plaintext []byte) ([]byte, error) {
	if sender == nil || sender.priv == nil {
		return nil, errors.New("e2ee: seal: nil identity")
	}
	shared, err := sharedSecret(sender, recipientPub)
	if err != nil {
		return nil, fmt.Errorf("e2ee: seal: %w", err)
	}
	info, err := sealInfo(room, senderName, sender.PublicKey(), recipientName, recipientPub)
	if err != nil {
		return nil, fmt.Errorf("e2ee: seal: %w", err)
	}
	out := make([]byte, 0, SealOverhead+len(plaintext))
	out = append(out, SealVersion)
	out = append(out, saltNonce[:]...)
	salt, nonce := out[1:1+sealSaltSize], out[1+sealSaltSize:sealHeader]
	aead, err := sealAEAD(shared, salt, info)
	if err != nil {
		return nil, fmt.Errorf("e2ee: seal: %w", err)
	}
	return aead.Seal(out, nonce, plaintext, info), nil
}

// Open decrypts a message that Seal made from the holder of senderPub, known
// as senderName, to recipient, known as recipientName, in room. Every
// failure to open wraps ErrSealOpen; Open never panics on hostile input.
// Errors wrap ErrBadPublicKey for an unusable sender key and ErrNameTooLong
// for an overlong room or name (those are the caller's arguments, not the
// message's fault).
func Open(recipient *Identity, recipientName string, senderPub []byte, senderName string, room string, sealed []byte) ([]byte, error) {
	if recipient == nil || recipient.priv == nil {
		return nil, errors.New("e2ee: open: nil identity")
	}
	if len(sealed) < SealOverhead {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrSealOpen, len(sealed), SealOverhead)
	}
	if sealed[0] != SealVersion {
		return nil, fmt.Errorf("%w: version %#02x, want %#02x", ErrSealOpen, sealed[0], SealVersion)
	}
	shared, err := sharedSecret(recipient, senderPub)
	if err != nil {
		return nil, fmt.Errorf("e2ee: open: %w", err)
	}
	info, err := sealInfo(room, senderName, senderPub, recipientName, recipient.PublicKey())
	if err != nil {
		return nil, fmt.Errorf("e2ee: open: %w", err)
	}
	salt, nonce := sealed[1:1+sealSaltSize], sealed[1+sealSaltSize:sealHeader]
	aead, err := sealAEAD(shared, salt, info)
	if err != nil {
		return nil, fmt.Errorf("e2ee: open: %w", err)
	}
	plaintext, err := aead.Open(nil, nonce, sealed[sealHeader:], info)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSealOpen, err)
	}
	return plaintext, nil
}

// sharedSecret is X25519(id's private key, peer). crypto/ecdh refuses an
// all-zero result, which is what every low-order peer key gives.
func sharedSecret(id *Identity, peer []byte) ([]byte, error) {
	if len(peer) != PublicKeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadPublicKey, len(peer), PublicKeySize)
	}
	pub, err := ecdh.X25519().NewPublicKey(peer)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPublicKey, err)
	}
	shared, err := id.priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: low-order point: %w", ErrBadPublicKey, err)
	}
	return shared, nil
}

// sealInfo builds the HKDF info, which is also the GCM additional data.
func sealInfo(room, senderName string, senderPub []byte, recipientName string, recipientPub []byte) ([]byte, error) {
	for _, s := range [...]struct{ what, v string }{
		{"room", room}, {"sender name", senderName}, {"recipient name", recipientName},
	} {
		if len(s.v) > math.MaxUint16 {
			return nil, fmt.Errorf("%w: %s is %d bytes", ErrNameTooLong, s.what, len(s.v))
		}
	}
	info := make([]byte, 0, len(sealLabel)+6+len(room)+len(senderName)+len(recipientName)+2*PublicKeySize)
	info = append(info, sealLabel...)
	info = appendU16String(info, room)
	info = appendU16String(info, senderName)
	info = append(info, senderPub...)
	info = appendU16String(info, recipientName)
	info = append(info, recipientPub...)
	return info, nil
}

// appendU16String appends s with a 2-byte big-endian length; the caller has
// checked that the length fits.
func appendU16String(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// sealAEAD derives the per-message key and returns AES-256-GCM under it.
func sealAEAD(shared, salt, info []byte) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, shared, salt, string(info), sealKeySize)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	return aead, nil
}
