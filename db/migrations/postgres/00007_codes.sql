-- +goose Up
-- One-time codes sent by mail; see the SQLite migration of the same number.
CREATE TABLE codes (
    user_id    BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose    TEXT    NOT NULL CHECK (purpose IN ('verify', 'reset')),
    code_hash  TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    email_key  TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    tries      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, purpose)
);

CREATE INDEX codes_expires_at ON codes(expires_at);
