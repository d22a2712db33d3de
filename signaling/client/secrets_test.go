package client_test

// Looking for secrets where they must not be. TestE2EERelayMessagesAreOpaque
// collects every secret its clients held (base keys, the SFrame keys and
// salts derived from them, ratchets, identity private keys, X25519 shared
// secrets, seal keys) and searches every signaling frame and client log
// line for any 8-byte run of any of them, raw or encoded, after decoding
// what can be decoded. This file has the secrets' derivations, written out
// from their specifications and checked against the real implementations,
// and the search, which checks itself on planted leaks before it is
// trusted with a negative answer.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/sotto-rtc/sotto/media/sframe"
	"github.com/sotto-rtc/sotto/signaling/client"
)

// secret is one value a client held that the server must never see.
type secret struct {
	name string
	b    []byte
}

// Any run of a secret this long counts as a leak: 64 bits in raw bytes,
// 16 hex digits, 11 base64 characters (66 bits). A random match in the
// few hundred kilobytes searched has odds below 2^-40.
const (
	rawWindow = 8
	hexWindow = 2 * rawWindow
	b64Window = 11
)

// secretFinder knows every window of every encoding of the secrets.
type secretFinder struct {
	raw, hex, b64 map[string]string // window: which secret, in which encoding
	secrets       int
}

func newSecretFinder(t *testing.T, secrets []secret) *secretFinder {
	t.Helper()
	f := &secretFinder{raw: map[string]string{}, hex: map[string]string{}, b64: map[string]string{}}
	for _, s := range secrets {
		if len(s.b) < 12 {
			t.Fatalf("secret %s is %d bytes; every secret here is at least 12", s.name, len(s.b))
		}
		f.secrets++
		add := func(m map[string]string, enc string, w, step int, how string) {
			for i := 0; i+w <= len(enc); i += step {
				if _, ok := m[enc[i:i+w]]; !ok {
					m[enc[i:i+w]] = s.name + " (" + how + ")"
				}
			}
		}
		// A base64 window without +/ or -_ reads the same in both
		// alphabets; say so rather than name the first.
		addB64 := func(enc string, how string) {
			for i := 0; i+b64Window <= len(enc); i++ {
				w := enc[i : i+b64Window]
				if _, ok := f.b64[w]; ok {
					continue
				}
				label := how
				if !strings.ContainsAny(w, "+/-_") {
					label = "base64 or base64url" + how[strings.Index(how, ","):]
				}
				f.b64[w] = s.name + " (" + label + ")"
			}
		}
		add(f.raw, string(s.b), rawWindow, 1, "raw bytes")
		add(f.hex, hex.EncodeToString(s.b), hexWindow, 2, "hex") // searched in lowercased text: any case
		for _, a := range []struct {
			enc  *base64.Encoding
			name string
		}{{base64.RawStdEncoding, "base64"}, {base64.RawURLEncoding, "base64url"}} {
			// Inside a longer buffer the secret may start at any byte
			// offset mod 3; keep the characters that depend on its bytes
			// alone. Padded and unpadded forms share them.
			for shift := range 3 {
				e := a.enc.EncodeToString(append(make([]byte, shift), s.b...))
				e = e[[]int{0, 2, 3}[shift]:]
				if (shift+len(s.b))%3 != 0 {
					e = e[:len(e)-1]
				}
				addB64(e, fmt.Sprintf("%s, offset %d mod 3", a.name, shift))
			}
		}
	}
	return f
}

// find returns the first window of a secret in b: raw, hex in any case,
// or base64 in either alphabet.
func (f *secretFinder) find(b []byte) (what string, at int, found bool) {
	scan := func(m map[string]string, b []byte, w int) {
		for i := 0; !found && i+w <= len(b); i++ {
			if s, ok := m[string(b[i:i+w])]; ok {
				what, at, found = s, i, true
			}
		}
	}
	scan(f.raw, b, rawWindow)
	scan(f.hex, bytes.ToLower(b), hexWindow)
	scan(f.b64, b, b64Window)
	return what, at, found
}

// corpusItem is something the search looks at: a frame, a log, or what
// decoding one of them gave.
type corpusItem struct {
	where string
	b     []byte
}

var (
	// numbersRE: a byte slice printed as numbers ([]byte with %v, [N]byte
	// in JSON).
	numbersRE = regexp.MustCompile(`\d{1,3}(?:[ ,]+\d{1,3}){7,}`)
	// tokenRE: a run that could be base64 or hex.
	tokenRE  = regexp.MustCompile(`[A-Za-z0-9+/_=-]{11,}`)
	digitsRE = regexp.MustCompile(`\d+`)
)

// expand returns item and everything decoding it gives, to depth 3:
// JSON string values (so relay data in relay data is reached), escapes
// undone, numbers read as bytes, base64 and hex tokens decoded.
func expand(item corpusItem, depth int) []corpusItem {
	out := []corpusItem{item}
	if depth == 0 || len(item.b) == 0 {
		return out
	}
	more := func(how string, b []byte) {
		if len(b) >= rawWindow {
			out = append(out, expand(corpusItem{item.where + " → " + how, b}, depth-1)...)
		}
	}
	if bytes.IndexByte(item.b, '\\') >= 0 {
		out = append(out, corpusItem{item.where + " → escapes undone", unescape(item.b)})
	}
	for _, m := range numbersRE.FindAll(item.b, -1) {
		var b []byte
		for _, n := range digitsRE.FindAll(m, -1) {
			v, _ := strconv.Atoi(string(n))
			if v > 255 {
				b = nil
				break
			}
			b = append(b, byte(v))
		}
		out = append(out, corpusItem{item.where + " → numbers as bytes", b})
	}
	var v any
	if json.Valid(item.b) && json.Unmarshal(item.b, &v) == nil {
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				for k, e := range v {
					more("key "+strconv.Quote(k), []byte(k))
					walk(e)
				}
			case []any:
				for _, e := range v {
					walk(e)
				}
			case string:
				more("JSON string", []byte(v))
			}
		}
		walk(v)
	}
	for _, tok := range tokenRE.FindAll(item.b, -1) {
		s := string(tok)
		for _, d := range []struct {
			name string
			dec  func(string) ([]byte, error)
		}{
			{"base64", base64.StdEncoding.DecodeString},
			{"base64 unpadded", base64.RawStdEncoding.DecodeString},
			{"base64url", base64.URLEncoding.DecodeString},
			{"base64url unpadded", base64.RawURLEncoding.DecodeString},
			{"hex", hex.DecodeString},
		} {
			if b, err := d.dec(s); err == nil {
				more(d.name+" decoded", b)
			}
		}
	}
	return out
}

// unescape undoes the backslash escapes of Go (%q, slog's text handler)
// and JSON wherever they are, leaving anything else as it is: \xHH and
// octal give the byte, \uHHHH and \UHHHHHHHH the rune in UTF-8.
func unescape(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for s := string(b); s != ""; {
		if s[0] != '\\' {
			out, s = append(out, s[0]), s[1:]
			continue
		}
		if strings.HasPrefix(s, `\/`) { // JSON only
			out, s = append(out, '/'), s[2:]
			continue
		}
		v, multibyte, tail, err := strconv.UnquoteChar(s, '"')
		switch {
		case err != nil:
			out, s = append(out, s[0]), s[1:]
			continue
		case !multibyte && v < 256 && s[1] != 'u' && s[1] != 'U':
			out = append(out, byte(v))
		default:
			out = utf8.AppendRune(out, v)
		}
		s = tail
	}
	return out
}

// expandDepth is how deep expand decodes: JSON in a frame, a string in
// it, base64 in that.
const expandDepth = 3

// checkFinderFindsLeaks plants s in the forms a careless change would
// leak it in and fails unless the finder sees every one: a search that
// cannot fail proves nothing.
func checkFinderFindsLeaks(t *testing.T, f *secretFinder, s secret) {
	t.Helper()
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("e2ee: key", "key", s.b)
	var textLogged bytes.Buffer
	slog.New(slog.NewTextHandler(&textLogged, nil)).Info("e2ee: key", "key", s.b)
	longer := append(append([]byte{1, 2}, s.b...), 3, 4, 5)
	nested, _ := json.Marshal(map[string]any{"type": "relay", "data": map[string]string{
		"inner": fmt.Sprintf(`{"k":%q}`, base64.RawURLEncoding.EncodeToString(longer)),
	}})
	// Cut so that no decoder takes it: the window search alone must see
	// these.
	cut := base64.RawStdEncoding.EncodeToString(longer)
	for len(cut)%4 != 1 {
		cut = cut[:len(cut)-1]
	}
	oddHex := strings.ToUpper(hex.EncodeToString(longer))[1:]
	bs, _ := json.Marshal(struct{ K []byte }{s.b})
	var arr []int
	for _, c := range s.b {
		arr = append(arr, int(c))
	}
	ints, _ := json.Marshal(arr)
	for name, leak := range map[string][]byte{
		"raw":                          append(append([]byte("x"), s.b...), 'y'),
		"hex":                          []byte(hex.EncodeToString(s.b)),
		"HEX":                          []byte(strings.ToUpper(hex.EncodeToString(s.b))),
		"its first 8 bytes in hex":     []byte(hex.EncodeToString(s.b[:8])),
		"base64":                       []byte(base64.StdEncoding.EncodeToString(s.b)),
		"base64 unpadded":              []byte(base64.RawStdEncoding.EncodeToString(s.b)),
		"base64url":                    []byte(base64.URLEncoding.EncodeToString(s.b)),
		"base64url unpadded":           []byte(base64.RawURLEncoding.EncodeToString(s.b)),
		"base64, inside a buffer at 1": []byte(base64.StdEncoding.EncodeToString(longer[1:])),
		"base64, inside a buffer at 2": []byte(base64.StdEncoding.EncodeToString(longer)),
		"base64, cut undecodable":      []byte(cut),
		"HEX, cut undecodable":         []byte(oddHex),
		"a []byte field in JSON":       bs,
		"a JSON array of numbers":      ints,
		"Go %v":                        fmt.Appendf(nil, "key=%v", s.b),
		"Go %q":                        fmt.Appendf(nil, "key=%q", s.b),
		"slog JSON":                    logged.Bytes(),
		"slog text":                    textLogged.Bytes(),
		"base64url in JSON in a relay": nested,
	} {
		found := false
		for _, it := range expand(corpusItem{"planted " + name, leak}, expandDepth) {
			if _, _, ok := f.find(it.b); ok {
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("the search misses %s planted as %s: %q", s.name, name, leak)
		}
	}
}

// logBuffer collects a client's logs, debug and up, as JSON lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// options points a client's logger at l.
func (l *logBuffer) options(o *client.Options) {
	o.Logger = slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// identityPrivateKey returns the Ed25519 seed of a client's identity, and
// sessionPrivateKey the X25519 private key of its session. e2ee keeps both
// unexported and offers no way out, as it should; the test reads the
// fields by reflection rather than give the package an accessor
// production code could call. Each fails, rather than searching for
// nothing, if the field changes, and checks the key against the public
// one.
func identityPrivateKey(t *testing.T, c *client.Client) []byte {
	t.Helper()
	id := client.IdentityOf(c)
	if id == nil {
		t.Fatal("a client with E2EE on has no identity key")
	}
	priv := privateField[ed25519.PrivateKey](t, reflect.ValueOf(id), "e2ee.Identity")
	if !bytes.Equal(priv.Public().(ed25519.PublicKey), id.PublicKey()) {
		t.Fatal("the private key read from the identity does not give its public key")
	}
	return priv.Seed()
}

func sessionPrivateKey(t *testing.T, c *client.Client) *ecdh.PrivateKey {
	t.Helper()
	sk := client.SessionKeyOf(c)
	if sk == nil {
		t.Fatal("a client with E2EE on has no session key")
	}
	priv := privateField[*ecdh.PrivateKey](t, reflect.ValueOf(sk), "e2ee.SessionKey")
	if !bytes.Equal(priv.PublicKey().Bytes(), sk.PublicKey()) {
		t.Fatal("the private key read from the session key does not give its public key")
	}
	return priv
}

// privateField reads the unexported field priv, of type T, of *v.
func privateField[T any](t *testing.T, v reflect.Value, what string) T {
	t.Helper()
	f := v.Elem().FieldByName("priv")
	if !f.IsValid() || f.Type() != reflect.TypeFor[T]() {
		t.Fatalf("%s no longer holds its key in a priv %v field: update the test", what, reflect.TypeFor[T]())
	}
	return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface().(T)
}

// sframeSchedule is RFC 9605 section 4.4.2, derive_key_salt, for the
// AES-GCM suites with SHA-256:
//
//	secret = HKDF-Extract("", base_key)
//	key    = HKDF-Expand(secret, "SFrame 1.0 Secret key "  || KID (8 bytes) || suite (2 bytes), Nk)
//	salt   = HKDF-Expand(secret, "SFrame 1.0 Secret salt " || KID (8 bytes) || suite (2 bytes), Nn)
//
// written out here so the test does not trust media/sframe's code to tell
// it what to look for; checkSchedule then holds it to media/sframe.
func sframeSchedule(t *testing.T, suite sframe.CipherSuite, kid uint64, base []byte) (prk, key, salt []byte) {
	t.Helper()
	if suite.HashSize() != sha256.Size {
		t.Fatalf("suite %v: sframeSchedule does SHA-256 suites only", suite)
	}
	label := func(prefix string) string {
		b := binary.BigEndian.AppendUint64([]byte(prefix), kid)
		return string(binary.BigEndian.AppendUint16(b, uint16(suite)))
	}
	prk, err := hkdf.Extract(sha256.New, base, nil)
	if err == nil {
		key, err = hkdf.Expand(sha256.New, prk, label("SFrame 1.0 Secret key "), suite.KeySize())
	}
	if err == nil {
		salt, err = hkdf.Expand(sha256.New, prk, label("SFrame 1.0 Secret salt "), suite.NonceSize())
	}
	if err != nil {
		t.Fatal(err)
	}
	checkSchedule(t, suite, kid, base, key, salt)
	return prk, key, salt
}

// checkSchedule proves key and salt are what media/sframe derives from
// base for kid: a frame its Sender encrypted opens with AES-GCM under key
// and the nonce salt XOR counter, and with nothing else.
func checkSchedule(t *testing.T, suite sframe.CipherSuite, kid uint64, base, key, salt []byte) {
	t.Helper()
	snd, err := sframe.NewSender(suite, kid, base)
	if err != nil {
		t.Fatal(err)
	}
	meta, probe := []byte("metadata"), []byte("a frame to check the key schedule")
	frame, err := snd.Encrypt(nil, meta, probe)
	if err != nil {
		t.Fatal(err)
	}
	h, n, err := sframe.ParseHeader(frame)
	if err != nil {
		t.Fatal(err)
	}
	nonce := bytes.Clone(salt)
	for i := range 8 {
		nonce[len(nonce)-1-i] ^= byte(h.CTR >> (8 * i))
	}
	gcm := newGCM(t, key)
	aad := append(bytes.Clone(frame[:n]), meta...)
	if pt, err := gcm.Open(nil, nonce, frame[n:], aad); err != nil || !bytes.Equal(pt, probe) {
		t.Fatalf("KID %#x: the RFC 9605 key and salt computed here do not open media/sframe's frame (%v): one of them is wrong", kid, err)
	}
}

// sealedBox is one recipient's box of a key message.
type sealedBox struct {
	sender, recipient string
	kid               uint64
	sealed            []byte
}

// openBox opens a box as docs/E2EE.md ("Key messages") writes it, with
// the recipient session's private key and crypto/hpke directly:
//
//	box = 0x02 || HPKE-SealBase(recipient session key, info "sotto e2ee v2 key", aad "", body || sig)
//
// and returns the plaintext (body and signature). That the box opens
// proves it was sealed to that session.
func openBox(t *testing.T, b sealedBox, recipient *ecdh.PrivateKey) []byte {
	t.Helper()
	if len(b.sealed) < 1+32 || b.sealed[0] != 0x02 {
		t.Fatalf("%s's box for %s (KID %#x) is not a version 2 box", b.sender, b.recipient, b.kid)
	}
	priv, err := hpke.NewDHKEMPrivateKey(recipient)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte("sotto e2ee v2 key"), b.sealed[1:])
	if err != nil {
		t.Fatalf("%s's box for %s (KID %#x) does not open with the recipient's session key: %v", b.sender, b.recipient, b.kid, err)
	}
	return plain
}

// TestUnescapeUndoesQuoting holds unescape to the quoting it undoes, for
// any bytes: Go's %q (invalid UTF-8 included) and, for valid UTF-8, JSON.
func TestUnescapeUndoesQuoting(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		q := strconv.Quote(string(b))
		if got := unescape([]byte(q[1 : len(q)-1])); !bytes.Equal(got, b) {
			t.Fatalf("unescape(%s) = %q, want %q", q, got, b)
		}
		var runes []byte
		for range r.IntN(20) {
			runes = utf8.AppendRune(runes, rune(r.IntN(0x3000)))
		}
		for _, s := range []string{string(runes), strings.ToValidUTF8(string(b), "")} {
			j, _ := json.Marshal(s)
			if got := unescape(j[1 : len(j)-1]); string(got) != s {
				t.Fatalf("unescape(%s) = %q, want %q", j, got, s)
			}
		}
	}
}

// newGCM is AES-GCM under key, as both RFC 9605's AEAD suites and the seal
// use it.
func newGCM(t *testing.T, key []byte) cipher.AEAD {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return gcm
}
