//! Day one, as a new user does it: `provisor init` in each identity mode, `provisor serve`, and a simulated phone with
//! a real phone's trust (public roots and what `Custom_CA_Rule` installs; no `--ca`) booting from DHCP's TFTP server.
//! It reaches its lines, or `serve` refuses to start and says why. `provisor doctor` says the same of each site.

mod common;
use common::serve::Server;
use common::{ok, provisor, s};

use std::path::Path;
use std::process::Output;

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `provisor init DIR ARGS`, then the written configuration with every listener on an ephemeral loopback port.
fn init(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["init", s(dir)];
    all.extend_from_slice(args);
    ok(provisor(&all));
    let mut config = std::fs::read_to_string(dir.join("provisor.toml")).unwrap();
    for port in ["8080", "8443", "6969", "5514", "9180"] {
        config = config.replace(&format!("\"127.0.0.1:{port}\""), "\"127.0.0.1:0\"");
    }
    config
}

/// A phone out of the box: DHCP names the TFTP server, no `--ca`. Returns its timeline.
fn boot_phone(server: &Server, mac: &str, certificate: Option<&(String, String)>) -> String {
    let tftp = format!("127.0.0.1:{}", server.tftp);
    let mut args = vec![
        "phone",
        "simulate",
        "--mac",
        mac,
        "--model",
        "CP-8841-3PCC",
        "--firmware",
        "sip88xx.12-0-1MPP",
        "--dhcp-tftp",
        &tftp,
        "--for",
        "3m",
        "--speed",
        "120",
    ];
    if let Some((c, k)) = certificate {
        args.extend_from_slice(&["--cert", c, "--cert-key", k]);
    }
    let out = provisor(&args);
    let timeline = text(&out);
    assert!(!timeline.contains("also trusts this CA"), "a real phone's trust, no override: {timeline}");
    timeline
}

#[test]
fn a_certificate_site_without_a_phone_ca_refuses_to_start_and_says_where_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let config = init(&site, &["--identity", "certificate"]);
    std::fs::write(site.join("provisor.toml"), config).unwrap();
    let out = provisor(&["serve", "--config", s(&site.join("provisor.toml"))]);
    assert!(!out.status.success());
    let err = text(&out);
    assert!(
        err.contains("client_ca") && err.contains("cisco.com/security/pki") && err.contains("identity = \"mac\""),
        "{err}"
    );
    assert!(!site.join("data").exists(), "a failed start creates nothing");
    let doctor = provisor(&["doctor", "--config", s(&site.join("provisor.toml"))]);
    assert!(!doctor.status.success() && text(&doctor).contains("refuses to start"), "{}", text(&doctor));
}

#[test]
fn certificate_site_a_phone_with_its_certificate_reaches_its_lines_one_without_stays_on_the_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let config = init(&site, &["--identity", "certificate", "--phone-ca", "test"]);
    let toml = site.join("provisor.toml");
    let server = Server::start_with(&site, &config);
    // Every start says the phone CA is a test CA.
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("test_phone_ca") && log.contains("no real phone carries one"), "{log}");
    let mac = "000e08aabb01";
    ok(provisor(&["device", "--config", s(&toml), "import", s(&site.join("devices.csv"))]));
    ok(provisor(&["cert", "phone", "--config", s(&toml), "--mac", mac, "--model", "CP-8841-3PCC", "--out", s(&site)]));
    let cert = (s(&site.join("SEP000E08AABB01.pem")).to_string(), s(&site.join("SEP000E08AABB01.key")).to_string());
    // The certificate names the phone as a Cisco one does, in an X.509 v3 certificate for client authentication.
    let shown = common::peer("openssl", &["x509", "-in", &cert.0, "-noout", "-text"], None);
    let shown = text(&shown);
    assert!(
        shown.contains("Version: 3") && shown.contains("OU = CP-8841-3PCC") && shown.contains("ST = 000e08aabb01"),
        "{shown}"
    );
    assert!(shown.contains("TLS Web Client Authentication"), "{shown}");
    // The phone trusts nothing but public roots at first: its first HTTPS attempt fails, the bootstrap installs the
    // site CA, and the short retry brings its lines well within two minutes of virtual time.
    let timeline = boot_phone(&server, mac, Some(&cert));
    assert!(timeline.contains("UnknownIssuer"), "{timeline}");
    assert!(timeline.contains("custom CA from") && timeline.contains("installed"), "{timeline}");
    assert!(timeline.contains("User_ID_1_") && timeline.contains("GPP_SA"), "its lines and key: {timeline}");
    let got_lines = timeline.lines().find(|l| l.contains("GPP_SA")).unwrap();
    // `+HH:MM:SS` of virtual time since boot.
    let stamp = got_lines.split_whitespace().next().unwrap().trim_start_matches('+');
    let at = stamp.split(':').fold(0u64, |acc, part| acc * 60 + part.parse::<u64>().unwrap());
    assert!(at < 120, "lines at {at} s: {timeline}");
    // Without a certificate: the bootstrap only, never a secret, never stranded.
    let timeline = boot_phone(&server, "000e08aabb02", None);
    assert!(!timeline.contains("GPP_SA") && !timeline.contains("change-me-202"), "{timeline}");
    // doctor agrees.
    let doctor = provisor(&["doctor", "--config", s(&toml)]);
    assert!(doctor.status.success(), "{}", text(&doctor));
    assert!(text(&doctor).contains("✓ reached its lines"), "{}", text(&doctor));
}

#[test]
fn mac_site_an_armed_phone_gets_its_secrets_once_and_the_audit_names_who_took_them() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let config = init(&site, &["--identity", "mac"]);
    assert!(config.contains("\nidentity = \"mac\""), "{config}");
    let toml = site.join("provisor.toml");
    let server = Server::start_with(&site, &config);
    ok(provisor(&["device", "--config", s(&toml), "import", s(&site.join("devices.csv"))]));
    let mac = "000e08aabb01";
    let timeline = boot_phone(&server, mac, None);
    assert!(timeline.contains("GPP_SA") && timeline.contains("User_ID_1_"), "its lines: {timeline}");
    // Once: a second phone naming the same MAC (a thief, or the same phone factory-reset) gets the bootstrap only.
    let again = boot_phone(&server, mac, None);
    assert!(!again.contains("GPP_SA"), "{again}");
    let audit = std::fs::read_to_string(site.join("data/audit.log")).unwrap();
    assert!(audit.contains("secrets taken by 127.0.0.1"), "{audit}");
    // Re-armed: once more.
    ok(provisor(&["device", "--config", s(&toml), "arm", mac]));
    assert!(boot_phone(&server, mac, None).contains("GPP_SA"));
    let doctor = provisor(&["doctor", "--config", s(&toml)]);
    assert!(doctor.status.success(), "{}", text(&doctor));
}

#[test]
fn a_phone_whose_https_fails_after_the_bootstrap_recovers_once_the_site_is_fixed() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    // Misconfigured: `public_ca = true`, but the certificate is the site's own: phones never trust it.
    let config = init(&site, &["--identity", "mac"]).replace("\npublic_ca = false", "\npublic_ca = true");
    let server = Server::start_with(&site, &config);
    let toml = site.join("provisor.toml");
    ok(provisor(&["device", "--config", s(&toml), "import", s(&site.join("devices.csv"))]));
    let tftp = format!("127.0.0.1:{}", server.tftp);
    let mut phone = std::process::Command::new(env!("CARGO_BIN_EXE_provisor"))
        .args(["phone", "simulate", "--mac", "000e08aabb01", "--model", "CP-8841-3PCC", "--dhcp-tftp", &tftp])
        .args(["--firmware", "sip88xx.12-0-1MPP", "--for", "12m", "--speed", "60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = phone.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut timeline = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while timeline.iter().filter(|l: &&String| l.contains("UnknownIssuer")).count() < 2 && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
            timeline.push(line);
        }
    }
    let before = timeline.join("\n");
    assert!(before.matches("UnknownIssuer").count() >= 2, "HTTPS fails, again and again: {before}");
    assert!(!before.contains("GPP_SA") && !before.contains("Custom_CA_Rule"), "{before}");
    // The site is fixed: the bootstrap installs the site's CA. SIGHUP, no restart.
    std::fs::write(&toml, std::fs::read_to_string(&toml).unwrap().replace("\npublic_ca = true", "\npublic_ca = false"))
        .unwrap();
    // SAFETY: kill(2) with the pid of a child this test started and still owns.
    assert_eq!(unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) }, 0);
    let status = phone.wait().unwrap();
    timeline.extend(rx.try_iter());
    let all = timeline.join("\n");
    let after = &all[before.len()..];
    assert!(after.contains("custom CA from") && after.contains("GPP_SA"), "recovered without a touch:\n{all}");
    assert!(status.success(), "{all}");
}
