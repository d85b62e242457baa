-- +goose Up
-- The outbox: mail accepted for sending and not yet sent or given up. A
-- row is deleted once its message is sent or given up, so the table holds
-- only what is still to do. kind and user_id are for the logs and metrics;
-- the recipient, subject and both parts (which carry one-time codes) are
-- in sealed, encrypted (AES-256-GCM) under a key derived from the service
-- secret. attempts counts failed deliveries; next_attempt_at is when the
-- next may start. A sender claims a row by setting claimed_by (its random
-- instance id) and claimed_until (the end of its lease); another may take
-- it only once the lease has run out. Times are Unix milliseconds.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL,
    user_id         INTEGER NOT NULL,
    sealed          BLOB    NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_by      TEXT    NOT NULL DEFAULT '',
    claimed_until   INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX outbox_next_attempt_at ON outbox(next_attempt_at);
