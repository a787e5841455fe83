//! Build then parse is the identity, for any content, name, time and digest; parsing never panics on any bytes.

use proptest::prelude::*;
use provisor_trust::signed::{self, SignedFile};
use provisor_trust::trust_list::{self, Spec};
use provisor_trust::{Certificate, Digest, Role, Signer, TrustList};

fn vector(name: &str) -> Vec<u8> {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/test-vectors/cucm-tlv/enc")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn signer() -> &'static Signer {
    static S: std::sync::OnceLock<Signer> = std::sync::OnceLock::new();
    S.get_or_init(|| Signer::from_pem(&vector("tftp.pem")).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_signed_file_parses_back_to_what_was_signed(
        content in proptest::collection::vec(any::<u8>(), 0..2000),
        name in "[A-Za-z0-9._-]{1,40}",
        timestamp in any::<u32>(),
        sha512 in any::<bool>(),
    ) {
        let digest = if sha512 { Digest::Sha512 } else { Digest::Sha1 };
        let sgn = signed::sign(&content, signer(), &name, digest, timestamp).unwrap();
        let file = SignedFile::parse(&sgn).unwrap();
        prop_assert_eq!(&file.header.filename, &name);
        prop_assert_eq!(file.header.timestamp, timestamp);
        prop_assert_eq!(file.header.digest, digest);
        prop_assert_eq!(file.header.length % 4, 0);
        prop_assert_eq!(file.content(&sgn), &content[..]);
        file.verify(&sgn, &signer().certificate).unwrap();
    }

    #[test]
    fn a_trust_list_parses_back_to_its_records(timestamp in any::<u32>(), v11 in any::<bool>(), roles in proptest::collection::vec(0usize..6, 1..6)) {
        let all = [Role::Ccm, Role::CcmTftp, Role::Tftp, Role::Capf, Role::AppServer, Role::Tvs];
        let ec = Certificate::from_pem(&vector("tftp-ec.pem")).unwrap();
        let records: Vec<(Certificate, Role)> = roles.iter().map(|i| (ec.clone(), all[*i])).collect();
        let sast = Signer::from_pem(&vector("sast.pem")).unwrap();
        let spec = Spec {
            signer: &sast,
            records: records.clone(),
            signer_version: if v11 { (1, 1) } else { (1, 0) },
            digest: Digest::Sha1,
            filename: "ITLFile.tlv",
            timestamp,
        };
        let built = trust_list::build(&spec).unwrap();
        let list = TrustList::parse(&built).unwrap();
        list.verify(&built).unwrap();
        prop_assert_eq!(list.records.len(), records.len() + 1);
        for (r, (c, role)) in list.records[1..].iter().zip(&records) {
            prop_assert_eq!(r.role(), Some(*role));
            prop_assert_eq!(r.certificate.as_deref(), Some(&c.der[..]));
        }
    }

    #[test]
    fn parsing_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = SignedFile::parse(&data);
        let _ = TrustList::parse(&data);
    }
}

#[test]
fn a_third_sast_is_refused() {
    let sast = Signer::from_pem(&vector("sast.pem")).unwrap();
    let c = sast.certificate.clone();
    let spec = Spec {
        signer: &sast,
        records: vec![(c.clone(), Role::Sast), (c, Role::Sast)],
        signer_version: (1, 1),
        digest: Digest::Sha1,
        filename: "ITLFile.tlv",
        timestamp: 0,
    };
    assert!(trust_list::build(&spec).unwrap_err().to_string().contains("at most 2"));
}
