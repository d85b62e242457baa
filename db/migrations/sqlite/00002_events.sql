-- +goose Up
-- Account activity: sign-ins (successful and failed), password changes and
-- ended sessions, shown to the account's owner.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    ip         TEXT    NOT NULL DEFAULT '',
    user_agent TEXT    NOT NULL DEFAULT ''
);

-- "Latest N events of this user" walks this index backwards.
CREATE INDEX events_user_id_id ON events(user_id, id);
CREATE INDEX events_at ON events(at);
