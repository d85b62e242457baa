// Package cache is a bounded in-memory map with a time-to-live: every
// operation costs O(1) whatever the fill, and once full each insertion
// evicts the oldest entry. The service keeps verified tokens and sessions in
// it so that the read path usually costs no signature check and no query.
package cache

import (
	"hash/maphash"
	"sync"
	"time"
)

// shards spreads keys over independently locked parts, so that parallel
// readers rarely meet on one lock.
const shards = 16

// Cache maps keys to values for at most TTL each, holding at most about
// Capacity entries. The zero value is not usable; call New.
type Cache[K comparable, V any] struct {
	seed  maphash.Seed
	ttl   time.Duration
	now   func() time.Time
	parts [shards]part[K, V]
}

type part[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]*entry[V]
	// ring holds keys in insertion order; ring[next] is the oldest slot
	// and is overwritten by the next insertion. A live entry owns exactly
	// one slot (its slot field), so len(m) never exceeds len(ring).
	ring []K
	next int
}

type entry[V any] struct {
	v    V
	at   time.Time
	slot int
}

// New returns a cache of about capacity entries (at least one per shard),
// each trusted for ttl. now may be nil for time.Now.
func New[K comparable, V any](capacity int, ttl time.Duration, now func() time.Time) *Cache[K, V] {
	if now == nil {
		now = time.Now
	}
	per := (capacity + shards - 1) / shards
	if per < 1 {
		per = 1
	}
	c := &Cache[K, V]{seed: maphash.MakeSeed(), ttl: ttl, now: now}
	for i := range c.parts {
		c.parts[i].m = make(map[K]*entry[V], per)
		c.parts[i].ring = make([]K, per)
	}
	return c
}

func (c *Cache[K, V]) part(k K) *part[K, V] {
	return &c.parts[maphash.Comparable(c.seed, k)%shards]
}

// Get returns the value of k when it was stored less than TTL ago.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	p := c.part(k)
	p.mu.RLock()
	e, ok := p.m[k]
	var v V
	var at time.Time
	if ok {
		v, at = e.v, e.at
	}
	p.mu.RUnlock()
	if !ok || c.now().Sub(at) >= c.ttl {
		var zero V
		return zero, false
	}
	return v, true
}

// Put stores v under k, evicting the oldest entry of k's shard when it is
// full.
func (c *Cache[K, V]) Put(k K, v V) {
	now := c.now()
	p := c.part(k)
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.m[k]; ok {
		e.v, e.at = v, now
		return
	}
	slot := p.next
	p.next = (p.next + 1) % len(p.ring)
	if old, ok := p.m[p.ring[slot]]; ok && old.slot == slot {
		delete(p.m, p.ring[slot])
	}
	p.ring[slot] = k
	p.m[k] = &entry[V]{v: v, at: now, slot: slot}
}

// Delete removes k.
func (c *Cache[K, V]) Delete(k K) {
	p := c.part(k)
	p.mu.Lock()
	delete(p.m, k)
	p.mu.Unlock()
}

// DeleteFunc removes every entry for which drop returns true. It visits
// every entry, so it is for rare operations (an account's password change),
// not for the request path.
func (c *Cache[K, V]) DeleteFunc(drop func(K, V) bool) {
	for i := range c.parts {
		p := &c.parts[i]
		p.mu.Lock()
		for k, e := range p.m {
			if drop(k, e.v) {
				delete(p.m, k)
			}
		}
		p.mu.Unlock()
	}
}

// Clear removes everything.
func (c *Cache[K, V]) Clear() {
	for i := range c.parts {
		p := &c.parts[i]
		p.mu.Lock()
		clear(p.m)
		p.mu.Unlock()
	}
}

// Len returns the number of entries held, stale ones included.
func (c *Cache[K, V]) Len() int {
	n := 0
	for i := range c.parts {
		p := &c.parts[i]
		p.mu.RLock()
		n += len(p.m)
		p.mu.RUnlock()
	}
	return n
}

// Capacity is the most entries the cache holds.
func (c *Cache[K, V]) Capacity() int { return shards * len(c.parts[0].ring) }
