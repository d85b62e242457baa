// Package throttle counts failures and attempts per key (an account, a
// client address) in memory and says when a key must wait. State is lost on
// restart, which forgives every counted failure.
package throttle

import (
	"math"
	"sync"
	"time"
)

// Counter counts events per key. A key's count is forgotten once window has
// passed since its last event. Past threshold events, the key must wait a
// delay that starts at base and doubles with each further event, up to
// window; the wait runs from the last event.
type Counter struct {
	window    time.Duration
	threshold int
	base      time.Duration
	now       func() time.Time
	maxKeys   int

	mu   sync.Mutex
	keys map[string]*slot
}

type slot struct {
	n        int
	inflight int
	last     time.Time
}

// NewCounter returns a Counter. now may be nil for time.Now.
func NewCounter(threshold int, window, base time.Duration, now func() time.Time) *Counter {
	if now == nil {
		now = time.Now
	}
	if base <= 0 || base > window {
		base = window
	}
	return &Counter{window: window, threshold: threshold, base: base, now: now,
		maxKeys: 1 << 16, keys: make(map[string]*slot)}
}

// Wait returns how long key must wait before its next attempt, 0 if none.
func (c *Counter) Wait(key string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.keys[key]
	if s == nil {
		return 0
	}
	return c.wait(s, c.now())
}

func (c *Counter) wait(s *slot, now time.Time) time.Duration {
	if now.Sub(s.last) >= c.window {
		return 0
	}
	if s.n < c.threshold {
		return 0
	}
	over := s.n - c.threshold
	d := c.window
	if over < 30 {
		d = time.Duration(math.Min(float64(c.base)*math.Pow(2, float64(over)), float64(c.window)))
	}
	if left := s.last.Add(d).Sub(now); left > 0 {
		return left
	}
	return 0
}

// Add counts one event for key and returns the wait it now imposes.
func (c *Counter) Add(key string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	s := c.keys[key]
	if s == nil || now.Sub(s.last) >= c.window {
		if s == nil && len(c.keys) >= c.maxKeys {
			c.sweep(now)
		}
		s = &slot{}
		c.keys[key] = s
	}
	s.n++
	s.last = now
	return c.wait(s, now)
}

// Begin reserves an attempt for key before its outcome is known (a
// password check). It returns 0 when the attempt may go ahead, else how long
// to wait. Attempts still in flight count against the threshold, so that
// concurrent requests cannot slip more guesses past it than sequential ones:
// below the threshold, at most threshold-n may be in flight; past it, one at
// a time once the delay has run out. Every Begin that returned 0 must be
// followed by End.
func (c *Counter) Begin(key string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	s := c.keys[key]
	if s == nil {
		if len(c.keys) >= c.maxKeys {
			c.sweep(now)
		}
		s = &slot{last: now}
		c.keys[key] = s
	}
	if s.inflight == 0 && now.Sub(s.last) >= c.window {
		s.n = 0
	}
	if w := c.wait(s, now); w > 0 {
		return w
	}
	allowed := c.threshold - s.n
	if allowed < 1 {
		allowed = 1
	}
	if s.inflight >= allowed {
		return time.Second
	}
	s.inflight++
	return 0
}

// End finishes an attempt reserved with Begin: a failure is counted, a
// success forgives the key's failures, and neither (the check could not be
// made) only frees the reservation.
func (c *Counter) End(key string, outcome Outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.keys[key]
	if s == nil {
		return
	}
	if s.inflight > 0 {
		s.inflight--
	}
	switch outcome {
	case Failed:
		s.n++
		s.last = c.now()
	case Succeeded:
		s.n = 0
		if s.inflight == 0 {
			delete(c.keys, key)
		}
	}
}

// Outcome is how an attempt reserved with Begin ended.
type Outcome int

// Outcomes of an attempt.
const (
	// Abandoned means the check was not made (overload, internal error).
	Abandoned Outcome = iota
	// Failed means a wrong password.
	Failed
	// Succeeded means the right password.
	Succeeded
)

// Reset forgets key (after a successful sign-in).
func (c *Counter) Reset(key string) {
	c.mu.Lock()
	delete(c.keys, key)
	c.mu.Unlock()
}

// Len returns how many keys are remembered.
func (c *Counter) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.keys)
}

// sweep drops keys whose window has passed. If every key is still live the
// map is allowed to grow; memory is then bounded by the attack's rate times
// the window.
func (c *Counter) sweep(now time.Time) {
	for k, s := range c.keys {
		if s.inflight == 0 && now.Sub(s.last) >= c.window {
			delete(c.keys, k)
		}
	}
	if len(c.keys) >= c.maxKeys {
		c.maxKeys *= 2
	}
}

// Sweep drops forgotten keys; the server calls it on a schedule.
func (c *Counter) Sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweep(c.now())
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
