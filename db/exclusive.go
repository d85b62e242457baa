package db

import (
	"context"
	"hash/fnv"
)

// Exclusively runs fn unless another instance is running the job of that
// name on the same database (a PostgreSQL advisory lock, held on one
// connection for the duration); ran is false when it was left to the other.
// On SQLite, whose file belongs to one process, fn always runs.
func (s *Store) Exclusively(ctx context.Context, name string, fn func(ctx context.Context) error) (ran bool, err error) {
	if s.engine != Postgres {
		return true, fn(ctx)
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return false, s.wrap(err)
	}
	defer conn.Close()
	h := fnv.New64a()
	h.Write([]byte("fiberauth " + name))
	id := int64(h.Sum64())
	var got bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, id).Scan(&got); err != nil {
		return false, s.wrap(err)
	}
	if !got {
		return false, nil
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, id)
	return true, fn(ctx)
}
