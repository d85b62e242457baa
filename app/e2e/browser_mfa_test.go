package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"fiberauth/app/account/otptest"
)

// TestBrowserTwoFactor: set up an authenticator from the profile by
// reading the secret from the page, save the recovery codes, sign out, and
// sign in with the password and a code.
func TestBrowserTwoFactor(t *testing.T) {
	base, _ := serveApp(t)
	c := newChrome(t)
	c.registerUser(base, "carol", "carol@example.com")
	c.do(clickAndWait(`form[action="/profile/mfa/setup"] button`))
	if loc := c.location(); loc != base+"/profile/mfa" {
		t.Fatalf("after Set up: at %s", loc)
	}
	if n := get(c, chromedp.Evaluate[int](`document.querySelectorAll('svg.qr path').length`)); n != 1 {
		t.Fatalf("no QR code on the set-up page")
	}
	c.checkPage()
	c.screenshot("mfa-1-setup")
	secret := strings.ReplaceAll(get(c, chromedp.Text(`#secret`)), " ", "")
	code, err := otptest.Code(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c.submitForm(`form[action="/profile/mfa/confirm"]`, map[string]string{"code": code, "password": password})
	if n := get(c, chromedp.Evaluate[int](`document.querySelectorAll('#recovery-codes li').length`)); n != 10 {
		t.Fatalf("%d recovery codes shown: %s", n, c.text())
	}
	if href := get(c, chromedp.Evaluate[string](`document.querySelector('a[download]').href`)); !strings.HasPrefix(href, "data:text/plain") {
		t.Fatalf("download link %q", href)
	}
	c.screenshot("mfa-2-recovery-codes")
	c.do(chromedp.Click(`#saved`, chromedp.NodeVisible), clickAndWait(`form[action="/profile"] button`))
	if got := get(c, chromedp.Text(`#mfa-status`)); got != "On" {
		t.Fatalf("two-factor status %q", got)
	}
	c.checkPage()

	c.do(clickAndWait(`header form[action="/logout"] button`))
	c.submitForm(`form[action="/login"]`, map[string]string{"username": "carol", "password": password})
	if !strings.Contains(c.text(), "Two-factor sign-in") {
		t.Fatalf("no second step: %s", c.text())
	}
	cookies := get(c, chromedp.Evaluate[string](`document.cookie`))
	if strings.Contains(cookies, "mfa_pending") || strings.Contains(cookies, "access_token") {
		t.Fatalf("cookies readable by scripts: %q", cookies)
	}
	c.screenshot("mfa-3-second-step")
	// The confirming code's step is spent; the next step's code is
	// accepted already (one step either side).
	next, err := otptest.Code(secret, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	c.submitForm(`form[action="/login/mfa"]`, map[string]string{"code": next})
	if !strings.Contains(c.text(), "carol authorized") || !strings.Contains(c.text(), "with password and authenticator code") {
		t.Fatalf("after the code: %s", c.text())
	}
	c.checkPage()
	c.screenshot("mfa-4-profile")
}
