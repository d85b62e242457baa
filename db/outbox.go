package db

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"
)

// QueuedMail is a mail message in the outbox, as stored. The store never
// sees its content: Sealed is whatever the mail package made of it
// (encrypted); Kind and UserID are for logs and metrics.
type QueuedMail struct {
	ID     int64
	Kind   string
	UserID int64
	Sealed []byte
	// CreatedAt is when the message was queued.
	CreatedAt time.Time
	// Attempts is how many deliveries failed so far.
	Attempts int
	// NextAttemptAt is when the next delivery may start.
	NextAttemptAt time.Time
	// Claim is the claim under which the message was handed out by
	// ClaimMail; the zero Claim for a message nobody holds.
	Claim MailClaim
}

// MailClaim is one sender's hold on a queued message: the instance that
// took it and the end of its lease. Writes that finish a delivery name the
// claim and change nothing once it is lost (the lease ran out and another
// instance took the message).
type MailClaim struct {
	Owner string
	Until time.Time
}

// QueueMail adds m (Kind, UserID, Sealed, CreatedAt, NextAttemptAt) to the
// outbox and returns its id once the insert has committed.
func (s *Store) QueueMail(ctx context.Context, m QueuedMail) (int64, error) {
	var id int64
	insert := func(on execer) error {
		return s.queryRow(ctx, on, `INSERT INTO outbox (kind, user_id, sealed, created_at, attempts, next_attempt_at)
			VALUES (?, ?, ?, ?, 0, ?) RETURNING id`,
			m.Kind, m.UserID, m.Sealed, unixMilli(m.CreatedAt), unixMilli(m.NextAttemptAt)).Scan(&id)
	}
	if s.batch != nil {
		// SQLite: share the commit (and its disk flush) with concurrent
		// writes.
		err := s.tx(ctx, func(tx *sql.Tx) error { return insert(tx) })
		return id, err
	}
	return id, s.wrap(insert(s.w))
}

// ClaimMail takes up to limit messages that are due at now and that no one
// holds (never claimed, given back, or whose lease has run out), oldest
// first, for owner until now+lease, in one atomic statement, and returns
// them with their claim. Two instances claiming at once never get the same
// message: on PostgreSQL the rows are locked as they are chosen and rows
// another claim has locked are skipped; SQLite runs one writing statement
// at a time.
func (s *Store) ClaimMail(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]QueuedMail, error) {
	claim := MailClaim{Owner: owner, Until: fromUnixMilli(unixMilli(now.Add(lease)))}
	at := unixMilli(now)
	// Every instance asks every second: a read finds out first whether
	// anything is due, so that an idle outbox takes no write lock.
	var due int
	err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM (SELECT 1 FROM outbox WHERE next_attempt_at <= ? AND claimed_until <= ? LIMIT 1) AS d`,
		at, at).Scan(&due)
	if err != nil || due == 0 {
		return nil, s.wrap(err)
	}
	query := `UPDATE outbox SET claimed_by = ?, claimed_until = ?
		WHERE id IN (SELECT id FROM outbox WHERE next_attempt_at <= ? AND claimed_until <= ? ORDER BY id LIMIT ?)
		RETURNING id, kind, user_id, sealed, created_at, attempts, next_attempt_at`
	if s.engine == Postgres {
		query = `UPDATE outbox SET claimed_by = ?, claimed_until = ?
			WHERE id IN (SELECT id FROM outbox WHERE next_attempt_at <= ? AND claimed_until <= ? ORDER BY id LIMIT ?
				FOR UPDATE SKIP LOCKED)
			RETURNING id, kind, user_id, sealed, created_at, attempts, next_attempt_at`
	}
	rows, err := s.query(ctx, s.w, query, claim.Owner, unixMilli(claim.Until), at, at, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []QueuedMail
	for rows.Next() {
		m := QueuedMail{Claim: claim}
		var created, next int64
		if err := rows.Scan(&m.ID, &m.Kind, &m.UserID, &m.Sealed, &created, &m.Attempts, &next); err != nil {
			return nil, s.wrap(err)
		}
		m.CreatedAt, m.NextAttemptAt = fromUnixMilli(created), fromUnixMilli(next)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err)
	}
	slices.SortFunc(out, func(a, b QueuedMail) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// DoneMail deletes the message id, sent or given up, if c still holds it.
// It returns false, deleting nothing, when the claim was lost.
func (s *Store) DoneMail(ctx context.Context, id int64, c MailClaim) (bool, error) {
	return s.execHeld(ctx, `DELETE FROM outbox WHERE id = ? AND claimed_by = ? AND claimed_until = ?`,
		id, c.Owner, unixMilli(c.Until))
}

// RetryMail gives the message id back to the queue, if c still holds it,
// with attempts failed deliveries so far and the next one not before next.
// It returns false, changing nothing, when the claim was lost.
func (s *Store) RetryMail(ctx context.Context, id int64, c MailClaim, attempts int, next time.Time) (bool, error) {
	return s.execHeld(ctx, `UPDATE outbox SET attempts = ?, next_attempt_at = ?, claimed_by = '', claimed_until = 0
		WHERE id = ? AND claimed_by = ? AND claimed_until = ?`,
		attempts, unixMilli(next), id, c.Owner, unixMilli(c.Until))
}

// execHeld runs a write conditional on a claim and reports whether it
// touched the row. The outbox's claims and deliveries run in the
// background, in no answer's time: unlike exec, it leaves them out of
// Writes, which compares the work of answers.
func (s *Store) execHeld(ctx context.Context, query string, args ...any) (bool, error) {
	res, err := s.w.ExecContext(ctx, s.q(query), args...)
	err = oneRow(res, s.wrap(err))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// MailDepth returns how many messages the outbox holds (not yet sent or
// given up, by any instance) and the id of the newest, 0 when it is empty.
func (s *Store) MailDepth(ctx context.Context) (n int, newest int64, err error) {
	err = s.queryRow(ctx, s.r, `SELECT COUNT(*), COALESCE(MAX(id), 0) FROM outbox`).Scan(&n, &newest)
	return n, newest, s.wrap(err)
}

// MailLeft returns how many of the messages with ids up to id are still in
// the outbox.
func (s *Store) MailLeft(ctx context.Context, id int64) (int, error) {
	var n int
	err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM outbox WHERE id <= ?`, id).Scan(&n)
	return n, s.wrap(err)
}

// ListMail returns the messages in the outbox, oldest first, without
// claiming them (for tests and inspection): Claim is the current holder's,
// or the zero Claim.
func (s *Store) ListMail(ctx context.Context) ([]QueuedMail, error) {
	rows, err := s.query(ctx, s.r, `SELECT id, kind, user_id, sealed, created_at, attempts, next_attempt_at, claimed_by, claimed_until
		FROM outbox ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []QueuedMail
	for rows.Next() {
		var m QueuedMail
		var created, next, until int64
		if err := rows.Scan(&m.ID, &m.Kind, &m.UserID, &m.Sealed, &created, &m.Attempts, &next, &m.Claim.Owner, &until); err != nil {
			return nil, s.wrap(err)
		}
		m.CreatedAt, m.NextAttemptAt = fromUnixMilli(created), fromUnixMilli(next)
		if until != 0 {
			m.Claim.Until = fromUnixMilli(until)
		}
		out = append(out, m)
	}
	return out, s.wrap(rows.Err())
}
