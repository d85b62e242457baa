package account

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"fiberauth/app/metrics"
	"fiberauth/app/password"
	"fiberauth/app/throttle"
	"fiberauth/app/token"
	"fiberauth/app/valid"
	"fiberauth/db"
)

// Throttle keys. An account is "u:<id>" when the login names one and
// "l:<digest of the login>" when it does not, so that unknown names are
// counted the same way (a 429 tells nothing) in keys of fixed size.
func addressKey(addr string) string       { return "i:" + throttle.AddressKey(addr) }
func userKey(id int64) string             { return "u:" + strconv.FormatInt(id, 10) }
func loginKey(login string) string        { return "l:" + throttle.Digest(login) }
func pairKey(account, addr string) string { return "p:" + account + "|" + throttle.AddressKey(addr) }
func registrationKey(addr string) string  { return "r:" + throttle.AddressKey(addr) }
func pairPrefix(account string) string    { return "p:" + account + "|" }

// attempt is a sign-in attempt's hold on the throttle counts, taken before
// the password is checked.
type attempt struct {
	s      *Service
	client Client
	keys   []string
	pair   string
}

// take counts the attempt against key under r, or returns EThrottled. A
// key already blocked is refused on a read, without a write.
func (a *attempt) take(ctx context.Context, key string, r throttle.Rule, now time.Time) error {
	w, err := a.s.limits.Wait(ctx, key, now)
	if err != nil {
		return fail(err)
	}
	if w > 0 {
		return throttled(w)
	}
	w, err = a.s.limits.Take(ctx, key, r, now)
	if err != nil {
		return fail(err)
	}
	if w > 0 {
		return throttled(w)
	}
	a.keys = append(a.keys, key)
	return nil
}

// end finishes the attempt: one that counts (a failed sign-in, a
// registration) stays counted and may start a delay; a success forgives the account's failures from this address and
// hands the other counts back; an attempt whose password was not checked
// (abandoned) hands every count back.
func (a *attempt) end(ctx context.Context, o outcome) {
	ctx, cancel := detached(ctx)
	defer cancel()
	var err error
	switch o {
	case counted:
		err = a.s.limits.Fail(ctx, a.s.Now(), a.keys...)
	case succeeded:
		rest := make([]string, 0, len(a.keys))
		for _, k := range a.keys {
			if k != a.pair {
				rest = append(rest, k)
			}
		}
		if err = a.s.limits.Forget(ctx, a.pair); err == nil {
			err = a.s.limits.Release(ctx, rest...)
		}
	default:
		err = a.s.limits.Release(ctx, a.keys...)
	}
	if err != nil {
		a.s.log.Warn("throttle update", slog.String("error", err.Error()))
	}
	a.keys = nil
}

// Every secret a person may guess (a password, an authenticator or
// recovery code, a mailed code) is checked under one attempt opened here,
// on every surface: the page, the API, the second step, the step-up of a
// sensitive action, /verify-totp. Each attempt counts against the client
// address (Address), the account from this address (Pair) and the account
// from every address (Account), and a wrong guess stays counted on all
// three.

// guess opens an attempt at a secret of the account whose throttle key is
// account (userKey, or loginKey for a name that matches no account; userID
// is then 0).
func (s *Service) guess(ctx context.Context, c Client, account string, userID int64) (*attempt, error) {
	a, err := s.guessFrom(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := a.forAccount(ctx, account, userID); err != nil {
		return nil, err
	}
	return a, nil
}

// guessFrom opens an attempt counted against the client address only;
// forAccount adds the account once it is known. An address refused here
// creates nothing else.
func (s *Service) guessFrom(ctx context.Context, c Client) (*attempt, error) {
	a := &attempt{s: s, client: c}
	if err := a.take(ctx, addressKey(c.Addr), s.cfg.Address, s.Now()); err != nil {
		return nil, err
	}
	return a, nil
}

// forAccount counts the attempt against the account from this address and
// from every address. Past the account-wide limit only clients the
// account knows may go on: someone else's failures never lock the owner
// out. On a refusal the attempt is ended.
func (a *attempt) forAccount(ctx context.Context, account string, userID int64) error {
	s, now := a.s, a.s.Now()
	a.pair = pairKey(account, a.client.Addr)
	if err := a.take(ctx, a.pair, s.cfg.Pair, now); err != nil {
		a.end(ctx, abandoned)
		return err
	}
	if err := a.take(ctx, account, s.cfg.Account, now); err != nil {
		if ErrorCode(err) != EThrottled || userID == 0 || !s.known(ctx, userID, a.client) {
			a.end(ctx, abandoned)
			return err
		}
	}
	return nil
}

type outcome int

const (
	abandoned outcome = iota
	counted
	succeeded
)

// lookup finds the account a login names: an email address when it holds
// "@", a username otherwise. found is false for an unknown name.
func (s *Service) lookup(ctx context.Context, login string) (u db.User, found bool, err error) {
	key, isEmail := valid.LoginKey(login)
	if isEmail {
		u, err = s.store.UserByEmailKey(ctx, key)
	} else {
		u, err = s.store.UserByUsernameKey(ctx, key)
	}
	if errors.Is(err, db.ErrNotFound) {
		return db.User{}, false, nil
	}
	return u, err == nil, err
}

// known reports whether c signed in to the account successfully within
// KnownFor.
func (s *Service) known(ctx context.Context, userID int64, c Client) bool {
	key := c.knownKey()
	if key == "" {
		return false
	}
	ok, err := s.store.KnownClient(ctx, userID, key, s.Now().Add(-s.cfg.KnownFor))
	if err != nil {
		s.log.Warn("known client lookup", slog.String("error", err.Error()))
	}
	return ok
}

// SignIn checks a username-or-email and password and starts a session.
//
// Throttling, in this order so that a refused address creates nothing
// else: the client address across all accounts (Address); the account
// from this address (Pair); the account from every address (Account), which
// past its limit still lets through clients that signed in to the account
// before. Each attempt is counted before its password is checked, so that
// concurrent guesses cannot pass a limit, and handed back when it turns
// out not to be a failure.
//
// Errors: EUnauthorized (unknown name and wrong password alike),
// EThrottled, EBusy, EUnavailable, EInternal.
func (s *Service) SignIn(ctx context.Context, c Client, login, pw, scope, code string) (Grant, error) {
	g, outcome, userID, err := s.signIn(ctx, c, login, pw, scope, code)
	s.cfg.Metrics.SignIn(c.Browser, outcome)
	if outcome != metrics.Success {
		// Never the login typed: people type passwords into it.
		attrs := []any{"outcome", outcome, "surface", surfaceName(c), "ip", c.Addr}
		if userID != 0 {
			attrs = append(attrs, "user_id", userID)
		}
		s.log.Info("sign-in failed", attrs...)
	}
	return g, err
}

func surfaceName(c Client) string {
	if c.Browser {
		return "page"
	}
	return "api"
}

// signIn is SignIn; it also returns the outcome, as the metrics name it,
// and the account's id once known.
func (s *Service) signIn(ctx context.Context, c Client, login, pw, scope, code string) (Grant, string, int64, error) {
	now := s.Now()
	a, err := s.guessFrom(ctx, c)
	if err != nil {
		return Grant{}, refusal(err), 0, err
	}
	u, found, err := s.lookup(ctx, login)
	if err != nil {
		a.end(ctx, abandoned)
		return Grant{}, metrics.Error, 0, fail(err)
	}
	normalised, _ := valid.LoginKey(login)
	account := loginKey(normalised)
	if found {
		account = userKey(u.ID)
	}
	if err := a.forAccount(ctx, account, u.ID); err != nil {
		return Grant{}, refusal(err), u.ID, err
	}
	// An unknown name is checked against a dummy hash: the same work, and
	// never a match.
	err = s.hasher.Verify(ctx, u.PasswordHash, pw)
	switch {
	case errors.Is(err, password.ErrMismatch):
		a.end(ctx, counted)
		refused := &Error{Code: EUnauthorized, Message: MsgIncorrectCredentials, Limit: s.cfg.Pair.Limit}
		if c.Browser {
			// The page warns before sign-in pauses; the same for known
			// and unknown names.
			if n, err := s.limits.Failures(ctx, a.pair, now, s.cfg.Pair.Window); err == nil {
				refused.Failures = n
			}
		}
		if !found {
			return Grant{}, metrics.UnknownUser, 0, refused
		}
		s.events.record(db.Event{UserID: u.ID, Kind: db.EventSignInFailed, At: now, IP: c.Addr, UserAgent: c.UserAgent})
		return Grant{}, metrics.WrongPassword, u.ID, refused
	case err != nil:
		a.end(ctx, abandoned)
		err = fail(err)
		return Grant{}, refusal(err), u.ID, err
	}
	if s.Hooks.AfterPasswordCheck != nil {
		s.Hooks.AfterPasswordCheck(ctx)
	}
	// The sign-in decision comes before the second factor, so that a
	// refused sign-in spends no code.
	granted, outcome, err := s.admit(u, scope)
	if err != nil {
		if u.MFAEnabled {
			a.end(ctx, abandoned)
		} else {
			a.end(ctx, succeeded)
		}
		return Grant{}, outcome, u.ID, err
	}
	amr := "pwd"
	if u.MFAEnabled {
		// The password alone forgives nothing: the attempt is handed
		// back, neither a failure nor a success, until the second
		// factor decides it.
		if strings.TrimSpace(code) == "" {
			a.end(ctx, abandoned)
			return Grant{User: u}, metrics.MFARequired, u.ID, errOTPRequired
		}
		method, _, err := s.secondFactor(ctx, a, u, code)
		if err != nil {
			if ErrorCode(err) == EBadOTP {
				return Grant{}, metrics.WrongCode, u.ID, err
			}
			return Grant{}, refusal(err), u.ID, err
		}
		amr = amrFor(method, "")
	}
	a.end(ctx, succeeded)
	hash := u.PasswordHash
	if s.hasher.NeedsRehash(hash) {
		hash = s.upgradeHash(ctx, u, pw)
	}
	u.PasswordHash = hash
	// Failures queued before this success are written first, so that the
	// activity list keeps their order.
	s.events.wait()
	g, err := s.startSessionAMR(ctx, c, u, granted, db.EventSignIn, amr)
	if errors.Is(err, db.ErrChanged) {
		// The password changed, or the account went, while this sign-in
		// was being checked: it fails as a wrong password would.
		return Grant{}, metrics.WrongPassword, u.ID, &Error{Code: EUnauthorized, Message: MsgIncorrectCredentials}
	}
	if err != nil {
		return Grant{}, metrics.Error, u.ID, fail(err)
	}
	return g, metrics.Success, u.ID, nil
}

// admit is the sign-in decision once every factor an account needs is
// proven, the same on every surface and at every step (the password grant,
// the login page, its second step): the scope asked for must be within the
// role, and with REQUIRE_VERIFIED_EMAIL the address must be verified. It
// returns the scope the session keeps, or the refusal and its outcome.
func (s *Service) admit(u db.User, scope string) (string, string, error) {
	granted, ok := grantScope(u.Role, scope)
	if !ok {
		return "", metrics.InvalidScope, invalid(FieldError{Field: "scope", Message: "The requested scope is wider than the account's role allows"})
	}
	if s.cfg.RequireVerifiedEmail && !u.EmailVerified {
		return "", metrics.Unverified, errUnverified
	}
	return granted, metrics.Success, nil
}

// refusal names the outcome of a sign-in refused before or instead of the
// password check.
func refusal(err error) string {
	switch ErrorCode(err) {
	case EThrottled:
		return metrics.Throttled
	case EBusy:
		return metrics.Busy
	}
	return metrics.Error
}

// upgradeHash re-hashes a password at the configured cost after a
// successful sign-in, only if the hash is still the one checked, and
// returns the account's hash afterwards. Failure only delays the upgrade to
// the next sign-in.
func (s *Service) upgradeHash(ctx context.Context, u db.User, pw string) string {
	hash, err := s.hasher.Hash(ctx, pw)
	if err == nil {
		err = s.store.UpgradePasswordHash(ctx, u.ID, u.PasswordHash, hash)
	}
	if err != nil {
		if !errors.Is(err, db.ErrChanged) {
			s.log.Warn("password hash upgrade postponed", slog.Int64("user_id", u.ID), slog.String("error", err.Error()))
		}
		return u.PasswordHash
	}
	return hash
}

// startSession creates a session for u, only while u's password hash is
// still u.PasswordHash, and issues its access and refresh tokens. A browser
// without a device id gets one.
func (s *Service) startSession(ctx context.Context, c Client, u db.User, scope, kind string) (Grant, error) {
	return s.startSessionAMR(ctx, c, u, scope, kind, "pwd")
}

// startSessionAMR is startSession recording how the person signed in
// ("pwd", or "pwd otp").
func (s *Service) startSessionAMR(ctx context.Context, c Client, u db.User, scope, kind, amr string) (Grant, error) {
	return s.startSessionWith(ctx, c, u, scope, kind, amr, sessionWith{})
}

// sessionWith is what else a sign-in carries out in its session's
// transaction.
type sessionWith struct {
	// Ends, when set, is what the sign-in ends; then the account's stamp
	// must still be u.Stamp (a pending second step is used once).
	Ends *db.Void
	// Passkey, when set, is the passkey used: the session starts only
	// while it is still the account's and its counter has not moved past.
	Passkey *db.PasskeyUse
	// Via names the provider signed in with (sign-in with another
	// provider).
	Via string
}

// startSessionWith is startSessionAMR carrying out w too; db.ErrChanged
// when what w needs no longer holds.
func (s *Service) startSessionWith(ctx context.Context, c Client, u db.User, scope, kind, amr string, w sessionWith) (Grant, error) {
	id, err := token.NewSessionID()
	if err != nil {
		return Grant{}, err
	}
	if c.Browser && c.Device == "" {
		if c.Device, err = token.NewSessionID(); err != nil {
			return Grant{}, err
		}
	}
	refresh, refreshHash, err := token.NewRefresh()
	if err != nil {
		return Grant{}, err
	}
	now := s.Now()
	se := db.Session{ID: id, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(s.cfg.SessionLifetime), LastUsedAt: now,
		IP: c.Addr, UserAgent: c.UserAgent, Scope: scope, AMR: amr, Via: w.Via}
	err = s.store.StartSession(ctx, db.NewSession{
		Session:      se,
		PasswordHash: u.PasswordHash,
		Event:        db.Event{Kind: kind, At: now, IP: c.Addr, UserAgent: c.UserAgent, Detail: s.signInDetail(ctx, kind, amr, w.Via)},
		KnownClient:  c.knownKey(),
		RefreshHash:  refreshHash,
		Void:         w.Ends,
		Stamp:        u.Stamp,
		CheckStamp:   w.Ends != nil && w.Ends.SecondSteps,
		Passkey:      w.Passkey,
	})
	if err != nil {
		return Grant{}, err
	}
	se.CreatedAt, se.ExpiresAt, se.LastUsedAt = time.Unix(now.Unix(), 0), time.Unix(se.ExpiresAt.Unix(), 0), time.Unix(now.Unix(), 0)
	g, err := s.grant(u, se, now)
	if err != nil {
		return Grant{}, err
	}
	g.RefreshToken, g.Device = refresh, c.Device
	return g, nil
}

// grant issues an access token for a session.
func (s *Service) grant(u db.User, se db.Session, now time.Time) (Grant, error) {
	scope := Effective(u.Role, se.Scope)
	raw, _, err := s.tokens.Issue(token.Grant{Subject: subjectOf(u, se), SessionID: se.ID, Scope: scope,
		AMR: strings.Fields(amrOr(se.AMR)), ClientID: se.ClientID}, now)
	if err != nil {
		return Grant{}, err
	}
	return Grant{User: u, Session: se, AccessToken: raw, ExpiresIn: int(s.tokens.Lifetime().Seconds()), Scope: scope}, nil
}

// subjectOf is the sub of a session's access tokens: the username, as the
// recipe has it, for this service's own sessions; the account's subject
// identifier (random, never reused) for an application's, which is told no
// more than the account allowed it.
func subjectOf(u db.User, se db.Session) string {
	if se.ClientID != "" {
		return u.Subject
	}
	return u.Username
}

// amrOr is a session's sign-in methods, "pwd" when it predates them.
func amrOr(amr string) string {
	if amr == "" {
		return "pwd"
	}
	return amr
}

// signInDetail words a sign-in with a second factor, or with a passkey,
// for the activity list.
func (s *Service) signInDetail(ctx context.Context, kind, amr, via string) string {
	if kind != db.EventSignIn {
		return ""
	}
	if via != "" {
		with := "Signed in with " + s.ProviderName(ctx, via)
		if strings.Contains(amr, "otp") {
			with += " and authenticator code"
		} else if strings.Contains(amr, "hwk") {
			with += " and passkey"
		}
		return with
	}
	switch amr {
	case "pwd otp":
		return "Signed in with password and authenticator code"
	case "hwk", "hwk user":
		return "Signed in with a passkey"
	case "pwd hwk", "pwd hwk user":
		return "Signed in with password and passkey"
	}
	return ""
}

// checkPassword verifies the caller's current password for a sensitive
// action. It is throttled and counted like a sign-in (see guess). With
// secondFollows (a code is checked next), or when the account has
// two-factor on, a right password forgives no failures: only the code,
// once right, does (else failed codes could be wiped by the right password,
// and guessed without end). It returns the hash that matched and the
// account as stored, EForbidden, EThrottled, EBusy or another error.
func (s *Service) checkPassword(ctx context.Context, c Client, p *Principal, pw string, secondFollows bool) (string, db.User, error) {
	now := s.Now()
	a, err := s.guess(ctx, c, userKey(p.User.ID), p.User.ID)
	if err != nil {
		return "", db.User{}, err
	}
	// The session's copy of the account carries no password hash.
	u, err := s.store.UserByID(ctx, p.User.ID)
	if err != nil {
		a.end(ctx, abandoned)
		if errors.Is(err, db.ErrNotFound) {
			return "", db.User{}, &Error{Code: EUnauthorized, Message: MsgNotAuthorized}
		}
		return "", db.User{}, fail(err)
	}
	err = s.hasher.Verify(ctx, u.PasswordHash, pw)
	switch {
	case errors.Is(err, password.ErrMismatch):
		a.end(ctx, counted)
		s.events.record(db.Event{UserID: u.ID, Kind: db.EventPasswordFailed, At: now, IP: c.Addr, UserAgent: c.UserAgent})
		return "", db.User{}, &Error{Code: EForbidden, Message: MsgIncorrectPassword}
	case err != nil:
		a.end(ctx, abandoned)
		return "", db.User{}, fail(err)
	}
	if u.MFAEnabled || secondFollows {
		a.end(ctx, abandoned)
	} else {
		a.end(ctx, succeeded)
	}
	return u.PasswordHash, u, nil
}

// ClearLimits forgets every sign-in count of an account: its failures from
// every address and across addresses.
func (s *Service) ClearLimits(ctx context.Context, userID int64) error {
	key := userKey(userID)
	if err := s.limits.Forget(ctx, key); err != nil {
		return fail(err)
	}
	return fail(s.limits.ForgetPrefix(ctx, pairPrefix(key)))
}
