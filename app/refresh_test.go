package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	jwxjwt "github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/oauth2"

	"fiberauth/app/token"
)

// pair is a token response.
type pair struct {
	Access, Refresh, Scope string
	ExpiresIn              int
}

func (ts *testServer) pairFrom(res response) pair {
	ts.t.Helper()
	wantStatus(ts.t, res, http.StatusOK)
	var body struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		Scope        string `json:"scope"`
		ExpiresIn    int    `json:"expires_in"`
	}
	if err := json.Unmarshal([]byte(res.Body), &body); err != nil || body.AccessToken == "" || body.RefreshToken == "" {
		ts.t.Fatalf("token response without both tokens: %s", res.Body)
	}
	return pair{Access: body.AccessToken, Refresh: body.RefreshToken, Scope: body.Scope, ExpiresIn: body.ExpiresIn}
}

// signIn is the password grant.
func (ts *testServer) signIn(username string) pair {
	ts.t.Helper()
	return ts.pairFrom(ts.postForm("/token", url.Values{"username": {username}, "password": {pw}}))
}

// refresh is the refresh grant; it returns the raw response.
func (ts *testServer) refresh(rt string, extra ...string) response {
	ts.t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	return ts.postForm("/token", form)
}

func wantOAuthError(t *testing.T, res response, status int, code string) {
	t.Helper()
	wantStatus(t, res, status)
	if got := res.json(t)["error"]; got != code {
		t.Errorf("error = %v, want %s (%s)", got, code, res.Body)
	}
}

func TestRefreshRotation(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, env...)
		ts.register("alice", "alice@example.com", pw)
		p := ts.signIn("alice")
		if len(p.Refresh) < 22 { // 128 bits in base64
			t.Errorf("refresh token %q is too short", p.Refresh)
		}
		sid := mustClaims(t, ts, p.Access).SessionID
		q := ts.pairFrom(ts.refresh(p.Refresh))
		if q.Refresh == p.Refresh || q.Access == p.Access {
			t.Fatal("a refresh returned the same tokens")
		}
		if got := mustClaims(t, ts, q.Access).SessionID; got != sid {
			t.Errorf("the new access token is for session %s, want the same session %s", got, sid)
		}
		wantStatus(t, ts.get("/users/me", bearer(q.Access)...), http.StatusOK)
		// The new refresh token works; the chain goes on.
		r := ts.pairFrom(ts.refresh(q.Refresh))
		wantStatus(t, ts.get("/users/me", bearer(r.Access)...), http.StatusOK)
		if l := ts.sessions(r.Access); len(l) != 1 {
			t.Errorf("%d sessions after refreshing, want the one", len(l))
		}
	})
}

func TestRefreshErrors(t *testing.T) {
	ts := newTestServer(t, "LOGIN_FAILURES_PER_IP", "1000")
	ts.register("alice", "alice@example.com", pw)
	p := ts.signIn("alice")
	wantOAuthError(t, ts.refresh("not-a-token"), 400, "invalid_grant")
	wantOAuthError(t, ts.postForm("/token", url.Values{"grant_type": {"refresh_token"}}), 400, "invalid_request")
	wantOAuthError(t, ts.postForm("/token", url.Values{"grant_type": {"client_credentials"}}), 400, "unsupported_grant_type")
	res := ts.refresh(p.Refresh, "scope", "admin")
	wantOAuthError(t, res, 400, "invalid_scope")
	// A refused scope spends nothing.
	ts.pairFrom(ts.refresh(p.Refresh))
	for _, body := range []string{res.Body} {
		var m map[string]any
		json.Unmarshal([]byte(body), &m)
		if m["error_description"] == "" || m["detail"] == "" {
			t.Errorf("OAuth error without a description: %s", body)
		}
	}
}

func TestRefreshReuse(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, env...)
		ts.register("alice", "alice@example.com", pw)
		now := time.Now()
		ts.s.acct.Now = func() time.Time { return now }
		p := ts.signIn("alice")
		q := ts.pairFrom(ts.refresh(p.Refresh))
		now = now.Add(11 * time.Second) // past the grace
		wantOAuthError(t, ts.refresh(p.Refresh), 400, "invalid_grant")
		// The whole session ended: its access tokens, and the live refresh
		// token too.
		wantStatus(t, ts.get("/users/me", bearer(q.Access)...), http.StatusUnauthorized)
		wantOAuthError(t, ts.refresh(q.Refresh), 400, "invalid_grant")
		// The owner sees it.
		other := ts.signIn("alice")
		res := ts.get("/users/me/events", bearer(other.Access)...)
		if !strings.Contains(res.Body, `"refresh_reused"`) {
			t.Errorf("no reuse event: %s", res.Body)
		}
		b := ts.browser()
		b.login("alice", pw)
		if page := b.get("/profile"); !strings.Contains(page.Body, "Refresh token reused: session ended") {
			t.Error("the profile does not show the reuse")
		}
	})
}

// TestRefreshGrace: a client that lost the answer may present the token it
// just spent again, within the grace, and gets another successor; the one
// it never saw is void, so a session has one live refresh token at most
// (RFC 9700 §4.14.2): whoever presents the voided one (a thief who spent
// the token first) ends the session.
func TestRefreshGrace(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, env...)
		ts.register("alice", "alice@example.com", pw)
		now := time.Now()
		ts.s.acct.Now = func() time.Time { return now }
		p := ts.signIn("alice")
		q := ts.pairFrom(ts.refresh(p.Refresh))
		// The answer was lost: the client sends the same token again, soon,
		// twice.
		now = now.Add(4 * time.Second)
		r := ts.pairFrom(ts.refresh(p.Refresh))
		now = now.Add(4 * time.Second)
		r2 := ts.pairFrom(ts.refresh(p.Refresh))
		if mustClaims(t, ts, r2.Access).SessionID != mustClaims(t, ts, q.Access).SessionID {
			t.Error("the grace answer is for another session")
		}
		// Only the newest successor lives: the chain goes on with it.
		s2 := ts.pairFrom(ts.refresh(r2.Refresh))
		wantStatus(t, ts.get("/users/me", bearer(s2.Access)...), http.StatusOK)
		// A voided successor presented later is reuse: the session ends.
		wantOAuthError(t, ts.refresh(r.Refresh), 400, "invalid_grant")
		wantStatus(t, ts.get("/users/me", bearer(s2.Access)...), http.StatusUnauthorized)
		wantOAuthError(t, ts.refresh(s2.Refresh), 400, "invalid_grant")
		ts.s.acct.FlushEvents()
		other := ts.signIn("alice")
		if ev := ts.get("/users/me/events", bearer(other.Access)...).Body; !strings.Contains(ev, `"refresh_reused"`) {
			t.Errorf("no reuse event: %s", ev)
		}

		// The thief's order: the thief spends the stolen token first, the
		// owner presents it within the grace; the thief's successor is
		// void.
		p = ts.signIn("alice")
		thief := ts.pairFrom(ts.refresh(p.Refresh))
		owner := ts.pairFrom(ts.refresh(p.Refresh))
		wantOAuthError(t, ts.refresh(thief.Refresh), 400, "invalid_grant")
		wantStatus(t, ts.get("/users/me", bearer(owner.Access)...), http.StatusUnauthorized)

		// Once a successor has been used, the old token is no longer "the
		// immediately previous one": presenting it ends the session, grace
		// or not.
		p = ts.signIn("alice")
		q = ts.pairFrom(ts.refresh(p.Refresh))
		next := ts.pairFrom(ts.refresh(q.Refresh))
		now = now.Add(time.Second)
		wantOAuthError(t, ts.refresh(p.Refresh), 400, "invalid_grant")
		wantStatus(t, ts.get("/users/me", bearer(next.Access)...), http.StatusUnauthorized)
	})
}

// Two refreshes with one token at once: both are answered, for one
// session, and of their two successors at most one lives: presenting both
// ends the session.
func TestConcurrentRefresh(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, env...)
		ts.register("alice", "alice@example.com", pw)
		p := ts.signIn("alice")
		results := make([]response, 2)
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for i := range results {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-gate
				results[i] = ts.refresh(p.Refresh)
			}(i)
		}
		close(gate)
		wg.Wait()
		a, b := ts.pairFrom(results[0]), ts.pairFrom(results[1])
		if mustClaims(t, ts, a.Access).SessionID != mustClaims(t, ts, b.Access).SessionID {
			t.Error("two sessions came of one refresh token")
		}
		first, second := ts.refresh(a.Refresh), ts.refresh(b.Refresh)
		if first.StatusCode == http.StatusOK && second.StatusCode == http.StatusOK {
			t.Fatal("both successors of one token were refreshed: two live chains in one session")
		}
		wantStatus(t, ts.get("/users/me", bearer(a.Access)...), http.StatusUnauthorized)
	})
}

func TestRevokeEitherToken(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	p := ts.signIn("alice")
	wantStatus(t, ts.postForm("/revoke", url.Values{"token": {p.Refresh}, "token_type_hint": {"refresh_token"}}), 200)
	wantStatus(t, ts.get("/users/me", bearer(p.Access)...), http.StatusUnauthorized)
	q := ts.signIn("alice")
	wantStatus(t, ts.postForm("/revoke", url.Values{"token": {q.Access}}), 200)
	wantOAuthError(t, ts.refresh(q.Refresh), 400, "invalid_grant")
	// A wrong hint changes nothing.
	r := ts.signIn("alice")
	wantStatus(t, ts.postForm("/revoke", url.Values{"token": {r.Refresh}, "token_type_hint": {"access_token"}}), 200)
	wantStatus(t, ts.get("/users/me", bearer(r.Access)...), http.StatusUnauthorized)
}

func TestSessionLifetimes(t *testing.T) {
	ts := newTestServer(t, "SESSION_IDLE_DAYS", "2", "REFRESH_TOKEN_EXPIRE_DAYS", "5")
	ts.register("alice", "alice@example.com", pw)
	start := time.Now()
	at := func(d time.Duration) { ts.s.acct.Now = func() time.Time { return start.Add(d) } }
	day := 24 * time.Hour

	// Idle: unused for more than two days, it ends.
	idle := ts.signIn("alice")
	list := ts.sessions(idle.Access)
	if exp, _ := time.Parse(time.RFC3339, list[0].ExpiresAt); exp.Sub(start) > 2*day+time.Minute || exp.Sub(start) < 2*day-time.Minute {
		t.Errorf("listed expiry %s, want two days ahead (the idle limit)", list[0].ExpiresAt)
	}
	at(2*day + time.Minute)
	wantOAuthError(t, ts.refresh(idle.Refresh), 400, "invalid_grant")

	// Absolute: used every day, it still ends after five.
	at(0)
	active := ts.signIn("alice")
	rt := active.Refresh
	for d := 1; d <= 4; d++ {
		at(time.Duration(d) * day)
		rt = ts.pairFrom(ts.refresh(rt)).Refresh
	}
	at(5*day + time.Minute)
	wantOAuthError(t, ts.refresh(rt), 400, "invalid_grant")
}

// A browser active on the pages stays signed in: past half its life the
// access token in the cookie is replaced, for the same session.
func TestSlidingCookie(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	start := time.Now()
	at := func(d time.Duration) { ts.s.acct.Now = func() time.Time { return start.Add(d) } }
	b := ts.browser()
	wantStatus(t, b.login("alice", pw), http.StatusSeeOther)
	first := b.cookies[sessionCookie]
	at(10 * time.Minute)
	res := b.get("/profile")
	wantStatus(t, res, http.StatusOK)
	if res.cookie(sessionCookie) != nil {
		t.Error("the cookie was replaced before half the token's life")
	}
	at(16 * time.Minute)
	res = b.get("/profile")
	wantStatus(t, res, http.StatusOK)
	c := res.cookie(sessionCookie)
	if c == nil || c.Value == first || !c.HttpOnly || c.Path != "/" || c.MaxAge != 1800 || c.SameSite != http.SameSiteLaxMode {
		t.Fatalf("renewed cookie %+v, want a new HttpOnly, Path=/, Max-Age=1800, SameSite=Lax one", c)
	}
	if mustClaims(t, ts, c.Value).SessionID != mustClaims(t, ts, first).SessionID {
		t.Error("the renewed token is for another session")
	}
	// 40 minutes after signing in the first token has expired, the browser
	// is still signed in.
	at(40 * time.Minute)
	wantStatus(t, b.get("/profile"), http.StatusOK)
	wantStatus(t, ts.get("/users/me", "Cookie", sessionCookie+"="+first), http.StatusUnauthorized)
	// A bearer client gets no cookie.
	p := ts.signIn("alice")
	at(60 * time.Minute)
	if res := ts.get("/users/me", bearer(p.Access)...); res.cookie(sessionCookie) != nil {
		t.Error("a bearer request was given a cookie")
	}
}

func TestJWKSAndMetadata(t *testing.T) {
	ts := newTestServer(t, "ISSUER", "https://auth.example.com/")
	ts.register("alice", "alice@example.com", pw)
	p := ts.signIn("alice")

	res := ts.get("/.well-known/jwks.json")
	wantStatus(t, res, http.StatusOK)
	if cc := res.Header.Get("Cache-Control"); cc != "public, max-age=300" {
		t.Errorf("Cache-Control = %q", cc)
	}
	// An independent JOSE library verifies the token with the JWKS alone.
	set, err := jwk.Parse([]byte(res.Body))
	if err != nil {
		t.Fatalf("JWKS does not parse: %v\n%s", err, res.Body)
	}
	tok, err := jwxjwt.Parse([]byte(p.Access), jwxjwt.WithKeySet(set), jwxjwt.WithIssuer("https://auth.example.com"),
		jwxjwt.WithAudience("fiberauth"), jwxjwt.WithValidate(true))
	if err != nil {
		t.Fatalf("jwx does not verify the token with the JWKS: %v", err)
	}
	if sub, _ := tok.Subject(); sub != "alice" {
		t.Errorf("sub = %q", sub)
	}
	var keys struct {
		Keys []map[string]string `json:"keys"`
	}
	json.Unmarshal([]byte(res.Body), &keys)
	algs := map[string]int{}
	for _, k := range keys.Keys {
		algs[k["alg"]]++
		ed := k["kty"] == "OKP" && k["crv"] == "Ed25519" && k["alg"] == "EdDSA" && k["x"] != ""
		rsa := k["kty"] == "RSA" && k["alg"] == "RS256" && k["n"] != "" && k["e"] == "AQAB"
		if !(ed || rsa) || k["use"] != "sig" || k["kid"] == "" || k["d"] != "" || k["p"] != "" {
			t.Errorf("key %v", k)
		}
	}
	if algs["EdDSA"] != 1 || algs["RS256"] != 1 {
		t.Errorf("keys by algorithm: %v, want one of each", algs)
	}
	// A token signed by a key not in the set fails there.
	other := newTestServer(t, "ISSUER", "https://auth.example.com")
	other.register("alice", "alice@example.com", pw)
	if _, err := jwxjwt.Parse([]byte(other.signIn("alice").Access), jwxjwt.WithKeySet(set)); err == nil {
		t.Error("jwx verified a token of another service's key")
	}

	res = ts.get("/.well-known/oauth-authorization-server")
	wantStatus(t, res, http.StatusOK)
	m := res.json(t)
	for k, want := range map[string]string{
		"issuer": "https://auth.example.com", "token_endpoint": "https://auth.example.com/token",
		"revocation_endpoint": "https://auth.example.com/revoke", "jwks_uri": "https://auth.example.com/.well-known/jwks.json",
		"service_documentation": "https://auth.example.com/docs", "introspection_endpoint": "https://auth.example.com/introspect",
	} {
		if m[k] != want {
			t.Errorf("%s = %v, want %s", k, m[k], want)
		}
	}
	if gt, _ := json.Marshal(m["grant_types_supported"]); string(gt) != `["authorization_code","refresh_token","password"]` {
		t.Errorf("grant_types_supported = %s", gt)
	}
	// OpenID Connect Discovery: every required field, the same document.
	oidcDoc := ts.get("/.well-known/openid-configuration").json(t)
	for k, want := range map[string]string{"issuer": "https://auth.example.com", "authorization_endpoint": "https://auth.example.com/authorize",
		"token_endpoint": "https://auth.example.com/token", "userinfo_endpoint": "https://auth.example.com/userinfo",
		"jwks_uri": "https://auth.example.com/.well-known/jwks.json", "end_session_endpoint": "https://auth.example.com/logout"} {
		if oidcDoc[k] != want {
			t.Errorf("openid-configuration %s = %v, want %s", k, oidcDoc[k], want)
		}
	}
	for k, want := range map[string]string{"response_types_supported": `["code"]`, "subject_types_supported": `["public"]`,
		"id_token_signing_alg_values_supported": `["RS256","EdDSA"]`, "code_challenge_methods_supported": `["S256"]`} {
		if got, _ := json.Marshal(oidcDoc[k]); string(got) != want {
			t.Errorf("openid-configuration %s = %s, want %s", k, got, want)
		}
	}
	if oidcDoc["backchannel_logout_supported"] != true {
		t.Error("back-channel logout not advertised")
	}
	if c := mustClaims(t, ts, p.Access); c.Issuer != "https://auth.example.com" {
		t.Errorf("iss = %q, want ISSUER", c.Issuer)
	}
}

// keys rotate: the new key is in the JWKS at once, signs only after the
// publish delay, and the old key leaves the JWKS once its last token has
// expired.
func TestKeyRotation(t *testing.T) {
	ts := newTestServer(t, "KEY_PUBLISH_DELAY", "10m")
	ts.register("alice", "alice@example.com", pw)
	env := map[string]string{"DATABASE_PATH": ts.path, "KEY_PUBLISH_DELAY": "10m"}
	var out strings.Builder
	if err := runCommand(context.Background(), []string{"keys", "rotate"}, func(k string) string { return env[k] }, nil, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "new signing key") {
		t.Errorf("keys rotate said %q", out.String())
	}
	ts.s.keys.reload(context.Background(), 0)
	kids := func() []string {
		var set struct {
			Keys []struct{ Kid string } `json:"keys"`
		}
		json.Unmarshal([]byte(ts.get("/.well-known/jwks.json").Body), &set)
		var ids []string
		for _, k := range set.Keys {
			ids = append(ids, k.Kid)
		}
		return ids
	}
	keys := ts.s.acct.Tokens().KeysOf(token.EdDSA)
	if len(keys) != 2 || len(ts.s.acct.Tokens().KeysOf(token.RS256)) != 2 || len(kids()) != 4 {
		t.Fatalf("after rotation: %d Ed25519 keys, JWKS %v; want two of each algorithm", len(keys), kids())
	}
	oldKid, newKid := keys[0].ID, keys[1].ID
	newRSA := ts.s.acct.Tokens().KeysOf(token.RS256)[1].ID
	kidOf := func(raw string) string {
		t.Helper()
		parts := strings.Split(raw, ".")
		var h struct{ Kid string }
		b, _ := jwtSegment(parts[0])
		json.Unmarshal(b, &h)
		return h.Kid
	}
	before := ts.signIn("alice")
	if kidOf(before.Access) != oldKid {
		t.Error("the new key signs before its publish delay")
	}
	start := time.Now()
	ts.s.acct.Now = func() time.Time { return start.Add(10*time.Minute + time.Second) }
	after := ts.signIn("alice")
	if kidOf(after.Access) != newKid {
		t.Error("the new key does not sign after its publish delay")
	}
	// A token of the old key is still good while it lives.
	wantStatus(t, ts.get("/users/me", bearer(before.Access)...), http.StatusOK)
	ts.s.acct.Now = func() time.Time { return start.Add(10*time.Minute + 31*time.Minute) }
	if ids := kids(); len(ids) != 2 || !slices.Contains(ids, newKid) || !slices.Contains(ids, newRSA) {
		t.Errorf("JWKS after the old keys' last tokens expired: %v, want only %s and %s", ids, newKid, newRSA)
	}
	var list strings.Builder
	runCommand(context.Background(), []string{"keys", "list"}, func(k string) string { return env[k] }, nil, &list)
	if !strings.Contains(list.String(), "active") || strings.Count(list.String(), "\n") != 5 || !strings.Contains(list.String(), "RS256") {
		t.Errorf("keys list:\n%s", list.String())
	}
}

func jwtSegment(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func TestIntrospection(t *testing.T) {
	closed := newTestServer(t)
	closed.register("alice", "alice@example.com", pw)
	p := closed.signIn("alice")
	wantStatus(t, closed.postForm("/introspect", url.Values{"token": {p.Access}}, bearer(introspectionSecret)...), 401)

	ts := newTestServer(t, "INTROSPECTION_TOKENS", "another-secret-0123456789,"+introspectionSecret)
	ts.register("alice", "alice@example.com", pw)
	p = ts.signIn("alice")
	ask := func(tok string, auth ...string) response {
		return ts.postForm("/introspect", url.Values{"token": {tok}}, auth...)
	}
	wantStatus(t, ask(p.Access), 401)
	wantStatus(t, ask(p.Access, bearer("wrong-secret-0123456789")...), 401)
	res := ask(p.Access, bearer(introspectionSecret)...)
	wantStatus(t, res, 200)
	m := res.json(t)
	if m["active"] != true || m["sub"] != "alice" || m["token_type"] != "access_token" || m["sid"] == "" || m["exp"] == nil ||
		m["iat"] == nil || m["iss"] == nil || m["aud"] != "fiberauth" {
		t.Errorf("introspection of a live access token: %s", res.Body)
	}
	res = ask(p.Refresh, bearer(introspectionSecret)...)
	if m := res.json(t); m["active"] != true || m["token_type"] != "refresh_token" {
		t.Errorf("introspection of a live refresh token: %s", res.Body)
	}
	for _, tok := range []string{"garbage", "a.b.c"} {
		if res := ask(tok, bearer(introspectionSecret)...); res.Body != `{"active":false}` {
			t.Errorf("introspection of %q: %s", tok, res.Body)
		}
	}
	ts.postForm("/revoke", url.Values{"token": {p.Access}})
	for _, tok := range []string{p.Access, p.Refresh} {
		if res := ask(tok, bearer(introspectionSecret)...); res.Body != `{"active":false}` {
			t.Errorf("introspection after revocation: %s", res.Body)
		}
	}
}

// A standard OAuth2 client library, written by nobody here: the password
// grant, then its token source refreshing by itself across the expiry of
// short-lived access tokens while the calls keep working.
func TestOAuth2Client(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	// Tokens of 12 s: x/oauth2 refreshes when less than 10 s are left.
	short := ts.withConfig(t, func(cfg *configT) { cfg.TokenLifetime = 12 * time.Second })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go short.s.App().Listener(ln)
	t.Cleanup(func() { short.s.App().Shutdown() })
	base := "http://" + ln.Addr().String()
	conf := &oauth2.Config{ClientID: "any", Endpoint: oauth2.Endpoint{TokenURL: base + "/token", AuthStyle: oauth2.AuthStyleInParams}}
	ctx := context.Background()
	tok, err := conf.PasswordCredentialsToken(ctx, "alice", pw)
	if err != nil {
		t.Fatalf("password grant: %v", err)
	}
	if tok.RefreshToken == "" || tok.Expiry.IsZero() {
		t.Fatalf("token %+v without refresh token or expiry", tok)
	}
	src := conf.TokenSource(ctx, tok)
	client := oauth2.NewClient(ctx, src)
	seen := map[string]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for len(seen) < 3 && time.Now().Before(deadline) {
		res, err := client.Get(base + "/users/me")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("call with the library's token: %d %s", res.StatusCode, body)
		}
		cur, _ := src.Token()
		seen[cur.AccessToken] = true
		time.Sleep(500 * time.Millisecond)
	}
	if len(seen) < 3 {
		t.Errorf("the token source used %d access tokens in 20 s; want it to have refreshed at least twice", len(seen))
	}
}

// TestRefreshFromThrottledAddress: an address throttled for its failed
// sign-ins is refused (429) for a refresh token that does not hold, and
// such tokens count as failures; a refresh token that holds is not a guess
// and still works from there.
func TestRefreshFromThrottledAddress(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, append([]string{"LOGIN_FAILURES_PER_IP", "3"}, env...)...)
		ts.register("alice", "alice@example.com", pw)
		p := ts.signIn("alice")
		// Junk refresh tokens count: three, and the address is throttled.
		for i := 0; i < 3; i++ {
			wantOAuthError(t, ts.refresh("not-a-token-"+strconv.Itoa(i)), http.StatusBadRequest, "invalid_grant")
		}
		res := ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}})
		wantStatus(t, res, http.StatusTooManyRequests)
		res = ts.refresh("not-a-token-4")
		wantStatus(t, res, http.StatusTooManyRequests)
		if res.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		next := ts.pairFrom(ts.refresh(p.Refresh))
		wantStatus(t, ts.get("/users/me", bearer(next.Access)...), http.StatusOK)
	})
}
