package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrNoBackup means the engine's own tools make backups (PostgreSQL:
// pg_dump).
var ErrNoBackup = errors.New("the PostgreSQL database is backed up with its own tools: use pg_dump (or continuous archiving) on the database in DATABASE_URL")

// Backup writes a consistent copy of the SQLite database to path, while the
// service runs: VACUUM INTO reads one snapshot, so writes made meanwhile
// are either wholly in the copy or not at all. The copy holds password
// hashes and signing keys: it is written into a fresh private directory
// beside path (mode 0700, so nobody else can open or replace it meanwhile),
// made readable by its owner only, synced, and then linked into place,
// which fails rather than replace anything: path must not exist, and a
// symbolic link there is refused, not followed.
func (s *Store) Backup(ctx context.Context, path string) error {
	if s.engine == Postgres {
		return ErrNoBackup
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link: name a new file", path)
		}
		return fmt.Errorf("%s already exists: name a new file", path)
	}
	dir := filepath.Dir(path)
	tmpDir, err := os.MkdirTemp(dir, ".backup-")
	if err != nil {
		return fmt.Errorf("back up to %s: %v", path, errors.Unwrap(err))
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "copy.db")
	// A connection of its own: the read pool may not write (VACUUM INTO
	// writes the copy), and the writer is not held up by a long copy.
	conn, err := sql.Open("sqlite3", sqliteDSN(s.name, false))
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		return fmt.Errorf("back up to %s: %s", path, describeSQLite(err))
	}
	if err := privateAndSynced(tmp); err != nil {
		return fmt.Errorf("back up to %s: %v", path, err)
	}
	if s.Hooks.BeforeBackupLands != nil {
		s.Hooks.BeforeBackupLands(path)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists: name a new file", path)
		}
		return fmt.Errorf("back up to %s: %v", path, errors.Unwrap(err))
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// privateAndSynced makes a file readable by its owner only and flushes it
// to disk.
func privateAndSynced(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	return f.Sync()
}
