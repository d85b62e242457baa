package federation

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"fiberauth/db"
)

// issuer is an OpenID Connect provider of the test's making, whose token
// endpoint answers with an ID token holding whatever claims says, signed
// with the key its JWKS publishes.
type issuer struct {
	srv    *httptest.Server
	key    *rsa.PrivateKey
	claims func(nonce string) jwt.MapClaims
	nonce  string
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": is.srv.URL, "authorization_endpoint": is.srv.URL + "/authorize",
			"token_endpoint": is.srv.URL + "/token", "jwks_uri": is.srv.URL + "/jwks", "response_types_supported": []string{"code"},
			"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		b64 := base64.RawURLEncoding.EncodeToString
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
			"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes())}}})
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, is.claims(is.nonce))
		tok.Header["kid"] = "k1"
		signed, err := tok.SignedString(key)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 60, "id_token": signed})
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

// TestIDTokenClaims: an ID token that names no subject is refused (it
// would name nobody, or everybody with one); what a provider says of the
// person is kept within what is stored here.
func TestIDTokenClaims(t *testing.T) {
	is := newIssuer(t)
	e := New(Config{PublicURL: "http://localhost:8000"}, nil, nil, slog.New(slog.DiscardHandler))
	prov := db.Provider{Name: "acme", Kind: db.ProviderOIDC, Issuer: is.srv.URL, ClientID: "fiberauth"}
	base := func(nonce string) jwt.MapClaims {
		now := time.Now()
		return jwt.MapClaims{"iss": is.srv.URL, "aud": "fiberauth", "sub": "s-1", "nonce": nonce, "iat": now.Unix(),
			"exp": now.Add(time.Minute).Unix(), "email": "pat@example.com", "email_verified": true, "preferred_username": "pat"}
	}
	finish := func(t *testing.T, edit func(jwt.MapClaims)) (string, error) {
		t.Helper()
		to, f, err := e.Begin(context.Background(), prov, false)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(to)
		if u.Query().Get("nonce") != f.Nonce || u.Query().Get("code_challenge_method") != "S256" {
			t.Fatalf("authorization request: %s", to)
		}
		is.nonce = f.Nonce
		is.claims = func(nonce string) jwt.MapClaims {
			c := base(nonce)
			edit(c)
			return c
		}
		id, err := e.Finish(context.Background(), prov, f, "code")
		if err != nil {
			return "", err
		}
		b, _ := json.Marshal(id)
		return string(b), nil
	}

	if got, err := finish(t, func(jwt.MapClaims) {}); err != nil || !strings.Contains(got, `"Subject":"s-1"`) ||
		!strings.Contains(got, `"EmailVerified":true`) {
		t.Fatalf("a good ID token: %s, %v", got, err)
	}
	for name, edit := range map[string]func(jwt.MapClaims){
		"no sub":           func(c jwt.MapClaims) { delete(c, "sub") },
		"empty sub":        func(c jwt.MapClaims) { c["sub"] = "" },
		"a sub too long":   func(c jwt.MapClaims) { c["sub"] = strings.Repeat("s", 256) },
		"another nonce":    func(c jwt.MapClaims) { c["nonce"] = "not this one" },
		"another audience": func(c jwt.MapClaims) { c["aud"] = "another-app" },
	} {
		if got, err := finish(t, edit); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %s, %v; want ErrInvalid", name, got, err)
		}
	}
	got, err := finish(t, func(c jwt.MapClaims) {
		c["email"] = strings.Repeat("a", 250) + "@example.com"
		c["name"] = strings.Repeat("é", 200_000)
		c["preferred_username"] = strings.Repeat("u", 1000)
	})
	if err != nil {
		t.Fatal(err)
	}
	var id struct {
		Email         string
		EmailVerified bool
		Name          string
		Username      string
	}
	json.Unmarshal([]byte(got), &id)
	if id.Email != "" || id.EmailVerified || len(id.Name) > 128 || len(id.Username) > 64 || !strings.HasPrefix(id.Name, "é") {
		t.Fatalf("long claims kept as %d, %v, %d, %d bytes", len(id.Email), id.EmailVerified, len(id.Name), len(id.Username))
	}
}
