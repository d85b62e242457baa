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

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
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
	base := claimsFor(t, ts.s.acct.Tokens(), good)
	bobClaims := claimsFor(t, ts.s.acct.Tokens(), ts.token("bob", pw))
	key := []byte(testKey)
	now := time.Now()

	with := func(edit func(c *token.Claims)) token.Claims {
		c := base
		c.Audience = append(jwt.ClaimStrings(nil), base.Audience...)
		edit(&c)
		return c
	}
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

	tests := []struct {
		name string
		tok  string
		why  string
	}{
		{"forged with another key", sign(t, jwt.SigningMethodHS256, []byte("another key of thirty-two bytes!!"), base), "signature is invalid"},
		{"tampered signature", parts[0] + "." + parts[1] + "." + string(flipped), "signature is invalid"},
		{"tampered payload", parts[0] + "." + payload + "." + parts[2], "signature is invalid"},
		{"alg none", noneHeader + "." + parts[1] + ".", "signature is invalid"},
		{"alg none signed by library", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, base), "signature is invalid"},
		{"HS512 with the right key", sign(t, jwt.SigningMethodHS512, key, base), "signature is invalid"},
		{"HS384 with the right key", sign(t, jwt.SigningMethodHS384, key, base), "signature is invalid"},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, base), "signature is invalid"},
		{"expired", sign(t, jwt.SigningMethodHS256, key, with(func(c *token.Claims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(-2 * time.Hour))
			c.NotBefore = c.IssuedAt
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour))
		})), "expired"},
		{"without exp", sign(t, jwt.SigningMethodHS256, key, with(func(c *token.Claims) { c.ExpiresAt = nil })), "was not issued by this service"},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, key, with(func(c *token.Claims) {
			c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour))
		})), "is not valid yet"},
		{"issued in the future", sign(t, jwt.SigningMethodHS256, key, with(func(c *token.Claims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour))
		})), "is not valid yet"},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, key, with(func(c *token.Claims) { c.Issuer = "someone-else" })), "was not issued by this service"},
		{"no issuer", sign(t, jwt.SigningMethodHS256, key, with(func(c *token.Claims) { c.Issuer = "" })), "was not issued by this service"},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, key, with(func(c *token.Claims) { c.Audience = jwt.ClaimStrings{"other"} })), "was not issued by this service"},
		{"no audience", sign(t, jwt.SigningMethodHS256, key, with(func(c *token.Claims) { c.Audience = nil })), "was not issued by this service"},
		{"unknown session", sign(t, jwt.SigningMethodHS256, key, with(func(c *token.Claims) { c.SessionID = "no-such-session" })), "was revoked"},
		{"no session", sign(t, jwt.SigningMethodHS256, key, with(func(c *token.Claims) { c.SessionID = "" })), "was not issued by this service"},
		{"another user's session", sign(t, jwt.SigningMethodHS256, key, with(func(c *token.Claims) { c.SessionID = bobClaims.SessionID })), "was not issued by this service"},
		{"subject changed", sign(t, jwt.SigningMethodHS256, key, with(func(c *token.Claims) { c.Subject = "bob" })), "was not issued by this service"},
		{"subject in other case", sign(t, jwt.SigningMethodHS256, key, with(func(c *token.Claims) { c.Subject = "ALICE" })), "was not issued by this service"},
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
		res := ts.get("/users/me", bearer(sign(t, jwt.SigningMethodHS256, key, base))...)
		wantStatus(t, res, http.StatusOK)
	})

	t.Run("revoked", func(t *testing.T) {
		wantStatus(t, ts.postForm("/revoke", url.Values{"token": {good}}), http.StatusOK)
		wantStatus(t, ts.get("/users/me", bearer(good)...), http.StatusUnauthorized)
	})
}

// A token signed with SECRET_KEY is an ordinary HS256 JWT that another
// service holding the key can verify.
func TestSecretKeyIsUsedAsIs(t *testing.T) {
	ts := newTestServer(t, "SECRET_KEY", testKey)
	ts.register("alice", "alice@example.com", pw)
	raw := ts.token("alice", pw)
	var claims jwt.MapClaims
	_, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return []byte(testKey), nil },
		jwt.WithValidMethods([]string{"HS256"}))
	if err != nil {
		t.Fatalf("token does not verify with SECRET_KEY: %v", err)
	}
	for _, k := range []string{"sub", "exp", "iat", "sid", "iss", "aud"} {
		if _, ok := claims[k]; !ok {
			t.Errorf("claim %q missing from %v", k, claims)
		}
	}
	if claims["sub"] != "alice" {
		t.Errorf("sub = %v, want alice", claims["sub"])
	}
}

// An expired session refuses its token even while the token itself is valid.
func TestExpiredSessionRefused(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	tok := ts.token("alice", pw)
	ts.s.acct.Now = func() time.Time { return time.Now().Add(31 * time.Minute) }
	wantStatus(t, ts.get("/users/me", bearer(tok)...), http.StatusUnauthorized)
}
