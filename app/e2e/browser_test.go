package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"fiberauth/app"
)

// Browser tests need Debian's chromium. Without it they skip, unless
// FIBERAUTH_REQUIRE_BROWSER=1 (set by .ci/run) makes them fail.
const chromiumPath = "/usr/bin/chromium"

// serveApp runs the real program (app.Run, as main does) in this process,
// on a free loopback port with a fresh database, and returns its base URL
// and a func that stops it and returns what Run returned.
func serveApp(t *testing.T, extra ...string) (string, func() error) {
	t.Helper()
	env := map[string]string{"DATABASE_PATH": filepath.Join(t.TempDir(), "app.db"), "ADDR": "127.0.0.1:0",
		"BCRYPT_COST": "4", "LOG_LEVEL": "error"}
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, nil, func(k string) string { return env[k] }, io.Discard, io.Discard, ready)
	}()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { stop() })
	select {
	case addr := <-ready:
		return "http://" + addr, stop
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	return "", stop
}

// chrome is one headless browser with its own profile, recording every
// console error, uncaught exception, failed load and CSP violation of its
// pages.
type chrome struct {
	t        *testing.T
	ctx      context.Context
	mu       sync.Mutex
	problems []string
}

// cspProbe is installed in every document before its own scripts run (the
// DevTools protocol injects it, so the page's CSP does not apply to it) and
// keeps the page's CSP violations where the test can read them.
const cspProbe = `window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__csp.push(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber);
});`

// browserMissing skips the test, or fails it when FIBERAUTH_REQUIRE_BROWSER=1.
func browserMissing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("FIBERAUTH_REQUIRE_BROWSER") == "1" {
		t.Fatalf("Chromium is required (FIBERAUTH_REQUIRE_BROWSER=1): %s", why)
	}
	t.Skipf("browser tests need Chromium (%s): install the Debian package chromium (apt-get install -y chromium)", why)
}

func newChrome(t *testing.T, extra ...chromedp.ExecAllocatorOption) *chrome {
	t.Helper()
	if _, err := exec.LookPath(chromiumPath); err != nil {
		browserMissing(t, chromiumPath+" not found")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1000, 900),
	}
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		browserMissing(t, "it did not start: "+err.Error())
	}
	c := &chrome{t: t, ctx: ctx}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				c.problem("%s (%s:%d)", m.String(), m.URL, m.Line)
			}
		}
	}()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: cspProbe}); err != nil {
		t.Fatalf("install the CSP probe: %v", err)
	}
	return c
}

func (c *chrome) problem(format string, a ...any) {
	c.mu.Lock()
	c.problems = append(c.problems, fmt.Sprintf(format, a...))
	c.mu.Unlock()
}

// forgive drops recorded problems that contain s (an expected failed load,
// such as the 401 document of a refused sign-in).
func (c *chrome) forgive(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var keep []string
	for _, p := range c.problems {
		if !strings.Contains(p, s) {
			keep = append(keep, p)
		}
	}
	c.problems = keep
}

// do runs actions and fails the test on error.
func (c *chrome) do(actions ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		c.t.Fatalf("browser: %v\nproblems so far: %v", err, c.problems)
	}
}

// blockURL makes the browser refuse to load URLs matching pattern (a
// URLPattern), as if the file were missing.
func (c *chrome) blockURL(pattern string) {
	c.t.Helper()
	if _, err := chromedp.Call(c.ctx, network.Enable, network.EnableParams{}); err != nil {
		c.t.Fatal(err)
	}
	if _, err := chromedp.Call(c.ctx, network.SetBlockedURLs, network.SetBlockedURLsParams{
		URLPatterns: []*network.BlockPattern{{URLPattern: pattern, Block: true}}}); err != nil {
		c.t.Fatal(err)
	}
}

// get runs one action that returns a value.
func get[T any](c *chrome, a chromedp.Action[T]) T {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		c.t.Fatalf("browser: %v", err)
	}
	return v
}

// checkPage fails the test for any console error, exception or CSP
// violation seen so far, including those the probe caught on this page.
func (c *chrome) checkPage() {
	c.t.Helper()
	if csp, err := chromedp.Run(c.ctx, chromedp.Evaluate[[]string](`window.__csp || []`)); err == nil {
		for _, v := range csp {
			c.problem("CSP violation: %s", v)
		}
	}
	// Console messages arrive asynchronously; give the last ones a moment.
	time.Sleep(100 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.problems {
		c.t.Errorf("page problem: %s", p)
	}
	c.problems = nil
}

// screenshot saves the current page as a PNG into $FIBERAUTH_SCREENSHOTS
// (default: the test's temporary directory).
func (c *chrome) screenshot(name string) {
	c.t.Helper()
	dir := os.Getenv("FIBERAUTH_SCREENSHOTS")
	if dir == "" {
		dir = c.t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	png := get(c, chromedp.FullScreenshot(100))
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.t.Logf("screenshot: %s", path)
}

// text returns the visible text of the page body.
func (c *chrome) text() string {
	c.t.Helper()
	return get(c, chromedp.Text(chromedp.CSS("body")))
}

// evalDuringNavigation evaluates expr in the page, trying again for up to
// ten seconds when a navigation under way (a history traversal, a reload)
// destroys the document it ran in.
func evalDuringNavigation[T any](c *chrome, expr string) T {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
		cancel()
		if err == nil {
			return v
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("browser: evaluate %s: %v", expr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *chrome) location() string {
	c.t.Helper()
	return get(c, chromedp.Location())
}

// submitForm types into the fields of the form on the page and clicks its
// submit button, waiting for the next page to load.
func (c *chrome) submitForm(form string, fields map[string]string) {
	c.t.Helper()
	var actions []chromedp.Action[chromedp.Void]
	for name, v := range fields {
		sel := chromedp.CSS(form + ` input[name="` + name + `"]`)
		actions = append(actions, chromedp.Clear(sel), chromedp.SendKeys(sel, v))
	}
	actions = append(actions, clickAndWait(form+` button[type="submit"]`))
	c.do(actions...)
}

// clickAndWait clicks the element sel and waits until a new document has
// loaded.
func clickAndWait(sel string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		origin := chromedp.Evaluate[float64](`performance.timeOrigin`)
		before, err := origin(ctx, t)
		if err != nil {
			return chromedp.Void{}, err
		}
		if _, err := chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)(ctx, t); err != nil {
			return chromedp.Void{}, err
		}
		for i := 0; i < 200; i++ {
			if now, err := origin(ctx, t); err == nil && now != before {
				if state, err := chromedp.Evaluate[string](`document.readyState`)(ctx, t); err == nil && state == "complete" {
					return chromedp.Void{}, nil
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		return chromedp.Void{}, fmt.Errorf("no new page after clicking %s", sel)
	}
}

func (c *chrome) registerUser(base, username, email string) {
	c.t.Helper()
	c.do(chromedp.Navigate(base + "/register"))
	c.submitForm(`form[action="/register"]`, map[string]string{"username": username, "email": email, "password": password})
}

func TestBrowserRegister(t *testing.T) {
	base, _ := serveApp(t)
	c := newChrome(t)
	c.registerUser(base, "alice", "alice@example.com")
	if loc := c.location(); loc != base+"/profile?done=welcome" {
		t.Errorf("after registering: at %s, want /profile?done=welcome", loc)
	}
	if !strings.Contains(c.text(), "Welcome! Your account is ready.") {
		t.Error("no welcome banner after registering")
	}
	h1 := get(c, chromedp.Text(chromedp.CSS("h1")))
	if h1 != "alice authorized" {
		t.Errorf("heading %q, want %q", h1, "alice authorized")
	}
	c.checkPage()
	c.screenshot("1-register-profile")
}

func TestBrowserLogoutAndBack(t *testing.T) {
	base, _ := serveApp(t)
	c := newChrome(t)
	c.registerUser(base, "alice", "alice@example.com")
	c.do(clickAndWait(`header form[action="/logout"] button`))
	if loc := c.location(); !strings.HasPrefix(loc, base+"/login") {
		t.Errorf("after logout: at %s, want the login page", loc)
	}
	if !strings.Contains(c.text(), "You have been logged out.") {
		t.Error("no logout confirmation")
	}
	// The browser's back button: history.back(), then wait for whatever the
	// browser shows for the previous entry (/profile) to settle on the
	// login page that a signed-out visit to /profile leads to.
	c.do(chromedp.Evaluate[chromedp.Void](`setTimeout(function () { history.back() }, 0); undefined`))
	// Read the page through script evaluation: after a history traversal
	// the DOM queries of the driver may still track the old document.
	href := func() string { return evalDuringNavigation[string](c, `location.href`) }
	// The page before logging out was the profile with its welcome.
	want := base + "/login?next=/profile%3Fdone%3Dwelcome"
	deadline := time.Now().Add(10 * time.Second)
	for href() != want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := href(); got != want {
		t.Errorf("after back: at %s, want %s", got, want)
	}
	body := evalDuringNavigation[string](c, `document.body ? document.body.innerText : ""`)
	if strings.Contains(body, "alice authorized") || strings.Contains(body, "alice@example.com") || !strings.Contains(body, "Log in") {
		t.Errorf("back button after logout shows (at %s):\n%s", href(), body)
	}
	c.checkPage()
	c.screenshot("2-logout-back")
}

// An account page that the browser restores from its back/forward cache
// (this Chromium keeps even no-store pages there) reloads itself, so that
// the server decides again what it shows. The control run blocks the
// page's script and sees the stale page come back: the test can tell.
func TestBrowserBackForwardCacheReload(t *testing.T) {
	for _, withScript := range []bool{true, false} {
		t.Run(fmt.Sprintf("account.js=%v", withScript), func(t *testing.T) {
			base, _ := serveApp(t)
			c := newChrome(t)
			if !withScript {
				c.blockURL("http://127.0.0.1:*/static/js/account.js")
			}
			c.registerUser(base, "alice", "alice@example.com")
			// A mark in the page's memory: it survives only if the very
			// same page is shown again without a reload.
			c.do(chromedp.Evaluate[chromedp.Void](`window.__stale = true; undefined`))
			c.do(clickAndWait(`a[href="/profile/password"]`))
			c.do(chromedp.Evaluate[chromedp.Void](`setTimeout(function () { history.back() }, 0); undefined`))
			deadline := time.Now().Add(10 * time.Second)
			var state string
			for time.Now().Before(deadline) {
				state = evalDuringNavigation[string](c, `location.pathname + " " + document.readyState + " " + (window.__stale === true) + " " + performance.getEntriesByType('navigation')[0].type`)
				if strings.HasPrefix(state, "/profile complete") && (!withScript || strings.HasSuffix(state, "reload")) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			stale := strings.Contains(state, " true ")
			switch {
			case withScript && stale:
				t.Errorf("the profile came back from the cache without a reload: %s", state)
			case !withScript && !stale:
				t.Errorf("control: without its script the restored page should be the stale one (%s); the browser no longer caches it and this test proves nothing", state)
			}
		})
	}
}

func TestBrowserLoginByEmailAndWrongPassword(t *testing.T) {
	base, _ := serveApp(t)
	if st, err := register(base, "alice", password); err != nil || st != 201 {
		t.Fatalf("register: %d %v", st, err)
	}
	c := newChrome(t)
	c.do(chromedp.Navigate(base + "/login"))
	c.submitForm(`form[action="/login"]`, map[string]string{"username": "alice@example.com", "password": password})
	if loc := c.location(); loc != base+"/profile" || !strings.Contains(c.text(), "alice authorized") {
		t.Fatalf("login by email: at %s", loc)
	}
	c.do(clickAndWait(`header form[action="/logout"] button`))

	c.submitForm(`form[action="/login"]`, map[string]string{"username": "alice", "password": "not the password"})
	if !strings.Contains(c.text(), "Incorrect username or password") {
		t.Error("wrong password: no message")
	}
	kept := get(c, chromedp.Value(chromedp.CSS(`#username`)))
	if kept != "alice" {
		t.Errorf("typed username %q not kept", kept)
	}
	pwValue := get(c, chromedp.Value(chromedp.CSS(`#password`)))
	if pwValue != "" {
		t.Error("password field refilled")
	}
	// The 401 document of the refused sign-in is logged as a failed load;
	// it is the expected answer, not a page error.
	c.forgive("status of 401")
	c.checkPage()
	c.screenshot("3-login-wrong-password")
}

func TestBrowserCookieHiddenFromScripts(t *testing.T) {
	base, _ := serveApp(t)
	c := newChrome(t)
	c.registerUser(base, "alice", "alice@example.com")
	cookies := get(c, chromedp.Evaluate[string](`document.cookie`))
	if strings.Contains(cookies, "access_token") || strings.Contains(cookies, "eyJ") {
		t.Errorf("document.cookie exposes the token: %q", cookies)
	}
	c.checkPage()
	c.screenshot("4-cookie-hidden")
}

// attacker serves a page on another origin that auto-submits a form to the
// app as soon as it loads.
func attacker(t *testing.T, host, action string, fields map[string]string) string {
	t.Helper()
	var inputs strings.Builder
	for k, v := range fields {
		fmt.Fprintf(&inputs, `<input type="hidden" name="%s" value="%s">`, k, v)
	}
	body := `<!doctype html><html><body><form id="f" method="post" action="` + action + `">` + inputs.String() +
		`</form><script>document.getElementById('f').submit()</script></body></html>`
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return "http://" + host + ":" + port + "/"
}

func TestBrowserCrossSiteForms(t *testing.T) {
	base, _ := serveApp(t)
	if st, _ := register(base, "mallory", password); st != 201 {
		t.Fatal("register mallory")
	}
	c := newChrome(t)
	c.registerUser(base, "alice", "alice@example.com")
	tests := []struct {
		name, host, path string
		fields           map[string]string
	}{
		// localhost is another site than 127.0.0.1; 127.0.0.1 on another
		// port is the same site but another origin.
		{"cross-site logout", "localhost", "/logout", map[string]string{"csrf_token": "guess"}},
		{"same-site other-origin logout", "127.0.0.1", "/logout", map[string]string{"csrf_token": "guess"}},
		{"cross-site login as the attacker", "localhost", "/login", map[string]string{"username": "mallory", "password": password}},
		{"same-site other-origin login as the attacker", "127.0.0.1", "/login", map[string]string{"username": "mallory", "password": password}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evil := attacker(t, tt.host, base+tt.path, tt.fields)
			c.do(chromedp.Navigate(evil))
			// Wait for the auto-submitted form to land on the app and its
			// answer to finish loading; the attacker's page is replaced
			// meanwhile, so read through evaluations that survive that.
			landedOnApp := func() bool {
				return strings.HasPrefix(evalDuringNavigation[string](c, `location.href`), base) &&
					evalDuringNavigation[string](c, `document.readyState`) == "complete"
			}
			for deadline := time.Now().Add(10 * time.Second); !landedOnApp() && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
			}
			landed := evalDuringNavigation[string](c, `document.body ? document.body.innerText : ""`)
			if !strings.Contains(landed, "Reload") {
				t.Errorf("the forged %s was not refused; the page says:\n%s", tt.path, landed)
			}
			c.screenshot(fmt.Sprintf("5-cross-site-%d", i+1))
			c.do(chromedp.Navigate(base + "/profile"))
			if body := c.text(); !strings.Contains(body, "alice authorized") {
				t.Errorf("the session changed after the forged %s; /profile says:\n%s", tt.path, body)
			}
			// The 403 document is the expected refusal, not a page error.
			c.forgive("status of 403")
			c.checkPage()
		})
	}
	c.screenshot("5-cross-site-final-profile")
}

func TestBrowserEndAnotherSession(t *testing.T) {
	base, _ := serveApp(t)
	c := newChrome(t)
	c.registerUser(base, "alice", "alice@example.com")
	_, other, err := token(base, "alice", password)
	if err != nil || other == "" {
		t.Fatalf("token: %v", err)
	}
	c.do(chromedp.Navigate(base + "/profile"))
	if !strings.Contains(c.text(), "This device") {
		t.Fatal("the current session is not marked")
	}
	c.do(clickAndWait(`form[action^="/profile/sessions/"][action$="/end"]:not([action*="others"]) button`))
	if !strings.Contains(c.text(), "The session has been ended.") {
		t.Errorf("no confirmation; page says:\n%s", c.text())
	}
	if st, _ := me(base, other); st != 401 {
		t.Errorf("the ended session's token gives %d, want 401", st)
	}
	if !strings.Contains(c.text(), "alice authorized") {
		t.Error("ending the other session signed this browser out")
	}
	c.checkPage()
	c.screenshot("6-end-other-session")
}

func TestBrowserAPIDocs(t *testing.T) {
	base, _ := serveApp(t)
	if st, err := register(base, "alice", password); err != nil || st != 201 {
		t.Fatalf("register: %d %v", st, err)
	}
	c := newChrome(t)
	c.do(chromedp.Navigate(base + "/docs"))
	c.do(chromedp.WaitVisible(chromedp.CSS(`.auth-wrapper .btn.authorize`)),
		chromedp.Click(chromedp.CSS(`.auth-wrapper .btn.authorize`), chromedp.NodeVisible))
	c.do(chromedp.WaitVisible(chromedp.CSS(`#oauth_username`)))
	// Only what a person needs: username and password, the cursor in the
	// first; no client id, secret or credentials location.
	dialog := get(c, chromedp.Poll[string](`(function () {
	  var visible = function (id) { var e = document.getElementById(id); return !!e && e.offsetParent !== null; };
	  if (document.activeElement.id !== 'oauth_username') { return false; }
	  return [document.activeElement.id, visible('oauth_password'), visible('client_id_password'),
	    visible('client_secret_password'), visible('password_type')].join(' ');
	})()`, chromedp.WithPollingTimeout(5*time.Second)))
	if dialog != "oauth_username true false false false" {
		t.Errorf("Authorize dialog (focus, password, client_id, client_secret, location shown): %q", dialog)
	}
	c.screenshot("7-docs-dialog")
	c.do(chromedp.SendKeys(chromedp.CSS(`#oauth_username`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`#oauth_password`), password),
		chromedp.Click(chromedp.CSS(`.auth-container .auth-btn-wrapper .authorize`), chromedp.NodeVisible),
	)
	// Swagger UI turns the Authorize button of the form into Logout once
	// /token has answered with a token.
	authorized := get(c, chromedp.Poll[bool](`document.querySelector('.auth-container .auth-btn-wrapper').innerText.includes('Logout')`,
		chromedp.WithPollingTimeout(15*time.Second)))
	c.screenshot("7-docs-authorized")
	if !authorized {
		t.Fatalf("Authorize did not obtain a token")
	}
	c.do(chromedp.Click(chromedp.CSS(`.modal-ux .close-modal`), chromedp.NodeVisible),
		chromedp.WaitNotPresent(chromedp.CSS(`.modal-ux`)),
		chromedp.Click(chromedp.CSS(`#operations-account-readMe .opblock-summary-control`), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`#operations-account-readMe .try-out__btn`), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`#operations-account-readMe .execute`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`#operations-account-readMe .live-responses-table tbody .response-col_status`)),
	)
	status := get(c, chromedp.Text(chromedp.CSS(`#operations-account-readMe .live-responses-table tbody .response-col_status`)))
	body := get(c, chromedp.Text(chromedp.CSS(`#operations-account-readMe .live-responses-table tbody .response-col_description`)))
	if !strings.Contains(status, "200") || !strings.Contains(body, "alice authorized") {
		t.Errorf("Try it out on GET /users/me: status %q, body %q", status, body)
	}
	c.checkPage()
	c.screenshot("7-docs-try-it-out")
}

// TestBrowserAdminArea: an admin made by the command line searches the
// user list, changes a role and ends a user's sessions, in a real browser;
// each change reaches the user's token at once.
func TestBrowserAdminArea(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "app.db")
	base, _ := serveApp(t, "DATABASE_PATH="+dbPath)
	for _, name := range []string{"root", "alice", "bob"} {
		if st, err := register(base, name, password); err != nil || st != 201 {
			t.Fatalf("register %s: %d %v", name, st, err)
		}
	}
	env := map[string]string{"DATABASE_PATH": dbPath, "BCRYPT_COST": "4"}
	if err := app.Run(context.Background(), []string{"users", "set-role", "root", "admin"},
		func(k string) string { return env[k] }, io.Discard, io.Discard, nil); err != nil {
		t.Fatalf("users set-role: %v", err)
	}
	_, alice, err := token(base, "alice", password)
	if err != nil || alice == "" {
		t.Fatalf("token: %v", err)
	}
	premium := func() int {
		req, _ := http.NewRequest(http.MethodGet, base+"/welcome/premium-user", nil)
		req.Header.Set("Authorization", "Bearer "+alice)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	if st := premium(); st != 403 {
		t.Fatalf("alice on the premium space before the change: %d, want 403", st)
	}

	c := newChrome(t)
	c.do(chromedp.Navigate(base + "/login"))
	c.submitForm(`form[action="/login"]`, map[string]string{"username": "root", "password": password})
	c.do(clickAndWait(`header a[href="/admin"]`))
	if !strings.Contains(c.text(), "3 accounts") {
		t.Fatalf("user list:\n%s", c.text())
	}
	c.submitForm(`form.search`, map[string]string{"search": "ALI"})
	list := c.text()
	if !strings.Contains(list, "alice@example.com") || strings.Contains(list, "bob@example.com") || !strings.Contains(list, "1 account matching") {
		t.Fatalf("search for ALI:\n%s", list)
	}
	c.screenshot("7-admin-search")
	c.do(clickAndWait(`table.users a`))

	c.do(chromedp.SetValue(chromedp.CSS(`#role-select`), "premium"), clickAndWait(`form.role-form button[type="submit"]`))
	if !strings.Contains(c.text(), "The role has been changed.") || get(c, chromedp.Text(chromedp.CSS(`#role`))) != "premium" {
		t.Fatalf("after the role change:\n%s", c.text())
	}
	if !strings.Contains(c.text(), "Role changed to premium by admin root") {
		t.Error("the change is not in alice's activity")
	}
	// A token issued before the change allows what it said then (the
	// intersection of role, session and token); the next one has the role.
	if st := premium(); st != 403 {
		t.Errorf("alice's earlier token on the premium space after the change: %d, want 403", st)
	}
	if _, alice, err = token(base, "alice", password); err != nil {
		t.Fatal(err)
	}
	if st := premium(); st != 200 {
		t.Errorf("alice on the premium space after the change: %d, want 200", st)
	}

	c.do(clickAndWait(`form[action$="/sessions/end"] button`))
	if !strings.Contains(c.text(), "The sessions have been ended.") || !strings.Contains(c.text(), "No live sessions.") {
		t.Fatalf("after ending the sessions:\n%s", c.text())
	}
	if st, _ := me(base, alice); st != 401 {
		t.Errorf("alice's token after her sessions were ended: %d, want 401", st)
	}
	c.checkPage()
	c.screenshot("8-admin-user")

	c.do(clickAndWait(`a[href="/admin/audit"]`))
	audit := c.text()
	for _, want := range []string{"Changed the role", "Ended every session", "from basic to premium", "the command line"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit page lacks %q:\n%s", want, audit)
		}
	}
	c.checkPage()
	c.screenshot("9-admin-audit")
}
