package app

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"fiberauth/app/account"
	"fiberauth/app/oidc"
	"fiberauth/app/openapi"
	"fiberauth/app/token"
	"fiberauth/db"
)

// The JSON API's handlers: each parses its request, calls the account core
// and writes the answer; errors go to the error handler, which maps the
// core's codes with apiError.

type registerRequest struct {
	Username *string `json:"username"`
	Email    *string `json:"email"`
	Password *string `json:"password"`
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
	r, err := s.acct.Register(c.UserContext(), s.client(c, false),
		account.Registration{Username: username, Email: email, Password: pw})
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(fiber.Map{
		"message": "user created",
		"user":    fiber.Map{"username": r.User.Username, "email": r.User.Email},
	})
}

// apiToken is POST /token: the OAuth2 resource owner password grant
// (RFC 6749 §4.3), the refresh token grant (§6), and for registered
// applications the authorization code grant (§4.1.3, OpenID Connect).
// Every malformed request is 400 invalid_request (§5.2).
func (s *Server) apiToken(c *fiber.Ctx) error {
	f, err := oauthForm(c, "grant_type")
	if err != nil {
		return err
	}
	// Each grant reads its own fields; the recipe's grants ignore the
	// others, as they always have.
	var g account.Grant
	switch grant := f.get("grant_type"); {
	case grant == "authorization_code":
		if err := f.check("code", "redirect_uri", "code_verifier"); err != nil {
			return err
		}
		auth, err := clientAuth(c, f)
		if err != nil {
			return err
		}
		r, err := s.oidc.Exchange(c.UserContext(), s.client(c, false), oidc.CodeExchange{Auth: auth, Code: f.get("code"),
			RedirectURI: f.get("redirect_uri"), CodeVerifier: f.get("code_verifier")})
		if err != nil {
			return oauthAnswer(err)
		}
		return tokenAnswer(c, r)
	case grant == "refresh_token":
		if err := f.check("refresh_token", "scope"); err != nil {
			return err
		}
		raw := f.get("refresh_token")
		if raw == "" {
			return oauthError(http.StatusBadRequest, "invalid_request", "refresh_token is required")
		}
		// An application's refresh token: the application authenticates
		// and gets a new ID token too. The recipe's refresh grant reads no
		// client authentication, as it never has.
		auth := func() (oidc.ClientAuth, error) { return clientAuth(c, f) }
		ctx := db.WithRefreshLookup(c.UserContext()) // the token is read once for both
		if r, handled, err := s.oidc.Refresh(ctx, s.client(c, false), auth, raw, f.get("scope")); handled {
			if err != nil {
				return oauthAnswer(err)
			}
			return tokenAnswer(c, r)
		}
		g, err = s.acct.Refresh(ctx, s.client(c, false), raw, f.get("scope"))
		switch account.ErrorCode(err) {
		case account.EUnauthorized:
			return oauthError(http.StatusBadRequest, "invalid_grant", account.MsgInvalidRefresh)
		case account.EInvalid:
			return oauthError(http.StatusBadRequest, "invalid_scope", "The requested scope is wider than the one granted")
		}
	case f.has("grant_type") && grant != "password":
		return oauthError(http.StatusBadRequest, "unsupported_grant_type",
			"grant_type must be password, refresh_token or authorization_code")
	default:
		if err := f.check("username", "password", "scope", "otp"); err != nil {
			return err
		}
		username, pw := f.get("username"), f.get("password")
		for _, field := range []struct{ name, v string }{{"username", username}, {"password", pw}} {
			if field.v == "" {
				return oauthError(http.StatusBadRequest, "invalid_request", field.name+" is required")
			}
		}
		g, err = s.acct.SignIn(c.UserContext(), s.client(c, false), username, pw, f.get("scope"), f.get("otp"))
		switch account.ErrorCode(err) {
		case account.EMFARequired:
			e := oauthError(http.StatusUnauthorized, "mfa_required", account.MsgOTPRequired)
			e.Headers = map[string]string{"WWW-Authenticate": "Bearer"}
			return e
		case account.EBadOTP:
			e := oauthError(http.StatusUnauthorized, "invalid_grant", account.MsgInvalidOTP)
			e.Headers = map[string]string{"WWW-Authenticate": "Bearer"}
			return e
		case account.EUnauthorized:
			return &Error{Status: http.StatusUnauthorized,
				Body:    fiber.Map{"detail": msgIncorrectCredentials, "error": "invalid_grant"},
				Headers: map[string]string{"WWW-Authenticate": "Bearer"}}
		case account.EInvalid:
			return oauthError(http.StatusBadRequest, "invalid_scope", "The requested scope is wider than the account's role allows")
		}
	}
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderPragma, "no-cache")
	body := fiber.Map{"access_token": g.AccessToken, "token_type": "bearer", "expires_in": g.ExpiresIn,
		"refresh_token": g.RefreshToken}
	if g.Scope != "" {
		body["scope"] = g.Scope
	}
	return c.JSON(body)
}

// apiRevoke is POST /revoke (RFC 7009): it ends the token's session and
// answers 200 whether or not the token was valid.
func (s *Server) apiRevoke(c *fiber.Ctx) error {
	// token_type_hint is optional and only a hint (RFC 7009 §2.1): the
	// token's form says which kind it is.
	f, err := oauthForm(c, "token", "token_type_hint")
	if err != nil {
		return err
	}
	raw := f.get("token")
	if raw == "" {
		return oauthError(http.StatusBadRequest, "invalid_request", "token is required")
	}
	if err := s.acct.Revoke(c.UserContext(), s.client(c, false), raw); err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{})
}

// healthz is GET /healthz, the liveness check: 200 while the process
// serves requests. It does not touch the database, so that a database
// outage does not get healthy instances restarted.
func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// readyTimeout bounds the readiness check's query.
const readyTimeout = time.Second

// readyz is GET /readyz, the readiness check: 200 when the database
// answers a query within a second, else 503.
func (s *Server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), readyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("readiness check failed", "error", err.Error())
		return &Error{Status: http.StatusServiceUnavailable, Detail: "The database is not answering.",
			Headers: map[string]string{"Retry-After": "5"}}
	}
	return c.JSON(fiber.Map{"status": "ok"})
}

// meJSON is the body of GET /users/me.
type meJSON struct {
	CreatedAt   string `json:"created_at"`
	Description string `json:"description"`
	Email       string `json:"email"`
	Username    string `json:"username"`
	Role        string `json:"role"`
	// EmailVerified: the owner confirmed the address with a code.
	EmailVerified bool `json:"email_verified"`
	// MFAEnabled: sign-in needs a code from an authenticator app.
	MFAEnabled bool `json:"mfa_enabled"`
}

// apiMe is GET /users/me. It is the request API clients make most, so its
// body is written without reflection (appendMe).
func (s *Server) apiMe(c *fiber.Ctx) error {
	buf := linePool.Get().(*[]byte)
	*buf = appendMe((*buf)[:0], currentUser(c).User)
	c.Response().Header.SetContentType(fiber.MIMEApplicationJSON)
	c.Response().SetBody(*buf)
	linePool.Put(buf)
	return nil
}

// appendMe appends u's meJSON as encoding/json writes it (the same keys,
// order and escaping).
func appendMe(b []byte, u db.User) []byte {
	b = append(b, `{"created_at":"`...)
	b = u.CreatedAt.UTC().AppendFormat(b, time.RFC3339)
	b = append(b, `","description":`...)
	b = appendJSONString(b, u.Username, escapeAPI)
	b = append(b[:len(b)-1], ` authorized","email":`...)
	b = appendJSONString(b, u.Email, escapeAPI)
	b = append(b, `,"username":`...)
	b = appendJSONString(b, u.Username, escapeAPI)
	b = append(b, `,"role":`...)
	b = appendJSONString(b, u.Role, escapeAPI)
	b = append(b, `,"email_verified":`...)
	b = strconv.AppendBool(b, u.EmailVerified)
	b = append(b, `,"mfa_enabled":`...)
	b = strconv.AppendBool(b, u.MFAEnabled)
	return append(b, '}')
}

// apiWelcomeAll is GET /welcome/all-users (the cookbook's RBAC recipe).
func (s *Server) apiWelcomeAll(c *fiber.Ctx) error {
	return c.JSON([]string{"Hello " + currentUser(c).User.Username + ", welcome to your space"})
}

// apiWelcomePremium is GET /welcome/premium-user, for premium and admin.
func (s *Server) apiWelcomePremium(c *fiber.Ctx) error {
	return c.JSON([]string{"Hello " + currentUser(c).User.Username + ", welcome to your premium space"})
}

// apiRegisterPremium is POST /register/premium-user: an admin creates a
// premium account (the recipe let anyone; here only an admin bearer).
func (s *Server) apiRegisterPremium(c *fiber.Ctx) error {
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
	r, err := s.acct.CreateAccount(c.UserContext(), s.admin(c), s.client(c, false),
		account.Registration{Username: username, Email: email, Password: pw, Role: db.RolePremium})
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(fiber.Map{
		"message": "user created",
		"user":    fiber.Map{"username": r.User.Username, "email": r.User.Email, "role": r.User.Role},
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
	// AMR is how the session was signed in to: ["pwd"] or ["pwd","otp"].
	AMR []string `json:"amr"`
	// Via names the sign-in provider the session was signed in with
	// (amr "fed"), when it was.
	Via string `json:"via,omitempty"`
}

// apiListSessions is GET /users/me/sessions.
func (s *Server) apiListSessions(c *fiber.Ctx) error {
	p := currentUser(c)
	list, err := s.acct.Sessions(c.UserContext(), p)
	if err != nil {
		return err
	}
	out := make([]sessionJSON, 0, len(list))
	for _, se := range list {
		out = append(out, sessionOut(se, p.Session.ID))
	}
	return c.JSON(out)
}

func sessionOut(se db.Session, current string) sessionJSON {
	return sessionJSON{
		ID: se.ID, IP: se.IP, UserAgent: se.UserAgent, Current: se.ID == current,
		CreatedAt:  se.CreatedAt.UTC().Format(time.RFC3339),
		LastUsedAt: se.LastUsedAt.UTC().Format(time.RFC3339),
		ExpiresAt:  se.ExpiresAt.UTC().Format(time.RFC3339),
		AMR:        strings.Fields(se.AMR),
		Via:        se.Via,
	}
}

type eventJSON struct {
	Time      string `json:"time"`
	Kind      string `json:"kind"`
	IP        string `json:"ip"`
	UserAgent string `json:"user_agent"`
	Detail    string `json:"detail,omitempty"`
}

func eventOut(e db.Event) eventJSON {
	return eventJSON{Time: e.At.UTC().Format(time.RFC3339), Kind: e.Kind, IP: e.IP, UserAgent: e.UserAgent, Detail: e.Detail}
}

// apiEndSession is DELETE /users/me/sessions/{id}.
func (s *Server) apiEndSession(c *fiber.Ctx) error {
	if err := s.acct.EndSession(c.UserContext(), s.client(c, false), currentUser(c), c.Params("id")); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// apiEndOtherSessions is DELETE /users/me/sessions: sign out everywhere
// else.
func (s *Server) apiEndOtherSessions(c *fiber.Ctx) error {
	if _, err := s.acct.EndOtherSessions(c.UserContext(), s.client(c, false), currentUser(c)); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

type passwordRequest struct {
	Current *string `json:"current_password"`
	New     *string `json:"new_password"`
	// Code is a current authenticator or recovery code, needed when
	// two-factor is on.
	Code *string `json:"code"`
	// Passkey confirms the change for an account without a password (see
	// proof).
	Passkey json.RawMessage `json:"passkey"`
}

// apiChangePassword is POST /users/me/password.
func (s *Server) apiChangePassword(c *fiber.Ctx) error {
	var req passwordRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var problems []fieldError
	var current string
	if !currentUser(c).User.Passwordless {
		current = required(&problems, "current_password", req.Current)
	}
	next := required(&problems, "new_password", req.New)
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	code := optional(&problems, "code", req.Code)
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	if err := s.acct.ChangePassword(c.UserContext(), s.client(c, false), currentUser(c), s.proof(c, current, code, req.Passkey), next); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// apiEvents is GET /users/me/events.
func (s *Server) apiEvents(c *fiber.Ctx) error {
	list, err := s.acct.Events(c.UserContext(), currentUser(c), 50)
	if err != nil {
		return err
	}
	out := make([]eventJSON, 0, len(list))
	for _, e := range list {
		out = append(out, eventOut(e))
	}
	return c.JSON(out)
}

// apiDeleteAccount is DELETE /users/me.
func (s *Server) apiDeleteAccount(c *fiber.Ctx) error {
	var req stepUpRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var problems []fieldError
	proof := s.stepUpProof(c, req, &problems)
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	if err := s.acct.DeleteAccount(c.UserContext(), s.client(c, false), currentUser(c), proof); err != nil {
		return err
	}
	if _, viaCookie, _ := s.credentials(c); viaCookie {
		if err := s.endSession(c); err != nil {
			return err
		}
	}
	return c.SendStatus(http.StatusNoContent)
}

// openAPI is GET /openapi.json.
func (s *Server) openAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Send(openapi.Document)
}

// apiIntrospect is POST /introspect (RFC 7662), for resource servers that
// hold one of INTROSPECTION_TOKENS.
func (s *Server) apiIntrospect(c *fiber.Ctx) error {
	if !s.introspectionAllowed(c) {
		return &Error{Status: http.StatusUnauthorized, Detail: "Not authenticated",
			Headers: map[string]string{"WWW-Authenticate": `Bearer realm="introspection"`}}
	}
	f, err := oauthForm(c, "token", "token_type_hint")
	if err != nil {
		return err
	}
	raw := f.get("token")
	if raw == "" {
		return oauthError(http.StatusBadRequest, "invalid_request", "token is required")
	}
	in, err := s.acct.Introspect(c.UserContext(), raw)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	if !in.Active {
		return c.JSON(fiber.Map{"active": false})
	}
	clientID := in.ClientID
	if clientID == "" {
		clientID = "fiberauth"
	}
	return c.JSON(fiber.Map{"active": true, "sub": in.Subject, "sid": in.SessionID, "scope": in.Scope,
		"token_type": in.TokenType, "iat": in.IssuedAt.Unix(), "exp": in.ExpiresAt.Unix(), "iss": in.Issuer,
		"aud": token.Audience, "client_id": clientID})
}

// introspectionAllowed checks the caller's bearer secret against
// INTROSPECTION_TOKENS.
func (s *Server) introspectionAllowed(c *fiber.Ctx) bool {
	return bearerIn(c, s.cfg.IntrospectionTokens)
}

// bearerIn tells, in constant time, whether the request's bearer secret is
// one of secrets.
func bearerIn(c *fiber.Ctx, secrets []string) bool {
	scheme, sent, _ := strings.Cut(c.Get(fiber.HeaderAuthorization), " ")
	if !strings.EqualFold(scheme, "bearer") || sent == "" {
		return false
	}
	ok := 0
	for _, t := range secrets {
		ok |= subtle.ConstantTimeCompare([]byte(strings.TrimSpace(sent)), []byte(t))
	}
	return ok == 1
}

// jwks is GET /.well-known/jwks.json: the public keys that verify this
// service's tokens.
func (s *Server) jwks(c *fiber.Ctx) error {
	s.keys.reload(c.UserContext(), keyReloadMin)
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.JSON(fiber.Map{"keys": s.acct.Tokens().JWKS(s.acct.Now())})
}

// metadata is GET /.well-known/oauth-authorization-server (RFC 8414): the
// same document as OpenID Connect Discovery's.
func (s *Server) metadata(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.JSON(s.oidc.Metadata())
}
