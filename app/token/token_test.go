package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const testIssuer = "https://auth.example.com"

var legacySecret = []byte("0123456789abcdef0123456789abcdef")

// testKey is a key made from a seed of the byte b.
func testKey(t testing.TB, b byte, publish time.Time) Key {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = b
	}
	k, err := NewKey(seed, publish, publish)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testManager is a manager with one key and the legacy secret, whose
// clock reads *now.
func testManager(t testing.TB, lifetime time.Duration, now *time.Time) *Manager {
	t.Helper()
	return NewManager(Config{Issuer: testIssuer, Lifetime: lifetime, Legacy: legacySecret,
		LegacyUntil: now.Add(time.Hour), Now: func() time.Time { return *now }},
		[]Key{testKey(t, 1, now.Add(-time.Hour))})
}

func grant(sid string) Grant {
	return Grant{Subject: "alice", SessionID: sid, Scope: "basic", AMR: []string{"pwd"}}
}

// fuzzToken was issued once by testManager (key seed 1) at fuzzNow for
// grant("sid-1"). It is fixed, not issued in the test, because under -fuzz
// every worker process runs the fuzz target afresh: a token issued there
// would differ (its jti is random) from the seed the coordinator passes in.
const fuzzToken = "eyJhbGciOiJFZERTQSIsImtpZCI6IlVERFJlT1psMWlwWEFmcDl3WXNtMTNzREJNSzVvZy0tUVdkQmp6dWY2bzQiLCJ0eXAiOiJKV1QifQ." +
	"eyJzaWQiOiJzaWQtMSIsInNjb3BlIjoiYmFzaWMiLCJhbXIiOlsicHdkIl0sImlzcyI6Imh0dHBzOi8vYXV0aC5leGFtcGxlLmNvbSIsInN1YiI6ImFsaWNlIiwiYXVkIjpbImZpYmVyYXV0aCJdLCJleHAiOjE4OTM0NTc4MDAsIm5iZiI6MTg5MzQ1NjAwMCwiaWF0IjoxODkzNDU2MDAwLCJqdGkiOiJSeFhEdzdDRVA5X0VFNUlNIn0." +
	"IbkpoEuQPK3ZTNBG7N38PZvacIuu2LL-4pnYEi4whq261vxB_qJhuGQyanIy9CVmMSdhImyALUjkSLl1aFCAAg"

var fuzzNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// FuzzVerify feeds arbitrary input to the verifier: it must never panic,
// and it must accept nothing but the one token the manager signed.
func FuzzVerify(f *testing.F) {
	now := fuzzNow
	m := testManager(f, 30*time.Minute, &now)
	if c, err := m.Verify(fuzzToken); err != nil || c.Subject != "alice" || c.SessionID != "sid-1" {
		f.Fatalf("the fixed token no longer verifies (%+v, %v): reissue it with testManager at fuzzNow", c, err)
	}
	f.Add(fuzzToken)
	f.Add("")
	f.Add("..")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.")
	f.Add(strings.Repeat("A", MaxLength+1))
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := m.Verify(raw)
		if err != nil {
			return
		}
		if raw != fuzzToken {
			t.Fatalf("accepted a token that was never issued: %q -> %+v", raw, c)
		}
		if c.Subject != "alice" || c.SessionID != "sid-1" {
			t.Fatalf("claims changed: %+v", c)
		}
	})
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	now := time.Now()
	m := testManager(t, time.Minute, &now)
	raw, exp, err := m.Issue(grant("sid"), now)
	if err != nil {
		t.Fatal(err)
	}
	if got := exp.Sub(now.Truncate(time.Second)); got != time.Minute {
		t.Errorf("lifetime = %v, want 1m", got)
	}
	c, err := m.Verify(raw)
	if err != nil || c.Subject != "alice" || c.SessionID != "sid" || c.Issuer != testIssuer || c.Scope != "basic" ||
		len(c.AMR) != 1 || c.AMR[0] != "pwd" {
		t.Fatalf("verify: %+v, %v", c, err)
	}
	parsed, _, _ := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
	if parsed.Header["alg"] != "EdDSA" || parsed.Header["kid"] != m.Keys()[0].ID {
		t.Errorf("header %v, want alg EdDSA and the key's kid", parsed.Header)
	}
	now = now.Add(2 * time.Minute)
	if _, err := m.Verify(raw); !errors.Is(err, ErrExpired) {
		t.Errorf("expired token: %v", err)
	}
	if _, err := m.VerifySignature(raw); err != nil {
		t.Errorf("an expired token's signature no longer verifies: %v", err)
	}
	other := NewManager(Config{Issuer: testIssuer, Lifetime: time.Minute}, []Key{testKey(t, 2, now.Add(-time.Hour))})
	if _, err := other.VerifySignature(raw); err == nil {
		t.Error("a token verified under another key")
	}
}

// The verified-token cache stays bounded however many tokens pass through,
// and a full cache still caches the newest token.
func TestVerifiedCacheBounded(t *testing.T) {
	now := time.Now()
	m := testManager(t, time.Hour, &now)
	var last string
	for i := 0; i < maxVerified+2000; i++ {
		raw, _, err := m.Issue(grant("sid-"+strconv.Itoa(i)), now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Verify(raw); err != nil {
			t.Fatal(err)
		}
		last = raw
	}
	if n := m.verified.Len(); n > m.verified.Capacity() {
		t.Errorf("%d cached tokens, want at most %d", n, m.verified.Capacity())
	}
	if _, ok := m.verified.Get(last); !ok {
		t.Error("the newest token was not cached by a full cache")
	}
}

func sign(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// Each refusal names its reason; tokens of other algorithms, unknown keys
// and forged legacy tokens are refused.
func TestRefusals(t *testing.T) {
	now := time.Now()
	m := testManager(t, time.Minute, &now)
	raw, _, _ := m.Issue(grant("sid"), now)
	key := m.Keys()[0]
	claims := func(edit func(*Claims)) Claims {
		c := Claims{SessionID: "sid", RegisteredClaims: jwt.RegisteredClaims{Issuer: testIssuer, Subject: "alice",
			Audience: jwt.ClaimStrings{Audience}, IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute))}}
		if edit != nil {
			edit(&c)
		}
		return c
	}
	kid := map[string]any{"kid": key.ID}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	legacy := func(edit func(*Claims)) Claims {
		return claims(func(c *Claims) {
			c.Issuer = LegacyIssuer
			if edit != nil {
				edit(c)
			}
		})
	}
	tests := []struct {
		name string
		raw  string
		want error
	}{
		{"garbage", "not.a.token", ErrMalformed},
		{"empty", "", ErrMalformed},
		{"the control: re-signed valid claims", sign(t, jwt.SigningMethodEdDSA, key.Private, kid, claims(nil)), nil},
		{"unknown kid", sign(t, jwt.SigningMethodEdDSA, key.Private, map[string]any{"kid": "nope"}, claims(nil)), ErrSignature},
		{"no kid", sign(t, jwt.SigningMethodEdDSA, key.Private, nil, claims(nil)), ErrSignature},
		{"another Ed25519 key under our kid", sign(t, jwt.SigningMethodEdDSA, otherPriv, kid, claims(nil)), ErrSignature},
		{"HS256 keyed with our public key", sign(t, jwt.SigningMethodHS256, []byte(key.Public), kid, claims(nil)), ErrSignature},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, kid, claims(nil)), ErrSignature},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, claims(nil)), ErrSignature},
		{"wrong issuer", sign(t, jwt.SigningMethodEdDSA, key.Private, kid, claims(func(c *Claims) { c.Issuer = "https://evil" })), ErrForeign},
		{"legacy issuer on an EdDSA token", sign(t, jwt.SigningMethodEdDSA, key.Private, kid, claims(func(c *Claims) { c.Issuer = LegacyIssuer })), ErrForeign},
		{"wrong audience", sign(t, jwt.SigningMethodEdDSA, key.Private, kid, claims(func(c *Claims) { c.Audience = jwt.ClaimStrings{"x"} })), ErrForeign},
		{"no session", sign(t, jwt.SigningMethodEdDSA, key.Private, kid, claims(func(c *Claims) { c.SessionID = "" })), ErrForeign},
		{"expired", sign(t, jwt.SigningMethodEdDSA, key.Private, kid, claims(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)) })), ErrExpired},
		{"not yet valid", sign(t, jwt.SigningMethodEdDSA, key.Private, kid, claims(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) })), ErrNotYet},
		{"legacy HS256 within its window", sign(t, jwt.SigningMethodHS256, legacySecret, nil, legacy(nil)), nil},
		{"legacy HS256 with our issuer", sign(t, jwt.SigningMethodHS256, legacySecret, nil, claims(nil)), ErrForeign},
		{"legacy HS256 living longer than a token does", sign(t, jwt.SigningMethodHS256, legacySecret, nil, legacy(func(c *Claims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(-time.Hour))
		})), ErrForeign},
		{"legacy HS256 under another secret", sign(t, jwt.SigningMethodHS256, []byte("another secret of thirty-two bytes"), nil, legacy(nil)), ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.Verify(tt.raw)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if r := Reason(err); !strings.HasPrefix(r, "The access token ") {
				t.Errorf("Reason = %q", r)
			}
		})
	}
	// Past the legacy window even a good HS256 token is refused.
	late := now.Add(2 * time.Hour)
	lm := testManager(t, time.Minute, &now)
	old := sign(t, jwt.SigningMethodHS256, legacySecret, nil, Claims{SessionID: "s", RegisteredClaims: jwt.RegisteredClaims{
		Issuer: LegacyIssuer, Subject: "alice", Audience: jwt.ClaimStrings{Audience}, IssuedAt: jwt.NewNumericDate(late),
		ExpiresAt: jwt.NewNumericDate(late.Add(time.Minute))}})
	now = late
	if _, err := lm.Verify(old); !errors.Is(err, ErrSignature) {
		t.Errorf("an HS256 token after the legacy window: %v, want refused", err)
	}
	if got := Reason(ErrExpired); got != "The access token expired" {
		t.Errorf("Reason(ErrExpired) = %q", got)
	}
	_ = raw
}

// A new key is published at once, signs from its PublishAt, and the key it
// replaces verifies until its last token has expired.
func TestKeyRotation(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	now := t0
	lifetime := 30 * time.Minute
	first := testKey(t, 1, t0.Add(-24*time.Hour))
	m := NewManager(Config{Issuer: testIssuer, Lifetime: lifetime, Now: func() time.Time { return now }}, []Key{first})
	before, _, _ := m.Issue(grant("a"), now)

	second := testKey(t, 2, t0.Add(10*time.Minute))
	m.SetKeys([]Key{first, second})
	kids := func() []string {
		var out []string
		for _, k := range m.JWKS(now) {
			out = append(out, k.Kid)
		}
		return out
	}
	states := func() string {
		var out []string
		for _, s := range m.States(now) {
			out = append(out, s.State)
		}
		return strings.Join(out, ",")
	}
	if got := kids(); len(got) != 2 {
		t.Fatalf("JWKS right after rotation: %v, want both keys", got)
	}
	if states() != "active,pending" {
		t.Errorf("states = %s, want active,pending", states())
	}
	tok, _, _ := m.Issue(grant("b"), now)
	if kid := header(t, tok)["kid"]; kid != first.ID {
		t.Errorf("before the publish delay the new key signs (%v)", kid)
	}
	now = t0.Add(10 * time.Minute)
	tok, _, _ = m.Issue(grant("c"), now)
	if kid := header(t, tok)["kid"]; kid != second.ID {
		t.Errorf("after the publish delay the old key still signs (%v)", kid)
	}
	if states() != "retired,active" {
		t.Errorf("states = %s, want retired,active", states())
	}
	if _, err := m.Verify(before); err != nil {
		t.Errorf("a token of the retired key, still within its lifetime: %v", err)
	}
	now = t0.Add(10*time.Minute + lifetime - time.Second)
	if got := kids(); len(got) != 2 {
		t.Errorf("JWKS while the retired key's tokens may be valid: %v", got)
	}
	now = t0.Add(10*time.Minute + lifetime + leeway)
	if got := kids(); len(got) != 1 || got[0] != second.ID {
		t.Errorf("JWKS after the retired key's last token expired: %v, want only the new key", got)
	}
	if states() != "expired,active" {
		t.Errorf("states = %s, want expired,active", states())
	}
}

func header(t *testing.T, raw string) map[string]any {
	t.Helper()
	p, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Header
}

// A key's id is its RFC 7638 thumbprint (the RFC's appendix A example).
func TestThumbprint(t *testing.T) {
	x, _ := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if got, want := Thumbprint(ed25519.PublicKey(x)), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; got != want {
		t.Errorf("Thumbprint = %s, want %s (RFC 8037 appendix A.3)", got, want)
	}
}
