//! The move from the embedded default to PostgreSQL, end to end with the `provisor` binary and a real PostgreSQL
//! server: `init` writes the master key, the SQLite inventory holds no secret in clear, `db copy` moves it (again
//! without duplicates), every command then talks to PostgreSQL through the configuration or
//! `PROVISOR_DATABASE_URL`, `db status` and `db migrate`, and `secrets rotate-master`.

mod common;
#[path = "../../server/tests/common/postgres.rs"]
mod postgres;

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn provisor(config: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_provisor"));
    c.args(args).env("PROVISOR_CONFIG", config).env_remove("PROVISOR_DATA_DIR").env_remove("PROVISOR_DATABASE_URL");
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null()).output().expect("run provisor")
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn fail(o: Output) -> String {
    assert!(!o.status.success(), "should fail: {}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn an_inventory_moves_from_sqlite_to_postgresql_with_its_secrets_sealed() {
    let Some(cluster) = postgres::Cluster::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let out = Command::new(env!("CARGO_BIN_EXE_provisor"))
        .args(["init", site.to_str().unwrap(), "--identity", "mac"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    ok(out);
    let config = site.join("provisor.toml");
    let key = site.join("secrets.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600, "the master key is private");
    ok(provisor(&config, &[], &["device", "import", site.join("devices.csv").to_str().unwrap()]));
    ok(provisor(&config, &[], &["group", "put", "defaults", "--param", "Admin_Password=site-admin-Pa55"]));
    let status = ok(provisor(&config, &[], &["db", "status"]));
    assert!(
        status.contains("SQLite") && status.contains("sealed at rest") && status.contains("devices     2"),
        "{status}"
    );
    // The SQLite file holds no password.
    let data = site.join("data");
    let mut raw = std::fs::read(data.join("inventory.sqlite")).unwrap();
    raw.extend(std::fs::read(data.join("inventory.sqlite-wal")).unwrap_or_default());
    let raw = String::from_utf8_lossy(&raw);
    for secret in ["change-me-201", "change-me-202", "site-admin-Pa55"] {
        assert!(!raw.contains(secret), "{secret} in inventory.sqlite");
    }
    // A fetch served from the SQLite site, for the journal to move too (stopped with SIGTERM: the journal flushes).
    let text = std::fs::read_to_string(&config).unwrap();
    let mut rig = text.clone();
    for port in ["8080", "8443", "6969", "5514", "9180"] {
        rig = rig.replace(&format!("127.0.0.1:{port}"), "127.0.0.1:0");
    }
    let mut server = common::serve::Server::start_with(&site, &rig);
    assert_eq!(server.get("/000e08aabb01.xml").0, 200);
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    server.child.wait().unwrap();
    std::fs::write(&config, &text).unwrap();
    let shown = ok(provisor(&config, &[], &["device", "show", "000e08aabb01", "--json", "--secrets"]));
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert!(v["status"]["last_seen_ms"].is_i64() && v["status"]["served"].is_array(), "{shown}");

    // A web UI user, to be copied with its password hash.
    let mut add = Command::new(env!("CARGO_BIN_EXE_provisor"))
        .args(["user", "add", "ops", "--role", "operator", "--password-stdin"])
        .env("PROVISOR_CONFIG", &config)
        .env_remove("PROVISOR_DATA_DIR")
        .env_remove("PROVISOR_DATABASE_URL")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    add.stdin.take().unwrap().write_all(b"a long enough password\n").unwrap();
    assert!(add.wait_with_output().unwrap().status.success());

    // The copy, twice: the second replaces, adds nothing.
    let url = cluster.fresh_database();
    let from = format!("sqlite:{}", data.display());
    let first = ok(provisor(&config, &[], &["db", "copy", "--from", &from, "--to", &url]));
    assert!(first.contains("copied 2 device(s) (2 new, 0 replaced), 1 group(s)"), "{first}");
    assert!(first.contains(", 1 new web UI user(s)"), "{first}");
    let second = ok(provisor(&config, &[], &["db", "copy", "--from", &from, "--to", &url]));
    assert!(second.contains("(0 new, 2 replaced)") && second.contains("the target has 2 device(s)"), "{second}");
    // The fetch and the user add.
    assert!(first.contains("2 audit line(s) read") && !first.contains(" 0 row(s) written"), "{first}");
    assert!(second.contains(" 0 row(s) written"), "the second copy adds no journal row twice: {second}");
    assert!(second.contains(", 0 new web UI user(s)"), "{second}");
    let dump = cluster.dump(&url);
    assert!(dump.contains("000e08aabb01"));
    for secret in ["change-me-201", "change-me-202", "site-admin-Pa55"] {
        assert!(!dump.contains(secret), "{secret} in the pg_dump");
    }

    // Every command now reaches PostgreSQL through PROVISOR_DATABASE_URL (or [inventory] url).
    let pg = [("PROVISOR_DATABASE_URL", url.as_str())];
    let list = ok(provisor(&config, &pg, &["device", "list"]));
    assert!(list.contains("000e08aabb01") && list.contains("000e08aabb02"), "{list}");
    assert!(ok(provisor(&config, &pg, &["user", "list"])).starts_with("ops\toperator\t"));
    let audit = ok(provisor(&config, &pg, &["device", "audit", "000e08aabb01"]));
    assert!(audit.contains("000e08aabb01.xml"), "the audit trail moved: {audit}");
    assert_eq!(ok(provisor(&config, &pg, &["device", "show", "000e08aabb01", "--json", "--secrets"])), shown);
    let status = ok(provisor(&config, &pg, &["db", "status"]));
    assert!(status.contains("PostgreSQL") && status.contains("0 pending") && !status.contains(":***@"), "{status}");
    ok(provisor(&config, &pg, &["db", "migrate"]));
    ok(provisor(&config, &pg, &["device", "rm", "000e08aabb02"]));
    assert_eq!(
        ok(provisor(&config, &[], &["device", "list"])).matches("000e08aabb02").count(),
        1,
        "SQLite is untouched"
    );

    // And back: PostgreSQL to a new SQLite inventory, journal and all, sealed under the site's key.
    let back = dir.path().join("back");
    let to = format!("sqlite:{}", back.display());
    let copied = ok(provisor(&config, &[], &["db", "copy", "--from", &url, "--to", &to]));
    assert!(copied.contains("copied 1 device(s) (1 new, 0 replaced)"), "{copied}");
    let data_dir = [("PROVISOR_DATA_DIR", back.to_str().unwrap())];
    let there = ok(provisor(&config, &data_dir, &["device", "show", "000e08aabb01", "--json", "--secrets"]));
    assert_eq!(there, shown, "the same device, secrets and journal state after the round trip");

    // A new master key: every secret re-sealed, the same values come back, the old key no longer opens it.
    let rotated = ok(provisor(&config, &pg, &["secrets", "rotate-master"]));
    assert!(rotated.contains("re-sealed"), "{rotated}");
    assert!(site.join("secrets.key.old").exists());
    assert_eq!(ok(provisor(&config, &pg, &["device", "show", "000e08aabb01", "--json", "--secrets"])), shown);
    std::fs::copy(site.join("secrets.key.old"), &key).unwrap();
    let refused = fail(provisor(&config, &pg, &["device", "list"]));
    assert!(refused.contains("is not the one the inventory's secrets are sealed with"), "{refused}");
}

#[test]
fn a_database_url_that_is_not_postgresql_is_refused_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("provisor.toml");
    std::fs::write(&config, "[inventory]\nurl = \"mysql://db/provisor\"\n").unwrap();
    let err = fail(provisor(&config, &[], &["device", "list"]));
    assert!(err.contains("provisor.toml:2") && err.contains("[inventory] url"), "{err}");
}
