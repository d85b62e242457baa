package account

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
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
	// KindSignInAdded tells the owner of a new way into the account (a
	// passkey, a linked provider).
	KindSignInAdded = "sign_in_added"
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

// issueCode makes a new code of purpose for u, to be sent to email (bound
// to session for a change of address), unless one went out to that address
// less than MailSpacing ago (then EThrottled with the wait).
func (s *Service) issueCode(ctx context.Context, u db.User, purpose, email, session string) (string, error) {
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
		Email: email, EmailKey: emailKey, CreatedAt: now, ExpiresAt: now.Add(s.cfg.CodeLifetime), SessionID: session},
		now.Add(-s.cfg.MailSpacing))
	if errors.Is(err, db.ErrSpaced) {
		wait := prev.Add(s.cfg.MailSpacing).Sub(now)
		if wait < time.Second {
			wait = time.Second
		}
		return "", &Error{Code: EThrottled, Message: msgCodeSentRecently + WaitWords(wait) + ".", RetryAfter: wait}
	}
	if errors.Is(err, db.ErrChanged) {
		// The session a change of address is bound to has just ended.
		return "", &Error{Code: EUnauthorized, Message: MsgNotAuthorized}
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

// sendVerification issues a code proving email and mails it: for the
// account's own address when session is "", else for a change of address
// bound to session.
func (s *Service) sendVerification(ctx context.Context, u db.User, email, session string) error {
	purpose := db.CodeVerify
	if session != "" {
		purpose = db.CodeEmailChange
	}
	code, err := s.issueCode(ctx, u, purpose, email, session)
	if err != nil {
		if ErrorCode(err) == EThrottled {
			s.cfg.Metrics.Mail(KindVerify, "spaced")
		}
		return err
	}
	s.send(s.verifyMessage(u, email, code, session != ""))
	return nil
}

// liveCode reads u's code of purpose and tells whether typed is it: the
// right HMAC, unexpired, below the tries, and still bound where it must
// be (a reset or verify code to the account's current address, a change of
// address to session). A missing code is no error (the row is zero).
func (s *Service) liveCode(ctx context.Context, u db.User, purpose, typed, session string) (db.Code, bool, error) {
	row, err := s.store.CodeFor(ctx, u.ID, purpose)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return db.Code{}, false, fail(err)
	}
	typedHash := s.codeHash(u.ID, purpose, NormaliseCode(typed))
	bound := row.EmailKey == emailKey(u.Email)
	if purpose == db.CodeEmailChange {
		bound = row.SessionID == session && session != ""
	}
	ok := err == nil && NormaliseCode(typed) != "" && row.Tries < s.cfg.CodeTries && s.Now().Before(row.ExpiresAt) &&
		hmac.Equal([]byte(typedHash), []byte(row.Hash)) && bound
	return row, ok, nil
}

// wrongCode counts a wrong code: against the rows it was compared with
// (not against newer codes that replaced them meanwhile) and as a failed
// attempt for the account; it ends the attempt.
func (s *Service) wrongCode(ctx context.Context, a *attempt, u db.User, found bool, rows ...db.Code) error {
	for _, row := range rows {
		if row.Hash == "" {
			continue
		}
		if err := s.store.FailCode(ctx, u.ID, row.Purpose, row.Hash); err != nil {
			a.end(ctx, abandoned)
			return fail(err)
		}
	}
	a.end(ctx, counted)
	if found {
		s.events.record(db.Event{UserID: u.ID, Kind: db.EventCodeFailed, At: s.Now(), IP: a.client.Addr, UserAgent: a.client.UserAgent})
	}
	return errBadCode
}

// checkCode checks a code typed for u's live code of purpose. It is
// throttled and counted like a sign-in: a wrong code is a failure for the
// account from this address, and for the address. It returns the stored
// HMAC to spend, errBadCode, or a throttling or store error. The attempt
// is left open for the caller to end. An unknown account does the same
// reads and writes, on no row, so that the answer takes as long.
func (s *Service) checkCode(ctx context.Context, a *attempt, u db.User, found bool, purpose, typed string) (string, error) {
	row, ok, err := s.liveCode(ctx, u, purpose, typed, "")
	if err != nil {
		return "", err
	}
	if ok && found {
		return row.Hash, nil
	}
	row.Purpose = purpose
	return "", s.wrongCode(ctx, a, u, found, row)
}

// codeAttempt starts the throttling of a code check for a login (see
// guess). The account is looked up first; found is false for an unknown
// name.
func (s *Service) codeAttempt(ctx context.Context, c Client, login string) (*attempt, db.User, bool, error) {
	a, err := s.guessFrom(ctx, c)
	if err != nil {
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
	if err := a.forAccount(ctx, account, u.ID); err != nil {
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
		code, err := s.issueCode(ctx, u, db.CodeReset, u.Email, "")
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

// Reset sets a new password with a reset code sent by Forgot, and carries
// out what a reset ends (every session among them). With signIn (the
// pages), a new session starts for this client, unless the account has
// two-factor on (nil Grant). Errors: EInvalid (field new_password),
// EBadCode (wrong, spent, expired or void code, and unknown accounts
// alike), EThrottled, EBusy, EUnavailable, EInternal.
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
	ended, err := s.store.ResetPassword(ctx, u.ID, hash, s.Now(), s.cfg.CodeTries, newHash, voids(ChangePasswordReset, ""),
		s.event(c, db.EventPasswordReset))
	s.cfg.Metrics.SessionsEnded(EndedPasswordReset, ended)
	if errors.Is(err, db.ErrNotFound) {
		// Spent by a concurrent request, or the address changed.
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
	if _, _, err := s.admit(u, ""); err != nil {
		return nil, nil
	}
	s.events.wait()
	g, err := s.startSession(ctx, c, u, "", db.EventSignIn)
	if err != nil {
		return nil, fail(err)
	}
	return &g, nil
}

// VerifyEmail checks a code for the caller's account: the code of a change
// of address this very session started (the new address becomes the
// account's, the old one is told), or the code that verifies the current
// address. Errors: EBadCode, EConflict (the new address was taken
// meanwhile), EThrottled, EUnavailable, EInternal.
func (s *Service) VerifyEmail(ctx context.Context, c Client, p *Principal, code string) error {
	a, err := s.guess(ctx, c, userKey(p.User.ID), p.User.ID)
	if err != nil {
		return err
	}
	u, err := s.store.UserByID(ctx, p.User.ID)
	if err != nil {
		a.end(ctx, abandoned)
		return fail(err)
	}
	change, okChange, err := s.liveCode(ctx, u, db.CodeEmailChange, code, p.Session.ID)
	if err != nil {
		a.end(ctx, abandoned)
		return err
	}
	own, okOwn, err := s.liveCode(ctx, u, db.CodeVerify, code, "")
	if err != nil {
		a.end(ctx, abandoned)
		return err
	}
	switch {
	case okChange:
		return s.confirmEmail(ctx, a, c, u, change, p.Session.ID, voids(ChangeEmail, p.Session.ID))
	case okOwn:
		// The owner, signed in, proved the address: the passkeys added and
		// the providers linked before are theirs.
		v := voids(ChangeEmailVerified, p.Session.ID)
		v.Vouch = &db.Vouching{All: true}
		return s.confirmEmail(ctx, a, c, u, own, "", v)
	}
	change.Purpose, own.Purpose = db.CodeEmailChange, db.CodeVerify
	return s.wrongCode(ctx, a, u, true, change, own)
}

// Ownership is what the owner of an address, proving it by mail without
// being signed in, says of the ways into the account that were set up
// before: nothing yet, "they are mine", or "they are not".
type Ownership int

// The answers.
const (
	Unasked Ownership = iota
	Mine
	NotMine
)

// Unproven is what an account had set up before its address was proven,
// as its owner is shown it: the passkeys and the providers added while the
// address was not verified, whether it has a password and two-factor. The
// owner's answer must carry Digest, which names exactly this state.
type Unproven struct {
	Passkeys  []string
	Providers []string
	Password  bool
	MFA       bool
	Digest    string
}

// Verified is the outcome of a proof of an address without a session:
// the question to ask its owner (Ask), or done, disowning what was set
// up before (Disowned) or not.
type Verified struct {
	Ask      *Unproven
	Disowned bool
}

// unproven returns what u had set up before its address was proven (a
// password, two-factor, passkeys and providers not vouched for), or nil
// when it has none of them.
func (s *Service) unproven(ctx context.Context, u db.User) (*Unproven, []string, []string, error) {
	keys, ids, err := s.store.Unproven(ctx, u.ID)
	if err != nil || (len(keys)+len(ids) == 0 && u.PasswordHash == "" && !u.MFAEnabled) {
		return nil, nil, nil, err
	}
	out := &Unproven{Password: u.PasswordHash != "", MFA: u.MFAEnabled}
	mac := hmac.New(sha256.New, s.cfg.CodeKey)
	fmt.Fprintf(mac, "unproven\x00%d\x00%d\x00%s", u.ID, u.Stamp, u.PasswordHash)
	var keyIDs, names []string
	for _, k := range keys {
		out.Passkeys = append(out.Passkeys, k.Name)
		keyIDs = append(keyIDs, k.ID)
		fmt.Fprintf(mac, "\x00k%s", k.ID)
	}
	for _, id := range ids {
		label := id.Provider
		if p, err := s.store.ProviderByName(ctx, id.Provider); err == nil {
			label = displayName(p)
		}
		out.Providers = append(out.Providers, label)
		names = append(names, id.Issuer+"\x00"+id.Subject)
		fmt.Fprintf(mac, "\x00p%s\x00%s\x00%s", id.Provider, id.Issuer, id.Subject)
	}
	out.Digest = base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:18])
	return out, keyIDs, names, nil
}

// VerifyEmailByLogin verifies an account's current address for a person
// who is not signed in (the link in the mail, the login page): the login
// names the account. A change of address is never confirmed this way. An
// unknown name is answered as a wrong code.
//
// The person proves they own the address, not that they made the
// account: when anything was set up on it before the address was proven
// (a password, two-factor, passkeys or providers not vouched for), a right
// code is not spent but answered with what was set up (Unproven), and the
// person says whether it is theirs (answer, with the
// digest they were shown; a digest that no longer holds asks again).
// Mine keeps it all and vouches for what was shown; NotMine takes from the
// account everything set up before (password, two-factor, those passkeys
// and providers, every session), leaving it to its owner, who sets a
// password with a reset by mail.
func (s *Service) VerifyEmailByLogin(ctx context.Context, c Client, login, code string, answer Ownership, digest string) (Verified, error) {
	a, u, found, err := s.codeAttempt(ctx, c, login)
	if err != nil {
		return Verified{}, err
	}
	row, ok, err := s.liveCode(ctx, u, db.CodeVerify, code, "")
	if err != nil {
		a.end(ctx, abandoned)
		return Verified{}, err
	}
	if !ok || !found {
		row.Purpose = db.CodeVerify
		return Verified{}, s.wrongCode(ctx, a, u, found, row)
	}
	shown, keys, providers, err := s.unproven(ctx, u)
	if err != nil {
		a.end(ctx, abandoned)
		return Verified{}, fail(err)
	}
	v, out := voids(ChangeEmailVerifiedMail, ""), Verified{}
	switch {
	case shown != nil && (answer == Unasked || !hmac.Equal([]byte(digest), []byte(shown.Digest))):
		// Not asked yet, or the account changed since: ask (again).
		a.end(ctx, abandoned)
		return Verified{Ask: shown}, nil
	case answer == NotMine:
		// (With nothing left to list, the owner's word still ends what
		// the account had.)
		v, out.Disowned = voids(ChangeEmailDisowned, ""), true
	case shown != nil:
		v.Vouch = &db.Vouching{Passkeys: keys, Identities: providers}
	}
	if err := s.confirmEmail(ctx, a, c, u, row, "", v); err != nil {
		return Verified{}, err
	}
	return out, nil
}

// confirmEmail spends a right code (of a change of address bound to
// session, or of the current address) and ends the attempt.
func (s *Service) confirmEmail(ctx context.Context, a *attempt, c Client, u db.User, row db.Code, session string, v db.Void) error {
	before, spent, err := s.store.ConfirmEmail(ctx, u.ID, row.Purpose, row.Hash, session, s.Now(), s.cfg.CodeTries, v,
		s.event(c, db.EventEmailVerified))
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

// ResendVerification sends a new code: to the new address when this
// session has a change of address pending, else to the account's address
// if it is not verified yet. Errors: EConflict (already verified, nothing
// pending), EThrottled (limit per address, or a code went out less than a
// minute ago), EUnavailable, EInternal.
func (s *Service) ResendVerification(ctx context.Context, c Client, p *Principal) (string, error) {
	u, err := s.store.UserByID(ctx, p.User.ID)
	if err != nil {
		return "", fail(err)
	}
	target, session := u.Email, ""
	if pending, err := s.PendingEmail(ctx, p); err != nil {
		return "", err
	} else if pending != "" {
		target, session = pending, p.Session.ID
	} else if u.EmailVerified {
		return "", &Error{Code: EConflict, Message: MsgAlreadyVerified}
	}
	if err := s.recoveryLimit(ctx, c); err != nil {
		return "", err
	}
	return target, s.sendVerification(ctx, u, target, session)
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
		if err := s.sendVerification(ctx, u, u.Email, ""); err != nil && ErrorCode(err) != EThrottled {
			s.log.Warn("verification code", "user_id", u.ID, slog.String("error", err.Error()))
		}
	})
}

// ChangeEmail starts a change of the caller's address: after the password
// (and, with two-factor on, a current code) is checked, a code goes to the
// new address, which becomes the account's once the code comes back from
// this same session (VerifyEmail). Errors: EInvalid (field new_email),
// EForbidden (password), EMFARequired, EBadOTP, EConflict (address
// taken), EThrottled, EBusy, EUnavailable, EInternal.
func (s *Service) ChangeEmail(ctx context.Context, c Client, p *Principal, newEmail string, proof Proof) (string, error) {
	addr, key, msg := valid.Email(newEmail)
	if msg != "" {
		return "", invalid(FieldError{Field: "new_email", Message: msg})
	}
	if key == emailKey(p.User.Email) {
		return "", invalid(FieldError{Field: "new_email", Message: MsgSameEmail})
	}
	if _, err := s.stepUp(ctx, c, p, proof); err != nil {
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
	if err := s.sendVerification(ctx, p.User, addr, p.Session.ID); err != nil {
		return "", err
	}
	return addr, nil
}

// unverified is the sign-in refusal for an account whose address is not
// verified while REQUIRE_VERIFIED_EMAIL is on.
var errUnverified = &Error{Code: EUnverified, Message: MsgNotVerified}

// PendingEmail returns the new address of a change this session started
// and has not confirmed yet, or "".
func (s *Service) PendingEmail(ctx context.Context, p *Principal) (string, error) {
	c, err := s.store.CodeFor(ctx, p.User.ID, db.CodeEmailChange)
	switch {
	case errors.Is(err, db.ErrNotFound):
		return "", nil
	case err != nil:
		return "", fail(err)
	case c.SessionID != p.Session.ID || !s.Now().Before(c.ExpiresAt) || c.Tries >= s.cfg.CodeTries:
		return "", nil
	}
	return c.Email, nil
}
