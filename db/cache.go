package db

import (
	"sync"
	"sync/atomic"
	"time"
)

// sessionCache keeps recently read sessions with their accounts in memory,
// so that authenticating a request usually costs no query. Reads take no
// lock (sync.Map). Correctness rests on three rules:
//
//   - every write through the Store that ends a session, or changes what a
//     cached entry holds, removes the entries it affects;
//   - a read that raced with such a removal is not cached (the generation
//     check below), so a revoked session can never be put back;
//   - entries live at most cacheTTL, which bounds how long a change made
//     outside this process (another tool writing the file) goes unseen.
type sessionCache struct {
	m    sync.Map // session id -> *cachedSession
	n    atomic.Int64
	puts atomic.Int64
	gen  atomic.Uint64
	max  int64
	ttl  time.Duration
	now  func() time.Time
	mu   sync.Mutex // serialises sweeps only
}

type cachedSession struct {
	se     Session
	u      User
	loaded time.Time
}

// cacheTTL is how long a cached session is trusted without a query.
const cacheTTL = 5 * time.Second

// cacheMax bounds the number of cached sessions; sweepEvery is how many
// insertions pass between two sweeps of stale entries.
const (
	cacheMax   = 10000
	sweepEvery = 1024
)

func newSessionCache() *sessionCache {
	return &sessionCache{max: cacheMax, ttl: cacheTTL, now: time.Now}
}

func (c *sessionCache) get(id string) (Session, User, bool) {
	v, ok := c.m.Load(id)
	if !ok {
		return Session{}, User{}, false
	}
	e := v.(*cachedSession)
	if c.now().Sub(e.loaded) >= c.ttl {
		c.delete(id)
		return Session{}, User{}, false
	}
	return e.se, e.u, true
}

// generation is read before a query; put stores the result only if no
// invalidation happened since.
func (c *sessionCache) generation() uint64 { return c.gen.Load() }

func (c *sessionCache) put(gen uint64, se Session, u User) {
	if c.puts.Add(1)%sweepEvery == 0 || c.n.Load() >= c.max {
		c.sweep()
	}
	if c.n.Load() >= c.max {
		c.clear()
	}
	if _, loaded := c.m.Swap(se.ID, &cachedSession{se: se, u: u, loaded: c.now()}); !loaded {
		c.n.Add(1)
	}
	// An invalidation that ran while the row was being read may have
	// missed this entry: drop it again.
	if c.gen.Load() != gen {
		c.delete(se.ID)
	}
}

func (c *sessionCache) delete(id string) {
	if _, loaded := c.m.LoadAndDelete(id); loaded {
		c.n.Add(-1)
	}
}

// invalidate removes one session.
func (c *sessionCache) invalidate(id string) {
	c.gen.Add(1)
	c.delete(id)
}

// invalidateUser removes every session of userID.
func (c *sessionCache) invalidateUser(userID int64) {
	c.gen.Add(1)
	c.m.Range(func(k, v any) bool {
		if v.(*cachedSession).se.UserID == userID {
			c.delete(k.(string))
		}
		return true
	})
}

// sweep removes the entries older than the TTL.
func (c *sessionCache) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.m.Range(func(k, v any) bool {
		if now.Sub(v.(*cachedSession).loaded) >= c.ttl {
			c.delete(k.(string))
		}
		return true
	})
}

// clear removes everything.
func (c *sessionCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	c.m.Range(func(k, _ any) bool {
		c.delete(k.(string))
		return true
	})
}
