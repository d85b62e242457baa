-- +goose Up
-- One-time codes sent by mail: at most one live code per account and
-- purpose ('verify': proves email, the address it was sent to, which for a
-- change of address is the new one; 'reset': a forgotten password). Only an
-- HMAC of the code is kept. tries counts wrong guesses; at 5 the code is
-- void. created_at also spaces the mail: no new code of a purpose within a
-- minute of the last.
CREATE TABLE codes (
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose    TEXT    NOT NULL CHECK (purpose IN ('verify', 'reset')),
    code_hash  TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    email_key  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    tries      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, purpose)
) WITHOUT ROWID;

CREATE INDEX codes_expires_at ON codes(expires_at);
