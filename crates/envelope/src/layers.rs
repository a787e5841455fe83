//! Detecting, removing and re-applying the layers of a profile file, in the phone's order.
//!
//! Cisco "Provisioning Formats", *Open Profile (XML) Compression and Encryption*: "Compression is not required, but
//! it must precede encryption." On download the phone decrypts (RFC 8188 when the response says
//! `Content-Encoding: aes128gcm`, otherwise AES-256-CBC when the rule has `--key`), then "inspects the downloaded
//! file header" for gzip, then parses XML.

use crate::aes128gcm::{self, Aes128GcmError};
use crate::gzip::{self, GzipError};
use crate::openssl_enc::{self, DecryptError, Digest, DigestChoice, Kdf};
use crate::{RandomError, random_bytes};

/// One layer around the profile text, as found on read or to apply on write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layer {
    /// `openssl enc -aes-256-cbc -k KEY`, with the digest that worked and whether a `Salted__` header was present.
    AesCbc {
        /// The `EVP_BytesToKey` digest.
        digest: Digest,
        /// `false` for `-nosalt` files.
        salted: bool,
    },
    /// RFC 8188 `aes128gcm`.
    Aes128Gcm {
        /// Record size from the header.
        rs: u32,
        /// Key id from the header.
        keyid: Vec<u8>,
    },
    /// gzip.
    Gzip,
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layer::AesCbc { digest, salted: true } => write!(f, "aes-256-cbc (md {digest})"),
            Layer::AesCbc { digest, salted: false } => write!(f, "aes-256-cbc (md {digest}, nosalt)"),
            Layer::Aes128Gcm { rs, keyid } if keyid.is_empty() => write!(f, "aes128gcm (rs {rs})"),
            Layer::Aes128Gcm { rs, keyid } => {
                write!(f, "aes128gcm (rs {rs}, keyid {:?})", String::from_utf8_lossy(keyid))
            }
            Layer::Gzip => f.write_str("gzip"),
        }
    }
}

/// The secrets a reader may use, like a phone's `--key` option and `IKM_HTTP_Encrypt_Content` parameter.
#[derive(Clone, Default)]
pub struct Keys {
    /// The `--key` pass phrase (the `-k` argument of `openssl enc`).
    pub key: Option<Vec<u8>>,
    /// Which `EVP_BytesToKey` digest(s) to accept for `key`.
    pub digest: DigestChoice,
    /// The RFC 8188 input keying material.
    pub ikm: Option<Vec<u8>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("key", &self.key.as_ref().map(|_| ".."))
            .field("digest", &self.digest)
            .field("ikm", &self.ikm.as_ref().map(|_| ".."))
            .finish()
    }
}

/// Size limits that keep a hostile or mistaken input from exhausting memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest input accepted, in bytes.
    pub max_input: usize,
    /// Largest decompressed text accepted, in bytes.
    pub max_output: usize,
}

impl Default for Limits {
    /// 16 MiB each way: real profiles are tens of kilobytes, and the largest full `cfg.xml` dumps well under 1 MiB.
    fn default() -> Self {
        Limits { max_input: 16 << 20, max_output: 16 << 20 }
    }
}

/// A profile with its layers removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwrapped {
    /// The profile text (XML, not yet parsed).
    pub plaintext: Vec<u8>,
    /// The layers found, outermost first.
    pub layers: Vec<Layer>,
}

/// Why a file could not be unwrapped.
#[derive(Debug, thiserror::Error)]
pub enum UnwrapError {
    /// The input exceeds [`Limits::max_input`].
    #[error("input is {len} bytes, more than the limit of {limit} bytes for a profile")]
    TooLarge {
        /// Input size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The file is encrypted but no key was given.
    #[error("the file is AES-256-CBC encrypted (it starts with \"Salted__\"); give the key with --key")]
    KeyRequired,
    /// AES-256-CBC decryption failed.
    #[error(transparent)]
    AesCbc(#[from] DecryptError),
    /// RFC 8188 decryption failed.
    #[error(transparent)]
    Aes128Gcm(#[from] Aes128GcmError),
    /// RFC 8188 decrypted, but the result is neither gzip nor XML.
    #[error("aes128gcm decryption succeeded but the content is neither gzip nor XML")]
    Aes128GcmNotAProfile,
    /// gzip expansion failed.
    #[error(transparent)]
    Gzip(#[from] GzipError),
    /// A layer appears where the phone would not accept one (encryption inside gzip, gzip twice, ...).
    #[error("unexpected {found} layer inside {outer}: a phone decrypts once, then gunzips once")]
    UnexpectedLayer {
        /// The layer found.
        found: String,
        /// The layer it was inside.
        outer: String,
    },
    /// Whatever is left is not XML text.
    #[error("{0}")]
    NotAProfile(String),
}

/// Whether `data` looks like the start of an XML profile: optional UTF-8 byte-order mark and white space, then `<`.
///
/// This is the plausibility check that separates a right key from a wrong one whose padding happened to be valid.
pub fn looks_like_profile_text(data: &[u8]) -> bool {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<')
}

fn plausible(data: &[u8]) -> bool {
    gzip::is_gzip(data) || looks_like_profile_text(data)
}

/// Removes every layer around a profile, as a phone does on download.
///
/// Detection: a `Salted__` header means AES-256-CBC (needs [`Keys::key`]); the gzip magic means gzip; text that
/// starts with `<` is the profile. Anything else is tried as RFC 8188 when an IKM is given, then as `-nosalt`
/// AES-256-CBC when a key is given, each accepted only if the result is gzip or XML.
pub fn unwrap(input: &[u8], keys: &Keys, limits: &Limits) -> Result<Unwrapped, UnwrapError> {
    unwrap_as(input, keys, limits, false)
}

/// Removes every layer like [`unwrap`], but returns whatever the innermost layer holds, XML or not (a firmware
/// list, a report in another format, any file encrypted the same way): `openssl enc -d` and `http_ece` do not care
/// what they decrypt either. A file with no layer at all must still be a profile (there is nothing to remove).
///
/// The AES-256-CBC digest is chosen as [`unwrap`] chooses it (the one whose result is gzip or XML); when neither
/// gives that, the first whose padding checks is taken. RFC 8188 authenticates, so its plaintext is always right.
pub fn unwrap_plaintext(input: &[u8], keys: &Keys, limits: &Limits) -> Result<Unwrapped, UnwrapError> {
    unwrap_as(input, keys, limits, true)
}

/// `openssl_enc::decrypt_with`; when `any` and nothing plausible decrypts, the plaintext of the digest asked for
/// whose padding checks, as `openssl enc -d -md …` gives it. With the digest left to [`DigestChoice::Auto`], a
/// plaintext that is not a profile must at least be text: a wrong digest's garbage has valid padding once in 256
/// (a corrupt file decrypted with SHA-256 fails its padding, and MD5's garbage would pass), but is never UTF-8.
/// Binary content needs the digest named (`--md`).
fn decrypt_cbc(
    data: &[u8],
    key: &[u8],
    choice: DigestChoice,
    salted: bool,
    any: bool,
) -> Result<(Vec<u8>, Digest), DecryptError> {
    match openssl_enc::decrypt_with(data, key, choice, salted, plausible) {
        Err(DecryptError::BadDecrypt { .. }) if any && choice == DigestChoice::Auto => {
            openssl_enc::decrypt_with(data, key, choice, salted, |p| std::str::from_utf8(p).is_ok())
        }
        Err(DecryptError::BadDecrypt { .. }) if any => openssl_enc::decrypt_with(data, key, choice, salted, |_| true),
        other => other,
    }
}

/// The error of a salted AES-256-CBC layer that gave nothing plausible: a plaintext that is not a profile is named as
/// such (the key was right), rather than as a wrong key.
fn salted_not_a_profile(data: &[u8], key: &[u8], choice: DigestChoice, e: DecryptError) -> UnwrapError {
    match (&e, openssl_enc::decrypt_with(data, key, choice, true, |p| std::str::from_utf8(p).is_ok())) {
        (DecryptError::BadDecrypt { .. }, Ok((_, digest))) => UnwrapError::NotAProfile(format!(
            "decrypted (md {}), but the content is not XML or gzip: not a profile (`profile decrypt` returns it)",
            digest.name()
        )),
        _ => e.into(),
    }
}

fn unwrap_as(input: &[u8], keys: &Keys, limits: &Limits, any: bool) -> Result<Unwrapped, UnwrapError> {
    if input.len() > limits.max_input {
        return Err(UnwrapError::TooLarge { len: input.len(), limit: limits.max_input });
    }
    let mut data = input.to_vec();
    let mut layers: Vec<Layer> = Vec::new();
    loop {
        if looks_like_profile_text(&data) {
            // An RFC 8188 header starts with a random salt, which begins with '<' once in 256 files: with an IKM,
            // a body that authenticates as aes128gcm is one, whatever its first byte (and, when any plaintext is
            // asked for, whatever it holds: RFC 8188 authenticates).
            if layers.is_empty()
                && let Some(ikm) = &keys.ikm
                && let Ok(d) = aes128gcm::decrypt(&data, ikm)
                && (any || plausible(&d.plaintext))
            {
                layers.push(Layer::Aes128Gcm { rs: d.header.rs, keyid: d.header.keyid });
                data = d.plaintext;
                continue;
            }
            return Ok(Unwrapped { plaintext: data, layers });
        }
        let encrypted_yet = layers.iter().any(|l| !matches!(l, Layer::Gzip));
        let gzipped_yet = layers.contains(&Layer::Gzip);
        // Inside a layer, anything that is no further layer is the plaintext.
        if any && !layers.is_empty() && !openssl_enc::is_salted(&data) && (gzipped_yet || !gzip::is_gzip(&data)) {
            return Ok(Unwrapped { plaintext: data, layers });
        }
        if openssl_enc::is_salted(&data) {
            refuse_nesting(&layers, encrypted_yet || gzipped_yet, "aes-256-cbc")?;
            let key = keys.key.as_deref().ok_or(UnwrapError::KeyRequired)?;
            let (plain, digest) = decrypt_cbc(&data, key, keys.digest, true, any)
                .map_err(|e| salted_not_a_profile(&data, key, keys.digest, e))?;
            layers.push(Layer::AesCbc { digest, salted: true });
            data = plain;
            continue;
        }
        if gzip::is_gzip(&data) {
            refuse_nesting(&layers, gzipped_yet, "gzip")?;
            data = gzip::decompress(&data, limits.max_output)?;
            layers.push(Layer::Gzip);
            continue;
        }
        if !encrypted_yet && !gzipped_yet {
            if let Some(ikm) = &keys.ikm {
                let d = aes128gcm::decrypt(&data, ikm)?;
                if !any && !plausible(&d.plaintext) {
                    return Err(UnwrapError::Aes128GcmNotAProfile);
                }
                layers.push(Layer::Aes128Gcm { rs: d.header.rs, keyid: d.header.keyid });
                data = d.plaintext;
                continue;
            }
            if let Some(key) = &keys.key {
                let (plain, digest) = decrypt_cbc(&data, key, keys.digest, false, any).map_err(|e| match e {
                    DecryptError::BadDecrypt { tried } => UnwrapError::NotAProfile(format!(
                        "not XML, gzip or a \"Salted__\" file, and not a -nosalt AES-256-CBC file for this key \
                             (tried md {tried})"
                    )),
                    other => UnwrapError::NotAProfile(format!(
                        "not XML, gzip or a \"Salted__\" file, and not a -nosalt AES-256-CBC file: {other}"
                    )),
                })?;
                layers.push(Layer::AesCbc { digest, salted: false });
                data = plain;
                continue;
            }
        }
        return Err(UnwrapError::NotAProfile(describe_unknown(&data, &layers, keys)));
    }
}

fn refuse_nesting(layers: &[Layer], nested: bool, found: &str) -> Result<(), UnwrapError> {
    if nested {
        let outer = layers.last().map(|l| l.to_string()).unwrap_or_default();
        return Err(UnwrapError::UnexpectedLayer { found: found.to_string(), outer });
    }
    Ok(())
}

fn describe_unknown(data: &[u8], layers: &[Layer], keys: &Keys) -> String {
    let what = if data.is_empty() { "the content is empty".to_string() } else { "the content is not XML".to_string() };
    let inside = match layers.last() {
        Some(l) => format!(" (after removing {l})"),
        None => String::new(),
    };
    let hint = if layers.is_empty() && keys.ikm.is_none() && keys.key.is_none() && !data.is_empty() {
        "; if it is RFC 8188 (aes128gcm) or -nosalt AES-256-CBC, give --ikm or --key"
    } else {
        ""
    };
    format!("{what}{inside}: it does not start with '<'{hint}")
}

/// The encryption to apply when writing.
#[derive(Clone, PartialEq, Eq)]
pub enum Encryption {
    /// `openssl enc -aes-256-cbc -k key` with a fresh random salt (or none when `salted` is false: `-nosalt`).
    AesCbc {
        /// The pass phrase.
        key: Vec<u8>,
        /// The key derivation.
        kdf: Kdf,
        /// Whether to write the `Salted__` header with a random salt; phones expect `true`.
        salted: bool,
    },
    /// RFC 8188 `aes128gcm` with a fresh random salt.
    Aes128Gcm {
        /// The input keying material.
        ikm: Vec<u8>,
        /// Record size.
        rs: u32,
        /// Key id written in the header.
        keyid: Vec<u8>,
    },
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Encryption::AesCbc { kdf, salted, .. } => {
                write!(f, "AesCbc {{ kdf: {kdf:?}, salted: {salted} }}")
            }
            Encryption::Aes128Gcm { rs, keyid, .. } => {
                write!(f, "Aes128Gcm {{ rs: {rs}, keyid: {keyid:?} }}")
            }
        }
    }
}

impl std::fmt::Display for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Encryption::AesCbc { kdf: Kdf::BytesToKey(d), salted: true, .. } => write!(f, "aes-256-cbc (md {d})"),
            Encryption::AesCbc { kdf: Kdf::BytesToKey(d), salted: false, .. } => {
                write!(f, "aes-256-cbc (md {d}, nosalt)")
            }
            Encryption::AesCbc { kdf: Kdf::Pbkdf2 { digest, iterations }, .. } => {
                write!(f, "aes-256-cbc (pbkdf2 {digest}, {iterations} iterations)")
            }
            Encryption::Aes128Gcm { rs, .. } => write!(f, "aes128gcm (rs {rs})"),
        }
    }
}

/// What [`wrap`] applies: gzip (optional) first, then encryption (optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WrapSpec {
    /// Compress with gzip before encrypting.
    pub gzip: bool,
    /// Encrypt after compressing.
    pub encryption: Option<Encryption>,
}

/// Why a profile could not be wrapped.
#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    /// No random salt could be had.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// RFC 8188 parameters are invalid.
    #[error(transparent)]
    Aes128Gcm(#[from] Aes128GcmError),
}

/// Applies the layers of `spec` to `plain`, compressing first and encrypting second, with fresh random salts.
pub fn wrap(plain: &[u8], spec: &WrapSpec) -> Result<Vec<u8>, WrapError> {
    let compressed;
    let data: &[u8] = if spec.gzip {
        compressed = gzip::compress(plain);
        &compressed
    } else {
        plain
    };
    Ok(match &spec.encryption {
        None => data.to_vec(),
        Some(Encryption::AesCbc { key, kdf, salted }) => {
            let salt = if *salted { Some(random_bytes::<{ openssl_enc::SALT_LEN }>()?) } else { None };
            openssl_enc::encrypt(data, key, *kdf, salt)
        }
        Some(Encryption::Aes128Gcm { ikm, rs, keyid }) => {
            let salt = random_bytes::<{ aes128gcm::SALT_LEN }>()?;
            aes128gcm::encrypt(data, ikm, salt, *rs, keyid)?
        }
    })
}

impl Unwrapped {
    /// The spec that puts the same layers back, with `keys` for the encryption (the same keys, or new ones).
    ///
    /// If `keys` carries a secret of a kind the original file did not use, that kind of encryption is used instead
    /// (a new `--key` adds AES-256-CBC to a plain file; a new IKM switches to RFC 8188).
    pub fn rewrap_spec(&self, keys: &Keys, new_digest: Option<Digest>) -> WrapSpec {
        let gzip = self.layers.contains(&Layer::Gzip);
        let found = self.layers.iter().find(|l| !matches!(l, Layer::Gzip));
        let encryption = match (found, &keys.key, &keys.ikm) {
            (Some(Layer::Aes128Gcm { rs, keyid }), _, Some(ikm)) => {
                Some(Encryption::Aes128Gcm { ikm: ikm.clone(), rs: *rs, keyid: keyid.clone() })
            }
            (Some(Layer::AesCbc { digest, salted }), Some(key), _) => Some(Encryption::AesCbc {
                key: key.clone(),
                kdf: Kdf::BytesToKey(new_digest.unwrap_or(*digest)),
                salted: *salted,
            }),
            (_, Some(key), _) => Some(Encryption::AesCbc {
                key: key.clone(),
                kdf: Kdf::BytesToKey(new_digest.unwrap_or(Digest::Sha256)),
                salted: true,
            }),
            (_, None, Some(ikm)) => {
                Some(Encryption::Aes128Gcm { ikm: ikm.clone(), rs: aes128gcm::DEFAULT_RECORD_SIZE, keyid: Vec::new() })
            }
            (_, None, None) => None,
        };
        WrapSpec { gzip, encryption }
    }
}

/// Why [`repack`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RepackError<E> {
    /// Reading the input failed.
    #[error(transparent)]
    Unwrap(#[from] UnwrapError),
    /// The caller's edit of the text failed.
    #[error("{0}")]
    Edit(E),
    /// Writing the output failed.
    #[error(transparent)]
    Wrap(#[from] WrapError),
}

/// Decrypts and decompresses `input` with `old`, lets `edit` change the text, then compresses and encrypts it again
/// the same way, with `new` keys (see [`Unwrapped::rewrap_spec`]). Returns the new file and the layers applied.
pub fn repack<E>(
    input: &[u8],
    old: &Keys,
    new: &Keys,
    new_digest: Option<Digest>,
    limits: &Limits,
    edit: impl FnOnce(Vec<u8>) -> Result<Vec<u8>, E>,
) -> Result<(Vec<u8>, WrapSpec), RepackError<E>> {
    let unwrapped = unwrap(input, old, limits)?;
    let spec = unwrapped.rewrap_spec(new, new_digest);
    let text = edit(unwrapped.plaintext).map_err(RepackError::Edit)?;
    Ok((wrap(&text, &spec)?, spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &[u8] = b"<flat-profile><GPP_A>1</GPP_A></flat-profile>\n";

    fn key(k: &str) -> Keys {
        Keys { key: Some(k.as_bytes().to_vec()), ..Keys::default() }
    }

    #[test]
    fn every_combination_round_trips() {
        let encryptions = [
            None,
            Some(Encryption::AesCbc { key: b"k".to_vec(), kdf: Kdf::BytesToKey(Digest::Sha256), salted: true }),
            Some(Encryption::AesCbc { key: b"k".to_vec(), kdf: Kdf::BytesToKey(Digest::Md5), salted: true }),
            Some(Encryption::AesCbc { key: b"k".to_vec(), kdf: Kdf::BytesToKey(Digest::Md5), salted: false }),
            Some(Encryption::Aes128Gcm { ikm: b"k".to_vec(), rs: 30, keyid: b"x".to_vec() }),
        ];
        let keys = Keys { key: Some(b"k".to_vec()), digest: DigestChoice::Auto, ikm: None };
        let ikm_keys = Keys { ikm: Some(b"k".to_vec()), ..Keys::default() };
        for encryption in encryptions {
            for gz in [false, true] {
                let spec = WrapSpec { gzip: gz, encryption: encryption.clone() };
                let packed = wrap(XML, &spec).unwrap();
                let k = if matches!(encryption, Some(Encryption::Aes128Gcm { .. })) { &ikm_keys } else { &keys };
                let u = unwrap(&packed, k, &Limits::default()).unwrap();
                assert_eq!(u.plaintext, XML, "{spec:?}");
                assert_eq!(u.layers.contains(&Layer::Gzip), gz);
                let rewrap_keys = if encryption.is_some() { k } else { &Keys::default() };
                assert_eq!(u.rewrap_spec(rewrap_keys, None), spec, "{spec:?}");
            }
        }
    }

    /// A corrupt file never decrypts to another digest's garbage. The corruption here breaks the SHA-256 padding, and
    /// the MD5 key's plaintext has valid padding once in 256 salts: before `decrypt_cbc` asked that plaintext to be
    /// text, about 8 of these 2,000 files came out as garbage with "success" (`profile decrypt`, interop test).
    #[test]
    fn a_corrupt_file_is_not_taken_as_another_digests_plaintext() {
        let gz = gzip::compress(&XML.repeat(40));
        let keys = Keys { key: Some(b"k".to_vec()), digest: DigestChoice::Auto, ikm: None };
        for i in 0..2000u32 {
            let mut salt = [0u8; 8];
            salt[..4].copy_from_slice(&i.to_le_bytes());
            let mut data = openssl_enc::encrypt(&gz, b"k", Kdf::BytesToKey(Digest::Sha256), Some(salt));
            let n = data.len();
            data[n - 20] ^= 0xff;
            let got = unwrap_plaintext(&data, &keys, &Limits::default());
            assert!(got.is_err(), "salt {i}: a corrupt file decrypted to {:?}", got.map(|u| u.layers));
        }
    }

    #[test]
    fn rfc8188_with_a_salt_that_starts_like_xml() {
        for first in [b'<', b' ', b'\n'] {
            let mut salt = [7u8; aes128gcm::SALT_LEN];
            salt[0] = first;
            let packed = aes128gcm::encrypt(XML, b"k", salt, 4096, b"").unwrap();
            let u = unwrap(&packed, &Keys { ikm: Some(b"k".to_vec()), ..Keys::default() }, &Limits::default()).unwrap();
            assert_eq!(u.plaintext, XML);
        }
    }

    /// The same for any plaintext (`profile decrypt`): binary content under a salt that starts with '<' is still
    /// decrypted, not returned as it came.
    #[test]
    fn rfc8188_with_a_salt_that_starts_like_xml_and_binary_content() {
        let binary: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        for first in [b'<', b' ', b'\n'] {
            let mut salt = [7u8; aes128gcm::SALT_LEN];
            salt[0] = first;
            let packed = aes128gcm::encrypt(&binary, b"k", salt, 4096, b"").unwrap();
            let keys = Keys { ikm: Some(b"k".to_vec()), ..Keys::default() };
            let u = unwrap_plaintext(&packed, &keys, &Limits::default()).unwrap();
            assert_eq!(u.plaintext, binary, "salt starting with {first}");
        }
    }

    #[test]
    fn missing_key_is_named() {
        let packed = wrap(XML, &WrapSpec { gzip: true, encryption: key("k").rewrap_spec_for_test() }).unwrap();
        assert!(matches!(unwrap(&packed, &Keys::default(), &Limits::default()), Err(UnwrapError::KeyRequired)));
    }

    #[test]
    fn garbage_is_not_a_profile() {
        let err = unwrap(b"\x00\x01hello", &Keys::default(), &Limits::default()).unwrap_err();
        assert!(err.to_string().contains("not XML"), "{err}");
        let err = unwrap(b"", &Keys::default(), &Limits::default()).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn too_large_is_refused() {
        let limits = Limits { max_input: 10, max_output: 10 };
        assert!(matches!(unwrap(&[b' '; 11], &Keys::default(), &limits), Err(UnwrapError::TooLarge { .. })));
        let bomb = gzip::compress(&[b' '; 1000]);
        assert!(matches!(
            unwrap(&bomb[..], &Keys::default(), &Limits { max_input: 1000, max_output: 100 }),
            Err(UnwrapError::Gzip(GzipError::TooLarge { .. }))
        ));
    }

    #[test]
    fn encryption_inside_gzip_is_refused() {
        let inner = wrap(XML, &WrapSpec { gzip: false, encryption: key("k").rewrap_spec_for_test() }).unwrap();
        let outer = gzip::compress(&inner);
        assert!(matches!(unwrap(&outer, &key("k"), &Limits::default()), Err(UnwrapError::UnexpectedLayer { .. })));
        let double = gzip::compress(&gzip::compress(XML));
        assert!(matches!(unwrap(&double, &key("k"), &Limits::default()), Err(UnwrapError::UnexpectedLayer { .. })));
    }

    #[test]
    fn repack_changes_key_and_keeps_layers() {
        let packed = wrap(
            XML,
            &WrapSpec {
                gzip: true,
                encryption: Some(Encryption::AesCbc {
                    key: b"old".to_vec(),
                    kdf: Kdf::BytesToKey(Digest::Md5),
                    salted: true,
                }),
            },
        )
        .unwrap();
        let (out, spec) = repack(&packed, &key("old"), &key("new"), None, &Limits::default(), |t| {
            Ok::<_, String>(t.to_ascii_uppercase())
        })
        .unwrap();
        assert!(spec.gzip);
        let u = unwrap(&out, &key("new"), &Limits::default()).unwrap();
        assert_eq!(u.layers, vec![Layer::AesCbc { digest: Digest::Md5, salted: true }, Layer::Gzip]);
        assert_eq!(u.plaintext, XML.to_ascii_uppercase());
        assert!(unwrap(&out, &key("old"), &Limits::default()).is_err());
    }

    impl Keys {
        fn rewrap_spec_for_test(&self) -> Option<Encryption> {
            Some(Encryption::AesCbc {
                key: self.key.clone().unwrap(),
                kdf: Kdf::BytesToKey(Digest::Sha256),
                salted: true,
            })
        }
    }
}
