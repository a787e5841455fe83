//! The golden files of `../shared/reference/test-vectors/cucm-tlv/`, made with the public certutils tools: every one
//! parses and verifies, the ones whose only randomness is the time stamp are rebuilt byte for byte, the encrypted
//! config decrypts to its plaintext, and any changed byte makes verification fail.

use std::path::PathBuf;

use provisor_trust::certificate::{self, KeyKind};
use provisor_trust::encrypted::{self, Randomness};
use provisor_trust::signed::{self, SignedFile};
use provisor_trust::trust_list::{self, Spec};
use provisor_trust::{Certificate, Digest, Role, Signer, TrustList};

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/test-vectors/cucm-tlv")
}

fn read(name: &str) -> Vec<u8> {
    let p = vectors().join(name);
    std::fs::read(&p)
        .unwrap_or_else(|e| panic!("{}: {e} (the shared reference must sit beside the project)", p.display()))
}

fn phone_key() -> rsa::PrivateKey {
    match certificate::private_key(&read("enc/phone.pem")).unwrap() {
        KeyKind::Rsa(k) => *k,
        KeyKind::Ec(_) => panic!("the phone key is RSA"),
    }
}

#[test]
fn the_signed_config_verifies_with_its_tftp_certificate_and_strips_to_the_config() {
    let sgn = read("SEP001122334455.cnf.xml.sgn");
    let file = SignedFile::parse(&sgn).unwrap();
    assert_eq!(file.header.version, (1, 0));
    assert_eq!(file.header.length, 404);
    assert_eq!(file.header.filename, "SEP001122334455.cnf.xml.sgn");
    assert_eq!(file.header.signer_name, "CN=TFTP,O=Test,OU=Test");
    assert_eq!(file.header.digest, Digest::Sha1);
    file.verify(&sgn, &Certificate::from_pem(&read("tftp.crt")).unwrap()).unwrap();
    assert_eq!(signed::strip(&sgn).unwrap(), read("SEP001122334455.cnf.xml"));
    // Another certificate does not verify it.
    assert!(file.verify(&sgn, &Certificate::from_pem(&read("sast.crt")).unwrap()).is_err());
}

#[test]
fn both_trust_lists_verify_against_their_own_sast_and_list_their_roles() {
    let itl = read("ITLFile.tlv");
    let list = TrustList::parse(&itl).unwrap();
    list.verify(&itl).unwrap();
    assert_eq!(list.header.signer_version, Some((1, 0)));
    let roles: Vec<_> = list.records.iter().map(|r| r.role()).collect();
    assert_eq!(roles, [Some(Role::Sast), Some(Role::Tftp)]);

    let v11 = read("enc/ITLFile-v1.1.tlv");
    let list = TrustList::parse(&v11).unwrap();
    list.verify(&v11).unwrap();
    assert_eq!(list.header.signer_version, Some((1, 1)));
    assert_eq!(list.header.filename, "ITLFile.tlv");
    let roles: Vec<_> = list.records.iter().map(|r| r.role().unwrap()).collect();
    assert_eq!(roles, [Role::Sast, Role::Tftp, Role::AppServer]);
    // The APP-SERVER record carries an EC key (the uncompressed point), the others RSA.
    assert_eq!(list.records[2].public_key.len(), 65);
    assert_eq!(list.records[2].public_key[0], 4);
    // A list signed by a SAST the phone already holds is accepted; by another, not.
    list.verify_against(&v11, &list).unwrap();
    let old = TrustList::parse(&itl).unwrap();
    assert!(list.verify_against(&v11, &old).is_err());
}

#[test]
fn the_trust_list_is_rebuilt_byte_for_byte() {
    let v11 = read("enc/ITLFile-v1.1.tlv");
    let parsed = TrustList::parse(&v11).unwrap();
    let sast = Signer::from_pem(&read("enc/sast.pem")).unwrap();
    let spec = Spec {
        signer: &sast,
        records: vec![
            (Certificate::from_pem(&read("enc/tftp.pem")).unwrap(), Role::Tftp),
            (Certificate::from_pem(&read("enc/tftp-ec.pem")).unwrap(), Role::AppServer),
        ],
        signer_version: (1, 1),
        digest: Digest::Sha1,
        filename: "ITLFile.tlv",
        timestamp: parsed.header.timestamp,
    };
    assert_eq!(trust_list::build(&spec).unwrap(), v11);
}

#[test]
fn the_encrypted_config_decrypts_to_its_plaintext_and_its_stub_is_rebuilt_byte_for_byte() {
    let enc = read("enc/SEP001122334466.cnf.xml.enc.sgn");
    let tftp = Signer::from_pem(&read("enc/tftp.pem")).unwrap();
    let file = SignedFile::parse(&enc).unwrap();
    assert_eq!(file.header.version, (2, 0));
    file.verify(&enc, &tftp.certificate).unwrap();
    let plain = encrypted::decrypt(&enc, &phone_key()).unwrap();
    assert_eq!(plain, read("enc/plain-SEP001122334466.cnf.xml"));

    // The stub beside it: the same bytes from the plaintext and the phone certificate, and the same signature.
    let stub_sgn = read("enc/SEP001122334466.cnf.xml.sgn");
    let phone = Certificate::from_pem(&read("enc/phone.pem")).unwrap();
    let stub = encrypted::stub(&plain, &phone).unwrap();
    assert_eq!(stub, signed::strip(&stub_sgn).unwrap());
    let header = SignedFile::parse(&stub_sgn).unwrap().header;
    let rebuilt = signed::sign(&stub, &tftp, "SEP001122334466.cnf.xml.sgn", Digest::Sha1, header.timestamp).unwrap();
    assert_eq!(rebuilt, stub_sgn);
}

#[test]
fn our_encrypted_config_opens_with_the_phone_key_only() {
    let tftp = Signer::from_pem(&read("enc/tftp.pem")).unwrap();
    let phone = Certificate::from_pem(&read("enc/phone.pem")).unwrap();
    let plain = read("enc/plain-SEP001122334466.cnf.xml");
    let random = Randomness { key: [7; 16], iv: [9; 16] };
    for digest in [Digest::Sha1, Digest::Sha512] {
        let enc =
            encrypted::encrypt(&plain, &tftp, &phone, "SEP001122334466.cnf.xml.enc.sgn", digest, 1_800_000_000, random)
                .unwrap();
        SignedFile::parse(&enc).unwrap().verify(&enc, &tftp.certificate).unwrap();
        assert_eq!(encrypted::decrypt(&enc, &phone_key()).unwrap(), plain);
        // The key is wrapped to the phone: another key does not open it.
        let other = match certificate::private_key(&read("enc/sast.pem")).unwrap() {
            KeyKind::Rsa(k) => *k,
            KeyKind::Ec(_) => unreachable!(),
        };
        assert!(encrypted::decrypt(&enc, &other).is_err());
    }
}

#[test]
fn any_changed_byte_of_a_signed_file_fails_verification() {
    let tftp = Certificate::from_pem(&read("tftp.crt")).unwrap();
    let sgn = read("SEP001122334455.cnf.xml.sgn");
    for i in 0..sgn.len() {
        let mut bad = sgn.clone();
        bad[i] ^= 0x01;
        let verdict = SignedFile::parse(&bad).and_then(|f| f.verify(&bad, &tftp));
        assert!(verdict.is_err(), "byte {i} changed and it still verifies");
    }
    let itl = read("enc/ITLFile-v1.1.tlv");
    for i in (0..itl.len()).step_by(7) {
        let mut bad = itl.clone();
        bad[i] ^= 0x80;
        let verdict = TrustList::parse(&bad).and_then(|l| l.verify(&bad));
        assert!(verdict.is_err(), "trust list byte {i} changed and it still verifies");
    }
}

#[test]
fn an_ec_key_cannot_sign_and_a_key_must_match_its_certificate() {
    let err = Signer::from_pem(&read("enc/tftp-ec.pem")).unwrap_err();
    assert!(err.to_string().contains("EC key"), "{err}");
    let mut mixed = read("enc/tftp.pem");
    let sast = String::from_utf8(read("enc/sast.pem")).unwrap();
    let key_end = sast.find("-----END PRIVATE KEY-----").unwrap() + 25;
    // tftp.pem's certificate with sast.pem's key.
    let tftp = String::from_utf8(mixed.clone()).unwrap();
    let cert_start = tftp.find("-----BEGIN CERTIFICATE-----").unwrap();
    mixed = format!("{}\n{}", &sast[..key_end], &tftp[cert_start..]).into_bytes();
    let err = Signer::from_pem(&mixed).unwrap_err();
    assert!(err.to_string().contains("not the certificate's"), "{err}");
    // Certificate first, key second: the same signer.
    let swapped = format!("{}\n{}", &tftp[cert_start..], &tftp[..cert_start]);
    assert!(Signer::from_pem(swapped.as_bytes()).is_ok());
}
