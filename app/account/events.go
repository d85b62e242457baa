package account

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"fiberauth/db"
)

// recorder writes account events that must not hold up an answer (a failed
// sign-in: waiting for its write would make a wrong password for a real
// account slower than one for an unknown name). Events queue in memory and
// are written in batches; a full queue drops events with a warning rather
// than slowing sign-ins down. Close writes what is queued.
type recorder struct {
	store *db.Store
	log   *slog.Logger
	ch    chan db.Event
	flush chan chan struct{}
	done  chan struct{}
	// before runs before each batch is written.
	before func()

	mu     sync.RWMutex
	closed bool
}

const (
	recorderQueue = 4096
	recorderBatch = 128
)

func newRecorder(store *db.Store, log *slog.Logger, before func()) *recorder {
	r := &recorder{store: store, log: log, ch: make(chan db.Event, recorderQueue),
		flush: make(chan chan struct{}), done: make(chan struct{}), before: before}
	go r.run()
	return r
}

// record queues e without waiting.
func (r *recorder) record(e db.Event) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return
	}
	select {
	case r.ch <- e:
	default:
		r.log.Warn("activity record dropped: queue full", slog.String("kind", e.Kind))
	}
}

func (r *recorder) run() {
	defer close(r.done)
	batch := make([]db.Event, 0, recorderBatch)
	// drain writes first (when not nil) and what is queued now, in batches.
	drain := func(first *db.Event) {
		for {
			batch = batch[:0]
			if first != nil {
				batch, first = append(batch, *first), nil
			}
		more:
			for len(batch) < recorderBatch {
				select {
				case e, ok := <-r.ch:
					if !ok {
						break more
					}
					batch = append(batch, e)
				default:
					break more
				}
			}
			if len(batch) == 0 {
				return
			}
			r.write(batch)
		}
	}
	for {
		select {
		case e, ok := <-r.ch:
			if !ok {
				return
			}
			drain(&e)
		case reply := <-r.flush:
			drain(nil)
			close(reply)
		}
	}
}

// wait returns once every event queued before it was called is written.
func (r *recorder) wait() {
	reply := make(chan struct{})
	select {
	case r.flush <- reply:
		<-reply
	case <-r.done:
	}
}

// write stores a batch, retrying while the database is briefly away.
func (r *recorder) write(batch []db.Event) {
	r.before()
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = r.store.AddEvents(ctx, batch)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	r.log.Warn("activity records lost", slog.Int("events", len(batch)), slog.String("error", err.Error()))
}

// close writes the queued events and stops.
func (r *recorder) close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.ch)
	}
	r.mu.Unlock()
	<-r.done
}
