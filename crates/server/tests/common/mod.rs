//! Shared set-up for the in-process tests: a provisioning core on a [`MemoryStore`], a [`MemoryJournal`] and
//! [`MemoryContent`], with a fixed clock the tests move by hand.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use provisor_envelope::{Keys, Limits, aes128gcm};
use provisor_profile::{ParseOptions, Profile, Value};
use provisor_server::config::Config;
use provisor_server::content::MemoryContent;
use provisor_server::identity::Claims;
use provisor_server::inventory::{Device, Group, MemoryStore, Secrets, Store};
use provisor_server::journal::MemoryJournal;
use provisor_server::provision::{Body, Ports, Protocol, Provisioner, Request, Response};

/// The core under test.
pub type Core = Provisioner<MemoryStore, MemoryJournal>;

/// Two MPP phones and an enterprise phone.
pub const A: &str = "0011aabbcc01";
pub const B: &str = "0011aabbcc02";
pub const E: &str = "0011aabbcc04";

/// The ports the rendered URLs name.
pub const PORTS: Ports = Ports { http: Some(8080), https: Some(8443), tftp: Some(69), syslog: Some(514) };

/// The fixed clock: seconds after 2027-01-15 08:00 UTC.
pub fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
}

/// Client `10.0.0.<n>`.
pub fn client(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], 5060))
}

fn params(p: &[(&str, &str)]) -> BTreeMap<String, String> {
    p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// A device of `model` with a line and its password.
pub fn device(mac: &str, model: &str, ext: u32) -> Device {
    Device {
        mac: mac.parse().unwrap(),
        model: model.into(),
        serial: format!("FCH{ext}"),
        description: String::new(),
        group: Some("office".into()),
        params: params(&[("User_ID_1_", &ext.to_string()), ("Password_1_", &format!("secret-{ext}"))]),
        secrets: Secrets::generate().unwrap(),
    }
}

/// A core with A, B (MPP) and E (enterprise) in the inventory, configured by `tweak`.
pub async fn core(tweak: impl FnOnce(&mut Config)) -> (Core, Arc<MemoryContent>) {
    let mut config = Config { public_host: "prov.example.com".into(), ..Config::default() };
    tweak(&mut config);
    let store = MemoryStore::new();
    store
        .put_group(&Group {
            name: "defaults".into(),
            parent: None,
            description: String::new(),
            params: params(&[("Proxy_1_", "sip.example.com")]),
        })
        .await
        .unwrap();
    store
        .put_group(&Group { name: "office".into(), parent: None, description: String::new(), params: params(&[]) })
        .await
        .unwrap();
    for (mac, model, ext) in [(A, "CP-8841-3PCC", 201), (B, "CP-7832-3PCC", 202), (E, "CP-7965G", 204)] {
        store.add_device(&device(mac, model, ext)).await.unwrap();
    }
    let content = Arc::new(MemoryContent::new());
    let core = Provisioner::new(store, MemoryJournal::new(), content.clone(), config, PORTS).unwrap();
    core.refresh().await;
    (core, content)
}

/// A request without headers.
pub fn get(protocol: Protocol, path: &str, from: u8) -> Request {
    Request::get(protocol, path, client(from))
}

/// A request over HTTPS with a verified certificate naming `mac`.
pub fn with_certificate(path: &str, from: u8, mac: &str, model: &str) -> Request {
    let mut r = get(Protocol::Https, path, from);
    r.certificate = Some(Claims {
        mac: Some(mac.parse().unwrap()),
        model: Some(model.into()),
        serial: Some("FCHCERT".into()),
        firmware: None,
    });
    r
}

/// The body of a response held in memory.
pub fn bytes(r: &Response) -> Vec<u8> {
    match &r.body {
        Body::Bytes(b) => b.to_vec(),
        Body::File(..) => panic!("a file body"),
    }
}

/// The body as text.
pub fn text(r: &Response) -> String {
    String::from_utf8(bytes(r)).expect("text")
}

/// The value of `name` in a profile, parsed as a phone parses it.
pub fn param(profile: &str, name: &str) -> Option<String> {
    let p = Profile::parse(profile.as_bytes(), &ParseOptions::default()).expect("a valid profile");
    p.effective().into_iter().find(|x| x.name == name).and_then(|x| match &x.value {
        Value::Text(t) => Some(t.to_string()),
        _ => None,
    })
}

/// A device's current secrets.
pub async fn secrets(core: &Core, mac: &str) -> Secrets {
    core.store().device(&mac.parse().unwrap()).await.unwrap().unwrap().secrets
}

/// Decrypts an `openssl enc` body with a pass phrase, or an RFC 8188 body with a hex IKM, and gunzips it.
pub fn open(body: &[u8], key: Option<&str>, ikm: Option<&str>) -> Result<String, String> {
    let keys =
        Keys { key: key.map(|k| k.as_bytes().to_vec()), ikm: ikm.and_then(aes128gcm::ikm_from_hex), ..Keys::default() };
    let u = provisor_envelope::unwrap(body, &keys, &Limits::default()).map_err(|e| e.to_string())?;
    if u.layers.is_empty() {
        return Err("not encrypted".into());
    }
    String::from_utf8(u.plaintext).map_err(|e| e.to_string())
}
