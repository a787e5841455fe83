//! The web UI (issue 18): in a real headless Chromium (tests/ui/browser.py, Selenium) over HTTPS, and its security
//! with curl: nothing without a session, CSRF and cross-origin posts refused, no session fixation, a read login
//! cannot write, logout and token revocation end sessions, and the phones' port never serves it.

use std::collections::BTreeMap;
use std::time::Duration;

use provisor_server::config::Config;
use provisor_server::inventory::{AdminToken, AdminUser, Device, Group, Mac, Role, Secrets, Store};

const PASSWORD: &str = "correct horse battery staple";

fn device(i: usize) -> Device {
    let mac: Mac = format!("0c22{:08x}", i * 13).parse().unwrap();
    let mut d = Device::blank(mac, Secrets::generate().unwrap());
    d.model = ["CP-8841-3PCC", "CP-6841-3PCC", "CP-7841-3PCC"][i % 3].into();
    d.description = format!("desk {i}");
    d.params = BTreeMap::from([
        ("User_ID_1_".to_string(), format!("{}", 3000 + i)),
        ("Password_1_".to_string(), format!("secret-{i}")),
    ]);
    d
}

fn config(dir: &std::path::Path, tls: bool) -> Config {
    let toml = format!(
        "data_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n[https]\nlisten = \"\"\n[tftp]\nlisten = \"\"\n\
         [syslog]\nlisten = \"\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntls = {tls}\n[provisioning]\nidentity = \"mac\"\n",
        dir.join("data").display()
    );
    Config::parse(&toml, "test.toml").unwrap()
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_in_chromium() {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromedriver"];
    if let Some(missing) = chromium.iter().find(|p| !std::path::Path::new(p).exists()) {
        assert!(!ci(), "{missing} is missing (apt-get install chromium chromium-driver)");
        eprintln!("SKIPPED (not CI): {missing} is missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let running = provisor_server::serve::start(config(dir.path(), true)).await.unwrap();
    let store = running.provisioner.store();
    let lobby = Group {
        name: "lobby".into(),
        parent: None,
        description: "front of house".into(),
        params: BTreeMap::from([("Resync_Periodic".to_string(), "3600".to_string())]),
    };
    store.put_group(&lobby).await.unwrap();
    let mut devices: Vec<Device> = (0..10_000).map(device).collect();
    let target = devices[4321].mac.clone();
    devices[4321].group = Some("lobby".into());
    devices[4321].params.insert("Password_1_".into(), "secret-target".into());
    store.import_devices(&devices, &|_| {}).await.unwrap();
    store.add_user(&AdminUser::new("alice", Role::Admin, PASSWORD, 1_000).unwrap()).await.unwrap();
    let before = store.device(&target).await.unwrap().unwrap();

    // Some phone traffic for the dashboard: fetches that succeed and fail.
    let phones = running.http.unwrap();
    for (i, d) in devices.iter().take(30).enumerate() {
        let file = if i % 3 == 0 { format!("/SEP{}.cnf.xml", d.mac.upper()) } else { format!("/cfg{i}.xml") };
        let _ = curl(vec![format!("http://{phones}{file}")]).await;
    }
    let shots = std::env::var("UI_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots"));
    std::fs::create_dir_all(&shots).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/browser.py");
    let base = format!("https://127.0.0.1:{}", running.admin.unwrap().port());
    let (shots2, target2) = (shots.clone(), target.to_string());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(script)
            .env("BASE", base)
            .env("UI_USER", "alice")
            .env("UI_PASSWORD", PASSWORD)
            .env("TARGET", target2)
            .env("SHOTS", shots2)
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("every step passed"), "{stdout}");
    for page in ["login", "dashboard", "devices", "device", "group", "import", "audit", "events"] {
        let png = std::fs::read(shots.join(format!("{page}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "{page}.png");
    }

    // What the browser did is in the inventory and the audit trail, with who did it.
    assert_eq!(store.group("lobby").await.unwrap().unwrap().params["Resync_Periodic"], "600");
    let after = store.device(&target).await.unwrap().unwrap();
    assert_ne!(after.secrets.aes_key, before.secrets.aes_key);
    assert_eq!(after.secrets.previous.as_ref().map(|p| p.aes_key.as_str()), Some(before.secrets.aes_key.as_str()));
    assert!(store.device(&"0e0000000001".parse().unwrap()).await.unwrap().is_some(), "the good CSV was imported");
    assert!(store.device(&"0e0000000003".parse().unwrap()).await.unwrap().is_none(), "the bad CSV was not");
    let core = running.provisioner.clone();
    let data_dir = running.data_dir.clone();
    running.shutdown(Duration::from_secs(2)).await;
    let lines = provisor_server::journal::audit(core.store(), &data_dir, None, 200).await.unwrap();
    let by_alice = |what: &str| lines.iter().any(|l| l.contains("user:alice") && l.contains(what));
    for what in ["logged in", "Resync_Periodic of group", "imported 1 new", "rotated its keys", "logged out"] {
        assert!(by_alice(what), "no audit line by alice: {what}\n{lines:#?}");
    }
}

/// `curl -s -i` with `args`: (status, headers lower-cased, body).
async fn curl(args: Vec<String>) -> (u16, String, String) {
    let (status, head, body) = curl_raw(args).await;
    (status, head.to_ascii_lowercase(), body)
}

/// `curl -s -i` with `args`: (status, headers as sent, body).
async fn curl_raw(args: Vec<String>) -> (u16, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("curl").args(["-s", "-i", "--max-time", "10"]).args(&args).output();
        let text = String::from_utf8_lossy(&out.expect("curl runs").stdout).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, head.to_string(), body.to_string())
    })
    .await
    .unwrap()
}

/// Logs in through the form; the session cookie's value.
async fn log_in(base: &str, form: &str, cookie: Option<&str>) -> (u16, Option<String>) {
    let mut args = vec!["-H".to_string(), format!("Origin: {base}"), "-d".into(), form.into()];
    if let Some(c) = cookie {
        args.extend(["-H".into(), format!("Cookie: provisor_session={c}")]);
    }
    args.push(format!("{base}/ui/login"));
    let (status, headers, _) = curl_raw(args).await;
    let session = headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: provisor_session=").or_else(|| l.strip_prefix("Set-Cookie: provisor_session="))
        })
        .map(|v| v.split(';').next().unwrap_or("").to_string());
    (status, session)
}

/// Posts a form with a session cookie, from `origin` (or none).
async fn post(base: &str, path: &str, session: &str, origin: Option<&str>, form: &str) -> (u16, String) {
    let mut args = vec!["-H".to_string(), format!("Cookie: provisor_session={session}"), "-d".into(), form.into()];
    if let Some(o) = origin {
        args.extend(["-H".into(), format!("Origin: {o}")]);
    }
    args.push(format!("{base}{path}"));
    let (status, headers, _) = curl(args).await;
    (status, headers)
}

/// The CSRF token of a page's forms.
async fn csrf_of(base: &str, session: &str) -> String {
    let (_, _, body) =
        curl(vec!["-H".into(), format!("Cookie: provisor_session={session}"), format!("{base}/ui/")]).await;
    let at = body.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + "name=\"csrf\" value=\"".len();
    body[at..].split('"').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_refuses_what_it_should() {
    let dir = tempfile::tempdir().unwrap();
    let running = provisor_server::serve::start(config(dir.path(), false)).await.unwrap();
    let store = running.provisioner.store();
    let d = device(1);
    store.add_device(&d).await.unwrap();
    store.add_user(&AdminUser::new("alice", Role::Admin, PASSWORD, 1_000).unwrap()).await.unwrap();
    store.add_user(&AdminUser::new("rita", Role::Read, PASSWORD, 1_000).unwrap()).await.unwrap();
    let (token, stored) = AdminToken::generate("ops", Role::Operator, 1_000).unwrap();
    store.add_token(&stored).await.unwrap();
    let base = format!("http://{}", running.admin.unwrap());
    let mac = d.mac.to_string();

    // No page without a session: pages send to the login page, changes are refused.
    for path in ["/ui/", "/ui/devices", &format!("/ui/devices/{mac}"), "/ui/groups", "/ui/import", "/ui/audit"] {
        let (status, headers, _) = curl(vec![format!("{base}{path}")]).await;
        assert_eq!(status, 303, "{path}");
        assert!(headers.contains("location: /ui/login?next="), "{path}: {headers}");
    }
    for path in [format!("/ui/devices/{mac}/rotate-keys"), "/ui/import".into(), "/ui/logout".into()] {
        let (status, _) = post(&base, &path, "forged", Some(&base), "csrf=x").await;
        assert_eq!(status, 401, "{path}");
    }
    // An API token is not a session cookie, and a session cookie is not an API token.
    let (status, _, _) = curl(vec!["-H".into(), format!("Authorization: Bearer {token}"), format!("{base}/ui/")]).await;
    assert_eq!(status, 303);

    // Logins: a wrong password, an unknown user and a bad token get the same answer; a login from another site is
    // refused before it is tried.
    for form in ["user=alice&password=wrong", "user=nobody&password=wrong", "token=pvt_nope"] {
        assert_eq!(log_in(&base, form, None).await, (401, None), "{form}");
    }
    let (status, _, _) = curl(vec![
        "-H".into(),
        "Origin: https://evil.example".into(),
        "-d".into(),
        format!("user=alice&password={PASSWORD}"),
        format!("{base}/ui/login"),
    ])
    .await;
    assert_eq!(status, 403);

    // Session fixation: an id the browser brings is never kept; the login makes a new one, and a live session the
    // browser had is ended.
    let form = format!("user=alice&password={PASSWORD}");
    let (status, session) = log_in(&base, &form, Some("attacker-chosen")).await;
    assert_eq!(status, 303);
    let session = session.expect("a session cookie");
    assert_ne!(session, "attacker-chosen");
    let (status, again) = log_in(&base, &form, Some(&session)).await;
    assert_eq!(status, 303);
    let again = again.unwrap();
    assert_ne!(again, session);
    let (status, _, _) =
        curl(vec!["-H".into(), format!("Cookie: provisor_session={session}"), format!("{base}/ui/")]).await;
    assert_eq!(status, 303, "the session the browser had before logging in again has ended");
    let session = again;
    let (status, headers, _) =
        curl(vec!["-H".into(), format!("Cookie: provisor_session={session}"), format!("{base}/ui/")]).await;
    assert_eq!(status, 200);
    assert!(
        headers.contains("content-security-policy: default-src 'self'") && headers.contains("x-frame-options: deny")
    );

    // CSRF: a change needs this session's token and this origin; refused changes change nothing.
    let csrf = csrf_of(&base, &session).await;
    let rotate = format!("/ui/devices/{mac}/rotate-keys");
    for (origin, form) in [
        (Some(base.as_str()), String::new()),
        (Some(base.as_str()), "csrf=wrong".to_string()),
        (Some("https://evil.example"), format!("csrf={csrf}")),
        (None, format!("csrf={csrf}")),
    ] {
        let (status, _) = post(&base, &rotate, &session, origin, &form).await;
        assert_eq!(status, 403, "{origin:?} {form}");
    }
    assert_eq!(store.device(&d.mac).await.unwrap().unwrap().secrets, d.secrets);
    let (status, headers) = post(&base, &rotate, &session, Some(&base), &format!("csrf={csrf}")).await;
    assert_eq!(status, 303, "{headers}");
    assert_ne!(store.device(&d.mac).await.unwrap().unwrap().secrets.aes_key, d.secrets.aes_key);
    // Another session's token does not do.
    let (_, other) = log_in(&base, &form, None).await;
    let other_csrf = csrf_of(&base, &other.unwrap()).await;
    let (status, _) = post(&base, &rotate, &session, Some(&base), &format!("csrf={other_csrf}")).await;
    assert_eq!(status, 403);

    // A read login sees but cannot change, and secrets stay masked.
    let (_, read) = log_in(&base, &format!("user=rita&password={PASSWORD}"), None).await;
    let read = read.unwrap();
    let read_csrf = csrf_of(&base, &read).await;
    let set = format!("/ui/devices/{mac}/params");
    let (status, _) =
        post(&base, &set, &read, Some(&base), &format!("csrf={read_csrf}&name=Display_Name_1_&value=x")).await;
    assert_eq!(status, 403);
    assert!(!store.device(&d.mac).await.unwrap().unwrap().params.contains_key("Display_Name_1_"));
    let (status, _) =
        post(&base, &format!("/ui/devices/{mac}/reveal"), &read, Some(&base), &format!("csrf={read_csrf}")).await;
    assert_eq!(status, 403);
    let (_, _, page) =
        curl(vec!["-H".into(), format!("Cookie: provisor_session={read}"), format!("{base}/ui/devices/{mac}")]).await;
    assert!(page.contains("********") && !page.contains("secret-1"), "secrets on a read page");
    assert!(!page.contains("id=\"rotate\"") && !page.contains("id=\"reveal\""));

    // A token login ends when the token is revoked; a user's sessions end when the user is removed.
    let (_, by_token) = log_in(&base, &format!("token={token}"), None).await;
    let by_token = by_token.unwrap();
    let page_status = |s: String| {
        let base = base.clone();
        async move { curl(vec!["-H".into(), format!("Cookie: provisor_session={s}"), format!("{base}/ui/")]).await.0 }
    };
    assert_eq!(page_status(by_token.clone()).await, 200);
    assert!(store.remove_token("ops").await.unwrap());
    assert_eq!(page_status(by_token).await, 303);
    assert!(store.remove_user("rita").await.unwrap());
    assert_eq!(page_status(read).await, 303);

    // Logout ends the session on the server, not only in the browser.
    let (status, headers) = post(&base, "/ui/logout", &session, Some(&base), &format!("csrf={csrf}")).await;
    assert_eq!(status, 303);
    assert!(headers.contains("set-cookie: provisor_session=;"), "{headers}");
    assert_eq!(page_status(session).await, 303);

    // Guessing: after 5 failed logins from an address (3 above, 2 here), even the right password is refused for a
    // while.
    for form in ["user=alice&password=guess1", "user=alice&password=guess2"] {
        assert_eq!(log_in(&base, form, None).await.0, 401);
    }
    assert_eq!(log_in(&base, &form, None).await, (429, None));

    // The phones' port never serves the UI.
    let phones = format!("http://{}/ui/login", running.http.unwrap());
    let (status, _, body) = curl(vec![phones]).await;
    assert!(status != 200 && !body.contains("Log in"), "{status} {body}");
    running.shutdown(Duration::from_secs(2)).await;
}
