-- +goose Up
-- The scopes a session was granted; a refresh may ask for fewer, never more.
ALTER TABLE sessions ADD COLUMN scope TEXT NOT NULL DEFAULT '';

-- Refresh tokens, stored only as the SHA-256 of the token. Each refresh
-- spends one (spent_at) and issues its child (parent = the spent one); a
-- spent token presented again ends its session, unless it is the
-- immediately previous one, spent seconds ago. Times are Unix milliseconds.
CREATE TABLE refresh_tokens (
    hash       BLOB    PRIMARY KEY,
    session_id TEXT    NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    parent     BLOB,
    issued_at  INTEGER NOT NULL,
    spent_at   INTEGER
) WITHOUT ROWID;

CREATE INDEX refresh_tokens_session_id ON refresh_tokens(session_id);
CREATE INDEX refresh_tokens_parent ON refresh_tokens(parent);

-- Ed25519 signing keys, shared by every instance: a key is in the JWK set
-- from created_at and signs from publish_at. seed is the private key's
-- 32-byte seed; it never leaves the server. Times are Unix seconds.
CREATE TABLE signing_keys (
    kid        TEXT    PRIMARY KEY,
    seed       BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    publish_at INTEGER NOT NULL
) WITHOUT ROWID;
