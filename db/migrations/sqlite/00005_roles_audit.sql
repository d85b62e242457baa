-- +goose Up
-- Every account has a role: basic (the default), premium or admin.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'basic' CHECK (role IN ('basic', 'premium', 'admin'));
-- When the account last signed in successfully (Unix seconds; 0: never).
ALTER TABLE users ADD COLUMN last_sign_in_at INTEGER NOT NULL DEFAULT 0;

-- Whether the email address has been proved to reach the owner, and
-- whether sign-in needs a second factor.
ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN mfa_enabled INTEGER NOT NULL DEFAULT 0;

CREATE INDEX users_role ON users(role);

-- What administrators did, newest last. The names are copied so that the
-- record outlives the accounts; ids are kept for the accounts that remain.
CREATE TABLE admin_audit (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    admin_id    INTEGER NOT NULL,
    admin_name  TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target_id   INTEGER NOT NULL,
    target_name TEXT    NOT NULL,
    detail      TEXT    NOT NULL DEFAULT '',
    ip          TEXT    NOT NULL DEFAULT ''
);

CREATE INDEX admin_audit_at ON admin_audit(at);
