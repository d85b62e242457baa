package app

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/gofiber/fiber/v2"

	"fiberauth/app/account"
	"fiberauth/app/password"
	"fiberauth/app/valid"
	"fiberauth/db"
)

// The pages' handlers: each reads its form, calls the account core and
// renders a page or redirects. Errors a person can act on are shown in the
// form (pageError words them); others go to the error handler.

// Confirmations shown after a redirect, chosen by a fixed query value so
// that no text from the URL is ever displayed.
var notices = map[string]string{
	"signed_out":         "You have been logged out.",
	"app_revoked":        "The application's access has been revoked; it has been signed out.",
	"password_changed":   "Your password has been changed. Every other session has been signed out.",
	"session_ended":      "The session has been ended.",
	"others_ended":       "Every other session has been signed out.",
	"account_deleted":    "Your account has been deleted.",
	"password_reset":     "Your password was changed.",
	"email_verified":     "Your email address is verified.",
	"email_disowned":     "Your email address is verified, and what was set up on the account without you is gone: it has no password now. Ask for a code below to set one.",
	"mfa_expired":        "Your sign-in took too long. Please enter your password again.",
	"mfa_off":            "Two-factor sign-in is off.",
	"password_reset_mfa": "Your password was changed. Sign in with it and a code from your authenticator app.",
	"code_sent":          "We sent a new code to your email address. It is valid for 15 minutes.",
	"email_code_sent":    "We sent a code to the new address. Enter it below to finish the change; until then your address stays as it is.",
	"welcome":            "Welcome! Your account is ready. We sent a code to your email address to confirm it.",
	"expired":            "Your session expired. Please sign in again.",
	"verify_sent":        "Your account is created. We sent a code to your email address: enter it here to finish.",
	"passkey_added":      "Your passkey has been added. You can sign in with it, without typing your name.",
	"passkey_renamed":    "The passkey has been renamed.",
	"passkey_removed":    "The passkey has been removed. Every other session has been signed out.",
	"provider_linked":    "The sign-in provider has been linked: you can sign in with it.",
	"provider_unlinked":  "The sign-in provider has been unlinked. Every other session has been signed out.",
}

func notice(c *fiber.Ctx) string { return notices[c.Query("done")] }

// msgUnverifiedPage refuses a right sign-in to an account whose address
// must be verified first.
const msgUnverifiedPage = "Your email address is not verified yet. Enter the code we sent to it, or ask for a new one."

// pageIndex is GET /.
func (s *Server) pageIndex(c *fiber.Ctx) error {
	if s.signedIn(c) != nil {
		return c.Redirect("/profile", fiber.StatusSeeOther)
	}
	return c.Redirect("/login", fiber.StatusSeeOther)
}

// loginFields are the login form's fields. With passkeys on, the
// username field offers the browser's saved passkeys too (conditional
// mediation: autocomplete "username webauthn").
func (s *Server) loginFields(username, userErr string) []fieldView {
	auto := "username"
	if s.acct.PasskeysOn() {
		auto = "username webauthn"
	}
	return []fieldView{
		{Name: "username", Label: "Username or email", Type: "text", Autocomplete: auto, Value: username,
			Error: userErr, Required: true, Autofocus: username == "", MaxLength: valid.EmailMax},
		{Name: "password", Label: "Password", Type: "password", Autocomplete: "current-password", Required: true,
			Autofocus: username != ""},
	}
}

// pageLogin is GET /login. With force=1 (an application asked for a new
// sign-in) the form is shown to a signed-in browser too; login_hint fills
// in the name.
func (s *Server) pageLogin(c *fiber.Ctx) error {
	next := safeNext(c.Query("next"))
	if c.Query("force") != "1" && s.signedIn(c) != nil {
		if next == "" {
			next = "/profile"
		}
		return c.Redirect(next, fiber.StatusSeeOther)
	}
	hint := c.Query("login_hint")
	if valid.Text(hint) != "" || len(hint) > valid.EmailMax {
		hint = ""
	}
	return s.render(c, http.StatusOK, "login", page{Title: "Log in", Next: next, Notice: notice(c),
		Fields: s.loginFields(hint, "")})
}

// submitLogin is POST /login.
func (s *Server) submitLogin(c *fiber.Ctx) error {
	f := pageForm(c)
	username, pw := f.get("username"), f.get("password")
	// The page to go to afterwards comes from the form's hidden field,
	// which the login page copied from its own ?next=.
	next := safeNext(f.get("next"))
	p := page{Title: "Log in", Next: next}
	shown := username
	if valid.Text(shown) != "" {
		shown = ""
	}
	fail := func(status int, msg string) error {
		p.Error = msg
		p.Fields = s.loginFields(shown, "")
		return s.render(c, status, "login", p)
	}
	switch {
	case valid.Text(username) != "" || valid.Text(pw) != "":
		return fail(http.StatusUnprocessableEntity, "The username or password contains characters that are not allowed.")
	case username == "" || pw == "":
		p.Error = "Enter your username or email and your password."
		p.Fields = s.loginFields(shown, "")
		if username == "" {
			p.Fields[0].Error = "Enter your username or email."
		} else {
			p.Fields[1].Error = "Enter your password."
		}
		return s.render(c, http.StatusUnprocessableEntity, "login", p)
	}
	g, err := s.acct.SignIn(c.UserContext(), s.client(c, true), username, pw, "", "")
	if err != nil {
		if account.ErrorCode(err) == account.EMFARequired {
			// The password was right: the second step, in this
			// browser only, with no session yet.
			if err := s.setPending(c, g.User, ""); err != nil {
				return err
			}
			return s.secondStep(c, http.StatusOK, next, false, "")
		}
		if account.ErrorCode(err) == account.EUnverified {
			// The password was right: say what is missing and offer the
			// way on.
			p.Unverified, p.Login = true, shown
			return fail(http.StatusForbidden, msgUnverifiedPage)
		}
		var e *account.Error
		if errors.As(err, &e) && e.Code == account.EUnauthorized && e.Failures >= 3 && e.Failures < e.Limit {
			left := e.Limit - e.Failures
			p.Warning = fmt.Sprintf("%d failed attempts. After %d more, sign-in to this account from this device pauses for a while.",
				e.Failures, left)
		}
		if status, msg, _, ok := pageError(c, err); ok {
			return fail(status, msg)
		}
		return err
	}
	if err := s.setSession(c, g); err != nil {
		return err
	}
	if next == "" {
		next = "/profile"
	}
	return c.Redirect(next, fiber.StatusSeeOther)
}

func registerFields(username, email string, errs map[string]string) []fieldView {
	return []fieldView{
		{Name: "username", Label: "Username", Type: "text", Autocomplete: "username", Value: username,
			Error: errs["username"], Hint: "3 to 32 letters, digits, '.', '_' or '-'.", Required: true,
			Autofocus: true, MaxLength: 32},
		{Name: "email", Label: "Email", Type: "email", Autocomplete: "email", Value: email, Error: errs["email"],
			Required: true, MaxLength: valid.EmailMax},
		{Name: "password", Label: "Password", Type: "password", Autocomplete: "new-password", Error: errs["password"],
			Hint: newPasswordHint, Required: true},
	}
}

// pageRegister is GET /register.
func (s *Server) pageRegister(c *fiber.Ctx) error {
	if s.signedIn(c) != nil {
		return c.Redirect("/profile", fiber.StatusSeeOther)
	}
	return s.render(c, http.StatusOK, "register", page{Title: "Register", Next: safeNext(c.Query("next")), Fields: registerFields("", "", nil)})
}

// submitRegister is POST /register: create the account and sign in at once.
func (s *Server) submitRegister(c *fiber.Ctx) error {
	f := pageForm(c)
	username, email, pw := f.get("username"), f.get("email"), f.get("password")
	r, err := s.acct.Register(c.UserContext(), s.client(c, true),
		account.Registration{Username: username, Email: email, Password: pw, SignIn: true})
	if err != nil {
		status, msg, fields, ok := pageError(c, err)
		if !ok {
			return err
		}
		// Keep what was typed, except text that may not be shown.
		if valid.Text(username) != "" {
			username = ""
		}
		if valid.Text(email) != "" {
			email = ""
		}
		return s.render(c, status, "register", page{Title: "Register", Error: msg, Next: safeNext(f.get("next")),
			Fields: registerFields(username, email, fields)})
	}
	if r.Grant == nil {
		// Verified addresses are required: the code comes first.
		return c.Redirect("/email/verify?done=verify_sent&login="+url.QueryEscape(r.User.Username), fiber.StatusSeeOther)
	}
	if err := s.setSession(c, *r.Grant); err != nil {
		return err
	}
	if next := safeNext(f.get("next")); next != "" {
		// Registered on the way to an application.
		return c.Redirect(next, fiber.StatusSeeOther)
	}
	return c.Redirect("/profile?done=welcome", fiber.StatusSeeOther)
}

// submitLogout is POST /logout: end this session and clear the cookie.
// From the confirmation of an application's logout request, the browser
// then goes to that application's registered post-logout URI.
func (s *Server) submitLogout(c *fiber.Ctx) error {
	f := pageForm(c)
	q := url.Values{}
	for _, k := range []string{"client_id", "post_logout_redirect_uri", "state"} {
		if v := f.get(k); v != "" {
			q.Set(k, v)
		}
	}
	es, _ := s.oidc.ParseEndSession(c.UserContext(), q)
	if p := s.signedIn(c); p != nil {
		if err := s.acct.SignOut(c.UserContext(), s.client(c, true), p); err != nil {
			return err
		}
		s.oidc.WakeLogouts()
	}
	if err := s.endSession(c); err != nil {
		return err
	}
	forgetPages(c)
	return s.afterLogout(c, es)
}

// forgetPages asks the browser to drop its cached copies of this site's
// pages, including the back/forward cache, so that the back button cannot
// show account pages after signing out.
func forgetPages(c *fiber.Ctx) {
	c.Set("Clear-Site-Data", `"cache"`)
}

// pageProfile is GET /profile.
func (s *Server) pageProfile(c *fiber.Ctx) error {
	return s.profile(c, http.StatusOK, notice(c), "")
}

// profile renders the profile page with a notice or an error.
func (s *Server) profile(c *fiber.Ctx, status int, note, errMsg string) error {
	p := currentUser(c)
	pending, err := s.acct.PendingEmail(c.UserContext(), p)
	if err != nil {
		return err
	}
	left := 0
	if p.User.MFAEnabled {
		if left, err = s.acct.RecoveryCodesLeft(c.UserContext(), p); err != nil {
			return err
		}
	}
	list, err := s.acct.Sessions(c.UserContext(), p)
	if err != nil {
		return err
	}
	// This device first, then the others, newest first.
	views := s.sessionViews(c.UserContext(), list, p.Session.ID)
	events, err := s.acct.Events(c.UserContext(), p, 20)
	if err != nil {
		return err
	}
	apps, err := s.oidc.ConnectedApps(c.UserContext(), p)
	if err != nil {
		return err
	}
	passkeys, err := s.acct.Passkeys(c.UserContext(), p)
	if err != nil {
		return err
	}
	identities, err := s.acct.Identities(c.UserContext(), p.User.ID)
	if err != nil {
		return err
	}
	rows := signIns(s.providerButtons(c), identities)
	// A "Link" form's submission ends, through its redirects, at the
	// provider's authorization endpoint: the page's form-action allows it.
	var unlinked []db.Provider
	for _, r := range rows {
		if r.Linked == nil {
			unlinked = append(unlinked, r.Provider)
		}
	}
	return s.render(c, status, "profile", page{Title: p.User.Username, Notice: note, Error: errMsg,
		Sessions: views, Events: events, PendingEmail: pending, RecoveryLeft: left, Apps: apps, PasskeyList: passkeys,
		SignIns: rows, FormTargets: s.fed.AuthorizeEndpoints(c.UserContext(), unlinked)})
}

// submitEndSession is POST /profile/sessions/{id}/end.
func (s *Server) submitEndSession(c *fiber.Ctx) error {
	p := currentUser(c)
	id := c.Params("id")
	if err := s.acct.EndSession(c.UserContext(), s.client(c, true), p, id); err != nil {
		if status, msg, _, ok := pageError(c, err); ok {
			return errDetail(status, msg)
		}
		return err
	}
	if id == p.Session.ID {
		if err := s.endSession(c); err != nil {
			return err
		}
		forgetPages(c)
		return c.Redirect("/login?done=signed_out", fiber.StatusSeeOther)
	}
	return c.Redirect("/profile?done=session_ended", fiber.StatusSeeOther)
}

// submitEndOtherSessions is POST /profile/sessions/others/end.
func (s *Server) submitEndOtherSessions(c *fiber.Ctx) error {
	if _, err := s.acct.EndOtherSessions(c.UserContext(), s.client(c, true), currentUser(c)); err != nil {
		return err
	}
	return c.Redirect("/profile?done=others_ended", fiber.StatusSeeOther)
}

func passwordFields(errs map[string]string, mfa, passwordless bool) []fieldView {
	if passwordless {
		// A first password, confirmed with a passkey.
		return []fieldView{{Name: "new_password", Label: "New password", Type: "password", Autocomplete: "new-password",
			Error: errs["new_password"], Hint: newPasswordHint, Required: true, Autofocus: true}}
	}
	return withCode([]fieldView{
		{Name: "current_password", Label: "Current password", Type: "password", Autocomplete: "current-password",
			Error: errs["current_password"], Required: true, Autofocus: true},
		{Name: "new_password", Label: "New password", Type: "password", Autocomplete: "new-password",
			Error: errs["new_password"], Hint: newPasswordHint, Required: true},
	}, errs, mfa)
}

// withCode adds the authenticator code field that sensitive actions need
// when two-factor is on.
func withCode(fields []fieldView, errs map[string]string, mfa bool) []fieldView {
	if !mfa {
		return fields
	}
	return append(fields, fieldView{Name: "code", Label: "Code from your authenticator app", Type: "text",
		Autocomplete: "one-time-code", Error: errs["code"], Hint: "6 digits, or a recovery code.", Required: true, MaxLength: 40})
}

// passwordTitle is the password page's title: setting one, for an
// account without a password.
func passwordTitle(u db.User) string {
	if u.Passwordless {
		return "Set a password"
	}
	return "Change password"
}

// pagePassword is GET /profile/password.
func (s *Server) pagePassword(c *fiber.Ctx) error {
	u := currentUser(c).User
	return s.render(c, http.StatusOK, "password", page{Title: passwordTitle(u), Fields: passwordFields(nil, u.MFAEnabled, u.Passwordless)})
}

// submitPassword is POST /profile/password.
func (s *Server) submitPassword(c *fiber.Ctx) error {
	f := pageForm(c)
	current, next, code := f.get("current_password"), f.get("new_password"), f.get("code")
	u := currentUser(c).User
	fail := func(status int, msg string, errs map[string]string) error {
		return s.render(c, status, "password", page{Title: passwordTitle(u), Error: msg, Fields: passwordFields(errs, u.MFAEnabled, u.Passwordless)})
	}
	if current == "" && !u.Passwordless {
		msg := "Enter your current password."
		return fail(http.StatusUnprocessableEntity, msg, map[string]string{"current_password": msg})
	}
	err := s.acct.ChangePassword(c.UserContext(), s.client(c, true), currentUser(c), s.proof(c, current, code, []byte(f.get("passkey"))), next)
	if err != nil {
		status, msg, fields, ok := pageError(c, err)
		if !ok {
			return err
		}
		if c := account.ErrorCode(err); c == account.EMFARequired || c == account.EBadOTP {
			fields["code"] = msg
		} else if len(fields) == 0 {
			fields = map[string]string{"current_password": msg}
		} else if m := fields["new_password"]; m != "" {
			msg = m
		}
		return fail(status, msg, fields)
	}
	return c.Redirect("/profile?done=password_changed", fiber.StatusSeeOther)
}

func deleteFields(errs map[string]string, mfa, passwordless bool) []fieldView {
	if passwordless {
		return nil // confirmed with a passkey
	}
	return withCode([]fieldView{{Name: "password", Label: "Password", Type: "password", Autocomplete: "current-password",
		Error: errs["password"], Required: true, Autofocus: true}}, errs, mfa)
}

// pageDelete is GET /profile/delete.
func (s *Server) pageDelete(c *fiber.Ctx) error {
	u := currentUser(c).User
	return s.render(c, http.StatusOK, "delete", page{Title: "Delete account", Fields: deleteFields(nil, u.MFAEnabled, u.Passwordless)})
}

// submitDelete is POST /profile/delete.
func (s *Server) submitDelete(c *fiber.Ctx) error {
	f := pageForm(c)
	pw, code := f.get("password"), f.get("code")
	u := currentUser(c).User
	mfa, passwordless := u.MFAEnabled, u.Passwordless
	if pw == "" && !passwordless {
		msg := "Enter your password to confirm."
		return s.render(c, http.StatusUnprocessableEntity, "delete", page{Title: "Delete account",
			Error: msg, Fields: deleteFields(map[string]string{"password": msg}, mfa, passwordless)})
	}
	err := s.acct.DeleteAccount(c.UserContext(), s.client(c, true), currentUser(c), s.proof(c, pw, code, []byte(f.get("passkey"))))
	if err != nil {
		status, msg, fields, ok := pageError(c, err)
		if !ok {
			return err
		}
		if c := account.ErrorCode(err); c == account.EMFARequired || c == account.EBadOTP {
			fields["code"] = msg
		} else {
			fields["password"] = msg
		}
		return s.render(c, status, "delete", page{Title: "Delete account", Error: msg, Fields: deleteFields(fields, mfa, passwordless)})
	}
	if err := s.endSession(c); err != nil {
		return err
	}
	forgetPages(c)
	return c.Redirect("/login?done=account_deleted", fiber.StatusSeeOther)
}

// docs is GET /docs, the interactive API documentation (Swagger UI,
// vendored under static/vendor). It runs under the same Content-Security-
// Policy as every other page: the UI is started from static/js/docs.js, not
// from an inline script, and needs no inline styles.
func (s *Server) docs(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Render("docs", page{Title: "API docs"})
}

// commonPasswords is GET /common-passwords.txt: the list new passwords are
// checked against, for the live hint under new-password fields. It is
// public data (the zxcvbn-ts common list), cached for a day.
func (s *Server) commonPasswords(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "public, max-age=86400")
	c.Type("txt", "utf-8")
	return c.SendString(password.CommonList())
}
