package db

import (
	"context"
)

// Secret returns the value stored under key, first storing generate()'s
// result when there is none. Concurrent callers all get the one stored value.
func (s *Store) Secret(ctx context.Context, key string, generate func() ([]byte, error)) ([]byte, error) {
	var v []byte
	err := s.w.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if err == nil {
		return v, nil
	}
	fresh, gerr := generate()
	if gerr != nil {
		return nil, gerr
	}
	if _, err := s.w.ExecContext(ctx, `INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)`, key, fresh); err != nil {
		return nil, err
	}
	err = s.w.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	return v, err
}
