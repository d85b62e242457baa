package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrNoBackup means the engine's own tools make backups (PostgreSQL:
// pg_dump).
var ErrNoBackup = errors.New("the PostgreSQL database is backed up with its own tools: use pg_dump (or continuous archiving) on the database in DATABASE_URL")

// Backup writes a consistent copy of the SQLite database to path, while the
// service runs: VACUUM INTO reads one snapshot, so writes made meanwhile
// are either wholly in the copy or not at all. path must not exist; the
// copy is readable by its owner only.
func (s *Store) Backup(ctx context.Context, path string) error {
	if s.engine == Postgres {
		return ErrNoBackup
	}
	// The copy holds password hashes and signing keys: it is created
	// readable by its owner only, and never over an existing file.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists: name a new file", path)
	}
	if err != nil {
		return fmt.Errorf("back up to %s: %v", path, errors.Unwrap(err))
	}
	f.Close()
	// A connection of its own: the read pool may not write (VACUUM INTO
	// writes the copy), and the writer is not held up by a long copy.
	conn, err := sql.Open("sqlite3", sqliteDSN(s.name, false))
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		os.Remove(path)
		return fmt.Errorf("back up to %s: %s", path, describeSQLite(err))
	}
	return nil
}
