package e2e

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fiberauth/db"
	"fiberauth/db/dbtest"
)

// TestCluster runs three instances of the built program on one PostgreSQL
// database of a private server, which it also restarts under traffic.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: run without -short")
	}
	srv := dbtest.StartServer(t)
	database := srv.URL()

	// Cold start: all three at once on an empty database.
	var procs [3]*proc
	for i := range procs {
		procs[i] = launch(t, baseEnv(database, "LOG_LEVEL=info", "REGISTRATIONS_PER_IP=100000000"))
	}
	for _, p := range procs {
		p.waitListening()
	}
	a, b, c := procs[0], procs[1], procs[2]
	t.Run("one schema, one key", func(t *testing.T) {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, database)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var rows, versions, keys int
		conn.QueryRow(ctx, `SELECT COUNT(*), COUNT(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0`).Scan(&rows, &versions)
		conn.QueryRow(ctx, `SELECT COUNT(*) FROM settings WHERE key = 'jwt_secret'`).Scan(&keys)
		if rows != db.MigrationCount() || versions != rows {
			t.Errorf("%d migration records for %d versions, want each of %d applied once", rows, versions, db.MigrationCount())
		}
		if keys != 1 {
			t.Errorf("%d signing keys stored, want 1", keys)
		}
		migrated := 0
		for _, p := range procs {
			migrated += strings.Count(p.log(), "msg=migrated")
		}
		if migrated != db.MigrationCount() {
			t.Errorf("the instances applied %d migrations in all, want %d", migrated, db.MigrationCount())
		}
		if st, _ := register(a.base, "alice", password); st != 201 {
			t.Fatalf("register on A: %d", st)
		}
		_, tok, _ := token(b.base, "alice", password)
		for name, p := range map[string]*proc{"A": a, "B": b, "C": c} {
			if st, _ := me(p.base, tok); st != 200 {
				t.Errorf("a token issued by B, on %s: %d", name, st)
			}
		}
	})

	t.Run("revocation reaches every instance", func(t *testing.T) {
		var worst time.Duration
		for round := 0; round < 5; round++ {
			_, tok, _ := token(a.base, "alice", password)
			for _, p := range []*proc{b, c} {
				if st, _ := me(p.base, tok); st != 200 {
					t.Fatalf("fresh token refused: %d", st)
				}
			}
			res, err := client.PostForm(a.base+"/revoke", url.Values{"token": {tok}})
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			revoked := time.Now()
			for _, p := range []*proc{b, c} {
				for {
					st, _ := me(p.base, tok)
					if st == 401 {
						break
					}
					if time.Since(revoked) > time.Second {
						t.Fatalf("round %d: another instance still accepts a revoked token after 1 s", round)
					}
				}
			}
			lag := time.Since(revoked)
			t.Logf("round %d: seen by both after %v", round, lag)
			worst = max(worst, lag)
		}
		t.Logf("revocation seen by both other instances at most %v after the revoking request returned", worst)
	})

	t.Run("limits hold for the cluster", func(t *testing.T) {
		if st, _ := register(a.base, "bob", password); st != 201 {
			t.Fatalf("register bob: %d", st)
		}
		statuses := map[int]int{}
		for i := 0; i < 8; i++ {
			p := procs[i%3]
			res, err := client.PostForm(p.base+"/token", url.Values{"username": {"bob"}, "password": {"wrong password"}})
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			statuses[res.StatusCode]++
		}
		if statuses[401] != 5 || statuses[429] != 3 {
			t.Errorf("8 wrong guesses over 3 instances: %v, want 5 checked (401) and 3 refused (429)", statuses)
		}
	})

	t.Run("one registration wins across instances", func(t *testing.T) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		statuses := map[int]int{}
		gate := make(chan struct{})
		for i := 0; i < 30; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-gate
				st, err := register(procs[i%3].base, "samename", password)
				if err != nil {
					st = -1
				}
				mu.Lock()
				statuses[st]++
				mu.Unlock()
			}(i)
		}
		close(gate)
		wg.Wait()
		if statuses[201] != 1 || statuses[409] != 29 {
			t.Errorf("30 registrations of one name over 3 instances: %v, want 1×201 and 29×409", statuses)
		}
	})

	t.Run("database restart under traffic", func(t *testing.T) {
		var acked sync.Map
		var counts sync.Map
		count := func(k string) {
			v, _ := counts.LoadOrStore(k, new(atomic.Int64))
			v.(*atomic.Int64).Add(1)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 6; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					name := fmt.Sprintf("restart%d_%05d", w, i)
					st, err := register(procs[(w+i)%3].base, name, password)
					switch {
					case err != nil:
						count("error " + err.Error())
					case st == 201:
						acked.Store(name, true)
						count("201")
					default:
						count(fmt.Sprint(st))
					}
				}
			}(w)
		}
		time.Sleep(500 * time.Millisecond)
		srv.Stop()
		// While it is down: readiness says so, and answers are 503.
		deadline := time.Now().Add(10 * time.Second)
		ready := 0
		for time.Now().Before(deadline) {
			res, err := client.Get(b.base + "/readyz")
			if err == nil {
				ready = res.StatusCode
				res.Body.Close()
				if ready == 503 {
					break
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		if ready != 503 {
			t.Errorf("/readyz while the database is down: %d, want 503", ready)
		}
		time.Sleep(500 * time.Millisecond)
		srv.Start()
		// Full service again, by itself.
		deadline = time.Now().Add(30 * time.Second)
		for {
			allReady := true
			for _, p := range procs {
				res, err := client.Get(p.base + "/readyz")
				if err != nil || res.StatusCode != 200 {
					allReady = false
				}
				if err == nil {
					res.Body.Close()
				}
			}
			if allReady {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the instances did not recover within 30 s of the database's return")
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond)
		close(stop)
		wg.Wait()
		summary := map[string]int64{}
		counts.Range(func(k, v any) bool {
			summary[k.(string)] = v.(*atomic.Int64).Load()
			return true
		})
		t.Logf("answers around the restart: %v", summary)
		for k := range summary {
			if k != "201" && k != "503" {
				t.Errorf("answer %q around the database restart: want only 201 and 503", k)
			}
		}
		if summary["503"] == 0 {
			t.Error("no 503 while the database was down: the restart did not happen under traffic")
		}
		// Every acknowledged registration is there.
		lost := 0
		n := 0
		acked.Range(func(k, _ any) bool {
			n++
			if st, _, _ := token(procs[n%3].base, k.(string), password); st != 200 {
				lost++
			}
			return true
		})
		if lost > 0 {
			t.Errorf("%d of %d acknowledged registrations cannot sign in after the restart", lost, n)
		}
		for _, p := range procs {
			if strings.Contains(p.log(), "level=ERROR") && strings.Contains(p.log(), "status=500") {
				t.Errorf("an instance answered 500:\n%s", p.log())
			}
		}
	})
}
