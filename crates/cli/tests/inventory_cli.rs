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
    // The server's own path: the secure flow's Profile_Rule and the Report_Rule it adds, the key and random path
    // masked unless --secrets.
    assert!(xml.contains("/profile/$B/profile.cfg") && xml.contains("<Report_Rule"), "{xml}");
    let shown: serde_json::Value =
        serde_json::from_str(&ok(provisor(d, &["device", "show", "000e08aabbcc", "--json", "--secrets"]))).unwrap();
    let key = shown["secrets"]["aes_key"].as_str().unwrap().to_string();
    let token = shown["secrets"]["path_token"].as_str().unwrap().to_string();
    assert!(!xml.contains(&key) && !xml.contains(&token) && xml.contains("********"), "{xml}");
    let full = ok(provisor(d, &["device", "render", "000e08aabbcc", "--secrets"]));
    assert!(full.contains(&key) && full.contains(&token), "{full}");
    // A line password is masked too, in the MPP profile and in an enterprise phone's SEP<MAC>.cnf.xml.
    ok(provisor(d, &["device", "set", "000e08aabbcc", "--param", "Password_1_=hunter2", "--param", "User_ID_1_=201"]));
    assert!(!ok(provisor(d, &["device", "render", "000e08aabbcc"])).contains("hunter2"));
    ok(provisor(
        d,
        &[
            "device",
            "add",
            "000e08aabb99",
            "--model",
            "CP-8845",
            "--param",
            "Password_1_=sesame",
            "--param",
            "User_ID_1_=301",
        ],
    ));
    let sep = ok(provisor(d, &["device", "render", "000e08aabb99"]));
    assert!(sep.contains("<authPassword>********</authPassword>") && sep.contains("<name>301</name>"), "{sep}");
    assert!(ok(provisor(d, &["device", "render", "000e08aabb99", "--secrets"])).contains("sesame"));
    let boot = ok(provisor(d, &["device", "render", "000e08aabbcc", "--file", "bootstrap"]));
    assert!(boot.contains("<Profile_Rule") && !boot.contains(&key), "{boot}");
    // The rendered profile reads back with the toolkit, as a phone would.
    let file = d.join("out.xml");
    std::fs::write(&file, &full).unwrap();
    let parsed: serde_json::Value =
        serde_json::from_str(&ok(provisor(d, &["profile", "parse", file.to_str().unwrap(), "--json"]))).unwrap();
    assert_eq!(parsed["Display_Name_1_"]["value"], "Front & Back");
    // A template that would produce a broken profile is refused with its name and the device.
    let templates = d.join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("mpp.xml"),
        "<flat-profile><Display_Name_1_>{{ params.Display_Name_1_ }}</Display_Name_1_></flat-profile>",
    )
    .unwrap();
    let o = provisor(d, &["device", "render", "000e08aabbcc", "--templates", templates.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("mpp.xml") && err.contains("000e08aabbcc"), "{err}");
    assert!(o.stdout.is_empty(), "never half a profile");
}

fn fails(o: Output) -> String {
    assert!(!o.status.success(), "succeeded: {}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn fleet_edits_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(provisor(
        d,
        &["group", "put", "defaults", "--param", "Proxy_1_=sip.example.com", "--param", "Time_Zone=GMT+01:00"],
    ));
    // `group set` keeps what it does not name; `group put` on an existing group needs --replace.
    ok(provisor(d, &["group", "set", "defaults", "--param", "Primary_NTP_Server=ntp.example.com"]));
    let g: serde_json::Value =
        serde_json::from_str(&ok(provisor(d, &["group", "show", "defaults", "--json"]))).unwrap();
    assert_eq!(g["params"]["Proxy_1_"], "sip.example.com");
    assert_eq!(g["params"]["Time_Zone"], "GMT+01:00");
    assert_eq!(g["params"]["Primary_NTP_Server"], "ntp.example.com");
    let err = fails(provisor(d, &["group", "put", "defaults", "--param", "Proxy_1_=other"]));
    assert!(err.contains("group set") && err.contains("--replace"), "{err}");
    ok(provisor(d, &["group", "set", "defaults", "--unset", "Time_Zone"]));
    let g: serde_json::Value =
        serde_json::from_str(&ok(provisor(d, &["group", "show", "defaults", "--json"]))).unwrap();
    assert!(g["params"].get("Time_Zone").is_none() && g["params"]["Proxy_1_"] == "sip.example.com", "{g}");
    ok(provisor(d, &["group", "put", "defaults", "--replace", "--param", "Proxy_1_=new"]));
    let g: serde_json::Value =
        serde_json::from_str(&ok(provisor(d, &["group", "show", "defaults", "--json"]))).unwrap();
    assert_eq!(g["params"].as_object().unwrap().len(), 1);

    // Unknown names are refused with the closest known ones, unless --allow-unknown.
    let err = fails(provisor(d, &["group", "set", "defaults", "--param", "NTP_Server=ntp.example.com"]));
    assert!(err.contains("NTP_Server") && err.contains("did you mean"), "{err}");
    let err = fails(provisor(d, &["device", "add", "000e08000001", "--param", "Resync_Periodik=60"]));
    assert!(err.contains("did you mean Resync_Periodic"), "{err}");
    ok(provisor(d, &["device", "add", "000e08000001", "--param", "My_Own=1", "--allow-unknown"]));

    // Re-importing an edited CSV: --dry-run shows the diff and changes nothing; --update applies it.
    ok(provisor(d, &["group", "put", "office"]));
    let csv = d.join("devices.csv");
    std::fs::write(
        &csv,
        "mac,model,group,User_ID_1_\n000e08000002,CP-8841-3PCC,office,2002\n000e08000003,CP-7832-3PCC,office,2003\n",
    )
    .unwrap();
    ok(provisor(d, &["device", "import", csv.to_str().unwrap()]));
    let key_before = serde_json::from_str::<serde_json::Value>(&ok(provisor(
        d,
        &["device", "show", "000e08000002", "--secrets", "--json"],
    )))
    .unwrap()["secrets"]["aes_key"]
        .clone();
    std::fs::write(&csv, "mac,model,group,User_ID_1_\n000e08000002,CP-8851-3PCC,office,2002\n000e08000003,CP-7832-3PCC,office,2003\n000e08000004,CP-6841-3PCC,office,2004\n").unwrap();
    let err = fails(provisor(d, &["device", "import", csv.to_str().unwrap()]));
    assert!(err.contains("already exists") && err.contains("--update"), "{err}");
    let dry = provisor(d, &["device", "import", "--update", "--dry-run", csv.to_str().unwrap()]);
    let diff = ok(dry);
    assert_eq!(diff, "+ 000e08000004 (CP-6841-3PCC)\n~ 000e08000002 model: \"CP-8841-3PCC\" -> \"CP-8851-3PCC\"\n");
    let list: serde_json::Value = serde_json::from_str(&ok(provisor(d, &["device", "list", "--json"]))).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3, "a dry run changes nothing");
    ok(provisor(d, &["device", "import", "--update", csv.to_str().unwrap()]));
    let shown: serde_json::Value =
        serde_json::from_str(&ok(provisor(d, &["device", "show", "000e08000002", "--secrets", "--json"]))).unwrap();
    assert_eq!(shown["model"], "CP-8851-3PCC");
    assert_eq!(shown["secrets"]["aes_key"], key_before, "an update keeps the device's keys");
    // An upsert that fails on one row changes nothing.
    std::fs::write(&csv, "mac,model,group\n000e08000002,CP-7841-3PCC,office\n000e08000005,CP-7841-3PCC,nowhere\n")
        .unwrap();
    let err = fails(provisor(d, &["device", "import", "--update", csv.to_str().unwrap()]));
    assert!(err.contains(":3: group") && err.contains("nothing was imported"), "{err}");
    let shown: serde_json::Value =
        serde_json::from_str(&ok(provisor(d, &["device", "show", "000e08000002", "--json"]))).unwrap();
    assert_eq!(shown["model"], "CP-8851-3PCC");

    // `device rm` takes many MACs or a file; one that does not exist stops them all.
    let err = fails(provisor(d, &["device", "rm", "000e08000002", "000e0800ffff"]));
    assert!(err.contains("000e0800ffff") && err.contains("nothing was removed"), "{err}");
    let list_file = d.join("gone.txt");
    std::fs::write(&list_file, "# retired\n000e08000003\n00:0e:08:00:00:04\n").unwrap();
    ok(provisor(d, &["device", "rm", "000e08000002", "--from", list_file.to_str().unwrap()]));
    let list: serde_json::Value = serde_json::from_str(&ok(provisor(d, &["device", "list", "--json"]))).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[test]
fn the_fleet_list_shows_state_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(provisor(d, &["group", "put", "office"]));
    ok(provisor(d, &["group", "put", "lab"]));
    ok(provisor(d, &["device", "add", "000e08000001", "--model", "CP-8841-3PCC", "--group", "office"]));
    ok(provisor(d, &["device", "add", "000e08000002", "--model", "CP-7832-3PCC", "--group", "lab"]));
    let list: serde_json::Value = serde_json::from_str(&ok(provisor(d, &["device", "list", "--json"]))).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["state"], "new", "never seen: {list}");
    assert!(list[0]["last_seen"].is_null());
    let office: serde_json::Value =
        serde_json::from_str(&ok(provisor(d, &["device", "list", "--group", "office", "--json"]))).unwrap();
    assert_eq!(office.as_array().unwrap().len(), 1);
    assert_eq!(office[0]["mac"], "000e08000001");
    // Never-seen devices are stale however short the threshold; no device reported firmware 12.
    let stale: serde_json::Value =
        serde_json::from_str(&ok(provisor(d, &["device", "list", "--stale", "2d", "--json"]))).unwrap();
    assert_eq!(stale.as_array().unwrap().len(), 2);
    let fw: serde_json::Value =
        serde_json::from_str(&ok(provisor(d, &["device", "list", "--firmware", "12.0", "--json"]))).unwrap();
    assert!(fw.as_array().unwrap().is_empty());
    let table = ok(provisor(d, &["device", "list"]));
    assert!(table.starts_with("mac ") && table.contains("CP-7832-3PCC") && table.contains("never"), "{table}");
    let bad = provisor(d, &["device", "list", "--stale", "soon"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("duration"));
}
