//! The golden files in `shared/reference/test-vectors/` (made with the openssl CLI and checked with Python
//! `cryptography`; see `ossl.py` and `ece.py` there).

use std::path::PathBuf;

use provisor_envelope::openssl_enc::{self, Digest, DigestChoice, Kdf};

fn vectors() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/test-vectors");
    assert!(dir.is_dir(), "test vectors not found at {} (shared/ must sit beside the repository)", dir.display());
    dir
}

fn read(name: &str) -> Vec<u8> {
    let p = vectors().join("openssl-enc").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const SALT: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

#[test]
fn fixed_salt_files_encrypt_byte_for_byte() {
    let plain = read("plain.txt");
    for (digest, ct, hdr) in
        [(Digest::Md5, "ct_md5.bin", "hdr_md5.bin"), (Digest::Sha256, "ct_sha256.bin", "hdr_sha256.bin")]
    {
        let ours = openssl_enc::encrypt(&plain, b"cisco123", Kdf::BytesToKey(digest), Some(SALT));
        assert_eq!(ours, read(hdr), "{digest}");
        assert_eq!(&ours[openssl_enc::HEADER_LEN..], read(ct).as_slice(), "{digest}");
    }
    assert_eq!(read("ct_default.bin"), read("ct_sha256.bin"), "openssl 3 defaults to sha256");
}

#[test]
fn random_salt_files_made_by_openssl_decrypt() {
    let plain = read("plain.txt");
    for (digest, file) in [(Digest::Md5, "rs_md5.bin"), (Digest::Sha256, "rs_sha256.bin")] {
        let data = read(file);
        assert_eq!(openssl_enc::decrypt(&data, b"cisco123", Kdf::BytesToKey(digest), true).unwrap(), plain);
        let (p, found) =
            openssl_enc::decrypt_with(&data, b"cisco123", DigestChoice::Auto, true, |p| p == plain).unwrap();
        assert_eq!((p, found), (plain.clone(), digest));
    }
}

#[test]
fn pbkdf2_and_nosalt_files() {
    let plain = read("plain.txt");
    let kdf = Kdf::Pbkdf2 { digest: Digest::Sha256, iterations: 10000 };
    assert_eq!(openssl_enc::encrypt(&plain, b"cisco123", kdf, Some(SALT))[16..], read("ct_pbkdf2.bin"));
    let kdf = Kdf::Pbkdf2 { digest: Digest::Sha256, iterations: 1000 };
    assert_eq!(openssl_enc::encrypt(&plain, b"cisco123", kdf, Some(SALT))[16..], read("ct_pbkdf2_1000.bin"));
    assert_eq!(
        openssl_enc::encrypt(&plain, b"cisco123", Kdf::BytesToKey(Digest::Md5), None),
        read("ct_nosalt_md5.bin")
    );
}

#[test]
fn profile_files_with_guide_key() {
    for (file, digest) in [("p_md5.cfg", Digest::Md5), ("p_sha256.cfg", Digest::Sha256)] {
        let data = read(file);
        let (plain, found) = openssl_enc::decrypt_with(
            &data,
            b"SecretPhrase1234",
            DigestChoice::Auto,
            true,
            provisor_envelope::looks_like_profile_text,
        )
        .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(found, digest, "{file}");
        assert_eq!(plain, read("prof.xml"), "{file}");
    }
}
