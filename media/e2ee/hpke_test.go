package e2ee

import (
	"bytes"
	"crypto/hpke"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// hpkeVector is one RFC 9180 test vector, in the field names of the
// CFRG's test-vectors.json.
type hpkeVector struct {
	Mode        int    `json:"mode"`
	KEM         uint16 `json:"kem_id"`
	KDF         uint16 `json:"kdf_id"`
	AEAD        uint16 `json:"aead_id"`
	Info        string `json:"info"`
	IkmE        string `json:"ikmE"`
	IkmR        string `json:"ikmR"`
	SkRm        string `json:"skRm"`
	SkEm        string `json:"skEm"`
	PkRm        string `json:"pkRm"`
	PkEm        string `json:"pkEm"`
	Enc         string `json:"enc"`
	Encryptions []struct {
		AAD string `json:"aad"`
		PT  string `json:"pt"`
		CT  string `json:"ct"`
	} `json:"encryptions"`
	Exports []struct {
		Context string `json:"exporter_context"`
		L       int    `json:"L"`
		Value   string `json:"exported_value"`
	} `json:"exports"`
}

// readHPKEVector reads the committed RFC 9180 vector for the suite key
// messages use (testdata/README.md names its source), or the file
// HPKE_TEST_VECTOR names.
func readHPKEVector(t *testing.T) hpkeVector {
	t.Helper()
	path := os.Getenv("HPKE_TEST_VECTOR")
	if path == "" {
		path = filepath.Join("..", "..", "testdata", "hpke-rfc9180-base-x25519-sha256-aes256gcm.json")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("RFC 9180 test vector: %v", err)
	}
	var v hpkeVector
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("RFC 9180 test vector %s: %v", path, err)
	}
	return v
}

// clamp is RFC 7748's clamping of an X25519 scalar: the vectors give
// private keys as derived, crypto/ecdh returns them clamped, and both are
// the same key.
func clamp(k []byte) []byte {
	k[0] &= 248
	k[31] &= 127
	k[31] |= 64
	return k
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("test vector value %q is not hex: %v", s, err)
	}
	return b
}

// TestHPKEVectorRFC9180 checks the HPKE suite key messages are sealed with
// against RFC 9180's own vector for it: key derivation from the vector's
// seeds on both sides, opening its ciphertext, and its exported secrets.
func TestHPKEVectorRFC9180(t *testing.T) {
	v := readHPKEVector(t)
	if v.Mode != 0 || v.KEM != hpkeKEMID || v.KDF != hpkeKDFID || v.AEAD != hpkeAEADID {
		t.Fatalf("vector is mode %d suite %#04x/%#04x/%#04x, key messages use base mode %#04x/%#04x/%#04x",
			v.Mode, v.KEM, v.KDF, v.AEAD, hpkeKEMID, hpkeKDFID, hpkeAEADID)
	}
	kem := hpke.DHKEM(hpkeCurve)
	eph, err := kem.DeriveKeyPair(unhex(t, v.IkmE))
	if err != nil {
		t.Fatal(err)
	}
	if got := eph.PublicKey().Bytes(); !bytes.Equal(got, unhex(t, v.PkEm)) || !bytes.Equal(got, unhex(t, v.Enc)) {
		t.Errorf("DeriveKeyPair(ikmE) public key = %x, want pkEm = enc = %s", got, v.Enc)
	}
	if sk, err := eph.Bytes(); err != nil || !bytes.Equal(sk, clamp(unhex(t, v.SkEm))) {
		t.Errorf("DeriveKeyPair(ikmE) private key = %x (%v), want %s", sk, err, v.SkEm)
	}
	recip, err := kem.DeriveKeyPair(unhex(t, v.IkmR))
	if err != nil {
		t.Fatal(err)
	}
	if sk, err := recip.Bytes(); err != nil || !bytes.Equal(sk, clamp(unhex(t, v.SkRm))) {
		t.Errorf("DeriveKeyPair(ikmR) private key = %x (%v), want %s", sk, err, v.SkRm)
	}
	if got := recip.PublicKey().Bytes(); !bytes.Equal(got, unhex(t, v.PkRm)) {
		t.Errorf("DeriveKeyPair(ikmR) public key = %x, want %s", got, v.PkRm)
	}
	r, err := hpke.NewRecipient(unhex(t, v.Enc), recip, hpkeKDF(), hpkeAEAD(), unhex(t, v.Info))
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Encryptions) == 0 || len(v.Exports) == 0 {
		t.Fatal("vector has no encryptions or no exports")
	}
	for i, e := range v.Encryptions {
		pt, err := r.Open(unhex(t, e.AAD), unhex(t, e.CT))
		if err != nil || !bytes.Equal(pt, unhex(t, e.PT)) {
			t.Errorf("encryption %d: Open = %x, %v; want %s", i, pt, err, e.PT)
		}
	}
	for i, x := range v.Exports {
		got, err := r.Export(string(unhex(t, x.Context)), x.L)
		if err != nil || !bytes.Equal(got, unhex(t, x.Value)) {
			t.Errorf("export %d: %x, %v; want %s", i, got, err, x.Value)
		}
	}
}
