package sframe

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
)

// CipherSuite is an IANA "SFrame Cipher Suites" identifier (RFC 9605 8.1).
type CipherSuite uint16

// RFC 9605's suites. CTR+HMAC ones have short tags, for small audio frames.
const (
	AES128CTRHMACSHA256_80 CipherSuite = 0x0001
	AES128CTRHMACSHA256_64 CipherSuite = 0x0002
	AES128CTRHMACSHA256_32 CipherSuite = 0x0003
	AES128GCMSHA256_128    CipherSuite = 0x0004
	AES256GCMSHA512_128    CipherSuite = 0x0005
)

// suiteParams are RFC 9605 table 1's constants.
type suiteParams struct {
	name string
	nh   int // hash output size
	nka  int // AES key size inside the CTR+HMAC composition; 0 for GCM
	nk   int // AEAD key size
	nn   int // nonce size
	nt   int // tag size
	hash func() hash.Hash
}

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

// KeySize, NonceSize, TagSize and HashSize return Nk, Nn, Nt and Nh of RFC
// 9605 (0 for an unsupported suite); for CTR+HMAC Nk covers both keys.
func (s CipherSuite) KeySize() int {
	p, _ := s.params()
	return p.nk
}

func (s CipherSuite) NonceSize() int {
	p, _ := s.params()
	return p.nn
}

func (s CipherSuite) TagSize() int {
	p, _ := s.params()
	return p.nt
}

func (s CipherSuite) HashSize() int {
	p, _ := s.params()
	return p.nh
}

// String returns the registry name, e.g. "AES_128_GCM_SHA256_128".
func (s CipherSuite) String() string {
	if p, ok := s.params(); ok {
		return p.name
	}
	return fmt.Sprintf("CipherSuite(0x%04x)", uint16(s))
}
