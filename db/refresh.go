package db

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"time"
)

// RefreshOutcome says what presenting a refresh token did.
type RefreshOutcome int

// Outcomes of RefreshSession.
const (
	// RefreshUnknown: no such token (never issued, or its session ended).
	RefreshUnknown RefreshOutcome = iota
	// RefreshRotated: the token was unspent; it is spent now and its
	// successor issued.
	RefreshRotated
	// RefreshGrace: the token was spent moments ago and none of its
	// successors has been used: a client that lost the answer, or raced
	// itself. Another successor was issued in place of the unused one,
	// which is void (presenting it is reuse): a session has one live
	// refresh token at most.
	RefreshGrace
	// RefreshReused: a spent token came back: the session has been ended.
	RefreshReused
)

// Refresh asks RefreshSession to exchange a refresh token.
type Refresh struct {
	// Hash is the SHA-256 of the token presented; NewHash that of its
	// successor.
	Hash, NewHash []byte
	Now           time.Time
	// Grace is how long after its use a token may be presented again.
	Grace time.Duration
	// TouchAfter is how old the session's last use must be to be written
	// again (as authentication does, at most once a minute).
	TouchAfter time.Duration
	// Check, when set, vets the session before anything is written; its
	// error aborts the exchange, which then changes nothing.
	Check func(Session, User) error
	// Reused is what reuse ends (the session, at least); Event is
	// recorded with it.
	Reused Void
	Event  Event
}

// RefreshSession exchanges a refresh token for its successor. Spending it
// is a conditional write, so of two requests with one token exactly one
// spends it and the other finds it spent. It returns what happened and,
// unless the token was unknown, the session and its account.
//
// The usual case (an unspent token) is one statement on PostgreSQL and one
// short transaction on SQLite; a spent token takes a transaction that
// decides between grace and reuse.
func (s *Store) RefreshSession(ctx context.Context, r Refresh) (RefreshOutcome, Session, User, error) {
	se, u, spent, err := s.SessionByRefresh(ctx, r.Hash)
	if errors.Is(err, ErrNotFound) {
		return RefreshUnknown, Session{}, User{}, nil
	}
	if err != nil {
		return RefreshUnknown, Session{}, User{}, err
	}
	if r.Check != nil {
		if err := r.Check(se, u); err != nil {
			return RefreshUnknown, se, u, err
		}
	}
	if !spent {
		rotated, err := s.rotate(ctx, r, se)
		if err != nil {
			return RefreshUnknown, se, u, err
		}
		if rotated {
			return RefreshRotated, se, u, nil
		}
		// Spent by a concurrent request since it was read.
	}
	out, err := s.respend(ctx, r, se)
	return out, se, u, err
}

// rotateSQL spends an unspent token and inserts its successor, on
// PostgreSQL in one statement: ?1 now (ms), ?2 hash, ?3 new hash, ?4 now
// (s), ?5 the last use older than which the session's is written.
const rotateSQL = `WITH spent AS (
		UPDATE refresh_tokens SET spent_at = ?1 WHERE hash = ?2 AND spent_at IS NULL RETURNING session_id
	), touched AS (
		UPDATE sessions SET last_used_at = ?4 WHERE id = (SELECT session_id FROM spent) AND last_used_at < ?5
	)
	INSERT INTO refresh_tokens (hash, session_id, parent, issued_at)
	SELECT CAST(?3 AS BYTEA), session_id, ?2, ?1 FROM spent RETURNING session_id`

// rotate spends the token if it is still unspent; rotated is false when it
// was not.
func (s *Store) rotate(ctx context.Context, r Refresh, se Session) (rotated bool, err error) {
	now := unixMilli(r.Now)
	touchBefore := unix(r.Now.Add(-r.TouchAfter))
	touch := se.LastUsedAt.Unix() < touchBefore
	if touch {
		// The cached copy's last use is about to be stale.
		defer s.cache.invalidate(se.ID)
	}
	if s.engine == Postgres {
		var sid string
		err := s.queryRow(ctx, s.w, rotateSQL, now, r.Hash, r.NewHash, unix(r.Now), touchBefore).Scan(&sid)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return err == nil, s.wrap(err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, `UPDATE refresh_tokens SET spent_at = ? WHERE hash = ? AND spent_at IS NULL`, now, r.Hash)
		if err := oneRow(res, err); err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		rotated = true
		if _, err := s.exec(ctx, tx, `INSERT INTO refresh_tokens (hash, session_id, parent, issued_at) VALUES (?, ?, ?, ?)`,
			r.NewHash, se.ID, r.Hash, now); err != nil {
			return err
		}
		if !touch {
			return nil
		}
		_, err = s.exec(ctx, tx, `UPDATE sessions SET last_used_at = ? WHERE id = ? AND last_used_at < ?`,
			unix(r.Now), se.ID, touchBefore)
		return err
	})
	if err != nil {
		return false, err
	}
	return rotated, nil
}

// respend handles a spent token in one transaction: the immediately
// previous token within the grace gets another successor, and its unused
// successors are void; any other spent token, or a voided one, is reuse
// and ends the session.
func (s *Store) respend(ctx context.Context, r Refresh, se Session) (RefreshOutcome, error) {
	out := RefreshUnknown
	now := unixMilli(r.Now)
	defer s.cache.invalidate(se.ID)
	defer r.Reused.done(s, se.UserID)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var spent sql.NullInt64
		var voided bool
		err := s.queryRow(ctx, tx, `SELECT spent_at, voided FROM refresh_tokens WHERE hash = ?`, r.Hash).Scan(&spent, &voided)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // its session ended meanwhile
		}
		if err != nil {
			return err
		}
		var usedChildren int
		if err := s.queryRow(ctx, tx, `SELECT COUNT(*) FROM refresh_tokens WHERE parent = ? AND spent_at IS NOT NULL AND voided = ?`,
			r.Hash, false).Scan(&usedChildren); err != nil {
			return err
		}
		if !voided && usedChildren == 0 && spent.Valid && now-spent.Int64 <= r.Grace.Milliseconds() {
			out = RefreshGrace
			if _, err := s.exec(ctx, tx, `UPDATE refresh_tokens SET spent_at = ?, voided = ? WHERE parent = ? AND spent_at IS NULL`,
				now, true, r.Hash); err != nil {
				return err
			}
			_, err := s.exec(ctx, tx, `INSERT INTO refresh_tokens (hash, session_id, parent, issued_at) VALUES (?, ?, ?, ?)`,
				r.NewHash, se.ID, r.Hash, now)
			return err
		}
		out = RefreshReused
		v := r.Reused
		v.Session = se.ID
		if _, err := v.apply(ctx, s, tx, se.UserID); err != nil {
			return err
		}
		if r.Event.Kind != "" {
			r.Event.UserID = se.UserID
			if err := s.insertEvent(ctx, tx, r.Event); err != nil {
				return err
			}
		}
		return s.notify(ctx, tx, "s:"+se.ID)
	})
	if err != nil {
		return RefreshUnknown, err
	}
	return out, nil
}

// refreshLookup is a context's note of one SessionByRefresh answer
// (WithRefreshLookup).
type refreshLookup struct {
	hash  []byte
	se    Session
	u     User
	spent bool
	held  bool
}

type refreshLookupKey struct{}

// WithRefreshLookup returns a context in which the answer of a
// SessionByRefresh is kept for the next call with the same token, once: a
// refresh grant that first asks whose token it is (an application's or
// the service's own) then reads it once, not twice. The refresh's
// conditional update still decides whether the token was spent meanwhile.
func WithRefreshLookup(ctx context.Context) context.Context {
	return context.WithValue(ctx, refreshLookupKey{}, &refreshLookup{})
}

// SessionByRefresh returns the session a refresh token belongs to, with
// its account, and whether the token has been spent; ErrNotFound when
// there is none. One query (none for the second call in a context of
// WithRefreshLookup).
func (s *Store) SessionByRefresh(ctx context.Context, hash []byte) (Session, User, bool, error) {
	memo, _ := ctx.Value(refreshLookupKey{}).(*refreshLookup)
	if memo != nil && memo.held && bytes.Equal(memo.hash, hash) {
		memo.held = false
		return memo.se, memo.u, memo.spent, nil
	}
	se, u, spent, err := s.sessionByRefresh(ctx, hash)
	if memo != nil && err == nil {
		*memo = refreshLookup{hash: hash, se: se, u: u, spent: spent, held: true}
	}
	return se, u, spent, err
}

func (s *Store) sessionByRefresh(ctx context.Context, hash []byte) (Session, User, bool, error) {
	var se Session
	var u User
	var spent sql.NullInt64
	var created, expires, used, ucreated, authTime int64
	row, err := s.readRow(ctx, `SELECT rt.spent_at, s.id,
		s.user_id, s.created_at, s.expires_at, s.last_used_at, s.ip, s.user_agent, s.scope, s.amr,
		COALESCE(s.client_id, ''), COALESCE(s.parent_id, ''), s.offline, s.auth_time,
		u.username, u.email, u.created_at, u.role, u.email_verified, u.mfa_enabled, u.subject
		FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id JOIN users u ON u.id = s.user_id
		WHERE rt.hash = ?`, hash)
	if err != nil {
		return Session{}, User{}, false, err
	}
	err = row.Scan(&spent, &se.ID, &se.UserID, &created, &expires, &used, &se.IP, &se.UserAgent, &se.Scope, &se.AMR,
		&se.ClientID, &se.ParentID, &se.Offline, &authTime,
		&u.Username, &u.Email, &ucreated, &u.Role, &u.EmailVerified, &u.MFAEnabled, &u.Subject)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, User{}, false, ErrNotFound
	}
	if err != nil {
		return Session{}, User{}, false, s.wrap(err)
	}
	u.ID = se.UserID
	se.CreatedAt, se.ExpiresAt, se.LastUsedAt, u.CreatedAt = fromUnix(created), fromUnix(expires), fromUnix(used), fromUnix(ucreated)
	if authTime != 0 {
		se.AuthTime = fromUnix(authTime)
	}
	return se, u, spent.Valid, nil
}
