package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"fiberauth/app/account/otptest"
	"fiberauth/app/mail/mailtest"
)

// Passkeys in a real browser: Chromium's virtual authenticator (the
// DevTools protocol's WebAuthn domain) stands in for the phone or the
// laptop's screen lock, so the page script, the browser's WebAuthn API and
// the server meet as they do for people.

// servePasskeys runs the program with passkeys on: the pages at
// http://localhost:<port> (a passkey belongs to a domain name, never an
// address; Chromium resolves localhost itself).
func servePasskeys(t *testing.T, extra ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	public := fmt.Sprintf("http://localhost:%d", port)
	serveApp(t, append([]string{fmt.Sprintf("ADDR=127.0.0.1:%d", port), "PUBLIC_URL=" + public}, extra...)...)
	return public
}

// authenticator gives the browser a virtual platform authenticator that
// keeps discoverable credentials (passkeys) and verifies the person.
func (c *chrome) authenticator() webauthn.AuthenticatorID {
	c.t.Helper()
	if _, err := chromedp.Call(c.ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		c.t.Fatalf("WebAuthn.enable: %v", err)
	}
	res, err := chromedp.Call(c.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{Protocol: "ctap2", Ctap2version: "ctap2_1", Transport: "internal",
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true}})
	if err != nil {
		c.t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	return res.AuthenticatorID
}

// noAutofill hides conditional mediation from the pages: Chromium's
// virtual authenticator answers the username field's autofill request at
// once (a person would pick the passkey from the field's list first), which
// would sign in before the test presses a button. TestBrowserPasskeyAutofill
// tests that request itself.
func (c *chrome) noAutofill() {
	c.t.Helper()
	if _, err := chromedp.Call(c.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `if (window.PublicKeyCredential) { PublicKeyCredential.isConditionalMediationAvailable = function () { return Promise.resolve(false); }; }`}); err != nil {
		c.t.Fatal(err)
	}
}

// credentials are the passkeys the virtual authenticator holds.
func (c *chrome) credentials(id webauthn.AuthenticatorID) []*webauthn.Credential {
	c.t.Helper()
	res, err := chromedp.Call(c.ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	if err != nil {
		c.t.Fatal(err)
	}
	return res.Credentials
}

// clickPasskey presses a passkey button and waits for the page it leads to.
func (c *chrome) clickPasskey(which string) {
	c.t.Helper()
	c.do(clickAndWait(`button[data-passkey="` + which + `"]`))
}

// enableTOTP turns two-factor on for an account through the API and
// returns its secret.
func enableTOTP(t *testing.T, base, name string) string {
	t.Helper()
	_, tok, err := token(base, name, password)
	if err != nil || tok == "" {
		t.Fatalf("token: %v", err)
	}
	call := func(path, body string) map[string]any {
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %d %s", path, res.StatusCode, b)
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		return m
	}
	secret := call("/users/me/mfa/totp", ``)["secret"].(string)
	code, err := otptest.Code(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	call("/users/me/mfa/totp/confirm", `{"code":"`+code+`","password":"`+password+`"}`)
	return secret
}

// TestBrowserPasskeys: add a passkey from the profile, sign out, sign in
// with "Sign in with a passkey" without typing a name, then, with
// two-factor on, use the passkey as the second step; and make an account
// with a passkey only. Screenshots of the passkey pages.
func TestBrowserPasskeys(t *testing.T) {
	base := servePasskeys(t)
	c := newChrome(t)
	c.noAutofill()
	auth := c.authenticator()
	c.registerUser(base, "alice", "alice@example.com")
	if got := get(c, chromedp.Text(`#passkeys-heading`)); got != "Passkeys" {
		t.Fatalf("no Passkeys card on the profile: %q", got)
	}
	c.do(chromedp.SendKeys(`#passkey-name`, "Laptop"))
	c.clickPasskey("add")
	if loc := c.location(); loc != base+"/profile?done=passkey_added" {
		t.Fatalf("after Add a passkey: at %s; page says %s", loc, c.text())
	}
	if creds := c.credentials(auth); len(creds) != 1 || !creds[0].IsResidentCredential || creds[0].RpID != "localhost" {
		t.Fatalf("the authenticator holds %+v", creds)
	}
	text := c.text()
	if !strings.Contains(text, "Your passkey has been added") || get(c, chromedp.Value(`.passkey input[name="name"]`)) != "Laptop" ||
		!strings.Contains(text, "never used") {
		t.Errorf("the Passkeys card after adding:\n%s", text)
	}
	c.checkPage()

	// Sign out, and back in with the passkey: no name typed.
	c.do(clickAndWait(`header form[action="/logout"] button`))
	if ac := get(c, chromedp.Evaluate[string](`document.getElementById('username').getAttribute('autocomplete')`)); ac != "username webauthn" {
		t.Errorf("username field autocomplete %q, want %q", ac, "username webauthn")
	}
	passkeyTour(t, c, base, "signed-out", map[string]string{"login": "/login", "register": "/register"})
	c.do(chromedp.Navigate(base + "/login"))
	c.clickPasskey("login")
	if loc := c.location(); loc != base+"/profile" || !strings.Contains(c.text(), "alice authorized") {
		t.Fatalf("after Sign in with a passkey: at %s\n%s", loc, c.text())
	}
	if !strings.Contains(c.text(), "with a passkey") || !strings.Contains(c.text(), "Signed in with a passkey") {
		t.Errorf("the sessions list or the activity does not say with a passkey:\n%s", c.text())
	}
	c.checkPage()

	// Two-factor on: the second step offers the passkey beside the code.
	enableTOTP(t, base, "alice")
	c.do(chromedp.Navigate(base + "/login"))
	c.submitForm(`form[action="/login"]`, map[string]string{"username": "alice", "password": password})
	if !strings.Contains(c.text(), "Two-factor sign-in") || !strings.Contains(c.text(), "Use a passkey") {
		t.Fatalf("second step without Use a passkey:\n%s", c.text())
	}
	c.checkPage()
	for _, width := range []int64{1280, 390} {
		for _, scheme := range []string{"light", "dark"} {
			c.view(width, scheme)
			c.screenshot(fmt.Sprintf("passkey-second-step-%d-%s", width, scheme))
		}
	}
	c.view(1000, "light")
	c.clickPasskey("second")
	if loc := c.location(); loc != base+"/profile" || !strings.Contains(c.text(), "with password and passkey") {
		t.Fatalf("after Use a passkey: at %s\n%s", loc, c.text())
	}
	c.checkPage()
	passkeyTour(t, c, base, "password", map[string]string{"profile": "/profile",
		"remove": get(c, chromedp.Evaluate[string](`document.querySelector('.passkey a.button').getAttribute('href')`))})

	// An account with a passkey and no password, in a browser of its own.
	d := newChrome(t)
	d.noAutofill()
	d.authenticator()
	d.do(chromedp.Navigate(base + "/register"))
	d.do(chromedp.SendKeys(`#username`, "bruno"), chromedp.SendKeys(`#email`, "bruno@example.com"))
	d.clickPasskey("signup")
	if loc := d.location(); loc != base+"/profile?done=welcome" || !strings.Contains(d.text(), "bruno authorized") {
		t.Fatalf("after Create account with a passkey: at %s\n%s", loc, d.text())
	}
	if text := d.text(); !strings.Contains(text, "Set a password") || get(d, chromedp.Value(`.passkey input[name="name"]`)) != "Passkey 1" {
		t.Errorf("the profile of an account without a password:\n%s", text)
	}
	d.checkPage()
	d.do(clickAndWait(`header form[action="/logout"] button`))
	d.clickPasskey("login")
	if !strings.Contains(d.text(), "bruno authorized") {
		t.Fatalf("bruno signs in with his passkey: %s", d.text())
	}
	// A sensitive action is confirmed with the passkey: setting a
	// password.
	d.do(chromedp.Navigate(base + "/profile/password"))
	passkeyTour(t, d, base, "passwordless", map[string]string{"profile": "/profile", "set-password": "/profile/password"})
	d.do(chromedp.Navigate(base+"/profile/password"), chromedp.SendKeys(`#new_password`, "bruno's first passphrase"),
		clickAndWait(`form[action="/profile/password"] button[type="submit"]`))
	if loc := d.location(); loc != base+"/profile?done=password_changed" {
		t.Fatalf("setting a password, confirmed with the passkey: at %s\n%s", loc, d.text())
	}
	if st, _, _ := token(base, "bruno", "bruno's first passphrase"); st != http.StatusOK {
		t.Errorf("the password set is refused: %d", st)
	}
	d.checkPage()
}

// passkeyTour saves screenshots of pages at 1280 and 390 px, light and
// dark, and checks that none overflows sideways on a phone.
func passkeyTour(t *testing.T, c *chrome, base, who string, pages map[string]string) {
	t.Helper()
	if testing.Short() {
		return
	}
	for name, path := range pages {
		for _, width := range []int64{1280, 390} {
			for _, scheme := range []string{"light", "dark"} {
				c.view(width, scheme)
				c.do(chromedp.Navigate(base + path))
				if width == 390 && get(c, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`)) {
					t.Errorf("%s overflows sideways at 390 px", path)
				}
				c.screenshot(fmt.Sprintf("passkey-%s-%s-%d-%s", who, name, width, scheme))
			}
		}
	}
	c.view(1000, "light")
	c.checkPage()
}

// TestBrowserPasskeyFallbacks: without the browser's JSON helpers
// (parseCreationOptionsFromJSON, parseRequestOptionsFromJSON, toJSON)
// the script converts base64url itself; a refused verification says so;
// a browser without WebAuthn says it cannot use passkeys.
func TestBrowserPasskeyFallbacks(t *testing.T) {
	base := servePasskeys(t)
	c := newChrome(t)
	if _, err := chromedp.Call(c.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `if (window.PublicKeyCredential) { delete PublicKeyCredential.parseCreationOptionsFromJSON;
		  delete PublicKeyCredential.parseRequestOptionsFromJSON; delete PublicKeyCredential.prototype.toJSON; }`}); err != nil {
		t.Fatal(err)
	}
	c.noAutofill()
	auth := c.authenticator()
	c.registerUser(base, "carol", "carol@example.com")
	if get(c, chromedp.Evaluate[bool](`typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function'`)) {
		t.Fatal("the browser's JSON helpers are still there")
	}
	c.clickPasskey("add")
	if loc := c.location(); loc != base+"/profile?done=passkey_added" {
		t.Fatalf("adding without the browser's JSON helpers: at %s\n%s", loc, c.text())
	}
	c.do(clickAndWait(`header form[action="/logout"] button`))
	c.clickPasskey("login")
	if !strings.Contains(c.text(), "carol authorized") {
		t.Fatalf("signing in without the browser's JSON helpers:\n%s", c.text())
	}
	c.checkPage()

	// The authenticator cannot verify the person now: the sign-in,
	// which requires it, fails in the browser, and the page says what to
	// do.
	if _, err := chromedp.Call(c.ctx, webauthn.SetUserVerified, webauthn.SetUserVerifiedParams{AuthenticatorID: auth, IsUserVerified: false}); err != nil {
		t.Fatal(err)
	}
	c.do(clickAndWait(`header form[action="/logout"] button`))
	c.do(chromedp.Click(`button[data-passkey="login"]`, chromedp.NodeVisible))
	msg := get(c, chromedp.Poll[string](`(function () { var s = document.querySelector('.passkey-alt .passkey-status.failed'); return s ? s.textContent : false; })()`,
		chromedp.WithPollingTimeout(10*time.Second)))
	if !strings.Contains(msg, "cancelled or timed out") {
		t.Errorf("the message when the passkey is not given: %q", msg)
	}
	c.screenshot("passkey-cancelled")
	c.checkPage()

	// A browser without WebAuthn.
	d := newChrome(t)
	if _, err := chromedp.Call(d.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `delete window.PublicKeyCredential;`}); err != nil {
		t.Fatal(err)
	}
	d.do(chromedp.Navigate(base + "/login"))
	msg = get(d, chromedp.Poll[string](`(function () { var s = document.querySelector('.passkey-alt .passkey-status'); return s && s.textContent ? s.textContent : false; })()`,
		chromedp.WithPollingTimeout(5*time.Second)))
	if !strings.Contains(msg, "This browser cannot use passkeys") {
		t.Errorf("without WebAuthn the login page says %q", msg)
	}
	d.screenshot("passkey-unsupported")
	d.checkPage()
}

// TestBrowserPasskeyAutofill: the username field's autofill (conditional
// mediation) offers the passkey on the login page; choosing it signs in.
// (The virtual authenticator chooses at once, as a person picking the
// passkey from the field's list would.)
func TestBrowserPasskeyAutofill(t *testing.T) {
	base := servePasskeys(t)
	c := newChrome(t)
	c.authenticator()
	c.registerUser(base, "dan", "dan@example.com")
	if !get(c, chromedp.Evaluate[bool](`PublicKeyCredential.isConditionalMediationAvailable !== undefined`)) {
		browserMissing(t, "this Chromium has no conditional mediation")
	}
	c.clickPasskey("add")
	// Signing out lands on the login page, whose autofill request signs
	// in again with no click.
	c.do(clickAndWait(`header form[action="/logout"] button`))
	var loc string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		loc = evalDuringNavigation[string](c, `document.readyState === 'complete' ? location.href : ''`)
		if loc == base+"/profile" {
			break
		}
	}
	if loc != base+"/profile" || !strings.Contains(c.text(), "dan authorized") || !strings.Contains(c.text(), "with a passkey") {
		t.Fatalf("the autofill request did not sign in: at %s\n%s", loc, c.text())
	}
	c.checkPage()
}

// TestBrowserDisownFromMail: someone registers with another person's
// address and adds a passkey; the address's owner opens the verification
// link in their own browser, is shown what was set up, and says it is not
// theirs: the squatter is signed out and their passkey no longer signs in,
// and the owner is led to set a password. Screenshot of the question.
func TestBrowserDisownFromMail(t *testing.T) {
	sink := mailtest.Start(t)
	base := servePasskeys(t, "SMTP_URL="+sink.URL())
	squatter := newChrome(t)
	squatter.noAutofill()
	squatter.authenticator()
	squatter.registerUser(base, "squatter", "owner@example.com")
	squatter.do(chromedp.SendKeys(`#passkey-name`, "Squatter's phone"))
	squatter.clickPasskey("add")
	if loc := squatter.location(); loc != base+"/profile?done=passkey_added" {
		t.Fatalf("after Add a passkey: at %s; page says %s", loc, squatter.text())
	}

	link := sink.WaitFor(t, "owner@example.com", 1).Link()
	if !strings.HasPrefix(link, base+"/email/verify?") {
		t.Fatalf("the verification mail's link: %q", link)
	}
	owner := newChrome(t)
	owner.do(chromedp.Navigate(link))
	owner.do(clickAndWait(`form[action="/email/verify"] button[type="submit"]`))
	text := owner.text()
	for _, says := range []string{"Did you set them up?", "a password", "a passkey named “Squatter's phone”"} {
		if !strings.Contains(text, says) {
			t.Fatalf("the question does not say %q:\n%s", says, text)
		}
	}
	owner.checkPage()
	owner.screenshot("email-6-unproven-question")
	owner.do(clickAndWait(`button[name="keep"][value="not-mine"]`))
	if loc := owner.location(); !strings.HasPrefix(loc, base+"/password/forgot?") ||
		!strings.Contains(owner.text(), "it has no password now") || get(owner, chromedp.Value(`#login`)) != "squatter" {
		t.Fatalf("after disowning: at %s\n%s", loc, owner.text())
	}
	owner.checkPage()

	// The squatter's session ended, and the passkey signs in no more.
	squatter.do(chromedp.Navigate(base + "/profile"))
	if loc := squatter.location(); !strings.HasPrefix(loc, base+"/login") {
		t.Fatalf("the squatter's session lives on: at %s", loc)
	}
	squatter.do(chromedp.Click(`button[data-passkey="login"]`, chromedp.NodeVisible))
	msg := get(squatter, chromedp.Poll[string](`(function () { var s = document.querySelector('.passkey-alt .passkey-status.failed'); return s ? s.textContent : false; })()`,
		chromedp.WithPollingTimeout(10*time.Second)))
	if !strings.Contains(msg, "Passkey not accepted") {
		t.Errorf("the refusal of the disowned passkey says %q", msg)
	}
	if loc := squatter.location(); !strings.HasPrefix(loc, base+"/login") {
		t.Fatalf("the disowned passkey signed in: at %s", loc)
	}
}
