//! CLI commands end to end that need no server: `provisor init` and configuration errors, `provisor phone explain`
//! (a dry run on a virtual clock), and output into a closed pipe.

mod common;

use std::process::{Command, Stdio};

use common::{ok, provisor, s};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn init_writes_a_working_setup_and_config_errors_name_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    // Without --identity and without a terminal to ask on, init fails, names the flag and writes nothing.
    let out = provisor(&["init", s(&site)]);
    assert!(!out.status.success() && text(&out.stderr).contains("--identity certificate|mac"), "{}", text(&out.stderr));
    assert!(!site.exists());
    ok(provisor(&["init", s(&site), "--identity", "certificate", "--phone-ca", "test"]));
    let written = std::fs::read_to_string(site.join("provisor.toml")).unwrap();
    assert!(
        written.contains("\nidentity = \"certificate\"") && written.contains("\ntest_phone_ca = true"),
        "{written}"
    );
    // Every template the configuration lists as overridable, as the built-in one.
    for f in [
        "provisor.toml",
        "templates/mpp.xml",
        "templates/bootstrap.xml",
        "templates/SEP.cnf.xml",
        "templates/XMLDefault.cnf.xml",
        "devices.csv",
    ] {
        assert!(site.join(f).exists(), "{f}");
    }
    let listed = std::fs::read_to_string(site.join("provisor.toml")).unwrap();
    let line = listed.lines().find(|l| l.contains("Templates that override")).unwrap();
    for name in ["mpp.xml", "bootstrap.xml", "SEP.cnf.xml", "XMLDefault.cnf.xml"] {
        assert!(line.contains(name) && site.join("templates").join(name).exists(), "{name}: {line}");
    }
    ok(provisor(&["device", "--data-dir", s(&site.join("data")), "import", s(&site.join("devices.csv"))]));
    // The written configuration loads (dhcp-snippet reads it) ...
    let out = ok(provisor(&["dhcp-snippet", "dnsmasq", "--config", s(&site.join("provisor.toml"))]));
    assert!(text(&out.stdout).contains(",150,127.0.0.1"), "{}", text(&out.stdout));
    let out = ok(provisor(&["dhcp-snippet", "kea", "--config", s(&site.join("provisor.toml"))]));
    assert!(text(&out.stdout).contains("\"code\": 66"));
    // ... and a broken one is refused with file, line and key.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "data_dir = \"d\"\n\n[tftp]\nlisten = \"not-an-address\"\n").unwrap();
    let out = provisor(&["serve", "--config", s(&bad)]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(&format!("{}:4:", s(&bad))) && err.contains("[tftp] listen"), "{err}");
    std::fs::write(&bad, "[provisioning]\nunknown_devices = \"maybe\"\n").unwrap();
    let err = text(&provisor(&["serve", "--config", s(&bad)]).stderr);
    assert!(err.contains(":2:") && err.contains("unknown_devices"), "{err}");
    // init never overwrites.
    std::fs::write(site.join("devices.csv"), "mine").unwrap();
    ok(provisor(&["init", s(&site), "--identity", "mac"]));
    assert_eq!(std::fs::read_to_string(site.join("devices.csv")).unwrap(), "mine");
}

#[test]
fn explain_is_a_dry_run_that_shows_decisions_and_macros() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("8841.xml"),
        "<flat-profile><GPP_A>Provisioned</GPP_A><Resync_Periodic>600</Resync_Periodic>\
         <Profile_Rule>(\"$A\" ne \"Provisioned\")? /init.xml | /$PN/$MA.xml</Profile_Rule></flat-profile>",
    )
    .unwrap();
    let out = provisor(&[
        "phone",
        "explain",
        "--mac",
        "00:0E:08:AB:CD:EF",
        "--dhcp-tftp",
        "10.9.9.9",
        "--dir",
        s(dir.path()),
        "--for",
        "1h",
    ]);
    let t = text(&out.stdout);
    assert!(t.contains("fetches tftp://10.9.9.9/8841.xml"), "{t}");
    assert!(t.contains("condition \"\\\"Provisioned\\\" ne \\\"Provisioned\\\"\" is false"), "{t}");
    assert!(t.contains("fetches tftp://10.9.9.9/CP-8841-3PCC/000e08abcdef.xml"), "{t}");
    assert!(t.contains("next resync in 600 s (periodic)") || t.contains("error_retry"), "{t}");
    assert!(t.contains("$A = Provisioned") && t.contains("$MA = 000e08abcdef"), "{t}");
    assert_eq!(out.status.code(), Some(2), "the last resync failed (404): exit 2");
    // A saved state and a starting URL; --alias maps a foreign document onto parameters.
    std::fs::write(
        dir.path().join("state.xml"),
        "<flat-profile><GPP_B>/acct/user = /flat-profile/User_ID_1_ ;</GPP_B></flat-profile>",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("acct")).unwrap();
    std::fs::write(dir.path().join("acct/000e08abcdef.xml"), "<acct><user>7007</user></acct>").unwrap();
    let out = provisor(&[
        "phone",
        "explain",
        "--mac",
        "000e08abcdef",
        "--dir",
        s(dir.path()),
        "--state",
        s(&dir.path().join("state.xml")),
        "--server",
        "[--alias b] http://prov.example.com/acct/$MA.xml",
        "--for",
        "10m",
    ]);
    let t = text(&out.stdout);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("1 parameter(s) changed: User_ID_1_") && t.contains("$UID1 = 7007"), "{t}");
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("8841.xml"), "<flat-profile><Resync_Periodic>60</Resync_Periodic></flat-profile>")
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisor"))
        .args(["phone", "explain", "--mac", "000e08abcdef", "--dir", s(dir.path()), "--for", "30d"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(13), "ended by SIGPIPE: {:?}", out.status);
}

/// Runs provisor in `cwd` with only the given PROVISOR_* variables.
fn provisor_in(cwd: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_provisor"));
    c.args(args).current_dir(cwd).env_remove("PROVISOR_CONFIG").env_remove("PROVISOR_DATA_DIR");
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null()).output().expect("run provisor")
}

#[test]
fn every_command_finds_the_site_and_never_makes_an_empty_inventory() {
    assert!(
        !std::path::Path::new("/etc/provisor/provisor.toml").exists(),
        "this test needs a machine without /etc/provisor/provisor.toml (the package test purges its own)"
    );
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    ok(provisor(&["init", s(&site), "--identity", "mac"]));
    let config = site.join("provisor.toml");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();

    // Nothing names a site: every inventory command fails, names the ways to name one, and creates nothing.
    for args in [&["device", "list"][..], &["group", "list"], &["device", "add", "000e08aabb01"]] {
        let out = provisor_in(&elsewhere, &[], args);
        assert!(!out.status.success(), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains("--config") && err.contains("PROVISOR_CONFIG") && err.contains("/etc/provisor"), "{err}");
    }
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0, "nothing created in the working directory");

    // PROVISOR_CONFIG names it: a write creates the inventory where the configuration says, from any folder.
    let env = [("PROVISOR_CONFIG", s(&config))];
    ok(provisor_in(&elsewhere, &env, &["device", "import", s(&site.join("devices.csv"))]));
    assert!(site.join("data/inventory.sqlite").exists());
    let listed = text(&ok(provisor_in(&elsewhere, &env, &["device", "list", "--json"])).stdout);
    assert!(listed.contains("000e08aabb01"), "{listed}");
    // --config does the same, and wins over the variable.
    let listed = text(
        &ok(provisor_in(
            &elsewhere,
            &[("PROVISOR_CONFIG", "/nonexistent.toml")],
            &["device", "--config", s(&config), "list", "--json"],
        ))
        .stdout,
    );
    assert!(listed.contains("000e08aabb02"), "{listed}");
    // A configuration that does not exist is an error naming it, not an empty site.
    let err = text(&provisor_in(&elsewhere, &[("PROVISOR_CONFIG", "/nonexistent.toml")], &["device", "list"]).stderr);
    assert!(err.contains("/nonexistent.toml"), "{err}");

    // A read of a directory with no inventory is an error naming it; the directory is not created.
    let missing = dir.path().join("typo");
    let out = provisor_in(&elsewhere, &[], &["device", "--data-dir", s(&missing), "show", "000e08aabb01"]);
    assert!(text(&out.stderr).contains("no inventory at"), "{}", text(&out.stderr));
    assert!(!missing.exists());
    // A dry-run import against a site with no inventory yet shows every row as new and creates nothing.
    let out = ok(provisor_in(
        &elsewhere,
        &[],
        &["device", "--data-dir", s(&missing), "import", "--dry-run", s(&site.join("devices.csv"))],
    ));
    assert!(text(&out.stderr).contains("2 new"), "{}", text(&out.stderr));
    assert!(!missing.exists());

    // The inventory and its directory are private.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&site.join("data")), 0o700);
    assert_eq!(mode(&site.join("data/inventory.sqlite")), 0o600);

    // A start that fails (its port is taken) creates nothing: no data directory, no keys.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fresh = dir.path().join("fresh.toml");
    std::fs::write(
        &fresh,
        format!("data_dir = \"fresh-data/deeper\"\n\n[http]\nlisten = \"{}\"\n", taken.local_addr().unwrap()),
    )
    .unwrap();
    let out = provisor_in(&elsewhere, &[], &["serve", "--config", s(&fresh)]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("http"), "{}", text(&out.stderr));
    assert!(!dir.path().join("fresh-data").exists(), "a failed start left its data directory");
}

#[test]
fn init_asks_for_the_identity_mode_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    // `script` gives provisor a pseudo-terminal; the answers go to it as typed: one wrong, then "mac".
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &format!("{} init {}", env!("CARGO_BIN_EXE_provisor"), s(&site)), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) is missing; .ci/test installs it");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"maybe\nmac\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("identity [certificate/mac]") && shown.contains("\"maybe\" is neither"), "{shown}");
    let written = std::fs::read_to_string(site.join("provisor.toml")).unwrap();
    assert!(written.contains("\nidentity = \"mac\""), "{written}");
}
