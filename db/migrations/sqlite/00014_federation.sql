-- +goose Up
-- Sign-in with other providers: any OpenID Connect issuer, and GitHub.

-- A provider people may sign in with. name is its short name in URLs
-- (/login/<name>/callback); kind is 'oidc' (issuer names it; its discovery
-- document says the rest) or 'github'. The client secret is encrypted
-- (AES-256-GCM under a key derived from the service secret, bound to the
-- provider's name).
CREATE TABLE providers (
    name          TEXT    PRIMARY KEY,
    display_name  TEXT    NOT NULL,
    kind          TEXT    NOT NULL CHECK (kind IN ('oidc', 'github')),
    issuer        TEXT    NOT NULL DEFAULT '',
    client_id     TEXT    NOT NULL,
    client_secret TEXT    NOT NULL,
    scopes        TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL
) WITHOUT ROWID;
-- Two providers with one issuer would share its identities.
CREATE UNIQUE INDEX providers_issuer ON providers(issuer);

-- An account's identity at a provider: the provider's issuer and subject
-- (never reused there) name it; an identity belongs to one account.
-- vouched: linked while the account's address was proven (verified here,
-- or vouched for by the provider); an identity that is not is forgotten
-- when the address is proven by mail (see "What ends what").
CREATE TABLE identities (
    provider     TEXT    NOT NULL REFERENCES providers(name) ON DELETE CASCADE,
    issuer       TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email        TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL DEFAULT 0,
    vouched      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (issuer, subject)
) WITHOUT ROWID;
CREATE INDEX identities_user_id ON identities(user_id);
CREATE UNIQUE INDEX identities_user_provider ON identities(user_id, provider);

-- The provider a session was signed in with, '' for the others.
ALTER TABLE sessions ADD COLUMN via TEXT NOT NULL DEFAULT '';
