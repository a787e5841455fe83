//! Enterprise security files (`.sgn`, `.enc.sgn`, `ITLFile.tlv`/`CTLFile.tlv`): parsing, verifying and decrypting any
//! bytes never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisor_trust::certificate::{self, KeyKind};
use provisor_trust::signed::{self, SignedFile};
use provisor_trust::{Certificate, TrustList, edit, encrypted};

const PHONE: &[u8] = include_bytes!("../../../shared/reference/test-vectors/cucm-tlv/enc/phone.pem");
const TFTP: &[u8] = include_bytes!("../../../shared/reference/test-vectors/cucm-tlv/enc/tftp.pem");

fuzz_target!(|data: &[u8]| {
    static KEYS: std::sync::OnceLock<(rsa::PrivateKey, Certificate)> = std::sync::OnceLock::new();
    let (phone_key, tftp) = KEYS.get_or_init(|| {
        let key = match certificate::private_key(PHONE) {
            Ok(KeyKind::Rsa(k)) => *k,
            _ => panic!("the vector's phone key"),
        };
        (key, Certificate::from_pem(TFTP).expect("the vector's certificate"))
    });
    if let Ok(file) = SignedFile::parse(data) {
        let _ = file.verify(data, tftp);
        let _ = file.content(data);
    }
    let _ = signed::strip(data);
    if let Ok(list) = TrustList::parse(data) {
        let _ = list.verify(data);
        let _ = list.verify_against(data, &list);
        if let Ok(h) = provisor_trust::Header::parse(data) {
            let _ = list.verifies_file(data, &h);
        }
    }
    let _ = encrypted::decrypt(data, phone_key);
    let _ = encrypted::stub(data, tftp);
    // `profile repack --set PATH=VALUE` on any XML.
    let _ = edit::set_element(data, "sipProfile/sipLines/line[2]/authPassword", "x&y");
});
