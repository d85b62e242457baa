// Package federation signs people in with other providers: any OpenID
// Connect issuer (discovery, the authorization code flow with PKCE, state
// and nonce, ID tokens checked against the issuer's published keys) and
// GitHub (plain OAuth 2.0: the person's identity from its user API, the
// verified primary address from its emails API). It speaks the protocols
// and manages the providers; the account core decides what an identity
// means here.
package federation

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"fiberauth/app/account"
	"fiberauth/db"
)

// Config configures the engine.
type Config struct {
	// PublicURL is where people reach the pages: redirect URIs are
	// PublicURL/login/<name>/callback.
	PublicURL string
	// GitHubURL and GitHubAPIURL are GitHub's web and API addresses
	// (https://github.com and https://api.github.com); tests point them at
	// a local server.
	GitHubURL, GitHubAPIURL string
	// HTTPClient talks to the providers; nil means one with a 10 s timeout.
	HTTPClient *http.Client
	// DiscoveryTTL is how long a discovery document is used before it is
	// fetched again (an hour); a stale one serves while the provider
	// cannot be reached.
	DiscoveryTTL time.Duration
	// Now is the clock ID tokens are checked with; nil means time.Now.
	Now func() time.Time
}

// Engine carries out sign-ins with the configured providers.
type Engine struct {
	cfg   Config
	store *db.Store
	// acct seals the providers' client secrets at rest (as authenticator
	// secrets are) and keeps the audit list.
	acct *account.Service
	log  *slog.Logger

	mu    sync.Mutex
	found map[string]*discovered
}

// discovered is an issuer's discovery document as last fetched.
type discovered struct {
	provider *oidc.Provider
	at       time.Time
}

// New returns an engine.
func New(cfg Config, store *db.Store, acct *account.Service, log *slog.Logger) *Engine {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.DiscoveryTTL <= 0 {
		cfg.DiscoveryTTL = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.GitHubURL == "" {
		cfg.GitHubURL = "https://github.com"
	}
	if cfg.GitHubAPIURL == "" {
		cfg.GitHubAPIURL = "https://api.github.com"
	}
	cfg.GitHubURL = strings.TrimRight(cfg.GitHubURL, "/")
	cfg.GitHubAPIURL = strings.TrimRight(cfg.GitHubAPIURL, "/")
	return &Engine{cfg: cfg, store: store, acct: acct, log: log, found: map[string]*discovered{}}
}

// The engine's errors: the provider could not be reached (a page says to
// try again later), it refused the sign-in (the person cancelled, or the
// code was not accepted), or its answer did not hold (a signature, the
// issuer, the audience, the nonce, the expiry).
var (
	ErrUnreachable = errors.New("the provider cannot be reached")
	ErrRefused     = errors.New("the provider refused the sign-in")
	ErrInvalid     = errors.New("the provider's answer could not be verified")
)

// RedirectURI is the address a provider sends people back to, to be
// registered there.
func (e *Engine) RedirectURI(name string) string {
	return strings.TrimRight(e.cfg.PublicURL, "/") + "/login/" + name + "/callback"
}

// Flow is what a sign-in keeps in the person's browser between leaving
// for the provider and coming back: the state that must come back, the
// nonce the ID token must carry, the PKCE verifier, and where to go after.
type Flow struct {
	Provider string `json:"p"`
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"x,omitempty"`
	// LinkUser and LinkSession are set when an account links the provider
	// from its profile: the identity goes to that account, from that
	// session.
	LinkUser    int64  `json:"u,omitempty"`
	LinkSession string `json:"ls,omitempty"`
	Started     int64  `json:"t"`
}

// FlowLifetime is how long a person may take at the provider.
const FlowLifetime = 10 * time.Minute

// Begin starts a sign-in with prov: the provider's authorization address
// to send the browser to, and the flow to keep. With fresh, an OpenID
// Connect provider is asked to have the person sign in again
// (prompt=login), not to answer from a session it has.
func (e *Engine) Begin(ctx context.Context, prov db.Provider, fresh bool) (string, Flow, error) {
	cfg, _, err := e.oauth(ctx, prov)
	if err != nil {
		return "", Flow{}, err
	}
	f := Flow{Provider: prov.Name, State: random(), Nonce: random(), Verifier: oauth2.GenerateVerifier(), Started: e.cfg.Now().Unix()}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(f.Verifier)}
	if prov.Kind == db.ProviderOIDC {
		opts = append(opts, oidc.Nonce(f.Nonce))
		if fresh {
			opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"))
		}
	}
	return cfg.AuthCodeURL(f.State, opts...), f, nil
}

// Finish exchanges the code the provider sent back for the person's
// identity there. The caller has checked the state against the flow.
func (e *Engine) Finish(ctx context.Context, prov db.Provider, f Flow, code string) (account.Identity, error) {
	cfg, p, err := e.oauth(ctx, prov)
	if err != nil {
		return account.Identity{}, err
	}
	ctx = oidc.ClientContext(ctx, e.cfg.HTTPClient)
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return account.Identity{}, e.exchangeError(prov, err)
	}
	if prov.Kind == db.ProviderGitHub {
		return e.github(ctx, tok)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return account.Identity{}, fmt.Errorf("%w: no ID token in the token response", ErrInvalid)
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: prov.ClientID, Now: e.cfg.Now}).Verify(ctx, raw)
	if err != nil {
		return account.Identity{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if idt.Nonce != f.Nonce {
		return account.Identity{}, fmt.Errorf("%w: the ID token's nonce is not this sign-in's", ErrInvalid)
	}
	// The subject names the person there (OpenID Connect Core 2: at most
	// 255 ASCII characters); without one, nobody is named.
	if idt.Subject == "" || len(idt.Subject) > 255 {
		return account.Identity{}, fmt.Errorf("%w: the ID token names no subject (or one longer than 255 characters)", ErrInvalid)
	}
	var c claims
	if err := idt.Claims(&c); err != nil {
		return account.Identity{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.Email == "" && p.UserInfoEndpoint() != "" {
		// Some providers say the address only at userinfo.
		if info, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil && info.Subject == idt.Subject {
			var more claims
			if info.Claims(&more) == nil {
				c.Email, c.EmailVerified = more.Email, more.EmailVerified
				c.Username = cmpOr(c.Username, more.Username)
				c.Name = cmpOr(c.Name, more.Name)
			}
		}
	}
	return bounded(account.Identity{Issuer: idt.Issuer, Subject: idt.Subject, Email: strings.TrimSpace(c.Email),
		EmailVerified: bool(c.EmailVerified), Username: c.Username, Name: c.Name}), nil
}

// bounded keeps what a provider says of a person within what is stored
// and shown here: an address longer than any address is dropped (and
// with it the provider's word on it), a name cut.
func bounded(id account.Identity) account.Identity {
	if len(id.Email) > 254 {
		id.Email, id.EmailVerified = "", false
	}
	id.Username = cut(id.Username, 64)
	id.Name = cut(id.Name, 128)
	return id
}

// cut shortens s to at most n bytes, on a character boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// claims are the ID token's (or userinfo's) claims about the person.
type claims struct {
	Email         string    `json:"email"`
	EmailVerified trueOrNot `json:"email_verified"`
	Username      string    `json:"preferred_username"`
	Name          string    `json:"name"`
}

// trueOrNot reads a boolean claim that some providers send as a string:
// only true or "true" is true.
type trueOrNot bool

func (b *trueOrNot) UnmarshalJSON(raw []byte) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	*b = v == true || v == "true"
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// oauth is the OAuth 2.0 configuration of prov (and, for an OpenID
// Connect provider, its discovered metadata).
func (e *Engine) oauth(ctx context.Context, prov db.Provider) (*oauth2.Config, *oidc.Provider, error) {
	secret := ""
	if prov.SealedSecret != "" {
		var err error
		if secret, err = e.acct.Open("provider:"+prov.Name, prov.SealedSecret); err != nil {
			return nil, nil, fmt.Errorf("the client secret of %s cannot be read: %w", prov.Name, err)
		}
	}
	cfg := &oauth2.Config{ClientID: prov.ClientID, ClientSecret: secret, RedirectURL: e.RedirectURI(prov.Name)}
	switch prov.Kind {
	case db.ProviderGitHub:
		cfg.Endpoint = oauth2.Endpoint{AuthURL: e.cfg.GitHubURL + "/login/oauth/authorize",
			TokenURL: e.cfg.GitHubURL + "/login/oauth/access_token", AuthStyle: oauth2.AuthStyleInParams}
		cfg.Scopes = []string{"read:user", "user:email"}
		return cfg, nil, nil
	default:
		p, err := e.discover(ctx, prov.Issuer)
		if err != nil {
			return nil, nil, err
		}
		cfg.Endpoint = p.Endpoint()
		cfg.Scopes = append([]string{oidc.ScopeOpenID, "profile", "email"}, strings.Fields(prov.Scopes)...)
		return cfg, p, nil
	}
}

// AuthorizeEndpoints are the authorization endpoints of provs, where a
// page's form that starts a sign-in with one of them ends after its
// redirects. A provider not discovered yet is asked now, briefly; one
// that does not answer is left out (its form ends at this service's page
// that says so).
func (e *Engine) AuthorizeEndpoints(ctx context.Context, provs []db.Provider) []string {
	var out []string
	for _, p := range provs {
		if p.Kind == db.ProviderGitHub {
			out = append(out, e.cfg.GitHubURL+"/login/oauth/authorize")
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		d, err := e.discover(ctx, p.Issuer)
		cancel()
		if err == nil {
			out = append(out, d.Endpoint().AuthURL)
		}
	}
	return out
}

// discover returns an issuer's metadata: cached for DiscoveryTTL, fetched
// again after, and the cached copy kept in use while the issuer cannot be
// reached.
func (e *Engine) discover(ctx context.Context, issuer string) (*oidc.Provider, error) {
	e.mu.Lock()
	d := e.found[issuer]
	e.mu.Unlock()
	if d != nil && e.cfg.Now().Sub(d.at) < e.cfg.DiscoveryTTL {
		return d.provider, nil
	}
	fetchCtx, cancel := context.WithTimeout(oidc.ClientContext(ctx, e.cfg.HTTPClient), 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(fetchCtx, issuer)
	if err != nil {
		if d != nil {
			e.log.Warn("sign-in provider: discovery failed; using the copy fetched before", "issuer", issuer, "error", err.Error())
			return d.provider, nil
		}
		var mismatch *oidc.IssuerMismatchError
		if errors.As(err, &mismatch) {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	e.mu.Lock()
	e.found[issuer] = &discovered{provider: p, at: e.cfg.Now()}
	e.mu.Unlock()
	return p, nil
}

// exchangeError words a failed code exchange: the provider's refusal (a
// 4xx with an OAuth error), or the provider out of reach (no answer, a
// 5xx).
func (e *Engine) exchangeError(prov db.Provider, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
		return fmt.Errorf("%w: %s %s", ErrRefused, re.ErrorCode, re.ErrorDescription)
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) || (re != nil && re.Response != nil) {
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	return fmt.Errorf("%w: %v", ErrRefused, err)
}

// github reads the identity of a GitHub access token: the user (its
// numeric id is the subject, never reused) and its primary address,
// verified or not.
func (e *Engine) github(ctx context.Context, tok *oauth2.Token) (account.Identity, error) {
	var user struct {
		ID    int64  `json:"id"`
		Login string `json:"login"`
		Name  string `json:"name"`
	}
	if err := e.githubGet(ctx, tok, "/user", &user); err != nil {
		return account.Identity{}, err
	}
	if user.ID <= 0 {
		return account.Identity{}, fmt.Errorf("%w: GitHub named no user", ErrInvalid)
	}
	var emails []struct {
		Email    string `json:"email"`
		Primary  bool   `json:"primary"`
		Verified bool   `json:"verified"`
	}
	if err := e.githubGet(ctx, tok, "/user/emails", &emails); err != nil {
		return account.Identity{}, err
	}
	id := account.Identity{Issuer: e.cfg.GitHubURL, Subject: strconv.FormatInt(user.ID, 10), Username: user.Login, Name: user.Name}
	for _, m := range emails {
		if m.Primary {
			id.Email, id.EmailVerified = strings.TrimSpace(m.Email), m.Verified
		}
	}
	return bounded(id), nil
}

func (e *Engine) githubGet(ctx context.Context, tok *oauth2.Token, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.cfg.GitHubAPIURL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	res, err := e.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	switch {
	case err != nil || res.StatusCode >= 500:
		return fmt.Errorf("%w: GitHub %s answered %s", ErrUnreachable, path, res.Status)
	case res.StatusCode != http.StatusOK:
		return fmt.Errorf("%w: GitHub %s answered %s", ErrRefused, path, res.Status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: GitHub %s: %v", ErrInvalid, path, err)
	}
	return nil
}

// random is 128 random bits, base64url.
func random() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Provider management.

// ProviderInput is a provider to add.
type ProviderInput struct {
	Name        string
	DisplayName string
	// GitHub selects the GitHub preset; otherwise Issuer names an OpenID
	// Connect provider.
	GitHub       bool
	Issuer       string
	ClientID     string
	ClientSecret string
	// Scopes are asked for besides openid, profile and email.
	Scopes string
}

var nameForm = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// reserved are names that the login page's own addresses use.
var reserved = []string{"mfa", "link", "signup", "passkey", "providers", "callback"}

// Check returns the problems of in, one per field.
func (e *Engine) Check(in ProviderInput) []account.FieldError {
	var out []account.FieldError
	switch {
	case !nameForm.MatchString(in.Name):
		out = append(out, account.FieldError{Field: "name", Message: "Name must be 1 to 32 lower-case letters, digits and '-', starting with a letter or digit (it is part of the provider's addresses here)."})
	case slices.Contains(reserved, in.Name):
		out = append(out, account.FieldError{Field: "name", Message: fmt.Sprintf("The name %q is taken by the login page's own addresses.", in.Name)})
	}
	if len(in.DisplayName) > 64 || strings.ContainsAny(in.DisplayName, "\x00\r\n") {
		out = append(out, account.FieldError{Field: "display_name", Message: "The display name must be at most 64 characters on one line."})
	}
	if !in.GitHub {
		if msg := issuerProblem(in.Issuer); msg != "" {
			out = append(out, account.FieldError{Field: "issuer", Message: msg})
		}
	}
	if id := strings.TrimSpace(in.ClientID); id == "" || len(id) > 256 || strings.ContainsAny(id, "\x00\r\n") {
		out = append(out, account.FieldError{Field: "client_id", Message: "The client id the provider gave is required (at most 256 characters)."})
	}
	if len(in.ClientSecret) > 1024 || strings.ContainsAny(in.ClientSecret, "\x00\r\n") {
		out = append(out, account.FieldError{Field: "client_secret", Message: "The client secret must be at most 1024 characters on one line."})
	}
	for _, sc := range strings.Fields(in.Scopes) {
		if len(sc) > 64 || strings.ContainsAny(sc, "\"\\") {
			out = append(out, account.FieldError{Field: "scopes", Message: fmt.Sprintf("Scope %q is not a scope.", sc)})
			break
		}
	}
	return out
}

// issuerProblem says why an issuer URL will not do, or "": https (http
// only on this machine), no query or fragment.
func issuerProblem(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if raw == "" || err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "The issuer must be the provider's issuer URL, such as https://accounts.example.com (its discovery document is at /.well-known/openid-configuration under it)."
	}
	switch u.Scheme {
	case "https":
	case "http":
		if h := u.Hostname(); h != "localhost" && !strings.HasSuffix(h, ".localhost") && !isLoopback(h) {
			return "The issuer must use https (http only for a provider on this machine)."
		}
	default:
		return "The issuer must be an https URL."
	}
	return ""
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Add stores a provider, its secret sealed, and records it in the audit
// list. EInvalid, EConflict (the name is taken).
func (e *Engine) Add(ctx context.Context, by account.Admin, in ProviderInput) (db.Provider, error) {
	in.Name, in.DisplayName, in.Issuer = strings.TrimSpace(in.Name), strings.TrimSpace(in.DisplayName), strings.TrimRight(strings.TrimSpace(in.Issuer), "/")
	in.ClientID, in.ClientSecret = strings.TrimSpace(in.ClientID), strings.TrimSpace(in.ClientSecret)
	if problems := e.Check(in); len(problems) > 0 {
		return db.Provider{}, &account.Error{Code: account.EInvalid, Message: problems[0].Message, Fields: problems}
	}
	p := db.Provider{Name: in.Name, DisplayName: in.DisplayName, Kind: db.ProviderOIDC, Issuer: in.Issuer, ClientID: in.ClientID,
		Scopes: strings.Join(strings.Fields(in.Scopes), " "), CreatedAt: e.cfg.Now().Truncate(time.Second)}
	if in.GitHub {
		p.Kind, p.Issuer, p.Scopes = db.ProviderGitHub, e.cfg.GitHubURL, ""
	}
	if p.DisplayName == "" {
		p.DisplayName = defaultDisplayName(p)
	}
	if in.ClientSecret != "" {
		var err error
		if p.SealedSecret, err = e.acct.Seal("provider:"+p.Name, in.ClientSecret); err != nil {
			return db.Provider{}, err
		}
	}
	if other, err := e.store.ListProviders(ctx); err != nil {
		return db.Provider{}, account.Fail(err)
	} else if i := slices.IndexFunc(other, func(o db.Provider) bool { return strings.EqualFold(o.Issuer, p.Issuer) }); i >= 0 {
		// Identities are the issuer's: two providers of one issuer would
		// share them.
		msg := fmt.Sprintf("The provider %q has this issuer already.", other[i].Name)
		field := "issuer"
		if p.Kind == db.ProviderGitHub {
			msg = fmt.Sprintf("The provider %q is GitHub already.", other[i].Name)
			field = "github"
		}
		return db.Provider{}, &account.Error{Code: account.EConflict, Message: msg, Fields: []account.FieldError{{Field: field, Message: msg}}}
	}
	err := e.store.AddProvider(ctx, p)
	if errors.Is(err, db.ErrConflict) {
		return db.Provider{}, &account.Error{Code: account.EConflict, Message: fmt.Sprintf("A provider named %q exists already.", p.Name),
			Fields: []account.FieldError{{Field: "name", Message: fmt.Sprintf("A provider named %q exists already.", p.Name)}}}
	}
	if err != nil {
		return db.Provider{}, account.Fail(err)
	}
	detail := "OpenID Connect provider " + p.Issuer
	if p.Kind == db.ProviderGitHub {
		detail = "GitHub"
	}
	return p, e.acct.AuditService(ctx, by, "provider_add", p.DisplayName, detail+", client id "+p.ClientID+", name "+p.Name)
}

// defaultDisplayName is "GitHub", or the name with a capital.
func defaultDisplayName(p db.Provider) string {
	if p.Kind == db.ProviderGitHub {
		return "GitHub"
	}
	return strings.ToUpper(p.Name[:1]) + p.Name[1:]
}

// Reachable fetches an OpenID Connect provider's discovery document now,
// to say at once whether its issuer answers as one.
func (e *Engine) Reachable(ctx context.Context, p db.Provider) error {
	if p.Kind != db.ProviderOIDC {
		return nil
	}
	e.mu.Lock()
	delete(e.found, p.Issuer)
	e.mu.Unlock()
	_, err := e.discover(ctx, p.Issuer)
	return err
}

// Providers lists the providers, oldest first.
func (e *Engine) Providers(ctx context.Context) ([]db.Provider, error) {
	list, err := e.store.ListProviders(ctx)
	return list, account.Fail(err)
}

// Provider returns a provider by name; ENotFound.
func (e *Engine) Provider(ctx context.Context, name string) (db.Provider, error) {
	p, err := e.store.ProviderByName(ctx, name)
	if errors.Is(err, db.ErrNotFound) {
		return db.Provider{}, &account.Error{Code: account.ENotFound, Message: "No sign-in provider is named " + strconv.Quote(name) + "."}
	}
	return p, account.Fail(err)
}

// Deleted is what deleting a provider did: how many accounts it left
// without a way to sign in (they can set a password with a reset by
// mail), and how many sessions signed in with it ended.
type Deleted struct {
	Stranded      int
	SessionsEnded int64
}

// Delete removes a provider and every identity linked at it, and ends
// every session signed in with it, recorded in the audit list. ENotFound.
func (e *Engine) Delete(ctx context.Context, by account.Admin, name string) (Deleted, error) {
	p, err := e.Provider(ctx, name)
	if err != nil {
		return Deleted{}, err
	}
	n, ended, err := e.store.DeleteProvider(ctx, name)
	if errors.Is(err, db.ErrNotFound) {
		return Deleted{}, &account.Error{Code: account.ENotFound, Message: "No sign-in provider is named " + strconv.Quote(name) + "."}
	}
	if err != nil {
		return Deleted{}, account.Fail(err)
	}
	d := Deleted{Stranded: n, SessionsEnded: ended}
	return d, e.acct.AuditService(ctx, by, "provider_delete", p.DisplayName,
		fmt.Sprintf("name %s; %d accounts left without a way to sign in; %d sessions signed in with it ended", name, n, ended))
}
