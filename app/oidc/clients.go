package oidc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"fiberauth/app/account"
	"fiberauth/db"
)

// ClientInput is what registering an application takes.
type ClientInput struct {
	Name string
	// RedirectURIs are where codes may go (at least one), compared
	// exactly; PostLogoutRedirectURIs where a logout may return.
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	// Public clients have no secret and must use PKCE (a browser or
	// mobile app); the others get a secret, shown once.
	Public bool
	// FirstParty applications are not shown a consent screen.
	FirstParty bool
	// BackchannelLogoutURI receives logout tokens; "" for none.
	BackchannelLogoutURI string
	// Scopes it may ask for; empty means openid profile email
	// offline_access.
	Scopes []string
	// IDTokenAlg is RS256 (the default) or EdDSA.
	IDTokenAlg string
}

// Messages of client management.
const (
	MsgNoClient       = "No such application"
	MsgPublicNoSecret = "A public application has no secret to rotate"
)

var errNoClient = &account.Error{Code: account.ENotFound, Message: MsgNoClient}

// checkURI checks a redirect URI: absolute, without a fragment, and https
// unless it names this machine (http://localhost, 127.0.0.1 or [::1], as
// native and development applications use, RFC 8252 §7.3).
func checkURI(raw string) string {
	if raw == "" || len(raw) > 1024 || !utf8.ValidString(raw) || strings.ContainsAny(raw, " \t\r\n") {
		return "must be an absolute https URL"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Fragment != "" || u.User != nil || strings.Contains(raw, "#") {
		return "must be an absolute https URL without a fragment or credentials"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return ""
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return ""
		}
		return "must use https (plain http only for localhost)"
	}
	return "must be an https URL"
}

func (in ClientInput) check() []account.FieldError {
	var problems []account.FieldError
	name := strings.TrimSpace(in.Name)
	if name == "" || utf8.RuneCountInString(name) > 100 || strings.ContainsAny(name, "\r\n\x00") {
		problems = append(problems, account.FieldError{Field: "name", Message: "Give the application a name of 1 to 100 characters."})
	}
	if len(in.RedirectURIs) == 0 {
		problems = append(problems, account.FieldError{Field: "redirect_uris", Message: "Give at least one redirect URI."})
	}
	for _, lists := range []struct {
		field string
		uris  []string
	}{{"redirect_uris", in.RedirectURIs}, {"post_logout_redirect_uris", in.PostLogoutRedirectURIs}} {
		for _, u := range lists.uris {
			if msg := checkURI(u); msg != "" {
				problems = append(problems, account.FieldError{Field: lists.field, Message: fmt.Sprintf("%q %s.", u, msg)})
			}
		}
	}
	if in.BackchannelLogoutURI != "" {
		if msg := checkURI(in.BackchannelLogoutURI); msg != "" {
			problems = append(problems, account.FieldError{Field: "backchannel_logout_uri", Message: fmt.Sprintf("%q %s.", in.BackchannelLogoutURI, msg)})
		}
	}
	for _, sc := range in.Scopes {
		if !slices.Contains(KnownScopes, sc) {
			problems = append(problems, account.FieldError{Field: "scopes", Message: fmt.Sprintf("Unknown scope %q (known: %s).", sc, strings.Join(KnownScopes, ", "))})
		}
	}
	switch in.IDTokenAlg {
	case "", "RS256", "EdDSA":
	default:
		problems = append(problems, account.FieldError{Field: "id_token_alg", Message: "The ID token algorithm must be RS256 or EdDSA."})
	}
	return problems
}

// dedupe returns list without repeats or blanks, in order.
func dedupe(list []string) []string {
	var out []string
	for _, v := range list {
		if v = strings.TrimSpace(v); v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// CreateClient registers an application and returns it with its secret
// (shown once; "" for a public client). It is recorded in the audit list.
func (p *Provider) CreateClient(ctx context.Context, by account.Admin, in ClientInput) (db.Client, string, error) {
	in.RedirectURIs, in.PostLogoutRedirectURIs, in.Scopes = dedupe(in.RedirectURIs), dedupe(in.PostLogoutRedirectURIs), dedupe(in.Scopes)
	in.BackchannelLogoutURI = strings.TrimSpace(in.BackchannelLogoutURI)
	if problems := in.check(); len(problems) > 0 {
		return db.Client{}, "", &account.Error{Code: account.EInvalid, Message: problems[0].Message, Fields: problems}
	}
	if len(in.Scopes) == 0 {
		in.Scopes = []string{ScopeOpenID, ScopeProfile, ScopeEmail, ScopeOffline}
	}
	if in.IDTokenAlg == "" {
		in.IDTokenAlg = "RS256"
	}
	id, err := newClientID()
	if err != nil {
		return db.Client{}, "", err
	}
	c := db.Client{ID: id, Name: strings.TrimSpace(in.Name), RedirectURIs: in.RedirectURIs, PostLogoutRedirectURIs: in.PostLogoutRedirectURIs,
		BackchannelLogoutURI: in.BackchannelLogoutURI, Scopes: in.Scopes, FirstParty: in.FirstParty, IDTokenAlg: in.IDTokenAlg,
		CreatedAt: p.now().Truncate(time.Second)}
	secret := ""
	if !in.Public {
		if secret, err = random(32); err != nil {
			return db.Client{}, "", err
		}
		c.SecretHash = sha(secret)
	}
	if err := p.store.CreateClient(ctx, c); err != nil {
		return db.Client{}, "", account.Fail(err)
	}
	kind := "confidential"
	if in.Public {
		kind = "public"
	}
	if err := p.acct.AuditService(ctx, by, "client_create", c.Name, kind+" application "+c.ID+", redirect URIs "+
		strings.Join(c.RedirectURIs, " ")); err != nil {
		return c, secret, err
	}
	return c, secret, nil
}

// Clients returns the registered applications, oldest first.
func (p *Provider) Clients(ctx context.Context) ([]db.Client, error) {
	list, err := p.store.ListClients(ctx)
	return list, account.Fail(err)
}

// Client returns one application; ENotFound when there is none.
func (p *Provider) Client(ctx context.Context, id string) (db.Client, error) {
	c, err := p.store.ClientByID(ctx, id)
	if errors.Is(err, db.ErrNotFound) {
		return db.Client{}, errNoClient
	}
	return c, account.Fail(err)
}

// RotateSecret gives a confidential application a new secret (returned,
// shown once); the old one stops working at once. Audited.
func (p *Provider) RotateSecret(ctx context.Context, by account.Admin, id string) (string, error) {
	c, err := p.Client(ctx, id)
	if err != nil {
		return "", err
	}
	secret, err := random(32)
	if err != nil {
		return "", err
	}
	err = p.store.SetClientSecret(ctx, id, sha(secret))
	switch {
	case errors.Is(err, db.ErrNotFound):
		return "", errNoClient
	case errors.Is(err, db.ErrConflict):
		return "", &account.Error{Code: account.EConflict, Message: MsgPublicNoSecret}
	case err != nil:
		return "", account.Fail(err)
	}
	return secret, p.acct.AuditService(ctx, by, "client_rotate_secret", c.Name, "application "+c.ID)
}

// DeleteClient removes an application: its codes, consents and the
// sessions (tokens) it holds end with it. Audited.
func (p *Provider) DeleteClient(ctx context.Context, by account.Admin, id string) error {
	c, err := p.Client(ctx, id)
	if err != nil {
		return err
	}
	if err := p.store.DeleteClient(ctx, id); err != nil {
		if errors.Is(err, db.ErrNotFound) {
			return errNoClient
		}
		return account.Fail(err)
	}
	return p.acct.AuditService(ctx, by, "client_delete", c.Name, "application "+c.ID)
}

// ClientAuth is how a client identified itself at the token endpoint:
// client_secret_basic (Basic), client_secret_post, or none (a public
// client, by client_id alone).
type ClientAuth struct {
	ID, Secret string
	// Basic is true when they came in the Authorization header.
	Basic bool
	// HasSecret is true when a secret was sent at all.
	HasSecret bool
}

// errInvalidClient is RFC 6749's invalid_client: 401, with the same words
// whatever was wrong.
var errInvalidClient = oauthErr(401, "invalid_client", "Client authentication failed")

// authenticate checks a client's credentials: a confidential client's
// secret (in constant time, against its SHA-256), or none for a public
// client, which then must prove itself with PKCE.
func (p *Provider) authenticate(ctx context.Context, a ClientAuth) (db.Client, error) {
	if a.ID == "" {
		return db.Client{}, errInvalidClient
	}
	c, err := p.store.ClientByID(ctx, a.ID)
	if errors.Is(err, db.ErrNotFound) {
		// The same work as a known client with a wrong secret.
		equal(sha(a.Secret), make([]byte, 32))
		return db.Client{}, errInvalidClient
	}
	if err != nil {
		return db.Client{}, account.Fail(err)
	}
	if c.Public() {
		if a.HasSecret {
			return db.Client{}, errInvalidClient
		}
		return c, nil
	}
	if !a.HasSecret || !equal(sha(a.Secret), c.SecretHash) {
		return db.Client{}, errInvalidClient
	}
	return c, nil
}

// newClientID returns a random client id that starts with a letter or a
// digit, so that it never reads as a flag on a command line.
func newClientID() (string, error) {
	for {
		id, err := random(16)
		if err != nil || (id[0] != '-' && id[0] != '_') {
			return id, err
		}
	}
}
