//! Failure, with real processes and a real PostgreSQL server: a node killed with SIGKILL in the middle of a boot storm
//! loses nothing committed and its phones complete on the other node; the database restarted under load makes
//! phones get 503 (never a wrong or empty profile) until it is back, and then the same bytes as before.

mod common;
#[path = "../../server/tests/common/postgres.rs"]
mod postgres;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::s;
use common::serve::{Pki, Server};

const KEY: &str = "4242424242424242424242424242424242424242424242424242424242424242\n";

fn provisor_at(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provisor"))
        .args(args)
        .env("PROVISOR_CONFIG", config)
        .env_remove("PROVISOR_DATA_DIR")
        .env_remove("PROVISOR_DATABASE_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A node's directory: the test CA, the shared master key, and `[inventory]` naming the database.
fn node_dir(root: &Path, name: &str, url: &str) -> (std::path::PathBuf, String) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("secrets.key");
    std::fs::write(&key, KEY).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    for f in ["test-ca.pem", "test-ca.key"] {
        std::fs::copy(root.join(f), dir.join(f)).unwrap();
    }
    let extra = format!(
        "[inventory]\nurl = \"{url}\"\nsecrets_key_file = \"secrets.key\"\nnode = \"{name}\"\n\
         [limits]\nmax_connections_per_address = 4096\n"
    );
    (dir, extra)
}

fn psql(cluster: &postgres::Cluster, url: &str, sql: &str) -> String {
    let out = Command::new(cluster.bin().join("psql")).args(["-tA", "-d", url, "-c", sql]).output().unwrap();
    assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_node_killed_in_a_boot_storm_loses_nothing_committed_and_its_phones_complete_on_the_other() {
    let Some(cluster) = postgres::Cluster::start() else { return };
    let url = cluster.fresh_database();
    let root = tempfile::tempdir().unwrap();
    let _pki = Pki::new(root.path(), "test-ca");
    const PHONES: usize = 240;
    let mut csv = String::from("mac,model,User_ID_1_,Password_1_\n");
    for i in 0..PHONES {
        csv.push_str(&format!("0c:00:00:00:{:02x}:{:02x},CP-8841-3PCC,{},pw-{i}\n", i >> 8, i & 255, 3000 + i));
    }
    std::fs::write(root.path().join("devices.csv"), csv).unwrap();

    let (dir_a, extra_a) = node_dir(root.path(), "node-a", &url);
    let (dir_b, extra_b) = node_dir(root.path(), "node-b", &url);
    let mut a = Server::start(&dir_a, &extra_a);
    // One site certificate for both nodes (as a site deploys the same one on each): B reuses A's generated TLS.
    std::fs::create_dir_all(dir_b.join("data")).unwrap();
    let copied =
        Command::new("cp").args(["-a", &format!("{}/tls", a.data()), &format!("{}/data/", s(&dir_b))]).status();
    assert!(copied.unwrap().success());
    let b = Server::start(&dir_b, &extra_b);
    let config_b = dir_b.join("provisor.toml");
    ok(provisor_at(&config_b, &["device", "import", s(&root.path().join("devices.csv"))]));
    let before = ok(provisor_at(&config_b, &["device", "export"]));

    // The storm, spread over both nodes; A is killed two seconds in.
    let tls = format!("{}/tls", a.data());
    let storm = |servers: &str, window: &str| {
        Command::new(env!("CARGO_BIN_EXE_provisor"))
            .args(["loadtest", "--dhcp-tftp", servers, "--phones", &PHONES.to_string()])
            .args(["--first-mac", "0c:00:00:00:00:00", "--boot-window", window, "--phone-timeout", "20s"])
            .args(["--ca", &format!("{tls}/ca.pem")])
            .args(["--client-ca-cert", s(&dir_a.join("test-ca.pem")), "--client-ca-key", s(&dir_a.join("test-ca.key"))])
            .args(["--chart", s(&root.path().join("storm.svg"))])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let both = format!("127.0.0.1:{},127.0.0.1:{}", a.tftp, b.tftp);
    let load = storm(&both, "6s");
    std::thread::sleep(Duration::from_secs(2));
    let served_by_a = psql(&cluster, &url, "SELECT count(*) FROM audit WHERE node = 'node-a'");
    a.child.kill().unwrap(); // SIGKILL
    a.child.wait().unwrap();
    let first = String::from_utf8(load.wait_with_output().unwrap().stdout).unwrap();
    let provisioned = |summary: &str| -> usize {
        summary.lines().find_map(|l| l.strip_prefix("provisioned ")).and_then(|n| n.trim().parse().ok()).unwrap()
    };
    let first_ok = provisioned(&first);
    assert!(first_ok < PHONES, "the kill cost some phones their boot: {first}");
    assert!(first_ok >= PHONES / 3, "the phones on B were not affected: {first}");

    // Nothing committed is lost: the inventory is intact, and what A wrote before it died is still there.
    assert_eq!(ok(provisor_at(&config_b, &["device", "export"])), before);
    assert!(served_by_a.parse::<u64>().unwrap() > 0, "A had served and recorded before the kill");
    let audit_a: u64 = psql(&cluster, &url, "SELECT count(*) FROM audit WHERE node = 'node-a'").parse().unwrap();
    assert!(audit_a >= served_by_a.parse().unwrap());

    // The phones retry against the node that is left, and every one completes.
    let second =
        String::from_utf8(storm(&format!("127.0.0.1:{}", b.tftp), "3s").wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(provisioned(&second), PHONES, "{second}");
    let states: u64 =
        psql(&cluster, &url, "SELECT count(*) FROM device_state WHERE served_at IS NOT NULL").parse().unwrap();
    assert_eq!(states, PHONES as u64, "every phone's last fetch is recorded, whichever node served it");

    // A change made anywhere reaches a running node's cache within a second (it reads the revision every 250 ms).
    let token = psql(&cluster, &url, "SELECT path_token FROM devices ORDER BY mac LIMIT 1");
    let path = format!("/profile/{token}/profile.cfg");
    let before = b.get(&path);
    assert_eq!(before.0, 200);
    assert_eq!(b.get(&path).2, before.2, "cached: the same bytes");
    ok(provisor_at(&config_b, &["group", "put", "defaults", "--param", "Primary_NTP_Server=ntp.example.net"]));
    let changed_at = Instant::now();
    while b.get(&path).2 == before.2 {
        assert!(changed_at.elapsed() < Duration::from_secs(1), "node B still serves the old profile after 1 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn phones_get_503_while_the_database_restarts_and_then_the_same_bytes() {
    let Some(cluster) = postgres::Cluster::start() else { return };
    let url = cluster.fresh_database();
    let root = tempfile::tempdir().unwrap();
    let _pki = Pki::new(root.path(), "test-ca");
    let (dir, extra) = node_dir(root.path(), "node-a", &url);
    let server = Server::start(&dir, &extra);
    let config = dir.join("provisor.toml");
    let mut macs = Vec::new();
    for i in 0..20 {
        let mac = format!("0c00000001{i:02x}");
        ok(provisor_at(&config, &["device", "add", &mac, "--model", "CP-8841-3PCC", "--param", "User_ID_1_=1"]));
        macs.push(mac);
    }
    let tokens: Vec<String> =
        psql(&cluster, &url, "SELECT path_token FROM devices ORDER BY mac").lines().map(str::to_string).collect();
    // Past the node's next revision check (every 250 ms), so what it caches now stays cached.
    std::thread::sleep(Duration::from_secs(1));
    let fetch = |t: &str| server.get(&format!("/profile/{t}/profile.cfg"));
    // The first ten are fetched (and so cached) before the outage, the others only during it.
    let good: Vec<Vec<u8>> = tokens[..10]
        .iter()
        .map(|t| {
            let (status, _, body) = fetch(t);
            assert_eq!(status, 200);
            assert!(!body.is_empty());
            body
        })
        .collect();

    cluster.stop();
    // While it is down: a retryable error for every request the node cannot answer from what it rendered before,
    // never a wrong or empty profile.
    for t in &tokens[10..16] {
        let (status, headers, body) = fetch(t);
        assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
        assert!(headers.contains("retry-after"), "{headers}");
    }
    for (t, expected) in tokens.iter().zip(&good).take(3) {
        let (status, _, body) = fetch(t);
        assert_eq!((status, &body), (200, expected), "a cached rendering is still the right one");
    }
    // An unknown phone cannot be looked up either: an error, not the bootstrap profile for an unknown phone.
    let (status, _, _) = server.get("/0c0000000fff.xml");
    assert_eq!(status, 503);
    // Down long enough for the node's watcher to notice (it checks every 250 ms, backing off while it fails).
    std::thread::sleep(Duration::from_secs(2));

    cluster.start_again();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut back = false;
    while Instant::now() < deadline {
        if fetch(&tokens[0]).0 == 200 {
            back = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(back, "the node did not reconnect: {}", server.log.lock().unwrap());
    for (t, expected) in tokens.iter().zip(&good) {
        let (status, _, body) = fetch(t);
        assert_eq!((status, &body), (200, expected), "the same bytes as before the restart");
    }
    for t in &tokens[10..] {
        let (status, _, body) = fetch(t);
        assert_eq!(status, 200);
        assert_eq!(fetch(t).2, body, "and the ones refused during the outage are served now");
    }
    // The watcher says once that the database went, and once that it is back (its back-off is at most 5 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log.lock().unwrap().contains("inventory reachable again") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = server.log.lock().unwrap().clone();
    assert_eq!(log.matches("phones get 503 until it is back").count(), 1, "{log}");
    assert!(log.contains("inventory reachable again"), "{log}");
    drop(macs);
}
