//! What a client of the admin listener controls never panics it: the method, the path and query, the headers
//! (`Authorization`, `Cookie`, `Origin`, `Content-Type`, ...) and the body of admin API and web UI requests. And without
//! a valid token nothing under `/api/v1` answers but 401; without a session no web UI page but the login page and
//! its assets answers 2xx.
//!
//! Input: line 1 is `METHOD PATH`; then header lines up to an empty line; the rest is the body. A first line
//! starting with `+` adds a valid admin token.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use provisor_server::config::Config;
use provisor_server::content::FsContent;
use provisor_server::inventory::{AdminToken, AnyStore, Device, MemoryStore, Role, Secrets, Store};
use provisor_server::journal::{MemoryJournal, Queue};
use provisor_server::provision::{Ports, Provisioner};
use tower::ServiceExt;

struct Rig {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
    token: String,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (app, token) = runtime.block_on(async {
            let store = AnyStore::Memory(Arc::new(MemoryStore::new()));
            let d = Device::blank("000e08aabbcc".parse().unwrap(), Secrets::generate().unwrap());
            store.add_device(&d).await.unwrap();
            let (token, stored) = AdminToken::generate("fuzz", Role::Admin, 0).unwrap();
            store.add_token(&stored).await.unwrap();
            let (journal, _) = Queue::start(MemoryJournal::new());
            let config = Config::default();
            let content = FsContent::new(&config);
            let core = Arc::new(Provisioner::new(store, journal, content, config, Ports::default()).unwrap());
            (provisor_server::front::admin::app(core, "127.0.0.1:9180".parse().unwrap(), false), token)
        });
        Rig { runtime, app, token }
    })
}

fuzz_target!(|data: &[u8]| {
    let rig = rig();
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let Ok(head) = std::str::from_utf8(head) else { return };
    let mut lines = head.lines();
    let Some(first) = lines.next() else { return };
    let (authorised, first) = match first.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, first),
    };
    let Some((method, path)) = first.split_once(' ') else { return };
    let mut request = axum::http::Request::builder().method(method).uri(path);
    for line in lines {
        if let Some((name, value)) = line.split_once(": ") {
            if name.eq_ignore_ascii_case("authorization") {
                continue;
            }
            request = request.header(name, value);
        }
    }
    if authorised {
        request = request.header("Authorization", format!("Bearer {}", rig.token));
    }
    let Ok(mut request) = request.body(axum::body::Body::from(body.to_vec())) else { return };
    let peer: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
    request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
    let path = request.uri().path().to_string();
    let Ok(response) = rig.runtime.block_on(rig.app.clone().oneshot(request));
    let status = response.status().as_u16();
    if !authorised && (path == "/api/v1" || path.starts_with("/api/v1/")) {
        assert_eq!(status, 401, "{path} answered without a token");
    }
    if path.starts_with("/ui/") && !path.starts_with("/ui/login") && !path.starts_with("/ui/assets/") {
        assert!(!(200..300).contains(&status), "{path} answered {status} without a session");
    }
});
