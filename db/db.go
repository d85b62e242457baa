// Package db owns the storage of the service: the schema and its migrations
// for SQLite and PostgreSQL, and every SQL statement. Nothing outside this
// package writes SQL, and nothing outside it knows which engine is in use:
// the Store's methods are the same on both.
package db

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sentinel errors returned by the store.
var (
	// ErrNotFound means the requested row does not exist.
	ErrNotFound = errors.New("db: not found")
	// ErrConflict means a uniqueness constraint refused the write.
	ErrConflict = errors.New("db: conflict")
	// ErrChanged means a conditional write found its row changed since it
	// was read (a password changed between its check and the write), or
	// gone.
	ErrChanged = errors.New("db: changed since read")
	// ErrUnavailable means the database cannot be reached right now; the
	// request may succeed later.
	ErrUnavailable = errors.New("db: unavailable")
)

// Engine names a database engine.
type Engine string

// The engines the store runs on.
const (
	SQLite   Engine = "sqlite"
	Postgres Engine = "postgres"
)

// Options say which database to open.
type Options struct {
	// Path is the SQLite file, used when URL is empty.
	Path string
	// URL is a PostgreSQL URL (postgres:// or postgresql://).
	URL string
	// MaxConns bounds the PostgreSQL pool (<= 0 means DefaultMaxConns).
	MaxConns int
	// Log receives notices about migrations and connections; nil discards
	// them.
	Log *slog.Logger
	// Migrate applies pending migrations (the default). A store opened
	// without them refuses a schema older than it knows.
	SkipMigrations bool
}

// Store is the storage of the service. On SQLite it keeps two pools on one
// file: a single-connection pool for writes (SQLite has one writer, so
// queueing in Go avoids "database is locked") and a pool of read-only
// connections. On PostgreSQL both are one bounded pool.
type Store struct {
	engine Engine
	w      *sql.DB
	r      *sql.DB
	// fast takes writes whose last moments a crash of the database may
	// lose without harm (throttle counts: losing them only forgives). On
	// PostgreSQL its connections commit without waiting for the WAL flush;
	// on SQLite it is the writer.
	fast *sql.DB
	log  *slog.Logger
	// name is how errors name the database: the SQLite path, or the
	// PostgreSQL host and database without credentials.
	name string

	cache *sessionCache
	// batch groups SQLite's write transactions into shared commits.
	batch *batcher
	// listener drops cached sessions when another instance ends them
	// (PostgreSQL only).
	listener *listener

	// poller reads the notices other processes write (SQLite only).
	poller *poller
	pollMu sync.Mutex

	// keysChanged runs when another instance announces new signing keys.
	keysChanged atomic.Pointer[func()]

	// writes counts statements that write, for tests that compare the
	// work of two answers.
	writes atomic.Int64

	// adminChange, when set, runs in a transaction that may take the
	// admin role from an account, after its change and before its commit
	// (tests).
	adminChange func()

	rebound  sync.Map // SQL with ? placeholders -> the engine's form
	prepared sync.Map // SQL -> *sql.Stmt on the read pool

	// Hooks let tests stop an operation at a point where it can race
	// with another process.
	Hooks Hooks
}

// Hooks are the store's race points for tests; nil hooks do nothing.
type Hooks struct {
	// BeforeBackupLands runs in Backup when the copy is complete and
	// about to take its place at path.
	BeforeBackupLands func(path string)
}

// Open opens the database named by o, applies pending migrations and
// returns the store. The errors it returns are written for a person: they
// name the database and the problem, never a password.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.URL != "" {
		return openPostgres(ctx, o)
	}
	return openSQLite(ctx, o)
}

// Engine returns the engine in use.
func (s *Store) Engine() Engine { return s.engine }

// Name describes the database without credentials, for logs.
func (s *Store) Name() string { return s.name }

// Close closes the pools.
func (s *Store) Close() error {
	var errs []error
	if s.listener != nil {
		s.listener.close()
	}
	if s.poller != nil {
		s.poller.close()
	}
	if s.batch != nil {
		s.batch.close()
	}
	s.prepared.Range(func(_, v any) bool {
		v.(*sql.Stmt).Close()
		return true
	})
	if s.r != nil && s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	if s.fast != nil && s.fast != s.w {
		errs = append(errs, s.fast.Close())
	}
	errs = append(errs, s.w.Close())
	return errors.Join(errs...)
}

// q returns query in the engine's placeholder style: SQL in this package is
// written with ? (or ?N for a numbered parameter), which PostgreSQL spells
// $N. No statement here has a question mark inside a string literal.
func (s *Store) q(query string) string {
	if s.engine != Postgres {
		return query
	}
	if v, ok := s.rebound.Load(query); ok {
		return v.(string)
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		if c != '?' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('$')
		if i+1 < len(query) && query[i+1] >= '0' && query[i+1] <= '9' {
			continue // ?N becomes $N
		}
		n++
		b.WriteString(strconv.Itoa(n))
	}
	out := b.String()
	s.rebound.Store(query, out)
	return out
}

// execer is what a statement runs on: a pool or a transaction.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) exec(ctx context.Context, on execer, query string, args ...any) (sql.Result, error) {
	s.count(query)
	res, err := on.ExecContext(ctx, s.q(query), args...)
	return res, s.wrap(err)
}

func (s *Store) queryRow(ctx context.Context, on execer, query string, args ...any) *sql.Row {
	s.count(query)
	if on == execer(s.r) {
		if st, err := s.stmt(ctx, query); err == nil {
			return st.QueryRowContext(ctx, args...)
		}
	}
	return on.QueryRowContext(ctx, s.q(query), args...)
}

// count notes a statement that writes.
func (s *Store) count(query string) {
	q := strings.TrimSpace(query)
	if len(q) >= 6 {
		switch strings.ToUpper(q[:6]) {
		case "INSERT", "UPDATE", "DELETE", "WITH S":
			s.writes.Add(1)
		}
	}
}

// Writes returns how many writing statements the store has run.
func (s *Store) Writes() int64 { return s.writes.Load() }

// readRow runs a hot read query as a statement prepared once on the read
// pool (SQLite otherwise compiles the SQL on every call).
func (s *Store) readRow(ctx context.Context, query string, args ...any) (*sql.Row, error) {
	st, err := s.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryRowContext(ctx, args...), nil
}

// stmt returns query prepared once on the read pool.
func (s *Store) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if v, ok := s.prepared.Load(query); ok {
		return v.(*sql.Stmt), nil
	}
	st, err := s.r.PrepareContext(ctx, s.q(query))
	if err != nil {
		return nil, s.wrap(err)
	}
	if v, loaded := s.prepared.LoadOrStore(query, st); loaded {
		st.Close()
		st = v.(*sql.Stmt)
	}
	return st, nil
}

// query runs a query; on the read pool, as a statement prepared once (the
// queries are the package's own, a bounded set).
func (s *Store) query(ctx context.Context, on execer, query string, args ...any) (*sql.Rows, error) {
	if on == execer(s.r) {
		st, err := s.stmt(ctx, query)
		if err != nil {
			return nil, err
		}
		rows, err := st.QueryContext(ctx, args...)
		return rows, s.wrap(err)
	}
	rows, err := on.QueryContext(ctx, s.q(query), args...)
	return rows, s.wrap(err)
}

// tx runs fn in a write transaction and commits it when fn returns nil.
// On SQLite concurrent transactions share a commit (batch.go).
func (s *Store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.batch != nil {
		return s.wrap(s.batch.do(ctx, func(tx *sql.Tx) error { return s.wrap(fn(tx)) }))
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return s.wrap(err)
	}
	return s.wrap(tx.Commit())
}

// wrap turns driver errors into the package's sentinels where one fits: a
// uniqueness violation into ErrConflict, a lost or refused connection into
// ErrUnavailable. Others pass unchanged.
func (s *Store) wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict), errors.Is(err, ErrChanged),
		errors.Is(err, ErrUnavailable), errors.Is(err, sql.ErrNoRows):
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	if s.engine == Postgres {
		return wrapPostgres(err)
	}
	return wrapSQLite(err)
}

// oneRow turns an Exec result that touched no row into ErrNotFound.
func oneRow(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// Ping checks that the database answers a query that reads a table.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM settings`).Scan(&n)
	return s.wrap(err)
}

// unix and fromUnix convert times to the stored form, whole seconds.
func unix(t time.Time) int64 { return t.Unix() }

func fromUnix(v int64) time.Time { return time.Unix(v, 0) }

// unixMilli and fromUnixMilli are for the throttle's finer times.
func unixMilli(t time.Time) int64 { return t.UnixMilli() }

func fromUnixMilli(v int64) time.Time { return time.UnixMilli(v) }

// Pools returns the connection pools by name, for metrics: "write" and
// "read", and on PostgreSQL "fast" (throttle counts).
func (s *Store) Pools() map[string]*sql.DB {
	pools := map[string]*sql.DB{"write": s.w}
	if s.r != nil && s.r != s.w {
		pools["read"] = s.r
	}
	if s.fast != nil && s.fast != s.w {
		pools["fast"] = s.fast
	}
	return pools
}
