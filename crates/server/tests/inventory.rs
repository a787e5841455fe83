//! The stores: one conformance kit (devices, groups, inheritance, cycles, all-or-nothing imports, random paths,
//! rotation, revisions, arming, phone certificates) run against every [`Store`] — [`MemoryStore`], [`SqliteStore`]
//! and [`PostgresStore`] (a real PostgreSQL server), the two databases both in clear and with secrets sealed — plus
//! SQLite's persistence across reopening, and the proof that a dump of a sealed inventory holds no secret.

use std::collections::BTreeMap;

use provisor_server::inventory::at_rest::{AtRest, SiteKey};
use provisor_server::inventory::{
    Device, Group, Mac, MemoryStore, PoolLimits, PostgresStore, Secrets, SqliteStore, Store, StoreError,
    effective_parameters,
};

#[path = "common/postgres.rs"]
mod postgres;

fn device(mac: &str, model: &str, group: Option<&str>, params: &[(&str, &str)]) -> Device {
    Device {
        mac: mac.parse().unwrap(),
        model: model.into(),
        serial: String::new(),
        description: String::new(),
        group: group.map(str::to_string),
        params: params.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
        secrets: Secrets::generate().unwrap(),
    }
}

fn group(name: &str, parent: Option<&str>, params: &[(&str, &str)]) -> Group {
    Group {
        name: name.into(),
        parent: parent.map(str::to_string),
        description: String::new(),
        params: params.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
    }
}

#[test]
fn mac_forms() {
    for s in ["00:0e:08:aa:bb:cc", "00-0E-08-AA-BB-CC", "000e.08aa.bbcc", "000E08AABBCC", "SEP000E08AABBCC"] {
        assert_eq!(s.parse::<Mac>().unwrap().as_str(), "000e08aabbcc", "{s}");
    }
    for bad in ["", "000e08aabb", "000e08aabbccdd", "zz0e08aabbcc"] {
        assert!(bad.parse::<Mac>().is_err(), "{bad}");
    }
}

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    devices_groups_and_inheritance(&store).await;
    imports_paths_rotation_and_revisions(&store).await;
    arming(&store).await;
    phone_certificates(&store).await;
}

#[tokio::test]
async fn memory_store_conforms() {
    let store = MemoryStore::new();
    devices_groups_and_inheritance(&store).await;
    imports_paths_rotation_and_revisions(&store).await;
    arming(&store).await;
    phone_certificates(&store).await;
}

#[tokio::test]
async fn sealed_sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(dir.path(), AtRest::sealed(SiteKey::from_bytes([3; 32]))).await.unwrap();
    devices_groups_and_inheritance(&store).await;
    imports_paths_rotation_and_revisions(&store).await;
    arming(&store).await;
    phone_certificates(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_conforms() {
    let Some(cluster) = postgres::Cluster::start() else { return };
    for at_rest in [AtRest::clear(), AtRest::sealed(SiteKey::from_bytes([4; 32]))] {
        let url = cluster.fresh_database();
        let store = PostgresStore::connect(&url, at_rest, PoolLimits::default()).await.unwrap();
        devices_groups_and_inheritance(&store).await;
        imports_paths_rotation_and_revisions(&store).await;
        arming(&store).await;
        phone_certificates(&store).await;
        // Nodes started together migrate once (sqlx's advisory lock), and agree.
        let again = cluster.fresh_database();
        let (a, b) = tokio::join!(
            PostgresStore::connect(&again, AtRest::clear(), PoolLimits::default()),
            PostgresStore::connect(&again, AtRest::clear(), PoolLimits::default())
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.migrations().await.unwrap().iter().all(|m| m.2));
        assert_eq!(a.revision().await.unwrap(), b.revision().await.unwrap());
    }
}

/// Phone certificates: set, replaced, removed; only for devices that exist; each change moves the revision.
async fn phone_certificates(store: &impl Store) {
    let mac: Mac = "000e08eeff01".parse().unwrap();
    assert!(matches!(store.set_phone_certificate(&mac, Some(b"der")).await, Err(StoreError::NoDevice(_))));
    store.add_device(&device("000e08eeff01", "CP-8865", None, &[])).await.unwrap();
    assert_eq!(store.phone_certificate(&mac).await.unwrap(), None);
    let r0 = store.revision().await.unwrap();
    store.set_phone_certificate(&mac, Some(b"first")).await.unwrap();
    store.set_phone_certificate(&mac, Some(b"second")).await.unwrap();
    assert_eq!(store.phone_certificate(&mac).await.unwrap().as_deref(), Some(&b"second"[..]));
    let r1 = store.revision().await.unwrap();
    assert_ne!(r0, r1, "a new certificate changes what is served");
    store.set_phone_certificate(&mac, None).await.unwrap();
    assert_eq!(store.phone_certificate(&mac).await.unwrap(), None);
    store.remove_device(&mac).await.unwrap();
}

/// Every secret a device and its groups hold: (mac, aes_key, ikm, passwords).
const SECRET_PASSWORDS: [&str; 4] = ["line-one-Pa55", "admin-Pa55word", "user-Pa55word", "group-Pa55word"];

async fn fill_with_secrets(store: &impl Store) -> Vec<String> {
    store.put_group(&group("defaults", None, &[("Admin_Password", SECRET_PASSWORDS[3])])).await.unwrap();
    let mut d = device(
        "000e08123401",
        "CP-8841-3PCC",
        None,
        &[
            ("Password_1_", SECRET_PASSWORDS[0]),
            ("Admin_Password", SECRET_PASSWORDS[1]),
            ("User_Password", SECRET_PASSWORDS[2]),
            ("Display_Name_1_", "Visible Name"),
        ],
    );
    d.secrets = d.secrets.rotated().unwrap();
    store.add_device(&d).await.unwrap();
    let prev = d.secrets.previous.clone().unwrap();
    let mut secrets: Vec<String> = SECRET_PASSWORDS.iter().map(|s| s.to_string()).collect();
    secrets.extend([d.secrets.aes_key.clone(), d.secrets.ikm.clone(), prev.aes_key, prev.ikm]);
    secrets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_of_a_sealed_inventory_holds_no_secret() {
    // SQLite: the database file itself (and its WAL) is the dump.
    let dir = tempfile::tempdir().unwrap();
    let key = [9u8; 32];
    let store = SqliteStore::open_with(dir.path(), AtRest::sealed(SiteKey::from_bytes(key))).await.unwrap();
    let secrets = fill_with_secrets(&store).await;
    let stored = store.device(&"000e08123401".parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.params["Password_1_"], SECRET_PASSWORDS[0], "the store gives them back in clear");
    // Closing waits for the last connection, whose checkpoint moves the WAL into the file and deletes it: reading
    // while a dropped pool still closes in the background could see neither.
    store.pool().close().await;
    drop(store);
    let mut bytes = Vec::new();
    for f in ["inventory.sqlite", "inventory.sqlite-wal"] {
        bytes.extend(std::fs::read(dir.path().join(f)).unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("Visible Name"), "the check can see what is in clear");
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "{s} is in the SQLite file");
    }
    // Without the key, or with another, the inventory refuses to open.
    assert!(matches!(SqliteStore::open(dir.path()).await, Err(StoreError::Locked(_))));
    let other = AtRest::sealed(SiteKey::from_bytes([1; 32]));
    assert!(matches!(SqliteStore::open_with(dir.path(), other).await, Err(StoreError::WrongKey { .. })));

    // PostgreSQL: pg_dump.
    let Some(cluster) = postgres::Cluster::start() else { return };
    let url = cluster.fresh_database();
    let store =
        PostgresStore::connect(&url, AtRest::sealed(SiteKey::from_bytes(key)), PoolLimits::default()).await.unwrap();
    let secrets = fill_with_secrets(&store).await;
    let dump = cluster.dump(&url);
    assert!(dump.contains("Visible Name"), "the dump has the inventory");
    for s in &secrets {
        assert!(!dump.contains(s.as_str()), "{s} is in the pg_dump");
    }
    assert!(matches!(
        PostgresStore::connect(&url, AtRest::clear(), PoolLimits::default()).await,
        Err(StoreError::Locked(_))
    ));
}

#[tokio::test]
async fn an_inventory_in_clear_is_sealed_when_a_key_is_given_and_the_key_can_be_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let clear = SqliteStore::open(dir.path()).await.unwrap();
    let secrets = fill_with_secrets(&clear).await;
    let before = clear.device(&"000e08123401".parse().unwrap()).await.unwrap().unwrap();
    clear.pool().close().await;
    drop(clear);
    let first = SqliteStore::open_with(dir.path(), AtRest::sealed(SiteKey::from_bytes([5; 32]))).await.unwrap();
    assert_eq!(first.device(&before.mac).await.unwrap().unwrap(), before, "sealing changes no value");
    // Rotation: the store opened with the new key re-seals from the old one, in one transaction.
    first.pool().close().await;
    drop(first);
    let old = AtRest::sealed(SiteKey::from_bytes([5; 32]));
    let new_key = AtRest::sealed(SiteKey::from_bytes([6; 32]));
    let raw = SqliteStore::open_with(dir.path(), old.clone()).await.unwrap();
    let rotated = SqliteStore::rebind(raw, new_key.clone());
    assert_eq!(rotated.reseal(&old).await.unwrap(), 5, "one device row and four passwords");
    rotated.pool().close().await;
    drop(rotated);
    let after = SqliteStore::open_with(dir.path(), new_key).await.unwrap();
    assert_eq!(after.device(&before.mac).await.unwrap().unwrap(), before);
    assert!(matches!(SqliteStore::open_with(dir.path(), old).await, Err(StoreError::WrongKey { .. })));
    let bytes = std::fs::read(dir.path().join("inventory.sqlite")).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "{s} left in clear after sealing");
    }
}

/// `identity = "mac"`: new devices are armed; exactly one of many takers gets `true`; re-arming and removal.
async fn arming(store: &impl Store) {
    let mac: Mac = "000e08ccdd01".parse().unwrap();
    store.add_device(&device("000e08ccdd01", "CP-8841-3PCC", None, &[])).await.unwrap();
    assert!(store.is_armed(&mac).await.unwrap(), "a new device is armed");
    let revision = store.revision().await.unwrap();
    let takers = futures_take(store, &mac).await;
    assert_eq!(takers, 1, "exactly one of eight takers at once");
    assert!(!store.is_armed(&mac).await.unwrap());
    assert_eq!(store.revision().await.unwrap(), revision, "arming is no inventory change");
    store.arm(&mac).await.unwrap();
    assert!(store.take_armed(&mac).await.unwrap());
    let unknown: Mac = "000e08ccdd99".parse().unwrap();
    assert!(store.arm(&unknown).await.is_err(), "only a device in the inventory can be armed");
    store.arm(&mac).await.unwrap();
    store.remove_device(&mac).await.unwrap();
    assert!(!store.is_armed(&mac).await.unwrap(), "removal disarms");
    store.add_device(&device("000e08ccdd01", "CP-8841-3PCC", None, &[])).await.unwrap();
    assert!(store.is_armed(&mac).await.unwrap(), "added again: armed again");
    store.remove_device(&mac).await.unwrap();
}

async fn futures_take(store: &impl Store, mac: &Mac) -> usize {
    let t = || store.take_armed(mac);
    let r = tokio::join!(t(), t(), t(), t(), t(), t(), t(), t());
    [r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7].into_iter().filter(|r| *r.as_ref().unwrap()).count()
}

async fn devices_groups_and_inheritance(store: &impl Store) {
    store
        .put_group(&group("defaults", None, &[("Resync_Periodic", "3600"), ("Proxy_1_", "sip.example.com")]))
        .await
        .unwrap();
    store.put_group(&group("model:CP-8841-3PCC", None, &[("Dial_Plan_1_", "(xx.)")])).await.unwrap();
    store.put_group(&group("office", None, &[("Resync_Periodic", "7200"), ("Station_Name", "Office")])).await.unwrap();
    store.put_group(&group("office-lobby", Some("office"), &[("Station_Name", "Lobby")])).await.unwrap();
    let d = device("000e08aabbcc", "CP-8841-3PCC", Some("office-lobby"), &[("User_ID_1_", "2001")]);
    store.add_device(&d).await.unwrap();
    assert!(matches!(store.add_device(&d).await, Err(StoreError::DeviceExists(_))));
    let got = store.device(&d.mac).await.unwrap().unwrap();
    assert_eq!(got, d);
    let p = effective_parameters(store, &got).await.unwrap();
    let expected: BTreeMap<String, String> = [
        ("Resync_Periodic", "7200"),
        ("Proxy_1_", "sip.example.com"),
        ("Dial_Plan_1_", "(xx.)"),
        ("Station_Name", "Lobby"),
        ("User_ID_1_", "2001"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(p, expected);
    // Groups in use cannot go; cycles are refused; unknown groups are refused.
    assert!(matches!(store.remove_group("office").await, Err(StoreError::GroupInUse(..))));
    assert!(matches!(
        store.put_group(&group("office", Some("office-lobby"), &[])).await,
        Err(StoreError::GroupCycle(_))
    ));
    let orphan = device("000e08aabbcd", "CP-8841-3PCC", Some("nope"), &[]);
    assert!(matches!(store.add_device(&orphan).await, Err(StoreError::NoGroup(_))));
    // Update and remove.
    let mut changed = got.clone();
    changed.params.insert("Password_1_".into(), "s3cret".into());
    changed.group = Some("office".into());
    store.update_device(&changed).await.unwrap();
    assert_eq!(store.device(&d.mac).await.unwrap().unwrap(), changed);
    assert!(store.remove_device(&d.mac).await.unwrap());
    assert!(!store.remove_device(&d.mac).await.unwrap());
    assert!(store.remove_group("office-lobby").await.unwrap());
    assert!(!store.remove_group("office-lobby").await.unwrap());
    assert_eq!(
        store.groups().await.unwrap().iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["defaults", "model:CP-8841-3PCC", "office"]
    );
}

async fn imports_paths_rotation_and_revisions(store: &impl Store) {
    let good: Vec<Device> =
        (0..50).map(|i| device(&format!("0011330{i:05x}"), "CP-7841-3PCC", None, &[("User_ID_1_", "x")])).collect();
    let mut bad = good.clone();
    bad.push(good[3].clone());
    let before = store.devices().await.unwrap().len();
    assert!(matches!(store.import_devices(&bad, &|_| {}).await, Err(StoreError::DeviceExists(_))));
    assert_eq!(store.devices().await.unwrap().len(), before, "nothing from a failed import");
    let r0 = store.revision().await.unwrap();
    store.import_devices(&good, &|_| {}).await.unwrap();
    let r1 = store.revision().await.unwrap();
    assert_ne!(r0, r1, "an import moves the revision");
    // Random paths find their device; a rotation keeps the old path until it is forgotten.
    let d = &good[7];
    let (found, previous) = store.device_by_path_token(&d.secrets.path_token).await.unwrap().unwrap();
    assert_eq!((found.mac.clone(), previous), (d.mac.clone(), false));
    assert!(store.device_by_path_token("").await.unwrap().is_none());
    assert!(store.device_by_path_token("nosuchpath").await.unwrap().is_none());
    let mut rotated = found.clone();
    rotated.secrets = found.secrets.rotated().unwrap();
    store.update_device(&rotated).await.unwrap();
    let (old, previous) = store.device_by_path_token(&d.secrets.path_token).await.unwrap().unwrap();
    assert_eq!((old.mac.clone(), previous), (d.mac.clone(), true));
    let r2 = store.revision().await.unwrap();
    store.forget_previous_secrets(&d.mac).await.unwrap();
    assert!(store.device_by_path_token(&d.secrets.path_token).await.unwrap().is_none());
    assert!(store.device(&d.mac).await.unwrap().unwrap().secrets.previous.is_none());
    let r3 = store.revision().await.unwrap();
    assert_ne!(r2, r3, "forgetting secrets changes what is rendered");
    store.forget_previous_secrets(&d.mac).await.unwrap();
    assert_eq!(store.revision().await.unwrap(), r3, "nothing to forget, nothing changes");
    let missing = device("0011330fffff", "CP-7841-3PCC", None, &[]);
    assert!(matches!(store.update_device(&missing).await, Err(StoreError::NoDevice(_))));
}

#[tokio::test]
async fn imports_are_all_or_nothing_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let good: Vec<Device> = (0..500)
            .map(|i| device(&format!("0011220{i:05x}"), "CP-7841-3PCC", None, &[("User_ID_1_", "x")]))
            .collect();
        let mut bad = good.clone();
        bad.push(good[3].clone()); // a duplicate MAC at the end
        assert!(store.import_devices(&bad, &|_| {}).await.is_err());
        assert!(store.devices().await.unwrap().is_empty(), "nothing from a failed import");
        let seen = std::sync::atomic::AtomicUsize::new(0);
        store.import_devices(&good, &|n| seen.store(n, std::sync::atomic::Ordering::Relaxed)).await.unwrap();
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 500);
    }
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let all = store.devices().await.unwrap();
    assert_eq!(all.len(), 500);
    assert_eq!(all[0].params.get("User_ID_1_").map(String::as_str), Some("x"));
    assert_ne!(all[0].secrets.aes_key, all[1].secrets.aes_key, "every device gets its own key");
}
