-- The inventory: groups (with inheritance) and devices, each with parameters; per-device secrets.
-- The PostgreSQL dialect of migrations/sqlite/0001_inventory.sql: the same tables, columns and constraints.
CREATE TABLE groups (
    name        TEXT PRIMARY KEY NOT NULL,
    parent      TEXT REFERENCES groups(name) ON DELETE RESTRICT,
    description TEXT NOT NULL DEFAULT ''
);

CREATE TABLE group_params (
    group_name TEXT NOT NULL REFERENCES groups(name) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (group_name, name)
);

CREATE TABLE devices (
    mac         TEXT PRIMARY KEY NOT NULL CHECK (length(mac) = 12),
    model       TEXT NOT NULL DEFAULT '',
    serial      TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    group_name  TEXT REFERENCES groups(name) ON DELETE RESTRICT,
    aes_key     TEXT NOT NULL,
    aes_digest  TEXT NOT NULL DEFAULT 'sha256',
    ikm         TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE device_params (
    mac   TEXT NOT NULL REFERENCES devices(mac) ON DELETE CASCADE,
    name  TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (mac, name)
);
