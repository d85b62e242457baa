package account

import (
	"context"
	"errors"
	"fmt"

	"fiberauth/db"
)

// Administration: what an admin (or the command line) may do to any
// account. Each action is recorded on the account, as an event a person
// can read, and in the audit list.

// AdminPageSize is how many accounts a page of the user list shows.
const AdminPageSize = 50

// Admin is who does an administrative action: a signed-in admin, or the
// command line (ID 0).
type Admin struct {
	ID   int64
	Name string
	Addr string
}

// AdminOf is the admin behind a principal.
func AdminOf(p *Principal, c Client) Admin {
	return Admin{ID: p.User.ID, Name: p.User.Username, Addr: c.Addr}
}

// CommandLine is the admin of the command line.
var CommandLine = Admin{Name: "the command line"}

// by says who did an action, for the account's activity.
func (a Admin) by() string {
	if a.ID == 0 {
		return "from " + a.Name
	}
	return "by admin " + a.Name
}

// Users returns a page (from 1) of the accounts whose username or email
// contains search, newest first.
func (s *Service) Users(ctx context.Context, search string, page int) (db.UserPage, error) {
	page = max(page, 1)
	p, err := s.store.ListUsers(ctx, search, (page-1)*AdminPageSize, AdminPageSize)
	return p, fail(err)
}

// AccountDetail is what an admin sees of one account.
type AccountDetail struct {
	User     db.User
	Sessions []db.Session
	Events   []db.Event
	Passkeys []db.Passkey
}

// Account returns one account with its live sessions and latest events.
func (s *Service) Account(ctx context.Context, id int64) (AccountDetail, error) {
	u, err := s.store.UserByID(ctx, id)
	if errors.Is(err, db.ErrNotFound) {
		return AccountDetail{}, errNoUser
	}
	if err != nil {
		return AccountDetail{}, fail(err)
	}
	d := AccountDetail{User: u}
	d.Sessions, err = s.Sessions(ctx, &Principal{User: u})
	if err != nil {
		return d, err
	}
	if d.Passkeys, err = s.store.Passkeys(ctx, id); err != nil {
		return d, fail(err)
	}
	d.Events, err = s.store.ListEvents(ctx, id, 20)
	return d, fail(err)
}

// FindUser finds an account by username or email (the command line).
func (s *Service) FindUser(ctx context.Context, login string) (db.User, error) {
	u, found, err := s.lookup(ctx, login)
	if err != nil {
		return db.User{}, fail(err)
	}
	if !found {
		return db.User{}, &Error{Code: ENotFound, Message: fmt.Sprintf("no account is called %q", login)}
	}
	return u, nil
}

// CreateAccount registers an account on an admin's word: of any role, and
// without the per-address registration limit. It is recorded in the audit
// list.
func (s *Service) CreateAccount(ctx context.Context, by Admin, c Client, r Registration) (Registered, error) {
	r.Trusted = true
	reg, err := s.Register(ctx, c, r)
	if err != nil {
		return reg, err
	}
	s.audit(ctx, by, "create", reg.User, "role "+reg.User.Role)
	return reg, nil
}

// errNoUser is an account that does not exist.
var errNoUser = &Error{Code: ENotFound, Message: MsgUserNotFound}

// errLastAdmin refuses to leave the service without an admin.
var errLastAdmin = &Error{Code: EConflict, Message: "The last admin cannot be removed or lose the role: make another account admin first."}

// SetRole gives an account a role.
func (s *Service) SetRole(ctx context.Context, by Admin, id int64, role string) error {
	if !ValidRole(role) {
		return invalid(FieldError{Field: "role", Message: "Role must be basic, premium or admin."})
	}
	u, err := s.target(ctx, id)
	if err != nil {
		return err
	}
	detail := "Role changed to " + role + " " + by.by()
	err = s.store.SetRole(ctx, id, role, voids(ChangeRole, ""), db.Event{Kind: db.EventAdmin, At: s.Now(), IP: by.Addr, Detail: detail})
	if errors.Is(err, db.ErrLastAdmin) {
		return errLastAdmin
	}
	if err != nil {
		return fail(err)
	}
	s.audit(ctx, by, "set_role", u, "from "+u.Role+" to "+role)
	return nil
}

// EndUserSessions ends every session of an account.
func (s *Service) EndUserSessions(ctx context.Context, by Admin, id int64) (int64, error) {
	u, err := s.target(ctx, id)
	if err != nil {
		return 0, err
	}
	n, err := s.store.Apply(ctx, id, voids(ChangeSessionsByAdmin, ""), db.Event{Kind: db.EventAdmin, At: s.Now(), IP: by.Addr,
		Detail: "Every session ended " + by.by()})
	if err != nil {
		return 0, fail(err)
	}
	s.cfg.Metrics.SessionsEnded(EndedByAdmin, n)
	s.audit(ctx, by, "end_sessions", u, fmt.Sprintf("%d ended", n))
	return n, nil
}

// EndUserSession ends one session of an account.
func (s *Service) EndUserSession(ctx context.Context, by Admin, id int64, sid string) error {
	u, err := s.target(ctx, id)
	if err != nil {
		return err
	}
	_, err = s.store.Apply(ctx, id, voids(ChangeSessionEnded, sid), db.Event{Kind: db.EventAdmin, At: s.Now(), IP: by.Addr,
		Detail: "A session ended " + by.by()})
	if errors.Is(err, db.ErrNotFound) {
		return errNoSession
	}
	if err != nil {
		return fail(err)
	}
	s.cfg.Metrics.SessionsEnded(EndedByAdmin, 1)
	s.audit(ctx, by, "end_session", u, "")
	return nil
}

// ClearUserLimits forgets an account's sign-in failures, so that its owner
// may try again at once.
func (s *Service) ClearUserLimits(ctx context.Context, by Admin, id int64) error {
	u, err := s.target(ctx, id)
	if err != nil {
		return err
	}
	if err := s.ClearLimits(ctx, id); err != nil {
		return err
	}
	if err := s.store.AddEvent(ctx, db.Event{UserID: id, Kind: db.EventAdmin, At: s.Now(), IP: by.Addr,
		Detail: "Sign-in limits cleared " + by.by()}); err != nil {
		s.log.Warn("record event", "error", err.Error())
	}
	s.audit(ctx, by, "clear_limits", u, "")
	return nil
}

// DisableUserMFA turns an account's two-factor off, for an owner who lost
// both the authenticator and the recovery codes; their sessions end, so
// that whoever holds one signs in again. ENotFound for no such account,
// EConflict when two-factor is off.
func (s *Service) DisableUserMFA(ctx context.Context, by Admin, id int64) error {
	u, err := s.target(ctx, id)
	if err != nil {
		return err
	}
	if !u.MFAEnabled {
		return &Error{Code: EConflict, Message: MsgMFANotActive}
	}
	n, err := s.store.DisableTOTP(ctx, id, voids(ChangeMFAOffByAdmin, ""), db.Event{Kind: db.EventMFADisabled, At: s.Now(),
		IP: by.Addr, Detail: "Two-factor turned off " + by.by()})
	if errors.Is(err, db.ErrNotFound) {
		return &Error{Code: EConflict, Message: MsgMFANotActive}
	}
	if err != nil {
		return fail(err)
	}
	s.cfg.Metrics.SessionsEnded(EndedByAdmin, n)
	s.audit(ctx, by, "disable_mfa", u, "")
	return nil
}

// RemoveUser deletes an account.
func (s *Service) RemoveUser(ctx context.Context, by Admin, id int64) error {
	u, err := s.target(ctx, id)
	if err != nil {
		return err
	}
	n, err := s.store.RemoveUser(ctx, id, voids(ChangeAccountDeleted, ""))
	s.cfg.Metrics.SessionsEnded(EndedAccountDeleted, n)
	switch {
	case errors.Is(err, db.ErrLastAdmin):
		return errLastAdmin
	case errors.Is(err, db.ErrNotFound):
		return errNoUser
	case err != nil:
		return fail(err)
	}
	s.audit(ctx, by, "delete", u, "")
	return nil
}

// AuditLog returns a page (from 1) of the audit list, newest first, and its
// total length.
func (s *Service) AuditLog(ctx context.Context, page int) ([]db.Audit, int, error) {
	page = max(page, 1)
	list, total, err := s.store.ListAudit(ctx, (page-1)*AdminPageSize, AdminPageSize)
	return list, total, fail(err)
}

func (s *Service) target(ctx context.Context, id int64) (db.User, error) {
	u, err := s.store.UserByID(ctx, id)
	if errors.Is(err, db.ErrNotFound) {
		return db.User{}, errNoUser
	}
	return u, fail(err)
}

// AuditService records an action on the service itself (not on an
// account), such as a new signing key, in the audit list; what names its
// object.
func (s *Service) AuditService(ctx context.Context, by Admin, action, what, detail string) error {
	return fail(s.store.AddAudit(ctx, db.Audit{At: s.Now(), AdminID: by.ID, AdminName: by.Name, Action: action,
		TargetName: what, Detail: detail, IP: by.Addr}))
}

func (s *Service) audit(ctx context.Context, by Admin, action string, u db.User, detail string) {
	err := s.store.AddAudit(ctx, db.Audit{At: s.Now(), AdminID: by.ID, AdminName: by.Name, Action: action,
		TargetID: u.ID, TargetName: u.Username, Detail: detail, IP: by.Addr})
	if err != nil {
		s.log.Warn("audit record lost", "action", action, "error", err.Error())
	}
}
