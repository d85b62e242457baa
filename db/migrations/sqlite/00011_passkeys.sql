-- +goose Up
-- Passkeys (WebAuthn credentials).

-- The account's user handle: 32 random bytes given at its first passkey
-- ceremony, never the username or the email address. An authenticator
-- keeps it with a discoverable credential and returns it at a username-less
-- sign-in. An account without a password has password_hash '' (which no
-- password matches).
ALTER TABLE users ADD COLUMN webauthn_id BLOB;
CREATE UNIQUE INDEX users_webauthn_id ON users(webauthn_id);

-- An account's passkeys, at most 10. id is the service's own name for one
-- (in URLs); credential_id is the authenticator's. sign_count is the
-- authenticator's signature counter as last seen (0 for those that do not
-- count); transports is comma-separated; backup_eligible and backed_up are
-- the BE and BS flags; user_verified says whether the authenticator
-- verified the person when the passkey was made; attestation is the
-- attestation format. Times are Unix seconds; last_used_at 0 is never.
CREATE TABLE passkeys (
    id              TEXT    PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_id   BLOB    NOT NULL UNIQUE,
    public_key      BLOB    NOT NULL,
    sign_count      INTEGER NOT NULL DEFAULT 0,
    transports      TEXT    NOT NULL DEFAULT '',
    backup_eligible INTEGER NOT NULL DEFAULT 0,
    backed_up       INTEGER NOT NULL DEFAULT 0,
    user_verified   INTEGER NOT NULL DEFAULT 0,
    aaguid          BLOB    NOT NULL,
    attestation     TEXT    NOT NULL DEFAULT '',
    name            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX passkeys_user_id ON passkeys(user_id);

-- Passkey ceremonies under way: the challenge and the rest of what the
-- answer is checked against (state), so that any instance may finish what
-- another began. Each is taken once (a conditional delete), lives 5 minutes
-- (expires_at, Unix seconds) and is named by a signed cookie of the browser
-- that asked. kind: 'register' (a passkey added to an account), 'signup'
-- (an account made with a passkey), 'login' (a username-less sign-in),
-- 'second' (a passkey as the second step of a sign-in), 'confirm' (a
-- sensitive action confirmed with a passkey). Those of an account end with
-- it, and those a session began end with that session.
CREATE TABLE passkey_ceremonies (
    id         TEXT    PRIMARY KEY,
    kind       TEXT    NOT NULL CHECK (kind IN ('register', 'signup', 'login', 'second', 'confirm')),
    user_id    INTEGER REFERENCES users(id) ON DELETE CASCADE,
    session_id TEXT    REFERENCES sessions(id) ON DELETE CASCADE,
    state      BLOB    NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX passkey_ceremonies_user_id ON passkey_ceremonies(user_id);
CREATE INDEX passkey_ceremonies_session_id ON passkey_ceremonies(session_id);
CREATE INDEX passkey_ceremonies_expires_at ON passkey_ceremonies(expires_at);
