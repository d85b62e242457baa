package db

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"
)

// SQLite has one writer and syncs every commit to disk, so a commit costs
// a disk flush however small the transaction. The batcher lets concurrent
// write transactions share one: it runs each in a savepoint of one real
// transaction and commits them together, answering each only after that
// commit. A transaction whose function fails is rolled back to its
// savepoint alone; the others go on.
type batcher struct {
	s    *Store
	ch   chan *writeReq
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

type writeReq struct {
	ctx  context.Context
	fn   func(tx *sql.Tx) error
	done chan error
}

// maxBatch bounds how many transactions share a commit.
const maxBatch = 64

func newBatcher(s *Store) *batcher {
	b := &batcher{s: s, ch: make(chan *writeReq, maxBatch), stop: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b
}

// do runs fn in a batched transaction and returns once its work has been
// committed (nil) or rolled back (fn's error, or the commit's).
func (b *batcher) do(ctx context.Context, fn func(tx *sql.Tx) error) error {
	r := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case <-b.stop:
		return errStoreClosed
	default:
	}
	select {
	case b.ch <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.done:
		return errStoreClosed
	}
	select {
	case err := <-r.done:
		return err
	case <-b.done:
		// Closed with r queued but not run.
		select {
		case err := <-r.done:
			return err
		default:
			return errStoreClosed
		}
	}
}

var errStoreClosed = errors.New("db: store closed")

func (b *batcher) run() {
	defer close(b.done)
	for {
		var first *writeReq
		select {
		case first = <-b.ch:
		case <-b.stop:
			// Run what was queued before the stop, then end.
			select {
			case first = <-b.ch:
			default:
				return
			}
		}
		batch := []*writeReq{first}
	collect:
		for len(batch) < maxBatch {
			select {
			case r := <-b.ch:
				batch = append(batch, r)
			default:
				break collect
			}
		}
		b.commit(batch)
	}
}

// commit runs a batch in one transaction, each in its own savepoint.
func (b *batcher) commit(batch []*writeReq) {
	results := make([]error, len(batch))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := func() error {
		tx, err := b.s.w.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		for i, r := range batch {
			if err := r.ctx.Err(); err != nil {
				results[i] = err
				continue
			}
			if _, err := tx.ExecContext(ctx, `SAVEPOINT w`); err != nil {
				return err
			}
			if results[i] = r.fn(tx); results[i] != nil {
				if _, err := tx.ExecContext(ctx, `ROLLBACK TO w`); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `RELEASE w`); err != nil {
				return err
			}
		}
		return tx.Commit()
	}()
	for i, r := range batch {
		if err != nil && results[i] == nil {
			results[i] = err
		}
		r.done <- results[i]
	}
}

// close stops the batcher once the transactions queued have run.
func (b *batcher) close() {
	b.once.Do(func() { close(b.stop) })
	<-b.done
}
