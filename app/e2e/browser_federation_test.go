package e2e

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"fiberauth/app"
)

// freePort is a loopback port nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// command runs the program's command line on a database.
func command(t *testing.T, dbPath string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	env := map[string]string{"DATABASE_PATH": dbPath, "BCRYPT_COST": "4"}
	if err := app.Run(context.Background(), args, func(k string) string { return env[k] }, &out, io.Discard, nil); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// TestBrowserSignInWithProvider: in a real browser, an admin adds another
// instance of this service as a sign-in provider on the admin page; a
// person signed in there clicks "Continue with Acme SSO" on the login
// page, comes back signed in to a new account, and finds the provider on
// the profile; then an account with a password links it from the
// profile (a form whose redirects end at the provider).
func TestBrowserSignInWithProvider(t *testing.T) {
	pPort, rPort := freePort(t), freePort(t)
	pBase, rBase := "http://127.0.0.1:"+pPort, "http://localhost:"+rPort
	pDB, rDB := filepath.Join(t.TempDir(), "p.db"), filepath.Join(t.TempDir(), "r.db")
	serveApp(t, "DATABASE_PATH="+pDB, "ADDR=127.0.0.1:"+pPort, "ISSUER="+pBase, "PUBLIC_URL="+pBase)
	serveApp(t, "DATABASE_PATH="+rDB, "ADDR=127.0.0.1:"+rPort, "PUBLIC_URL="+rBase)
	out := command(t, pDB, "clients", "create", "--name", "Team wiki", "--redirect-uri", rBase+"/login/acme/callback", "--first-party")
	id := regexp.MustCompile(`client_id: (\S+)`).FindStringSubmatch(out)
	secret := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)
	if id == nil || secret == nil {
		t.Fatalf("clients create said:\n%s", out)
	}

	c := newChrome(t)
	// The admin adds the provider on the admin page.
	c.registerUser(rBase, "owen", "owen@example.org")
	command(t, rDB, "users", "set-role", "owen", "admin")
	c.do(chromedp.Navigate(rBase+"/profile"), clickAndWait(`header form[action="/logout"] button`))
	c.do(chromedp.Navigate(rBase + "/login"))
	c.submitForm(`form[action="/login"]`, map[string]string{"username": "owen", "password": password})
	c.do(chromedp.Navigate(rBase + "/admin/providers"))
	c.submitForm(`form[action="/admin/providers"]`, map[string]string{"name": "acme", "display_name": "Acme SSO", "issuer": pBase,
		"client_id": id[1], "client_secret": secret[1]})
	if text := c.text(); !strings.Contains(text, rBase+"/login/acme/callback") || !strings.Contains(text, "Acme SSO") {
		t.Fatalf("the admin page does not list the provider with its redirect URI:\n%s", text)
	}
	c.checkPage()
	c.screenshot("fed-1-admin-providers")
	c.do(chromedp.Navigate(rBase+"/profile"), clickAndWait(`header form[action="/logout"] button`))

	// A person with an account at the provider, signed in there.
	c.registerUser(pBase, "maya", "maya@example.com")
	c.do(chromedp.Navigate(rBase + "/login"))
	c.checkPage()
	c.screenshot("fed-2-login-buttons")
	c.do(clickAndWait(`a[href="/login/acme"]`))
	if loc := c.location(); !strings.HasPrefix(loc, rBase+"/profile") {
		t.Fatalf("after Continue with Acme SSO: at %s\n%s", loc, c.text())
	}
	if h1 := get(c, chromedp.Text(chromedp.CSS("h1"))); h1 != "maya authorized" {
		t.Fatalf("heading %q", h1)
	}
	if text := c.text(); !strings.Contains(text, "Connected sign-ins") || !strings.Contains(text, "with Acme SSO") {
		t.Fatalf("the profile does not show the provider:\n%s", text)
	}
	c.checkPage()
	c.screenshot("fed-3-profile")

	// owen links it from the profile: the provider signs maya in, so
	// owen's account gets maya's identity there.
	c.do(chromedp.Navigate(rBase+"/profile"), clickAndWait(`header form[action="/logout"] button`))
	c.do(chromedp.Navigate(rBase + "/login"))
	c.submitForm(`form[action="/login"]`, map[string]string{"username": "owen", "password": password})
	c.do(chromedp.Navigate(rBase + "/profile"))
	c.do(clickAndWait(`form[action="/profile/providers/acme/link"] button`))
	// maya's identity is the maya account's already: refused, and said.
	if text := c.text(); !strings.Contains(text, "already linked to another account") {
		t.Fatalf("linking an identity another account has: at %s\n%s", c.location(), text)
	}
	c.forgive("status of 409 (Conflict) (" + rBase + "/login/acme/callback")
	c.checkPage()
}
