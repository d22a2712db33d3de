package sframe

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
)

// CipherSuite is an SFrame cipher suite identifier from the IANA "SFrame
// Cipher Suites" registry (RFC 9605 section 8.1). It fixes the hash used
// for key derivation and the AEAD used for frames.
type CipherSuite uint16

// The cipher suites RFC 9605 defines. The CTR+HMAC suites exist for their
// short tags (audio frames are small, so 16 tag bytes are a large share of
// them); the GCM suites are the default choice elsewhere.
const (
	AES128CTRHMACSHA256_80 CipherSuite = 0x0001
	AES128CTRHMACSHA256_64 CipherSuite = 0x0002
	AES128CTRHMACSHA256_32 CipherSuite = 0x0003
	AES128GCMSHA256_128    CipherSuite = 0x0004
	AES256GCMSHA512_128    CipherSuite = 0x0005
)

// suiteParams are the constants of RFC 9605 table 1 for one suite.
type suiteParams struct {
	name string
	nh   int // hash output size
	nka  int // AES key size inside the CTR+HMAC composition; 0 for GCM
	nk   int // AEAD key size
	nn   int // nonce size
	nt   int // tag size
	hash func() hash.Hash
}

// params returns the suite's constants, or false for an unknown suite.
func (s CipherSuite) params() (suiteParams, bool) {
	switch s {
	case AES128CTRHMACSHA256_80:
		return suiteParams{"AES_128_CTR_HMAC_SHA256_80", 32, 16, 48, 12, 10, sha256.New}, true
	case AES128CTRHMACSHA256_64:
		return suiteParams{"AES_128_CTR_HMAC_SHA256_64", 32, 16, 48, 12, 8, sha256.New}, true
	case AES128CTRHMACSHA256_32:
		return suiteParams{"AES_128_CTR_HMAC_SHA256_32", 32, 16, 48, 12, 4, sha256.New}, true
	case AES128GCMSHA256_128:
		return suiteParams{"AES_128_GCM_SHA256_128", 32, 0, 16, 12, 16, sha256.New}, true
	case AES256GCMSHA512_128:
		return suiteParams{"AES_256_GCM_SHA512_128", 64, 0, 32, 12, 16, sha512.New}, true
	}
	return suiteParams{}, false
}

// checked is params with an error that says which suite was refused.
func (s CipherSuite) checked() (suiteParams, error) {
	p, ok := s.params()
	if !ok {
		return p, fmt.Errorf("%w: 0x%04x", ErrUnsupportedSuite, uint16(s))
	}
	return p, nil
}

// Supported reports whether s is one of the five suites of RFC 9605.
func (s CipherSuite) Supported() bool {
	_, ok := s.params()
	return ok
}

// KeySize returns Nk, the size in bytes of the AEAD key derived for each
// KID (for the CTR+HMAC suites, the AES key and the HMAC key together), or
// 0 for an unsupported suite.
func (s CipherSuite) KeySize() int {
	p, _ := s.params()
	return p.nk
}

// NonceSize returns Nn, the size in bytes of the salt and of the AEAD
// nonce, or 0 for an unsupported suite.
func (s CipherSuite) NonceSize() int {
	p, _ := s.params()
	return p.nn
}

// TagSize returns Nt, the bytes the AEAD adds to each frame after the
// header, or 0 for an unsupported suite.
func (s CipherSuite) TagSize() int {
	p, _ := s.params()
	return p.nt
}

// HashSize returns Nh, the output size in bytes of the suite's hash, which
// is also the size of a ratcheted base key, or 0 for an unsupported suite.
func (s CipherSuite) HashSize() int {
	p, _ := s.params()
	return p.nh
}

// String returns the suite's registry name, such as
// "AES_128_GCM_SHA256_128".
func (s CipherSuite) String() string {
	if p, ok := s.params(); ok {
		return p.name
	}
	return fmt.Sprintf("CipherSuite(0x%04x)", uint16(s))
}
