//! Device state, events and reports in the SQLite inventory: the read side of `provisor device show`.
//!
//! Device state and events go in one transaction per batch, and a device's state only when it changed (or every
//! 10 s), so a boot storm costs a few statements, not one per request. Every minute the devices that got events or
//! reports are trimmed to `max_rows_per_device`; every hour what is older than `keep_days` is deleted.

use std::collections::{BTreeSet, HashMap};

use super::batch::WrittenStates;

use tokio::sync::Mutex;

use super::{AuditEntry, DeviceStatus, Drift, Event, Journal};
use crate::config::JournalConfig;
use crate::inventory::{Mac, SqliteStore, StoreError};

journal_rows!(sqlx::sqlite::SqliteRow);

/// The SQLite journal (a [`Journal`]).
pub struct SqliteJournal {
    store: SqliteStore,
    retention: JournalConfig,
    state: Mutex<WriterState>,
}

#[derive(Default)]
struct WriterState {
    written: WrittenStates,
    /// Devices that got rows since the last trim.
    touched: BTreeSet<Mac>,
    /// Maintenance rounds so far (the age sweep runs every 60th).
    rounds: u64,
}

impl SqliteJournal {
    /// Writes into `store`, keeping events and reports as `retention` says.
    pub fn new(store: SqliteStore, retention: JournalConfig) -> SqliteJournal {
        SqliteJournal { store, retention, state: Mutex::new(WriterState::default()) }
    }
}

impl Journal for SqliteJournal {
    async fn record_batch(&self, batch: &[AuditEntry]) {
        let mut state = self.state.lock().await;
        if let Err(e) = write_batch(&self.store, batch, &mut state.written).await {
            tracing::error!("device state: {e}");
        }
        state
            .touched
            .extend(batch.iter().filter(|e| e.event.is_some() || e.report.is_some()).filter_map(|e| e.device.clone()));
    }

    async fn maintain(&self, now_ms: i64) {
        let (devices, by_age) = {
            let mut state = self.state.lock().await;
            let by_age = state.rounds.is_multiple_of(60);
            state.rounds += 1;
            (std::mem::take(&mut state.touched).into_iter().collect::<Vec<Mac>>(), by_age)
        };
        let pruned = async {
            let old = if by_age { prune_old(&self.store, self.retention.keep_days, now_ms).await? } else { 0 };
            Ok::<u64, sqlx::Error>(old + trim_devices(&self.store, &devices, self.retention.max_rows_per_device).await?)
        };
        match pruned.await {
            Ok(0) => {}
            Ok(n) => tracing::info!("journal: {n} old events and reports deleted"),
            Err(e) => tracing::error!("journal retention: {e}"),
        }
    }
}

/// Devices written by one statement (at most 7 values each: far below SQLite's limit of 32,766 variables).
const ROWS_PER_STATEMENT: usize = 200;

async fn write_batch(
    store: &SqliteStore,
    batch: &[AuditEntry],
    written: &mut WrittenStates,
) -> Result<(), sqlx::Error> {
    let plan = super::batch::plan(batch, written, store.at_rest());
    if plan.is_empty() {
        return Ok(());
    }
    let mut tx = store.pool.begin().await?;
    // One statement per [`ROWS_PER_STATEMENT`] devices: a statement is a round trip to SQLite's worker thread, and
    // in a boot storm a batch holds hundreds of phones (`BENCHMARKS.md`, issue 17, item 5). The plan has at most one
    // row per device, so no statement names a device twice.
    for rows in plan.seen.chunks(ROWS_PER_STATEMENT) {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO device_state (mac, last_seen, last_address, user_agent, firmware) ",
        );
        q.push_values(rows, |mut b, s| {
            b.push_bind(s.mac.as_str())
                .push_bind(s.at_ms)
                .push_bind(s.address)
                .push_bind(s.user_agent)
                .push_bind(s.firmware);
        });
        q.push(
            " ON CONFLICT(mac) DO UPDATE SET last_seen = excluded.last_seen, last_address = excluded.last_address, \
             user_agent = coalesce(excluded.user_agent, user_agent), firmware = coalesce(excluded.firmware, firmware)",
        );
        q.build().persistent(false).execute(&mut *tx).await?;
    }
    for rows in plan.layers.chunks(ROWS_PER_STATEMENT) {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO served_layers (id, params) ");
        q.push_values(rows, |mut b, (id, json)| {
            b.push_bind(*id).push_bind(*json);
        });
        q.push(" ON CONFLICT (id) DO NOTHING");
        q.build().persistent(false).execute(&mut *tx).await?;
    }
    for rows in plan.served.chunks(ROWS_PER_STATEMENT) {
        // The columns of a VALUES list are column1, column2, ... in SQLite.
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "UPDATE device_state SET served_file = v.column1, served_proto = v.column2, served_hash = v.column3, \
             served_at = v.column4, served_params = coalesce(v.column5, served_params), \
             served_layer = CASE WHEN v.column5 IS NULL THEN served_layer ELSE v.column6 END FROM (",
        );
        q.push_values(rows, |mut b, s| {
            b.push_bind(s.file)
                .push_bind(s.protocol)
                .push_bind(s.hash)
                .push_bind(s.at_ms)
                .push_bind(s.params.as_ref().map(|p| p.0.as_str()))
                .push_bind(s.params.as_ref().and_then(|p| p.1))
                .push_bind(s.mac.as_str());
        });
        q.push(") AS v WHERE device_state.mac = v.column7");
        q.build().persistent(false).execute(&mut *tx).await?;
    }
    // Events and reports are rare: one statement each.
    for (mac, at_ms, kind, text) in &plan.events {
        sqlx::query("INSERT INTO device_events (mac, at, kind, text) VALUES (?, ?, ?, ?)")
            .bind(mac.as_str())
            .bind(at_ms)
            .bind(kind)
            .bind(text)
            .execute(&mut *tx)
            .await?;
    }
    for r in &plan.reports {
        sqlx::query("INSERT INTO reports (mac, at, name, body) VALUES (?, ?, ?, ?)")
            .bind(r.mac.as_str())
            .bind(r.at_ms)
            .bind(r.name)
            .bind(r.body.as_slice())
            .execute(&mut *tx)
            .await?;
        // Merged into the earlier reports: a `--delta` report carries only what changed, a `--status` report
        // other names (specs.md §4.5).
        sqlx::query(
            "UPDATE device_state SET report_at = ?, report_params = json_patch(COALESCE(report_params, '{}'), ?) \
             WHERE mac = ?",
        )
        .bind(r.at_ms)
        .bind(&r.params)
        .bind(r.mac.as_str())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Deletes events and reports older than `keep_days` and beyond the newest `max_rows_per_device` of each device;
/// returns how many rows went. The writer does the same in two steps ([`prune_old`] hourly, [`trim_devices`] for
/// the devices that got rows).
pub async fn prune_rows(store: &SqliteStore, retention: &JournalConfig, now_ms: i64) -> Result<u64, sqlx::Error> {
    let old = prune_old(store, retention.keep_days, now_ms).await?;
    let devices: Vec<Mac> =
        sqlx::query_scalar::<_, String>("SELECT mac FROM device_events UNION SELECT mac FROM reports")
            .fetch_all(&store.pool)
            .await?
            .into_iter()
            .filter_map(|m| m.parse().ok())
            .collect();
    Ok(old + trim_devices(store, &devices, retention.max_rows_per_device).await?)
}

/// Deletes events and reports older than `keep_days` (0: none); returns how many rows went.
pub async fn prune_old(store: &SqliteStore, keep_days: u32, now_ms: i64) -> Result<u64, sqlx::Error> {
    // Shared layers no device's last served profile extends any more (one device-state scan).
    sqlx::query(
        "DELETE FROM served_layers WHERE id NOT IN \
         (SELECT DISTINCT served_layer FROM device_state WHERE served_layer IS NOT NULL)",
    )
    .execute(&store.pool)
    .await?;
    if keep_days == 0 {
        return Ok(0);
    }
    let before = now_ms - i64::from(keep_days) * 86_400_000;
    let mut deleted = 0;
    for sql in ["DELETE FROM device_events WHERE at < ?", "DELETE FROM reports WHERE at < ?"] {
        deleted += sqlx::query(sql).bind(before).execute(&store.pool).await?.rows_affected();
    }
    Ok(deleted)
}

/// Keeps the newest `max_rows` events and reports of each of `devices` (0: no limit); returns how many rows went.
/// Each statement walks one device's rows through the `(mac, id)` index.
pub async fn trim_devices(store: &SqliteStore, devices: &[Mac], max_rows: u32) -> Result<u64, sqlx::Error> {
    // Literal statements per table (sqlx takes only static SQL).
    const TRIM: [&str; 2] = [
        "DELETE FROM device_events WHERE mac = ?1 AND id NOT IN \
         (SELECT id FROM device_events WHERE mac = ?1 ORDER BY id DESC LIMIT ?2)",
        "DELETE FROM reports WHERE mac = ?1 AND id NOT IN (SELECT id FROM reports WHERE mac = ?1 ORDER BY id DESC LIMIT ?2)",
    ];
    if max_rows == 0 {
        return Ok(0);
    }
    let mut deleted = 0;
    for mac in devices {
        for sql in TRIM {
            let r = sqlx::query(sql).bind(mac.as_str()).bind(i64::from(max_rows)).execute(&store.pool).await?;
            deleted += r.rows_affected();
        }
    }
    Ok(deleted)
}

/// What the fleet list shows of each device that was ever seen: last seen (Unix milliseconds), last address,
/// firmware.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Seen {
    /// Unix milliseconds of the last request or log line.
    pub last_seen_ms: Option<i64>,
    /// Its last address.
    pub last_address: Option<String>,
    /// The firmware it last reported.
    pub firmware: Option<String>,
}

/// [`Seen`] for every device with state, by MAC (one query).
pub async fn device_states(store: &SqliteStore) -> Result<HashMap<Mac, Seen>, StoreError> {
    let rows =
        sqlx::query("SELECT mac, last_seen, last_address, firmware FROM device_state").fetch_all(&store.pool).await?;
    Ok(rows.iter().filter_map(seen_from).collect())
}

/// The fleet's device events (syslog, errors, reports, refusals, admin changes), newest first: up to `limit` with an
/// id below `before`, optionally of one `kind`; each with its id (the cursor of the next page).
pub async fn fleet_events(
    store: &SqliteStore,
    kind: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, Mac, Event)>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, mac, at, kind, text FROM device_events WHERE (? IS NULL OR kind = ?) AND id < ? ORDER BY id DESC LIMIT ?",
    )
    .bind(kind)
    .bind(kind)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(&store.pool)
    .await?;
    Ok(rows.iter().filter_map(fleet_event_from).collect())
}

/// Up to `scan` devices that reported, by MAC after `after`, with what drifts in each last report; and the cursor
/// of the next scan (`None` after the last).
pub async fn drifting(
    store: &SqliteStore,
    after: Option<&Mac>,
    scan: i64,
) -> Result<(Vec<(Mac, i64, Vec<Drift>)>, Option<Mac>), StoreError> {
    let rows = sqlx::query(
        "SELECT d.mac, d.report_at, d.report_params, d.served_params, l.params AS layer_params FROM device_state d \
         LEFT JOIN served_layers l ON l.id = d.served_layer WHERE d.report_at IS NOT NULL AND d.mac > ? \
         ORDER BY d.mac LIMIT ?",
    )
    .bind(after.map_or("", |m| m.as_str()))
    .bind(scan)
    .fetch_all(&store.pool)
    .await?;
    Ok(drifting_from(&rows, scan))
}

/// [`Seen`] of the devices with a MAC from `first` to `last` (one page of a list).
pub async fn device_states_between(
    store: &SqliteStore,
    first: &Mac,
    last: &Mac,
) -> Result<HashMap<Mac, Seen>, StoreError> {
    let rows =
        sqlx::query("SELECT mac, last_seen, last_address, firmware FROM device_state WHERE mac >= ? AND mac <= ?")
            .bind(first.as_str())
            .bind(last.as_str())
            .fetch_all(&store.pool)
            .await?;
    Ok(rows.iter().filter_map(seen_from).collect())
}

/// The status of `mac`, with its `limit` most recent events.
pub async fn device_status(store: &SqliteStore, mac: &Mac, limit: i64) -> Result<DeviceStatus, StoreError> {
    let mut s = DeviceStatus::default();
    if let Some(r) = sqlx::query(
        "SELECT d.*, l.params AS layer_params FROM device_state d \
             LEFT JOIN served_layers l ON l.id = d.served_layer WHERE d.mac = ?",
    )
    .bind(mac.as_str())
    .fetch_optional(&store.pool)
    .await?
    {
        status_from(&r, &mut s);
    }
    let rows = sqlx::query("SELECT at, kind, text FROM device_events WHERE mac = ? ORDER BY id DESC LIMIT ?")
        .bind(mac.as_str())
        .bind(limit)
        .fetch_all(&store.pool)
        .await?;
    s.events = rows.iter().map(event_from).collect();
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retention_keeps_the_newest_rows_per_device_and_drops_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let day = 86_400_000i64;
        let now = 100 * day;
        for (mac, n, at) in [("000e08000001", 30, now), ("000e08000002", 5, now - 40 * day)] {
            for i in 0..n {
                sqlx::query("INSERT INTO device_events (mac, at, kind, text) VALUES (?, ?, 'syslog', ?)")
                    .bind(mac)
                    .bind(at + i)
                    .bind(format!("line {i}"))
                    .execute(&store.pool)
                    .await
                    .unwrap();
            }
        }
        let retention = JournalConfig { keep_days: 30, max_rows_per_device: 10 };
        assert_eq!(prune_rows(&store, &retention, now).await.unwrap(), 5 + 20);
        let left: Vec<(String, String)> =
            sqlx::query_as("SELECT mac, text FROM device_events ORDER BY id").fetch_all(&store.pool).await.unwrap();
        assert_eq!(left.len(), 10);
        assert!(left.iter().all(|(m, _)| m == "000e08000001"));
        assert_eq!(left[0].1, "line 20", "the newest ten are kept");
        // Files are private: the inventory holds every secret.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&dir.path().join("inventory.sqlite")), 0o600);
        assert_eq!(mode(&dir.path().join("inventory.sqlite-wal")), 0o600);
    }
}
