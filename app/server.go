// Package app is the HTTP layer of the service: the Fiber application, its
// routes, handlers and middleware, and the Run function that main calls.
package app

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/template/html/v2"

	"fiberauth/app/config"
	"fiberauth/app/password"
	"fiberauth/app/throttle"
	"fiberauth/app/token"
	"fiberauth/db"
	"fiberauth/views"
)

// Limits of what the server reads from a client.
const (
	// bodyLimit bounds request bodies: the largest legitimate body (a
	// registration form with a 72-byte password and a 254-byte email) is
	// well under 1 KiB.
	bodyLimit = 8 * 1024
	// readBufferSize bounds the request line plus headers; larger gives 431.
	readBufferSize = 8 * 1024
)

// Server holds the dependencies of every handler.
type Server struct {
	cfg    config.Config
	store  *db.Store
	tokens *token.Manager
	hasher *password.Hasher
	log    *slog.Logger
	now    func() time.Time

	csrfKey []byte

	// Failed sign-ins per account key and per client address, and
	// registrations per client address.
	loginAccount *throttle.Counter
	loginIP      *throttle.Counter
	registerIP   *throttle.Counter

	app *fiber.App
}

// secretSetting is the settings key under which a generated signing key is
// kept.
const secretSetting = "jwt_secret"

// New builds the server on an open store. It loads or creates the signing
// key and computes the dummy password hash.
func New(ctx context.Context, cfg config.Config, store *db.Store, log *slog.Logger) (*Server, error) {
	key := cfg.SecretKey
	if len(key) == 0 {
		var err error
		key, err = store.Secret(ctx, secretSetting, func() ([]byte, error) {
			b := make([]byte, 32)
			_, err := rand.Read(b)
			return b, err
		})
		if err != nil {
			return nil, err
		}
	}
	hasher, err := password.NewHasher(cfg.BcryptCost, cfg.HashWorkers, cfg.HashQueue)
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("fiberauth csrf v1"))
	s := &Server{
		cfg:          cfg,
		store:        store,
		tokens:       token.NewManager(key, cfg.TokenLifetime, nil),
		hasher:       hasher,
		log:          log,
		now:          time.Now,
		csrfKey:      mac.Sum(nil),
		loginAccount: throttle.NewCounter(cfg.LoginFailuresPerAccount, cfg.LoginWindow, 30*time.Second, nil),
		loginIP:      throttle.NewCounter(cfg.LoginFailuresPerIP, cfg.LoginWindow, time.Minute, nil),
		registerIP:   throttle.NewCounter(cfg.RegistrationsPerIP, time.Hour, time.Hour, nil),
	}
	s.app = s.newFiber()
	s.routes()
	return s, nil
}

// App returns the Fiber application.
func (s *Server) App() *fiber.App { return s.app }

func (s *Server) newFiber() *fiber.App {
	var viewFS fs.FS = views.FS
	if s.cfg.Dev {
		viewFS = os.DirFS("views")
	}
	engine := html.NewFileSystem(http.FS(viewFS), ".html")
	engine.Reload(s.cfg.Dev)
	engine.AddFunc("datetime", formatTime)
	engine.AddFunc("eventLabel", eventLabel)
	engine.AddFunc("agent", describeAgent)

	proxies := make([]string, 0, len(s.cfg.TrustedProxies))
	for _, p := range s.cfg.TrustedProxies {
		proxies = append(proxies, p.String())
	}
	return fiber.New(fiber.Config{
		AppName:                 "fiberauth",
		Views:                   engine,
		ErrorHandler:            s.handleError,
		Immutable:               true,
		BodyLimit:               bodyLimit,
		ReadBufferSize:          readBufferSize,
		ReadTimeout:             10 * time.Second,
		WriteTimeout:            10 * time.Second,
		IdleTimeout:             60 * time.Second,
		DisableStartupMessage:   true,
		EnableTrustedProxyCheck: true,
		TrustedProxies:          proxies,
		StrictRouting:           false,
		CaseSensitive:           true,
	})
}

// Janitor prunes expired sessions, old events and forgotten throttle
// entries every interval until ctx ends.
func (s *Server) Janitor(ctx context.Context, interval, keepEvents time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.prune(ctx, keepEvents)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) prune(ctx context.Context, keepEvents time.Duration) {
	now := s.now()
	sessions, events, err := s.store.Prune(ctx, now, now.Add(-keepEvents))
	if err != nil && ctx.Err() == nil {
		s.log.Error("prune failed", slog.String("error", err.Error()))
	} else if sessions+events > 0 {
		s.log.Info("pruned", slog.Int64("sessions", sessions), slog.Int64("events", events))
	}
	s.loginAccount.Sweep()
	s.loginIP.Sweep()
	s.registerIP.Sweep()
}
