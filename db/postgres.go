package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// sessionsChannel is the PostgreSQL notification channel on which an
// instance that ends sessions tells the others to drop them from their
// caches. Payloads: "s:<session id>", "u:<user id>", or "*" for everything.
const sessionsChannel = "fiberauth_sessions"

// DefaultMaxConns bounds the PostgreSQL pool when Options.MaxConns is not
// set: enough for 32 concurrent requests on two cores without queueing for
// a connection; a quarter as many more serve the throttle counts.
const DefaultMaxConns = 16

// IsPostgresURL reports whether u names a PostgreSQL database in URL form.
func IsPostgresURL(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

// RedactURL returns u with any password replaced by "xxxxx", for messages.
func RedactURL(u string) string {
	cfg, err := pgconn.ParseConfig(u)
	if err != nil {
		if i := strings.Index(u, "@"); i >= 0 {
			if j := strings.Index(u, "://"); j >= 0 && j < i {
				return u[:j+3] + "xxxxx" + u[i:]
			}
		}
		return "the PostgreSQL URL"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

func openPostgres(ctx context.Context, o Options) (*Store, error) {
	if !IsPostgresURL(o.URL) {
		return nil, errors.New("DATABASE_URL must start with postgres:// or postgresql://")
	}
	cfg, err := pgx.ParseConfig(o.URL)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, errors.New("DATABASE_URL is not a valid PostgreSQL URL")
	}
	name := fmt.Sprintf("postgres://%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
	fail := func(what string, err error) error {
		return fmt.Errorf("cannot %s database %s: %s", what, name, describePostgres(err))
	}
	maxConns := o.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	pool := stdlib.OpenDB(*cfg)
	pool.SetMaxOpenConns(maxConns)
	pool.SetMaxIdleConns(maxConns)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	fastCfg := cfg.Copy()
	fastCfg.RuntimeParams["synchronous_commit"] = "off"
	fast := stdlib.OpenDB(*fastCfg)
	fastConns := max(maxConns/4, 2)
	fast.SetMaxOpenConns(fastConns)
	fast.SetMaxIdleConns(fastConns)
	fast.SetConnMaxIdleTime(5 * time.Minute)
	s := &Store{engine: Postgres, w: pool, r: pool, fast: fast, log: o.Log, name: name, cache: newSessionCache(nil)}
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		fast.Close()
		return nil, fail("reach", err)
	}
	if err := s.migrate(ctx, !o.SkipMigrations); err != nil {
		pool.Close()
		fast.Close()
		return nil, fmt.Errorf("cannot open database %s: %w", name, err)
	}
	// Until the listener is connected, nothing is cached: an instance that
	// cannot hear of revocations must ask the database every time.
	s.cache.enabled.Store(false)
	s.listener = newListener(cfg, s)
	return s, nil
}

// describePostgres names a connection problem without the URL.
func describePostgres(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "28P01", "28000":
			return "the user name or password was refused"
		case "3D000":
			return "the database does not exist"
		case "42501":
			return "permission denied"
		}
		return pe.Message + " (SQLSTATE " + pe.Code + ")"
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		var ne *net.OpError
		if errors.As(err, &ne) {
			return "the server cannot be reached (" + ne.Err.Error() + ")"
		}
		return "the server cannot be reached"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "the server did not answer in time"
	}
	return "the connection failed"
}

func wrapPostgres(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505":
			return fmt.Errorf("%w: %v", ErrConflict, err)
		case pe.Code == "23503":
			return fmt.Errorf("%w: %v", ErrChanged, err)
		case strings.HasPrefix(pe.Code, "08"), pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03":
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return err
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), errors.Is(err, driver.ErrBadConn),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), pgconn.SafeToRetry(err), pgconn.Timeout(err):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "connection reset") {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

// notify tells every instance, on commit of tx, to drop the named cache
// entries: by NOTIFY on PostgreSQL, in the notices table on SQLite.
func (s *Store) notify(ctx context.Context, tx *sql.Tx, payload string) error {
	if s.engine != Postgres {
		return s.addNotice(ctx, tx, payload)
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, sessionsChannel, payload)
	return err
}

// listener holds one connection outside the pool, listening for session
// notifications, and reconnects when it drops. While it is disconnected the
// session cache is off, and it is cleared on every reconnection, since
// notices sent meanwhile were missed.
type listener struct {
	cfg    *pgx.ConnConfig
	store  *Store
	cancel context.CancelFunc
	done   chan struct{}

	connected atomic.Bool
	// ready is closed once the first LISTEN succeeded.
	ready     chan struct{}
	readyOnce sync.Once
}

func newListener(cfg *pgx.ConnConfig, s *Store) *listener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &listener{cfg: cfg, store: s, cancel: cancel, done: make(chan struct{}), ready: make(chan struct{})}
	go l.run(ctx)
	return l
}

func (l *listener) run(ctx context.Context) {
	defer close(l.done)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := l.listen(ctx)
		l.connected.Store(false)
		l.store.cache.enabled.Store(false)
		l.store.cache.clear()
		if ctx.Err() != nil {
			return
		}
		l.store.log.Warn("session notifications interrupted; caching paused until reconnected",
			"error", describePostgres(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// listen connects, listens and handles notices until the connection fails.
func (l *listener) listen(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := pgx.ConnectConfig(cctx, l.cfg)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+sessionsChannel); err != nil {
		return err
	}
	// Anything cached before this point may have missed a notice.
	l.store.cache.clear()
	l.store.cache.enabled.Store(true)
	l.connected.Store(true)
	l.readyOnce.Do(func() { close(l.ready) })
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Payload == "keys" {
			if fn := l.store.keysChanged.Load(); fn != nil {
				(*fn)()
			}
			continue
		}
		l.store.cache.apply(n.Payload)
	}
}

func (l *listener) close() {
	l.cancel()
	<-l.done
}

// WaitListening waits until the session-notification listener is connected
// (PostgreSQL), so that a fresh instance caches from its first request. It
// returns at once on SQLite.
func (s *Store) WaitListening(ctx context.Context) error {
	if s.listener == nil {
		return nil
	}
	select {
	case <-s.listener.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
