package sframe

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// The RFC 9605 test vectors are committed at testdata/ in the repository's
// root, with their source and licence (testdata/README.md). The
// environment variable points the test at another copy.
const (
	vectorsEnv  = "SFRAME_TEST_VECTORS"
	vectorsFile = "sframe-rfc9605-test-vectors.json"
)

// The three sections of the vector file, every field of each case. The
// decoder below refuses a case with a field missing, an extra field, or a
// field twice, so no value in the file goes unchecked.
type headerVector struct {
	KID     uint64 `vec:"kid"`
	CTR     uint64 `vec:"ctr"`
	Encoded []byte `vec:"encoded"`
}

type ctrHMACVector struct {
	Suite   CipherSuite `vec:"cipher_suite"`
	Key     []byte      `vec:"key"`
	EncKey  []byte      `vec:"enc_key"`
	AuthKey []byte      `vec:"auth_key"`
	Nonce   []byte      `vec:"nonce"`
	AAD     []byte      `vec:"aad"`
	PT      []byte      `vec:"pt"`
	CT      []byte      `vec:"ct"`
}

type sframeVector struct {
	Suite     CipherSuite `vec:"cipher_suite"`
	KID       uint64      `vec:"kid"`
	CTR       uint64      `vec:"ctr"`
	BaseKey   []byte      `vec:"base_key"`
	KeyLabel  []byte      `vec:"sframe_key_label"`
	SaltLabel []byte      `vec:"sframe_salt_label"`
	Secret    []byte      `vec:"sframe_secret"`
	Key       []byte      `vec:"sframe_key"`
	Salt      []byte      `vec:"sframe_salt"`
	Metadata  []byte      `vec:"metadata"`
	Nonce     []byte      `vec:"nonce"`
	AAD       []byte      `vec:"aad"`
	PT        []byte      `vec:"pt"`
	CT        []byte      `vec:"ct"`
}

type vectorFile struct {
	Header  []headerVector
	CTRHMAC []ctrHMACVector
	SFrame  []sframeVector
}

// vectorsPath returns where the vector file is: the environment's path,
// or the repository's copy.
func vectorsPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(vectorsEnv); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "testdata", vectorsFile)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the test's directory; set %s", vectorsEnv)
		}
		dir = parent
	}
}

// loadVectors reads and strictly decodes the vector file. A missing file
// fails the test: the vectors are the only outside check of the
// encryption, so there is nothing to skip to.
func loadVectors(t *testing.T) vectorFile {
	t.Helper()
	path := vectorsPath(t)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the RFC 9605 test vectors (%s=%q): %v", vectorsEnv, os.Getenv(vectorsEnv), err)
	}
	vf, err := decodeVectorFile(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return vf
}

func decodeVectorFile(data []byte) (vectorFile, error) {
	var sections struct {
		Header, CTRHMAC, SFrame []json.RawMessage
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	err := decodeObject(dec, map[string]any{
		"header":       &sections.Header,
		"aes_ctr_hmac": &sections.CTRHMAC,
		"sframe":       &sections.SFrame,
	})
	if err != nil {
		return vectorFile{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return vectorFile{}, fmt.Errorf("data after the top-level object")
	}
	var vf vectorFile
	if vf.Header, err = decodeCases[headerVector](sections.Header); err != nil {
		return vf, fmt.Errorf("header: %w", err)
	}
	if vf.CTRHMAC, err = decodeCases[ctrHMACVector](sections.CTRHMAC); err != nil {
		return vf, fmt.Errorf("aes_ctr_hmac: %w", err)
	}
	if vf.SFrame, err = decodeCases[sframeVector](sections.SFrame); err != nil {
		return vf, fmt.Errorf("sframe: %w", err)
	}
	return vf, nil
}

// decodeCases decodes each case into V, whose `vec` tags name exactly the
// fields a case must have.
func decodeCases[V any](raws []json.RawMessage) ([]V, error) {
	out := make([]V, len(raws))
	for i, raw := range raws {
		fields := map[string]any{}
		rv := reflect.ValueOf(&out[i]).Elem()
		for j := range rv.NumField() {
			fields[rv.Type().Field(j).Tag.Get("vec")] = rv.Field(j).Addr().Interface()
		}
		if err := decodeObject(json.NewDecoder(bytes.NewReader(raw)), fields); err != nil {
			return nil, fmt.Errorf("case %d: %w", i, err)
		}
	}
	return out, nil
}

// decodeObject reads one JSON object whose keys must be exactly those of
// fields, each once, into the pointers fields holds: *uint64 and
// *CipherSuite from JSON integers (decoded as integers, never through
// float64), *[]byte from hex strings, *[]json.RawMessage from arrays.
func decodeObject(dec *json.Decoder, fields map[string]any) error {
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("want an object, got %v (%v)", tok, err)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		dst, known := fields[name]
		switch {
		case !known:
			return fmt.Errorf("unknown field %q: the test must learn what it means", name)
		case seen[name]:
			return fmt.Errorf("field %q twice", name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := decodeField(raw, dst); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	for name := range fields {
		if !seen[name] {
			return fmt.Errorf("field %q missing", name)
		}
	}
	return nil
}

func decodeField(raw json.RawMessage, dst any) error {
	switch p := dst.(type) {
	case *uint64:
		return json.Unmarshal(raw, p) // strconv.ParseUint on the literal
	case *CipherSuite:
		var v uint64
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		if v > 0xffff {
			return fmt.Errorf("cipher suite %d is wider than 16 bits", v)
		}
		*p = CipherSuite(v)
		return nil
	case *[]byte:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		b, err := hex.DecodeString(s)
		if err != nil {
			return err
		}
		*p = b
		return nil
	case *[]json.RawMessage:
		return json.Unmarshal(raw, p)
	}
	return fmt.Errorf("no decoder for %T", dst)
}

// mismatches collects the differences one case shows.
type mismatches []error

func (m *mismatches) bytes(what string, got, want []byte) {
	if !bytes.Equal(got, want) {
		*m = append(*m, fmt.Errorf("%s = %x, want %x", what, got, want))
	}
}

func (m *mismatches) add(format string, args ...any) {
	*m = append(*m, fmt.Errorf(format, args...))
}

func (m mismatches) err() error { return errors.Join(m...) }

func flipBit(b []byte, bit int) []byte {
	c := slices.Clone(b)
	c[bit/8] ^= 1 << (bit % 8)
	return c
}

// checkHeaderVector: encoding kid/ctr gives encoded, parsing encoded gives
// kid/ctr and consumes all of it, and every truncation is refused.
func checkHeaderVector(v headerVector) error {
	var m mismatches
	h := Header{KID: v.KID, CTR: v.CTR}
	m.bytes("AppendTo", h.AppendTo(nil), v.Encoded)
	if h.MarshalSize() != len(v.Encoded) {
		m.add("MarshalSize = %d, want %d", h.MarshalSize(), len(v.Encoded))
	}
	for _, trailer := range [][]byte{nil, {0xaa, 0x55}} {
		got, n, err := ParseHeader(append(slices.Clone(v.Encoded), trailer...))
		if err != nil || got != h || n != len(v.Encoded) {
			m.add("ParseHeader(%x + %d trailing) = %+v, %d, %v; want %+v, %d", v.Encoded, len(trailer), got, n, err, h, len(v.Encoded))
		}
	}
	for i := range len(v.Encoded) {
		if _, _, err := ParseHeader(v.Encoded[:i]); !errors.Is(err, ErrHeader) {
			m.add("ParseHeader(%x) = %v, want ErrHeader", v.Encoded[:i], err)
		}
	}
	return m.err()
}

// checkCTRHMACVector: the key split, encryption, decryption, and refusal
// of every single-bit change to nonce, AAD and ciphertext.
func checkCTRHMACVector(v ctrHMACVector) error {
	var m mismatches
	p, ok := v.Suite.params()
	if !ok || p.nka == 0 {
		m.add("cipher suite %v is not an AES-CTR+HMAC suite", v.Suite)
		return m.err()
	}
	if len(v.Key) != p.nk || len(v.Nonce) != p.nn {
		m.add("key of %d bytes and nonce of %d, want %d and %d", len(v.Key), len(v.Nonce), p.nk, p.nn)
		return m.err()
	}
	enc, auth := splitKey(p, v.Key)
	m.bytes("enc_key", enc, v.EncKey)
	m.bytes("auth_key", auth, v.AuthKey)
	c, err := newCTRHMAC(p, v.Key)
	if err != nil {
		m.add("newCTRHMAC: %v", err)
		return m.err()
	}
	m.bytes("Seal", c.Seal(nil, v.Nonce, v.PT, v.AAD), v.CT)
	pt, err := c.Open(nil, v.Nonce, v.CT, v.AAD)
	if err != nil {
		m.add("Open: %v", err)
	}
	m.bytes("Open", pt, v.PT)
	for bit := range 8 * len(v.CT) {
		if out, err := c.Open(nil, v.Nonce, flipBit(v.CT, bit), v.AAD); !errors.Is(err, ErrAuth) || out != nil {
			m.add("Open with ciphertext bit %d flipped = %x, %v; want ErrAuth", bit, out, err)
		}
	}
	for bit := range 8 * len(v.AAD) {
		if _, err := c.Open(nil, v.Nonce, v.CT, flipBit(v.AAD, bit)); !errors.Is(err, ErrAuth) {
			m.add("Open with AAD bit %d flipped: %v, want ErrAuth", bit, err)
		}
	}
	for bit := range 8 * len(v.Nonce) {
		if _, err := c.Open(nil, flipBit(v.Nonce, bit), v.CT, v.AAD); !errors.Is(err, ErrAuth) {
			m.add("Open with nonce bit %d flipped: %v, want ErrAuth", bit, err)
		}
	}
	if len(v.CT) > 0 {
		if _, err := c.Open(nil, v.Nonce, v.CT[:len(v.CT)-1], v.AAD); !errors.Is(err, ErrAuth) {
			m.add("Open of the ciphertext less its last byte: %v, want ErrAuth", err)
		}
	}
	return m.err()
}

// checkSFrameVector checks every intermediate of one full SFrame case, and
// the frame both ways through Key, Sender and Receiver.
func checkSFrameVector(v sframeVector) error {
	var m mismatches
	if !v.Suite.Supported() {
		m.add("cipher suite %v unsupported", v.Suite)
		return m.err()
	}
	m.bytes("sframe_key_label", label(keyLabel, v.KID, v.Suite), v.KeyLabel)
	m.bytes("sframe_salt_label", label(saltLabel, v.KID, v.Suite), v.SaltLabel)
	ks, err := deriveSchedule(v.Suite, v.KID, v.BaseKey)
	if err != nil {
		m.add("deriveSchedule: %v", err)
		return m.err()
	}
	m.bytes("sframe_secret", ks.secret, v.Secret)
	m.bytes("sframe_key", ks.key, v.Key)
	m.bytes("sframe_salt", ks.salt, v.Salt)

	k, err := DeriveKey(v.Suite, v.KID, v.BaseKey)
	if err != nil {
		m.add("DeriveKey: %v", err)
		return m.err()
	}
	m.bytes("Key's sframe_key", k.key, v.Key)
	m.bytes("Key's sframe_salt", k.salt[:], v.Salt)
	nonce := k.nonce(v.CTR)
	m.bytes("nonce", nonce[:], v.Nonce)
	m.bytes("aad", aad(Header{KID: v.KID, CTR: v.CTR}.AppendTo(nil), v.Metadata), v.AAD)

	// Encryption, through the Key and through a Sender at the counter.
	ct, err := k.seal(nil, v.CTR, v.Metadata, v.PT)
	if err != nil {
		m.add("seal: %v", err)
	}
	m.bytes("seal", ct, v.CT)
	s, err := NewSender(v.Suite, v.KID, v.BaseKey)
	if err != nil {
		m.add("NewSender: %v", err)
		return m.err()
	}
	if err := s.SetCounter(v.CTR); err != nil {
		m.add("SetCounter: %v", err)
	}
	ct, err = s.Encrypt([]byte("prefix"), v.Metadata, v.PT)
	if err != nil {
		m.add("Sender.Encrypt: %v", err)
	}
	m.bytes("Sender.Encrypt", ct, append([]byte("prefix"), v.CT...))

	// Decryption, through the Key and through a Receiver.
	want := Header{KID: v.KID, CTR: v.CTR}
	pt, h, err := k.Open(nil, v.Metadata, v.CT)
	if err != nil || h != want {
		m.add("Key.Open: header %+v, %v; want %+v", h, err, want)
	}
	m.bytes("Key.Open", pt, v.PT)
	r := NewReceiver(v.Suite, ReceiverOptions{})
	if err := r.SetKey(v.KID, v.BaseKey); err != nil {
		m.add("SetKey: %v", err)
		return m.err()
	}
	pt, h, err = r.Decrypt(nil, v.Metadata, v.CT)
	if err != nil || h != want {
		m.add("Receiver.Decrypt: header %+v, %v; want %+v", h, err, want)
	}
	m.bytes("Receiver.Decrypt", pt, v.PT)
	if _, _, err := r.Decrypt(nil, v.Metadata, v.CT); !errors.Is(err, ErrReplay) {
		m.add("second Receiver.Decrypt: %v, want ErrReplay", err)
	}

	// Any one bit changed in the frame or the metadata is refused.
	for bit := range 8 * len(v.CT) {
		if out, _, err := k.Open(nil, v.Metadata, flipBit(v.CT, bit)); err == nil || out != nil {
			m.add("Key.Open with frame bit %d flipped succeeded", bit)
		}
	}
	for bit := range 8 * len(v.Metadata) {
		if _, _, err := k.Open(nil, flipBit(v.Metadata, bit), v.CT); !errors.Is(err, ErrAuth) {
			m.add("Key.Open with metadata bit %d flipped: %v, want ErrAuth", bit, err)
		}
	}
	return m.err()
}

// TestVectors checks every case of every section of the RFC 9605 test
// vectors.
func TestVectors(t *testing.T) {
	vf := loadVectors(t)
	// The file is the RFC's; a case removed is as wrong as one changed.
	if len(vf.Header) != 289 || len(vf.CTRHMAC) != 3 || len(vf.SFrame) != 5 {
		t.Fatalf("%d header, %d aes_ctr_hmac, %d sframe cases; the RFC's file has 289, 3, 5",
			len(vf.Header), len(vf.CTRHMAC), len(vf.SFrame))
	}
	for i, v := range vf.Header {
		if err := checkHeaderVector(v); err != nil {
			t.Errorf("header case %d (kid %d, ctr %d):\n%v", i, v.KID, v.CTR, err)
		}
	}
	var suites []CipherSuite
	for i, v := range vf.CTRHMAC {
		suites = append(suites, v.Suite)
		if err := checkCTRHMACVector(v); err != nil {
			t.Errorf("aes_ctr_hmac case %d (%v):\n%v", i, v.Suite, err)
		}
	}
	if want := []CipherSuite{1, 2, 3}; !slices.Equal(suites, want) {
		t.Errorf("aes_ctr_hmac suites %v, want %v", suites, want)
	}
	suites = nil
	for i, v := range vf.SFrame {
		suites = append(suites, v.Suite)
		if err := checkSFrameVector(v); err != nil {
			t.Errorf("sframe case %d (%v):\n%v", i, v.Suite, err)
		}
	}
	if want := []CipherSuite{1, 2, 3, 4, 5}; !slices.Equal(suites, want) {
		t.Errorf("sframe suites %v, want %v", suites, want)
	}
}

// TestVectorsCatchTampering changes each value of each case in turn and
// requires its check to fail, so no field of the file is left unchecked.
func TestVectorsCatchTampering(t *testing.T) {
	vf := loadVectors(t)
	tamperEach(t, "header", vf.Header, checkHeaderVector)
	tamperEach(t, "aes_ctr_hmac", vf.CTRHMAC, checkCTRHMACVector)
	tamperEach(t, "sframe", vf.SFrame, checkSFrameVector)
}

func tamperEach[V any](t *testing.T, section string, cases []V, check func(V) error) {
	t.Helper()
	for i, c := range cases {
		typ := reflect.TypeFor[V]()
		for j := range typ.NumField() {
			changed := c // copy; byte slices are replaced, not written
			f := reflect.ValueOf(&changed).Elem().Field(j)
			switch f.Kind() {
			case reflect.Uint64, reflect.Uint16:
				f.SetUint(f.Uint() ^ 1)
			case reflect.Slice:
				b := slices.Clone(f.Bytes())
				if len(b) == 0 {
					b = []byte{0}
				} else {
					b[len(b)/2] ^= 0x10
				}
				f.SetBytes(b)
			default:
				t.Fatalf("%s: no way to tamper with a %v", section, f.Kind())
			}
			if check(changed) == nil {
				t.Errorf("%s case %d: changing %s goes unnoticed", section, i, typ.Field(j).Tag.Get("vec"))
			}
		}
	}
}

// TestDecodeVectorFileIsStrict: the decoder refuses what would let a value
// slip past unchecked, and keeps 64-bit integers exact.
func TestDecodeVectorFileIsStrict(t *testing.T) {
	good := `{"header":[{"kid":18446744073709551615,"ctr":9007199254740993,"encoded":"00"}],"aes_ctr_hmac":[],"sframe":[]}`
	vf, err := decodeVectorFile([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if h := vf.Header[0]; h.KID != 1<<64-1 || h.CTR != 1<<53+1 {
		t.Fatalf("integers not exact: %+v", h)
	}
	for _, tc := range []struct{ name, json string }{
		{"unknown case field", `{"header":[{"kid":0,"ctr":0,"encoded":"00","note":"x"}],"aes_ctr_hmac":[],"sframe":[]}`},
		{"missing case field", `{"header":[{"kid":0,"encoded":"00"}],"aes_ctr_hmac":[],"sframe":[]}`},
		{"duplicate case field", `{"header":[{"kid":0,"ctr":0,"ctr":1,"encoded":"00"}],"aes_ctr_hmac":[],"sframe":[]}`},
		{"unknown section", `{"header":[],"aes_ctr_hmac":[],"sframe":[],"extra":[]}`},
		{"missing section", `{"header":[],"sframe":[]}`},
		{"float counter", `{"header":[{"kid":0,"ctr":1.0,"encoded":"00"}],"aes_ctr_hmac":[],"sframe":[]}`},
		{"negative kid", `{"header":[{"kid":-1,"ctr":0,"encoded":"00"}],"aes_ctr_hmac":[],"sframe":[]}`},
		{"kid over 64 bits", `{"header":[{"kid":18446744073709551616,"ctr":0,"encoded":"00"}],"aes_ctr_hmac":[],"sframe":[]}`},
		{"odd hex", `{"header":[{"kid":0,"ctr":0,"encoded":"0"}],"aes_ctr_hmac":[],"sframe":[]}`},
		{"trailing data", `{"header":[],"aes_ctr_hmac":[],"sframe":[]} {}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeVectorFile([]byte(tc.json)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
