package account

import (
	"context"
	"errors"
	"strings"

	"fiberauth/app/valid"
	"fiberauth/db"
)

// Sign-in with another provider (an OpenID Connect issuer, or GitHub):
// what the account core does with an identity the provider vouched for.
// The protocol is app/federation's; this file decides who that is here.

// Messages of sign-in with other providers.
const (
	MsgIdentityElsewhere = "This %s account is already linked to another account here."
	MsgProviderLinked    = "Your account is already linked to a %s account: unlink it first."
	MsgLastWayProvider   = "This is your account's last way to sign in: set a password or add a passkey first."
	MsgNotLinked         = "Your account is not linked to this provider."
)

// Identity is who a provider says signed in: its issuer and subject (the
// identity's name there, never reused), and what it says of the person.
type Identity struct {
	Issuer, Subject string
	Email           string
	// EmailVerified: the provider vouches for Email.
	EmailVerified bool
	// Username is the provider's proposal (preferred_username, a GitHub
	// login), which may not be valid or free here.
	Username string
	Name     string
}

// FedOutcome is what a sign-in with a provider came to: a session
// (Grant), a second step to take (Pending: the account has two-factor
// on), an account made or found that may not sign in before its address
// is verified (Unverified), or, for an identity no account has yet, an
// account to make (NewAccount: its username, or its address too, must be
// chosen) or an address another account uses (EmailTaken: that account
// must sign in and link the provider itself; nothing is linked silently).
type FedOutcome struct {
	Grant      *Grant
	Pending    *db.User
	Unverified *db.User
	NewAccount *NewFedAccount
	EmailTaken bool
}

// NewFedAccount is the account an identity would make: the username and
// address proposed (either may be "" or refused), and why they must be
// chosen.
type NewFedAccount struct {
	Username, Email string
	Problems        []FieldError
}

// ProviderName is the display name of a provider, or its name.
func (s *Service) ProviderName(ctx context.Context, name string) string {
	if p, err := s.store.ProviderByName(ctx, name); err == nil && p.DisplayName != "" {
		return p.DisplayName
	}
	return name
}

// SignInWithIdentity signs in the account linked to id at provider prov,
// if admit lets it; with two-factor on, the second step follows. For an
// identity no account has, it makes the account when the provider's
// username and address will do, and otherwise says what to choose.
func (s *Service) SignInWithIdentity(ctx context.Context, c Client, prov db.Provider, id Identity) (FedOutcome, error) {
	known, err := s.store.IdentityOf(ctx, id.Issuer, id.Subject)
	if err == nil {
		u, err := s.store.UserByID(ctx, known.UserID)
		if err != nil {
			return FedOutcome{}, fail(err)
		}
		granted, outcome, err := s.admit(u, "")
		s.cfg.Metrics.SignIn(c.Browser, outcome)
		if ErrorCode(err) == EUnverified {
			return FedOutcome{Unverified: &u}, nil
		}
		if err != nil {
			return FedOutcome{}, err
		}
		if u.MFAEnabled {
			return FedOutcome{Pending: &u}, nil
		}
		s.events.wait()
		g, err := s.startSessionWith(ctx, c, u, granted, db.EventSignIn, "fed", sessionWith{Via: prov.Name})
		if err != nil {
			return FedOutcome{}, fail(err)
		}
		if err := s.store.TouchIdentity(ctx, id.Issuer, id.Subject, s.Now()); err != nil {
			s.log.Warn("identity use not recorded", "provider", prov.Name, "error", err.Error())
		}
		return FedOutcome{Grant: &g}, nil
	}
	if !errors.Is(err, db.ErrNotFound) {
		return FedOutcome{}, fail(err)
	}
	if id.Email != "" {
		if _, err := s.store.UserByEmailKey(ctx, emailKey(strings.TrimSpace(id.Email))); err == nil {
			return FedOutcome{EmailTaken: true}, nil
		} else if !errors.Is(err, db.ErrNotFound) {
			return FedOutcome{}, fail(err)
		}
	}
	proposal := &NewFedAccount{Username: proposeUsername(id), Email: id.Email}
	r, err := s.CreateWithIdentity(ctx, c, prov, id, proposal.Username, proposal.Email)
	var e *Error
	switch {
	case err == nil && r.Grant != nil:
		return FedOutcome{Grant: r.Grant}, nil
	case err == nil:
		return FedOutcome{Unverified: &r.User}, nil
	case errors.As(err, &e) && (e.Code == EInvalid || e.Code == EConflict):
		proposal.Problems = e.Fields
		if len(proposal.Problems) == 0 {
			proposal.Problems = []FieldError{{Field: "username", Message: e.Message}}
		}
		return FedOutcome{NewAccount: proposal}, nil
	}
	return FedOutcome{}, err
}

// proposeUsername is the username an identity suggests: the provider's,
// else the address's local part, cleaned to the username rules.
func proposeUsername(id Identity) string {
	name := id.Username
	if name == "" {
		name, _, _ = strings.Cut(id.Email, "@")
	}
	var b strings.Builder
	for _, r := range name {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			b.WriteRune(r)
		}
	}
	out := b.String()
	if len(out) > valid.UsernameMax {
		out = out[:valid.UsernameMax]
	}
	return out
}

// CreateWithIdentity makes an account for an identity no account has yet,
// with username and email chosen (the provider's proposals, or the
// person's): no password; the identity linked in the same transaction;
// the address verified only when it is the one the provider vouched for.
// It signs the new account in when admit lets it. Errors: EInvalid,
// EConflict (the username or address is taken, or the identity was just
// linked), EThrottled.
func (s *Service) CreateWithIdentity(ctx context.Context, c Client, prov db.Provider, id Identity, username, email string) (Registered, error) {
	name, nameKey, p1 := valid.Username(username)
	addr, addrKey, p2 := valid.Email(email)
	var problems []FieldError
	if p1 != "" {
		problems = append(problems, FieldError{Field: "username", Message: p1})
	}
	if p2 != "" {
		problems = append(problems, FieldError{Field: "email", Message: p2})
	}
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
	verified := id.EmailVerified && strings.EqualFold(strings.TrimSpace(id.Email), addr)
	now := s.Now()
	u, err := s.store.CreateUser(ctx, db.NewUser{
		Username: name, UsernameKey: nameKey, Email: addr, EmailKey: addrKey, CreatedAt: now, EmailVerified: verified,
		Identity: &db.Identity{Provider: prov.Name, Issuer: id.Issuer, Subject: id.Subject, Email: id.Email, CreatedAt: now, LastUsedAt: now,
			Vouched: verified},
		Event: db.Event{Kind: db.EventAccountCreated, At: now, IP: c.Addr, UserAgent: c.UserAgent,
			Detail: "Account created with " + displayName(prov)},
	})
	if errors.Is(err, db.ErrConflict) {
		a.end(ctx, abandoned)
		if err := s.taken(ctx, nameKey, addrKey); err != nil {
			return Registered{}, err
		}
		return Registered{}, &Error{Code: EConflict, Message: fmtProvider(MsgIdentityElsewhere, prov)}
	}
	if err != nil {
		a.end(ctx, abandoned)
		return Registered{}, fail(err)
	}
	a.end(ctx, counted)
	s.cfg.Metrics.Registered()
	if !verified {
		if err := s.sendVerification(ctx, u, u.Email, ""); err != nil {
			s.log.Warn("verification code not sent", "user_id", u.ID, "error", err.Error())
		}
	}
	out := Registered{User: u}
	granted, outcome, err := s.admit(u, "")
	s.cfg.Metrics.SignIn(c.Browser, outcome)
	if err != nil {
		return out, nil // made; the address must be verified before a sign-in
	}
	s.events.wait()
	g, err := s.startSessionWith(ctx, c, u, granted, db.EventSignIn, "fed", sessionWith{Via: prov.Name})
	if err != nil {
		return out, fail(err)
	}
	out.Grant = &g
	return out, nil
}

// LinkIdentity links the caller's account to id at provider prov (from
// the profile, or after signing in to the account that has the
// identity's address). It ends nothing (the table's "Sign-in provider
// linked": one more way in) and is mailed to the owner. Errors: EConflict
// (the identity is another account's, or the account has one at prov).
func (s *Service) LinkIdentity(ctx context.Context, c Client, p *Principal, prov db.Provider, id Identity) error {
	if known, err := s.store.IdentityOf(ctx, id.Issuer, id.Subject); err == nil {
		if known.UserID == p.User.ID {
			return nil
		}
		return &Error{Code: EConflict, Message: fmtProvider(MsgIdentityElsewhere, prov)}
	} else if !errors.Is(err, db.ErrNotFound) {
		return fail(err)
	}
	now := s.Now()
	ev := s.event(c, db.EventProviderLinked)
	ev.Detail = "Sign-in with " + displayName(prov) + " linked"
	// Vouched for when the provider vouches for the account's own address;
	// otherwise when the account's address is verified (the store reads
	// it in the link's transaction).
	vouched := id.EmailVerified && strings.EqualFold(strings.TrimSpace(id.Email), p.User.Email)
	err := s.store.LinkIdentity(ctx, db.Identity{Provider: prov.Name, Issuer: id.Issuer, Subject: id.Subject, UserID: p.User.ID,
		Email: id.Email, CreatedAt: now, Vouched: vouched}, voids(ChangeProviderLinked, p.Session.ID), ev)
	if errors.Is(err, db.ErrConflict) {
		if known, err := s.store.IdentityOf(ctx, id.Issuer, id.Subject); err == nil && known.UserID != p.User.ID {
			return &Error{Code: EConflict, Message: fmtProvider(MsgIdentityElsewhere, prov)}
		}
		return &Error{Code: EConflict, Message: fmtProvider(MsgProviderLinked, prov)}
	}
	if errors.Is(err, db.ErrNotFound) {
		return &Error{Code: EUnauthorized, Message: MsgNotAuthorized}
	}
	if err != nil {
		return fail(err)
	}
	s.send(s.signInAddedMessage(p.User, "Sign-in with "+displayName(prov), "A sign-in provider was linked to your account"))
	return nil
}

// UnlinkIdentity forgets the caller's identity at provider name, ending
// the account's other sessions (the table's "Sign-in provider unlinked":
// whoever holds that provider account may hold one). Never the account's
// last way to sign in. Errors: ENotFound, EConflict.
func (s *Service) UnlinkIdentity(ctx context.Context, c Client, p *Principal, name string) error {
	ev := s.event(c, db.EventProviderUnlinked)
	ev.Detail = "Sign-in with " + s.ProviderName(ctx, name) + " unlinked"
	_, err := s.store.UnlinkIdentity(ctx, p.User.ID, name, voids(ChangeProviderUnlinked, p.Session.ID), ev)
	switch {
	case errors.Is(err, db.ErrNotFound):
		return &Error{Code: ENotFound, Message: MsgNotLinked}
	case errors.Is(err, db.ErrLastWay):
		return &Error{Code: EConflict, Message: MsgLastWayProvider}
	case err != nil:
		return fail(err)
	}
	return nil
}

// LinkedIdentity is one of an account's identities, with its provider's
// display name.
type LinkedIdentity struct {
	db.Identity
	DisplayName string
}

// Identities lists the caller's linked providers.
func (s *Service) Identities(ctx context.Context, userID int64) ([]LinkedIdentity, error) {
	list, err := s.store.Identities(ctx, userID)
	if err != nil {
		return nil, fail(err)
	}
	out := make([]LinkedIdentity, 0, len(list))
	for _, id := range list {
		out = append(out, LinkedIdentity{Identity: id, DisplayName: s.ProviderName(ctx, id.Provider)})
	}
	return out, nil
}

func displayName(p db.Provider) string {
	if p.DisplayName != "" {
		return p.DisplayName
	}
	return p.Name
}

func fmtProvider(msg string, p db.Provider) string {
	return strings.Replace(msg, "%s", displayName(p), 1)
}
