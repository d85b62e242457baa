package account

import (
	"context"
	"errors"
	"strings"
	"time"

	"fiberauth/app/throttle"
	"fiberauth/app/token"
	"fiberauth/db"
)

// MsgInvalidRefresh is said of a refresh token that is unknown, spent,
// expired or revoked.
const MsgInvalidRefresh = "The refresh token is invalid, expired or revoked"

// errSessionEnded aborts a refresh whose session has expired.
var errSessionEnded = errors.New("session ended")

// Refresh exchanges a refresh token for a new access token and a new
// refresh token for the same session (RFC 6749 §6), spending the old one.
// A spent token presented again ends the whole session and is recorded in
// the account's activity, unless it is the immediately previous token of
// the session presented within the grace period (a client that lost the
// answer or raced itself): that gets a pair for the same session too.
// scope, when given, must be within the session's. Refreshes are throttled
// like sign-ins per address; only a reused token counts against the
// account. Errors: EUnauthorized (unknown, spent, expired or revoked),
// EInvalid (field scope), EThrottled, EUnavailable, EInternal.
func (s *Service) Refresh(ctx context.Context, c Client, raw, scope string) (Grant, error) {
	g, outcome, err := s.refresh(ctx, c, raw, scope)
	s.cfg.Metrics.Refresh(outcome)
	if outcome == "reused" {
		s.cfg.Metrics.SessionsEnded(EndedRefreshReused, 1)
		s.log.Warn("refresh token reused: session ended", "user_id", g.User.ID, "ip", c.Addr)
		g = Grant{}
	}
	return g, err
}

func (s *Service) refresh(ctx context.Context, c Client, raw, scope string) (Grant, string, error) {
	now := s.Now()
	// A refresh token has 256 random bits: nobody guesses one. A token
	// that does not hold counts against the address as a failed sign-in
	// does, and an address throttled for its failures is refused (429)
	// for such a token; a token that holds is not a guess and is never
	// refused for its address (a network shared with someone guessing
	// passwords keeps its sessions), which spares a read of the throttle
	// on every good refresh.
	address := addressKey(c.Addr)
	refused := func() (string, error) {
		if w, err := s.limits.Wait(ctx, address, now); err != nil {
			return "error", fail(err)
		} else if w > 0 {
			return "throttled", throttled(w)
		}
		s.countFailure(ctx, address, s.cfg.Address, now)
		return "invalid", &Error{Code: EUnauthorized, Message: MsgInvalidRefresh}
	}
	next, nextHash, err := token.NewRefresh()
	if err != nil {
		return Grant{}, "error", fail(err)
	}
	var scopeErr error
	out, se, u, err := s.store.RefreshSession(ctx, db.Refresh{
		Hash: token.HashRefresh(raw), NewHash: nextHash, Now: now, Grace: s.cfg.ReuseGrace, TouchAfter: time.Minute,
		Reused: voids(ChangeRefreshReused, ""),
		Event:  db.Event{Kind: db.EventRefreshReused, At: now, IP: c.Addr, UserAgent: c.UserAgent},
		Check: func(se db.Session, u db.User) error {
			if !s.alive(se, now) {
				return errSessionEnded
			}
			if !ScopeWithin(scope, Effective(u.Role, se.Scope)) {
				scopeErr = invalid(FieldError{Field: "scope", Message: "The requested scope is wider than the one granted"})
				return scopeErr
			}
			return nil
		},
	})
	switch {
	case errors.Is(err, errSessionEnded):
		if _, err := s.store.Apply(ctx, se.UserID, voids(ChangeSessionEnded, se.ID), db.Event{}); err == nil {
			s.cfg.Metrics.SessionsEnded(EndedExpired, 1)
		} else if !errors.Is(err, db.ErrNotFound) {
			s.log.Warn("end an expired session", "error", err.Error())
		}
		outcome, err := refused()
		return Grant{}, outcome, err
	case scopeErr != nil:
		return Grant{}, "invalid", scopeErr
	case err != nil:
		return Grant{}, "error", fail(err)
	}
	switch out {
	case db.RefreshUnknown:
		outcome, err := refused()
		return Grant{}, outcome, err
	case db.RefreshReused:
		// A stolen token in use: it counts against the account too.
		s.countFailure(ctx, address, s.cfg.Address, now)
		s.countFailure(ctx, userKey(se.UserID), s.cfg.Account, now)
		return Grant{User: db.User{ID: se.UserID}}, "reused", &Error{Code: EUnauthorized, Message: MsgInvalidRefresh}
	}
	outcome := "success"
	if out == db.RefreshGrace {
		outcome = "grace"
	}
	if scope != "" {
		se.Scope = NormalizeScope(scope) // for this token only: the session keeps its grant
	}
	g, err := s.grant(u, se, now)
	if err != nil {
		return Grant{}, "error", fail(err)
	}
	g.RefreshToken = next
	return g, outcome, nil
}

// countFailure counts one failed attempt on key.
func (s *Service) countFailure(ctx context.Context, key string, r throttle.Rule, now time.Time) {
	a := &attempt{s: s}
	if a.take(ctx, key, r, now) == nil {
		a.end(ctx, counted)
	}
}

// NormalizeScope returns the scopes of a space-separated list, each once,
// in the order given.
func NormalizeScope(scope string) string {
	var out []string
	for _, sc := range strings.Fields(scope) {
		if !contains(out, sc) {
			out = append(out, sc)
		}
	}
	return strings.Join(out, " ")
}

// ScopeWithin reports whether every scope in requested is in granted. An
// empty request asks for what was granted.
func ScopeWithin(requested, granted string) bool {
	have := strings.Fields(granted)
	for _, sc := range strings.Fields(requested) {
		if !contains(have, sc) {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Introspection is what RFC 7662 says of a token.
type Introspection struct {
	Active    bool
	Subject   string
	SessionID string
	Scope     string
	TokenType string
	IssuedAt  time.Time
	ExpiresAt time.Time
	Issuer    string
	// ClientID is the application the token was issued to, "" for this
	// service's own sign-ins.
	ClientID string
}

// Introspect says whether a token is live: an access token whose signature,
// times and session check out, or an unspent refresh token of a live
// session.
func (s *Service) Introspect(ctx context.Context, raw string) (Introspection, error) {
	now := s.Now()
	if !token.LooksLikeJWT(raw) {
		se, u, spent, err := s.store.SessionByRefresh(ctx, token.HashRefresh(raw))
		if errors.Is(err, db.ErrNotFound) || err == nil && (spent || !s.alive(se, now)) {
			return Introspection{}, nil
		}
		if err != nil {
			return Introspection{}, fail(err)
		}
		return Introspection{Active: true, Subject: subjectOf(u, se), SessionID: se.ID, Scope: Effective(u.Role, se.Scope),
			TokenType: "refresh_token", IssuedAt: se.CreatedAt, ExpiresAt: s.ends(se), Issuer: s.tokens.Issuer(), ClientID: se.ClientID}, nil
	}
	claims, err := s.tokens.Verify(raw)
	if err != nil {
		return Introspection{}, nil
	}
	se, u, err := s.store.SessionWithUser(ctx, claims.SessionID)
	if errors.Is(err, db.ErrNotFound) {
		return Introspection{}, nil
	}
	if err != nil {
		return Introspection{}, fail(err)
	}
	if subjectOf(u, se) != claims.Subject || se.ClientID != claims.ClientID || !s.alive(se, now) {
		return Introspection{}, nil
	}
	return Introspection{Active: true, Subject: claims.Subject, SessionID: claims.SessionID, Scope: Granted(u.Role, se.Scope, claims.Scope),
		TokenType: "access_token", IssuedAt: claims.IssuedAt.Time, ExpiresAt: claims.ExpiresAt.Time, Issuer: claims.Issuer,
		ClientID: se.ClientID}, nil
}
