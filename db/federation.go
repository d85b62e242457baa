package db

import (
	"context"
	"database/sql"
	"errors"
	"time"
	"unicode/utf8"
)

// Sign-in with other providers: the providers configured, and the
// identities accounts have at them.

// Event kinds of sign-in with other providers.
const (
	EventProviderLinked   = "provider_linked"
	EventProviderUnlinked = "provider_unlinked"
)

// Provider kinds.
const (
	ProviderOIDC   = "oidc"
	ProviderGitHub = "github"
)

// Provider is an identity provider people may sign in with.
type Provider struct {
	// Name is its short name in URLs; DisplayName what buttons say.
	Name        string
	DisplayName string
	Kind        string
	// Issuer is an OpenID Connect provider's issuer URL.
	Issuer   string
	ClientID string
	// SealedSecret is the client secret, encrypted.
	SealedSecret string
	// Scopes are asked for besides the kind's own.
	Scopes    string
	CreatedAt time.Time
}

const providerColumns = `name, display_name, kind, issuer, client_id, client_secret, scopes, created_at`

func scanProvider(row scanner) (Provider, error) {
	var p Provider
	var created int64
	if err := row.Scan(&p.Name, &p.DisplayName, &p.Kind, &p.Issuer, &p.ClientID, &p.SealedSecret, &p.Scopes, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Provider{}, ErrNotFound
		}
		return Provider{}, err
	}
	p.CreatedAt = fromUnix(created)
	return p, nil
}

// AddProvider stores a provider; ErrConflict when the name is taken.
func (s *Store) AddProvider(ctx context.Context, p Provider) error {
	_, err := s.exec(ctx, s.w, `INSERT INTO providers (`+providerColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		p.Name, p.DisplayName, p.Kind, p.Issuer, p.ClientID, p.SealedSecret, p.Scopes, unix(p.CreatedAt))
	return err
}

// ProviderByName returns a provider, or ErrNotFound.
func (s *Store) ProviderByName(ctx context.Context, name string) (Provider, error) {
	if !utf8.ValidString(name) {
		return Provider{}, ErrNotFound
	}
	p, err := scanProvider(s.queryRow(ctx, s.r, `SELECT `+providerColumns+` FROM providers WHERE name = ?`, name))
	return p, s.wrap(err)
}

// ListProviders returns every provider, oldest first.
func (s *Store) ListProviders(ctx context.Context) ([]Provider, error) {
	rows, err := s.query(ctx, s.r, `SELECT `+providerColumns+` FROM providers ORDER BY created_at, name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Provider
	for rows.Next() {
		p, err := scanProvider(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, p)
	}
	return out, s.wrap(rows.Err())
}

// DeleteProvider deletes a provider and every identity linked at it, ends
// every session signed in with it and every application's session
// authorized from one (offline or not; on every instance, told through the
// applications' back channels as any ended session is), and voids the
// pending second steps of the accounts linked to it. It returns how
// many accounts that leaves without a way to sign in, and how many
// sessions ended. ErrNotFound when there is no such provider.
func (s *Store) DeleteProvider(ctx context.Context, name string) (stranded int, ended int64, err error) {
	var users []int64
	defer func() {
		for _, id := range users {
			s.cache.invalidateUser(id)
		}
	}()
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.queryRow(ctx, tx, `SELECT COUNT(*) FROM identities i JOIN users u ON u.id = i.user_id
			WHERE i.provider = ? AND u.password_hash = ''
			AND NOT EXISTS (SELECT 1 FROM passkeys k WHERE k.user_id = u.id)
			AND NOT EXISTS (SELECT 1 FROM identities o WHERE o.user_id = u.id AND o.provider <> i.provider)`, name).Scan(&stranded); err != nil {
			return err
		}
		// The accounts it touches: those linked to it (their pending
		// second steps, begun with it, are voided by the stamp) and those
		// signed in with it.
		rows, err := s.query(ctx, tx, `SELECT user_id FROM sessions WHERE via = ? UNION SELECT user_id FROM identities WHERE provider = ?`,
			name, name)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			users = append(users, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, `UPDATE users SET stamp = stamp + 1 WHERE id IN (SELECT user_id FROM identities WHERE provider = ?)`,
			name); err != nil {
			return err
		}
		if err := oneRow(s.exec(ctx, tx, `DELETE FROM providers WHERE name = ?`, name)); err != nil {
			return err
		}
		// The applications' sessions authorized from them end too, even
		// with offline access: nothing the provider vouched for stays.
		apps, err := s.endSessions(ctx, tx, `parent_id IN (SELECT id FROM sessions WHERE via = ?)`, name)
		if err != nil {
			return err
		}
		if ended, err = s.endSessions(ctx, tx, `via = ?`, name); err != nil {
			return err
		}
		ended += apps
		for _, id := range users {
			if err := s.notify(ctx, tx, userPayload(id)); err != nil {
				return err
			}
		}
		return nil
	})
	return stranded, ended, err
}

// Identity is an account's identity at a provider.
type Identity struct {
	Provider   string
	Issuer     string
	Subject    string
	UserID     int64
	Email      string
	CreatedAt  time.Time
	LastUsedAt time.Time
	// Vouched: the identity was linked while the account's address was
	// proven, or the provider vouched for that address. One that is not
	// is forgotten when the address is proven by mail (Void.Unvouched):
	// whoever made the account with someone else's address loses it.
	Vouched bool
}

// IdentityOf returns the identity of issuer and subject, or ErrNotFound.
func (s *Store) IdentityOf(ctx context.Context, issuer, subject string) (Identity, error) {
	id := Identity{Issuer: issuer, Subject: subject}
	var created, used int64
	err := s.queryRow(ctx, s.r, `SELECT provider, user_id, email, created_at, last_used_at, vouched FROM identities WHERE issuer = ? AND subject = ?`,
		issuer, subject).Scan(&id.Provider, &id.UserID, &id.Email, &created, &used, &id.Vouched)
	if errors.Is(err, sql.ErrNoRows) {
		return Identity{}, ErrNotFound
	}
	if err != nil {
		return Identity{}, s.wrap(err)
	}
	id.CreatedAt = fromUnix(created)
	if used != 0 {
		id.LastUsedAt = fromUnix(used)
	}
	return id, nil
}

// Identities returns the identities of an account, oldest first.
func (s *Store) Identities(ctx context.Context, userID int64) ([]Identity, error) {
	rows, err := s.query(ctx, s.r, `SELECT provider, issuer, subject, email, created_at, last_used_at, vouched FROM identities WHERE user_id = ?
		ORDER BY created_at, provider`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Identity
	for rows.Next() {
		id := Identity{UserID: userID}
		var created, used int64
		if err := rows.Scan(&id.Provider, &id.Issuer, &id.Subject, &id.Email, &created, &used, &id.Vouched); err != nil {
			return nil, s.wrap(err)
		}
		id.CreatedAt = fromUnix(created)
		if used != 0 {
			id.LastUsedAt = fromUnix(used)
		}
		out = append(out, id)
	}
	return out, s.wrap(rows.Err())
}

// LinkIdentity records that the account has the identity, with ev;
// ErrConflict when the identity is another account's, or the account
// already has one at that provider.
func (s *Store) LinkIdentity(ctx context.Context, id Identity, v Void, ev Event) error {
	defer v.done(s, id.UserID)
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockUser(ctx, tx, id.UserID, nil); err != nil {
			return err
		}
		if err := s.insertIdentity(ctx, tx, id); err != nil {
			return err
		}
		if _, err := v.apply(ctx, s, tx, id.UserID); err != nil {
			return err
		}
		if ev.Kind != "" {
			ev.UserID = id.UserID
			return s.insertEvent(ctx, tx, ev)
		}
		return nil
	})
}

// UnlinkIdentity forgets the account's identity at provider, unless it is
// its last way to sign in (ErrLastWay), carrying out v and recording ev.
// ErrNotFound when there is no such identity.
func (s *Store) UnlinkIdentity(ctx context.Context, userID int64, provider string, v Void, ev Event) (int64, error) {
	defer v.done(s, userID)
	var ended int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockUser(ctx, tx, userID, nil); err != nil {
			return err
		}
		var have int
		if err := s.queryRow(ctx, tx, `SELECT COUNT(*) FROM identities WHERE user_id = ? AND provider = ?`, userID, provider).Scan(&have); err != nil {
			return err
		}
		if have == 0 {
			return ErrNotFound
		}
		if n, err := s.waysIn(ctx, tx, userID); err != nil {
			return err
		} else if n <= 1 {
			return ErrLastWay
		}
		if _, err := s.exec(ctx, tx, `DELETE FROM identities WHERE user_id = ? AND provider = ?`, userID, provider); err != nil {
			return err
		}
		var err error
		if ended, err = v.apply(ctx, s, tx, userID); err != nil {
			return err
		}
		if ev.Kind != "" {
			ev.UserID = userID
			return s.insertEvent(ctx, tx, ev)
		}
		return nil
	})
	return ended, err
}

// TouchIdentity records a sign-in with an identity.
func (s *Store) TouchIdentity(ctx context.Context, issuer, subject string, at time.Time) error {
	_, err := s.exec(ctx, s.w, `UPDATE identities SET last_used_at = ? WHERE issuer = ? AND subject = ?`, unix(at), issuer, subject)
	return err
}

// insertIdentity links an identity in tx; ErrConflict when it is linked
// already, or the account has one at that provider. It is vouched for
// when id says so or the account's address is verified now.
func (s *Store) insertIdentity(ctx context.Context, tx *sql.Tx, id Identity) error {
	var verified bool
	if err := s.queryRow(ctx, tx, `SELECT email_verified FROM users WHERE id = ?`, id.UserID).Scan(&verified); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	}
	_, err := s.exec(ctx, tx, `INSERT INTO identities (provider, issuer, subject, user_id, email, created_at, last_used_at, vouched)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, id.Provider, id.Issuer, id.Subject, id.UserID, id.Email, unix(id.CreatedAt), unix(id.LastUsedAt),
		id.Vouched || verified)
	return err
}
