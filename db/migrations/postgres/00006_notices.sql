-- +goose Up
-- Cache notices between processes sharing a SQLite file. PostgreSQL
-- instances use LISTEN/NOTIFY instead; the table exists here so that both
-- schemas stay the same.
CREATE TABLE notices (
    id         BIGSERIAL PRIMARY KEY,
    payload    TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

