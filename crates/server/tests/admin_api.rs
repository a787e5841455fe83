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
    let mut args = vec!["-X".to_string(), method.to_string(), url];
    if let Some(b) = body {
        args.extend(["-H".into(), "Content-Type: application/json".into(), "--data-binary".into(), b.into()]);
    }
    if let Some(t) = token {
        args.extend(["-H".to_string(), format!("Authorization: Bearer {t}")]);
    }
    let (status, headers, body) = curl(args).await;
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    (status, headers, json)
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
    for (path, token) in [("/devices", None), ("/devices", Some("pvt_not-a-token")), ("/nope", None)] {
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

    // A revoked token is refused at once.
    assert!(store.remove_token("ci-read").await.unwrap());
    assert_eq!(get(api("/devices"), Some(&read)).await.0, 401);

    // Every change is in the audit trail with the token that made it; refusals and reads are not changes.
    let core = running.provisioner.clone();
    let data_dir = running.data_dir.clone();
    running.shutdown(Duration::from_secs(2)).await;
    let lines = provisor_server::journal::audit(core.store(), &data_dir, Some(&devices[7].mac), 50).await.unwrap();
    let changes: Vec<&String> = lines.iter().filter(|l| l.contains("\"admin\"")).collect();
    assert_eq!(changes.len(), 2, "{lines:#?}");
    assert!(changes.iter().all(|l| l.contains("PATCH") && l.contains("ci-operator")), "{changes:#?}");
    assert!(changes[0].contains("params.Display_Name_1_") && changes[0].contains("description"), "{changes:#?}");
    let deleted = provisor_server::journal::audit(core.store(), &data_dir, Some(&devices[8].mac), 50).await.unwrap();
    assert!(deleted.iter().any(|l| l.contains("DELETE") && l.contains("ci-operator")), "{deleted:#?}");
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
