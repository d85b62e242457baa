package app

import (
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

	"fiberauth/static"
)

// surface is who a route answers: API clients (JSON, errors as
// {"detail": ...}) or people in a browser (HTML pages). Each route declares
// its surface here, and the error handler reads it from the request; this
// is the only place that decides it.
type surface int

const (
	surfaceAPI surface = iota + 1
	surfacePage
)

// route is a registered route with its surface, for the error handler and
// the tests.
type route struct {
	Method, Path string
	Surface      surface
	// Reload is, for a form submission, the page to reload after a
	// refused CSRF check.
	Reload string
}

// routes lists every route of the service.
func (s *Server) routes() {
	a := s.app
	a.Use(s.envelope)

	a.Use("/static", filesystem.New(filesystem.Config{
		Root:   static.FS(),
		MaxAge: int((24 * time.Hour).Seconds()),
	}))

	// JSON API (the recipe's paths).
	s.api("POST", "/register/user", s.apiRegister)
	s.api("POST", "/token", s.apiToken)
	s.api("POST", "/revoke", s.apiRevoke)
	s.api("GET", "/healthz", s.healthz)
	s.api("GET", "/readyz", s.readyz)
	s.api("GET", "/openapi.json", s.openAPI)
	s.api("POST", "/introspect", s.apiIntrospect)
	s.api("GET", "/.well-known/jwks.json", s.jwks)
	s.api("GET", "/.well-known/oauth-authorization-server", s.metadata)
	s.api("GET", "/.well-known/openid-configuration", s.openIDConfiguration)
	s.api("GET", "/metrics", s.serveMetrics)

	// Guards are attached per route, not with Use on a prefix, so that an
	// unknown path or method answers 404 or 405 rather than 401.
	auth := s.requireAPI
	// Tokens issued to applications (OpenID Connect) are good only where
	// apps says so, never on the account's own endpoints.
	apps := s.allowApps
	s.api("GET", "/userinfo", apps, auth, s.apiUserInfo)
	s.api("POST", "/userinfo", apps, auth, s.apiUserInfo)
	s.api("GET", "/users/me", auth, s.apiMe)
	s.api("GET", "/users/me/apps", auth, s.apiConnectedApps)
	s.api("GET", "/users/me/providers", auth, s.apiIdentities)
	s.api("DELETE", "/users/me/providers/:name", auth, s.apiUnlink)
	s.api("DELETE", "/users/me/apps/:id", auth, s.apiRevokeApp)
	s.api("DELETE", "/users/me", auth, s.apiDeleteAccount)
	s.api("GET", "/users/me/sessions", auth, s.apiListSessions)
	s.api("DELETE", "/users/me/sessions", auth, s.apiEndOtherSessions)
	s.api("DELETE", "/users/me/sessions/:id", auth, s.apiEndSession)
	s.api("POST", "/users/me/password", auth, s.apiChangePassword)
	s.api("GET", "/users/me/events", auth, s.apiEvents)
	s.api("POST", "/users/me/email", auth, s.apiChangeEmail)
	s.api("POST", "/user/enable-mfa", auth, s.apiStartTOTP)
	s.api("POST", "/users/me/mfa/totp", auth, s.apiStartTOTP)
	s.api("POST", "/users/me/mfa/totp/confirm", auth, s.apiConfirmTOTP)
	s.api("DELETE", "/users/me/mfa/totp", auth, s.apiDisableTOTP)
	s.api("POST", "/users/me/mfa/recovery-codes", auth, s.apiNewRecoveryCodes)
	s.api("POST", "/verify-totp", s.apiVerifyTOTP)
	s.api("POST", "/users/me/email/verify", auth, s.apiVerifyEmail)
	s.api("POST", "/users/me/email/verify/resend", auth, s.apiResendVerification)

	// Passkeys: the JSON endpoints of the page script. Those without a
	// session refuse requests another site started.
	s.api("GET", "/users/me/passkeys", auth, s.apiListPasskeys)
	s.api("POST", "/users/me/passkeys/options", auth, s.apiPasskeyOptions)
	s.api("POST", "/users/me/passkeys", auth, s.apiAddPasskey)
	s.api("PATCH", "/users/me/passkeys/:id", auth, s.apiRenamePasskey)
	s.api("DELETE", "/users/me/passkeys/:id", auth, s.apiRemovePasskey)
	s.api("POST", "/users/me/passkeys/confirm/options", auth, s.apiConfirmOptions)
	s.api("POST", "/passkeys/login/options", sameSite, s.apiPasskeyLoginOptions)
	s.api("POST", "/passkeys/login", sameSite, s.apiPasskeyLogin)
	s.api("POST", "/register/passkey/options", sameSite, s.apiSignupOptions)
	s.api("POST", "/register/passkey", sameSite, s.apiSignup)
	s.api("POST", "/login/mfa/passkey/options", sameSite, s.apiSecondStepOptions)
	s.api("POST", "/login/mfa/passkey", sameSite, s.apiSecondStep)

	// Forgotten passwords: one path for both surfaces, JSON for the API,
	// forms for the pages.
	s.page("GET", "/password/forgot", s.csrfIssue, s.pageForgot)
	s.dual("/password/forgot", "/password/forgot", s.apiForgot, s.submitForgot)
	s.page("GET", "/password/reset", s.csrfIssue, s.pageReset)
	s.dual("/password/reset", "/password/reset", s.apiReset, s.submitReset)

	// The cookbook's RBAC recipe: roles are checked in requireRole only.
	s.api("GET", "/welcome/all-users", apps, auth, s.requireRole("basic"), s.apiWelcomeAll)
	s.api("GET", "/welcome/premium-user", apps, auth, s.requireRole("premium"), s.apiWelcomePremium)
	admin := s.requireRole("admin")
	s.api("POST", "/register/premium-user", auth, admin, s.apiRegisterPremium)

	// Administration, as JSON.
	s.api("GET", "/admin/api/users", auth, admin, s.apiAdminUsers)
	s.api("GET", "/admin/api/users/:id", auth, admin, s.apiAdminUser)
	s.api("DELETE", "/admin/api/users/:id", auth, admin, s.apiUserAction(s.acct.RemoveUser))
	s.api("PUT", "/admin/api/users/:id/role", auth, admin, s.apiAdminSetRole)
	s.api("DELETE", "/admin/api/users/:id/sessions", auth, admin, s.apiAdminEndSessions)
	s.api("DELETE", "/admin/api/users/:id/sessions/:sid", auth, admin, s.apiAdminEndSession)
	s.api("DELETE", "/admin/api/users/:id/limits", auth, admin, s.apiUserAction(s.acct.ClearUserLimits))
	s.api("DELETE", "/admin/api/users/:id/mfa", auth, admin, s.apiUserAction(s.acct.DisableUserMFA))
	s.api("DELETE", "/admin/api/users/:id/passkeys/:pid", auth, admin, s.apiAdminRemovePasskey)
	s.api("GET", "/admin/api/audit", auth, admin, s.apiAdminAudit)
	s.api("GET", "/admin/api/clients", auth, admin, s.apiAdminClients)
	s.api("POST", "/admin/api/clients", auth, admin, s.apiAdminCreateClient)
	s.api("POST", "/admin/api/clients/:id/secret", auth, admin, s.apiAdminRotateClient)
	s.api("DELETE", "/admin/api/clients/:id", auth, admin, s.apiAdminDeleteClient)
	s.api("GET", "/admin/api/providers", auth, admin, s.apiAdminProviders)
	s.api("POST", "/admin/api/providers", auth, admin, s.apiAdminAddProvider)
	s.api("DELETE", "/admin/api/providers/:name", auth, admin, s.apiAdminDeleteProvider)

	// Browser pages. Forms name the page to reload after a refused CSRF
	// check.
	s.page("GET", "/", s.pageIndex)
	s.page("GET", "/docs", s.docs)
	s.page("GET", "/common-passwords.txt", s.commonPasswords)
	s.page("GET", "/login", s.csrfIssue, s.pageLogin)
	s.form("/login", "/login", s.csrfCheck, s.submitLogin)
	s.page("GET", "/login/mfa", s.csrfIssue, s.pageSecondStep)
	s.form("/login/mfa", "/login", s.csrfCheck, s.submitSecondStep)
	// Sign-in with other providers (after /login/mfa, which no provider
	// may be named).
	s.page("GET", "/login/signup", s.csrfIssue, s.pageFedSignup)
	s.form("/login/signup", "/login/signup", s.csrfCheck, s.submitFedSignup)
	s.page("GET", "/login/link", s.requirePage, s.csrfIssue, s.pageFedLinkConfirm)
	s.form("/login/link", "/login/link", s.requirePage, s.csrfCheck, s.submitFedLinkConfirm)
	s.page("GET", "/login/:name", s.pageFedStart)
	s.page("GET", "/login/:name/callback", s.csrfIssue, s.pageFedCallback)
	s.page("GET", "/register", s.csrfIssue, s.pageRegister)
	s.form("/register", "/register", s.csrfCheck, s.submitRegister)
	s.form("/logout", "/profile", s.csrfCheck, s.submitLogout)
	// OpenID Connect: the authorization endpoint (and its consent form),
	// and RP-initiated logout.
	s.page("GET", "/authorize", s.csrfIssue, s.pageAuthorize)
	s.form("/authorize", "/profile", s.csrfCheck, s.submitAuthorize)
	s.page("GET", "/logout", s.csrfIssue, s.pageEndSession)
	s.page("GET", "/email/verify", s.csrfIssue, s.pageVerifyEmail)
	s.form("/email/verify", "/email/verify", s.csrfCheck, s.submitVerifyEmail)
	s.form("/email/verify/resend", "/email/verify", s.csrfCheck, s.submitResendByLogin)

	page := s.requirePage
	s.page("GET", "/profile", page, s.csrfIssue, s.pageProfile)
	s.form("/profile/sessions/others/end", "/profile", page, s.csrfCheck, s.submitEndOtherSessions)
	s.form("/profile/sessions/:id/end", "/profile", page, s.csrfCheck, s.submitEndSession)
	s.form("/profile/apps/:id/revoke", "/profile", page, s.csrfCheck, s.submitRevokeApp)
	s.page("GET", "/profile/password", page, s.csrfIssue, s.pagePassword)
	s.form("/profile/password", "/profile/password", page, s.csrfCheck, s.submitPassword)
	s.form("/profile/email/resend", "/profile", page, s.csrfCheck, s.submitResendVerification)
	s.page("GET", "/profile/email", page, s.csrfIssue, s.pageChangeEmail)
	s.form("/profile/email", "/profile/email", page, s.csrfCheck, s.submitChangeEmail)
	s.form("/profile/mfa/setup", "/profile", page, s.csrfCheck, s.submitMFASetup)
	s.page("GET", "/profile/mfa", page, s.csrfIssue, s.pageMFA)
	s.form("/profile/mfa/confirm", "/profile/mfa", page, s.csrfCheck, s.submitMFAConfirm)
	s.page("GET", "/profile/mfa/off", page, s.csrfIssue, s.pageMFAOff)
	s.form("/profile/mfa/off", "/profile/mfa/off", page, s.csrfCheck, s.submitMFAOff)
	s.page("GET", "/profile/mfa/recovery", page, s.csrfIssue, s.pageNewRecoveryCodes)
	s.form("/profile/mfa/recovery", "/profile/mfa/recovery", page, s.csrfCheck, s.submitNewRecoveryCodes)
	s.page("GET", "/profile/delete", page, s.csrfIssue, s.pageDelete)
	s.form("/profile/delete", "/profile/delete", page, s.csrfCheck, s.submitDelete)
	s.form("/profile/providers/:name/link", "/profile", page, s.csrfCheck, s.submitFedLink)
	s.form("/profile/providers/:name/unlink", "/profile", page, s.csrfCheck, s.submitFedUnlink)
	s.form("/profile/passkeys/:id/name", "/profile", page, s.csrfCheck, s.submitRenamePasskey)
	s.page("GET", "/profile/passkeys/:id/remove", page, s.csrfIssue, s.pageRemovePasskey)
	s.form("/profile/passkeys/:id/remove", "/profile", page, s.csrfCheck, s.submitRemovePasskey)

	// Administration pages.
	s.page("GET", "/admin", page, admin, s.csrfIssue, s.pageAdminUsers)
	s.page("GET", "/admin/audit", page, admin, s.csrfIssue, s.pageAdminAudit)
	s.page("GET", "/admin/users/:id", page, admin, s.csrfIssue, s.pageAdminUser)
	s.page("GET", "/admin/clients", page, admin, s.csrfIssue, s.pageAdminClients)
	s.form("/admin/clients", "/admin/clients", page, admin, s.csrfCheck, s.submitAdminCreateClient)
	s.form("/admin/clients/:id/secret", "/admin/clients", page, admin, s.csrfCheck, s.submitAdminRotateClient)
	s.form("/admin/clients/:id/delete", "/admin/clients", page, admin, s.csrfCheck, s.submitAdminDeleteClient)
	s.page("GET", "/admin/providers", page, admin, s.csrfIssue, s.pageAdminProviders)
	s.form("/admin/providers", "/admin/providers", page, admin, s.csrfCheck, s.submitAdminAddProvider)
	s.form("/admin/providers/:name/delete", "/admin/providers", page, admin, s.csrfCheck, s.submitAdminDeleteProvider)
	s.form("/admin/users/:id/role", "/admin", page, admin, s.csrfCheck, s.submitAdminRole)
	s.form("/admin/users/:id/sessions/end", "/admin", page, admin, s.csrfCheck, s.submitAdminEndSessions)
	s.form("/admin/users/:id/sessions/:sid/end", "/admin", page, admin, s.csrfCheck, s.submitAdminEndSession)
	s.form("/admin/users/:id/limits/clear", "/admin", page, admin, s.csrfCheck, s.formUserAction(s.acct.ClearUserLimits, "limits"))
	s.form("/admin/users/:id/mfa/off", "/admin", page, admin, s.csrfCheck, s.formUserAction(s.acct.DisableUserMFA, "mfa"))
	s.form("/admin/users/:id/delete", "/admin", page, admin, s.csrfCheck, s.formUserAction(s.acct.RemoveUser, "deleted"))
	s.form("/admin/users/:id/passkeys/:pid/remove", "/admin", page, admin, s.csrfCheck, s.submitAdminRemovePasskey)
}

func (s *Server) api(method, path string, handlers ...fiber.Handler) {
	s.add(route{Method: method, Path: path, Surface: surfaceAPI}, handlers)
}

func (s *Server) page(method, path string, handlers ...fiber.Handler) {
	s.add(route{Method: method, Path: path, Surface: surfacePage}, handlers)
}

// form is a page's POST route; reload is the page to reload when its CSRF
// check fails.
func (s *Server) form(path, reload string, handlers ...fiber.Handler) {
	s.add(route{Method: "POST", Path: path, Surface: surfacePage, Reload: reload}, handlers)
}

// dual is a POST path of both surfaces: a JSON body is an API call,
// answered by api; anything else is a page's form, answered by page after
// the CSRF check, which reloads reload when it fails.
func (s *Server) dual(path, reload string, api, page fiber.Handler) {
	ar := route{Method: "POST", Path: path, Surface: surfaceAPI}
	pr := route{Method: "POST", Path: path, Surface: surfacePage, Reload: reload}
	s.table = append(s.table, ar, pr)
	s.app.Add("POST", path, func(c *fiber.Ctx) error {
		if mediaType(c) == fiber.MIMEApplicationJSON {
			c.Locals(routeKey, &ar)
			return api(c)
		}
		c.Locals(routeKey, &pr)
		return s.csrfCheck(c)
	}, page)
}

func (s *Server) add(r route, handlers []fiber.Handler) {
	s.table = append(s.table, r)
	mark := func(c *fiber.Ctx) error {
		c.Locals(routeKey, &r)
		return c.Next()
	}
	s.app.Add(r.Method, r.Path, append([]fiber.Handler{mark}, handlers...)...)
	if r.Method == fiber.MethodGet && r.Surface == surfacePage {
		// Pages answer HEAD too (link checkers and mail scanners send
		// it); the body is left out.
		s.app.Add(fiber.MethodHead, r.Path, append([]fiber.Handler{mark}, handlers...)...)
	}
}

// routeOf returns the route a request matched, or nil before routing (413,
// 431) and for unknown paths and methods.
func routeOf(c *fiber.Ctx) *route {
	r, _ := c.Locals(routeKey).(*route)
	return r
}

// answersJSON tells whether an error for this request is answered in JSON:
// for API routes always; for unknown paths unless the client asks for
// HTML.
func answersJSON(c *fiber.Ctx) bool {
	if r := routeOf(c); r != nil {
		return r.Surface == surfaceAPI
	}
	return !strings.Contains(c.Get(fiber.HeaderAccept), "text/html")
}
