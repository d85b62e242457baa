// Package token issues and verifies the service's access tokens: JWTs that
// name the user (sub) and the server-side session (sid) they belong to.
package token

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"fiberauth/app/cache"
)

// Issuer and Audience are written into every token and required when one is
// verified. A service that verifies tokens with the shared SECRET_KEY should
// check them too.
const (
	Issuer   = "fiberauth"
	Audience = "fiberauth"
)

// leeway is the clock skew tolerated on exp, nbf and iat.
const leeway = 5 * time.Second

// MaxLength is the longest token accepted; longer input is refused before
// any parsing. Tokens issued here are about 300 bytes.
const MaxLength = 2048

// ErrInvalid is returned, wrapped in one of the errors below, for every
// token that must be refused. Each says why in words a client may be shown.
var ErrInvalid = errors.New("token: invalid")

// The reasons a token is refused; each wraps ErrInvalid.
var (
	ErrMalformed = fmt.Errorf("%w: The access token is malformed", ErrInvalid)
	ErrSignature = fmt.Errorf("%w: The access token signature is invalid", ErrInvalid)
	ErrExpired   = fmt.Errorf("%w: The access token expired", ErrInvalid)
	ErrNotYet    = fmt.Errorf("%w: The access token is not valid yet", ErrInvalid)
	ErrForeign   = fmt.Errorf("%w: The access token was not issued by this service", ErrInvalid)
)

// Reason returns the words of a refusal ("The access token expired"), or
// a generic sentence for other errors.
func Reason(err error) string {
	for _, e := range []error{ErrMalformed, ErrSignature, ErrExpired, ErrNotYet, ErrForeign} {
		if errors.Is(err, e) {
			return e.Error()[len(ErrInvalid.Error())+2:]
		}
	}
	return "The access token is invalid"
}

// Claims are the claims of an access token.
type Claims struct {
	// SessionID names the server-side session the token belongs to.
	SessionID string `json:"sid"`
	jwt.RegisteredClaims
}

// Manager signs and verifies tokens with one key.
type Manager struct {
	key      []byte
	lifetime time.Duration
	now      func() time.Time
	parser   *jwt.Parser
	// lenient checks only the signature and the claims' presence, for
	// revocation of expired tokens.
	lenient *jwt.Parser

	// verified remembers tokens whose signature and claims checked out,
	// so that a token used again costs a map lookup and a time check
	// instead of a signature check and two JSON decodings. Whether its
	// session still exists is checked by the caller on every use.
	verified *cache.Cache[string, *Claims]
}

// The verified-token cache holds about maxVerified entries, each for at
// most verifiedFor.
const (
	maxVerified = 10000
	verifiedFor = time.Minute
)

// NewManager returns a Manager signing with key; tokens live for lifetime.
// now may be nil for time.Now.
func NewManager(key []byte, lifetime time.Duration, now func() time.Time) *Manager {
	if now == nil {
		now = time.Now
	}
	m := &Manager{key: key, lifetime: lifetime, now: now,
		verified: cache.New[string, *Claims](maxVerified, verifiedFor, now)}
	m.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(Issuer),
		jwt.WithAudience(Audience),
		jwt.WithTimeFunc(func() time.Time { return m.now() }),
		jwt.WithLeeway(leeway),
		jwt.WithStrictDecoding(),
	)
	m.lenient = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithoutClaimsValidation(),
		jwt.WithStrictDecoding(),
	)
	return m
}

// Lifetime is how long issued tokens are valid.
func (m *Manager) Lifetime() time.Duration { return m.lifetime }

// NewSessionID returns a fresh random session id (128 bits, URL-safe).
func NewSessionID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Issue signs a token for subject and session, valid from issuedAt for the
// manager's lifetime, and returns it with its expiry.
func (m *Manager) Issue(subject, sessionID string, issuedAt time.Time) (string, time.Time, error) {
	iat := issuedAt.Truncate(time.Second)
	exp := iat.Add(m.lifetime)
	claims := Claims{
		SessionID: sessionID,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{Audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(iat),
			IssuedAt:  jwt.NewNumericDate(iat),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(m.key)
	return s, exp, err
}

// Verify checks a token's signature, algorithm, issuer, audience and times,
// and that it names a subject and a session. The returned claims are shared
// and must not be modified.
func (m *Manager) Verify(raw string) (*Claims, error) {
	if c, ok := m.verified.Get(raw); ok {
		if err := m.timely(c); err != nil {
			return nil, err
		}
		return c, nil
	}
	c, err := m.parse(m.parser, raw)
	if err != nil {
		return nil, err
	}
	m.verified.Put(raw, c)
	return c, nil
}

// timely repeats, for a cached token, the time checks of the parser: not
// expired and already valid, with the same leeway.
func (m *Manager) timely(c *Claims) error {
	now := m.now()
	if c.ExpiresAt == nil || !now.Before(c.ExpiresAt.Add(leeway)) {
		return ErrExpired
	}
	if c.NotBefore != nil && now.Add(leeway).Before(c.NotBefore.Time) {
		return ErrNotYet
	}
	if c.IssuedAt != nil && now.Add(leeway).Before(c.IssuedAt.Time) {
		return ErrNotYet
	}
	return nil
}

// VerifySignature checks only that the token was signed here and names a
// subject and a session; its times are not checked. Revocation uses it so
// that an expired token's session can still be ended.
func (m *Manager) VerifySignature(raw string) (*Claims, error) {
	return m.parse(m.lenient, raw)
}

func (m *Manager) parse(p *jwt.Parser, raw string) (*Claims, error) {
	if raw == "" || len(raw) > MaxLength {
		return nil, ErrMalformed
	}
	var c Claims
	_, err := p.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return m.key, nil })
	if err != nil {
		return nil, classify(err)
	}
	if c.Subject == "" || c.SessionID == "" {
		return nil, ErrForeign
	}
	return &c, nil
}

// classify maps the JWT library's errors to the reasons above.
func classify(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrNotYet
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ErrSignature
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// An algorithm other than the one this service signs with.
		return ErrSignature
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidAudience),
		errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return ErrForeign
	}
	return ErrMalformed
}
