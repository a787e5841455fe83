//! `provisor token`: a token is printed once and stored as its hash; list shows names and roles only; revoke removes
//! it; bad input is refused with a message that names what is wrong; creating and revoking are audited.

use std::process::{Command, Output};

fn provisor(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provisor"))
        .arg("token")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("PROVISOR_CONFIG")
        .output()
        .expect("provisor runs")
}

#[test]
fn tokens_are_made_once_listed_without_the_secret_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let made = provisor(&data, &["create", "--name", "monitoring", "--role", "read"]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let token = String::from_utf8(made.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("pvt_") && token.len() > 40, "{token}");

    let list = provisor(&data, &["list"]);
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(listed.starts_with("monitoring\tread\t"), "{listed}");
    assert!(!listed.contains(&token));
    // Not in the database either: only its SHA-256.
    let db = std::fs::read(data.join("inventory.sqlite")).unwrap();
    let db = String::from_utf8_lossy(&db);
    assert!(!db.contains(&token) && !db.contains(&token["pvt_".len()..]));

    let twice = provisor(&data, &["create", "--name", "monitoring", "--role", "admin"]);
    assert!(!twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already exists"));
    let bad_role = provisor(&data, &["create", "--name", "x", "--role", "root"]);
    assert!(!bad_role.status.success());
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("read, operator or admin"));

    assert!(provisor(&data, &["revoke", "monitoring"]).status.success());
    let again = provisor(&data, &["revoke", "monitoring"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no token named \"monitoring\""));
    assert!(String::from_utf8(provisor(&data, &["list"]).stdout).unwrap().is_empty());

    // Both changes are in the audit trail, with the local user who made them; the token itself is not.
    let audit = std::fs::read_to_string(data.join("audit.log")).unwrap();
    let changes: Vec<&str> = audit.lines().filter(|l| l.contains("\"protocol\":\"admin\"")).collect();
    assert_eq!(changes.len(), 2, "{audit}");
    assert!(changes[0].contains("created token") && changes[0].contains("(read)"), "{audit}");
    assert!(changes[1].contains("revoked token") && changes.iter().all(|l| l.contains("by local user")), "{audit}");
    assert!(!audit.contains(&token));
}
