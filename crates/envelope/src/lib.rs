//! The layers a Cisco MPP phone peels off a downloaded profile, and that a provisioning server puts on.
//!
//! Cisco "Provisioning Formats", section *Open Profile (XML) Compression and Encryption*: a profile may be
//! gzip-compressed (RFC 1951 deflate in a gzip container) and then encrypted, either with AES-256-CBC in the
//! `openssl enc -aes-256-cbc -k PASS` file format ([`openssl_enc`]) or with RFC 8188 `aes128gcm` HTTP content
//! encoding ([`aes128gcm`]). Compression always comes first, encryption second.
//!
//! [`unwrap`] detects and removes the layers in the order a phone does; [`wrap`] applies them in the order a
//! server must; together they make [`repack`]. Nothing here does I/O.

#![warn(missing_docs)]

pub mod aes128gcm;
pub mod gzip;
mod layers;
pub mod openssl_enc;

pub use layers::{
    Encryption, Keys, Layer, Limits, UnwrapError, Unwrapped, WrapSpec, looks_like_profile_text, repack, unwrap,
    unwrap_plaintext, wrap,
};

/// Fills `buf` with random bytes from the operating system.
///
/// Salts must be unpredictable; a failing entropy source is reported rather than papered over.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| RandomError(e.to_string()))?;
    Ok(buf)
}

/// The operating system's random number generator failed.
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed: {0}")]
pub struct RandomError(String);
