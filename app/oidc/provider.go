// Package oidc is the service's OpenID Connect provider (OpenID Connect
// Core 1.0, RFC 6749, RFC 7636, RFC 9700): registered applications
// (clients) sign their users in here with the authorization code flow and
// PKCE, get ID tokens, access and refresh tokens, call userinfo, and are
// told of logouts through the back channel. It decides the protocol and
// leaves HTTP to the handlers: it takes a context and plain values, calls
// the store and the account core, and returns *Error values for the
// protocol's refusals (or the core's *account.Error).
//
// Tokens are the account core's: an application's tokens belong to a
// session of their own (db.Session with ClientID), started from the
// session in this service that authorized it, so that everything the core
// does to sessions (the table of what ends what, revocation, refresh
// rotation, introspection) applies to them as to any other.
package oidc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"fiberauth/app/account"
	"fiberauth/app/token"
	"fiberauth/db"
)

// Config holds the provider's settings.
type Config struct {
	// Issuer is the service's public URL: iss of every token, and the base
	// of the endpoints' URLs.
	Issuer string
	// CodeLifetime is how long an authorization code lives (60 s).
	CodeLifetime time.Duration
	// IDTokenLifetime is how long an ID token is valid (the access
	// tokens' lifetime).
	IDTokenLifetime time.Duration
	// SessionLifetime is how long an application's session with offline
	// access lasts at most (a session's absolute lifetime).
	SessionLifetime time.Duration
	// HTTPClient delivers back-channel logouts; nil means one with a 10 s
	// timeout.
	HTTPClient *http.Client
	// Key signs the way back from the login page (auth_after), so that a
	// forced sign-in cannot be skipped by editing the address.
	Key []byte
}

// Provider carries out the protocol.
type Provider struct {
	cfg    Config
	store  *db.Store
	acct   *account.Service
	tokens *token.Manager
	log    *slog.Logger
	// logouts delivers back-channel logout notices.
	logouts *dispatcher
}

// New returns a Provider and starts its back-channel dispatcher (Close
// stops it).
func New(cfg Config, store *db.Store, acct *account.Service, log *slog.Logger) *Provider {
	if cfg.CodeLifetime <= 0 {
		cfg.CodeLifetime = time.Minute
	}
	if cfg.IDTokenLifetime <= 0 {
		cfg.IDTokenLifetime = acct.Tokens().Lifetime()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	p := &Provider{cfg: cfg, store: store, acct: acct, tokens: acct.Tokens(), log: log}
	p.logouts = newDispatcher(p)
	return p
}

// Close stops the back-channel dispatcher, letting deliveries under way
// finish until ctx ends; notices not yet delivered stay queued for the
// next start.
func (p *Provider) Close(ctx context.Context) { p.logouts.close(ctx) }

// Issuer is the provider's issuer URL.
func (p *Provider) Issuer() string { return p.cfg.Issuer }

// now is the account core's clock, which tests move.
func (p *Provider) now() time.Time { return p.acct.Now() }

// Error is a refusal in OAuth 2.0's words (RFC 6749 §4.1.2.1, §5.2): Code
// is the error code, Description a sentence for people. Redirect is true
// when it goes back to the application (its client and redirect URI are
// valid) rather than on an error page here; Status is the HTTP status of a
// token endpoint answer.
type Error struct {
	Code        string
	Description string
	Status      int
	// Redirect, RedirectURI and State: where an authorization error goes.
	Redirect    bool
	RedirectURI string
	State       string
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func oauthErr(status int, code, description string) *Error {
	return &Error{Code: code, Description: description, Status: status}
}

// Scopes the provider understands, besides the role scopes.
const (
	ScopeOpenID  = "openid"
	ScopeProfile = "profile"
	ScopeEmail   = "email"
	ScopeOffline = "offline_access"
)

// KnownScopes are the scopes an application may be registered for.
var KnownScopes = []string{ScopeOpenID, ScopeProfile, ScopeEmail, ScopeOffline, db.RoleBasic, db.RolePremium, db.RoleAdmin}

// hasScope reports whether the space-separated scope holds want.
func hasScope(scope, want string) bool { return slices.Contains(strings.Fields(scope), want) }

// random returns n random bytes in base64url.
func random(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// sha is the SHA-256 of s.
func sha(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// equal compares two secrets in constant time.
func equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
