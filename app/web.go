package app

import (
	"errors"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"fiberauth/app/valid"
	"fiberauth/db"
)

// Confirmations shown after a redirect, chosen by a fixed query value so
// that no text from the URL is ever displayed.
var notices = map[string]string{
	"signed_out":       "You have been logged out.",
	"password_changed": "Your password has been changed. Every other session has been signed out.",
	"session_ended":    "The session has been ended.",
	"others_ended":     "Every other session has been signed out.",
	"account_deleted":  "Your account has been deleted.",
}

func notice(c *fiber.Ctx) string { return notices[c.Query("done")] }

// signedIn returns the principal when the request carries a valid session.
func (s *Server) signedIn(c *fiber.Ctx) *principal {
	p, err := s.authenticate(c)
	if err != nil {
		return nil
	}
	return p
}

// pageIndex is GET /.
func (s *Server) pageIndex(c *fiber.Ctx) error {
	if s.signedIn(c) != nil {
		return c.Redirect("/profile", fiber.StatusSeeOther)
	}
	return c.Redirect("/login", fiber.StatusSeeOther)
}

func loginFields(username, userErr string) []fieldView {
	return []fieldView{
		{Name: "username", Label: "Username or email", Type: "text", Autocomplete: "username", Value: username,
			Error: userErr, Required: true, Autofocus: username == "", MaxLength: valid.EmailMax},
		{Name: "password", Label: "Password", Type: "password", Autocomplete: "current-password", Required: true,
			Autofocus: username != ""},
	}
}

// pageLogin is GET /login.
func (s *Server) pageLogin(c *fiber.Ctx) error {
	next := safeNext(c.Query("next"))
	if s.signedIn(c) != nil {
		if next == "" {
			next = "/profile"
		}
		return c.Redirect(next, fiber.StatusSeeOther)
	}
	return s.render(c, http.StatusOK, "login", page{Title: "Log in", Next: next, Notice: notice(c),
		Fields: loginFields("", "")})
}

// submitLogin is POST /login.
func (s *Server) submitLogin(c *fiber.Ctx) error {
	username, pw := c.FormValue("username"), c.FormValue("password")
	next := safeNext(c.Query("next"))
	if next == "" {
		next = safeNext(c.FormValue("next"))
	}
	p := page{Title: "Log in", Next: next}
	shown := username
	if valid.Text(shown) != "" {
		shown = ""
	}
	fail := func(status int, msg string) error {
		p.Error = msg
		p.Fields = loginFields(shown, "")
		return s.render(c, status, "login", p)
	}
	switch {
	case valid.Text(username) != "" || valid.Text(pw) != "":
		return fail(http.StatusUnprocessableEntity, "The username or password contains characters that are not allowed.")
	case username == "" || pw == "":
		p.Error = "Enter your username or email and your password."
		p.Fields = loginFields(shown, "")
		if username == "" {
			p.Fields[0].Error = "Enter your username or email."
		} else {
			p.Fields[1].Error = "Enter your password."
		}
		return s.render(c, http.StatusUnprocessableEntity, "login", p)
	}
	sess, err := s.signIn(c, username, pw)
	if errors.Is(err, errBadCredentials) {
		return fail(http.StatusUnauthorized, msgIncorrectCredentials)
	}
	if e := userFacing(c, err); e != nil {
		return fail(e.Status, e.Detail.(string))
	}
	if err != nil {
		return err
	}
	s.setSessionCookie(c, sess.Token)
	if next == "" {
		next = "/profile"
	}
	return c.Redirect(next, fiber.StatusSeeOther)
}

func registerFields(r registration, errs map[string]string) []fieldView {
	return []fieldView{
		{Name: "username", Label: "Username", Type: "text", Autocomplete: "username", Value: r.Username,
			Error: errs["username"], Hint: "3 to 32 letters, digits, '.', '_' or '-'.", Required: true,
			Autofocus: true, MaxLength: 32},
		{Name: "email", Label: "Email", Type: "email", Autocomplete: "email", Value: r.Email, Error: errs["email"],
			Required: true, MaxLength: valid.EmailMax},
		{Name: "password", Label: "Password", Type: "password", Autocomplete: "new-password", Error: errs["password"],
			Hint: "At least 8 characters (at most 72 bytes), and not a common password.", Required: true},
	}
}

// pageRegister is GET /register.
func (s *Server) pageRegister(c *fiber.Ctx) error {
	if s.signedIn(c) != nil {
		return c.Redirect("/profile", fiber.StatusSeeOther)
	}
	return s.render(c, http.StatusOK, "register", page{Title: "Register", Fields: registerFields(registration{}, nil)})
}

// submitRegister is POST /register: create the account and sign in at once.
func (s *Server) submitRegister(c *fiber.Ctx) error {
	username, email, pw := c.FormValue("username"), c.FormValue("email"), c.FormValue("password")
	r, problems := checkRegistration(username, email, pw)
	typed := registration{Username: r.Username, Email: r.Email}
	if len(problems) > 0 {
		errs := make(map[string]string, len(problems))
		for _, p := range problems {
			errs[p.Loc[len(p.Loc)-1]] = p.Msg
		}
		return s.render(c, http.StatusUnprocessableEntity, "register", page{Title: "Register",
			Error: "Please correct the fields marked below.", Fields: registerFields(typed, errs)})
	}
	u, err := s.register(c, r)
	var conflict *Error
	if errors.As(err, &conflict) && conflict.Status == http.StatusConflict {
		errs := map[string]string{}
		msg := "That username or email address is already registered."
		switch conflict.conflict {
		case "username":
			msg = "That username is already taken."
			errs["username"] = msg
		case "email":
			msg = "An account with that email address already exists."
			errs["email"] = msg
		}
		return s.render(c, http.StatusConflict, "register", page{Title: "Register", Error: msg,
			Fields: registerFields(typed, errs)})
	}
	if e := userFacing(c, err); e != nil {
		return s.render(c, e.Status, "register", page{Title: "Register", Error: e.Detail.(string),
			Fields: registerFields(typed, nil)})
	}
	if err != nil {
		return err
	}
	sess, err := s.startSession(c, u)
	if err != nil {
		return err
	}
	s.setSessionCookie(c, sess.Token)
	return c.Redirect("/profile", fiber.StatusSeeOther)
}

// submitLogout is POST /logout: end this session and clear the cookie.
func (s *Server) submitLogout(c *fiber.Ctx) error {
	if p := s.signedIn(c); p != nil {
		if err := s.store.DeleteSession(c.UserContext(), p.Session.ID); err != nil && !errors.Is(err, db.ErrNotFound) {
			return err
		}
		s.event(c.UserContext(), c, p.User.ID, db.EventSignOut)
	}
	s.clearSessionCookie(c)
	forgetPages(c)
	return c.Redirect("/login?done=signed_out", fiber.StatusSeeOther)
}

// forgetPages asks the browser to drop its cached copies of this site's
// pages, including the back/forward cache, so that the back button cannot
// show account pages after signing out.
func forgetPages(c *fiber.Ctx) {
	c.Set("Clear-Site-Data", `"cache"`)
}

// pageProfile is GET /profile.
func (s *Server) pageProfile(c *fiber.Ctx) error {
	p := currentUser(c)
	list, err := s.store.ListSessions(c.UserContext(), p.User.ID, s.now())
	if err != nil {
		return err
	}
	views := make([]sessionView, 0, len(list))
	for _, se := range list {
		cur := se.ID == p.Session.ID
		if cur {
			se.LastUsedAt = p.Session.LastUsedAt
		}
		views = append(views, sessionView{Session: se, Current: cur})
	}
	events, err := s.store.ListEvents(c.UserContext(), p.User.ID, 20)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "profile", page{Title: p.User.Username, Notice: notice(c),
		Sessions: views, Events: events})
}

// submitEndSession is POST /profile/sessions/{id}/end.
func (s *Server) submitEndSession(c *fiber.Ctx) error {
	p := currentUser(c)
	id := c.Params("id")
	err := s.store.DeleteUserSession(c.UserContext(), p.User.ID, id)
	if errors.Is(err, db.ErrNotFound) {
		return errDetail(http.StatusNotFound, "That session does not exist or has already ended.")
	}
	if err != nil {
		return err
	}
	s.event(c.UserContext(), c, p.User.ID, db.EventSessionEnded)
	if id == p.Session.ID {
		s.clearSessionCookie(c)
		forgetPages(c)
		return c.Redirect("/login?done=signed_out", fiber.StatusSeeOther)
	}
	return c.Redirect("/profile?done=session_ended", fiber.StatusSeeOther)
}

// submitEndOtherSessions is POST /profile/sessions/others/end.
func (s *Server) submitEndOtherSessions(c *fiber.Ctx) error {
	p := currentUser(c)
	n, err := s.store.DeleteOtherSessions(c.UserContext(), p.User.ID, p.Session.ID)
	if err != nil {
		return err
	}
	if n > 0 {
		s.event(c.UserContext(), c, p.User.ID, db.EventSessionEnded)
	}
	return c.Redirect("/profile?done=others_ended", fiber.StatusSeeOther)
}

func passwordFields(errs map[string]string) []fieldView {
	return []fieldView{
		{Name: "current_password", Label: "Current password", Type: "password", Autocomplete: "current-password",
			Error: errs["current_password"], Required: true, Autofocus: true},
		{Name: "new_password", Label: "New password", Type: "password", Autocomplete: "new-password",
			Error: errs["new_password"], Hint: "At least 8 characters (at most 72 bytes), and not a common password.", Required: true},
	}
}

// pagePassword is GET /profile/password.
func (s *Server) pagePassword(c *fiber.Ctx) error {
	return s.render(c, http.StatusOK, "password", page{Title: "Change password", Fields: passwordFields(nil)})
}

// submitPassword is POST /profile/password.
func (s *Server) submitPassword(c *fiber.Ctx) error {
	current, next := c.FormValue("current_password"), c.FormValue("new_password")
	fail := func(status int, field, msg string) error {
		return s.render(c, status, "password", page{Title: "Change password", Error: msg,
			Fields: passwordFields(map[string]string{field: msg})})
	}
	if current == "" {
		return fail(http.StatusUnprocessableEntity, "current_password", "Enter your current password.")
	}
	if msg := newPasswordProblem(current, next); msg != "" {
		return fail(http.StatusUnprocessableEntity, "new_password", msg)
	}
	err := s.changePassword(c, current, next)
	if e := userFacing(c, err); e != nil {
		return fail(e.Status, "current_password", e.Detail.(string))
	}
	if err != nil {
		return err
	}
	return c.Redirect("/profile?done=password_changed", fiber.StatusSeeOther)
}

func deleteFields(errMsg string) []fieldView {
	return []fieldView{{Name: "password", Label: "Password", Type: "password", Autocomplete: "current-password",
		Error: errMsg, Required: true, Autofocus: true}}
}

// pageDelete is GET /profile/delete.
func (s *Server) pageDelete(c *fiber.Ctx) error {
	return s.render(c, http.StatusOK, "delete", page{Title: "Delete account", Fields: deleteFields("")})
}

// submitDelete is POST /profile/delete.
func (s *Server) submitDelete(c *fiber.Ctx) error {
	pw := c.FormValue("password")
	if pw == "" {
		return s.render(c, http.StatusUnprocessableEntity, "delete", page{Title: "Delete account",
			Error: "Enter your password to confirm.", Fields: deleteFields("Enter your password to confirm.")})
	}
	err := s.deleteAccount(c, pw)
	if e := userFacing(c, err); e != nil {
		return s.render(c, e.Status, "delete", page{Title: "Delete account", Error: e.Detail.(string),
			Fields: deleteFields(e.Detail.(string))})
	}
	if err != nil {
		return err
	}
	s.clearSessionCookie(c)
	forgetPages(c)
	return c.Redirect("/login?done=account_deleted", fiber.StatusSeeOther)
}

// userFacing returns err as an *Error that a form shows in place (a 4xx with
// a string message, or 503 when busy), setting its headers; nil otherwise.
func userFacing(c *fiber.Ctx, err error) *Error {
	var e *Error
	if !errors.As(err, &e) || (e.Status >= 500 && e != errBusy) {
		return nil
	}
	if _, ok := e.Detail.(string); !ok {
		return nil
	}
	for k, v := range e.Headers {
		c.Set(k, v)
	}
	return e
}

// docs is GET /docs, the interactive API documentation (Swagger UI,
// vendored under static/vendor). It runs under the same Content-Security-
// Policy as every other page: the UI is started from static/js/docs.js, not
// from an inline script, and needs no inline styles.
func (s *Server) docs(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Render("docs", page{Title: "API docs"})
}
