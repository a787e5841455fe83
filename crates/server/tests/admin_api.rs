//! The admin API's first part (issue 18): bearer tokens with roles, stored as their SHA-256; RFC 9457 problems naming
//! the parameter at fault; cursor pages over the inventory; secrets masked; nothing reachable without a token, and
//! nothing of it on the phones' port. Against a real server (`serve::start`) and curl, on SQLite and on a real
//! PostgreSQL server.

use std::collections::BTreeMap;
use std::time::Duration;

use provisor_server::config::Config;
use provisor_server::inventory::{AdminToken, Device, Group, Mac, Role, Secrets, Store, StoreError};

#[path = "common/postgres.rs"]
mod postgres;

/// `curl -s -i` with `args`: (status, headers lower-cased, body).
async fn curl(args: Vec<String>) -> (u16, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("curl").args(["-s", "-i", "--max-time", "10"]).args(&args).output();
        let out = out.expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, head.to_ascii_lowercase(), body.to_string())
    })
    .await
    .expect("curl task")
}

async fn get(url: String, token: Option<&str>) -> (u16, String, serde_json::Value) {
    send("GET", url, token, None).await
}

async fn send(method: &str, url: String, token: Option<&str>, body: Option<&str>) -> (u16, String, serde_json::Value) {
    send_as(method, url, token, body.map(|b| ("application/json", b))).await
}

/// Every request made, to check that every operation the OpenAPI document lists was called: (URL, method, status).
static CALLS: std::sync::Mutex<Vec<(String, String, u16)>> = std::sync::Mutex::new(Vec::new());

async fn send_as(
    method: &str,
    url: String,
    token: Option<&str>,
    body: Option<(&str, &str)>,
) -> (u16, String, serde_json::Value) {
    let mut args = vec!["-X".to_string(), method.to_string(), url.clone()];
    if let Some((kind, b)) = body {
        args.extend(["-H".into(), format!("Content-Type: {kind}"), "--data-binary".into(), b.into()]);
    }
    if let Some(t) = token {
        args.extend(["-H".to_string(), format!("Authorization: Bearer {t}")]);
    }
    let (status, headers, body) = curl(args).await;
    CALLS.lock().unwrap().push((url, method.to_string(), status));
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    (status, headers, json)
}

/// Whether `path` (no query) is an instance of the OpenAPI path `template` (`/devices/{mac}`).
fn instance_of(path: &str, template: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (path.split('/').collect(), template.split('/').collect());
    a.len() == b.len() && a.iter().zip(&b).all(|(x, t)| (t.starts_with('{') && !x.is_empty()) || x == t)
}

fn device(i: usize) -> Device {
    let mac: Mac = format!("0c1122{:06x}", i * 7).parse().unwrap();
    let mut d = Device::blank(mac, Secrets::generate().unwrap());
    d.model = if i.is_multiple_of(3) { "CP-6841-3PCC".into() } else { "CP-8841-3PCC".into() };
    d.params = BTreeMap::from([
        ("User_ID_1_".to_string(), format!("{}", 2000 + i)),
        ("Password_1_".to_string(), format!("secret-{i}")),
    ]);
    d
}

async fn exercise(database: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let inventory = database.map(|u| format!("[inventory]\nurl = \"{u}\"\n")).unwrap_or_default();
    let toml = format!(
        "data_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n[https]\nlisten = \"\"\n[tftp]\nlisten = \"\"\n\
         [syslog]\nlisten = \"\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[provisioning]\nidentity = \"mac\"\n{inventory}",
        dir.path().join("data").display()
    );
    let running = provisor_server::serve::start(Config::parse(&toml, "test.toml").unwrap()).await.unwrap();
    let store = running.provisioner.store();
    let devices: Vec<Device> = (0..250).map(device).collect();
    store.import_devices(&devices, &|_| {}).await.unwrap();
    let (read, stored) = AdminToken::generate("ci-read", Role::Read, 1_000).unwrap();
    store.add_token(&stored).await.unwrap();
    // Only the hash is stored, and a name is unique.
    let listed = store.tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        read.starts_with("pvt_") && listed[0].hash == AdminToken::hash_of(&read) && !listed[0].hash.contains(&read)
    );
    let (_, again) = AdminToken::generate("ci-read", Role::Admin, 2_000).unwrap();
    assert!(matches!(store.add_token(&again).await, Err(StoreError::TokenExists(_))));

    let admin = format!("http://{}", running.admin.unwrap());
    let api = |path: &str| format!("{admin}/api/v1{path}");

    // Nothing without a valid token, unknown routes included; the answer is a problem document either way.
    for (path, token) in
        [("/devices", None), ("/devices", Some("pvt_not-a-token")), ("/nope", None), ("/", None), ("", None)]
    {
        let (status, headers, body) = get(api(path), token).await;
        assert_eq!(status, 401, "{path} {token:?}");
        assert!(headers.contains("content-type: application/problem+json"), "{headers}");
        assert!(headers.contains("www-authenticate: bearer"), "{headers}");
        assert_eq!(body["status"], 401);
    }
    let (status, _, body) = get(api("/nope"), Some(&read)).await;
    assert_eq!((status, body["status"].as_u64()), (404, Some(404)));

    // Every device, page by page, in MAC order, once each; the last page says there is no next.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor.as_ref().map(|c| format!("&after={c}")).unwrap_or_default();
        let (status, _, page) = get(api(&format!("/devices?limit=100{after}")), Some(&read)).await;
        assert_eq!(status, 200, "{page}");
        let batch = page["devices"].as_array().unwrap();
        assert!(batch.len() <= 100);
        for d in batch {
            seen.push(d["mac"].as_str().unwrap().to_string());
            assert_eq!(d["params"]["Password_1_"], "********", "a password in a page: {d}");
            assert!(d["params"]["User_ID_1_"].as_str().unwrap().starts_with('2'));
        }
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let mut want: Vec<String> = devices.iter().map(|d| d.mac.to_string()).collect();
    want.sort();
    assert_eq!(seen, want);

    // Filters.
    let (_, _, page) = get(api("/devices?limit=1000&model=CP-6841-3PCC"), Some(&read)).await;
    let models: Vec<&str> = page["devices"].as_array().unwrap().iter().map(|d| d["model"].as_str().unwrap()).collect();
    assert_eq!(models.len(), 84);
    assert!(models.iter().all(|m| *m == "CP-6841-3PCC"));
    assert!(page["next"].is_null());

    // Bad parameters are named.
    for (query, parameter) in
        [("limit=0", "limit"), ("limit=1001", "limit"), ("limit=ten", "limit"), ("after=zz", "after")]
    {
        let (status, headers, body) = get(api(&format!("/devices?{query}")), Some(&read)).await;
        assert_eq!(status, 400, "{query}");
        assert!(headers.contains("content-type: application/problem+json"));
        assert_eq!(body["parameter"], parameter, "{query}: {body}");
    }

    // One device, masked; unknown and malformed MACs.
    let one = &devices[5];
    let (status, _, body) = get(api(&format!("/devices/{}", one.mac)), Some(&read)).await;
    assert_eq!(status, 200);
    assert_eq!(body["mac"], one.mac.to_string());
    assert_eq!(body["params"]["Password_1_"], "********");
    assert!(!body.to_string().contains("secret-5") && !body.to_string().contains(&one.secrets.aes_key));
    let (status, _, _) = get(api("/devices/0c11229999ff"), Some(&read)).await;
    assert_eq!(status, 404);
    let (status, _, body) = get(api("/devices/not-a-mac"), Some(&read)).await;
    assert_eq!((status, body["parameter"].as_str()), (400, Some("mac")));

    // The phones' port does not answer the API.
    let phones = format!("http://{}/api/v1/devices", running.http.unwrap());
    let (status, _, body) = get(phones, Some(&read)).await;
    assert_ne!(status, 200);
    assert!(body.get("devices").is_none());

    // Groups, with their passwords masked.
    let shared = Group {
        name: "lobby".into(),
        parent: None,
        description: "front of house".into(),
        params: BTreeMap::from([("Admin_Password".to_string(), "group-secret".to_string())]),
    };
    store.put_group(&shared).await.unwrap();
    let (status, _, body) = get(api("/groups"), Some(&read)).await;
    assert_eq!(status, 200);
    let listed = body["groups"].as_array().unwrap();
    assert!(listed.iter().any(|g| g["name"] == "lobby" && g["params"]["Admin_Password"] == "********"), "{body}");
    assert!(!body.to_string().contains("group-secret"));
    let (status, _, body) = get(api("/groups/lobby"), Some(&read)).await;
    assert_eq!((status, body["description"].as_str()), (200, Some("front of house")));
    assert_eq!(get(api("/groups/nope"), Some(&read)).await.0, 404);
    assert_eq!(get(api("/groups"), None).await.0, 401);

    // Writes need an operator or an admin: a read token is refused and changes nothing.
    let target = devices[7].mac.to_string();
    let one = api(&format!("/devices/{target}"));
    let patch = r#"{"description": "lobby", "params": {"Display_Name_1_": "Front desk", "User_ID_1_": null}}"#;
    for (method, body) in [("PATCH", Some(patch)), ("DELETE", None)] {
        let (status, _, problem) = send(method, one.clone(), Some(&read), body).await;
        assert_eq!(status, 403, "{method}: {problem}");
        assert!(problem["detail"].as_str().unwrap().contains("needs operator"), "{problem}");
    }
    assert_eq!(store.device(&devices[7].mac).await.unwrap().as_ref(), Some(&devices[7]));
    let (operator, stored) = AdminToken::generate("ci-operator", Role::Operator, 3_000).unwrap();
    store.add_token(&stored).await.unwrap();
    // Merge: the fields given replace, null removes a parameter, the rest stays; the answer is masked.
    let (status, _, body) = send("PATCH", one.clone(), Some(&operator), Some(patch)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["params"]["Password_1_"], "********");
    let after = store.device(&devices[7].mac).await.unwrap().unwrap();
    assert_eq!(after.description, "lobby");
    assert_eq!(after.params.get("Display_Name_1_").map(String::as_str), Some("Front desk"));
    assert!(!after.params.contains_key("User_ID_1_"));
    assert_eq!(after.params.get("Password_1_"), devices[7].params.get("Password_1_"));
    assert_eq!((after.model.as_str(), &after.secrets), (devices[7].model.as_str(), &devices[7].secrets));
    // Refusals name what is wrong, and change nothing.
    for (body, parameter) in [
        (r#"{"params": {"Resync_Periodik": "60"}}"#, "params.Resync_Periodik"),
        (r#"{"params": {"Resync_Periodic": "soon"}}"#, "params.Resync_Periodic"),
        (r#"{"group": "no-such-group"}"#, "group"),
        (r#"{"colour": "red"}"#, "body"),
        ("not json", "body"),
    ] {
        let (status, _, problem) = send("PATCH", one.clone(), Some(&operator), Some(body)).await;
        assert_eq!((status, problem["parameter"].as_str()), (400, Some(parameter)), "{body}: {problem}");
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    assert_eq!(store.device(&devices[7].mac).await.unwrap().unwrap(), after);
    let (status, _, _) =
        send("PATCH", one.clone(), Some(&operator), Some(r#"{"allow_unknown": true, "params": {"X_Site": "1"}}"#))
            .await;
    assert_eq!(status, 200);
    // Delete.
    let gone = api(&format!("/devices/{}", devices[8].mac));
    assert_eq!(send("DELETE", gone.clone(), Some(&operator), None).await.0, 204);
    assert_eq!(get(gone.clone(), Some(&read)).await.0, 404);
    assert_eq!(send("DELETE", gone, Some(&operator), None).await.0, 404);

    // The rest of the API, as an operator and an admin would use it.
    let (admin_token, stored) = AdminToken::generate("ci-admin", Role::Admin, 4_000).unwrap();
    store.add_token(&stored).await.unwrap();

    // Create: operator or admin; the MAC is named when it is bad or taken.
    let new = r#"{"mac": "00:0E:08:AA:BB:01", "model": "CP-8851-3PCC", "params": {"Password_1_": "fresh-secret"}}"#;
    assert_eq!(send("POST", api("/devices"), Some(&read), Some(new)).await.0, 403);
    let (status, headers, body) = send("POST", api("/devices"), Some(&operator), Some(new)).await;
    assert_eq!(status, 201, "{body}");
    assert!(headers.contains("location: /api/v1/devices/000e08aabb01"), "{headers}");
    assert_eq!(body["params"]["Password_1_"], "********");
    let created: Mac = "000e08aabb01".parse().unwrap();
    let stored_new = store.device(&created).await.unwrap().unwrap();
    assert_eq!(stored_new.params["Password_1_"], "fresh-secret");
    assert!(!stored_new.secrets.aes_key.is_empty());
    let (status, _, body) = send("POST", api("/devices"), Some(&operator), Some(new)).await;
    assert_eq!((status, body["parameter"].as_str()), (409, Some("mac")), "{body}");
    let (status, _, body) = send("POST", api("/devices"), Some(&operator), Some(r#"{"mac": "nope"}"#)).await;
    assert_eq!((status, body["parameter"].as_str()), (400, Some("mac")), "{body}");

    // Groups: made and changed through the API, inheritance shown, loops and groups in use refused.
    store
        .put_group(&Group {
            name: "defaults".into(),
            parent: None,
            description: String::new(),
            params: BTreeMap::from([("Resync_Periodic".to_string(), "86400".to_string())]),
        })
        .await
        .unwrap();
    let site = r#"{"description": "the site", "params": {"Resync_Periodic": "3600", "Primary_DNS": "192.0.2.53"}}"#;
    assert_eq!(send("PUT", api("/groups/site"), Some(&read), Some(site)).await.0, 403);
    let (status, _, body) = send("PUT", api("/groups/site"), Some(&operator), Some(site)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(send("PUT", api("/groups/site"), Some(&operator), Some(site)).await.0, 200);
    let (status, _, body) = send("PATCH", api("/groups/lobby"), Some(&operator), Some(r#"{"parent": "site"}"#)).await;
    assert_eq!((status, body["parent"].as_str()), (200, Some("site")), "{body}");
    let (status, _, body) = send("PATCH", api("/groups/site"), Some(&operator), Some(r#"{"parent": "lobby"}"#)).await;
    assert_eq!((status, body["parameter"].as_str()), (400, Some("parent")), "a loop: {body}");
    let (status, _, body) =
        send("PATCH", api("/groups/site"), Some(&operator), Some(r#"{"params": {"Resync_Periodik": "1"}}"#)).await;
    assert_eq!((status, body["parameter"].as_str()), (400, Some("params.Resync_Periodik")), "{body}");
    assert_eq!(send("PATCH", api("/groups/nope"), Some(&operator), Some("{}")).await.0, 404);
    let (status, _, body) = get(api("/groups/lobby"), Some(&read)).await;
    assert_eq!(status, 200);
    assert_eq!(body["ancestors"], serde_json::json!(["site"]));
    assert_eq!(body["inherited"]["Resync_Periodic"], "3600", "{body}");
    assert_eq!(body["params"]["Admin_Password"], "********");

    // Effective parameters with the layer each comes from; a group change shows at once.
    let dev = api(&format!("/devices/{target}"));
    let (status, _, _) = send("PATCH", dev.clone(), Some(&operator), Some(r#"{"group": "lobby"}"#)).await;
    assert_eq!(status, 200);
    let effective = |body: &serde_json::Value, name: &str| {
        body["parameters"].as_array().unwrap().iter().find(|p| p["name"] == name).cloned().unwrap_or_default()
    };
    let (status, _, body) = get(format!("{dev}/parameters"), Some(&read)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["layers"], serde_json::json!(["defaults", "site", "lobby", "device"]), "{body}");
    let resync = effective(&body, "Resync_Periodic");
    assert_eq!((resync["value"].as_str(), resync["from"].as_str()), (Some("3600"), Some("site")), "{body}");
    assert_eq!(resync["overrides"], serde_json::json!([{"from": "defaults", "value": "86400"}]));
    assert_eq!(effective(&body, "Admin_Password")["value"], "********");
    assert_eq!(effective(&body, "Password_1_")["from"], "device");
    assert!(!body.to_string().contains("group-secret") && !body.to_string().contains("secret-7"));
    let change = r#"{"params": {"Resync_Periodic": "600"}}"#;
    assert_eq!(send("PATCH", api("/groups/site"), Some(&operator), Some(change)).await.0, 200);
    let (_, _, body) = get(format!("{dev}/parameters"), Some(&read)).await;
    assert_eq!(effective(&body, "Resync_Periodic")["value"], "600");
    let (status, _, body) = send("DELETE", api("/groups/site"), Some(&operator), None).await;
    assert_eq!(status, 409, "a group in use: {body}");
    assert_eq!(send("PUT", api("/groups/spare"), Some(&operator), Some("{}")).await.0, 201);
    assert_eq!(send("DELETE", api("/groups/spare"), Some(&read), None).await.0, 403);
    assert_eq!(send("DELETE", api("/groups/spare"), Some(&operator), None).await.0, 204);
    assert_eq!(send("DELETE", api("/groups/spare"), Some(&operator), None).await.0, 404);

    // What the server would serve: secrets masked; revealed only for an admin, and that is audited.
    let (status, _, body) = get(format!("{dev}/profile"), Some(&read)).await;
    assert_eq!(status, 200, "{body}");
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("<Resync_Periodic") && text.contains("600"), "{text}");
    assert!(text.contains("********") && !text.contains("secret-7") && !text.contains("group-secret"), "{text}");
    assert!(!text.contains(&devices[7].secrets.aes_key));
    assert_eq!(body["revealed"], false);
    let (status, _, body) = get(format!("{dev}/profile?reveal=true"), Some(&operator)).await;
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = get(format!("{dev}/profile?reveal=true"), Some(&admin_token)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["text"].as_str().unwrap().contains("secret-7"), "{body}");
    let (status, _, body) = get(format!("{dev}/profile?file=bootstrap"), Some(&read)).await;
    assert_eq!((status, body["file"].as_str()), (200, Some("bootstrap")), "{body}");
    let (status, _, body) = get(format!("{dev}/profile?file=other"), Some(&read)).await;
    assert_eq!((status, body["parameter"].as_str()), (400, Some("file")), "{body}");

    // Status: nothing seen yet; a bad limit is named.
    let (status, _, body) = get(format!("{dev}/status"), Some(&read)).await;
    assert_eq!((status, body["last_seen_ms"].is_null()), (200, true), "{body}");
    assert!(body["events"].as_array().unwrap().iter().any(|e| e["kind"] == "admin"), "{body}");
    let (status, _, body) = get(format!("{dev}/status?events=0"), Some(&read)).await;
    assert_eq!((status, body["parameter"].as_str()), (400, Some("events")));

    // Key rotation: admin only; the old secrets are kept until the phone fetches the new ones.
    assert_eq!(send("POST", format!("{dev}/rotate-keys"), Some(&operator), None).await.0, 403);
    let (status, _, body) = send("POST", format!("{dev}/rotate-keys"), Some(&admin_token), None).await;
    assert_eq!(status, 200, "{body}");
    let rotated = store.device(&devices[7].mac).await.unwrap().unwrap();
    assert_ne!(rotated.secrets.aes_key, devices[7].secrets.aes_key);
    assert_eq!(
        rotated.secrets.previous.as_ref().map(|p| p.aes_key.as_str()),
        Some(devices[7].secrets.aes_key.as_str())
    );
    assert!(!body.to_string().contains(&rotated.secrets.aes_key));

    // CSV import: all or nothing, every bad row named by line; a dry run says what would change.
    let csv_ok =
        "mac,model,group,Display_Name_1_\n000e08aabb10,CP-7841-3PCC,lobby,Ten\n000e08aabb11,CP-7841-3PCC,,Eleven\n";
    let csv_bad = "mac,model,group,Display_Name_1_\n000e08aabb20,CP-7841-3PCC,lobby,Ok\nzz,CP-7841-3PCC,,Bad\n\
                   000e08aabb21,CP-7841-3PCC,nogroup,Bad\n";
    let import = |query: &str| api(&format!("/devices/import{query}"));
    let (status, headers, body) = send_as("POST", import(""), Some(&operator), Some(("text/csv", csv_bad))).await;
    assert_eq!(status, 422, "{body}");
    assert!(headers.contains("content-type: application/problem+json"));
    let lines: Vec<u64> = body["rows"].as_array().unwrap().iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [3, 4], "{body}");
    assert!(store.device(&"000e08aabb20".parse().unwrap()).await.unwrap().is_none(), "nothing imported");
    let (status, _, body) = send_as("POST", import("?dry_run=true"), Some(&read), Some(("text/csv", csv_ok))).await;
    assert_eq!((status, body["applied"].as_bool(), body["added"].as_u64()), (200, Some(false), Some(2)), "{body}");
    assert!(body["diff"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().starts_with("+ 000e08aabb10")));
    assert!(store.device(&"000e08aabb10".parse().unwrap()).await.unwrap().is_none(), "a dry run changes nothing");
    assert_eq!(send_as("POST", import(""), Some(&read), Some(("text/csv", csv_ok))).await.0, 403);
    let (status, _, body) = send_as("POST", import(""), Some(&operator), Some(("text/csv", csv_ok))).await;
    assert_eq!((status, body["applied"].as_bool()), (200, Some(true)), "{body}");
    let imported = store.device(&"000e08aabb10".parse().unwrap()).await.unwrap().unwrap();
    assert_eq!((imported.group.as_deref(), imported.params["Display_Name_1_"].as_str()), (Some("lobby"), "Ten"));
    let (status, _, body) = send_as("POST", import("?dry_run=maybe"), Some(&read), Some(("text/csv", csv_ok))).await;
    assert_eq!(status, 400, "{body}");

    // The audit trail, through the API: the changes with who made them; random paths masked.
    let (status, _, body) = get(api(&format!("/audit?device={target}&limit=50")), Some(&read)).await;
    assert_eq!(status, 200, "{body}");
    let trail = body["lines"].as_array().unwrap();
    assert!(trail.iter().any(|l| l.as_str().unwrap().contains("ci-admin") && l.as_str().unwrap().contains("rotated")));
    assert!(!body.to_string().contains(&rotated.secrets.path_token));
    let (status, _, body) = get(api("/audit?limit=0"), Some(&read)).await;
    assert_eq!((status, body["parameter"].as_str()), (400, Some("limit")));

    // Fleet drift: a device served one User_ID_1_ that reports another shows up, its password masked; a page of
    // the scan names the next. As the journal records a fetch and a report (what the HTTP front end hands it).
    use provisor_server::journal::{AuditEntry, Journal};
    let drifted = &devices[9];
    let served = r#"{"User_ID_1_":"2009","Password_1_":"secret-9","Resync_Periodic":"3600"}"#;
    let reported = r#"{"User_ID_1_":"999","Password_1_":"other-9","Resync_Periodic":"3600"}"#;
    let now = provisor_server::provision::unix_ms(std::time::SystemTime::now());
    let journal = running.provisioner.journal();
    journal
        .record(AuditEntry {
            at_ms: now,
            client: "127.0.0.1:5060".into(),
            device: Some(drifted.mac.clone()),
            protocol: "https",
            method: "GET",
            file: format!("/{}.xml", drifted.mac),
            status: 200,
            hash: "5e".repeat(32).into(),
            served_params: Some(std::sync::Arc::new(provisor_server::render::ServedParams::Json(served.into()))),
            ..AuditEntry::default()
        })
        .await;
    journal
        .record(AuditEntry {
            at_ms: now + 1,
            client: "127.0.0.1:5060".into(),
            device: Some(drifted.mac.clone()),
            protocol: "http",
            method: "POST",
            file: format!("/report/{}.xml", drifted.mac),
            status: 200,
            report: Some((reported.into(), Vec::new())),
            ..AuditEntry::default()
        })
        .await;
    let mut drift = serde_json::Value::Null;
    for _ in 0..50 {
        let (status, _, body) = get(api("/drift?scan=1000"), Some(&read)).await;
        assert_eq!(status, 200, "{body}");
        if !body["devices"].as_array().unwrap().is_empty() {
            drift = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed = &drift["devices"][0];
    assert_eq!(listed["mac"], drifted.mac.to_string(), "{drift}");
    let names: Vec<&str> = listed["drift"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"User_ID_1_") && !names.contains(&"Resync_Periodic"), "{drift}");
    assert!(!drift.to_string().contains("secret-9") && !drift.to_string().contains("other-9"), "{drift}");
    let (_, _, page) = get(api("/drift?scan=1"), Some(&read)).await;
    assert_eq!(page["next"], drifted.mac.to_string(), "a full scan names the next: {page}");
    let (status, _, body) = get(api("/drift?scan=0"), Some(&read)).await;
    assert_eq!((status, body["parameter"].as_str()), (400, Some("scan")));
    let (status, _, body) = get(api(&format!("/devices/{}/status", drifted.mac)), Some(&read)).await;
    assert_eq!(status, 200);
    assert_eq!(body["drift"].as_array().map(Vec::len), Some(names.len()), "{body}");

    // Fleet events, newest first, by kind, page by page: the admin changes made above are events of their devices.
    let (status, _, body) = get(api("/events?kind=admin&limit=2"), Some(&read)).await;
    assert_eq!(status, 200, "{body}");
    let page = body["events"].as_array().unwrap();
    assert_eq!(page.len(), 2, "{body}");
    assert!(page.iter().all(|e| e["kind"] == "admin") && page[0]["id"].as_i64() > page[1]["id"].as_i64(), "{body}");
    let next = body["next"].as_i64().expect("a next page");
    let (_, _, older) = get(api(&format!("/events?kind=admin&before={next}")), Some(&read)).await;
    let older = older["events"].as_array().unwrap().clone();
    assert!(!older.is_empty() && older.iter().all(|e| e["id"].as_i64() < Some(next)), "{older:?}");
    let (status, _, body) = get(api("/events?limit=0"), Some(&read)).await;
    assert_eq!((status, body["parameter"].as_str()), (400, Some("limit")));

    // Firmware: the targets, the files, the loads reported.
    let (status, _, body) = get(api("/firmware"), Some(&read)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["targets"].is_object() && body["files"].is_array() && body["loads"].is_array(), "{body}");

    // Search: a MAC in any spelling, or a description.
    let wanted = &devices[11].mac;
    let colons: String =
        wanted.as_str().as_bytes().chunks(2).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(":");
    let (status, _, body) = get(api(&format!("/devices?q={}", &colons[6..])), Some(&read)).await;
    assert_eq!(status, 200);
    let found: Vec<&str> = body["devices"].as_array().unwrap().iter().map(|d| d["mac"].as_str().unwrap()).collect();
    assert!(found.contains(&wanted.as_str()), "{colons}: {found:?}");
    assert!(found.iter().all(|m| m.contains(&colons[6..].replace(':', ""))), "{found:?}");
    let (_, _, body) = get(api("/devices?q=no-such-text"), Some(&read)).await;
    assert_eq!(body["devices"].as_array().map(Vec::len), Some(0), "{body}");

    // The OpenAPI document: behind a token too, valid OpenAPI 3.1 to a real validator, and every operation it
    // lists has been called above with an answer in 2xx.
    assert_eq!(get(api("/openapi.json"), None).await.0, 401);
    let (status, _, document) = get(api("/openapi.json"), Some(&read)).await;
    assert_eq!((status, document["openapi"].as_str()), (200, Some("3.1.0")));
    validate_openapi(&document);
    let calls = CALLS.lock().unwrap().clone();
    let mut operations = 0;
    for (template, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations += 1;
            let called = calls.iter().any(|(url, m, status)| {
                let path = url.strip_prefix(&api("")).unwrap_or("").split('?').next().unwrap_or("");
                m.eq_ignore_ascii_case(method) && instance_of(path, template) && (200..300).contains(status)
            });
            assert!(called, "{} {template} is in the OpenAPI document, and this test never called it", method);
        }
    }
    assert!(operations >= 20, "{operations} operations");
    // And none of them answers without a token (path parameters filled in), nor with a revoked one below.
    for (template, item) in document["paths"].as_object().unwrap() {
        let path = template.replace("{mac}", &target).replace("{name}", "lobby");
        for method in item.as_object().unwrap().keys() {
            let (status, _, body) = send(&method.to_uppercase(), api(&path), None, Some("{}")).await;
            assert_eq!(status, 401, "{method} {path} without a token: {body}");
        }
    }

    // A revoked token is refused at once.
    assert!(store.remove_token("ci-read").await.unwrap());
    assert_eq!(get(api("/devices"), Some(&read)).await.0, 401);

    // Every change is in the audit trail with the token that made it; refusals and reads are not changes.
    let core = running.provisioner.clone();
    let data_dir = running.data_dir.clone();
    running.shutdown(Duration::from_secs(2)).await;
    let lines = provisor_server::journal::audit(core.store(), &data_dir, Some(&devices[7].mac), 50).await.unwrap();
    let changes: Vec<&String> = lines.iter().filter(|l| l.contains("\"admin\"") && l.contains("PATCH")).collect();
    assert_eq!(changes.len(), 3, "{lines:#?}");
    assert!(changes.iter().all(|l| l.contains("PATCH") && l.contains("ci-operator")), "{changes:#?}");
    assert!(changes[0].contains("params.Display_Name_1_") && changes[0].contains("description"), "{changes:#?}");
    let deleted = provisor_server::journal::audit(core.store(), &data_dir, Some(&devices[8].mac), 50).await.unwrap();
    assert!(deleted.iter().any(|l| l.contains("DELETE") && l.contains("ci-operator")), "{deleted:#?}");
}

/// Runs `openapi-spec-validator` (PyPI) on the document: a failure unless it says OK; under `CI=true` a missing
/// validator is a failure too.
fn validate_openapi(document: &serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(document).unwrap()).unwrap();
    match std::process::Command::new("openapi-spec-validator").arg(&file).output() {
        Ok(out) => assert!(
            out.status.success(),
            "openapi-spec-validator: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("openapi-spec-validator: {e}"),
        Err(e) => eprintln!("SKIPPED (not CI): openapi-spec-validator: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_on_sqlite() {
    exercise(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_on_postgres() {
    let Some(cluster) = postgres::Cluster::start() else { return };
    exercise(Some(cluster.fresh_database())).await;
}

/// `[admin] tls = true` (the default off loopback): the whole listener speaks HTTPS with the site's certificate, the
/// API included; plain HTTP gets nothing, so a token never crosses a network in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let toml = format!(
        "data_dir = \"{}\"\n[http]\nlisten = \"\"\n[https]\nlisten = \"\"\n[tftp]\nlisten = \"\"\n[syslog]\nlisten = \"\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntls = true\n[provisioning]\nidentity = \"mac\"\n",
        data.display()
    );
    let running = provisor_server::serve::start(Config::parse(&toml, "test.toml").unwrap()).await.unwrap();
    let (token, stored) = AdminToken::generate("ci-tls", Role::Read, 1_000).unwrap();
    running.provisioner.store().add_token(&stored).await.unwrap();
    running.provisioner.store().add_device(&device(1)).await.unwrap();
    let addr = running.admin.unwrap();
    let ca = data.join("tls/ca.pem");
    assert!(ca.exists(), "the site's certificate was generated");
    let https = |path: &str| {
        vec![
            "--cacert".to_string(),
            ca.display().to_string(),
            "-H".to_string(),
            format!("Authorization: Bearer {token}"),
            format!("https://127.0.0.1:{}{path}", addr.port()),
        ]
    };
    let (status, _, body) = curl(https("/api/v1/devices")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&device(1).mac.to_string()) && !body.contains("secret-1"), "{body}");
    let (status, _, body) = curl(https("/metrics")).await;
    assert_eq!(status, 200);
    assert!(body.contains("# TYPE"), "{body}");
    // HTTP/2 too (ALPN).
    let mut h2 = https("/healthz");
    h2.insert(0, "--http2".to_string());
    let (status, headers, _) = curl(h2).await;
    assert_eq!(status, 200);
    assert!(headers.starts_with("http/2"), "{headers}");
    // Plain HTTP gets no answer at all, and a client that does not trust the site's CA is refused.
    let (status, _, _) = curl(vec![format!("http://{addr}/api/v1/devices")]).await;
    assert_eq!(status, 0);
    let (status, _, _) = curl(vec![format!("https://127.0.0.1:{}/healthz", addr.port())]).await;
    assert_eq!(status, 0);
    running.shutdown(Duration::from_secs(2)).await;
}
