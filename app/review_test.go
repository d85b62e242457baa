package app

// Regression tests for the defects of the security review (account-core
// issue, section 2), one or more per numbered item.

import (
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fiberauth/db"
)

// 1. POST handlers read only the body.
func TestCredentialsNeverReadFromTheQuery(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	q := "?username=alice&password=" + url.QueryEscape(pw)
	res := ts.postForm("/token"+q, url.Values{})
	wantStatus(t, res, http.StatusBadRequest)
	if res.json(t)["error"] != "invalid_request" {
		t.Errorf("body = %s, want invalid_request", res.Body)
	}
	// A query value never overrides a body field.
	res = ts.postForm("/token?password=wrong", url.Values{"username": {"alice"}, "password": {pw}})
	wantStatus(t, res, http.StatusOK)
	res = ts.postForm("/token?username=bob", url.Values{"username": {"alice"}, "password": {pw}})
	wantStatus(t, res, http.StatusOK)

	// The login form and its CSRF token likewise.
	b := ts.browser()
	tok := b.csrf("/login")
	req := httptest.NewRequest(http.MethodPost, "/login?csrf_token="+url.QueryEscape(tok)+"&username=alice&password="+url.QueryEscape(pw), nil)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	wantStatus(t, b.send(req), http.StatusForbidden)
	req = httptest.NewRequest(http.MethodPost, "/login?username=alice&password="+url.QueryEscape(pw),
		strings.NewReader(url.Values{"csrf_token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res = b.send(req)
	wantStatus(t, res, http.StatusUnprocessableEntity)
	if res.cookie(sessionCookie) != nil {
		t.Error("credentials from the query signed the browser in")
	}
}

// 2. Both form encodings are read, and grant_type is checked in both.
func TestTokenMultipart(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	send := func(fields map[string]string) response {
		var body strings.Builder
		w := multipart.NewWriter(&body)
		for k, v := range fields {
			w.WriteField(k, v)
		}
		w.Close()
		req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body.String()))
		req.Header.Set("Content-Type", w.FormDataContentType())
		return ts.do(req)
	}
	wantStatus(t, send(map[string]string{"username": "alice", "password": pw}), http.StatusOK)
	res := send(map[string]string{"username": "alice", "password": pw, "grant_type": "client_credentials"})
	wantStatus(t, res, http.StatusBadRequest)
	if res.json(t)["error"] != "unsupported_grant_type" {
		t.Errorf("body = %s, want unsupported_grant_type", res.Body)
	}
	for _, ct := range []string{"text/plain", "application/json", "application/xml", ""} {
		req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader("username=alice&password="+url.QueryEscape(pw)))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		res := ts.do(req)
		wantStatus(t, res, http.StatusBadRequest)
		if res.json(t)["error"] != "invalid_request" {
			t.Errorf("Content-Type %q: body = %s, want invalid_request", ct, res.Body)
		}
	}
}

// 3. JSON endpoints require application/json: a cross-site text/plain POST
// cannot register an account or change anything.
func TestJSONEndpointsRequireJSON(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	tok := ts.token("alice", pw)
	body := `{"username":"mallory","email":"m@example.com","password":"` + pw + `"}`
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/xml", "application/json-seq", ""} {
		req := httptest.NewRequest(http.MethodPost, "/register/user", strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		res := ts.do(req)
		wantStatus(t, res, http.StatusUnsupportedMediaType)
		if res.Body != `{"detail":"Content-Type must be application/json"}` {
			t.Errorf("body = %s", res.Body)
		}
	}
	if _, err := ts.store.UserByUsernameKey(context.Background(), "mallory"); err == nil {
		t.Error("an account was registered from a text/plain body")
	}
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON"} {
		req := httptest.NewRequest(http.MethodPost, "/users/me/password",
			strings.NewReader(`{"current_password":"x","new_password":"short"}`))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Authorization", "Bearer "+tok)
		wantStatus(t, ts.do(req), http.StatusUnprocessableEntity)
	}
	req := httptest.NewRequest(http.MethodDelete, "/users/me", strings.NewReader(`{"password":"`+pw+`"}`))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Authorization", "Bearer "+tok)
	wantStatus(t, ts.do(req), http.StatusUnsupportedMediaType)
	wantStatus(t, ts.get("/users/me", bearer(tok)...), http.StatusOK)
}

// 4. On /token every malformed request is 400 invalid_request, with a
// description.
func TestTokenMalformedIs400(t *testing.T) {
	ts := newTestServer(t)
	for name, body := range map[string]string{
		"NUL":           "username=a%00b&password=x",
		"control":       "username=a%07b&password=x",
		"invalid UTF-8": "username=%FF&password=x",
		"too long":      "username=" + strings.Repeat("a", 1100) + "&password=x",
		"repeated":      "username=a&username=b&password=x",
	} {
		t.Run(name, func(t *testing.T) {
			res := ts.postForm("/token", nil)
			req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			res = ts.do(req)
			wantStatus(t, res, http.StatusBadRequest)
			m := res.json(t)
			if m["error"] != "invalid_request" || m["error_description"] == "" || m["detail"] != m["error_description"] {
				t.Errorf("body = %s", res.Body)
			}
		})
	}
}

// 5. The throttle's counts are bounded: once an address is refused, its
// attempts create no entries, and entries for unknown names are digests.
func TestThrottleMemoryBounded(t *testing.T) {
	ts := newTestServer(t, "LOGIN_FAILURES_PER_IP", "50")
	for i := 0; i < 400; i++ {
		login := fmt.Sprintf("%d-%s", i, strings.Repeat("x", 900))
		res := ts.postForm("/token", url.Values{"username": {login}, "password": {"wrong password"}})
		if i < 50 && res.StatusCode != 401 || i >= 50 && res.StatusCode != 429 {
			t.Fatalf("attempt %d: status %d", i+1, res.StatusCode)
		}
	}
	// The address, and a pair and an account count for each of the 50
	// names it could try.
	if n, _ := ts.store.ThrottleKeys(context.Background()); n > 1+2*50 {
		t.Errorf("%d throttle entries after 400 attempts, 350 of them refused; want at most 101", n)
	}
}

// 6 and 7. The account-wide limit: past it, only clients the account knows
// (a browser by its device cookie, an API client by its address) may still
// sign in; a throttled attempt with the right password is still 429.
func TestAccountWideLimit(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, append(env, "TRUSTED_PROXIES", "0.0.0.0/0", "LOGIN_FAILURES_ACCOUNT_WIDE", "20",
			"LOGIN_FAILURES_PER_IP", "1000")...)
		ts.register("alice", "alice@example.com", pw)
		from := func(addr string) []string { return []string{"X-Forwarded-For", addr} }

		// The owner signs in from a browser and from an API client first.
		owner := ts.browser()
		wantStatus(t, owner.login("alice", pw), http.StatusSeeOther)
		if owner.cookies[deviceCookie] == "" {
			t.Fatal("no device cookie after a browser sign-in")
		}
		wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}}, from("198.51.100.1")...), 200)

		// An attacker guesses from many addresses, each under the per-pair
		// limit.
		for i := 0; i < 20; i++ {
			addr := fmt.Sprintf("203.0.113.%d", i/4)
			res := ts.postForm("/token", url.Values{"username": {"alice"}, "password": {"guess " + strconv.Itoa(i)}}, from(addr)...)
			wantStatus(t, res, http.StatusUnauthorized)
		}
		// Now a stranger is refused even with the right password...
		res := ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}}, from("192.0.2.99")...)
		wantStatus(t, res, http.StatusTooManyRequests)
		stranger := ts.browser()
		wantStatus(t, stranger.login("alice", pw), http.StatusTooManyRequests)
		// ...but the owner's known API address and known browser are not.
		wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}}, from("198.51.100.1")...), 200)
		owner.submit("/profile", "/logout", url.Values{})
		wantStatus(t, owner.login("alice", pw), http.StatusSeeOther)
		// A forged device cookie is not a known browser.
		forger := ts.browser()
		forger.cookies[deviceCookie] = strings.Split(owner.cookies[deviceCookie], ".")[0] + ".forged"
		wantStatus(t, forger.login("alice", pw), http.StatusTooManyRequests)
		// Another account is untouched.
		ts.register("bob", "bob@example.com", pw)
		wantStatus(t, ts.postForm("/token", url.Values{"username": {"bob"}, "password": {pw}}, from("192.0.2.99")...), 200)
	})
}

// 8. A sign-in whose password check started before a password change does
// not create a session after it.
func TestSignInRacingPasswordChange(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		for _, rehash := range []bool{false, true} {
			t.Run(fmt.Sprintf("rehash=%v", rehash), func(t *testing.T) {
				ts := newTestServer(t, env...)
				ts.register("alice", "alice@example.com", pw)
				other := ts.token("alice", pw)
				if rehash {
					// A server of another cost upgrades the hash at sign-in.
					ts = ts.withConfig(t, func(cfg *configT) { cfg.BcryptCost = 5 })
				}
				const newPW = "a brand new passphrase"
				checked, resume := make(chan struct{}), make(chan struct{})
				var once sync.Once
				ts.s.acct.Hooks.AfterPasswordCheck = func(context.Context) {
					once.Do(func() { close(checked); <-resume })
				}
				done := make(chan response)
				go func() {
					done <- ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}})
				}()
				<-checked
				// The password changes while the sign-in holds its old check.
				res := ts.postJSON("/users/me/password", `{"current_password":"`+pw+`","new_password":"`+newPW+`"}`, bearer(other)...)
				wantStatus(t, res, http.StatusNoContent)
				close(resume)
				res = <-done
				wantStatus(t, res, http.StatusUnauthorized)
				if res.Body != `{"detail":"Incorrect username or password","error":"invalid_grant"}` {
					t.Errorf("body = %s", res.Body)
				}
				if l := ts.sessions(other); len(l) != 1 {
					t.Errorf("%d sessions after the change, want only the one that changed it", len(l))
				}
				// The new password works; the hash was not overwritten by the
				// old password's upgrade.
				ts.token("alice", newPW)
				wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}}), http.StatusUnauthorized)
			})
		}
	})
}

// 11. A sign-in racing the deletion of its account gets 401, not 500.
func TestSignInRacingDeletion(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, env...)
		ts.register("alice", "alice@example.com", pw)
		other := ts.token("alice", pw)
		checked, resume := make(chan struct{}), make(chan struct{})
		var once sync.Once
		ts.s.acct.Hooks.AfterPasswordCheck = func(context.Context) {
			once.Do(func() { close(checked); <-resume })
		}
		done := make(chan response)
		go func() { done <- ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}}) }()
		<-checked
		wantStatus(t, ts.del("/users/me", `{"password":"`+pw+`"}`, bearer(other)...), http.StatusNoContent)
		close(resume)
		wantStatus(t, <-done, http.StatusUnauthorized)
	})
}

// 9. A wrong password for a real account costs the same work before the
// answer as a name that does not exist: the same bcrypt comparison and the
// same database writes (the throttle's); its activity record is written
// afterwards, off the answer's path.
func TestFailedSignInDoesNotWaitForItsRecord(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, env...)
		ts.register("alice", "alice@example.com", pw)
		held, release := make(chan struct{}, 1), make(chan struct{})
		ts.s.acct.Hooks.BeforeEventWrite = func() {
			select {
			case held <- struct{}{}:
			default:
			}
			<-release
		}
		writes := func(login string) int64 {
			before := ts.store.Writes()
			wantStatus(t, ts.postForm("/token", url.Values{"username": {login}, "password": {"wrong password"}}), http.StatusUnauthorized)
			return ts.store.Writes() - before
		}
		// The recorder is held at its write: the answers come anyway.
		known, unknown := writes("alice"), writes("nobody")
		if known != unknown || known == 0 {
			t.Errorf("writes before the answer: %d for a real account, %d for an unknown name; want the same", known, unknown)
		}
		select {
		case <-held:
		case <-time.After(10 * time.Second):
			t.Fatal("the failed sign-in was never recorded")
		}
		close(release)
		ts.s.acct.FlushEvents()
		u, _ := ts.store.UserByUsernameKey(context.Background(), "alice")
		events, _ := ts.store.ListEvents(context.Background(), u.ID, 10)
		if len(events) == 0 || events[0].Kind != db.EventSignInFailed {
			t.Errorf("events %+v: want the failed sign-in recorded afterwards", events)
		}
	})
}

// 12. The CSRF cookie is rotated at sign-in and sign-out; under HTTPS the
// session and CSRF cookies carry the __Host- prefix.
func TestCSRFRotationAndHostCookies(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	b := ts.browser()
	b.csrf("/login")
	before := b.cookies[csrfCookie]
	res := b.login("alice", pw)
	wantStatus(t, res, http.StatusSeeOther)
	if c := res.cookie(csrfCookie); c == nil || c.Value == before || c.Value == "" {
		t.Errorf("CSRF cookie not rotated at sign-in: %v (was %q)", c, before)
	}
	afterLogin := b.cookies[csrfCookie]
	res = b.submit("/profile", "/logout", url.Values{})
	if c := res.cookie(csrfCookie); c == nil || c.Value == afterLogin {
		t.Errorf("CSRF cookie not rotated at sign-out: %v", c)
	}

	secure := newTestServer(t, "COOKIE_SECURE", "true")
	secure.register("alice", "alice@example.com", pw)
	sb := secure.browser()
	res = sb.login("alice", pw)
	wantStatus(t, res, http.StatusSeeOther)
	for _, name := range []string{"__Host-access_token", "__Host-csrf_token", "__Host-device"} {
		c := res.cookie(name)
		if c == nil || !c.Secure || c.Path != "/" || c.Domain != "" || !c.HttpOnly {
			t.Errorf("cookie %s = %+v, want Secure, Path=/, no Domain, HttpOnly", name, c)
		}
	}
	if res.cookie("access_token") != nil {
		t.Error("the session cookie was also set without its prefix")
	}
	wantStatus(t, sb.get("/profile"), http.StatusOK)
	// The unprefixed name is not read under HTTPS.
	tok := sb.cookies["__Host-access_token"]
	wantStatus(t, secure.get("/users/me", "Cookie", "access_token="+tok), http.StatusUnauthorized)
	wantStatus(t, secure.get("/users/me", "Cookie", "__Host-access_token="+tok), http.StatusOK)
}

// 13. X-Forwarded-For from a trusted proxy: every header line counts, the
// rightmost untrusted hop is the client, an unparsable hop is the client,
// and IPv6 clients are counted per /64.
func TestForwardedFor(t *testing.T) {
	ts := newTestServer(t, "TRUSTED_PROXIES", "0.0.0.0,10.0.0.0/8", "LOGIN_FAILURES_PER_IP", "3")
	var got string
	ts.s.App().Get("/whoami", func(c *fiberCtx) error { got = ts.s.clientIP(c); return c.SendStatus(204) })
	ask := func(lines ...string) string {
		req := httptest.NewRequest(http.MethodGet, "/whoami", nil)
		for _, l := range lines {
			req.Header.Add("X-Forwarded-For", l)
		}
		ts.do(req)
		return got
	}
	tests := []struct {
		name  string
		lines []string
		want  string
	}{
		{"one hop", []string{"203.0.113.5"}, "203.0.113.5"},
		{"client then proxies", []string{"203.0.113.5, 10.0.0.2"}, "203.0.113.5"},
		{"spoofed left part", []string{"1.2.3.4, 203.0.113.5, 10.0.0.2"}, "203.0.113.5"},
		{"two header lines", []string{"1.2.3.4", "203.0.113.5, 10.0.0.2"}, "203.0.113.5"},
		{"unparsable hop is the client", []string{"203.0.113.5, garbage, 10.0.0.2"}, "garbage"},
		{"all trusted", []string{"10.0.0.9, 10.0.0.2"}, "10.0.0.9"},
	}
	for _, tt := range tests {
		if g := ask(tt.lines...); g != tt.want {
			t.Errorf("%s: client %q, want %q", tt.name, g, tt.want)
		}
	}
	// An unparsable hop does not make every client share the proxy's count.
	fail := func(xff string) int {
		return ts.postForm("/token", url.Values{"username": {"u"}, "password": {"wrong password"}}, "X-Forwarded-For", xff).StatusCode
	}
	for i := 0; i < 3; i++ {
		fail("garbage-" + strconv.Itoa(i%1) + ", 10.0.0.2")
	}
	if st := fail("203.0.113.77, 10.0.0.2"); st != http.StatusUnauthorized {
		t.Errorf("another client after garbage hops: %d, want 401", st)
	}
	// IPv6: one /64 is one client.
	for i := 1; i <= 3; i++ {
		wantStatus(t, ts.postForm("/token", url.Values{"username": {"v6"}, "password": {"wrong password"}},
			"X-Forwarded-For", fmt.Sprintf("2001:db8:1:2::%x", i)), http.StatusUnauthorized)
	}
	if st := fail("2001:db8:1:2:ffff::1"); st != http.StatusTooManyRequests {
		t.Errorf("a fourth address of the same /64: %d, want 429", st)
	}
	if st := fail("2001:db8:1:3::1"); st != http.StatusUnauthorized {
		t.Errorf("another /64: %d, want 401", st)
	}
}

// 14. A client's X-Request-Id is kept only when it is a short safe token.
func TestRequestIDFromClient(t *testing.T) {
	ts := newTestServer(t)
	for in, kept := range map[string]bool{
		"abc-123_DEF.4:5":       true,
		strings.Repeat("a", 64): true,
		strings.Repeat("a", 65): false,
		"has space":             false,
		"<script>":              false,
		"line\u2028break":       false,
		"quote\"":               false,
		"":                      false,
	} {
		res := ts.get("/healthz", "X-Request-Id", in)
		out := res.Header.Get("X-Request-Id")
		if kept && out != in || !kept && (out == in || !safeRequestID([]byte(out))) {
			t.Errorf("X-Request-Id %q answered as %q; kept=%v", in, out, kept)
		}
	}
}

// 16. /healthz is liveness only; /readyz answers 503 when the database does
// not.
func TestReadyz(t *testing.T) {
	ts := newTestServer(t)
	res := ts.get("/readyz")
	wantStatus(t, res, http.StatusOK)
	if res.Body != `{"status":"ok"}` {
		t.Errorf("body = %s", res.Body)
	}
	ts.store.Close()
	res = ts.get("/readyz")
	wantStatus(t, res, http.StatusServiceUnavailable)
	var body struct{ Detail string }
	if json.Unmarshal([]byte(res.Body), &body); body.Detail == "" || res.Header.Get("Retry-After") == "" {
		t.Errorf("503 without a detail or Retry-After: %s", res.Body)
	}
	wantStatus(t, ts.get("/healthz"), http.StatusOK)
}
