-- +goose Up
-- Subjects take the form of a UUID, 36 characters: longer than any
-- username, so that the sub of the service's own tokens (the username, as
-- in the recipe) and of applications' tokens (the subject) can never name
-- two accounts. Existing subjects keep their 128 bits, written with dashes.
UPDATE users SET subject = substr(subject, 1, 8) || '-' || substr(subject, 9, 4) || '-' || substr(subject, 13, 4) || '-' ||
    substr(subject, 17, 4) || '-' || substr(subject, 21, 12)
    WHERE length(subject) = 32;
UPDATE backchannel SET subject = substr(subject, 1, 8) || '-' || substr(subject, 9, 4) || '-' || substr(subject, 13, 4) || '-' ||
    substr(subject, 17, 4) || '-' || substr(subject, 21, 12)
    WHERE length(subject) = 32;
