// Package throttletest checks that an implementation of throttle.Store
// counts as the rule says, so that the in-memory store and the database's
// store are held to one behaviour.
package throttletest

import (
	"context"
	"sync"
	"testing"
	"time"

	"fiberauth/app/throttle"
)

// Run runs the conformance tests against stores made by open; each subtest
// gets an empty store.
func Run(t *testing.T, open func(t *testing.T) throttle.Store) {
	ctx := context.Background()
	rule := throttle.Rule{Limit: 3, Window: 15 * time.Minute, Base: 30 * time.Second}
	t0 := time.Unix(1_800_000_000, 0)

	take := func(t *testing.T, s throttle.Store, key string, at time.Time) time.Duration {
		t.Helper()
		w, err := s.Take(ctx, key, rule, at)
		if err != nil {
			t.Fatalf("Take(%s): %v", key, err)
		}
		return w
	}
	// fail is an attempt that is let through and fails; it returns the
	// wait if it was refused instead.
	fail := func(t *testing.T, s throttle.Store, key string, at time.Time) time.Duration {
		t.Helper()
		if w := take(t, s, key, at); w > 0 {
			return w
		}
		if err := s.Fail(ctx, at, key); err != nil {
			t.Fatalf("Fail(%s): %v", key, err)
		}
		return 0
	}

	t.Run("limit then growing delay", func(t *testing.T) {
		s := open(t)
		for i := 0; i < rule.Limit; i++ {
			if w := fail(t, s, "k", t0); w != 0 {
				t.Fatalf("attempt %d refused with wait %v", i+1, w)
			}
		}
		if w := take(t, s, "k", t0.Add(time.Second)); w != 29*time.Second {
			t.Fatalf("wait after %d failures = %v, want 29s", rule.Limit, w)
		}
		// A refused attempt counts nothing: the wait is unchanged.
		if w := take(t, s, "k", t0.Add(2*time.Second)); w != 28*time.Second {
			t.Fatalf("wait after a refused attempt = %v, want 28s", w)
		}
		// Once the delay has passed one attempt goes through, and its
		// failure doubles the delay.
		at := t0.Add(30 * time.Second)
		if w := fail(t, s, "k", at); w != 0 {
			t.Fatalf("attempt after the delay refused: %v", w)
		}
		if w := take(t, s, "k", at); w != time.Minute {
			t.Fatalf("second delay = %v, want 1m", w)
		}
		// Other keys are untouched.
		if w := take(t, s, "other", at); w != 0 {
			t.Fatalf("another key waits %v", w)
		}
	})

	t.Run("wait counts nothing", func(t *testing.T) {
		s := open(t)
		if w, err := s.Wait(ctx, "k", t0); err != nil || w != 0 {
			t.Fatalf("Wait on an unknown key = %v, %v", w, err)
		}
		for i := 0; i < rule.Limit; i++ {
			if w, _ := s.Wait(ctx, "k", t0); w != 0 {
				t.Fatalf("Wait after %d failures = %v", i, w)
			}
			fail(t, s, "k", t0)
		}
		if w, _ := s.Wait(ctx, "k", t0.Add(time.Second)); w != 29*time.Second {
			t.Fatalf("Wait of a blocked key = %v, want 29s", w)
		}
		for i := 0; i < 10; i++ {
			s.Wait(ctx, "k", t0.Add(time.Second))
		}
		if w := take(t, s, "k", t0.Add(30*time.Second)); w != 0 {
			t.Fatalf("Waits counted: the key still waits %v after its delay", w)
		}
	})

	t.Run("delay is capped at the window", func(t *testing.T) {
		s := open(t)
		at := t0
		for i := 0; i < 40; i++ {
			w := fail(t, s, "k", at)
			if w > rule.Window {
				t.Fatalf("wait %v exceeds the window", w)
			}
			if w > 0 {
				at = at.Add(w)
				if w := fail(t, s, "k", at); w != 0 {
					t.Fatalf("refused after waiting: %v", w)
				}
			}
		}
		if w := take(t, s, "k", at); w != rule.Window {
			t.Fatalf("long-run wait = %v, want the window %v", w, rule.Window)
		}
	})

	t.Run("counts lapse after the window", func(t *testing.T) {
		s := open(t)
		for i := 0; i < rule.Limit-1; i++ {
			fail(t, s, "k", t0)
		}
		later := t0.Add(rule.Window)
		for i := 0; i < rule.Limit-1; i++ {
			if w := fail(t, s, "k", later); w != 0 {
				t.Fatalf("attempt %d after the window refused: %v", i+1, w)
			}
		}
	})

	t.Run("attempts in flight count; released ones do not", func(t *testing.T) {
		s := open(t)
		for i := 0; i < rule.Limit; i++ {
			if w := take(t, s, "k", t0); w != 0 {
				t.Fatalf("attempt %d refused: %v", i+1, w)
			}
		}
		// At the limit with attempts in flight: wait for them.
		if w := take(t, s, "k", t0); w != throttle.InFlightWait {
			t.Fatalf("wait with %d in flight = %v, want %v", rule.Limit, w, throttle.InFlightWait)
		}
		// One succeeds: it is handed back and frees a place.
		if err := s.Release(ctx, "k", "never-taken"); err != nil {
			t.Fatal(err)
		}
		if w := take(t, s, "k", t0); w != 0 {
			t.Fatalf("after a release the key still waits %v", w)
		}
		// The others succeed too: nothing stays counted, nothing blocks.
		if err := s.Release(ctx, "k", "k", "k"); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < rule.Limit; i++ {
			if w := fail(t, s, "k", t0); w != 0 {
				t.Fatalf("failure %d after successes refused: %v", i+1, w)
			}
		}
		if w := take(t, s, "k", t0); w != rule.Base {
			t.Fatalf("wait after %d failures = %v, want %v", rule.Limit, w, rule.Base)
		}
	})

	t.Run("forget and forget prefix", func(t *testing.T) {
		s := open(t)
		for _, k := range []string{"u:1", "p:1:a", "p:1:b", "p:12:a", "u:2"} {
			for i := 0; i < rule.Limit; i++ {
				fail(t, s, k, t0)
			}
		}
		if err := s.Forget(ctx, "u:1"); err != nil {
			t.Fatal(err)
		}
		if err := s.ForgetPrefix(ctx, "p:1:"); err != nil {
			t.Fatal(err)
		}
		for k, free := range map[string]bool{"u:1": true, "p:1:a": true, "p:1:b": true, "p:12:a": false, "u:2": false} {
			if w := take(t, s, k, t0); (w == 0) != free {
				t.Errorf("%s: wait %v, want free=%v", k, w, free)
			}
		}
	})

	t.Run("sweep keeps live counts", func(t *testing.T) {
		s := open(t)
		for i := 0; i < rule.Limit; i++ {
			fail(t, s, "k", t0)
		}
		if err := s.Sweep(ctx, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if w := take(t, s, "k", t0.Add(time.Second)); w == 0 {
			t.Fatal("sweep forgot a blocked key")
		}
		if err := s.Sweep(ctx, t0.Add(2*rule.Window)); err != nil {
			t.Fatal(err)
		}
		if w := take(t, s, "k", t0.Add(2*rule.Window)); w != 0 {
			t.Fatalf("a lapsed key still waits %v", w)
		}
	})

	t.Run("concurrent attempts cannot pass the limit", func(t *testing.T) {
		s := open(t)
		const n = 40
		var wg sync.WaitGroup
		var mu sync.Mutex
		passed := 0
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w, err := s.Take(ctx, "k", rule, t0)
				if err != nil {
					t.Error(err)
					return
				}
				if w == 0 {
					mu.Lock()
					passed++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if passed != rule.Limit {
			t.Errorf("%d of %d concurrent attempts passed, want exactly %d", passed, n, rule.Limit)
		}
	})
}
