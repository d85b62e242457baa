// Package token issues and verifies the service's access tokens: JWTs that
// name the user (sub) and the server-side session (sid) they belong to,
// signed with Ed25519 keys (alg EdDSA, RFC 8037) that carry a key id (kid)
// and are published as a JWK set for other services. Tokens of earlier
// releases, signed with the HS256 secret, are accepted until they expire.
package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"fiberauth/app/cache"
)

// Audience is written into every token and required when one is
// verified; the issuer is the service's ISSUER URL.
const Audience = "fiberauth"

// LegacyIssuer is the issuer of the HS256 tokens of earlier releases.
const LegacyIssuer = "fiberauth"

// leeway is the clock skew tolerated on exp, nbf and iat.
const leeway = 5 * time.Second

// MaxLength is the longest token accepted; longer input is refused before
// any parsing. Tokens issued here are about 400 bytes.
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
	// Scope is the space-separated scopes the token grants (RFC 8693 §4.2).
	Scope string `json:"scope,omitempty"`
	// AMR lists how the person signed in (RFC 8176): "pwd", "otp".
	AMR []string `json:"amr,omitempty"`
	// ClientID names the application the token was issued to (RFC 9068),
	// absent for tokens of this service's own sign-ins.
	ClientID string `json:"client_id,omitempty"`
	jwt.RegisteredClaims

	// kid is the key that signed the token ("" for a legacy token).
	kid string
}

// Signing algorithms. EdDSA (Ed25519) signs access tokens; ID tokens are
// signed RS256 (which OpenID Connect requires every provider to offer)
// unless their client asked for EdDSA.
const (
	EdDSA = "EdDSA"
	RS256 = "RS256"
)

// Key is a signing key: Ed25519 (Private, Public) or RSA (RSA).
type Key struct {
	ID        string
	Alg       string
	Private   ed25519.PrivateKey
	Public    ed25519.PublicKey
	RSA       *rsa.PrivateKey
	CreatedAt time.Time
	// PublishAt is when the key starts signing; it is in the JWK set from
	// its creation, so that verifiers learn it first.
	PublishAt time.Time
}

// verifyKey is what verifies the key's signatures.
func (k Key) verifyKey() any {
	if k.Alg == RS256 {
		return &k.RSA.PublicKey
	}
	return k.Public
}

// signKey is what signs with the key.
func (k Key) signKey() any {
	if k.Alg == RS256 {
		return k.RSA
	}
	return k.Private
}

// method is the key's JWT signing method.
func (k Key) method() jwt.SigningMethod {
	if k.Alg == RS256 {
		return jwt.SigningMethodRS256
	}
	return jwt.SigningMethodEdDSA
}

// NewRSAKey reads an RSA key stored as PKCS #8; its id is the RFC 7638
// thumbprint of its public key.
func NewRSAKey(der []byte, createdAt, publishAt time.Time) (Key, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return Key{}, fmt.Errorf("token: an RSA key: %v", err)
	}
	priv, ok := k.(*rsa.PrivateKey)
	if !ok {
		return Key{}, errors.New("token: the stored key is not an RSA key")
	}
	return Key{ID: RSAThumbprint(&priv.PublicKey), Alg: RS256, RSA: priv, CreatedAt: createdAt, PublishAt: publishAt}, nil
}

// NewRSASeed makes a new 2048-bit RSA key in PKCS #8, for NewRSAKey.
func NewRSASeed() ([]byte, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return x509.MarshalPKCS8PrivateKey(priv)
}

// NewKey makes a key from a 32-byte seed (random, or stored); its id is the
// RFC 7638 thumbprint of its public key, so the same seed gives the same id
// on every instance.
func NewKey(seed []byte, createdAt, publishAt time.Time) (Key, error) {
	if len(seed) != ed25519.SeedSize {
		return Key{}, fmt.Errorf("token: a key seed is %d bytes, not %d", ed25519.SeedSize, len(seed))
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	return Key{ID: Thumbprint(pub), Alg: EdDSA, Private: priv, Public: pub, CreatedAt: createdAt, PublishAt: publishAt}, nil
}

// NewSeed returns 32 random bytes for NewKey.
func NewSeed() ([]byte, error) {
	b := make([]byte, ed25519.SeedSize)
	_, err := rand.Read(b)
	return b, err
}

// Config says how tokens are made.
type Config struct {
	// Issuer is the iss claim (the service's public URL).
	Issuer string
	// Lifetime is how long an access token is valid.
	Lifetime time.Duration
	// Legacy is the HS256 secret of earlier releases: tokens it signed
	// are still accepted while LegacyUntil is ahead.
	Legacy      []byte
	LegacyUntil time.Time
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Manager signs and verifies tokens.
type Manager struct {
	cfg  Config
	keys atomic.Pointer[keyset]

	parser *jwt.Parser
	// lenient checks only the signature, for revocation of expired
	// tokens.
	lenient *jwt.Parser

	// verified remembers tokens whose signature and claims checked out,
	// so that a token used again costs a map lookup and a time check
	// instead of a signature check and two JSON decodings. Whether its
	// session still exists is checked by the caller on every use.
	verified *cache.Cache[string, *Claims]
}

// keyset is the keys known at one time, in order of PublishAt.
type keyset struct {
	all  []Key
	byID map[string]Key
	// until is, for each retired key, when it stops verifying: its
	// retirement (the next key's PublishAt) plus the longest lifetime of
	// a token it may have signed, plus the leeway.
	until map[string]time.Time
}

// The verified-token cache holds about maxVerified entries, each for at
// most verifiedFor.
const (
	maxVerified = 10000
	verifiedFor = time.Minute
)

// NewManager returns a Manager with keys (see SetKeys).
func NewManager(cfg Config, keys []Key) *Manager {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Manager{cfg: cfg, verified: cache.New[string, *Claims](maxVerified, verifiedFor, cfg.Now)}
	methods := []string{jwt.SigningMethodEdDSA.Alg()}
	if len(cfg.Legacy) > 0 {
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	m.parser = jwt.NewParser(
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithAudience(Audience),
		jwt.WithTimeFunc(func() time.Time { return m.cfg.Now() }),
		jwt.WithLeeway(leeway),
		jwt.WithStrictDecoding(),
	)
	m.lenient = jwt.NewParser(
		jwt.WithValidMethods(methods),
		jwt.WithoutClaimsValidation(),
		jwt.WithStrictDecoding(),
	)
	m.SetKeys(keys)
	return m
}

// SetKeys replaces the known keys. The key that signs is the one published
// last among those whose PublishAt has come; the others verify.
func (m *Manager) SetKeys(keys []Key) {
	ks := &keyset{all: slices.Clone(keys), byID: make(map[string]Key, len(keys)), until: map[string]time.Time{}}
	slices.SortFunc(ks.all, func(a, b Key) int { return a.PublishAt.Compare(b.PublishAt) })
	for i := range ks.all {
		if ks.all[i].Alg == "" {
			ks.all[i].Alg = EdDSA
		}
		ks.byID[ks.all[i].ID] = ks.all[i]
	}
	for i, k := range ks.all {
		if next, ok := ks.next(i); ok {
			ks.until[k.ID] = next.PublishAt.Add(m.cfg.Lifetime + leeway)
		}
	}
	m.keys.Store(ks)
}

// next returns the key of the same algorithm published after the i-th,
// which retires it.
func (ks *keyset) next(i int) (Key, bool) {
	for _, k := range ks.all[i+1:] {
		if k.Alg == ks.all[i].Alg {
			return k, true
		}
	}
	return Key{}, false
}

// verifies reports whether the key kid verifies tokens at now: it is
// known, and not retired for longer than a token it signed can live.
func (ks *keyset) verifies(kid string, now time.Time) (Key, bool) {
	k, ok := ks.byID[kid]
	if !ok {
		return Key{}, false
	}
	if until, retired := ks.until[kid]; retired && !now.Before(until) {
		return Key{}, false
	}
	return k, true
}

// Keys returns the known keys, oldest first.
func (m *Manager) Keys() []Key { return slices.Clone(m.keys.Load().all) }

// KeysOf returns the known keys of alg, oldest first.
func (m *Manager) KeysOf(alg string) []Key {
	var out []Key
	for _, k := range m.keys.Load().all {
		if k.Alg == alg {
			out = append(out, k)
		}
	}
	return out
}

// Lifetime is how long issued tokens are valid.
func (m *Manager) Lifetime() time.Duration { return m.cfg.Lifetime }

// Issuer is the iss of issued tokens.
func (m *Manager) Issuer() string { return m.cfg.Issuer }

// signing returns the key of alg that signs at now.
func (m *Manager) signing(now time.Time, alg string) (Key, bool) {
	ks := m.keys.Load()
	for i := len(ks.all) - 1; i >= 0; i-- {
		if k := ks.all[i]; !k.PublishAt.After(now) && k.Alg == alg && (k.Private != nil || k.RSA != nil) {
			return k, true
		}
	}
	return Key{}, false
}

// KeyState is a key with its state at a moment.
type KeyState struct {
	Key
	// State is "pending" (published, not signing yet), "active"
	// (signing), "retired" (verifying tokens it signed that may still be
	// valid) or "expired" (no longer needed).
	State string
	// RetiredAt is when a newer key took over; zero unless retired or
	// expired.
	RetiredAt time.Time
}

// States returns every known key's state at now, oldest first.
func (m *Manager) States(now time.Time) []KeyState {
	ks := m.keys.Load()
	out := make([]KeyState, 0, len(ks.all))
	active := map[string]int{}
	for i := range ks.all {
		if !ks.all[i].PublishAt.After(now) {
			active[ks.all[i].Alg] = i
		}
	}
	for i, k := range ks.all {
		st := KeyState{Key: k}
		next, _ := ks.next(i)
		switch {
		case k.PublishAt.After(now):
			st.State = "pending"
		case i == active[k.Alg]:
			st.State = "active"
		default:
			st.RetiredAt = next.PublishAt
			st.State = "retired"
			if _, ok := ks.verifies(k.ID, now); !ok {
				st.State = "expired"
			}
		}
		out = append(out, st)
	}
	return out
}

// NewSessionID returns a fresh random session id (128 bits, URL-safe).
func NewSessionID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Grant is what an access token says.
type Grant struct {
	Subject   string
	SessionID string
	Scope     string
	AMR       []string
	// ClientID names the application the token is for, if any.
	ClientID string
}

// Issue signs a token for g, valid from issuedAt for the manager's
// lifetime, and returns it with its expiry.
func (m *Manager) Issue(g Grant, issuedAt time.Time) (string, time.Time, error) {
	iat := issuedAt.Truncate(time.Second)
	exp := iat.Add(m.cfg.Lifetime)
	key, ok := m.signing(issuedAt, EdDSA)
	if !ok {
		return "", time.Time{}, errors.New("token: no signing key is active")
	}
	jti := make([]byte, 12)
	if _, err := rand.Read(jti); err != nil {
		return "", time.Time{}, err
	}
	claims := Claims{
		SessionID: g.SessionID,
		Scope:     g.Scope,
		AMR:       g.AMR,
		ClientID:  g.ClientID,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    m.cfg.Issuer,
			Subject:   g.Subject,
			Audience:  jwt.ClaimStrings{Audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(iat),
			IssuedAt:  jwt.NewNumericDate(iat),
			ID:        base64.RawURLEncoding.EncodeToString(jti),
		},
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = key.ID
	s, err := t.SignedString(key.Private)
	return s, exp, err
}

// Verify checks a token's signature, algorithm, key (one that still
// verifies: an expired key verifies nothing), issuer, audience and times,
// and that it names a subject and a session. The returned claims are
// shared and must not be modified.
func (m *Manager) Verify(raw string) (*Claims, error) {
	if c, ok := m.verified.Get(raw); ok {
		now := m.cfg.Now()
		if err := timely(c, now); err != nil {
			return nil, err
		}
		if c.kid != "" {
			if _, ok := m.keys.Load().verifies(c.kid, now); !ok {
				return nil, ErrSignature
			}
		}
		return c, nil
	}
	c, err := m.parse(m.parser, raw)
	if err != nil {
		return nil, err
	}
	// raw may be a view of a request's buffer: the cache keeps a copy.
	m.verified.Put(strings.Clone(raw), c)
	return c, nil
}

// timely repeats, for a cached token, the time checks of the parser: not
// expired and already valid, with the same leeway.
func timely(c *Claims, now time.Time) error {
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

// LooksLikeJWT tells an access token (three dot-separated parts) from an
// opaque refresh token.
func LooksLikeJWT(raw string) bool { return strings.Count(raw, ".") == 2 }

func (m *Manager) parse(p *jwt.Parser, raw string) (*Claims, error) {
	if raw == "" || len(raw) > MaxLength {
		return nil, ErrMalformed
	}
	var c Claims
	var legacy bool
	_, err := p.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		switch t.Method.Alg() {
		case jwt.SigningMethodEdDSA.Alg():
			kid, _ := t.Header["kid"].(string)
			k, ok := m.keys.Load().verifies(kid, m.cfg.Now())
			if !ok || k.Alg != EdDSA {
				return nil, ErrSignature
			}
			c.kid = kid
			return k.Public, nil
		case jwt.SigningMethodHS256.Alg():
			if len(m.cfg.Legacy) == 0 || !m.cfg.Now().Before(m.cfg.LegacyUntil) {
				return nil, ErrSignature
			}
			legacy = true
			return m.cfg.Legacy, nil
		}
		return nil, ErrSignature
	})
	if err != nil {
		return nil, classify(err)
	}
	wantIssuer := m.cfg.Issuer
	if legacy {
		wantIssuer = LegacyIssuer
		// A legacy token lives at most one lifetime, so that none made
		// with the secret outlasts the upgrade by more than that.
		if c.IssuedAt == nil || c.ExpiresAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) > m.cfg.Lifetime {
			return nil, ErrForeign
		}
	}
	if c.Issuer != wantIssuer || c.Subject == "" || c.SessionID == "" {
		return nil, ErrForeign
	}
	return &c, nil
}

// classify maps the JWT library's errors to the reasons above.
func classify(err error) error {
	switch {
	case errors.Is(err, ErrSignature):
		return ErrSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrNotYet
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		// Also an algorithm other than those this service signs with.
		return ErrSignature
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidAudience),
		errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return ErrForeign
	}
	return ErrMalformed
}

// Sign signs claims as a JWT with the key of alg (RS256 or EdDSA) that
// signs at now, naming it in kid: ID tokens and logout tokens.
func (m *Manager) Sign(claims jwt.Claims, alg string, now time.Time, header map[string]any) (string, error) {
	key, ok := m.signing(now, alg)
	if !ok {
		return "", fmt.Errorf("token: no %s signing key is active", alg)
	}
	t := jwt.NewWithClaims(key.method(), claims)
	t.Header["kid"] = key.ID
	for k, v := range header {
		t.Header[k] = v
	}
	return t.SignedString(key.signKey())
}

// ParseHint checks a JWT this service signed (an ID token given back as a
// hint, of any audience, expired or not) and returns its claims: the
// signature, with a key that still verifies, and the issuer.
func (m *Manager) ParseHint(raw string, claims jwt.Claims) error {
	if raw == "" || len(raw) > 2*MaxLength {
		return ErrMalformed
	}
	p := jwt.NewParser(jwt.WithValidMethods([]string{EdDSA, RS256}), jwt.WithoutClaimsValidation(), jwt.WithIssuer(m.cfg.Issuer))
	_, err := p.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := m.keys.Load().verifies(kid, m.cfg.Now())
		if !ok || k.Alg != t.Method.Alg() {
			return nil, ErrSignature
		}
		return k.verifyKey(), nil
	})
	if err != nil {
		return classify(err)
	}
	iss, err := claims.GetIssuer()
	if err != nil || iss != m.cfg.Issuer {
		return ErrForeign
	}
	return nil
}
