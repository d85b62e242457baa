package app

import (
	"net/http"
	"net/url"

	"github.com/gofiber/fiber/v2"

	"fiberauth/app/account"
	"fiberauth/app/valid"
)

// The email flows on both surfaces: forgotten passwords, verification of
// the address, and changing it. Pages opened from a link in a mail only
// show a form with the code filled in; nothing changes until it is sent.

// Words the pages use.
const (
	pageForgotSent = "If an account exists for that name, we've sent a code to its email address."
	pageResendSent = "If that account's address is not verified yet, we've sent a new code to it."
)

// --- JSON API ---

// apiForgot is POST /password/forgot with a JSON body.
func (s *Server) apiForgot(c *fiber.Ctx) error {
	var req struct {
		Login *string `json:"login"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var problems []fieldError
	login := required(&problems, "login", req.Login)
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	if err := s.acct.Forgot(c.UserContext(), s.client(c, false), login); err != nil {
		return err
	}
	return c.Status(http.StatusAccepted).JSON(fiber.Map{"detail": account.MsgForgotSent})
}

// apiReset is POST /password/reset with a JSON body.
func (s *Server) apiReset(c *fiber.Ctx) error {
	var req struct {
		Login       *string `json:"login"`
		Code        *string `json:"code"`
		NewPassword *string `json:"new_password"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var problems []fieldError
	login := required(&problems, "login", req.Login)
	code := required(&problems, "code", req.Code)
	pw := required(&problems, "new_password", req.NewPassword)
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	if _, err := s.acct.Reset(c.UserContext(), s.client(c, false), login, code, pw, false); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// apiVerifyEmail is POST /users/me/email/verify.
func (s *Server) apiVerifyEmail(c *fiber.Ctx) error {
	code, err := readCode(c)
	if err != nil {
		return err
	}
	if err := s.acct.VerifyEmail(c.UserContext(), s.client(c, false), currentUser(c), code); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// readCode reads a JSON body {"code": "..."}.
func readCode(c *fiber.Ctx) (string, error) {
	var req struct {
		Code *string `json:"code"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return "", err
	}
	var problems []fieldError
	code := required(&problems, "code", req.Code)
	if len(problems) > 0 {
		return "", errValidation(problems...)
	}
	return code, nil
}

// apiResendVerification is POST /users/me/email/verify/resend.
func (s *Server) apiResendVerification(c *fiber.Ctx) error {
	to, err := s.acct.ResendVerification(c.UserContext(), s.client(c, false), currentUser(c))
	if err != nil {
		return err
	}
	return c.Status(http.StatusAccepted).JSON(fiber.Map{"detail": "A new code has been sent to " + to + "."})
}

// apiChangeEmail is POST /users/me/email.
func (s *Server) apiChangeEmail(c *fiber.Ctx) error {
	var req struct {
		NewEmail *string `json:"new_email"`
		stepUpRequest
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var problems []fieldError
	email := required(&problems, "new_email", req.NewEmail)
	proof := s.stepUpProof(c, req.stepUpRequest, &problems)
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	to, err := s.acct.ChangeEmail(c.UserContext(), s.client(c, false), currentUser(c), email, proof)
	if err != nil {
		return err
	}
	return c.Status(http.StatusAccepted).JSON(fiber.Map{
		"detail": "A code has been sent to " + to + ". The address changes once the code is sent to /users/me/email/verify."})
}

// --- Pages ---

func forgotFields(login, errMsg string) []fieldView {
	return []fieldView{{Name: "login", Label: "Username or email", Type: "text", Autocomplete: "username", Value: login,
		Error: errMsg, Required: true, Autofocus: true, MaxLength: valid.EmailMax}}
}

// pageForgot is GET /password/forgot.
func (s *Server) pageForgot(c *fiber.Ctx) error {
	return s.render(c, http.StatusOK, "forgot", page{Title: "Forgot your password?", Notice: notice(c),
		Fields: forgotFields(shown(c.Query("login")), "")})
}

// submitForgot is POST /password/forgot from the page: it answers with the
// reset form, the same whether or not the account exists.
func (s *Server) submitForgot(c *fiber.Ctx) error {
	login := pageForm(c).get("login")
	err := s.acct.Forgot(c.UserContext(), s.client(c, true), login)
	if err != nil {
		status, msg, fields, ok := pageError(c, err)
		if !ok {
			return err
		}
		if fields["login"] != "" {
			msg = fields["login"]
		}
		return s.render(c, status, "forgot", page{Title: "Forgot your password?", Error: msg,
			Fields: forgotFields(shown(login), msg)})
	}
	return s.render(c, http.StatusOK, "reset", page{Title: "Reset your password", Notice: pageForgotSent,
		Fields: resetFields(shown(login), "", nil)})
}

// shown is a typed value fit to show again in a form, or "".
func shown(v string) string {
	if valid.Text(v) != "" {
		return ""
	}
	return v
}

func resetFields(login, code string, errs map[string]string) []fieldView {
	return []fieldView{
		{Name: "login", Label: "Username or email", Type: "text", Autocomplete: "username", Value: login,
			Error: errs["login"], Required: true, Autofocus: login == "", MaxLength: valid.EmailMax},
		{Name: "code", Label: "Code from the email", Type: "text", Autocomplete: "one-time-code", Value: code,
			Error: errs["code"], Hint: "8 letters and digits, such as 7K3M-9QXD.", Required: true,
			Autofocus: login != "" && code == "", MaxLength: 32},
		{Name: "new_password", Label: "New password", Type: "password", Autocomplete: "new-password",
			Error: errs["new_password"], Hint: newPasswordHint,
			Required: true, Autofocus: login != "" && code != ""},
	}
}

// pageReset is GET /password/reset, the page the link in a reset mail
// opens: the form, with the login and code from the link filled in.
func (s *Server) pageReset(c *fiber.Ctx) error {
	return s.render(c, http.StatusOK, "reset", page{Title: "Reset your password",
		Fields: resetFields(shown(c.Query("login")), shown(c.Query("code")), nil)})
}

// submitReset is POST /password/reset from the page: on success the person
// is signed in and sees the profile.
func (s *Server) submitReset(c *fiber.Ctx) error {
	f := pageForm(c)
	login, code, pw := f.get("login"), f.get("code"), f.get("new_password")
	g, err := s.acct.Reset(c.UserContext(), s.client(c, true), login, code, pw, true)
	if err != nil {
		status, msg, fields, ok := pageError(c, err)
		if !ok {
			return err
		}
		switch account.ErrorCode(err) {
		case account.EBadCode:
			fields["code"] = msg
		case account.EInvalid:
			msg = fields["new_password"]
		}
		return s.render(c, status, "reset", page{Title: "Reset your password", Error: msg,
			Fields: resetFields(shown(login), shown(code), fields)})
	}
	if g == nil {
		// Two-factor is on: sign in with the new password and a code.
		return c.Redirect("/login?done=password_reset_mfa", fiber.StatusSeeOther)
	}
	if err := s.setSession(c, *g); err != nil {
		return err
	}
	return c.Redirect("/profile?done=password_reset", fiber.StatusSeeOther)
}

func verifyFields(login, code, errMsg string, signedIn bool) []fieldView {
	fields := []fieldView{}
	if !signedIn {
		fields = append(fields, fieldView{Name: "login", Label: "Username or email", Type: "text", Autocomplete: "username",
			Value: login, Required: true, Autofocus: login == "", MaxLength: valid.EmailMax})
	}
	return append(fields, fieldView{Name: "code", Label: "Code from the email", Type: "text", Autocomplete: "one-time-code",
		Value: code, Error: errMsg, Hint: "8 letters and digits, such as 7K3M-9QXD.", Required: true,
		Autofocus: signedIn || login != "", MaxLength: 32})
}

// pageVerifyEmail is GET /email/verify, the page the link in a
// verification mail opens: the code filled in and a button.
func (s *Server) pageVerifyEmail(c *fiber.Ctx) error {
	signedIn := s.signedIn(c) != nil
	return s.render(c, http.StatusOK, "verify", page{Title: "Verify your email address", Notice: notice(c),
		Login: shown(c.Query("login")), Fields: verifyFields(shown(c.Query("login")), shown(c.Query("code")), "", signedIn)})
}

// submitVerifyEmail is POST /email/verify: for the signed-in account, or
// for the one the form's login names.
func (s *Server) submitVerifyEmail(c *fiber.Ctx) error {
	f := pageForm(c)
	login, code := f.get("login"), f.get("code")
	p := s.signedIn(c)
	var err error
	var done account.Verified
	answer := map[string]account.Ownership{"mine": account.Mine, "not-mine": account.NotMine}[f.get("keep")]
	if p != nil {
		err = s.acct.VerifyEmail(c.UserContext(), s.client(c, true), p, code)
	} else {
		done, err = s.acct.VerifyEmailByLogin(c.UserContext(), s.client(c, true), login, code, answer, f.get("unproven"))
	}
	if done.Ask != nil {
		// The code is right: its owner says whether what the account had
		// before is theirs.
		return s.render(c, http.StatusOK, "verify", page{Title: "Verify your email address", Login: shown(login), Code: code,
			Unproven: done.Ask})
	}
	if err != nil {
		status, msg, _, ok := pageError(c, err)
		if !ok {
			return err
		}
		if p != nil {
			c.Locals(principalKey, p)
		}
		return s.render(c, status, "verify", page{Title: "Verify your email address", Error: msg, Login: shown(login),
			Fields: verifyFields(shown(login), shown(code), msg, p != nil)})
	}
	if p != nil {
		return c.Redirect("/profile?done=email_verified", fiber.StatusSeeOther)
	}
	if done.Disowned {
		return c.Redirect("/password/forgot?"+url.Values{"done": {"email_disowned"}, "login": {login}}.Encode(), fiber.StatusSeeOther)
	}
	return c.Redirect("/login?done=email_verified", fiber.StatusSeeOther)
}

// submitResendByLogin is POST /email/verify/resend, from the login page
// when verified addresses are required: the same answer whether or not
// the account exists.
func (s *Server) submitResendByLogin(c *fiber.Ctx) error {
	login := pageForm(c).get("login")
	if err := s.acct.ResendByLogin(c.UserContext(), s.client(c, true), login); err != nil {
		status, msg, _, ok := pageError(c, err)
		if !ok {
			return err
		}
		return s.render(c, status, "verify", page{Title: "Verify your email address", Error: msg, Login: shown(login),
			Fields: verifyFields(shown(login), "", "", false)})
	}
	return s.render(c, http.StatusOK, "verify", page{Title: "Verify your email address", Notice: pageResendSent,
		Login: shown(login), Fields: verifyFields(shown(login), "", "", false)})
}

// submitResendVerification is POST /profile/email/resend.
func (s *Server) submitResendVerification(c *fiber.Ctx) error {
	to, err := s.acct.ResendVerification(c.UserContext(), s.client(c, true), currentUser(c))
	if err != nil {
		status, msg, _, ok := pageError(c, err)
		if !ok {
			return err
		}
		return s.profile(c, status, "", msg)
	}
	return c.Redirect("/profile?done=code_sent&to="+url.QueryEscape(to), fiber.StatusSeeOther)
}

func changeEmailFields(email string, errs map[string]string, mfa, passwordless bool) []fieldView {
	if passwordless {
		// Confirmed with a passkey.
		return []fieldView{{Name: "new_email", Label: "New email address", Type: "email", Autocomplete: "email", Value: email,
			Error: errs["new_email"], Required: true, Autofocus: true, MaxLength: valid.EmailMax}}
	}
	return withCode([]fieldView{
		{Name: "new_email", Label: "New email address", Type: "email", Autocomplete: "email", Value: email,
			Error: errs["new_email"], Required: true, Autofocus: true, MaxLength: valid.EmailMax},
		{Name: "password", Label: "Password", Type: "password", Autocomplete: "current-password",
			Error: errs["password"], Required: true},
	}, errs, mfa)
}

// pageChangeEmail is GET /profile/email.
func (s *Server) pageChangeEmail(c *fiber.Ctx) error {
	return s.render(c, http.StatusOK, "email", page{Title: "Change email address",
		Fields: changeEmailFields("", nil, currentUser(c).User.MFAEnabled, currentUser(c).User.Passwordless)})
}

// submitChangeEmail is POST /profile/email.
func (s *Server) submitChangeEmail(c *fiber.Ctx) error {
	f := pageForm(c)
	email, pw, code := f.get("new_email"), f.get("password"), f.get("code")
	mfa, passwordless := currentUser(c).User.MFAEnabled, currentUser(c).User.Passwordless
	if pw == "" && !passwordless {
		msg := "Enter your password to confirm."
		return s.render(c, http.StatusUnprocessableEntity, "email", page{Title: "Change email address", Error: msg,
			Fields: changeEmailFields(shown(email), map[string]string{"password": msg}, mfa, passwordless)})
	}
	_, err := s.acct.ChangeEmail(c.UserContext(), s.client(c, true), currentUser(c), email, s.proof(c, pw, code, []byte(f.get("passkey"))))
	if err != nil {
		status, msg, fields, ok := pageError(c, err)
		if !ok {
			return err
		}
		switch account.ErrorCode(err) {
		case account.EForbidden:
			fields["password"] = msg
		case account.EMFARequired, account.EBadOTP:
			fields["code"] = msg
		case account.EInvalid:
			if m := fields["new_email"]; m != "" {
				msg = m
			}
		}
		return s.render(c, status, "email", page{Title: "Change email address", Error: msg,
			Fields: changeEmailFields(shown(email), fields, mfa, passwordless)})
	}
	return c.Redirect("/profile?done=email_code_sent", fiber.StatusSeeOther)
}
