package db

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"strings"
	"time"
	"unicode/utf8"
)

// The OpenID Connect provider's storage: registered applications
// (clients), authorization codes, remembered consent, and the durable queue
// of back-channel logout notices.

// Event kinds of the OpenID Connect provider.
const (
	EventAppAllowed = "app_allowed"
	EventAppSignIn  = "app_sign_in"
	EventAppRevoked = "app_revoked"
)

// newSubject returns an account's subject: a random (version 4) UUID,
// 36 characters, which is longer than any username may be, so that no
// token's sub can mean an account by its subject and another by its name.
func newSubject() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// Client is a registered application.
type Client struct {
	ID   string
	Name string
	// SecretHash is the SHA-256 of a confidential client's secret; nil for
	// a public client, which proves itself with PKCE alone.
	SecretHash []byte
	// RedirectURIs and PostLogoutRedirectURIs are compared exactly.
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	// BackchannelLogoutURI receives logout tokens; "" for none.
	BackchannelLogoutURI string
	// Scopes are the scopes it may ask for.
	Scopes []string
	// FirstParty clients are not shown a consent screen.
	FirstParty bool
	// IDTokenAlg is RS256 or EdDSA.
	IDTokenAlg string
	CreatedAt  time.Time
}

// Public reports whether the client has no secret.
func (c Client) Public() bool { return len(c.SecretHash) == 0 }

const clientColumns = `id, name, secret_hash, redirect_uris, post_logout_redirect_uris, backchannel_logout_uri, scopes,
	first_party, id_token_alg, created_at`

func scanClient(row scanner) (Client, error) {
	var c Client
	var redirects, logouts, scopes string
	var created int64
	if err := row.Scan(&c.ID, &c.Name, &c.SecretHash, &redirects, &logouts, &c.BackchannelLogoutURI, &scopes, &c.FirstParty,
		&c.IDTokenAlg, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Client{}, ErrNotFound
		}
		return Client{}, err
	}
	c.RedirectURIs, c.PostLogoutRedirectURIs, c.Scopes = lines(redirects), lines(logouts), strings.Fields(scopes)
	c.CreatedAt = fromUnix(created)
	return c, nil
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// CreateClient stores a new client; ErrConflict when its id is taken.
func (s *Store) CreateClient(ctx context.Context, c Client) error {
	var secret any
	if len(c.SecretHash) > 0 {
		secret = c.SecretHash
	}
	_, err := s.exec(ctx, s.w, `INSERT INTO clients (`+clientColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Name, secret, strings.Join(c.RedirectURIs, "\n"), strings.Join(c.PostLogoutRedirectURIs, "\n"),
		c.BackchannelLogoutURI, strings.Join(c.Scopes, " "), c.FirstParty, c.IDTokenAlg, unix(c.CreatedAt))
	return err
}

// ClientByID returns a client, or ErrNotFound.
func (s *Store) ClientByID(ctx context.Context, id string) (Client, error) {
	if !utf8.ValidString(id) {
		return Client{}, ErrNotFound // no id is (PostgreSQL would refuse to compare)
	}
	row, err := s.readRow(ctx, `SELECT `+clientColumns+` FROM clients WHERE id = ?`, id)
	if err != nil {
		return Client{}, err
	}
	c, err := scanClient(row)
	return c, s.wrap(err)
}

// ListClients returns every client, oldest first.
func (s *Store) ListClients(ctx context.Context) ([]Client, error) {
	rows, err := s.query(ctx, s.r, `SELECT `+clientColumns+` FROM clients ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, c)
	}
	return out, s.wrap(rows.Err())
}

// SetClientSecret replaces a confidential client's secret; ErrNotFound for
// no such client, ErrConflict for a public one (it has none to rotate).
func (s *Store) SetClientSecret(ctx context.Context, id string, hash []byte) error {
	res, err := s.exec(ctx, s.w, `UPDATE clients SET secret_hash = ? WHERE id = ? AND secret_hash IS NOT NULL`, hash, id)
	if err := oneRow(res, err); err != nil {
		if errors.Is(err, ErrNotFound) {
			if _, err := s.ClientByID(ctx, id); err == nil {
				return ErrConflict
			}
		}
		return err
	}
	return nil
}

// DeleteClient removes a client with its codes, consents, pending notices
// and the sessions (tokens) it holds.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	var users []int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := s.query(ctx, tx, `SELECT DISTINCT user_id FROM sessions WHERE client_id = ?`, id)
		if err != nil {
			return err
		}
		for rows.Next() {
			var u int64
			if err := rows.Scan(&u); err != nil {
				rows.Close()
				return err
			}
			users = append(users, u)
		}
		rows.Close()
		if err := oneRow(s.exec(ctx, tx, `DELETE FROM clients WHERE id = ?`, id)); err != nil {
			return err
		}
		for _, u := range users {
			if err := s.notify(ctx, tx, userPayload(u)); err != nil {
				return err
			}
		}
		return nil
	})
	for _, u := range users {
		s.cache.invalidateUser(u)
	}
	return err
}

// AuthCode is an authorization code, stored by the hash of the code.
type AuthCode struct {
	Hash          []byte
	ClientID      string
	SessionID     string
	RedirectURI   string
	Scope         string
	Nonce         string
	CodeChallenge string
	CreatedAt     time.Time
	ExpiresAt     time.Time
}

// PutAuthCode stores a new code; ErrNotFound (writing nothing) when the
// session that authorized it has ended meanwhile.
func (s *Store) PutAuthCode(ctx context.Context, c AuthCode) error {
	res, err := s.exec(ctx, s.w, `INSERT INTO auth_codes
		(hash, client_id, session_id, redirect_uri, scope, nonce, code_challenge, created_at, expires_at)
		SELECT ?, ?, id, ?, ?, ?, ?, ?, ? FROM sessions WHERE id = ?`,
		c.Hash, c.ClientID, c.RedirectURI, c.Scope, c.Nonce, c.CodeChallenge, unix(c.CreatedAt), unix(c.ExpiresAt), c.SessionID)
	return oneRow(res, err)
}

// ErrCodeReplayed is returned by ExchangeCode for a code spent before: the
// session it was exchanged for has been ended.
var ErrCodeReplayed = errors.New("db: authorization code presented again")

// Exchange asks ExchangeCode to spend a code and start the application's
// session in the same transaction.
type Exchange struct {
	Hash []byte
	Now  time.Time
	// Check vets the code (client, redirect URI, PKCE) and its
	// authorizing session before anything is written; its error aborts
	// the exchange, which spends nothing.
	Check func(AuthCode, Session, User) error
	// Start builds the application's session from the code and the
	// authorizing session.
	Start func(AuthCode, Session) NewSession
	// Replayed is what a replay ends (with Sessions ThisSession, the
	// session the code was exchanged for: Session is set here).
	Replayed Void
}

// ExchangeCode spends an unexpired, unspent authorization code and stores
// the application's session (with its first refresh token, if any) in one
// transaction, and returns the code, the authorizing session and its
// account. A code presented again ends the session it was exchanged for and
// returns ErrCodeReplayed; an unknown or expired one ErrNotFound.
func (s *Store) ExchangeCode(ctx context.Context, x Exchange) (AuthCode, Session, User, error) {
	var code AuthCode
	var parent Session
	var u User
	var replayedUser int64
	replayed := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var created, expires int64
		var used sql.NullInt64
		var issued sql.NullString
		err := s.queryRow(ctx, tx, `SELECT client_id, session_id, redirect_uri, scope, nonce, code_challenge, created_at, expires_at,
			used_at, issued FROM auth_codes WHERE hash = ?`, x.Hash).Scan(&code.ClientID, &code.SessionID, &code.RedirectURI,
			&code.Scope, &code.Nonce, &code.CodeChallenge, &created, &expires, &used, &issued)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		code.Hash, code.CreatedAt, code.ExpiresAt = x.Hash, fromUnix(created), fromUnix(expires)
		if used.Valid {
			// A code comes back: whoever has it, what it issued ends.
			if issued.Valid {
				var owner int64
				err := s.queryRow(ctx, tx, `SELECT user_id FROM sessions WHERE id = ?`, issued.String).Scan(&owner)
				if err == nil {
					v := x.Replayed
					v.Session = issued.String
					if _, err := v.apply(ctx, s, tx, owner); err != nil {
						return err
					}
					replayedUser = owner
				} else if !errors.Is(err, sql.ErrNoRows) {
					return err
				}
			}
			// Committed: what the code issued ends, whatever is answered.
			replayed = true
			return nil
		}
		if !x.Now.Before(code.ExpiresAt) {
			return ErrNotFound
		}
		parent = Session{ID: code.SessionID}
		var pcreated, pexpires, pused, ucreated int64
		var pauth int64
		err = s.queryRow(ctx, tx, `SELECT s.user_id, s.created_at, s.expires_at, s.last_used_at, s.scope, s.amr, s.auth_time,
			u.username, u.email, u.created_at, u.role, u.email_verified, u.mfa_enabled, u.subject, u.password_hash
			FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?`, code.SessionID).Scan(&parent.UserID, &pcreated,
			&pexpires, &pused, &parent.Scope, &parent.AMR, &pauth, &u.Username, &u.Email, &ucreated, &u.Role, &u.EmailVerified,
			&u.MFAEnabled, &u.Subject, &u.PasswordHash)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		u.ID = parent.UserID
		parent.CreatedAt, parent.ExpiresAt, parent.LastUsedAt, u.CreatedAt = fromUnix(pcreated), fromUnix(pexpires), fromUnix(pused), fromUnix(ucreated)
		if pauth != 0 {
			parent.AuthTime = fromUnix(pauth)
		}
		if x.Check != nil {
			if err := x.Check(code, parent, u); err != nil {
				return err
			}
		}
		ns := x.Start(code, parent)
		res, err := s.exec(ctx, tx, `UPDATE auth_codes SET used_at = ?, issued = ? WHERE hash = ? AND used_at IS NULL`,
			unix(x.Now), ns.ID, x.Hash)
		if err := oneRow(res, err); err != nil {
			return err
		}
		se := ns.Session
		if _, err := s.exec(ctx, tx, `INSERT INTO sessions
			(id, user_id, created_at, expires_at, last_used_at, ip, user_agent, scope, amr, client_id, parent_id, offline, auth_time)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			se.ID, se.UserID, unix(se.CreatedAt), unix(se.ExpiresAt), unix(se.LastUsedAt), se.IP, se.UserAgent, se.Scope,
			amrOrPwd(se.AMR), se.ClientID, se.ParentID, se.Offline, unix(se.AuthTime)); err != nil {
			return err
		}
		if len(ns.RefreshHash) > 0 {
			if _, err := s.exec(ctx, tx, `INSERT INTO refresh_tokens (hash, session_id, issued_at) VALUES (?, ?, ?)`,
				ns.RefreshHash, se.ID, unixMilli(se.CreatedAt)); err != nil {
				return err
			}
		}
		if ns.Event.Kind != "" {
			ns.Event.UserID = se.UserID
			return s.insertEvent(ctx, tx, ns.Event)
		}
		return nil
	})
	if replayedUser != 0 {
		x.Replayed.done(s, replayedUser)
	}
	if err == nil && replayed {
		return code, parent, u, ErrCodeReplayed
	}
	return code, parent, u, err
}

// Consent is what an account allowed an application.
type Consent struct {
	UserID    int64
	ClientID  string
	Scope     string
	CreatedAt time.Time
}

// ConsentFor returns what userID allowed clientID, or ErrNotFound.
func (s *Store) ConsentFor(ctx context.Context, userID int64, clientID string) (Consent, error) {
	c := Consent{UserID: userID, ClientID: clientID}
	var created int64
	err := s.queryRow(ctx, s.r, `SELECT scope, created_at FROM consents WHERE user_id = ? AND client_id = ?`, userID, clientID).
		Scan(&c.Scope, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Consent{}, ErrNotFound
	}
	c.CreatedAt = fromUnix(created)
	return c, s.wrap(err)
}

// PutConsent remembers that userID allowed clientID scope (replacing what
// was remembered before).
func (s *Store) PutConsent(ctx context.Context, c Consent, ev Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, `INSERT INTO consents (user_id, client_id, scope, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, created_at = excluded.created_at`,
			c.UserID, c.ClientID, c.Scope, unix(c.CreatedAt)); err != nil {
			return err
		}
		if ev.Kind != "" {
			ev.UserID = c.UserID
			return s.insertEvent(ctx, tx, ev)
		}
		return nil
	})
}

// ConnectedApp is an application that holds a consent or live sessions of
// an account.
type ConnectedApp struct {
	Client Client
	// Scope is what the account allowed ("" without a remembered
	// consent: a first-party application).
	Scope string
	// Since is the first consent or session; LastUsed the latest use of
	// one of its sessions (zero when it holds none).
	Since, LastUsed time.Time
	Sessions        int
}

// ListConnectedApps returns the applications userID allowed or that hold
// sessions of it, newest first.
func (s *Store) ListConnectedApps(ctx context.Context, userID int64, now time.Time) ([]ConnectedApp, error) {
	rows, err := s.query(ctx, s.r, `SELECT `+prefixed("k.", clientColumns)+`,
			COALESCE((SELECT scope FROM consents WHERE user_id = ?1 AND client_id = k.id), ''),
			COALESCE((SELECT created_at FROM consents WHERE user_id = ?1 AND client_id = k.id), 0),
			COALESCE((SELECT MIN(created_at) FROM sessions WHERE user_id = ?1 AND client_id = k.id AND expires_at > ?2), 0),
			COALESCE((SELECT MAX(last_used_at) FROM sessions WHERE user_id = ?1 AND client_id = k.id AND expires_at > ?2), 0),
			(SELECT COUNT(*) FROM sessions WHERE user_id = ?1 AND client_id = k.id AND expires_at > ?2)
		FROM clients k
		WHERE EXISTS (SELECT 1 FROM consents WHERE user_id = ?1 AND client_id = k.id)
			OR EXISTS (SELECT 1 FROM sessions WHERE user_id = ?1 AND client_id = k.id AND expires_at > ?2)
		ORDER BY k.name, k.id`, userID, unix(now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ConnectedApp
	for rows.Next() {
		var a ConnectedApp
		var redirects, logouts, scopes string
		var created, consented, firstSession, lastUsed int64
		if err := rows.Scan(&a.Client.ID, &a.Client.Name, &a.Client.SecretHash, &redirects, &logouts, &a.Client.BackchannelLogoutURI,
			&scopes, &a.Client.FirstParty, &a.Client.IDTokenAlg, &created, &a.Scope, &consented, &firstSession, &lastUsed,
			&a.Sessions); err != nil {
			return nil, s.wrap(err)
		}
		a.Client.RedirectURIs, a.Client.PostLogoutRedirectURIs, a.Client.Scopes = lines(redirects), lines(logouts), strings.Fields(scopes)
		a.Client.CreatedAt = fromUnix(created)
		since := consented
		if since == 0 || (firstSession != 0 && firstSession < since) {
			since = firstSession
		}
		a.Since = fromUnix(since)
		if lastUsed != 0 {
			a.LastUsed = fromUnix(lastUsed)
		}
		out = append(out, a)
	}
	return out, s.wrap(rows.Err())
}

func prefixed(p, columns string) string {
	parts := strings.Split(columns, ",")
	for i, c := range parts {
		parts[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

// RevokeApp forgets what userID allowed clientID and carries out v (which
// ends the sessions, the tokens, the application holds), recording ev. It
// returns how many sessions ended; ErrNotFound when there was nothing to
// revoke.
func (s *Store) RevokeApp(ctx context.Context, userID int64, clientID string, v Void, ev Event) (int64, error) {
	defer v.done(s, userID)
	var ended int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, `DELETE FROM consents WHERE user_id = ? AND client_id = ?`, userID, clientID)
		if err != nil {
			return err
		}
		forgot, _ := res.RowsAffected()
		v.Client = clientID
		if ended, err = v.apply(ctx, s, tx, userID); err != nil {
			return err
		}
		if forgot+ended == 0 {
			return ErrNotFound
		}
		if ev.Kind != "" {
			ev.UserID = userID
			return s.insertEvent(ctx, tx, ev)
		}
		return nil
	})
	return ended, err
}

// endSessions ends the sessions of tx that match where (a condition on the
// sessions table), and the application sessions authorized from them
// without offline access, and queues a back-channel logout notice for every
// application that held one of them or one authorized from them. It
// returns how many sessions matched where.
func (s *Store) endSessions(ctx context.Context, tx *sql.Tx, where string, args ...any) (int64, error) {
	now := unixMilli(time.Now())
	ended := `SELECT id FROM sessions WHERE ` + where
	// The notice names the session of this service the application knows
	// (the sid of its ID tokens: the parent), and the account.
	if _, err := s.exec(ctx, tx, `INSERT INTO backchannel (client_id, sid, subject, created_at, next_attempt_at)
		SELECT DISTINCT c.client_id, COALESCE(c.parent_id, ''), u.subject, CAST(? AS BIGINT), CAST(? AS BIGINT)
		FROM sessions c JOIN clients k ON k.id = c.client_id JOIN users u ON u.id = c.user_id
		WHERE k.backchannel_logout_uri <> '' AND (c.id IN (`+ended+`) OR c.parent_id IN (`+ended+`))`,
		append(append([]any{now, now}, args...), args...)...); err != nil {
		return 0, err
	}
	if _, err := s.exec(ctx, tx, `DELETE FROM sessions WHERE offline = ? AND parent_id IN (`+ended+`)`,
		append([]any{false}, args...)...); err != nil {
		return 0, err
	}
	res, err := s.exec(ctx, tx, `DELETE FROM sessions WHERE `+where, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// LogoutNotice is a back-channel logout to deliver: the application, and
// the session (sid) and account (subject) it is about.
type LogoutNotice struct {
	ID        int64
	ClientID  string
	SID       string
	Subject   string
	Attempts  int
	CreatedAt time.Time
	Claim     MailClaim
}

// ClaimLogouts takes up to limit due notices that no one holds, for owner
// until now+lease, as ClaimMail does for mail: the longest due first, at
// most perClient of one application, none of the applications in skip
// (those the caller is busy with).
func (s *Store) ClaimLogouts(ctx context.Context, owner string, now time.Time, lease time.Duration, limit, perClient int,
	skip []string) ([]LogoutNotice, error) {
	claim := MailClaim{Owner: owner, Until: fromUnixMilli(unixMilli(now.Add(lease)))}
	at := unixMilli(now)
	var due int
	err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM (SELECT 1 FROM backchannel WHERE next_attempt_at <= ? AND claimed_until <= ? LIMIT 1) AS d`,
		at, at).Scan(&due)
	if err != nil || due == 0 {
		return nil, s.wrap(err)
	}
	not := ""
	args := []any{claim.Owner, unixMilli(claim.Until), at, at}
	if len(skip) > 0 {
		not = ` AND client_id NOT IN (` + strings.TrimSuffix(strings.Repeat("?, ", len(skip)), ", ") + `)`
		for _, id := range skip {
			args = append(args, id)
		}
	}
	// The candidates are chosen first, then claimed only if still free:
	// of two instances choosing the same notice, one claims it.
	args = append(args, perClient, limit, at)
	rows, err := s.query(ctx, s.w, `UPDATE backchannel SET claimed_by = ?, claimed_until = ?
		WHERE id IN (SELECT id FROM (SELECT id, next_attempt_at,
			ROW_NUMBER() OVER (PARTITION BY client_id ORDER BY next_attempt_at, id) AS n
			FROM backchannel WHERE next_attempt_at <= ? AND claimed_until <= ?`+not+`) AS c
			WHERE n <= ? ORDER BY next_attempt_at, id LIMIT ?)
		AND claimed_until <= ?
		RETURNING id, client_id, sid, subject, attempts, created_at`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []LogoutNotice
	for rows.Next() {
		n := LogoutNotice{Claim: claim}
		var created int64
		if err := rows.Scan(&n.ID, &n.ClientID, &n.SID, &n.Subject, &n.Attempts, &created); err != nil {
			return nil, s.wrap(err)
		}
		n.CreatedAt = fromUnixMilli(created)
		out = append(out, n)
	}
	return out, s.wrap(rows.Err())
}

// DoneLogout deletes a delivered (or given up) notice if c still holds it.
func (s *Store) DoneLogout(ctx context.Context, id int64, c MailClaim) (bool, error) {
	return s.execHeld(ctx, `DELETE FROM backchannel WHERE id = ? AND claimed_by = ? AND claimed_until = ?`, id, c.Owner, unixMilli(c.Until))
}

// RetryLogout gives a notice back with attempts failed deliveries and the
// next not before next, if c still holds it.
func (s *Store) RetryLogout(ctx context.Context, id int64, c MailClaim, attempts int, next time.Time) (bool, error) {
	return s.execHeld(ctx, `UPDATE backchannel SET attempts = ?, next_attempt_at = ?, claimed_by = '', claimed_until = 0
		WHERE id = ? AND claimed_by = ? AND claimed_until = ?`, attempts, unixMilli(next), id, c.Owner, unixMilli(c.Until))
}

// PendingLogouts counts the notices not yet delivered.
func (s *Store) PendingLogouts(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, s.r, `SELECT COUNT(*) FROM backchannel`).Scan(&n)
	return n, s.wrap(err)
}
