package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"fiberauth/app/config"
	"fiberauth/db"
)

const (
	// pruneInterval is how often housekeeping runs.
	pruneInterval = time.Hour
	// shutdownGrace is how long in-flight requests may take after
	// SIGINT or SIGTERM.
	shutdownGrace = 8 * time.Second
)

// errForced is returned when a second signal cut the graceful stop short.
var errForced = errors.New("stopped at once by a second signal")

// Run is the whole program: it reads the configuration from args and
// getenv, opens the database, serves until ctx ends or SIGINT/SIGTERM
// arrives, then shuts down gracefully; a second signal stops it at once.
// Errors are one line for a person. If ready is not nil, the listening
// address is sent on it once the server accepts connections.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready chan<- string) error {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	return run(ctx, args, getenv, stdout, stderr, runOptions{ready: ready, signals: sigs, stdin: os.Stdin})
}

// runOptions are what tests may change about a run.
type runOptions struct {
	ready chan<- string
	// stdin is where commands read a password.
	stdin   io.Reader
	signals <-chan os.Signal
	// beforePrune, when set, runs at the start of each housekeeping round.
	beforePrune func(ctx context.Context)
	// beforeServe, when set, runs just before the server starts serving;
	// afterShutdown just after a graceful stop has stopped the server.
	beforeServe, afterShutdown func()
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, o runOptions) error {
	if isCommand(args) {
		return runCommand(ctx, args, getenv, o.stdin, stdout)
	}
	cfg, err := config.Parse(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	// Every setting is checked before anything is opened or written.
	if err := cfg.CheckServe(); err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	if sink := sinkFromLogger(log); sink != nil {
		defer sink.Flush()
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			return fmt.Errorf("cannot listen on %s: %v", cfg.Addr, op.Err)
		}
		return fmt.Errorf("cannot listen on %s: %v", cfg.Addr, err)
	}
	defer ln.Close()

	// The first signal (or ctx ending) starts a graceful stop.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	forced := make(chan struct{})
	go func() {
		select {
		case <-o.signals:
		case <-ctx.Done():
			return
		}
		log.Info("signal received: stopping gracefully; send another to stop at once")
		stop()
		select {
		case <-o.signals:
			close(forced)
		case <-time.After(shutdownGrace + 30*time.Second):
		}
	}()

	openCtx, cancelOpen := context.WithTimeout(ctx, 5*time.Minute)
	store, err := db.Open(openCtx, db.Options{Path: cfg.DatabasePath, URL: cfg.DatabaseURL,
		MaxConns: cfg.DatabaseMaxConns, Log: log})
	cancelOpen()
	if err != nil {
		return err
	}
	closeStore := true
	defer func() {
		if closeStore {
			store.Close()
		}
	}()
	waitCtx, cancelWait := context.WithTimeout(ctx, 5*time.Second)
	if err := store.WaitListening(waitCtx); err != nil && ctx.Err() == nil {
		log.Warn("session notifications not connected yet; sessions are read from the database until they are")
	}
	cancelWait()

	if tcp, ok := ln.Addr().(*net.TCPAddr); ok {
		// ADDR asked for any free port: links, and the issuer, name the
		// one given.
		if cfg.PublicURLFromAddr && strings.HasSuffix(cfg.PublicURL, ":0") {
			cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "0") + strconv.Itoa(tcp.Port)
		}
		if cfg.IssuerFromAddr && strings.HasSuffix(cfg.Issuer, ":0") {
			cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "0") + strconv.Itoa(tcp.Port)
		}
	}
	srv, err := New(ctx, cfg, store, log)
	if err != nil {
		return fmt.Errorf("cannot start: %v", err)
	}

	janitorCtx, stopJanitor := context.WithCancel(context.Background())
	janitorDone := make(chan struct{})
	go func() {
		defer close(janitorDone)
		srv.janitor(janitorCtx, pruneInterval, o.beforePrune)
	}()
	go srv.keys.watch(janitorCtx)

	if cfg.MetricsAddr != "" {
		stopMetrics, err := serveMetrics(cfg.MetricsAddr, srv.MetricsHandler(), log)
		if err != nil {
			stopJanitor()
			<-janitorDone
			srv.Close()
			return err
		}
		defer stopMetrics()
	}

	serveErr := make(chan error, 1)
	go func() {
		if o.beforeServe != nil {
			o.beforeServe()
		}
		serveErr <- srv.App().Listener(ln)
	}()
	log.Info("listening", slog.String("addr", "http://"+ln.Addr().String()), slog.String("database", store.Name()))
	if cfg.PasskeysOff != "" {
		log.Info("passkeys are off: " + cfg.PasskeysOff)
	} else {
		log.Info("passkeys", slog.String("rp_id", cfg.WebAuthnRPID), slog.String("origins", strings.Join(cfg.WebAuthnOrigins, ",")))
	}
	if o.ready != nil {
		o.ready <- ln.Addr().String()
	}

	select {
	case err := <-serveErr:
		stopJanitor()
		<-janitorDone
		srv.Close()
		if err != nil {
			return fmt.Errorf("server stopped: %v", err)
		}
		return nil
	case <-ctx.Done():
	}
	log.Info("shutting down")
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if err := srv.App().ShutdownWithTimeout(shutdownGrace); err != nil {
			log.Warn("shutdown", slog.String("error", err.Error()))
		}
		if o.afterShutdown != nil {
			o.afterShutdown()
		}
		// A stop that came before the server began serving found nothing
		// to stop: closing the listener makes the server return at once,
		// whenever it starts.
		ln.Close()
		<-serveErr
		stopJanitor()
		<-janitorDone
		srv.Close()
	}()
	select {
	case <-stopped:
	case <-forced:
		// Leave the store open: closing it waits for queries in flight.
		closeStore = false
		log.Warn("second signal: stopping now")
		return errForced
	}
	log.Info("stopped")
	return nil
}

// newLogger logs to w in LOG_FORMAT: text on a terminal and JSON
// otherwise, unless set.
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	format := cfg.LogFormat
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	if format == "json" {
		// The server writes its request lines to the sink itself.
		sink := newLogSink(w)
		return slog.New(&sinkHandler{JSONHandler: slog.NewJSONHandler(sink, opts), sink: sink})
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serveMetrics serves the metrics exposition at /metrics on a listener of
// its own, without authentication: addr should be reachable only by the
// monitoring system. The returned function stops it.
func serveMetrics(addr string, h http.Handler, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on METRICS_ADDR %s: %v", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	go hs.Serve(ln)
	log.Info("metrics listening", slog.String("addr", "http://"+ln.Addr().String()+"/metrics"))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
	}, nil
}

// janitor is Janitor with a hook for tests.
func (s *Server) janitor(ctx context.Context, interval time.Duration, before func(ctx context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if before != nil {
			before(ctx)
		}
		s.housekeep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
