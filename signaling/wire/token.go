package wire

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

// TokenAlgorithm is the only signing algorithm accepted. One algorithm means
// a token can never choose how it is checked ("alg":"none", or an RSA public
// key used as an HMAC secret).
const TokenAlgorithm = "HS256"

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
		return "", errors.New("wire: new token: api key is empty")
	case apiSecret == "":
		return "", errors.New("wire: new token: api secret is empty")
	case len(apiSecret) < MinSecretBytes:
		return "", fmt.Errorf("wire: new token: api secret is %d bytes; at least %d are required", len(apiSecret), MinSecretBytes)
	case g.Room == "":
		return "", errors.New("wire: new token: room is empty")
	case len(g.Room) > MaxClaimBytes:
		return "", fmt.Errorf("wire: new token: room is %d bytes; at most %d are allowed", len(g.Room), MaxClaimBytes)
	case g.Identity == "":
		return "", errors.New("wire: new token: identity is empty")
	case len(g.Identity) > MaxClaimBytes:
		return "", fmt.Errorf("wire: new token: identity is %d bytes; at most %d are allowed", len(g.Identity), MaxClaimBytes)
	case g.TTL < 0:
		return "", fmt.Errorf("wire: new token: ttl %v is negative", g.TTL)
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
		return "", fmt.Errorf("wire: new token: %w", err)
	}
	return s, nil
}

// TokenError is why a token was refused. Code is one of the protocol's
// token codes (CodeTokenMissing, CodeTokenMalformed, CodeTokenAlgorithm,
