-- Enterprise phones: the certificate (MIC or LSC, DER) each device's config is encrypted to (SEP<MAC>.cnf.xml.enc.sgn).
CREATE TABLE phone_certificates (
    mac TEXT PRIMARY KEY NOT NULL REFERENCES devices(mac) ON DELETE CASCADE,
    der BLOB NOT NULL
);
-- A change of certificate changes what is served: the cache follows the revision.
CREATE TRIGGER phone_certificates_ins AFTER INSERT ON phone_certificates BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER phone_certificates_upd AFTER UPDATE ON phone_certificates BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER phone_certificates_del AFTER DELETE ON phone_certificates BEGIN UPDATE revision SET value = value + 1; END;
