package account

import (
	"context"
	"errors"

	"fiberauth/app/password"
	"fiberauth/app/valid"
	"fiberauth/db"
)

// Registration is what a person asks to register with.
type Registration struct {
	Username, Email, Password string
	// SignIn starts a session for the new account at once (the pages do),
	// unless verified addresses are required.
	SignIn bool
	// Role is the new account's role; empty means basic. Only an
	// administrator (or the command line) gives another.
	Role string
	// Trusted skips the per-address registration limit (an administrator,
	// the command line).
	Trusted bool
}

// Registered is a new account, and its first session when one was asked
// for.
type Registered struct {
	User  db.User
	Grant *Grant
}

// CheckRegistration applies the registration rules and returns the
// problems, one per field at fault, in the order username, email,
// password.
func CheckRegistration(username, email, pw string) (name, nameKey, addr, addrKey string, problems []FieldError) {
	var msg string
	if name, nameKey, msg = valid.Username(username); msg != "" {
		problems = append(problems, FieldError{Field: "username", Message: msg})
	}
	if addr, addrKey, msg = valid.Email(email); msg != "" {
		problems = append(problems, FieldError{Field: "email", Message: msg})
	}
	if msg = NewPasswordProblem(pw); msg != "" {
		problems = append(problems, FieldError{Field: "password", Message: msg})
	}
	return name, nameKey, addr, addrKey, problems
}

// NewPasswordProblem applies the registration rules to a new password and
// returns what is wrong with it, or "".
func NewPasswordProblem(pw string) string {
	if p := valid.Text(pw); p != "" {
		return "Password " + p + "."
	}
	return password.Check(pw)
}

// Register creates an account. Errors: EInvalid (with the fields at
// fault), EConflict (naming the taken field), EThrottled, EBusy,
// EUnavailable, EInternal.
func (s *Service) Register(ctx context.Context, c Client, r Registration) (Registered, error) {
	name, nameKey, addr, addrKey, problems := CheckRegistration(r.Username, r.Email, r.Password)
	if r.Role != "" && !ValidRole(r.Role) {
		problems = append(problems, FieldError{Field: "role", Message: "Role must be basic, premium or admin."})
	}
	if len(problems) > 0 {
		return Registered{}, invalid(problems...)
	}
	a := &attempt{s: s}
	if !r.Trusted {
		if err := a.take(ctx, registrationKey(c.Addr), s.cfg.Registration, s.Now()); err != nil {
			return Registered{}, err
		}
	}
	if err := s.taken(ctx, nameKey, addrKey); err != nil {
		a.end(ctx, abandoned)
		return Registered{}, err
	}
	hash, err := s.hasher.Hash(ctx, r.Password)
	if err != nil {
		a.end(ctx, abandoned)
		return Registered{}, fail(err)
	}
	now := s.Now()
	u, err := s.store.CreateUser(ctx, db.NewUser{
		Username: name, UsernameKey: nameKey, Email: addr, EmailKey: addrKey, PasswordHash: hash, CreatedAt: now, Role: r.Role,
		Event: db.Event{Kind: db.EventAccountCreated, At: now, IP: c.Addr, UserAgent: c.UserAgent},
	})
	if errors.Is(err, db.ErrConflict) {
		// Lost a race with a concurrent registration.
		a.end(ctx, abandoned)
		if err := s.taken(ctx, nameKey, addrKey); err != nil {
			return Registered{}, err
		}
		return Registered{}, &Error{Code: EConflict, Message: MsgUserExists}
	}
	if err != nil {
		a.end(ctx, abandoned)
		return Registered{}, fail(err)
	}
	a.end(ctx, counted)
	s.cfg.Metrics.Registered()
	if err := s.sendVerification(ctx, u, u.Email, ""); err != nil {
		s.log.Warn("verification code not sent", "user_id", u.ID, "error", err.Error())
	}
	out := Registered{User: u}
	if r.SignIn && !s.cfg.RequireVerifiedEmail {
		g, err := s.startSession(ctx, c, u, "", db.EventSignIn)
		if err != nil {
			return out, fail(err)
		}
		out.Grant = &g
	}
	return out, nil
}

// taken returns EConflict naming the field in use, or nil.
func (s *Service) taken(ctx context.Context, nameKey, addrKey string) error {
	name, email, err := s.store.Taken(ctx, nameKey, addrKey)
	if err != nil {
		return fail(err)
	}
	switch {
	case name:
		return &Error{Code: EConflict, Message: MsgUserExists, Fields: []FieldError{{Field: "username", Message: "That username is already taken."}}}
	case email:
		return &Error{Code: EConflict, Message: MsgUserExists, Fields: []FieldError{{Field: "email", Message: "An account with that email address already exists."}}}
	}
	return nil
}
