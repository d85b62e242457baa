package app

import (
	"context"
	"sync"
	"time"
)

// requestContext is the context of one request: it ends at a deadline. Its
// timer is made only when something first waits on it (a database query,
// a password hash), so that requests answered from memory (a cached
// session) pay nothing for it.
type requestContext struct {
	deadline time.Time

	once   sync.Once
	inner  context.Context
	cancel context.CancelFunc
}

var _ context.Context = (*requestContext)(nil)

func newRequestContext(timeout time.Duration) *requestContext {
	return &requestContext{deadline: time.Now().Add(timeout)}
}

func (r *requestContext) start() {
	r.once.Do(func() { r.inner, r.cancel = context.WithDeadline(context.Background(), r.deadline) })
}

// Deadline implements context.Context.
func (r *requestContext) Deadline() (time.Time, bool) { return r.deadline, true }

// Done implements context.Context.
func (r *requestContext) Done() <-chan struct{} {
	r.start()
	return r.inner.Done()
}

// Err implements context.Context.
func (r *requestContext) Err() error {
	r.start()
	return r.inner.Err()
}

// Value implements context.Context: a request context carries no values.
func (r *requestContext) Value(any) any { return nil }

// ended is the context of a request that is over.
var ended = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// stop ends the context at the end of the request, releasing its timer if
// one was made.
func (r *requestContext) stop() {
	r.once.Do(func() { r.inner = ended })
	if r.cancel != nil {
		r.cancel()
	}
}
