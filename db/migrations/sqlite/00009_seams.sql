-- +goose Up
-- What a sensitive change ends is decided in one table of the account core;
-- these columns and tables let it be carried out in the change's own
-- transaction.

-- A counter bumped by changes that void pending second-step sign-ins: the
-- pending step's signature covers it.
ALTER TABLE users ADD COLUMN stamp INTEGER NOT NULL DEFAULT 0;

-- One-time codes again, with a third purpose: 'email_change' is a change of
-- address, bound to the session that started it (session_id), which alone
-- may confirm it; the code ends with that session. 'verify' now proves only
-- the account's current address, and 'reset' works only while the address
-- it went to is still the account's. Codes live 15 minutes: those pending
-- at the upgrade are dropped (a new one can be asked for).
DROP TABLE codes;
CREATE TABLE codes (
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose    TEXT    NOT NULL CHECK (purpose IN ('verify', 'reset', 'email_change')),
    code_hash  TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    email_key  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    tries      INTEGER NOT NULL DEFAULT 0,
    session_id TEXT    REFERENCES sessions(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, purpose)
) WITHOUT ROWID;
CREATE INDEX codes_expires_at ON codes(expires_at);
CREATE INDEX codes_session_id ON codes(session_id);

-- A pending authenticator enrolment (a secret waiting for its first code),
-- bound to the session that started it: no other session sees or confirms
-- it, and it ends with that session. mfa_totp keeps confirmed secrets only.
CREATE TABLE mfa_pending (
    user_id    INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    session_id TEXT    NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    secret     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX mfa_pending_session_id ON mfa_pending(session_id);
DELETE FROM mfa_totp WHERE confirmed = 0;

-- A refresh token voided by a grace answer (its parent was presented again
-- and got another successor): presenting it is reuse.
ALTER TABLE refresh_tokens ADD COLUMN voided INTEGER NOT NULL DEFAULT 0;
