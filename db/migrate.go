package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Migrations, one folder per engine, with the same versions in both (a test
// holds them to that).
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// migrationLockID names the PostgreSQL advisory lock held while migrating,
// so that instances starting together migrate one at a time.
const migrationLockID = 0x66696265 // "fibe"

// ErrSchemaTooNew means the database was migrated by a newer version of the
// program than this one.
var ErrSchemaTooNew = errors.New("schema newer than this program")

func (s *Store) migrations() (fs.FS, goose.Dialect) {
	if s.engine == Postgres {
		sub, _ := fs.Sub(migrationFS, "migrations/postgres")
		return sub, goose.DialectPostgres
	}
	sub, _ := fs.Sub(migrationFS, "migrations/sqlite")
	return sub, goose.DialectSQLite3
}

func (s *Store) provider() (*goose.Provider, error) {
	fsys, dialect := s.migrations()
	opts := []goose.ProviderOption{
		goose.WithSlog(slog.New(slog.DiscardHandler)),
		goose.WithDisableGlobalRegistry(true),
	}
	if s.engine == Postgres {
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID), lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	} else {
		opts = append(opts, goose.WithSessionLocker(sqliteLocker{}))
	}
	return goose.NewProvider(dialect, s.w, fsys, opts...)
}

// migrate applies pending migrations when apply is set, then refuses a
// schema newer than the newest migration this program carries; without
// apply it only checks that the schema is exactly the one it knows.
func (s *Store) migrate(ctx context.Context, apply bool) error {
	p, err := s.provider()
	if err != nil {
		return err
	}
	if apply {
		if err := s.adoptLegacyVersions(ctx, p); err != nil {
			return fmt.Errorf("reading the schema version: %s", s.describe(err))
		}
		// Up takes the migration lock; a schema newer than this program
		// has nothing pending and is refused below.
		results, err := p.Up(ctx)
		for _, r := range results {
			if r.Error == nil {
				s.log.Info("migrated", slog.String("database", s.name), slog.Int64("version", r.Source.Version),
					slog.String("name", r.Source.Path), slog.Duration("took", r.Duration))
			}
		}
		if err != nil {
			return fmt.Errorf("migrating the schema: %s", s.describe(err))
		}
	}
	current, known, err := p.GetVersions(ctx)
	if err != nil {
		return fmt.Errorf("reading the schema version: %s", s.describe(err))
	}
	if current > known {
		return fmt.Errorf("%w: the database schema is at version %d but this program knows versions up to %d; run a newer release",
			ErrSchemaTooNew, current, known)
	}
	if current < known {
		return fmt.Errorf("the database schema is at version %d and needs migrating to %d: run the migrate command", current, known)
	}
	return nil
}

// describe words an error of the database for a person.
func (s *Store) describe(err error) string {
	if s.engine == Postgres {
		var partial *goose.PartialError
		if errors.As(err, &partial) && partial.Failed != nil {
			return fmt.Sprintf("migration %s failed: %s", partial.Failed.Source.Path, describePostgres(partial.Err))
		}
		return describePostgres(err)
	}
	return describeSQLite(err)
}

// sqliteLocker serialises migrations of processes sharing one SQLite file
// (goose's own lockers are for PostgreSQL and MySQL): a lease row in a table
// of its own, taken with one conditional upsert and given up by deleting
// it. A process that dies holding it blocks the others for the lease at
// most.
type sqliteLocker struct{}

const sqliteLockLease = time.Minute

func (sqliteLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS migration_lock (
		id INTEGER PRIMARY KEY CHECK (id = 1), expires_at INTEGER NOT NULL)`); err != nil {
		return err
	}
	for {
		now := time.Now()
		res, err := conn.ExecContext(ctx, `INSERT INTO migration_lock (id, expires_at) VALUES (1, ?)
			ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at WHERE migration_lock.expires_at < ?`,
			now.Add(sqliteLockLease).UnixMilli(), now.UnixMilli())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (sqliteLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, `DELETE FROM migration_lock`)
	return err
}

// adoptLegacyVersions carries over the versions recorded by the first
// release's own migration runner (table schema_migrations, SQLite only),
// whose migrations 1 and 2 are goose's versions 1 and 2, so that goose does
// not apply them again.
func (s *Store) adoptLegacyVersions(ctx context.Context, p *goose.Provider) error {
	if s.engine != SQLite {
		return nil
	}
	var n int
	if err := s.w.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n); err != nil || n == 0 {
		return err
	}
	// Creates goose's version table if it is missing.
	current, err := p.GetDBVersion(ctx)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations WHERE version > ? ORDER BY version`, current)
		if err != nil {
			return err
		}
		var versions []int64
		for rows.Next() {
			var v int64
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return err
			}
			versions = append(versions, v)
		}
		rows.Close()
		for _, v := range versions {
			if _, err := tx.ExecContext(ctx, `INSERT INTO `+goose.DefaultTablename+` (version_id, is_applied) VALUES (?, 1)`, v); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `DROP TABLE schema_migrations`)
		return err
	})
}

// SchemaVersion returns the highest applied migration version.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	p, err := s.provider()
	if err != nil {
		return 0, err
	}
	return p.GetDBVersion(ctx)
}

// LatestSchemaVersion is the newest migration this program carries.
func LatestSchemaVersion() int64 {
	sub, _ := fs.Sub(migrationFS, "migrations/sqlite")
	entries, _ := fs.ReadDir(sub, ".")
	var v int64
	for _, e := range entries {
		var n int64
		if _, err := fmt.Sscanf(e.Name(), "%d_", &n); err == nil && n > v {
			v = n
		}
	}
	return v
}

// MigrationCount returns how many migrations the program carries (one per
// version, the same on both engines).
func MigrationCount() int {
	sub, _ := fs.Sub(migrationFS, "migrations/sqlite")
	entries, _ := fs.ReadDir(sub, ".")
	return len(entries)
}
