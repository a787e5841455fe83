//! Several stateless nodes on one PostgreSQL inventory (a real server): they serve identical bytes for the same
//! device, follow each other's changes through the revision, agree on a key rotation whichever node the phone asks,
//! enrol a phone two of them see at once as one device, and share one journal (state and audit trail).

mod common;
#[path = "common/postgres.rs"]
mod postgres;

use std::sync::Arc;

use common::{A, B, PORTS, at, bytes, get, open, param, text, with_certificate};
use provisor_server::config::{Config, JournalConfig, UnknownDevices};
use provisor_server::content::MemoryContent;
use provisor_server::inventory::at_rest::{AtRest, SiteKey};
use provisor_server::inventory::{Group, Mac, PoolLimits, PostgresStore, Store};
use provisor_server::journal::PostgresJournal;
use provisor_server::provision::{Protocol, ProvisionError, Provisioner};

type Node = Provisioner<PostgresStore, PostgresJournal>;

const KEY: [u8; 32] = [0x42; 32];

async fn node(url: &str, name: &str, tweak: impl FnOnce(&mut Config)) -> Node {
    let store =
        PostgresStore::connect(url, AtRest::sealed(SiteKey::from_bytes(KEY)), PoolLimits::default()).await.unwrap();
    let mut config = Config { public_host: "prov.example.com".into(), ..Config::default() };
    tweak(&mut config);
    let journal = PostgresJournal::new(store.clone(), JournalConfig::default(), name.into());
    let node = Provisioner::new(store, journal, Arc::new(MemoryContent::new()), config, PORTS).unwrap();
    node.refresh().await;
    node
}

/// The inventory of the in-process tests (`common::core`), written through one node's store.
async fn seed(store: &PostgresStore) {
    for (name, params) in [("defaults", vec![("Proxy_1_", "sip.example.com")]), ("office", vec![])] {
        let params = params.into_iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        store.put_group(&Group { name: name.into(), parent: None, description: String::new(), params }).await.unwrap();
    }
    for (mac, model, ext) in [(A, "CP-8841-3PCC", 201), (B, "CP-7832-3PCC", 202)] {
        store.add_device(&common::device(mac, model, ext)).await.unwrap();
    }
}

fn mac(s: &str) -> Mac {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_one_database_serve_the_same_bytes_and_follow_each_others_changes() {
    let Some(cluster) = postgres::Cluster::start() else { return };
    let url = cluster.fresh_database();
    let (one, two) = (node(&url, "node-1", |_| {}).await, node(&url, "node-2", |_| {}).await);
    seed(one.store()).await;
    one.refresh().await;
    two.refresh().await;

    let s = one.store().device(&mac(A)).await.unwrap().unwrap().secrets;
    let path = format!("/profile/{}/profile.cfg", s.path_token);
    let (a, b) = (
        one.handle(get(Protocol::Http, &path, 1), at(0)).await,
        two.handle(get(Protocol::Tftp, &path, 1), at(1)).await,
    );
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(bytes(&a), bytes(&b), "the same ciphertext from either node");
    let full = || with_certificate(&format!("/{A}.xml"), 1, A, "CP-8841-3PCC");
    assert_eq!(text(&one.handle(full(), at(2)).await), text(&two.handle(full(), at(2)).await));
    assert_eq!(param(&open(&bytes(&a), Some(&s.aes_key), None).unwrap(), "Password_1_").as_deref(), Some("secret-201"));

    // A change made through node 1 reaches node 2 through the revision (node 2's watcher reads it every 250 ms).
    let mut defaults = one.store().group("defaults").await.unwrap().unwrap();
    defaults.params.insert("Proxy_1_".into(), "sip2.example.com".into());
    one.store().put_group(&defaults).await.unwrap();
    two.refresh().await;
    let after = two.handle(get(Protocol::Http, &path, 1), at(3)).await;
    assert_eq!(
        param(&open(&bytes(&after), Some(&s.aes_key), None).unwrap(), "Proxy_1_").as_deref(),
        Some("sip2.example.com")
    );

    // One journal: what node 2 served is in the state and the audit trail node 1 reads.
    let status = provisor_server::journal::status(
        &provisor_server::inventory::AnyStore::Postgres(one.store().clone()),
        &mac(A),
        10,
    )
    .await
    .unwrap();
    assert!(status.served.is_some() && status.last_seen_ms.is_some(), "{status:?}");
    let audit = provisor_server::journal::audit(
        &provisor_server::inventory::AnyStore::Postgres(one.store().clone()),
        std::path::Path::new(""),
        Some(&mac(A)),
        100,
    )
    .await
    .unwrap();
    assert!(audit.len() >= 5, "{audit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_is_decided_in_the_database_whichever_node_the_phone_asks() {
    let Some(cluster) = postgres::Cluster::start() else { return };
    let url = cluster.fresh_database();
    let (one, two) = (node(&url, "node-1", |_| {}).await, node(&url, "node-2", |_| {}).await);
    seed(one.store()).await;
    let old = one.store().device(&mac(A)).await.unwrap().unwrap();
    let mut d = old.clone();
    d.secrets = d.secrets.rotated().unwrap();
    one.store().update_device(&d).await.unwrap();
    one.refresh().await;
    two.refresh().await;
    // The phone still holds the old key: node 1 hands it the new one at the old path.
    let old_path = format!("/profile/{}/profile.cfg", old.secrets.path_token);
    let r = one.handle(get(Protocol::Http, &old_path, 1), at(10)).await;
    let handover = open(&bytes(&r), Some(&old.secrets.aes_key), None).unwrap();
    assert_eq!(param(&handover, "GPP_SA"), Some(d.secrets.aes_key.clone()));
    // Its next resync lands on node 2, at the new path, under the new key: served, and the old key is forgotten for
    // every node.
    let new_path = format!("/profile/{}/profile.cfg", d.secrets.path_token);
    let r = two.handle(get(Protocol::Http, &new_path, 1), at(20)).await;
    assert_eq!(open(&bytes(&r), Some(&d.secrets.aes_key), None).unwrap(), handover);
    one.refresh().await;
    let r = one.handle(get(Protocol::Http, &old_path, 1), at(30)).await;
    assert!(matches!(r.error, Some(ProvisionError::NotFound)), "{:?}", r.error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_enrolling_the_same_phone_at_once_create_one_device() {
    let Some(cluster) = postgres::Cluster::start() else { return };
    let url = cluster.fresh_database();
    let enrol = |c: &mut Config| {
        c.provisioning.unknown_devices = UnknownDevices::Enrol;
        c.provisioning.enrol_group = Some("office".into());
    };
    let (one, two) = (node(&url, "node-1", enrol).await, node(&url, "node-2", enrol).await);
    seed(one.store()).await;
    for round in 0..20u32 {
        let new = format!("0011aabbd{round:03x}");
        let req = || with_certificate(&format!("/{new}.xml"), 1, &new, "CP-8851-3PCC");
        let (a, b) = tokio::join!(one.handle(req(), at(0)), two.handle(req(), at(0)));
        assert_eq!((a.status, b.status), (200, 200), "{:?} {:?}", a.error, b.error);
        let (ka, kb) = (param(&text(&a), "GPP_SA"), param(&text(&b), "GPP_SA"));
        assert!(ka.is_some());
        assert_eq!(ka, kb, "both nodes serve the one device's key");
    }
    let devices = one.store().devices().await.unwrap();
    assert_eq!(devices.len(), 2 + 20, "one device per phone");
}
