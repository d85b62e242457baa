-- +goose Up
-- Second-step stamp, codes bound to a session and to their address, pending
-- enrolments bound to a session, voided refresh tokens; see the SQLite
-- migration of the same number.
ALTER TABLE users ADD COLUMN stamp BIGINT NOT NULL DEFAULT 0;

DROP TABLE codes;
CREATE TABLE codes (
    user_id    BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose    TEXT    NOT NULL CHECK (purpose IN ('verify', 'reset', 'email_change')),
    code_hash  TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    email_key  TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    tries      INTEGER NOT NULL DEFAULT 0,
    session_id TEXT    REFERENCES sessions(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, purpose)
);
CREATE INDEX codes_expires_at ON codes(expires_at);
CREATE INDEX codes_session_id ON codes(session_id);

CREATE TABLE mfa_pending (
    user_id    BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    session_id TEXT   NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    secret     TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX mfa_pending_session_id ON mfa_pending(session_id);
DELETE FROM mfa_totp WHERE NOT confirmed;

ALTER TABLE refresh_tokens ADD COLUMN voided BOOLEAN NOT NULL DEFAULT FALSE;
