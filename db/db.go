// Package db owns the SQLite storage of the service: the schema, its
// migrations and every SQL statement. Nothing outside this package writes SQL.
package db

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Sentinel errors returned by the store.
var (
	// ErrNotFound means the requested row does not exist.
	ErrNotFound = errors.New("db: not found")
	// ErrConflict means a uniqueness constraint refused the write.
	ErrConflict = errors.New("db: conflict")
)

// Store is the SQLite-backed storage. It keeps two pools on one file: a
// single-connection pool for writes (SQLite has one writer, so queueing in
// Go avoids "database is locked") and a pool of read-only connections.
type Store struct {
	path string
	w    *sql.DB
	r    *sql.DB

	stmtSessionWithUser *sql.Stmt
	cache               *sessionCache
}

// sqliteHeader is the first 16 bytes of every SQLite 3 database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// dsn builds a connection string. Pragmas in the DSN apply to every
// connection the pool opens. synchronous=FULL makes every acknowledged
// commit durable across power loss, not only across a process crash.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", "5000")
	q.Set("_foreign_keys", "on")
	q.Set("_synchronous", "FULL")
	q.Set("_txlock", "immediate")
	if readOnly {
		q.Set("_query_only", "on")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Open opens (creating if needed) the database at path, applies pending
// migrations and prepares the hot statements. The errors it returns are
// written for a person: they name the path and the problem.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("database path is empty")
	}
	if err := checkPath(path); err != nil {
		return nil, err
	}
	w, err := sql.Open("sqlite3", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("cannot open database %s: %v", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{path: path, w: w, cache: newSessionCache()}
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("cannot open database %s: %s", path, describe(err))
	}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("cannot open database %s: %s", path, describe(err))
	}
	r, err := sql.Open("sqlite3", dsn(path, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("cannot open database %s: %v", path, err)
	}
	n := 2 * runtime.NumCPU()
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	s.r = r
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("cannot open database %s: %s", path, describe(err))
	}
	return s, nil
}

// checkPath refuses, before SQLite touches anything, a path whose directory
// is missing or an existing file that is not a SQLite database, so that such
// a file is never modified.
func checkPath(path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cannot open database %s: directory %s does not exist", path, dir)
		}
		return fmt.Errorf("cannot open database %s: %v", path, errors.Unwrap(err))
	}
	if !st.IsDir() {
		return fmt.Errorf("cannot open database %s: %s is not a directory", path, dir)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot open database %s: %v", path, errors.Unwrap(err))
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return fmt.Errorf("cannot open database %s: it is a directory", path)
	}
	head := make([]byte, len(sqliteHeader))
	n, _ := f.Read(head)
	if n == 0 {
		return nil // an empty file becomes a new database
	}
	if n < len(head) || !bytes.Equal(head, sqliteHeader) {
		return fmt.Errorf("cannot open database %s: the file exists but is not a SQLite database", path)
	}
	return nil
}

// describe turns driver errors into a short sentence without internals.
func describe(err error) string {
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrCantOpen:
			return "the file cannot be created or opened (check the directory exists and is writable)"
		case sqlite3.ErrReadonly, sqlite3.ErrPerm, sqlite3.ErrAuth:
			return "the file or its directory is not writable"
		case sqlite3.ErrNotADB:
			return "the file exists but is not a SQLite database"
		case sqlite3.ErrCorrupt:
			return "the database file is corrupt"
		case sqlite3.ErrBusy, sqlite3.ErrLocked:
			return "the database is locked by another process"
		}
		return se.Code.Error()
	}
	return err.Error()
}

// migrate applies the embedded migrations that have not run yet, each in
// its own transaction together with the row that records it.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return err
	}
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, name := range names {
		version, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: file name must start with a number", name)
		}
		body, err := migrationFS.ReadFile("migrations/" + name)
		if err != nil {
			return err
		}
		if err := s.apply(ctx, version, name, string(body)); err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	return nil
}

func (s *Store) apply(ctx context.Context, version int, name, body string) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		version, name, time.Now().Unix()); err != nil {
		return err
	}
	return tx.Commit()
}

// SchemaVersion returns the highest applied migration version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func (s *Store) prepare(ctx context.Context) error {
	var err error
	s.stmtSessionWithUser, err = s.r.PrepareContext(ctx, `SELECT
		s.user_id, s.created_at, s.expires_at, s.last_used_at, s.ip, s.user_agent,
		u.username, u.email, u.created_at
		FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?`)
	return err
}

// Close closes both pools.
func (s *Store) Close() error {
	var errs []error
	if s.stmtSessionWithUser != nil {
		errs = append(errs, s.stmtSessionWithUser.Close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	return errors.Join(errs...)
}

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.r.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}

// IntegrityCheck runs PRAGMA integrity_check and returns its first line
// ("ok" for a sound database).
func (s *Store) IntegrityCheck(ctx context.Context) (string, error) {
	var res string
	err := s.w.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res)
	return res, err
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation.
func isUnique(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) &&
		(se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey)
}
