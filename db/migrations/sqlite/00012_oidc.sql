-- +goose Up
-- OpenID Connect provider: other applications (clients) sign their users
-- in here with the authorization code flow.

-- The stable identifier of an account for other applications (the sub of
-- ID tokens): random, never reused, never the username.
ALTER TABLE users ADD COLUMN subject TEXT NOT NULL DEFAULT '';
UPDATE users SET subject = lower(hex(randomblob(16))) WHERE subject = '';
CREATE UNIQUE INDEX users_subject ON users(subject);

-- Registered applications. secret_hash is the SHA-256 of a confidential
-- client's secret (256 random bits), NULL for a public client (PKCE only).
-- The URI lists are newline-separated and compared exactly.
CREATE TABLE clients (
    id                        TEXT    PRIMARY KEY,
    name                      TEXT    NOT NULL,
    secret_hash               BLOB,
    redirect_uris             TEXT    NOT NULL,
    post_logout_redirect_uris TEXT    NOT NULL DEFAULT '',
    backchannel_logout_uri    TEXT    NOT NULL DEFAULT '',
    scopes                    TEXT    NOT NULL,
    first_party               INTEGER NOT NULL DEFAULT 0,
    id_token_alg              TEXT    NOT NULL DEFAULT 'RS256',
    created_at                INTEGER NOT NULL
) WITHOUT ROWID;

-- A session an application holds for an account (its access and refresh
-- tokens): client_id names the application, parent_id the session in this
-- service it was authorized from (it ends with it unless offline access was
-- granted: offline).
ALTER TABLE sessions ADD COLUMN client_id TEXT REFERENCES clients(id) ON DELETE CASCADE;
ALTER TABLE sessions ADD COLUMN parent_id TEXT REFERENCES sessions(id) ON DELETE SET NULL;
ALTER TABLE sessions ADD COLUMN offline INTEGER NOT NULL DEFAULT 0;
-- When the person signed in, for an application's session (Unix seconds;
-- 0 for the service's own sessions, which start at the sign-in).
ALTER TABLE sessions ADD COLUMN auth_time INTEGER NOT NULL DEFAULT 0;
CREATE INDEX sessions_parent_id ON sessions(parent_id);
CREATE INDEX sessions_client_id ON sessions(client_id);

-- Authorization codes, by the SHA-256 of the code: single use (used_at),
-- 60 seconds, bound to the client, the redirect URI, the PKCE challenge and
-- the session that authorized them. issued is the application session the
-- code was exchanged for, ended if the code comes back.
CREATE TABLE auth_codes (
    hash           BLOB    PRIMARY KEY,
    client_id      TEXT    NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    session_id     TEXT    NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    redirect_uri   TEXT    NOT NULL,
    scope          TEXT    NOT NULL,
    nonce          TEXT    NOT NULL DEFAULT '',
    code_challenge TEXT    NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER,
    issued         TEXT
) WITHOUT ROWID;
CREATE INDEX auth_codes_expires_at ON auth_codes(expires_at);

-- What an account allowed an application to see, remembered so that it is
-- not asked again for the same scopes.
CREATE TABLE consents (
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  TEXT    NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scope      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
) WITHOUT ROWID;

-- Back-channel logout notices to send (OpenID Connect Back-Channel Logout
-- 1.0): written in the transaction that ends a session, claimed under a
-- lease like the mail outbox, deleted once delivered or given up.
CREATE TABLE backchannel (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id       TEXT    NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    sid             TEXT    NOT NULL DEFAULT '',
    subject         TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_by      TEXT    NOT NULL DEFAULT '',
    claimed_until   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX backchannel_next_attempt_at ON backchannel(next_attempt_at);

-- Signing keys of two algorithms: EdDSA signs access tokens, RS256 (which
-- OpenID Connect requires) ID tokens; seed is the Ed25519 seed or the RSA
-- key in PKCS #8.
ALTER TABLE signing_keys ADD COLUMN alg TEXT NOT NULL DEFAULT 'EdDSA';
