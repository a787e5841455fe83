//! A simulated enterprise phone (`provisor_phone::enterprise`, sans-IO) wired to the provisioning core in memory on
//! one virtual clock: trust on first use, signed configs, rejections with their reasons, a SAST rotation, erasing the
//! trust list, an encrypted config, the XMLDefault fallback and a load change. Golden keys from
//! `../shared/reference/test-vectors/cucm-tlv/enc/`.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use common::*;
use provisor_phone::enterprise::{Device, EnterprisePhone, Event, Saved, Server};
use provisor_phone::phone::{Action, Request as PhoneRequest, Response as PhoneResponse};
use provisor_rules::url::Scheme;
use provisor_server::config::{Enterprise, Load, PlainSecrets};
use provisor_server::content::MemoryContent;
use provisor_server::inventory::Store;
use provisor_server::provision::{Body, Protocol, Request};
use provisor_trust::certificate::{self, KeyKind};
use provisor_trust::trust_list::{self, Spec};
use provisor_trust::{Certificate, Digest, Role, Signer};

fn vector(name: &str) -> Vec<u8> {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/test-vectors/cucm-tlv/enc")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn signer(name: &str) -> Signer {
    Signer::from_pem(&vector(name)).unwrap()
}

fn cert(name: &str) -> Certificate {
    Certificate::from_pem(&vector(name)).unwrap()
}

/// A trust list signed by `sast`, listing `records`.
fn itl(sast: &Signer, records: Vec<(Certificate, Role)>, v11: bool) -> Vec<u8> {
    trust_list::build(&Spec {
        signer: sast,
        records,
        signer_version: if v11 { (1, 1) } else { (1, 0) },
        digest: Digest::Sha1,
        filename: "ITLFile.tlv",
        timestamp: 1_800_000_000,
    })
    .unwrap()
}

struct Pair {
    core: Core,
    content: std::sync::Arc<MemoryContent>,
    now: u64,
    /// The DER of the server's HTTPS certificate on 6971.
    tls_certificate: Vec<u8>,
    wire: Vec<String>,
}

impl Pair {
    async fn new() -> Pair {
        let (core, content) = core(|c| {
            let mut loads = BTreeMap::new();
            loads.insert("36217".to_string(), Load { model: "Cisco 8845".into(), load: "sip8845_65.14-2-1".into() });
            c.enterprise = Some(Enterprise {
                trust_dir: "unused".into(),
                http_listen: None,
                https_listen: None,
                plain_secrets: PlainSecrets::UntilCertificate,
                loads,
            });
        })
        .await;
        // The site: SAST = sast.pem (and tftp.pem as its second SAST), files signed by tftp.pem.
        content.set_trust_list(
            "ITLFile.tlv",
            itl(&signer("sast.pem"), vec![(cert("tftp.pem"), Role::Sast), (cert("tftp.pem"), Role::Tftp)], false),
        );
        core.set_file_signer(Some(signer("tftp.pem")));
        Pair { core, content, now: 0, tls_certificate: cert("tftp-ec.pem").der, wire: Vec::new() }
    }

    fn phone(&self, mac: &str, model: &str, saved: Saved, keys: bool) -> EnterprisePhone {
        let (certificate, key) = if keys {
            let key = match certificate::private_key(&vector("phone.pem")).unwrap() {
                KeyKind::Rsa(k) => Some(*k),
                KeyKind::Ec(_) => None,
            };
            (Some(cert("phone.pem")), key)
        } else {
            (None, None)
        };
        let device = Device { mac: mac.into(), model: model.into(), load: "sip8845_65.14-1-1".into() };
        let server = Server { host: "prov.example.com".into(), tftp_port: 69, http_port: 6970, https_port: 6971 };
        EnterprisePhone::new(device, server, saved, certificate, key)
    }

    async fn run(&mut self, phone: &mut EnterprisePhone, seconds: u64) {
        let end = self.now + seconds;
        phone.boot(self.now);
        loop {
            while let Some(a) = phone.poll_action() {
                if let Action::Request(r) = a {
                    let answer = self.exchange(&r).await;
                    phone.handle_response(r.id, answer, self.now);
                }
            }
            match phone.poll_timeout() {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    phone.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = end;
    }

    async fn exchange(&mut self, r: &PhoneRequest) -> PhoneResponse {
        if r.url.scheme == Scheme::Https {
            // The phone trusts only the certificate its trust list names for 6971.
            let trusted = r.custom_ca.as_deref().and_then(|pem| Certificate::from_pem(pem).ok()).map(|c| c.der);
            if trusted.as_deref() != Some(&self.tls_certificate[..]) {
                self.wire.push(format!("https {} handshake failed", r.url.path));
                return PhoneResponse {
                    error: Some("TLS handshake: UnknownIssuer".into()),
                    ..PhoneResponse::default()
                };
            }
        }
        let protocol = match r.url.scheme {
            Scheme::Tftp => Protocol::Tftp,
            Scheme::Http => Protocol::Http,
            Scheme::Https => Protocol::Https,
        };
        let mut req = Request::get(protocol, &r.url.path, SocketAddr::from(([10, 0, 0, 9], 5060)));
        req.enterprise_tls = protocol == Protocol::Https;
        let response = self.core.handle(req, at(self.now)).await;
        self.wire.push(format!("{} {} {}", r.url.scheme.as_str(), r.url.path, response.status));
        let body = match &response.body {
            Body::Bytes(b) => b.to_vec(),
            Body::File(..) => unreachable!(),
        };
        PhoneResponse { status: if response.status == 200 { 200 } else { 404 }, body, ..PhoneResponse::default() }
    }
}

fn events(phone: &EnterprisePhone) -> String {
    phone.notes().iter().map(|n| format!("{:>5} {}\n", n.at, n.event)).collect()
}

/// What a ready phone ends up with: call-control servers, lines (name, auth name), load.
type Ready = (Vec<String>, Vec<(String, String)>, String);

fn ready(phone: &EnterprisePhone) -> Option<Ready> {
    phone.notes().iter().rev().find_map(|n| match &n.event {
        Event::Ready { servers, lines, load, .. } => Some((servers.clone(), lines.clone(), load.clone())),
        _ => None,
    })
}

#[tokio::test]
async fn a_fresh_phone_takes_the_itl_and_a_signed_config_then_rejects_what_its_list_does_not_vouch_for() {
    let mut pair = Pair::new().await;
    let mut phone = pair.phone(E, "CP-8845", Saved::default(), false);
    pair.run(&mut phone, 60).await;
    let log = events(&phone);
    // The short list in order, HTTP first; trust on first use; the signed config.
    let order: Vec<&str> = pair.wire.iter().map(|w| w.split(' ').nth(1).unwrap()).collect();
    let upper = E.to_uppercase();
    assert_eq!(
        order[..4],
        [
            format!("/CTLSEP{upper}.tlv"),
            format!("/ITLSEP{upper}.tlv"),
            "/ITLFile.tlv".into(),
            format!("/SEP{upper}.cnf.xml.sgn")
        ]
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()[..],
        "{:#?}",
        pair.wire
    );
    assert!(pair.wire.iter().all(|w| w.starts_with("http ")), "HTTP on 6970 first: {:#?}", pair.wire);
    assert!(
        log.contains("trust list installed, signed by CN=SAST,O=Provisor-Vectors,OU=Test (trust on first use)"),
        "{log}"
    );
    assert!(log.contains("config applied (signed by CN=TFTP,O=Provisor-Vectors,OU=Test)"), "{log}");
    let (servers, lines, _) = ready(&phone).expect(&log);
    assert_eq!(servers, ["sip.example.com"]);
    assert_eq!(lines, [("204".to_string(), "204".to_string())]);

    // The site starts signing with a key its list does not hold: rejected, with why; the phone retries.
    let saved = phone.saved().clone();
    pair.core.set_file_signer(Some(signer("phone.pem")));
    let mut phone = pair.phone(E, "CP-8845", saved.clone(), false);
    pair.run(&mut phone, 30).await;
    let log = events(&phone);
    assert!(
        log.contains("config REJECTED: signed by CN=CP-8845-SEP001122334466,O=Cisco,OU=MIC, not a TFTP certificate"),
        "{log}"
    );
    assert!(log.contains("the short list again in 45 s") && ready(&phone).is_none(), "{log}");

    // A stranger's ITL (signed by a SAST it does not hold): rejected, the old list kept.
    pair.content.set_trust_list("ITLFile.tlv", itl(&signer("phone.pem"), vec![(cert("phone.pem"), Role::Tftp)], false));
    pair.core.set_file_signer(Some(signer("phone.pem")));
    let mut phone = pair.phone(E, "CP-8845", saved.clone(), false);
    pair.run(&mut phone, 30).await;
    let log = events(&phone);
    assert!(log.contains("ITLFile.tlv: trust list REJECTED: signed by CN=CP-8845-SEP001122334466"), "{log}");
    assert_eq!(phone.saved().trust_list, saved.trust_list, "the list it held");

    // Erasing the trust list (the phone's menu) recovers: trust on first use again.
    let mut phone = pair.phone(E, "CP-8845", saved.clone(), false);
    phone.erase_trust();
    pair.run(&mut phone, 30).await;
    let log = events(&phone);
    assert!(log.contains("(trust on first use)") && ready(&phone).is_some(), "{log}");
}

#[tokio::test]
async fn a_sast_rotation_is_followed_and_an_encrypted_config_opens_with_the_phones_key() {
    let mut pair = Pair::new().await;
    let mut phone = pair.phone(E, "CP-8845", Saved::default(), false);
    pair.run(&mut phone, 30).await;
    let saved = phone.saved().clone();
    // The second SAST (tftp.pem) signs the next list: the phone holding the first takes it.
    pair.content.set_trust_list(
        "ITLFile.tlv",
        itl(&signer("tftp.pem"), vec![(cert("sast.pem"), Role::Sast), (cert("tftp.pem"), Role::Tftp)], false),
    );
    let mut phone = pair.phone(E, "CP-8845", saved, false);
    pair.run(&mut phone, 30).await;
    let log = events(&phone);
    assert!(
        log.contains("trust list installed, signed by CN=TFTP,O=Provisor-Vectors,OU=Test (a SAST of the list it held)"),
        "{log}"
    );
    assert!(ready(&phone).is_some(), "{log}");

    // With its certificate on record the config goes encrypted: stub → certHash → .enc.sgn → decrypted.
    pair.core.store().set_phone_certificate(&E.parse().unwrap(), Some(&cert("phone.pem").der)).await.unwrap();
    pair.core.refresh().await;
    let mut phone = pair.phone(E, "CP-8845", phone.saved().clone(), true);
    pair.run(&mut phone, 30).await;
    let log = events(&phone);
    assert!(log.contains(".cnf.xml.enc.sgn: config applied (encrypted to this phone, signed by CN=TFTP"), "{log}");
    assert_eq!(ready(&phone).unwrap().1, [("204".to_string(), "204".to_string())], "{log}");
    // Without its key it cannot: rejected, with why.
    let mut keyless = pair.phone(E, "CP-8845", Saved::default(), false);
    pair.run(&mut keyless, 30).await;
    assert!(events(&keyless).contains("no certificate and key to decrypt it"), "{}", events(&keyless));
}

#[tokio::test]
async fn an_unknown_phone_falls_back_to_xmldefault_and_upgrades_to_the_load_it_names_for_its_model() {
    let mut pair = Pair::new().await;
    pair.content.set_firmware("sip8845_65.14-2-1.loads", "sip8845_65.14-2-1.loads\nkern.sbn rootfs.zz\n");
    pair.content.set_firmware("kern.sbn", vec![1u8; 5000]);
    pair.content.set_firmware("rootfs.zz", vec![2u8; 9000]);
    let mut phone = pair.phone("00112233445f", "CP-8845", Saved::default(), false);
    pair.run(&mut phone, 120).await;
    let log = events(&phone);
    assert!(log.contains("SEP00112233445F.cnf.xml.sgn: not found"), "{log}");
    assert!(log.contains("XMLDefault.cnf.xml.sgn: config applied (signed by"), "{log}");
    assert!(log.contains("load sip8845_65.14-2-1: every file fetched: rebooting into it"), "{log}");
    assert_eq!(phone.load(), "sip8845_65.14-2-1");
    let (servers, lines, load) = ready(&phone).expect(&log);
    assert_eq!((servers, lines.len(), load), (vec!["sip.example.com".to_string()], 0, "sip8845_65.14-2-1".to_string()));
    // A load it cannot fetch leaves it on the old one.
    pair.content.set_firmware("sip8845_65.14-2-1.loads", "missing.sbn\n");
    let mut phone = pair.phone("00112233445e", "CP-8845", Saved::default(), false);
    pair.run(&mut phone, 60).await;
    assert!(events(&phone).contains("not fetched") && phone.load() == "sip8845_65.14-1-1", "{}", events(&phone));
}

#[tokio::test]
async fn a_signer_version_11_list_with_an_ec_tftp_certificate_sends_the_config_over_https() {
    let mut pair = Pair::new().await;
    pair.content.set_trust_list(
        "ITLFile.tlv",
        itl(&signer("sast.pem"), vec![(cert("tftp.pem"), Role::Tftp), (cert("tftp-ec.pem"), Role::Tftp)], true),
    );
    let mut phone = pair.phone(E, "CP-8845", Saved::default(), false);
    pair.run(&mut phone, 30).await;
    let log = events(&phone);
    assert!(log.contains("config applied (over HTTPS from the trust list's EC certificate, port 6971)"), "{log}");
    assert!(pair.wire.iter().any(|w| w.starts_with("https /SEP")), "{:#?}", pair.wire);
    // A server whose 6971 certificate is not the one the list names: the phone falls back to the signed file.
    pair.tls_certificate = cert("phone.pem").der;
    let mut phone = pair.phone(E, "CP-8845", Saved::default(), false);
    pair.run(&mut phone, 30).await;
    let log = events(&phone);
    assert!(log.contains("config applied (signed by CN=TFTP"), "{log}");
}
