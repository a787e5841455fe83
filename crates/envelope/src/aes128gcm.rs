//! RFC 8188 "Encrypted Content-Encoding for HTTP", the `aes128gcm` coding.
//!
//! Cisco "Provisioning Formats", *RFC 8188-Based HTTP Content Encryption*: the phone holds the input keying
//! material (IKM) in `IKM_HTTP_Encrypt_Content` and decrypts a profile whose response carries
//! `Content-Encoding: aes128gcm`; it encrypts reports the same way when the report rule has no `--key`.
//!
//! Written in-house (see `crates.md`): the available crates are Web-Push-only or sit on an older RustCrypto
//! generation. Any record size (>= 18), any key id (0–255 bytes), several records, and strict delimiter and
//! padding checks (RFC 8188 §2).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

/// Length of the salt at the start of the header.
pub const SALT_LEN: usize = 16;
/// Length of the AEAD tag in every record.
pub const TAG_LEN: usize = 16;
/// Smallest legal record size: a tag, one delimiter octet and one octet of content or padding (RFC 8188 §2).
pub const MIN_RECORD_SIZE: u32 = 18;
/// The record size used when none is given; the RFC §3.1 example uses it too.
pub const DEFAULT_RECORD_SIZE: u32 = 4096;
const FIXED_HEADER_LEN: usize = SALT_LEN + 4 + 1;

/// Input keying material written as hex digits, as Provisor stores it and `IKM_HTTP_Encrypt_Content` carries it;
/// `None` if the text is empty or not an even number of hex digits.
pub fn ikm_from_hex(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    if t.is_empty() || !t.len().is_multiple_of(2) {
        return None;
    }
    (0..t.len()).step_by(2).map(|i| t.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

/// The header that precedes the records (RFC 8188 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The salt from which, with the IKM, the content-encryption key and nonce are derived.
    pub salt: [u8; SALT_LEN],
    /// The size of every record except the last, ciphertext and tag included.
    pub rs: u32,
    /// The key identifier; empty when the IKM is pre-shared, as with Cisco phones.
    pub keyid: Vec<u8>,
}

impl Header {
    /// Reads the header, returning it and the length it occupies.
    pub fn parse(data: &[u8]) -> Result<(Header, usize), Aes128GcmError> {
        if data.len() < FIXED_HEADER_LEN {
            return Err(Aes128GcmError::Truncated { what: "header", len: data.len(), min: FIXED_HEADER_LEN });
        }
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&data[..SALT_LEN]);
        let rs = u32::from_be_bytes([data[16], data[17], data[18], data[19]]);
        if rs < MIN_RECORD_SIZE {
            return Err(Aes128GcmError::RecordSize(rs));
        }
        let idlen = data[20] as usize;
        let end = FIXED_HEADER_LEN + idlen;
        if data.len() < end {
            return Err(Aes128GcmError::Truncated { what: "key id", len: data.len(), min: end });
        }
        Ok((Header { salt, rs, keyid: data[FIXED_HEADER_LEN..end].to_vec() }, end))
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.rs.to_be_bytes());
        out.push(self.keyid.len() as u8);
        out.extend_from_slice(&self.keyid);
    }
}

/// Why content could not be encrypted or decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Aes128GcmError {
    /// The data ends before a complete header or record.
    #[error("aes128gcm data is truncated in the {what}: {len} bytes, expected at least {min}")]
    Truncated {
        /// The part that is cut short.
        what: &'static str,
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        min: usize,
    },
    /// The header's record size is below 18.
    #[error("aes128gcm record size {0} is invalid: it must be at least 18")]
    RecordSize(u32),
    /// The key id is longer than 255 bytes and cannot be written.
    #[error("aes128gcm key id is {0} bytes long; at most 255 fit in the header")]
    KeyIdTooLong(usize),
    /// There are no records after the header.
    #[error("aes128gcm data has a header but no records")]
    NoRecords,
    /// A record is shorter than a tag plus one octet.
    #[error("aes128gcm record {index} is {len} bytes, too short to hold a tag and a delimiter")]
    ShortRecord {
        /// Index of the record, from 0.
        index: u64,
        /// Its length.
        len: usize,
    },
    /// Authentication failed: wrong IKM or salt, or altered data.
    #[error("aes128gcm record {index} failed authentication: wrong key (IKM) or corrupt data")]
    Authentication {
        /// Index of the record, from 0.
        index: u64,
    },
    /// A record's plaintext is all padding, or its delimiter is wrong for its position.
    #[error("aes128gcm record {index} has {problem}")]
    Delimiter {
        /// Index of the record, from 0.
        index: u64,
        /// What is wrong.
        problem: &'static str,
    },
}

struct Keys {
    cipher: Aes128Gcm,
    nonce: [u8; 12],
}

impl Keys {
    /// RFC 8188 §2.2 and §2.3: CEK and NONCE by HKDF-SHA-256 from salt and IKM.
    fn derive(ikm: &[u8], salt: &[u8; SALT_LEN]) -> Keys {
        let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
        let mut cek = [0u8; 16];
        let mut nonce = [0u8; 12];
        // Both lengths are far below HKDF-SHA-256's 255*32 limit, so expand cannot fail.
        hk.expand(b"Content-Encoding: aes128gcm\x00", &mut cek).expect("16 <= 255*32");
        hk.expand(b"Content-Encoding: nonce\x00", &mut nonce).expect("12 <= 255*32");
        let cipher = Aes128Gcm::new(&cek.into());
        Keys { cipher, nonce }
    }

    /// The nonce of record `seq`: NONCE XOR the 96-bit big-endian sequence number.
    fn nonce(&self, seq: u64) -> Nonce<aes_gcm::aes::cipher::consts::U12> {
        let mut n = self.nonce;
        for (i, b) in seq.to_be_bytes().iter().enumerate() {
            n[4 + i] ^= b;
        }
        n.into()
    }
}

/// The plaintext of one record before padding: `data`, then `padding` zero octets after the delimiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Content carried by this record.
    pub data: &'a [u8],
    /// Number of 0x00 padding octets after the delimiter.
    pub padding: usize,
}

/// Encrypts `plain` into as few records of size `rs` as possible, without padding.
pub fn encrypt(
    plain: &[u8],
    ikm: &[u8],
    salt: [u8; SALT_LEN],
    rs: u32,
    keyid: &[u8],
) -> Result<Vec<u8>, Aes128GcmError> {
    if rs < MIN_RECORD_SIZE {
        return Err(Aes128GcmError::RecordSize(rs));
    }
    let per_record = rs as usize - TAG_LEN - 1;
    let mut records: Vec<Record<'_>> = plain.chunks(per_record).map(|data| Record { data, padding: 0 }).collect();
    if records.is_empty() {
        records.push(Record { data: &[], padding: 0 });
    }
    encrypt_records(&records, ikm, &Header { salt, rs, keyid: keyid.to_vec() })
}

/// Encrypts the given records, for callers (and the RFC §3.2 vector) that choose their own record split and
/// padding. Every record but the last must fill `rs` exactly.
pub fn encrypt_records(records: &[Record<'_>], ikm: &[u8], header: &Header) -> Result<Vec<u8>, Aes128GcmError> {
    if header.rs < MIN_RECORD_SIZE {
        return Err(Aes128GcmError::RecordSize(header.rs));
    }
    if header.keyid.len() > 255 {
        return Err(Aes128GcmError::KeyIdTooLong(header.keyid.len()));
    }
    if records.is_empty() {
        return Err(Aes128GcmError::NoRecords);
    }
    let keys = Keys::derive(ikm, &header.salt);
    let rs = header.rs as usize;
    let mut out = Vec::with_capacity(FIXED_HEADER_LEN + header.keyid.len() + records.len() * rs);
    header.write(&mut out);
    let mut block = Vec::with_capacity(rs);
    for (i, record) in records.iter().enumerate() {
        let last = i + 1 == records.len();
        let size = record.data.len() + 1 + record.padding + TAG_LEN;
        if size > rs || (!last && size != rs) {
            return Err(Aes128GcmError::ShortRecord { index: i as u64, len: size });
        }
        block.clear();
        block.extend_from_slice(record.data);
        block.push(if last { 2 } else { 1 });
        block.resize(block.len() + record.padding, 0);
        let sealed = keys
            .cipher
            .encrypt(&keys.nonce(i as u64), block.as_slice())
            .map_err(|_| Aes128GcmError::Authentication { index: i as u64 })?;
        out.extend_from_slice(&sealed);
    }
    Ok(out)
}

/// The result of a successful decryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The header as found.
    pub header: Header,
    /// The content, with delimiters and padding removed.
    pub plaintext: Vec<u8>,
}

/// Decrypts an `aes128gcm` body with `ikm`, checking every tag, delimiter and padding octet.
pub fn decrypt(data: &[u8], ikm: &[u8]) -> Result<Decrypted, Aes128GcmError> {
    let (header, offset) = Header::parse(data)?;
    let body = &data[offset..];
    if body.is_empty() {
        return Err(Aes128GcmError::NoRecords);
    }
    let keys = Keys::derive(ikm, &header.salt);
    let rs = header.rs as usize;
    let mut plaintext = Vec::with_capacity(body.len());
    let count = body.len().div_ceil(rs);
    for (i, record) in body.chunks(rs).enumerate() {
        let index = i as u64;
        let last = i + 1 == count;
        if record.len() < TAG_LEN + 1 {
            return Err(Aes128GcmError::ShortRecord { index, len: record.len() });
        }
        let opened =
            keys.cipher.decrypt(&keys.nonce(index), record).map_err(|_| Aes128GcmError::Authentication { index })?;
        let Some(end) = opened.iter().rposition(|&b| b != 0) else {
            return Err(Aes128GcmError::Delimiter { index, problem: "no delimiter: the record is all padding" });
        };
        match (opened[end], last) {
            (2, true) | (1, false) => {}
            (2, false) => {
                return Err(Aes128GcmError::Delimiter {
                    index,
                    problem: "the last-record delimiter 0x02 but more records follow (truncated or reordered)",
                });
            }
            (1, true) => {
                return Err(Aes128GcmError::Delimiter {
                    index,
                    problem: "delimiter 0x01 but it is the last record (the content is truncated)",
                });
            }
            _ => {
                return Err(Aes128GcmError::Delimiter { index, problem: "an invalid delimiter octet" });
            }
        }
        plaintext.extend_from_slice(&opened[..end]);
    }
    Ok(Decrypted { header, plaintext })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn arr<const N: usize>(s: &str) -> [u8; N] {
        hex(s).try_into().unwrap()
    }

    /// RFC 8188 §3.1 "Encryption of a Response", byte for byte.
    #[test]
    fn rfc8188_3_1_encryption_of_a_response() {
        let ikm = hex("caa76567eb587a67e88129afed6b393d");
        let salt = arr("23506cc6d16db65bf7bbf3a8f78c679b");
        let expected = hex(
            "23506cc6d16db65bf7bbf3a8f78c679b 00001000 00 f8d015b9bdaa160044b902916a9a19bbe231908bdadcc101d4f0fe972f138638",
        );
        assert_eq!(encrypt(b"I am the walrus", &ikm, salt, 4096, b"").unwrap(), expected);
        let d = decrypt(&expected, &ikm).unwrap();
        assert_eq!(d.plaintext, b"I am the walrus");
        assert_eq!(d.header.rs, 4096);
        assert!(d.header.keyid.is_empty());
    }

    /// RFC 8188 §3.2 "Encryption with Multiple Records", byte for byte (rs=25, keyid "a1", one padding octet).
    #[test]
    fn rfc8188_3_2_encryption_with_multiple_records() {
        let ikm = hex("04edd954fc549672ce45b5463296d3d5");
        let header = Header { salt: arr("b8d0a45a2358cca4e704df638b7faa58"), rs: 25, keyid: b"a1".to_vec() };
        let expected = hex("b8d0a45a2358cca4e704df638b7faa58 00000019 02 6131
             ce1bc721cff827be03aa746628bf1ca3baa4722458c40f2a05
             d45be48fa8503dd3c7239d4e114284a60cf74ac2d622a4bfb8");
        let records = [Record { data: b"I am th", padding: 1 }, Record { data: b"e walrus", padding: 0 }];
        assert_eq!(encrypt_records(&records, &ikm, &header).unwrap(), expected);
        let d = decrypt(&expected, &ikm).unwrap();
        assert_eq!(d.plaintext, b"I am the walrus");
        assert_eq!(d.header, header);
    }

    /// specs.md §2.2: the intermediate CEK and NONCE of both RFC examples.
    #[test]
    fn derived_cek_and_nonce() {
        let k = Keys::derive(&hex("caa76567eb587a67e88129afed6b393d"), &arr("23506cc6d16db65bf7bbf3a8f78c679b"));
        assert_eq!(k.nonce.to_vec(), hex("05cb3c82421128b23c19e23c"));
        let k = Keys::derive(&hex("04edd954fc549672ce45b5463296d3d5"), &arr("b8d0a45a2358cca4e704df638b7faa58"));
        assert_eq!(k.nonce.to_vec(), hex("56aca51b5addb7e989acd80f"));
        assert_eq!(k.nonce(1).to_vec(), hex("56aca51b5addb7e989acd80e"));
    }

    /// specs.md §2.3: the Cisco-profile-shaped vector.
    #[test]
    fn profile_vector() {
        let ikm = hex("000102030405060708090a0b0c0d0e0f");
        let salt = arr("f0e0d0c0b0a090807060504030201000");
        let plain = b"<flat-profile><GPP_A>12345678</GPP_A></flat-profile>\n";
        let expected = hex(
            "f0e0d0c0b0a0908070605040302010000000100000f5c711a2901dbdb51c3ced5291e8604436622e8f659ad3d0a683e24167e6a6493d232c013044d47ff4fd38e74dc9f2af4b18db10819e749b844d0f311378ae1a112dc893e8a8",
        );
        assert_eq!(encrypt(plain, &ikm, salt, 4096, b"").unwrap(), expected);
    }

    #[test]
    fn strict_checks() {
        let ikm = [7u8; 16];
        let ct = encrypt(&[b'x'; 100], &ikm, [1; 16], 40, b"id").unwrap();
        assert_eq!(decrypt(&ct, &ikm).unwrap().plaintext, vec![b'x'; 100]);
        // Dropping the last record: the new last record carries 0x01.
        let header_len = FIXED_HEADER_LEN + 2;
        let cut = header_len + 40 * ((ct.len() - header_len) / 40);
        assert!(matches!(decrypt(&ct[..cut], &ikm), Err(Aes128GcmError::Delimiter { .. })));
        // A wrong key fails authentication.
        assert!(matches!(decrypt(&ct, &[8u8; 16]), Err(Aes128GcmError::Authentication { index: 0 })));
        // Record size below 18.
        assert_eq!(encrypt(b"", &ikm, [0; 16], 17, b""), Err(Aes128GcmError::RecordSize(17)));
        let mut bad = ct.clone();
        bad[19] = 5;
        bad[18] = 0;
        bad[17] = 0;
        bad[16] = 0;
        assert_eq!(decrypt(&bad, &ikm), Err(Aes128GcmError::RecordSize(5)));
        // Header only.
        assert_eq!(decrypt(&ct[..header_len], &ikm), Err(Aes128GcmError::NoRecords));
        // A record of all zero plaintext.
        let zeros = encrypt_records(
            &[Record { data: &[], padding: 0 }],
            &ikm,
            &Header { salt: [0; 16], rs: 18, keyid: vec![] },
        )
        .unwrap();
        assert_eq!(decrypt(&zeros, &ikm).unwrap().plaintext, b"");
    }

    #[test]
    fn all_padding_record_is_rejected() {
        // Build a record whose plaintext is a single zero byte by sealing it directly.
        let ikm = [3u8; 16];
        let header = Header { salt: [9; 16], rs: 18, keyid: vec![] };
        let keys = Keys::derive(&ikm, &header.salt);
        let mut data = Vec::new();
        header.write(&mut data);
        data.extend(keys.cipher.encrypt(&keys.nonce(0), [0u8].as_slice()).unwrap());
        assert!(matches!(decrypt(&data, &ikm), Err(Aes128GcmError::Delimiter { index: 0, .. })));
    }

    proptest::proptest! {
        #[test]
        fn round_trip(plain in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
                      rs in 18u32..100, keyid in proptest::collection::vec(proptest::num::u8::ANY, 0..10)) {
            let ct = encrypt(&plain, b"ikm", [5; 16], rs, &keyid).unwrap();
            let d = decrypt(&ct, b"ikm").unwrap();
            proptest::prop_assert_eq!(d.plaintext, plain);
            proptest::prop_assert_eq!(d.header.keyid, keyid);
        }

        #[test]
        fn decrypt_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = decrypt(&data, b"ikm");
        }
    }
}
