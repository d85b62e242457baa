// Package passkey is the service's WebAuthn protocol engine: it makes the
// options of each passkey ceremony and checks the answers, with
// github.com/go-webauthn/webauthn. It knows nothing of HTTP, the store or
// accounts: it takes and returns plain values and opaque ceremony state,
// which the account core keeps in the database (so that any instance can
// finish a ceremony another began) and takes once.
package passkey

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// Timeout is how long a ceremony waits for its answer: the browser is told
// so, and the account core keeps the state no longer.
const Timeout = 5 * time.Minute

// ErrRefused is an answer that does not prove what it must: another site's
// (origin) or another relying party's, for another challenge, without the
// person's verification when it was required, an unknown credential, a bad
// signature, a malformed answer. It wraps the reason, for the logs.
var ErrRefused = errors.New("passkey: refused")

// Config is the relying party.
type Config struct {
	// RPID is the domain passkeys belong to; Origins the origins
	// (scheme://host[:port]) ceremonies may come from, each within it.
	RPID    string
	Origins []string
	// RPName is the service's name as passkey managers show it.
	RPName string
}

// Engine makes options and checks answers for one relying party. It is
// safe for concurrent use.
type Engine struct {
	wa *webauthn.WebAuthn
}

// New builds the engine; it refuses a relying party id that is not a
// domain, and an empty list of origins.
func New(cfg Config) (*Engine, error) {
	wa, err := webauthn.New(&webauthn.Config{
		RPID:          cfg.RPID,
		RPDisplayName: cfg.RPName,
		RPOrigins:     cfg.Origins,
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: Timeout, TimeoutUVD: Timeout},
			Registration: webauthn.TimeoutConfig{Timeout: Timeout, TimeoutUVD: Timeout},
		},
		// Extension outputs are not used; a browser that reports one
		// unasked (some report credProps) is not refused for it.
		ExtensionsUnsolicitedOutputPolicy: protocol.UnsolicitedOutputPolicyIgnore,
	})
	if err != nil {
		return nil, err
	}
	return &Engine{wa: wa}, nil
}

// RPID returns the relying party id.
func (e *Engine) RPID() string { return e.wa.Config.RPID }

// Credential is a passkey as stored: what checking its answers needs.
type Credential struct {
	ID        []byte
	PublicKey []byte
	// SignCount is the signature counter as last seen (0 for
	// authenticators that do not count).
	SignCount  uint32
	Transports []string
	// BackupEligible and BackedUp are the BE and BS flags; UserVerified
	// says the person was verified when the passkey was made.
	BackupEligible, BackedUp, UserVerified bool
	AAGUID                                 []byte
	// Attestation is the attestation statement's format.
	Attestation string
}

// User is an account as a ceremony sees it: its random user handle (never
// the username or address), its name for the passkey manager's list, and
// its passkeys.
type User struct {
	Handle      []byte
	Name        string
	Credentials []Credential
}

// Verification is what a ceremony asks of the authenticator beyond
// presence: the person's verification (a PIN, a fingerprint) required, or
// preferred (asked for where the authenticator can, not needed).
type Verification string

// Verifications.
const (
	Required  Verification = Verification(protocol.VerificationRequired)
	Preferred Verification = Verification(protocol.VerificationPreferred)
)

// webauthnUser adapts a User to the library.
type webauthnUser struct{ u User }

func (w webauthnUser) WebAuthnID() []byte          { return w.u.Handle }
func (w webauthnUser) WebAuthnName() string        { return w.u.Name }
func (w webauthnUser) WebAuthnDisplayName() string { return w.u.Name }
func (w webauthnUser) WebAuthnCredentials() []webauthn.Credential {
	out := make([]webauthn.Credential, 0, len(w.u.Credentials))
	for _, c := range w.u.Credentials {
		out = append(out, c.library())
	}
	return out
}

func (c Credential) library() webauthn.Credential {
	transports := make([]protocol.AuthenticatorTransport, 0, len(c.Transports))
	for _, t := range c.Transports {
		transports = append(transports, protocol.AuthenticatorTransport(t))
	}
	return webauthn.Credential{
		ID:                c.ID,
		PublicKey:         c.PublicKey,
		AttestationFormat: c.Attestation,
		Transport:         transports,
		Flags: webauthn.CredentialFlags{UserPresent: true, UserVerified: c.UserVerified,
			BackupEligible: c.BackupEligible, BackupState: c.BackedUp},
		Authenticator: webauthn.Authenticator{AAGUID: c.AAGUID, SignCount: c.SignCount},
	}
}

func (c Credential) descriptor() protocol.CredentialDescriptor {
	l := c.library()
	return l.Descriptor()
}

// refused wraps a library error as ErrRefused with its reason.
func refused(err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		reason := pe.Details
		if pe.DevInfo != "" {
			reason += ": " + pe.DevInfo
		}
		return fmt.Errorf("%w: %s", ErrRefused, reason)
	}
	return fmt.Errorf("%w: %v", ErrRefused, err)
}

// BeginRegistration makes the options of a new passkey for u: a
// discoverable credential (resident key), with the person's verification
// as uv asks, no attestation, and none of u's passkeys again. It returns
// the options as the browser takes them ({"publicKey": {...}}, binary
// fields in base64url, as WebAuthn Level 3's JSON forms spell them) and the
// state to check the answer against.
func (e *Engine) BeginRegistration(u User, uv Verification) (options, state []byte, err error) {
	exclude := make([]protocol.CredentialDescriptor, 0, len(u.Credentials))
	for _, c := range u.Credentials {
		exclude = append(exclude, c.descriptor())
	}
	yes := true
	creation, session, err := e.wa.BeginRegistration(webauthnUser{u},
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			RequireResidentKey: &yes,
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			UserVerification:   protocol.UserVerificationRequirement(uv),
		}),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
		webauthn.WithExclusions(exclude))
	if err != nil {
		return nil, nil, err
	}
	if options, err = json.Marshal(creation); err != nil {
		return nil, nil, err
	}
	state, err = json.Marshal(session)
	return options, state, err
}

// FinishRegistration checks the browser's answer (the credential as
// PublicKeyCredential's toJSON gives it) to a registration begun for u with
// state, and returns the new passkey. ErrRefused when it does not hold.
func (e *Engine) FinishRegistration(u User, state, response []byte) (Credential, error) {
	var session webauthn.SessionData
	if err := json.Unmarshal(state, &session); err != nil {
		return Credential{}, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return Credential{}, refused(err)
	}
	cred, err := e.wa.CreateCredential(webauthnUser{u}, session, parsed)
	if err != nil {
		return Credential{}, refused(err)
	}
	out := Credential{ID: cred.ID, PublicKey: cred.PublicKey, SignCount: cred.Authenticator.SignCount,
		BackupEligible: cred.Flags.BackupEligible, BackedUp: cred.Flags.BackupState, UserVerified: cred.Flags.UserVerified,
		AAGUID: cred.Authenticator.AAGUID, Attestation: cred.AttestationFormat}
	for _, t := range cred.Transport {
		out.Transports = append(out.Transports, string(t))
	}
	if len(out.AAGUID) == 0 {
		out.AAGUID = make([]byte, 16)
	}
	return out, nil
}

// BeginAssertion makes the options of a sign-in or a confirmation: for u's
// passkeys, or with u nil for any discoverable passkey of this relying
// party (a username-less sign-in: allowCredentials is empty). It returns
// the options ({"publicKey": {...}}) and the state.
func (e *Engine) BeginAssertion(u *User, uv Verification) (options, state []byte, err error) {
	var assertion *protocol.CredentialAssertion
	var session *webauthn.SessionData
	verify := webauthn.WithUserVerification(protocol.UserVerificationRequirement(uv))
	if u == nil {
		assertion, session, err = e.wa.BeginDiscoverableLogin(verify)
	} else {
		assertion, session, err = e.wa.BeginLogin(webauthnUser{*u}, verify)
	}
	if err != nil {
		return nil, nil, err
	}
	if assertion.Response.AllowedCredentials == nil {
		assertion.Response.AllowedCredentials = []protocol.CredentialDescriptor{}
	}
	// The library leaves an empty list out; the browser's parser wants it
	// said.
	var m map[string]map[string]any
	raw, err := json.Marshal(assertion)
	if err == nil {
		err = json.Unmarshal(raw, &m)
	}
	if err != nil {
		return nil, nil, err
	}
	if _, ok := m["publicKey"]["allowCredentials"]; !ok {
		m["publicKey"]["allowCredentials"] = []any{}
	}
	if options, err = json.Marshal(m); err != nil {
		return nil, nil, err
	}
	state, err = json.Marshal(session)
	return options, state, err
}

// Assertion is a parsed answer to BeginAssertion: which credential
// answered, and for which user handle (set by discoverable passkeys).
type Assertion struct {
	CredentialID []byte
	UserHandle   []byte
	parsed       *protocol.ParsedCredentialAssertionData
}

// ParseAssertion reads the browser's answer (the credential as toJSON
// gives it). ErrRefused when it is malformed.
func ParseAssertion(response []byte) (*Assertion, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return nil, refused(err)
	}
	return &Assertion{CredentialID: parsed.RawID, UserHandle: parsed.Response.UserHandle, parsed: parsed}, nil
}

// Result is a checked assertion: the passkey as it answered, and what its
// authenticator said.
type Result struct {
	// Credential is the passkey that answered, with its new counter and
	// backed-up flag.
	Credential Credential
	// UserVerified: the authenticator verified the person.
	UserVerified bool
	// CounterWentBack: the authenticator counts, and its counter did not
	// move past the stored one: the passkey may have been copied. The
	// answer is otherwise sound; the caller refuses it.
	CounterWentBack bool
}

// FinishAssertion checks an assertion against the state of its ceremony
// and the account u that owns the credential it names: for a discoverable
// ceremony u.Credentials need hold only that one; for one begun for u,
// every passkey it was begun with. ErrRefused when it does not hold.
func (e *Engine) FinishAssertion(state []byte, a *Assertion, u User) (Result, error) {
	var session webauthn.SessionData
	if err := json.Unmarshal(state, &session); err != nil {
		return Result{}, err
	}
	var cred *webauthn.Credential
	var err error
	if len(session.UserID) == 0 {
		_, cred, err = e.wa.ValidatePasskeyLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
			return webauthnUser{u}, nil
		}, session, a.parsed)
	} else {
		cred, err = e.wa.ValidateLogin(webauthnUser{u}, session, a.parsed)
	}
	if err != nil {
		return Result{}, refused(err)
	}
	flags := a.parsed.Response.AuthenticatorData.Flags
	out := Result{UserVerified: flags.HasUserVerified(), CounterWentBack: cred.Authenticator.CloneWarning}
	for _, c := range u.Credentials {
		if string(c.ID) == string(cred.ID) {
			out.Credential = c
		}
	}
	out.Credential.SignCount = a.parsed.Response.AuthenticatorData.Counter
	out.Credential.BackedUp = flags.HasBackupState()
	return out, nil
}
