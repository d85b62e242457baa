package account

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"fiberauth/app/mail"
	"fiberauth/app/throttle"
	"fiberauth/app/valid"
	"fiberauth/db"
)

// Mailer queues a message and returns at once; *mail.Outbox is the real
// one.
type Mailer interface {
	Send(m mail.Message) bool
}

var _ Mailer = (*mail.Outbox)(nil)

// Messages of the email flows.
const (
	MsgInvalidCode      = "Invalid or expired code"
	MsgForgotSent       = "If an account exists for that name, a code has been sent to its email address."
	MsgNotVerified      = "Email address not verified"
	MsgAlreadyVerified  = "Email address already verified"
	MsgSameEmail        = "That is already your email address."
	MsgEmailTaken       = "An account with that email address already exists."
	msgCodeSentRecently = "A code was sent less than a minute ago. Try again in "
)

// The mail kinds, as the metrics name them.
const (
	KindVerify          = "verify_email"
	KindReset           = "password_reset"
	KindPasswordChanged = "password_changed"
	KindEmailChanged    = "email_changed"
)

// EndedPasswordReset: sessions ended by a password reset.
const EndedPasswordReset = "password_reset"

// Codes sent by mail are 8 symbols (40 bits), "7K3M-9QXD".
const codeSymbols = 8

// newCode returns a one-time code for mail.
func newCode() (string, error) { return randomCode(codeSymbols) }

// NormaliseCode reads a mailed code as typed (see normaliseSymbols); "" for
// anything that cannot be one.
func NormaliseCode(typed string) string { return normaliseSymbols(typed, codeSymbols) }

// codeHash is the stored form of a code: an HMAC under a key derived from
// the service secret, bound to the account and purpose. Without the key a
// stolen database does not give the codes, even by trying all 2^40.
func (s *Service) codeHash(userID int64, purpose, normalised string) string {
	mac := hmac.New(sha256.New, s.cfg.CodeKey)
	mac.Write([]byte(purpose + ":" + strconv.FormatInt(userID, 10) + ":" + normalised))
	return hex.EncodeToString(mac.Sum(nil))
}

// emailKey is the normalised form of a stored address.
func emailKey(addr string) string {
	_, key, _ := valid.Email(addr)
	return key
}

func recoveryKey(addr string) string { return "m:" + throttle.AddressKey(addr) }

var errBadCode = &Error{Code: EBadCode, Message: MsgInvalidCode}

// issueCode makes a new code of purpose for u, to be sent to email, unless
// one went out less than MailSpacing ago (then EThrottled with the wait).
func (s *Service) issueCode(ctx context.Context, u db.User, purpose, email string) (string, error) {
	code, err := newCode()
	if err != nil {
		return "", internal(err)
	}
	_, emailKey, msg := valid.Email(email)
	if msg != "" {
		return "", internal(errors.New("stored email address no longer valid"))
	}
	now := s.Now()
	prev, err := s.store.PutCode(ctx, db.Code{UserID: u.ID, Purpose: purpose, Hash: s.codeHash(u.ID, purpose, NormaliseCode(code)),
		Email: email, EmailKey: emailKey, CreatedAt: now, ExpiresAt: now.Add(s.cfg.CodeLifetime)}, now.Add(-s.cfg.MailSpacing))
	if errors.Is(err, db.ErrSpaced) {
		wait := prev.Add(s.cfg.MailSpacing).Sub(now)
		if wait < time.Second {
			wait = time.Second
		}
		return "", &Error{Code: EThrottled, Message: msgCodeSentRecently + WaitWords(wait) + ".", RetryAfter: wait}
	}
	if err != nil {
		return "", fail(err)
	}
	return code, nil
}

// send queues a message; a full queue is logged by the outbox.
func (s *Service) send(m mail.Message) {
	if s.cfg.Mail != nil {
		s.cfg.Mail.Send(m)
	}
}

// sendVerification issues a verify code for email and mails it.
func (s *Service) sendVerification(ctx context.Context, u db.User, email string, change bool) error {
	code, err := s.issueCode(ctx, u, db.CodeVerify, email)
	if err != nil {
		if ErrorCode(err) == EThrottled {
			s.cfg.Metrics.Mail(KindVerify, "spaced")
		}
		return err
	}
	s.send(s.verifyMessage(u, email, code, change))
	return nil
}

// checkCode checks a code typed for u's live code of purpose. It is
// throttled and counted like a sign-in: a wrong code is a failure for the
// account from this address, and for the address. It returns the stored
// HMAC to spend, errBadCode, or a throttling or store error. The attempt
// is left open for the caller to end.
func (s *Service) checkCode(ctx context.Context, a *attempt, u db.User, found bool, purpose, typed string) (string, error) {
	userID := u.ID
	typedHash := s.codeHash(userID, purpose, NormaliseCode(typed))
	// An unknown account does the same reads and writes, on no row, so
	// that the answer takes as long.
	row, err := s.store.CodeFor(ctx, userID, purpose)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return "", fail(err)
	}
	ok := err == nil && found && NormaliseCode(typed) != "" && row.Tries < s.cfg.CodeTries &&
		s.Now().Before(row.ExpiresAt) && hmac.Equal([]byte(typedHash), []byte(row.Hash))
	if ok {
		return row.Hash, nil
	}
	if err := s.store.FailCode(ctx, userID, purpose, row.Hash); err != nil {
		return "", fail(err)
	}
	a.end(ctx, counted)
	if found {
		s.events.record(db.Event{UserID: u.ID, Kind: db.EventCodeFailed, At: s.Now(), IP: a.client.Addr, UserAgent: a.client.UserAgent})
	}
	return "", errBadCode
}

// codeAttempt starts the throttling of a code check for a login: the
// address, then the account from this address. The account is looked up
// first; found is false for an unknown name.
func (s *Service) codeAttempt(ctx context.Context, c Client, login string) (*attempt, db.User, bool, error) {
	a := &attempt{s: s, client: c}
	now := s.Now()
	if err := a.take(ctx, addressKey(c.Addr), s.cfg.Address, now); err != nil {
		return nil, db.User{}, false, err
	}
	u, found, err := s.lookup(ctx, login)
	if err != nil {
		a.end(ctx, abandoned)
		return nil, db.User{}, false, fail(err)
	}
	normalised, _ := valid.LoginKey(login)
	account := loginKey(normalised)
	if found {
		account = userKey(u.ID)
	}
	a.pair = pairKey(account, c.Addr)
	if err := a.take(ctx, a.pair, s.cfg.Pair, now); err != nil {
		a.end(ctx, abandoned)
		return nil, db.User{}, false, err
	}
	return a, u, found, nil
}

// Forgot starts a password reset for the account a login names: it sends
// a reset code to the account's address. The answer is the same, and takes
// as long, whether or not the account exists: the lookup and the mail
// happen after it, in the background. Requests are limited per client
// address (Recovery) and, by the spacing of mail, per account. Errors:
// EInvalid (field login), EThrottled, EBusy.
func (s *Service) Forgot(ctx context.Context, c Client, login string) error {
	if strings.TrimSpace(login) == "" {
		return invalid(FieldError{Field: "login", Message: "Enter your username or email."})
	}
	if p := valid.Text(login); p != "" || len(login) > valid.EmailMax {
		return invalid(FieldError{Field: "login", Message: "Enter your username or email."})
	}
	if err := s.recoveryLimit(ctx, c); err != nil {
		return err
	}
	return s.background(func(ctx context.Context) {
		u, found, err := s.lookup(ctx, login)
		if err != nil {
			s.log.Warn("password reset: lookup", slog.String("error", err.Error()))
			return
		}
		if !found {
			return
		}
		code, err := s.issueCode(ctx, u, db.CodeReset, u.Email)
		if err != nil {
			if ErrorCode(err) == EThrottled {
				s.cfg.Metrics.Mail(KindReset, "spaced")
				s.log.Info("password reset code not sent: one was sent less than a minute ago", "user_id", u.ID)
				return
			}
			s.log.Warn("password reset: code", "user_id", u.ID, slog.String("error", err.Error()))
			return
		}
		s.send(s.resetMessage(u, code))
	})
}

// recoveryLimit counts a request that sends mail against the client
// address's limit.
func (s *Service) recoveryLimit(ctx context.Context, c Client) error {
	a := &attempt{s: s, client: c}
	if err := a.take(ctx, recoveryKey(c.Addr), s.cfg.Recovery, s.Now()); err != nil {
		return err
	}
	a.end(ctx, counted)
	return nil
}

// background runs fn off the request, under a deadline of its own. EBusy
// when too many such jobs are running already.
func (s *Service) background(fn func(ctx context.Context)) error {
	select {
	case s.jobs <- struct{}{}:
	default:
		return &Error{Code: EBusy, Message: MsgBusy, RetryAfter: time.Second}
	}
	s.jobsWG.Add(1)
	go func() {
		defer s.jobsWG.Done()
		defer func() { <-s.jobs }()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		fn(ctx)
	}()
	return nil
}

// FlushBackground waits for the background jobs started so far (tests, and
// shutdown).
func (s *Service) FlushBackground() { s.jobsWG.Wait() }

// Reset sets a new password with a reset code sent by Forgot. Every
// session of the account ends; with signIn (the pages), a new one starts
// for this client, unless the account has two-factor on (nil Grant). Errors: EInvalid (field new_password), EBadCode (wrong,
// spent, expired or void code, and unknown accounts alike), EThrottled,
// EBusy, EUnavailable, EInternal.
func (s *Service) Reset(ctx context.Context, c Client, login, code, newPassword string, signIn bool) (*Grant, error) {
	if msg := NewPasswordProblem(newPassword); msg != "" {
		return nil, invalid(FieldError{Field: "new_password", Message: msg})
	}
	a, u, found, err := s.codeAttempt(ctx, c, login)
	if err != nil {
		return nil, err
	}
	hash, err := s.checkCode(ctx, a, u, found, db.CodeReset, code)
	if err != nil {
		if ErrorCode(err) != EBadCode {
			a.end(ctx, abandoned)
		}
		return nil, err
	}
	newHash, err := s.hasher.Hash(ctx, newPassword)
	if err != nil {
		a.end(ctx, abandoned)
		return nil, fail(err)
	}
	ended, err := s.store.ResetPassword(ctx, u.ID, hash, s.Now(), s.cfg.CodeTries, newHash, s.event(c, db.EventPasswordReset))
	s.cfg.Metrics.SessionsEnded(EndedPasswordReset, ended)
	if errors.Is(err, db.ErrNotFound) {
		// Spent by a concurrent request.
		a.end(ctx, abandoned)
		return nil, errBadCode
	}
	if err != nil {
		a.end(ctx, abandoned)
		return nil, fail(err)
	}
	a.end(ctx, succeeded)
	s.send(s.passwordChangedMessage(u))
	if !signIn || u.MFAEnabled {
		// With two-factor on, a mailed code alone never signs in: the
		// person signs in with the new password and a code.
		return nil, nil
	}
	u.PasswordHash = newHash
	u.EmailVerified = true
	s.events.wait()
	g, err := s.startSession(ctx, c, u, "", db.EventSignIn)
	if err != nil {
		return nil, fail(err)
	}
	return &g, nil
}

// VerifyEmail checks a verify code for the caller's account and makes the
// address it went to the account's verified address (for a change of
// address, the new one; the old one is told). Errors: EBadCode, EConflict
// (the new address was taken meanwhile), EThrottled, EUnavailable,
// EInternal.
func (s *Service) VerifyEmail(ctx context.Context, c Client, p *Principal, code string) error {
	return s.verifyEmail(ctx, c, p.User.Username, code)
}

// VerifyEmailByLogin is VerifyEmail for a person who is not signed in (the
// link in the mail, the login page): the login names the account. An
// unknown name is answered as a wrong code.
func (s *Service) VerifyEmailByLogin(ctx context.Context, c Client, login, code string) error {
	return s.verifyEmail(ctx, c, login, code)
}

func (s *Service) verifyEmail(ctx context.Context, c Client, login, code string) error {
	a, u, found, err := s.codeAttempt(ctx, c, login)
	if err != nil {
		return err
	}
	hash, err := s.checkCode(ctx, a, u, found, db.CodeVerify, code)
	if err != nil {
		if ErrorCode(err) != EBadCode {
			a.end(ctx, abandoned)
		}
		return err
	}
	before, spent, err := s.store.ConfirmEmail(ctx, u.ID, hash, s.Now(), s.cfg.CodeTries, s.event(c, db.EventEmailVerified))
	switch {
	case errors.Is(err, db.ErrNotFound):
		a.end(ctx, abandoned)
		return errBadCode
	case errors.Is(err, db.ErrConflict):
		a.end(ctx, abandoned)
		return &Error{Code: EConflict, Message: MsgEmailTaken, Fields: []FieldError{{Field: "code", Message: MsgEmailTaken}}}
	case err != nil:
		a.end(ctx, abandoned)
		return fail(err)
	}
	a.end(ctx, succeeded)
	if emailKey(before.Email) != spent.EmailKey {
		s.events.record(db.Event{UserID: u.ID, Kind: db.EventEmailChanged, At: s.Now(), IP: c.Addr, UserAgent: c.UserAgent,
			Detail: "Email address changed to " + spent.Email})
		s.send(s.emailChangedMessage(before, spent.Email))
	}
	return nil
}

// ResendVerification sends a new verify code: to the new address when a
// change of address is pending, else to the account's address if it is not
// verified yet. Errors: EConflict (already verified, nothing pending),
// EThrottled (limit per address, or a code went out less than a minute
// ago), EUnavailable, EInternal.
func (s *Service) ResendVerification(ctx context.Context, c Client, p *Principal) (string, error) {
	u, err := s.store.UserByID(ctx, p.User.ID)
	if err != nil {
		return "", fail(err)
	}
	target := u.Email
	pending, err := s.store.CodeFor(ctx, u.ID, db.CodeVerify)
	switch {
	case err == nil && pending.EmailKey != emailKey(u.Email):
		target = pending.Email
	case err != nil && !errors.Is(err, db.ErrNotFound):
		return "", fail(err)
	case u.EmailVerified:
		return "", &Error{Code: EConflict, Message: MsgAlreadyVerified}
	}
	if err := s.recoveryLimit(ctx, c); err != nil {
		return "", err
	}
	return target, s.sendVerification(ctx, u, target, target != u.Email)
}

// ResendByLogin sends a new verify code to the unverified address of the
// account a login names (the login page, when verified addresses are
// required). The answer is the same whether or not the account exists.
func (s *Service) ResendByLogin(ctx context.Context, c Client, login string) error {
	if p := valid.Text(login); p != "" || strings.TrimSpace(login) == "" || len(login) > valid.EmailMax {
		return invalid(FieldError{Field: "login", Message: "Enter your username or email."})
	}
	if err := s.recoveryLimit(ctx, c); err != nil {
		return err
	}
	return s.background(func(ctx context.Context) {
		u, found, err := s.lookup(ctx, login)
		if err != nil || !found || u.EmailVerified {
			return
		}
		if err := s.sendVerification(ctx, u, u.Email, false); err != nil && ErrorCode(err) != EThrottled {
			s.log.Warn("verification code", "user_id", u.ID, slog.String("error", err.Error()))
		}
	})
}

// ChangeEmail starts a change of the caller's address: after the password
// is checked, a verify code goes to the new address, which becomes the
// account's once the code comes back (VerifyEmail). Errors: EInvalid
// (field new_email), EForbidden (password), EConflict (address taken),
// EThrottled, EBusy, EUnavailable, EInternal.
func (s *Service) ChangeEmail(ctx context.Context, c Client, p *Principal, newEmail, pw string) (string, error) {
	addr, key, msg := valid.Email(newEmail)
	if msg != "" {
		return "", invalid(FieldError{Field: "new_email", Message: msg})
	}
	if key == emailKey(p.User.Email) {
		return "", invalid(FieldError{Field: "new_email", Message: MsgSameEmail})
	}
	if _, err := s.checkPassword(ctx, c, p, pw); err != nil {
		return "", err
	}
	_, taken, err := s.store.Taken(ctx, "", key)
	if err != nil {
		return "", fail(err)
	}
	if taken {
		return "", &Error{Code: EConflict, Message: MsgEmailTaken, Fields: []FieldError{{Field: "new_email", Message: MsgEmailTaken}}}
	}
	// Each change mails an address of the caller's choosing: limited per
	// client address like every request that sends mail.
	if err := s.recoveryLimit(ctx, c); err != nil {
		return "", err
	}
	if err := s.sendVerification(ctx, p.User, addr, true); err != nil {
		return "", err
	}
	return addr, nil
}

// unverified is the sign-in refusal for an account whose address is not
// verified while REQUIRE_VERIFIED_EMAIL is on.
var errUnverified = &Error{Code: EUnverified, Message: MsgNotVerified}

// PendingEmail returns the new address of a change the caller started and
// has not confirmed yet, or "".
func (s *Service) PendingEmail(ctx context.Context, p *Principal) (string, error) {
	c, err := s.store.CodeFor(ctx, p.User.ID, db.CodeVerify)
	switch {
	case errors.Is(err, db.ErrNotFound):
		return "", nil
	case err != nil:
		return "", fail(err)
	case c.EmailKey == emailKey(p.User.Email) || !s.Now().Before(c.ExpiresAt) || c.Tries >= s.cfg.CodeTries:
		return "", nil
	}
	return c.Email, nil
}
