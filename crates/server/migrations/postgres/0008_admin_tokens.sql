-- Tokens of the admin API (issue 18). Only the SHA-256 of each token is kept: the token is shown once, when
-- `provisor token create` makes it, and is 32 random bytes, so a plain hash is as strong as a slow one would be.
CREATE TABLE admin_tokens (
    name       TEXT PRIMARY KEY NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('read', 'operator', 'admin')),
    hash       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
