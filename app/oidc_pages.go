package app

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"fiberauth/app/account"
	"fiberauth/app/oidc"
	"fiberauth/app/valid"
	"fiberauth/db"
)

// The OpenID Connect provider's endpoints: thin adapters over app/oidc.

// queryValues returns the request's query string with every value of every
// parameter (fasthttp's Query keeps only the first).
func queryValues(c *fiber.Ctx) url.Values {
	q := url.Values{}
	c.Request().URI().QueryArgs().VisitAll(func(k, v []byte) {
		q[string(k)] = append(q[string(k)], string(v))
	})
	return q
}

// oauthAnswer turns a refusal of the provider into the token endpoint's
// answer (RFC 6749 §5.2); other errors go to the error handler.
func oauthAnswer(err error) error {
	var e *oidc.Error
	if !errors.As(err, &e) {
		return err
	}
	out := oauthError(e.Status, e.Code, e.Description)
	switch e.Status {
	case http.StatusUnauthorized:
		out.Headers = map[string]string{"WWW-Authenticate": `Basic realm="token"`}
	case http.StatusForbidden:
		out.Headers = map[string]string{"WWW-Authenticate": `Bearer error="` + e.Code + `", error_description="` + e.Description + `"`}
	}
	return out
}

// authorizeError answers a refused authorization request: back to the
// application when its client and redirect URI are valid, else an error
// page here (never a redirect to an unchecked address).
func (s *Server) authorizeError(c *fiber.Ctx, err error) error {
	var e *oidc.Error
	if !errors.As(err, &e) {
		return err
	}
	if e.Redirect {
		return c.Redirect(s.oidc.ErrorRedirect(e), fiber.StatusSeeOther)
	}
	return s.renderErrorPage(c, http.StatusBadRequest, e.Description, requestID(c))
}

// pageAuthorize is GET /authorize: the authorization endpoint. Without a
// session (or with one older than the request allows) the person signs in
// on the login page and comes back; an application that is not first-party
// is shown the consent page unless the person allowed it these scopes
// before; then the browser goes back to the application with a code.
func (s *Server) pageAuthorize(c *fiber.Ctx) error {
	return s.authorize(c, queryValues(c), "")
}

// submitAuthorize is POST /authorize: the consent page's decision.
func (s *Server) submitAuthorize(c *fiber.Ctx) error {
	f := pageForm(c)
	decision := f.get("decision")
	q := url.Values{}
	for k, v := range f {
		if k != csrfField && k != "decision" {
			q[k] = v
		}
	}
	if decision != "allow" && decision != "deny" {
		return s.renderErrorPage(c, http.StatusBadRequest, "Choose Allow or Deny.", requestID(c))
	}
	return s.authorize(c, q, decision)
}

func (s *Server) authorize(c *fiber.Ctx, q url.Values, decision string) error {
	ctx := c.UserContext()
	r, err := s.oidc.ParseAuthorize(ctx, q)
	if err != nil {
		return s.authorizeError(c, err)
	}
	p := s.signedIn(c)
	var se *db.Session
	if p != nil {
		se = &p.Session
		c.Locals(principalKey, p)
	}
	need, err := s.oidc.NeedsSignIn(r, se)
	if err != nil {
		return s.authorizeError(c, err)
	}
	if need == oidc.NeedsLogin {
		to := "/login?next=" + queryEscape(s.oidc.LoginReturn(r))
		if p != nil {
			to += "&force=1"
		}
		if r.LoginHint != "" {
			to += "&login_hint=" + url.QueryEscape(r.LoginHint)
		}
		return c.Redirect(to, fiber.StatusSeeOther)
	}
	if decision != "" {
		if err := s.oidc.Consent(ctx, s.client(c, true), r, p, decision == "allow"); err != nil {
			return s.authorizeError(c, err)
		}
	} else {
		ask, err := s.oidc.NeedsConsent(ctx, r, p)
		if err != nil {
			return s.authorizeError(c, err)
		}
		if ask {
			return s.consentPage(c, r, p)
		}
	}
	to, err := s.oidc.IssueCode(ctx, s.client(c, true), r, p)
	if err != nil {
		return err
	}
	return c.Redirect(to, fiber.StatusSeeOther)
}

// scopeWords says what each scope lets an application see or do.
var scopeWords = map[string]string{
	oidc.ScopeOpenID:  "Know who you are on this service (an identifier of your account, not your username)",
	oidc.ScopeProfile: "See your username",
	oidc.ScopeEmail:   "See your email address and whether it is verified",
	oidc.ScopeOffline: "Stay connected when you are not using it (until you revoke its access)",
	db.RoleBasic:      "Use the member space",
	db.RolePremium:    "Use the premium space",
	db.RoleAdmin:      "Act as an administrator",
}

// consentView is what the consent page shows.
type consentView struct {
	App    string
	Scopes []string
	Params []hiddenField
}

type hiddenField struct{ Name, Value string }

func (s *Server) consentPage(c *fiber.Ctx, r *oidc.AuthRequest, p *account.Principal) error {
	v := &consentView{App: r.Client.Name}
	for _, sc := range strings.Fields(oidc.Grantable(r, p)) {
		if w, ok := scopeWords[sc]; ok {
			v.Scopes = append(v.Scopes, w)
		}
	}
	names := make([]string, 0, len(r.Params))
	for k := range r.Params {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		v.Params = append(v.Params, hiddenField{Name: k, Value: r.Params.Get(k)})
	}
	return s.render(c, http.StatusOK, "consent", page{Title: "Allow " + r.Client.Name + "?", Consent: v,
		FormTargets: []string{r.RedirectURI}})
}

// apiUserInfo is GET and POST /userinfo (OpenID Connect Core §5.3): the
// claims the access token's scopes allow.
func (s *Server) apiUserInfo(c *fiber.Ctx) error {
	info, err := s.oidc.UserInfoOf(currentUser(c))
	if err != nil {
		return oauthAnswer(err)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(info)
}

// openIDConfiguration is GET /.well-known/openid-configuration.
func (s *Server) openIDConfiguration(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.JSON(s.oidc.Metadata())
}

// clientAuth reads how a client identified itself at the token endpoint:
// HTTP Basic (client_secret_basic; id and secret form-encoded first, RFC
// 6749 §2.3.1), or client_id and client_secret in the body
// (client_secret_post), or client_id alone (a public client). Both ways at
// once are refused.
func clientAuth(c *fiber.Ctx, f form) (oidc.ClientAuth, error) {
	var a oidc.ClientAuth
	if err := f.check("client_id", "client_secret"); err != nil {
		return a, err
	}
	// Another scheme than Basic is not client authentication (clients of
	// the recipe's refresh grant may send their old bearer token).
	if scheme, rest, _ := strings.Cut(c.Get(fiber.HeaderAuthorization), " "); strings.EqualFold(scheme, "basic") {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
		id, secret, ok := strings.Cut(string(raw), ":")
		if err != nil || !ok {
			return a, oauthError(http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		}
		if a.ID, err = url.QueryUnescape(id); err == nil {
			a.Secret, err = url.QueryUnescape(secret)
		}
		if err != nil || valid.Text(a.ID) != "" || valid.Text(a.Secret) != "" {
			return a, oauthError(http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		}
		a.Basic, a.HasSecret = true, true
		if f.has("client_secret") || (f.has("client_id") && f.get("client_id") != a.ID) {
			return a, oauthError(http.StatusBadRequest, "invalid_request", "Use one way of client authentication")
		}
		return a, nil
	}
	a.ID, a.Secret, a.HasSecret = f.get("client_id"), f.get("client_secret"), f.has("client_secret")
	return a, nil
}

// tokenAnswer writes an application's token response.
func tokenAnswer(c *fiber.Ctx, r oidc.TokenResponse) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderPragma, "no-cache")
	return c.JSON(r)
}

// pageEndSession is GET /logout: RP-initiated logout (OpenID Connect
// RP-Initiated Logout 1.0). With an id_token_hint naming this browser's
// session the person is signed out at once; otherwise a page asks. Then
// the browser goes to the application's registered post-logout URI, or to
// the login page.
func (s *Server) pageEndSession(c *fiber.Ctx) error {
	es, err := s.oidc.ParseEndSession(c.UserContext(), queryValues(c))
	if err != nil {
		var e *oidc.Error
		if errors.As(err, &e) {
			return s.renderErrorPage(c, http.StatusBadRequest, e.Description, requestID(c))
		}
		return err
	}
	p := s.signedIn(c)
	if p == nil || es.Matches(p) {
		if p != nil {
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
	c.Locals(principalKey, p)
	v := &logoutView{App: es.Client.Name}
	for _, k := range []string{"client_id", "post_logout_redirect_uri", "state"} {
		if val := c.Query(k); val != "" {
			v.Params = append(v.Params, hiddenField{Name: k, Value: val})
		}
	}
	if es.Client.ID != "" && c.Query("client_id") == "" {
		v.Params = append(v.Params, hiddenField{Name: "client_id", Value: es.Client.ID})
	}
	return s.render(c, http.StatusOK, "logout", page{Title: "Sign out?", Logout: v, FormTargets: []string{es.Return}})
}

// logoutView is what the logout confirmation shows.
type logoutView struct {
	App    string
	Params []hiddenField
}

// afterLogout sends the browser where a logout request asked, or to the
// login page.
func (s *Server) afterLogout(c *fiber.Ctx, es oidc.EndSession) error {
	if es.Return != "" {
		return c.Redirect(es.Return, fiber.StatusSeeOther)
	}
	return c.Redirect("/login?done=signed_out", fiber.StatusSeeOther)
}

// connectedAppJSON is one entry of GET /users/me/apps.
type connectedAppJSON struct {
	ClientID   string `json:"client_id"`
	Name       string `json:"name"`
	Scope      string `json:"scope"`
	Since      string `json:"since"`
	LastUsedAt string `json:"last_used_at,omitempty"`
}

// apiConnectedApps is GET /users/me/apps.
func (s *Server) apiConnectedApps(c *fiber.Ctx) error {
	list, err := s.oidc.ConnectedApps(c.UserContext(), currentUser(c))
	if err != nil {
		return err
	}
	out := make([]connectedAppJSON, 0, len(list))
	for _, a := range list {
		j := connectedAppJSON{ClientID: a.Client.ID, Name: a.Client.Name, Scope: a.Scope, Since: a.Since.UTC().Format(time.RFC3339)}
		if !a.LastUsed.IsZero() {
			j.LastUsedAt = a.LastUsed.UTC().Format(time.RFC3339)
		}
		out = append(out, j)
	}
	return c.JSON(out)
}

// apiRevokeApp is DELETE /users/me/apps/{client_id}.
func (s *Server) apiRevokeApp(c *fiber.Ctx) error {
	if err := s.oidc.RevokeApp(c.UserContext(), s.client(c, false), currentUser(c), c.Params("id")); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// submitRevokeApp is POST /profile/apps/{client_id}/revoke.
func (s *Server) submitRevokeApp(c *fiber.Ctx) error {
	if err := s.oidc.RevokeApp(c.UserContext(), s.client(c, true), currentUser(c), c.Params("id")); err != nil {
		if status, msg, _, ok := pageError(c, err); ok {
			return errDetail(status, msg)
		}
		return err
	}
	return c.Redirect("/profile?done=app_revoked", fiber.StatusSeeOther)
}
