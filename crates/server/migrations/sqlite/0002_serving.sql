-- Serving: the random profile path of the secure flow (SEC-PRV-2), the secrets a rotation replaced (kept until the
-- phone has fetched its new ones), an inventory revision for cache invalidation, and what the server saw.
ALTER TABLE devices ADD COLUMN path_token TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN prev_aes_key TEXT;
ALTER TABLE devices ADD COLUMN prev_ikm TEXT;
ALTER TABLE devices ADD COLUMN prev_path_token TEXT;
UPDATE devices SET path_token = lower(hex(randomblob(16))) WHERE path_token = '';
CREATE UNIQUE INDEX devices_path_token ON devices(path_token);
CREATE INDEX devices_prev_path_token ON devices(prev_path_token);

-- Bumped by every change to devices, groups or their parameters: servers drop cached renderings when it moves.
CREATE TABLE revision (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
INSERT INTO revision (id, value) VALUES (1, 0);
CREATE TRIGGER devices_ins AFTER INSERT ON devices BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER devices_upd AFTER UPDATE ON devices BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER devices_del AFTER DELETE ON devices BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER device_params_ins AFTER INSERT ON device_params BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER device_params_del AFTER DELETE ON device_params BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER groups_ins AFTER INSERT ON groups BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER groups_upd AFTER UPDATE ON groups BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER groups_del AFTER DELETE ON groups BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER group_params_ins AFTER INSERT ON group_params BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER group_params_del AFTER DELETE ON group_params BEGIN UPDATE revision SET value = value + 1; END;

-- Every request is recorded in audit.log (JSON lines) beside this database: see journal.rs.

-- The last of what each device did and was given.
CREATE TABLE device_state (
    mac           TEXT PRIMARY KEY NOT NULL,
    last_seen     INTEGER,
    last_address  TEXT,
    user_agent    TEXT,
    firmware      TEXT,
    served_file   TEXT,
    served_proto  TEXT,
    served_hash   TEXT,
    served_at     INTEGER,
    served_params TEXT,  -- JSON object: the parameters of the last full profile served
    report_at     INTEGER,
    report_params TEXT   -- JSON object: the parameters of the last configuration report
);

-- Syslog lines, errors and reports, per device.
CREATE TABLE device_events (
    id     INTEGER PRIMARY KEY,
    mac    TEXT NOT NULL,
    at     INTEGER NOT NULL,
    kind   TEXT NOT NULL,  -- syslog | error | report
    text   TEXT NOT NULL
);
CREATE INDEX device_events_mac ON device_events(mac, id);

-- Report_Rule uploads, as received (after decryption).
CREATE TABLE reports (
    id     INTEGER PRIMARY KEY,
    mac    TEXT NOT NULL,
    at     INTEGER NOT NULL,
    name   TEXT NOT NULL,
    body   BLOB NOT NULL
);
CREATE INDEX reports_mac ON reports(mac, id);
