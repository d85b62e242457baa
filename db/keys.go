package db

import (
	"context"
	"time"
)

// SigningKey is a stored signing key: its algorithm (EdDSA or RS256), its
// private part (an Ed25519 seed, or an RSA key in PKCS #8), when it was
// made and when it starts signing.
type SigningKey struct {
	ID        string
	Alg       string
	Seed      []byte
	CreatedAt time.Time
	PublishAt time.Time
}

// SigningKeys returns every stored signing key, oldest publication first.
func (s *Store) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	rows, err := s.query(ctx, s.r, `SELECT kid, alg, seed, created_at, publish_at FROM signing_keys ORDER BY publish_at, kid`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SigningKey
	for rows.Next() {
		var k SigningKey
		var created, publish int64
		if err := rows.Scan(&k.ID, &k.Alg, &k.Seed, &created, &publish); err != nil {
			return nil, err
		}
		k.CreatedAt, k.PublishAt = fromUnix(created), fromUnix(publish)
		out = append(out, k)
	}
	return out, s.wrap(rows.Err())
}

// AddSigningKey stores a key; a key of the same id already stored is kept
// as it is (instances starting together add the same first key).
func (s *Store) AddSigningKey(ctx context.Context, k SigningKey) error {
	if k.Alg == "" {
		k.Alg = "EdDSA"
	}
	if _, err := s.exec(ctx, s.w, `INSERT INTO signing_keys (kid, alg, seed, created_at, publish_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (kid) DO NOTHING`, k.ID, k.Alg, k.Seed, unix(k.CreatedAt), unix(k.PublishAt)); err != nil {
		return err
	}
	return s.NotifyKeys(ctx)
}

// NotifyKeys tells every instance to reload the signing keys: on
// PostgreSQL by a notification, on SQLite through the notices table that
// every process on the file reads five times a second.
func (s *Store) NotifyKeys(ctx context.Context) error {
	if s.engine != Postgres {
		_, err := s.exec(ctx, s.w, `INSERT INTO notices (payload, created_at) VALUES ('keys', ?)`, unixMilli(time.Now()))
		return err
	}
	_, err := s.w.ExecContext(ctx, `SELECT pg_notify($1, 'keys')`, sessionsChannel)
	return s.wrap(err)
}

// OnKeysChanged sets fn to run when another instance (or the command line)
// announces new keys.
func (s *Store) OnKeysChanged(fn func()) {
	s.keysChanged.Store(&fn)
}
