package account

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"fiberauth/app/token"
	"fiberauth/db"
)

// touchEvery is how often, at most, a session's last use is written.
const touchEvery = 60

// Authenticate checks an access token and its session: signature,
// algorithm, issuer, audience and times, then that the session exists, has
// not expired and belongs to the token's subject. Errors: EUnauthorized
// (with a Reason), EUnavailable, EInternal.
func (s *Service) Authenticate(ctx context.Context, raw string) (*Principal, error) {
	claims, err := s.tokens.Verify(raw)
	if err != nil {
		return nil, &Error{Code: EUnauthorized, Message: MsgNotAuthorized, Reason: token.Reason(err)}
	}
	se, u, err := s.store.SessionWithUser(ctx, claims.SessionID)
	if errors.Is(err, db.ErrNotFound) {
		return nil, &Error{Code: EUnauthorized, Message: MsgNotAuthorized, Reason: "The access token was revoked"}
	}
	if err != nil {
		return nil, fail(err)
	}
	now := s.Now()
	if subjectOf(u, se) != claims.Subject || se.ClientID != claims.ClientID {
		return nil, &Error{Code: EUnauthorized, Message: MsgNotAuthorized, Reason: "The access token was not issued by this service"}
	}
	if !s.alive(se, now) {
		return nil, &Error{Code: EUnauthorized, Message: MsgNotAuthorized, Reason: "The session expired"}
	}
	if now.Unix()-se.LastUsedAt.Unix() >= touchEvery {
		if err := s.store.TouchSession(ctx, se.ID, now); err != nil {
			s.log.Warn("touch session", slog.String("error", err.Error()))
		} else {
			se.LastUsedAt = now.Truncate(1e9)
		}
	}
	return &Principal{User: u, Session: se, IssuedAt: claims.IssuedAt.Time, ExpiresAt: claims.ExpiresAt.Time,
		Scope: claims.Scope, AMR: claims.AMR}, nil
}

// Renew issues a new access token for the caller's session (a browser whose
// token is past half its life, or whose role changed, while the session is
// alive) and makes it the caller's.
func (s *Service) Renew(p *Principal) (string, error) {
	now := s.Now()
	scope := Effective(p.User.Role, p.Session.Scope)
	raw, exp, err := s.tokens.Issue(token.Grant{Subject: p.User.Username, SessionID: p.Session.ID, Scope: scope, AMR: p.AMR}, now)
	if err != nil {
		return "", fail(err)
	}
	p.Scope, p.IssuedAt, p.ExpiresAt = scope, now.Truncate(time.Second), exp
	return raw, nil
}

// Stale reports whether the caller's token no longer says what its session
// grants now (the role changed since it was issued).
func (p *Principal) Stale() bool {
	return p.Scope != "" && p.Scope != Effective(p.User.Role, p.Session.Scope)
}

// SignOut ends the caller's session.
func (s *Service) SignOut(ctx context.Context, c Client, p *Principal) error {
	return s.endSession(ctx, p.Session.ID, p.User.ID, s.event(c, db.EventSignOut), EndedSignOut)
}

// endSession ends one session of userID for reason; one already gone is
// no error.
func (s *Service) endSession(ctx context.Context, id string, userID int64, ev db.Event, reason string) error {
	_, err := s.store.Apply(ctx, userID, voids(ChangeSessionEnded, id), ev)
	if errors.Is(err, db.ErrNotFound) {
		return nil
	}
	if err == nil {
		s.cfg.Metrics.SessionsEnded(reason, 1)
	}
	return fail(err)
}

// Revoke ends the session of an access token signed here, expired or not,
// or of a refresh token (RFC 7009: a token that is not valid is no error).
func (s *Service) Revoke(ctx context.Context, c Client, raw string) error {
	if !token.LooksLikeJWT(raw) {
		se, _, _, err := s.store.SessionByRefresh(ctx, token.HashRefresh(raw))
		if errors.Is(err, db.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fail(err)
		}
		return s.endSession(ctx, se.ID, se.UserID, s.event(c, db.EventSignOut), EndedRevoked)
	}
	claims, err := s.tokens.VerifySignature(raw)
	if err != nil {
		return nil
	}
	se, u, err := s.store.SessionWithUser(ctx, claims.SessionID)
	if errors.Is(err, db.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fail(err)
	}
	if subjectOf(u, se) != claims.Subject {
		return nil
	}
	return s.endSession(ctx, claims.SessionID, u.ID, s.event(c, db.EventSignOut), EndedRevoked)
}

// EndSession ends one of the caller's sessions. ENotFound when the caller
// has no session with that id.
func (s *Service) EndSession(ctx context.Context, c Client, p *Principal, id string) error {
	_, err := s.store.Apply(ctx, p.User.ID, voids(ChangeSessionEnded, id), s.event(c, db.EventSessionEnded))
	if errors.Is(err, db.ErrNotFound) {
		return errNoSession
	}
	if err == nil {
		s.cfg.Metrics.SessionsEnded(EndedByUser, 1)
	}
	return fail(err)
}

// EndOtherSessions ends every session of the caller but the current one
// (signing out everywhere else) and returns how many ended.
func (s *Service) EndOtherSessions(ctx context.Context, c Client, p *Principal) (int64, error) {
	n, err := s.store.Apply(ctx, p.User.ID, voids(ChangeSignOutEverywhere, p.Session.ID), s.event(c, db.EventSessionEnded))
	s.cfg.Metrics.SessionsEnded(EndedByUser, n)
	return n, fail(err)
}

// ChangePassword sets a new password after checking the current one (the
// proof: see stepUp) and ends every other session. An account without a
// password gets its first one this way, confirmed with a passkey. Errors:
// EInvalid (field new_password), EForbidden, EThrottled, EBusy,
// EUnavailable, EInternal.
func (s *Service) ChangePassword(ctx context.Context, c Client, p *Principal, proof Proof, next string) error {
	if msg := NewPasswordProblem(next); msg != "" {
		return invalid(FieldError{Field: "new_password", Message: msg})
	}
	if next == proof.Password {
		return invalid(FieldError{Field: "new_password", Message: "The new password must differ from the current one."})
	}
	old, err := s.stepUp(ctx, c, p, proof)
	if err != nil {
		return err
	}
	hash, err := s.hasher.Hash(ctx, next)
	if err != nil {
		return fail(err)
	}
	ev := s.event(c, db.EventPasswordChange)
	if old == "" {
		ev.Detail = "Password set"
	}
	n, err := s.store.ChangePassword(ctx, p.User.ID, old, hash, voids(ChangePassword, p.Session.ID), ev)
	s.cfg.Metrics.SessionsEnded(EndedPasswordChanged, n)
	if errors.Is(err, db.ErrChanged) {
		// Another change won the race: the password checked is no longer
		// the account's.
		return &Error{Code: EForbidden, Message: MsgIncorrectPassword}
	}
	return fail(err)
}

// errNoSession is a session that does not exist or is not the caller's.
var errNoSession = &Error{Code: ENotFound, Message: MsgSessionNotFound}

// DeleteAccount removes the caller's account, its sessions and its events
// after checking the password. Errors: EForbidden, EThrottled, EBusy,
// EUnavailable, EInternal.
func (s *Service) DeleteAccount(ctx context.Context, c Client, p *Principal, proof Proof) error {
	hash, err := s.stepUp(ctx, c, p, proof)
	if err != nil {
		return err
	}
	n, err := s.store.DeleteUser(ctx, p.User.ID, hash, voids(ChangeAccountDeleted, p.Session.ID))
	s.cfg.Metrics.SessionsEnded(EndedAccountDeleted, n)
	switch {
	case errors.Is(err, db.ErrChanged):
		return &Error{Code: EForbidden, Message: MsgIncorrectPassword}
	case errors.Is(err, db.ErrLastAdmin):
		return errLastAdmin
	case errors.Is(err, db.ErrNotFound):
		return nil
	}
	return fail(err)
}

// event is an activity record of kind for c, now.
func (s *Service) event(c Client, kind string) db.Event {
	return db.Event{Kind: kind, At: s.Now(), IP: c.Addr, UserAgent: c.UserAgent}
}
