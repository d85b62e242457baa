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

// PutPendingTOTP stores a secret awaiting its first code, replacing an
// earlier pending one. ErrConflict when two-factor is on already.
func (s *Store) PutPendingTOTP(ctx context.Context, userID int64, secret string, now time.Time) error {
	res, err := s.exec(ctx, s.w, `INSERT INTO mfa_totp (user_id, secret, confirmed, last_step, created_at) VALUES (?, ?, ?, 0, ?)
		ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, last_step = 0, created_at = excluded.created_at
		WHERE mfa_totp.confirmed = ?`, userID, secret, false, unix(now), false)
	if err := oneRow(res, err); err != nil {
		if errors.Is(err, ErrNotFound) {
			return ErrConflict
		}
		return err
	}
	return nil
}

// TOTPFor returns the account's authenticator secret, or ErrNotFound.
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

// ConfirmTOTP turns two-factor on with the pending secret whose first code,
// of step, was accepted, and stores the recovery codes' HMACs, in one
// transaction. ErrNotFound when nothing is pending (or the step was used).
func (s *Store) ConfirmTOTP(ctx context.Context, userID, step int64, recovery []string, ev Event) error {
	defer s.cache.invalidateUser(userID)
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, `UPDATE mfa_totp SET confirmed = ?, last_step = ? WHERE user_id = ? AND confirmed = ? AND last_step < ?`,
			true, step, userID, false, step)
		if err := oneRow(res, err); err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, `UPDATE users SET mfa_enabled = ? WHERE id = ?`, true, userID); err != nil {
			return err
		}
		if err := s.putRecoveryCodes(ctx, tx, userID, recovery); err != nil {
			return err
		}
		ev.UserID = userID
		if err := s.insertEvent(ctx, tx, ev); err != nil {
			return err
		}
		return s.notify(ctx, tx, userPayload(userID))
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
// ones, recording ev.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, userID int64, hashes []string, ev Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.putRecoveryCodes(ctx, tx, userID, hashes); err != nil {
			return err
		}
		ev.UserID = userID
		return s.insertEvent(ctx, tx, ev)
	})
}

// DisableTOTP turns two-factor off: the secret and the recovery codes go,
// and ev is recorded.
func (s *Store) DisableTOTP(ctx context.Context, userID int64, ev Event) error {
	defer s.cache.invalidateUser(userID)
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{`DELETE FROM mfa_totp WHERE user_id = ?`, `DELETE FROM recovery_codes WHERE user_id = ?`} {
			if _, err := s.exec(ctx, tx, q, userID); err != nil {
				return err
			}
		}
		if _, err := s.exec(ctx, tx, `UPDATE users SET mfa_enabled = ? WHERE id = ?`, false, userID); err != nil {
			return err
		}
		ev.UserID = userID
		if err := s.insertEvent(ctx, tx, ev); err != nil {
			return err
		}
		return s.notify(ctx, tx, userPayload(userID))
	})
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
