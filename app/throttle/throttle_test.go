package throttle

import (
	"testing"
	"time"
)

func TestCounter(t *testing.T) {
	now := time.Unix(1000, 0)
	c := NewCounter(3, 15*time.Minute, 30*time.Second, func() time.Time { return now })
	for i := 0; i < 2; i++ {
		if w := c.Add("k"); w != 0 {
			t.Fatalf("event %d: wait %v, want none below the threshold", i+1, w)
		}
	}
	if w := c.Add("k"); w != 30*time.Second {
		t.Errorf("at the threshold: wait %v, want 30s", w)
	}
	if w := c.Add("k"); w != time.Minute {
		t.Errorf("one past: wait %v, want 1m (doubled)", w)
	}
	for i := 0; i < 20; i++ {
		c.Add("k")
	}
	if w := c.Wait("k"); w != 15*time.Minute {
		t.Errorf("capped wait %v, want the window", w)
	}
	if w := c.Wait("other"); w != 0 {
		t.Errorf("another key waits %v", w)
	}
	now = now.Add(15 * time.Minute)
	if w := c.Wait("k"); w != 0 {
		t.Errorf("after the window: wait %v, want none", w)
	}
	c.Add("k")
	if w := c.Wait("k"); w != 0 {
		t.Errorf("count not reset after the window: wait %v", w)
	}
	c.Reset("k")
	if c.Len() != 0 {
		t.Errorf("Len after Reset = %d", c.Len())
	}
}

func TestSweep(t *testing.T) {
	now := time.Unix(1000, 0)
	c := NewCounter(3, time.Minute, time.Second, func() time.Time { return now })
	c.Add("a")
	c.Add("b")
	now = now.Add(2 * time.Minute)
	c.Add("c")
	c.Sweep()
	if c.Len() != 1 {
		t.Errorf("Len after sweep = %d, want 1", c.Len())
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int{0: 1, 200 * time.Millisecond: 1, 1500 * time.Millisecond: 2, time.Minute: 60} {
		if got := RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}

func TestBeginEnd(t *testing.T) {
	now := time.Unix(1000, 0)
	c := NewCounter(3, 15*time.Minute, 30*time.Second, func() time.Time { return now })
	// Three attempts may be in flight below the threshold; the fourth waits.
	for i := 0; i < 3; i++ {
		if w := c.Begin("k"); w != 0 {
			t.Fatalf("attempt %d refused: %v", i+1, w)
		}
	}
	if w := c.Begin("k"); w == 0 {
		t.Fatal("a fourth concurrent attempt was allowed")
	}
	for i := 0; i < 3; i++ {
		c.End("k", Failed)
	}
	if w := c.Begin("k"); w != 30*time.Second {
		t.Errorf("after 3 failures: wait %v, want 30s", w)
	}
	now = now.Add(30 * time.Second)
	if w := c.Begin("k"); w != 0 {
		t.Fatalf("after the delay: refused %v", w)
	}
	if w := c.Begin("k"); w == 0 {
		t.Error("past the threshold, a second attempt in flight was allowed")
	}
	c.End("k", Succeeded)
	if w := c.Begin("k"); w != 0 {
		t.Errorf("after a success: refused %v", w)
	}
	c.End("k", Abandoned)
	if c.Wait("k") != 0 {
		t.Error("an abandoned attempt counted as a failure")
	}
}
