-- What devices of one group and model inherit, stored once per rendering of it rather than in every device's
-- served_params (which then hold only the device's own lines): a 560-parameter profile costs ~1 KB per device, not
-- 30 KB. served_layer names the layer a device's served_params extend (NULL: served_params are the whole set).
CREATE TABLE served_layers (
    id     TEXT PRIMARY KEY NOT NULL,  -- SHA-256 (hex, 32 digits) of params
    params TEXT NOT NULL               -- JSON object, passwords fingerprinted as in served_params
);
ALTER TABLE device_state ADD COLUMN served_layer TEXT;
