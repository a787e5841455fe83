//! The TLV codec (specs.md §5.3): tag (1 byte), length (2 bytes, big-endian), value. Tag 13 inside a header is a bare
//! padding byte with no length; containers (3, 7, 9, 16, 17, 21 in headers) hold more TLVs, which [`read_header`]
//! walks into as the phones do.

use crate::TrustError;

/// Header tags.
pub mod tag {
    /// Format version (major, minor).
    pub const VERSION: u8 = 1;
    /// Header length in bytes, signature and padding included.
    pub const HEADER_LENGTH: u8 = 2;
    /// Container: signer name, issuer, serial.
    pub const SIGNER_INFO: u8 = 3;
    /// The signer's subject, NUL-terminated.
    pub const SIGNER_NAME: u8 = 4;
    /// The signer certificate's serial number.
    pub const SERIAL_NUMBER: u8 = 5;
    /// The signer's issuer, NUL-terminated.
    pub const ISSUER_NAME: u8 = 6;
    /// Container: digest and signature algorithm.
    pub const SIGNATURE_INFO: u8 = 7;
    /// Digest: 1 SHA-1, 2 SHA-256, 3 SHA-512.
    pub const DIGEST_ALGORITHM: u8 = 8;
    /// Container: signature algorithm and modulus.
    pub const SIGNATURE_ALGORITHM_INFO: u8 = 9;
    /// Signature algorithm (0: RSA).
    pub const SIGNATURE_ALGORITHM: u8 = 10;
    /// Index into 64, 128, 256, 512: the signature's length.
    pub const SIGNATURE_MODULUS: u8 = 11;
    /// The RSA PKCS#1 v1.5 signature.
    pub const SIGNATURE: u8 = 12;
    /// One padding byte (no length).
    pub const PADDING: u8 = 13;
    /// The file's own name, NUL-terminated.
    pub const FILENAME: u8 = 14;
    /// Unix time, u32.
    pub const TIMESTAMP: u8 = 15;
    /// Container: every encryption field.
    pub const ENCRYPTION_INFO: u8 = 16;
    /// Container: IV and padding.
    pub const ENCRYPTION_IV_INFO: u8 = 17;
    /// Unknown, 1 byte (0).
    pub const ENCRYPTION_UNKNOWN1: u8 = 18;
    /// The AES-CBC IV.
    pub const ENCRYPTION_IV: u8 = 19;
    /// How many padding bytes end the plaintext (u16).
    pub const ENCRYPTION_PADDING: u8 = 20;
    /// Container: the wrapped key.
    pub const ENCRYPTION_KEY_INFO: u8 = 21;
    /// Unknown, 1 byte (0).
    pub const ENCRYPTION_UNKNOWN2: u8 = 22;
    /// Key size in bits (u16).
    pub const ENCRYPTION_KEY_SIZE: u8 = 23;
    /// Key algorithm (1: AES).
    pub const ENCRYPTION_KEY_ALGORITHM: u8 = 24;
    /// The AES key, RSA PKCS#1 v1.5-encrypted to the phone's key.
    pub const ENCRYPTION_KEY: u8 = 25;
    /// Digest of the plaintext's hash (1 SHA-1, 3 SHA-512).
    pub const ENCRYPTION_HASH_ALGORITHM: u8 = 26;
    /// The plaintext's hash.
    pub const ENCRYPTION_HASH: u8 = 27;
    /// Trust lists: the signer version (1.0 or 1.1).
    pub const SIGNER_VERSION: u8 = 28;

    /// Tags whose value is more TLVs.
    pub const CONTAINERS: [u8; 6] = [
        SIGNER_INFO,
        SIGNATURE_INFO,
        SIGNATURE_ALGORITHM_INFO,
        ENCRYPTION_INFO,
        ENCRYPTION_IV_INFO,
        ENCRYPTION_KEY_INFO,
    ];
}

/// One TLV of a header: where it starts and its value (for a container: its whole body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The tag.
    pub tag: u8,
    /// Offset of the tag byte in the file.
    pub offset: usize,
    /// The value.
    pub value: &'a [u8],
}

impl Tlv<'_> {
    /// The value as a NUL-terminated string (without the NUL).
    pub fn text(&self) -> Result<String, TrustError> {
        let v = self.value.strip_suffix(&[0]).unwrap_or(self.value);
        String::from_utf8(v.to_vec()).map_err(|_| TrustError::at(self.offset + 3, "not UTF-8 text"))
    }

    /// The value as a big-endian u16.
    pub fn u16(&self) -> Result<u16, TrustError> {
        match self.value {
            [a, b] => Ok(u16::from_be_bytes([*a, *b])),
            _ => Err(TrustError::at(
                self.offset,
                format!("tag {} should hold 2 bytes, holds {}", self.tag, self.value.len()),
            )),
        }
    }

    /// The value as one byte.
    pub fn byte(&self) -> Result<u8, TrustError> {
        match self.value {
            [a] => Ok(*a),
            _ => Err(TrustError::at(
                self.offset,
                format!("tag {} should hold 1 byte, holds {}", self.tag, self.value.len()),
            )),
        }
    }

    /// Two bytes as (major, minor).
    pub fn pair(&self) -> Result<(u8, u8), TrustError> {
        match self.value {
            [a, b] => Ok((*a, *b)),
            _ => Err(TrustError::at(
                self.offset,
                format!("tag {} should hold 2 bytes, holds {}", self.tag, self.value.len()),
            )),
        }
    }
}

/// One TLV at `at` (no padding, no containers): tag, length, value within `data[..end]`.
pub fn read_one(data: &[u8], at: usize, end: usize) -> Result<Tlv<'_>, TrustError> {
    let end = end.min(data.len());
    if at + 3 > end {
        return Err(TrustError::at(at, "truncated: a tag and length do not fit"));
    }
    let len = u16::from_be_bytes([data[at + 1], data[at + 2]]) as usize;
    if at + 3 + len > end {
        return Err(TrustError::at(at, format!("tag {}: length {len} runs past byte {end}", data[at])));
    }
    Ok(Tlv { tag: data[at], offset: at, value: &data[at + 3..at + 3 + len] })
}

/// Every TLV of a header in `data[start..end]`, in order, containers included (each followed by what it holds);
/// padding bytes are skipped.
pub fn read_header(data: &[u8], start: usize, end: usize) -> Result<Vec<Tlv<'_>>, TrustError> {
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        if data.get(at) == Some(&tag::PADDING) {
            at += 1;
            continue;
        }
        let t = read_one(data, at, end)?;
        out.push(t);
        at += if tag::CONTAINERS.contains(&t.tag) { 3 } else { 3 + t.value.len() };
    }
    Ok(out)
}

/// Appends a TLV.
pub fn put(out: &mut Vec<u8>, tag: u8, value: &[u8]) -> Result<(), TrustError> {
    let len = u16::try_from(value.len())
        .map_err(|_| TrustError::at(out.len(), format!("tag {tag}: {} bytes do not fit a TLV", value.len())))?;
    out.push(tag);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
    Ok(())
}

/// Appends a NUL-terminated text TLV.
pub fn put_text(out: &mut Vec<u8>, tag: u8, text: &str) -> Result<(), TrustError> {
    let mut v = text.as_bytes().to_vec();
    v.push(0);
    put(out, tag, &v)
}

/// Appends a container's tag and length; its body follows.
pub fn put_container(out: &mut Vec<u8>, tag: u8, len: usize) -> Result<(), TrustError> {
    let len = u16::try_from(len).map_err(|_| TrustError::at(out.len(), format!("container {tag}: too long")))?;
    out.push(tag);
    out.extend_from_slice(&len.to_be_bytes());
    Ok(())
}
