package app

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"fiberauth/app/account"
	"fiberauth/app/config"
	"fiberauth/app/token"
	"fiberauth/db"
	"fiberauth/db/dbtest"
)

// onEngines runs fn on SQLite and on PostgreSQL (when TEST_DATABASE_URL
// is set); env holds extra settings for the server.
func onEngines(t *testing.T, fn func(t *testing.T, env ...string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t) })
	t.Run("postgres", func(t *testing.T) {
		dbtest.Skip(t)
		fn(t, "DATABASE_URL", "postgres")
	})
}

// The tests' databases share one RSA key, made once: making one takes
// about 50 ms, and every test server starts on a new database.
func init() {
	var once sync.Once
	var seed []byte
	var err error
	newRSASeed = func() ([]byte, error) {
		once.Do(func() { seed, err = token.NewRSASeed() })
		return seed, err
	}
}

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

// newTestServer starts a server on SQLite with testEnv plus env (name,
// value pairs). With "DATABASE_URL", "postgres" it runs on a fresh
// PostgreSQL schema instead (see pgEnv).
func newTestServer(t testing.TB, env ...string) *testServer {
	t.Helper()
	return newLoggedServer(t, io.Discard, env...)
}

// newLoggedServer is newTestServer logging to w, in JSON, at LOG_LEVEL
// (info unless env sets it).
func newLoggedServer(t testing.TB, w io.Writer, env ...string) *testServer {
	t.Helper()
	vars := map[string]string{}
	for k, v := range testEnv {
		vars[k] = v
	}
	for i := 0; i+1 < len(env); i += 2 {
		vars[env[i]] = env[i+1]
	}
	if vars["DATABASE_URL"] == "postgres" {
		vars["DATABASE_URL"] = dbtest.URL(t)
	}
	path := filepath.Join(t.TempDir(), "test.db")
	vars["DATABASE_PATH"] = path
	cfg, err := config.Parse(nil, func(k string) string { return vars[k] }, io.Discard)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	store, err := db.Open(context.Background(), db.Options{Path: cfg.DatabasePath, URL: cfg.DatabaseURL})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.WaitListening(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg.LogFormat = "json"
	log := newLogger(cfg, w)
	s, err := New(context.Background(), cfg, store, log)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	t.Cleanup(s.Close)
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
	// header is sent with every request (X-Forwarded-For, say).
	header []string
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
	for i := 0; i+1 < len(b.header); i += 2 {
		req.Header.Set(b.header[i], b.header[i+1])
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
	c, err := ts.s.acct.Tokens().Verify(raw)
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

type configT = config.Config

// withConfig returns a second server on the same database, built with the
// first one's configuration as edited by edit (another instance, or the
// same one restarted with other settings).
func (ts *testServer) withConfig(t testing.TB, edit func(cfg *config.Config)) *testServer {
	t.Helper()
	cfg := ts.s.cfg
	edit(&cfg)
	s, err := New(context.Background(), cfg, ts.store, ts.s.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &testServer{t: t, s: s, store: ts.store, path: ts.path}
}

// makeAdmin registers name and gives it the admin role, as the command
// line would.
func (ts *testServer) makeAdmin(name string) {
	ts.t.Helper()
	ts.register(name, name+"@example.com", pw)
	u, err := ts.store.UserByUsernameKey(context.Background(), strings.ToLower(name))
	if err == nil {
		err = ts.s.acct.SetRole(context.Background(), account.CommandLine, u.ID, "admin")
	}
	if err != nil {
		ts.t.Fatalf("make %s admin: %v", name, err)
	}
}

// flushMail waits until the mail of every request answered so far is sent
// or given up: the background jobs first, then the queue.
func (ts *testServer) flushMail() {
	ts.s.acct.FlushBackground()
	ts.s.outbox.Flush()
}
