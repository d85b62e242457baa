package db

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Session is a server-side sign-in. A token is valid only while its session
// row exists and has not expired.
type Session struct {
	ID     string
	UserID int64
	// CreatedAt is the sign-in; ExpiresAt the session's absolute end (its
	// refresh tokens' lifetime). A session also ends when it has not been
	// used for the idle limit since LastUsedAt.
	CreatedAt  time.Time
	ExpiresAt  time.Time
	LastUsedAt time.Time
	IP         string
	UserAgent  string
	// Scope is the space-separated scopes the session was granted.
	Scope string
	// AMR is how the person signed in, as space-separated RFC 8176
	// methods: "pwd", or "pwd otp" with a second factor.
	AMR string
	// ClientID names the application holding the session (its tokens),
	// "" for a session of this service's own pages and API; ParentID is
	// the session it was authorized from, which it ends with unless
	// Offline (the application was granted offline access).
	ClientID string
	ParentID string
	Offline  bool
	// Via names the provider the person signed in with (sign-in with
	// another provider), "" for the others.
	Via string
	// AuthTime is when the person signed in, for an application's session
	// (the sign-in of the session it was authorized from); zero for this
	// service's own sessions, which start at the sign-in (SignedInAt).
	AuthTime time.Time
}

// SignedInAt is when the person signed in to get the session.
func (se Session) SignedInAt() time.Time {
	if !se.AuthTime.IsZero() {
		return se.AuthTime
	}
	return se.CreatedAt
}

// NewSession is a sign-in to record.
type NewSession struct {
	Session
	// PasswordHash is the hash the password was checked against: the
	// session is created only if it is still the account's.
	PasswordHash string
	// Event is recorded in the same transaction when its Kind is set.
	Event Event
	// KnownClient, when set, records that this client signed in to the
	// account successfully at the session's creation time.
	KnownClient string
	// RefreshHash is the SHA-256 of the session's first refresh token.
	RefreshHash []byte
	// Void, when set, is carried out in the same transaction (what the
	// sign-in ends).
	Void *Void
	// Stamp, when CheckStamp, must still be the account's (the stamp a
	// pending second step was signed with): of two sign-ins with one
	// pending step, one wins.
	Stamp      int64
	CheckStamp bool
	// Passkey, when set, is the passkey the person signed in with: its
	// use is recorded in the same transaction, and the session is created
	// only while the passkey is still the account's and its counter has
	// not moved past (ErrChanged otherwise).
	Passkey *PasskeyUse
}

// StartSession stores a new session, only if the account still exists and
// its password hash is still ns.PasswordHash (and, with ns.Passkey, that
// passkey still is the account's and its counter has not moved past);
// otherwise it returns ErrChanged and writes nothing. The event and known client go in the same
// transaction, so a sign-in costs one commit.
func (s *Store) StartSession(ctx context.Context, ns NewSession) error {
	se := ns.Session
	if ns.Void != nil {
		defer ns.Void.done(s, se.UserID)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if ns.CheckStamp {
			// The account's row is locked until the commit: of two
			// sign-ins with one stamp, the second finds it moved on.
			res, err := s.exec(ctx, tx, `UPDATE users SET stamp = stamp + 1 WHERE id = ? AND stamp = ?`, se.UserID, ns.Stamp)
			if err := oneRow(res, err); err != nil {
				if errors.Is(err, ErrNotFound) {
					return ErrChanged
				}
				return err
			}
		}
		res, err := s.exec(ctx, tx, `INSERT INTO sessions
			(id, user_id, created_at, expires_at, last_used_at, ip, user_agent, scope, amr, via)
			SELECT ?, id, ?, ?, ?, ?, ?, ?, ?, ? FROM users WHERE id = ? AND password_hash = ?`,
			se.ID, unix(se.CreatedAt), unix(se.ExpiresAt), unix(se.LastUsedAt), se.IP, se.UserAgent, se.Scope, amrOrPwd(se.AMR),
			se.Via, se.UserID, ns.PasswordHash)
		if err := oneRow(res, err); err != nil {
			if errors.Is(err, ErrNotFound) {
				return ErrChanged
			}
			return err
		}
		if ns.Passkey != nil {
			if err := s.usePasskey(ctx, tx, *ns.Passkey); err != nil {
				return err
			}
		}
		if ns.Event.Kind != "" {
			ns.Event.UserID = se.UserID
			if err := s.insertEvent(ctx, tx, ns.Event); err != nil {
				return err
			}
		}
		if len(ns.RefreshHash) > 0 {
			if _, err := s.exec(ctx, tx, `INSERT INTO refresh_tokens (hash, session_id, issued_at) VALUES (?, ?, ?)`,
				ns.RefreshHash, se.ID, unixMilli(se.CreatedAt)); err != nil {
				return err
			}
		}
		if _, err := s.exec(ctx, tx, `UPDATE users SET last_sign_in_at = ? WHERE id = ?`, unix(se.CreatedAt), se.UserID); err != nil {
			return err
		}
		if ns.KnownClient != "" {
			if _, err := s.exec(ctx, tx, `INSERT INTO known_clients (user_id, client, last_seen) VALUES (?, ?, ?)
				ON CONFLICT (user_id, client) DO UPDATE SET last_seen = excluded.last_seen`,
				se.UserID, ns.KnownClient, unix(se.CreatedAt)); err != nil {
				return err
			}
		}
		if ns.Void != nil {
			if _, err := ns.Void.apply(ctx, s, tx, se.UserID); err != nil {
				return err
			}
		}
		return nil
	})
}

const sessionWithUserQuery = `SELECT
	s.user_id, s.created_at, s.expires_at, s.last_used_at, s.ip, s.user_agent, s.scope, s.amr,
	COALESCE(s.client_id, ''), COALESCE(s.parent_id, ''), s.offline, s.auth_time,
	u.username, u.email, u.created_at, u.role, u.email_verified, u.mfa_enabled, u.subject, u.password_hash = ''
	FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?`

// SessionWithUser returns a session and its account (without the password
// hash) in one query, or from the session cache.
func (s *Store) SessionWithUser(ctx context.Context, id string) (Session, User, error) {
	if se, u, ok := s.cache.get(id); ok {
		return se, u, nil
	}
	gen := s.cache.generation()
	se := Session{ID: id}
	var u User
	var created, expires, used, ucreated, authTime int64
	row, err := s.readRow(ctx, sessionWithUserQuery, id)
	if err != nil {
		return Session{}, User{}, err
	}
	err = row.Scan(&se.UserID, &created, &expires, &used, &se.IP, &se.UserAgent, &se.Scope, &se.AMR,
		&se.ClientID, &se.ParentID, &se.Offline, &authTime,
		&u.Username, &u.Email, &ucreated, &u.Role, &u.EmailVerified, &u.MFAEnabled, &u.Subject, &u.Passwordless)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Session{}, User{}, ErrNotFound
		}
		return Session{}, User{}, s.wrap(err)
	}
	u.ID = se.UserID
	se.CreatedAt = fromUnix(created)
	se.ExpiresAt = fromUnix(expires)
	se.LastUsedAt = fromUnix(used)
	if authTime != 0 {
		se.AuthTime = fromUnix(authTime)
	}
	u.CreatedAt = fromUnix(ucreated)
	s.cache.put(gen, se, u)
	return se, u, nil
}

// TouchSession records that a session was used at t.
func (s *Store) TouchSession(ctx context.Context, id string, t time.Time) error {
	defer s.cache.invalidate(id)
	_, err := s.exec(ctx, s.w, `UPDATE sessions SET last_used_at = ? WHERE id = ? AND last_used_at < ?`,
		unix(t), id, unix(t))
	return err
}

// ListSessions returns the sessions of userID that have not expired at now
// nor been idle since idleSince, newest first; the sessions applications
// hold are left out (see ListConnectedApps).
func (s *Store) ListSessions(ctx context.Context, userID int64, now, idleSince time.Time) ([]Session, error) {
	rows, err := s.query(ctx, s.r, `SELECT id, user_id, created_at, expires_at, last_used_at, ip, user_agent, scope, amr, via
		FROM sessions WHERE user_id = ? AND expires_at > ? AND last_used_at > ? AND client_id IS NULL ORDER BY created_at DESC, id`,
		userID, unix(now), unix(idleSince))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		var se Session
		var created, expires, used int64
		if err := rows.Scan(&se.ID, &se.UserID, &created, &expires, &used, &se.IP, &se.UserAgent, &se.Scope, &se.AMR, &se.Via); err != nil {
			return nil, err
		}
		se.CreatedAt = fromUnix(created)
		se.ExpiresAt = fromUnix(expires)
		se.LastUsedAt = fromUnix(used)
		out = append(out, se)
	}
	return out, s.wrap(rows.Err())
}

// Pruned counts what Prune removed.
type Pruned struct {
	Sessions, Events, KnownClients, Throttle int64
}

// Prune deletes sessions that expired before now or were last used before
// idleBefore, events older than eventsBefore, known clients last seen
// before knownBefore and lapsed throttle counts.
func (s *Store) Prune(ctx context.Context, now, idleBefore, eventsBefore, knownBefore time.Time) (Pruned, error) {
	defer s.cache.clear()
	var p Pruned
	steps := []struct {
		n     *int64
		query string
		args  []any
	}{
		{&p.Sessions, `DELETE FROM sessions WHERE expires_at <= ? OR last_used_at <= ?`, []any{unix(now), unix(idleBefore)}},
		{&p.Events, `DELETE FROM events WHERE at < ?`, []any{unix(eventsBefore)}},
		{&p.KnownClients, `DELETE FROM known_clients WHERE last_seen < ?`, []any{unix(knownBefore)}},
		{&p.Throttle, `DELETE FROM throttle WHERE expires_at <= ?1 AND until_at <= ?1`, []any{unixMilli(now)}},
		{new(int64), `DELETE FROM codes WHERE expires_at <= ?`, []any{unix(now)}},
		{new(int64), `DELETE FROM auth_codes WHERE expires_at <= ?`, []any{unix(now)}},
		{new(int64), `DELETE FROM passkey_ceremonies WHERE expires_at <= ?`, []any{unix(now)}},
		{new(int64), `DELETE FROM notices WHERE created_at < ?`, []any{unixMilli(time.Now().Add(-noticeKeep))}},
	}
	for _, st := range steps {
		res, err := s.exec(ctx, s.w, st.query, st.args...)
		if err != nil {
			return p, err
		}
		*st.n, _ = res.RowsAffected()
	}
	return p, nil
}

// amrOrPwd is how a session records its sign-in method: "pwd" unless said.
func amrOrPwd(amr string) string {
	if amr == "" {
		return "pwd"
	}
	return amr
}
