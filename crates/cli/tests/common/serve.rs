//! A `provisor serve` child process on ephemeral loopback ports, and a test PKI for phone client certificates
//! (Cisco-style subjects: OU = model, L = serial, S = MAC).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};

use super::{ok, peer, provisor, s};

/// Test PKI: a CA the server trusts for client certificates, and phone certificates.
pub struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    pub fn new(dir: &Path, name: &str) -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name.push(DnType::CommonName, name);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = ca.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        Pki { dir: dir.to_path_buf(), issuer: Issuer::new(ca, key) }
    }

    /// A phone certificate: (cert, key) paths.
    pub fn phone(&self, stem: &str, mac: &str, model: &str, serial: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::OrganizationalUnitName, model);
        p.distinguished_name.push(DnType::LocalityName, serial);
        p.distinguished_name.push(DnType::StateOrProvinceName, mac);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (self.dir.join(format!("{stem}.pem")), self.dir.join(format!("{stem}.key")));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

/// A `provisor serve --config` child process on ephemeral loopback ports.
pub struct Server {
    pub child: Child,
    pub dir: PathBuf,
    pub http: String,
    pub https: String,
    pub tftp: u16,
    pub syslog: u16,
    /// The admin listener's base URL (`http://127.0.0.1:PORT`).
    pub admin: String,
    pub log: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const BASE_CONFIG: &str = r#"
data_dir = "data"
public_host = "127.0.0.1"
[http]
listen = "127.0.0.1:0"
[https]
listen = "127.0.0.1:0"
client_ca = ["test-ca.pem"]
[tftp]
listen = "127.0.0.1:0"
[syslog]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[firmware]
dir = "firmware"
targets = { "CP-8841-3PCC" = "sip88xx.12-0-1MPP-BN.loads" }
"#;

impl Server {
    pub fn start(dir: &Path, extra: &str) -> Server {
        Server::start_with(dir, &format!("{BASE_CONFIG}{extra}"))
    }

    pub fn start_with(dir: &Path, config: &str) -> Server {
        Server::start_under(dir, config, &[])
    }

    /// The same, started through `wrapper` (e.g. `prlimit --nofile=128:128`); its child must be the server.
    pub fn start_under(dir: &Path, config: &str, wrapper: &[&str]) -> Server {
        std::fs::write(dir.join("provisor.toml"), config).unwrap();
        let bin = env!("CARGO_BIN_EXE_provisor");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = command
            .args(["serve", "--config", s(&dir.join("provisor.toml"))])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let (mut http, mut https, mut tftp, mut syslog, mut admin) =
            (String::new(), String::new(), 0, 0, String::new());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else { break };
            let t = line.trim();
            let port = |t: &str| t.rsplit(':').next().unwrap().parse::<u16>().unwrap();
            if let Some(a) = t.strip_prefix("HTTPS") {
                https = a.trim().to_string();
            } else if let Some(a) = t.strip_prefix("HTTP") {
                http = a.trim().to_string();
            } else if t.starts_with("TFTP") {
                tftp = port(t);
            } else if t.starts_with("syslog") {
                syslog = port(t);
            } else if let Some(a) = t.strip_prefix("admin") {
                admin = a.trim().to_string();
            } else if t.starts_with("data") {
                break;
            }
        }
        assert!(!http.is_empty() && tftp != 0, "server did not start: {}", log.lock().unwrap());
        Server { child, dir: dir.to_path_buf(), http, https, tftp, syslog, admin, log }
    }

    pub fn data(&self) -> String {
        s(&self.dir.join("data")).to_string()
    }

    /// curl: (status, headers, body).
    pub fn curl(&self, args: &[&str]) -> (u16, String, Vec<u8>) {
        let headers = self.dir.join(format!("headers-{}", std::process::id()));
        let mut all = vec!["-s", "-D", s(&headers), "-o", "-"];
        all.extend_from_slice(args);
        let out = peer("curl", &all, None);
        let h = std::fs::read_to_string(&headers).unwrap_or_default();
        let status = h
            .lines()
            .rfind(|l| l.starts_with("HTTP/"))
            .and_then(|l| l.split(' ').nth(1))
            .map_or(0, |c| c.parse().unwrap());
        (status, h.to_ascii_lowercase(), out.stdout)
    }

    /// The admin listener's Prometheus text.
    pub fn metrics(&self) -> String {
        let (status, _, body) = self.curl(&[&format!("{}/metrics", self.admin)]);
        assert_eq!(status, 200, "admin /metrics");
        String::from_utf8(body).unwrap()
    }

    pub fn get(&self, path: &str) -> (u16, String, Vec<u8>) {
        self.curl(&[&format!("{}{path}", self.http)])
    }

    pub fn get_tls(&self, path: &str, cert: Option<&(PathBuf, PathBuf)>) -> (u16, String, Vec<u8>) {
        let ca = self.dir.join("data/tls/ca.pem");
        let url = format!("{}{path}", self.https);
        let mut args = vec!["--cacert", s(&ca)];
        if let Some((c, k)) = cert {
            args.extend_from_slice(&["--cert", s(c), "--key", s(k)]);
        }
        args.push(&url);
        self.curl(&args)
    }

    pub fn tftp_hpa(&self, file: &str) -> Vec<u8> {
        let out = self.dir.join("tftp-hpa.out");
        let _ = std::fs::remove_file(&out);
        let port = self.tftp.to_string();
        let o = peer("tftp", &["127.0.0.1", &port, "-m", "octet", "-c", "get", file, s(&out)], None);
        std::fs::read(&out).unwrap_or_else(|_| panic!("tftp-hpa get {file}: {o:?}"))
    }

    pub fn atftp(&self, file: &str) -> Vec<u8> {
        let out = self.dir.join("atftp.out");
        let _ = std::fs::remove_file(&out);
        let port = self.tftp.to_string();
        let o = peer("atftp", &["-g", "-r", file, "-l", s(&out), "127.0.0.1", &port], None);
        assert!(o.status.success(), "atftp get {file}: {o:?}");
        std::fs::read(&out).unwrap()
    }

    pub fn secrets(&self, mac: &str) -> serde_json::Value {
        let out = ok(provisor(&["device", "--data-dir", &self.data(), "show", mac, "--secrets", "--json"]));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["secrets"].clone()
    }

    pub fn show(&self, mac: &str) -> String {
        String::from_utf8(ok(provisor(&["device", "--data-dir", &self.data(), "show", mac])).stdout).unwrap()
    }

    /// `device show` once `ready` holds for it (the journal writes behind the responses), or as it is after 10 s.
    pub fn show_when(&self, mac: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let shown = self.show(mac);
            if ready(&shown) || Instant::now() > deadline {
                return shown;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
