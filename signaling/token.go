package signaling

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// TokenError is why a token was refused; Code is one of the wire token
// codes, sent to the client as is.
type TokenError struct {
	Code string
	Err  error
}

func (e *TokenError) Error() string {
	if e.Err == nil {
		return "signaling: token refused: " + e.Code
	}
	return "signaling: token refused: " + e.Code + ": " + e.Err.Error()
}

func (e *TokenError) Unwrap() error { return e.Err }

func tokenError(code string, err error) *TokenError {
	return &TokenError{Code: code, Err: err}
}

// Verifier checks access tokens against a set of API keys. It is safe for
// concurrent use.
type Verifier struct {
	secrets map[string][]byte // by API key (the token's kid)
	parser  *jwt.Parser
}

// NewVerifier returns a verifier accepting tokens signed with any of keys
// (API key -> secret). leeway is the clock skew tolerated on exp, nbf and
// iat: 0 means DefaultTokenLeeway, more than MaxTokenLeeway is refused.
func NewVerifier(keys map[string]string, leeway time.Duration) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, errors.New("signaling: verifier: no api keys")
	}
	switch {
	case leeway < 0:
		return nil, fmt.Errorf("signaling: verifier: leeway %v is negative", leeway)
	case leeway > wire.MaxTokenLeeway:
		return nil, fmt.Errorf("signaling: verifier: leeway %v exceeds the %v cap", leeway, wire.MaxTokenLeeway)
	case leeway == 0:
		leeway = wire.DefaultTokenLeeway
	}
	secrets := make(map[string][]byte, len(keys))
	for k, s := range keys {
		if k == "" {
			return nil, errors.New("signaling: verifier: an api key is empty")
		}
		if len(s) < wire.MinSecretBytes {
			return nil, fmt.Errorf("signaling: verifier: secret of api key %q is %d bytes; at least %d are required", k, len(s), wire.MinSecretBytes)
		}
		secrets[k] = []byte(s)
	}
	return &Verifier{
		secrets: secrets,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{wire.TokenAlgorithm}),
			jwt.WithLeeway(leeway),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
		),
	}, nil
}

// Verify checks token's algorithm, key, signature, times and required
// claims, and returns its claims. Every refusal is a *TokenError.
func (v *Verifier) Verify(token string) (*wire.Claims, error) {
	if token == "" {
		return nil, tokenError(wire.CodeTokenMissing, errors.New("no token"))
	}
	var c wire.Claims
	t, err := v.parser.ParseWithClaims(token, &c, v.key)
	if err != nil {
		return nil, classifyTokenError(t, err)
	}
	switch {
	case c.Subject == "":
		return nil, tokenError(wire.CodeTokenMalformed, errors.New("sub claim is missing"))
	case len(c.Subject) > wire.MaxClaimBytes:
		return nil, tokenError(wire.CodeTokenMalformed, fmt.Errorf("sub claim is longer than %d bytes", wire.MaxClaimBytes))
	case c.Room == "":
		return nil, tokenError(wire.CodeTokenMalformed, errors.New("room claim is missing"))
	case len(c.Room) > wire.MaxClaimBytes:
		return nil, tokenError(wire.CodeTokenMalformed, fmt.Errorf("room claim is longer than %d bytes", wire.MaxClaimBytes))
	}
	return &c, nil
}

// key is the jwt keyfunc. It checks the algorithm again, so that only
// HS256 passes even if the parser's options change.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	if m, ok := t.Method.(*jwt.SigningMethodHMAC); !ok || m.Alg() != wire.TokenAlgorithm {
		return nil, tokenError(wire.CodeTokenAlgorithm, fmt.Errorf("algorithm %v is not %s", t.Header["alg"], wire.TokenAlgorithm))
	}
	kid, ok := t.Header["kid"].(string)
	if !ok || kid == "" {
		return nil, tokenError(wire.CodeTokenUnknownKey, errors.New("no kid in the token header"))
	}
	secret, ok := v.secrets[kid]
	if !ok {
		return nil, tokenError(wire.CodeTokenUnknownKey, fmt.Errorf("kid %q names no configured key", truncate(kid, 64)))
	}
	return secret, nil
}

// classifyTokenError maps a jwt failure to the protocol's codes. jwt reports
// a refused algorithm as a bad signature, so the header is checked first.
func classifyTokenError(t *jwt.Token, err error) *TokenError {
	var te *TokenError
	if errors.As(err, &te) {
		return te
	}
	if errors.Is(err, jwt.ErrTokenMalformed) {
		return tokenError(wire.CodeTokenMalformed, err)
	}
	if t != nil && t.Header != nil {
		if alg, _ := t.Header["alg"].(string); alg != wire.TokenAlgorithm {
			return tokenError(wire.CodeTokenAlgorithm, fmt.Errorf("algorithm %q is not %s", truncate(alg, 32), wire.TokenAlgorithm))
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return tokenError(wire.CodeTokenSignature, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return tokenError(wire.CodeTokenExpired, err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return tokenError(wire.CodeTokenNotYetValid, err)
	default:
		// A missing exp, a claim of the wrong type, anything else: malformed.
		return tokenError(wire.CodeTokenMalformed, err)
	}
}

// truncate bounds a client-supplied string before it goes into an error
// message or a log line.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
