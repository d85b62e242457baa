// Package throttle counts attempts per key (an account, a client address, a
// pair of both) and says when a key must wait. The counting rule is the same
// wherever the counts are kept: in this process (Memory) or in the database
// shared by every instance (the store's implementation of Store).
package throttle

import (
	"context"
	"math"
	"time"
)

// Rule says how failed attempts on a key are limited. An attempt is counted
// when it is taken, before its outcome is known, so that concurrent
// attempts cannot pass the limit together: while Limit attempts (failed, or
// still in flight) are counted, a further one waits for those in flight to
// end. A failure that brings the count to Limit or beyond blocks the key
// for a delay that starts at Base and doubles with each further failure, up
// to Window; past the delay one attempt at a time may try again. An
// attempt that did not fail is handed back with Release. Counts are
// forgotten Window after a key's last attempt.
type Rule struct {
	Limit  int
	Window time.Duration
	Base   time.Duration
}

// Delay is how long the n-th counted failure blocks its key: 0 below Limit,
// then Base doubling with each further failure, at most Window.
func (r Rule) Delay(n int) time.Duration {
	if n < r.Limit {
		return 0
	}
	k := n - r.Limit
	if k >= 30 {
		return r.Window
	}
	return min(r.Window, r.Base<<k)
}

// InFlightWait is what a key answers while it is at its limit only
// because attempts are still in flight.
const InFlightWait = time.Second

// Store keeps the counts. Implementations must make Take atomic: two
// attempts taken at once on one key see different counts.
type Store interface {
	// Wait returns how long key is blocked for at now (0 when it is not),
	// counting nothing: for attempts that count only when they fail.
	Wait(ctx context.Context, key string, now time.Time) (time.Duration, error)
	// Take counts one attempt on key at now, unless the key is blocked:
	// then nothing is counted and the wait until it is free is returned.
	// The key keeps r for what follows.
	Take(ctx context.Context, key string, r Rule, now time.Time) (wait time.Duration, err error)
	// Fail ends one attempt of each key as a failure at now: it stays
	// counted, and a key at or past its limit is blocked for its delay.
	Fail(ctx context.Context, now time.Time, keys ...string) error
	// Release ends one attempt of each key that did not fail: it is no
	// longer counted.
	Release(ctx context.Context, keys ...string) error
	// Forget drops every count of the keys (a success forgives them).
	Forget(ctx context.Context, keys ...string) error
	// ForgetPrefix drops every key that starts with prefix.
	ForgetPrefix(ctx context.Context, prefix string) error
	// Failures returns how many failures key has counted within window
	// before now (attempts still in flight left out).
	Failures(ctx context.Context, key string, now time.Time, window time.Duration) (int, error)
	// Sweep drops keys whose counts have lapsed.
	Sweep(ctx context.Context, now time.Time) error
}

// RetryAfterSeconds rounds a wait up to whole seconds for a Retry-After
// header, at least 1.
func RetryAfterSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}
