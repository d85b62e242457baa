package db

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// mustOpen opens a store on a new file in a temporary directory.
func mustOpen(tb testing.TB) *Store {
	tb.Helper()
	s, err := Open(context.Background(), filepath.Join(tb.TempDir(), "test.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func newUser(name string) NewUser {
	return NewUser{Username: name, UsernameKey: name, Email: name + "@example.com", EmailKey: name + "@example.com",
		PasswordHash: "hash", CreatedAt: time.Now()}
}

func TestMigrationsAreVersionedAndIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		v, err := s.SchemaVersion(ctx)
		if err != nil || v != 2 {
			t.Errorf("open %d: schema version %d (%v), want 2", i, v, err)
		}
		s.Close()
	}
}

func TestUniqueness(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	if _, err := s.CreateUser(ctx, newUser("alice")); err != nil {
		t.Fatal(err)
	}
	dupName := newUser("alice")
	dupName.Email, dupName.EmailKey = "other@example.com", "other@example.com"
	if _, err := s.CreateUser(ctx, dupName); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate username: %v, want ErrConflict", err)
	}
	dupEmail := newUser("bob")
	dupEmail.Email, dupEmail.EmailKey = "ALICE@example.com", "alice@example.com"
	if _, err := s.CreateUser(ctx, dupEmail); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate email: %v, want ErrConflict", err)
	}
}

// Concurrent registrations never see "database is locked", and exactly one
// of many racing for a name wins.
func TestConcurrentWrites(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 100; i++ {
		wg.Add(2)
		go func(i int) {
			defer wg.Done()
			_, err := s.CreateUser(ctx, newUser(fmt.Sprintf("user%d", i)))
			errs <- err
		}(i)
		go func() {
			defer wg.Done()
			_, err := s.CreateUser(ctx, newUser("same"))
			if errors.Is(err, ErrConflict) {
				err = nil
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent write: %v", err)
		}
	}
}

func TestSessionsAndCascade(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	u, _ := s.CreateUser(ctx, newUser("alice"))
	now := time.Now()
	for _, id := range []string{"s1", "s2"} {
		if err := s.CreateSession(ctx, Session{ID: id, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour), LastUsedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	se, su, err := s.SessionWithUser(ctx, "s1")
	if err != nil || se.UserID != u.ID || su.Username != "alice" {
		t.Fatalf("SessionWithUser: %+v %+v %v", se, su, err)
	}
	if err := s.AddEvent(ctx, Event{UserID: u.ID, Kind: EventSignIn, At: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SessionWithUser(ctx, "s2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("session survived its user: %v", err)
	}
	if ev, _ := s.ListEvents(ctx, u.ID, 10); len(ev) != 0 {
		t.Errorf("events survived their user: %v", ev)
	}
}

func TestSecretIsStoredOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	ctx := context.Background()
	gen := func(b byte) func() ([]byte, error) {
		return func() ([]byte, error) { return []byte{b, b, b}, nil }
	}
	s, _ := Open(ctx, path)
	first, err := s.Secret(ctx, "k", gen(1))
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, _ = Open(ctx, path)
	defer s.Close()
	again, _ := s.Secret(ctx, "k", gen(2))
	if string(first) != string(again) {
		t.Errorf("secret changed across reopen: %v then %v", first, again)
	}
}

func TestOpenRefusals(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.txt")
	os.WriteFile(notDB, []byte("these are my notes, not a database"), 0o600)
	tests := []struct{ name, path, want string }{
		{"missing directory", filepath.Join(dir, "missing", "x.db"), "does not exist"},
		{"not SQLite", notDB, "not a SQLite database"},
		{"a directory", dir, "directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(context.Background(), tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one saying %q", err, tt.want)
			}
		})
	}
	if b, _ := os.ReadFile(notDB); string(b) != "these are my notes, not a database" {
		t.Error("the non-database file was modified")
	}
	if _, err := os.Stat(notDB + "-wal"); err == nil {
		t.Error("a WAL file was created beside the non-database file")
	}
}

func TestPrune(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	u, _ := s.CreateUser(ctx, newUser("alice"))
	now := time.Now()
	s.CreateSession(ctx, Session{ID: "old", UserID: u.ID, CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour), LastUsedAt: now})
	s.CreateSession(ctx, Session{ID: "live", UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour), LastUsedAt: now})
	s.AddEvent(ctx, Event{UserID: u.ID, Kind: EventSignIn, At: now.AddDate(0, 0, -100)})
	s.AddEvent(ctx, Event{UserID: u.ID, Kind: EventSignIn, At: now})
	ns, ne, err := s.Prune(ctx, now, now.AddDate(0, 0, -90))
	if err != nil || ns != 1 || ne != 1 {
		t.Errorf("Prune = %d sessions, %d events, %v; want 1, 1", ns, ne, err)
	}
	if l, _ := s.ListSessions(ctx, u.ID, now); len(l) != 1 || l[0].ID != "live" {
		t.Errorf("sessions left: %+v", l)
	}
}

func TestIntegrity(t *testing.T) {
	s := mustOpen(t)
	if res, err := s.IntegrityCheck(context.Background()); err != nil || res != "ok" {
		t.Errorf("integrity_check = %q, %v", res, err)
	}
}

// Once a delete has returned, no read gives the session back, even with
// readers racing to cache it.
func TestSessionCacheNeverResurrects(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	u, _ := s.CreateUser(ctx, newUser("alice"))
	now := time.Now()
	for i := 0; i < 100; i++ {
		id := fmt.Sprintf("s%d", i)
		if err := s.CreateSession(ctx, Session{ID: id, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour), LastUsedAt: now}); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for r := 0; r < 4; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
						s.SessionWithUser(ctx, id)
					}
				}
			}()
		}
		time.Sleep(time.Millisecond)
		var err error
		switch i % 3 {
		case 0:
			err = s.DeleteSession(ctx, id)
		case 1:
			_, err = s.DeleteOtherSessions(ctx, u.ID, "none")
		case 2:
			err = s.DeleteUserSession(ctx, u.ID, id)
		}
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 50; j++ {
			if _, _, err := s.SessionWithUser(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Fatalf("round %d: session %s readable after its deletion: %v", i, id, err)
			}
		}
		close(stop)
		wg.Wait()
		if _, _, err := s.SessionWithUser(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("round %d: session %s cached again after its deletion", i, id)
		}
	}
}

// A change made behind the store's back (another process) is seen once the
// cache entry's lifetime has passed.
func TestSessionCacheTTL(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	u, _ := s.CreateUser(ctx, newUser("alice"))
	now := time.Now()
	s.CreateSession(ctx, Session{ID: "x", UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour), LastUsedAt: now})
	if _, _, err := s.SessionWithUser(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE id = 'x'`); err != nil {
		t.Fatal(err)
	}
	clock := now
	s.cache.now = func() time.Time { return clock }
	clock = now.Add(cacheTTL + time.Second)
	if _, _, err := s.SessionWithUser(ctx, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after the TTL: %v, want ErrNotFound", err)
	}
}

// The session cache stays bounded and sheds stale entries.
func TestSessionCacheBounded(t *testing.T) {
	c := newSessionCache()
	now := time.Now()
	c.now = func() time.Time { return now }
	for i := 0; i < cacheMax+3000; i++ {
		c.put(c.generation(), Session{ID: strconv.Itoa(i), UserID: 1}, User{ID: 1})
	}
	if n := c.n.Load(); n > cacheMax {
		t.Errorf("%d cached sessions, want at most %d", n, cacheMax)
	}
	now = now.Add(cacheTTL)
	c.sweep()
	if n := c.n.Load(); n != 0 {
		t.Errorf("%d stale sessions left after a sweep", n)
	}
}
