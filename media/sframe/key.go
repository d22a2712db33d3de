package sframe

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// RFC 9605's HKDF labels; key and salt labels take the KID (8 bytes) and
// suite (2 bytes), big-endian.
const (
	keyLabel     = "SFrame 1.0 Secret key "
	saltLabel    = "SFrame 1.0 Secret salt "
	ratchetLabel = "SFrame 1.0 Ratchet"
)

// maxPlaintext turns GCM's and CTR's 2^32-block limits into an error.
const maxPlaintext = (1<<32 - 2) * aes.BlockSize

func label(prefix string, kid uint64, suite CipherSuite) []byte {
	b := make([]byte, 0, len(prefix)+10)
	b = append(b, prefix...)
	b = binary.BigEndian.AppendUint64(b, kid)
	return binary.BigEndian.AppendUint16(b, uint16(suite))
}

// keySchedule is derive_key_salt (RFC 9605 section 4.4.2), with its
// secret kept for the test vectors.
type keySchedule struct {
	secret, key, salt []byte
}

func deriveSchedule(suite CipherSuite, kid uint64, baseKey []byte) (keySchedule, error) {
	p, err := suite.checked()
	if err != nil {
		return keySchedule{}, err
	}
	if len(baseKey) == 0 {
		return keySchedule{}, errors.New("sframe: empty base key")
	}
	// An empty salt is Nh zero bytes (RFC 5869), as nil is to crypto/hkdf.
	secret, err := hkdf.Extract(p.hash, baseKey, nil)
	if err != nil {
		return keySchedule{}, fmt.Errorf("sframe: HKDF-Extract: %w", err)
	}
	key, err := hkdf.Expand(p.hash, secret, string(label(keyLabel, kid, suite)), p.nk)
	if err != nil {
		return keySchedule{}, fmt.Errorf("sframe: HKDF-Expand key: %w", err)
	}
	salt, err := hkdf.Expand(p.hash, secret, string(label(saltLabel, kid, suite)), p.nn)
	if err != nil {
		return keySchedule{}, fmt.Errorf("sframe: HKDF-Expand salt: %w", err)
	}
	return keySchedule{secret: secret, key: key, salt: salt}, nil
}

// Ratchet returns the next base key of the sender-key ratchet (RFC 9605
// section 5.1), HashSize bytes; the old key cannot be computed from it.
func Ratchet(suite CipherSuite, baseKey []byte) ([]byte, error) {
	p, err := suite.checked()
	if err != nil {
		return nil, err
	}
	if len(baseKey) == 0 {
		return nil, errors.New("sframe: empty base key")
	}
	prk, err := hkdf.Extract(p.hash, baseKey, nil)
	if err != nil {
		return nil, fmt.Errorf("sframe: HKDF-Extract: %w", err)
	}
	next, err := hkdf.Expand(p.hash, prk, ratchetLabel, p.nh)
	if err != nil {
		return nil, fmt.Errorf("sframe: HKDF-Expand ratchet: %w", err)
	}
	return next, nil
}

// Key is the AEAD key and salt for one KID and base key; it is immutable.
type Key struct {
	suite CipherSuite
	kid   uint64
	key   []byte // sframe_key, kept to recognise a reinstalled key
	salt  [12]byte
	aead  cipher.AEAD
}

// DeriveKey derives kid's key from baseKey (any non-zero length).
func DeriveKey(suite CipherSuite, kid uint64, baseKey []byte) (*Key, error) {
	ks, err := deriveSchedule(suite, kid, baseKey)
	if err != nil {
		return nil, err
	}
	return newKey(suite, kid, ks.key, ks.salt)
}

func newKey(suite CipherSuite, kid uint64, key, salt []byte) (*Key, error) {
	p, err := suite.checked()
	if err != nil {
		return nil, err
	}
	if len(key) != p.nk || len(salt) != p.nn {
		return nil, fmt.Errorf("sframe: %v needs a %d-byte key and %d-byte salt, got %d and %d", suite, p.nk, p.nn, len(key), len(salt))
	}
	k := &Key{suite: suite, kid: kid, key: key}
	copy(k.salt[:], salt)
	if p.nka == 0 {
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("sframe: %w", err)
		}
		if k.aead, err = cipher.NewGCM(block); err != nil {
			return nil, fmt.Errorf("sframe: %w", err)
		}
	} else if k.aead, err = newCTRHMAC(p, key); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *Key) Suite() CipherSuite { return k.suite }

func (k *Key) KID() uint64 { return k.kid }

// sameAs: same suite, KID and derived bytes, so the same base key.
func (k *Key) sameAs(o *Key) bool {
	return k.suite == o.suite && k.kid == o.kid && k.salt == o.salt &&
		subtle.ConstantTimeCompare(k.key, o.key) == 1
}

// nonce is salt XOR counter (RFC 9605 section 4.4.3).
func (k *Key) nonce(ctr uint64) [12]byte {
	n := k.salt
	for i := range 8 {
		n[11-i] ^= byte(ctr >> (8 * i))
	}
	return n
}

func aad(header, metadata []byte) []byte {
	a := make([]byte, 0, len(header)+len(metadata))
	return append(append(a, header...), metadata...)
}

// seal appends header || ciphertext || tag to dst; the caller never
// reuses a counter. dst's spare capacity must not overlap the inputs.
func (k *Key) seal(dst []byte, ctr uint64, metadata, plaintext []byte) ([]byte, error) {
	if uint64(len(plaintext)) > maxPlaintext {
		return nil, fmt.Errorf("sframe: plaintext of %d bytes is over the %d-byte limit", len(plaintext), uint64(maxPlaintext))
	}
	start := len(dst)
	dst = Header{KID: k.kid, CTR: ctr}.AppendTo(dst)
	nonce := k.nonce(ctr)
	return k.aead.Seal(dst, nonce[:], plaintext, aad(dst[start:], metadata)), nil
}

// Open decrypts frame with this key alone and appends the plaintext to dst;
// it returns the header whenever it parsed. It has no replay window (see
// Receiver). dst's spare capacity must not overlap the inputs.
func (k *Key) Open(dst, metadata, frame []byte) ([]byte, Header, error) {
	h, n, err := ParseHeader(frame)
	if err != nil {
		return nil, Header{}, err
	}
	if h.KID != k.kid {
		return nil, h, fmt.Errorf("%w: frame has KID %d, key is for KID %d", ErrUnknownKID, h.KID, k.kid)
	}
	out, err := k.open(dst, h, frame[:n], metadata, frame[n:])
	return out, h, err
}

func (k *Key) open(dst []byte, h Header, header, metadata, ct []byte) ([]byte, error) {
	if tag := k.aead.Overhead(); len(ct) < tag {
		return nil, fmt.Errorf("%w: KID %d CTR %d: %d bytes after the header, the tag alone is %d", ErrAuth, h.KID, h.CTR, len(ct), tag)
	}
	if uint64(len(ct)) > maxPlaintext+uint64(k.aead.Overhead()) {
		return nil, fmt.Errorf("%w: KID %d CTR %d: %d-byte ciphertext is over the limit", ErrAuth, h.KID, h.CTR, len(ct))
	}
	nonce := k.nonce(h.CTR)
	out, err := k.aead.Open(dst, nonce[:], ct, aad(header, metadata))
	if err != nil {
		return nil, fmt.Errorf("%w: KID %d CTR %d", ErrAuth, h.KID, h.CTR)
	}
	return out, nil
}

// ctrHMAC is the AES-CTR + HMAC AEAD of RFC 9605 section 4.5.1.
type ctrHMAC struct {
	block   cipher.Block
	authKey []byte
	hash    func() hash.Hash
	tagSize int
}

// splitKey is derive_subkeys: Nka bytes encrypt, Nh authenticate.
func splitKey(p suiteParams, key []byte) (encKey, authKey []byte) {
	return key[:p.nka], key[p.nka:]
}

func newCTRHMAC(p suiteParams, key []byte) (*ctrHMAC, error) {
	if len(key) != p.nka+p.nh {
		return nil, fmt.Errorf("sframe: %s needs a %d-byte key, got %d", p.name, p.nka+p.nh, len(key))
	}
	encKey, authKey := splitKey(p, key)
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, fmt.Errorf("sframe: %w", err)
	}
	return &ctrHMAC{block: block, authKey: authKey, hash: p.hash, tagSize: p.nt}, nil
}

func (c *ctrHMAC) NonceSize() int { return 12 }
func (c *ctrHMAC) Overhead() int  { return c.tagSize }

// tag is compute_tag, truncated to Nt.
func (c *ctrHMAC) tag(nonce, aad, ct []byte) []byte {
	mac := hmac.New(c.hash, c.authKey)
	var lengths [24]byte
	binary.BigEndian.PutUint64(lengths[0:], uint64(len(aad)))
	binary.BigEndian.PutUint64(lengths[8:], uint64(len(ct)))
	binary.BigEndian.PutUint64(lengths[16:], uint64(c.tagSize))
	mac.Write(lengths[:])
	mac.Write(nonce)
	mac.Write(aad)
	mac.Write(ct)
	return mac.Sum(nil)[:c.tagSize]
}

// stream is AES-CTR from nonce || 0x00000000.
func (c *ctrHMAC) stream(nonce []byte) cipher.Stream {
	var iv [aes.BlockSize]byte
	copy(iv[:], nonce)
	return cipher.NewCTR(c.block, iv[:])
}

func (c *ctrHMAC) Seal(dst, nonce, plaintext, additionalData []byte) []byte {
	if len(nonce) != c.NonceSize() {
		panic("sframe: bad nonce length") // unreachable: Key always passes 12 bytes
	}
	ret, out := grow(dst, len(plaintext)+c.tagSize)
	ct := out[:len(plaintext)]
	c.stream(nonce).XORKeyStream(ct, plaintext)
	copy(out[len(plaintext):], c.tag(nonce, additionalData, ct))
	return ret
}

func (c *ctrHMAC) Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error) {
	if len(nonce) != c.NonceSize() || len(ciphertext) < c.tagSize {
		return nil, ErrAuth
	}
	ct, tag := ciphertext[:len(ciphertext)-c.tagSize], ciphertext[len(ciphertext)-c.tagSize:]
	// Authenticate first: nothing unauthenticated reaches dst.
	if subtle.ConstantTimeCompare(c.tag(nonce, additionalData, ct), tag) != 1 {
		return nil, ErrAuth
	}
	ret, out := grow(dst, len(ct))
	c.stream(nonce).XORKeyStream(out, ct)
	return ret, nil
}

func grow(b []byte, n int) (whole, tail []byte) {
	total := len(b) + n
	if cap(b) >= total {
		whole = b[:total]
	} else {
		whole = make([]byte, total)
		copy(whole, b)
	}
	return whole, whole[len(b):]
}
