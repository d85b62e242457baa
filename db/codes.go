package db

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Purposes of one-time codes.
const (
	// CodeVerify proves the account's current email address.
	CodeVerify = "verify"
	// CodeReset lets a person who forgot the password set a new one.
	CodeReset = "reset"
	// CodeEmailChange proves the new address of a change of address; it is
	// bound to the session that started the change.
	CodeEmailChange = "email_change"
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
	// SessionID is the session a change of address is bound to; "" for
	// other purposes.
	SessionID string
}

// ErrSpaced is returned by PutCode when the account got a code for the same
// purpose too recently.
var ErrSpaced = errors.New("db: a code was sent too recently")

// PutCode makes c the account's live code for c.Purpose, replacing an
// older one, unless the one there went to the same address and was created
// after notBefore: then it writes nothing and returns the existing code's
// creation time and ErrSpaced.
func (s *Store) PutCode(ctx context.Context, c Code, notBefore time.Time) (time.Time, error) {
	var session any
	if c.SessionID != "" {
		session = c.SessionID
	}
	res, err := s.exec(ctx, s.w, `INSERT INTO codes (user_id, purpose, code_hash, email, email_key, created_at, expires_at, tries, session_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)
		ON CONFLICT (user_id, purpose) DO UPDATE SET code_hash = excluded.code_hash, email = excluded.email,
			email_key = excluded.email_key, created_at = excluded.created_at, expires_at = excluded.expires_at, tries = 0,
			session_id = excluded.session_id
		WHERE codes.created_at <= ? OR codes.email_key <> excluded.email_key`,
		c.UserID, c.Purpose, c.Hash, c.Email, c.EmailKey, unix(c.CreatedAt), unix(c.ExpiresAt), session, unix(notBefore))
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
	var session sql.NullString
	err := s.queryRow(ctx, s.w, `SELECT code_hash, email, email_key, created_at, expires_at, tries, session_id
		FROM codes WHERE user_id = ? AND purpose = ?`, userID, purpose).
		Scan(&c.Hash, &c.Email, &c.EmailKey, &created, &expires, &c.Tries, &session)
	if errors.Is(err, sql.ErrNoRows) {
		return Code{}, ErrNotFound
	}
	if err != nil {
		return Code{}, s.wrap(err)
	}
	c.CreatedAt, c.ExpiresAt, c.SessionID = fromUnix(created), fromUnix(expires), session.String
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
// hash, unexpired at now and below maxTries wrong guesses, in tx, and still
// bound as its purpose requires: a reset or verify code to the account's
// current address, a change of address to session. Of two requests
// spending one code, one succeeds; the other gets ErrNotFound.
func (s *Store) spendCode(ctx context.Context, tx *sql.Tx, userID int64, purpose, hash, session string, now time.Time, maxTries int) (Code, error) {
	c := Code{UserID: userID, Purpose: purpose, Hash: hash, SessionID: session}
	bound, arg := `email_key = (SELECT email_key FROM users WHERE id = ?)`, any(userID)
	if purpose == CodeEmailChange {
		bound, arg = `session_id = ?`, session
	}
	err := s.queryRow(ctx, tx, `DELETE FROM codes WHERE user_id = ? AND purpose = ? AND code_hash = ? AND expires_at > ? AND tries < ?
		AND `+bound+` RETURNING email, email_key`, userID, purpose, hash, unix(now), maxTries, arg).Scan(&c.Email, &c.EmailKey)
	if errors.Is(err, sql.ErrNoRows) {
		return Code{}, ErrNotFound
	}
	return c, err
}

// ResetPassword spends the reset code whose HMAC is codeHash, sets the
// password hash, carries out v and records ev, in one transaction.
// Receiving the code proves the account's address (it went there, and is
// void once the address changes), so the address counts as verified. It
// returns how many sessions ended, or ErrNotFound (writing nothing) when
// the code is no longer live.
func (s *Store) ResetPassword(ctx context.Context, userID int64, codeHash string, now time.Time, maxTries int, hash string, v Void, ev Event) (int64, error) {
	defer v.done(s, userID)
	var ended int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.spendCode(ctx, tx, userID, CodeReset, codeHash, "", now, maxTries); err != nil {
			return err
		}
		res, err := s.exec(ctx, tx, `UPDATE users SET password_hash = ?, email_verified = ? WHERE id = ?`, hash, true, userID)
		if err := oneRow(res, err); err != nil {
			return err
		}
		if ended, err = v.apply(ctx, s, tx, userID); err != nil {
			return err
		}
		ev.UserID = userID
		return s.insertEvent(ctx, tx, ev)
	})
	return ended, err
}

// ConfirmEmail spends the code of purpose (CodeVerify, or CodeEmailChange
// bound to session) whose HMAC is codeHash and makes the address it was
// sent to the account's verified address, carrying out v and recording ev,
// in one transaction. It returns the account as it was before and the code
// spent; ErrNotFound (writing nothing) when the code is no longer live,
// ErrConflict when another account has taken the address meanwhile.
func (s *Store) ConfirmEmail(ctx context.Context, userID int64, purpose, codeHash, session string, now time.Time, maxTries int, v Void, ev Event) (User, Code, error) {
	defer v.done(s, userID)
	var before User
	var c Code
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if before, err = s.userIn(ctx, tx, userID); err != nil {
			return err
		}
		if c, err = s.spendCode(ctx, tx, userID, purpose, codeHash, session, now, maxTries); err != nil {
			return err
		}
		res, err := s.exec(ctx, tx, `UPDATE users SET email = ?, email_key = ?, email_verified = ? WHERE id = ?`,
			c.Email, c.EmailKey, true, userID)
		if err := oneRow(res, err); err != nil {
			return err
		}
		if _, err = v.apply(ctx, s, tx, userID); err != nil {
			return err
		}
		ev.UserID = userID
		return s.insertEvent(ctx, tx, ev)
	})
	return before, c, err
}
