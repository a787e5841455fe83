//! `provisor tftp serve` against real TFTP clients (tftp-hpa, atftp, busybox, curl), and `provisor tftp get`
//! against tftpd-hpa. Loopback only. A missing client is a failure: CI installs them (see .ci/test).

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something answers TFTP on the port (a request for a missing file gets an ERROR back).
fn wait_ready(port: u16) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 600];
    while Instant::now() < deadline {
        let _ = s.send_to(b"\x00\x01.ready-probe\x00octet\x00", ("127.0.0.1", port));
        if s.recv_from(&mut buf).is_ok() {
            return;
        }
    }
    panic!("nothing answers TFTP on port {port}");
}

fn provisor_server(root: &Path, extra: &[&str]) -> Server {
    for _ in 0..5 {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["tftp", "serve", "--root", root.to_str().unwrap(), "--listen", &listen];
        args.extend_from_slice(extra);
        let child = Command::new(env!("CARGO_BIN_EXE_provisor"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Server { child, port };
        std::thread::sleep(Duration::from_millis(50));
        if server.child.try_wait().unwrap().is_none() {
            wait_ready(port);
            return server;
        }
        let _ = server.child.wait();
    }
    panic!("could not start provisor tftp serve");
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("the TFTP client {program:?} is missing ({e}); install it (see .ci/test)"))
}

fn random_file(path: &Path, len: usize) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ len as u64;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(path, data).unwrap();
}

fn same(a: &Path, b: &Path) -> bool {
    std::fs::read(a).ok() == std::fs::read(b).ok()
}

/// Downloads `name` with every client and checks each copy is byte-identical.
fn every_client_downloads(root: &Path, port: u16, name: &str, out: &Path) {
    let p = port.to_string();
    let src = root.join(name);
    let target = |client: &str| -> PathBuf { out.join(format!("{client}-{name}")) };
    let t = target("tftp-hpa");
    let o = run("tftp", &["127.0.0.1", &p, "-m", "binary", "-c", "get", name, t.to_str().unwrap()]);
    assert!(same(&src, &t), "tftp-hpa {name}: {}", String::from_utf8_lossy(&o.stdout));
    for options in [vec![], vec!["blksize 1468", "tsize 0"], vec!["blksize 1468", "tsize 0", "windowsize 16"]] {
        let t = target(&format!("atftp{}", options.len()));
        let mut args = Vec::new();
        for o in &options {
            args.extend(["--option", o]);
        }
        args.extend(["-g", "-r", name, "-l", t.to_str().unwrap(), "127.0.0.1", &p]);
        let o = run("atftp", &args);
        assert!(same(&src, &t), "atftp {options:?} {name}: {}", String::from_utf8_lossy(&o.stderr));
    }
    for blksize in [None, Some("1468")] {
        let t = target(&format!("busybox{}", blksize.is_some()));
        let mut args = vec!["tftp"];
        if let Some(b) = blksize {
            args.extend(["-b", b]);
        }
        args.extend(["-g", "-r", name, "-l", t.to_str().unwrap(), "127.0.0.1", &p]);
        let o = run("busybox", &args);
        assert!(same(&src, &t), "busybox {blksize:?} {name}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let t = target("curl");
    let url = format!("tftp://127.0.0.1:{p}/{name}");
    let mut args = vec!["-sS", "-o", t.to_str().unwrap(), &url];
    if std::fs::metadata(&src).unwrap().len() == 0 {
        // curl 7.88 fails on any empty file when it negotiates options (exit 71, "getpeername() failed"), with
        // tftpd-hpa as well; without options it works.
        args.insert(0, "--tftp-no-options");
    }
    let o = run("curl", &args);
    assert!(o.status.success() && same(&src, &t), "curl {name}: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn real_clients_download_byte_identical_files() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    for (name, len) in [
        ("empty.bin", 0),
        ("small.cfg", 300),
        ("exact.bin", 512 * 8),
        ("exact1468.bin", 1468 * 3),
        ("medium.bin", 100_000),
    ] {
        random_file(&root.path().join(name), len);
    }
    let server = provisor_server(root.path(), &[]);
    for name in ["empty.bin", "small.cfg", "exact.bin", "exact1468.bin", "medium.bin"] {
        every_client_downloads(root.path(), server.port, name, out.path());
    }
}

/// A file larger than 65,535 blocks of 512 bytes (33,553,920 bytes): block numbers wrap to 0.
#[test]
fn rollover_past_65535_blocks() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    random_file(&root.path().join("big.loads"), 34_000_000);
    let server = provisor_server(root.path(), &[]);
    let p = server.port.to_string();
    let src = root.path().join("big.loads");
    let t = out.path().join("hpa");
    run("tftp", &["127.0.0.1", &p, "-m", "binary", "-c", "get", "big.loads", t.to_str().unwrap()]);
    assert!(same(&src, &t), "tftp-hpa");
    let t = out.path().join("atftp");
    run("atftp", &["-g", "-r", "big.loads", "-l", t.to_str().unwrap(), "127.0.0.1", &p]);
    assert!(same(&src, &t), "atftp");
    let t = out.path().join("busybox");
    run("busybox", &["tftp", "-g", "-r", "big.loads", "-l", t.to_str().unwrap(), "127.0.0.1", &p]);
    assert!(same(&src, &t), "busybox");
    let t = out.path().join("curl");
    run("curl", &["-sS", "-o", t.to_str().unwrap(), &format!("tftp://127.0.0.1:{p}/big.loads")]);
    assert!(same(&src, &t), "curl");
}

#[test]
fn missing_file_is_error_1_and_escape_is_error_2() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(base.path().join("secret.txt"), "secret").unwrap();
    std::fs::write(root.join("XMLDefault.cnf.xml"), "<Default/>").unwrap();
    let server = provisor_server(&root, &["--case-insensitive"]);
    let p = server.port.to_string();
    let url = |f: &str| format!("tftp://127.0.0.1:{p}/{f}");
    let out = base.path().join("o");
    // curl: exit 68 = "file not found", 69 = "permission problem" (access violation).
    let o = run("curl", &["-s", "-o", out.to_str().unwrap(), &url("missing.cfg")]);
    assert_eq!(o.status.code(), Some(68));
    let o = run("curl", &["-s", "--path-as-is", "-o", out.to_str().unwrap(), &url("../secret.txt")]);
    assert_eq!(o.status.code(), Some(69), "path escape");
    let o = run("tftp", &["127.0.0.1", &p, "-m", "binary", "-c", "get", "../secret.txt", out.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("Error code 2"), "{said}");
    let o = run("tftp", &["127.0.0.1", &p, "-m", "binary", "-c", "get", "missing", out.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("Error code 1"), "{said}");
    // Phones ask for xmlDefault.CNF.XML.
    let o = run("curl", &["-s", "-o", out.to_str().unwrap(), &url("xmlDefault.CNF.XML")]);
    assert!(o.status.success());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "<Default/>");
}

#[test]
fn netascii_with_tftp_hpa_and_atftp() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("t.txt"), "line1\nline2\r\nend\r").unwrap();
    let server = provisor_server(root.path(), &[]);
    let p = server.port.to_string();
    let t = out.path().join("hpa.txt");
    run("tftp", &["127.0.0.1", &p, "-m", "ascii", "-c", "get", "t.txt", t.to_str().unwrap()]);
    assert_eq!(std::fs::read(&t).unwrap(), b"line1\nline2\r\nend\r");
    let t = out.path().join("atftp.txt");
    run("atftp", &["--option", "mode netascii", "-g", "-r", "t.txt", "-l", t.to_str().unwrap(), "127.0.0.1", &p]);
    assert_eq!(std::fs::read(&t).unwrap(), b"line1\nline2\r\nend\r");
}

/// Provisor's client against the reference server, tftpd-hpa (`in.tftpd`).
#[test]
fn our_client_against_tftpd_hpa() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    random_file(&root.path().join("f.bin"), 300_000);
    std::fs::write(root.path().join("t.txt"), "a\nb\r\n").unwrap();
    let port = free_port();
    let mut child = Command::new("/usr/sbin/in.tftpd")
        // -c: write requests may create files (uploads).
        .args(["-L", "-c", "-a", &format!("127.0.0.1:{port}"), "-s", root.path().to_str().unwrap(), "-u", "root"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tftpd-hpa (in.tftpd) is missing; install tftpd-hpa (see .ci/test)");
    wait_ready(port);
    let server = format!("127.0.0.1:{port}");
    let bin = env!("CARGO_BIN_EXE_provisor");
    for extra in
        [vec![], vec!["--blksize", "1468"], vec!["--blksize", "1468", "--windowsize", "16"], vec!["--no-tsize"]]
    {
        let t = out.path().join("f.bin");
        let mut args = vec!["tftp", "get", &server, "f.bin", "-o", t.to_str().unwrap()];
        args.extend(extra.iter().copied());
        let o = Command::new(bin).args(&args).output().unwrap();
        assert!(o.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(same(&root.path().join("f.bin"), &t), "{extra:?}");
    }
    let t = out.path().join("t.txt");
    let o = Command::new(bin)
        .args(["tftp", "get", &server, "t.txt", "-o", t.to_str().unwrap(), "--netascii"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&t).unwrap(), b"a\nb\r\n");
    let o = Command::new(bin).args(["tftp", "get", &server, "nope", "-o", t.to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("server error 1"));
    // Uploads (write requests): empty, an exact multiple of the block size (a final empty block), large.
    for (name, len, extra) in [
        ("empty.bin", 0, vec![]),
        ("exact.bin", 1024, vec![]),
        ("large.bin", 300_000, vec!["--blksize", "1468"]),
        ("plain.bin", 5000, vec!["--no-tsize"]),
    ] {
        let src = out.path().join(format!("src-{name}"));
        random_file(&src, len);
        let mut args = vec!["tftp", "put", &server, src.to_str().unwrap(), "--name", name];
        args.extend(extra.iter().copied());
        let o = Command::new(bin).args(&args).output().unwrap();
        assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(same(&src, &root.path().join(name)), "{name} arrived whole");
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Write requests: refused with ERROR 2 by default; with --upload-dir, real clients upload new files (never
/// overwriting, never outside the directory, never over the size limit).
#[test]
fn uploads_from_real_clients() {
    let root = tempfile::tempdir().unwrap();
    let uploads = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    random_file(&src.path().join("log.txt"), 20_000);
    let log = src.path().join("log.txt");
    let log_s = log.to_str().unwrap();
    {
        let server = provisor_server(root.path(), &[]);
        let o = run("curl", &["-s", "-T", log_s, &format!("tftp://127.0.0.1:{}/x.txt", server.port)]);
        assert_eq!(o.status.code(), Some(69), "uploads are refused by default (ERROR 2)");
        let o = run(env!("CARGO_BIN_EXE_provisor"), &["tftp", "put", &format!("127.0.0.1:{}", server.port), log_s]);
        assert!(String::from_utf8_lossy(&o.stderr).contains("server error 2"), "{o:?}");
    }
    let server = provisor_server(
        root.path(),
        &["--upload-dir", uploads.path().to_str().unwrap(), "--upload-max-bytes", "100000"],
    );
    let p = server.port.to_string();
    run("tftp", &["127.0.0.1", &p, "-m", "binary", "-c", "put", log_s, "hpa.txt"]);
    run(
        "atftp",
        &["--option", "blksize 1468", "--option", "tsize 20000", "-p", "-l", log_s, "-r", "atftp.txt", "127.0.0.1", &p],
    );
    run("busybox", &["tftp", "-p", "-l", log_s, "-r", "busybox.txt", "127.0.0.1", &p]);
    let o = run("curl", &["-sS", "-T", log_s, &format!("tftp://127.0.0.1:{p}/curl.txt")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o =
        run(env!("CARGO_BIN_EXE_provisor"), &["tftp", "put", &format!("127.0.0.1:{p}"), log_s, "--name", "own.txt"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::thread::sleep(Duration::from_millis(200));
    for name in ["hpa.txt", "atftp.txt", "busybox.txt", "curl.txt", "own.txt"] {
        assert!(same(&log, &uploads.path().join(name)), "{name}");
    }
    // No overwrite (ERROR 6), no escape (ERROR 2), no file over the limit (ERROR 3).
    let o = run("curl", &["-s", "-T", log_s, &format!("tftp://127.0.0.1:{p}/curl.txt")]);
    assert!(!o.status.success());
    let o = run("curl", &["-s", "--path-as-is", "-T", log_s, &format!("tftp://127.0.0.1:{p}/../escape.txt")]);
    assert_eq!(o.status.code(), Some(69));
    assert!(!uploads.path().parent().unwrap().join("escape.txt").exists());
    random_file(&src.path().join("big.txt"), 150_000);
    let o = run(
        "curl",
        &["-s", "-T", src.path().join("big.txt").to_str().unwrap(), &format!("tftp://127.0.0.1:{p}/big.txt")],
    );
    assert!(!o.status.success(), "over the limit (announced with tsize)");
    // tftp-hpa sends no tsize: the limit stops the upload part-way with ERROR 3.
    let o = run(
        "tftp",
        &["127.0.0.1", &p, "-m", "binary", "-c", "put", src.path().join("big.txt").to_str().unwrap(), "big2.txt"],
    );
    let said = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("Error code 3"), "{said}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!uploads.path().join("big.txt").exists());
    assert!(!uploads.path().join("big2.txt").exists());
    let leftovers: Vec<_> = std::fs::read_dir(uploads.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "no temporary files left");
}
