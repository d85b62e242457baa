package db

import (
	"context"
	"database/sql"
	"time"
)

// Event kinds recorded in an account's activity.
const (
	EventAccountCreated = "account_created"
	EventSignIn         = "sign_in"
	EventSignInFailed   = "sign_in_failed"
	EventPasswordChange = "password_changed"
	EventPasswordFailed = "password_change_failed"
	EventSessionEnded   = "session_ended"
	EventSignOut        = "sign_out"
	EventRefreshReused  = "refresh_reused"
	// EventAdmin is an administrator's action; Detail says what.
	EventAdmin = "admin_action"
)

// Event is one entry of an account's activity.
type Event struct {
	ID        int64
	UserID    int64
	Kind      string
	At        time.Time
	IP        string
	UserAgent string
	// Detail is an optional line of detail for a person.
	Detail string
}

func (s *Store) insertEvent(ctx context.Context, on execer, e Event) error {
	_, err := s.exec(ctx, on, `INSERT INTO events (user_id, kind, at, ip, user_agent, detail) VALUES (?, ?, ?, ?, ?, ?)`,
		e.UserID, e.Kind, unix(e.At), e.IP, e.UserAgent, e.Detail)
	return err
}

// AddEvent records an event.
func (s *Store) AddEvent(ctx context.Context, e Event) error {
	return s.insertEvent(ctx, s.w, e)
}

// AddEvents records several events in one transaction. Events of accounts
// deleted meanwhile are left out.
func (s *Store) AddEvents(ctx context.Context, list []Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, e := range list {
			_, err := s.exec(ctx, tx, `INSERT INTO events (user_id, kind, at, ip, user_agent, detail)
				SELECT id, ?, ?, ?, ?, ? FROM users WHERE id = ?`,
				e.Kind, unix(e.At), e.IP, e.UserAgent, e.Detail, e.UserID)
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// ListEvents returns the latest limit events of userID, newest first.
func (s *Store) ListEvents(ctx context.Context, userID int64, limit int) ([]Event, error) {
	rows, err := s.query(ctx, s.r, `SELECT id, user_id, kind, at, ip, user_agent, detail
		FROM events WHERE user_id = ? ORDER BY id DESC LIMIT ?`, userID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var at int64
		if err := rows.Scan(&e.ID, &e.UserID, &e.Kind, &at, &e.IP, &e.UserAgent, &e.Detail); err != nil {
			return nil, err
		}
		e.At = fromUnix(at)
		out = append(out, e)
	}
	return out, s.wrap(rows.Err())
}
