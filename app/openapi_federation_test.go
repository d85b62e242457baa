package app

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"fiberauth/app/account"
	"fiberauth/app/federation"
	"fiberauth/db"
)

// Provocations of the connected sign-ins' and the providers' documented
// answers. Identities are linked through the account core, as the
// provider's way back does once the provider has answered (the whole way
// is TestSignInWithProvider's).

// fedProvider is the fixture's provider "acme", added on first use.
func (f *fixture) fedProvider(t *testing.T) db.Provider {
	ctx := context.Background()
	p, err := f.ts.s.fed.Provider(ctx, "acme")
	if err == nil {
		return p
	}
	p, err = f.ts.s.fed.Add(ctx, account.CommandLine, federation.ProviderInput{Name: "acme", DisplayName: "Acme SSO",
		Issuer: "https://sso.acme.example", ClientID: "fiberauth"})
	if err != nil && account.ErrorCode(err) != account.EConflict {
		t.Fatal(err)
	}
	p, err = f.ts.s.fed.Provider(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// linked is the token of a new account with a password, linked to acme.
func (f *fixture) linked(t *testing.T) string {
	ts := f.on(t)
	name := fmt.Sprintf("fed%d", victims.Add(1))
	ts.register(name, name+"@example.com", pw)
	tok := ts.token(name, pw)
	p, err := ts.s.acct.Authenticate(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.s.acct.LinkIdentity(context.Background(), account.Client{}, p, f.fedProvider(t),
		account.Identity{Issuer: "https://sso.acme.example", Subject: name, Email: name + "@acme.example", EmailVerified: true}); err != nil {
		t.Fatal(err)
	}
	return tok
}

// fedOnly is the token of a new account made with acme, which has no
// other way to sign in.
func (f *fixture) fedOnly(t *testing.T) string {
	name := fmt.Sprintf("fedonly%d", victims.Add(1))
	r, err := f.ts.s.acct.CreateWithIdentity(context.Background(), account.Client{Addr: "192.0.2.77"}, f.fedProvider(t),
		account.Identity{Issuer: "https://sso.acme.example", Subject: name, Email: name + "@example.com", EmailVerified: true}, name, name+"@example.com")
	if err != nil || r.Grant == nil {
		t.Fatalf("account with acme: %v", err)
	}
	return r.Grant.AccessToken
}

func init() {
	cookieNoToken := func(tok string) []string { return []string{"Cookie", sessionCookie + "=" + tok} }
	providerBody := `{"name":"%[1]s","display_name":"Acme SSO","issuer":"http://127.0.0.1:9/%[1]s","client_id":"fiberauth","client_secret":"s3cret"}`
	add := map[string]provoke{
		"GET /users/me/providers 200": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "GET", "/users/me/providers", "", "", bearer(f.linked(t))...)
		},
		"GET /users/me/providers 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "GET", "/users/me/providers", "", "")
		},
		"DELETE /users/me/providers/{name} 204": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "DELETE", "/users/me/providers/acme", "", "", bearer(f.linked(t))...)
		},
		"DELETE /users/me/providers/{name} 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "DELETE", "/users/me/providers/acme", "", "")
		},
		"DELETE /users/me/providers/{name} 403": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "DELETE", "/users/me/providers/acme", "", "", cookieNoToken(f.linked(t))...)
		},
		"DELETE /users/me/providers/{name} 404": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "DELETE", "/users/me/providers/acme", "", "", bearer(f.tok)...)
		},
		"DELETE /users/me/providers/{name} 409": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "DELETE", "/users/me/providers/acme", "", "", bearer(f.fedOnly(t))...)
		},
		"GET /admin/api/providers 200": func(t *testing.T, f *fixture) (*http.Request, response) {
			f.fedProvider(t)
			return f.send(t, "GET", "/admin/api/providers", "", "", bearer(f.admin)...)
		},
		"GET /admin/api/providers 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "GET", "/admin/api/providers", "", "")
		},
		"GET /admin/api/providers 403": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "GET", "/admin/api/providers", "", "", bearer(f.tok)...)
		},
		"POST /admin/api/providers 201": func(t *testing.T, f *fixture) (*http.Request, response) {
			// The issuer does not answer: added, with a warning.
			return f.send(t, "POST", "/admin/api/providers", jsonType, fmt.Sprintf(providerBody, fmt.Sprintf("p%d", victims.Add(1))), bearer(f.admin)...)
		},
		"POST /admin/api/providers 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/admin/api/providers", jsonType, fmt.Sprintf(providerBody, "x"))
		},
		"POST /admin/api/providers 403": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/admin/api/providers", jsonType, fmt.Sprintf(providerBody, "x"), bearer(f.tok)...)
		},
		"POST /admin/api/providers 409": func(t *testing.T, f *fixture) (*http.Request, response) {
			f.fedProvider(t)
			return f.send(t, "POST", "/admin/api/providers", jsonType, fmt.Sprintf(providerBody, "acme"), bearer(f.admin)...)
		},
		"POST /admin/api/providers 415": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/admin/api/providers", "text/plain", fmt.Sprintf(providerBody, "x"), bearer(f.admin)...)
		},
		"POST /admin/api/providers 422": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/admin/api/providers", jsonType, `{"name":"Not A Name","issuer":"ftp://x","client_id":"c"}`, bearer(f.admin)...)
		},
		"DELETE /admin/api/providers/{name} 200": func(t *testing.T, f *fixture) (*http.Request, response) {
			name := fmt.Sprintf("d%d", victims.Add(1))
			if _, err := f.ts.s.fed.Add(context.Background(), account.CommandLine, federation.ProviderInput{Name: name,
				Issuer: "https://sso.example.com", ClientID: "c"}); err != nil {
				t.Fatal(err)
			}
			return f.send(t, "DELETE", "/admin/api/providers/"+name, "", "", bearer(f.admin)...)
		},
		"DELETE /admin/api/providers/{name} 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "DELETE", "/admin/api/providers/acme", "", "")
		},
		"DELETE /admin/api/providers/{name} 403": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "DELETE", "/admin/api/providers/acme", "", "", bearer(f.tok)...)
		},
		"DELETE /admin/api/providers/{name} 404": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "DELETE", "/admin/api/providers/no-such", "", "", bearer(f.admin)...)
		},
	}
	for k, v := range add {
		provocations[k] = v
	}
}
