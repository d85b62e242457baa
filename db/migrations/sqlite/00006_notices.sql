-- +goose Up
-- Cache notices between processes sharing the SQLite file (a server and
-- the command line, or several servers): each change that ends a session
-- or changes a cached account adds a row, and every process reads the new
-- rows a few times a second and drops what they name from its cache.
-- PostgreSQL uses LISTEN/NOTIFY instead; the table exists there too so
-- that both schemas stay the same.
CREATE TABLE notices (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    payload    TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

