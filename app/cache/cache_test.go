package cache

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestGetPutDelete(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	c := New[string, int](64, time.Minute, clk.now)
	if _, ok := c.Get("a"); ok {
		t.Fatal("empty cache returned a value")
	}
	c.Put("a", 1)
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatalf("Get(a) = %d, %v; want 1, true", v, ok)
	}
	c.Put("a", 2)
	if v, _ := c.Get("a"); v != 2 {
		t.Fatalf("after overwrite Get(a) = %d, want 2", v)
	}
	if c.Len() != 1 {
		t.Fatalf("Len = %d after two puts of one key, want 1", c.Len())
	}
	c.Delete("a")
	if _, ok := c.Get("a"); ok {
		t.Fatal("deleted key still returned")
	}
}

func TestTTL(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	c := New[string, int](64, time.Minute, clk.now)
	c.Put("a", 1)
	clk.t = clk.t.Add(59 * time.Second)
	if _, ok := c.Get("a"); !ok {
		t.Fatal("entry gone before its TTL")
	}
	clk.t = clk.t.Add(time.Second)
	if _, ok := c.Get("a"); ok {
		t.Fatal("entry returned at its TTL")
	}
}

// However many keys arrive, the cache holds at most its capacity, keeps the
// newest, and evicts the oldest first.
func TestBoundedEvictsOldest(t *testing.T) {
	c := New[string, int](160, time.Hour, nil)
	const n = 100000
	for i := 0; i < n; i++ {
		c.Put(strconv.Itoa(i), i)
		if i%997 == 0 && c.Len() > c.Capacity() {
			t.Fatalf("after %d puts Len = %d > capacity %d", i+1, c.Len(), c.Capacity())
		}
	}
	if c.Len() != c.Capacity() {
		t.Errorf("Len = %d, want a full cache of %d", c.Len(), c.Capacity())
	}
	if v, ok := c.Get(strconv.Itoa(n - 1)); !ok || v != n-1 {
		t.Error("the newest entry was evicted")
	}
	if _, ok := c.Get("0"); ok {
		t.Error("the oldest entry survived a full turn of insertions")
	}
}

// A deleted entry's slot does not evict the key that later took its place.
func TestDeleteThenReuse(t *testing.T) {
	c := New[int, int](16, time.Hour, nil) // one slot per shard
	c.Put(1, 1)
	c.Delete(1)
	c.Put(1, 2)
	if v, ok := c.Get(1); !ok || v != 2 {
		t.Fatalf("Get(1) = %d, %v; want 2, true", v, ok)
	}
}

func TestDeleteFuncAndClear(t *testing.T) {
	c := New[int, int](1024, time.Hour, nil)
	for i := 0; i < 100; i++ {
		c.Put(i, i%2)
	}
	c.DeleteFunc(func(_ int, v int) bool { return v == 1 })
	if c.Len() != 50 {
		t.Fatalf("Len = %d after dropping the odd half, want 50", c.Len())
	}
	if _, ok := c.Get(3); ok {
		t.Error("an odd key survived DeleteFunc")
	}
	c.Clear()
	if c.Len() != 0 {
		t.Errorf("Len = %d after Clear", c.Len())
	}
}

func TestConcurrentUse(t *testing.T) {
	c := New[int, int](256, time.Hour, nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20000; i++ {
				k := (g*7919 + i) % 5000
				c.Put(k, k)
				if v, ok := c.Get(k); ok && v != k {
					t.Errorf("Get(%d) = %d", k, v)
					return
				}
				if i%100 == 0 {
					c.Delete(k)
				}
			}
		}(g)
	}
	wg.Wait()
	if c.Len() > c.Capacity() {
		t.Errorf("Len = %d > capacity %d", c.Len(), c.Capacity())
	}
}

// BenchmarkPutFull inserts new keys into a full cache: each costs the same
// as into an empty one.
func BenchmarkPutFull(b *testing.B) {
	c := New[int, int](10000, time.Hour, nil)
	for i := 0; i < 20000; i++ {
		c.Put(i, i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Put(20000+i, i)
	}
}

func BenchmarkGetParallel(b *testing.B) {
	c := New[string, int](10000, time.Hour, nil)
	for i := 0; i < 10000; i++ {
		c.Put(strconv.Itoa(i), i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Get(strconv.Itoa(i % 10000))
			i++
		}
	})
}
