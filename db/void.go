package db

import (
	"context"
	"database/sql"
	"strings"
)

// Sessions says which of an account's sessions a change ends.
type Sessions int

// Which sessions a change ends.
const (
	// KeepSessions ends none.
	KeepSessions Sessions = iota
	// ThisSession ends the session named by Void.Session.
	ThisSession
	// OtherSessions ends every session but Void.Session (every session
	// when it is empty).
	OtherSessions
	// AllSessions ends every session.
	AllSessions
	// AppSessions ends the sessions one application holds (Void.Client).
	AppSessions
)

// Void is what a sensitive change ends, carried out in the change's own
// transaction. The account core decides it, from one table, for every kind
// of change; the store only carries it out. Everything bound to a session
// (its refresh tokens, a change of address or an enrolment it started) ends
// with the session.
type Void struct {
	Sessions Sessions
	// Session is the session that made the change, or the one to end.
	Session string
	// Client is the application whose sessions AppSessions ends.
	Client string
	// Codes are the purposes of the mailed codes voided (CodeReset,
	// CodeVerify, CodeEmailChange).
	Codes []string
	// Enrolment voids a pending authenticator enrolment.
	Enrolment bool
	// Ceremonies voids the account's passkey ceremonies under way (a
	// passkey being added, an action being confirmed with one, a passkey
	// as a second step).
	Ceremonies bool
	// SecondSteps voids pending second-step sign-ins (the account's stamp
	// moves on, and their signatures cover it).
	SecondSteps bool
	// Unvouched forgets the account's identities at providers that were
	// linked before its address was proven (Identity.Vouched) and ends the
	// sessions signed in with them, and removes its passkeys added before
	// then (Passkey.Vouched), ending every session if there was one.
	Unvouched bool
	// Disown takes from the account what was set up before its address
	// was proven, as its owner disowned it: the password and two-factor
	// (its secret and recovery codes).
	Disown bool
	// Vouch marks ways in as vouched for, their owner having proven the
	// address: All of them, or the passkeys and providers named (those
	// the owner was shown).
	Vouch *Vouching
	// Cached drops the account's cached sessions on every instance once
	// the transaction commits.
	Cached bool
}

// Vouching names the ways in a proof of the address vouches for: All of
// them, or the passkeys (by id) and identities (issuer and subject, joined
// by a NUL) named.
type Vouching struct {
	All        bool
	Passkeys   []string
	Identities []string
}

// apply carries out v for userID in tx and returns how many sessions
// ended. The caller drops the cache entries after the commit (see done).
func (v Void) apply(ctx context.Context, s *Store, tx *sql.Tx, userID int64) (int64, error) {
	var ended int64
	if v.Unvouched {
		n, err := s.endSessions(ctx, tx, `user_id = ? AND via IN (SELECT provider FROM identities WHERE user_id = ? AND NOT vouched)`,
			userID, userID)
		if err != nil {
			return 0, err
		}
		if _, err := s.exec(ctx, tx, `DELETE FROM identities WHERE user_id = ? AND NOT vouched`, userID); err != nil {
			return 0, err
		}
		ended += n
		res, err := s.exec(ctx, tx, `DELETE FROM passkeys WHERE user_id = ? AND NOT vouched`, userID)
		if err != nil {
			return 0, err
		}
		// A session does not say which passkey signed it in: all end.
		if gone, err := res.RowsAffected(); err != nil {
			return 0, err
		} else if gone > 0 && v.Sessions != AllSessions {
			n, err := s.endSessions(ctx, tx, `user_id = ?`, userID)
			if err != nil {
				return 0, err
			}
			ended += n
		}
	}
	if v.Disown {
		if _, err := s.exec(ctx, tx, `UPDATE users SET password_hash = '', mfa_enabled = ? WHERE id = ?`, false, userID); err != nil {
			return 0, err
		}
		for _, q := range []string{`DELETE FROM mfa_totp WHERE user_id = ?`, `DELETE FROM recovery_codes WHERE user_id = ?`} {
			if _, err := s.exec(ctx, tx, q, userID); err != nil {
				return 0, err
			}
		}
	}
	if v.Vouch != nil {
		if err := v.Vouch.apply(ctx, s, tx, userID); err != nil {
			return 0, err
		}
	}
	var where string
	var args []any
	switch v.Sessions {
	case ThisSession:
		where, args = `user_id = ? AND id = ?`, []any{userID, v.Session}
	case OtherSessions:
		// The applications' sessions authorized from the one kept stay
		// with it, unless they are themselves the one named.
		where, args = `user_id = ? AND id <> ? AND (parent_id IS NULL OR parent_id <> ? OR client_id IS NULL)`,
			[]any{userID, v.Session, v.Session}
	case AllSessions:
		where, args = `user_id = ?`, []any{userID}
	case AppSessions:
		where, args = `user_id = ? AND client_id = ?`, []any{userID, v.Client}
	}
	if where != "" {
		n, err := s.endSessions(ctx, tx, where, args...)
		if err != nil {
			return 0, err
		}
		ended += n
	}
	if len(v.Codes) > 0 {
		args := []any{userID}
		for _, p := range v.Codes {
			args = append(args, p)
		}
		marks := strings.TrimSuffix(strings.Repeat("?, ", len(v.Codes)), ", ")
		if _, err := s.exec(ctx, tx, `DELETE FROM codes WHERE user_id = ? AND purpose IN (`+marks+`)`, args...); err != nil {
			return 0, err
		}
	}
	if v.Enrolment {
		if _, err := s.exec(ctx, tx, `DELETE FROM mfa_pending WHERE user_id = ?`, userID); err != nil {
			return 0, err
		}
	}
	if v.Ceremonies {
		if _, err := s.exec(ctx, tx, `DELETE FROM passkey_ceremonies WHERE user_id = ?`, userID); err != nil {
			return 0, err
		}
	}
	if v.SecondSteps {
		if _, err := s.exec(ctx, tx, `UPDATE users SET stamp = stamp + 1 WHERE id = ?`, userID); err != nil {
			return 0, err
		}
	}
	if v.Cached || v.Disown || ended > 0 {
		// Other instances drop the account's cached sessions when this
		// commits.
		if err := s.notify(ctx, tx, userPayload(userID)); err != nil {
			return 0, err
		}
	}
	return ended, nil
}

func (w *Vouching) apply(ctx context.Context, s *Store, tx *sql.Tx, userID int64) error {
	if w.All {
		for _, q := range []string{`UPDATE identities SET vouched = ? WHERE user_id = ?`, `UPDATE passkeys SET vouched = ? WHERE user_id = ?`} {
			if _, err := s.exec(ctx, tx, q, true, userID); err != nil {
				return err
			}
		}
		return nil
	}
	for _, id := range w.Passkeys {
		if _, err := s.exec(ctx, tx, `UPDATE passkeys SET vouched = ? WHERE user_id = ? AND id = ?`, true, userID, id); err != nil {
			return err
		}
	}
	for _, id := range w.Identities {
		issuer, subject, _ := strings.Cut(id, "\x00")
		if _, err := s.exec(ctx, tx, `UPDATE identities SET vouched = ? WHERE user_id = ? AND issuer = ? AND subject = ?`,
			true, userID, issuer, subject); err != nil {
			return err
		}
	}
	return nil
}

// done drops this instance's cached entries of userID after the change's
// transaction (deferred by the caller, so that it runs whatever happened).
func (v Void) done(s *Store, userID int64) {
	if v.Cached || v.Sessions != KeepSessions || v.Unvouched || v.Disown {
		s.cache.invalidateUser(userID)
	}
}

// Apply carries out v for userID in a transaction of its own and returns
// how many sessions ended. ev is recorded with it when its Kind is set and
// the change did something: with ThisSession, ErrNotFound (writing
// nothing) when the account has no such session; with OtherSessions or
// AllSessions, no event when none ended.
func (s *Store) Apply(ctx context.Context, userID int64, v Void, ev Event) (int64, error) {
	defer v.done(s, userID)
	var ended int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if ended, err = v.apply(ctx, s, tx, userID); err != nil {
			return err
		}
		switch {
		case v.Sessions == ThisSession && ended == 0:
			return ErrNotFound
		case ev.Kind == "", v.Sessions != KeepSessions && ended == 0:
			return nil
		}
		ev.UserID = userID
		return s.insertEvent(ctx, tx, ev)
	})
	return ended, err
}
