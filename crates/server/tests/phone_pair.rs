//! A simulated phone (`provisor_phone::Phone`, the sans-IO MPP core) wired to the provisioning core in memory, on one
//! virtual clock: boot → bootstrap over TFTP → full profile over HTTPS with its certificate → encrypted resyncs →
//! firmware upgrade → key rotation → reports and syslog, hours of phone life in milliseconds.

mod common;

use std::net::SocketAddr;

use common::*;
use provisor_phone::phone::{Action, Device as PhoneDevice, Phone, Request as PhoneRequest, Response as PhoneResponse};
use provisor_rules::url::Scheme;
use provisor_server::identity::Claims;
use provisor_server::inventory::{Mac, Store};
use provisor_server::provision::{Body, Protocol, Request};

/// The phone and the server, and what went between them.
struct Pair {
    phone: Phone,
    core: Core,
    /// Virtual seconds.
    now: u64,
    address: SocketAddr,
    /// Whether the phone presents its certificate over HTTPS.
    certificate: bool,
    /// The CA that signed the server's certificate, when no public CA did: an HTTPS request gets through only if the
    /// phone installed exactly this CA (`Custom_CA_Rule`); otherwise the handshake fails, as a phone's would.
    server_ca: Option<Vec<u8>>,
    /// `scheme path status`, per exchange.
    wire: Vec<String>,
}

impl Pair {
    async fn run_for(&mut self, seconds: u64) {
        let end = self.now + seconds;
        loop {
            while let Some(action) = self.phone.poll_action() {
                match action {
                    Action::Request(r) => {
                        let answer = self.exchange(&r).await;
                        self.phone.handle_response(r.id, answer, self.now);
                    }
                    Action::Syslog { line, .. } => {
                        provisor_server::front::syslog::receive(&self.core, self.address, &line, at(self.now)).await;
                    }
                }
            }
            match self.phone.poll_timeout() {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.phone.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// One fetch or upload, as the front ends would hand it to the core.
    async fn exchange(&mut self, r: &PhoneRequest) -> PhoneResponse {
        if r.url.scheme == Scheme::Https
            && let Some(ca) = &self.server_ca
            && r.custom_ca.as_deref() != Some(ca)
        {
            self.wire.push(format!("https {} handshake failed", r.url.path));
            return PhoneResponse {
                error: Some("TLS handshake: invalid peer certificate: UnknownIssuer".into()),
                ..PhoneResponse::default()
            };
        }
        let protocol = match r.url.scheme {
            Scheme::Tftp => Protocol::Tftp,
            Scheme::Http => Protocol::Http,
            Scheme::Https => Protocol::Https,
        };
        let path = r.url.path.split('?').next().unwrap_or("").to_string();
        let mut req = Request::get(protocol, &path, self.address);
        req.target = Some(r.url.path.clone());
        req.body = r.body.clone().into();
        req.method = match (protocol, r.method) {
            (Protocol::Tftp, "GET") => "RRQ",
            (Protocol::Tftp, _) => "WRQ",
            (_, "POST") => "POST",
            (_, "PUT") => "PUT",
            _ => "GET",
        };
        if protocol != Protocol::Tftp {
            req.user_agent = Some(r.user_agent.clone());
            req.authorization = r.authorization.clone();
        }
        if protocol == Protocol::Https && self.certificate {
            let d = self.phone.device();
            req.certificate = Some(Claims {
                mac: d.mac.parse().ok(),
                model: Some(d.model.clone()),
                serial: Some(d.serial.clone()),
                firmware: None,
            });
        }
        let response = self.core.handle(req, at(self.now)).await;
        self.wire.push(format!("{} {path} {}", r.url.scheme.as_str(), response.status));
        let body = match &response.body {
            Body::Bytes(b) => b.to_vec(),
            Body::File(..) => unreachable!("memory content serves bytes"),
        };
        if protocol == Protocol::Tftp {
            return match response.tftp_error() {
                None => PhoneResponse { status: 200, body, ..PhoneResponse::default() },
                Some((provisor_tftp::packet::ErrorCode::FileNotFound, _)) => {
                    PhoneResponse { status: 404, ..PhoneResponse::default() }
                }
                Some((code, message)) => PhoneResponse {
                    error: Some(format!("TFTP error {}: {message}", code as u16)),
                    ..PhoneResponse::default()
                },
            };
        }
        PhoneResponse {
            status: response.status,
            content_encoding: response.content_encoding.map(str::to_string),
            challenges: response.challenges().to_vec(),
            body,
            ..PhoneResponse::default()
        }
    }

    fn notes(&self) -> String {
        self.phone.notes().iter().map(|n| format!("{:>6} {}\n", n.at, n.event)).collect()
    }

    fn position(&self, needle: &str) -> usize {
        self.wire.iter().position(|w| w.contains(needle)).unwrap_or_else(|| {
            panic!("{needle:?} never went over the wire:\n{}\n{}", self.wire.join("\n"), self.notes())
        })
    }
}

const LOAD: &str = "sip88xx.12-0-1MPP-BN.loads";

async fn pair(certificate: bool) -> Pair {
    let (core, content) = core(|c| {
        c.firmware.targets.insert("CP-8841-3PCC".into(), LOAD.into());
    })
    .await;
    content.set_firmware(LOAD, vec![7u8; 300_000]);
    let a: Mac = A.parse().unwrap();
    let mut d = core.store().device(&a).await.unwrap().unwrap();
    d.params.insert("Report_To_Server".into(), "Periodically".into());
    d.params.insert("Periodic_Upload_To_Server".into(), "3600".into());
    core.store().update_device(&d).await.unwrap();
    core.refresh().await;
    let mut device = PhoneDevice::new(A, "CP-8841-3PCC", "sip88xx.11-0-1MPP");
    device.certificate = certificate;
    let mut phone = Phone::new(device, Some("prov.example.com".into()), 7);
    phone.boot(0);
    Pair { phone, core, now: 0, address: client(50), certificate, server_ca: None, wire: Vec::new() }
}

#[tokio::test]
async fn a_phone_boots_into_its_lines_upgrades_rotates_and_reports_on_a_virtual_clock() {
    let started = std::time::Instant::now();
    let mut p = pair(true).await;
    let old = secrets(&p.core, A).await;
    p.run_for(5 * 3600).await;

    // The order a real phone follows: the bootstrap over TFTP, its full profile over HTTPS (whose Upgrade_Rule it
    // applies in the same resync), then, after the reboot into the new load, only ciphertext.
    let bootstrap = p.position("tftp /8841.xml 200");
    let full = p.position(&format!("https /{A}.xml 200"));
    let encrypted = p.position(&format!("http /profile/{}/profile.cfg 200", old.path_token));
    let upgrade = p.position(&format!("http /firmware/{LOAD} 200"));
    assert!(bootstrap < full && full < upgrade && upgrade < encrypted, "{:#?}", p.wire);
    assert!(p.wire[full + 1..].iter().all(|w| !w.starts_with("https") && !w.starts_with("tftp")), "{:#?}", p.wire);
    assert_eq!(p.phone.device().firmware, "sip88xx.12-0-1MPP", "{}", p.notes());
    assert_eq!(p.phone.state().value("User_ID_1_"), "201");
    assert_eq!(p.phone.state().value("GPP_SA"), old.aes_key);
    assert_eq!(p.phone.failures(), 0, "{}", p.notes());

    // Rotation: the phone picks up the new key at its next resync, at the old path, and then uses the new path.
    let a: Mac = A.parse().unwrap();
    let mut d = p.core.store().device(&a).await.unwrap().unwrap();
    d.secrets = d.secrets.rotated().unwrap();
    p.core.store().update_device(&d).await.unwrap();
    p.core.refresh().await;
    let new = secrets(&p.core, A).await;
    let before = p.wire.len();
    p.run_for(3 * 3600).await;
    assert_eq!(p.phone.state().value("GPP_SA"), new.aes_key, "{}", p.notes());
    let after: Vec<&String> = p.wire[before..].iter().collect();
    let at_old = after.iter().position(|w| w.contains(&old.path_token)).expect("one more fetch at the old path");
    let at_new = after.iter().position(|w| w.contains(&new.path_token)).expect("then the new path");
    assert!(at_old < at_new, "{after:#?}");
    assert!(after[at_new..].iter().all(|w| !w.contains(&old.path_token)), "{after:#?}");
    assert!(secrets(&p.core, A).await.previous.is_none(), "the old key is gone once the new one was fetched");
    assert_eq!(p.phone.failures(), 0, "{}", p.notes());

    // Reports came in, encrypted with the key of their time, and the history has the rotation.
    let events = p.core.journal().events(&a);
    let reports = events.iter().filter(|(k, t)| *k == "report" && t.contains("AesCbc")).count();
    assert!(reports >= 5, "{events:#?}");
    assert!(events.iter().any(|(k, _)| *k == "rotated"), "{events:#?}");
    assert!(!events.iter().any(|(k, _)| *k == "refused" || *k == "error"), "{events:#?}");
    // Eight hours of a phone's life, without a socket or a sleep.
    eprintln!("8 virtual hours in {:?}", started.elapsed());
}

#[tokio::test]
async fn a_phone_without_a_certificate_stays_on_the_bootstrap_profile_and_never_gets_a_secret() {
    let mut p = pair(false).await;
    let s = secrets(&p.core, A).await;
    p.run_for(4 * 3600).await;
    assert!(p.wire.iter().any(|w| w.starts_with("https /")), "{:#?}", p.wire);
    assert!(p.wire.iter().all(|w| !w.contains("/profile/")), "{:#?}", p.wire);
    assert_ne!(p.phone.state().value("GPP_SA"), s.aes_key);
    assert_eq!(p.phone.state().value("User_ID_1_"), "");
    assert_eq!(p.phone.device().firmware, "sip88xx.11-0-1MPP", "no Upgrade_Rule without the full profile");
}

/// The site's own CA: phones must install it (`Custom_CA_Rule`) before HTTPS works.
const SITE_CA: &[u8] = b"-----BEGIN CERTIFICATE-----\nTUlJQiBzaXRlIENB\n-----END CERTIFICATE-----\n";

#[tokio::test]
async fn a_new_phone_installs_the_site_ca_and_reaches_its_lines_within_two_minutes() {
    let mut p = pair(true).await;
    p.core.set_site_ca(Some(bytes::Bytes::from_static(SITE_CA)));
    p.server_ca = Some(SITE_CA.to_vec());
    p.run_for(120).await;
    assert_eq!(p.phone.state().value("User_ID_1_"), "201", "lines within 2 minutes of first boot:\n{}", p.notes());
    assert_eq!(p.phone.custom_ca().map(|c| c.as_slice()), Some(SITE_CA));
    // The first HTTPS attempt (before the CA was installed) failed; the bootstrap's short retry brought it back.
    let failed = p.position("handshake failed");
    let ca = p.position("http /ca.pem 200");
    let full = p.position(&format!("https /{A}.xml 200"));
    assert!(failed < ca && ca < full, "{:#?}", p.wire);
}

#[tokio::test]
async fn a_phone_whose_https_fails_after_the_bootstrap_is_never_stranded_and_recovers_once_the_site_is_fixed() {
    let mut p = pair(true).await;
    // Misconfigured: the server's certificate comes from a CA the site does not hand out.
    p.core.set_site_ca(Some(bytes::Bytes::from_static(SITE_CA)));
    p.server_ca = Some(b"another CA".to_vec());
    p.run_for(1800).await;
    assert_eq!(p.phone.state().value("User_ID_1_"), "", "no lines while HTTPS fails");
    // The way back is still there: the plain bootstrap URL, fetched again and again.
    assert_eq!(p.phone.state().value("Profile_Rule"), "http://prov.example.com:8080/$MA.xml", "{}", p.notes());
    let bootstraps = p.wire.iter().filter(|w| *w == &format!("http /{A}.xml 200")).count();
    assert!(bootstraps >= 20, "it keeps trying about every minute: {bootstraps}\n{:#?}", p.wire);
    // The site is fixed: the server now presents a certificate from the CA it hands out.
    p.server_ca = Some(SITE_CA.to_vec());
    p.run_for(120).await;
    assert_eq!(p.phone.state().value("User_ID_1_"), "201", "recovered within 2 minutes:\n{}", p.notes());
    assert!(p.phone.state().value("Profile_Rule").contains("/profile/$B/profile.cfg"));
    assert_eq!(p.phone.state().value("Profile_Rule_B"), "", "the full profile removed the bootstrap's second rule");
}
