-- Web UI logins (issue 18): users made by `provisor user add` (the password kept as an Argon2id PHC string), and
-- sessions (only the SHA-256 of the cookie's random id is kept, with the CSRF token of its forms). A session names
-- its principal, `user:<name>` or `token:<name>`, so that removing the user or revoking the token ends it.
CREATE TABLE admin_users (
    name          TEXT PRIMARY KEY NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('read', 'operator', 'admin')),
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE TABLE admin_sessions (
    hash       TEXT PRIMARY KEY NOT NULL,
    principal  TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('read', 'operator', 'admin')),
    csrf       TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX admin_sessions_principal ON admin_sessions (principal);
-- The admin API's and web UI's lists by model (a page of one model in MAC order; the count of each model).
CREATE INDEX devices_model ON devices (model, mac);
