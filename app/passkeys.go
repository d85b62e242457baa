package app

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"fiberauth/app/account"
	"fiberauth/db"
)

// Passkeys over HTTP: the JSON endpoints the page script (static/js/
// passkeys.js) calls, and the pages' forms. Each begun ceremony's id goes
// to the browser that asked in a signed, HttpOnly cookie, which the answer
// must come back with: a ceremony begun in one browser cannot be finished
// from another. The core keeps the ceremony's state in the database.

const ceremonyCookie = "passkey_ceremony"

func (s *Server) ceremonyMAC(id string) string {
	m := hmac.New(sha256.New, s.ceremonyKey)
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// setCeremony binds a begun ceremony to this browser.
func (s *Server) setCeremony(c *fiber.Ctx, id string) {
	s.setCookie(c, ceremonyCookie, id+"."+s.ceremonyMAC(id), account.CeremonyLifetime)
}

// ceremony is the id of the ceremony this browser began, or "".
func (s *Server) ceremony(c *fiber.Ctx) string {
	id, mac, ok := strings.Cut(c.Cookies(s.cookieName(c, ceremonyCookie)), ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(s.ceremonyMAC(id))) {
		return ""
	}
	return id
}

// sendOptions answers a begun ceremony: its options, and the cookie.
func (s *Server) sendOptions(c *fiber.Ctx, o account.Options) error {
	s.setCeremony(c, o.Ceremony)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(o.JSON)
}

// passkeyBody is the JSON body of an answer to a ceremony: the credential
// as PublicKeyCredential's toJSON gives it, and what goes with it.
type passkeyBody struct {
	Credential json.RawMessage `json:"credential"`
	// Name names a new passkey; Next is where a sign-in goes afterwards
	// (a local path, as the login form's next).
	Name *string `json:"name"`
	Next *string `json:"next"`
}

// readAnswer reads an answer's body; the credential must be a JSON
// object. The credential may also be the body itself, as toJSON gives it,
// with name and next beside its fields.
func readAnswer(c *fiber.Ctx) (passkeyBody, error) {
	var b passkeyBody
	if err := decodeJSON(c, &b); err != nil {
		return b, err
	}
	if t := bytes.TrimSpace(b.Credential); len(t) == 0 || string(t) == "null" {
		var bare struct {
			Type     string          `json:"type"`
			Response json.RawMessage `json:"response"`
		}
		if json.Unmarshal(c.Body(), &bare) == nil && bare.Type != "" && len(bare.Response) > 0 {
			b.Credential = bytes.Clone(c.Body())
		}
	}
	var problems []fieldError
	if t := bytes.TrimSpace(b.Credential); len(t) == 0 || string(t) == "null" {
		problems = append(problems, fieldError{Type: "missing", Loc: []string{"body", "credential"}, Msg: "Field required"})
	} else if t[0] != '{' {
		problems = append(problems, fieldError{Type: "model_attributes_type", Loc: []string{"body", "credential"}, Msg: "Input should be a JSON object"})
	}
	optional(&problems, "name", b.Name)
	optional(&problems, "next", b.Next)
	if len(problems) > 0 {
		return b, errValidation(problems...)
	}
	return b, nil
}

// stepUpRequest confirms a sensitive action in a JSON body: the
// password, with a current code when two-factor is on; or, for an
// account without a password, a passkey answer to POST
// /users/me/passkeys/confirm/options.
type stepUpRequest struct {
	Password *string         `json:"password"`
	Code     *string         `json:"code"`
	Passkey  json.RawMessage `json:"passkey"`
}

// stepUpProof reads a stepUpRequest, adding its problems to problems: the
// password is required unless the account has none.
func (s *Server) stepUpProof(c *fiber.Ctx, req stepUpRequest, problems *[]fieldError) account.Proof {
	var pw string
	if !currentUser(c).User.Passwordless {
		pw = required(problems, "password", req.Password)
	}
	code := optional(problems, "code", req.Code)
	return s.proof(c, pw, code, req.Passkey)
}

// proof is a sensitive action's confirmation: the password and code, or
// a passkey answer to the confirmation this browser began.
func (s *Server) proof(c *fiber.Ctx, pw, code string, passkey []byte) account.Proof {
	if t := bytes.TrimSpace(passkey); len(t) == 0 || string(t) == "null" {
		passkey = nil
	}
	return account.Proof{Password: pw, Code: code, Ceremony: s.ceremony(c), Passkey: passkey}
}

// sameSite refuses a request that the browser says another site started
// (the passkey endpoints that need no session: a JSON body already needs
// a preflight that no other site passes).
func sameSite(c *fiber.Ctx) error {
	if crossSite(c) {
		return errCSRF
	}
	return c.Next()
}

// passkeyJSON is a passkey in a list.
type passkeyJSON struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	CreatedAt  string   `json:"created_at"`
	LastUsedAt *string  `json:"last_used_at"`
	Transports []string `json:"transports"`
	// BackupEligible and BackedUp: the passkey may be, and is, synced
	// to the person's other devices by their passkey manager.
	BackupEligible bool `json:"backup_eligible"`
	BackedUp       bool `json:"backed_up"`
}

func passkeyOut(p db.Passkey) passkeyJSON {
	j := passkeyJSON{ID: p.ID, Name: p.Name, CreatedAt: p.CreatedAt.UTC().Format(time.RFC3339), Transports: p.Transports,
		BackupEligible: p.BackupEligible, BackedUp: p.BackedUp}
	if j.Transports == nil {
		j.Transports = []string{}
	}
	if !p.LastUsedAt.IsZero() {
		used := p.LastUsedAt.UTC().Format(time.RFC3339)
		j.LastUsedAt = &used
	}
	return j
}

// passkeyBrief is a new or renamed passkey.
func passkeyBrief(p db.Passkey) fiber.Map {
	return fiber.Map{"id": p.ID, "name": p.Name, "created_at": p.CreatedAt.UTC().Format(time.RFC3339)}
}

// errPasskeyRefused is a refused passkey sign-in: the same answer whether
// or not the passkey (or its account) exists.
var errPasskeyRefused = &Error{Status: http.StatusUnauthorized, Detail: account.MsgPasskeyRefused}

// signInError maps a refused passkey sign-in.
func signInError(err error) error {
	var e *account.Error
	if !errors.As(err, &e) {
		return err
	}
	switch e.Code {
	case account.EUnauthorized:
		return errPasskeyRefused
	case account.EForbidden:
		return &Error{Status: http.StatusUnauthorized, Detail: e.Message}
	case account.EUnverified:
		return &Error{Status: http.StatusForbidden, Detail: e.Message}
	}
	return err
}

// signedIn answers a passkey sign-in: the session cookie, and where to go.
func (s *Server) passkeySession(c *fiber.Ctx, g account.Grant, next string) error {
	if err := s.setSession(c, g); err != nil {
		return err
	}
	s.clearCookie(c, ceremonyCookie)
	if next = safeNext(next); next == "" {
		next = "/profile"
	}
	return c.JSON(fiber.Map{"redirect": next})
}

// apiPasskeyOptions is POST /users/me/passkeys/options: begin adding a
// passkey.
func (s *Server) apiPasskeyOptions(c *fiber.Ctx) error {
	o, err := s.acct.BeginAddPasskey(c.UserContext(), currentUser(c))
	if err != nil {
		return err
	}
	return s.sendOptions(c, o)
}

// apiAddPasskey is POST /users/me/passkeys: finish adding a passkey.
func (s *Server) apiAddPasskey(c *fiber.Ctx) error {
	b, err := readAnswer(c)
	if err != nil {
		return err
	}
	name := ""
	if b.Name != nil {
		name = *b.Name
	}
	pk, err := s.acct.AddPasskey(c.UserContext(), s.client(c, false), currentUser(c), s.ceremony(c), b.Credential, name)
	if err != nil {
		return err
	}
	s.clearCookie(c, ceremonyCookie)
	return c.Status(http.StatusCreated).JSON(passkeyBrief(pk))
}

// apiListPasskeys is GET /users/me/passkeys.
func (s *Server) apiListPasskeys(c *fiber.Ctx) error {
	list, err := s.acct.Passkeys(c.UserContext(), currentUser(c))
	if err != nil {
		return err
	}
	out := make([]passkeyJSON, 0, len(list))
	for _, p := range list {
		out = append(out, passkeyOut(p))
	}
	return c.JSON(out)
}

// apiRenamePasskey is PATCH /users/me/passkeys/{id}, JSON {"name"}.
func (s *Server) apiRenamePasskey(c *fiber.Ctx) error {
	var req struct {
		Name *string `json:"name"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var problems []fieldError
	name := required(&problems, "name", req.Name)
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	pk, err := s.acct.RenamePasskey(c.UserContext(), currentUser(c), c.Params("id"), name)
	if err != nil {
		return err
	}
	return c.JSON(passkeyBrief(pk))
}

// apiRemovePasskey is DELETE /users/me/passkeys/{id}, confirmed as every
// sensitive action is.
func (s *Server) apiRemovePasskey(c *fiber.Ctx) error {
	var req stepUpRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var problems []fieldError
	proof := s.stepUpProof(c, req, &problems)
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	if err := s.acct.RemovePasskey(c.UserContext(), s.client(c, false), currentUser(c), c.Params("id"), proof); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// apiConfirmOptions is POST /users/me/passkeys/confirm/options: begin
// confirming a sensitive action with a passkey (accounts without a
// password).
func (s *Server) apiConfirmOptions(c *fiber.Ctx) error {
	o, err := s.acct.BeginConfirm(c.UserContext(), currentUser(c))
	if err != nil {
		return err
	}
	return s.sendOptions(c, o)
}

// apiPasskeyLoginOptions is POST /passkeys/login/options: begin a
// username-less sign-in.
func (s *Server) apiPasskeyLoginOptions(c *fiber.Ctx) error {
	o, err := s.acct.BeginPasskeySignIn(c.UserContext(), s.client(c, true))
	if err != nil {
		return err
	}
	return s.sendOptions(c, o)
}

// apiPasskeyLogin is POST /passkeys/login: finish a username-less
// sign-in; 200 {"redirect"} with the session cookie.
func (s *Server) apiPasskeyLogin(c *fiber.Ctx) error {
	b, err := readAnswer(c)
	if err != nil {
		return err
	}
	g, err := s.acct.PasskeySignIn(c.UserContext(), s.client(c, true), s.ceremony(c), b.Credential)
	if err != nil {
		return signInError(err)
	}
	next := ""
	if b.Next != nil {
		next = *b.Next
	}
	return s.passkeySession(c, g, next)
}

// apiSignupOptions is POST /register/passkey/options, JSON
// {"username","email"}: begin making an account with a passkey.
func (s *Server) apiSignupOptions(c *fiber.Ctx) error {
	var req struct {
		Username *string `json:"username"`
		Email    *string `json:"email"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var problems []fieldError
	username := required(&problems, "username", req.Username)
	email := required(&problems, "email", req.Email)
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	o, err := s.acct.BeginPasskeySignUp(c.UserContext(), s.client(c, true), username, email)
	if err != nil {
		return err
	}
	return s.sendOptions(c, o)
}

// apiSignup is POST /register/passkey: finish making an account with a
// passkey; it is signed in unless verified addresses are required.
func (s *Server) apiSignup(c *fiber.Ctx) error {
	b, err := readAnswer(c)
	if err != nil {
		return err
	}
	r, err := s.acct.PasskeySignUp(c.UserContext(), s.client(c, true), s.ceremony(c), b.Credential)
	if err != nil {
		return err
	}
	s.clearCookie(c, ceremonyCookie)
	redirect := "/email/verify?done=verify_sent&login=" + queryEscape(r.User.Username)
	if r.Grant != nil {
		if err := s.setSession(c, *r.Grant); err != nil {
			return err
		}
		redirect = "/profile?done=welcome"
	}
	return c.Status(http.StatusCreated).JSON(fiber.Map{
		"message":  "user created",
		"user":     fiber.Map{"username": r.User.Username, "email": r.User.Email},
		"redirect": redirect,
	})
}

// apiSecondStepOptions is POST /login/mfa/passkey/options: begin the
// second step of this browser's sign-in with a passkey.
func (s *Server) apiSecondStepOptions(c *fiber.Ctx) error {
	step, ok := s.pending(c)
	if !ok {
		return errSecondStepGone
	}
	o, err := s.acct.BeginSecondStepPasskey(c.UserContext(), step.userID, step.proves)
	if account.ErrorCode(err) == account.EUnauthorized {
		return errSecondStepGone
	}
	if err != nil {
		return err
	}
	return s.sendOptions(c, o)
}

// errSecondStepGone is a second step that expired or was voided.
var errSecondStepGone = &Error{Status: http.StatusUnauthorized, Detail: "Your sign-in took too long. Please enter your password again.",
	Body: fiber.Map{"detail": "Your sign-in took too long. Please enter your password again.", "redirect": "/login?done=mfa_expired"}}

// apiSecondStep is POST /login/mfa/passkey: finish the second step with
// a passkey; 200 {"redirect"} with the session cookie.
func (s *Server) apiSecondStep(c *fiber.Ctx) error {
	b, err := readAnswer(c)
	if err != nil {
		return err
	}
	step, ok := s.pending(c)
	if !ok {
		return errSecondStepGone
	}
	g, err := s.acct.SecondStepPasskey(c.UserContext(), s.client(c, true), step.userID, step.proves, s.ceremony(c), b.Credential, step.via)
	if account.ErrorCode(err) == account.EUnauthorized {
		s.clearCookie(c, mfaCookie)
		return errSecondStepGone
	}
	if err != nil {
		return signInError(err)
	}
	s.clearCookie(c, mfaCookie)
	next := ""
	if b.Next != nil {
		next = *b.Next
	}
	return s.passkeySession(c, g, next)
}

// apiAdminRemovePasskey is DELETE /admin/api/users/{id}/passkeys/{pid}.
func (s *Server) apiAdminRemovePasskey(c *fiber.Ctx) error {
	id, err := userParam(c)
	if err != nil {
		return err
	}
	if err := s.acct.RemoveUserPasskey(c.UserContext(), s.admin(c), id, c.Params("pid")); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// Pages.

// submitAdminRemovePasskey is POST /admin/users/{id}/passkeys/{pid}/remove.
func (s *Server) submitAdminRemovePasskey(c *fiber.Ctx) error {
	id, err := userParam(c)
	if err != nil {
		return err
	}
	return s.adminDone(c, id, s.acct.RemoveUserPasskey(c.UserContext(), s.admin(c), id, c.Params("pid")), "passkey")
}

// submitRenamePasskey is POST /profile/passkeys/{id}/name.
func (s *Server) submitRenamePasskey(c *fiber.Ctx) error {
	_, err := s.acct.RenamePasskey(c.UserContext(), currentUser(c), c.Params("id"), pageForm(c).get("name"))
	if err != nil {
		status, msg, fields, ok := pageError(c, err)
		if !ok {
			return err
		}
		if m := fields["name"]; m != "" {
			msg = m
		}
		return s.profile(c, status, "", msg)
	}
	return c.Redirect("/profile?done=passkey_renamed", fiber.StatusSeeOther)
}

// removeFields is the confirmation a passkey's removal asks for.
func removeFields(errs map[string]string, u db.User) []fieldView {
	if u.Passwordless {
		return nil
	}
	return withCode([]fieldView{{Name: "password", Label: "Password", Type: "password", Autocomplete: "current-password",
		Error: errs["password"], Required: true, Autofocus: true}}, errs, u.MFAEnabled)
}

// removePage renders the confirmation of a passkey's removal.
func (s *Server) removePage(c *fiber.Ctx, status int, errMsg string, errs map[string]string) error {
	p := currentUser(c)
	list, err := s.acct.Passkeys(c.UserContext(), p)
	if err != nil {
		return err
	}
	for _, pk := range list {
		if pk.ID == c.Params("id") {
			return s.render(c, status, "passkey_remove", page{Title: "Remove passkey", Passkey: &pk, Error: errMsg,
				Fields: removeFields(errs, p.User), PasskeyList: list})
		}
	}
	return &Error{Status: http.StatusNotFound, Detail: "That passkey does not exist or has been removed."}
}

// pageRemovePasskey is GET /profile/passkeys/{id}/remove.
func (s *Server) pageRemovePasskey(c *fiber.Ctx) error {
	return s.removePage(c, http.StatusOK, "", nil)
}

// submitRemovePasskey is POST /profile/passkeys/{id}/remove.
func (s *Server) submitRemovePasskey(c *fiber.Ctx) error {
	f := pageForm(c)
	p := currentUser(c)
	if !p.User.Passwordless && f.get("password") == "" {
		msg := "Enter your password to confirm."
		return s.removePage(c, http.StatusUnprocessableEntity, msg, map[string]string{"password": msg})
	}
	err := s.acct.RemovePasskey(c.UserContext(), s.client(c, true), p, c.Params("id"),
		s.proof(c, f.get("password"), f.get("code"), []byte(f.get("passkey"))))
	if err != nil {
		status, msg, fields, ok := pageError(c, err)
		if !ok {
			return err
		}
		switch account.ErrorCode(err) {
		case account.EMFARequired, account.EBadOTP:
			fields["code"] = msg
		case account.EForbidden:
			fields["password"] = msg
		case account.ENotFound:
			return &Error{Status: http.StatusNotFound, Detail: "That passkey does not exist or has been removed."}
		}
		return s.removePage(c, status, msg, fields)
	}
	return c.Redirect("/profile?done=passkey_removed", fiber.StatusSeeOther)
}
