package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"fiberauth/app"
)

// TestBrowserSingleSignOn: an application registered with the command line
// signs a person in through this service in a real browser: from the
// application to the login page, the consent page, and back, where the
// application (go-oidc) verifies the ID token; then the profile lists it
// under "Connected apps".
func TestBrowserSingleSignOn(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "app.db")
	base, _ := serveApp(t, "DATABASE_PATH="+dbPath)
	c := newChrome(t)
	c.registerUser(base, "dora", "dora@example.com")
	c.do(chromedp.Navigate(base+"/profile"), clickAndWait(`form[action="/logout"] button`))

	// The application, on a port of its own.
	rp := httptest.NewUnstartedServer(nil)
	rp.Start()
	defer rp.Close()
	var out bytes.Buffer
	env := map[string]string{"DATABASE_PATH": dbPath, "BCRYPT_COST": "4"}
	err := app.Run(context.Background(), []string{"clients", "create", "--name", "Dora's Notes", "--redirect-uri", rp.URL + "/callback"},
		func(k string) string { return env[k] }, &out, io.Discard, nil)
	if err != nil {
		t.Fatalf("clients create: %v", err)
	}
	id := regexp.MustCompile(`client_id: (\S+)`).FindStringSubmatch(out.String())
	secret := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out.String())
	if id == nil || secret == nil {
		t.Fatalf("clients create said:\n%s", out.String())
	}
	ctx := context.Background()
	provider, err := gooidc.NewProvider(ctx, base)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	conf := oauth2.Config{ClientID: id[1], ClientSecret: secret[1], Endpoint: provider.Endpoint(), RedirectURL: rp.URL + "/callback",
		Scopes: []string{gooidc.ScopeOpenID, "profile", "email"}}
	verifier := oauth2.GenerateVerifier()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, conf.AuthCodeURL("browser-state", oauth2.S256ChallengeOption(verifier), gooidc.Nonce("browser-nonce")), http.StatusFound)
	})
	mux.HandleFunc("/callback", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("state") != "browser-state" {
			http.Error(w, "bad state", http.StatusBadRequest)
			return
		}
		tok, err := conf.Exchange(r.Context(), r.URL.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		idt, err := provider.Verifier(&gooidc.Config{ClientID: conf.ClientID}).Verify(r.Context(), tok.Extra("id_token").(string))
		if err != nil || idt.Nonce != "browser-nonce" {
			http.Error(w, fmt.Sprintf("ID token: %v", err), http.StatusUnauthorized)
			return
		}
		var claims struct {
			Name string `json:"preferred_username"`
		}
		idt.Claims(&claims)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>Notes</title><p id=hello>Hello %s</p>", claims.Name)
	})
	rp.Config.Handler = mux

	c.do(chromedp.Navigate(rp.URL + "/"))
	if loc := c.location(); !strings.HasPrefix(loc, base+"/login?next=") {
		t.Fatalf("the application sent the browser to %s, want the login page", loc)
	}
	c.submitForm(`form[action="/login"]`, map[string]string{"username": "dora", "password": password})
	if !strings.Contains(c.text(), "Allow Dora's Notes?") {
		t.Fatalf("no consent page:\n%s", c.text())
	}
	c.checkPage()
	c.screenshot("oidc-1-consent")
	c.do(clickAndWait(`#allow`))
	if got := get(c, chromedp.Text(`#hello`)); got != "Hello dora" {
		t.Fatalf("the application says %q", got)
	}
	c.do(chromedp.Navigate(base + "/profile"))
	if !strings.Contains(c.text(), "Connected apps") || !strings.Contains(c.text(), "Dora's Notes") {
		t.Fatalf("profile without the connected app:\n%s", c.text())
	}
	c.checkPage()
	c.screenshot("oidc-2-connected-apps")
	// Signed in and allowed already: the next visit goes straight back.
	c.do(chromedp.Navigate(rp.URL + "/"))
	if got := get(c, chromedp.Text(`#hello`)); got != "Hello dora" {
		t.Fatalf("second visit: the application says %q", got)
	}
	// Signed out, allowed already: the login form's submission ends at the
	// application, through the redirects (the page's form-action allows
	// the application's registered redirect URI).
	c.do(chromedp.Navigate(base+"/profile"), clickAndWait(`form[action="/logout"] button`))
	c.do(chromedp.Navigate(rp.URL + "/"))
	c.submitForm(`form[action="/login"]`, map[string]string{"username": "dora", "password": password})
	if got := get(c, chromedp.Text(`#hello`)); got != "Hello dora" {
		t.Fatalf("after signing in again: the application says %q", got)
	}
}
