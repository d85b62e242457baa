// Package token issues and verifies the service's access tokens: HS256 JWTs
// that name the user (sub) and the server-side session (sid) they belong to.
package token

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer and Audience are written into every token and required when one is
// verified. A service that verifies tokens with the shared SECRET_KEY should
// check them too.
const (
	Issuer   = "fiberauth"
	Audience = "fiberauth"
)

// MaxLength is the longest token accepted; longer input is refused before
// any parsing. Tokens issued here are about 300 bytes.
const MaxLength = 2048

// ErrInvalid is returned for every token that must be refused: malformed,
// badly signed, of another algorithm, expired, not yet valid, too long, or
// without the required claims. The reasons are deliberately not told apart
// to the client.
var ErrInvalid = errors.New("token: invalid")

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
}

// NewManager returns a Manager signing with key; tokens live for lifetime.
// now may be nil for time.Now.
func NewManager(key []byte, lifetime time.Duration, now func() time.Time) *Manager {
	if now == nil {
		now = time.Now
	}
	m := &Manager{key: key, lifetime: lifetime, now: now}
	m.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(Issuer),
		jwt.WithAudience(Audience),
		jwt.WithTimeFunc(func() time.Time { return m.now() }),
		jwt.WithLeeway(5*time.Second),
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
// and that it names a subject and a session.
func (m *Manager) Verify(raw string) (*Claims, error) {
	return m.parse(m.parser, raw)
}

// VerifySignature checks only that the token was signed here and names a
// subject and a session; its times are not checked. Revocation uses it so
// that an expired token's session can still be ended.
func (m *Manager) VerifySignature(raw string) (*Claims, error) {
	return m.parse(m.lenient, raw)
}

func (m *Manager) parse(p *jwt.Parser, raw string) (*Claims, error) {
	if raw == "" || len(raw) > MaxLength {
		return nil, ErrInvalid
	}
	var c Claims
	_, err := p.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return m.key, nil })
	if err != nil {
		return nil, ErrInvalid
	}
	if c.Subject == "" || c.SessionID == "" {
		return nil, ErrInvalid
	}
	return &c, nil
}
