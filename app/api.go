package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"fiberauth/app/openapi"
	"fiberauth/app/password"
	"fiberauth/app/valid"
	"fiberauth/db"
)

// decodeJSON reads a JSON object of string fields into dst (a pointer to a
// struct of *string fields). Problems come back as 422 field errors.
func decodeJSON(c *fiber.Ctx, dst any) error {
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return errValidation(fieldError{Type: "missing", Loc: []string{"body"}, Msg: "Field required"})
	}
	if !utf8.Valid(body) {
		return errValidation(fieldError{Type: "json_invalid", Loc: []string{"body"}, Msg: "Body is not valid UTF-8"})
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return errValidation(fieldError{Type: "string_type", Loc: []string{"body", te.Field}, Msg: "Input should be a valid string"})
		}
		if errors.As(err, &te) {
			return errValidation(fieldError{Type: "model_attributes_type", Loc: []string{"body"}, Msg: "Input should be a JSON object"})
		}
		return errValidation(fieldError{Type: "json_invalid", Loc: []string{"body"}, Msg: "JSON decode error"})
	}
	if dec.More() {
		return errValidation(fieldError{Type: "json_invalid", Loc: []string{"body"}, Msg: "JSON decode error: trailing data"})
	}
	return nil
}

// required checks that a decoded field is present and clean.
func required(problems *[]fieldError, name string, v *string) string {
	if v == nil {
		*problems = append(*problems, fieldError{Type: "missing", Loc: []string{"body", name}, Msg: "Field required"})
		return ""
	}
	if p := valid.Text(*v); p != "" {
		*problems = append(*problems, fieldError{Type: "value_error", Loc: []string{"body", name}, Msg: "Value " + p})
		return ""
	}
	return *v
}

type registerRequest struct {
	Username *string `json:"username"`
	Email    *string `json:"email"`
	Password *string `json:"password"`
}

// checkRegistration validates the three registration fields and returns the
// problems keyed by field, in FastAPI's order.
func checkRegistration(username, email, pw string) (registration, []fieldError) {
	var problems []fieldError
	r := registration{Password: pw}
	var msg string
	if r.Username, r.UsernameKey, msg = valid.Username(username); msg != "" {
		problems = append(problems, fieldError{Type: "value_error", Loc: []string{"body", "username"}, Msg: msg})
	}
	if r.Email, r.EmailKey, msg = valid.Email(email); msg != "" {
		problems = append(problems, fieldError{Type: "value_error", Loc: []string{"body", "email"}, Msg: msg})
	}
	if msg = valid.Text(pw); msg != "" {
		problems = append(problems, fieldError{Type: "value_error", Loc: []string{"body", "password"}, Msg: "Password " + msg + "."})
	} else if msg = password.Check(pw); msg != "" {
		problems = append(problems, fieldError{Type: "value_error", Loc: []string{"body", "password"}, Msg: msg})
	}
	return r, problems
}

// apiRegister is POST /register/user.
func (s *Server) apiRegister(c *fiber.Ctx) error {
	var req registerRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var problems []fieldError
	username := required(&problems, "username", req.Username)
	email := required(&problems, "email", req.Email)
	pw := required(&problems, "password", req.Password)
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	r, problems := checkRegistration(username, email, pw)
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	u, err := s.register(c, r)
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(fiber.Map{
		"message": "user created",
		"user":    fiber.Map{"username": u.Username, "email": u.Email},
	})
}

// apiToken is POST /token, the OAuth2 resource owner password grant
// (RFC 6749 §4.3).
func (s *Server) apiToken(c *fiber.Ctx) error {
	args := c.Request().PostArgs()
	if c.Request().Header.ContentLength() > 0 && !strings.HasPrefix(string(c.Request().Header.ContentType()), fiber.MIMEApplicationForm) &&
		!strings.HasPrefix(string(c.Request().Header.ContentType()), fiber.MIMEMultipartForm) {
		return oauthError(http.StatusBadRequest, "invalid_request", "the request body must be form-encoded (application/x-www-form-urlencoded)")
	}
	if args.Has("grant_type") && c.FormValue("grant_type") != "password" {
		return oauthError(http.StatusBadRequest, "unsupported_grant_type", "")
	}
	username, pw := c.FormValue("username"), c.FormValue("password")
	for _, f := range []struct{ name, v string }{{"username", username}, {"password", pw}} {
		if f.v == "" {
			return oauthError(http.StatusBadRequest, "invalid_request", f.name+" is required")
		}
		if p := valid.Text(f.v); p != "" {
			return &Error{Status: http.StatusUnprocessableEntity,
				Detail: []fieldError{{Type: "value_error", Loc: []string{"body", f.name}, Msg: "Value " + p}}}
		}
	}
	sess, err := s.signIn(c, username, pw)
	if errors.Is(err, errBadCredentials) {
		return &Error{Status: http.StatusUnauthorized,
			Body:    fiber.Map{"detail": msgIncorrectCredentials, "error": "invalid_grant"},
			Headers: map[string]string{"WWW-Authenticate": "Bearer"}}
	}
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderPragma, "no-cache")
	return c.JSON(fiber.Map{"access_token": sess.Token, "token_type": "bearer", "expires_in": sess.ExpiresIn})
}

// apiRevoke is POST /revoke (RFC 7009): it ends the token's session and
// answers 200 whether or not the token was valid.
func (s *Server) apiRevoke(c *fiber.Ctx) error {
	raw := c.FormValue("token")
	if raw == "" {
		return oauthError(http.StatusBadRequest, "invalid_request", "token is required")
	}
	if claims, err := s.tokens.VerifySignature(raw); err == nil {
		se, u, err := s.store.SessionWithUser(c.UserContext(), claims.SessionID)
		if err == nil && u.Username == claims.Subject {
			if err := s.store.DeleteSession(c.UserContext(), se.ID); err != nil && !errors.Is(err, db.ErrNotFound) {
				return err
			}
			s.event(c.UserContext(), c, u.ID, db.EventSignOut)
		} else if err != nil && !errors.Is(err, db.ErrNotFound) {
			return err
		}
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{})
}

// healthz answers 200 while the database answers.
func (s *Server) healthz(c *fiber.Ctx) error {
	if err := s.store.Ping(c.UserContext()); err != nil {
		s.log.Error("health check failed", "error", err.Error())
		return errDetail(http.StatusServiceUnavailable, "database unavailable")
	}
	return c.JSON(fiber.Map{"status": "ok"})
}

// meJSON is the body of GET /users/me.
type meJSON struct {
	CreatedAt   string `json:"created_at"`
	Description string `json:"description"`
	Email       string `json:"email"`
	Username    string `json:"username"`
}

// apiMe is GET /users/me.
func (s *Server) apiMe(c *fiber.Ctx) error {
	u := currentUser(c).User
	return c.JSON(meJSON{
		Description: u.Username + " authorized",
		Username:    u.Username,
		Email:       u.Email,
		CreatedAt:   u.CreatedAt.UTC().Format(time.RFC3339),
	})
}

type sessionJSON struct {
	ID         string `json:"id"`
	CreatedAt  string `json:"created_at"`
	LastUsedAt string `json:"last_used_at"`
	ExpiresAt  string `json:"expires_at"`
	IP         string `json:"ip"`
	UserAgent  string `json:"user_agent"`
	Current    bool   `json:"current"`
}

// apiListSessions is GET /users/me/sessions.
func (s *Server) apiListSessions(c *fiber.Ctx) error {
	p := currentUser(c)
	list, err := s.store.ListSessions(c.UserContext(), p.User.ID, s.now())
	if err != nil {
		return err
	}
	out := make([]sessionJSON, 0, len(list))
	for _, se := range list {
		if se.ID == p.Session.ID {
			se.LastUsedAt = p.Session.LastUsedAt
		}
		out = append(out, sessionJSON{
			ID: se.ID, IP: se.IP, UserAgent: se.UserAgent, Current: se.ID == p.Session.ID,
			CreatedAt:  se.CreatedAt.UTC().Format(time.RFC3339),
			LastUsedAt: se.LastUsedAt.UTC().Format(time.RFC3339),
			ExpiresAt:  se.ExpiresAt.UTC().Format(time.RFC3339),
		})
	}
	return c.JSON(out)
}

// apiEndSession is DELETE /users/me/sessions/{id}.
func (s *Server) apiEndSession(c *fiber.Ctx) error {
	p := currentUser(c)
	err := s.store.DeleteUserSession(c.UserContext(), p.User.ID, c.Params("id"))
	if errors.Is(err, db.ErrNotFound) {
		return errDetail(http.StatusNotFound, "Session not found")
	}
	if err != nil {
		return err
	}
	s.event(c.UserContext(), c, p.User.ID, db.EventSessionEnded)
	return c.SendStatus(http.StatusNoContent)
}

// apiEndOtherSessions is DELETE /users/me/sessions: sign out everywhere
// else.
func (s *Server) apiEndOtherSessions(c *fiber.Ctx) error {
	p := currentUser(c)
	n, err := s.store.DeleteOtherSessions(c.UserContext(), p.User.ID, p.Session.ID)
	if err != nil {
		return err
	}
	if n > 0 {
		s.event(c.UserContext(), c, p.User.ID, db.EventSessionEnded)
	}
	return c.SendStatus(http.StatusNoContent)
}

// checkPassword verifies the caller's current password for a sensitive
// action. A wrong one counts towards sign-in throttling and is recorded.
func (s *Server) checkPassword(c *fiber.Ctx, u db.User, pw string) error {
	// The session's copy of the account carries no password hash: read it.
	fresh, err := s.store.UserByID(c.UserContext(), u.ID)
	if err != nil {
		return err
	}
	err = s.guardedVerify(c.UserContext(), strings.ToLower(u.Username), s.clientIP(c), fresh.PasswordHash, pw)
	if errors.Is(err, password.ErrMismatch) {
		s.event(c.UserContext(), c, u.ID, db.EventPasswordFailed)
		return &Error{Status: http.StatusForbidden, Detail: msgIncorrectPassword}
	}
	if err != nil {
		return err
	}
	return nil
}

// changePassword sets a new password after checking the current one and
// ends every other session.
func (s *Server) changePassword(c *fiber.Ctx, current, next string) error {
	p := currentUser(c)
	if err := s.checkPassword(c, p.User, current); err != nil {
		return err
	}
	hash, err := s.hasher.Hash(c.UserContext(), next)
	if errors.Is(err, password.ErrBusy) {
		return errBusy
	}
	if err != nil {
		return err
	}
	if err := s.store.ChangePassword(c.UserContext(), p.User.ID, hash, p.Session.ID); err != nil {
		return err
	}
	s.event(c.UserContext(), c, p.User.ID, db.EventPasswordChange)
	return nil
}

// newPasswordProblem applies the registration rules to a new password.
func newPasswordProblem(current, next string) string {
	if p := valid.Text(next); p != "" {
		return "Password " + p + "."
	}
	if msg := password.Check(next); msg != "" {
		return msg
	}
	if next == current {
		return "The new password must differ from the current one."
	}
	return ""
}

type passwordRequest struct {
	Current *string `json:"current_password"`
	New     *string `json:"new_password"`
}

// apiChangePassword is POST /users/me/password.
func (s *Server) apiChangePassword(c *fiber.Ctx) error {
	var req passwordRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var problems []fieldError
	current := required(&problems, "current_password", req.Current)
	next := required(&problems, "new_password", req.New)
	if len(problems) == 0 {
		if msg := newPasswordProblem(current, next); msg != "" {
			problems = append(problems, fieldError{Type: "value_error", Loc: []string{"body", "new_password"}, Msg: msg})
		}
	}
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	if err := s.changePassword(c, current, next); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// apiEvents is GET /users/me/events.
func (s *Server) apiEvents(c *fiber.Ctx) error {
	list, err := s.store.ListEvents(c.UserContext(), currentUser(c).User.ID, 50)
	if err != nil {
		return err
	}
	type eventJSON struct {
		Time      string `json:"time"`
		Kind      string `json:"kind"`
		IP        string `json:"ip"`
		UserAgent string `json:"user_agent"`
	}
	out := make([]eventJSON, 0, len(list))
	for _, e := range list {
		out = append(out, eventJSON{Time: e.At.UTC().Format(time.RFC3339), Kind: e.Kind, IP: e.IP, UserAgent: e.UserAgent})
	}
	return c.JSON(out)
}

// deleteAccount removes the caller's account after checking the password.
func (s *Server) deleteAccount(c *fiber.Ctx, pw string) error {
	p := currentUser(c)
	if err := s.checkPassword(c, p.User, pw); err != nil {
		return err
	}
	if err := s.store.DeleteUser(c.UserContext(), p.User.ID); err != nil && !errors.Is(err, db.ErrNotFound) {
		return err
	}
	if p.ViaCookie {
		s.clearSessionCookie(c)
	}
	return nil
}

// apiDeleteAccount is DELETE /users/me.
func (s *Server) apiDeleteAccount(c *fiber.Ctx) error {
	var req struct {
		Password *string `json:"password"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var problems []fieldError
	pw := required(&problems, "password", req.Password)
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	if err := s.deleteAccount(c, pw); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// openAPI is GET /openapi.json.
func (s *Server) openAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Send(openapi.Document)
}
