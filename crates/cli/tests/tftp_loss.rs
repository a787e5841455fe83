//! TFTP under loss, duplication and delay, between two network namespaces this test makes (a veth pair in the RFC
//! 2544 benchmarking range 198.18.0.0/30; the kernel has no `sch_netem`, so: iptables `statistic` drops 20 % of the
//! DATA and ACK datagrams arriving in each namespace, iptables `TEE` duplicates 5 % of those each side sends, and a
//! `tbf` qdisc on each end queues packets, which delays windows; requests, OACKs and ACK 0 are spared, see
//! `DATA_OR_ACK`). Provisor's server and tftpd-hpa serve the same files; tftp-hpa, atftp, busybox and Provisor's
//! client download them at several block and window sizes; every completed download is checked byte for byte. Data
//! packets per block delivered are counted by iptables on each server's transfer ports and printed side by side
//! (BENCHMARKS.md quotes them).
//!
//! Needs root, iproute2 and iptables (installed by .ci/test): a missing tool fails the test.

mod common;
use common::peer;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVER_IP: &str = "198.18.0.1";
const CLIENT_IP: &str = "198.18.0.2";
/// iptables u32: the first four bytes after the IP and UDP headers (opcode, block) are DATA of any block or ACK of a
/// block other than 0, so option negotiation (RRQ, OACK, ACK 0) passes untouched.
const DATA_OR_ACK: &str = "0>>22&0x3C@8=0x30000:0x3FFFF,0x40001:0x4FFFF";

/// Two namespaces joined by a veth pair, impaired; deleted on drop.
struct Pair {
    server: String,
    client: String,
}

fn run(args: &[&str]) {
    let o = peer(args[0], &args[1..], None);
    assert!(o.status.success(), "{}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr));
}

impl Pair {
    fn new() -> Pair {
        let id = std::process::id() % 100_000;
        let pair = Pair { server: format!("pvl-s{id}"), client: format!("pvl-c{id}") };
        let (s, c) = (pair.server.as_str(), pair.client.as_str());
        let (sv, cv) = (format!("pvs{id}"), format!("pvc{id}"));
        run(&["ip", "netns", "add", s]);
        run(&["ip", "netns", "add", c]);
        run(&["ip", "link", "add", &sv, "netns", s, "type", "veth", "peer", "name", &cv, "netns", c]);
        for (ns, dev, addr, peer_addr) in [(s, &sv, SERVER_IP, CLIENT_IP), (c, &cv, CLIENT_IP, SERVER_IP)] {
            run(&["ip", "-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
            let ipt = |rule: &[&str]| {
                let mut a = vec!["ip", "netns", "exec", ns, "iptables"];
                a.extend_from_slice(rule);
                run(&a);
            };
            // 20 % loss of the DATA and ACK datagrams arriving; 5 % of those leaving are sent twice. The TFTP header
            // is matched with u32 (IP header length, then 8 bytes of UDP header). Negotiation passes untouched:
            // atftp aborts the whole download when an OACK comes twice (after a lost ACK 0), against tftpd-hpa too.
            let impaired = ["-p", "udp", "-m", "u32", "--u32", DATA_OR_ACK, "-m", "statistic", "--mode", "random"];
            ipt(&[&["-A", "INPUT"][..], &impaired, &["--probability", "0.2", "-j", "DROP"]].concat());
            let tee = ["--probability", "0.05", "-j", "TEE", "--gateway", peer_addr];
            ipt(&[&["-t", "mangle", "-A", "POSTROUTING"][..], &impaired, &tee].concat());
            // Queueing delay: 8 Mbit/s with up to 50 ms of queue.
            run(&[
                "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", "8mbit", "burst",
                "16kb", "latency", "50ms",
            ]);
        }
        // Count the data packets each server sends, by its transfer ports.
        for range in ["50000:50999", "51000:51999"] {
            run(&[
                "ip",
                "netns",
                "exec",
                s,
                "iptables",
                "-A",
                "OUTPUT",
                "-p",
                "udp",
                "--sport",
                range,
                "-m",
                "length",
                "--length",
                "400:65535",
            ]);
        }
        pair
    }

    fn exec(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// Data packets sent from the transfer ports `range` since the last call (the counters are zeroed).
    fn data_packets(&self, range: &str) -> u64 {
        let o = peer("ip", &["netns", "exec", &self.server, "iptables", "-L", "OUTPUT", "-v", "-x", "-n", "-Z"], None);
        let text = String::from_utf8_lossy(&o.stdout);
        let wanted = format!("spts:{range}");
        text.lines()
            .find(|l| l.contains(&wanted))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no counter for {range}: {text}"))
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
    }
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One client's downloads from one server: completed/attempted, data packets per block, median seconds.
struct Row {
    client: String,
    server: &'static str,
    completed: usize,
    attempted: usize,
    per_block: f64,
    median_s: f64,
}

#[allow(clippy::too_many_arguments)]
fn downloads(
    pair: &Pair,
    root: &Path,
    file: &str,
    blksize: usize,
    server: (&'static str, u16, &str),
    client: &str,
    attempts: usize,
    command: &dyn Fn(u16, &Path) -> Command,
) -> Row {
    let expected = std::fs::read(root.join(file)).unwrap();
    let blocks = (expected.len() / blksize + 1) as u64;
    let (name, port, range) = server;
    let out = root.parent().unwrap().join(format!("out-{client}-{name}").replace(' ', "_"));
    let (mut completed, mut packets, mut times) = (0, 0u64, Vec::new());
    pair.data_packets(range);
    for _ in 0..attempts {
        let _ = std::fs::remove_file(&out);
        let started = Instant::now();
        let mut cmd = command(port, &out);
        let o = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{client}: {e}"));
        let sent = pair.data_packets(range);
        match std::fs::read(&out) {
            Ok(got) if got == expected => {
                completed += 1;
                packets += sent;
                times.push(started.elapsed().as_secs_f64());
            }
            // A download that completed must be byte-identical; an aborted one leaves a short (or no) file.
            Ok(got) if got.len() >= expected.len() => panic!("{client} from {name}: the bytes differ"),
            _ => eprintln!("{client} from {name}: not completed: {}", String::from_utf8_lossy(&o.stderr).trim()),
        }
    }
    times.sort_by(f64::total_cmp);
    Row {
        client: client.to_string(),
        server: name,
        completed,
        attempted: attempts,
        per_block: if completed > 0 { packets as f64 / (completed as u64 * blocks) as f64 } else { f64::NAN },
        median_s: times.get(times.len() / 2).copied().unwrap_or(f64::NAN),
    }
}

#[test]
fn downloads_stay_byte_identical_under_loss_duplication_and_delay() {
    let pair = Pair::new();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let mut seed = 0x9e3779b97f4a7c15u64;
    let random: Vec<u8> = (0..60_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    std::fs::write(root.join("small.bin"), &random[..24_000]).unwrap();
    std::fs::write(root.join("large.bin"), &random).unwrap();
    let bin = env!("CARGO_BIN_EXE_provisor");
    let r = root.to_str().unwrap();
    let _provisor = Kill(
        pair.exec(&pair.server, bin)
            .args(["tftp", "serve", "--root", r, "--listen", &format!("{SERVER_IP}:6969"), "--timeout", "0.2"])
            // Ten retries: at 20 % loss each way a round fails 36 % of the time, and five failures in a row somewhere
            // in a 47-block lock-step file happen often enough to make a test flaky (ten: about 1 in 10,000).
            .args(["--port-range", "50000-50999", "--retries", "10"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _tftpd_hpa = Kill(
        pair.exec(&pair.server, "/usr/sbin/in.tftpd")
            .args(["-L", "-a", &format!("{SERVER_IP}:6970"), "-s", r, "-u", "root", "-T", "200000"])
            .args(["-R", "51000:51999"])
            .stderr(Stdio::null())
            .spawn()
            .expect("tftpd-hpa (in.tftpd) is missing; install tftpd-hpa (see .ci/test)"),
    );
    std::thread::sleep(Duration::from_millis(500));
    let servers = [("provisor", 6969u16, "50000:50999"), ("tftpd-hpa", 6970, "51000:51999")];
    let mut rows = Vec::new();
    for server in servers {
        let host = SERVER_IP;
        rows.push(downloads(&pair, &root, "small.bin", 512, server, "tftp-hpa", 1, &|port, out| {
            let mut c = pair.exec(&pair.client, "timeout");
            c.args(["90", "tftp", host, &port.to_string(), "-m", "octet", "-c", "get", "small.bin"]);
            c.arg(out);
            c
        }));
        rows.push(downloads(&pair, &root, "small.bin", 1428, server, "atftp blksize 1428", 4, &|port, out| {
            let mut c = pair.exec(&pair.client, "timeout");
            c.args(["60", "atftp", "--option", "blksize 1428", "-g", "-r", "small.bin", "-l"]);
            c.args([out.to_str().unwrap(), host, &port.to_string()]);
            c
        }));
        rows.push(downloads(&pair, &root, "small.bin", 1428, server, "busybox blksize 1428", 2, &|port, out| {
            let mut c = pair.exec(&pair.client, "timeout");
            c.args(["60", "busybox", "tftp", "-b", "1428", "-g", "-r", "small.bin", "-l"]);
            c.args([out.to_str().unwrap(), host, &port.to_string()]);
            c
        }));
        // Provisor's client: lock-step on the small file from both servers; windows (RFC 7440, which tftpd-hpa does
        // not offer) on the large one from Provisor's.
        let cases: &[(&str, usize, u16)] = if server.0 == "provisor" {
            &[("small.bin", 1428, 1), ("large.bin", 1428, 4), ("large.bin", 512, 16), ("large.bin", 1428, 16)]
        } else {
            &[("small.bin", 1428, 1)]
        };
        for &(file, blksize, w) in cases {
            let label = format!("provisor blksize {blksize} window {w}");
            rows.push(downloads(&pair, &root, file, blksize, server, &label, 2, &|port, out| {
                let mut c = pair.exec(&pair.client, "timeout");
                c.args(["60", bin, "tftp", "get", &format!("{host}:{port}"), file, "-o"]);
                c.arg(out);
                c.args(["--blksize", &blksize.to_string(), "--windowsize", &w.to_string()]);
                c
            }));
        }
    }
    println!("\n20 % loss, 5 % duplication, 8 Mbit/s queue; data packets per block delivered (1.0 = no waste):");
    println!("{:<36} {:<10} {:>9} {:>14} {:>9}", "client", "server", "completed", "packets/block", "median s");
    for row in &rows {
        println!(
            "{:<36} {:<10} {:>5}/{:<3} {:>14.2} {:>9.2}",
            row.client, row.server, row.completed, row.attempted, row.per_block, row.median_s
        );
    }
    for row in &rows {
        // tftp-hpa, busybox and Provisor's client finish every download from Provisor's server; atftp aborts on a
        // repeated OACK or after its own retries (against tftpd-hpa too), so it must finish at least once.
        let needed = if row.client.starts_with("atftp") || row.server != "provisor" { 1 } else { row.attempted };
        assert!(row.completed >= needed, "{} from {}: {}/{}", row.client, row.server, row.completed, row.attempted);
        if row.client.ends_with("window 1") || row.client == "tftp-hpa" {
            // Lock-step: a loss costs one block; 20 % each way makes ~1.6 on average.
            assert!(row.per_block < 3.0, "{} from {}: {:.2} packets per block", row.client, row.server, row.per_block);
        }
    }
}
