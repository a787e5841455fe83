//! A throwaway PostgreSQL cluster for one test, from Debian's packages (`initdb`, `pg_ctl` in
//! `/usr/lib/postgresql/<version>/bin`): its own directory, a free loopback port, trust authentication, no fsync.
//! Run as root, the server runs as the `postgres` user (PostgreSQL refuses to run as root). Stopped (immediately)
//! when dropped. With `CI=true` a missing PostgreSQL is a failure, never a skip.
//!
//! Shared by the server's and the CLI's tests (`#[path]`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster.
pub struct Cluster {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    next_db: std::sync::atomic::AtomicU32,
}

/// The directory of Debian's PostgreSQL server programs (the newest version installed).
fn server_bin() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("PROVISOR_TEST_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    found.pop()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Cluster {
    /// Starts a cluster, or `None` (with a note) when PostgreSQL is not installed outside CI.
    pub fn start() -> Option<Cluster> {
        let Some(bin) = server_bin() else {
            assert!(
                std::env::var("CI").is_err(),
                "PostgreSQL is not installed (Debian package postgresql; .ci/test installs it): CI never skips"
            );
            eprintln!("note: PostgreSQL is not installed here: this test is skipped (CI installs it)");
            return None;
        };
        let as_postgres = unsafe { libc_geteuid() } == 0;
        let dir = tempfile::Builder::new().prefix("provisor-pg-").tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if as_postgres {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let out = Command::new("id").args(["-u", "postgres"]).output().unwrap();
            let uid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("a postgres user");
            let out = Command::new("id").args(["-g", "postgres"]).output().unwrap();
            let gid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            std::os::unix::fs::chown(&data, Some(uid), Some(gid)).unwrap();
        }
        let cluster = Cluster {
            _dir: dir,
            data,
            bin,
            port: free_port(),
            as_postgres,
            next_db: std::sync::atomic::AtomicU32::new(0),
        };
        let data = cluster.data.display().to_string();
        cluster.run("initdb", &["-D", &data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]);
        cluster.start_again();
        Some(cluster)
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let out = if self.as_postgres {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&path).args(args).output()
        } else {
            Command::new(&path).args(args).output()
        }
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server (again, after [`Cluster::stop`]) and waits until it accepts connections.
    pub fn start_again(&self) {
        let data = self.data.display().to_string();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off -c max_connections=200",
            self.port, data
        );
        let log = self.data.join("server.log").display().to_string();
        self.run("pg_ctl", &["-D", &data, "-o", &options, "-l", &log, "-w", "-t", "60", "start"]);
    }

    /// Stops the server at once (`immediate`: like a crash; committed transactions survive).
    pub fn stop(&self) {
        let data = self.data.display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }

    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database; its URL.
    pub fn fresh_database(&self) -> String {
        let n = self.next_db.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("provisor_test_{n}");
        let psql = self.bin.join("psql");
        let out = Command::new(&psql)
            .args([
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url("postgres"),
                "-c",
                &format!("CREATE DATABASE {name}"),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "CREATE DATABASE: {}", String::from_utf8_lossy(&out.stderr));
        self.url(&name)
    }

    /// `pg_dump` of the database at `url`, as SQL text.
    pub fn dump(&self, url: &str) -> String {
        let out = Command::new(self.bin.join("pg_dump")).args(["--inserts", "-d", url]).output().unwrap();
        assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// The server programs' directory.
    pub fn bin(&self) -> &Path {
        &self.bin
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let path = self.bin.join("pg_ctl");
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&path).args(args).output()
        } else {
            Command::new(&path).args(args).output()
        };
    }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
