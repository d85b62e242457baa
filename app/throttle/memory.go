package throttle

import (
	"container/list"
	"context"
	"strings"
	"sync"
	"time"
)

// Memory is a Store in this process's memory. It holds at most its capacity
// of keys whatever the traffic: when full, the key unused for longest is
// forgotten. A restart forgets every count, which only forgives.
type Memory struct {
	capacity int

	mu   sync.Mutex
	keys map[string]*list.Element
	lru  list.List // front: most recently used *slot
}

type slot struct {
	key     string
	rule    Rule
	n       int // failures and attempts in flight
	pending int // attempts in flight
	last    time.Time
	until   time.Time
}

// DefaultCapacity bounds a Memory store: about 200 bytes a key, 20 MiB in
// all.
const DefaultCapacity = 100000

// NewMemory returns a Memory store of at most capacity keys (<= 0 means
// DefaultCapacity).
func NewMemory(capacity int) *Memory {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	return &Memory{capacity: capacity, keys: make(map[string]*list.Element)}
}

var _ Store = (*Memory)(nil)

// Wait implements Store.
func (m *Memory) Wait(_ context.Context, key string, now time.Time) (time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.keys[key]; ok {
		if s := el.Value.(*slot); now.Before(s.until) {
			return s.until.Sub(now), nil
		}
	}
	return 0, nil
}

// Take implements Store.
func (m *Memory) Take(_ context.Context, key string, r Rule, now time.Time) (time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s *slot
	if el, ok := m.keys[key]; ok {
		s = el.Value.(*slot)
		m.lru.MoveToFront(el)
	} else {
		if len(m.keys) >= m.capacity {
			oldest := m.lru.Back()
			delete(m.keys, oldest.Value.(*slot).key)
			m.lru.Remove(oldest)
		}
		s = &slot{key: key}
		m.keys[key] = m.lru.PushFront(s)
	}
	if now.Before(s.until) {
		return s.until.Sub(now), nil
	}
	if !now.Before(s.last.Add(r.Window)) {
		s.n, s.pending = 0, 0
	}
	if s.n >= r.Limit && s.pending > 0 {
		return InFlightWait, nil
	}
	s.n++
	s.pending++
	s.last = now
	s.rule = r
	return 0, nil
}

// Fail implements Store.
func (m *Memory) Fail(_ context.Context, now time.Time, keys ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		if el, ok := m.keys[k]; ok {
			s := el.Value.(*slot)
			s.pending = max(s.pending-1, 0)
			if until := now.Add(s.rule.Delay(s.n)); s.n >= s.rule.Limit && until.After(s.until) {
				s.until = until
			}
		}
	}
	return nil
}

// Release implements Store.
func (m *Memory) Release(_ context.Context, keys ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		if el, ok := m.keys[k]; ok {
			s := el.Value.(*slot)
			s.n = max(s.n-1, 0)
			s.pending = max(s.pending-1, 0)
		}
	}
	return nil
}

// Forget implements Store.
func (m *Memory) Forget(_ context.Context, keys ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		m.drop(k)
	}
	return nil
}

// ForgetPrefix implements Store.
func (m *Memory) ForgetPrefix(_ context.Context, prefix string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.keys {
		if strings.HasPrefix(k, prefix) {
			m.drop(k)
		}
	}
	return nil
}

func (m *Memory) drop(k string) {
	if el, ok := m.keys[k]; ok {
		m.lru.Remove(el)
		delete(m.keys, k)
	}
}

// Sweep implements Store.
func (m *Memory) Sweep(_ context.Context, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for el := m.lru.Back(); el != nil; {
		prev := el.Prev()
		if s := el.Value.(*slot); !now.Before(s.last.Add(s.rule.Window)) && !now.Before(s.until) {
			m.lru.Remove(el)
			delete(m.keys, s.key)
		}
		el = prev
	}
	return nil
}

// Len returns how many keys are held.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.keys)
}
