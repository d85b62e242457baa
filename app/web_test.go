package app

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestIndexRedirects(t *testing.T) {
	ts := newTestServer(t)
	b := ts.browser()
	res := b.get("/")
	wantStatus(t, res, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/login" {
		t.Errorf("Location = %q, want /login", loc)
	}
	ts.register("alice", "alice@example.com", pw)
	wantStatus(t, b.login("alice", pw), http.StatusSeeOther)
	res = b.get("/")
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || loc != "/profile" {
		t.Errorf("signed in: %d %q, want 303 /profile", res.StatusCode, loc)
	}
}

func TestRegisterFormSignsIn(t *testing.T) {
	ts := newTestServer(t)
	b := ts.browser()
	res := b.submit("/register", "/register", url.Values{"username": {"alice"}, "email": {"alice@example.com"}, "password": {pw}})
	wantStatus(t, res, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/profile?done=welcome" {
		t.Fatalf("Location = %q, want /profile?done=welcome", loc)
	}
	c := res.cookie(sessionCookie)
	if c == nil {
		t.Fatal("no access_token cookie after registration")
	}
	// A welcome, and "Account created" first in the activity.
	p := b.get("/profile?done=welcome")
	if !strings.Contains(p.Body, "Welcome! Your account is ready.") || !strings.Contains(p.Body, `<tr class="event-account_created">`) {
		t.Fatalf("profile after registering:\n%s", p.Body)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge != 1800 || c.Secure {
		t.Errorf("cookie attributes: HttpOnly=%v SameSite=%v Path=%q MaxAge=%d Secure=%v; want true Lax / 1800 false",
			c.HttpOnly, c.SameSite, c.Path, c.MaxAge, c.Secure)
	}
	// The cookie holds the same kind of token POST /token issues.
	if _, err := ts.s.acct.Tokens().Verify(c.Value); err != nil {
		t.Errorf("cookie value is not a valid access token: %v", err)
	}
	prof := b.get("/profile")
	wantStatus(t, prof, http.StatusOK)
	for _, want := range []string{"alice authorized", "alice@example.com", "Member since", `action="/logout"`} {
		if !strings.Contains(prof.Body, want) {
			t.Errorf("profile lacks %q", want)
		}
	}
	if cc := prof.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("profile Cache-Control = %q, want no-store", cc)
	}
	// The cookie works as a bearer token, and GET /users/me works with the cookie.
	wantStatus(t, ts.get("/users/me", bearer(c.Value)...), http.StatusOK)
	wantStatus(t, ts.get("/users/me", "Cookie", sessionCookie+"="+c.Value), http.StatusOK)
}

func TestRegisterFormErrors(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	tests := []struct {
		name                string
		form                url.Values
		status              int
		message             string
		keep                []string
		notKept             string
		wantFieldErrorCount int
	}{
		{"taken username", url.Values{"username": {"Alice"}, "email": {"new@example.com"}, "password": {"another secret"}},
			409, "That username is already taken.", []string{`value="Alice"`, `value="new@example.com"`}, "another secret", 1},
		{"taken email", url.Values{"username": {"alice2"}, "email": {"ALICE@example.com"}, "password": {"another secret"}},
			409, "An account with that email address already exists.", []string{`value="alice2"`}, "another secret", 1},
		{"invalid fields", url.Values{"username": {"a"}, "email": {"nope"}, "password": {"short"}},
			422, "Username must be 3 to 32 characters long.", []string{`value="a"`, `value="nope"`}, `value="short"`, 3},
		{"common password", url.Values{"username": {"carol"}, "email": {"carol@example.com"}, "password": {"iloveyou"}},
			422, "most common passwords", []string{`value="carol"`}, `value="iloveyou"`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := ts.browser()
			res := b.submit("/register", "/register", tt.form)
			wantStatus(t, res, tt.status)
			if !strings.Contains(res.Body, tt.message) {
				t.Errorf("page lacks %q", tt.message)
			}
			for _, k := range tt.keep {
				if !strings.Contains(res.Body, k) {
					t.Errorf("typed value %s not kept", k)
				}
			}
			if strings.Contains(res.Body, tt.notKept) {
				t.Errorf("password %q echoed back", tt.notKept)
			}
			if n := strings.Count(res.Body, `class="field-error"`); n != tt.wantFieldErrorCount {
				t.Errorf("%d field messages, want %d", n, tt.wantFieldErrorCount)
			}
			if res.cookie(sessionCookie) != nil {
				t.Error("a failed registration set the session cookie")
			}
		})
	}
}

func TestLoginForm(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	for _, login := range []string{"alice", "alice@example.com", " Alice "} {
		t.Run("by "+login, func(t *testing.T) {
			b := ts.browser()
			res := b.login(login, pw)
			wantStatus(t, res, http.StatusSeeOther)
			if loc := res.Header.Get("Location"); loc != "/profile" {
				t.Errorf("Location = %q, want /profile", loc)
			}
			wantStatus(t, b.get("/profile"), http.StatusOK)
		})
	}
	t.Run("wrong password and unknown user answer alike", func(t *testing.T) {
		b := ts.browser()
		wrong := b.login("alice", "not the password")
		unknown := b.login("alice", "not the password")
		wantStatus(t, wrong, http.StatusUnauthorized)
		if !strings.Contains(wrong.Body, msgIncorrectCredentials) || !strings.Contains(wrong.Body, `value="alice"`) {
			t.Errorf("page lacks the message or the typed username:\n%s", wrong.Body)
		}
		if strings.Contains(wrong.Body, "not the password") {
			t.Error("password echoed back")
		}
		b2 := ts.browser()
		b2.cookies = b.cookies // same CSRF cookie, so the pages can be compared byte for byte
		nobody := b2.login("nobody", "not the password")
		wantStatus(t, nobody, http.StatusUnauthorized)
		if want := strings.Replace(unknown.Body, `value="alice"`, `value="nobody"`, 1); nobody.Body != want {
			t.Errorf("unknown user page differs from wrong password page")
		}
	})
	t.Run("empty fields", func(t *testing.T) {
		b := ts.browser()
		res := b.login("", "")
		wantStatus(t, res, http.StatusUnprocessableEntity)
		if !strings.Contains(res.Body, "Enter your username or email.") {
			t.Errorf("no field message: %s", res.Body)
		}
	})
	t.Run("signed-in person visiting /login goes to the profile", func(t *testing.T) {
		b := ts.browser()
		b.login("alice", pw)
		res := b.get("/login")
		wantStatus(t, res, http.StatusSeeOther)
	})
}

func TestLoginNext(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	tests := []struct{ next, want string }{
		{"/profile", "/profile"},
		{"/profile/password", "/profile/password"},
		{"/profile?x=1", "/profile?x=1"},
		{"", "/profile"},
		{"https://evil.example/", "/profile"},
		{"http:evil.example", "/profile"},
		{"//evil.example", "/profile"},
		{"///evil.example", "/profile"},
		{"/\\evil.example", "/profile"},
		{"\\\\evil.example", "/profile"},
		{"/\t/evil.example", "/profile"},
		{"/\n/evil.example", "/profile"},
		{" //evil.example", "/profile"},
		{"javascript:alert(1)", "/profile"},
		{"evil.example", "/profile"},
		{"/%2F%2Fevil.example", "/profile"},
		{"/%5C%5Cevil.example", "/profile"},
		{"/@evil.example", "/@evil.example"},
	}
	for _, tt := range tests {
		t.Run(tt.next, func(t *testing.T) {
			b := ts.browser()
			res := b.submit("/login", "/login", url.Values{"username": {"alice"}, "password": {pw}, "next": {tt.next}})
			wantStatus(t, res, http.StatusSeeOther)
			if loc := res.Header.Get("Location"); loc != tt.want {
				t.Errorf("Location = %q, want %q", loc, tt.want)
			}
		})
	}
	t.Run("a next in the POST's query string is not read", func(t *testing.T) {
		b := ts.browser()
		res := b.submit("/login", "/login?next=/profile/password", url.Values{"username": {"alice"}, "password": {pw}})
		wantStatus(t, res, http.StatusSeeOther)
		if loc := res.Header.Get("Location"); loc != "/profile" {
			t.Errorf("Location = %q, want /profile", loc)
		}
	})
	t.Run("login page keeps a safe next and drops a hostile one", func(t *testing.T) {
		b := ts.browser()
		if res := b.get("/login?next=/profile/password"); !strings.Contains(res.Body, `name="next" value="/profile/password"`) {
			t.Error("safe next not carried in the form")
		}
		if res := b.get("/login?next=//evil.example"); strings.Contains(res.Body, "evil") {
			t.Error("hostile next rendered into the page")
		}
	})
}

func TestProfileWithoutSession(t *testing.T) {
	ts := newTestServer(t)
	b := ts.browser()
	res := b.get("/profile")
	wantStatus(t, res, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/login?next=/profile" {
		t.Errorf("Location = %q, want /login?next=/profile", loc)
	}
	b.cookies[sessionCookie] = "stale.invalid.token"
	res = b.get("/profile")
	wantStatus(t, res, http.StatusSeeOther)
	if c := res.cookie(sessionCookie); !clearedCookie(c) {
		t.Errorf("stale cookie not cleared with its attributes: %+v", c)
	}
}

func TestLogout(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	other := ts.token("alice", pw)
	b := ts.browser()
	b.login("alice", pw)
	old := b.cookies[sessionCookie]
	res := b.submit("/profile", "/logout", url.Values{})
	wantStatus(t, res, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "/login") {
		t.Errorf("Location = %q, want /login…", loc)
	}
	if c := res.cookie(sessionCookie); !clearedCookie(c) {
		t.Fatalf("cookie not cleared with the attributes it was set with: %+v", c)
	}
	page := b.get(res.Header.Get("Location"))
	if !strings.Contains(page.Body, "You have been logged out.") {
		t.Error("no confirmation on the login page")
	}
	// The old token is refused everywhere; the other session stays valid.
	wantStatus(t, ts.get("/users/me", bearer(old)...), http.StatusUnauthorized)
	wantStatus(t, ts.get("/users/me", "Cookie", sessionCookie+"="+old), http.StatusUnauthorized)
	wantStatus(t, ts.get("/profile", "Cookie", sessionCookie+"="+old), http.StatusSeeOther)
	wantStatus(t, ts.get("/users/me", bearer(other)...), http.StatusOK)
	// A GET never logs out by itself (an image on another site could send
	// one): without an ID token naming the session (OpenID Connect
	// RP-initiated logout) it asks first.
	b2 := ts.browser()
	b2.login("alice", pw)
	res = b2.get("/logout")
	wantStatus(t, res, http.StatusOK)
	if !strings.Contains(res.Body, `action="/logout"`) || !strings.Contains(res.Body, "Sign out?") {
		t.Fatalf("GET /logout:\n%.500s", res.Body)
	}
	wantStatus(t, b2.get("/profile"), http.StatusOK)
}

func TestCSRF(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	form := func(tok string) url.Values {
		return url.Values{"username": {"alice"}, "password": {pw}, "csrf_token": {tok}}
	}
	post := func(b *browser, path string, f url.Values, header ...string) response {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		return b.send(req)
	}
	tests := []struct {
		name   string
		path   string
		token  func(b *browser) string
		header []string
	}{
		{"login without token", "/login", func(*browser) string { return "" }, nil},
		{"login with a wrong token", "/login", func(b *browser) string { b.csrf("/login"); return "AAAA" }, nil},
		// This browser has a CSRF cookie of its own: the token fails
		// because it belongs to another cookie.
		{"login with another browser's token", "/login", func(b *browser) string { b.csrf("/login"); return ts.browser().csrf("/login") }, nil},
		{"login from a cross-site Origin", "/login", func(b *browser) string { return b.csrf("/login") }, []string{"Origin", "https://evil.example"}},
		{"login with Origin null", "/login", func(b *browser) string { return b.csrf("/login") }, []string{"Origin", "null"}},
		{"login with Sec-Fetch-Site cross-site", "/login", func(b *browser) string { return b.csrf("/login") }, []string{"Sec-Fetch-Site", "cross-site"}},
		{"login with Sec-Fetch-Site same-site", "/login", func(b *browser) string { return b.csrf("/login") }, []string{"Sec-Fetch-Site", "same-site"}},
		{"register without token", "/register", func(*browser) string { return "" }, nil},
		{"logout without token", "/logout", func(*browser) string { return "" }, nil},
		{"forgotten password form without token", "/password/forgot", func(*browser) string { return "" }, nil},
		{"reset form without token", "/password/reset", func(*browser) string { return "" }, nil},
		{"reset form from a cross-site Origin", "/password/reset", func(b *browser) string { return b.csrf("/password/reset") },
			[]string{"Origin", "https://evil.example"}},
		{"email verification form without token", "/email/verify", func(*browser) string { return "" }, nil},
		{"new code form without token", "/email/verify/resend", func(*browser) string { return "" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := ts.browser()
			res := post(b, tt.path, form(tt.token(b)), tt.header...)
			wantStatus(t, res, http.StatusForbidden)
			if !strings.Contains(res.Body, "Reload") || !strings.Contains(res.Body, `href="`+reloadPath(tt.path)+`"`) {
				t.Errorf("403 page does not offer a reload of the form: %.500s", res.Body)
			}
			if res.cookie(sessionCookie) != nil {
				t.Error("a refused request set the session cookie")
			}
		})
	}
	t.Run("control: the same request with the right token passes", func(t *testing.T) {
		b := ts.browser()
		res := post(b, "/login", form(b.csrf("/login")), "Origin", "http://example.com", "Sec-Fetch-Site", "same-origin")
		wantStatus(t, res, http.StatusSeeOther)
	})
	t.Run("logout from another site does not end the session", func(t *testing.T) {
		b := ts.browser()
		b.login("alice", pw)
		tok := b.csrf("/profile")
		res := post(b, "/logout", url.Values{"csrf_token": {tok}}, "Origin", "https://evil.example")
		wantStatus(t, res, http.StatusForbidden)
		wantStatus(t, b.get("/profile"), http.StatusOK)
	})
	t.Run("cookie-authenticated API writes need the CSRF header", func(t *testing.T) {
		b := ts.browser()
		b.login("alice", pw)
		req := httptest.NewRequest(http.MethodDelete, "/users/me/sessions", nil)
		res := b.send(req)
		wantStatus(t, res, http.StatusForbidden)
		req = httptest.NewRequest(http.MethodDelete, "/users/me/sessions", nil)
		req.Header.Set(csrfHeader, b.csrf("/profile"))
		wantStatus(t, b.send(req), http.StatusNoContent)
		// A bearer header needs no CSRF token.
		tok := ts.token("alice", pw)
		req = httptest.NewRequest(http.MethodDelete, "/users/me/sessions", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		wantStatus(t, ts.do(req), http.StatusNoContent)
	})
}

func reloadPath(p string) string {
	switch p {
	case "/logout":
		return "/profile"
	case "/email/verify/resend":
		return "/email/verify"
	}
	return p
}

func TestSecureCookie(t *testing.T) {
	tests := []struct {
		name   string
		env    []string
		header []string
		secure bool
	}{
		{"auto over plain HTTP", nil, nil, false},
		{"auto ignores X-Forwarded-Proto from an untrusted peer", nil, []string{"X-Forwarded-Proto", "https"}, false},
		{"auto behind a trusted proxy saying https", []string{"TRUSTED_PROXIES", "0.0.0.0"}, []string{"X-Forwarded-Proto", "https"}, true},
		{"forced", []string{"COOKIE_SECURE", "true"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, tt.env...)
			ts.register("alice", "alice@example.com", pw)
			b := ts.browser()
			send := func(req *http.Request) response {
				for i := 0; i+1 < len(tt.header); i += 2 {
					req.Header.Set(tt.header[i], tt.header[i+1])
				}
				return b.send(req)
			}
			page := send(httptest.NewRequest(http.MethodGet, "/login", nil))
			m := csrfInput.FindStringSubmatch(page.Body)
			if m == nil {
				t.Fatal("no CSRF field on the login page")
			}
			req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(url.Values{"username": {"alice"}, "password": {pw}, "csrf_token": {m[1]}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			res := send(req)
			wantStatus(t, res, http.StatusSeeOther)
			name := sessionCookie
			if tt.secure {
				name = "__Host-" + sessionCookie
			}
			if c := res.cookie(name); c == nil || c.Secure != tt.secure {
				t.Errorf("cookie %s = %+v, want Secure=%v", name, c, tt.secure)
			}
		})
	}
}

func TestPageHeaders(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	b := ts.browser()
	b.login("alice", pw)
	for _, path := range []string{"/login", "/register", "/profile", "/profile/password", "/profile/delete"} {
		t.Run(path, func(t *testing.T) {
			bb := b
			if path == "/login" || path == "/register" {
				bb = ts.browser()
			}
			res := bb.get(path)
			wantStatus(t, res, http.StatusOK)
			want := map[string]string{
				"X-Content-Type-Options": "nosniff",
				"X-Frame-Options":        "DENY",
				"Referrer-Policy":        "same-origin",
				"Cache-Control":          "no-store",
				"Content-Type":           "text/html; charset=utf-8",
			}
			for k, v := range want {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			csp := res.Header.Get("Content-Security-Policy")
			for _, d := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
				if !strings.Contains(csp, d) {
					t.Errorf("CSP %q lacks %q", csp, d)
				}
			}
			if hasInlineScript(res.Body) || strings.Contains(res.Body, " style=") {
				t.Error("page has an inline script or style")
			}
			for _, ac := range []string{`autocomplete="`} {
				if !strings.Contains(res.Body, ac) && path != "/profile" {
					t.Error("form fields lack autocomplete attributes")
				}
			}
		})
	}
	res := ts.get("/static/css/app.css")
	wantStatus(t, res, http.StatusOK)
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet Content-Type = %q", res.Header.Get("Content-Type"))
	}
}

// Every input of every form has a label.
func TestFormsAreLabelled(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	b := ts.browser()
	b.login("alice", pw)
	for _, path := range []string{"/profile/password", "/profile/delete"} {
		body := b.get(path).Body
		checkLabels(t, path, body)
	}
	for _, path := range []string{"/login", "/register"} {
		checkLabels(t, path, ts.browser().get(path).Body)
	}
}

func checkLabels(t *testing.T, path, body string) {
	t.Helper()
	for _, m := range inputID.FindAllStringSubmatch(body, -1) {
		if !strings.Contains(body, `<label for="`+m[1]+`">`) {
			t.Errorf("%s: input %q has no label", path, m[1])
		}
	}
}

// clearedCookie reports whether c deletes the session cookie with the
// attributes it was set with.
func clearedCookie(c *http.Cookie) bool {
	return c != nil && c.Value == "" && (c.MaxAge < 0 || (!c.Expires.IsZero() && c.Expires.Before(time.Now()))) &&
		c.HttpOnly && c.Path == "/" && c.SameSite == http.SameSiteLaxMode
}

// hasInlineScript reports whether body has a script element without src.
func hasInlineScript(body string) bool {
	for _, tag := range scriptTag.FindAllString(body, -1) {
		if !strings.Contains(tag, " src=") {
			return true
		}
	}
	return false
}

var scriptTag = regexp.MustCompile(`<script[^>]*>`)

func TestInlineScriptCheck(t *testing.T) {
	if !hasInlineScript(`<script>alert(1)</script>`) || !hasInlineScript(`<script type="module">x</script>`) {
		t.Error("check misses inline scripts")
	}
	if hasInlineScript(`<script src="/static/js/account.js" defer></script>`) {
		t.Error("check flags an external script")
	}
}

// TestFirstHourPages: what a newcomer meets on the pages: a session that
// expired is said to have expired; names are typed without automatic
// capitals; the current device comes first among the sessions; hints say
// "72 characters", not bytes.
func TestFirstHourPages(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	other := ts.browser()
	other.login("alice", pw)
	b := ts.browser()
	b.login("alice", pw)

	p := b.get("/profile").Body
	first := strings.Index(p, `<li class="session`)
	if first < 0 || !strings.HasPrefix(p[first:], `<li class="session current">`) {
		t.Fatalf("the current device is not first:\n%s", p)
	}
	// The session ends elsewhere: the next page load says it expired.
	wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}}), http.StatusOK)
	tok := ts.token("alice", pw)
	ts.send("DELETE", "/users/me/sessions", "", bearer(tok)...)
	res := b.get("/profile")
	wantStatus(t, res, http.StatusSeeOther)
	loc := res.Header.Get("Location")
	if !strings.Contains(loc, "done=expired") {
		t.Fatalf("redirect after the session ended: %s", loc)
	}
	if page := b.get(loc).Body; !strings.Contains(page, "Your session expired. Please sign in again.") {
		t.Fatalf("login page after an expired session:\n%s", page)
	}
	// A first visit (no cookie) is not told its session expired.
	if loc := ts.browser().get("/profile").Header.Get("Location"); strings.Contains(loc, "expired") {
		t.Fatalf("first visit: %s", loc)
	}

	reg := ts.browser().get("/register").Body
	if !strings.Contains(reg, `id="username" name="username" type="text" autocomplete="username"`) ||
		!strings.Contains(reg, `autocapitalize="none" spellcheck="false"`) {
		t.Fatalf("username field:\n%s", reg)
	}
	if strings.Contains(reg, "72 bytes") || !strings.Contains(reg, "up to 72 (fewer if you use accented letters or emoji)") {
		t.Fatalf("password hint:\n%s", reg)
	}
}

// TestLoginWarnsBeforePausing: from the third failed sign-in for an
// account from this browser, the login page says how many more pause it,
// the same for a name that does not exist.
func TestLoginWarnsBeforePausing(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	for _, name := range []string{"alice", "nobody"} {
		b := ts.browser()
		for i := 1; i <= 4; i++ {
			res := b.login(name, "wrong password")
			wantStatus(t, res, http.StatusUnauthorized)
			warned := strings.Contains(res.Body, `id="form-warning"`)
			if warned != (i >= 3) {
				t.Fatalf("%s, failure %d: warning shown %v\n%s", name, i, warned, res.Body)
			}
			if i == 3 && !strings.Contains(res.Body, "3 failed attempts. After 2 more, sign-in to this account from this device pauses for a while.") {
				t.Fatalf("warning text:\n%s", res.Body)
			}
		}
		res := b.login(name, "wrong password")
		wantStatus(t, res, http.StatusUnauthorized)
		wantStatus(t, b.login(name, "wrong password"), http.StatusTooManyRequests)
	}
}
