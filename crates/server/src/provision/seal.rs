//! gzip, then encryption with a device's secrets (Cisco "Provisioning Guide", *Open Profile Encryption*): AES-256-CBC
//! in the `openssl enc` format (`--key`), or RFC 8188 `aes128gcm` with the device's IKM.
//!
//! The salt is an HMAC of the compressed plaintext under the key, not random: the same key and profile give the same
//! bytes, so a cached response, a re-rendering and another node's rendering are byte-identical, and a changed
//! profile never reuses a salt.

use hmac::{KeyInit, Mac as _};
use provisor_envelope::openssl_enc::{Digest as KdfDigest, Kdf};
use provisor_envelope::{aes128gcm, openssl_enc};
use sha2::Sha256;

use super::cache::Variant;
use super::request::ProvisionError;
use crate::inventory::Secrets;

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A salt that depends only on the key and the plaintext.
pub fn salt<const N: usize>(key: &[u8], plain: &[u8]) -> [u8; N] {
    let mut m = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    m.update(plain);
    let tag = m.finalize().into_bytes();
    let mut out = [0u8; N];
    out.copy_from_slice(&tag[..N]);
    out
}

/// `plain` as `variant` sends it, with `secrets` (their previous set, with `previous`) and, for AES-256-CBC, the
/// `EVP_BytesToKey` digest `digest`; `gzip` compresses `plain` (once, for the sealed variants); returns the body and
/// its `Content-Encoding`.
pub fn seal(
    plain: Vec<u8>,
    gzip: impl FnOnce(&[u8]) -> Vec<u8>,
    variant: Variant,
    secrets: &Secrets,
    previous: bool,
    digest: KdfDigest,
) -> Result<(Vec<u8>, Option<&'static str>), ProvisionError> {
    let old = secrets.previous.as_ref().filter(|_| previous);
    match variant {
        Variant::Cbc | Variant::CbcMd5 => {
            let pass = old.map_or(secrets.aes_key.as_bytes(), |p| p.aes_key.as_bytes());
            let zipped = gzip(&plain);
            let s = salt::<{ openssl_enc::SALT_LEN }>(pass, &zipped);
            Ok((openssl_enc::encrypt(&zipped, pass, Kdf::BytesToKey(digest), Some(s)), None))
        }
        Variant::Gcm => {
            let ikm_hex = old.map_or(secrets.ikm.as_str(), |p| p.ikm.as_str());
            let ikm = aes128gcm::ikm_from_hex(ikm_hex)
                .ok_or_else(|| ProvisionError::Render("the stored IKM is not hex".into()))?;
            let zipped = gzip(&plain);
            let s = salt::<{ aes128gcm::SALT_LEN }>(&ikm, &zipped);
            let body = aes128gcm::encrypt(&zipped, &ikm, s, aes128gcm::DEFAULT_RECORD_SIZE, b"")
                .map_err(|e| ProvisionError::Render(e.to_string()))?;
            Ok((body, Some("aes128gcm")))
        }
        Variant::Full | Variant::Bootstrap | Variant::Sep | Variant::XmlDefault => Ok((plain, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_salts_differ_by_key_and_text() {
        let a = salt::<8>(b"k", b"text");
        assert_eq!(a, salt::<8>(b"k", b"text"));
        assert_ne!(a, salt::<8>(b"k2", b"text"));
        assert_ne!(a, salt::<8>(b"k", b"text2"));
    }
}
