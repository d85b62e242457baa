// Command baseline gives the load script its reference points, measured on
// the same machine in the same run: a bare Fiber server answering plain
// text, the rate at which this machine verifies bcrypt hashes on all of its
// cores, the rate of bare one-row durable transactions on a database
// engine set up as the service sets it up, and a server that does only
// the unavoidable work of a refresh grant (refresh.go).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/mattn/go-sqlite3"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/crypto/bcrypt"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8099", "address of the bare Fiber server")
	cost := flag.Int("bcrypt-cost", 0, "instead of serving, print how many bcrypt verifications per second all CPUs do at this cost")
	dur := flag.Duration("duration", 5*time.Second, "how long to measure the bcrypt or transaction rate")
	durable := flag.String("durable", "", "instead of serving, print how many one-row transactions per second commit durably on this database (a SQLite file path, or a postgres:// URL)")
	conns := flag.Int("conns", 8, "concurrent writers for -durable (SQLite always has one, as in the service)")
	refresh := flag.String("refresh", "", "instead, serve a bare refresh grant at POST /token on -addr, storing its chains in this database (a SQLite file path, or a postgres:// URL)")
	chains := flag.Int("chains", 8, "chains the -refresh server makes")
	out := flag.String("out", "chains.txt", "file the -refresh server writes its chains' first tokens to")
	flag.Parse()
	if *refresh != "" {
		if err := refreshServer(*addr, *refresh, *chains, *out); err != nil {
			fmt.Fprintln(os.Stderr, "baseline:", err)
			os.Exit(1)
		}
		return
	}
	if *durable != "" {
		rate, err := durableRate(*durable, *conns, *dur)
		if err != nil {
			fmt.Fprintln(os.Stderr, "baseline:", err)
			os.Exit(1)
		}
		fmt.Printf("%.2f\n", rate)
		return
	}
	if *cost > 0 {
		rate, err := bcryptRate(*cost, *dur)
		if err != nil {
			fmt.Fprintln(os.Stderr, "baseline:", err)
			os.Exit(1)
		}
		fmt.Printf("%.2f\n", rate)
		return
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/", func(c *fiber.Ctx) error { return c.SendString("Hello, World!") })
	if err := app.Listen(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

// bcryptRate verifies a hash of the given cost on every CPU for d and
// returns verifications per second.
func bcryptRate(cost int, d time.Duration) (float64, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte("correct horse battery"), cost)
	if err != nil {
		return 0, err
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for i := 0; i < runtime.NumCPU(); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				bcrypt.CompareHashAndPassword(hash, []byte("correct horse battery"))
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}

// durableRate inserts one row per transaction from conns writers for d and
// returns commits per second. SQLite gets the service's pragmas
// (synchronous=FULL, WAL) and, like the service, one writing connection.
func durableRate(target string, conns int, d time.Duration) (float64, error) {
	db, pg, err := openDurable(target, conns)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if !pg {
		conns = 1
	}
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS baseline_commits (id BIGINT PRIMARY KEY, at BIGINT NOT NULL)`); err != nil {
		return 0, err
	}
	defer db.Exec(`DROP TABLE baseline_commits`)
	var next, n atomic.Int64
	var wg sync.WaitGroup
	var failure atomic.Value
	start := time.Now()
	deadline := start.Add(d)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				id := next.Add(1)
				q := `INSERT INTO baseline_commits (id, at) VALUES (?, ?)`
				if pg {
					q = `INSERT INTO baseline_commits (id, at) VALUES ($1, $2)`
				}
				if _, err := db.Exec(q, id, time.Now().UnixNano()); err != nil {
					failure.Store(err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, _ := failure.Load().(error); err != nil {
		return 0, err
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}
