package db

import (
	"context"
	"errors"
	"testing"
	"time"

	"fiberauth/db/dbtest"
)

// While PostgreSQL is down the store answers ErrUnavailable (never a raw
// driver error) and caches nothing it cannot hear revoked; when the server
// is back it serves again by itself, with its notification listener
// reconnected.
func TestPostgresRestart(t *testing.T) {
	srv := dbtest.StartServer(t)
	s := mustOpen(t, Options{URL: srv.URL()})
	ctx := context.Background()
	if err := s.WaitListening(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := s.CreateUser(ctx, newUser("alice"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	session(t, s, u, "before", now, now.Add(time.Hour))
	if _, _, err := s.SessionWithUser(ctx, "before"); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	// The listener notices and stops caching.
	deadline := time.Now().Add(10 * time.Second)
	for s.listener.connected.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.listener.connected.Load() || s.cache.enabled.Load() {
		t.Fatal("the cache is still trusted while notifications cannot arrive")
	}
	for name, err := range map[string]error{
		"read":  s.Ping(ctx),
		"write": func() error { _, err := s.CreateUser(ctx, newUser("bob")); return err }(),
		"session": func() error {
			_, _, err := s.SessionWithUser(ctx, "before")
			return err
		}(),
	} {
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s while the database is down: %v, want ErrUnavailable", name, err)
		}
	}

	srv.Start()
	deadline = time.Now().Add(20 * time.Second)
	for (s.Ping(ctx) != nil || !s.listener.connected.Load()) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	if !s.listener.connected.Load() || !s.cache.enabled.Load() {
		t.Error("the listener did not reconnect")
	}
	if _, _, err := s.SessionWithUser(ctx, "before"); err != nil {
		t.Errorf("a session from before the restart: %v", err)
	}
	if _, err := s.CreateUser(ctx, newUser("carol")); err != nil {
		t.Errorf("a write after the restart: %v", err)
	}
}
