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
	ID         string
	UserID     int64
	CreatedAt  time.Time
	ExpiresAt  time.Time
	LastUsedAt time.Time
	IP         string
	UserAgent  string
}

// CreateSession stores a new session.
func (s *Store) CreateSession(ctx context.Context, se Session) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO sessions
		(id, user_id, created_at, expires_at, last_used_at, ip, user_agent)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		se.ID, se.UserID, se.CreatedAt.Unix(), se.ExpiresAt.Unix(), se.LastUsedAt.Unix(), se.IP, se.UserAgent)
	if isUnique(err) {
		return ErrConflict
	}
	return err
}

// SessionWithUser returns a session and its account (without the password
// hash) in one query, or from the session cache.
func (s *Store) SessionWithUser(ctx context.Context, id string) (Session, User, error) {
	if se, u, ok := s.cache.get(id); ok {
		return se, u, nil
	}
	gen := s.cache.generation()
	se := Session{ID: id}
	var u User
	var created, expires, used, ucreated int64
	err := s.stmtSessionWithUser.QueryRowContext(ctx, id).Scan(
		&se.UserID, &created, &expires, &used, &se.IP, &se.UserAgent,
		&u.Username, &u.Email, &ucreated)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Session{}, User{}, ErrNotFound
		}
		return Session{}, User{}, err
	}
	u.ID = se.UserID
	se.CreatedAt = time.Unix(created, 0)
	se.ExpiresAt = time.Unix(expires, 0)
	se.LastUsedAt = time.Unix(used, 0)
	u.CreatedAt = time.Unix(ucreated, 0)
	s.cache.put(gen, se, u)
	return se, u, nil
}

// TouchSession records that a session was used at t.
func (s *Store) TouchSession(ctx context.Context, id string, t time.Time) error {
	defer s.cache.invalidate(id)
	_, err := s.w.ExecContext(ctx, `UPDATE sessions SET last_used_at = ? WHERE id = ? AND last_used_at < ?`,
		t.Unix(), id, t.Unix())
	return err
}

// DeleteSession ends a session. It reports ErrNotFound when there was none.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	defer s.cache.invalidate(id)
	res, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE id = ?`, id)
	return oneRow(res, err)
}

// DeleteUserSession ends one session of userID; ErrNotFound when userID has
// no session with that id (whether or not another account has one).
func (s *Store) DeleteUserSession(ctx context.Context, userID int64, id string) error {
	defer s.cache.invalidate(id)
	res, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE id = ? AND user_id = ?`, id, userID)
	return oneRow(res, err)
}

// DeleteOtherSessions ends every session of userID except keep and returns
// how many it ended.
func (s *Store) DeleteOtherSessions(ctx context.Context, userID int64, keep string) (int64, error) {
	defer s.cache.invalidateUser(userID)
	res, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND id <> ?`, userID, keep)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// ListSessions returns the unexpired sessions of userID, newest first.
func (s *Store) ListSessions(ctx context.Context, userID int64, now time.Time) ([]Session, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, user_id, created_at, expires_at, last_used_at, ip, user_agent
		FROM sessions WHERE user_id = ? AND expires_at > ? ORDER BY created_at DESC, id`, userID, now.Unix())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		var se Session
		var created, expires, used int64
		if err := rows.Scan(&se.ID, &se.UserID, &created, &expires, &used, &se.IP, &se.UserAgent); err != nil {
			return nil, err
		}
		se.CreatedAt = time.Unix(created, 0)
		se.ExpiresAt = time.Unix(expires, 0)
		se.LastUsedAt = time.Unix(used, 0)
		out = append(out, se)
	}
	return out, rows.Err()
}

// Prune deletes sessions that expired before now and events older than
// eventsBefore, and returns how many of each it removed.
func (s *Store) Prune(ctx context.Context, now, eventsBefore time.Time) (sessions, events int64, err error) {
	defer s.cache.clear()
	res, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, now.Unix())
	if err != nil {
		return 0, 0, err
	}
	sessions, _ = res.RowsAffected()
	res, err = s.w.ExecContext(ctx, `DELETE FROM events WHERE at < ?`, eventsBefore.Unix())
	if err != nil {
		return sessions, 0, err
	}
	events, _ = res.RowsAffected()
	return sessions, events, nil
}
