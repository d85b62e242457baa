package account

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"fiberauth/app/metrics"
	"fiberauth/db"
)

// Two-factor sign-in with an authenticator app (TOTP, RFC 6238: 160-bit
// secret, SHA-1, 6 digits, 30-second steps, one step either side) and
// recovery codes. Secrets are stored encrypted (AES-256-GCM under a key
// derived from the service secret, bound to the account); recovery codes
// as HMACs. A code is accepted once: the newest accepted step is stored,
// and a code of it or an earlier step is refused.

// Messages of two-factor sign-in.
const (
	MsgOTPRequired    = "One-time code required"
	MsgInvalidOTP     = "Invalid one-time code"
	MsgMFANotActive   = "MFA not activated"
	MsgInvalidTOTP    = "Invalid TOTP token"
	MsgMFAAlreadyOn   = "Two-factor authentication is already on"
	MsgNoPendingSetup = "Start the set-up first: there is no authenticator waiting for its first code"
)

// RecoveryCodeCount is how many recovery codes an account gets.
const RecoveryCodeCount = 10

var (
	errOTPRequired = &Error{Code: EMFARequired, Message: MsgOTPRequired}
	errInvalidOTP  = &Error{Code: EBadOTP, Message: MsgInvalidOTP}
)

const totpPeriod = 30

// sealSecret encrypts a TOTP secret for an account.
func (s *Service) sealSecret(userID int64, secret string) (string, error) {
	return s.Seal("totp:"+strconv.FormatInt(userID, 10), secret)
}

// openSecret decrypts what sealSecret made for the same account.
func (s *Service) openSecret(userID int64, sealed string) (string, error) {
	return s.Open("totp:"+strconv.FormatInt(userID, 10), sealed)
}

// Seal encrypts a secret kept at rest (AES-256-GCM under the key of
// authenticator secrets), bound to label: it opens only under the same.
func (s *Service) Seal(label, plain string) (string, error) {
	gcm, err := s.aead()
	if err != nil {
		return "", err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawStdEncoding.EncodeToString(gcm.Seal(nonce, nonce, []byte(plain), []byte(label))), nil
}

// Open decrypts what Seal made with the same label.
func (s *Service) Open(label, sealed string) (string, error) {
	b, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil {
		return "", err
	}
	gcm, err := s.aead()
	if err != nil {
		return "", err
	}
	if len(b) < gcm.NonceSize() {
		return "", errors.New("sealed secret too short")
	}
	plain, err := gcm.Open(nil, b[:gcm.NonceSize()], b[gcm.NonceSize():], []byte(label))
	return string(plain), err
}

func (s *Service) aead() (cipher.AEAD, error) {
	block, err := aes.NewCipher(s.cfg.MFAKey)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// totpStep returns the step (within one either side of now) whose code is
// code, or false.
func totpStep(secret, code string, now time.Time) (int64, bool) {
	code = strings.ReplaceAll(code, " ", "")
	if len(code) != 6 || strings.Trim(code, "0123456789") != "" {
		return 0, false
	}
	cur := now.Unix() / totpPeriod
	for _, step := range []int64{cur - 1, cur, cur + 1} {
		ok, err := totp.ValidateCustom(code, secret, time.Unix(step*totpPeriod, 0),
			totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err == nil && ok {
			return step, true
		}
	}
	return 0, false
}

// Recovery codes are 10 symbols (50 bits), "XXXXX-XXXXX".
const recoverySymbols = 10

// newRecoveryCodes returns RecoveryCodeCount recovery codes and their HMACs
// for the account.
func (s *Service) newRecoveryCodes(userID int64) (codes, hashes []string, err error) {
	for range RecoveryCodeCount {
		code, err := randomCode(recoverySymbols)
		if err != nil {
			return nil, nil, err
		}
		codes = append(codes, code)
		hashes = append(hashes, s.recoveryHash(userID, normaliseRecovery(code)))
	}
	return codes, hashes, nil
}

// normaliseRecovery reads a recovery code as typed; "" when it cannot be
// one.
func normaliseRecovery(typed string) string { return normaliseSymbols(typed, recoverySymbols) }

func (s *Service) recoveryHash(userID int64, normalised string) string {
	mac := hmac.New(sha256.New, s.cfg.CodeKey)
	mac.Write([]byte("recovery:" + strconv.FormatInt(userID, 10) + ":" + normalised))
	return hex.EncodeToString(mac.Sum(nil))
}

// secondFactor checks a code from the authenticator or a recovery code for
// u, once. It returns how u proved it ("otp" or "recovery") and, for a
// recovery code, how many are left. A wrong code is a failed sign-in for
// the attempt a (which it ends); a right one leaves a open.
func (s *Service) secondFactor(ctx context.Context, a *attempt, u db.User, code string) (string, int, error) {
	now := s.Now()
	wrong := func() (string, int, error) {
		a.end(ctx, counted)
		s.events.record(db.Event{UserID: u.ID, Kind: db.EventOTPFailed, At: now, IP: a.client.Addr, UserAgent: a.client.UserAgent})
		return "", 0, errInvalidOTP
	}
	if rc := normaliseRecovery(code); rc != "" {
		left, err := s.store.UseRecoveryCode(ctx, u.ID, s.recoveryHash(u.ID, rc))
		if errors.Is(err, db.ErrNotFound) {
			return wrong()
		}
		if err != nil {
			a.end(ctx, abandoned)
			return "", 0, fail(err)
		}
		s.events.record(db.Event{UserID: u.ID, Kind: db.EventRecoveryCodeUsed, At: now, IP: a.client.Addr, UserAgent: a.client.UserAgent,
			Detail: "Recovery code used, " + strconv.Itoa(left) + " left"})
		return "recovery", left, nil
	}
	t, err := s.store.TOTPFor(ctx, u.ID)
	if errors.Is(err, db.ErrNotFound) || (err == nil && !t.Confirmed) {
		return wrong()
	}
	if err != nil {
		a.end(ctx, abandoned)
		return "", 0, fail(err)
	}
	secret, err := s.openSecret(u.ID, t.Secret)
	if err != nil {
		a.end(ctx, abandoned)
		return "", 0, internal(err)
	}
	step, ok := totpStep(secret, code, now)
	if !ok || step <= t.LastStep {
		return wrong()
	}
	if err := s.store.UseTOTPStep(ctx, u.ID, step); err != nil {
		if errors.Is(err, db.ErrNotFound) {
			return wrong() // the same code, accepted a moment ago
		}
		a.end(ctx, abandoned)
		return "", 0, fail(err)
	}
	return "otp", 0, nil
}

// Enrolment is a started set-up: the otpauth URI for the app (and its QR
// code) and the secret for typing.
type Enrolment struct {
	URI    string
	Secret string
}

// StartTOTP begins (or begins again) setting up an authenticator: a new
// secret waits for its first code, bound to the caller's session (no other
// session sees or confirms it). EConflict when two-factor is on.
func (s *Service) StartTOTP(ctx context.Context, p *Principal) (Enrolment, error) {
	if p.User.MFAEnabled {
		return Enrolment{}, &Error{Code: EConflict, Message: MsgMFAAlreadyOn}
	}
	if p.User.Passwordless {
		// A passkey with verification is two factors already; the code
		// would guard a password the account does not have.
		return Enrolment{}, &Error{Code: EConflict, Message: MsgPasswordFirst}
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.cfg.TOTPIssuer, AccountName: p.User.Username, SecretSize: 20,
		Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return Enrolment{}, internal(err)
	}
	sealed, err := s.sealSecret(p.User.ID, key.Secret())
	if err != nil {
		return Enrolment{}, internal(err)
	}
	err = s.store.PutPendingTOTP(ctx, p.User.ID, p.Session.ID, sealed, s.Now())
	switch {
	case errors.Is(err, db.ErrConflict):
		return Enrolment{}, &Error{Code: EConflict, Message: MsgMFAAlreadyOn}
	case errors.Is(err, db.ErrNotFound):
		return Enrolment{}, &Error{Code: EUnauthorized, Message: MsgNotAuthorized}
	case err != nil:
		return Enrolment{}, fail(err)
	}
	return Enrolment{URI: key.URL(), Secret: key.Secret()}, nil
}

// pendingTOTP returns the caller's session's pending enrolment and its
// secret in clear; ok is false when this session has none.
func (s *Service) pendingTOTP(ctx context.Context, p *Principal) (db.PendingTOTP, string, bool, error) {
	t, err := s.store.PendingTOTPFor(ctx, p.User.ID)
	if errors.Is(err, db.ErrNotFound) || (err == nil && t.SessionID != p.Session.ID) {
		return db.PendingTOTP{}, "", false, nil
	}
	if err != nil {
		return db.PendingTOTP{}, "", false, fail(err)
	}
	secret, err := s.openSecret(p.User.ID, t.Secret)
	if err != nil {
		return db.PendingTOTP{}, "", false, internal(err)
	}
	return t, secret, true, nil
}

// PendingTOTP returns the set-up this session started and that waits for
// its first code, if any.
func (s *Service) PendingTOTP(ctx context.Context, p *Principal) (*Enrolment, error) {
	_, secret, ok, err := s.pendingTOTP(ctx, p)
	if err != nil || !ok {
		return nil, err
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.cfg.TOTPIssuer, AccountName: p.User.Username, Secret: mustBase32(secret),
		Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return nil, internal(err)
	}
	return &Enrolment{URI: key.URL(), Secret: secret}, nil
}

// ConfirmTOTP turns two-factor on with the first code from the app and
// the account's password, and returns the recovery codes, shown once. Only
// the session that started the set-up may confirm it. The password is
// checked first, and the code counted like a sign-in's. Errors: EBadOTP,
// EForbidden (password), EInvalid (no set-up pending for this session),
// EThrottled.
func (s *Service) ConfirmTOTP(ctx context.Context, c Client, p *Principal, pw, code string) ([]string, error) {
	t, secret, ok, err := s.pendingTOTP(ctx, p)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, invalid(FieldError{Field: "code", Message: MsgNoPendingSetup})
	}
	if _, _, err := s.checkPassword(ctx, c, p, pw, true); err != nil {
		return nil, err
	}
	a, err := s.guess(ctx, c, userKey(p.User.ID), p.User.ID)
	if err != nil {
		return nil, err
	}
	step, ok := totpStep(secret, code, s.Now())
	if !ok {
		a.end(ctx, counted)
		s.events.record(db.Event{UserID: p.User.ID, Kind: db.EventOTPFailed, At: s.Now(), IP: c.Addr, UserAgent: c.UserAgent})
		return nil, errInvalidOTP
	}
	codes, hashes, err := s.newRecoveryCodes(p.User.ID)
	if err != nil {
		a.end(ctx, abandoned)
		return nil, internal(err)
	}
	// The stored secret, sealed as checked: a set-up started again
	// meanwhile is not confirmed with this one's code.
	err = s.store.ConfirmTOTP(ctx, p.User.ID, p.Session.ID, t.Secret, step, hashes, s.Now(), voids(ChangeMFAOn, p.Session.ID),
		s.event(c, db.EventMFAEnabled))
	if errors.Is(err, db.ErrNotFound) {
		a.end(ctx, abandoned)
		return nil, invalid(FieldError{Field: "code", Message: MsgNoPendingSetup})
	}
	if err != nil {
		a.end(ctx, abandoned)
		return nil, fail(err)
	}
	a.end(ctx, succeeded)
	return codes, nil
}

// stepUp confirms a sensitive action: the password, and with two-factor
// on a current code as well; for an account without a password, a fresh
// passkey answer with the person's verification (checkPasskey). It
// returns the password hash that matched ("" for an account without one),
// for the change's conditional write.
func (s *Service) stepUp(ctx context.Context, c Client, p *Principal, proof Proof) (string, error) {
	if p.User.Passwordless && len(proof.Passkey) == 0 {
		// Without a passkey answer: a sign-in with a provider a moment ago
		// confirms (an account that signs in only with providers has
		// nothing else to confirm with).
		u, err := s.store.UserByID(ctx, p.User.ID)
		if err != nil {
			return "", fail(err)
		}
		if !u.Passwordless {
			return "", &Error{Code: EForbidden, Message: MsgIncorrectPassword}
		}
		if s.FreshProviderSignIn(p) {
			return "", nil
		}
		if list, err := s.store.Passkeys(ctx, u.ID); err != nil {
			return "", fail(err)
		} else if len(list) == 0 {
			return "", &Error{Code: EForbidden, Message: MsgReauthProvider}
		}
	}
	if p.User.Passwordless {
		u, err := s.checkPasskey(ctx, c, p, proof)
		if err != nil {
			return "", err
		}
		if !u.Passwordless {
			// A password was set meanwhile: that is what confirms now.
			return "", &Error{Code: EForbidden, Message: MsgIncorrectPassword}
		}
		return u.PasswordHash, nil
	}
	pw, code := proof.Password, proof.Code
	hash, u, err := s.checkPassword(ctx, c, p, pw, false)
	if err != nil {
		return "", err
	}
	if !u.MFAEnabled {
		return hash, nil
	}
	if strings.TrimSpace(code) == "" {
		return "", &Error{Code: EMFARequired, Message: MsgOTPRequired, Fields: []FieldError{{Field: "code", Message: "Enter a code from your authenticator app."}}}
	}
	a, err := s.guess(ctx, c, userKey(u.ID), u.ID)
	if err != nil {
		return "", err
	}
	if _, _, err := s.secondFactor(ctx, a, u, code); err != nil {
		return "", err
	}
	a.end(ctx, succeeded)
	return hash, nil
}

// ReauthWindow is how recent a sign-in with a provider must be to confirm
// a sensitive action of an account without a password.
const ReauthWindow = 10 * time.Minute

// MsgReauthProvider says how an account that signs in only with providers
// confirms a sensitive action.
const MsgReauthProvider = "Confirm by signing in again with your provider: a sign-in with it in the last 10 minutes confirms."

// FreshProviderSignIn says whether p's session of this service was signed
// in with a provider within ReauthWindow.
func (s *Service) FreshProviderSignIn(p *Principal) bool {
	se := p.Session
	if se.ClientID != "" || !slices.Contains(strings.Fields(se.AMR), "fed") {
		return false
	}
	age := s.Now().Sub(se.SignedInAt())
	return age >= -time.Minute && age <= ReauthWindow
}

// DisableTOTP turns two-factor off, with the password and a current code.
func (s *Service) DisableTOTP(ctx context.Context, c Client, p *Principal, pw, code string) error {
	if !p.User.MFAEnabled {
		return &Error{Code: EConflict, Message: MsgMFANotActive}
	}
	if _, err := s.stepUp(ctx, c, p, Proof{Password: pw, Code: code}); err != nil {
		return err
	}
	n, err := s.store.DisableTOTP(ctx, p.User.ID, voids(ChangeMFAOff, p.Session.ID), s.event(c, db.EventMFADisabled))
	s.cfg.Metrics.SessionsEnded(EndedByUser, n)
	if errors.Is(err, db.ErrNotFound) {
		return &Error{Code: EConflict, Message: MsgMFANotActive}
	}
	return fail(err)
}

// NewRecoveryCodes voids the recovery codes and returns new ones, with the
// password and a current code.
func (s *Service) NewRecoveryCodes(ctx context.Context, c Client, p *Principal, pw, code string) ([]string, error) {
	if !p.User.MFAEnabled {
		return nil, &Error{Code: EConflict, Message: MsgMFANotActive}
	}
	if _, err := s.stepUp(ctx, c, p, Proof{Password: pw, Code: code}); err != nil {
		return nil, err
	}
	codes, hashes, err := s.newRecoveryCodes(p.User.ID)
	if err != nil {
		return nil, internal(err)
	}
	return codes, fail(s.store.ReplaceRecoveryCodes(ctx, p.User.ID, hashes, voids(ChangeRecoveryCodes, p.Session.ID),
		s.event(c, db.EventRecoveryCodesReset)))
}

// RecoveryCodesLeft counts the caller's unused recovery codes.
func (s *Service) RecoveryCodesLeft(ctx context.Context, p *Principal) (int, error) {
	n, err := s.store.RecoveryCodesLeft(ctx, p.User.ID)
	return n, fail(err)
}

// VerifyTOTP is the recipe's check of a code for a username, kept for
// compatibility: it gates nothing, but it counts as a sign-in attempt for
// throttling and spends the code. Errors: EInvalid with MsgMFANotActive
// (no such account, or two-factor off), EBadOTP, EThrottled.
func (s *Service) VerifyTOTP(ctx context.Context, c Client, username, code string) error {
	a, u, found, err := s.codeAttempt(ctx, c, username)
	if err != nil {
		return err
	}
	if !found || !u.MFAEnabled {
		a.end(ctx, abandoned)
		return &Error{Code: EInvalid, Message: MsgMFANotActive}
	}
	if _, ok := totpLike(code); !ok {
		a.end(ctx, counted)
		return &Error{Code: EBadOTP, Message: MsgInvalidTOTP}
	}
	if _, _, err := s.secondFactor(ctx, a, u, code); err != nil {
		if ErrorCode(err) == EBadOTP {
			return &Error{Code: EBadOTP, Message: MsgInvalidTOTP}
		}
		return err
	}
	a.end(ctx, succeeded)
	return nil
}

// totpLike reports whether code has the form of an authenticator code.
func totpLike(code string) (string, bool) {
	code = strings.ReplaceAll(code, " ", "")
	return code, len(code) == 6 && strings.Trim(code, "0123456789") == ""
}

// SecondStep finishes a browser sign-in whose password was checked: the
// pending step (a signed cookie, which proves may check against the
// account as it is now) names the account. The code is checked and
// counted like a sign-in; a right one starts the session, if the sign-in
// decision (admit) lets it.
func (s *Service) SecondStep(ctx context.Context, c Client, userID int64, proves func(db.User) bool, code, via string) (Grant, error) {
	u, err := s.pendingUser(ctx, userID, proves)
	if err != nil {
		return Grant{}, err
	}
	// The sign-in decision first: a refused sign-in spends no code.
	granted, outcome, err := s.admit(u, "")
	if err != nil {
		s.cfg.Metrics.SignIn(c.Browser, outcome)
		return Grant{User: u}, err
	}
	a, err := s.guess(ctx, c, userKey(u.ID), u.ID)
	if err != nil {
		s.cfg.Metrics.SignIn(c.Browser, refusal(err))
		return Grant{}, err
	}
	method, _, err := s.secondFactor(ctx, a, u, code)
	if err != nil {
		s.cfg.Metrics.SignIn(c.Browser, secondOutcome(err))
		return Grant{}, err
	}
	a.end(ctx, succeeded)
	s.cfg.Metrics.SignIn(c.Browser, metrics.Success)
	s.events.wait()
	// The pending step is used once: the session starts only if the
	// account's stamp is still the one it was signed with, and moves it on.
	v := voids(ChangeSecondStepDone, "")
	if s.Hooks.BeforeSecondStepSession != nil {
		s.Hooks.BeforeSecondStepSession(ctx)
	}
	g, err := s.startSessionWith(ctx, c, u, granted, db.EventSignIn, amrFor(method, via), sessionWith{Ends: &v, Via: via})
	if errors.Is(err, db.ErrChanged) {
		return Grant{}, &Error{Code: EUnauthorized, Message: MsgIncorrectCredentials}
	}
	if err != nil {
		return Grant{}, fail(err)
	}
	return g, nil
}

func secondOutcome(err error) string {
	switch ErrorCode(err) {
	case "":
		return metrics.Success
	case EBadOTP:
		return metrics.WrongCode
	}
	return refusal(err)
}

// amrFor is the session's sign-in methods after a second factor.
// amrFor is the amr of a sign-in whose first factor was a password, or
// a provider (via), and whose second (method) was a code, if any.
func amrFor(method, via string) string {
	first := "pwd"
	if via != "" {
		first = "fed"
	}
	if method == "" {
		return first
	}
	return first + " otp"
}

// mustBase32 decodes a base-32 TOTP secret that this package encoded.
func mustBase32(secret string) []byte {
	b, err := otpBase32.DecodeString(strings.ToUpper(secret))
	if err != nil {
		return nil
	}
	return b
}

var otpBase32 = base32.StdEncoding.WithPadding(base32.NoPadding)
