//! End-to-end tests of `provisor serve` on loopback against real peers: curl over HTTP and HTTPS with client
//! certificates made here with rcgen (Cisco-style subjects: OU = model, L = serial, S = MAC), tftp-hpa and atftp,
//! `openssl enc` and Python `http_ece` to decrypt what was served, and `kill -9` during an import.
//! A missing peer is a failure, never a skip: CI installs them (see .ci/test).
//!
//! What needs no peer (the secure flow's decisions, rotation, the cache, unknown-device policies, identity, rate limits)
//! is tested in process, on a fixed clock, in `crates/server/tests/`.

mod common;
use common::serve::{BASE_CONFIG, Pki, Server};
use common::{Kill, free_port, ok, peer, provisor, s};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MAC_A: &str = "000e08aabb01";
const MAC_B: &str = "000e08aabb02";
/// An enterprise phone, added where a test needs one.
const MAC_E: &str = "000e08aabb0e";

fn add_devices(dir: &Path) {
    let data = s(&dir.join("data")).to_string();
    for (mac, model, ext) in [(MAC_A, "CP-8841-3PCC", "201"), (MAC_B, "CP-7832-3PCC", "202")] {
        ok(provisor(&[
            "device",
            "--data-dir",
            &data,
            "add",
            mac,
            "--model",
            model,
            "--param",
            &format!("User_ID_1_={ext}"),
            "--param",
            &format!("Password_1_=secret-{ext}"),
        ]));
    }
}

fn setup(extra: &str) -> (tempfile::TempDir, Pki, Server) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("firmware")).unwrap();
    let pki = Pki::new(dir.path(), "test-ca");
    add_devices(dir.path());
    let server = Server::start(dir.path(), extra);
    (dir, pki, server)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn openssl_decrypt(dir: &Path, data: &[u8], key: &str) -> Vec<u8> {
    openssl_decrypt_md(dir, data, key, "sha256")
}

fn openssl_decrypt_md(dir: &Path, data: &[u8], key: &str, md: &str) -> Vec<u8> {
    let enc = dir.join("enc.bin");
    std::fs::write(&enc, data).unwrap();
    let o = peer("openssl", &["enc", "-d", "-aes-256-cbc", "-md", md, "-k", key, "-in", s(&enc)], None);
    assert!(o.status.success(), "openssl: {}", text(&o.stderr));
    let g = peer("gzip", &["-dc"], Some(&o.stdout));
    assert!(g.status.success());
    g.stdout
}

#[test]
fn client_certificates_decide_who_gets_secrets() {
    let (dir, pki, server) = setup("");
    let cert_a = pki.phone("phone-a", MAC_A, "CP-8841-3PCC", "FCH0001");
    let rogue = Pki::new(dir.path(), "rogue-ca").phone("rogue", MAC_A, "CP-8841-3PCC", "FCH0001");
    let key_a = server.secrets(MAC_A)["aes_key"].as_str().unwrap().to_string();

    // Without a certificate (plain HTTP or HTTPS), a MAC gets the bootstrap profile: no secrets.
    for (status, headers, body) in
        [server.get(&format!("/{MAC_A}.xml")), server.get_tls(&format!("/{MAC_A}.xml"), None)]
    {
        assert_eq!(status, 200);
        assert!(headers.contains("content-type: text/xml"), "{headers}");
        assert!(headers.contains(&format!("content-length: {}", body.len())), "{headers}");
        let t = text(&body);
        assert!(t.contains("<Profile_Rule_B ua=\"na\">https://127.0.0.1:"), "{t}");
        assert!(!t.contains(&key_a) && !t.contains("secret-201") && !t.contains("GPP_SA"), "{t}");
    }
    // With its verified certificate, phone A gets its full profile with key and random path.
    let (status, _, body) = server.get_tls(&format!("/{MAC_A}.xml"), Some(&cert_a));
    assert_eq!(status, 200);
    let full = text(&body);
    assert!(full.contains(&format!("<GPP_SA ua=\"na\">{key_a}</GPP_SA>")), "{full}");
    assert!(full.contains("secret-201"));
    assert!(full.contains("[--key $SA] http://127.0.0.1:"), "{full}");
    assert!(full.contains("<Upgrade_Rule ua=\"na\">($SWVER ne sip88xx.12-0-1MPP)? http://"), "{full}");
    // The default rule `/$PSN.xml`-style names without a MAC identify the phone by its certificate.
    let (status, _, body) = server.get_tls("/V03.xml", Some(&cert_a));
    assert_eq!((status, text(&body)), (200, full.clone()));
    // Phone A's certificate cannot fetch phone B's files by any name.
    let token_b = server.secrets(MAC_B)["path_token"].as_str().unwrap().to_string();
    for path in [
        format!("/{MAC_B}.xml"),
        format!("/CP-7832-3PCC/{MAC_B}.cfg"),
        format!("/SEP{}.cnf.xml", MAC_B.to_uppercase()),
        format!("/profile/{token_b}/profile.cfg"),
    ] {
        let (status, _, body) = server.get_tls(&path, Some(&cert_a));
        assert_eq!(status, 403, "{path}: {}", text(&body));
        assert!(!text(&body).contains("secret-202"));
    }
    // A certificate from a CA the server does not trust does not get through the handshake.
    let ca = server.dir.join("data/tls/ca.pem");
    let o = peer(
        "curl",
        &[
            "-s",
            "--cacert",
            s(&ca),
            "--cert",
            s(&rogue.0),
            "--key",
            s(&rogue.1),
            &format!("{}/{MAC_A}.xml", server.https),
        ],
        None,
    );
    assert!(!o.status.success() && !text(&o.stdout).contains(&key_a), "rogue certificate accepted");
    // The refusals are logged on phone A.
    let shown = server.show_when(MAC_A, |s| s.contains("refused") && s.contains(MAC_B));
    assert!(shown.contains("refused") && shown.contains(MAC_B), "{shown}");
    // The server's log has an access line per request (device, status, bytes, time), random paths masked, and the
    // rejected certificate with its reason (logged once the server's side of that handshake ends, which may be after
    // curl has given up: wait for it).
    let log = log_when(&server, "TLS handshake failed");
    let access: Vec<&str> = log.lines().filter(|l| l.contains("provisor::access")).collect();
    assert!(
        access.iter().any(|l| l.contains(&format!("device={MAC_A}")) && l.contains("status=200") && l.contains(" ms=")),
        "{log}"
    );
    assert!(access.iter().any(|l| l.contains("status=403")), "{log}");
    assert!(!log.contains(&token_b), "random paths never reach the log: {log}");
    assert!(log.contains("TLS handshake failed: invalid peer certificate"), "{log}");
    drop(dir);
}

#[test]
fn encrypted_profiles_over_http_and_tftp_decrypt_with_openssl() {
    let (dir, pki, server) = setup("[provisioning]\nmd5_before_firmware = \"12.0.0\"\n");
    let cert_a = pki.phone("phone-a", MAC_A, "CP-8841-3PCC", "FCH0001");
    let secrets = server.secrets(MAC_A);
    let (key, token) = (secrets["aes_key"].as_str().unwrap(), secrets["path_token"].as_str().unwrap());
    let (_, _, full) = server.get_tls(&format!("/{MAC_A}.xml"), Some(&cert_a));
    let path = format!("/profile/{token}/profile.cfg");
    let (status, headers, http) = server.get(&path);
    assert_eq!(status, 200);
    assert!(headers.contains("content-type: application/octet-stream") && !headers.contains("content-encoding"));
    assert!(http.starts_with(b"Salted__"));
    assert_eq!(openssl_decrypt(dir.path(), &http, key), full, "HTTP ciphertext decrypts to the full profile");
    // Firmware older than md5_before_firmware (from the User-Agent) gets MD5 key derivation; newer gets SHA-256.
    let url = format!("{}{path}", server.http);
    let (_, _, old) = server.curl(&["-A", &format!("Cisco-CP-8841-3PCC/11.0.1 ({MAC_A})"), &url]);
    assert_eq!(openssl_decrypt_md(dir.path(), &old, key, "md5"), full);
    let (_, _, new) = server.curl(&["-A", &format!("Cisco-CP-8841-3PCC/12.0.1 ({MAC_A})"), &url]);
    assert_eq!(new, http);
    // Both TFTP clients get the same bytes (encryption is deterministic per key and text).
    assert_eq!(server.tftp_hpa(&path), http);
    assert_eq!(server.atftp(path.trim_start_matches('/')), http);
    // Without the key, the URL is only ciphertext; a wrong token is 404.
    assert!(!text(&http).contains("secret-201"));
    assert_eq!(server.get("/profile/00000000000000000000dead/profile.cfg").0, 404);
    // Trust lists are "not found" over both protocols; unknown files too.
    assert_eq!(server.get(&format!("/CTLSEP{}.tlv", MAC_A.to_uppercase())).0, 404);
    let o = peer(
        "tftp",
        &["127.0.0.1", &server.tftp.to_string(), "-c", "get", "ITLFile.tlv", s(&dir.path().join("itl"))],
        None,
    );
    assert!(text(&o.stdout).contains("File not found") || text(&o.stderr).contains("File not found"), "{o:?}");
    // The audit log recorded the fetches with their hash.
    let shown = server.show_when(MAC_A, |s| s.contains("over tftp"));
    let sha = text(&peer("sha256sum", &[], Some(&http)).stdout).split(' ').next().unwrap().to_string();
    assert!(shown.contains("last served  profile/********/profile.cfg over tftp"), "paths are masked: {shown}");
    assert!(!shown.contains(token), "{shown}");
    assert!(shown.contains(&format!("(sha256 {sha})")), "the served hash is the served bytes' SHA-256: {shown}");
    let audit = text(&ok(provisor(&["device", "--data-dir", &server.data(), "audit", MAC_A])).stdout);
    let last: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(last["protocol"], "tftp");
    assert_eq!(last["status"], 200);
    assert_eq!(last["hash"], sha.as_str());
    assert_eq!(last["bytes"], http.len());
    assert!(last["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    let all = text(&ok(provisor(&["device", "--data-dir", &server.data(), "audit", "--limit", "1000"])).stdout);
    assert!(all.contains("\"status\":404") && all.contains("ITLFile.tlv"), "every request is recorded: {all}");
    // The server's own log (HTTP access lines, TFTP transfer lines) never shows the random path.
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("profile/********/profile.cfg") && !log.contains(token), "{log}");
}

#[test]
fn rfc8188_profiles_carry_content_encoding_and_decrypt_with_http_ece() {
    let (_dir, _pki, server) =
        setup("[provisioning]\nencryption = \"aes128gcm\"\ndigest_by_model = { \"CP-7832-3PCC\" = \"md5\" }\n");
    let secrets = server.secrets(MAC_B);
    let (ikm, token, key) = (
        secrets["ikm"].as_str().unwrap(),
        secrets["path_token"].as_str().unwrap(),
        secrets["aes_key"].as_str().unwrap(),
    );
    let path = format!("/profile/{token}/profile.cfg");
    let (status, headers, body) = server.get(&path);
    assert_eq!(status, 200);
    assert!(headers.contains("content-encoding: aes128gcm"), "{headers}");
    let script = "import sys,gzip,http_ece\nikm=bytes.fromhex(sys.argv[1])\nd=http_ece.decrypt(sys.stdin.buffer.read(),key=ikm)\nsys.stdout.buffer.write(gzip.decompress(d))";
    let o = peer("python3", &["-c", script, ikm], Some(&body));
    assert!(o.status.success(), "http_ece: {}", text(&o.stderr));
    let plain = text(&o.stdout);
    assert!(
        plain.contains(&format!("<IKM_HTTP_Encrypt_Content ua=\"na\">{ikm}</IKM_HTTP_Encrypt_Content>")),
        "{plain}"
    );
    assert!(plain.contains("secret-202"));
    // TFTP has no headers: it gets AES-256-CBC, here with the MD5 key derivation configured for this model.
    let tftp = server.tftp_hpa(&path);
    assert!(tftp.starts_with(b"Salted__"));
    assert_eq!(text(&openssl_decrypt_md(&server.dir, &tftp, key, "md5")), plain);
}

#[test]
fn syslog_and_reports_show_up_in_device_show_with_drift() {
    let (dir, pki, server) = setup("");
    let cert_a = pki.phone("phone-a", MAC_A, "CP-8841-3PCC", "FCH0001");
    let key = server.secrets(MAC_A)["aes_key"].as_str().unwrap().to_string();
    let (status, _, _) = server.curl(&[
        "-A",
        &format!("Cisco-CP-8841-3PCC/12.0.1 ({MAC_A})"),
        "--cacert",
        s(&dir.path().join("data/tls/ca.pem")),
        "--cert",
        s(&cert_a.0),
        "--key",
        s(&cert_a.1),
        &format!("{}/{MAC_A}.xml", server.https),
    ]);
    assert_eq!(status, 200);
    // A syslog line as the phone's Log_Failure_Msg writes it, from the CLI's bash-free peer: python.
    let line = "<11>Nov 23 10:00:00 CP-8841-3PCC 00:0e:08:aa:bb:01 -- Resync failed: http_get failed";
    let send = format!(
        "import socket;socket.socket(socket.AF_INET,socket.SOCK_DGRAM).sendto(b'{line}',('127.0.0.1',{}))",
        server.syslog
    );
    assert!(peer("python3", &["-c", &send], None).status.success());
    // A report whose User_ID_1_ differs from what was served, encrypted with the device key, POSTed like a phone.
    let report =
        "<flat-profile><User_ID_1_>999</User_ID_1_><Password_1_>secret-201</Password_1_></flat-profile>".to_string();
    let plain = dir.path().join("report.xml");
    std::fs::write(&plain, report).unwrap();
    let enc = dir.path().join("report.enc");
    let o =
        peer("openssl", &["enc", "-aes-256-cbc", "-md", "sha256", "-k", &key, "-in", s(&plain), "-out", s(&enc)], None);
    assert!(o.status.success());
    let (status, _, body) =
        server.curl(&["--data-binary", &format!("@{}", s(&enc)), &format!("{}/report/{MAC_A}.xml", server.http)]);
    assert_eq!(status, 200, "{}", text(&body));
    // Garbage is refused and logged.
    let (status, _, _) =
        server.curl(&["-X", "PUT", "--data-binary", "nonsense", &format!("{}/report/{MAC_A}.xml", server.http)]);
    assert_eq!(status, 400);
    let deadline = Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let shown = server.show(MAC_A);
        if shown.contains("Resync failed") && shown.contains("drift ") || Instant::now() > deadline {
            break shown;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(shown.contains("syslog") && shown.contains("Resync failed: http_get failed"), "{shown}");
    assert!(shown.contains("firmware     12.0.1"), "{shown}");
    assert!(shown.contains("User_ID_1_: served \"201\", reported \"999\""), "{shown}");
    assert!(!shown.contains("Password_1_: served"), "an unchanged secret is no drift: {shown}");
    assert!(shown.contains("report") && shown.contains("last served"), "{shown}");
}

#[test]
fn key_rotation_takes_effect_at_the_next_resync_without_losing_the_phone() {
    let (dir, _pki, server) = setup("");
    let old = server.secrets(MAC_A);
    let (old_key, old_token) =
        (old["aes_key"].as_str().unwrap().to_string(), old["path_token"].as_str().unwrap().to_string());
    ok(provisor(&["device", "--data-dir", &server.data(), "set", MAC_A, "--rotate-keys"]));
    let new = server.secrets(MAC_A);
    let (new_key, new_token) =
        (new["aes_key"].as_str().unwrap().to_string(), new["path_token"].as_str().unwrap().to_string());
    assert_ne!(old_key, new_key);
    // The phone still resyncs at its old path with its old key, and gets the new key and path inside (once the
    // server noticed the change: it checks every 250 ms).
    let deadline = Instant::now() + Duration::from_secs(10);
    let inner = loop {
        let (status, _, body) = server.get(&format!("/profile/{old_token}/profile.cfg"));
        assert_eq!(status, 200);
        let inner = text(&openssl_decrypt(dir.path(), &body, &old_key));
        if inner.contains(&new_key) || Instant::now() > deadline {
            break inner;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        inner.contains(&format!(">{new_key}</GPP_SA>")) && inner.contains(&format!(">{new_token}</GPP_B>")),
        "{inner}"
    );
    // Its next resync uses the new ones; then the old path is gone.
    let (status, _, body) = server.get(&format!("/profile/{new_token}/profile.cfg"));
    assert_eq!(status, 200);
    assert_eq!(text(&openssl_decrypt(dir.path(), &body, &new_key)), inner);
    // The server notices the forgotten secrets at its next refresh (every 250 ms).
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get(&format!("/profile/{old_token}/profile.cfg")).0 != 404 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.get(&format!("/profile/{old_token}/profile.cfg")).0, 404);
    assert!(server.secrets(MAC_A)["previous"].is_null());
}

#[test]
fn enterprise_files_firmware_ranges_auth_and_rate_limits() {
    let (dir, _pki, server) = setup(
        "[provisioning]\nhttp_user = \"phone\"\nhttp_password = \"pw\"\nunknown_devices = \"deny\"\n[limits]\nfailed_lookups_per_minute = 5\n",
    );
    ok(provisor(&["group", "--data-dir", &server.data(), "set", "defaults", "--param", "Proxy_1_=cucm.example.com"]));
    // An enterprise phone (CUCM firmware: no -3PCC in its model) gets SEP<MAC>.cnf.xml with its line password.
    ok(provisor(&[
        "device",
        "--data-dir",
        &server.data(),
        "add",
        MAC_E,
        "--model",
        "CP-8841",
        "--param",
        "User_ID_1_=201",
        "--param",
        "Password_1_=secret-201",
    ]));
    let firmware: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("firmware/sip88xx.12-0-1MPP-BN.loads"), &firmware).unwrap();
    // Profiles need authentication over HTTP (Basic or Digest); TFTP has none.
    let sep = format!("/SEP{}.cnf.xml", MAC_E.to_uppercase());
    let (status, headers, _) = server.get(&sep);
    assert_eq!(status, 401);
    assert!(headers.contains("www-authenticate: digest") && headers.contains("www-authenticate: basic"), "{headers}");
    let url = format!("{}{sep}", server.http);
    for mode in ["--digest", "--basic"] {
        let (status, _, body) = server.curl(&[mode, "-u", "phone:pw", &url]);
        assert_eq!(status, 200, "{mode}");
        let t = text(&body);
        assert!(t.contains("<authPassword>secret-201</authPassword>") && t.contains("<name>201</name>"), "{t}");
    }
    assert_eq!(server.curl(&["--digest", "-u", "phone:wrong", &url]).0, 401);
    // HTTP/1.0 clients get a Content-Length (no chunking).
    let (status, headers, body) = server.curl(&["-0", "-u", "phone:pw", &url]);
    assert_eq!(status, 200);
    assert!(headers.starts_with("http/1.0 200") || headers.starts_with("http/1.1 200"), "{headers}");
    assert!(headers.contains(&format!("content-length: {}", body.len())), "{headers}");
    // A HEAD gets the same Content-Length and no body, and a refusal carries one too (hyper writes it from the
    // body's size).
    let (status, head, _) = server.curl(&["--head", "-u", "phone:pw", &url]);
    assert_eq!(status, 200);
    assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
    let (status, headers, refusal) = server.curl(&["-u", "phone:wrong", &url]);
    assert_eq!(status, 401);
    assert!(!refusal.is_empty() && headers.contains(&format!("content-length: {}", refusal.len())), "{headers}");
    let tftp_sep = server.tftp_hpa(&sep);
    assert!(text(&tftp_sep).contains("<device>"));
    let default = text(&server.atftp("xmlDefault.CNF.XML"));
    // The call-control server of the site (the `defaults` group), not the provisioning host.
    assert!(
        default.contains("<Default>") && default.contains("<processNodeName>cucm.example.com</processNodeName>"),
        "{default}"
    );
    assert!(!default.contains("127.0.0.1"), "{default}");
    // Firmware over HTTP with ranges and over TFTP.
    let fw = format!("{}/firmware/sip88xx.12-0-1MPP-BN.loads", server.http);
    let (status, headers, body) = server.curl(&["-r", "1000-1999", &fw]);
    assert_eq!(status, 206);
    assert!(headers.contains("content-range: bytes 1000-1999/100000"), "{headers}");
    assert_eq!(body, firmware[1000..2000]);
    assert_eq!(server.curl(&[&fw]).2, firmware);
    assert_eq!(server.tftp_hpa("/firmware/sip88xx.12-0-1MPP-BN.loads"), firmware);
    // MAC enumeration: unknown devices are denied, and after 5 failures the address gets 429.
    let mut statuses = Vec::new();
    for i in 0..7 {
        statuses.push(server.curl(&["-u", "phone:pw", &format!("{}/0000000000{i:02}.xml", server.http)]).0);
    }
    assert_eq!(statuses, [404, 404, 404, 404, 404, 429, 429]);
    // Metrics are on the admin listener, described (HELP and TYPE), with latency histograms per protocol; the
    // phones' ports do not serve them.
    let metrics = server.metrics();
    for line in [
        "# HELP provisor_requests_total ",
        "# TYPE provisor_requests_total counter",
        "# TYPE provisor_request_duration_seconds histogram",
        "provisor_request_duration_seconds_bucket{protocol=\"http\",le=\"0.005\"}",
        "provisor_request_duration_seconds_count{protocol=\"tftp\"}",
        "# TYPE provisor_cache_hits_total counter",
        "provisor_renders_total{kind=",
        "provisor_rate_limited_total{protocol=\"http\"} 2",
    ] {
        assert!(metrics.contains(line), "{line}:\n{metrics}");
    }
    // (This address is rate-limited by now: 429; any other would get 404.)
    let (status, _, body) = server.get("/metrics");
    assert!(status != 200 && !text(&body).contains("provisor_requests_total"), "metrics on the phones' port");
    assert_eq!(server.curl(&[&format!("{}/healthz", server.admin)]).2, b"ok\n");
}

#[test]
fn unknown_phones_can_be_enrolled_from_their_certificate() {
    let (_dir, pki, server) = setup("[provisioning]\nunknown_devices = \"enrol\"\n");
    let new_mac = "000e08aabb77";
    let cert = pki.phone("new-phone", new_mac, "CP-6841-3PCC", "FCH7777");
    let (status, _, body) = server.get_tls("/V03.xml", Some(&cert));
    assert_eq!(status, 200);
    assert!(text(&body).contains("GPP_SA"), "{}", text(&body));
    let shown = server.show(new_mac);
    assert!(shown.contains("CP-6841-3PCC") && shown.contains("FCH7777"), "{shown}");
}

#[test]
fn killing_the_server_during_an_import_loses_nothing_and_serves_the_same_bytes() {
    let (dir, _pki, server) = setup("");
    let token = server.secrets(MAC_A)["path_token"].as_str().unwrap().to_string();
    let path = format!("/profile/{token}/profile.cfg");
    let before = server.get(&path).2;
    assert!(before.starts_with(b"Salted__"));
    let csv = |prefix: u8| {
        let mut csv = String::from("mac,model,User_ID_1_\n");
        for i in 0..10_000u32 {
            let (a, b, c) = (i >> 16, (i >> 8) & 255, i & 255);
            csv.push_str(&format!("{prefix:02x}:00:00:{a:02x}:{b:02x}:{c:02x},CP-7841,{}\n", 1000 + i));
        }
        let path = dir.path().join(format!("devices-{prefix}.csv"));
        std::fs::write(&path, csv).unwrap();
        path
    };
    let (first, second) = (csv(0x10), csv(0x20));
    let data = server.data();
    // An importer killed half-way commits nothing (or, if it was quick, everything).
    let mut importer = Command::new(env!("CARGO_BIN_EXE_provisor"))
        .args(["device", "--data-dir", &data, "import", s(&first)])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let _ = importer.kill();
    let _ = importer.wait();
    let count = |data: &str| {
        let out = ok(provisor(&["device", "--data-dir", data, "list", "--json"]));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap().as_array().unwrap().len()
    };
    let n = count(&data);
    assert!(n == 2 || n == 10_002, "all or nothing, got {n}");
    // Now the server is killed (SIGKILL) while a full import runs; the import commits.
    let importer = Command::new(env!("CARGO_BIN_EXE_provisor"))
        .args(["device", "--data-dir", &data, "import", s(&second)])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let dir_path = server.dir.clone();
    // The restart listens on the same ports (they are in the rendered URLs).
    let same_ports = BASE_CONFIG
        .to_string()
        .replace(
            "[http]\nlisten = \"127.0.0.1:0\"",
            &format!("[http]\nlisten = \"{}\"", server.http.trim_start_matches("http://")),
        )
        .replace(
            "[https]\nlisten = \"127.0.0.1:0\"",
            &format!("[https]\nlisten = \"{}\"", server.https.trim_start_matches("https://")),
        )
        .replace("[tftp]\nlisten = \"127.0.0.1:0\"", &format!("[tftp]\nlisten = \"127.0.0.1:{}\"", server.tftp))
        .replace("[syslog]\nlisten = \"127.0.0.1:0\"", &format!("[syslog]\nlisten = \"127.0.0.1:{}\"", server.syslog));
    drop(server); // kill -9
    let out = importer.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(count(&data), n + 10_000);
    let server = Server::start_with(&dir_path, &same_ports);
    assert_eq!(server.get(&path).2, before, "same bytes after the restart");
    let (status, _, body) = server.get("/SEP20000000270F.cnf.xml");
    assert_eq!(status, 200, "{}", text(&body));
}

/// `provisor serve` with no configuration: the demo on its fixed loopback ports, tried with the commands it prints.
/// The test stops reading the server's log after the banner: a closed log pipe must not fail a request.
#[test]
fn the_demo_works_as_its_banner_says() {
    let dir = tempfile::tempdir().unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(
        Command::new(env!("CARGO_BIN_EXE_provisor"))
            .current_dir(dir.path())
            .args(["serve"])
            .env_remove("PROVISOR_DATA_DIR")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let mut banner = String::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        banner.push_str(&line);
        banner.push('\n');
        if line.starts_with("Stop with") || line.contains(" ERROR ") || line.contains("provisor:") {
            break;
        }
    }
    let run = |needle: &str| -> String {
        let line = banner.lines().find(|l| l.trim_start().starts_with(needle)).unwrap_or_else(|| panic!("{banner}"));
        let bin = Path::new(env!("CARGO_BIN_EXE_provisor")).parent().unwrap();
        let script = format!("set -o pipefail; cd {}; PATH={}:$PATH; {}", s(dir.path()), s(bin), line.trim());
        let o = peer("bash", &["-c", &script], None);
        assert!(o.status.success(), "{line}: {}", text(&o.stderr));
        text(&o.stdout)
    };
    let bootstrap = run("curl -A");
    assert!(bootstrap.contains("Profile_Rule") && !bootstrap.contains("GPP_SA"), "{bootstrap}");
    let full = run("curl --cacert");
    assert!(full.contains("GPP_SA") && full.contains("demo-secret-201"), "{full}");
    let decrypted = run("curl -s http");
    assert_eq!(decrypted, full, "the encrypted resync URL decrypts to the same profile");
    run("echo '<14>");
    // The banner's `device show` runs beside the server; the syslog line shows once the journal has written it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let shown = run("provisor device");
        if shown.contains("Resync failed: demo") || Instant::now() > deadline {
            break shown;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(shown.contains("Resync failed: demo") && shown.contains("last served"), "{shown}");
    drop(child);
}

/// The phone simulator provisions against `provisor serve` end to end: TFTP bootstrap → HTTPS with its client
/// certificate → key and random path handed over → encrypted resyncs over plain HTTP and TFTP → firmware upgrade →
/// reports uploaded over TFTP and HTTP; and the server's view of the device matches.
#[test]
fn a_simulated_phone_goes_through_the_whole_secure_flow() {
    let (dir, pki, server) = setup("");
    let cert = pki.phone("phone-a", MAC_A, "CP-8841-3PCC", "FCH0001");
    // A second encrypted profile over TFTP (the same file: the server names it by the random path in GPP_B), and
    // two reports: the configuration over TFTP, the changes since the last report over HTTP.
    let tftp_base = format!("tftp://127.0.0.1:{}", server.tftp);
    ok(provisor(&[
        "device",
        "--data-dir",
        &server.data(),
        "set",
        MAC_A,
        "--param",
        &format!("Profile_Rule_B=[--key $SA]{tftp_base}/profile/$B/profile.cfg"),
        "--param",
        &format!(
            "Report_Rule=[--key $SA]{tftp_base}/report/$MA.xml [--delta --key $SA]{}/report/$MA-delta.xml",
            server.http
        ),
    ]));
    std::fs::write(dir.path().join("firmware/sip88xx.12-0-1MPP-BN.loads"), vec![7u8; 300_000]).unwrap();
    let out = provisor(&[
        "phone",
        "simulate",
        "--mac",
        MAC_A,
        "--model",
        "CP-8841-3PCC",
        "--firmware",
        "sip88xx.11-0-1MPP",
        "--dhcp-tftp",
        &format!("127.0.0.1:{}", server.tftp),
        "--ca",
        s(&dir.path().join("data/tls/ca.pem")),
        "--cert",
        s(&cert.0),
        "--cert-key",
        s(&cert.1),
        "--for",
        "5h",
        "--speed",
        "7200",
        "--report",
    ]);
    let timeline = text(&out.stdout);
    assert!(out.status.success(), "{timeline}\n{}", text(&out.stderr));
    let find = |needle: &str| timeline.find(needle).unwrap_or_else(|| panic!("{needle:?} missing from:\n{timeline}"));
    let tftp = find(&format!("fetches tftp://127.0.0.1:{}/8841.xml", server.tftp));
    let https = find(&format!("fetches {}/{MAC_A}.xml", server.https));
    let key = find("GPP_SA");
    let encrypted = find("/profile/");
    let decrypted = find("(AesCbc");
    let upgrade = find("rebooting into it");
    let encrypted_tftp = find(&format!("Profile_Rule_B: alternative 1 fetches {tftp_base}/profile/"));
    let report = find("Report_Rule: TFTP write of the configuration report");
    let delta = find("Report_Rule: POST of the delta report");
    assert!(tftp < https && https < key && key < encrypted && encrypted < decrypted, "{timeline}");
    assert!(encrypted_tftp > key, "{timeline}");
    assert!(
        timeline[encrypted_tftp..]
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("Profile_Rule_B: 200") && l.contains("(AesCbc")),
        "the TFTP profile decrypted: {timeline}"
    );
    assert!(upgrade > https && report > https && delta > report, "{timeline}");
    assert_eq!(timeline.matches("took the report (200)").count(), timeline.matches("Report_Rule: ").count() / 2);
    assert!(!timeline.contains("failed") && !timeline.contains("not retried"), "{timeline}");
    // The journal is written behind the responses: wait for the last of what this test reads (the TFTP fetch, then the
    // delta report).
    let shown = server.show_when(MAC_A, |s| {
        s.contains("firmware     12.0.1")
            && s.contains("profile.cfg over tftp")
            && s.contains(&format!("report   {MAC_A}-delta.xml: 0 parameters"))
    });
    assert!(shown.contains("firmware     12.0.1"), "the upgraded phone's User-Agent: {shown}");
    // The fleet list sees it too: seen just now, on the new load.
    let listed = ok(provisor(&["device", "--data-dir", &server.data(), "list", "--firmware", "12.0.1", "--json"]));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!((listed[0]["mac"].as_str(), listed[0]["state"].as_str()), (Some(MAC_A), Some("ok")), "{listed}");
    assert!(listed[0]["last_seen"].as_str().is_some_and(|t| t.ends_with('Z')), "{listed}");
    assert!(shown.contains("profile.cfg over tftp"), "{shown}");
    assert!(shown.contains("drift        none"), "{shown}");
    assert!(shown.contains("Successful resync"), "its syslog lines arrived: {shown}");
    assert!(shown.contains(&format!("report   {MAC_A}.xml: 12 parameters (AesCbc")), "over TFTP: {shown}");
    assert!(shown.contains(&format!("report   {MAC_A}-delta.xml: 0 parameters")), "over HTTP: {shown}");
}

/// The simulator depends on no Provisor quirk: tftpd-hpa and Python's http.server serving static files, with a
/// profile encrypted by the openssl CLI; a report written to tftpd-hpa on a SIP NOTIFY; `--srv` looked up at dnsmasq.
#[test]
fn a_simulated_phone_provisions_from_static_third_party_servers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let (tftp_port, http_port) = (free_port(), {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let mac = "000e08cafe01";
    std::fs::write(
        root.join("8841.xml"),
        format!(
            "<flat-profile><GPP_SA>openssl-key</GPP_SA><Resync_Periodic>600</Resync_Periodic>\
             <Report_Rule>tftp://127.0.0.1:{tftp_port}/report-$MA.xml</Report_Rule>\
             <Profile_Rule>[--key $SA] http://127.0.0.1:{http_port}/cfg/$MA.cfg</Profile_Rule></flat-profile>"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("cfg")).unwrap();
    let plain = root.join("plain.xml");
    std::fs::write(&plain, "<flat-profile><User_ID_1_>4242</User_ID_1_></flat-profile>").unwrap();
    let gz = peer("gzip", &["-c", s(&plain)], None);
    let gz_path = root.join("plain.xml.gz");
    std::fs::write(&gz_path, gz.stdout).unwrap();
    let enc = root.join(format!("cfg/{mac}.cfg"));
    let o = peer(
        "openssl",
        &["enc", "-e", "-aes-256-cbc", "-md", "sha256", "-k", "openssl-key", "-in", s(&gz_path), "-out", s(&enc)],
        None,
    );
    assert!(o.status.success());
    let _tftpd = Kill(
        Command::new("/usr/sbin/in.tftpd")
            // -c: write requests may create files (the report).
            .args(["-L", "-c", "-a", &format!("127.0.0.1:{tftp_port}"), "-s", s(&root), "-u", "root"])
            .stderr(Stdio::null())
            .spawn()
            .expect("tftpd-hpa is missing (see .ci/test)"),
    );
    let _http = Kill(
        Command::new("python3")
            .args(["-m", "http.server", &http_port.to_string(), "--bind", "127.0.0.1", "--directory", s(&root)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3"),
    );
    std::thread::sleep(Duration::from_millis(700));
    let out = provisor(&[
        "phone",
        "simulate",
        "--mac",
        mac,
        "--dhcp-tftp",
        &format!("127.0.0.1:{tftp_port}"),
        "--for",
        "30m",
        "--speed",
        "1200",
        "--event",
        "20m:notify:report",
    ]);
    let timeline = text(&out.stdout);
    assert!(out.status.success(), "{timeline}");
    assert!(timeline.contains("8841.xml") && timeline.contains("4 parameter(s) changed"), "{timeline}");
    assert!(timeline.contains(&format!("cfg/{mac}.cfg (--key)")), "{timeline}");
    assert!(timeline.contains("(AesCbc") && timeline.contains("1 parameter(s) changed: User_ID_1_"), "{timeline}");
    assert!(timeline.contains("SIP NOTIFY Event: report") && timeline.contains("took the report"), "{timeline}");
    let report = std::fs::read_to_string(root.join(format!("report-{mac}.xml"))).expect("the report reached tftpd-hpa");
    assert!(report.contains(">4242</User_ID_1_>") && report.contains("<GPP_SA ua=\"na\">openssl-key"), "{report}");

    // --srv: the host's SRV records at a real DNS server (dnsmasq); the lowest priority wins.
    let dns_port = free_port();
    let _dns = Kill(
        Command::new("/usr/sbin/dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                &format!("--port={dns_port}"),
                "--user=root",
                "--pid-file",
                "--host-record=www.prov.test,127.0.0.1",
                &format!("--srv-host=_ciscoprov-http._tcp.prov.test,www.prov.test,{http_port},10,5"),
                "--srv-host=_ciscoprov-http._tcp.prov.test,www.prov.test,9,20,5",
            ])
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq is missing (see .ci/test)"),
    );
    wait_for_dns(dns_port);
    let state = dir.path().join("state.xml");
    std::fs::write(&state, "<flat-profile><GPP_SA>openssl-key</GPP_SA></flat-profile>").unwrap();
    let out = provisor(&[
        "phone",
        "explain",
        "--mac",
        mac,
        "--state",
        s(&state),
        "--server",
        "[--srv --key $SA] http://prov.test/cfg/$MA.cfg",
        "--dns",
        &format!("127.0.0.1:{dns_port}"),
        "--for",
        "10m",
    ]);
    let t = text(&out.stdout);
    assert!(out.status.success(), "{t}\n{}", text(&out.stderr));
    assert!(t.contains("at the SRV target of _ciscoprov-http._tcp.prov.test"), "{t}");
    assert!(t.contains("1 parameter(s) changed: User_ID_1_"), "{t}");
}

/// A proxy's SIP NOTIFY (SIPp, a real SIP peer) is challenged by the simulated phone and, answered with line 1's
/// credentials, makes it resync at once; wrong credentials change nothing.
#[test]
fn a_sip_notify_from_sipp_is_challenged_then_resyncs_the_phone() {
    let dir = tempfile::tempdir().unwrap();
    let http_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        dir.path().join("p.xml"),
        format!(
            "<flat-profile><User_ID_1_>2001</User_ID_1_><Password_1_>pw-2001</Password_1_>\
             <Resync_Periodic>86400</Resync_Periodic><Profile_Rule>http://127.0.0.1:{http_port}/p.xml</Profile_Rule>\
             </flat-profile>"
        ),
    )
    .unwrap();
    let _http = Kill(
        Command::new("python3")
            .args(["-m", "http.server", &http_port.to_string(), "--bind", "127.0.0.1", "--directory", s(dir.path())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3"),
    );
    std::thread::sleep(Duration::from_millis(700));
    let sip_port = free_port();
    let phone = Command::new(env!("CARGO_BIN_EXE_provisor"))
        .args(["phone", "simulate", "--mac", "000e08aabbcc", "--server"])
        .arg(format!("http://127.0.0.1:{http_port}/p.xml"))
        .args(["--sip", &format!("127.0.0.1:{sip_port}"), "--for", "10h", "--speed", "3600"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/notify-resync.xml");
    let sipp = |password: &str, local_port: u16| {
        peer(
            "sipp",
            &[
                "-sf",
                scenario,
                "-m",
                "1",
                "-s",
                "2001",
                "-au",
                "2001",
                "-ap",
                password,
                "-i",
                "127.0.0.1",
                "-p",
                &local_port.to_string(),
                &format!("127.0.0.1:{sip_port}"),
                "-timeout",
                "5",
                "-timeout_error",
                "-nostdin",
                "-recv_timeout",
                "2000",
            ],
            None,
        )
    };
    let wrong = sipp("not-the-password", free_port());
    assert!(!wrong.status.success(), "wrong credentials are refused: {wrong:?}");
    let right = sipp("pw-2001", free_port());
    assert!(right.status.success(), "SIPp got 401 then 200: {}", text(&right.stdout));
    let out = phone.wait_with_output().unwrap();
    let timeline = text(&out.stdout);
    assert!(out.status.success(), "{timeline}\n{}", text(&out.stderr));
    assert!(timeline.contains("SIP NOTIFY Event: resync: wrong credentials (401)"), "{timeline}");
    let request = timeline.find("resync (request), $PRVST=-1").unwrap_or_else(|| panic!("{timeline}"));
    assert!(timeline.find("authenticated with line 1's credentials (200)").is_some_and(|a| a < request), "{timeline}");
    assert_eq!(timeline.matches("resync (request)").count(), 1, "{timeline}");
    assert!(timeline[request..].contains("Profile_Rule: 200"), "{timeline}");
}

#[test]
fn loadtest_boots_phones_through_every_stage_and_draws_the_chart() {
    let (dir, _pki, server) = setup("");
    std::fs::write(dir.path().join("firmware/sip88xx.12-0-1MPP-BN.loads"), vec![1u8; 50_000]).unwrap();
    let mut csv = String::from("mac,model\n");
    for i in 0..40 {
        csv.push_str(&format!("0c:00:00:00:00:{i:02x},CP-8841-3PCC\n"));
    }
    std::fs::write(dir.path().join("load.csv"), csv).unwrap();
    ok(provisor(&["device", "--data-dir", &server.data(), "import", s(&dir.path().join("load.csv"))]));
    let chart = dir.path().join("chart.svg");
    let out = provisor(&[
        "loadtest",
        "--dhcp-tftp",
        &format!("127.0.0.1:{}", server.tftp),
        "--phones",
        "40",
        "--first-mac",
        "0c:00:00:00:00:00",
        "--boot-window",
        "1s",
        "--ca",
        s(&dir.path().join("data/tls/ca.pem")),
        "--client-ca-cert",
        s(&dir.path().join("test-ca.pem")),
        "--client-ca-key",
        s(&dir.path().join("test-ca.key")),
        "--chart",
        s(&chart),
    ]);
    let summary = text(&out.stdout);
    assert!(out.status.success(), "{summary}\n{}", text(&out.stderr));
    assert!(summary.contains("provisioned 40\nfailed 0"), "{summary}");
    // Three profile fetches per phone, plus the site CA its bootstrap's Custom_CA_Rule installs and the firmware its
    // profile's Upgrade_Rule asks for.
    for p in ["tftp 40 0", "https 40 0", "http 120 0"] {
        assert!(summary.contains(p), "{p}: {summary}");
    }
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("40 phones"), "{svg}");
    // The server saw every phone fetch its encrypted profile.
    let shown = server.show_when("0c0000000027", |s| s.contains("profile.cfg over http"));
    assert!(shown.contains("profile.cfg over http"), "{shown}");
}

/// `provisor phone explain ... | head` ends quietly when the reader goes away (SIGPIPE), without a panic message.
#[test]
fn sigterm_lets_downloads_in_progress_finish_then_exits_cleanly() {
    use std::io::{Read, Write};
    let (dir, _pki, mut server) = setup("");
    // 20 MB: more than the kernel's socket buffers hold, so the server is still sending while the client waits.
    let firmware: Vec<u8> = (0..20_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("firmware/big.loads"), &firmware).unwrap();
    let mut client = std::net::TcpStream::connect(server.http.trim_start_matches("http://")).unwrap();
    client.write_all(b"GET /firmware/big.loads HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut first = vec![0u8; 100_000];
    client.read_exact(&mut first).unwrap();
    // A TFTP transfer of the same file (tftp-hpa, lock-step: 39,063 blocks) is in progress too.
    let tftp_out = dir.path().join("tftp.loads");
    let tftp = std::process::Command::new("tftp")
        .args(["127.0.0.1", &server.tftp.to_string(), "-m", "binary", "-c", "get", "/firmware/big.loads"])
        .arg(s(&tftp_out))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&tftp_out).map_or(0, |m| m.len()) < 100_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill(2) with the pid of a child this test started and still owns.
    assert_eq!(unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) }, 0);
    // New connections are refused, while the download goes on.
    let address = server.http.trim_start_matches("http://").to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(&address).is_ok() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(std::net::TcpStream::connect(&address).is_err(), "no new connection once stopping");
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    first.extend_from_slice(&rest);
    let at = first.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(first.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&first[..at]));
    assert!(first[at..] == firmware[..], "the download in progress finished whole");
    let mut tftp = tftp;
    assert!(tftp.wait().unwrap().success());
    assert!(std::fs::read(&tftp_out).unwrap() == firmware, "the TFTP transfer in progress finished whole");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "exit {status:?}");
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("stopping"), "{log}");
    // The journal wrote what was queued: both downloads are in the audit log.
    let audit = std::fs::read_to_string(dir.path().join("data/audit.log")).unwrap();
    assert_eq!(audit.lines().filter(|l| l.contains("big.loads") && l.contains("\"status\":200")).count(), 2, "{audit}");
}

#[test]
fn a_server_in_memory_writes_nothing_to_its_directory_and_cleans_up_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("firmware")).unwrap();
    Pki::new(dir.path(), "test-ca");
    let config = BASE_CONFIG.replace("data_dir = \"data\"", "data_dir = \":memory:\"");
    let mut server = Server::start_with(dir.path(), &config);
    // No device is known: the bootstrap profile, over HTTP and TFTP, from memory.
    let (status, _, body) = server.get(&format!("/{MAC_A}.xml"));
    assert_eq!(status, 200);
    assert!(text(&body).contains("Profile_Rule"), "{}", text(&body));
    assert_eq!(server.tftp_hpa(&format!("/{MAC_A}.xml")), body);
    let log = server.log.lock().unwrap().clone();
    let keys = log
        .lines()
        .find_map(|l| l.split_once("generated keys in ").map(|(_, d)| d.trim_end_matches(')').to_string()))
        .unwrap_or_else(|| panic!("the banner names where the generated keys are: {log}"));
    assert!(std::path::Path::new(&keys).join("tls/ca.pem").exists(), "{keys}");
    // SAFETY: kill(2) with the pid of a child this test started and still owns.
    assert_eq!(unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) }, 0);
    assert!(server.child.wait().unwrap().success());
    assert!(!std::path::Path::new(&keys).exists(), "the temporary directory is removed at exit");
    let mut left: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    // Only what the test itself wrote (curl headers, tftp output) is there: no data directory, inventory or log.
    let server_files = ["data", ":memory:", "inventory.sqlite", "audit.log", "tls", "uploads"];
    assert!(left.iter().all(|n| !server_files.contains(&n.as_str())), "{left:?}");
}

#[test]
fn x_forwarded_for_names_the_phone_only_behind_trusted_proxies() {
    let audit_clients = |dir: &Path| -> Vec<String> {
        let audit = std::fs::read_to_string(dir.join("data/audit.log")).unwrap_or_default();
        audit
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["client"].to_string())
            .collect()
    };
    let fetch = |server: &Server| {
        let out = peer(
            "curl",
            &[
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                "X-Forwarded-For: 203.0.113.7",
                &format!("{}/{MAC_A}.xml", server.http),
            ],
            None,
        );
        text(&out.stdout)
    };
    // Without trusted proxies the header is anyone's claim: ignored.
    let (dir, _pki, server) = setup("");
    assert_eq!(fetch(&server), "200");
    let deadline = Instant::now() + Duration::from_secs(10);
    while audit_clients(dir.path()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(audit_clients(dir.path()).iter().all(|c| c.starts_with("\"127.0.0.1:")), "{:?}", audit_clients(dir.path()));
    drop(server);
    // Behind a trusted proxy (loopback here), the phone's address is what the audit log and the limits see.
    let (dir, _pki, server) = setup("[limits]\ntrusted_proxies = [\"127.0.0.0/8\"]\n");
    assert_eq!(fetch(&server), "200");
    let deadline = Instant::now() + Duration::from_secs(10);
    while audit_clients(dir.path()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        audit_clients(dir.path()).iter().all(|c| c.starts_with("\"203.0.113.7:")),
        "{:?}",
        audit_clients(dir.path())
    );
}

#[test]
fn log_json_makes_every_line_json_banner_and_access_log_included() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("firmware")).unwrap();
    Pki::new(dir.path(), "test-ca");
    std::fs::write(dir.path().join("provisor.toml"), BASE_CONFIG).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisor"))
        .args(["serve", "--config", s(&dir.path().join("provisor.toml")), "--log", "json"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let mut http = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    // The banner, then one request and its access-log line.
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else { break };
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\nbefore: {lines:#?}"));
        let message = v["fields"]["message"].as_str().unwrap_or_default().trim().to_string();
        if let Some(a) = message.strip_prefix("HTTP ").filter(|_| !message.starts_with("HTTPS")) {
            http = a.trim().to_string();
        }
        if message.starts_with("data") {
            let out = peer("curl", &["-s", "-o", "/dev/null", &format!("{http}/{MAC_A}.xml")], None);
            assert!(out.status.success());
        }
        let access = v["target"] == "provisor::access";
        lines.push(v);
        if access {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(!http.is_empty(), "the banner's HTTP line, as JSON: {lines:#?}");
    assert!(lines.iter().any(|v| v["target"] == "provisor::banner"), "{lines:#?}");
    let access = lines.last().unwrap();
    assert_eq!(access["target"], "provisor::access", "{lines:#?}");
    assert_eq!(access["fields"]["status"], 200, "{access}");
}

/// Polls the server's log until it holds `needle` (or 10 s pass), and returns it.
fn log_when(server: &Server, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log.lock().unwrap().clone();
        if log.contains(needle) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_reloads_certificates_and_the_audit_log_and_names_what_needs_a_restart() {
    let (dir, pki, mut server) = setup("");
    let old_phone = pki.phone("phone-a", MAC_A, "CP-8841-3PCC", "FCH0001");
    let new_phone = Pki::new(dir.path(), "new-ca").phone("phone-a2", MAC_A, "CP-8841-3PCC", "FCH0001");
    let key_a = server.secrets(MAC_A)["aes_key"].as_str().unwrap().to_string();
    let full = |cert: &(std::path::PathBuf, std::path::PathBuf)| {
        let (status, _, body) = server.get_tls(&format!("/{MAC_A}.xml"), Some(cert));
        status == 200 && text(&body).contains(&key_a)
    };
    assert!(full(&old_phone) && !full(&new_phone));
    // The site moves to a new phone CA and logrotate moves the audit log away; one section changes that needs a
    // restart.
    let config = dir.path().join("provisor.toml");
    let edited = std::fs::read_to_string(&config)
        .unwrap()
        .replace("client_ca = [\"test-ca.pem\"]", "client_ca = [\"new-ca.pem\"]")
        .replace("[firmware]", "[limits]\nfailed_lookups_per_minute = 7\n[firmware]");
    std::fs::write(&config, edited).unwrap();
    let audit = dir.path().join("data/audit.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !audit.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::rename(&audit, dir.path().join("data/audit.log.rotated")).unwrap();
    // SAFETY: kill(2) with the pid of a child this test started and still owns.
    assert_eq!(unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) }, 0);
    let log = log_when(&server, "[limits] changed");
    assert!(log.contains("reload (SIGHUP): HTTPS certificate, key and client CAs reloaded"), "{log}");
    assert!(log.contains("[limits] changed: it takes effect at the next restart"), "{log}");
    assert!(!log.contains("[provisioning] changed"), "{log}");
    // New connections use the new CA, and the server went on serving.
    assert!(full(&new_phone) && !full(&old_phone));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut written = String::new();
    while !written.contains(MAC_A) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        written = std::fs::read_to_string(&audit).unwrap_or_default();
    }
    assert!(written.contains(MAC_A), "a new audit.log after the reload: {written:?}");
    // A configuration that does not load changes nothing.
    std::fs::write(&config, "this is = not toml [").unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) }, 0);
    let log = log_when(&server, "nothing was changed");
    assert!(log.contains("nothing was changed"), "{log}");
    assert!(full(&new_phone));
    assert!(server.child.try_wait().unwrap().is_none(), "still running");
}

/// Waits until the DNS server on 127.0.0.1:`port` answers a query (a busy CI machine can take longer than a fixed
/// sleep to start dnsmasq, and the phone's SRV lookup then times out).
fn wait_for_dns(port: u16) {
    // A query for prov.test, type A, class IN, recursion desired.
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["prov", "test"] {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut answer = [0u8; 512];
    while Instant::now() < deadline {
        let _ = socket.send_to(&query, ("127.0.0.1", port));
        if matches!(socket.recv(&mut answer), Ok(n) if n >= 12 && answer[..2] == [0x12, 0x34]) {
            return;
        }
    }
    panic!("dnsmasq on port {port} did not answer within 15 s");
}
