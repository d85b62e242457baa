package db

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"fiberauth/app/cache"
)

// sessionCache keeps recently read sessions with their accounts in memory,
// so that authenticating a request usually costs no query. Correctness rests
// on four rules:
//
//   - every write through the Store that ends a session, or changes what a
//     cached entry holds, removes the entries it affects, and on PostgreSQL
//     tells every other instance to do the same (NOTIFY, on commit);
//   - a read that raced with such a removal is not cached (the generation
//     check below), so a revoked session can never be put back;
//   - on PostgreSQL nothing is cached while the notification listener is
//     disconnected, and everything is dropped when it reconnects;
//   - entries live at most cacheTTL, which bounds how long a change made
//     outside the service (another program writing the database) goes
//     unseen.
type sessionCache struct {
	c   *cache.Cache[string, cachedSession]
	gen atomic.Uint64
	// mu orders stores against removals: a store holds it shared from its
	// generation check to its write, a removal exclusively while it moves
	// the generation on and deletes. So a stale entry is either written
	// before a removal (which then deletes it) or refused; it is never
	// visible, even for a moment, after a removal. Lookups do not take it.
	mu sync.RWMutex
	// beforeStore, when set (tests), runs in put between the generation
	// check and the write: the race point.
	beforeStore func(id string)
	enabled     atomic.Bool
	// hits and misses count lookups, for metrics.
	hits, misses atomic.Uint64
}

type cachedSession struct {
	se Session
	u  User
}

// cacheTTL is how long a cached session is trusted without a query.
const cacheTTL = 5 * time.Second

// cacheMax bounds the number of cached sessions.
const cacheMax = 10000

// newSessionCache returns an empty cache; now may be nil for time.Now.
func newSessionCache(now func() time.Time) *sessionCache {
	c := &sessionCache{c: cache.New[string, cachedSession](cacheMax, cacheTTL, now)}
	c.enabled.Store(true)
	return c
}

func (c *sessionCache) get(id string) (Session, User, bool) {
	if !c.enabled.Load() {
		c.misses.Add(1)
		return Session{}, User{}, false
	}
	e, ok := c.c.Get(id)
	if !ok {
		c.misses.Add(1)
		return Session{}, User{}, false
	}
	c.hits.Add(1)
	return e.se, e.u, true
}

// generation is read before a query; put stores the result only if no
// invalidation happened since.
func (c *sessionCache) generation() uint64 { return c.gen.Load() }

func (c *sessionCache) put(gen uint64, se Session, u User) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.enabled.Load() || c.gen.Load() != gen {
		return
	}
	if c.beforeStore != nil {
		c.beforeStore(se.ID)
	}
	c.c.Put(se.ID, cachedSession{se: se, u: u})
}

// invalidate removes one session.
func (c *sessionCache) invalidate(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	c.c.Delete(id)
}

// invalidateUser removes every session of userID.
func (c *sessionCache) invalidateUser(userID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	c.c.DeleteFunc(func(_ string, e cachedSession) bool { return e.se.UserID == userID })
}

// clear removes everything.
func (c *sessionCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	c.c.Clear()
}

// apply carries out a notification payload from another instance.
func (c *sessionCache) apply(payload string) {
	switch {
	case strings.HasPrefix(payload, "s:"):
		c.invalidate(payload[2:])
	case strings.HasPrefix(payload, "u:"):
		if id, err := strconv.ParseInt(payload[2:], 10, 64); err == nil {
			c.invalidateUser(id)
			return
		}
		c.clear()
	default:
		c.clear()
	}
}

// CacheStats returns how many session lookups the cache answered and how
// many went to the database.
func (s *Store) CacheStats() (hits, misses uint64) {
	return s.cache.hits.Load(), s.cache.misses.Load()
}
