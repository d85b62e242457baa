package app

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	jwxjwt "github.com/lestrrat-go/jwx/v3/jwt"

	"fiberauth/app/account"
	"fiberauth/app/oidc"
)

// issuer is a test server listening on a loopback port, with ISSUER set to
// its own address (OpenID Connect relying parties check it).
func issuer(t *testing.T, env ...string) (*testServer, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ts := newTestServer(t, append([]string{"ISSUER", base}, env...)...)
	go ts.s.App().Listener(ln)
	t.Cleanup(func() { ts.s.App().Shutdown() })
	return ts, base
}

// client registers an application on ts, as the command line would.
func (ts *testServer) client(t testing.TB, in oidc.ClientInput) (string, string) {
	t.Helper()
	if in.Name == "" {
		in.Name = "Test app"
	}
	c, secret, err := ts.s.oidc.CreateClient(context.Background(), account.CommandLine, in)
	if err != nil {
		t.Fatalf("register a client: %v", err)
	}
	return c.ID, secret
}

// agent is a person's browser over real HTTP: it keeps cookies, follows
// redirects, and knows how to get through this service's login page (and
// second step) and consent page.
type agent struct {
	t      testing.TB
	c      *http.Client
	base   string
	user   string
	pw     string
	otp    func() string
	allow  bool
	visits []string
}

func newAgent(t testing.TB, base, user string) *agent {
	jar, _ := cookiejar.New(nil)
	a := &agent{t: t, base: base, user: user, pw: pw, allow: true}
	a.c = &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		a.visits = append(a.visits, req.URL.String())
		if len(via) > 20 {
			return fmt.Errorf("too many redirects")
		}
		return nil
	}}
	return a
}

var (
	formField = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
	formAct   = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
)

// hidden returns the hidden fields of the first form on a page.
func hidden(body string) url.Values {
	v := url.Values{}
	for _, m := range formField.FindAllStringSubmatch(body, -1) {
		v.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	return v
}

// open visits u and gets through this service's pages on the way: the
// login page (with the second step when asked), and the consent page
// (allowing or denying as a.allow says). It returns the last response,
// its body read.
func (a *agent) open(u string) (*http.Response, string) {
	a.t.Helper()
	res, body := a.get(u)
	for i := 0; i < 6; i++ {
		if !strings.HasPrefix(res.Request.URL.String(), a.base) {
			return res, body
		}
		path := res.Request.URL.Path
		switch {
		case path == "/login" && strings.Contains(body, `action="/login/mfa"`):
			f := hidden(body)
			f.Set("code", a.otp())
			res, body = a.post("/login/mfa", f)
		case path == "/login" && strings.Contains(body, `action="/login"`):
			f := hidden(body)
			f.Set("username", a.user)
			f.Set("password", a.pw)
			res, body = a.post("/login", f)
		case path == "/authorize" && strings.Contains(body, `action="/authorize"`):
			f := hidden(body)
			f.Set("decision", map[bool]string{true: "allow", false: "deny"}[a.allow])
			res, body = a.post("/authorize", f)
		default:
			a.t.Logf("stopped at %s (%d): %.300s", res.Request.URL, res.StatusCode, body)
			return res, body
		}
	}
	return res, body
}

func (a *agent) get(u string) (*http.Response, string) {
	a.t.Helper()
	res, err := a.c.Get(u)
	if err != nil {
		a.t.Fatalf("GET %s: %v", u, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b)
}

func (a *agent) post(path string, f url.Values) (*http.Response, string) {
	a.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, a.base+path, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", a.base)
	res, err := a.c.Do(req)
	if err != nil {
		a.t.Fatalf("POST %s: %v", path, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b)
}

// rpCallback is a relying party's callback: it records what arrived.
type rpCallback struct {
	mu    sync.Mutex
	query url.Values
}

func (cb *rpCallback) handler(w http.ResponseWriter, r *http.Request) {
	cb.mu.Lock()
	cb.query = r.URL.Query()
	cb.mu.Unlock()
	io.WriteString(w, "callback")
}

// pkce returns a verifier and its S256 challenge.
func pkce() (string, string) {
	verifier := base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("v", 40)))
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorize runs an authorization request for client through the agent
// and returns the query the application's redirect URI received.
func (a *agent) authorize(clientID, redirectURI string, extra url.Values) url.Values {
	a.t.Helper()
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI}, "scope": {"openid profile email"},
		"state": {"st4te"}}
	for k, v := range extra {
		q[k] = v
	}
	res, _ := a.open(a.base + "/authorize?" + q.Encode())
	return res.Request.URL.Query()
}

// exchange is the application's code exchange.
func exchange(t testing.TB, base string, f url.Values, basic ...string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/token", strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 2 {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

// jwtClaims decodes a JWT's payload without checking it (the relying
// parties' libraries check; this is for looking).
func jwtClaims(t testing.TB, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

// TestAuthorizationCodeFlow drives the whole flow over HTTP on both
// engines: login page, consent, code, exchange (confidential client,
// client_secret_basic), userinfo, refresh with a new ID token, and the
// claims of each token.
func TestAuthorizationCodeFlow(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts, base := issuer(t, env...)
		ts.register("alice", "alice@example.com", pw)
		cb := &rpCallback{}
		rp := httptest.NewServer(http.HandlerFunc(cb.handler))
		defer rp.Close()
		redirect := rp.URL + "/callback"
		id, secret := ts.client(t, oidc.ClientInput{Name: "Acme Notes", RedirectURIs: []string{redirect}})
		a := newAgent(t, base, "alice")
		verifier, challenge := pkce()
		got := a.authorize(id, redirect, url.Values{"scope": {"openid profile email offline_access"}, "nonce": {"n0nce"},
			"code_challenge": {challenge}, "code_challenge_method": {"S256"}})
		if got.Get("state") != "st4te" || got.Get("code") == "" || got.Get("iss") != base {
			t.Fatalf("callback query %v (visits %v)", got, a.visits)
		}
		status, tok := exchange(t, base, url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")},
			"redirect_uri": {redirect}, "code_verifier": {verifier}}, id, secret)
		if status != 200 || tok["token_type"] != "Bearer" || tok["id_token"] == nil || tok["refresh_token"] == nil ||
			tok["scope"] != "openid profile email offline_access" {
			t.Fatalf("exchange: %d %v", status, tok)
		}
		claims := jwtClaims(t, tok["id_token"].(string))
		u, _ := ts.store.UserByUsernameKey(context.Background(), "alice")
		if fmt.Sprint(claims["aud"]) != "["+id+"]" {
			t.Errorf("ID token aud = %v, want [%s]", claims["aud"], id)
		}
		for k, want := range map[string]any{"iss": base, "sub": u.Subject, "nonce": "n0nce", "azp": id,
			"preferred_username": "alice", "email": "alice@example.com", "email_verified": false} {
			if fmt.Sprint(claims[k]) != fmt.Sprint(want) {
				t.Errorf("ID token %s = %v, want %v", k, claims[k], want)
			}
		}
		if claims["sub"] == "alice" || claims["at_hash"] == nil || claims["auth_time"] == nil || claims["sid"] == nil || claims["amr"] == nil {
			t.Errorf("ID token claims %v", claims)
		}
		access := tok["access_token"].(string)
		res := ts.get("/userinfo", bearer(access)...)
		wantStatus(t, res, 200)
		if info := res.json(t); info["sub"] != u.Subject || info["preferred_username"] != "alice" || info["email"] != "alice@example.com" {
			t.Errorf("userinfo %v", info)
		}
		// The application's token is for userinfo and its scopes' APIs,
		// not the account's own endpoints.
		wantStatus(t, ts.get("/users/me", bearer(access)...), http.StatusForbidden)
		wantStatus(t, ts.get("/users/me/sessions", bearer(access)...), http.StatusForbidden)
		// Refresh: the application authenticates; a new ID token comes.
		status, ref := exchange(t, base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}},
			id, secret)
		if status != 200 || ref["id_token"] == nil || ref["refresh_token"] == tok["refresh_token"] {
			t.Fatalf("refresh: %d %v", status, ref)
		}
		if c := jwtClaims(t, ref["id_token"].(string)); c["sub"] != u.Subject || c["nonce"] != nil {
			t.Errorf("refreshed ID token %v", c)
		}
		// Without its secret, or with another's, the refresh is refused.
		status, _ = exchange(t, base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ref["refresh_token"].(string)}})
		if status != 401 {
			t.Errorf("refresh without client authentication: %d", status)
		}
		// The profile lists the app; revoking ends its tokens.
		b := ts.browser()
		b.login("alice", pw)
		if p := b.get("/profile").Body; !strings.Contains(p, "Connected apps") || !strings.Contains(p, "Acme Notes") {
			t.Fatalf("profile without the connected app")
		}
		wantStatus(t, b.submit("/profile", "/profile/apps/"+id+"/revoke", url.Values{}), http.StatusSeeOther)
		wantStatus(t, ts.get("/userinfo", bearer(ref["access_token"].(string))...), http.StatusUnauthorized)
		status, _ = exchange(t, base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ref["refresh_token"].(string)}},
			id, secret)
		if status != 400 {
			t.Errorf("refresh after revocation: %d", status)
		}
		// Revoked, the consent is forgotten: the next request asks again.
		a.allow = false
		got = a.authorize(id, redirect, url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}})
		if got.Get("error") != "access_denied" || got.Get("state") != "st4te" {
			t.Fatalf("denied consent: %v", got)
		}
	})
}

// TestAuthorizationRefusals: every refusal of the authorization and token
// endpoints, and none of them an open redirect.
func TestAuthorizationRefusals(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts, base := issuer(t, env...)
		ts.register("alice", "alice@example.com", pw)
		cb := &rpCallback{}
		rp := httptest.NewServer(http.HandlerFunc(cb.handler))
		defer rp.Close()
		redirect := rp.URL + "/callback"
		public, _ := ts.client(t, oidc.ClientInput{Name: "Public app", RedirectURIs: []string{redirect}, Public: true, FirstParty: true})
		conf, secret := ts.client(t, oidc.ClientInput{Name: "Confidential app", RedirectURIs: []string{redirect}, FirstParty: true})
		other, otherSecret := ts.client(t, oidc.ClientInput{Name: "Other app", RedirectURIs: []string{redirect}, FirstParty: true})
		thirdParty, tpSecret := ts.client(t, oidc.ClientInput{Name: "Third party", RedirectURIs: []string{redirect}})
		a := newAgent(t, base, "alice")
		verifier, challenge := pkce()
		withPKCE := url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}}

		// Refused here, on an error page, never sent anywhere: unknown
		// application, unregistered or altered redirect URIs.
		for name, q := range map[string]url.Values{
			"unknown client":      {"client_id": {"no-such-client"}, "redirect_uri": {redirect}},
			"no redirect URI":     {"client_id": {public}},
			"other redirect URI":  {"client_id": {public}, "redirect_uri": {"https://evil.example/callback"}},
			"altered path":        {"client_id": {public}, "redirect_uri": {redirect + "/"}},
			"added query":         {"client_id": {public}, "redirect_uri": {redirect + "?next=https://evil.example"}},
			"another port":        {"client_id": {public}, "redirect_uri": {strings.Replace(redirect, "127.0.0.1:", "127.0.0.1:1", 1)}},
			"repeated client_id":  {"client_id": {public, conf}, "redirect_uri": {redirect}},
			"repeated redirect":   {"client_id": {public}, "redirect_uri": {redirect, "https://evil.example/cb"}},
			"another scheme host": {"client_id": {public}, "redirect_uri": {"javascript:alert(1)"}},
		} {
			q.Set("response_type", "code")
			q.Set("scope", "openid")
			res := ts.get("/authorize?"+q.Encode(), "Accept", "text/html")
			if res.StatusCode != http.StatusBadRequest || res.Header.Get("Location") != "" || !strings.Contains(res.Body, "<!doctype html>") {
				t.Errorf("%s: %d Location %q", name, res.StatusCode, res.Header.Get("Location"))
			}
		}
		// Back to the application, with state and the error.
		back := func(name string, q url.Values, want string) {
			t.Helper()
			got := a.authorize(q.Get("client_id"), redirect, q)
			if got.Get("error") != want || got.Get("state") != "st4te" || got.Get("iss") != base || got.Get("code") != "" {
				t.Errorf("%s: %v, want error %s", name, got, want)
			}
		}
		back("public client without PKCE", url.Values{"client_id": {public}}, "invalid_request")
		back("plain PKCE", url.Values{"client_id": {public}, "code_challenge": {challenge}, "code_challenge_method": {"plain"}}, "invalid_request")
		back("a challenge without its method", url.Values{"client_id": {public}, "code_challenge": {challenge}}, "invalid_request")
		back("implicit flow", url.Values{"client_id": {conf}, "response_type": {"token"}}, "unsupported_response_type")
		back("a scope not registered", url.Values{"client_id": {conf}, "scope": {"openid admin"}}, "invalid_scope")
		back("a request object", url.Values{"client_id": {conf}, "request": {"eyJ.x.y"}}, "request_not_supported")
		back("prompt=none without a session", url.Values{"client_id": {conf}, "prompt": {"none"}}, "login_required")

		// A code, for the rest.
		code := func(client string) string {
			t.Helper()
			q := url.Values{"client_id": {client}}
			for k, v := range withPKCE {
				q[k] = v
			}
			got := a.authorize(client, redirect, q)
			if got.Get("code") == "" {
				t.Fatalf("no code: %v", got)
			}
			return got.Get("code")
		}
		grant := func(c, v string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirect}, "code_verifier": {v}}
		}
		wantGrant := func(name string, status int, m map[string]any, wantStatus int, wantErr string) {
			t.Helper()
			if status != wantStatus || m["error"] != wantErr {
				t.Errorf("%s: %d %v, want %d %s", name, status, m, wantStatus, wantErr)
			}
		}
		c := code(public)
		st, m := exchange(t, base, url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirect}, "client_id": {public}})
		wantGrant("missing verifier", st, m, 400, "invalid_grant")
		st, m = exchange(t, base, url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirect}, "client_id": {public},
			"code_verifier": {strings.Repeat("w", 43)}})
		wantGrant("wrong verifier", st, m, 400, "invalid_grant")
		f := grant(c, verifier)
		f.Set("client_id", public)
		f.Set("redirect_uri", redirect+"/other")
		st, m = exchange(t, base, f)
		wantGrant("another redirect URI", st, m, 400, "invalid_grant")
		// A refused exchange spends nothing: the right one still works.
		f.Set("redirect_uri", redirect)
		st, first := exchange(t, base, f)
		if st != 200 {
			t.Fatalf("the right exchange after refusals: %d %v", st, first)
		}
		// Presented again: refused, and what it issued ends.
		st, m = exchange(t, base, f)
		wantGrant("code replay", st, m, 400, "invalid_grant")
		wantStatus(t, ts.get("/userinfo", bearer(first["access_token"].(string))...), http.StatusUnauthorized)

		// Client authentication.
		c = code(conf)
		st, m = exchange(t, base, grant(c, verifier), conf, "wrong secret")
		wantGrant("wrong secret", st, m, 401, "invalid_client")
		st, m = exchange(t, base, grant(c, verifier))
		wantGrant("no client authentication", st, m, 401, "invalid_client")
		post := grant(c, verifier)
		post.Set("client_id", public)
		post.Set("client_secret", "anything")
		st, m = exchange(t, base, post)
		wantGrant("a public client sending a secret", st, m, 401, "invalid_client")
		st, m = exchange(t, base, grant(c, verifier), other, otherSecret)
		wantGrant("another client's code", st, m, 400, "invalid_grant")
		post = grant(c, verifier)
		post.Set("client_id", conf)
		post.Set("client_secret", secret)
		st, m = exchange(t, base, post)
		if st != 200 {
			t.Errorf("client_secret_post: %d %v", st, m)
		}
		// Expired: 60 seconds.
		c = code(conf)
		ts.clockAt(time.Now().Add(61 * time.Second))
		st, m = exchange(t, base, grant(c, verifier), conf, secret)
		wantGrant("expired code", st, m, 400, "invalid_grant")
		ts.s.acct.Now = time.Now
		// A third party is not given a code before the person allows it.
		_ = tpSecret
		back("prompt=none without consent", url.Values{"client_id": {thirdParty}, "prompt": {"none"}}, "consent_required")
		a.allow = false
		back("consent denied", url.Values{"client_id": {thirdParty}}, "access_denied")

		// Post-logout redirects: registered ones only.
		res := ts.get("/logout?"+url.Values{"client_id": {conf}, "post_logout_redirect_uri": {"https://evil.example/"}}.Encode(), "Accept", "text/html")
		if res.StatusCode != http.StatusBadRequest || res.Header.Get("Location") != "" {
			t.Errorf("unregistered post-logout URI: %d %q", res.StatusCode, res.Header.Get("Location"))
		}
		res = ts.get("/logout?"+url.Values{"post_logout_redirect_uri": {redirect}}.Encode(), "Accept", "text/html")
		if res.StatusCode != http.StatusBadRequest || res.Header.Get("Location") != "" {
			t.Errorf("post-logout URI without a client: %d %q", res.StatusCode, res.Header.Get("Location"))
		}
		// The login page's next never leaves the site.
		res = ts.get("/authorize?" + url.Values{"response_type": {"code"}, "client_id": {conf}, "redirect_uri": {redirect}, "scope": {"openid"}}.Encode())
		if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "/login?next=/authorize") {
			t.Errorf("without a session: Location %q", loc)
		}
	})
}

// prompt=login and max_age: a fresh sign-in is asked for even with a
// session, and the ID token's auth_time says when it happened.
func TestPromptLoginAndMaxAge(t *testing.T) {
	ts, base := issuer(t)
	ts.register("alice", "alice@example.com", pw)
	cb := &rpCallback{}
	rp := httptest.NewServer(http.HandlerFunc(cb.handler))
	defer rp.Close()
	redirect := rp.URL + "/callback"
	id, secret := ts.client(t, oidc.ClientInput{RedirectURIs: []string{redirect}, FirstParty: true})
	a := newAgent(t, base, "alice")
	first := a.authorize(id, redirect, nil)
	_, tok := exchange(t, base, url.Values{"grant_type": {"authorization_code"}, "code": {first.Get("code")}, "redirect_uri": {redirect}}, id, secret)
	authTime := jwtClaims(t, tok["id_token"].(string))["auth_time"].(float64)
	// Signed in now: a plain request needs no login page.
	a.visits = nil
	a.authorize(id, redirect, nil)
	for _, v := range a.visits {
		if strings.Contains(v, "/login") {
			t.Fatalf("the login page was shown to a signed-in person: %v", a.visits)
		}
	}
	time.Sleep(1100 * time.Millisecond) // auth_time has whole seconds
	for _, extra := range []url.Values{{"prompt": {"login"}}, {"max_age": {"0"}}} {
		a.visits = nil
		got := a.authorize(id, redirect, extra)
		sawLogin := false
		for _, v := range a.visits {
			sawLogin = sawLogin || strings.Contains(v, "/login")
		}
		_, tok := exchange(t, base, url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")}, "redirect_uri": {redirect}}, id, secret)
		if !sawLogin || tok["id_token"] == nil || jwtClaims(t, tok["id_token"].(string))["auth_time"].(float64) <= authTime {
			t.Fatalf("%v: login page %v, token %v", extra, sawLogin, tok)
		}
	}
	// The way back from the login page carries the service's signed mark
	// (auth_after); one written in the address by hand, or signed for
	// another request, skips nothing.
	var genuine string
	a.visits = nil
	a.authorize(id, redirect, url.Values{"prompt": {"login"}})
	for _, v := range a.visits {
		if u, err := url.Parse(v); err == nil && u.Path == "/authorize" && u.Query().Get("auth_after") != "" {
			genuine = u.Query().Get("auth_after")
		}
	}
	if genuine == "" {
		t.Fatalf("no way back from the login page: %v", a.visits)
	}
	time.Sleep(1100 * time.Millisecond)
	for _, extra := range []url.Values{
		{"prompt": {"login"}, "auth_after": {"1"}},
		{"prompt": {"login"}, "auth_after": {strconv.FormatInt(time.Now().Unix()-3600, 10)}},
		{"max_age": {"0"}, "auth_after": {"1"}},
		{"prompt": {"login"}, "auth_after": {genuine}, "state": {"another request"}},
		{"max_age": {"0"}, "auth_after": {genuine}},
	} {
		a.visits = nil
		a.authorize(id, redirect, extra)
		sawLogin := false
		for _, v := range a.visits {
			sawLogin = sawLogin || strings.Contains(v, "/login")
		}
		if !sawLogin {
			t.Errorf("%v: a forced sign-in was skipped: %v", extra, a.visits)
		}
	}
	// prompt=none cannot show the login page: the application is told.
	res, _ := a.open(base + "/authorize?" + url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {redirect},
		"scope": {"openid"}, "prompt": {"none"}, "max_age": {"0"}, "auth_after": {"1"}}.Encode())
	if got := res.Request.URL.Query(); got.Get("error") != "login_required" {
		t.Errorf("prompt=none max_age=0 with auth_after: %v, want login_required", got)
	}
}

// An authorization started on one instance is finished on another: the
// code, the consent and the sessions are in the shared database.
func TestAuthorizationAcrossInstances(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts, base := issuer(t, env...)
		other := ts.instance(t)
		ts.register("alice", "alice@example.com", pw)
		redirect := "http://127.0.0.1:9/callback"
		id, secret := ts.client(t, oidc.ClientInput{RedirectURIs: []string{redirect}})
		a := newAgent(t, base, "alice")
		a.c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), redirect) {
				return http.ErrUseLastResponse
			}
			return nil
		}
		res, _ := a.open(base + "/authorize?" + url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {redirect},
			"scope": {"openid email"}, "state": {"x"}}.Encode())
		loc, _ := url.Parse(res.Header.Get("Location"))
		if loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("no code: %d %v", res.StatusCode, res.Header)
		}
		req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(url.Values{"grant_type": {"authorization_code"},
			"code": {loc.Query().Get("code")}, "redirect_uri": {redirect}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
		out := other.do(req)
		wantStatus(t, out, http.StatusOK)
		access := out.json(t)["access_token"].(string)
		wantStatus(t, other.get("/userinfo", bearer(access)...), http.StatusOK)
		wantStatus(t, ts.get("/userinfo", bearer(access)...), http.StatusOK)
	})
}

// logoutReceiver is an application's back-channel logout endpoint: it
// checks each logout token with the provider's published keys (an
// independent JOSE library) and keeps its claims.
type logoutReceiver struct {
	t      testing.TB
	base   string
	mu     sync.Mutex
	got    []map[string]any
	failN  int // answer 500 to this many first
	server *httptest.Server
}

func newLogoutReceiver(t testing.TB, base string) *logoutReceiver {
	r := &logoutReceiver{t: t, base: base}
	r.server = httptest.NewServer(http.HandlerFunc(r.handle))
	t.Cleanup(r.server.Close)
	return r
}

func (r *logoutReceiver) handle(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failN > 0 {
		r.failN--
		http.Error(w, "not now", http.StatusInternalServerError)
		return
	}
	if req.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		http.Error(w, "form expected", http.StatusBadRequest)
		return
	}
	req.ParseForm()
	raw := req.PostForm.Get("logout_token")
	res, err := http.Get(r.base + "/.well-known/jwks.json")
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	set, err := jwk.ParseReader(res.Body)
	res.Body.Close()
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	tok, err := jwxjwt.Parse([]byte(raw), jwxjwt.WithKeySet(set), jwxjwt.WithIssuer(r.base), jwxjwt.WithValidate(true))
	if err != nil {
		r.t.Errorf("a logout token that does not verify: %v", err)
		http.Error(w, err.Error(), 400)
		return
	}
	claims := jwtClaims(r.t, raw)
	if _, ok := tok.Subject(); !ok {
		r.t.Errorf("logout token without sub: %v", claims)
	}
	r.got = append(r.got, claims)
	w.WriteHeader(http.StatusOK)
}

func (r *logoutReceiver) received() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.got...)
}

// TestBackchannelLogout: whenever a session ends here (a logout, a
// password change, an admin, reuse of the application's refresh token,
// its access revoked), each application that got tokens for it and
// registered a back-channel URI is sent a signed logout token, from a
// durable queue, retried until it is taken.
func TestBackchannelLogout(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts, base := issuer(t, append([]string{"INTROSPECTION_TOKENS", introspectionSecret}, env...)...)
		ts.register("alice", "alice@example.com", pw)
		ts.makeAdmin("root")
		recv := newLogoutReceiver(t, base)
		redirect := "http://127.0.0.1:9/callback"
		id, secret := ts.client(t, oidc.ClientInput{Name: "Logs out", RedirectURIs: []string{redirect}, FirstParty: true,
			BackchannelLogoutURI: recv.server.URL + "/backchannel"})
		silent, silentSecret := ts.client(t, oidc.ClientInput{Name: "No back channel", RedirectURIs: []string{redirect}, FirstParty: true})
		u, _ := ts.store.UserByUsernameKey(context.Background(), "alice")
		signIn := func(scope string) (*agent, map[string]any) {
			t.Helper()
			a := newAgent(t, base, "alice")
			a.c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
				if strings.HasPrefix(req.URL.String(), redirect) {
					return http.ErrUseLastResponse
				}
				return nil
			}
			var tok map[string]any
			for _, c := range [][2]string{{id, secret}, {silent, silentSecret}} {
				res, _ := a.open(base + "/authorize?" + url.Values{"response_type": {"code"}, "client_id": {c[0]}, "redirect_uri": {redirect},
					"scope": {scope}}.Encode())
				loc, _ := url.Parse(res.Header.Get("Location"))
				st, m := exchange(t, base, url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
					"redirect_uri": {redirect}}, c[0], c[1])
				if st != 200 {
					t.Fatalf("exchange: %d %v", st, m)
				}
				if c[0] == id {
					tok = m
				}
			}
			return a, tok
		}
		flush := func() {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := ts.s.oidc.FlushLogouts(ctx); err != nil {
				t.Fatal(err)
			}
		}
		expect := func(what string, sid string) {
			t.Helper()
			flush()
			got := recv.received()
			if len(got) != 1 {
				t.Fatalf("%s: %d logout tokens, want 1: %v", what, len(got), got)
			}
			c := got[0]
			events, _ := c["events"].(map[string]any)
			if _, ok := events["http://schemas.openid.net/event/backchannel-logout"]; !ok || c["sub"] != u.Subject ||
				fmt.Sprint(c["aud"]) != "["+id+"]" || c["nonce"] != nil || c["jti"] == nil || c["iat"] == nil || (sid != "" && c["sid"] != sid) {
				t.Errorf("%s: logout token %v", what, c)
			}
			recv.mu.Lock()
			recv.got = nil
			recv.mu.Unlock()
		}
		// A logout in the browser.
		a, tok := signIn("openid")
		sid := jwtClaims(t, tok["id_token"].(string))["sid"].(string)
		a.post("/logout", hidden(func() string { _, b := a.get(base + "/profile"); return b }()))
		expect("sign-out", sid)
		wantStatus(t, ts.get("/userinfo", bearer(tok["access_token"].(string))...), http.StatusUnauthorized)
		// A password change from another session.
		_, tok = signIn("openid")
		other := ts.token("alice", pw)
		wantStatus(t, ts.postJSON("/users/me/password", `{"current_password":"`+pw+`","new_password":"a second passphrase"}`, bearer(other)...), 204)
		expect("password change", jwtClaims(t, tok["id_token"].(string))["sid"].(string))
		ts.postJSON("/users/me/password", `{"current_password":"a second passphrase","new_password":"`+pw+`"}`, bearer(other)...)
		flush()
		recv.mu.Lock()
		recv.got = nil
		recv.mu.Unlock()
		// An admin ending every session.
		signIn("openid")
		wantStatus(t, ts.send("DELETE", fmt.Sprintf("/admin/api/users/%d/sessions", u.ID), ``, bearer(ts.token("root", pw))...), 204)
		expect("admin", "")
		// Reuse of the application's refresh token ends its session: the
		// application is told, though the person's own session lives on.
		_, tok = signIn("openid offline_access")
		rt := tok["refresh_token"].(string)
		if st, _ := exchange(t, base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, id, secret); st != 200 {
			t.Fatalf("refresh: %d", st)
		}
		ts.clockAt(time.Now().Add(time.Minute))
		if st, _ := exchange(t, base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, id, secret); st != 400 {
			t.Fatalf("reuse: %d", st)
		}
		ts.s.acct.Now = time.Now
		expect("reuse", "")
		// Revoking the application's access from the profile.
		a, _ = signIn("openid")
		_, body := a.get(base + "/profile")
		f := hidden(body)
		a.post("/profile/apps/"+id+"/revoke", f)
		expect("revoked access", "")
		// Retries: the application is down at first.
		recv.mu.Lock()
		recv.failN = 1
		recv.mu.Unlock()
		_, tok = signIn("openid")
		wantStatus(t, ts.postForm("/revoke", url.Values{"token": {tok["access_token"].(string)}}), 200)
		expect("after a failed delivery", "")
	})
}

// The consent kept is what the page showed and the person allowed: the
// role scopes the account had then. A promotion does not widen it
// silently; the next request asks again.
func TestConsentIsWhatWasShown(t *testing.T) {
	ts, base := issuer(t)
	ts.register("bob", "bob@example.com", pw)
	redirect := "http://127.0.0.1:9/callback"
	id, _ := ts.client(t, oidc.ClientInput{Name: "Wide", RedirectURIs: []string{redirect},
		Scopes: []string{"openid", "profile", "basic", "premium", "admin"}})
	a := newAgent(t, base, "bob")
	a.c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		a.visits = append(a.visits, req.URL.String())
		if strings.HasPrefix(req.URL.String(), redirect) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	ask := url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {redirect}, "scope": {"openid premium admin"},
		"state": {"s"}}
	res, _ := a.open(base + "/authorize?" + ask.Encode())
	if loc, _ := url.Parse(res.Header.Get("Location")); loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("first request: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	apps := ts.get("/users/me/apps", bearer(ts.token("bob", pw))...)
	wantStatus(t, apps, http.StatusOK)
	if strings.Contains(apps.Body, "premium") || strings.Contains(apps.Body, "admin") || !strings.Contains(apps.Body, `"openid"`) {
		t.Fatalf("consent kept %s; the page showed openid alone", apps.Body)
	}
	silent := url.Values{}
	for k, v := range ask {
		silent[k] = v
	}
	silent.Set("prompt", "none")
	// Asked again as it was, nothing new would be given: no question.
	res, _ = a.get(base + "/authorize?" + silent.Encode())
	if loc, _ := url.Parse(res.Header.Get("Location")); loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("the same request again, prompt=none: %d %s, want a code", res.StatusCode, res.Header.Get("Location"))
	}
	u, _ := ts.store.UserByUsernameKey(context.Background(), "bob")
	if err := ts.s.acct.SetRole(context.Background(), account.CommandLine, u.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	res, _ = a.get(base + "/authorize?" + silent.Encode())
	loc, _ := url.Parse(res.Header.Get("Location"))
	if loc == nil || loc.Query().Get("error") != "consent_required" {
		t.Fatalf("after a promotion, prompt=none: %d %s, want consent_required", res.StatusCode, res.Header.Get("Location"))
	}
	// Asked and allowed again, the new scopes are granted.
	res, _ = a.open(base + "/authorize?" + ask.Encode())
	if loc, _ := url.Parse(res.Header.Get("Location")); loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("asked again: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if apps := ts.get("/users/me/apps", bearer(ts.token("bob", pw))...); !strings.Contains(apps.Body, "admin") {
		t.Fatalf("consent after the promotion: %s", apps.Body)
	}
}

// An account's subject (the sub of applications' tokens) can never be a
// username (the sub of the service's own tokens, as in the recipe): no
// token's sub can name two accounts.
func TestSubjectIsNeverAUsername(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	u, _ := ts.store.UserByUsernameKey(context.Background(), "alice")
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(u.Subject) {
		t.Fatalf("subject %q is not a random UUID", u.Subject)
	}
	for _, name := range []string{u.Subject, strings.ReplaceAll(u.Subject, "-", "")[:32]} {
		res := ts.postJSON("/register/user", `{"username":"`+name+`","email":"m@example.com","password":"`+pw+`"}`)
		if name == u.Subject {
			wantStatus(t, res, http.StatusUnprocessableEntity)
		} else if res.StatusCode == http.StatusCreated {
			// 32 characters may be a username; it is then not a subject.
			other, _ := ts.store.UserByUsernameKey(context.Background(), name)
			if other.Subject == name || other.Subject == u.Subject {
				t.Fatalf("username %q and subject %q", name, other.Subject)
			}
		}
	}
}

// Bytes that are not UTF-8 in any parameter of the provider's endpoints
// are a 4xx on both engines (PostgreSQL refuses to compare them), never a
// 500, and never come back in a token or a redirect.
func TestProviderRefusesInvalidUTF8(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts, base := issuer(t, env...)
		ts.register("alice", "alice@example.com", pw)
		redirect := "http://127.0.0.1:9/callback"
		id, _ := ts.client(t, oidc.ClientInput{RedirectURIs: []string{redirect}, FirstParty: true})
		a := newAgent(t, base, "alice")
		a.c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), redirect) {
				return http.ErrUseLastResponse
			}
			return nil
		}
		a.open(base + "/authorize?" + url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {redirect}, "scope": {"openid"}}.Encode())
		good := "response_type=code&client_id=" + id + "&redirect_uri=" + url.QueryEscape(redirect) + "&scope=openid"
		for _, q := range []string{
			"response_type=code&client_id=%ff&redirect_uri=x&scope=openid",
			good + "&nonce=%c3%28",
			good + "&state=%ff",
			good + "&login_hint=%ff",
		} {
			res, _ := a.get(base + "/authorize?" + q)
			if res.StatusCode >= 500 {
				t.Errorf("/authorize?%s: %d", q, res.StatusCode)
			}
			if loc := res.Header.Get("Location"); strings.Contains(loc, "code=") || strings.Contains(loc, "%EF%BF%BD") {
				t.Errorf("/authorize?%s went to %s", q, loc)
			}
		}
		for _, q := range []string{"client_id=%ff", "client_id=" + id + "&post_logout_redirect_uri=%ff"} {
			if res, _ := a.get(base + "/logout?" + q); res.StatusCode != http.StatusBadRequest {
				t.Errorf("/logout?%s: %d, want 400", q, res.StatusCode)
			}
		}
		for _, basic := range [][2]string{{"%ff", "x"}, {id, "%ff"}} {
			status, body := exchange(t, base, url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {redirect}},
				basic[0], basic[1])
			if status != http.StatusUnauthorized {
				t.Errorf("Basic %q: %d %v, want 401", basic, status, body)
			}
		}
		for _, f := range []string{"client_id=%ff", "code=%ff", "redirect_uri=%ff", "code_verifier=%ff"} {
			req, _ := http.NewRequest(http.MethodPost, base+"/token", strings.NewReader("grant_type=authorization_code&code=x&redirect_uri=y&"+f))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode != http.StatusBadRequest && r.StatusCode != http.StatusUnauthorized {
				t.Errorf("/token with %s: %d", f, r.StatusCode)
			}
		}
	})
}

// One application that answers its back channel slowly delays only its
// own logout notices: another application's are delivered meanwhile.
func TestSlowBackchannelDelaysOnlyItself(t *testing.T) {
	ts, base := issuer(t)
	ts.register("alice", "alice@example.com", pw)
	ts.register("bob", "bob@example.com", pw)
	ts.makeAdmin("root")
	release := make(chan struct{})
	var mu sync.Mutex
	arrived := 0
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived++
		mu.Unlock()
		<-release
	}))
	defer slow.Close()
	defer close(release)
	fast := newLogoutReceiver(t, base)
	redirect := "http://127.0.0.1:9/callback"
	slowID, slowSecret := ts.client(t, oidc.ClientInput{Name: "Slow", RedirectURIs: []string{redirect}, FirstParty: true,
		BackchannelLogoutURI: slow.URL + "/bc"})
	fastID, fastSecret := ts.client(t, oidc.ClientInput{Name: "Fast", RedirectURIs: []string{redirect}, FirstParty: true,
		BackchannelLogoutURI: fast.server.URL + "/backchannel"})
	// signIn starts a session of user and an application's session from it.
	signIn := func(user, id, secret string) {
		t.Helper()
		res := ts.get("/authorize?"+url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {redirect},
			"scope": {"openid"}}.Encode(), bearer(ts.token(user, pw))...)
		loc, _ := url.Parse(res.Header.Get("Location"))
		if loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("no code: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		if st, m := exchange(t, base, url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
			"redirect_uri": {redirect}}, id, secret); st != 200 {
			t.Fatalf("exchange: %d %v", st, m)
		}
	}
	endAll := func(user string) {
		t.Helper()
		u, _ := ts.store.UserByUsernameKey(context.Background(), user)
		wantStatus(t, ts.send("DELETE", fmt.Sprintf("/admin/api/users/%d/sessions", u.ID), ``, bearer(ts.token("root", pw))...), 204)
	}
	// Twenty of alice's sessions with the slow application end first: twenty
	// notices queued before bob's one for the fast application.
	for range 20 {
		signIn("alice", slowID, slowSecret)
	}
	endAll("alice")
	signIn("bob", fastID, fastSecret)
	endAll("bob")
	// Well before a delivery to the slow one times out (10 s).
	deadline := time.Now().Add(5 * time.Second)
	for len(fast.received()) == 0 {
		if time.Now().After(deadline) {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("the fast application got no logout token while the slow one held %d deliveries", arrived)
		}
		ts.s.oidc.WakeLogouts()
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if arrived == 0 || arrived > 4 {
		t.Errorf("the slow application holds %d deliveries at once, want 1 to 4", arrived)
	}
}

// The recipe's grants read their own fields only, as they did before the
// provider: client authentication, repeated or odd fields of the code
// grant do not change their answers.
func TestRecipeGrantsIgnoreOtherFields(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	post := func(body string, header ...string) response {
		req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		return ts.do(req)
	}
	login := "grant_type=password&username=alice&password=" + url.QueryEscape(pw)
	var refresh string
	for _, c := range []struct {
		body   string
		header []string
	}{
		{login, []string{"Authorization", "Basic %%%"}},
		{login + "&client_id=a&client_id=b", nil},
		{login + "&redirect_uri=%01", nil},
		{login + "&client_secret=s", []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("x:y"))}},
	} {
		res := post(c.body, c.header...)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("password grant %q %v: %d %s", c.body, c.header, res.StatusCode, res.Body)
		}
		refresh = res.json(t)["refresh_token"].(string)
	}
	for _, header := range [][]string{{"Authorization", "Basic %%%"},
		{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("x:y"))}} {
		res := post("grant_type=refresh_token&client_secret=s&refresh_token="+url.QueryEscape(refresh), header...)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("refresh grant with %v: %d %s", header, res.StatusCode, res.Body)
		}
		refresh = res.json(t)["refresh_token"].(string)
	}
	// A field the grant reads is still checked.
	wantStatus(t, post(login+"&username=bob"), http.StatusBadRequest)
}
