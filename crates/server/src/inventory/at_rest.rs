//! Secrets at rest: every per-device key (`--key` pass phrase, RFC 8188 IKM, and the ones a rotation replaced) and
//! every parameter that is a password ([`is_password`]) are stored sealed with AES-256-GCM under the site's master
//! key, a 32-byte file named by `[inventory] secrets_key_file` (0600; `provisor init` writes it, `provisor secrets
//! init` for an existing site). A database dump alone yields no secret; the key file alone yields nothing either.
//!
//! Each sealed value is bound to where it lives (table, device or group, and parameter name) as associated data: a
//! value copied into another row does not open. The inventory records a check value of the key, so a store opened
//! with the wrong key, or without one, refuses at once instead of serving garbage.
//!
//! What stays in clear, and why: MAC addresses, models and other parameters (not secrets; the phones fetch them
//! unencrypted over plain bootstrap), the random profile path of the secure flow (a lookup key: it tells where a
//! device's ciphertext is served, not how to open it), and phone certificates (public).

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use hmac::Mac as _;
use sha2::Sha256;

use super::{PreviousSecrets, Secrets, StoreError};

/// The prefix of a sealed value: version 1, AES-256-GCM, then base64url(nonce ‖ ciphertext ‖ tag).
const SEALED: &str = "gcm1.";

/// Whether a parameter's value is a password, stored sealed: a name ending in `Password` (any case), alone or
/// followed by an index (`Password_1_`, `Admin_Password`, `User_Password`, `Proxy_Password_2_`), plus the
/// general-purpose secret parameters (`GPP_SA`..) and IKMs.
pub fn is_password(name: &str) -> bool {
    let mut base = name;
    // Strip trailing `_N_` index groups: `Password_1_` -> `Password`, `Line_Password_1_2_` -> `Line_Password`.
    while let Some(stripped) = base.strip_suffix('_') {
        match stripped.rfind('_') {
            Some(i) if i + 1 < stripped.len() && stripped[i + 1..].bytes().all(|b| b.is_ascii_digit()) => {
                base = &stripped[..i];
            }
            _ => break,
        }
    }
    let lower = base.to_ascii_lowercase();
    lower.ends_with("password") || lower.ends_with("passwd") || name.starts_with("GPP_S") || name.starts_with("IKM_")
}

/// The site's master key, ready to seal and open values.
pub struct SiteKey {
    cipher: Aes256Gcm,
    check: String,
    fingerprint_key: [u8; 32],
}

impl std::fmt::Debug for SiteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SiteKey {{ check: {} }}", self.check)
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = <hmac::Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    m.update(data);
    m.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl SiteKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(key: [u8; 32]) -> SiteKey {
        SiteKey {
            cipher: Aes256Gcm::new(&key.into()),
            check: hex(&hmac(&key, b"provisor secrets key check")[..16]),
            fingerprint_key: hmac(&key, b"provisor secrets fingerprint"),
        }
    }

    /// 32 fresh random bytes.
    pub fn generate() -> Result<[u8; 32], StoreError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| StoreError::Random(e.to_string()))?;
        Ok(key)
    }

    /// Writes a new key file (64 hex digits), 0600; refuses to replace one.
    pub fn create_file(path: &Path) -> Result<SiteKey, StoreError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let key = SiteKey::generate()?;
        let io = |e: std::io::Error| StoreError::SecretsKey(format!("{}: {e}", path.display()));
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
        f.write_all(format!("{}\n", hex(&key)).as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        Ok(SiteKey::from_bytes(key))
    }

    /// Reads a key file: 64 hex digits (surrounding white space ignored). A file others may read is refused.
    pub fn load(path: &Path) -> Result<SiteKey, StoreError> {
        use std::os::unix::fs::PermissionsExt;
        let err = |m: String| StoreError::SecretsKey(format!("{}: {m}", path.display()));
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(err(format!(
                "mode {:o}: the master key must be readable by its owner only (chmod 600)",
                meta.permissions().mode() & 0o777
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        SiteKey::parse(&text).map_err(err)
    }

    /// A key file's text: 64 hex digits, surrounding white space ignored.
    pub fn parse(text: &str) -> Result<SiteKey, String> {
        let t = text.trim();
        if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("expected 64 hex digits (a 256-bit key, as `provisor secrets init` writes)".into());
        }
        let mut key = [0u8; 32];
        for (i, k) in key.iter_mut().enumerate() {
            *k = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(SiteKey::from_bytes(key))
    }

    /// The check value the inventory keeps to recognise this key (an HMAC of a constant; reveals nothing).
    pub fn check_value(&self) -> &str {
        &self.check
    }

    /// Seals `plain`, bound to `context` (where it is stored).
    pub fn seal(&self, context: &str, plain: &str) -> Result<String, StoreError> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| StoreError::Random(e.to_string()))?;
        let n: Nonce<aes_gcm::aes::cipher::consts::U12> = nonce.into();
        let sealed = self
            .cipher
            .encrypt(&n, Payload { msg: plain.as_bytes(), aad: context.as_bytes() })
            .map_err(|_| StoreError::SecretsKey("AES-GCM refused to seal".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{SEALED}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)))
    }

    /// Opens a value [`SiteKey::seal`] made for `context`.
    pub fn open(&self, context: &str, stored: &str) -> Result<String, StoreError> {
        let bad = |why: &str| StoreError::Sealed { context: context.to_string(), why: why.to_string() };
        let body = stored.strip_prefix(SEALED).ok_or_else(|| bad("stored in clear in an encrypted inventory"))?;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body).map_err(|_| bad("not base64"))?;
        if raw.len() < 12 + 16 {
            return Err(bad("too short"));
        }
        let (nonce, sealed) = raw.split_at(12);
        let n: Nonce<aes_gcm::aes::cipher::consts::U12> =
            <[u8; 12]>::try_from(nonce).map_err(|_| bad("bad nonce"))?.into();
        let plain = self
            .cipher
            .decrypt(&n, Payload { msg: sealed, aad: context.as_bytes() })
            .map_err(|_| bad("does not open with this key (another site's key, or moved from another row)"))?;
        String::from_utf8(plain).map_err(|_| bad("not UTF-8"))
    }

    /// A keyed fingerprint of a secret (for comparing what was served with what a phone reported, without keeping
    /// the secret): `hmac:` and 16 hex digits.
    pub fn fingerprint(&self, value: &str) -> String {
        format!("hmac:{}", hex(&hmac(&self.fingerprint_key, value.as_bytes())[..8]))
    }
}

/// How a store treats secrets: sealed under a [`SiteKey`], or in clear (no key configured).
#[derive(Clone, Default)]
pub struct AtRest {
    key: Option<std::sync::Arc<SiteKey>>,
}

impl AtRest {
    /// Sealed under `key`.
    pub fn sealed(key: SiteKey) -> AtRest {
        AtRest { key: Some(std::sync::Arc::new(key)) }
    }

    /// In clear.
    pub fn clear() -> AtRest {
        AtRest { key: None }
    }

    /// The key, if secrets are sealed.
    pub fn key(&self) -> Option<&SiteKey> {
        self.key.as_deref()
    }

    /// The stored form of `plain` at `context`.
    pub fn seal(&self, context: &str, plain: &str) -> Result<String, StoreError> {
        match &self.key {
            Some(k) => k.seal(context, plain),
            None => Ok(plain.to_string()),
        }
    }

    /// The value of a stored secret at `context`.
    pub fn open(&self, context: &str, stored: &str) -> Result<String, StoreError> {
        match &self.key {
            Some(k) => k.open(context, stored),
            None => Ok(stored.to_string()),
        }
    }

    /// The stored form of parameter `name` (sealed only when it is a password).
    pub fn seal_param(&self, owner: &str, name: &str, value: &str) -> Result<String, StoreError> {
        if is_password(name) { self.seal(&param_context(owner, name), value) } else { Ok(value.to_string()) }
    }

    /// The value of stored parameter `name`.
    pub fn open_param(&self, owner: &str, name: &str, stored: &str) -> Result<String, StoreError> {
        if is_password(name) { self.open(&param_context(owner, name), stored) } else { Ok(stored.to_string()) }
    }
}

/// The associated data of a parameter: `param:<owner>:<name>` (owner: `device:<mac>` or `group:<name>`).
fn param_context(owner: &str, name: &str) -> String {
    format!("param:{owner}:{name}")
}

/// The associated data of a device's secret column: `device:<mac>:<column>`.
pub fn device_context(mac: &str, column: &str) -> String {
    format!("device:{mac}:{column}")
}

/// A device's secret columns as stored (sealed, or in clear without a key).
pub struct StoredSecrets {
    /// `aes_key`.
    pub aes_key: String,
    /// `ikm`.
    pub ikm: String,
    /// `prev_aes_key`.
    pub prev_aes_key: Option<String>,
    /// `prev_ikm`.
    pub prev_ikm: Option<String>,
}

impl AtRest {
    /// The stored form of a device's secrets.
    pub fn seal_secrets(&self, mac: &str, s: &Secrets) -> Result<StoredSecrets, StoreError> {
        let seal = |column: &str, v: &str| self.seal(&device_context(mac, column), v);
        Ok(StoredSecrets {
            aes_key: seal("aes_key", &s.aes_key)?,
            ikm: seal("ikm", &s.ikm)?,
            prev_aes_key: s.previous.as_ref().map(|p| seal("prev_aes_key", &p.aes_key)).transpose()?,
            prev_ikm: s.previous.as_ref().map(|p| seal("prev_ikm", &p.ikm)).transpose()?,
        })
    }

    /// A device's secrets from their stored form and the columns kept in clear.
    pub fn open_secrets(
        &self,
        mac: &str,
        stored: StoredSecrets,
        aes_digest: String,
        path_token: String,
        prev_path_token: Option<String>,
    ) -> Result<Secrets, StoreError> {
        let open = |column: &str, v: &str| self.open(&device_context(mac, column), v);
        let previous = match (stored.prev_aes_key, stored.prev_ikm, prev_path_token) {
            (Some(k), Some(i), Some(path_token)) => {
                Some(PreviousSecrets { aes_key: open("prev_aes_key", &k)?, ikm: open("prev_ikm", &i)?, path_token })
            }
            _ => None,
        };
        Ok(Secrets {
            aes_key: open("aes_key", &stored.aes_key)?,
            aes_digest,
            ikm: open("ikm", &stored.ikm)?,
            path_token,
            previous,
        })
    }

    /// Re-seals a device secret column's stored value from `self` to `to` (`None` stays `None`).
    pub fn reseal(&self, to: &AtRest, context: &str, stored: Option<&str>) -> Result<Option<String>, StoreError> {
        stored.map(|v| to.seal(context, &self.open(context, v)?)).transpose()
    }

    /// Re-seals a stored parameter from `self` to `to`: `None` when it is not a password (nothing to change).
    pub fn reseal_param(
        &self,
        to: &AtRest,
        owner: &str,
        name: &str,
        stored: &str,
    ) -> Result<Option<String>, StoreError> {
        if !is_password(name) {
            return Ok(None);
        }
        let context = param_context(owner, name);
        Ok(Some(to.seal(&context, &self.open(&context, stored)?)?))
    }

    /// What opening an inventory whose recorded key check is `stored` needs: an error when the key is missing or
    /// wrong, `true` when its secrets are in clear and must be sealed now (a key was configured for an existing
    /// inventory).
    pub fn must_seal_existing(&self, stored: Option<&str>) -> Result<bool, StoreError> {
        match (stored, &self.key) {
            (Some(c), Some(k)) if c == k.check_value() => Ok(false),
            (Some(c), Some(k)) => {
                Err(StoreError::WrongKey { given: k.check_value().to_string(), stored: c.to_string() })
            }
            (Some(c), None) => Err(StoreError::Locked(c.to_string())),
            (None, Some(_)) => Ok(true),
            (None, None) => Ok(false),
        }
    }

    /// The check value to record (`None`: in clear).
    pub fn check_value(&self) -> Option<&str> {
        self.key.as_deref().map(SiteKey::check_value)
    }
}

/// The owner part of a device parameter's context.
pub fn device_owner(mac: &str) -> String {
    format!("device:{mac}")
}

/// The owner part of a group parameter's context.
pub fn group_owner(name: &str) -> String {
    format!("group:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_recognised_by_name() {
        for name in [
            "Password_1_",
            "Admin_Password",
            "User_Password",
            "Proxy_Password_2_",
            "authPassword",
            "Password_12_",
            "GPP_SA",
            "IKM_HTTP_Encrypt_Content",
        ] {
            assert!(is_password(name), "{name}");
        }
        for name in ["Display_Name_1_", "Password_Rule", "User_ID_1_", "Resync_Periodic", "Passwords_Allowed"] {
            assert!(!is_password(name), "{name}");
        }
    }

    #[test]
    fn sealed_values_open_only_in_their_place_and_with_their_key() {
        let key = SiteKey::from_bytes([7; 32]);
        let s = key.seal("device:001122334455:aes_key", "hunter2").unwrap();
        assert!(s.starts_with(SEALED) && !s.contains("hunter2"));
        assert_eq!(key.open("device:001122334455:aes_key", &s).unwrap(), "hunter2");
        assert!(key.open("device:001122334466:aes_key", &s).is_err(), "moved to another row");
        assert!(SiteKey::from_bytes([8; 32]).open("device:001122334455:aes_key", &s).is_err(), "another key");
        assert!(key.open("x", "hunter2").is_err(), "clear text where a sealed value belongs");
        assert_ne!(s, key.seal("device:001122334455:aes_key", "hunter2").unwrap(), "fresh nonce each time");
        assert_ne!(key.check_value(), SiteKey::from_bytes([8; 32]).check_value());
    }

    #[test]
    fn key_files_are_private_and_well_formed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        let made = SiteKey::create_file(&path).unwrap();
        assert!(SiteKey::create_file(&path).is_err(), "never replaces a key");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(SiteKey::load(&path).unwrap().check_value(), made.check_value());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(SiteKey::load(&path).unwrap_err().to_string().contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "short\n").unwrap();
        assert!(SiteKey::load(&path).unwrap_err().to_string().contains("64 hex digits"));
    }
}
