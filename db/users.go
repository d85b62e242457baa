package db

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// User is an account.
type User struct {
	ID           int64
	Username     string
	Email        string
	PasswordHash string
	CreatedAt    time.Time
}

// NewUser holds what registration stores. UsernameKey and EmailKey are the
// normalised forms that uniqueness is decided on.
type NewUser struct {
	Username     string
	UsernameKey  string
	Email        string
	EmailKey     string
	PasswordHash string
	CreatedAt    time.Time
}

// CreateUser inserts an account. A taken username or email gives ErrConflict.
func (s *Store) CreateUser(ctx context.Context, nu NewUser) (User, error) {
	res, err := s.w.ExecContext(ctx, `INSERT INTO users
		(username, username_key, email, email_key, password_hash, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`,
		nu.Username, nu.UsernameKey, nu.Email, nu.EmailKey, nu.PasswordHash, nu.CreatedAt.Unix())
	if err != nil {
		if isUnique(err) {
			return User{}, ErrConflict
		}
		return User{}, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return User{}, err
	}
	return User{ID: id, Username: nu.Username, Email: nu.Email, PasswordHash: nu.PasswordHash,
		CreatedAt: time.Unix(nu.CreatedAt.Unix(), 0)}, nil
}

const userColumns = `id, username, email, password_hash, created_at`

func scanUser(row *sql.Row) (User, error) {
	var u User
	var created int64
	if err := row.Scan(&u.ID, &u.Username, &u.Email, &u.PasswordHash, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return User{}, ErrNotFound
		}
		return User{}, err
	}
	u.CreatedAt = time.Unix(created, 0)
	return u, nil
}

// UserByUsernameKey finds an account by its normalised username.
func (s *Store) UserByUsernameKey(ctx context.Context, key string) (User, error) {
	return scanUser(s.r.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE username_key = ?`, key))
}

// UserByEmailKey finds an account by its normalised email address.
func (s *Store) UserByEmailKey(ctx context.Context, key string) (User, error) {
	return scanUser(s.r.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE email_key = ?`, key))
}

// UserByID finds an account by id.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	return scanUser(s.r.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
}

// SetPasswordHash replaces an account's password hash (used to upgrade a
// hash to the configured bcrypt cost).
func (s *Store) SetPasswordHash(ctx context.Context, userID int64, hash string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, hash, userID)
	return oneRow(res, err)
}

// ChangePassword replaces the password hash and, in the same transaction,
// ends every session of the account except keepSession.
func (s *Store) ChangePassword(ctx context.Context, userID int64, hash, keepSession string) error {
	defer s.cache.invalidateUser(userID)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, hash, userID)
	if err := oneRow(res, err); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND id <> ?`, userID, keepSession); err != nil {
		return err
	}
	return tx.Commit()
}

// DeleteUser removes an account; its sessions and events go with it.
func (s *Store) DeleteUser(ctx context.Context, userID int64) error {
	defer s.cache.invalidateUser(userID)
	res, err := s.w.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, userID)
	return oneRow(res, err)
}

// oneRow turns an Exec result that touched no row into ErrNotFound.
func oneRow(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
