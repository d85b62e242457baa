package app

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"fiberauth/app/token"
)

const testKey = "0123456789abcdef0123456789abcdef-test-key"

// claimsFor returns valid claims for the session of a real token.
func claimsFor(t *testing.T, m *token.Manager, raw string) token.Claims {
	t.Helper()
	c, err := m.Verify(raw)
	if err != nil {
		t.Fatalf("a freshly issued token does not verify: %v", err)
	}
	return *c
}

// sign makes a token with method and key, with kid in its header when not
// empty.
func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.Claims) string {
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

func TestHostileTokens(t *testing.T) {
	ts := newTestServer(t, "SECRET_KEY", testKey)
	ts.register("alice", "alice@example.com", pw)
	ts.register("bob", "bob@example.com", pw)
	good := ts.token("alice", pw)
	m := ts.s.acct.Tokens()
	base := claimsFor(t, m, good)
	bobClaims := claimsFor(t, m, ts.token("bob", pw))
	signing := m.KeysOf(token.EdDSA)[0]
	kid := signing.ID
	now := time.Now()

	with := func(edit func(c *token.Claims)) token.Claims {
		c := base
		c.Audience = append(jwt.ClaimStrings(nil), base.Audience...)
		edit(&c)
		return c
	}
	ed := func(c token.Claims) string { return sign(t, jwt.SigningMethodEdDSA, signing.Private, kid, c) }
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	flipped := []byte(parts[2])
	if flipped[0] == 'A' {
		flipped[0] = 'B'
	} else {
		flipped[0] = 'A'
	}
	rawPayload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	payload := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(rawPayload), `"sub":"alice"`, `"sub":"bob"`, 1)))
	if payload == parts[1] {
		t.Fatal("payload tampering changed nothing")
	}
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	legacy := func(edit func(c *token.Claims)) token.Claims {
		return with(func(c *token.Claims) {
			c.Issuer = token.LegacyIssuer
			edit(c)
		})
	}

	tests := []struct {
		name string
		tok  string
		why  string
	}{
		{"forged with the secret as an HS256 token of our issuer", sign(t, jwt.SigningMethodHS256, []byte(testKey), "", base), "was not issued by this service"},
		{"forged with another secret", sign(t, jwt.SigningMethodHS256, []byte("another key of thirty-two bytes!!"), "", legacy(func(*token.Claims) {})), "signature is invalid"},
		{"tampered signature", parts[0] + "." + parts[1] + "." + string(flipped), "signature is invalid"},
		{"tampered payload", parts[0] + "." + payload + "." + parts[2], "signature is invalid"},
		{"alg none", noneHeader + "." + parts[1] + ".", "signature is invalid"},
		{"alg none signed by library", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, base), "signature is invalid"},
		{"HS256 keyed with the public key", sign(t, jwt.SigningMethodHS256, []byte(signing.Public), kid, base), "signature is invalid"},
		{"HS512 with the secret", sign(t, jwt.SigningMethodHS512, []byte(testKey), "", legacy(func(*token.Claims) {})), "signature is invalid"},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, kid, base), "signature is invalid"},
		{"unknown kid", sign(t, jwt.SigningMethodEdDSA, signing.Private, "not-a-key", base), "signature is invalid"},
		{"expired", ed(with(func(c *token.Claims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(-2 * time.Hour))
			c.NotBefore = c.IssuedAt
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour))
		})), "expired"},
		{"without exp", ed(with(func(c *token.Claims) { c.ExpiresAt = nil })), "was not issued by this service"},
		{"not yet valid", ed(with(func(c *token.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) })), "is not valid yet"},
		{"issued in the future", ed(with(func(c *token.Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour)) })), "is not valid yet"},
		{"wrong issuer", ed(with(func(c *token.Claims) { c.Issuer = "someone-else" })), "was not issued by this service"},
		{"no issuer", ed(with(func(c *token.Claims) { c.Issuer = "" })), "was not issued by this service"},
		{"wrong audience", ed(with(func(c *token.Claims) { c.Audience = jwt.ClaimStrings{"other"} })), "was not issued by this service"},
		{"no audience", ed(with(func(c *token.Claims) { c.Audience = nil })), "was not issued by this service"},
		{"unknown session", ed(with(func(c *token.Claims) { c.SessionID = "no-such-session" })), "was revoked"},
		{"no session", ed(with(func(c *token.Claims) { c.SessionID = "" })), "was not issued by this service"},
		{"another user's session", ed(with(func(c *token.Claims) { c.SessionID = bobClaims.SessionID })), "was not issued by this service"},
		{"subject changed", ed(with(func(c *token.Claims) { c.Subject = "bob" })), "was not issued by this service"},
		{"subject in other case", ed(with(func(c *token.Claims) { c.Subject = "ALICE" })), "was not issued by this service"},
		{"oversized", good + strings.Repeat("A", token.MaxLength), "is malformed"},
		{"two dots only", "..", "is malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := ts.get("/users/me", bearer(tt.tok)...)
			wantStatus(t, res, http.StatusUnauthorized)
			if got := res.json(t)["detail"]; got != msgNotAuthorized {
				t.Errorf("detail = %v, want %q", got, msgNotAuthorized)
			}
			want := `Bearer error="invalid_token", error_description="The access token ` + tt.why + `"`
			if got := res.Header.Get("WWW-Authenticate"); got != want {
				t.Errorf("WWW-Authenticate = %q, want %q", got, want)
			}
		})
	}

	t.Run("re-signed valid claims are accepted", func(t *testing.T) {
		// The control: the same construction with nothing wrong passes, so
		// the refusals above are for the reason each case names.
		wantStatus(t, ts.get("/users/me", bearer(ed(base))...), http.StatusOK)
	})

	t.Run("a token of the earlier release (HS256 with SECRET_KEY) is accepted until it expires", func(t *testing.T) {
		old := sign(t, jwt.SigningMethodHS256, []byte(testKey), "", legacy(func(*token.Claims) {}))
		wantStatus(t, ts.get("/users/me", bearer(old)...), http.StatusOK)
	})

	t.Run("revoked", func(t *testing.T) {
		wantStatus(t, ts.postForm("/revoke", url.Values{"token": {good}}), http.StatusOK)
		wantStatus(t, ts.get("/users/me", bearer(good)...), http.StatusUnauthorized)
	})
}

// A session past its idle limit refuses its token even while the token
// itself is valid.
func TestIdleSessionRefused(t *testing.T) {
	ts := newTestServer(t, "SESSION_IDLE_DAYS", "1", "ACCESS_TOKEN_EXPIRE_MINUTES", "10000")
	ts.register("alice", "alice@example.com", pw)
	tok := ts.token("alice", pw)
	start := time.Now()
	ts.s.acct.Now = func() time.Time { return start.Add(23 * time.Hour) }
	wantStatus(t, ts.get("/users/me", bearer(tok)...), http.StatusOK) // a use resets the idle clock
	ts.s.acct.Now = func() time.Time { return start.Add(46 * time.Hour) }
	wantStatus(t, ts.get("/users/me", bearer(tok)...), http.StatusOK)
	ts.s.acct.Now = func() time.Time { return start.Add(70*time.Hour + time.Minute) }
	res := ts.get("/users/me", bearer(tok)...)
	wantStatus(t, res, http.StatusUnauthorized)
	if got := res.Header.Get("WWW-Authenticate"); !strings.Contains(got, "The session expired") {
		t.Errorf("WWW-Authenticate = %q", got)
	}
}
