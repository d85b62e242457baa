package db

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Purposes of one-time codes.
const (
	// CodeVerify proves an email address: the account's own, or the new
	// one of a change of address.
	CodeVerify = "verify"
	// CodeReset lets a person who forgot the password set a new one.
	CodeReset = "reset"
)

// Event kinds of the email flows.
const (
	EventPasswordReset = "password_reset"
	EventEmailVerified = "email_verified"
	EventEmailChanged  = "email_changed"
	EventCodeFailed    = "code_failed"
)

// Code is an account's live one-time code for a purpose. Only the code's
// HMAC is stored.
type Code struct {
	UserID    int64
	Purpose   string
	Hash      string
	Email     string
	EmailKey  string
	CreatedAt time.Time
	ExpiresAt time.Time
	Tries     int
}

// ErrSpaced is returned by PutCode when the account got a code for the same
// purpose too recently.
var ErrSpaced = errors.New("db: a code was sent too recently")

// PutCode makes c the account's live code for c.Purpose, replacing an
// older one, unless the one there went to the same address and was created
// after notBefore: then it writes nothing and returns the existing code's
// creation time and ErrSpaced.
func (s *Store) PutCode(ctx context.Context, c Code, notBefore time.Time) (time.Time, error) {
	res, err := s.exec(ctx, s.w, `INSERT INTO codes (user_id, purpose, code_hash, email, email_key, created_at, expires_at, tries)
		VALUES (?, ?, ?, ?, ?, ?, ?, 0)
		ON CONFLICT (user_id, purpose) DO UPDATE SET code_hash = excluded.code_hash, email = excluded.email,
			email_key = excluded.email_key, created_at = excluded.created_at, expires_at = excluded.expires_at, tries = 0
		WHERE codes.created_at <= ? OR codes.email_key <> excluded.email_key`,
		c.UserID, c.Purpose, c.Hash, c.Email, c.EmailKey, unix(c.CreatedAt), unix(c.ExpiresAt), unix(notBefore))
	if err := oneRow(res, err); err != nil {
		if !errors.Is(err, ErrNotFound) {
			return time.Time{}, err
		}
		prev, err := s.CodeFor(ctx, c.UserID, c.Purpose)
		if err != nil {
			return time.Time{}, err
		}
		return prev.CreatedAt, ErrSpaced
	}
	return c.CreatedAt, nil
}

// CodeFor returns the account's live code for purpose, or ErrNotFound.
func (s *Store) CodeFor(ctx context.Context, userID int64, purpose string) (Code, error) {
	c := Code{UserID: userID, Purpose: purpose}
	var created, expires int64
	err := s.queryRow(ctx, s.w, `SELECT code_hash, email, email_key, created_at, expires_at, tries
		FROM codes WHERE user_id = ? AND purpose = ?`, userID, purpose).
		Scan(&c.Hash, &c.Email, &c.EmailKey, &created, &expires, &c.Tries)
	if errors.Is(err, sql.ErrNoRows) {
		return Code{}, ErrNotFound
	}
	if err != nil {
		return Code{}, s.wrap(err)
	}
	c.CreatedAt, c.ExpiresAt = fromUnix(created), fromUnix(expires)
	return c, nil
}

// FailCode counts a wrong guess against the code whose HMAC is hash (not
// against a newer code that replaced it meanwhile).
func (s *Store) FailCode(ctx context.Context, userID int64, purpose, hash string) error {
	_, err := s.exec(ctx, s.w, `UPDATE codes SET tries = tries + 1 WHERE user_id = ? AND purpose = ? AND code_hash = ?`,
		userID, purpose, hash)
	return err
}

// spendCode deletes the live code if it is still the one whose HMAC is
// hash, unexpired at now and below maxTries wrong guesses, in tx. Of two
// requests spending one code, one succeeds; the other gets ErrNotFound.
func (s *Store) spendCode(ctx context.Context, tx *sql.Tx, userID int64, purpose, hash string, now time.Time, maxTries int) (Code, error) {
	c := Code{UserID: userID, Purpose: purpose, Hash: hash}
	err := s.queryRow(ctx, tx, `DELETE FROM codes WHERE user_id = ? AND purpose = ? AND code_hash = ? AND expires_at > ? AND tries < ?
		RETURNING email, email_key`, userID, purpose, hash, unix(now), maxTries).Scan(&c.Email, &c.EmailKey)
	if errors.Is(err, sql.ErrNoRows) {
		return Code{}, ErrNotFound
	}
	return c, err
}

// ResetPassword spends the reset code whose HMAC is codeHash, sets the
// password hash, ends every session of the account and records ev, in one
// transaction. Receiving the code proves the address it went to: if that
// is still the account's address, it counts as verified. It returns how
// many sessions ended, or ErrNotFound (writing nothing) when the code is
// no longer live.
func (s *Store) ResetPassword(ctx context.Context, userID int64, codeHash string, now time.Time, maxTries int, hash string, ev Event) (int64, error) {
	defer s.cache.invalidateUser(userID)
	var ended int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		c, err := s.spendCode(ctx, tx, userID, CodeReset, codeHash, now, maxTries)
		if err != nil {
			return err
		}
		res, err := s.exec(ctx, tx, `UPDATE users SET password_hash = ?,
			email_verified = CASE WHEN email_key = ? THEN ? ELSE email_verified END WHERE id = ?`,
			hash, c.EmailKey, true, userID)
		if err := oneRow(res, err); err != nil {
			return err
		}
		res, err = s.exec(ctx, tx, `DELETE FROM sessions WHERE user_id = ?`, userID)
		if err != nil {
			return err
		}
		ended, _ = res.RowsAffected()
		ev.UserID = userID
		if err := s.insertEvent(ctx, tx, ev); err != nil {
			return err
		}
		return s.notify(ctx, tx, userPayload(userID))
	})
	return ended, err
}

// ConfirmEmail spends the verify code whose HMAC is codeHash and makes the
// address it was sent to the account's verified address, recording ev, in
// one transaction. It returns the account as it was before and the code
// spent; ErrNotFound (writing nothing) when the code is no longer live,
// ErrConflict when another account has taken the address meanwhile.
func (s *Store) ConfirmEmail(ctx context.Context, userID int64, codeHash string, now time.Time, maxTries int, ev Event) (User, Code, error) {
	defer s.cache.invalidateUser(userID)
	var before User
	var c Code
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if before, err = s.userIn(ctx, tx, userID); err != nil {
			return err
		}
		if c, err = s.spendCode(ctx, tx, userID, CodeVerify, codeHash, now, maxTries); err != nil {
			return err
		}
		res, err := s.exec(ctx, tx, `UPDATE users SET email = ?, email_key = ?, email_verified = ? WHERE id = ?`,
			c.Email, c.EmailKey, true, userID)
		if err := oneRow(res, err); err != nil {
			return err
		}
		ev.UserID = userID
		if err := s.insertEvent(ctx, tx, ev); err != nil {
			return err
		}
		return s.notify(ctx, tx, userPayload(userID))
	})
	return before, c, err
}
