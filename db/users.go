package db

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"time"
)

// User is an account.
type User struct {
	ID           int64
	Username     string
	Email        string
	PasswordHash string
	CreatedAt    time.Time
	// Role is basic, premium or admin.
	Role string
	// LastSignInAt is the last successful sign-in; zero when never.
	LastSignInAt time.Time
	// EmailVerified: the owner proved the address reaches them.
	EmailVerified bool
	// MFAEnabled: sign-in needs a second factor.
	MFAEnabled bool
	// Stamp moves on with every change that voids pending second-step
	// sign-ins.
	Stamp int64
	// Subject identifies the account to other applications (the sub of
	// ID tokens): random, stable, never reused.
	Subject string
	// Passwordless: the account has no password (PasswordHash is "",
	// which no password matches); it signs in with its passkeys.
	Passwordless bool
	// WebAuthnID is the account's passkey user handle: random bytes,
	// given at its first passkey ceremony; nil before.
	WebAuthnID []byte
}

// The roles an account may have.
const (
	RoleBasic   = "basic"
	RolePremium = "premium"
	RoleAdmin   = "admin"
)

// NewUser holds what registration stores. UsernameKey and EmailKey are the
// normalised forms that uniqueness is decided on.
type NewUser struct {
	Username     string
	UsernameKey  string
	Email        string
	EmailKey     string
	PasswordHash string
	CreatedAt    time.Time
	// Role is the new account's role; empty means basic.
	Role string
	// Event, when its Kind is set, is recorded for the new account in the
	// same transaction.
	Event Event
	// WebAuthnID and Passkey, when set, are the new account's passkey user
	// handle and first passkey, stored in the same transaction (an account
	// made with a passkey, whose PasswordHash is "").
	WebAuthnID []byte
	Passkey    *Passkey
	// Identity, when set, is the new account's identity at a provider,
	// linked in the same transaction (an account made by signing in with
	// another provider); EmailVerified says the provider vouched for the
	// address.
	Identity      *Identity
	EmailVerified bool
}

// CreateUser inserts an account. A taken username or email gives ErrConflict.
func (s *Store) CreateUser(ctx context.Context, nu NewUser) (User, error) {
	if nu.Role == "" {
		nu.Role = RoleBasic
	}
	subject, err := newSubject()
	if err != nil {
		return User{}, err
	}
	u := User{Username: nu.Username, Email: nu.Email, PasswordHash: nu.PasswordHash,
		CreatedAt: fromUnix(unix(nu.CreatedAt)), Role: nu.Role, Subject: subject, Passwordless: nu.PasswordHash == "", WebAuthnID: nu.WebAuthnID,
		EmailVerified: nu.EmailVerified}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		err := s.queryRow(ctx, tx, `INSERT INTO users
			(username, username_key, email, email_key, password_hash, created_at, role, subject, webauthn_id, email_verified)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			nu.Username, nu.UsernameKey, nu.Email, nu.EmailKey, nu.PasswordHash, unix(nu.CreatedAt), nu.Role, subject, nullBytes(nu.WebAuthnID),
			nu.EmailVerified).Scan(&u.ID)
		if err != nil {
			return err
		}
		if nu.Identity != nil {
			id := *nu.Identity
			id.UserID = u.ID
			if err := s.insertIdentity(ctx, tx, id); err != nil {
				return err
			}
		}
		if nu.Passkey != nil {
			pk := *nu.Passkey
			pk.UserID = u.ID
			if err := s.insertPasskey(ctx, tx, pk); err != nil {
				return err
			}
		}
		if nu.Event.Kind != "" {
			nu.Event.UserID = u.ID
			return s.insertEvent(ctx, tx, nu.Event)
		}
		return nil
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

const userColumns = `id, username, email, password_hash, created_at, role, last_sign_in_at, email_verified, mfa_enabled, stamp, subject, webauthn_id`

func (s *Store) user(ctx context.Context, where string, arg any) (User, error) {
	row, err := s.readRow(ctx, `SELECT `+userColumns+` FROM users WHERE `+where+` = ?`, arg)
	if err != nil {
		return User{}, err
	}
	u, err := scanUser(row)
	return u, s.wrap(err)
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanUser(row scanner) (User, error) {
	var u User
	var created, lastSignIn int64
	if err := row.Scan(&u.ID, &u.Username, &u.Email, &u.PasswordHash, &created, &u.Role, &lastSignIn,
		&u.EmailVerified, &u.MFAEnabled, &u.Stamp, &u.Subject, &u.WebAuthnID); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return User{}, ErrNotFound
		}
		return User{}, err
	}
	u.CreatedAt = fromUnix(created)
	u.Passwordless = u.PasswordHash == ""
	if lastSignIn > 0 {
		u.LastSignInAt = fromUnix(lastSignIn)
	}
	return u, nil
}

// UserByUsernameKey finds an account by its normalised username.
func (s *Store) UserByUsernameKey(ctx context.Context, key string) (User, error) {
	return s.user(ctx, "username_key", key)
}

// UserByEmailKey finds an account by its normalised email address.
func (s *Store) UserByEmailKey(ctx context.Context, key string) (User, error) {
	return s.user(ctx, "email_key", key)
}

// UserByID finds an account by id.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	return s.user(ctx, "id", id)
}

// Taken reports which of a username key and an email key are in use.
func (s *Store) Taken(ctx context.Context, usernameKey, emailKey string) (username, email bool, err error) {
	rows, err := s.query(ctx, s.r, `SELECT username_key = ?, email_key = ? FROM users
		WHERE username_key = ? OR email_key = ?`, usernameKey, emailKey, usernameKey, emailKey)
	if err != nil {
		return false, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var u, e bool
		if err := rows.Scan(&u, &e); err != nil {
			return false, false, err
		}
		username, email = username || u, email || e
	}
	return username, email, s.wrap(rows.Err())
}

// UpgradePasswordHash replaces an account's password hash by another hash
// of the same password (a different bcrypt cost), only if the stored hash
// is still old: a password change in between wins. It returns ErrChanged
// when it did not write.
func (s *Store) UpgradePasswordHash(ctx context.Context, userID int64, old, hash string) error {
	res, err := s.exec(ctx, s.w, `UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?`, hash, userID, old)
	if err := oneRow(res, err); err != nil {
		if errors.Is(err, ErrNotFound) {
			return ErrChanged
		}
		return err
	}
	return nil
}

// ChangePassword replaces the password hash old by hash and, in the same
// transaction, carries out v and records ev. It returns how many sessions
// ended, or ErrChanged, writing nothing, when the stored hash is no longer
// old (the password changed since it was checked).
func (s *Store) ChangePassword(ctx context.Context, userID int64, old, hash string, v Void, ev Event) (int64, error) {
	defer v.done(s, userID)
	var ended int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, `UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?`, hash, userID, old)
		if err := oneRow(res, err); err != nil {
			if errors.Is(err, ErrNotFound) {
				return ErrChanged
			}
			return err
		}
		if ended, err = v.apply(ctx, s, tx, userID); err != nil {
			return err
		}
		if ev.Kind != "" {
			ev.UserID = userID
			return s.insertEvent(ctx, tx, ev)
		}
		return nil
	})
	return ended, err
}

// liveSessions counts an account's sessions, in tx.
func (s *Store) liveSessions(ctx context.Context, tx *sql.Tx, userID int64) (int64, error) {
	var n int64
	err := s.queryRow(ctx, tx, `SELECT COUNT(*) FROM sessions WHERE user_id = ?`, userID).Scan(&n)
	return n, err
}

// DeleteUser removes an account whose password hash is still hash; its
// sessions, events and everything else of it go with it. It returns
// ErrChanged when the password changed since it was checked, ErrNotFound
// when the account is gone. It returns how many sessions went with it.
func (s *Store) DeleteUser(ctx context.Context, userID int64, hash string, v Void) (int64, error) {
	defer v.done(s, userID)
	var ended int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockAdmins(ctx, tx); err != nil {
			return err
		}
		var err error
		if ended, err = s.liveSessions(ctx, tx, userID); err != nil {
			return err
		}
		if _, err = v.apply(ctx, s, tx, userID); err != nil {
			return err
		}
		res, err := s.exec(ctx, tx, `DELETE FROM users WHERE id = ? AND password_hash = ?
			AND (role <> 'admin' OR (SELECT COUNT(*) FROM users WHERE role = 'admin') > 1)`, userID, hash)
		if err := oneRow(res, err); err != nil {
			if errors.Is(err, ErrNotFound) {
				if u, err := s.userIn(ctx, tx, userID); err == nil {
					if u.PasswordHash == hash {
						return ErrLastAdmin
					}
					return ErrChanged
				}
			}
			return err
		}
		s.changedAdmins()
		return s.notify(ctx, tx, userPayload(userID))
	})
	return ended, err
}

func userPayload(userID int64) string { return "u:" + strconv.FormatInt(userID, 10) }

// ErrLastAdmin is returned for a change that would leave no admin.
var ErrLastAdmin = errors.New("db: the last admin")

// adminLockID names the PostgreSQL advisory lock a transaction holds while
// it may take the admin role from an account. Without it two transactions
// demoting the last two admins would each count two admins in their own
// snapshot, and both commit. SQLite has one writer, which serialises them
// already.
const adminLockID = 0x61646d6e // "admn"

func (s *Store) lockAdmins(ctx context.Context, tx *sql.Tx) error {
	if s.engine == Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, adminLockID); err != nil {
			return err
		}
	}
	return nil
}

// changedAdmins runs the test hook once a change that may take the admin
// role has been made, before it commits.
func (s *Store) changedAdmins() {
	if s.adminChange != nil {
		s.adminChange()
	}
}

// SetRole changes an account's role, unless that would take the role from
// the last admin (ErrLastAdmin). ev is recorded with it. Sessions are
// checked server-side on every request, so the change takes effect at once.
func (s *Store) SetRole(ctx context.Context, userID int64, role string, v Void, ev Event) error {
	defer v.done(s, userID)
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockAdmins(ctx, tx); err != nil {
			return err
		}
		res, err := s.exec(ctx, tx, `UPDATE users SET role = ? WHERE id = ?
			AND (role <> 'admin' OR ? = 'admin' OR (SELECT COUNT(*) FROM users WHERE role = 'admin') > 1)`,
			role, userID, role)
		if err := oneRow(res, err); err != nil {
			if errors.Is(err, ErrNotFound) {
				if _, err := s.userIn(ctx, tx, userID); err == nil {
					return ErrLastAdmin
				}
			}
			return err
		}
		s.changedAdmins()
		if _, err := v.apply(ctx, s, tx, userID); err != nil {
			return err
		}
		if ev.Kind != "" {
			ev.UserID = userID
			return s.insertEvent(ctx, tx, ev)
		}
		return nil
	})
}

// RemoveUser deletes an account whatever its password (an administrator's
// act), unless it is the last admin (ErrLastAdmin). It returns how many
// sessions went with it.
func (s *Store) RemoveUser(ctx context.Context, userID int64, v Void) (int64, error) {
	defer v.done(s, userID)
	var ended int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockAdmins(ctx, tx); err != nil {
			return err
		}
		var err error
		if ended, err = s.liveSessions(ctx, tx, userID); err != nil {
			return err
		}
		if _, err = v.apply(ctx, s, tx, userID); err != nil {
			return err
		}
		res, err := s.exec(ctx, tx, `DELETE FROM users WHERE id = ?
			AND (role <> 'admin' OR (SELECT COUNT(*) FROM users WHERE role = 'admin') > 1)`, userID)
		if err := oneRow(res, err); err != nil {
			if errors.Is(err, ErrNotFound) {
				if _, err := s.userIn(ctx, tx, userID); err == nil {
					return ErrLastAdmin
				}
			}
			return err
		}
		s.changedAdmins()
		return s.notify(ctx, tx, userPayload(userID))
	})
	return ended, err
}

func (s *Store) userIn(ctx context.Context, tx *sql.Tx, id int64) (User, error) {
	return scanUser(s.queryRow(ctx, tx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
}

// UserPage is a page of accounts matching a search.
type UserPage struct {
	Users []User
	Total int
}

// ListUsers returns the accounts whose username or email contains search
// (case-insensitively; all when empty), newest first, limit from offset.
func (s *Store) ListUsers(ctx context.Context, search string, offset, limit int) (UserPage, error) {
	pattern := "%" + escapeLike(strings.ToLower(search)) + "%"
	var p UserPage
	where := `WHERE username_key LIKE ? ESCAPE '\' OR email_key LIKE ? ESCAPE '\'`
	if err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM users `+where, pattern, pattern).Scan(&p.Total); err != nil {
		return p, s.wrap(err)
	}
	rows, err := s.query(ctx, s.r, `SELECT `+userColumns+` FROM users `+where+` ORDER BY id DESC LIMIT ? OFFSET ?`,
		pattern, pattern, limit, offset)
	if err != nil {
		return p, err
	}
	defer rows.Close()
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return p, err
		}
		p.Users = append(p.Users, u)
	}
	return p, s.wrap(rows.Err())
}

// escapeLike makes s match itself in a LIKE pattern with \ as escape.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// CountAdmins returns how many accounts are admins.
func (s *Store) CountAdmins(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM users WHERE role = 'admin'`).Scan(&n)
	return n, s.wrap(err)
}
