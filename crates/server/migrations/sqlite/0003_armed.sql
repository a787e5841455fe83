-- identity = "mac": a device's secrets go out once, on its first fetch after it was added or re-armed
-- (`provisor device arm`). Devices that existed before this table are not armed: re-arm them on purpose.
CREATE TABLE armed (
    mac   TEXT PRIMARY KEY NOT NULL REFERENCES devices(mac) ON DELETE CASCADE,
    since INTEGER NOT NULL
);
