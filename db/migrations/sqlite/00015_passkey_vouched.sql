-- +goose Up
-- vouched: the passkey was added while the account's address was proven
-- (verified), or its signed-in owner proved the address since. A passkey
-- that is not is removed when the address is proven by mail by someone
-- else (a reset by mail, or a verification outside the browser that made
-- the account): whoever made an account with another person's address
-- keeps no way into it. Passkeys of verified accounts count as vouched.
ALTER TABLE passkeys ADD COLUMN vouched INTEGER NOT NULL DEFAULT 0;
UPDATE passkeys SET vouched = 1 WHERE user_id IN (SELECT id FROM users WHERE email_verified);
