package signaling

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Access tokens are JWTs signed with HS256 by the application's backend,
// which shares a secret with this server. The JWT header's "kid" is the API
// key: it names the secret, so an operator can add a new key, move the
// backend to it and remove the old one without refusing anyone.

// tokenAlgorithm is the only signing algorithm accepted. One algorithm means
// a token can never choose how it is checked ("alg":"none", or an RSA public
// key used as an HMAC secret).
const tokenAlgorithm = "HS256"

const (
	// MinSecretBytes is the shortest API secret accepted. HS256 with a
	// short secret can be brute-forced offline from any one token.
	MinSecretBytes = 16
	// MaxClaimBytes bounds the sub (identity) and room claims.
	MaxClaimBytes = 256
	// DefaultTokenTTL is the lifetime NewToken gives a token when the
	// grant does not say.
	DefaultTokenTTL = 6 * time.Hour
	// DefaultTokenLeeway is the clock skew tolerated on exp, nbf and iat
	// when the verifier is given none.
	DefaultTokenLeeway = 10 * time.Second
	// MaxTokenLeeway caps the tolerated clock skew: more would keep an
	// expired token usable for long.
	MaxTokenLeeway = 60 * time.Second
)

// Grant is what an access token allows: whom it names, which room it opens
// and what its holder may do there.
type Grant struct {
	// Room is the room the token admits to. Required.
	Room string
	// Identity becomes the participant's identity (the token's sub).
	// Required.
	Identity string
	// CanPublish allows sending media; CanSubscribe allows receiving it.
	// Both default to false: a token grants nothing it does not say.
	CanPublish   bool
	CanSubscribe bool
	// TTL is the token's lifetime from now; 0 means DefaultTokenTTL.
	TTL time.Duration
	// NotBefore, when set, is the time before which the token is refused.
	NotBefore time.Time
}

// Claims are the claims of a Sotto access token. Subject (sub) is the
// identity; ExpiresAt (exp) is required; NotBefore (nbf) and IssuedAt (iat)
// are checked when present.
type Claims struct {
	jwt.RegisteredClaims
	// Room is the only room the token admits to.
	Room string `json:"room"`
	// CanPublish and CanSubscribe are the grants; absent means false.
	CanPublish   bool `json:"can_publish"`
	CanSubscribe bool `json:"can_subscribe"`
}

// NewToken signs an access token for g with HS256, naming apiKey in the
// header's kid so that the verifier finds apiSecret by it.
func NewToken(apiKey, apiSecret string, g Grant) (string, error) {
	switch {
	case apiKey == "":
		return "", errors.New("signaling: new token: api key is empty")
	case apiSecret == "":
		return "", errors.New("signaling: new token: api secret is empty")
	case len(apiSecret) < MinSecretBytes:
		return "", fmt.Errorf("signaling: new token: api secret is %d bytes; at least %d are required", len(apiSecret), MinSecretBytes)
	case g.Room == "":
		return "", errors.New("signaling: new token: room is empty")
	case len(g.Room) > MaxClaimBytes:
		return "", fmt.Errorf("signaling: new token: room is %d bytes; at most %d are allowed", len(g.Room), MaxClaimBytes)
	case g.Identity == "":
		return "", errors.New("signaling: new token: identity is empty")
	case len(g.Identity) > MaxClaimBytes:
		return "", fmt.Errorf("signaling: new token: identity is %d bytes; at most %d are allowed", len(g.Identity), MaxClaimBytes)
	case g.TTL < 0:
		return "", fmt.Errorf("signaling: new token: ttl %v is negative", g.TTL)
	}
	ttl := g.TTL
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	now := time.Now()
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   g.Identity,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Room:         g.Room,
		CanPublish:   g.CanPublish,
		CanSubscribe: g.CanSubscribe,
	}
	if !g.NotBefore.IsZero() {
		c.NotBefore = jwt.NewNumericDate(g.NotBefore)
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	t.Header["kid"] = apiKey
	s, err := t.SignedString([]byte(apiSecret))
	if err != nil {
		return "", fmt.Errorf("signaling: new token: %w", err)
	}
	return s, nil
}

// TokenError is why a token was refused. Code is one of the protocol's
// token codes (CodeTokenMissing, CodeTokenMalformed, CodeTokenAlgorithm,
// CodeTokenUnknownKey, CodeTokenSignature, CodeTokenExpired,
// CodeTokenNotYetValid); the server sends it to the client as is.
type TokenError struct {
	Code string
	Err  error
}

// Error implements error.
func (e *TokenError) Error() string {
	if e.Err == nil {
		return "signaling: token refused: " + e.Code
	}
	return "signaling: token refused: " + e.Code + ": " + e.Err.Error()
}

// Unwrap returns the underlying cause, often a jwt package error.
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
	case leeway > MaxTokenLeeway:
		return nil, fmt.Errorf("signaling: verifier: leeway %v exceeds the %v cap", leeway, MaxTokenLeeway)
	case leeway == 0:
		leeway = DefaultTokenLeeway
	}
	secrets := make(map[string][]byte, len(keys))
	for k, s := range keys {
		if k == "" {
			return nil, errors.New("signaling: verifier: an api key is empty")
		}
		if len(s) < MinSecretBytes {
			return nil, fmt.Errorf("signaling: verifier: secret of api key %q is %d bytes; at least %d are required", k, len(s), MinSecretBytes)
		}
		secrets[k] = []byte(s)
	}
	return &Verifier{
		secrets: secrets,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{tokenAlgorithm}),
			jwt.WithLeeway(leeway),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
		),
	}, nil
}

// Verify checks token's algorithm, key, signature, times and required
// claims, and returns its claims. Every refusal is a *TokenError.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, tokenError(CodeTokenMissing, errors.New("no token"))
	}
	var c Claims
	t, err := v.parser.ParseWithClaims(token, &c, v.key)
	if err != nil {
		return nil, classifyTokenError(t, err)
	}
	switch {
	case c.Subject == "":
		return nil, tokenError(CodeTokenMalformed, errors.New("sub claim is missing"))
	case len(c.Subject) > MaxClaimBytes:
		return nil, tokenError(CodeTokenMalformed, fmt.Errorf("sub claim is longer than %d bytes", MaxClaimBytes))
	case c.Room == "":
		return nil, tokenError(CodeTokenMalformed, errors.New("room claim is missing"))
	case len(c.Room) > MaxClaimBytes:
		return nil, tokenError(CodeTokenMalformed, fmt.Errorf("room claim is longer than %d bytes", MaxClaimBytes))
	}
	return &c, nil
}

// key is the jwt keyfunc. The parser has already refused every algorithm
// but HS256; checking again here keeps that true if the parser's options
// ever change.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	if m, ok := t.Method.(*jwt.SigningMethodHMAC); !ok || m.Alg() != tokenAlgorithm {
		return nil, tokenError(CodeTokenAlgorithm, fmt.Errorf("algorithm %v is not %s", t.Header["alg"], tokenAlgorithm))
	}
	kid, ok := t.Header["kid"].(string)
	if !ok || kid == "" {
		return nil, tokenError(CodeTokenUnknownKey, errors.New("no kid in the token header"))
	}
	secret, ok := v.secrets[kid]
	if !ok {
		return nil, tokenError(CodeTokenUnknownKey, fmt.Errorf("kid %q names no configured key", truncate(kid, 64)))
	}
	return secret, nil
}

// classifyTokenError maps a jwt parse failure to the protocol's codes. The
// jwt package reports a refused algorithm as an invalid signature, so the
// algorithm is checked on the parsed header first.
func classifyTokenError(t *jwt.Token, err error) *TokenError {
	var te *TokenError
	if errors.As(err, &te) {
		return te
	}
	if errors.Is(err, jwt.ErrTokenMalformed) {
		return tokenError(CodeTokenMalformed, err)
	}
	if t != nil && t.Header != nil {
		if alg, _ := t.Header["alg"].(string); alg != tokenAlgorithm {
			return tokenError(CodeTokenAlgorithm, fmt.Errorf("algorithm %q is not %s", truncate(alg, 32), tokenAlgorithm))
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return tokenError(CodeTokenSignature, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return tokenError(CodeTokenExpired, err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return tokenError(CodeTokenNotYetValid, err)
	default:
		// A required claim missing (exp), a claim of the wrong type, and
		// anything the jwt package adds later: refuse as malformed.
		return tokenError(CodeTokenMalformed, err)
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
