-- +goose Up
-- How each session was signed in to (RFC 8176 methods, space-separated):
-- "pwd", or "pwd otp" with a second factor.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';

-- An account's authenticator (TOTP) secret, encrypted with a key derived
-- from the service secret. confirmed is 0 while enrolment waits for a
-- first code; last_step is the newest 30-second step whose code was
-- accepted, so that no code is accepted twice.
CREATE TABLE mfa_totp (
    user_id    INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret     TEXT    NOT NULL,
    confirmed  INTEGER NOT NULL DEFAULT 0,
    last_step  INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

-- Recovery codes, as HMACs; each works once.
CREATE TABLE recovery_codes (
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT    NOT NULL,
    PRIMARY KEY (user_id, code_hash)
) WITHOUT ROWID;
