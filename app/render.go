package app

import (
	"context"
	"html/template"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"fiberauth/app/account"
	"fiberauth/db"
)

// page is what every template receives. Layout pieces (partials/head and
// partials/foot) are included by each page rather than wrapped around it
// with the engine's layout feature, whose rendering takes a global lock.
type page struct {
	Title  string
	CSRF   string
	User   *db.User
	Notice string
	Error  string
	// Warning is a caution beside an error (sign-in about to pause).
	Warning string
	Next    string
	Fields  []fieldView

	// Profile.
	Sessions []sessionView
	Events   []db.Event
	// PendingEmail is the new address of a change not confirmed yet.
	PendingEmail string

	// Email flows: Login is the account named in the form; Unverified
	// marks a sign-in refused for an unverified address.
	Login      string
	Unverified bool
	// Unproven is what an account had set up before its address was
	// proven, which the address's owner says is theirs or not; Code is
	// the code that proved it, sent again with the answer.
	Unproven *account.Unproven
	Code     string

	// Two-factor: MFA marks the login page's second step, Recovery its
	// recovery-code form; QR and Secret are a pending set-up; Codes are
	// recovery codes shown once, Download the same as a text file;
	// RecoveryLeft counts the unused ones; Action and Button name a
	// confirmation form's target and button.
	MFA, Recovery  bool
	QR             template.HTML
	Secret         string
	Codes          []string
	Download       template.URL
	RecoveryLeft   int
	Action, Button string

	// Passkeys: On says the server has them; PasskeyList is the
	// account's, Passkey the one a page is about; HasPasskeys says the
	// account of a second step has one.
	PasskeysOn bool
	// PasskeysAt is where passkeys work when this page's address cannot
	// have them (an IP address).
	PasskeysAt  string
	PasskeyList []db.Passkey
	Passkey     *db.Passkey
	HasPasskeys bool

	// Admin area.
	Admin *adminView
	// Clients is the admin's list of applications.
	Clients *clientsView

	// FormTargets are addresses outside this site that a form of the page
	// may end at after its redirects (an application's registered redirect
	// URI); the page's Content-Security-Policy allows their origins.
	FormTargets []string

	// Sign-in with other providers: the buttons (Providers), the pages of
	// a sign-in (Fed), the profile's connected sign-ins (Identities).
	Providers []db.Provider
	// Reauth is how an account that signs in only with providers confirms
	// the page's action (set a password, change the address, delete).
	Reauth        *reauthView
	Fed           *fedView
	SignIns       []signInView
	ProviderAdmin *providersView

	// OpenID Connect: the consent page, the logout confirmation, and the
	// profile's connected applications.
	Consent *consentView
	Logout  *logoutView
	Apps    []db.ConnectedApp

	// Error page.
	Heading   string
	Message   string
	RequestID string
	Back      string
	BackLabel string
}

// adminView is what the admin pages show.
type adminView struct {
	Users       []db.User
	Target      *db.User
	Roles       []string
	Audit       []db.Audit
	Search      string
	Total       int
	Page, Pages int
	Prev, Next  string
}

// newPasswordHint is the hint under every new-password field: the
// registration rules in words people know.
const newPasswordHint = "At least 8 characters, up to 72 (fewer if you use accented letters or emoji), and not a common password."

// fieldView is one labelled form field. Names are "username" and "login"
// fields are typed exactly: no automatic capitals, no spelling fixes.
type fieldView struct {
	Name, Label, Type, Autocomplete, Value, Error, Hint string
	Required, Autofocus                                 bool
	MaxLength                                           int
}

// Exact reports whether the field holds a name typed exactly (no capitals
// added by a phone's keyboard, no spelling fixes).
func (f fieldView) Exact() bool {
	switch f.Name {
	case "username", "login", "code", "new_email", "email":
		return true
	}
	return false
}

type sessionView struct {
	db.Session
	Current bool
	// ViaName is the display name of the provider it was signed in with.
	ViaName string
}

// sessionViews shows sessions, with the current one (id) first and the
// names of the providers they were signed in with.
func (s *Server) sessionViews(ctx context.Context, list []db.Session, current string) []sessionView {
	views := make([]sessionView, 0, len(list))
	names := map[string]string{}
	for _, first := range []bool{true, false} {
		for _, se := range list {
			if (se.ID == current) != first {
				continue
			}
			v := sessionView{Session: se, Current: first && current != ""}
			if se.Via != "" {
				if _, ok := names[se.Via]; !ok {
					names[se.Via] = s.acct.ProviderName(ctx, se.Via)
				}
				v.ViaName = names[se.Via]
			}
			views = append(views, v)
		}
	}
	return views
}

// render writes a page with status. The engine renders into a buffer, so
// a template error becomes a 500 instead of a half-written page.
func (s *Server) render(c *fiber.Ctx, status int, name string, p page) error {
	// Each error is shown once: under its field when it has one; the
	// banner is for errors that belong to no field.
	for _, f := range p.Fields {
		if f.Error != "" {
			p.Error = ""
			break
		}
	}
	if p.CSRF == "" {
		p.CSRF, _ = c.Locals(csrfLocal).(string)
	}
	if p.User == nil {
		if pr := currentUser(c); pr != nil {
			p.User = &pr.User
		}
	}
	targets := p.FormTargets
	if strings.HasPrefix(p.Next, "/authorize?") {
		// A form that signs in on the way to an application ends, after
		// its redirects, at the application's redirect URI.
		if u, err := url.Parse(p.Next); err == nil {
			if r, err := s.oidc.ParseAuthorize(c.UserContext(), u.Query()); err == nil {
				targets = append(targets, r.RedirectURI)
			}
		}
	}
	if len(targets) > 0 {
		c.Set("Content-Security-Policy", cspWithFormTargets(targets))
	}
	if (name == "login" && !p.MFA) || name == "register" {
		p.Providers = s.providerButtons(c)
	}
	if name == "password" || name == "delete" || name == "email" {
		p.Reauth = s.reauth(c, p.User)
	}
	p.PasskeysOn = s.acct.PasskeysOn()
	if p.PasskeysOn && isIP(c.Hostname()) && len(s.cfg.WebAuthnOrigins) > 0 {
		// Browsers hold no passkeys for an address (http://127.0.0.1:8000):
		// the pages say where they work instead.
		p.PasskeysOn, p.PasskeysAt = false, s.cfg.WebAuthnOrigins[0]
	}
	c.Status(status)
	return c.Render(name, p)
}

// cspWithFormTargets is the pages' Content-Security-Policy with the origins
// of targets added to form-action: browsers hold a form's submission to
// form-action through its redirects, and a sign-in for an application ends
// at the application (a redirect URI registered for it, checked before it
// is added here).
func cspWithFormTargets(targets []string) string {
	origins := "'self'"
	for _, t := range targets {
		u, err := url.Parse(t)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			continue
		}
		origins += " " + u.Scheme + "://" + u.Host
	}
	return strings.Replace(cspPages, "form-action 'self'", "form-action "+origins, 1)
}

// renderErrorPage shows an error to a browser.
func (s *Server) renderErrorPage(c *fiber.Ctx, status int, msg, rid string) error {
	p := page{Title: http.StatusText(status), Heading: http.StatusText(status), Message: msg,
		Back: "/", BackLabel: "Go to the start page"}
	switch {
	case status >= 500:
		p.Heading = "Something went wrong"
		p.Message = "The server could not finish your request. Please try again; if it keeps happening, quote the request id below."
		p.RequestID = rid
	case status == http.StatusForbidden:
		p.Heading = "Please reload and try again"
		p.Back = reloadTarget(c)
		p.BackLabel = "Reload the form"
	case status == http.StatusTooManyRequests:
		p.Heading = "Too many attempts"
		p.Message = "Too many attempts. Wait a little, then try again."
	case status == http.StatusNotFound:
		p.Heading = "Page not found"
		p.Message = "There is no page at this address."
	}
	if p.Message == "" {
		p.Message = http.StatusText(status)
	}
	// Error pages carry no account data and no forms that need a token.
	p.CSRF = "-"
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	if err := c.Render("error", p); err != nil {
		return c.Status(status).SendString(p.Message)
	}
	return nil
}

// reloadTarget is the page to go back to after a refused form: the one its
// route names (routes.go).
func reloadTarget(c *fiber.Ctx) string {
	if r := routeOf(c); r != nil && r.Reload != "" {
		return r.Reload
	}
	return "/"
}

// amrWords says how a session was signed in to, after "signed in ...";
// "" for a password alone.
func amrWords(amr, via string) string {
	if via != "" {
		switch {
		case strings.Contains(amr, "otp"):
			return "with " + via + " and authenticator code"
		case strings.Contains(amr, "hwk"):
			return "with " + via + " and passkey"
		}
		return "with " + via
	}
	switch amr {
	case "pwd otp":
		return "with password and authenticator code"
	case "hwk", "hwk user":
		return "with a passkey"
	case "pwd hwk", "pwd hwk user":
		return "with password and passkey"
	}
	return ""
}

// formatTime shows a time to a person, in UTC.
func formatTime(t time.Time) string {
	return t.UTC().Format("2 Jan 2006, 15:04 UTC")
}

// auditLabel names an audit action for a person.
func auditLabel(action string) string {
	switch action {
	case "set_role":
		return "Changed the role"
	case "end_sessions":
		return "Ended every session"
	case "end_session":
		return "Ended a session"
	case "clear_limits":
		return "Cleared the sign-in limits"
	case "disable_mfa":
		return "Turned two-factor off"
	case "remove_passkey":
		return "Removed a passkey"
	case "delete":
		return "Deleted the account"
	case "create":
		return "Created the account"
	case "rotate_key":
		return "Made a new signing key"
	case "backup":
		return "Backed up the database"
	case "migrate":
		return "Migrated the database"
	case "client_create":
		return "Registered an application"
	case "client_rotate_secret":
		return "Gave an application a new secret"
	case "client_delete":
		return "Deleted an application"
	case "provider_add":
		return "Added a sign-in provider"
	case "provider_delete":
		return "Deleted a sign-in provider"
	}
	return action
}

// eventLabel names an event kind for a person.
func eventLabel(kind string) string {
	switch kind {
	case db.EventSignIn:
		return "Signed in"
	case db.EventSignInFailed:
		return "Failed sign-in (wrong password)"
	case db.EventPasswordChange:
		return "Password changed"
	case db.EventAccountCreated:
		return "Account created"
	case db.EventPasswordFailed:
		return "Wrong password given for an account change"
	case db.EventSessionEnded:
		return "Session ended"
	case db.EventSignOut:
		return "Signed out"
	case db.EventRefreshReused:
		return "Refresh token reused: session ended"
	case db.EventAdmin:
		return "Changed by an administrator"
	case db.EventPasswordReset:
		return "Password reset with a code sent by email"
	case db.EventEmailVerified:
		return "Email address verified"
	case db.EventEmailChanged:
		return "Email address changed"
	case db.EventCodeFailed:
		return "Wrong code from an email entered"
	case db.EventMFAEnabled:
		return "Two-factor turned on"
	case db.EventMFADisabled:
		return "Two-factor turned off"
	case db.EventRecoveryCodeUsed:
		return "Recovery code used"
	case db.EventRecoveryCodesReset:
		return "New recovery codes made"
	case db.EventOTPFailed:
		return "Wrong one-time code entered"
	case db.EventAppAllowed:
		return "Application allowed"
	case db.EventAppSignIn:
		return "Signed in to an application"
	case db.EventAppRevoked:
		return "Application's access revoked"
	case db.EventPasskeyAdded:
		return "Passkey added"
	case db.EventPasskeyRemoved:
		return "Passkey removed"
	case db.EventPasskeyFailed:
		return "Passkey not accepted"
	case db.EventPasskeyCounter:
		return "Passkey refused: its counter went back"
	}
	return kind
}

// safeNext returns next when it is a path on this site, else "". It refuses
// absolute URLs, scheme-relative //host, backslashes (which browsers read as
// slashes), control characters and white space (which browsers strip).
func safeNext(next string) string {
	if next == "" || len(next) > 2048 || next[0] != '/' {
		return ""
	}
	if len(next) > 1 && (next[1] == '/' || next[1] == '\\') {
		return ""
	}
	for i := 0; i < len(next); i++ {
		b := next[i]
		if b <= 0x20 || b == 0x7f || b == '\\' || b >= 0x80 {
			return ""
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") {
		return ""
	}
	// A decoded path that starts with // or /\ could still confuse a proxy.
	if strings.HasPrefix(u.Path, "//") || strings.HasPrefix(u.Path, "/\\") {
		return ""
	}
	return next
}

// queryEscape escapes a query value, leaving slashes readable
// (/login?next=/profile).
func queryEscape(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "%2F", "/") }

// isIP reports whether host (with or without a port) is an IP address.
func isIP(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	_, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil
}
