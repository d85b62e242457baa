package db

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// TestLastAdminRace demotes the last two admins at once: the first
// transaction is held after taking the admin lock, the second starts, and
// the first is released only once the second is seen waiting for it (or
// has finished, which is the race this guards against). Exactly one admin
// must remain.
func TestLastAdminRace(t *testing.T) {
	engines(t, func(t *testing.T, o Options) {
		ctx := context.Background()
		s := mustOpen(t, o)
		var ids []int64
		for _, name := range []string{"alice", "bob"} {
			u, err := s.CreateUser(ctx, newUser(name))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SetRole(ctx, u.ID, RoleAdmin, Void{}, Event{}); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, u.ID)
		}

		held, release := make(chan struct{}), make(chan struct{})
		var first atomic.Bool
		s.adminChange = func() {
			if first.CompareAndSwap(false, true) {
				close(held)
				<-release
			}
		}
		errA, errB := make(chan error, 1), make(chan error, 1)
		go func() { errA <- s.SetRole(ctx, ids[0], RoleBasic, Void{}, Event{}) }()
		<-held
		go func() { _, err := s.RemoveUser(ctx, ids[1], Void{}); errB <- err }()

		var results []error
		deadline := time.Now().Add(20 * time.Second)
	wait:
		for {
			select {
			case err := <-errB:
				// Finished while the first was held: nothing serialised them.
				results = append(results, err)
				break wait
			default:
			}
			if s.waitingOnAdmins(t) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the second change neither finished nor waited for the first")
			}
			time.Sleep(time.Millisecond)
		}
		close(release)
		results = append(results, <-errA)
		if len(results) == 1 {
			results = append(results, <-errB)
		}

		var refused int
		for _, err := range results {
			switch {
			case errors.Is(err, ErrLastAdmin):
				refused++
			case err != nil:
				t.Fatalf("change: %v", err)
			}
		}
		n, err := s.CountAdmins(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 || refused != 1 {
			t.Fatalf("after two concurrent removals of the last two admins: %d admins left, %d refused; want 1 and 1", n, refused)
		}
	})
}

// waitingOnAdmins tells whether a transaction is waiting for the one that
// holds the admin lock: on PostgreSQL, an ungranted advisory lock of that
// name; on SQLite, a write queued behind the running one.
func (s *Store) waitingOnAdmins(t *testing.T) bool {
	t.Helper()
	if s.engine != Postgres {
		return len(s.batch.ch) > 0
	}
	var n int
	err := s.r.QueryRow(`SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
		AND classid = 0 AND objid = $1 AND objsubid = 1`, adminLockID).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// TestNewDatabaseIsPrivate: a SQLite file the store creates holds password
// hashes and signing keys, so only its owner may read it.
func TestNewDatabaseIsPrivate(t *testing.T) {
	o := sqliteOptions(t)
	mustOpen(t, o)
	fi, err := os.Stat(o.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("new database mode %v, want 0600", fi.Mode().Perm())
	}
}
