package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"fiberauth/db"
)

// TestCrashSafety registers users from several clients as fast as they go,
// kills the server with SIGKILL mid-stream, restarts it on the same file,
// and checks that every registration answered 201 can sign in and that the
// database is sound.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: run without -short")
	}
	engines(t, crashSafety)
}

func crashSafety(t *testing.T, path string) {
	p := start(t, baseEnv(path, "REGISTRATIONS_PER_IP=100000000"))

	var mu sync.Mutex
	var acked []string
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("crash%d_%05d", w, i)
				sent.Add(1)
				st, err := register(p.base, name, password)
				if err != nil {
					return // the server is gone
				}
				if st == 201 {
					mu.Lock()
					acked = append(acked, name)
					mu.Unlock()
				}
			}
		}(w)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	close(stop)
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no registration was acknowledged before the kill")
	}

	p = start(t, baseEnv(path))
	var lost []string
	var lmu sync.Mutex
	sem := make(chan struct{}, 16)
	var cw sync.WaitGroup
	for _, name := range acked {
		cw.Add(1)
		sem <- struct{}{}
		go func(name string) {
			defer cw.Done()
			defer func() { <-sem }()
			if st, _, err := token(p.base, name, password); err != nil || st != 200 {
				lmu.Lock()
				lost = append(lost, fmt.Sprintf("%s (%d %v)", name, st, err))
				lmu.Unlock()
			}
		}(name)
	}
	cw.Wait()
	t.Logf("crash test: %d registrations sent, %d acknowledged with 201 before SIGKILL, %d of those sign in after restart",
		sent.Load(), len(acked), len(acked)-len(lost))
	if len(lost) > 0 {
		t.Errorf("%d acknowledged registrations lost: %v", len(lost), lost[:min(len(lost), 10)])
	}
	if _, err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	o := db.Options{Path: path}
	if strings.HasPrefix(path, "postgres://") {
		o = db.Options{URL: path}
	}
	store, err := db.Open(context.Background(), o)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer store.Close()
	if res, err := store.IntegrityCheck(context.Background()); err != nil || res != "ok" {
		t.Errorf("integrity_check = %q, %v", res, err)
	}
}
