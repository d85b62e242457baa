package oidc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"fiberauth/app/account"
	"fiberauth/db"
)

// AuthRequest is a checked authorization request (GET /authorize).
type AuthRequest struct {
	Client      db.Client
	RedirectURI string
	State       string
	Nonce       string
	// Scope is what was asked for, each scope once, in order.
	Scope         string
	CodeChallenge string
	// Prompt holds none, login, consent or select_account.
	Prompt []string
	// MaxAge is the longest time since the person signed in that is
	// accepted, in seconds; -1 when not asked.
	MaxAge    int
	LoginHint string
	// AuthAfter asks for a sign-in made at or after it (prompt=login on
	// its way back from the login page); zero when not asked.
	AuthAfter time.Time
	// Params are the request's parameters, to come back with after the
	// login page or in the consent form.
	Params url.Values
}

// The parameters an authorization request may carry once each.
var authParams = []string{"response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
	"code_challenge_method", "prompt", "max_age", "login_hint", "response_mode", "auth_after", "display", "ui_locales",
	"claims_locales", "id_token_hint", "acr_values"}

var challengeForm = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// printable reports whether s is short, valid UTF-8 text without control
// characters.
func printable(s string, max int) bool {
	if len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// ParseAuthorize checks an authorization request. An unknown application
// or a redirect URI that is not exactly one it registered is refused on an
// error page of this service (Redirect false): never an open redirect.
// Every other problem goes back to the application (RFC 6749 §4.1.2.1).
func (p *Provider) ParseAuthorize(ctx context.Context, q url.Values) (*AuthRequest, error) {
	page := func(desc string) error { return &Error{Code: "invalid_request", Description: desc, Status: 400} }
	for _, name := range []string{"client_id", "redirect_uri"} {
		if len(q[name]) > 1 {
			return nil, page("The parameter " + name + " is repeated.")
		}
	}
	clientID, redirectURI := q.Get("client_id"), q.Get("redirect_uri")
	if clientID == "" {
		return nil, page("The request names no application (client_id).")
	}
	c, err := p.store.ClientByID(ctx, clientID)
	if errors.Is(err, db.ErrNotFound) {
		return nil, page("The request names an application that is not registered here.")
	}
	if err != nil {
		return nil, account.Fail(err)
	}
	if redirectURI == "" || !slices.Contains(c.RedirectURIs, redirectURI) {
		return nil, page("The redirect URI is not one registered for this application.")
	}
	r := &AuthRequest{Client: c, RedirectURI: redirectURI, MaxAge: -1, Params: url.Values{}}
	back := func(code, desc string) error {
		return &Error{Code: code, Description: desc, Status: 302, Redirect: true, RedirectURI: redirectURI, State: r.State}
	}
	if st := q.Get("state"); printable(st, 1024) && len(q["state"]) <= 1 {
		r.State = st
	}
	for _, name := range authParams {
		if len(q[name]) > 1 {
			return nil, back("invalid_request", "The parameter "+name+" is repeated.")
		}
		if v := q.Get(name); v != "" {
			if !printable(v, 2048) {
				return nil, back("invalid_request", "The parameter "+name+" holds characters that are not allowed.")
			}
			r.Params.Set(name, v)
		}
	}
	if q.Has("request") || q.Has("request_uri") {
		return nil, back("request_not_supported", "Request objects are not supported.")
	}
	if q.Get("response_type") != "code" {
		return nil, back("unsupported_response_type", "Only the authorization code flow (response_type=code) is supported.")
	}
	if m := q.Get("response_mode"); m != "" && m != "query" {
		return nil, back("invalid_request", "Only response_mode=query is supported.")
	}
	r.Nonce = q.Get("nonce")
	if len(r.Nonce) > 512 || len(r.State) > 1024 {
		return nil, back("invalid_request", "The state or the nonce is too long.")
	}
	// Scopes: each known and registered for the application.
	var scopes []string
	for _, sc := range strings.Fields(q.Get("scope")) {
		if !slices.Contains(c.Scopes, sc) {
			return nil, back("invalid_scope", "The scope "+strconv.Quote(sc)+" is not one this application may ask for.")
		}
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	if len(scopes) == 0 {
		return nil, back("invalid_scope", "The request asks for no scope (an OpenID Connect request asks for openid).")
	}
	r.Scope = strings.Join(scopes, " ")
	// PKCE (RFC 7636): S256 only; required of public clients.
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case challenge == "" && method != "":
		return nil, back("invalid_request", "code_challenge_method without a code_challenge.")
	case challenge == "" && c.Public():
		return nil, back("invalid_request", "A public application must use PKCE (code_challenge with code_challenge_method=S256).")
	case challenge != "" && method != "S256":
		return nil, back("invalid_request", "The code challenge method must be S256 (plain is not accepted).")
	case challenge != "" && !challengeForm.MatchString(challenge):
		return nil, back("invalid_request", "The code challenge is malformed.")
	}
	r.CodeChallenge = challenge
	// prompt, max_age, login_hint.
	for _, pr := range strings.Fields(q.Get("prompt")) {
		switch pr {
		case "none", "login", "consent", "select_account":
			if !slices.Contains(r.Prompt, pr) {
				r.Prompt = append(r.Prompt, pr)
			}
		default:
			return nil, back("invalid_request", "Unknown prompt value "+strconv.Quote(pr)+".")
		}
	}
	if slices.Contains(r.Prompt, "none") && len(r.Prompt) > 1 {
		return nil, back("invalid_request", "prompt=none cannot be combined with other values.")
	}
	if v := q.Get("max_age"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, back("invalid_request", "max_age must be a whole number of seconds.")
		}
		r.MaxAge = n
	}
	// auth_after is this service's own mark on the way back from the login
	// page: honoured only as it signed it, for this very request, lately;
	// otherwise the request is taken as the application made it.
	r.AuthAfter = p.authAfter(r.Params)
	if h := q.Get("login_hint"); printable(h, 254) {
		r.LoginHint = h
	}
	return r, nil
}

// ErrorRedirect is where an authorization error sends the browser: the
// application's redirect URI with error, error_description, state and iss
// (RFC 9207) in its query.
func (p *Provider) ErrorRedirect(e *Error) string {
	q := url.Values{"error": {e.Code}, "error_description": {e.Description}, "iss": {p.cfg.Issuer}}
	if e.State != "" {
		q.Set("state", e.State)
	}
	return withQuery(e.RedirectURI, q)
}

// withQuery adds q to uri's query, keeping what is there.
func withQuery(uri string, q url.Values) string {
	u, err := url.Parse(uri)
	if err != nil {
		return uri
	}
	have := u.Query()
	for k, v := range q {
		have[k] = v
	}
	u.RawQuery = have.Encode()
	return u.String()
}

// Sign-in needs: what the authorization request asks of the person's
// sign-in before an application may be told of it.
const (
	// SignedIn: the session will do.
	SignedIn = iota
	// NeedsLogin: sign in (again) first.
	NeedsLogin
)

// NeedsSignIn tells whether the caller's session (nil: none) will do for
// the request: there is one, it is not older than max_age, and it was made
// after AuthAfter. With prompt=none an answer that needs the login page is
// the error login_required, back to the application.
func (p *Provider) NeedsSignIn(r *AuthRequest, se *db.Session) (int, error) {
	now := p.now()
	// A sign-in made after AuthAfter (on the way back from the login page
	// this request sent the person to) satisfies max_age too.
	signedIn := func() time.Time { return se.SignedInAt() }
	fresh := se != nil && !signedIn().Before(r.AuthAfter) &&
		(r.MaxAge < 0 || now.Sub(signedIn()) <= time.Duration(r.MaxAge)*time.Second || !r.AuthAfter.IsZero())
	if se != nil && slices.Contains(r.Prompt, "login") && r.AuthAfter.IsZero() {
		fresh = false
	}
	if fresh {
		return SignedIn, nil
	}
	if slices.Contains(r.Prompt, "none") {
		return 0, &Error{Code: "login_required", Description: "The person must sign in.", Status: 302, Redirect: true,
			RedirectURI: r.RedirectURI, State: r.State}
	}
	return NeedsLogin, nil
}

// LoginReturn is the local path the login page comes back to: the request
// again, with prompt=login replaced by the time after which the sign-in
// must have happened.
func (p *Provider) LoginReturn(r *AuthRequest) string {
	q := url.Values{}
	for k, v := range r.Params {
		q[k] = v
	}
	if slices.Contains(r.Prompt, "login") || r.MaxAge >= 0 {
		var rest []string
		for _, pr := range r.Prompt {
			if pr != "login" {
				rest = append(rest, pr)
			}
		}
		if len(rest) > 0 {
			q.Set("prompt", strings.Join(rest, " "))
		} else {
			q.Del("prompt")
		}
		q.Del("auth_after")
		ts := strconv.FormatInt(p.now().Unix(), 10)
		q.Set("auth_after", ts+"."+p.authAfterMAC(ts, q))
	}
	return "/authorize?" + q.Encode()
}

// authAfterFor is how long the way back from the login page may take.
const authAfterFor = 30 * time.Minute

// authAfterMAC signs a time with the request it is for (q without
// auth_after).
func (p *Provider) authAfterMAC(ts string, q url.Values) string {
	rest := url.Values{}
	for k, v := range q {
		if k != "auth_after" {
			rest[k] = v
		}
	}
	m := hmac.New(sha256.New, p.cfg.Key)
	m.Write([]byte("auth_after\x00" + ts + "\x00" + rest.Encode()))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// authAfter reads the request's auth_after: the time it holds when this
// service signed it for these parameters less than authAfterFor ago; zero
// otherwise.
func (p *Provider) authAfter(q url.Values) time.Time {
	ts, mac, ok := strings.Cut(q.Get("auth_after"), ".")
	if !ok || len(p.cfg.Key) == 0 || !hmac.Equal([]byte(mac), []byte(p.authAfterMAC(ts, q))) {
		return time.Time{}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	at := time.Unix(n, 0)
	if err != nil || p.now().Sub(at) > authAfterFor || at.After(p.now().Add(time.Minute)) {
		return time.Time{}
	}
	return at
}

// NeedsConsent tells whether the person must be asked: the application is
// not first-party, and either prompt=consent or what the account allowed
// it before does not cover what the request would be given now. With prompt=none that is the
// error consent_required.
func (p *Provider) NeedsConsent(ctx context.Context, r *AuthRequest, pr *account.Principal) (bool, error) {
	if r.Client.FirstParty {
		return false, nil
	}
	if !slices.Contains(r.Prompt, "consent") {
		c, err := p.store.ConsentFor(ctx, pr.User.ID, r.Client.ID)
		if err != nil && !errors.Is(err, db.ErrNotFound) {
			return false, account.Fail(err)
		}
		if err == nil && account.ScopeWithin(Grantable(r, pr), c.Scope) {
			return false, nil
		}
	}
	if slices.Contains(r.Prompt, "none") {
		return false, &Error{Code: "consent_required", Description: "The person must allow this application first.", Status: 302,
			Redirect: true, RedirectURI: r.RedirectURI, State: r.State}
	}
	return true, nil
}

// Grantable is what the request may be given for the account: its scopes,
// with the role scopes narrowed to the account's role.
func Grantable(r *AuthRequest, pr *account.Principal) string {
	return account.Effective(pr.User.Role, r.Scope)
}

// Consent records the person's decision: allowed, what they allowed is
// remembered (with what they allowed before); denied, the application
// is told access_denied.
func (p *Provider) Consent(ctx context.Context, c account.Client, r *AuthRequest, pr *account.Principal, allow bool) error {
	if !allow {
		return &Error{Code: "access_denied", Description: "The person did not allow the application.", Status: 302, Redirect: true,
			RedirectURI: r.RedirectURI, State: r.State}
	}
	// What was shown and allowed: the role scopes the account has now, not
	// those it might be given later (a promotion asks again).
	scope := Grantable(r, pr)
	if before, err := p.store.ConsentFor(ctx, pr.User.ID, r.Client.ID); err == nil {
		scope = account.NormalizeScope(before.Scope + " " + scope)
	}
	return account.Fail(p.store.PutConsent(ctx, db.Consent{UserID: pr.User.ID, ClientID: r.Client.ID, Scope: scope, CreatedAt: p.now()},
		db.Event{Kind: db.EventAppAllowed, At: p.now(), IP: c.Addr, UserAgent: c.UserAgent, Detail: "Allowed " + r.Client.Name + ": " + scope}))
}

// IssueCode makes an authorization code for the request, bound to the
// application, the redirect URI, the PKCE challenge and the caller's
// session, and returns where the browser goes with it. The account's
// activity records the sign-in to the application, from the person's
// browser.
func (p *Provider) IssueCode(ctx context.Context, c account.Client, r *AuthRequest, pr *account.Principal) (string, error) {
	code, err := random(32)
	if err != nil {
		return "", err
	}
	now := p.now()
	err = p.store.PutAuthCode(ctx, db.AuthCode{Hash: sha(code), ClientID: r.Client.ID, SessionID: pr.Session.ID, RedirectURI: r.RedirectURI,
		Scope: Grantable(r, pr), Nonce: r.Nonce, CodeChallenge: r.CodeChallenge, CreatedAt: now, ExpiresAt: now.Add(p.cfg.CodeLifetime)})
	if errors.Is(err, db.ErrNotFound) {
		return "", &account.Error{Code: account.EUnauthorized, Message: account.MsgNotAuthorized}
	}
	if err != nil {
		return "", account.Fail(err)
	}
	if err := p.store.AddEvent(ctx, db.Event{UserID: pr.User.ID, Kind: db.EventAppSignIn, At: now, IP: c.Addr, UserAgent: c.UserAgent,
		Detail: "Signed in to " + r.Client.Name}); err != nil {
		p.log.Warn("record event", "error", err.Error())
	}
	q := url.Values{"code": {code}, "iss": {p.cfg.Issuer}}
	if r.State != "" {
		q.Set("state", r.State)
	}
	return withQuery(r.RedirectURI, q), nil
}
