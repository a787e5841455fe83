-- Secrets at rest: the check value of the site master key that per-device keys, IKMs and password parameters are
-- sealed with (AES-256-GCM; see src/inventory/at_rest.rs). No row: the secrets are stored in clear.
CREATE TABLE secrets_key (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    check_value TEXT NOT NULL
);
