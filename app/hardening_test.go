package app

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestAccountThrottling(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		for _, path := range []string{"token", "form", "mixed"} {
			t.Run(path, func(t *testing.T) {
				ts := newTestServer(t, env...)
				ts.register("alice", "alice@example.com", pw)
				ts.register("bob", "bob@example.com", pw)
				b := ts.browser()
				fail := func(i int, login string) response {
					if path == "token" || (path == "mixed" && i%2 == 0) {
						return ts.postForm("/token", url.Values{"username": {login}, "password": {"wrong password"}})
					}
					return b.login(login, "wrong password")
				}
				// The account is counted as one whichever way it is typed,
				// by username or by email.
				logins := []string{"alice", "ALICE", "alice@example.com", " alice ", "Alice@Example.com"}
				for i := 0; i < 5; i++ {
					if got := fail(i, logins[i]).StatusCode; got != http.StatusUnauthorized {
						t.Fatalf("failure %d: status %d, want 401", i+1, got)
					}
				}
				// Past the threshold even the right password is refused, on both paths.
				res := ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}})
				wantStatus(t, res, http.StatusTooManyRequests)
				ra, err := strconv.Atoi(res.Header.Get("Retry-After"))
				if err != nil || ra < 25 || ra > 30 {
					t.Errorf("Retry-After = %q, want about 30 seconds", res.Header.Get("Retry-After"))
				}
				if want := "Too many attempts. Try again in " + strconv.Itoa(ra) + " seconds."; res.json(t)["detail"] != want {
					t.Errorf("detail = %v, want %q", res.json(t)["detail"], want)
				}
				if strings.Contains(res.Body, "alice") {
					t.Errorf("429 body names the account: %s", res.Body)
				}
				form := b.login("Alice", pw)
				wantStatus(t, form, http.StatusTooManyRequests)
				if form.Header.Get("Retry-After") == "" || !strings.Contains(form.Body, "Too many attempts. Try again in ") {
					t.Errorf("form 429 without Retry-After or the wait in words: %.300s", form.Body)
				}
				// Another account still signs in.
				ts.token("bob", pw)
				// An unknown account is throttled the same way, so 429 tells nothing.
				for i := 0; i < 5; i++ {
					fail(i, "nobody")
				}
				if got := fail(0, "nobody").StatusCode; got != http.StatusTooManyRequests {
					t.Errorf("unknown account after 5 failures: %d, want 429", got)
				}
			})
		}
	})
}

// Failures of one account by its username and by its email are one count:
// five by username then one by email from the same address is refused.
func TestUsernameAndEmailShareACount(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	for i := 0; i < 5; i++ {
		wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {"wrong password"}}), 401)
	}
	wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice@example.com"}, "password": {"wrong password"}}), 429)
}

func TestThrottleDelayGrows(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	now := time.Now()
	ts.s.acct.Now = func() time.Time { return now }
	attempt := func() response {
		return ts.postForm("/token", url.Values{"username": {"alice"}, "password": {"wrong password"}})
	}
	for i := 0; i < 5; i++ {
		wantStatus(t, attempt(), http.StatusUnauthorized)
	}
	wait := func() int {
		res := attempt()
		wantStatus(t, res, http.StatusTooManyRequests)
		n, _ := strconv.Atoi(res.Header.Get("Retry-After"))
		return n
	}
	var waits []int
	for i := 0; i < 6; i++ {
		w := wait()
		waits = append(waits, w)
		now = now.Add(time.Duration(w) * time.Second)
		wantStatus(t, attempt(), http.StatusUnauthorized) // one more try once the wait is over
	}
	want := []int{30, 60, 120, 240, 480, 900}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v (doubling up to the window)", waits, want)
		}
	}
	// A wait as long as the window outlasts the count: it starts over.
	for i := 0; i < 4; i++ {
		wantStatus(t, attempt(), http.StatusUnauthorized)
	}
	if w := wait(); w != 30 {
		t.Errorf("wait after the count started over = %d, want 30", w)
	}
}

func TestIPCeiling(t *testing.T) {
	ts := newTestServer(t, "LOGIN_FAILURES_PER_IP", "8")
	ts.register("alice", "alice@example.com", pw)
	for i := 0; i < 8; i++ {
		res := ts.postForm("/token", url.Values{"username": {"user" + strconv.Itoa(i)}, "password": {"wrong password"}})
		wantStatus(t, res, http.StatusUnauthorized)
	}
	// Spraying many accounts from one address hits the per-address ceiling.
	wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}}), http.StatusTooManyRequests)
}

// Rotating X-Forwarded-For changes nothing unless the peer is a trusted proxy.
func TestSpoofedForwardingHeaders(t *testing.T) {
	ts := newTestServer(t, "LOGIN_FAILURES_PER_IP", "3")
	for i := 0; i < 3; i++ {
		ts.postForm("/token", url.Values{"username": {"u" + strconv.Itoa(i)}, "password": {"wrong password"}},
			"X-Forwarded-For", "203.0.113."+strconv.Itoa(i), "X-Real-IP", "203.0.113."+strconv.Itoa(i))
	}
	res := ts.postForm("/token", url.Values{"username": {"someone"}, "password": {"wrong password"}},
		"X-Forwarded-For", "198.51.100.7")
	wantStatus(t, res, http.StatusTooManyRequests)

	// Behind a trusted proxy, the forwarded address is the client.
	tp := newTestServer(t, "LOGIN_FAILURES_PER_IP", "3", "TRUSTED_PROXIES", "0.0.0.0")
	for i := 0; i < 3; i++ {
		tp.postForm("/token", url.Values{"username": {"u" + strconv.Itoa(i)}, "password": {"wrong password"}},
			"X-Forwarded-For", "203.0.113.9")
	}
	wantStatus(t, tp.postForm("/token", url.Values{"username": {"x"}, "password": {"wrong password"}},
		"X-Forwarded-For", "203.0.113.9"), http.StatusTooManyRequests)
	wantStatus(t, tp.postForm("/token", url.Values{"username": {"x"}, "password": {"wrong password"}},
		"X-Forwarded-For", "203.0.113.10"), http.StatusUnauthorized)
}

func TestRegistrationRateLimit(t *testing.T) {
	ts := newTestServer(t, "REGISTRATIONS_PER_IP", "3")
	for i := 0; i < 3; i++ {
		ts.register("user"+strconv.Itoa(i), "user"+strconv.Itoa(i)+"@example.com", pw)
	}
	res := ts.postJSON("/register/user", `{"username":"user9","email":"user9@example.com","password":"`+pw+`"}`)
	wantStatus(t, res, http.StatusTooManyRequests)
	if res.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	b := ts.browser()
	form := b.submit("/register", "/register", url.Values{"username": {"user9"}, "email": {"user9@example.com"}, "password": {pw}})
	wantStatus(t, form, http.StatusTooManyRequests)
}

// An unknown name and a wrong password get byte-for-byte the same answer
// after the same work: one bcrypt comparison at the configured cost each.
func TestEnumerationSameResponse(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	work := func(login string) (response, int64) {
		before := ts.s.hasher.Verifications()
		res := ts.postForm("/token", url.Values{"username": {login}, "password": {"wrong password"}})
		return res, ts.s.hasher.Verifications() - before
	}
	known, knownWork := work("alice")
	unknown, unknownWork := work("nobody")
	unknownEmail, emailWork := work("nobody@example.com")
	if known.StatusCode != unknown.StatusCode || known.Body != unknown.Body || known.Body != unknownEmail.Body {
		t.Errorf("known: %d %s; unknown: %d %s", known.StatusCode, known.Body, unknown.StatusCode, unknown.Body)
	}
	for _, h := range []string{"Content-Type", "Content-Length", "WWW-Authenticate", "Cache-Control"} {
		if known.Header.Get(h) != unknown.Header.Get(h) {
			t.Errorf("header %s differs: %q vs %q", h, known.Header.Get(h), unknown.Header.Get(h))
		}
	}
	if knownWork != 1 || unknownWork != 1 || emailWork != 1 {
		t.Errorf("bcrypt comparisons: known %d, unknown name %d, unknown email %d; want 1 each", knownWork, unknownWork, emailWork)
	}
}

// An unknown user is compared against a dummy hash of the configured cost,
// so the comparison costs what a real one does.
func TestDummyHashCost(t *testing.T) {
	ts := newTestServer(t, "BCRYPT_COST", "6")
	cost, err := bcrypt.Cost(ts.s.hasher.DummyHash())
	if err != nil || cost != 6 {
		t.Errorf("dummy hash cost = %d (%v), want 6", cost, err)
	}
}

func TestPasswordsExactlyAsTyped(t *testing.T) {
	ts := newTestServer(t)
	exact72 := strings.Repeat("x", 64) + "abcdefgh"
	ts.register("alice", "alice@example.com", exact72)
	tests := []struct {
		name, pw string
		want     int
	}{
		{"exact", exact72, 200},
		{"longer with the same first 72 bytes", exact72 + "zzz", 401},
		{"trailing space", exact72[:71] + " ", 401},
		{"other case", strings.ToUpper(exact72), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {tt.pw}}), tt.want)
		})
	}
	ts.register("bob", "bob@example.com", " spaced passphrase ")
	wantStatus(t, ts.postForm("/token", url.Values{"username": {"bob"}, "password": {"spaced passphrase"}}), 401)
	wantStatus(t, ts.postForm("/token", url.Values{"username": {"bob"}, "password": {" spaced passphrase "}}), 200)
}

func TestRehashOnCostChange(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	cfg := ts.s.cfg
	cfg.BcryptCost = 5
	s2, err := New(context.Background(), cfg, ts.store, ts.s.log)
	if err != nil {
		t.Fatal(err)
	}
	ts2 := &testServer{t: t, s: s2, store: ts.store, path: ts.path}
	wrong := ts2.postForm("/token", url.Values{"username": {"alice"}, "password": {"wrong password"}})
	wantStatus(t, wrong, http.StatusUnauthorized)
	u, _ := ts.store.UserByUsernameKey(context.Background(), "alice")
	if c, _ := bcrypt.Cost([]byte(u.PasswordHash)); c != 4 {
		t.Fatalf("a failed sign-in changed the hash cost to %d", c)
	}
	ts2.token("alice", pw)
	u, _ = ts.store.UserByUsernameKey(context.Background(), "alice")
	if c, _ := bcrypt.Cost([]byte(u.PasswordHash)); c != 5 {
		t.Errorf("hash cost after sign-in = %d, want 5", c)
	}
	ts2.token("alice", pw)
}

// hostile is a request that must get a clear 4xx, never a 5xx or a crash.
type hostile struct {
	name   string
	method string
	path   string
	ctype  string
	body   string
	header map[string]string
	want   int
}

func TestHostileRequests(t *testing.T) {
	ts := newTestServer(t, "LOGIN_FAILURES_PER_ACCOUNT", "1000", "LOGIN_FAILURES_PER_IP", "100000")
	ts.register("alice", "alice@example.com", pw)
	tok := ts.token("alice", pw)
	const form = "application/x-www-form-urlencoded"
	const js = "application/json"
	tests := []hostile{
		{"SQL injection as username", "POST", "/token", form, "username=" + url.QueryEscape("alice' OR '1'='1") + "&password=x", nil, 401},
		{"SQL injection as password", "POST", "/token", form, "username=alice&password=" + url.QueryEscape("' OR 1=1 --"), nil, 401},
		{"SQL injection in email at registration", "POST", "/register/user", js, `{"username":"bobby","email":"x'); DROP TABLE users;--@example.com","password":"` + pw + `"}`, nil, 422},
		{"injection in username at registration", "POST", "/register/user", js, `{"username":"bob'; DROP TABLE users;--","email":"b@example.com","password":"` + pw + `"}`, nil, 422},
		{"NUL in username", "POST", "/register/user", js, `{"username":"bob\u0000","email":"b@example.com","password":"` + pw + `"}`, nil, 422},
		{"control character in email", "POST", "/register/user", js, `{"username":"bob","email":"b\u0007@example.com","password":"` + pw + `"}`, nil, 422},
		{"NUL in password", "POST", "/register/user", js, `{"username":"bob","email":"b@example.com","password":"pass\u0000word123"}`, nil, 422},
		{"invalid UTF-8 in JSON", "POST", "/register/user", js, "{\"username\":\"b\xffob\",\"email\":\"b@example.com\",\"password\":\"" + pw + "\"}", nil, 422},
		{"invalid UTF-8 in form", "POST", "/token", form, "username=%FF%FE&password=x", nil, 400},
		{"NUL in token form", "POST", "/token", form, "username=alice%00&password=x", nil, 400},
		{"deeply nested JSON", "POST", "/register/user", js, strings.Repeat("[", 3000) + strings.Repeat("]", 3000), nil, 422},
		{"JSON null", "POST", "/register/user", js, `null`, nil, 422},
		{"JSON string", "POST", "/register/user", js, `"hello"`, nil, 422},
		{"JSON with object username", "POST", "/register/user", js, `{"username":{"$ne":1},"email":"b@example.com","password":"` + pw + `"}`, nil, 422},
		{"truncated JSON", "POST", "/register/user", js, `{"username":"bob"`, nil, 422},
		{"1 KiB username", "POST", "/token", form, "username=" + strings.Repeat("a", 1100) + "&password=x", nil, 400},
		{"wrong content type for token", "POST", "/token", "text/plain", "username=alice&password=x", nil, 400},
		{"credentials only in the query", "POST", "/token?username=alice&password=" + url.QueryEscape(pw), form, "", nil, 400},
		{"credentials in the query, no body type", "POST", "/token?username=alice&password=" + url.QueryEscape(pw), "", "", nil, 400},
		{"repeated grant_type", "POST", "/token", form, "grant_type=password&grant_type=client_credentials&username=alice&password=x", nil, 400},
		{"JSON registration sent as text/plain", "POST", "/register/user", "text/plain", `{"username":"bob","email":"b@example.com","password":"` + pw + `"}`, nil, 415},
		{"JSON registration without a type", "POST", "/register/user", "", `{"username":"bob","email":"b@example.com","password":"` + pw + `"}`, nil, 415},
		{"password change with bad JSON", "POST", "/users/me/password", js, `{"current_password":`, map[string]string{"Authorization": "Bearer " + tok}, 422},
		{"session id with traversal", "DELETE", "/users/me/sessions/..%2F..%2Fetc", "", "", map[string]string{"Authorization": "Bearer " + tok}, 404},
		{"huge bearer token", "GET", "/users/me", "", "", map[string]string{"Authorization": "Bearer " + strings.Repeat("A", 5000)}, 401},
		{"bearer with spaces only", "GET", "/users/me", "", "", map[string]string{"Authorization": "Bearer    "}, 401},
		{"cookie with garbage", "GET", "/users/me", "", "", map[string]string{"Cookie": "access_token=%%%%"}, 401},
		{"spoofed X-Forwarded-Proto", "GET", "/login", "", "", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}, 200},
		{"unknown method on token", "PUT", "/token", form, "", nil, 405},
		{"login next with CRLF", "GET", "/login?next=/%0d%0aSet-Cookie:x=1", "", "", nil, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			res := ts.do(req)
			wantStatus(t, res, tt.want)
			if res.StatusCode >= 400 && strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
				var body map[string]any
				if err := json.Unmarshal([]byte(res.Body), &body); err != nil {
					t.Fatalf("error body is not JSON: %s", res.Body)
				}
				if body["detail"] == nil || body["detail"] == "" {
					t.Errorf("error body without a useful detail: %s", res.Body)
				}
			}
			if strings.Contains(res.Body, "sqlite") || strings.Contains(res.Body, "SQL") {
				t.Errorf("internal error text leaked: %s", res.Body)
			}
			if loc := res.Header.Get("Location"); loc != "" && !strings.HasPrefix(loc, "/") {
				t.Errorf("redirect off-site: Location %q", loc)
			}
			for _, c := range res.Cookies() {
				if c.Name == "x" {
					t.Errorf("a cookie was injected: %v", c)
				}
			}
			if res.Header.Get("Strict-Transport-Security") != "" {
				t.Error("HSTS sent over plain HTTP on a client's say-so")
			}
			for _, c := range res.Cookies() {
				if c.Secure || strings.HasPrefix(c.Name, "__Host-") {
					t.Errorf("cookie %s marked for HTTPS on a client's say-so", c.Name)
				}
			}
			if strings.Contains(res.Body, "Set-Cookie") || strings.Contains(res.Body, `name="next" value="/`) {
				t.Errorf("the unsafe next was carried into the page: %.400s", res.Body)
			}
		})
	}
	// None of it did harm: the account still works and nothing was stored.
	ts.token("alice", pw)
	if _, err := ts.store.UserByUsernameKey(context.Background(), "bob"); err == nil {
		t.Error("a refused registration was stored")
	}
}

// Oversized headers, an over-long bearer token among them, are refused with
// 431 and a JSON detail by the real listener.
func TestOversizedHeaders(t *testing.T) {
	srv := startTestListener(t)
	for _, tc := range []struct{ path, name, value string }{
		{"/login", "X-Big", strings.Repeat("a", readBufferSize+100)},
		{"/users/me", "Authorization", "Bearer " + strings.Repeat("a", readBufferSize+100)},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv+tc.path, nil)
		req.Header.Set(tc.name, tc.value)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Detail string }
		err = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%s with a long %s: status = %d, want 431", tc.path, tc.name, res.StatusCode)
		}
		if err != nil || body.Detail != "Request Header Fields Too Large" {
			t.Errorf("%s with a long %s: body detail %q (%v), want the status text", tc.path, tc.name, body.Detail, err)
		}
	}
}

// Oversized bodies are refused with 413 before a handler sees them.
func TestOversizedBodies(t *testing.T) {
	srv := startTestListener(t)
	big := strings.Repeat("a", bodyLimit+1)
	tests := []struct{ path, ctype, body string }{
		{"/register/user", "application/json", `{"username":"` + big + `"}`},
		{"/token", "application/x-www-form-urlencoded", "username=" + big},
		{"/login", "application/x-www-form-urlencoded", "username=" + big},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res, err := http.Post(srv+tt.path, tt.ctype, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("status = %d, want 413", res.StatusCode)
			}
		})
	}
	// A body at the limit's order of the largest real form is accepted.
	res, err := http.Post(srv+"/token", "application/x-www-form-urlencoded",
		strings.NewReader("username=alice&password="+strings.Repeat("p", 72)))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("normal body: status %d, want 401", res.StatusCode)
	}
}

// Concurrent guesses cannot slip past the threshold: attempts in flight
// count against it.
func TestConcurrentGuessesBounded(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, env...)
		ts.register("alice", "alice@example.com", pw)
		const n = 40
		statuses := make(chan int, n)
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-gate
				req := httptest.NewRequest(http.MethodPost, "/token",
					strings.NewReader(url.Values{"username": {"alice"}, "password": {"guess " + strconv.Itoa(i)}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				res, err := ts.s.App().Test(req, -1)
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
				statuses <- res.StatusCode
			}(i)
		}
		close(gate)
		wg.Wait()
		close(statuses)
		count := map[int]int{}
		for st := range statuses {
			count[st]++
		}
		if count[401] > 5 || count[401]+count[429] != n {
			t.Errorf("statuses %v: want at most 5 checked guesses (401) and the rest 429", count)
		}
	})
}
