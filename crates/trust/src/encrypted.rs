//! Per-phone encrypted configs (specs.md §5.1, §5.3): `SEP<MAC>.cnf.xml.enc.sgn` = a header (version 2.0) with the
//! AES-CBC IV, the AES-128 key wrapped to the phone's RSA key (its MIC or LSC; PKCS#1 v1.5), the plaintext's digest
//! and the padding count ‖ the AES-128-CBC ciphertext of the config, padded with `\r` to a whole block. Beside it the
//! phone reads the signed stub `SEP<MAC>.cnf.xml.sgn`: `<fullConfig>false</fullConfig>`, what it needs before it
//! decrypts (`ipAddressMode`, `loadInformation`, `capfAuthMode`, `capfList`), the MD5 `certHash` of the certificate it
//! was encrypted to, and `<encrConfig>true</encrConfig>`.

use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit, block_padding::NoPadding};

use crate::TrustError;
use crate::certificate::{Certificate, Signer};
use crate::header::{self, Digest, Encryption, Fields, Header};

type Encryptor = cbc::Encryptor<aes::Aes128>;
type Decryptor = cbc::Decryptor<aes::Aes128>;

/// The random inputs of an encryption (the caller draws them: this crate does no I/O).
#[derive(Debug, Clone, Copy)]
pub struct Randomness {
    /// The AES-128 key.
    pub key: [u8; 16],
    /// The CBC IV.
    pub iv: [u8; 16],
}

impl Randomness {
    /// The key from the first 16 bytes, the IV from the last 16 (what a caller drew from its random source).
    pub fn from_bytes(random: [u8; 32]) -> Randomness {
        let mut r = Randomness { key: [0; 16], iv: [0; 16] };
        r.key.copy_from_slice(&random[..16]);
        r.iv.copy_from_slice(&random[16..]);
        r
    }
}

/// Encrypts `config` to `phone` and signs it as `<filename>` (`SEP<MAC>.cnf.xml.enc.sgn`).
pub fn encrypt(
    config: &[u8],
    signer: &Signer,
    phone: &Certificate,
    filename: &str,
    digest: Digest,
    timestamp: u32,
    random: Randomness,
) -> Result<Vec<u8>, TrustError> {
    let hash = digest.hash(config);
    let padding = 16 - config.len() % 16;
    let mut plain = config.to_vec();
    plain.resize(config.len() + padding, b'\r');
    let ciphertext = Encryptor::new_from_slices(&random.key, &random.iv)
        .map_err(|e| TrustError::Crypto(format!("AES-128-CBC: {e}")))?
        .encrypt_padded_vec::<NoPadding>(&plain);
    let wrapped_key = phone
        .rsa_key()?
        .pkcs1v15_encrypt(&random.key)
        .map_err(|e| TrustError::Crypto(format!("wrapping the key to {}: {e}", phone.subject)))?;
    let encryption = Encryption {
        iv: random.iv.to_vec(),
        padding: padding as u16,
        key_bits: (wrapped_key.len() * 8) as u16,
        wrapped_key,
        hash_digest: digest,
        hash,
    };
    let fields =
        Fields { version: (2, 0), signer_version: None, digest, filename, timestamp, encryption: Some(&encryption) };
    header::sign(&fields, signer, &ciphertext)
}

/// Decrypts an `.enc.sgn` with the phone's private key, and checks the plaintext's digest. (The signature is the
/// caller's to check, with the trust list: [`crate::signed::SignedFile::verify`].)
pub fn decrypt(data: &[u8], phone_key: &rsa::PrivateKey) -> Result<Vec<u8>, TrustError> {
    let header = Header::parse(data)?;
    let e = header
        .encryption
        .as_ref()
        .ok_or_else(|| TrustError::at(10, "not an encrypted file: no encryption fields in the header"))?;
    let other =
        || TrustError::Crypto("the key does not unwrap with this phone key (encrypted to another phone?)".into());
    let key = phone_key.pkcs1v15_decrypt(&e.wrapped_key).map_err(|_| other())?;
    if key.len() != 16 {
        return Err(other());
    }
    let body = &data[header.length..];
    if !body.len().is_multiple_of(16) {
        return Err(TrustError::at(header.length, format!("{} bytes of ciphertext: not whole AES blocks", body.len())));
    }
    let mut plain = Decryptor::new_from_slices(&key, &e.iv)
        .map_err(|err| TrustError::Crypto(format!("AES-128-CBC: {err}")))?
        .decrypt_padded_vec::<NoPadding>(body)
        .map_err(|err| TrustError::Crypto(format!("AES-128-CBC: {err}")))?;
    let padding = e.padding as usize;
    if padding > plain.len() {
        return Err(TrustError::at(header.length, format!("padding {padding} longer than the plaintext")));
    }
    plain.truncate(plain.len() - padding);
    if e.hash_digest.hash(&plain) != e.hash {
        return Err(TrustError::Crypto(
            "the decrypted config does not match its digest (wrong key, or the file was changed)".into(),
        ));
    }
    Ok(plain)
}

/// The elements of a config that the stub keeps (the phone needs them before it decrypts).
const KEPT: [&str; 4] = ["ipAddressMode", "loadInformation", "capfAuthMode", "capfList"];

/// The stub `SEP<MAC>.cnf.xml` served beside the encrypted file (unsigned; sign it with [`crate::signed::sign`]).
pub fn stub(config: &[u8], phone: &Certificate) -> Result<Vec<u8>, TrustError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(config);
    let mut depth = 0usize;
    let mut root_seen = false;
    let mut kept: Vec<(usize, usize)> = Vec::new();
    let mut start: Option<usize> = None;
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader
            .read_event()
            .map_err(|e| TrustError::at(reader.error_position() as usize, format!("the config is not XML: {e}")))?;
        let after = reader.buffer_position() as usize;
        match event {
            Event::Start(e) => {
                let name = e.name();
                let name: &str = name.as_ref();
                if depth == 0 {
                    if name != "device" {
                        return Err(TrustError::at(before, "the config's root is not <device>"));
                    }
                    root_seen = true;
                } else if depth == 1 && KEPT.contains(&name) {
                    start = Some(before);
                }
                depth += 1;
            }
            Event::Empty(e) => {
                let name = e.name();
                let name: &str = name.as_ref();
                if depth == 1 && KEPT.contains(&name) {
                    kept.push((before, after));
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 1
                    && let Some(s) = start.take()
                {
                    kept.push((s, after));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !root_seen {
        return Err(TrustError::at(0, "the config has no <device> root"));
    }
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<device>\n  <fullConfig>false</fullConfig>\n");
    for (s, e) in kept {
        out.push_str("  ");
        out.push_str(&String::from_utf8_lossy(&config[s..e]));
        out.push('\n');
    }
    out.push_str(&format!("  <certHash>{}</certHash>\n", header::hex(&phone.md5())));
    out.push_str("  <encrConfig>true</encrConfig>\n</device>\n");
    Ok(out.into_bytes())
}
