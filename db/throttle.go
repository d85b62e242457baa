package db

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"time"

	"fiberauth/app/throttle"
)

// Throttle counts kept in the database, so that every instance shares them
// and a restart forgives nothing. The rule is the one package throttle
// documents, written out in SQL: taking an attempt is one atomic upsert,
// and ending attempts one update, whatever the concurrency.

// takeSQL counts an attempt unless the key is blocked. Parameters: ?1 key,
// ?2 now, ?3 the cut-off at or before which counts lapse (now - window), ?4
// limit, ?5 base delay, ?6 window; times and durations in milliseconds.
// {n} and {p} are the counts as they stand at now (0 once lapsed). Every
// parameter is cast so that PostgreSQL knows its type.
var takeSQL = expand(`INSERT INTO throttle (key, n, pending, last_at, until_at, expires_at, limit_n, base_ms, window_ms)
	VALUES (?1, 1, 1, {now}, 0, {now} + {window}, {limit}, {base}, {window})
	ON CONFLICT (key) DO UPDATE SET
		n = {n} + 1,
		pending = {p} + 1,
		last_at = excluded.last_at,
		expires_at = excluded.expires_at,
		limit_n = excluded.limit_n,
		base_ms = excluded.base_ms,
		window_ms = excluded.window_ms
	WHERE throttle.until_at <= {now} AND ({n} < {limit} OR {p} = 0)
	RETURNING n`)

// failSet ends attempts as failures: ?1 is now. A key at or past its limit
// is blocked for its delay from now (base doubling per failure past the
// limit, at most the window), unless it already is for longer.
var failSet = expand(`pending = CASE WHEN pending > 0 THEN pending - 1 ELSE 0 END,
	until_at = CASE WHEN n < limit_n THEN until_at
		WHEN until_at > CAST(?1 AS BIGINT) + {delay} THEN until_at
		ELSE CAST(?1 AS BIGINT) + {delay} END`)

// releaseSet ends attempts that did not fail.
const releaseSet = `n = CASE WHEN n > 0 THEN n - 1 ELSE 0 END, pending = CASE WHEN pending > 0 THEN pending - 1 ELSE 0 END`

// expand spells out the named pieces of the statements above, outermost
// first.
func expand(q string) string {
	for _, r := range [][2]string{
		{"{delay}", "(CASE WHEN n - limit_n >= 30 THEN window_ms WHEN base_ms * {shift} < window_ms THEN base_ms * {shift} ELSE window_ms END)"},
		{"{shift}", "(CAST(1 AS BIGINT) << CAST(n - limit_n AS INTEGER))"},
		{"{n}", "(CASE WHEN throttle.last_at <= {cutoff} THEN 0 ELSE throttle.n END)"},
		{"{p}", "(CASE WHEN throttle.last_at <= {cutoff} THEN 0 ELSE throttle.pending END)"},
		{"{now}", "CAST(?2 AS BIGINT)"}, {"{cutoff}", "CAST(?3 AS BIGINT)"}, {"{limit}", "CAST(?4 AS BIGINT)"},
		{"{base}", "CAST(?5 AS BIGINT)"}, {"{window}", "CAST(?6 AS BIGINT)"},
	} {
		q = strings.ReplaceAll(q, r[0], r[1])
	}
	return q
}

// Throttle returns the store's counts as a throttle.Store.
func (s *Store) Throttle() throttle.Store { return sqlThrottle{s} }

// sqlThrottle implements throttle.Store on the database.
type sqlThrottle struct{ s *Store }

var _ throttle.Store = sqlThrottle{}

func (t sqlThrottle) Wait(ctx context.Context, key string, now time.Time) (time.Duration, error) {
	var until int64
	row, err := t.s.readRow(ctx, `SELECT until_at FROM throttle WHERE key = ?`, key)
	if err != nil {
		return 0, err
	}
	err = row.Scan(&until)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, t.s.wrap(err)
	}
	return max(fromUnixMilli(until).Sub(now), 0), nil
}

func (t sqlThrottle) Failures(ctx context.Context, key string, now time.Time, window time.Duration) (int, error) {
	var n, pending, last int64
	err := t.s.queryRow(ctx, t.s.fast, `SELECT n, pending, last_at FROM throttle WHERE key = ?`, key).Scan(&n, &pending, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, t.s.wrap(err)
	}
	if last <= unixMilli(now)-window.Milliseconds() {
		return 0, nil
	}
	return int(max(n-pending, 0)), nil
}

func (t sqlThrottle) Take(ctx context.Context, key string, r throttle.Rule, now time.Time) (time.Duration, error) {
	s := t.s
	ms := unixMilli(now)
	var n int64
	err := s.queryRow(ctx, s.fast, takeSQL, key, ms, ms-r.Window.Milliseconds(), int64(r.Limit),
		r.Base.Milliseconds(), r.Window.Milliseconds()).Scan(&n)
	if err == nil {
		return 0, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, s.wrap(err)
	}
	var until int64
	err = s.queryRow(ctx, s.fast, `SELECT until_at FROM throttle WHERE key = ?`, key).Scan(&until)
	if errors.Is(err, sql.ErrNoRows) {
		return throttle.InFlightWait, nil // forgotten meanwhile: try again
	}
	if err != nil {
		return 0, s.wrap(err)
	}
	if w := fromUnixMilli(until).Sub(now); w > 0 {
		return w, nil
	}
	return throttle.InFlightWait, nil
}

func (t sqlThrottle) Fail(ctx context.Context, now time.Time, keys ...string) error {
	return t.update(ctx, failSet, []any{unixMilli(now)}, keys)
}

func (t sqlThrottle) Release(ctx context.Context, keys ...string) error {
	return t.update(ctx, releaseSet, nil, keys)
}

// update applies set to keys, once per occurrence of a key: in one
// statement when they are distinct (the usual case), else one per key.
func (t sqlThrottle) update(ctx context.Context, set string, args []any, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	seen := map[string]bool{}
	var again []string
	var distinct []string
	for _, k := range keys {
		if seen[k] {
			again = append(again, k)
			continue
		}
		seen[k] = true
		distinct = append(distinct, k)
	}
	var b strings.Builder
	b.WriteString("UPDATE throttle SET " + set + " WHERE key IN (")
	all := append([]any(nil), args...)
	for i, k := range distinct {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("?" + strconv.Itoa(len(all)+1))
		all = append(all, k)
	}
	b.WriteString(")")
	if _, err := t.s.exec(ctx, t.s.fast, b.String(), all...); err != nil {
		return err
	}
	if len(again) > 0 {
		return t.update(ctx, set, args, again)
	}
	return nil
}

func (t sqlThrottle) Forget(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		if _, err := t.s.exec(ctx, t.s.fast, `DELETE FROM throttle WHERE key = ?`, k); err != nil {
			return err
		}
	}
	return nil
}

func (t sqlThrottle) ForgetPrefix(ctx context.Context, prefix string) error {
	_, err := t.s.exec(ctx, t.s.fast, `DELETE FROM throttle WHERE substr(key, 1, ?) = ?`, int64(len(prefix)), prefix)
	return err
}

func (t sqlThrottle) Sweep(ctx context.Context, now time.Time) error {
	_, err := t.s.exec(ctx, t.s.fast, `DELETE FROM throttle WHERE expires_at <= ?1 AND until_at <= ?1`, unixMilli(now))
	return err
}

// ThrottleKeys returns how many throttle counts are kept.
func (s *Store) ThrottleKeys(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM throttle`).Scan(&n)
	return n, s.wrap(err)
}
