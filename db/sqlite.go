package db

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"

	"github.com/mattn/go-sqlite3"
)

// sqliteHeader is the first 16 bytes of every SQLite 3 database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// sqliteDSN builds a connection string. Pragmas in the DSN apply to every
// connection the pool opens. synchronous=FULL makes every acknowledged
// commit durable across power loss, not only across a process crash.
func sqliteDSN(path string, readOnly bool) string {
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

func openSQLite(ctx context.Context, o Options) (*Store, error) {
	path := o.Path
	if path == "" {
		return nil, errors.New("database path is empty")
	}
	if err := checkPath(path); err != nil {
		return nil, err
	}
	fail := func(err error) error { return fmt.Errorf("cannot open database %s: %s", path, describeSQLite(err)) }
	w, err := sql.Open("sqlite3", sqliteDSN(path, false))
	if err != nil {
		return nil, fail(err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{engine: SQLite, w: w, fast: w, log: o.Log, name: path, cache: newSessionCache(nil)}
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fail(err)
	}
	if err := s.migrate(ctx, !o.SkipMigrations); err != nil {
		w.Close()
		return nil, fmt.Errorf("cannot open database %s: %w", path, err)
	}
	r, err := sql.Open("sqlite3", sqliteDSN(path, true))
	if err != nil {
		w.Close()
		return nil, fail(err)
	}
	n := 2 * runtime.NumCPU()
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	s.r = r
	s.batch = newBatcher(s)
	if err := s.startPoller(ctx); err != nil {
		s.Close()
		return nil, fail(err)
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
		// A new database holds password hashes and signing keys: only its
		// owner may read it. SQLite gives its WAL files the same mode.
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			return f.Close()
		}
		if errors.Is(err, fs.ErrExist) {
			return nil // created meanwhile by another process
		}
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("cannot open database %s: the file or its directory is not writable", path)
		}
		return fmt.Errorf("cannot open database %s: %v", path, errors.Unwrap(err))
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

// describeSQLite turns driver errors into a short sentence without
// internals.
func describeSQLite(err error) string {
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

func wrapSQLite(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch {
		case se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey:
			return fmt.Errorf("%w: %v", ErrConflict, err)
		case se.ExtendedCode == sqlite3.ErrConstraintForeignKey:
			return fmt.Errorf("%w: %v", ErrChanged, err)
		}
	}
	return err
}

// IntegrityCheck runs SQLite's PRAGMA integrity_check and returns its first
// line ("ok" for a sound database). On PostgreSQL it answers "ok" when the
// database answers.
func (s *Store) IntegrityCheck(ctx context.Context) (string, error) {
	if s.engine == Postgres {
		return "ok", s.Ping(ctx)
	}
	var res string
	err := s.w.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res)
	return res, err
}
