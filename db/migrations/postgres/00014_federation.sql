-- +goose Up
-- Sign-in with other providers; see the SQLite migration of the same number.
CREATE TABLE providers (
    name          TEXT   PRIMARY KEY,
    display_name  TEXT   NOT NULL,
    kind          TEXT   NOT NULL CHECK (kind IN ('oidc', 'github')),
    issuer        TEXT   NOT NULL DEFAULT '',
    client_id     TEXT   NOT NULL,
    client_secret TEXT   NOT NULL,
    scopes        TEXT   NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX providers_issuer ON providers(issuer);

CREATE TABLE identities (
    provider     TEXT   NOT NULL REFERENCES providers(name) ON DELETE CASCADE,
    issuer       TEXT   NOT NULL,
    subject      TEXT   NOT NULL,
    user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email        TEXT   NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL DEFAULT 0,
    vouched      BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX identities_user_id ON identities(user_id);
CREATE UNIQUE INDEX identities_user_provider ON identities(user_id, provider);

ALTER TABLE sessions ADD COLUMN via TEXT NOT NULL DEFAULT '';
