//! The signed header every enterprise security file starts with (specs.md §5.3), parsed and built.
//!
//! Order of the TLVs, as the golden files have it: version, header length, [signer version], signer info {name,
//! issuer, serial}, signature info {digest, algorithm info {algorithm, modulus}}, signature, file name, time stamp,
//! [encryption {IV info {0, IV, padding}, key info {0, key size, algorithm, wrapped key}}, hash algorithm, hash],
//! padding bytes (13) until the header length is a multiple of 4. The signature covers the whole file without the
//! signature TLV.

use crate::TrustError;
use crate::certificate::{Certificate, Signer};
use crate::tlv::{self, Tlv, tag};

/// The digest of a signature (or of an encrypted config's hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Digest {
    /// SHA-1 (1): what every phone verifies.
    Sha1,
    /// SHA-256 (2).
    Sha256,
    /// SHA-512 (3).
    Sha512,
}

impl Digest {
    /// The byte in the file.
    pub fn code(self) -> u8 {
        match self {
            Digest::Sha1 => 1,
            Digest::Sha256 => 2,
            Digest::Sha512 => 3,
        }
    }

    fn from_code(code: u8, offset: usize) -> Result<Digest, TrustError> {
        match code {
            1 => Ok(Digest::Sha1),
            2 => Ok(Digest::Sha256),
            3 => Ok(Digest::Sha512),
            other => Err(TrustError::at(offset, format!("unknown digest algorithm {other}"))),
        }
    }

    /// `sha1`, `sha256`, `sha512`.
    pub fn name(self) -> &'static str {
        match self {
            Digest::Sha1 => "sha1",
            Digest::Sha256 => "sha256",
            Digest::Sha512 => "sha512",
        }
    }

    /// The digest of `data`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        use sha1::Digest as _;
        match self {
            Digest::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Digest::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Digest::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

impl std::str::FromStr for Digest {
    type Err = String;
    fn from_str(s: &str) -> Result<Digest, String> {
        match s.to_ascii_lowercase().as_str() {
            "sha1" => Ok(Digest::Sha1),
            "sha512" => Ok(Digest::Sha512),
            other => Err(format!("{other:?}: sha1 or sha512")),
        }
    }
}

/// The encryption fields of an `.enc.sgn` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encryption {
    /// AES-CBC IV.
    pub iv: Vec<u8>,
    /// Padding bytes at the end of the plaintext.
    pub padding: u16,
    /// The key size field (bits of the wrapped key, as the public tool writes it).
    pub key_bits: u16,
    /// The AES key, encrypted to the phone's RSA key (PKCS#1 v1.5).
    pub wrapped_key: Vec<u8>,
    /// Digest of `hash`.
    pub hash_digest: Digest,
    /// The plaintext's digest.
    pub hash: Vec<u8>,
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Format version: 1.0 for `.sgn`, 1.2 for trust lists, 2.0 for `.enc.sgn`.
    pub version: (u8, u8),
    /// Bytes of header; the payload (file or records) starts here.
    pub length: usize,
    /// Trust lists: 1.0 or 1.1.
    pub signer_version: Option<(u8, u8)>,
    /// The signer's subject.
    pub signer_name: String,
    /// The signer's issuer.
    pub issuer_name: String,
    /// The signer certificate's serial number.
    pub serial: Vec<u8>,
    /// Digest of the signature.
    pub digest: Digest,
    /// Offset of the signature TLV.
    pub signature_offset: usize,
    /// The signature.
    pub signature: Vec<u8>,
    /// The file name inside.
    pub filename: String,
    /// Unix time of signing.
    pub timestamp: u32,
    /// `.enc.sgn` only.
    pub encryption: Option<Encryption>,
}

impl Header {
    /// Parses the header at the start of `data`.
    pub fn parse(data: &[u8]) -> Result<Header, TrustError> {
        let version = tlv::read_one(data, 0, data.len())?;
        if version.tag != tag::VERSION {
            return Err(TrustError::at(
                0,
                format!("not a signed file: starts with tag {}, not 1 (version)", version.tag),
            ));
        }
        let version = version.pair()?;
        let length = tlv::read_one(data, 5, data.len())?;
        if length.tag != tag::HEADER_LENGTH {
            return Err(TrustError::at(5, format!("tag {} where the header length (2) belongs", length.tag)));
        }
        let length = length.u16()? as usize;
        if length > data.len() || length < 10 {
            return Err(TrustError::at(8, format!("header length {length} outside the file of {} bytes", data.len())));
        }
        let mut h = Header {
            version,
            length,
            signer_version: None,
            signer_name: String::new(),
            issuer_name: String::new(),
            serial: Vec::new(),
            digest: Digest::Sha1,
            signature_offset: 0,
            signature: Vec::new(),
            filename: String::new(),
            timestamp: 0,
            encryption: None,
        };
        let (mut digest, mut signature) = (None, None);
        let mut enc = EncryptionParts::default();
        for t in tlv::read_header(data, 10, length)? {
            match t.tag {
                tag::SIGNER_VERSION => h.signer_version = Some(t.pair()?),
                tag::SIGNER_NAME => h.signer_name = t.text()?,
                tag::ISSUER_NAME => h.issuer_name = t.text()?,
                tag::SERIAL_NUMBER => h.serial = t.value.to_vec(),
                tag::DIGEST_ALGORITHM => digest = Some(Digest::from_code(t.byte()?, t.offset)?),
                tag::SIGNATURE => signature = Some(t),
                tag::FILENAME => h.filename = t.text()?,
                tag::TIMESTAMP => {
                    h.timestamp = match t.value {
                        [a, b, c, d] => u32::from_be_bytes([*a, *b, *c, *d]),
                        _ => return Err(TrustError::at(t.offset, "time stamp should hold 4 bytes")),
                    }
                }
                tag::ENCRYPTION_IV => enc.iv = Some(t.value.to_vec()),
                tag::ENCRYPTION_PADDING => enc.padding = Some(t.u16()?),
                tag::ENCRYPTION_KEY_SIZE => enc.key_bits = Some(t.u16()?),
                tag::ENCRYPTION_KEY => enc.key = Some(t.value.to_vec()),
                tag::ENCRYPTION_HASH_ALGORITHM => enc.digest = Some(Digest::from_code(t.byte()?, t.offset)?),
                tag::ENCRYPTION_HASH => enc.hash = Some(t.value.to_vec()),
                tag::SIGNATURE_ALGORITHM
                | tag::SIGNATURE_MODULUS
                | tag::ENCRYPTION_UNKNOWN1
                | tag::ENCRYPTION_UNKNOWN2
                | tag::ENCRYPTION_KEY_ALGORITHM => {}
                t2 if tag::CONTAINERS.contains(&t2) => {}
                other => return Err(TrustError::at(t.offset, format!("unknown header tag {other}"))),
            }
        }
        h.digest = digest.ok_or_else(|| TrustError::at(10, "no digest algorithm (tag 8) in the header"))?;
        let signature: Tlv<'_> = signature.ok_or_else(|| TrustError::at(10, "no signature (tag 12) in the header"))?;
        h.signature_offset = signature.offset;
        h.signature = signature.value.to_vec();
        if h.serial.is_empty() {
            return Err(TrustError::at(10, "no signer serial number (tag 5) in the header"));
        }
        h.encryption = enc.finish(length)?;
        Ok(h)
    }

    /// The bytes the signature covers: the whole file without the signature TLV.
    pub fn signed_bytes(&self, data: &[u8]) -> Vec<u8> {
        let end = self.signature_offset + 3 + self.signature.len();
        let mut out = Vec::with_capacity(data.len() - (end - self.signature_offset));
        out.extend_from_slice(&data[..self.signature_offset]);
        out.extend_from_slice(&data[end..]);
        out
    }

    /// Verifies the signature with `certificate`.
    pub fn verify(&self, data: &[u8], certificate: &Certificate) -> Result<(), TrustError> {
        if certificate.serial != self.serial {
            return Err(TrustError::BadSignature(format!(
                "{} (the file names signer serial {}, the certificate has {})",
                certificate.subject,
                hex(&self.serial),
                hex(&certificate.serial)
            )));
        }
        crate::certificate::verify(certificate, &self.signed_bytes(data), &self.signature, self.digest)
    }
}

#[derive(Default)]
struct EncryptionParts {
    iv: Option<Vec<u8>>,
    padding: Option<u16>,
    key_bits: Option<u16>,
    key: Option<Vec<u8>>,
    digest: Option<Digest>,
    hash: Option<Vec<u8>>,
}

impl EncryptionParts {
    fn finish(self, at: usize) -> Result<Option<Encryption>, TrustError> {
        match (self.iv, self.key, self.digest, self.hash) {
            (None, None, None, None) => Ok(None),
            (Some(iv), Some(wrapped_key), Some(hash_digest), Some(hash)) => Ok(Some(Encryption {
                iv,
                padding: self.padding.unwrap_or(0),
                key_bits: self.key_bits.unwrap_or(0),
                wrapped_key,
                hash_digest,
                hash,
            })),
            _ => Err(TrustError::at(
                at,
                "incomplete encryption fields (IV, key, hash algorithm and hash are all needed)",
            )),
        }
    }
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What a new header says.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    /// Format version.
    pub version: (u8, u8),
    /// Trust lists: the signer version.
    pub signer_version: Option<(u8, u8)>,
    /// The signature's digest.
    pub digest: Digest,
    /// The file name inside (NUL-terminated in the file).
    pub filename: &'a str,
    /// Unix time.
    pub timestamp: u32,
    /// `.enc.sgn`: the encryption fields.
    pub encryption: Option<&'a Encryption>,
}

/// Signs `payload` (the file's content, or a trust list's records) under a new header: the complete file.
pub fn sign(fields: &Fields<'_>, signer: &Signer, payload: &[u8]) -> Result<Vec<u8>, TrustError> {
    let signature_len = signer.signature_len();
    let modulus = [64usize, 128, 256, 512].iter().position(|n| *n == signature_len).ok_or_else(|| {
        TrustError::Crypto(format!("an RSA key of {} bits: phones take 512 to 4096", signature_len * 8))
    })?;
    let cert = &signer.certificate;
    let mut h = Vec::with_capacity(512 + payload.len());
    tlv::put(&mut h, tag::VERSION, &[fields.version.0, fields.version.1])?;
    tlv::put(&mut h, tag::HEADER_LENGTH, &[0, 0])?;
    if let Some((major, minor)) = fields.signer_version {
        tlv::put(&mut h, tag::SIGNER_VERSION, &[major, minor])?;
    }
    let text_len = |s: &str| 3 + s.len() + 1;
    tlv::put_container(
        &mut h,
        tag::SIGNER_INFO,
        text_len(&cert.subject) + text_len(&cert.issuer) + 3 + cert.serial.len(),
    )?;
    tlv::put_text(&mut h, tag::SIGNER_NAME, &cert.subject)?;
    tlv::put_text(&mut h, tag::ISSUER_NAME, &cert.issuer)?;
    tlv::put(&mut h, tag::SERIAL_NUMBER, &cert.serial)?;
    tlv::put_container(&mut h, tag::SIGNATURE_INFO, 15)?;
    tlv::put(&mut h, tag::DIGEST_ALGORITHM, &[fields.digest.code()])?;
    tlv::put_container(&mut h, tag::SIGNATURE_ALGORITHM_INFO, 8)?;
    tlv::put(&mut h, tag::SIGNATURE_ALGORITHM, &[0])?;
    tlv::put(&mut h, tag::SIGNATURE_MODULUS, &[modulus as u8])?;
    let signature_at = h.len();
    tlv::put_text(&mut h, tag::FILENAME, fields.filename)?;
    tlv::put(&mut h, tag::TIMESTAMP, &fields.timestamp.to_be_bytes())?;
    if let Some(e) = fields.encryption {
        let iv_info = 3 + 1 + 3 + e.iv.len() + 3 + 2;
        let key_info = 3 + 1 + 3 + 2 + 3 + 1 + 3 + e.wrapped_key.len();
        tlv::put_container(&mut h, tag::ENCRYPTION_INFO, 3 + iv_info + 3 + key_info)?;
        tlv::put_container(&mut h, tag::ENCRYPTION_IV_INFO, iv_info)?;
        tlv::put(&mut h, tag::ENCRYPTION_UNKNOWN1, &[0])?;
        tlv::put(&mut h, tag::ENCRYPTION_IV, &e.iv)?;
        tlv::put(&mut h, tag::ENCRYPTION_PADDING, &e.padding.to_be_bytes())?;
        tlv::put_container(&mut h, tag::ENCRYPTION_KEY_INFO, key_info)?;
        tlv::put(&mut h, tag::ENCRYPTION_UNKNOWN2, &[0])?;
        tlv::put(&mut h, tag::ENCRYPTION_KEY_SIZE, &e.key_bits.to_be_bytes())?;
        tlv::put(&mut h, tag::ENCRYPTION_KEY_ALGORITHM, &[1])?;
        tlv::put(&mut h, tag::ENCRYPTION_KEY, &e.wrapped_key)?;
        tlv::put(&mut h, tag::ENCRYPTION_HASH_ALGORITHM, &[e.hash_digest.code()])?;
        tlv::put(&mut h, tag::ENCRYPTION_HASH, &e.hash)?;
    }
    while !(h.len() + 3 + signature_len).is_multiple_of(4) {
        h.push(tag::PADDING);
    }
    let length = h.len() + 3 + signature_len;
    let length = u16::try_from(length).map_err(|_| TrustError::at(0, format!("a header of {length} bytes")))?;
    h[8..10].copy_from_slice(&length.to_be_bytes());
    h.extend_from_slice(payload);
    let signature = signer.sign(&h, fields.digest)?;
    let mut out = Vec::with_capacity(h.len() + 3 + signature.len());
    out.extend_from_slice(&h[..signature_at]);
    tlv::put(&mut out, tag::SIGNATURE, &signature)?;
    out.extend_from_slice(&h[signature_at..]);
    Ok(out)
}
