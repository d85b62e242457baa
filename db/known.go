package db

import (
	"context"
	"time"
)

// KnownClient reports whether client signed in to the account successfully
// at or after since.
func (s *Store) KnownClient(ctx context.Context, userID int64, client string, since time.Time) (bool, error) {
	var n int
	err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM known_clients WHERE user_id = ? AND client = ? AND last_seen >= ?`,
		userID, client, unix(since)).Scan(&n)
	return n > 0, s.wrap(err)
}
