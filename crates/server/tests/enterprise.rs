//! Enterprise phones that hold a trust list, in process: the ITL is served; every `.sgn` is the file signed by the
//! trust directory's TFTP signer and verifies against that ITL as a phone checks it; a device with a phone
//! certificate gets its config encrypted to it and a stub without secrets in the plain file; static files are never
//! answered with a profile. Golden keys from `../shared/reference/test-vectors/cucm-tlv/enc/`.

mod common;

use std::collections::BTreeMap;

use common::*;
use provisor_server::config::{Enterprise, Load, PlainSecrets};
use provisor_server::inventory::Store;
use provisor_server::provision::{Protocol, ProvisionError};
use provisor_trust::certificate::{self, KeyKind};
use provisor_trust::signed::{self, SignedFile};
use provisor_trust::{Certificate, Signer, TrustList, encrypted};

fn vector(name: &str) -> Vec<u8> {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/test-vectors/cucm-tlv/enc")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

async fn site(plain_secrets: PlainSecrets) -> (Core, std::sync::Arc<provisor_server::content::MemoryContent>) {
    let (core, content) = core(|c| {
        let mut loads = BTreeMap::new();
        loads.insert("436".to_string(), Load { model: "Cisco 7965".into(), load: "SIP45.9-4-2SR4-3S".into() });
        c.enterprise = Some(Enterprise {
            trust_dir: "unused".into(),
            http_listen: None,
            https_listen: None,
            plain_secrets,
            loads,
        });
    })
    .await;
    content.set_trust_list("ITLFile.tlv", vector("ITLFile-v1.1.tlv"));
    core.set_file_signer(Some(Signer::from_pem(&vector("tftp.pem")).unwrap()));
    (core, content)
}

fn sep(name: &str) -> String {
    format!("/SEP{}{name}", E.to_uppercase())
}

#[tokio::test]
async fn a_phone_holding_the_itl_accepts_every_signed_file_and_gets_its_config_encrypted_once_it_has_a_certificate() {
    let (core, content) = site(PlainSecrets::UntilCertificate).await;
    let itl_bytes = vector("ITLFile-v1.1.tlv");
    let itl = TrustList::parse(&itl_bytes).unwrap();
    // The ITL, as the site placed it; no per-device list for E.
    assert_eq!(bytes(&core.handle(get(Protocol::Tftp, "/ITLFile.tlv", 1), at(0)).await), itl_bytes);
    let own = core.handle(get(Protocol::Tftp, &format!("/ITLSEP{}.tlv", E.to_uppercase()), 1), at(0)).await;
    assert!(matches!(own.error, Some(ProvisionError::NoTrustList)));

    // SEP<MAC>.cnf.xml.sgn verifies against a TFTP record of the ITL, and holds the plain config (no certificate yet).
    let r = core.handle(get(Protocol::Tftp, &sep(".cnf.xml.sgn"), 1), at(1)).await;
    let sgn = bytes(&r);
    let file = SignedFile::parse(&sgn).unwrap();
    assert_eq!(file.header.filename, format!("SEP{}.cnf.xml.sgn", E.to_uppercase()));
    itl.verifies_file(&sgn, &file.header).unwrap();
    let plain = text(&core.handle(get(Protocol::Tftp, &sep(".cnf.xml"), 1), at(1)).await);
    assert_eq!(signed::strip(&sgn).unwrap(), plain.as_bytes());
    assert!(plain.contains("secret-204"));
    assert!(
        core.journal().entries().iter().any(|e| e.note.contains("signed by CN=TFTP,O=Provisor-Vectors")),
        "audited"
    );
    // Signed once per content: the same bytes again.
    assert_eq!(bytes(&core.handle(get(Protocol::Http, &sep(".cnf.xml.sgn"), 1), at(60)).await), sgn);
    // No certificate: no encrypted config.
    let enc = core.handle(get(Protocol::Tftp, &sep(".cnf.xml.enc.sgn"), 1), at(2)).await;
    assert!(matches!(enc.error, Some(ProvisionError::Unsignable(_))), "{:?}", enc.error);

    // With the phone's certificate on record: the plain file is the stub, the secrets go encrypted to the phone.
    let phone = Certificate::from_pem(&vector("phone.pem")).unwrap();
    core.store().set_phone_certificate(&E.parse().unwrap(), Some(&phone.der)).await.unwrap();
    core.refresh().await;
    let stub = text(&core.handle(get(Protocol::Tftp, &sep(".cnf.xml"), 1), at(3)).await);
    assert!(
        !stub.contains("secret-204") && stub.contains("<certHash>b755a611ef7b53e7a4f30769e8e8e3c2</certHash>"),
        "{stub}"
    );
    let stub_sgn = bytes(&core.handle(get(Protocol::Tftp, &sep(".cnf.xml.sgn"), 1), at(3)).await);
    assert_eq!(signed::strip(&stub_sgn).unwrap(), stub.as_bytes());
    let enc = bytes(&core.handle(get(Protocol::Tftp, &sep(".cnf.xml.enc.sgn"), 1), at(4)).await);
    let header = SignedFile::parse(&enc).unwrap().header;
    itl.verifies_file(&enc, &header).unwrap();
    let key = match certificate::private_key(&vector("phone.pem")).unwrap() {
        KeyKind::Rsa(k) => k,
        KeyKind::Ec(_) => unreachable!(),
    };
    let opened = String::from_utf8(encrypted::decrypt(&enc, &key).unwrap()).unwrap();
    assert!(opened.contains("secret-204") && opened.contains("<fullConfig>true</fullConfig>"), "{opened}");
    assert!(core.journal().entries().iter().any(|e| e.note.starts_with("encrypted to CN=CP-8845-SEP001122334466")));

    // On the enterprise HTTPS listener a config's .sgn is the unsigned file.
    let mut tls = get(Protocol::Https, &sep(".cnf.xml.sgn"), 1);
    tls.enterprise_tls = true;
    assert_eq!(text(&core.handle(tls, at(5)).await), stub);

    // XMLDefault.cnf.xml: the call-control server and the loads by device type, and its signed form.
    let default = text(&core.handle(get(Protocol::Tftp, "/XMLDefault.cnf.xml", 1), at(6)).await);
    assert!(
        default.contains("<loadInformation436 model=\"Cisco 7965\">SIP45.9-4-2SR4-3S</loadInformation436>"),
        "{default}"
    );
    let default_sgn = bytes(&core.handle(get(Protocol::Tftp, "/XMLDefault.cnf.xml.sgn", 1), at(6)).await);
    itl.verifies_file(&default_sgn, &SignedFile::parse(&default_sgn).unwrap().header).unwrap();

    // Static files: never a profile; served and signed when the site has them.
    for name in ["/dialplan.xml", "/AppDialRules.xml", "/Ringlist.xml", "/Desktops/320x212x12/List.xml"] {
        let r = core.handle(get(Protocol::Tftp, name, 1), at(7)).await;
        assert!(matches!(r.error, Some(ProvisionError::NotFound)), "{name}: {:?}", r.error);
    }
    content.set_firmware("dialplan.xml", "<DIALTEMPLATE><TEMPLATE MATCH=\"9.\" Timeout=\"0\"/></DIALTEMPLATE>");
    assert!(text(&core.handle(get(Protocol::Tftp, "/dialplan.xml", 1), at(8)).await).starts_with("<DIALTEMPLATE>"));
    let dp = bytes(&core.handle(get(Protocol::Tftp, "/dialplan.xml.sgn", 1), at(8)).await);
    itl.verifies_file(&dp, &SignedFile::parse(&dp).unwrap().header).unwrap();
}

#[tokio::test]
async fn plain_secrets_never_leaves_the_passwords_out_and_always_keeps_them() {
    let (core, _) = site(PlainSecrets::Never).await;
    let plain = text(&core.handle(get(Protocol::Tftp, &sep(".cnf.xml"), 1), at(0)).await);
    assert!(!plain.contains("secret-204") && plain.contains("<authPassword></authPassword>"), "{plain}");
    let (core, _) = site(PlainSecrets::Always).await;
    let phone = Certificate::from_pem(&vector("phone.pem")).unwrap();
    core.store().set_phone_certificate(&E.parse().unwrap(), Some(&phone.der)).await.unwrap();
    core.refresh().await;
    assert!(text(&core.handle(get(Protocol::Tftp, &sep(".cnf.xml"), 1), at(0)).await).contains("secret-204"));
}

#[tokio::test]
async fn without_a_trust_directory_nothing_is_signed_and_trust_lists_stay_not_found() {
    let (core, _) = core(|_| {}).await;
    let r = core.handle(get(Protocol::Tftp, &sep(".cnf.xml.sgn"), 1), at(0)).await;
    assert!(matches!(r.error, Some(ProvisionError::Unsignable(_))), "{:?}", r.error);
    let r = core.handle(get(Protocol::Tftp, "/ITLFile.tlv", 1), at(0)).await;
    assert!(matches!(r.error, Some(ProvisionError::NoTrustList)));
}

#[tokio::test]
async fn a_verified_client_certificate_becomes_the_phone_certificate_its_config_is_encrypted_to() {
    let (core, _) = site(PlainSecrets::UntilCertificate).await;
    let phone = Certificate::from_pem(&vector("phone.pem")).unwrap();
    let mut req = with_certificate(&sep(".cnf.xml"), 1, E, "CP-7965G");
    req.client_certificate = Some(bytes::Bytes::from(phone.der.clone()));
    // Kept before this fetch is answered: already this one gets the stub, and the secrets only encrypted to it.
    assert!(!text(&core.handle(req, at(0)).await).contains("secret-204"));
    let e = E.parse().unwrap();
    assert_eq!(core.store().phone_certificate(&e).await.unwrap(), Some(phone.der.clone()));
    let stub = text(&core.handle(get(Protocol::Tftp, &sep(".cnf.xml"), 1), at(1)).await);
    assert!(!stub.contains("secret-204") && stub.contains("<encrConfig>true</encrConfig>"), "{stub}");
    // Another device's certificate is never kept for E.
    let (core, _) = site(PlainSecrets::UntilCertificate).await;
    let mut other = with_certificate(&sep(".cnf.xml"), 1, A, "CP-8841-3PCC");
    other.client_certificate = Some(bytes::Bytes::from(phone.der.clone()));
    let _ = core.handle(other, at(0)).await;
    assert_eq!(core.store().phone_certificate(&e).await.unwrap(), None);
}
