package db

import (
	"context"
	"database/sql"
	"errors"
)

// Secret returns the value stored under key, first storing generate()'s
// result when there is none. Concurrent callers, in this process or in other
// instances on the same database, all get the one stored value: the insert
// does nothing when a value exists, and the value is read back after it.
func (s *Store) Secret(ctx context.Context, key string, generate func() ([]byte, error)) ([]byte, error) {
	var v []byte
	err := s.queryRow(ctx, s.w, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, s.wrap(err)
	}
	fresh, err := generate()
	if err != nil {
		return nil, err
	}
	if _, err := s.exec(ctx, s.w, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, fresh); err != nil {
		return nil, err
	}
	err = s.queryRow(ctx, s.w, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	return v, s.wrap(err)
}
