//! `provisor phone simulate|explain --enterprise` on the wire: against tftpd-hpa serving only files built with
//! `provisor trust` (no Provisor server in the path), against an empty directory, and against `provisor serve` with
//! a trust directory.

mod common;
use common::serve::{BASE_CONFIG, Pki, Server};
use common::{Kill, free_port, ok, provisor, s};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/test-vectors/cucm-tlv/enc")
}

/// A TCP port nothing listens on (HTTP on it fails at once, so the phone goes on over TFTP).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn phone(tftp: &str, http_port: u16, state: &Path, extra: &[&str]) -> Output {
    let hp = http_port.to_string();
    let mut args = vec![
        "phone",
        "simulate",
        "--enterprise",
        "--mac",
        "001122334466",
        "--model",
        "CP-8845",
        "--firmware",
        "sip8845_65.14-1-1",
        "--dhcp-tftp",
        tftp,
        "--http-port",
        &hp,
        "--state",
        s(state),
        "--for",
        "10m",
        "--speed",
        "600",
    ];
    args.extend_from_slice(extra);
    provisor(&args)
}

#[test]
fn against_tftpd_hpa_serving_files_built_with_provisor_trust() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = d.join("tftpboot");
    std::fs::create_dir(&root).unwrap();
    ok(provisor(&["trust", "init", s(&d.join("trust"))]));
    std::fs::copy(d.join("trust/ITLFile.tlv"), root.join("ITLFile.tlv")).unwrap();
    let config = "<device><devicePool><callManagerGroup><members><member priority=\"0\"><callManager><processNodeName>cucm.example.com</processNodeName></callManager></member></members></callManagerGroup></devicePool><sipProfile><sipLines><line button=\"1\"><name>2001</name><authName>2001a</authName><authPassword>pw</authPassword></line></sipLines></sipProfile></device>";
    std::fs::write(d.join("SEP001122334466.cnf.xml"), config).unwrap();
    ok(provisor(&[
        "trust",
        "sign",
        s(&d.join("SEP001122334466.cnf.xml")),
        "--signer",
        s(&d.join("trust/tftp.pem")),
        "-o",
        s(&root.join("SEP001122334466.cnf.xml.sgn")),
    ]));
    let port = free_port();
    let _tftpd = Kill(
        Command::new("/usr/sbin/in.tftpd")
            .args(["-L", "-a", &format!("127.0.0.1:{port}"), "-s", s(&root), "-u", "root"])
            .stderr(Stdio::null())
            .spawn()
            .expect("tftpd-hpa is missing (see .ci/test)"),
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let tftp = format!("127.0.0.1:{port}");
    let state = d.join("state");
    // A fresh phone: HTTP does not answer, TFTP does; it takes the ITL on first use and the signed config.
    let o = phone(&tftp, closed_port(), &state, &[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("HTTP (6970) does not answer") && t.contains("(trust on first use)"), "{t}");
    assert!(
        t.contains("SEP001122334466.cnf.xml.sgn: config applied (signed by CN=TFTP,O=Provisor,OU=Provisor)"),
        "{t}"
    );
    assert!(t.contains("ready: call control cucm.example.com; lines 2001 (auth 2001a)"), "{t}");
    assert!(state.join("ITLFile.tlv").exists() && state.join("config.xml").exists());

    // The site rotates to its second SAST: the phone holding the first list takes the new one (a SAST it knows).
    ok(provisor(&[
        "trust",
        "itl",
        "-o",
        s(&root.join("ITLFile.tlv")),
        "--sast",
        s(&d.join("trust/sast2.pem")),
        "--sast",
        s(&d.join("trust/sast1.pem")),
        "--tftp",
        s(&d.join("trust/tftp.pem")),
        "--signer-version",
        "1.0",
    ]));
    let o = phone(&tftp, closed_port(), &state, &[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("trust list installed, signed by CN=SAST2,O=Provisor,OU=Provisor (a SAST of the list it held)"),
        "{t}"
    );

    // The same phone (its state kept) and a config signed by a foreign TFTP key: rejected, and it says why.
    ok(provisor(&["trust", "init", s(&d.join("other"))]));
    ok(provisor(&[
        "trust",
        "sign",
        s(&d.join("SEP001122334466.cnf.xml")),
        "--signer",
        s(&d.join("other/tftp.pem")),
        "-o",
        s(&root.join("SEP001122334466.cnf.xml.sgn")),
    ]));
    let o = phone(&tftp, closed_port(), &state, &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    // (Both sites' signers are named CN=TFTP: the serial number and the key tell them apart.)
    assert!(
        t.contains(
            "config REJECTED: signed by CN=TFTP,O=Provisor,OU=Provisor, not a TFTP certificate of the trust list"
        ),
        "{t}"
    );
    // A foreign ITL (signed by a SAST it does not hold): rejected too.
    std::fs::copy(d.join("other/ITLFile.tlv"), root.join("ITLFile.tlv")).unwrap();
    let t = text(&phone(&tftp, closed_port(), &state, &[]));
    assert!(t.contains("ITLFile.tlv: trust list REJECTED: signed by CN=SAST1"), "{t}");
    // Erasing the trust list: it takes the new site on first use and its config.
    let o = phone(&tftp, closed_port(), &state, &["--erase-trust"]);
    let t = text(&o);
    assert!(o.status.success() && t.contains("trust list erased") && t.contains("(trust on first use)"), "{t}");
}

#[test]
fn against_an_empty_directory_it_shows_the_programming_error_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let o = provisor(&[
        "phone",
        "explain",
        "--enterprise",
        "--mac",
        "001122334466",
        "--model",
        "CP-8845",
        "--dhcp-tftp",
        "10.0.0.5",
        "--dir",
        s(dir.path()),
        "--for",
        "3m",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("\"Programming Error XmlDefault.cnf.xml\"") && t.contains("the short list again in 45 s"),
        "{t}"
    );
    assert!(t.matches("CTLSEP001122334466.tlv: not found").count() >= 3, "retried every 45 s: {t}");
}

#[test]
fn against_provisor_serve_a_phone_with_its_certificate_gets_its_config_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("firmware")).unwrap();
    Pki::new(d, "test-ca");
    ok(provisor(&["trust", "init", s(&d.join("trust")), "--host", "127.0.0.1"]));
    let data = s(&d.join("data")).to_string();
    ok(provisor(&["group", "--data-dir", &data, "put", "defaults", "--param", "Proxy_1_=cucm.example.com"]));
    ok(provisor(&[
        "device",
        "--data-dir",
        &data,
        "add",
        "001122334466",
        "--model",
        "CP-8845",
        "--param",
        "User_ID_1_=2001",
        "--param",
        "Password_1_=s3cret",
    ]));
    ok(provisor(&["device", "--data-dir", &data, "set", "001122334466", "--cert", s(&vectors().join("phone.pem"))]));
    let config = format!(
        "{BASE_CONFIG}[enterprise]\ntrust_dir = \"trust\"\nhttp_listen = \"127.0.0.1:0\"\nhttps_listen = \"127.0.0.1:0\"\n\
         loads = {{ \"36217\" = {{ model = \"Cisco 8845\", load = \"sip8845_65.14-2-1\" }} }}\n"
    );
    // The load XMLDefault names for the 8845, in the firmware directory.
    std::fs::write(d.join("firmware/sip8845_65.14-2-1.loads"), "kern.sbn\nrootfs.zz\n").unwrap();
    std::fs::write(d.join("firmware/kern.sbn"), vec![1u8; 40_000]).unwrap();
    std::fs::write(d.join("firmware/rootfs.zz"), vec![2u8; 90_000]).unwrap();
    let server = Server::start_with(d, &config);
    let log = server.log.lock().unwrap().clone();
    let http_port: u16 = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("ent-http ").map(|r| r.trim().rsplit(':').next().unwrap().parse().unwrap()))
        .unwrap_or_else(|| panic!("{log}"));
    let https_port = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("ent-https ").map(|r| r.trim().rsplit(':').next().unwrap().to_string()))
        .unwrap_or_else(|| panic!("{log}"));
    let tftp = format!("127.0.0.1:{}", server.tftp);
    let phone_pem = vectors().join("phone.pem");
    let o = phone(&tftp, http_port, &d.join("state"), &["--phone-key", s(&phone_pem), "--https-port", &https_port]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    // The signer-version 1.1 ITL names an EC TFTP certificate: the stub comes over HTTPS on 6971, verified against
    // that certificate alone (a real TLS handshake), and it leads to the encrypted config (asserted below).
    assert!(t.contains(&format!("fetches https://127.0.0.1:{https_port}/SEP001122334466.cnf.xml.sgn")), "{t}");
    assert!(!t.contains(&format!("{https_port}/SEP001122334466.cnf.xml.sgn: failed")), "the TLS handshake: {t}");
    assert!(t.contains("fetches http://127.0.0.1:") && !t.contains("does not answer"), "over HTTP first: {t}");
    assert!(t.contains("config applied (encrypted to this phone, signed by CN=TFTP,O=Provisor,OU=Provisor)"), "{t}");
    assert!(t.contains("lines 2001 (auth 2001)"), "{t}");
    // An unknown MAC: XMLDefault.
    let hp = http_port.to_string();
    let o = provisor(&[
        "phone",
        "simulate",
        "--enterprise",
        "--mac",
        "00112233aaaa",
        "--model",
        "CP-8845",
        "--dhcp-tftp",
        &tftp,
        "--http-port",
        &hp,
        "--for",
        "10m",
        "--speed",
        "600",
    ]);
    let t = text(&o);
    assert!(t.contains("XMLDefault.cnf.xml.sgn: config applied") && t.contains("call control cucm.example.com"), "{t}");
    // XMLDefault names a new load for its model: it fetches the .loads and its files, and reboots into it.
    assert!(t.contains("load sip8845_65.14-2-1: every file fetched: rebooting into it"), "{t}");
    assert!(t.contains("load sip8845_65.14-2-1; trusts"), "{t}");
    // A load test of enterprise phones: every one takes the ITL and a signed config (its own or XMLDefault).
    let chart = d.join("chart.svg");
    let o = provisor(&[
        "loadtest",
        "--enterprise",
        "--dhcp-tftp",
        &tftp,
        "--http-port",
        &hp,
        "--phones",
        "30",
        "--first-mac",
        "00:11:22:33:55:00",
        "--boot-window",
        "1s",
        "--chart",
        s(&chart),
    ]);
    let summary = text(&o);
    assert!(o.status.success() && summary.contains("provisioned 30\nfailed 0"), "{summary}");
    assert!(std::fs::read_to_string(&chart).unwrap().contains("30 phones"));
}
