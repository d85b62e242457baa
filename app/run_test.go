package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fiberauth/app/config"
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

// A stop that comes before the server has begun serving still stops it
// (the server would otherwise start afterwards and serve for ever).
func TestStopBeforeServing(t *testing.T) {
	stopped := make(chan struct{})
	var log syncBuffer
	cancel, done := startRun(t, runOptions{
		beforeServe:   func() { <-stopped }, // serving starts only after the stop
		afterShutdown: func() { close(stopped) },
	}, &log)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("a stop that came before serving began did not stop the server:\n%s", log.String())
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
// start with one line saying where it looked, instead of serving 500s, and
// before anything is opened or written: no database file appears.
func TestDevWithoutTemplates(t *testing.T) {
	t.Chdir(t.TempDir())
	path := filepath.Join(t.TempDir(), "x.db")
	env := map[string]string{"DATABASE_PATH": path, "BCRYPT_COST": "4", "ADDR": "127.0.0.1:0"}
	err := run(context.Background(), []string{"--dev"}, func(k string) string { return env[k] }, io.Discard, io.Discard, runOptions{})
	if err == nil || !strings.Contains(err.Error(), "templates cannot be read from") || !strings.Contains(err.Error(), "views") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the database was created before the settings were refused: %v", err)
	}
}

// TestClusterNeedsIssuer: on PostgreSQL without ISSUER or PUBLIC_URL each
// instance would name its own address as issuer and refuse the others'
// tokens: the start is refused, with one line, before the database is
// opened (the URL names no server that answers).
func TestClusterNeedsIssuer(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "ADDR": "127.0.0.1:0"}
	err := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard, runOptions{})
	if err == nil || !strings.Contains(err.Error(), "neither ISSUER nor PUBLIC_URL") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v", err)
	}
	// PUBLIC_URL alone is the issuer.
	cfg, err := config.Parse(nil, func(k string) string {
		return map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "PUBLIC_URL": "https://auth.example.com/"}[k]
	}, io.Discard)
	if err != nil || cfg.CheckServe() != nil || cfg.Issuer != "https://auth.example.com" {
		t.Fatalf("with PUBLIC_URL: issuer %q, %v, %v", cfg.Issuer, err, cfg.CheckServe())
	}
}
