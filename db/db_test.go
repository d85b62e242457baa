package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"fiberauth/app/throttle"
	"fiberauth/app/throttle/throttletest"
	"fiberauth/db/dbtest"
)

// engines runs fn once on SQLite and once on PostgreSQL (when
// TEST_DATABASE_URL is set), each time with options for a fresh database.
func engines(t *testing.T, fn func(t *testing.T, o Options)) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, Options{Path: filepath.Join(t.TempDir(), "test.db")})
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, Options{URL: dbtest.URL(t)})
	})
}

// mustOpen opens a store with o and closes it when the test ends.
func mustOpen(tb testing.TB, o Options) *Store {
	tb.Helper()
	s, err := Open(context.Background(), o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func sqliteOptions(tb testing.TB) Options {
	return Options{Path: filepath.Join(tb.TempDir(), "test.db")}
}

func newUser(name string) NewUser {
	return NewUser{Username: name, UsernameKey: name, Email: name + "@example.com", EmailKey: name + "@example.com",
		PasswordHash: "hash", CreatedAt: time.Now()}
}

// session starts a session for u directly.
func session(t testing.TB, s *Store, u User, id string, created, expires time.Time) {
	t.Helper()
	err := s.StartSession(context.Background(), NewSession{
		Session:      Session{ID: id, UserID: u.ID, CreatedAt: created, ExpiresAt: expires, LastUsedAt: created},
		PasswordHash: u.PasswordHash,
	})
	if err != nil {
		t.Fatalf("start session %s: %v", id, err)
	}
}

func TestMigrationsAreVersionedAndIdempotent(t *testing.T) {
	engines(t, func(t *testing.T, o Options) {
		ctx := context.Background()
		for i := 0; i < 2; i++ {
			s, err := Open(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			v, err := s.SchemaVersion(ctx)
			if err != nil || v != LatestSchemaVersion() {
				t.Errorf("open %d: schema version %d (%v), want %d", i, v, err, LatestSchemaVersion())
			}
			s.Close()
		}
	})
}

// Both engines carry the same migration versions, under the same names.
func TestMigrationFoldersMatch(t *testing.T) {
	names := func(dir string) []string {
		entries, err := migrationFS.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	lite, pg := names("migrations/sqlite"), names("migrations/postgres")
	if strings.Join(lite, ",") != strings.Join(pg, ",") {
		t.Errorf("migrations differ:\nsqlite:   %v\npostgres: %v", lite, pg)
	}
	if len(lite) < 3 {
		t.Errorf("only %d migrations found", len(lite))
	}
}

// An instance refuses a database migrated by a newer release.
func TestSchemaTooNew(t *testing.T) {
	engines(t, func(t *testing.T, o Options) {
		ctx := context.Background()
		s := mustOpen(t, o)
		if _, err := s.exec(ctx, s.w, `INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, ?)`,
			LatestSchemaVersion()+1, true); err != nil {
			t.Fatal(err)
		}
		s.Close()
		_, err := Open(ctx, o)
		if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), fmt.Sprint(LatestSchemaVersion()+1)) {
			t.Fatalf("Open on a newer schema: %v, want ErrSchemaTooNew naming the version", err)
		}
	})
}

// A database made by the first release's migration runner is taken over
// without applying its migrations again, and keeps its data.
func TestLegacyRunnerAdopted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	ctx := context.Background()
	raw, err := sql.Open("sqlite3", sqliteDSN(path, false))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"00001_users_sessions.sql", "00002_events.sql"} {
		body, _ := migrationFS.ReadFile("migrations/sqlite/" + name)
		if _, err := raw.Exec(string(body)); err != nil {
			t.Fatal(err)
		}
	}
	for _, stmt := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
		`INSERT INTO schema_migrations VALUES (1, '0001_users_sessions.sql', 0), (2, '0002_events.sql', 0)`,
		`INSERT INTO users (username, username_key, email, email_key, password_hash, created_at) VALUES ('old', 'old', 'old@example.com', 'old@example.com', 'h', 1)`,
	} {
		if _, err := raw.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()
	s := mustOpen(t, Options{Path: path})
	if v, err := s.SchemaVersion(ctx); err != nil || v != LatestSchemaVersion() {
		t.Fatalf("version %d (%v), want %d", v, err, LatestSchemaVersion())
	}
	if _, err := s.UserByUsernameKey(ctx, "old"); err != nil {
		t.Errorf("the account made before the upgrade: %v", err)
	}
}

func TestUniqueness(t *testing.T) {
	engines(t, func(t *testing.T, o Options) {
		s := mustOpen(t, o)
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
		un, em, err := s.Taken(ctx, "alice", "nobody@example.com")
		if err != nil || !un || em {
			t.Errorf("Taken(alice, nobody) = %v, %v, %v; want true, false", un, em, err)
		}
		un, em, _ = s.Taken(ctx, "nobody", "alice@example.com")
		if un || !em {
			t.Errorf("Taken(nobody, alice@) = %v, %v; want false, true", un, em)
		}
	})
}

// Concurrent registrations never see "database is locked", and exactly one
// of many racing for a name wins.
func TestConcurrentWrites(t *testing.T) {
	engines(t, func(t *testing.T, o Options) {
		s := mustOpen(t, o)
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		wins := make(chan struct{}, 100)
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
				if err == nil {
					wins <- struct{}{}
				}
				if errors.Is(err, ErrConflict) {
					err = nil
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		close(wins)
		for err := range errs {
			if err != nil {
				t.Errorf("concurrent write: %v", err)
			}
		}
		if len(wins) != 1 {
			t.Errorf("%d registrations of one name succeeded, want 1", len(wins))
		}
	})
}

func TestSessionsAndCascade(t *testing.T) {
	engines(t, func(t *testing.T, o Options) {
		s := mustOpen(t, o)
		ctx := context.Background()
		u, _ := s.CreateUser(ctx, newUser("alice"))
		now := time.Now()
		for _, id := range []string{"s1", "s2"} {
			session(t, s, u, id, now, now.Add(time.Hour))
		}
		se, su, err := s.SessionWithUser(ctx, "s1")
		if err != nil || se.UserID != u.ID || su.Username != "alice" {
			t.Fatalf("SessionWithUser: %+v %+v %v", se, su, err)
		}
		if err := s.AddEvent(ctx, Event{UserID: u.ID, Kind: EventSignIn, At: now}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DeleteUser(ctx, u.ID, "another hash", Void{}); !errors.Is(err, ErrChanged) {
			t.Errorf("delete with a stale hash: %v, want ErrChanged", err)
		}
		if _, err := s.DeleteUser(ctx, u.ID, u.PasswordHash, Void{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.SessionWithUser(ctx, "s2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("session survived its user: %v", err)
		}
		if ev, _ := s.ListEvents(ctx, u.ID, 10); len(ev) != 0 {
			t.Errorf("events survived their user: %v", ev)
		}
		if _, err := s.DeleteUser(ctx, u.ID, u.PasswordHash, Void{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleting again: %v, want ErrNotFound", err)
		}
	})
}

// A session is created only while the password hash it was checked against
// is still the account's, and not for an account deleted meanwhile; so is a
// hash upgrade.
func TestConditionalWrites(t *testing.T) {
	engines(t, func(t *testing.T, o Options) {
		s := mustOpen(t, o)
		ctx := context.Background()
		u, _ := s.CreateUser(ctx, newUser("alice"))
		now := time.Now()
		start := func(id, hash string) error {
			return s.StartSession(ctx, NewSession{PasswordHash: hash,
				Session: Session{ID: id, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour), LastUsedAt: now},
				Event:   Event{Kind: EventSignIn, At: now}, KnownClient: "d:device"})
		}
		if err := start("ok", "hash"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ChangePassword(ctx, u.ID, "hash", "new hash", Void{Sessions: OtherSessions, Session: "ok"}, Event{Kind: EventPasswordChange, At: now}); err != nil {
			t.Fatal(err)
		}
		if err := start("stale", "hash"); !errors.Is(err, ErrChanged) {
			t.Errorf("session with the old hash: %v, want ErrChanged", err)
		}
		if err := s.UpgradePasswordHash(ctx, u.ID, "hash", "rehashed old"); !errors.Is(err, ErrChanged) {
			t.Errorf("upgrade of the old hash: %v, want ErrChanged", err)
		}
		if _, err := s.ChangePassword(ctx, u.ID, "hash", "other", Void{Sessions: OtherSessions, Session: "ok"}, Event{Kind: EventPasswordChange, At: now}); !errors.Is(err, ErrChanged) {
			t.Errorf("change from the old hash: %v, want ErrChanged", err)
		}
		if got, _ := s.UserByID(ctx, u.ID); got.PasswordHash != "new hash" {
			t.Errorf("hash = %q, want the changed one", got.PasswordHash)
		}
		if err := s.UpgradePasswordHash(ctx, u.ID, "new hash", "new hash rehashed"); err != nil {
			t.Errorf("upgrade of the current hash: %v", err)
		}
		if known, err := s.KnownClient(ctx, u.ID, "d:device", now.Add(-time.Hour)); err != nil || !known {
			t.Errorf("KnownClient after a sign-in = %v, %v", known, err)
		}
		if known, _ := s.KnownClient(ctx, u.ID, "d:other", now.Add(-time.Hour)); known {
			t.Error("an unseen client is known")
		}
		if known, _ := s.KnownClient(ctx, u.ID, "d:device", now.Add(time.Hour)); known {
			t.Error("a client seen before the cut-off is known")
		}
		s.DeleteUser(ctx, u.ID, "new hash rehashed", Void{})
		if err := start("gone", "new hash rehashed"); !errors.Is(err, ErrChanged) {
			t.Errorf("session for a deleted account: %v, want ErrChanged", err)
		}
	})
}

func TestEndSessions(t *testing.T) {
	engines(t, func(t *testing.T, o Options) {
		s := mustOpen(t, o)
		ctx := context.Background()
		a, _ := s.CreateUser(ctx, newUser("alice"))
		b, _ := s.CreateUser(ctx, newUser("bob"))
		now := time.Now()
		session(t, s, a, "a1", now, now.Add(time.Hour))
		session(t, s, a, "a2", now, now.Add(time.Hour))
		session(t, s, a, "a3", now, now.Add(time.Hour))
		session(t, s, b, "b1", now, now.Add(time.Hour))
		ev := Event{Kind: EventSessionEnded, At: now}
		if _, err := s.Apply(ctx, a.ID, Void{Sessions: ThisSession, Session: "b1"}, ev); !errors.Is(err, ErrNotFound) {
			t.Errorf("ending another account's session: %v, want ErrNotFound", err)
		}
		if _, err := s.Apply(ctx, a.ID, Void{Sessions: ThisSession, Session: "a1"}, ev); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Apply(ctx, a.ID, Void{Sessions: OtherSessions, Session: "a2"}, ev); err != nil || n != 1 {
			t.Errorf("ending the other sessions = %d, %v; want 1", n, err)
		}
		if _, err := s.Apply(ctx, a.ID, Void{Sessions: ThisSession, Session: "a2"}, Event{}); err != nil {
			t.Fatal(err)
		}
		if l, _ := s.ListSessions(ctx, a.ID, now, time.Time{}); len(l) != 0 {
			t.Errorf("alice's sessions left: %+v", l)
		}
		if l, _ := s.ListSessions(ctx, b.ID, now, time.Time{}); len(l) != 1 {
			t.Errorf("bob's sessions: %+v, want his one", l)
		}
		if evs, _ := s.ListEvents(ctx, a.ID, 10); len(evs) != 2 {
			t.Errorf("events: %+v, want two session endings", evs)
		}
	})
}

func TestSecretIsStoredOnce(t *testing.T) {
	engines(t, func(t *testing.T, o Options) {
		ctx := context.Background()
		var wg sync.WaitGroup
		got := make([][]byte, 8)
		for i := range got {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				s, err := Open(ctx, o)
				if err != nil {
					t.Error(err)
					return
				}
				defer s.Close()
				got[i], err = s.Secret(ctx, "k", func() ([]byte, error) { return []byte{byte(i), 1, 2}, nil })
				if err != nil {
					t.Error(err)
				}
			}(i)
		}
		wg.Wait()
		for i := range got {
			if string(got[i]) != string(got[0]) {
				t.Fatalf("instances got different secrets: %v", got)
			}
		}
		s := mustOpen(t, o)
		again, _ := s.Secret(ctx, "k", func() ([]byte, error) { return []byte("new"), nil })
		if string(again) != string(got[0]) {
			t.Errorf("secret changed across reopen: %v then %v", got[0], again)
		}
	})
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
			_, err := Open(context.Background(), Options{Path: tt.path})
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
	engines(t, func(t *testing.T, o Options) {
		s := mustOpen(t, o)
		ctx := context.Background()
		u, _ := s.CreateUser(ctx, newUser("alice"))
		now := time.Now()
		session(t, s, u, "old", now.Add(-2*time.Hour), now.Add(-time.Hour))
		session(t, s, u, "idle", now.Add(-20*24*time.Hour), now.Add(time.Hour))
		session(t, s, u, "live", now, now.Add(time.Hour))
		s.AddEvent(ctx, Event{UserID: u.ID, Kind: EventSignIn, At: now.AddDate(0, 0, -100)})
		s.AddEvent(ctx, Event{UserID: u.ID, Kind: EventSignIn, At: now})
		r := throttle.Rule{Limit: 5, Window: time.Minute, Base: time.Second}
		s.Throttle().Take(ctx, "lapsed", r, now.Add(-time.Hour))
		s.Throttle().Take(ctx, "live", r, now)
		p, err := s.Prune(ctx, now, now.AddDate(0, 0, -14), now.AddDate(0, 0, -90), now.AddDate(0, 0, -30))
		if err != nil || p.Sessions != 2 || p.Events != 1 || p.Throttle != 1 {
			t.Errorf("Prune = %+v, %v; want 2 sessions (expired, idle), 1 event, 1 count", p, err)
		}
		if l, _ := s.ListSessions(ctx, u.ID, now, time.Time{}); len(l) != 1 || l[0].ID != "live" {
			t.Errorf("sessions left: %+v", l)
		}
	})
}

func TestIntegrity(t *testing.T) {
	s := mustOpen(t, sqliteOptions(t))
	if res, err := s.IntegrityCheck(context.Background()); err != nil || res != "ok" {
		t.Errorf("integrity_check = %q, %v", res, err)
	}
}

func TestThrottleConformance(t *testing.T) {
	engines(t, func(t *testing.T, o Options) {
		s := mustOpen(t, o)
		throttletest.Run(t, func(t *testing.T) throttle.Store {
			if _, err := s.exec(context.Background(), s.w, `DELETE FROM throttle`); err != nil {
				t.Fatal(err)
			}
			return s.Throttle()
		})
	})
}

// Once a session has been ended, no read gives it back, even with readers
// racing to cache it.
func TestSessionCacheNeverResurrects(t *testing.T) {
	engines(t, func(t *testing.T, o Options) {
		s := mustOpen(t, o)
		ctx := context.Background()
		if err := s.WaitListening(ctx); err != nil {
			t.Fatal(err)
		}
		u, _ := s.CreateUser(ctx, newUser("alice"))
		now := time.Now()
		for i := 0; i < 60; i++ {
			id := fmt.Sprintf("s%d", i)
			session(t, s, u, id, now, now.Add(time.Hour))
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
			// Let the readers cache the session before it ends.
			for {
				if _, _, ok := s.cache.get(id); ok {
					break
				}
				s.SessionWithUser(ctx, id)
			}
			var err error
			switch i % 3 {
			case 0:
				_, err = s.Apply(ctx, u.ID, Void{Sessions: ThisSession, Session: id}, Event{})
			case 1:
				_, err = s.Apply(ctx, u.ID, Void{Sessions: OtherSessions, Session: "none"}, Event{})
			case 2:
				_, err = s.Apply(ctx, u.ID, Void{Sessions: AllSessions}, Event{})
			}
			if err != nil {
				t.Fatal(err)
			}
			for j := 0; j < 50; j++ {
				if _, _, err := s.SessionWithUser(ctx, id); !errors.Is(err, ErrNotFound) {
					t.Fatalf("round %d: session %s readable after its end: %v", i, id, err)
				}
			}
			close(stop)
			wg.Wait()
			if _, _, err := s.SessionWithUser(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Fatalf("round %d: session %s cached again after its end", i, id)
			}
		}
	})
}

// A change made behind the store's back (another program) is seen once the
// cache entry's lifetime has passed.
func TestSessionCacheTTL(t *testing.T) {
	s := mustOpen(t, sqliteOptions(t))
	ctx := context.Background()
	clock := time.Now()
	s.cache = newSessionCache(func() time.Time { return clock })
	u, _ := s.CreateUser(ctx, newUser("alice"))
	session(t, s, u, "x", clock, clock.Add(time.Hour))
	if _, _, err := s.SessionWithUser(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE id = 'x'`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SessionWithUser(ctx, "x"); err != nil {
		t.Fatalf("within the TTL the cached entry answers: %v", err)
	}
	clock = clock.Add(cacheTTL)
	if _, _, err := s.SessionWithUser(ctx, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after the TTL: %v, want ErrNotFound", err)
	}
}

// The session cache stays bounded whatever is put into it.
func TestSessionCacheBounded(t *testing.T) {
	c := newSessionCache(nil)
	for i := 0; i < cacheMax+3000; i++ {
		c.put(c.generation(), Session{ID: fmt.Sprint(i), UserID: 1}, User{ID: 1})
	}
	if n := c.c.Len(); n > cacheMax+16 {
		t.Errorf("%d cached sessions, want at most about %d", n, cacheMax)
	}
	c.invalidateUser(1)
	if n := c.c.Len(); n != 0 {
		t.Errorf("%d sessions left after invalidating their user", n)
	}
}

// A session ended through one store is refused by another store on the
// same PostgreSQL database (another instance) well within a second: the
// notification drops it from the other's cache.
func TestRevocationReachesOtherInstances(t *testing.T) {
	url := dbtest.URL(t)
	a, b := mustOpen(t, Options{URL: url}), mustOpen(t, Options{URL: url})
	ctx := context.Background()
	for _, s := range []*Store{a, b} {
		if err := s.WaitListening(ctx); err != nil {
			t.Fatal(err)
		}
	}
	u, _ := a.CreateUser(ctx, newUser("alice"))
	now := time.Now()
	for _, id := range []string{"one", "two", "three"} {
		session(t, a, u, id, now, now.Add(time.Hour))
		if _, _, err := b.SessionWithUser(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, _, ok := b.cache.get(id); !ok {
			t.Fatalf("instance B did not cache %s", id)
		}
	}
	check := func(id, how string) {
		t.Helper()
		start := time.Now()
		for {
			if _, _, err := b.SessionWithUser(ctx, id); errors.Is(err, ErrNotFound) {
				t.Logf("%s seen by the other instance after %v", how, time.Since(start))
				return
			}
			if time.Since(start) > time.Second {
				t.Fatalf("%s: the other instance still accepts the session after 1s", how)
			}
			time.Sleep(time.Millisecond)
		}
	}
	a.Apply(ctx, u.ID, Void{Sessions: ThisSession, Session: "one"}, Event{})
	check("one", "ending one session")
	a.Apply(ctx, u.ID, Void{Sessions: OtherSessions, Session: "three"}, Event{})
	check("two", "ending the other sessions")
	a.DeleteUser(ctx, u.ID, u.PasswordHash, Void{})
	check("three", "deleting the account")
}

// Concurrent write transactions on SQLite share commits: each is answered
// only after its own work committed, and one that fails is rolled back
// alone, leaving the others of its batch committed.
func TestBatchedWrites(t *testing.T) {
	s := mustOpen(t, sqliteOptions(t))
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 60)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := fmt.Sprintf("user%d", i)
			if i%3 == 0 {
				name = "taken" // all but one of these fail
			}
			_, errs[i] = s.CreateUser(ctx, newUser(name))
		}(i)
	}
	wg.Wait()
	ok, conflicts := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrConflict):
			conflicts++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 41 || conflicts != 19 {
		t.Errorf("%d created and %d conflicts, want 41 and 19", ok, conflicts)
	}
	// What was answered as committed is on disk: a new store sees it.
	s.Close()
	again := mustOpen(t, Options{Path: s.name})
	for i := range errs {
		name := fmt.Sprintf("user%d", i)
		if i%3 == 0 {
			continue
		}
		if _, err := again.UserByUsernameKey(ctx, name); err != nil {
			t.Errorf("%s answered as created but not found after reopening: %v", name, err)
		}
	}
	// A transaction whose function fails leaves nothing behind.
	err := again.tx(ctx, func(tx *sql.Tx) error {
		if _, err := again.exec(ctx, tx, `INSERT INTO settings (key, value) VALUES ('half', x'00')`); err != nil {
			return err
		}
		return errors.New("changed my mind")
	})
	if err == nil || err.Error() != "changed my mind" {
		t.Fatalf("tx error = %v", err)
	}
	if v, err := again.Secret(ctx, "half", func() ([]byte, error) { return []byte("fresh"), nil }); err != nil || string(v) != "fresh" {
		t.Errorf("the failed transaction's insert survived: %q, %v", v, err)
	}
	// After Close, writes fail cleanly.
	again.Close()
	if _, err := again.CreateUser(ctx, newUser("late")); err == nil {
		t.Error("a write after Close succeeded")
	}
}

// A refresh holds its token's state from a read; the spend itself is
// conditional, so a token spent by someone else between that read and the
// write is not spent again: when its successor has been used meanwhile,
// the late request is reuse and ends the session.
func TestRefreshSpendIsConditional(t *testing.T) {
	engines(t, func(t *testing.T, o Options) {
		s := mustOpen(t, o)
		ctx := context.Background()
		u, _ := s.CreateUser(ctx, newUser("alice"))
		now := time.Now()
		h := func(name string) []byte { b := sha256.Sum256([]byte(name)); return b[:] }
		err := s.StartSession(ctx, NewSession{PasswordHash: u.PasswordHash, RefreshHash: h("t1"),
			Session: Session{ID: "sid", UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour), LastUsedAt: now}})
		if err != nil {
			t.Fatal(err)
		}
		refresh := func(old, next string, check func(Session, User) error) RefreshOutcome {
			t.Helper()
			out, _, _, err := s.RefreshSession(ctx, Refresh{Hash: h(old), NewHash: h(next), Now: now, Grace: time.Minute, Check: check,
				Reused: Void{Sessions: ThisSession}})
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		late := refresh("t1", "late", func(Session, User) error {
			// Between this request's read and its write, the owner spends
			// t1 and then its successor.
			if out := refresh("t1", "t2", nil); out != RefreshRotated {
				t.Fatalf("owner's refresh: %v", out)
			}
			if out := refresh("t2", "t3", nil); out != RefreshRotated {
				t.Fatalf("owner's second refresh: %v", out)
			}
			return nil
		})
		if late != RefreshReused {
			t.Fatalf("the late request with t1: outcome %v, want RefreshReused", late)
		}
		if _, _, err := s.SessionWithUser(ctx, "sid"); !errors.Is(err, ErrNotFound) {
			t.Errorf("the session survived a reuse: %v", err)
		}
	})
}

// TestCacheStoreRacingRemoval: a read that passed its generation check is
// paused just before it stores its (now stale) session, while the session
// is removed. The removal must wait for the store and then delete it, or
// refuse it; a stale entry must never be found after the removal returns.
func TestCacheStoreRacingRemoval(t *testing.T) {
	c := newSessionCache(nil)
	var once sync.Once
	removed := make(chan struct{})
	c.beforeStore = func(id string) {
		once.Do(func() {
			started := make(chan struct{})
			go func() {
				close(started)
				c.invalidate(id)
				close(removed)
			}()
			<-started
			// Give the removal every chance to finish first: if it can,
			// the store below puts back what it removed.
			select {
			case <-removed:
			case <-time.After(100 * time.Millisecond):
			}
		})
	}
	gen := c.generation()
	c.put(gen, Session{ID: "s1", UserID: 1}, User{ID: 1})
	<-removed
	if _, _, ok := c.get("s1"); ok {
		t.Fatal("a session removed while its read was being stored is in the cache")
	}
}
