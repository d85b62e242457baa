// Package password hashes and verifies passwords with bcrypt on a bounded
// pool of workers, so that a flood of sign-ins cannot take every CPU away
// from the rest of the service.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// MaxBytes is the longest password bcrypt can take in full. Longer ones are
// refused at registration and never match at sign-in.
const MaxBytes = 72

// ErrBusy means every worker is busy and the queue is full: the caller
// should answer 503 with Retry-After.
var ErrBusy = errors.New("password: hashing capacity exhausted")

// ErrMismatch means the password does not match the hash.
var ErrMismatch = errors.New("password: mismatch")

// MaxWait is how long a caller waits for a worker before it is shed with
// ErrBusy: past that, a client is better told to retry than kept waiting.
const MaxWait = 5 * time.Second

// Hasher runs bcrypt with at most workers computations at once and at most
// queue callers waiting for one, none of them longer than MaxWait.
type Hasher struct {
	cost    int
	maxWait time.Duration
	slots   chan struct{}
	limit   int64
	pending atomic.Int64
	dummy   []byte
	// verified counts bcrypt comparisons made, dummy ones included.
	verified atomic.Int64
	// OnWait, when set before use, is told how long each computation
	// waited for a worker (those that gave up waiting included).
	OnWait func(time.Duration)
}

// NewHasher returns a Hasher for cost. workers <= 0 means one per CPU;
// queue <= 0 means 128 per worker. It computes a dummy hash at cost so
// that unknown users cost the same as known ones.
func NewHasher(cost, workers, queue int) (*Hasher, error) {
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	if queue <= 0 {
		queue = 128 * workers
	}
	h := &Hasher{cost: cost, maxWait: MaxWait, slots: make(chan struct{}, workers), limit: int64(workers + queue)}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	dummy, err := bcrypt.GenerateFromPassword(secret[:24], cost)
	if err != nil {
		return nil, err
	}
	h.dummy = dummy
	return h, nil
}

// Cost is the bcrypt cost of new hashes.
func (h *Hasher) Cost() int { return h.cost }

// acquire waits for a worker slot. It refuses at once when too many callers
// are already waiting, and gives up after MaxWait or when ctx ends.
func (h *Hasher) acquire(ctx context.Context) (func(), error) {
	if h.pending.Add(1) > h.limit {
		h.pending.Add(-1)
		return nil, ErrBusy
	}
	select {
	case h.slots <- struct{}{}:
		h.waited(0)
		return h.release, nil
	default:
	}
	start := time.Now()
	t := time.NewTimer(h.maxWait)
	defer t.Stop()
	select {
	case h.slots <- struct{}{}:
		h.waited(time.Since(start))
		return h.release, nil
	case <-t.C:
	case <-ctx.Done():
	}
	h.waited(time.Since(start))
	h.pending.Add(-1)
	return nil, ErrBusy
}

func (h *Hasher) waited(d time.Duration) {
	if h.OnWait != nil {
		h.OnWait(d)
	}
}

func (h *Hasher) release() {
	<-h.slots
	h.pending.Add(-1)
}

// Hash returns the bcrypt hash of pw. pw must be at most MaxBytes long.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	if len(pw) > MaxBytes {
		return "", bcrypt.ErrPasswordTooLong
	}
	release, err := h.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	b, err := bcrypt.GenerateFromPassword([]byte(pw), h.cost)
	return string(b), err
}

// Verify compares pw with hash. An empty hash (an unknown user) is compared
// against the dummy hash, so that it costs the same and never matches. A
// password longer than MaxBytes never matches, even when its first MaxBytes
// bytes would. It returns nil on a match, ErrMismatch, or ErrBusy.
func (h *Hasher) Verify(ctx context.Context, hash, pw string) error {
	release, err := h.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	target := []byte(hash)
	known := 1
	if hash == "" {
		target = h.dummy
		known = 0
	}
	fits := 1
	if len(pw) > MaxBytes {
		fits = 0
	}
	p := []byte(pw)
	if len(p) > MaxBytes {
		p = p[:MaxBytes]
	}
	match := 0
	if bcrypt.CompareHashAndPassword(target, p) == nil {
		match = 1
	}
	h.verified.Add(1)
	if subtle.ConstantTimeSelect(known&fits, match, 0) == 1 {
		return nil
	}
	return ErrMismatch
}

// NeedsRehash reports whether hash was made with another cost than the
// configured one.
func (h *Hasher) NeedsRehash(hash string) bool {
	c, err := bcrypt.Cost([]byte(hash))
	return err == nil && c != h.cost
}

// Verifications returns how many bcrypt comparisons Verify has made.
func (h *Hasher) Verifications() int64 { return h.verified.Load() }

// Pending returns how many hashing calls are running or waiting.
func (h *Hasher) Pending() int64 { return h.pending.Load() }

// DummyHash returns the hash unknown users are checked against.
func (h *Hasher) DummyHash() []byte { return h.dummy }

// Saturate takes every worker and queue place, so that each caller is shed
// at once with ErrBusy until release is called. Tests use it to reach the
// overload path without real load.
func (h *Hasher) Saturate() (release func()) {
	for i := 0; i < cap(h.slots); i++ {
		h.slots <- struct{}{}
	}
	h.pending.Add(h.limit)
	return func() {
		h.pending.Add(-h.limit)
		for i := 0; i < cap(h.slots); i++ {
			<-h.slots
		}
	}
}
