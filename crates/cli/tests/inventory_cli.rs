//! `provisor device ...` and `provisor group ...` end to end.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn provisor(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provisor"))
        .args(args)
        .env("PROVISOR_DATA_DIR", dir)
        .stdin(Stdio::null())
        .output()
        .expect("run provisor")
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn add_show_set_remove() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(provisor(d, &["group", "put", "defaults", "--param", "Resync_Periodic=3600"]));
    ok(provisor(d, &["group", "put", "model:CP-8841-3PCC", "--param", "Dial Plan[1]=(xx.)"]));
    ok(provisor(d, &["group", "put", "office", "--param", "Station_Name=Office"]));
    ok(provisor(
        d,
        &[
            "device",
            "add",
            "SEP000E08AABBCC",
            "--model",
            "CP-8841-3PCC",
            "--group",
            "office",
            "--param",
            "User_ID_1_=2001",
        ],
    ));
    let v: serde_json::Value =
        serde_json::from_str(&ok(provisor(d, &["device", "show", "00:0e:08:aa:bb:cc", "--json"]))).unwrap();
    assert_eq!(v["mac"], "000e08aabbcc");
    assert_eq!(v["effective"]["Dial_Plan_1_"], "(xx.)");
    assert_eq!(v["effective"]["Resync_Periodic"], "3600");
    assert_eq!(v["effective"]["Station_Name"], "Office");
    assert_eq!(v["effective"]["User_ID_1_"], "2001");
    assert!(v.get("secrets").is_none(), "secrets only on request");
    let s: serde_json::Value =
        serde_json::from_str(&ok(provisor(d, &["device", "show", "000e08aabbcc", "--json", "--secrets"]))).unwrap();
    let key = s["secrets"]["aes_key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 32);
    assert_eq!(s["secrets"]["aes_digest"], "sha256");
    // Bad values name the parameter; a second add of the same MAC fails.
    let o = provisor(d, &["device", "set", "000e08aabbcc", "--param", "Resync_Periodic=1h"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Resync_Periodic"));
    assert_eq!(provisor(d, &["device", "add", "000e08aabbcc"]).status.code(), Some(1));
    assert_eq!(provisor(d, &["device", "add", "not-a-mac"]).status.code(), Some(1));
    ok(provisor(d, &["device", "set", "000e08aabbcc", "--rotate-keys", "--digest", "md5", "--unset", "User_ID_1_"]));
    let s: serde_json::Value =
        serde_json::from_str(&ok(provisor(d, &["device", "show", "000e08aabbcc", "--json", "--secrets"]))).unwrap();
    assert_ne!(s["secrets"]["aes_key"].as_str().unwrap(), key);
    assert_eq!(s["secrets"]["aes_digest"], "md5");
    assert!(s["effective"].get("User_ID_1_").is_none());
    assert_eq!(provisor(d, &["group", "rm", "office"]).status.code(), Some(1), "still used");
    ok(provisor(d, &["device", "rm", "000e08aabbcc"]));
    ok(provisor(d, &["group", "rm", "office"]));
    let list: serde_json::Value = serde_json::from_str(&ok(provisor(d, &["device", "list", "--json"]))).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 0);
}

#[test]
fn csv_import_of_10000_devices_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(provisor(d, &["group", "put", "office"]));
    let mut csv = String::from("mac,model,group,User_ID_1_,Display Name[1]\n");
    for i in 0..10_000 {
        csv += &format!("00112{i:07x},CP-7841-3PCC,office,{},Phone {i}\n", 1000 + i);
    }
    let good = d.join("good.csv");
    std::fs::write(&good, &csv).unwrap();
    // Three bad rows: a bad MAC, an unknown group, a duplicate MAC; each reported with its line.
    let mut lines: Vec<String> = csv.lines().map(str::to_string).collect();
    lines[2500] = "zz,CP-7841-3PCC,office,1,x".into();
    lines[5000] = "001120000099,CP-7841-3PCC,nope,1,x".into();
    lines[7000] = "001120000001,CP-7841-3PCC,office,1,x".into();
    let bad = d.join("bad.csv");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let o = provisor(d, &["device", "import", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.csv:2501: mac"), "{err}");
    assert!(err.contains("bad.csv:5001: group"), "{err}");
    assert!(err.contains("bad.csv:7001: mac 001120000001 is already on line 3"), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
    let list: serde_json::Value = serde_json::from_str(&ok(provisor(d, &["device", "list", "--json"]))).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 0);

    ok(provisor(d, &["device", "import", good.to_str().unwrap()]));
    let list: serde_json::Value = serde_json::from_str(&ok(provisor(d, &["device", "list", "--json"]))).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 10_000);
    assert_eq!(list[1]["params"]["Display_Name_1_"], "Phone 1");
    // Importing the same rows again conflicts on every row and changes nothing.
    let o = provisor(d, &["device", "import", good.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));

    // export → import into a fresh inventory gives the same devices.
    let exported = ok(provisor(d, &["device", "export"]));
    let other = tempfile::tempdir().unwrap();
    ok(provisor(other.path(), &["group", "put", "office"]));
    let file = other.path().join("export.csv");
    std::fs::write(&file, exported).unwrap();
    ok(provisor(other.path(), &["device", "import", file.to_str().unwrap()]));
    let again: serde_json::Value =
        serde_json::from_str(&ok(provisor(other.path(), &["device", "list", "--json"]))).unwrap();
    assert_eq!(again, list);
}

#[test]
fn render_a_device_profile() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(provisor(d, &["group", "put", "defaults", "--param", "Resync_Periodic=3600"]));
    ok(provisor(
        d,
        &["device", "add", "000e08aabbcc", "--model", "CP-8841-3PCC", "--param", "Display Name[1]=Front & Back"],
    ));
    let xml = ok(provisor(d, &["device", "render", "000e08aabbcc"]));
    assert!(xml.contains("<Display_Name_1_ ua=\"na\">Front &amp; Back</Display_Name_1_>"), "{xml}");
    assert!(xml.contains("<Resync_Periodic ua=\"na\">3600</Resync_Periodic>"), "{xml}");
    // The rendered profile reads back with the toolkit, as a phone would.
    let file = d.join("out.xml");
    std::fs::write(&file, &xml).unwrap();
    let parsed: serde_json::Value =
        serde_json::from_str(&ok(provisor(d, &["profile", "parse", file.to_str().unwrap(), "--json"]))).unwrap();
    assert_eq!(parsed["Display_Name_1_"]["value"], "Front & Back");
    // A template that would produce a broken profile is refused with its name and the device.
    let templates = d.join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("raw.xml"),
        "<flat-profile><Display_Name_1_>{{ params.Display_Name_1_ }}</Display_Name_1_></flat-profile>",
    )
    .unwrap();
    let o = provisor(
        d,
        &["device", "render", "000e08aabbcc", "--templates", templates.to_str().unwrap(), "--template", "raw.xml"],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("raw.xml") && err.contains("000e08aabbcc"), "{err}");
    assert!(o.stdout.is_empty(), "never half a profile");
}
