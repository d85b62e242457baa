package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"fiberauth/app/password"
	"fiberauth/app/throttle"
	"fiberauth/app/token"
	"fiberauth/app/valid"
	"fiberauth/db"
)

// errBadCredentials is what both sign-in paths see for an unknown user and
// for a wrong password alike; each path words it in its own format.
var errBadCredentials = errors.New("bad credentials")

// session is a freshly started sign-in.
type session struct {
	User      db.User
	Token     string
	ExpiresIn int
}

// signIn checks a username-or-email and password, counting failures
// against the account and the client address, and starts a session. It
// returns errBadCredentials, a throttling *Error, errBusy, or an internal
// error.
func (s *Server) signIn(c *fiber.Ctx, login, pw string) (session, error) {
	ctx := c.UserContext()
	key, isEmail := valid.LoginKey(login)
	ip := s.clientIP(c)
	var u db.User
	var err error
	if isEmail {
		u, err = s.store.UserByEmailKey(ctx, key)
	} else {
		u, err = s.store.UserByUsernameKey(ctx, key)
	}
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return session{}, err
	}
	// An unknown user is verified against a dummy hash: same cost, no match.
	switch err := s.guardedVerify(ctx, key, ip, u.PasswordHash, pw); {
	case errors.Is(err, password.ErrMismatch):
		if u.ID != 0 {
			s.event(ctx, c, u.ID, db.EventSignInFailed)
		}
		return session{}, errBadCredentials
	case err != nil:
		return session{}, err
	}
	if s.hasher.NeedsRehash(u.PasswordHash) {
		s.upgradeHash(ctx, u, pw)
	}
	return s.startSession(c, u)
}

// guardedVerify checks pw against hash under the sign-in throttle: the
// account key and the client address ip must not be throttled, and the
// outcome is counted against both (a success forgives the account, not the
// address). It returns nil, password.ErrMismatch, a throttling *Error,
// errBusy, or an internal error.
func (s *Server) guardedVerify(ctx context.Context, key, ip, hash, pw string) error {
	if w := s.loginAccount.Begin(key); w > 0 {
		return errThrottled(w)
	}
	if w := s.loginIP.Begin(ip); w > 0 {
		s.loginAccount.End(key, throttle.Abandoned)
		return errThrottled(w)
	}
	err := s.hasher.Verify(ctx, hash, pw)
	outcome := throttle.Abandoned
	switch {
	case err == nil:
		outcome = throttle.Succeeded
	case errors.Is(err, password.ErrMismatch):
		outcome = throttle.Failed
	}
	s.loginAccount.End(key, outcome)
	if outcome == throttle.Succeeded {
		outcome = throttle.Abandoned
	}
	s.loginIP.End(ip, outcome)
	if errors.Is(err, password.ErrBusy) {
		return errBusy
	}
	return err
}

// upgradeHash re-hashes a password at the configured cost after a
// successful sign-in. Failure only delays the upgrade to the next sign-in.
func (s *Server) upgradeHash(ctx context.Context, u db.User, pw string) {
	hash, err := s.hasher.Hash(ctx, pw)
	if err == nil {
		err = s.store.SetPasswordHash(ctx, u.ID, hash)
	}
	if err != nil {
		s.log.Warn("password hash upgrade postponed", slog.Int64("user_id", u.ID), slog.String("error", err.Error()))
	}
}

// startSession creates a session for u and issues its token.
func (s *Server) startSession(c *fiber.Ctx, u db.User) (session, error) {
	ctx := c.UserContext()
	id, err := token.NewSessionID()
	if err != nil {
		return session{}, err
	}
	now := s.now()
	raw, exp, err := s.tokens.Issue(u.Username, id, now)
	if err != nil {
		return session{}, err
	}
	err = s.store.CreateSession(ctx, db.Session{
		ID: id, UserID: u.ID, CreatedAt: now, ExpiresAt: exp, LastUsedAt: now,
		IP: s.clientIP(c), UserAgent: userAgent(c),
	})
	if err != nil {
		return session{}, err
	}
	s.event(ctx, c, u.ID, db.EventSignIn)
	return session{User: u, Token: raw, ExpiresIn: int(s.tokens.Lifetime().Seconds())}, nil
}

// event records an account event; a failure is logged, not returned, since
// the action it describes has already happened.
func (s *Server) event(ctx context.Context, c *fiber.Ctx, userID int64, kind string) {
	err := s.store.AddEvent(ctx, db.Event{UserID: userID, Kind: kind, At: s.now(), IP: s.clientIP(c), UserAgent: userAgent(c)})
	if err != nil {
		s.log.Warn("record event", slog.String("kind", kind), slog.String("error", err.Error()))
	}
}

// registration is a validated registration request.
type registration struct {
	Username, UsernameKey, Email, EmailKey, Password string
}

// register creates an account. It returns a conflict *Error naming what is
// taken, a throttling *Error, errBusy, or an internal error.
func (s *Server) register(c *fiber.Ctx, r registration) (db.User, error) {
	ctx := c.UserContext()
	ip := s.clientIP(c)
	if w := s.registerIP.Wait(ip); w > 0 {
		return db.User{}, errThrottled(w)
	}
	if taken := s.taken(ctx, r); taken != nil {
		return db.User{}, taken
	}
	s.registerIP.Add(ip)
	hash, err := s.hasher.Hash(ctx, r.Password)
	if errors.Is(err, password.ErrBusy) {
		return db.User{}, errBusy
	}
	if err != nil {
		return db.User{}, err
	}
	u, err := s.store.CreateUser(ctx, db.NewUser{
		Username: r.Username, UsernameKey: r.UsernameKey, Email: r.Email, EmailKey: r.EmailKey,
		PasswordHash: hash, CreatedAt: s.now(),
	})
	if errors.Is(err, db.ErrConflict) {
		// Lost a race with a concurrent registration.
		if taken := s.taken(ctx, r); taken != nil {
			return db.User{}, taken
		}
		return db.User{}, &Error{Status: http.StatusConflict, Detail: msgUserExists}
	}
	return u, err
}

// conflictField says which identifier is taken, for the form's message.
type conflictField string

// taken returns a 409 *Error when the username or email is in use.
func (s *Server) taken(ctx context.Context, r registration) *Error {
	field := ""
	if _, err := s.store.UserByUsernameKey(ctx, r.UsernameKey); err == nil {
		field = "username"
	} else if _, err := s.store.UserByEmailKey(ctx, r.EmailKey); err == nil {
		field = "email"
	}
	if field == "" {
		return nil
	}
	return &Error{Status: http.StatusConflict, Detail: msgUserExists, conflict: conflictField(field)}
}
