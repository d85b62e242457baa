package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"fiberauth/app/config"
	"fiberauth/app/token"
	"fiberauth/db"
)

// testEnv is the environment tests start the server with: the cheapest
// bcrypt cost, everything else at its default unless a test overrides it.
var testEnv = map[string]string{"BCRYPT_COST": "4"}

// testServer is a server built exactly as Run builds it, on a SQLite file
// in a temporary directory.
type testServer struct {
	t     testing.TB
	s     *Server
	store *db.Store
	path  string
}

// newTestServer starts a server with testEnv plus env.
func newTestServer(t testing.TB, env ...string) *testServer {
	t.Helper()
	vars := map[string]string{}
	for k, v := range testEnv {
		vars[k] = v
	}
	for i := 0; i+1 < len(env); i += 2 {
		vars[env[i]] = env[i+1]
	}
	path := filepath.Join(t.TempDir(), "test.db")
	vars["DATABASE_PATH"] = path
	cfg, err := config.Parse(nil, func(k string) string { return vars[k] }, io.Discard)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	store, err := db.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(context.Background(), cfg, store, log)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	return &testServer{t: t, s: s, store: store, path: path}
}

// response is a finished request with its body read.
type response struct {
	*http.Response
	Body string
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.Body)
	}
	return m
}

// cookie returns the Set-Cookie of name, or nil.
func (r response) cookie(name string) *http.Cookie {
	for _, c := range r.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// do sends req through the real Fiber app.
func (ts *testServer) do(req *http.Request) response {
	ts.t.Helper()
	res, err := ts.s.App().Test(req, -1)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return response{Response: res, Body: string(b)}
}

func (ts *testServer) postJSON(path, body string, header ...string) response {
	ts.t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return ts.do(req)
}

func (ts *testServer) postForm(path string, form url.Values, header ...string) response {
	ts.t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return ts.do(req)
}

func (ts *testServer) get(path string, header ...string) response {
	ts.t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return ts.do(req)
}

// register creates an account through the API.
func (ts *testServer) register(username, email, pw string) {
	ts.t.Helper()
	body, _ := json.Marshal(map[string]string{"username": username, "email": email, "password": pw})
	res := ts.postJSON("/register/user", string(body))
	if res.StatusCode != http.StatusCreated {
		ts.t.Fatalf("register %s: status %d, body %s", username, res.StatusCode, res.Body)
	}
}

// token signs in through POST /token and returns the access token.
func (ts *testServer) token(username, pw string) string {
	ts.t.Helper()
	res := ts.postForm("/token", url.Values{"username": {username}, "password": {pw}})
	if res.StatusCode != http.StatusOK {
		ts.t.Fatalf("token for %s: status %d, body %s", username, res.StatusCode, res.Body)
	}
	tok, _ := res.json(ts.t)["access_token"].(string)
	if tok == "" {
		ts.t.Fatalf("token for %s: no access_token in %s", username, res.Body)
	}
	return tok
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// browser is a minimal cookie-keeping client over the test app, for form
// flows.
type browser struct {
	ts      *testServer
	cookies map[string]string
}

func (ts *testServer) browser() *browser { return &browser{ts: ts, cookies: map[string]string{}} }

func (b *browser) cookieHeader() string {
	parts := make([]string, 0, len(b.cookies))
	for k, v := range b.cookies {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, "; ")
}

func (b *browser) send(req *http.Request) response {
	b.ts.t.Helper()
	if len(b.cookies) > 0 {
		req.Header.Set("Cookie", b.cookieHeader())
	}
	res := b.ts.do(req)
	for _, c := range res.Cookies() {
		if c.MaxAge < 0 || c.Value == "" || (!c.Expires.IsZero() && c.Expires.Before(time.Now())) {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	return res
}

func (b *browser) get(path string) response {
	b.ts.t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Sec-Fetch-Site", "none")
	return b.send(req)
}

var csrfInput = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// csrf returns the form token of the page at path.
func (b *browser) csrf(path string) string {
	b.ts.t.Helper()
	res := b.get(path)
	m := csrfInput.FindStringSubmatch(res.Body)
	if m == nil {
		b.ts.t.Fatalf("GET %s: no csrf_token field (status %d)", path, res.StatusCode)
	}
	return m[1]
}

// submit posts a form as the page at formPage would, CSRF token included.
func (b *browser) submit(formPage, action string, form url.Values) response {
	b.ts.t.Helper()
	form.Set("csrf_token", b.csrf(formPage))
	req := httptest.NewRequest(http.MethodPost, action, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://example.com")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.send(req)
}

// login signs in through the form.
func (b *browser) login(username, pw string) response {
	b.ts.t.Helper()
	return b.submit("/login", "/login", url.Values{"username": {username}, "password": {pw}})
}

func wantStatus(t testing.TB, res response, want int) {
	t.Helper()
	if res.StatusCode != want {
		t.Fatalf("status = %d, want %d; body: %.400s", res.StatusCode, want, res.Body)
	}
}

type fiberCtx = fiber.Ctx

var inputID = regexp.MustCompile(`<input id="([^"]+)"`)

type sessionTime = time.Time

func mustClaims(t testing.TB, ts *testServer, raw string) *token.Claims {
	t.Helper()
	c, err := ts.s.tokens.Verify(raw)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return c
}

// startTestListener serves a test server on a loopback port and returns its
// base URL.
func startTestListener(t *testing.T, env ...string) string {
	t.Helper()
	ts := newTestServer(t, env...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ts.s.App().Listener(ln)
	t.Cleanup(func() { ts.s.App().Shutdown() })
	return "http://" + ln.Addr().String()
}
