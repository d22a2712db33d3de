package signaling_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

const (
	testKey     = "APIkey1"
	testSecret  = "secret-0123456789-abcdefghijklmn"
	otherKey    = "APIkey2"
	otherSecret = "other-secret-0123456789-abcdefgh"
)

// claimsAt are valid claims for identity in room, with exp, nbf and iat
// placed relative to now.
func claimsAt(identity, room string, exp, nbf time.Duration) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"sub":           identity,
		"room":          room,
		"can_publish":   true,
		"can_subscribe": true,
		"iat":           now.Add(-time.Minute).Unix(),
		"exp":           now.Add(exp).Unix(),
	}
	if nbf != 0 {
		c["nbf"] = now.Add(nbf).Unix()
	}
	return c
}

// sign signs claims with method and key, naming kid in the header (none
// when kid is empty).
func sign(t *testing.T, method jwt.SigningMethod, kid string, key any, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// algNone crafts an unsigned token by hand, the way an attacker would.
func algNone(t *testing.T, kid string, claims jwt.MapClaims) string {
	t.Helper()
	h, err := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": kid})
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + "."
}

// rs256 signs claims with a fresh RSA key, naming kid: a token whose
// algorithm the server must refuse even though the kid is known.
func rs256(t *testing.T, kid string, claims jwt.Claims) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return sign(t, jwt.SigningMethodRS256, kid, k, claims)
}

func hs(t *testing.T, kid, secret string, claims jwt.Claims) string {
	t.Helper()
	return sign(t, jwt.SigningMethodHS256, kid, []byte(secret), claims)
}

func without(c jwt.MapClaims, key string) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		if k != key {
			out[k] = v
		}
	}
	return out
}

func with(c jwt.MapClaims, key string, v any) jwt.MapClaims {
	out := without(c, key)
	out[key] = v
	return out
}

func TestVerify(t *testing.T) {
	v, err := signaling.NewVerifier(map[string]string{testKey: testSecret, otherKey: otherSecret}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	good := claimsAt("alice", "room1", time.Hour, 0)
	minted, err := wire.NewToken(testKey, testSecret, wire.Grant{Room: "room1", Identity: "alice", CanPublish: true})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		token string
		code  string // "" for accepted
	}{
		{"valid", hs(t, testKey, testSecret, good), ""},
		{"minted by NewToken", minted, ""},
		{"rotation: second key", hs(t, otherKey, otherSecret, good), ""},
		{"expired", hs(t, testKey, testSecret, claimsAt("alice", "room1", -time.Minute, 0)), wire.CodeTokenExpired},
		{"expired within leeway", hs(t, testKey, testSecret, claimsAt("alice", "room1", -5*time.Second, 0)), ""},
		{"not yet valid", hs(t, testKey, testSecret, claimsAt("alice", "room1", time.Hour, time.Minute)), wire.CodeTokenNotYetValid},
		{"nbf within leeway", hs(t, testKey, testSecret, claimsAt("alice", "room1", time.Hour, 5*time.Second)), ""},
		{"issued in the future", hs(t, testKey, testSecret, with(good, "iat", time.Now().Add(time.Hour).Unix())), wire.CodeTokenNotYetValid},
		{"wrong signature", hs(t, testKey, otherSecret, good), wire.CodeTokenSignature},
		{"tampered payload", tamper(t, hs(t, testKey, testSecret, good)), wire.CodeTokenSignature},
		{"alg none", algNone(t, testKey, good), wire.CodeTokenAlgorithm},
		{"alg RS256", rs256(t, testKey, good), wire.CodeTokenAlgorithm},
		{"alg HS384", sign(t, jwt.SigningMethodHS384, testKey, []byte(testSecret), good), wire.CodeTokenAlgorithm},
		{"alg HS512", sign(t, jwt.SigningMethodHS512, testKey, []byte(testSecret), good), wire.CodeTokenAlgorithm},
		{"unknown kid", hs(t, "nobody", testSecret, good), wire.CodeTokenUnknownKey},
		{"missing kid", hs(t, "", testSecret, good), wire.CodeTokenUnknownKey},
		{"empty", "", wire.CodeTokenMissing},
		{"garbage", "this is not a token", wire.CodeTokenMalformed},
		{"garbage segments", "a.b.c", wire.CodeTokenMalformed},
		{"missing sub", hs(t, testKey, testSecret, without(good, "sub")), wire.CodeTokenMalformed},
		{"empty sub", hs(t, testKey, testSecret, with(good, "sub", "")), wire.CodeTokenMalformed},
		{"long sub", hs(t, testKey, testSecret, with(good, "sub", strings.Repeat("a", 257))), wire.CodeTokenMalformed},
		{"missing room", hs(t, testKey, testSecret, without(good, "room")), wire.CodeTokenMalformed},
		{"long room", hs(t, testKey, testSecret, with(good, "room", strings.Repeat("r", 257))), wire.CodeTokenMalformed},
		{"missing exp", hs(t, testKey, testSecret, without(good, "exp")), wire.CodeTokenMalformed},
		{"grant of the wrong type", hs(t, testKey, testSecret, with(good, "can_publish", "yes")), wire.CodeTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(tt.token)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if c.Subject != "alice" || c.Room != "room1" {
					t.Fatalf("claims = sub %q room %q", c.Subject, c.Room)
				}
				return
			}
			var te *signaling.TokenError
			if !errors.As(err, &te) {
				t.Fatalf("Verify = %v, %v; want a *TokenError with code %s", c, err, tt.code)
			}
			if te.Code != tt.code {
				t.Fatalf("code = %s (%v), want %s", te.Code, err, tt.code)
			}
		})
	}
}

// tamper flips the room in a signed token's payload, keeping the
// signature.
func tamper(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	p, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	p = []byte(strings.Replace(string(p), `"room1"`, `"room2"`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(p)
	return strings.Join(parts, ".")
}

func TestGrantsDenyByDefault(t *testing.T) {
	v, err := signaling.NewVerifier(map[string]string{testKey: testSecret}, 0)
	if err != nil {
		t.Fatal(err)
	}
	tok := hs(t, testKey, testSecret, jwt.MapClaims{"sub": "bob", "room": "r", "exp": time.Now().Add(time.Hour).Unix()})
	c, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.CanPublish || c.CanSubscribe {
		t.Fatalf("absent grants gave publish=%v subscribe=%v", c.CanPublish, c.CanSubscribe)
	}
}

func TestNewToken(t *testing.T) {
	v, err := signaling.NewVerifier(map[string]string{testKey: testSecret}, 0)
	if err != nil {
		t.Fatal(err)
	}
	nbf := time.Now().Add(time.Hour)
	tests := []struct {
		name    string
		key     string
		secret  string
		grant   wire.Grant
		wantErr string // substring naming the bad input; "" for success
	}{
		{"ok", testKey, testSecret, wire.Grant{Room: "r", Identity: "alice", CanSubscribe: true, TTL: time.Minute}, ""},
		{"empty key", "", testSecret, wire.Grant{Room: "r", Identity: "alice"}, "api key"},
		{"empty secret", testKey, "", wire.Grant{Room: "r", Identity: "alice"}, "api secret"},
		{"short secret", testKey, "short", wire.Grant{Room: "r", Identity: "alice"}, "at least 16"},
		{"empty room", testKey, testSecret, wire.Grant{Identity: "alice"}, "room"},
		{"empty identity", testKey, testSecret, wire.Grant{Room: "r"}, "identity"},
		{"long identity", testKey, testSecret, wire.Grant{Room: "r", Identity: strings.Repeat("x", 300)}, "identity"},
		{"negative ttl", testKey, testSecret, wire.Grant{Room: "r", Identity: "alice", TTL: -time.Second}, "ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := wire.NewToken(tt.key, tt.secret, tt.grant)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewToken error = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject != "alice" || c.Room != "r" || c.CanPublish || !c.CanSubscribe {
				t.Fatalf("claims = %+v", c)
			}
			if ttl := c.ExpiresAt.Sub(c.IssuedAt.Time); ttl != time.Minute {
				t.Fatalf("exp - iat = %v, want 1m", ttl)
			}
		})
	}

	t.Run("default ttl and not before", func(t *testing.T) {
		tok, err := wire.NewToken(testKey, testSecret, wire.Grant{Room: "r", Identity: "alice", NotBefore: nbf})
		if err != nil {
			t.Fatal(err)
		}
		var te *signaling.TokenError
		if _, err := v.Verify(tok); !errors.As(err, &te) || te.Code != wire.CodeTokenNotYetValid {
			t.Fatalf("Verify = %v, want %s", err, wire.CodeTokenNotYetValid)
		}
		c := &wire.Claims{}
		if _, _, err := jwt.NewParser().ParseUnverified(tok, c); err != nil {
			t.Fatal(err)
		}
		if ttl := c.ExpiresAt.Sub(c.IssuedAt.Time); ttl != wire.DefaultTokenTTL {
			t.Fatalf("default ttl = %v, want %v", ttl, wire.DefaultTokenTTL)
		}
	})
}

func TestNewVerifierRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		keys    map[string]string
		leeway  time.Duration
		wantErr string
	}{
		{"no keys", nil, 0, "no api keys"},
		{"empty key", map[string]string{"": testSecret}, 0, "empty"},
		{"short secret", map[string]string{testKey: "short"}, 0, "at least 16"},
		{"negative leeway", map[string]string{testKey: testSecret}, -time.Second, "negative"},
		{"leeway above cap", map[string]string{testKey: testSecret}, 2 * time.Minute, "cap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := signaling.NewVerifier(tt.keys, tt.leeway)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewVerifier error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
