-- +goose Up
-- Passkeys: the account's user handle, its passkeys and the ceremonies
-- under way; see the SQLite migration of the same number.
ALTER TABLE users ADD COLUMN webauthn_id BYTEA;
CREATE UNIQUE INDEX users_webauthn_id ON users(webauthn_id);

CREATE TABLE passkeys (
    id              TEXT    PRIMARY KEY,
    user_id         BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_id   BYTEA   NOT NULL UNIQUE,
    public_key      BYTEA   NOT NULL,
    sign_count      BIGINT  NOT NULL DEFAULT 0,
    transports      TEXT    NOT NULL DEFAULT '',
    backup_eligible BOOLEAN NOT NULL DEFAULT FALSE,
    backed_up       BOOLEAN NOT NULL DEFAULT FALSE,
    user_verified   BOOLEAN NOT NULL DEFAULT FALSE,
    aaguid          BYTEA   NOT NULL,
    attestation     TEXT    NOT NULL DEFAULT '',
    name            TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    last_used_at    BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX passkeys_user_id ON passkeys(user_id);

CREATE TABLE passkey_ceremonies (
    id         TEXT   PRIMARY KEY,
    kind       TEXT   NOT NULL CHECK (kind IN ('register', 'signup', 'login', 'second', 'confirm')),
    user_id    BIGINT REFERENCES users(id) ON DELETE CASCADE,
    session_id TEXT   REFERENCES sessions(id) ON DELETE CASCADE,
    state      BYTEA  NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX passkey_ceremonies_user_id ON passkey_ceremonies(user_id);
CREATE INDEX passkey_ceremonies_session_id ON passkey_ceremonies(session_id);
CREATE INDEX passkey_ceremonies_expires_at ON passkey_ceremonies(expires_at);
