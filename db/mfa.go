package db

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Event kinds of two-factor sign-in.
const (
	EventMFAEnabled         = "mfa_enabled"
	EventMFADisabled        = "mfa_disabled"
	EventRecoveryCodeUsed   = "recovery_code_used"
	EventRecoveryCodesReset = "recovery_codes_replaced"
	EventOTPFailed          = "otp_failed"
)

// TOTP is an account's authenticator secret (encrypted as stored).
type TOTP struct {
	UserID    int64
	Secret    string
	Confirmed bool
	// LastStep is the newest 30-second step whose code was accepted.
	LastStep  int64
	CreatedAt time.Time
}

// PendingTOTP is an authenticator secret (encrypted as stored) waiting
// for its first code, bound to the session that started the enrolment.
type PendingTOTP struct {
	UserID    int64
	SessionID string
	Secret    string
	CreatedAt time.Time
}

// PutPendingTOTP stores a secret awaiting its first code for session,
// replacing an earlier pending one. ErrConflict when two-factor is on
// already; ErrNotFound when the session has ended.
func (s *Store) PutPendingTOTP(ctx context.Context, userID int64, session, secret string, now time.Time) error {
	res, err := s.exec(ctx, s.w, `INSERT INTO mfa_pending (user_id, session_id, secret, created_at)
		SELECT ?, id, ?, ? FROM sessions WHERE id = ? AND user_id = ? AND NOT EXISTS (SELECT 1 FROM mfa_totp WHERE user_id = ?)
		ON CONFLICT (user_id) DO UPDATE SET session_id = excluded.session_id, secret = excluded.secret, created_at = excluded.created_at`,
		userID, secret, unix(now), session, userID, userID)
	if err := oneRow(res, err); err != nil {
		if errors.Is(err, ErrNotFound) {
			var on bool
			if err := s.queryRow(ctx, s.w, `SELECT EXISTS (SELECT 1 FROM mfa_totp WHERE user_id = ?)`, userID).Scan(&on); err == nil && on {
				return ErrConflict
			}
		}
		return err
	}
	return nil
}

// PendingTOTPFor returns the account's pending enrolment, or ErrNotFound.
func (s *Store) PendingTOTPFor(ctx context.Context, userID int64) (PendingTOTP, error) {
	p := PendingTOTP{UserID: userID}
	var created int64
	err := s.queryRow(ctx, s.w, `SELECT session_id, secret, created_at FROM mfa_pending WHERE user_id = ?`, userID).
		Scan(&p.SessionID, &p.Secret, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return PendingTOTP{}, ErrNotFound
	}
	if err != nil {
		return PendingTOTP{}, s.wrap(err)
	}
	p.CreatedAt = fromUnix(created)
	return p, nil
}

// TOTPFor returns the account's confirmed authenticator secret, or
// ErrNotFound.
func (s *Store) TOTPFor(ctx context.Context, userID int64) (TOTP, error) {
	t := TOTP{UserID: userID}
	var created int64
	err := s.queryRow(ctx, s.w, `SELECT secret, confirmed, last_step, created_at FROM mfa_totp WHERE user_id = ?`, userID).
		Scan(&t.Secret, &t.Confirmed, &t.LastStep, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return TOTP{}, ErrNotFound
	}
	if err != nil {
		return TOTP{}, s.wrap(err)
	}
	t.CreatedAt = fromUnix(created)
	return t, nil
}

// UseTOTPStep records that the code of step was accepted, unless a code of
// that step or a later one was accepted before: then ErrNotFound (a
// replay). Of two requests with one code, one wins.
func (s *Store) UseTOTPStep(ctx context.Context, userID, step int64) error {
	res, err := s.exec(ctx, s.w, `UPDATE mfa_totp SET last_step = ? WHERE user_id = ? AND confirmed = ? AND last_step < ?`,
		step, userID, true, step)
	return oneRow(res, err)
}

// ConfirmTOTP turns two-factor on with the pending secret of session,
// whose first code, of step, was accepted, stores the recovery codes'
// HMACs, carries out v and records ev, in one transaction. ErrNotFound when
// that session has nothing pending (or the pending secret changed since it
// was read: secret is the one checked).
func (s *Store) ConfirmTOTP(ctx context.Context, userID int64, session, secret string, step int64, recovery []string, now time.Time, v Void, ev Event) error {
	defer v.done(s, userID)
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, `DELETE FROM mfa_pending WHERE user_id = ? AND session_id = ? AND secret = ?`, userID, session, secret)
		if err := oneRow(res, err); err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, `INSERT INTO mfa_totp (user_id, secret, confirmed, last_step, created_at) VALUES (?, ?, ?, ?, ?)`,
			userID, secret, true, step, unix(now)); err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, `UPDATE users SET mfa_enabled = ? WHERE id = ?`, true, userID); err != nil {
			return err
		}
		if err := s.putRecoveryCodes(ctx, tx, userID, recovery); err != nil {
			return err
		}
		if _, err := v.apply(ctx, s, tx, userID); err != nil {
			return err
		}
		ev.UserID = userID
		return s.insertEvent(ctx, tx, ev)
	})
}

func (s *Store) putRecoveryCodes(ctx context.Context, tx *sql.Tx, userID int64, hashes []string) error {
	if _, err := s.exec(ctx, tx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID); err != nil {
		return err
	}
	for _, h := range hashes {
		if _, err := s.exec(ctx, tx, `INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)`, userID, h); err != nil {
			return err
		}
	}
	return nil
}

// ReplaceRecoveryCodes voids the account's recovery codes and stores new
// ones, carrying out v and recording ev.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, userID int64, hashes []string, v Void, ev Event) error {
	defer v.done(s, userID)
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.putRecoveryCodes(ctx, tx, userID, hashes); err != nil {
			return err
		}
		if _, err := v.apply(ctx, s, tx, userID); err != nil {
			return err
		}
		ev.UserID = userID
		return s.insertEvent(ctx, tx, ev)
	})
}

// DisableTOTP turns two-factor off: the secret and the recovery codes go,
// v is carried out and ev recorded. It returns how many sessions ended;
// ErrNotFound, writing nothing, when two-factor was off.
func (s *Store) DisableTOTP(ctx context.Context, userID int64, v Void, ev Event) (int64, error) {
	defer v.done(s, userID)
	var ended int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, `DELETE FROM mfa_totp WHERE user_id = ?`, userID)
		if err := oneRow(res, err); err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID); err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, `UPDATE users SET mfa_enabled = ? WHERE id = ?`, false, userID); err != nil {
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

// UseRecoveryCode spends the recovery code whose HMAC is hash and returns
// how many are left; ErrNotFound when it is not one of the account's
// unused codes.
func (s *Store) UseRecoveryCode(ctx context.Context, userID int64, hash string) (int, error) {
	var left int
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, `DELETE FROM recovery_codes WHERE user_id = ? AND code_hash = ?`, userID, hash)
		if err := oneRow(res, err); err != nil {
			return err
		}
		return s.queryRow(ctx, tx, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?`, userID).Scan(&left)
	})
	return left, err
}

// RecoveryCodesLeft counts the account's unused recovery codes.
func (s *Store) RecoveryCodesLeft(ctx context.Context, userID int64) (int, error) {
	var n int
	err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?`, userID).Scan(&n)
	return n, s.wrap(err)
}
