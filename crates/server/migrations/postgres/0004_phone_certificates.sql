-- Enterprise phones: the certificate (MIC or LSC, DER) each device's config is encrypted to (SEP<MAC>.cnf.xml.enc.sgn).
-- The PostgreSQL dialect of migrations/sqlite/0004_phone_certificates.sql.
CREATE TABLE phone_certificates (
    mac TEXT PRIMARY KEY NOT NULL REFERENCES devices(mac) ON DELETE CASCADE,
    der BYTEA NOT NULL
);
-- A change of certificate changes what is served: the cache follows the revision.
CREATE TRIGGER phone_certificates_ins AFTER INSERT ON phone_certificates REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION bump_revision();
CREATE TRIGGER phone_certificates_upd AFTER UPDATE ON phone_certificates REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION bump_revision();
CREATE TRIGGER phone_certificates_del AFTER DELETE ON phone_certificates REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION bump_revision();
