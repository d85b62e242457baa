package e2e

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"fiberauth/app/mail/mailtest"
)

// TestBrowserPasswordReset: a person who forgot the password asks for a
// code from the login page, opens the link in the mail a real SMTP server
// received, chooses a new password and lands on the profile, signed in.
// Then the address is verified from the profile with the code of the
// registration mail.
func TestBrowserPasswordReset(t *testing.T) {
	sink := mailtest.Start(t)
	base, _ := serveApp(t, "SMTP_URL="+sink.URL())
	if st, err := register(base, "alice", password); err != nil || st != 201 {
		t.Fatalf("register: %d %v", st, err)
	}
	welcome := sink.WaitFor(t, "alice@example.com", 1)

	c := newChrome(t)
	c.do(chromedp.Navigate(base + "/login"))
	c.do(clickAndWait(`a[href="/password/forgot"]`))
	c.screenshot("email-1-forgot")
	c.submitForm(`form[action="/password/forgot"]`, map[string]string{"login": "alice"})
	if !strings.Contains(c.text(), "If an account exists for that name, we've sent a code to its email address.") {
		t.Fatalf("after asking for a code: %s", c.text())
	}
	c.checkPage()

	m := sink.WaitFor(t, "alice@example.com", 2)
	if m.Header.Get("Subject") != "Reset your password" || m.Code() == "" {
		t.Fatalf("reset mail: %q\n%s", m.Header.Get("Subject"), m.Text)
	}
	link := m.Link()
	if !strings.HasPrefix(link, base+"/password/reset?") {
		t.Fatalf("link %q does not lead to this server (%s)", link, base)
	}
	c.do(chromedp.Navigate(link))
	if got := get(c, chromedp.Value(chromedp.CSS(`#code`))); got != m.Code() {
		t.Fatalf("the reset page shows code %q, want %q", got, m.Code())
	}
	c.screenshot("email-2-reset")
	c.submitForm(`form[action="/password/reset"]`, map[string]string{"new_password": "a brand new passphrase"})
	if loc := c.location(); !strings.HasPrefix(loc, base+"/profile") {
		t.Fatalf("after the reset: at %s: %s", loc, c.text())
	}
	text := c.text()
	if !strings.Contains(text, "alice authorized") || !strings.Contains(text, "Your password was changed.") {
		t.Fatalf("profile after the reset: %s", text)
	}
	// The reset proved the address.
	if !strings.Contains(get(c, chromedp.Text(`#email-status`)), "Verified") {
		t.Errorf("address not shown as verified after a reset by mail")
	}
	c.checkPage()
	c.screenshot("email-3-profile-after-reset")
	if notice := sink.WaitFor(t, "alice@example.com", 3); notice.Header.Get("Subject") != "Your password was changed" {
		t.Errorf("third mail: %q", notice.Header.Get("Subject"))
	}
	if welcome.Code() == "" {
		t.Error("the registration mail has no code")
	}

	// Sign out and in with the new password.
	c.do(clickAndWait(`header form[action="/logout"] button`))
	c.submitForm(`form[action="/login"]`, map[string]string{"username": "alice", "password": "a brand new passphrase"})
	if !strings.Contains(c.text(), "alice authorized") {
		t.Fatalf("sign-in with the new password: %s", c.text())
	}
}

// TestBrowserVerifyEmail: a new account's profile says the address is not
// verified; the code from the mail, typed in the profile's form, verifies
// it.
func TestBrowserVerifyEmail(t *testing.T) {
	sink := mailtest.Start(t)
	base, _ := serveApp(t, "SMTP_URL="+sink.URL())
	c := newChrome(t)
	c.registerUser(base, "bob", "bob@example.com")
	if !strings.Contains(get(c, chromedp.Text(`#email-status`)), "Not verified") {
		t.Fatal("a new address is not shown as unverified")
	}
	c.screenshot("email-4-profile-unverified")
	m := sink.WaitFor(t, "bob@example.com", 1)
	c.submitForm(`form[action="/email/verify"]`, map[string]string{"code": strings.ToLower(m.Code())})
	if !strings.Contains(c.text(), "Your email address is verified.") ||
		!strings.Contains(get(c, chromedp.Text(`#email-status`)), "Verified") {
		t.Fatalf("after verifying: %s", c.text())
	}
	c.checkPage()
	c.screenshot("email-5-profile-verified")
}
