package db

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"
)

// Event kinds of passkeys.
const (
	EventPasskeyAdded   = "passkey_added"
	EventPasskeyRemoved = "passkey_removed"
	// EventPasskeyFailed is a refused passkey sign-in with one of the
	// account's passkeys (a bad signature, another site, no user
	// verification...).
	EventPasskeyFailed = "passkey_failed"
	// EventPasskeyCounter is a passkey refused because its signature
	// counter went back: it may have been copied.
	EventPasskeyCounter = "passkey_counter"
)

// Sentinel errors of passkeys.
var (
	// ErrTooMany means the account has as many passkeys as it may.
	ErrTooMany = errors.New("db: too many passkeys")
	// ErrLastWay means the change would leave the account no way to sign
	// in: no password, passkey or linked provider.
	ErrLastWay = errors.New("db: the last way to sign in")
)

// Passkey is one of an account's passkeys (a WebAuthn credential).
type Passkey struct {
	// ID is the service's name for the passkey (in URLs); CredentialID
	// the authenticator's.
	ID           string
	UserID       int64
	CredentialID []byte
	// PublicKey is the COSE key the authenticator made.
	PublicKey []byte
	// SignCount is the signature counter as last seen; 0 for
	// authenticators that do not count.
	SignCount  uint32
	Transports []string
	// BackupEligible and BackedUp are the authenticator's BE and BS
	// flags: the passkey may be, and is, synced to other devices.
	BackupEligible, BackedUp bool
	// UserVerified: the authenticator verified the person (PIN,
	// biometrics) when the passkey was made.
	UserVerified bool
	AAGUID       []byte
	// Attestation is the attestation statement's format ("none").
	Attestation string
	Name        string
	CreatedAt   time.Time
	// LastUsedAt is zero for a passkey never used to sign in.
	LastUsedAt time.Time
	// Vouched: added while the account's address was proven, or claimed
	// since by the address's owner. One that is not is removed when the
	// address is proven by mail without it (Void.Unvouched).
	Vouched bool
}

const passkeyColumns = `id, user_id, credential_id, public_key, sign_count, transports, backup_eligible, backed_up,
	user_verified, aaguid, attestation, name, created_at, last_used_at, vouched`

func scanPasskey(row scanner) (Passkey, error) {
	var p Passkey
	var transports string
	var count, created, used int64
	if err := row.Scan(&p.ID, &p.UserID, &p.CredentialID, &p.PublicKey, &count, &transports, &p.BackupEligible,
		&p.BackedUp, &p.UserVerified, &p.AAGUID, &p.Attestation, &p.Name, &created, &used, &p.Vouched); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Passkey{}, ErrNotFound
		}
		return Passkey{}, err
	}
	p.SignCount = uint32(count)
	if transports != "" {
		p.Transports = strings.Split(transports, ",")
	}
	p.CreatedAt = fromUnix(created)
	if used > 0 {
		p.LastUsedAt = fromUnix(used)
	}
	return p, nil
}

// nullBytes stores an empty byte slice as NULL (which UNIQUE columns may
// hold many times).
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// nullable stores a zero id or an empty name as NULL.
func nullable[T comparable](v T) any {
	var zero T
	if v == zero {
		return nil
	}
	return v
}

// insertPasskey stores p in tx; it is vouched for when p says so or the
// account's address is verified now.
func (s *Store) insertPasskey(ctx context.Context, tx *sql.Tx, p Passkey) error {
	var verified bool
	if err := s.queryRow(ctx, tx, `SELECT email_verified FROM users WHERE id = ?`, p.UserID).Scan(&verified); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	}
	_, err := s.exec(ctx, tx, `INSERT INTO passkeys (`+passkeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.UserID, p.CredentialID, p.PublicKey, int64(p.SignCount), strings.Join(p.Transports, ","), p.BackupEligible,
		p.BackedUp, p.UserVerified, p.AAGUID, p.Attestation, p.Name, unix(p.CreatedAt), 0, p.Vouched || verified)
	return err
}

// UserHandle returns the account's passkey user handle, giving it
// candidate first if it has none. ErrNotFound when the account is gone.
func (s *Store) UserHandle(ctx context.Context, userID int64, candidate []byte) ([]byte, error) {
	if _, err := s.exec(ctx, s.w, `UPDATE users SET webauthn_id = ? WHERE id = ? AND webauthn_id IS NULL`, candidate, userID); err != nil {
		return nil, err
	}
	var handle []byte
	err := s.queryRow(ctx, s.w, `SELECT webauthn_id FROM users WHERE id = ?`, userID).Scan(&handle)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return handle, s.wrap(err)
}

// Passkeys returns an account's passkeys, oldest first.
func (s *Store) Passkeys(ctx context.Context, userID int64) ([]Passkey, error) {
	rows, err := s.query(ctx, s.r, `SELECT `+passkeyColumns+` FROM passkeys WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Passkey
	for rows.Next() {
		p, err := scanPasskey(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, p)
	}
	return out, s.wrap(rows.Err())
}

// PasskeyByCredential finds a passkey by its credential id, with its
// account. ErrNotFound when no account has it.
func (s *Store) PasskeyByCredential(ctx context.Context, credentialID []byte) (Passkey, User, error) {
	p, err := scanPasskey(s.queryRow(ctx, s.r, `SELECT `+passkeyColumns+` FROM passkeys WHERE credential_id = ?`, credentialID))
	if err != nil {
		return Passkey{}, User{}, s.wrap(err)
	}
	u, err := s.UserByID(ctx, p.UserID)
	if err != nil {
		return Passkey{}, User{}, err
	}
	return p, u, nil
}

// lockUser takes the account's row for the rest of tx (PostgreSQL holds
// a row lock until the commit; SQLite has one writer), so that changes
// that count an account's passkeys are serialised. With hash set, only
// while the password hash is still *hash: ErrChanged when it moved on.
// ErrNotFound when the account is gone.
func (s *Store) lockUser(ctx context.Context, tx *sql.Tx, userID int64, hash *string) error {
	query, args := `UPDATE users SET stamp = stamp WHERE id = ?`, []any{userID}
	if hash != nil {
		query, args = query+` AND password_hash = ?`, append(args, *hash)
	}
	err := oneRow(s.exec(ctx, tx, query, args...))
	if errors.Is(err, ErrNotFound) && hash != nil {
		if _, err := s.userIn(ctx, tx, userID); err == nil {
			return ErrChanged
		}
	}
	return err
}

// AddPasskey stores a new passkey of p.UserID, carrying out v and
// recording ev in the same transaction, unless the account has limit
// passkeys already (ErrTooMany). ErrConflict when the credential is
// registered already (to any account); ErrNotFound when the account is
// gone.
func (s *Store) AddPasskey(ctx context.Context, p Passkey, limit int, v Void, ev Event) error {
	defer v.done(s, p.UserID)
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockUser(ctx, tx, p.UserID, nil); err != nil {
			return err
		}
		var n int
		if err := s.queryRow(ctx, tx, `SELECT COUNT(*) FROM passkeys WHERE user_id = ?`, p.UserID).Scan(&n); err != nil {
			return err
		}
		if n >= limit {
			return ErrTooMany
		}
		if err := s.insertPasskey(ctx, tx, p); err != nil {
			return err
		}
		if _, err := v.apply(ctx, s, tx, p.UserID); err != nil {
			return err
		}
		if ev.Kind != "" {
			ev.UserID = p.UserID
			return s.insertEvent(ctx, tx, ev)
		}
		return nil
	})
}

// RenamePasskey names one of the account's passkeys anew and returns it.
// ErrNotFound when the account has no passkey id.
func (s *Store) RenamePasskey(ctx context.Context, userID int64, id, name string) (Passkey, error) {
	if err := oneRow(s.exec(ctx, s.w, `UPDATE passkeys SET name = ? WHERE id = ? AND user_id = ?`, name, id, userID)); err != nil {
		return Passkey{}, err
	}
	p, err := scanPasskey(s.queryRow(ctx, s.w, `SELECT `+passkeyColumns+` FROM passkeys WHERE id = ? AND user_id = ?`, id, userID))
	return p, s.wrap(err)
}

// RemovePasskey deletes one of the account's passkeys, carries out v and
// records the event ev makes of it, in one transaction, and returns the
// passkey and how many sessions ended. It refuses to remove the account's
// last way to sign in (ErrLastWay: no password, no other passkey, no
// linked provider). With hash set,
// only while the account's password hash is still *hash (ErrChanged: the
// password changed since it was checked). ErrNotFound when the account has
// no passkey id.
func (s *Store) RemovePasskey(ctx context.Context, userID int64, id string, hash *string, v Void, ev func(Passkey) Event) (Passkey, int64, error) {
	defer v.done(s, userID)
	var p Passkey
	var ended int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockUser(ctx, tx, userID, hash); err != nil {
			return err
		}
		var err error
		p, err = scanPasskey(s.queryRow(ctx, tx, `SELECT `+passkeyColumns+` FROM passkeys WHERE id = ? AND user_id = ?`, id, userID))
		if err != nil {
			return err
		}
		if n, err := s.waysIn(ctx, tx, userID); err != nil {
			return err
		} else if n <= 1 {
			return ErrLastWay
		}
		if _, err := s.exec(ctx, tx, `DELETE FROM passkeys WHERE id = ? AND user_id = ?`, id, userID); err != nil {
			return err
		}
		if ended, err = v.apply(ctx, s, tx, userID); err != nil {
			return err
		}
		e := ev(p)
		e.UserID = userID
		return s.insertEvent(ctx, tx, e)
	})
	return p, ended, err
}

// PasskeyUse is a passkey that just answered a ceremony: its signature
// counter, its backed-up flag and the time.
type PasskeyUse struct {
	ID     string
	UserID int64
	Count  uint32
	// BackedUp is the authenticator's BS flag now.
	BackedUp bool
	At       time.Time
}

// usePasskey records a use in tx, only while the passkey is still the
// account's and its counter is still below Count (or both are 0, for an
// authenticator that does not count): ErrChanged otherwise. So of two
// answers with one counter value only one is accepted, and a passkey
// removed meanwhile is refused.
func (s *Store) usePasskey(ctx context.Context, tx execer, u PasskeyUse) error {
	n := int64(u.Count)
	err := oneRow(s.exec(ctx, tx, `UPDATE passkeys SET sign_count = ?, backed_up = ?, last_used_at = ?
		WHERE id = ? AND user_id = ? AND (sign_count < ? OR (sign_count = 0 AND ? = 0))`,
		n, u.BackedUp, unix(u.At), u.ID, u.UserID, n, n))
	if errors.Is(err, ErrNotFound) {
		return ErrChanged
	}
	return err
}

// UsePasskey records a use (see usePasskey) on its own.
func (s *Store) UsePasskey(ctx context.Context, u PasskeyUse) error {
	return s.usePasskey(ctx, s.w, u)
}

// Ceremony is a passkey ceremony under way: what its answer is checked
// against, for whichever instance receives the answer.
type Ceremony struct {
	ID   string
	Kind string
	// UserID and SessionID bind the ceremony to an account and a
	// session (0 and "" for none); it ends with either.
	UserID    int64
	SessionID string
	State     []byte
	ExpiresAt time.Time
}

// Ceremony kinds.
const (
	CeremonyRegister = "register"
	CeremonySignup   = "signup"
	CeremonyLogin    = "login"
	CeremonySecond   = "second"
	CeremonyConfirm  = "confirm"
)

// PutCeremony stores a ceremony. ErrNotFound when its session has ended
// (or its account is gone).
func (s *Store) PutCeremony(ctx context.Context, c Ceremony) error {
	err := oneRow(s.exec(ctx, s.w, `INSERT INTO passkey_ceremonies (id, kind, user_id, session_id, state, expires_at)
		SELECT ?1, ?2, ?3, ?4, ?5, ?6
		WHERE (CAST(?4 AS TEXT) IS NULL OR EXISTS (SELECT 1 FROM sessions WHERE id = ?4 AND user_id = ?3))
		AND (CAST(?3 AS BIGINT) IS NULL OR EXISTS (SELECT 1 FROM users WHERE id = ?3))`,
		c.ID, c.Kind, nullable(c.UserID), nullable(c.SessionID), c.State, unix(c.ExpiresAt)))
	if errors.Is(err, ErrChanged) {
		return ErrNotFound
	}
	return err
}

// TakeCeremony takes the ceremony id of kind, bound to userID and session
// (0 and "" for none), and returns its state, once: a conditional delete,
// so that of two answers to one ceremony only one gets it, on any
// instance. ErrNotFound when there is no such ceremony, or it expired
// at now.
func (s *Store) TakeCeremony(ctx context.Context, id, kind string, userID int64, session string, now time.Time) ([]byte, error) {
	var state []byte
	err := s.queryRow(ctx, s.w, `DELETE FROM passkey_ceremonies WHERE id = ? AND kind = ? AND expires_at > ?
		AND COALESCE(user_id, 0) = ? AND COALESCE(session_id, '') = ? RETURNING state`,
		id, kind, unix(now), userID, session).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return state, s.wrap(err)
}

// waysIn counts the account's ways to sign in, in tx (whose caller holds
// the account's row): its password, its passkeys, its linked providers.
func (s *Store) waysIn(ctx context.Context, tx *sql.Tx, userID int64) (int, error) {
	var n int
	err := s.queryRow(ctx, tx, `SELECT CASE WHEN password_hash = '' THEN 0 ELSE 1 END
		+ (SELECT COUNT(*) FROM passkeys WHERE user_id = ?) + (SELECT COUNT(*) FROM identities WHERE user_id = ?)
		FROM users WHERE id = ?`, userID, userID, userID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	return n, err
}

// Unproven returns the account's ways in added before its address was
// proven and not claimed since: its passkeys and identities at providers
// that are not vouched for, oldest first.
func (s *Store) Unproven(ctx context.Context, userID int64) ([]Passkey, []Identity, error) {
	keys, err := s.Passkeys(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	ids, err := s.Identities(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	var pk []Passkey
	for _, k := range keys {
		if !k.Vouched {
			pk = append(pk, k)
		}
	}
	var out []Identity
	for _, id := range ids {
		if !id.Vouched {
			out = append(out, id)
		}
	}
	return pk, out, nil
}
