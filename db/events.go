package db

import (
	"context"
	"time"
)

// Event kinds recorded in an account's activity.
const (
	EventSignIn         = "sign_in"
	EventSignInFailed   = "sign_in_failed"
	EventPasswordChange = "password_changed"
	EventPasswordFailed = "password_change_failed"
	EventSessionEnded   = "session_ended"
	EventSignOut        = "sign_out"
)

// Event is one entry of an account's activity.
type Event struct {
	ID        int64
	UserID    int64
	Kind      string
	At        time.Time
	IP        string
	UserAgent string
}

// AddEvent records an event.
func (s *Store) AddEvent(ctx context.Context, e Event) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO events (user_id, kind, at, ip, user_agent) VALUES (?, ?, ?, ?, ?)`,
		e.UserID, e.Kind, e.At.Unix(), e.IP, e.UserAgent)
	return err
}

// ListEvents returns the latest limit events of userID, newest first.
func (s *Store) ListEvents(ctx context.Context, userID int64, limit int) ([]Event, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, user_id, kind, at, ip, user_agent
		FROM events WHERE user_id = ? ORDER BY id DESC LIMIT ?`, userID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var at int64
		if err := rows.Scan(&e.ID, &e.UserID, &e.Kind, &at, &e.IP, &e.UserAgent); err != nil {
			return nil, err
		}
		e.At = time.Unix(at, 0)
		out = append(out, e)
	}
	return out, rows.Err()
}
