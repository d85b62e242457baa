// Package token issues and verifies the service's access tokens: HS256 JWTs
// that name the user (sub) and the server-side session (sid) they belong to.
package token

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"sync/atomic"
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

// leeway is the clock skew tolerated on exp, nbf and iat.
const leeway = 5 * time.Second

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

	// verified remembers tokens whose signature and claims checked out,
	// so that a token used again costs a map lookup and a time check
	// instead of an HMAC and two JSON decodings. Whether its session
	// still exists is checked by the caller on every use.
	verified  sync.Map // raw token -> *verifiedToken
	nVerified atomic.Int64
	puts      atomic.Int64
	sweeping  sync.Mutex
}

// verifiedToken is a cache entry: the claims and when they were checked.
type verifiedToken struct {
	claims *Claims
	at     time.Time
}

// The verified-token cache holds at most maxVerified entries, each for at
// most verifiedFor; stale entries are swept every sweepEvery insertions.
const (
	maxVerified = 10000
	verifiedFor = time.Minute
	sweepEvery  = 1024
)

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
	now := m.now()
	if v, ok := m.verified.Load(raw); ok {
		e := v.(*verifiedToken)
		if now.Sub(e.at) < verifiedFor {
			if m.timely(e.claims) {
				return e.claims, nil
			}
			return nil, ErrInvalid
		}
		m.forget(raw)
	}
	c, err := m.parse(m.parser, raw)
	if err != nil {
		return nil, err
	}
	if m.puts.Add(1)%sweepEvery == 0 || m.nVerified.Load() >= maxVerified {
		m.sweep(now)
	}
	if m.nVerified.Load() < maxVerified {
		if _, loaded := m.verified.Swap(raw, &verifiedToken{claims: c, at: now}); !loaded {
			m.nVerified.Add(1)
		}
	}
	return c, nil
}

// sweep drops cache entries older than verifiedFor or whose token expired.
func (m *Manager) sweep(now time.Time) {
	m.sweeping.Lock()
	defer m.sweeping.Unlock()
	m.verified.Range(func(k, v any) bool {
		e := v.(*verifiedToken)
		if now.Sub(e.at) >= verifiedFor || !m.timely(e.claims) {
			m.forget(k.(string))
		}
		return true
	})
}

func (m *Manager) forget(raw string) {
	if _, loaded := m.verified.LoadAndDelete(raw); loaded {
		m.nVerified.Add(-1)
	}
}

// timely repeats, for a cached token, the time checks of the parser: not
// expired and already valid, with the same leeway.
func (m *Manager) timely(c *Claims) bool {
	now := m.now()
	if c.ExpiresAt == nil || !now.Before(c.ExpiresAt.Add(leeway)) {
		return false
	}
	if c.NotBefore != nil && now.Add(leeway).Before(c.NotBefore.Time) {
		return false
	}
	if c.IssuedAt != nil && now.Add(leeway).Before(c.IssuedAt.Time) {
		return false
	}
	return true
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
