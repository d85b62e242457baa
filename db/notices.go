package db

import (
	"context"
	"database/sql"
	"time"
)

// Processes that share a SQLite file (a server and the command line, or
// several servers) cannot use LISTEN/NOTIFY: a change that must reach
// their session caches is written to the notices table in the same
// transaction, and each process reads the new rows every noticeInterval
// and applies them as PostgreSQL's listener does. A change made by another
// process is thus seen within noticeInterval, and not only after cacheTTL.

// noticeInterval is how often a SQLite store reads new notices.
const noticeInterval = 200 * time.Millisecond

// noticeKeep is how long notices are kept before housekeeping removes them;
// far longer than any process waits between two reads.
const noticeKeep = time.Minute

// poller reads the notices of a SQLite store.
type poller struct {
	s      *Store
	last   int64
	cancel context.CancelFunc
	done   chan struct{}
}

// startPoller begins reading notices newer than those in the table now.
func (s *Store) startPoller(ctx context.Context) error {
	p := &poller{s: s, done: make(chan struct{})}
	if err := s.queryRow(ctx, s.r, `SELECT COALESCE(MAX(id), 0) FROM notices`).Scan(&p.last); err != nil {
		return err
	}
	ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.poller = p
	go p.run(ctx)
	return nil
}

func (p *poller) run(ctx context.Context) {
	defer close(p.done)
	t := time.NewTicker(noticeInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := p.s.PollNotices(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			// Notices may be missed: trust nothing cached until reads
			// succeed again.
			p.s.cache.enabled.Store(false)
			p.s.cache.clear()
			if !failing {
				p.s.log.Warn("reading cache notices failed; caching paused", "error", err.Error())
			}
			failing = true
		case err == nil && failing:
			p.s.cache.clear()
			p.s.cache.enabled.Store(true)
			failing = false
		}
	}
}

func (p *poller) close() {
	p.cancel()
	<-p.done
}

// PollNotices applies the notices other processes wrote since the last
// read (SQLite; nothing to do on PostgreSQL). The store calls it every
// noticeInterval; tests call it to see a change at once.
func (s *Store) PollNotices(ctx context.Context) error {
	p := s.poller
	if p == nil {
		return nil
	}
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	rows, err := s.query(ctx, s.r, `SELECT id, payload FROM notices WHERE id > ? ORDER BY id`, p.last)
	if err != nil {
		return err
	}
	defer rows.Close()
	var keys bool
	for rows.Next() {
		var id int64
		var payload string
		if err := rows.Scan(&id, &payload); err != nil {
			return err
		}
		p.last = id
		if payload == "keys" {
			keys = true
			continue
		}
		s.cache.apply(payload)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if fn := s.keysChanged.Load(); keys && fn != nil {
		(*fn)()
	}
	return nil
}

// addNotice records a notice for the other processes on a SQLite file.
func (s *Store) addNotice(ctx context.Context, tx *sql.Tx, payload string) error {
	_, err := s.exec(ctx, tx, `INSERT INTO notices (payload, created_at) VALUES (?, ?)`, payload, unixMilli(time.Now()))
	return err
}
