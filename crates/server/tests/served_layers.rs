//! Served parameters in the journal: what devices of a group and model inherit is stored once (`served_layers`), each
//! device's row keeps only its own lines, and drift, `db copy` and retention see the whole set. Run against SQLite and
//! a real PostgreSQL server, in clear and sealed (passwords fingerprinted in both parts).

use std::collections::BTreeMap;
use std::sync::Arc;

use provisor_server::config::JournalConfig;
use provisor_server::inventory::at_rest::{AtRest, SiteKey};
use provisor_server::inventory::{AnyStore, Device, Mac, PoolLimits, PostgresStore, Secrets, SqliteStore};
use provisor_server::journal::{AuditEntry, Journal, PostgresJournal, SqliteJournal, copy};
use provisor_server::render::{Inherited, Templates};

#[path = "common/postgres.rs"]
mod postgres;

fn params(p: &[(&str, &str)]) -> BTreeMap<String, String> {
    p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// 300 inherited parameters (a shared password among them) and the device's own line.
fn served(mac: &Mac, inherited: &Arc<Inherited>) -> AuditEntry {
    let device = Device::blank(mac.clone(), Secrets::none());
    let own = params(&[("User_ID_1_", &format!("user-{mac}")), ("Password_1_", "own-secret")]);
    let (_, served) = Templates::builtin().splice(&device, inherited, &own).expect("splices");
    AuditEntry {
        at_ms: 1_000,
        client: "192.0.2.1:5060".into(),
        device: Some(mac.clone()),
        protocol: "http",
        method: "GET",
        file: format!("/{mac}.xml"),
        status: 200,
        hash: format!("hash-{mac}").into(),
        served_params: Some(Arc::new(served)),
        ..AuditEntry::default()
    }
}

/// A configuration report that differs from what was served in one inherited and one own parameter.
fn report(mac: &Mac) -> AuditEntry {
    let reported = serde_json::json!({
        "Bench_0007": "changed on the phone",
        "User_ID_1_": "999",
        "Password_1_": "own-secret",
        "Shared_Password": "shared-secret",
    });
    AuditEntry {
        at_ms: 2_000,
        client: "192.0.2.1:5060".into(),
        device: Some(mac.clone()),
        protocol: "http",
        method: "POST",
        file: format!("/report/{mac}.xml"),
        status: 200,
        report: Some((reported.to_string().into(), b"<flat-profile/>".to_vec())),
        ..AuditEntry::default()
    }
}

fn shared() -> Arc<Inherited> {
    let mut p: BTreeMap<String, String> = (0..300).map(|i| (format!("Bench_{i:04}"), format!("value {i}"))).collect();
    p.insert("Shared_Password".into(), "shared-secret".into());
    Arc::new(Inherited::new(&p))
}

/// Two devices served from one layer: one layer row; each device row small; drift names the inherited parameter.
async fn check(store: &AnyStore, journal: &impl Journal, sealed: bool) {
    let (a, b): (Mac, Mac) = ("0c1122000001".parse().unwrap(), "0c1122000002".parse().unwrap());
    let layer = shared();
    journal.record_batch(&[served(&a, &layer), served(&b, &layer)]).await;
    journal.record_batch(&[report(&a)]).await;
    let status = provisor_server::journal::status(store, &a, 10).await.unwrap();
    let names: Vec<&str> = status.drift.iter().map(|d| d.name.as_str()).collect();
    assert!(names.contains(&"Bench_0007"), "an inherited parameter's drift: {names:?}");
    assert!(names.contains(&"User_ID_1_"), "a device's own parameter's drift: {names:?}");
    assert!(names.contains(&"Bench_0100"), "served, not reported: {names:?}");
    assert!(!names.contains(&"Password_1_") || sealed, "an unchanged password is no drift in clear: {names:?}");
    let (layers, own): (i64, Vec<String>) = match store {
        AnyStore::Sqlite(s) => (
            sqlx::query_scalar("SELECT count(*) FROM served_layers").fetch_one(s.pool()).await.unwrap(),
            sqlx::query_scalar("SELECT served_params FROM device_state").fetch_all(s.pool()).await.unwrap(),
        ),
        AnyStore::Postgres(s) => (
            sqlx::query_scalar("SELECT count(*) FROM served_layers").fetch_one(s.pool()).await.unwrap(),
            sqlx::query_scalar("SELECT served_params FROM device_state").fetch_all(s.pool()).await.unwrap(),
        ),
        AnyStore::Memory(_) => unreachable!(),
    };
    assert_eq!(layers, 1, "one layer for both devices");
    assert_eq!(own.len(), 2);
    for row in &own {
        assert!(row.len() < 200 && !row.contains("Bench_"), "a device row holds its own lines only: {row}");
        assert_eq!(row.contains("own-secret"), !sealed, "passwords fingerprinted when sealed: {row}");
    }
}

#[tokio::test]
async fn sqlite_stores_each_layer_once_and_drift_sees_it_and_db_copy_keeps_it() {
    for (key, sealed) in [(None, false), (Some([7u8; 32]), true)] {
        let at_rest = || key.map_or(AtRest::clear(), |k| AtRest::sealed(SiteKey::from_bytes(k)));
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_with(dir.path(), at_rest()).await.unwrap();
        let journal = SqliteJournal::new(store.clone(), JournalConfig::default());
        let any = AnyStore::Sqlite(store.clone());
        check(&any, &journal, sealed).await;
        let before = provisor_server::journal::status(&any, &"0c1122000001".parse().unwrap(), 10).await.unwrap();

        // db copy: the layer goes along, and drift is the same on the other side.
        let other = tempfile::tempdir().unwrap();
        let target = AnyStore::Sqlite(SqliteStore::open_with(other.path(), at_rest()).await.unwrap());
        copy::write_journal(&target, &copy::read_journal(&any, None, "-").await.unwrap()).await.unwrap();
        let after = provisor_server::journal::status(&target, &"0c1122000001".parse().unwrap(), 10).await.unwrap();
        assert_eq!(format!("{:?}", before.drift), format!("{:?}", after.drift));

        // Retention drops a layer only when no device's last served profile extends it.
        provisor_server::journal::prune_old(&store, 30, 10_000).await.unwrap();
        let count = || sqlx::query_scalar::<_, i64>("SELECT count(*) FROM served_layers").fetch_one(store.pool());
        assert_eq!(count().await.unwrap(), 1);
        sqlx::query("UPDATE device_state SET served_layer = NULL").execute(store.pool()).await.unwrap();
        provisor_server::journal::prune_old(&store, 30, 10_000).await.unwrap();
        assert_eq!(count().await.unwrap(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stores_each_layer_once_and_drift_sees_it() {
    let Some(cluster) = postgres::Cluster::start() else { return };
    for (key, sealed) in [(None, false), (Some(SiteKey::from_bytes([7; 32])), true)] {
        let at_rest = key.map_or(AtRest::clear(), AtRest::sealed);
        let store = PostgresStore::connect(&cluster.fresh_database(), at_rest, PoolLimits::default()).await.unwrap();
        let journal = PostgresJournal::new(store.clone(), JournalConfig::default(), "node-1".into());
        check(&AnyStore::Postgres(store), &journal, sealed).await;
    }
}
