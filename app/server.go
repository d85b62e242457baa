// Package app is the HTTP layer of the service: the Fiber application, its
// routes, the JSON API and page handlers (thin adapters over the account
// core in app/account), the middleware, and the Run function that main
// calls.
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
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/template/html/v2"

	"fiberauth/app/account"
	"fiberauth/app/config"
	"fiberauth/app/federation"
	"fiberauth/app/mail"
	"fiberauth/app/metrics"
	"fiberauth/app/oidc"
	"fiberauth/app/passkey"
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
	// requestTimeout bounds the work of one request: every store and
	// password-hashing call runs under it.
	requestTimeout = 10 * time.Second
)

// Server holds the dependencies of every handler.
type Server struct {
	cfg    config.Config
	store  *db.Store
	acct   *account.Service
	oidc   *oidc.Provider
	hasher *password.Hasher
	outbox *mail.Outbox
	log    *slog.Logger
	// logSink is the log's sink when the server writes its request lines
	// there itself (a JSON log made by newLogger), else nil.
	logSink *logSink

	// csrfKey signs CSRF tokens and deviceKey device cookies; both are
	// derived from the signing key, so every instance agrees.
	csrfKey   []byte
	deviceKey []byte
	// mfaKey signs the pending second step of a sign-in; ceremonyKey the
	// cookie that binds a passkey ceremony to the browser that began it.
	mfaKey      []byte
	ceremonyKey []byte
	// fedKey seals what a sign-in with another provider keeps in the
	// browser (federation_pages.go); fed speaks to the providers.
	fedKey []byte
	fed    *federation.Engine

	metrics        *metrics.Metrics
	metricsHandler fiber.Handler

	app *fiber.App
	// table lists the routes with their surfaces (routes.go).
	table []route
	keys  *keyReloader
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
	var outbox *mail.Outbox
	m := metrics.New(metrics.Sources{
		HashQueue: func() float64 { return float64(hasher.Pending()) },
		MailQueue: func() float64 { return float64(outbox.Pending()) },
		Cache:     store.CacheStats,
		Pools:     store.Pools(),
	})
	hasher.OnWait = m.HashWait
	// The outbox keeps mail in the database, sealed under a key of its
	// own, until it is sent: every instance can send it, after a restart
	// too.
	outbox, err = mail.New(mail.Config{URL: cfg.SMTPURL, From: cfg.MailFrom,
		SealKey: derive(key, "fiberauth outbox v1")}, store, log, m)
	if err != nil {
		return nil, err
	}
	// Throttle counts live in the database on both engines: shared by
	// every instance, kept across restarts, and within reach of the
	// command line's "limits clear".
	limits := store.Throttle()
	keys, err := loadKeys(ctx, store, time.Now())
	if err != nil {
		return nil, err
	}
	// Tokens of earlier releases, signed with the HS256 secret, stay valid
	// until they expire: at most one lifetime after the first Ed25519 key.
	legacyUntil := keys[0].CreatedAt
	for _, k := range keys {
		if k.CreatedAt.Before(legacyUntil) {
			legacyUntil = k.CreatedAt
		}
	}
	// The token manager reads the core's clock, so that a test moving one
	// moves both.
	// Passkeys: one relying party, built from the settings; none when
	// they are off (PUBLIC_URL names no domain).
	var passkeys *passkey.Engine
	if cfg.WebAuthnRPID != "" {
		if passkeys, err = passkey.New(passkey.Config{RPID: cfg.WebAuthnRPID, Origins: cfg.WebAuthnOrigins, RPName: cfg.TOTPIssuer}); err != nil {
			return nil, err
		}
	}
	var acct *account.Service
	tokens := token.NewManager(token.Config{Issuer: cfg.Issuer, Lifetime: cfg.TokenLifetime, Legacy: key,
		LegacyUntil: legacyUntil.Add(cfg.TokenLifetime + time.Minute), Now: func() time.Time { return acct.Now() }}, keys)
	acct = account.New(account.Config{
		SessionLifetime: cfg.SessionLifetime,
		IdleLifetime:    cfg.IdleLifetime,
		ReuseGrace:      cfg.ReuseGrace,
		Pair:            throttle.Rule{Limit: cfg.LoginFailuresPerAccount, Window: cfg.LoginWindow, Base: 30 * time.Second},
		Address:         throttle.Rule{Limit: cfg.LoginFailuresPerIP, Window: cfg.LoginWindow, Base: time.Minute},
		Account:         throttle.Rule{Limit: cfg.LoginFailuresAccountWide, Window: cfg.LoginWindow, Base: time.Minute},
		Registration:    throttle.Rule{Limit: cfg.RegistrationsPerIP, Window: time.Hour, Base: time.Hour},
		Ceremonies:      throttle.Rule{Limit: cfg.CeremoniesPerIP, Window: cfg.LoginWindow, Base: 30 * time.Second},
		KnownFor:        30 * 24 * time.Hour,
		Metrics:         m,
		CodeKey:         derive(key, "fiberauth one-time codes v1"),
		MFAKey:          derive(key, "fiberauth totp secrets v1"),
		TOTPIssuer:      cfg.TOTPIssuer,
		PublicURL:       cfg.PublicURL,
		Mail:            outbox,
		Passkeys:        passkeys,

		RequireVerifiedEmail: cfg.RequireVerifiedEmail,
	}, store, hasher, tokens, limits, log)
	s := &Server{
		cfg:            cfg,
		store:          store,
		acct:           acct,
		outbox:         outbox,
		hasher:         hasher,
		log:            log,
		logSink:        sinkFromLogger(log),
		metrics:        m,
		metricsHandler: adaptor.HTTPHandler(m.Handler()),
		csrfKey:        derive(key, "fiberauth csrf v1"),
		deviceKey:      derive(key, "fiberauth device v1"),
		mfaKey:         derive(key, "fiberauth mfa pending v1"),
		ceremonyKey:    derive(key, "fiberauth passkey ceremony v1"),
		fedKey:         derive(key, "fiberauth federation cookies v1"),
	}
	s.oidc = oidc.New(oidc.Config{Issuer: cfg.Issuer, SessionLifetime: cfg.SessionLifetime,
		Key: derive(key, "fiberauth oidc auth_after v1")}, store, acct, log)
	s.fed = federation.New(federation.Config{PublicURL: cfg.PublicURL, GitHubURL: cfg.GitHubURL, GitHubAPIURL: cfg.GitHubAPIURL,
		Now: func() time.Time { return acct.Now() }}, store, acct, log)
	s.keys = &keyReloader{s: s, last: time.Now()}
	store.OnKeysChanged(func() { go s.keys.reload(context.Background(), 0) })
	s.app = s.newFiber()
	s.routes()
	return s, nil
}

// derive returns a key for one purpose from the signing key.
func derive(key []byte, purpose string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(purpose))
	return mac.Sum(nil)
}

// App returns the Fiber application.
func (s *Server) App() *fiber.App { return s.app }

// Close waits for queued activity records to be written, and up to 10
// seconds for the mail being sent; mail not sent yet stays in the outbox
// for another instance or the next start.
func (s *Server) Close() {
	defer s.FlushLog()
	s.acct.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.oidc.Close(ctx)
	s.outbox.Close(ctx)
}

// FlushLog writes the request lines waiting in the log's batch.
func (s *Server) FlushLog() {
	if s.logSink != nil {
		s.logSink.Flush()
	}
}

func (s *Server) newFiber() *fiber.App {
	var viewFS fs.FS = views.FS
	if s.cfg.Dev {
		viewFS = os.DirFS("views")
	}
	engine := html.NewFileSystem(http.FS(viewFS), ".html")
	engine.Reload(s.cfg.Dev)
	engine.AddFunc("datetime", formatTime)
	engine.AddFunc("iso", func(t time.Time) string { return t.UTC().Format(time.RFC3339) })
	engine.AddFunc("eventLabel", eventLabel)
	engine.AddFunc("auditLabel", auditLabel)
	engine.AddFunc("agent", describeAgent)
	engine.AddFunc("amrWords", amrWords)

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

// housekeep prunes the database. With several instances on one PostgreSQL
// database only one of them does each round.
func (s *Server) housekeep(ctx context.Context) {
	ran, err := s.store.Exclusively(ctx, "janitor", func(ctx context.Context) error {
		p, err := s.acct.Housekeep(ctx)
		if err == nil && p.Sessions+p.Events+p.KnownClients+p.Throttle > 0 {
			s.log.Info("pruned", slog.Int64("sessions", p.Sessions), slog.Int64("events", p.Events),
				slog.Int64("known_clients", p.KnownClients), slog.Int64("throttle", p.Throttle))
		}
		return err
	})
	if err != nil && ctx.Err() == nil {
		s.log.Error("housekeeping failed", slog.String("error", err.Error()))
	} else if !ran {
		s.log.Debug("housekeeping left to another instance")
	}
}
