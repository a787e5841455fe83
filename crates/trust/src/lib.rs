//! The security formats of Cisco enterprise (CUCM-firmware) phones, sans-IO: bytes in, bytes out, no files, sockets
//! or clock (the caller gives the time and the random bytes).
//!
//! - [`tlv`]: the one TLV codec of every file: 1-byte tag, 2-byte big-endian length, value; tag 13 a bare padding
//!   byte; tags 3, 7, 9 (and 16, 17, 21 in encrypted files) containers of more TLVs (specs.md §5.3).
//! - [`header`]: the signed header every file starts with (version, length, signer, digest, signature, file name,
//!   time stamp; the signer version of trust lists; the encryption fields of `.enc.sgn`). The signature is RSA
//!   PKCS#1 v1.5, SHA-1 or SHA-512, over the whole file without the signature TLV.
//! - [`signed`]: `.sgn` = header ‖ the file (a config, dial plan, softkey file, ...).
//! - [`trust_list`]: `ITLFile.tlv` / `CTLFile.tlv` = header ‖ records, one per certificate with its role (SAST, CCM,
//!   CCM+TFTP, TFTP, CAPF, APP-SERVER, TVS); RSA and EC public keys; signer version 1.0 or 1.1.
//! - [`encrypted`]: `SEP<MAC>.cnf.xml.enc.sgn` = header (with the IV, the AES-128 key wrapped to the phone's RSA key,
//!   and the config's digest) ‖ the AES-128-CBC config; and the signed stub `SEP<MAC>.cnf.xml.sgn` beside it.
//! - [`pki`]: new self-signed certificates for a site's own trust chain (RSA-2048, EC P-256).
//! - [`certificate`]: certificates and keys from PEM as the public tools take them (a certificate, and for a signer
//!   its private key too, PKCS#8, PKCS#1 or SEC1, in either order).
//!
//! Byte layouts follow `specs.md` §5.3 and the golden files in `test-vectors/cucm-tlv/`, which this crate reproduces
//! byte for byte given the same time stamp.

#![warn(missing_docs)]

pub mod certificate;
pub mod edit;
pub mod encrypted;
pub mod header;
pub mod pki;
pub mod signed;
pub mod tlv;
pub mod trust_list;

pub use certificate::{Certificate, KeyKind, PublicKey, Signer};
pub use header::{Digest, Header};
pub use trust_list::{Record, Role, TrustList};

/// Why a file or key could not be read, built or verified. Offsets are bytes from the start of the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The bytes are not what the format says at this offset.
    #[error("byte {offset}: {what}")]
    Malformed {
        /// Where.
        offset: usize,
        /// What is wrong.
        what: String,
    },
    /// The signature does not verify with the key it was checked against.
    #[error("the signature does not verify with {0}")]
    BadSignature(String),
    /// No certificate or key that fits.
    #[error("{0}")]
    Certificate(String),
    /// Encryption or decryption failed.
    #[error("{0}")]
    Crypto(String),
}

impl TrustError {
    pub(crate) fn at(offset: usize, what: impl Into<String>) -> TrustError {
        TrustError::Malformed { offset, what: what.into() }
    }
}
