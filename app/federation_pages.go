package app

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"time"

	"github.com/gofiber/fiber/v2"

	"fiberauth/app/account"
	"fiberauth/app/federation"
	"fiberauth/app/valid"
	"fiberauth/db"
)

// Sign-in with other providers, in the browser: the buttons' start, the
// provider's way back, the short pages that choose a username or link an
// account, and the profile's connected sign-ins.

// The cookies of a sign-in with another provider, sealed (AES-256-GCM) so
// that nothing in them can be read or made by anyone else: the flow under
// way (state, nonce, PKCE verifier), and an identity that waits for a
// username or for its account to sign in and link it.
const (
	fedFlowCookie    = "fed_flow"
	fedPendingCookie = "fed_pending"
	fedPendingFor    = 15 * time.Minute
)

// fedPending is an identity the provider vouched for, waiting in this
// browser: for a username to make its account ("signup"), or for the
// account with its address to sign in and link it ("link").
type fedPending struct {
	Provider string           `json:"p"`
	Purpose  string           `json:"k"`
	Identity account.Identity `json:"i"`
	Next     string           `json:"x,omitempty"`
	Expires  int64            `json:"e"`
}

// seal encrypts v for the cookie name.
func (s *Server) seal(name string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	gcm, err := s.fedAEAD()
	if err != nil {
		return "", err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(gcm.Seal(nonce, nonce, plain, []byte(name))), nil
}

// unseal opens what seal made for the cookie name into v.
func (s *Server) unseal(name, raw string, v any) bool {
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return false
	}
	gcm, err := s.fedAEAD()
	if err != nil || len(b) < gcm.NonceSize() {
		return false
	}
	plain, err := gcm.Open(nil, b[:gcm.NonceSize()], b[gcm.NonceSize():], []byte(name))
	return err == nil && json.Unmarshal(plain, v) == nil
}

func (s *Server) fedAEAD() (cipher.AEAD, error) {
	block, err := aes.NewCipher(s.fedKey)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

var providerName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// fedProvider is the provider the path names; a page saying so when
// there is none.
func (s *Server) fedProvider(c *fiber.Ctx) (db.Provider, error) {
	name := c.Params("name")
	if !providerName.MatchString(name) {
		return db.Provider{}, s.fedProblem(c, http.StatusNotFound, "Page not found", "There is no page at this address.", "/login", "Go to the login page")
	}
	p, err := s.fed.Provider(c.UserContext(), name)
	if account.ErrorCode(err) == account.ENotFound {
		return db.Provider{}, s.fedProblem(c, http.StatusNotFound, "Unknown sign-in provider",
			"This service has no sign-in provider named "+name+".", "/login", "Go to the login page")
	}
	return p, err
}

// errHandled says that the page was written already.
var errHandled = errors.New("answered")

// fedProblem writes a page about a sign-in that could not go on, with the
// way back.
func (s *Server) fedProblem(c *fiber.Ctx, status int, heading, msg, back, label string) error {
	if err := s.render(c, status, "error", page{Title: heading, Heading: heading, Message: msg, Back: back, BackLabel: label}); err != nil {
		return err
	}
	return errHandled
}

// handled turns errHandled into a written answer.
func handled(err error) error {
	if errors.Is(err, errHandled) {
		return nil
	}
	return err
}

// pageFedStart is GET /login/{name}: leave for the provider (the login and
// register pages' "Continue with ..." buttons).
func (s *Server) pageFedStart(c *fiber.Ctx) error {
	prov, err := s.fedProvider(c)
	if err != nil {
		return handled(err)
	}
	// reauth=1: the person confirms a sensitive action by signing in
	// again; the provider is asked for a new sign-in too.
	return handled(s.fedBegin(c, prov, federation.Flow{Next: safeNext(c.Query("next"))}, c.Query("reauth") == "1"))
}

// submitFedLink is POST /profile/providers/{name}/link: leave for the
// provider to link it to the signed-in account.
func (s *Server) submitFedLink(c *fiber.Ctx) error {
	prov, err := s.fedProvider(c)
	if err != nil {
		return handled(err)
	}
	p := currentUser(c)
	return handled(s.fedBegin(c, prov, federation.Flow{LinkUser: p.User.ID, LinkSession: p.Session.ID}, false))
}

// fedBegin sends the browser to the provider, keeping the flow sealed in
// a cookie.
func (s *Server) fedBegin(c *fiber.Ctx, prov db.Provider, keep federation.Flow, fresh bool) error {
	to, f, err := s.fed.Begin(c.UserContext(), prov, fresh)
	if err != nil {
		return s.fedFailed(c, prov, err)
	}
	f.Next, f.LinkUser, f.LinkSession = keep.Next, keep.LinkUser, keep.LinkSession
	sealed, err := s.seal(fedFlowCookie, f)
	if err != nil {
		return err
	}
	s.setCookie(c, fedFlowCookie, sealed, federation.FlowLifetime)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Redirect(to, fiber.StatusSeeOther)
}

// fedFailed is the page for a provider that could not be reached, refused,
// or answered what does not hold. Never a 500 for the provider's doing.
func (s *Server) fedFailed(c *fiber.Ctx, prov db.Provider, err error) error {
	name := prov.DisplayName
	switch {
	case errors.Is(err, federation.ErrUnreachable):
		s.log.Warn("sign-in provider unreachable", "provider", prov.Name, "error", err.Error())
		return s.fedProblem(c, http.StatusBadGateway, name+" cannot be reached",
			name+" does not answer right now. Try again in a few minutes, or sign in another way.", "/login", "Go to the login page")
	case errors.Is(err, federation.ErrRefused):
		s.log.Info("sign-in provider refused", "provider", prov.Name, "error", err.Error())
		return s.fedProblem(c, http.StatusBadRequest, name+" did not sign you in",
			name+" did not accept this sign-in. Start again, or sign in another way.", "/login", "Go to the login page")
	case errors.Is(err, federation.ErrInvalid):
		s.log.Warn("sign-in provider answer refused", "provider", prov.Name, "error", err.Error())
		return s.fedProblem(c, http.StatusBadRequest, "Sign-in not accepted",
			"The answer from "+name+" could not be verified, so it was not used. Start again, or sign in another way.", "/login", "Go to the login page")
	}
	return err
}

// pageFedCallback is GET /login/{name}/callback: the provider sends the
// person back here with a code (or an error). The flow must be this
// browser's, for this provider, with this state.
func (s *Server) pageFedCallback(c *fiber.Ctx) error {
	prov, err := s.fedProvider(c)
	if err != nil {
		return handled(err)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	var f federation.Flow
	raw := c.Cookies(s.cookieName(c, fedFlowCookie))
	s.clearCookie(c, fedFlowCookie)
	state := c.Query("state")
	if raw == "" || !s.unseal(fedFlowCookie, raw, &f) || f.Provider != prov.Name || state == "" ||
		!hmac.Equal([]byte(state), []byte(f.State)) || s.acct.Now().Sub(time.Unix(f.Started, 0)) > federation.FlowLifetime {
		return handled(s.fedProblem(c, http.StatusBadRequest, "Sign-in not accepted",
			"This sign-in with "+prov.DisplayName+" was not started in this browser, or took too long. Start again from the login page.",
			"/login", "Go to the login page"))
	}
	if e := c.Query("error"); e != "" {
		if e == "access_denied" {
			return handled(s.fedProblem(c, http.StatusBadRequest, "Sign-in cancelled",
				"Sign-in with "+prov.DisplayName+" was cancelled. Sign in another way, or try again.", "/login", "Go to the login page"))
		}
		return handled(s.fedFailed(c, prov, federation.ErrRefused))
	}
	code := c.Query("code")
	if code == "" || valid.Text(code) != "" {
		return handled(s.fedFailed(c, prov, federation.ErrRefused))
	}
	id, err := s.fed.Finish(c.UserContext(), prov, f, code)
	if err != nil {
		return handled(s.fedFailed(c, prov, err))
	}
	if f.LinkUser != 0 {
		return handled(s.fedLinkFromProfile(c, prov, f, id))
	}
	out, err := s.acct.SignInWithIdentity(c.UserContext(), s.client(c, true), prov, id)
	if err != nil {
		if status, msg, _, ok := pageError(c, err); ok {
			return handled(s.fedProblem(c, status, "Sign-in not possible", msg, "/login", "Go to the login page"))
		}
		return err
	}
	return s.fedOutcome(c, prov, id, f.Next, out)
}

// fedOutcome answers what a sign-in with a provider came to.
func (s *Server) fedOutcome(c *fiber.Ctx, prov db.Provider, id account.Identity, next string, out account.FedOutcome) error {
	switch {
	case out.Grant != nil:
		if err := s.setSession(c, *out.Grant); err != nil {
			return err
		}
		if next == "" {
			next = "/profile"
		}
		return c.Redirect(next, fiber.StatusSeeOther)
	case out.Pending != nil:
		if err := s.setPending(c, *out.Pending, prov.Name); err != nil {
			return err
		}
		return s.secondStep(c, http.StatusOK, next, false, "")
	case out.Unverified != nil:
		return s.render(c, http.StatusForbidden, "login", page{Title: "Log in", Next: next, Error: msgUnverifiedPage,
			Unverified: true, Login: out.Unverified.Username, Fields: s.loginFields(out.Unverified.Username, "")})
	case out.EmailTaken:
		if err := s.keepPending(c, fedPending{Provider: prov.Name, Purpose: "link", Identity: id, Next: next}); err != nil {
			return err
		}
		return s.render(c, http.StatusConflict, "fed", page{Title: "Sign in to link " + prov.DisplayName,
			Fed: &fedView{Provider: prov, Identity: id, Taken: true}})
	case out.NewAccount != nil:
		if err := s.keepPending(c, fedPending{Provider: prov.Name, Purpose: "signup", Identity: id, Next: next}); err != nil {
			return err
		}
		return s.fedSignupPage(c, http.StatusOK, prov, id, out.NewAccount.Username, out.NewAccount.Email, out.NewAccount.Problems)
	}
	return errors.New("federation: an outcome with nothing in it")
}

// fedView is what the pages of a sign-in with a provider show.
type fedView struct {
	Provider db.Provider
	Identity account.Identity
	// Taken: an account here has the identity's address (sign in to it
	// to link); Confirm: the signed-in account may link it now.
	Taken, Confirm bool
	// AskEmail: the provider gave no address.
	AskEmail bool
}

func (s *Server) keepPending(c *fiber.Ctx, p fedPending) error {
	p.Expires = time.Now().Add(fedPendingFor).Unix()
	sealed, err := s.seal(fedPendingCookie, p)
	if err != nil {
		return err
	}
	s.setCookie(c, fedPendingCookie, sealed, fedPendingFor)
	return nil
}

// pendingIdentity reads this browser's waiting identity for purpose, and
// its provider.
func (s *Server) pendingIdentity(c *fiber.Ctx, purpose string) (fedPending, db.Provider, bool) {
	var p fedPending
	raw := c.Cookies(s.cookieName(c, fedPendingCookie))
	if raw == "" || !s.unseal(fedPendingCookie, raw, &p) || p.Purpose != purpose || time.Now().Unix() > p.Expires {
		return fedPending{}, db.Provider{}, false
	}
	prov, err := s.fed.Provider(c.UserContext(), p.Provider)
	if err != nil {
		return fedPending{}, db.Provider{}, false
	}
	return p, prov, true
}

// noPending is the page for a waiting identity that is gone.
func (s *Server) noPending(c *fiber.Ctx) error {
	return handled(s.fedProblem(c, http.StatusBadRequest, "Start again",
		"This step of signing in with another provider has expired, or was not started in this browser. Start again from the login page.",
		"/login", "Go to the login page"))
}

func (s *Server) fedSignupPage(c *fiber.Ctx, status int, prov db.Provider, id account.Identity, username, email string, problems []account.FieldError) error {
	errs := map[string]string{}
	msg := ""
	for _, p := range problems {
		if p.Field == "username" || p.Field == "email" {
			errs[p.Field] = p.Message
		} else {
			msg = p.Message
		}
	}
	fields := []fieldView{{Name: "username", Label: "Username", Type: "text", Autocomplete: "username", Value: username,
		Error: errs["username"], Hint: "3 to 32 letters, digits, '.', '_' or '-'.", Required: true, Autofocus: true, MaxLength: 32}}
	ask := id.Email == ""
	if ask || errs["email"] != "" {
		fields = append(fields, fieldView{Name: "email", Label: "Email", Type: "email", Autocomplete: "email", Value: email,
			Error: errs["email"], Hint: "We send a code to confirm it.", Required: true, MaxLength: valid.EmailMax})
	}
	return s.render(c, status, "fed", page{Title: "Choose a username", Error: msg, Fields: fields,
		Fed: &fedView{Provider: prov, Identity: id, AskEmail: ask}})
}

// pageFedSignup is GET /login/signup: the username (and address) of the
// account a provider's identity makes.
func (s *Server) pageFedSignup(c *fiber.Ctx) error {
	p, prov, ok := s.pendingIdentity(c, "signup")
	if !ok {
		return s.noPending(c)
	}
	return s.fedSignupPage(c, http.StatusOK, prov, p.Identity, "", p.Identity.Email, nil)
}

// submitFedSignup is POST /login/signup.
func (s *Server) submitFedSignup(c *fiber.Ctx) error {
	p, prov, ok := s.pendingIdentity(c, "signup")
	if !ok {
		return s.noPending(c)
	}
	f := pageForm(c)
	email := p.Identity.Email
	if f.has("email") {
		email = f.get("email")
	}
	r, err := s.acct.CreateWithIdentity(c.UserContext(), s.client(c, true), prov, p.Identity, f.get("username"), email)
	if err != nil {
		var e *account.Error
		if errors.As(err, &e) && (e.Code == account.EInvalid || e.Code == account.EConflict) {
			problems := e.Fields
			if len(problems) == 0 {
				problems = []account.FieldError{{Message: e.Message}}
			}
			return s.fedSignupPage(c, http.StatusUnprocessableEntity, prov, p.Identity, f.get("username"), email, problems)
		}
		if status, msg, _, ok := pageError(c, err); ok {
			return handled(s.fedProblem(c, status, "Account not made", msg, "/login", "Go to the login page"))
		}
		return err
	}
	s.clearCookie(c, fedPendingCookie)
	if r.Grant == nil {
		return c.Redirect("/email/verify?login="+queryEscape(r.User.Username)+"&done=verify_sent", fiber.StatusSeeOther)
	}
	return s.fedOutcome(c, prov, p.Identity, p.Next, account.FedOutcome{Grant: r.Grant})
}

// pageFedLinkConfirm is GET /login/link: after signing in to the account
// with the identity's address, link the provider to it, if the person
// says so.
func (s *Server) pageFedLinkConfirm(c *fiber.Ctx) error {
	p, prov, ok := s.pendingIdentity(c, "link")
	if !ok {
		return s.noPending(c)
	}
	return s.render(c, http.StatusOK, "fed", page{Title: "Link " + prov.DisplayName, Fed: &fedView{Provider: prov, Identity: p.Identity, Confirm: true}})
}

// submitFedLinkConfirm is POST /login/link.
func (s *Server) submitFedLinkConfirm(c *fiber.Ctx) error {
	p, prov, ok := s.pendingIdentity(c, "link")
	if !ok {
		return s.noPending(c)
	}
	if err := s.acct.LinkIdentity(c.UserContext(), s.client(c, true), currentUser(c), prov, p.Identity); err != nil {
		if status, msg, _, ok := pageError(c, err); ok {
			return handled(s.fedProblem(c, status, "Not linked", msg, "/profile", "Go to your profile"))
		}
		return err
	}
	s.clearCookie(c, fedPendingCookie)
	next := p.Next
	if next == "" {
		next = "/profile?done=provider_linked"
	}
	return c.Redirect(next, fiber.StatusSeeOther)
}

// fedLinkFromProfile links the identity of a flow begun from the
// profile: only to the account, and from the session, that began it.
func (s *Server) fedLinkFromProfile(c *fiber.Ctx, prov db.Provider, f federation.Flow, id account.Identity) error {
	p := s.signedIn(c)
	if p == nil || p.User.ID != f.LinkUser || p.Session.ID != f.LinkSession {
		return s.fedProblem(c, http.StatusBadRequest, "Not linked",
			"The session that asked to link "+prov.DisplayName+" has ended. Sign in and try again from your profile.", "/login", "Go to the login page")
	}
	if err := s.acct.LinkIdentity(c.UserContext(), s.client(c, true), p, prov, id); err != nil {
		if status, msg, _, ok := pageError(c, err); ok {
			return s.fedProblem(c, status, "Not linked", msg, "/profile", "Go to your profile")
		}
		return err
	}
	return c.Redirect("/profile?done=provider_linked", fiber.StatusSeeOther)
}

// submitFedUnlink is POST /profile/providers/{name}/unlink.
func (s *Server) submitFedUnlink(c *fiber.Ctx) error {
	name := c.Params("name")
	if !providerName.MatchString(name) {
		return s.profile(c, http.StatusNotFound, "", account.MsgNotLinked)
	}
	if err := s.acct.UnlinkIdentity(c.UserContext(), s.client(c, true), currentUser(c), name); err != nil {
		if status, msg, _, ok := pageError(c, err); ok {
			return s.profile(c, status, "", msg)
		}
		return err
	}
	return c.Redirect("/profile?done=provider_unlinked", fiber.StatusSeeOther)
}

// providerButtons are the providers the login and register pages offer.
func (s *Server) providerButtons(c *fiber.Ctx) []db.Provider {
	list, err := s.fed.Providers(c.UserContext())
	if err != nil {
		s.log.Warn("sign-in providers not listed", "error", err.Error())
		return nil
	}
	return list
}

// The JSON API of connected sign-ins.

// apiIdentities is GET /users/me/providers.
func (s *Server) apiIdentities(c *fiber.Ctx) error {
	list, err := s.acct.Identities(c.UserContext(), currentUser(c).User.ID)
	if err != nil {
		return err
	}
	out := make([]fiber.Map, 0, len(list))
	for _, id := range list {
		m := fiber.Map{"provider": id.Provider, "display_name": id.DisplayName, "email": id.Email,
			"since": id.CreatedAt.UTC().Format(time.RFC3339), "last_used": nil}
		if !id.LastUsedAt.IsZero() {
			m["last_used"] = id.LastUsedAt.UTC().Format(time.RFC3339)
		}
		out = append(out, m)
	}
	return c.JSON(out)
}

// apiUnlink is DELETE /users/me/providers/{name}.
func (s *Server) apiUnlink(c *fiber.Ctx) error {
	name := c.Params("name")
	if !providerName.MatchString(name) {
		return &Error{Status: http.StatusNotFound, Detail: account.MsgNotLinked}
	}
	if err := s.acct.UnlinkIdentity(c.UserContext(), s.client(c, false), currentUser(c), name); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// signInView is a row of the profile's connected sign-ins: a configured
// provider, and the account's identity there if it is linked.
type signInView struct {
	Provider db.Provider
	Linked   *account.LinkedIdentity
}

// signIns lists the configured providers with the account's identities.
func signIns(providers []db.Provider, linked []account.LinkedIdentity) []signInView {
	out := make([]signInView, 0, len(providers))
	for _, p := range providers {
		v := signInView{Provider: p}
		for i := range linked {
			if linked[i].Provider == p.Name {
				v.Linked = &linked[i]
			}
		}
		out = append(out, v)
	}
	return out
}

// reauthView is how an account without a password or a passkey confirms
// a sensitive action: a sign-in with one of its providers in the last
// minutes (Fresh), or one now (the buttons come back to Next).
type reauthView struct {
	Fresh   bool
	Linked  []account.LinkedIdentity
	Next    string
	Minutes int
}

// reauth is the page's reauthView for an account that signs in only with
// providers, nil for the others (they confirm with a password or a
// passkey).
func (s *Server) reauth(c *fiber.Ctx, u *db.User) *reauthView {
	p := currentUser(c)
	if u == nil || !u.Passwordless || p == nil {
		return nil
	}
	ctx := c.UserContext()
	if keys, err := s.acct.Passkeys(ctx, p); err != nil || len(keys) > 0 {
		return nil
	}
	linked, err := s.acct.Identities(ctx, u.ID)
	if err != nil || len(linked) == 0 {
		return nil
	}
	return &reauthView{Fresh: s.acct.FreshProviderSignIn(p), Linked: linked, Next: c.Path(),
		Minutes: int(account.ReauthWindow / time.Minute)}
}
