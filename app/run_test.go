package app

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fiberauth/app/config"
	"fiberauth/db"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRun runs the program in this process with o and returns a channel
// that receives what run returned.
func startRun(t *testing.T, o runOptions, log io.Writer) (context.CancelFunc, <-chan error) {
	t.Helper()
	env := map[string]string{"DATABASE_PATH": filepath.Join(t.TempDir(), "app.db"), "ADDR": "127.0.0.1:0", "BCRYPT_COST": "4"}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	o.ready = ready
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, log, o) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	t.Cleanup(cancel)
	return cancel, done
}

// A graceful stop waits for a housekeeping round in progress before it
// closes the database.
func TestShutdownWaitsForHousekeeping(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	var once sync.Once
	var log syncBuffer
	cancel, done := startRun(t, runOptions{beforePrune: func(ctx context.Context) {
		once.Do(func() {
			close(started)
			<-release // the round at start, held until the test lets go
			finished.Store(true)
		})
	}}, &log)
	<-started
	cancel() // a graceful stop while the janitor is in its round
	select {
	case err := <-done:
		t.Fatalf("run returned (%v) while housekeeping was still running", err)
	case <-time.After(2 * time.Second):
		// Still waiting, as it should: let the round finish.
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if !finished.Load() {
		t.Fatal("run returned before the housekeeping round ended")
	}
	if bytes.Contains([]byte(log.String()), []byte("housekeeping failed")) {
		t.Errorf("the round ran on a closed database:\n%s", log.String())
	}
}

// A second signal during a graceful stop stops the program at once.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	var log syncBuffer
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	_, done := startRun(t, runOptions{signals: sigs, beforePrune: func(context.Context) {
		// Hold the graceful stop up: it waits for this round.
		once.Do(func() { close(held); <-release })
	}}, &log)
	defer close(release)
	<-held
	sigs <- os.Interrupt
	select {
	case err := <-done:
		t.Fatalf("run returned (%v) after one signal while the stop was held up", err)
	case <-time.After(2 * time.Second):
	}
	sigs <- os.Interrupt
	select {
	case err := <-done:
		if err != errForced {
			t.Errorf("run returned %v, want errForced", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second signal did not stop the program")
	}
	if !bytes.Contains([]byte(log.String()), []byte("second signal")) {
		t.Errorf("the log does not say why it stopped:\n%s", log.String())
	}
}

// TestDevWithoutTemplates: DEV on where ./views cannot be read stops the
// start with one line saying where it looked, instead of serving 500s.
func TestDevWithoutTemplates(t *testing.T) {
	t.Chdir(t.TempDir())
	cfg, err := config.Parse([]string{"--dev"}, func(k string) string {
		return map[string]string{"DATABASE_PATH": filepath.Join(t.TempDir(), "x.db"), "BCRYPT_COST": "4"}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	store, err := db.Open(context.Background(), db.Options{Path: cfg.DatabasePath})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	_, err = New(context.Background(), cfg, store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "templates cannot be read from") || !strings.Contains(err.Error(), "views") {
		t.Fatalf("err = %v", err)
	}
}
