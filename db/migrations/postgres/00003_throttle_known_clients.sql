-- +goose Up
-- A line of detail for an event that needs one ("9 recovery codes left").
ALTER TABLE events ADD COLUMN detail TEXT NOT NULL DEFAULT '';

-- Sign-in and registration counts per key (an account, a client address, or
-- both), shared by every instance. n counts failures and attempts
-- still in flight, pending the latter. A key is blocked while until_at is
-- in the future and forgotten after expires_at. Each key keeps the rule it
-- was counted under. Times are Unix milliseconds.
CREATE TABLE throttle (
    key        TEXT    PRIMARY KEY,
    n          BIGINT  NOT NULL,
    pending    BIGINT  NOT NULL,
    last_at    BIGINT  NOT NULL,
    until_at   BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    limit_n    BIGINT  NOT NULL,
    base_ms    BIGINT  NOT NULL,
    window_ms  BIGINT  NOT NULL
);

CREATE INDEX throttle_expires_at ON throttle(expires_at);

-- Clients that signed in to an account successfully: browsers by their
-- device cookie, API clients by their address. Someone else's failed
-- attempts never lock such a client out.
CREATE TABLE known_clients (
    user_id   BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client    TEXT   NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (user_id, client)
);

CREATE INDEX known_clients_last_seen ON known_clients(last_seen);
