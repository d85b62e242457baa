// Command baseline gives the load script its reference points, measured on
// the same machine in the same run: a bare Fiber server answering plain
// text, and the rate at which this machine verifies bcrypt hashes on all of
// its cores.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/crypto/bcrypt"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8099", "address of the bare Fiber server")
	cost := flag.Int("bcrypt-cost", 0, "instead of serving, print how many bcrypt verifications per second all CPUs do at this cost")
	dur := flag.Duration("duration", 5*time.Second, "how long to measure the bcrypt rate")
	flag.Parse()
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
