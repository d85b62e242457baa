package account

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"fiberauth/app/metrics"
	"fiberauth/app/passkey"
	"fiberauth/app/throttle"
	"fiberauth/app/token"
	"fiberauth/app/valid"
	"fiberauth/db"
)

// Passkeys: adding, naming and removing them, signing in with one (without
// a username, or as the second step after a password), making an account
// with one, and confirming a sensitive action with one. The protocol is
// the passkey engine's; here are the account's rules. Every ceremony's
// state is kept in the database for CeremonyLifetime and taken once (any
// instance may finish what another began); the caller binds its id to the
// browser that asked and gives it back with the answer. Every answer that
// proves (or fails to prove) the person is counted like a password
// (guess), on every surface.

// MaxPasskeys is how many passkeys an account may have.
const MaxPasskeys = 10

// CeremonyLifetime is how long a passkey ceremony waits for its answer.
const CeremonyLifetime = passkey.Timeout

// PasskeyNameMax is the longest name of a passkey, in characters.
const PasskeyNameMax = 64

// Messages of passkeys.
const (
	MsgPasskeyRefused     = "Passkey not accepted"
	MsgPasskeyUnverified  = "This passkey could not be verified. Try again, or use another one."
	MsgCeremonyGone       = "The passkey request expired or was answered already. Try again."
	MsgTooManyPasskeys    = "An account can have at most 10 passkeys: remove one first."
	MsgPasskeyExists      = "This passkey is registered already."
	MsgPasskeyNotFound    = "Passkey not found"
	MsgPasskeysOff        = "Passkeys are not enabled on this server"
	MsgNoPasskeys         = "This account has no passkey"
	MsgConfirmWithPasskey = "Confirm with one of your passkeys."
	MsgLastWay            = "This passkey is the account's last way to sign in: add another passkey, or set a password, first."
	MsgPasswordFirst      = "Two-factor sign-in adds a code to a password: set a password first."
)

var (
	errPasskeysOff   = &Error{Code: ENotFound, Message: MsgPasskeysOff}
	errCeremonyGone  = &Error{Code: ECeremony, Message: MsgCeremonyGone}
	errNoPasskey     = &Error{Code: ENotFound, Message: MsgPasskeyNotFound}
	errLastWay       = &Error{Code: EConflict, Message: MsgLastWay}
	errPasskeySignIn = &Error{Code: EUnauthorized, Message: MsgPasskeyRefused}
	errPasskeyStepUp = &Error{Code: EForbidden, Message: MsgPasskeyRefused}
	errNotVerified   = invalid(FieldError{Field: "credential", Message: MsgPasskeyUnverified})
)

// Options is a begun ceremony: its options for the browser ({"publicKey":
// {...}}, as WebAuthn Level 3's JSON forms spell them) and the id of its
// state, which the caller binds to the browser that asked and gives back
// with the answer.
type Options struct {
	JSON     []byte
	Ceremony string
}

// Proof is what confirms a sensitive action: the password, with a current
// code when two-factor is on; or, for an account without a password, an
// answer (Passkey, the credential as toJSON gives it) to a confirmation
// ceremony (Ceremony) with the person's verification.
type Proof struct {
	Password, Code string
	Ceremony       string
	Passkey        []byte
}

// ceremonyState is what a ceremony keeps in the database: the engine's
// state and, for an account made with a passkey, the account to make.
type ceremonyState struct {
	WebAuthn json.RawMessage `json:"w"`
	Handle   []byte          `json:"h,omitempty"`
	Username string          `json:"u,omitempty"`
	Email    string          `json:"e,omitempty"`
}

// PasskeysOn reports whether passkeys are enabled.
func (s *Service) PasskeysOn() bool { return s.cfg.Passkeys != nil }

// begin stores a ceremony's state, bound to userID and session (0 and ""
// for none).
func (s *Service) begin(ctx context.Context, kind string, userID int64, session string, options []byte, st ceremonyState) (Options, error) {
	id, err := token.NewSessionID()
	if err != nil {
		return Options{}, internal(err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		return Options{}, internal(err)
	}
	err = s.store.PutCeremony(ctx, db.Ceremony{ID: id, Kind: kind, UserID: userID, SessionID: session, State: b,
		ExpiresAt: s.Now().Add(CeremonyLifetime)})
	if errors.Is(err, db.ErrNotFound) {
		return Options{}, &Error{Code: EUnauthorized, Message: MsgNotAuthorized}
	}
	if err != nil {
		return Options{}, fail(err)
	}
	return Options{JSON: options, Ceremony: id}, nil
}

// countCeremony counts a ceremony begun without a session against the
// client address (Ceremonies): each one is a row until it is taken or
// expires, so an address may not begin them without end. Every ceremony
// counts, finished or not (the login page begins one for the username
// field's autofill at each visit, and most are never answered), in fixed
// periods of Ceremonies.Window: an address may begin Limit in each.
func (s *Service) countCeremony(ctx context.Context, c Client) error {
	r, now := s.cfg.Ceremonies, s.Now()
	period := now.UnixNano() / int64(r.Window)
	end := time.Unix(0, (period+1)*int64(r.Window))
	key := "c:" + throttle.AddressKey(c.Addr) + ":" + strconv.FormatInt(period, 36)
	r.Base = r.Window // past the limit, refused for the rest of the period
	w, err := s.limits.Take(ctx, key, r, now)
	if err != nil {
		return fail(err)
	}
	if w > 0 {
		return throttled(min(w, end.Sub(now)))
	}
	return fail(s.limits.Fail(ctx, now, key))
}

// take takes a ceremony's state, once.
func (s *Service) take(ctx context.Context, id, kind string, userID int64, session string) (ceremonyState, error) {
	if id == "" {
		return ceremonyState{}, errCeremonyGone
	}
	b, err := s.store.TakeCeremony(ctx, id, kind, userID, session, s.Now())
	if errors.Is(err, db.ErrNotFound) {
		return ceremonyState{}, errCeremonyGone
	}
	if err != nil {
		return ceremonyState{}, fail(err)
	}
	var st ceremonyState
	if err := json.Unmarshal(b, &st); err != nil {
		return ceremonyState{}, internal(err)
	}
	return st, nil
}

// credential is a stored passkey as the engine takes it.
func credential(p db.Passkey) passkey.Credential {
	return passkey.Credential{ID: p.CredentialID, PublicKey: p.PublicKey, SignCount: p.SignCount, Transports: p.Transports,
		BackupEligible: p.BackupEligible, BackedUp: p.BackedUp, UserVerified: p.UserVerified, AAGUID: p.AAGUID,
		Attestation: p.Attestation}
}

// ceremonyUser is an account as the engine sees it, with passkeys list.
func ceremonyUser(u db.User, list []db.Passkey) passkey.User {
	pu := passkey.User{Handle: u.WebAuthnID, Name: u.Username}
	for _, p := range list {
		pu.Credentials = append(pu.Credentials, credential(p))
	}
	return pu
}

func randomHandle() ([]byte, error) {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	return b, err
}

// passkeyName reads a passkey's name as typed: trimmed, of printable
// characters, at most PasskeyNameMax characters. "" stays "".
func passkeyName(typed string) (string, error) {
	name := strings.TrimSpace(typed)
	if p := valid.Text(name); p != "" {
		return "", invalid(FieldError{Field: "name", Message: "Name " + p + "."})
	}
	if utf8.RuneCountInString(name) > PasskeyNameMax {
		return "", invalid(FieldError{Field: "name", Message: fmt.Sprintf("Name is longer than %d characters.", PasskeyNameMax)})
	}
	return name, nil
}

// refusedAnswer logs why an answer was refused (never shown: the answers
// do not say why, nor whether a credential exists).
func (s *Service) refusedAnswer(what string, userID int64, err error) {
	attrs := []any{"reason", err.Error()}
	if userID != 0 {
		attrs = append(attrs, "user_id", userID)
	}
	s.log.Info(what+": passkey refused", attrs...)
}

// Passkeys returns the caller's passkeys, oldest first.
func (s *Service) Passkeys(ctx context.Context, p *Principal) ([]db.Passkey, error) {
	list, err := s.store.Passkeys(ctx, p.User.ID)
	return list, fail(err)
}

// HasPasskeys reports whether an account has a passkey.
func (s *Service) HasPasskeys(ctx context.Context, userID int64) (bool, error) {
	if !s.PasskeysOn() {
		return false, nil
	}
	list, err := s.store.Passkeys(ctx, userID)
	return len(list) > 0, fail(err)
}

// BeginAddPasskey begins adding a passkey to the caller's account, from
// the caller's session (the ceremony ends with it): a discoverable
// credential, with the person's verification preferred (required for an
// account without a password, whose passkeys are its only way in).
// EConflict when the account has MaxPasskeys.
func (s *Service) BeginAddPasskey(ctx context.Context, p *Principal) (Options, error) {
	if !s.PasskeysOn() {
		return Options{}, errPasskeysOff
	}
	list, err := s.store.Passkeys(ctx, p.User.ID)
	if err != nil {
		return Options{}, fail(err)
	}
	if len(list) >= MaxPasskeys {
		return Options{}, &Error{Code: EConflict, Message: MsgTooManyPasskeys}
	}
	candidate, err := randomHandle()
	if err != nil {
		return Options{}, internal(err)
	}
	u := p.User
	if u.WebAuthnID, err = s.store.UserHandle(ctx, u.ID, candidate); err != nil {
		return Options{}, fail(err)
	}
	uv := passkey.Preferred
	if u.Passwordless {
		uv = passkey.Required
	}
	options, state, err := s.cfg.Passkeys.BeginRegistration(ceremonyUser(u, list), uv)
	if err != nil {
		return Options{}, internal(err)
	}
	return s.begin(ctx, db.CeremonyRegister, u.ID, p.Session.ID, options, ceremonyState{WebAuthn: state})
}

// AddPasskey finishes adding a passkey with the browser's answer to the
// ceremony this session began, and names it (name, or "Passkey N").
// Errors: EInvalid (field name, or credential: the answer does not hold),
// ECeremony, EConflict (MaxPasskeys, or a passkey registered already).
func (s *Service) AddPasskey(ctx context.Context, c Client, p *Principal, ceremony string, response []byte, name string) (db.Passkey, error) {
	if !s.PasskeysOn() {
		return db.Passkey{}, errPasskeysOff
	}
	name, err := passkeyName(name)
	if err != nil {
		return db.Passkey{}, err
	}
	st, err := s.take(ctx, ceremony, db.CeremonyRegister, p.User.ID, p.Session.ID)
	if err != nil {
		return db.Passkey{}, err
	}
	u, err := s.store.UserByID(ctx, p.User.ID)
	if err != nil {
		return db.Passkey{}, fail(err)
	}
	cred, err := s.cfg.Passkeys.FinishRegistration(ceremonyUser(u, nil), st.WebAuthn, response)
	if err != nil {
		if errors.Is(err, passkey.ErrRefused) {
			s.refusedAnswer("adding a passkey", u.ID, err)
			return db.Passkey{}, errNotVerified
		}
		return db.Passkey{}, internal(err)
	}
	if name == "" {
		list, err := s.store.Passkeys(ctx, u.ID)
		if err != nil {
			return db.Passkey{}, fail(err)
		}
		name = fmt.Sprintf("Passkey %d", len(list)+1)
	}
	pk, err := s.newPasskey(u.ID, cred, name)
	if err != nil {
		return db.Passkey{}, err
	}
	ev := s.event(c, db.EventPasskeyAdded)
	ev.Detail = "Passkey added: " + name
	err = s.store.AddPasskey(ctx, pk, MaxPasskeys, voids(ChangePasskeyAdded, p.Session.ID), ev)
	switch {
	case errors.Is(err, db.ErrTooMany):
		return db.Passkey{}, &Error{Code: EConflict, Message: MsgTooManyPasskeys}
	case errors.Is(err, db.ErrConflict):
		return db.Passkey{}, &Error{Code: EConflict, Message: MsgPasskeyExists}
	case errors.Is(err, db.ErrNotFound):
		return db.Passkey{}, &Error{Code: EUnauthorized, Message: MsgNotAuthorized}
	case err != nil:
		return db.Passkey{}, fail(err)
	}
	// Whoever holds a session could add one; the owner hears of it.
	s.send(s.signInAddedMessage(u, "A passkey named “"+name+"”", "A passkey was added to your account"))
	return pk, nil
}

// newPasskey is a passkey to store for userID.
func (s *Service) newPasskey(userID int64, cred passkey.Credential, name string) (db.Passkey, error) {
	id, err := token.NewSessionID()
	if err != nil {
		return db.Passkey{}, internal(err)
	}
	return db.Passkey{ID: id, UserID: userID, CredentialID: cred.ID, PublicKey: cred.PublicKey, SignCount: cred.SignCount,
		Transports: cred.Transports, BackupEligible: cred.BackupEligible, BackedUp: cred.BackedUp, UserVerified: cred.UserVerified,
		AAGUID: cred.AAGUID, Attestation: cred.Attestation, Name: name, CreatedAt: s.Now().Truncate(1e9)}, nil
}

// RenamePasskey names one of the caller's passkeys anew. EInvalid (field
// name), ENotFound.
func (s *Service) RenamePasskey(ctx context.Context, p *Principal, id, name string) (db.Passkey, error) {
	name, err := passkeyName(name)
	if err != nil {
		return db.Passkey{}, err
	}
	if name == "" {
		return db.Passkey{}, invalid(FieldError{Field: "name", Message: "Give the passkey a name."})
	}
	pk, err := s.store.RenamePasskey(ctx, p.User.ID, id, name)
	if errors.Is(err, db.ErrNotFound) {
		return db.Passkey{}, errNoPasskey
	}
	return pk, fail(err)
}

// RemovePasskey removes one of the caller's passkeys, confirmed as every
// sensitive action is (stepUp), and ends the caller's other sessions (the
// table of what ends what). The last passkey of an account without a
// password stays (EConflict). Errors: ENotFound, EConflict, and stepUp's.
func (s *Service) RemovePasskey(ctx context.Context, c Client, p *Principal, id string, proof Proof) error {
	list, err := s.store.Passkeys(ctx, p.User.ID)
	if err != nil {
		return fail(err)
	}
	found := false
	for _, pk := range list {
		found = found || pk.ID == id
	}
	switch {
	case !found:
		return errNoPasskey
	case p.User.Passwordless && len(list) <= 1:
		return errLastWay
	}
	hash, err := s.stepUp(ctx, c, p, proof)
	if err != nil {
		return err
	}
	_, n, err := s.store.RemovePasskey(ctx, p.User.ID, id, &hash, voids(ChangePasskeyRemoved, p.Session.ID), func(pk db.Passkey) db.Event {
		ev := s.event(c, db.EventPasskeyRemoved)
		ev.Detail = "Passkey removed: " + pk.Name
		return ev
	})
	s.cfg.Metrics.SessionsEnded(EndedByUser, n)
	switch {
	case errors.Is(err, db.ErrNotFound):
		return errNoPasskey
	case errors.Is(err, db.ErrLastWay):
		return errLastWay
	case errors.Is(err, db.ErrChanged):
		return &Error{Code: EForbidden, Message: MsgIncorrectPassword}
	}
	return fail(err)
}

// BeginPasskeySignIn begins a username-less sign-in: any discoverable
// passkey of this service may answer, with the person's verification.
func (s *Service) BeginPasskeySignIn(ctx context.Context, c Client) (Options, error) {
	if !s.PasskeysOn() {
		return Options{}, errPasskeysOff
	}
	if err := s.countCeremony(ctx, c); err != nil {
		return Options{}, err
	}
	options, state, err := s.cfg.Passkeys.BeginAssertion(nil, passkey.Required)
	if err != nil {
		return Options{}, internal(err)
	}
	return s.begin(ctx, db.CeremonyLogin, 0, "", options, ceremonyState{WebAuthn: state})
}

// PasskeySignIn finishes a username-less sign-in with the browser's
// answer: a passkey whose authenticator verified the person is a complete
// sign-in (amr "hwk user"), two-factor or not, if the sign-in decision
// (admit) lets it. The answer is counted like a password, against the
// account the passkey belongs to (or, for a passkey no account has, a key
// of its own, as unknown names are): the refusal is the same whether or
// not the passkey exists. Errors: EUnauthorized, ECeremony, EThrottled,
// EUnverified, EUnavailable, EInternal.
func (s *Service) PasskeySignIn(ctx context.Context, c Client, ceremony string, response []byte) (Grant, error) {
	g, outcome, userID, err := s.passkeySignIn(ctx, c, ceremony, response)
	s.cfg.Metrics.SignIn(c.Browser, outcome)
	if outcome != metrics.Success {
		attrs := []any{"outcome", outcome, "surface", surfaceName(c), "ip", c.Addr, "method", "passkey"}
		if userID != 0 {
			attrs = append(attrs, "user_id", userID)
		}
		s.log.Info("sign-in failed", attrs...)
	}
	return g, err
}

func (s *Service) passkeySignIn(ctx context.Context, c Client, ceremony string, response []byte) (Grant, string, int64, error) {
	if !s.PasskeysOn() {
		return Grant{}, metrics.Error, 0, errPasskeysOff
	}
	a, err := s.guessFrom(ctx, c)
	if err != nil {
		return Grant{}, refusal(err), 0, err
	}
	st, err := s.take(ctx, ceremony, db.CeremonyLogin, 0, "")
	if err != nil {
		a.end(ctx, abandoned)
		return Grant{}, refusal(err), 0, err
	}
	answer, err := passkey.ParseAssertion(response)
	if err != nil {
		a.end(ctx, counted)
		s.refusedAnswer("sign-in", 0, err)
		return Grant{}, metrics.WrongPasskey, 0, errPasskeySignIn
	}
	pk, u, err := s.store.PasskeyByCredential(ctx, answer.CredentialID)
	found := err == nil
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		a.end(ctx, abandoned)
		return Grant{}, metrics.Error, 0, fail(err)
	}
	key := loginKey("passkey:" + base64.RawURLEncoding.EncodeToString(answer.CredentialID))
	if found {
		key = userKey(u.ID)
	}
	if err := a.forAccount(ctx, key, u.ID); err != nil {
		return Grant{}, refusal(err), u.ID, err
	}
	if !found {
		a.end(ctx, counted)
		return Grant{}, metrics.UnknownUser, 0, errPasskeySignIn
	}
	use, verified, err := s.checkAnswer(ctx, a, u, []db.Passkey{pk}, st, answer, "sign-in")
	if err != nil {
		return Grant{}, metrics.WrongPasskey, u.ID, errPasskeySignIn
	}
	if !verified {
		// The ceremony asked for verification, and the engine refuses
		// answers without it; this says so again where it decides.
		a.end(ctx, counted)
		s.refusedAnswer("sign-in", u.ID, errors.New("the authenticator did not verify the person"))
		return Grant{}, metrics.WrongPasskey, u.ID, errPasskeySignIn
	}
	a.end(ctx, succeeded)
	granted, outcome, err := s.admit(u, "")
	if err != nil {
		return Grant{User: u}, outcome, u.ID, err
	}
	s.events.wait()
	g, err := s.startSessionWith(ctx, c, u, granted, db.EventSignIn, "hwk user", sessionWith{Passkey: use})
	if errors.Is(err, db.ErrChanged) {
		// The passkey was removed, or answered again, meanwhile.
		return Grant{}, metrics.WrongPasskey, u.ID, errPasskeySignIn
	}
	if err != nil {
		return Grant{}, metrics.Error, u.ID, fail(err)
	}
	return g, metrics.Success, u.ID, nil
}

// checkAnswer checks an assertion against its ceremony's state and the
// account's passkeys. A refused answer ends the attempt a as a failure
// and is recorded on the account (a counter that went back as such); a
// sound one leaves a open and returns the use to record and whether the
// person was verified.
func (s *Service) checkAnswer(ctx context.Context, a *attempt, u db.User, list []db.Passkey, st ceremonyState, answer *passkey.Assertion, what string) (*db.PasskeyUse, bool, error) {
	res, err := s.cfg.Passkeys.FinishAssertion(st.WebAuthn, answer, ceremonyUser(u, list))
	var pk db.Passkey
	for _, p := range list {
		if string(p.CredentialID) == string(answer.CredentialID) {
			pk = p
		}
	}
	now := s.Now()
	switch {
	case err != nil:
		a.end(ctx, counted)
		s.refusedAnswer(what, u.ID, err)
		ev := db.Event{UserID: u.ID, Kind: db.EventPasskeyFailed, At: now, IP: a.client.Addr, UserAgent: a.client.UserAgent}
		if pk.Name != "" {
			ev.Detail = "Passkey not accepted: " + pk.Name
		}
		s.events.record(ev)
		return nil, false, err
	case res.CounterWentBack:
		a.end(ctx, counted)
		s.log.Warn(what+": passkey refused: its signature counter went back", slog.Int64("user_id", u.ID),
			slog.String("passkey", pk.ID), slog.Uint64("stored", uint64(pk.SignCount)), slog.Uint64("answered", uint64(res.Credential.SignCount)))
		s.events.record(db.Event{UserID: u.ID, Kind: db.EventPasskeyCounter, At: now, IP: a.client.Addr, UserAgent: a.client.UserAgent,
			Detail: "Passkey refused: its signature counter went back, so it may have been copied: " + pk.Name})
		return nil, false, errors.New("counter went back")
	}
	return &db.PasskeyUse{ID: pk.ID, UserID: u.ID, Count: res.Credential.SignCount, BackedUp: res.Credential.BackedUp, At: now},
		res.UserVerified, nil
}

// BeginSecondStepPasskey begins the second step of a browser sign-in whose
// password was checked (the pending step names the account; proves checks
// it against the account as it is now) with one of the account's
// passkeys. ENotFound when it has none.
func (s *Service) BeginSecondStepPasskey(ctx context.Context, userID int64, proves func(db.User) bool) (Options, error) {
	if !s.PasskeysOn() {
		return Options{}, errPasskeysOff
	}
	u, err := s.pendingUser(ctx, userID, proves)
	if err != nil {
		return Options{}, err
	}
	list, err := s.store.Passkeys(ctx, u.ID)
	if err != nil {
		return Options{}, fail(err)
	}
	if len(list) == 0 {
		return Options{}, &Error{Code: ENotFound, Message: MsgNoPasskeys}
	}
	pu := ceremonyUser(u, list)
	options, state, err := s.cfg.Passkeys.BeginAssertion(&pu, passkey.Preferred)
	if err != nil {
		return Options{}, internal(err)
	}
	return s.begin(ctx, db.CeremonySecond, u.ID, "", options, ceremonyState{WebAuthn: state})
}

// pendingUser is the account of a pending second step, if it still has
// two-factor on and the step is still valid for it.
func (s *Service) pendingUser(ctx context.Context, userID int64, proves func(db.User) bool) (db.User, error) {
	u, err := s.store.UserByID(ctx, userID)
	if errors.Is(err, db.ErrNotFound) {
		return db.User{}, &Error{Code: EUnauthorized, Message: MsgIncorrectCredentials}
	}
	if err != nil {
		return db.User{}, fail(err)
	}
	if !proves(u) || !u.MFAEnabled {
		return db.User{}, &Error{Code: EUnauthorized, Message: MsgIncorrectCredentials}
	}
	return u, nil
}

// SecondStepPasskey finishes the second step with a passkey: checked and
// counted like a code, it starts the session (amr "pwd hwk", with "user"
// when the authenticator verified the person) if admit lets it. Errors:
// EUnauthorized (the pending step is void), EForbidden (the passkey was
// not accepted), ECeremony, EThrottled, EUnverified.
func (s *Service) SecondStepPasskey(ctx context.Context, c Client, userID int64, proves func(db.User) bool, ceremony string, response []byte, via string) (Grant, error) {
	if !s.PasskeysOn() {
		return Grant{}, errPasskeysOff
	}
	u, err := s.pendingUser(ctx, userID, proves)
	if err != nil {
		return Grant{}, err
	}
	// The sign-in decision first: a refused sign-in spends no ceremony.
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
	st, err := s.take(ctx, ceremony, db.CeremonySecond, u.ID, "")
	if err != nil {
		a.end(ctx, abandoned)
		return Grant{}, err
	}
	answer, err := passkey.ParseAssertion(response)
	var use *db.PasskeyUse
	verified := false
	if err == nil {
		var list []db.Passkey
		if list, err = s.store.Passkeys(ctx, u.ID); err != nil {
			a.end(ctx, abandoned)
			return Grant{}, fail(err)
		}
		use, verified, err = s.checkAnswer(ctx, a, u, list, st, answer, "second step")
	} else {
		a.end(ctx, counted)
		s.refusedAnswer("second step", u.ID, err)
	}
	if err != nil {
		s.cfg.Metrics.SignIn(c.Browser, metrics.WrongPasskey)
		return Grant{}, errPasskeyStepUp
	}
	a.end(ctx, succeeded)
	s.cfg.Metrics.SignIn(c.Browser, metrics.Success)
	amr := "pwd hwk"
	if via != "" {
		amr = "fed hwk"
	}
	if verified {
		amr += " user"
	}
	s.events.wait()
	// Used once, like the code's step: the session starts only while the
	// account's stamp is the one the pending step was signed with.
	v := voids(ChangeSecondStepDone, "")
	if s.Hooks.BeforeSecondStepSession != nil {
		s.Hooks.BeforeSecondStepSession(ctx)
	}
	g, err := s.startSessionWith(ctx, c, u, granted, db.EventSignIn, amr, sessionWith{Ends: &v, Passkey: use, Via: via})
	if errors.Is(err, db.ErrChanged) {
		return Grant{}, errPasskeyStepUp
	}
	if err != nil {
		return Grant{}, fail(err)
	}
	return g, nil
}

// BeginConfirm begins confirming a sensitive action of the caller with one
// of the account's passkeys, with the person's verification, from the
// caller's session. ENotFound when the account has none.
func (s *Service) BeginConfirm(ctx context.Context, p *Principal) (Options, error) {
	if !s.PasskeysOn() {
		return Options{}, errPasskeysOff
	}
	u, err := s.store.UserByID(ctx, p.User.ID)
	if err != nil {
		return Options{}, fail(err)
	}
	list, err := s.store.Passkeys(ctx, u.ID)
	if err != nil {
		return Options{}, fail(err)
	}
	if len(list) == 0 {
		return Options{}, &Error{Code: ENotFound, Message: MsgNoPasskeys}
	}
	pu := ceremonyUser(u, list)
	options, state, err := s.cfg.Passkeys.BeginAssertion(&pu, passkey.Required)
	if err != nil {
		return Options{}, internal(err)
	}
	return s.begin(ctx, db.CeremonyConfirm, u.ID, p.Session.ID, options, ceremonyState{WebAuthn: state})
}

// checkPasskey confirms a sensitive action of an account without a
// password: a fresh answer, with the person's verification, to a
// confirmation this session began. It is counted like a password (guess).
// It returns the account as stored.
func (s *Service) checkPasskey(ctx context.Context, c Client, p *Principal, proof Proof) (db.User, error) {
	if !s.PasskeysOn() {
		return db.User{}, errPasskeysOff
	}
	if len(proof.Passkey) == 0 {
		return db.User{}, invalid(FieldError{Field: "passkey", Message: MsgConfirmWithPasskey})
	}
	a, err := s.guess(ctx, c, userKey(p.User.ID), p.User.ID)
	if err != nil {
		return db.User{}, err
	}
	st, err := s.take(ctx, proof.Ceremony, db.CeremonyConfirm, p.User.ID, p.Session.ID)
	if err != nil {
		a.end(ctx, abandoned)
		return db.User{}, err
	}
	u, err := s.store.UserByID(ctx, p.User.ID)
	if err != nil {
		a.end(ctx, abandoned)
		return db.User{}, fail(err)
	}
	answer, err := passkey.ParseAssertion(proof.Passkey)
	if err != nil {
		a.end(ctx, counted)
		s.refusedAnswer("confirmation", u.ID, err)
		return db.User{}, errPasskeyStepUp
	}
	list, err := s.store.Passkeys(ctx, u.ID)
	if err != nil {
		a.end(ctx, abandoned)
		return db.User{}, fail(err)
	}
	use, verified, err := s.checkAnswer(ctx, a, u, list, st, answer, "confirmation")
	if err != nil {
		return db.User{}, errPasskeyStepUp
	}
	if !verified {
		a.end(ctx, counted)
		s.refusedAnswer("confirmation", u.ID, errors.New("the authenticator did not verify the person"))
		return db.User{}, errPasskeyStepUp
	}
	if err := s.store.UsePasskey(ctx, *use); err != nil {
		a.end(ctx, abandoned)
		if errors.Is(err, db.ErrChanged) {
			return db.User{}, errPasskeyStepUp
		}
		return db.User{}, fail(err)
	}
	a.end(ctx, succeeded)
	return u, nil
}

// BeginPasskeySignUp begins making an account with a passkey and no
// password: the username and address are checked as at registration (and
// again at the end), and the new account's user handle is chosen.
func (s *Service) BeginPasskeySignUp(ctx context.Context, c Client, username, email string) (Options, error) {
	if !s.PasskeysOn() {
		return Options{}, errPasskeysOff
	}
	name, nameKey, addr, addrKey, problems := checkNameAndEmail(username, email)
	if len(problems) > 0 {
		return Options{}, invalid(problems...)
	}
	if w, err := s.limits.Wait(ctx, registrationKey(c.Addr), s.Now()); err != nil {
		return Options{}, fail(err)
	} else if w > 0 {
		return Options{}, throttled(w)
	}
	if err := s.taken(ctx, nameKey, addrKey); err != nil {
		return Options{}, err
	}
	if err := s.countCeremony(ctx, c); err != nil {
		return Options{}, err
	}
	handle, err := randomHandle()
	if err != nil {
		return Options{}, internal(err)
	}
	options, state, err := s.cfg.Passkeys.BeginRegistration(passkey.User{Handle: handle, Name: name}, passkey.Required)
	if err != nil {
		return Options{}, internal(err)
	}
	return s.begin(ctx, db.CeremonySignup, 0, "", options, ceremonyState{WebAuthn: state, Handle: handle, Username: name, Email: addr})
}

// checkNameAndEmail applies the registration rules to a username and an
// address.
func checkNameAndEmail(username, email string) (name, nameKey, addr, addrKey string, problems []FieldError) {
	var msg string
	if name, nameKey, msg = valid.Username(username); msg != "" {
		problems = append(problems, FieldError{Field: "username", Message: msg})
	}
	if addr, addrKey, msg = valid.Email(email); msg != "" {
		problems = append(problems, FieldError{Field: "email", Message: msg})
	}
	return name, nameKey, addr, addrKey, problems
}

// PasskeySignUp finishes making an account with a passkey: the account
// (without a password) and its passkey are stored together, counted
// against the registrations of the address like any registration, and
// the account is signed in (amr "hwk user") unless verified addresses are
// required. Errors: EInvalid (credential), ECeremony, EConflict,
// EThrottled.
func (s *Service) PasskeySignUp(ctx context.Context, c Client, ceremony string, response []byte) (Registered, error) {
	if !s.PasskeysOn() {
		return Registered{}, errPasskeysOff
	}
	st, err := s.take(ctx, ceremony, db.CeremonySignup, 0, "")
	if err != nil {
		return Registered{}, err
	}
	cred, err := s.cfg.Passkeys.FinishRegistration(passkey.User{Handle: st.Handle, Name: st.Username}, st.WebAuthn, response)
	if err != nil {
		if errors.Is(err, passkey.ErrRefused) {
			s.refusedAnswer("making an account", 0, err)
			return Registered{}, errNotVerified
		}
		return Registered{}, internal(err)
	}
	name, nameKey, addr, addrKey, problems := checkNameAndEmail(st.Username, st.Email)
	if len(problems) > 0 {
		return Registered{}, invalid(problems...)
	}
	a := &attempt{s: s}
	if err := a.take(ctx, registrationKey(c.Addr), s.cfg.Registration, s.Now()); err != nil {
		return Registered{}, err
	}
	if err := s.taken(ctx, nameKey, addrKey); err != nil {
		a.end(ctx, abandoned)
		return Registered{}, err
	}
	pk, err := s.newPasskey(0, cred, "Passkey 1")
	if err != nil {
		a.end(ctx, abandoned)
		return Registered{}, err
	}
	now := s.Now()
	u, err := s.store.CreateUser(ctx, db.NewUser{
		Username: name, UsernameKey: nameKey, Email: addr, EmailKey: addrKey, CreatedAt: now, WebAuthnID: st.Handle, Passkey: &pk,
		Event: db.Event{Kind: db.EventAccountCreated, At: now, IP: c.Addr, UserAgent: c.UserAgent, Detail: "Account created with a passkey"},
	})
	if errors.Is(err, db.ErrConflict) {
		a.end(ctx, abandoned)
		if err := s.taken(ctx, nameKey, addrKey); err != nil {
			return Registered{}, err
		}
		return Registered{}, &Error{Code: EConflict, Message: MsgPasskeyExists}
	}
	if err != nil {
		a.end(ctx, abandoned)
		return Registered{}, fail(err)
	}
	a.end(ctx, counted)
	s.cfg.Metrics.Registered()
	if err := s.sendVerification(ctx, u, u.Email, ""); err != nil {
		s.log.Warn("verification code not sent", "user_id", u.ID, "error", err.Error())
	}
	out := Registered{User: u}
	if !s.cfg.RequireVerifiedEmail {
		g, err := s.startSessionWith(ctx, c, u, "", db.EventSignIn, "hwk user", sessionWith{})
		if err != nil {
			return out, fail(err)
		}
		out.Grant = &g
	}
	return out, nil
}

// RemoveUserPasskey removes a passkey of an account on an admin's word
// (a lost or stolen device), ending every session of the account; never
// the last way to sign in of an account without a password (its owner
// sets a password with a reset by mail first). It is recorded on the
// account and in the audit list.
func (s *Service) RemoveUserPasskey(ctx context.Context, by Admin, id int64, passkeyID string) error {
	u, err := s.target(ctx, id)
	if err != nil {
		return err
	}
	pk, n, err := s.store.RemovePasskey(ctx, id, passkeyID, nil, voids(ChangePasskeyByAdmin, ""), func(pk db.Passkey) db.Event {
		return db.Event{Kind: db.EventPasskeyRemoved, At: s.Now(), IP: by.Addr, Detail: "Passkey removed " + by.by() + ": " + pk.Name}
	})
	switch {
	case errors.Is(err, db.ErrNotFound):
		return errNoPasskey
	case errors.Is(err, db.ErrLastWay):
		return errLastWay
	case err != nil:
		return fail(err)
	}
	s.cfg.Metrics.SessionsEnded(EndedByAdmin, n)
	s.audit(ctx, by, "remove_passkey", u, pk.Name)
	return nil
}
