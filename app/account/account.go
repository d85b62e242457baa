// Package account is the core of the service: every account operation
// (registration, sign-in with its throttling, sessions, password change,
// deletion, the activity record) lives here, apart from HTTP. It takes a
// context and plain values, calls the store, the password hasher, the
// throttle and the token issuer, and returns *Error values with a code that
// each surface (the JSON API, the pages) turns into a status and words.
package account

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"fiberauth/app/metrics"
	"fiberauth/app/passkey"
	"fiberauth/app/password"
	"fiberauth/app/throttle"
	"fiberauth/app/token"
	"fiberauth/db"
)

// Hasher hashes and checks passwords; *password.Hasher is the real one.
type Hasher interface {
	Hash(ctx context.Context, pw string) (string, error)
	Verify(ctx context.Context, hash, pw string) error
	NeedsRehash(hash string) bool
}

var _ Hasher = (*password.Hasher)(nil)

// Config holds the core's settings.
type Config struct {
	// SessionLifetime is a session's absolute lifetime, and so its refresh
	// tokens'; IdleLifetime ends a session not used for that long.
	SessionLifetime time.Duration
	IdleLifetime    time.Duration
	// ReuseGrace is how long after its use a refresh token may be
	// presented again without ending the session (a client that lost the
	// answer); only the immediately previous token gets it.
	ReuseGrace time.Duration
	// Pair limits failed sign-ins for one account from one client address.
	Pair throttle.Rule
	// Address limits failed sign-ins from one client address, all accounts
	// together.
	Address throttle.Rule
	// Account limits failed sign-ins for one account from every address;
	// past it only known clients may still try.
	Account throttle.Rule
	// Registration limits registrations from one client address.
	Registration throttle.Rule
	// Ceremonies limits the passkey ceremonies one client address begins
	// without a session (sign-in and sign-up options): each is a row in
	// the database until it is taken or expires.
	Ceremonies throttle.Rule
	// KnownFor is how long after a successful sign-in a client counts as
	// known to the account.
	KnownFor time.Duration
	// Recovery limits requests that send mail (forgotten passwords,
	// resent codes) from one client address.
	Recovery throttle.Rule
	// CodeKey keys the HMAC under which one-time codes are stored.
	CodeKey []byte
	// CodeLifetime is how long a code is valid (15 minutes), CodeTries how
	// many wrong guesses void it (5), MailSpacing how long after a code
	// the next one of the same purpose may go to the account (60 s).
	CodeLifetime time.Duration
	CodeTries    int
	MailSpacing  time.Duration
	// MFAKey encrypts authenticator secrets (32 bytes, AES-256-GCM);
	// TOTPIssuer names the service in authenticator apps.
	MFAKey     []byte
	TOTPIssuer string
	// RequireVerifiedEmail refuses the password grant and the login page
	// to accounts whose address is not verified.
	RequireVerifiedEmail bool
	// PublicURL is where people reach the pages, for links in mail.
	PublicURL string
	// Mail queues the mail; nil sends nothing.
	Mail Mailer
	// Passkeys is the WebAuthn engine; nil when passkeys are off.
	Passkeys *passkey.Engine
	// Metrics records sign-ins, registrations, refreshes and ended
	// sessions; nil records nothing.
	Metrics *metrics.Metrics
}

// Why sessions end, as the metrics name it.
const (
	EndedSignOut         = "sign_out"
	EndedRevoked         = "revoked"
	EndedByUser          = "ended_by_user"
	EndedPasswordChanged = "password_changed"
	EndedAccountDeleted  = "account_deleted"
	EndedByAdmin         = "admin"
	EndedRefreshReused   = "refresh_reused"
	EndedExpired         = "expired"
)

// Client is who is asking, as the surface saw it.
type Client struct {
	// Addr is the client's address.
	Addr string
	// UserAgent is the client's User-Agent, made safe to store.
	UserAgent string
	// Browser is true for the pages, where a device cookie identifies the
	// browser; false for API clients, which are known by their address.
	Browser bool
	// Device is the browser's device id from its signed cookie, or "".
	Device string
}

// knownKey is how a client is recorded as known to an account: a browser
// by its device id, an API client by its address.
func (c Client) knownKey() string {
	if c.Browser {
		if c.Device == "" {
			return ""
		}
		return "d:" + c.Device
	}
	return "a:" + throttle.AddressKey(c.Addr)
}

// Principal is an authenticated caller: the account, the session its
// token belongs to, and the token's own claims.
type Principal struct {
	User    db.User
	Session db.Session
	// IssuedAt and ExpiresAt are the access token's.
	IssuedAt, ExpiresAt time.Time
	Scope               string
	AMR                 []string
}

// Grant is a started session with its access token.
type Grant struct {
	User        db.User
	Session     db.Session
	AccessToken string
	// ExpiresIn is the access token's lifetime in seconds.
	ExpiresIn int
	// RefreshToken exchanges for a new pair at /token; Scope is what both
	// grant.
	RefreshToken string
	Scope        string
	// Device is the browser's device id to keep in its cookie (the one it
	// sent, or a new one); empty for API clients.
	Device string
}

// Hooks let tests stop an operation at a point where it can race with
// another. Nil hooks do nothing.
type Hooks struct {
	// AfterPasswordCheck runs in SignIn after the password matched and
	// before the session is written.
	AfterPasswordCheck func(ctx context.Context)
	// BeforeEventWrite runs in the activity recorder before it writes a
	// batch, off any request's path.
	BeforeEventWrite func()
	// BeforeSecondStepSession runs in SecondStep after the code was
	// accepted and before the session is written.
	BeforeSecondStepSession func(ctx context.Context)
}

// Service carries out account operations.
type Service struct {
	cfg    Config
	store  *db.Store
	hasher Hasher
	tokens *token.Manager
	limits throttle.Store
	log    *slog.Logger
	events *recorder
	// jobs bounds the background jobs (work done after answering);
	// jobsWG waits for them.
	jobs   chan struct{}
	jobsWG sync.WaitGroup

	// Now is the clock; tests replace it.
	Now   func() time.Time
	Hooks Hooks
}

// New returns a Service. limits is where throttle counts are kept.
func New(cfg Config, store *db.Store, hasher Hasher, tokens *token.Manager, limits throttle.Store, log *slog.Logger) *Service {
	if cfg.CodeLifetime <= 0 {
		cfg.CodeLifetime = 15 * time.Minute
	}
	if cfg.CodeTries <= 0 {
		cfg.CodeTries = 5
	}
	if cfg.MailSpacing <= 0 {
		cfg.MailSpacing = time.Minute
	}
	if cfg.Recovery.Limit <= 0 {
		cfg.Recovery = throttle.Rule{Limit: 20, Window: time.Hour, Base: 15 * time.Minute}
	}
	if cfg.Ceremonies.Limit <= 0 {
		cfg.Ceremonies = throttle.Rule{Limit: 1000, Window: 15 * time.Minute, Base: 30 * time.Second}
	}
	if len(cfg.CodeKey) == 0 || len(cfg.MFAKey) != 32 {
		panic("account: CodeKey and a 32-byte MFAKey are required")
	}
	if cfg.TOTPIssuer == "" {
		cfg.TOTPIssuer = "Fiberauth"
	}
	s := &Service{cfg: cfg, store: store, hasher: hasher, tokens: tokens, limits: limits, log: log, Now: time.Now,
		jobs: make(chan struct{}, 64)}
	s.events = newRecorder(store, log, func() {
		if s.Hooks.BeforeEventWrite != nil {
			s.Hooks.BeforeEventWrite()
		}
	})
	return s
}

// Close waits for the background jobs and for the activity records still
// queued to be written.
func (s *Service) Close() {
	s.jobsWG.Wait()
	s.events.close()
}

// Tokens returns the token manager.
func (s *Service) Tokens() *token.Manager { return s.tokens }

// Limits returns where the throttle counts are kept.
func (s *Service) Limits() throttle.Store { return s.limits }

// Fail turns a store or hasher error into the core's error, for the
// protocol engines beside the core.
func Fail(err error) error { return fail(err) }

// fail turns a store or hasher error into the core's error.
func fail(err error) error {
	var e *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return e
	case errors.Is(err, password.ErrBusy):
		return &Error{Code: EBusy, Message: MsgBusy, RetryAfter: time.Second}
	case errors.Is(err, db.ErrUnavailable):
		return &Error{Code: EUnavailable, Message: MsgUnavailable, RetryAfter: 5 * time.Second, Err: err}
	}
	return internal(err)
}

// detached is a context for bookkeeping that must happen even when the
// request's context has ended (handing back throttle counts).
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
}

// Events returns the latest limit events of the caller's account.
func (s *Service) Events(ctx context.Context, p *Principal, limit int) ([]db.Event, error) {
	list, err := s.store.ListEvents(ctx, p.User.ID, limit)
	return list, fail(err)
}

// Sessions returns the caller's live sessions, newest first, each with the
// time it ends unless used again (its absolute end or its idle limit,
// whichever comes first); the current one shows its latest use.
func (s *Service) Sessions(ctx context.Context, p *Principal) ([]db.Session, error) {
	now := s.Now()
	list, err := s.store.ListSessions(ctx, p.User.ID, now, now.Add(-s.cfg.IdleLifetime))
	if err != nil {
		return nil, fail(err)
	}
	for i := range list {
		if list[i].ID == p.Session.ID {
			list[i].LastUsedAt = p.Session.LastUsedAt
		}
		list[i].ExpiresAt = s.ends(list[i])
	}
	return list, nil
}

// ends is when a session ends unless it is used again.
func (s *Service) ends(se db.Session) time.Time {
	if idle := se.LastUsedAt.Add(s.cfg.IdleLifetime); idle.Before(se.ExpiresAt) {
		return idle
	}
	return se.ExpiresAt
}

// alive reports whether a session is still valid at now.
func (s *Service) alive(se db.Session, now time.Time) bool {
	return now.Before(s.ends(se))
}

// Pruning schedule: events are kept for EventRetention.
const EventRetention = 90 * 24 * time.Hour

// Housekeep deletes expired sessions, old events, clients no longer known
// and lapsed throttle counts.
func (s *Service) Housekeep(ctx context.Context) (db.Pruned, error) {
	now := s.Now()
	p, err := s.store.Prune(ctx, now, now.Add(-s.cfg.IdleLifetime), now.Add(-EventRetention), now.Add(-s.cfg.KnownFor))
	s.cfg.Metrics.SessionsEnded(EndedExpired, p.Sessions)
	if err != nil {
		return p, err
	}
	return p, s.limits.Sweep(ctx, now)
}

// FlushEvents returns once every activity record queued so far is written.
func (s *Service) FlushEvents() { s.events.wait() }
