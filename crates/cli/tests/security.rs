//! The security suite: every attack of the red-team report ("Hardening" issue) repeated against `provisor serve` on
//! loopback, failing if any regresses. Secret leakage per route × identity × protocol (curl over HTTP and HTTPS with
//! and without client certificates, tftp-hpa), MAC enumeration from many 127.x addresses, a traversal corpus over
//! HTTP and TFTP, slow and half-sent HTTP clients, TFTP session floods, netascii memory, report spoofing, Digest
//! replay, syslog floods, enrolment without a certificate, and file modes. A missing peer fails the test.

mod common;
use common::serve::{BASE_CONFIG, Pki, Server};
use common::{ok, peer, provisor, s};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MAC_A: &str = "000e08aabb01";
const MAC_B: &str = "000e08aabb02";
/// An enterprise (CUCM-firmware) phone.
const MAC_E: &str = "000e08aabb0e";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn add(data: &str, mac: &str, model: &str, password: &str) {
    ok(provisor(&[
        "device",
        "--data-dir",
        data,
        "add",
        mac,
        "--model",
        model,
        "--param",
        "User_ID_1_=201",
        "--param",
        &format!("Password_1_={password}"),
    ]));
}

/// A server with MPP phones A and B and enterprise phone E.
fn site(extra: &str) -> (tempfile::TempDir, Pki, Server) {
    site_with(&|c| format!("{c}{extra}"))
}

/// The same, with the whole configuration made from the base one by `config`.
fn site_with(config: &dyn Fn(String) -> String) -> (tempfile::TempDir, Pki, Server) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("firmware")).unwrap();
    let pki = Pki::new(dir.path(), "test-ca");
    let data = s(&dir.path().join("data")).to_string();
    add(&data, MAC_A, "CP-8841-3PCC", "secret-a");
    add(&data, MAC_B, "CP-7832-3PCC", "secret-b");
    add(&data, MAC_E, "CP-8841", "secret-e");
    let server = Server::start_with(dir.path(), &config(BASE_CONFIG.to_string()));
    (dir, pki, server)
}

/// Everything secret about a device: line password, AES key, IKM, random path.
fn secrets_of(server: &Server, mac: &str, password: &str) -> Vec<String> {
    let sec = server.secrets(mac);
    let mut v = vec![password.to_string()];
    for k in ["aes_key", "ikm", "path_token"] {
        v.push(sec[k].as_str().unwrap().to_string());
    }
    v
}

/// A TFTP read with a plain UDP socket bound to `from` (any 127.x address): the file, or the server's error.
fn tftp_get(server: SocketAddr, from: &str, name: &str, mode: &str) -> Result<Vec<u8>, (u16, String)> {
    let sock = UdpSocket::bind(format!("{from}:0")).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rrq = vec![0, 1];
    for part in [name.as_bytes(), mode.as_bytes()] {
        rrq.extend_from_slice(part);
        rrq.push(0);
    }
    sock.send_to(&rrq, server).unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 1024];
    let mut expected = 1u16;
    loop {
        let (n, tid) = sock.recv_from(&mut buf).map_err(|e| (999, e.to_string()))?;
        let op = u16::from_be_bytes([buf[0], buf[1]]);
        let num = u16::from_be_bytes([buf[2], buf[3]]);
        match op {
            3 if num == expected => {
                data.extend_from_slice(&buf[4..n]);
                sock.send_to(&[0, 4, buf[2], buf[3]], tid).unwrap();
                if n - 4 < 512 {
                    return Ok(data);
                }
                expected = expected.wrapping_add(1);
            }
            3 => {}
            5 => return Err((num, text(&buf[4..n.saturating_sub(1)]))),
            _ => return Err((998, format!("opcode {op}"))),
        }
    }
}

/// `curl` from a given local address: (status, body).
fn curl_from(from: &str, url: &str) -> (u16, Vec<u8>) {
    let o = peer("curl", &["-s", "-k", "--path-as-is", "--interface", from, "-w", "\n%{http_code}", url], None);
    let out = o.stdout;
    let cut = out.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    let status = text(&out[cut + 1..]).trim().parse().unwrap_or(0);
    (status, out[..cut].to_vec())
}

fn tftp_addr(server: &Server) -> SocketAddr {
    format!("127.0.0.1:{}", server.tftp).parse().unwrap()
}

/// Which secrets of `all` (device, secrets) appear in `body`.
fn leaked<'a>(body: &[u8], all: &'a [(&'a str, Vec<String>)]) -> Vec<&'a str> {
    let t = text(body);
    all.iter().filter(|(_, secrets)| secrets.iter().any(|s| t.contains(s.as_str()))).map(|(d, _)| *d).collect()
}

/// The README's table, walked whole: every route × identity × protocol, and which device's secrets may be in the
/// answer. Only phone A's verified certificate over HTTPS gets A's full profile; the encrypted path gives ciphertext;
/// only the enterprise phone's SEP file carries its password in clear text, and only to `trusted_networks`.
#[test]
fn no_secret_leaves_without_identity_on_any_route() {
    let (_dir, pki, server) = site("[provisioning]\ntrusted_networks = [\"127.0.0.1/32\"]\n");
    let cert_a = pki.phone("phone-a", MAC_A, "CP-8841-3PCC", "FCH0001");
    let cert_b = pki.phone("phone-b", MAC_B, "CP-7832-3PCC", "FCH0002");
    let all = vec![
        (MAC_A, secrets_of(&server, MAC_A, "secret-a")),
        (MAC_B, secrets_of(&server, MAC_B, "secret-b")),
        (MAC_E, secrets_of(&server, MAC_E, "secret-e")),
    ];
    let token_a = all[0].1[3].clone();
    let (up_a, up_e) = (MAC_A.to_uppercase(), MAC_E.to_uppercase());
    let paths = [
        format!("/{MAC_A}.xml"),
        format!("/{MAC_A}.cfg"),
        format!("/CP-8841-3PCC/{MAC_A}.xml"),
        "/V03.xml".to_string(),
        format!("/SEP{up_a}.cnf.xml"),
        format!("/sep{MAC_A}.cnf.xml"),
        format!("/Communicator/SEP{up_a}.cnf.xml"),
        format!("/SEP{up_e}.cnf.xml"),
        format!("/{MAC_E}.xml"),
        "/XMLDefault.cnf.xml".to_string(),
        format!("/ITLSEP{up_a}.tlv"),
        format!("/CTLSEP{up_e}.tlv"),
        format!("/report/{MAC_A}.xml"),
        format!("/profile/{token_a}/profile.cfg"),
        "/firmware/none.loads".to_string(),
    ];
    let full_profile_names = [0, 1, 2, 3];
    let ua_a = format!("Cisco-CP-8841-3PCC/12.0.1 ({MAC_A})");
    let mut walked = 0;
    for (i, path) in paths.iter().enumerate() {
        let sep_e = path.ends_with(&format!("SEP{up_e}.cnf.xml"));
        // (identity, status, body)
        let mut answers: Vec<(&str, u16, Vec<u8>)> = Vec::new();
        let (st, _, b) = server.get(path);
        answers.push(("http", st, b));
        let (st, _, b) = server.curl(&["-A", &ua_a, &format!("{}{path}", server.http)]);
        answers.push(("http + User-Agent of A", st, b));
        let (st, _, b) = server.get_tls(path, None);
        answers.push(("https without certificate", st, b));
        let (st, _, b) = server.get_tls(path, Some(&cert_a));
        answers.push(("https with A's certificate", st, b));
        let (st, _, b) = server.get_tls(path, Some(&cert_b));
        answers.push(("https with B's certificate", st, b));
        match tftp_get(tftp_addr(&server), "127.0.0.1", path, "octet") {
            Ok(b) => answers.push(("tftp", 200, b)),
            Err((code, _)) => answers.push(("tftp", 400 + code, Vec::new())),
        }
        for (identity, status, body) in &answers {
            walked += 1;
            let got = leaked(body, &all);
            let allowed: Vec<&str> = if sep_e {
                vec![MAC_E]
            } else if *identity == "https with A's certificate" && full_profile_names.contains(&i) {
                vec![MAC_A]
            } else if *identity == "https with B's certificate" && path == "/V03.xml" {
                vec![MAC_B] // a name without a MAC: the certificate says whose profile it is
            } else {
                vec![]
            };
            assert!(
                got.iter().all(|d| allowed.contains(d)),
                "{path} via {identity} ({status}) leaked the secrets of {got:?}: {}",
                text(body)
            );
            if *identity == "https with A's certificate" && full_profile_names.contains(&i) {
                assert_eq!((*status, got.as_slice()), (200, [MAC_A].as_slice()), "{path}: A gets its own profile");
            }
            if path.starts_with("/profile/") && *status == 200 {
                assert!(body.starts_with(b"Salted__"), "{path} via {identity}: only ciphertext");
            }
            if path.contains(&format!("SEP{up_a}")) || path.contains(&format!("sep{MAC_A}")) {
                assert!(*status != 200, "{path} via {identity}: an MPP phone never gets an enterprise file");
            }
        }
        if sep_e {
            assert!(answers.iter().any(|(_, st, b)| *st == 200 && text(b).contains("secret-e")));
        }
    }
    assert_eq!(walked, paths.len() * 6);
    // From outside trusted_networks, the enterprise phone's file is refused over HTTP and TFTP.
    let (status, body) = curl_from("127.0.0.2", &format!("{}/SEP{up_e}.cnf.xml", server.http));
    assert_eq!(status, 403, "{}", text(&body));
    assert!(leaked(&body, &all).is_empty());
    let refused = tftp_get(tftp_addr(&server), "127.0.0.2", &format!("SEP{up_e}.cnf.xml"), "octet");
    assert!(matches!(refused, Err((2, _))), "{refused:?}");
}

/// 2,000 guessed MACs from 100 addresses (the red team used 10,000 from 250): each address names at most
/// `macs_per_address_per_minute` devices, everyone together at most `macs_per_minute`; the real MAC, guessed last,
/// is never answered.
#[test]
fn mac_enumeration_from_many_addresses_is_capped_per_address_and_in_total() {
    let (_dir, _pki, server) = site("[limits]\nmacs_per_address_per_minute = 16\nmacs_per_minute = 300\n");
    // The limits count per wall-clock minute: start early in one, and check each count within the minute it fell in.
    let minute = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 60;
    let into = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() % 60;
    if into > 30 {
        std::thread::sleep(std::time::Duration::from_secs(61 - into));
    }
    let first_minute = minute();
    let mut answered = 0;
    let mut leaked_e = false;
    for host in 0..100u32 {
        let from = format!("127.0.{}.{}", 10 + host / 200, 1 + host % 200);
        let mut args = vec!["-s".to_string(), "--interface".into(), from.clone()];
        for i in 0..20u32 {
            let n = host * 20 + i;
            let mac = if n == 1999 { MAC_E.to_uppercase() } else { format!("000E08{n:06X}") };
            args.extend(["-o".into(), "/dev/null".into(), "-w".into(), "%{http_code}\\n".into()]);
            args.push(format!("{}/SEP{mac}.cnf.xml", server.http));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let before = minute();
        let o = peer("curl", &refs, None);
        let one_minute = minute() == before;
        let codes: Vec<u16> = text(&o.stdout).lines().map(|l| l.trim().parse().unwrap()).collect();
        assert_eq!(codes.len(), 20, "{from}: {codes:?}");
        let not_limited = codes.iter().filter(|&&c| c != 429).count();
        if one_minute {
            assert!(not_limited <= 16, "{from}: {codes:?}");
            assert!(codes[16..].iter().all(|&c| c == 429), "{from}: {codes:?}");
        }
        answered += not_limited;
        leaked_e |= host == 99 && codes[19] == 200 && one_minute;
    }
    // Normally all in one minute; on a slow host the walk may reach into the next, which has its own allowance.
    let minutes = (minute() - first_minute + 1) as usize;
    assert!(answered <= 300 * minutes, "{answered} distinct MACs answered in {minutes} minute(s)");
    assert!(answered >= 250, "the first addresses were answered: {answered}");
    assert!(!leaked_e, "the real MAC was answered");
}

/// Paths never escape their roots: a traversal corpus over HTTP (sent as is) and TFTP.
#[test]
fn traversal_corpus_over_http_and_tftp() {
    let (dir, _pki, server) = site("");
    std::fs::write(dir.path().join("canary.txt"), "CANARY-OUTSIDE").unwrap();
    std::fs::write(dir.path().join("firmware/fw.loads"), "firmware bytes").unwrap();
    let http = [
        "/firmware/../canary.txt",
        "/firmware/..%2fcanary.txt",
        "/firmware/%2e%2e/canary.txt",
        "/firmware/%2E%2E%2Fcanary.txt",
        "/firmware/....//canary.txt",
        "/firmware/..\\canary.txt",
        "/firmware/..%5ccanary.txt",
        "/firmware/%252e%252e/canary.txt",
        "/firmware/%00/../canary.txt",
        "/firmware/fw.loads/../../canary.txt",
        "/../canary.txt",
        "/..%2f..%2fcanary.txt",
        "//etc/passwd",
        "/etc/passwd",
        "/firmware//etc/passwd",
        "/firmware/../../../../../../../../etc/passwd",
        "/firmware/../data/inventory.sqlite",
        "/firmware/%2e%2e/data/inventory.sqlite",
        "/firmware/../provisor.toml",
        "/profile/../provisor.toml",
        "/Communicator/../canary.txt",
        "/canary.txt",
        "/provisor.toml",
        "/data/audit.log",
        "/tls/ca.key",
    ];
    let forbidden = ["CANARY-OUTSIDE", "root:x:", "SQLite format", "data_dir", "PRIVATE KEY", "\"client\""];
    for path in http {
        let (status, _, body) = server.curl(&["--path-as-is", &format!("{}{path}", server.http)]);
        let t = text(&body);
        assert!(!forbidden.iter().any(|f| t.contains(f)), "HTTP {path}: {status} {t}");
    }
    let tftp = [
        "../canary.txt",
        "firmware/../canary.txt",
        "/firmware/../../canary.txt",
        "..\\canary.txt",
        "firmware\\..\\canary.txt",
        "/etc/passwd",
        "../../../../../../etc/passwd",
        "firmware/../data/inventory.sqlite",
        "data/inventory.sqlite",
        "provisor.toml",
        "canary.txt",
        "/firmware/fw.loads/../../canary.txt",
    ];
    for name in tftp {
        if let Ok(body) = tftp_get(tftp_addr(&server), "127.0.0.1", name, "octet") {
            let t = text(&body);
            assert!(!forbidden.iter().any(|f| t.contains(f)), "TFTP {name}: {t}");
        }
    }
    // The real file is served, so the corpus was not refused for some unrelated reason.
    assert_eq!(tftp_get(tftp_addr(&server), "127.0.0.1", "/firmware/fw.loads", "octet").unwrap(), b"firmware bytes");
}

/// Slow and half-sent HTTP clients are closed on time, a per-address cap closes the surplus at once, and the server
/// keeps answering everyone else.
#[test]
fn slow_and_half_sent_http_clients_are_closed() {
    let (_dir, _pki, server) = site(
        "[limits]\nhttp_header_timeout_s = 2\nhttp_body_timeout_s = 2\nhttp_idle_timeout_s = 3\n\
         max_connections_per_address = 40\n",
    );
    let addr: SocketAddr = server.http.trim_start_matches("http://").parse().unwrap();
    let connect = || {
        let c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        c
    };
    let mut slow = Vec::new();
    for i in 0..30 {
        let mut c = connect();
        if i % 2 == 0 {
            c.write_all(b"GET /XMLDefault.cnf.xml HTTP/1.1\r\nHost: a\r\n").unwrap(); // never finished
        }
        slow.push(c);
    }
    // A half-sent upload: headers complete, body never finished.
    let mut upload = connect();
    upload
        .write_all(
            format!("POST /report/{MAC_A}.xml HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nabc").as_bytes(),
        )
        .unwrap();
    // A client that trickles its head a byte every 200 ms is never idle, but never finishes a request: the header
    // timeout (2 s) closes it, long before the 10 s it would go on for.
    let trickler = std::thread::spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /XMLDefault.cnf.xml HTTP/1.1\r\nx-slow: ").unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if c.write_all(b"a").is_err() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    });
    // Meanwhile, others are served.
    let (status, body) = curl_from("127.0.0.3", &format!("{}/XMLDefault.cnf.xml", server.http));
    assert_eq!(status, 200, "{}", text(&body));
    let started = Instant::now();
    for (i, c) in slow.iter_mut().enumerate() {
        // The server closes it (perhaps after a 408): read_to_end ends; a read timeout means it is still open.
        let mut rest = Vec::new();
        match c.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("connection {i} still open after {:?}: {e}", started.elapsed()),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(9), "closed after {:?}", started.elapsed());
    let mut reply = String::new();
    let _ = upload.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "a stalled upload gets 408: {reply:?}");
    let trickled = trickler.join().unwrap().expect("a client trickling its head is closed");
    assert!(trickled < Duration::from_secs(5), "the trickling client was closed after {trickled:?}");
    // At the per-address cap, more connections are closed at once; another address is still served.
    let held: Vec<TcpStream> = (0..40).map(|_| connect()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = connect();
    let mut buf = [0u8; 16];
    extra.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert!(matches!(extra.read(&mut buf), Ok(0) | Err(_)), "the 41st connection from one address is closed");
    let (status, _) = curl_from("127.0.0.4", &format!("{}/XMLDefault.cnf.xml", server.http));
    assert_eq!(status, 200);
    drop(held);
}

/// Reads one HTTP/1.1 response with a `Content-Length` from `c`, leaving the connection open: (status line, body).
fn read_response(c: &mut TcpStream) -> (String, Vec<u8>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(c.read(&mut byte).unwrap(), 1, "the connection closed mid-head: {}", text(&head));
        head.push(byte[0]);
    }
    let head = text(&head);
    let length = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>()))
        .expect("a Content-Length")
        .unwrap();
    let mut body = vec![0u8; length];
    c.read_exact(&mut body).unwrap();
    (head.lines().next().unwrap_or_default().to_string(), body)
}

/// A listener whose every place is taken closes its kept-alive idle connections, so a phone waiting in the backlog
/// is served at once, not after `http_idle_timeout_s`; and a TLS client that stalls mid-hello holds the one handshake
/// turn for a second at most, not for the whole handshake timeout (issue 17, items 5 and 6).
#[test]
fn a_full_listener_and_a_stalled_handshake_do_not_lock_phones_out() {
    let (_dir, _pki, server) = site(
        "[limits]\nmax_connections = 2\nmax_tls_handshakes = 1\nhttp_idle_timeout_s = 60\nhttp_header_timeout_s = 20\n",
    );
    let addr: SocketAddr = server.http.trim_start_matches("http://").parse().unwrap();
    // Two kept-alive connections, each with one request answered, take both places.
    let mut kept: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c.write_all(b"GET /XMLDefault.cnf.xml HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
            let (status, _) = read_response(&mut c);
            assert!(status.starts_with("HTTP/1.1 200"), "{status}");
            c
        })
        .collect();
    // A third client waits in the backlog until the listener closes an idle connection for it.
    let started = Instant::now();
    let (status, body) = curl_from("127.0.0.3", &format!("{}/XMLDefault.cnf.xml", server.http));
    assert_eq!(status, 200, "{}", text(&body));
    assert!(started.elapsed() < Duration::from_secs(10), "served after {:?}", started.elapsed());
    // At least one kept-alive connection was closed to make room (a read ends instead of timing out).
    let closed = kept.iter_mut().map(|c| c.read(&mut [0u8; 1])).filter(|r| matches!(r, Ok(0) | Err(_))).count();
    assert!(closed >= 1, "no kept-alive connection was closed");
    drop(kept);

    // A TLS client that sends the first five bytes of a hello and stops takes the only turn...
    let tls: SocketAddr = server.https.trim_start_matches("https://").parse().unwrap();
    let mut stalled = TcpStream::connect(tls).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // ...for a second: a phone behind it still completes its handshake long before the 20 s handshake timeout.
    let started = Instant::now();
    let (status, _, body) = server.curl(&["-k", &format!("{}/XMLDefault.cnf.xml", server.https)]);
    assert_eq!(status, 200, "{}", text(&body));
    assert!(started.elapsed() < Duration::from_secs(8), "handshake done after {:?}", started.elapsed());
    drop(stalled);
}

/// 10,400 read requests with `timeout=255` from 260 addresses, never acknowledged, do not lock phones out: the table
/// drops the oldest unanswered transfers, and a real download from another address succeeds at once.
#[test]
fn a_tftp_session_flood_from_many_addresses_leaves_phones_served() {
    let (_dir, _pki, server) =
        site_with(&|c| c.replace("[tftp]\n", "[tftp]\nmax_sessions = 2000\nmax_sessions_per_address = 100\n"));
    let to = tftp_addr(&server);
    let mut rrq = vec![0, 1];
    for part in ["XMLDefault.cnf.xml", "octet", "timeout", "255"] {
        rrq.extend_from_slice(part.as_bytes());
        rrq.push(0);
    }
    let started = Instant::now();
    let mut sent = 0;
    for host in 0..260u32 {
        let sock = UdpSocket::bind(format!("127.0.{}.{}:0", 20 + host / 200, 1 + host % 200)).unwrap();
        for _ in 0..40 {
            sock.send_to(&rrq, to).unwrap();
            sent += 1;
        }
        if host % 10 == 9 {
            std::thread::sleep(Duration::from_millis(20)); // let the listening socket's buffer drain
        }
    }
    assert_eq!(sent, 10_400);
    std::thread::sleep(Duration::from_millis(500));
    // tftp-hpa, as a phone would, from 127.0.0.1.
    let body = server.tftp_hpa("XMLDefault.cnf.xml");
    assert!(text(&body).contains("<Default>"), "{}", text(&body));
    assert!(started.elapsed() < Duration::from_secs(60));
    let log = server.log.lock().unwrap().clone();
    assert!(
        log.contains("unanswered transfers"),
        "the flood filled the table: {}",
        &log[log.len().saturating_sub(3000)..]
    );
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap()
}

/// Ten netascii requests for a 50 MB file: converted as they stream, so the server's peak memory barely moves
/// (the red team saw 25 → 685 MiB when each request converted the whole file in memory).
#[test]
fn netascii_requests_for_a_large_file_stream_in_bounded_memory() {
    let (dir, _pki, server) = site("");
    let line = "abcdefghijklmnopqrstuvwxyz0123456789 netascii line\n".repeat(1000);
    let mut f = std::fs::File::create(dir.path().join("firmware/big.txt")).unwrap();
    while f.metadata().unwrap().len() < 50_000_000 {
        f.write_all(line.as_bytes()).unwrap();
    }
    drop(f);
    // Warm up (the first request opens the firmware directory and the audit log).
    let _ = tftp_get(tftp_addr(&server), "127.0.0.1", "/firmware/missing.txt", "octet");
    let before = vm_hwm_kib(server.child.id());
    let mut socks = Vec::new();
    for i in 0..10 {
        let sock = UdpSocket::bind(format!("127.0.5.{}:0", i + 1)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        sock.send_to(b"\0\x01/firmware/big.txt\0netascii\0", tftp_addr(&server)).unwrap();
        socks.push(sock);
    }
    for sock in &socks {
        let mut buf = [0u8; 600];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..2], &[0, 3], "DATA 1 of a netascii transfer: {:?}", &buf[..n]);
        assert!(text(&buf[4..n]).contains("line\r\n"), "converted to CR LF");
    }
    let grown_mib = vm_hwm_kib(server.child.id()).saturating_sub(before) / 1024;
    println!("netascii: peak RSS grew {grown_mib} MiB for 10 transfers of a 50 MB file");
    assert!(grown_mib < 64, "peak memory grew {grown_mib} MiB");
}

fn encrypt_report(dir: &Path, key: &str, body: &str) -> PathBuf {
    let plain = dir.join("report.xml");
    std::fs::write(&plain, body).unwrap();
    let enc = dir.join("report.enc");
    let o =
        peer("openssl", &["enc", "-aes-256-cbc", "-md", "sha256", "-k", key, "-in", s(&plain), "-out", s(&enc)], None);
    assert!(o.status.success());
    enc
}

/// Reports change a device's drift: plain ones are refused over HTTP and TFTP, ones encrypted with the device's key
/// or sent with its certificate are taken.
#[test]
fn spoofed_reports_are_refused() {
    let (dir, pki, server) = site("");
    let cert_a = pki.phone("phone-a", MAC_A, "CP-8841-3PCC", "FCH0001");
    let report = "<flat-profile><User_ID_1_>666</User_ID_1_></flat-profile>";
    let plain = dir.path().join("plain.xml");
    std::fs::write(&plain, report).unwrap();
    let url = format!("{}/report/{MAC_A}.xml", server.http);
    let (status, _, body) = server.curl(&["--data-binary", &format!("@{}", s(&plain)), &url]);
    assert_eq!(status, 403, "{}", text(&body));
    let wrong = encrypt_report(dir.path(), "not-the-key", report);
    assert_eq!(server.curl(&["--data-binary", &format!("@{}", s(&wrong)), &url]).0, 400);
    let o = peer(
        "tftp",
        &["127.0.0.1", &server.tftp.to_string(), "-m", "octet", "-c", "put", s(&plain), &format!("report/{MAC_A}.xml")],
        None,
    );
    let _ = o;
    std::thread::sleep(Duration::from_millis(800));
    let shown = server.show(MAC_A);
    assert!(!shown.contains("last report"), "a spoofed report was stored: {shown}");
    assert!(shown.contains("refused a plain report"), "{shown}");
    // The device's own key, or its certificate, are accepted.
    let key = server.secrets(MAC_A)["aes_key"].as_str().unwrap().to_string();
    let good = encrypt_report(dir.path(), &key, report);
    assert_eq!(server.curl(&["--data-binary", &format!("@{}", s(&good)), &url]).0, 200);
    let ca = dir.path().join("data/tls/ca.pem");
    let tls_url = format!("{}/report/{MAC_A}.xml", server.https);
    let (status, _, body) = server.curl(&[
        "--cacert",
        s(&ca),
        "--cert",
        s(&cert_a.0),
        "--key",
        s(&cert_a.1),
        "--data-binary",
        &format!("@{}", s(&plain)),
        &tls_url,
    ]);
    assert_eq!(status, 200, "{}", text(&body));
    std::thread::sleep(Duration::from_millis(800));
    assert!(server.show(MAC_A).contains("last report"));
}

/// Digest: a response is bound to its URI and its `nc`; a replayed Authorization header is refused.
#[test]
fn digest_responses_cannot_be_replayed_or_moved() {
    let (_dir, _pki, server) =
        site("[provisioning]\nhttp_user = \"phone\"\nhttp_password = \"pw\"\ncredentials_over_tftp = false\n");
    let url = format!("{}/{MAC_A}.xml", server.http);
    let o =
        peer("curl", &["-s", "-v", "--digest", "-u", "phone:pw", "-o", "/dev/null", "-w", "%{http_code}", &url], None);
    assert_eq!(text(&o.stdout), "200");
    let sent = text(&o.stderr);
    let header = sent
        .lines()
        .filter_map(|l| l.strip_prefix("> Authorization: "))
        .find(|h| h.starts_with("Digest"))
        .unwrap_or_else(|| panic!("{sent}"))
        .trim()
        .to_string();
    let auth = format!("Authorization: {header}");
    assert_eq!(server.curl(&["-H", &auth, &url]).0, 401, "the same response again is a replay");
    assert_eq!(server.curl(&["-H", &auth, &format!("{}/{MAC_B}.xml", server.http)]).0, 401, "another URI");
    // Every fresh exchange still works, Basic too.
    for mode in ["--digest", "--basic"] {
        assert_eq!(server.curl(&[mode, "-u", "phone:pw", &url]).0, 200, "{mode}");
    }
    // TFTP has no authentication: the profile that carries --uid/--pwd is not served over it.
    let refused = tftp_get(tftp_addr(&server), "127.0.0.1", &format!("/{MAC_A}.xml"), "octet");
    assert!(matches!(&refused, Err((2, m)) if m.contains("credentials")), "{refused:?}");
    let (_, _, body) = server.curl(&["--digest", "-u", "phone:pw", &url]);
    assert!(text(&body).contains("--uid phone --pwd pw"), "HTTP with authentication still gets it");
}

/// Syslog datagrams are free to forge: lines for unknown devices are dropped and each device's lines are capped.
/// (Datagrams the kernel drops before the server reads them do not count: the test compares with what arrived.)
#[test]
fn syslog_floods_are_capped_per_device() {
    let (_dir, _pki, server) = site("[limits]\ndevice_events_per_minute = 50\n");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to: SocketAddr = format!("127.0.0.1:{}", server.syslog).parse().unwrap();
    let metric = |name: &str, label: &str| -> u64 {
        let metrics = server.metrics();
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l.contains(label))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    // Waits until the receiver has read everything that arrived; returns the lines read.
    let settled = || {
        let mut last = u64::MAX;
        loop {
            std::thread::sleep(Duration::from_millis(400));
            let now = metric("provisor_syslog_lines_total", "");
            if now == last {
                return now;
            }
            last = now;
        }
    };
    for i in 0..2000 {
        let line = format!("<11>Nov 23 10:00:00 CP-8841-3PCC 00:0e:08:aa:bb:01 -- flood {i}");
        sock.send_to(line.as_bytes(), to).unwrap();
        if i % 10 == 9 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let from_a = settled();
    assert!(from_a > 200, "only {from_a} lines arrived");
    let rate = metric("provisor_events_dropped_total", "rate");
    // 50 per minute are kept (100 if the test straddles a minute), the rest dropped.
    assert!(rate + 100 >= from_a && rate + 50 <= from_a, "{from_a} lines for A, {rate} dropped for the rate");
    for i in 0..2000 {
        let fake = format!("<11>Nov 23 10:00:00 CP-8841-3PCC 00:0e:08:ff:{:02x}:{:02x} -- fake", i / 256, i % 256);
        sock.send_to(fake.as_bytes(), to).unwrap();
        if i % 10 == 9 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let fakes = settled() - from_a;
    assert_eq!(metric("provisor_events_dropped_total", "unknown device"), fakes, "every line for an unknown MAC");
    let shown = text(&ok(provisor(&["device", "--data-dir", &server.data(), "show", MAC_A, "--json"])).stdout);
    assert!(shown.contains("flood"), "{shown}");
}

/// `enrol` adds only devices that proved their identity with a verified certificate.
#[test]
fn enrolment_needs_a_verified_certificate() {
    let (_dir, pki, server) = site("[provisioning]\nunknown_devices = \"enrol\"\n");
    let new_mac = "000e08ffff01";
    let (status, _, body) = server.curl(&[
        "-A",
        &format!("Cisco-CP-6841-3PCC/12.0.1 ({new_mac})"),
        &format!("{}/{new_mac}.xml", server.http),
    ]);
    assert_eq!(status, 200);
    assert!(!text(&body).contains("GPP_SA"), "{}", text(&body));
    let out = provisor(&["device", "--data-dir", &server.data(), "show", new_mac]);
    assert!(!out.status.success(), "enrolled without a certificate");
    let cert = pki.phone("new", new_mac, "CP-6841-3PCC", "FCH9");
    assert_eq!(server.get_tls(&format!("/{new_mac}.xml"), Some(&cert)).0, 200);
    ok(provisor(&["device", "--data-dir", &server.data(), "show", new_mac]));
}

/// The inventory and the audit log are private; a real site's keys never reach the server's output; `device show`
/// and `device audit` mask random paths unless asked for secrets.
#[test]
fn data_files_are_private_and_keys_stay_out_of_logs() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, _pki, server) = site("");
    let sec = server.secrets(MAC_A);
    let (key, token) = (sec["aes_key"].as_str().unwrap(), sec["path_token"].as_str().unwrap());
    assert_eq!(server.get(&format!("/profile/{token}/profile.cfg")).0, 200);
    std::thread::sleep(Duration::from_millis(800));
    let data = dir.path().join("data");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "data directory");
    for f in [
        "inventory.sqlite",
        "inventory.sqlite-wal",
        "inventory.sqlite-shm",
        "audit.log",
        "tls/ca.key",
        "tls/server.key",
    ] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    let log = server.log.lock().unwrap().clone();
    assert!(!log.contains(key) && !log.contains(token), "the server printed a device's key or path: {log}");
    let shown = server.show(MAC_A);
    assert!(shown.contains("profile/********/profile.cfg") && !shown.contains(token), "{shown}");
    let json = text(&ok(provisor(&["device", "--data-dir", &server.data(), "show", MAC_A, "--json"])).stdout);
    assert!(!json.contains(token) && !json.contains(key), "{json}");
    let audit = text(&ok(provisor(&["device", "--data-dir", &server.data(), "audit", MAC_A])).stdout);
    assert!(audit.contains("profile/********/") && !audit.contains(token), "{audit}");
    let audit = text(&ok(provisor(&["device", "--data-dir", &server.data(), "audit", MAC_A, "--secrets"])).stdout);
    assert!(audit.contains(token), "{audit}");
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Out of file descriptors (the server started under a 128-descriptor limit it cannot raise), the accept loop backs
/// off instead of spinning at 100 % CPU, and once connections close the server answers again.
#[test]
fn running_out_of_file_descriptors_backs_off_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("firmware")).unwrap();
    Pki::new(dir.path(), "test-ca");
    let config = format!("{BASE_CONFIG}[limits]\nhttp_idle_timeout_s = 120\n");
    let server = Server::start_under(dir.path(), &config, &["prlimit", "--nofile=128:128"]);
    let addr: SocketAddr = server.http.trim_start_matches("http://").parse().unwrap();
    let held: Vec<TcpStream> = (0..200).filter_map(|_| TcpStream::connect(addr).ok()).collect();
    assert!(held.len() >= 150, "only {} connections", held.len());
    std::thread::sleep(Duration::from_millis(500));
    let pid = server.child.id();
    let before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_seconds(pid) - before;
    assert!(used < 0.5, "the server used {used:.2} s of CPU in 3 s while out of descriptors");
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("accept:") && log.contains("retrying"), "{}", &log[log.len().saturating_sub(2000)..]);
    drop(held);
    std::thread::sleep(Duration::from_millis(1500));
    let (status, _, body) = server.get("/XMLDefault.cnf.xml");
    assert_eq!(status, 200, "{}", text(&body));
}

/// Upload bodies go to a file as they arrive: 40 uploads stalled one byte short of 4 MiB hold next to no memory
/// (the red team saw about 4.5 MiB each when bodies were collected in memory).
#[test]
fn stalled_uploads_hold_no_memory() {
    let (_dir, _pki, server) = site("");
    let addr: SocketAddr = server.http.trim_start_matches("http://").parse().unwrap();
    let _ = server.get("/XMLDefault.cnf.xml"); // warm up
    let before = vm_hwm_kib(server.child.id());
    let size = 4 << 20;
    let chunk = vec![b'x'; 64 * 1024];
    let mut stalled = Vec::new();
    for _ in 0..40 {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(
            format!("POST /report/{MAC_A}.xml HTTP/1.1\r\nHost: a\r\nContent-Length: {size}\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut sent = 0;
        while sent < size - 1 {
            let n = chunk.len().min(size - 1 - sent);
            c.write_all(&chunk[..n]).unwrap();
            sent += n;
        }
        stalled.push(c);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let grown_mib = vm_hwm_kib(server.child.id()).saturating_sub(before) / 1024;
    println!("stalled uploads: peak RSS grew {grown_mib} MiB for 40 × 4 MiB");
    assert!(grown_mib < 40, "peak memory grew {grown_mib} MiB");
    // The spool files are private, and go when the uploads end.
    let uploads = server.dir.join("data/uploads");
    let spooled: Vec<_> = std::fs::read_dir(&uploads).unwrap().flatten().collect();
    assert_eq!(spooled.len(), 40);
    drop(stalled);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 0, "spool files are removed");
}
