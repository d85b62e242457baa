package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/signal"
	"syscall"
	"time"

	"fiberauth/app/config"
	"fiberauth/db"
)

// Housekeeping schedule: expired sessions and events older than
// eventRetention are deleted every pruneInterval.
const (
	pruneInterval  = time.Hour
	eventRetention = 90 * 24 * time.Hour
	// shutdownGrace is how long in-flight requests may take after
	// SIGINT or SIGTERM.
	shutdownGrace = 8 * time.Second
)

// Run is the whole program: it reads the configuration from args and
// getenv, opens the database, serves until ctx ends or SIGINT/SIGTERM
// arrives, then shuts down gracefully. Errors are one line for a person.
// If ready is not nil, the listening address is sent on it once the server
// accepts connections.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready chan<- string) error {
	cfg, err := config.Parse(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			return fmt.Errorf("cannot listen on %s: %v", cfg.Addr, op.Err)
		}
		return fmt.Errorf("cannot listen on %s: %v", cfg.Addr, err)
	}
	defer ln.Close()

	store, err := db.Open(ctx, cfg.DatabasePath)
	if err != nil {
		return err
	}
	defer store.Close()

	srv, err := New(ctx, cfg, store, log)
	if err != nil {
		return fmt.Errorf("cannot start: %v", err)
	}

	janitorCtx, stopJanitor := context.WithCancel(ctx)
	defer stopJanitor()
	go srv.Janitor(janitorCtx, pruneInterval, eventRetention)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.App().Listener(ln) }()
	log.Info("listening", slog.String("addr", "http://"+ln.Addr().String()), slog.String("database", cfg.DatabasePath))
	if ready != nil {
		ready <- ln.Addr().String()
	}

	select {
	case err := <-serveErr:
		if err != nil {
			return fmt.Errorf("server stopped: %v", err)
		}
		return nil
	case <-ctx.Done():
	}
	log.Info("shutting down")
	stopJanitor()
	if err := srv.App().ShutdownWithTimeout(shutdownGrace); err != nil {
		log.Warn("shutdown", slog.String("error", err.Error()))
	}
	<-serveErr
	log.Info("stopped")
	return nil
}
