-- identity = "mac": a device's secrets go out once, on its first fetch after it was added or re-armed
-- (`provisor device arm`). The PostgreSQL dialect of migrations/sqlite/0003_armed.sql.
CREATE TABLE armed (
    mac   TEXT PRIMARY KEY NOT NULL REFERENCES devices(mac) ON DELETE CASCADE,
    since BIGINT NOT NULL
);
