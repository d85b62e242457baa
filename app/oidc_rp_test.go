package app

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	zhttp "github.com/zitadel/oidc/v3/pkg/http"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"

	"fiberauth/app/oidc"
)

// Two relying-party libraries that nobody here wrote sign a user in
// through this service over real HTTP: zitadel/oidc's rp (an
// OpenID-certified relying party) and coreos/go-oidc with x/oauth2.

// TestRelyingPartyZitadel: discovery, the code flow with PKCE (a public
// client) through the login page, the ID token verified against the
// published keys (RS256), userinfo, refresh, and RP-initiated logout back
// to the application.
func TestRelyingPartyZitadel(t *testing.T) {
	ts, base := issuer(t)
	ts.register("alice", "alice@example.com", pw)
	var mu sync.Mutex
	var tokens *zoidc.Tokens[*zoidc.IDTokenClaims]
	var info *zoidc.UserInfo
	app := httptest.NewUnstartedServer(nil)
	app.Start()
	defer app.Close()
	redirect := app.URL + "/callback"
	id, _ := ts.client(t, oidc.ClientInput{Name: "Zitadel RP", RedirectURIs: []string{redirect}, Public: true, FirstParty: true,
		PostLogoutRedirectURIs: []string{app.URL + "/bye"}})
	key := make([]byte, 32)
	rand.Read(key)
	cookies := zhttp.NewCookieHandler(key, key, zhttp.WithUnsecure())
	party, err := rp.NewRelyingPartyOIDC(context.Background(), base, id, "", redirect,
		[]string{"openid", "profile", "email", "offline_access"}, rp.WithPKCE(cookies))
	if err != nil {
		t.Fatalf("relying party (discovery): %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/login", rp.AuthURLHandler(func() string { return "zitadel-state" }, party))
	mux.Handle("/callback", rp.CodeExchangeHandler(rp.UserinfoCallback(func(w http.ResponseWriter, r *http.Request,
		tok *zoidc.Tokens[*zoidc.IDTokenClaims], state string, _ rp.RelyingParty, u *zoidc.UserInfo) {
		mu.Lock()
		tokens, info = tok, u
		mu.Unlock()
		w.Write([]byte("signed in"))
	}), party))
	mux.HandleFunc("/bye", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("bye " + r.URL.Query().Get("state"))) })
	app.Config.Handler = mux

	a := newAgent(t, base, "alice")
	res, body := a.open(app.URL + "/login")
	if res.StatusCode != 200 || body != "signed in" {
		t.Fatalf("sign-in through the library: %d %q (visits %v)", res.StatusCode, body, a.visits)
	}
	mu.Lock()
	tok, ui := tokens, info
	mu.Unlock()
	u, _ := ts.store.UserByUsernameKey(context.Background(), "alice")
	if tok.IDTokenClaims.Subject != u.Subject || ui.Subject != u.Subject || ui.PreferredUsername != "alice" || ui.Email != "alice@example.com" {
		t.Fatalf("claims %+v, userinfo %+v", tok.IDTokenClaims, ui)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token with offline_access")
	}
	refreshed, err := rp.RefreshTokens[*zoidc.IDTokenClaims](context.Background(), party, tok.RefreshToken, "", "")
	if err != nil {
		t.Fatalf("refresh through the library: %v", err)
	}
	if refreshed.IDTokenClaims == nil || refreshed.IDTokenClaims.Subject != u.Subject {
		t.Fatalf("refreshed: %+v", refreshed)
	}
	// RP-initiated logout, in the person's browser, back to the app.
	q := url.Values{"id_token_hint": {tok.IDToken}, "client_id": {id}, "post_logout_redirect_uri": {app.URL + "/bye"}, "state": {"s1"}}
	res, body = a.get(base + "/logout?" + q.Encode())
	if body != "bye s1" {
		t.Fatalf("logout: %d %q", res.StatusCode, body)
	}
	res, _ = a.get(base + "/profile")
	if res.Request.URL.Path != "/login" {
		t.Fatalf("still signed in after the logout: at %s", res.Request.URL)
	}
}

// TestRelyingPartyGoOIDC: coreos/go-oidc with x/oauth2 (PKCE through
// oauth2.S256ChallengeOption), a confidential client with
// client_secret_basic and an EdDSA ID token, nonce checked, userinfo,
// refresh through the token source.
func TestRelyingPartyGoOIDC(t *testing.T) {
	ts, base := issuer(t)
	ts.register("alice", "alice@example.com", pw)
	cb := &rpCallback{}
	app := httptest.NewServer(http.HandlerFunc(cb.handler))
	defer app.Close()
	redirect := app.URL + "/callback"
	for _, alg := range []string{"RS256", "EdDSA"} {
		id, secret := ts.client(t, oidc.ClientInput{Name: "go-oidc " + alg, RedirectURIs: []string{redirect}, IDTokenAlg: alg})
		ctx := context.Background()
		provider, err := gooidc.NewProvider(ctx, base)
		if err != nil {
			t.Fatalf("discovery: %v", err)
		}
		conf := oauth2.Config{ClientID: id, ClientSecret: secret, Endpoint: provider.Endpoint(), RedirectURL: redirect,
			Scopes: []string{gooidc.ScopeOpenID, "profile", "email", gooidc.ScopeOfflineAccess}}
		verifier := oauth2.GenerateVerifier()
		nonce := "nonce-" + alg
		a := newAgent(t, base, "alice")
		res, _ := a.open(conf.AuthCodeURL("state-"+alg, oauth2.S256ChallengeOption(verifier), gooidc.Nonce(nonce)))
		got := res.Request.URL.Query()
		if got.Get("state") != "state-"+alg || got.Get("code") == "" {
			t.Fatalf("%s: callback %v (visits %v)", alg, got, a.visits)
		}
		tok, err := conf.Exchange(ctx, got.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("%s: exchange: %v", alg, err)
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := provider.VerifierContext(ctx, &gooidc.Config{ClientID: id, SupportedSigningAlgs: []string{alg}}).Verify(ctx, raw)
		if err != nil {
			t.Fatalf("%s: go-oidc does not verify the ID token: %v", alg, err)
		}
		if idt.Nonce != nonce {
			t.Errorf("%s: nonce %q", alg, idt.Nonce)
		}
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			t.Errorf("%s: at_hash: %v", alg, err)
		}
		var claims struct {
			Username string `json:"preferred_username"`
			Email    string `json:"email"`
		}
		idt.Claims(&claims)
		if claims.Username != "alice" || claims.Email != "alice@example.com" {
			t.Errorf("%s: claims %+v", alg, claims)
		}
		ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil || ui.Subject != idt.Subject || ui.Email != "alice@example.com" {
			t.Fatalf("%s: userinfo %+v, %v", alg, ui, err)
		}
		// The token source refreshes by itself once the token expires.
		tok.Expiry = tok.Expiry.Add(-24 * 60 * 60 * 1e9)
		fresh, err := conf.TokenSource(ctx, tok).Token()
		if err != nil || fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken {
			t.Fatalf("%s: refresh through x/oauth2: %v", alg, err)
		}
		if _, err := provider.VerifierContext(ctx, &gooidc.Config{ClientID: id, SupportedSigningAlgs: []string{alg}}).
			Verify(ctx, fresh.Extra("id_token").(string)); err != nil {
			t.Errorf("%s: refreshed ID token: %v", alg, err)
		}
		if !strings.HasPrefix(raw, "ey") {
			t.Errorf("%s: id_token %q", alg, raw)
		}
	}
}
