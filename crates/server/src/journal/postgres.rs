//! The journal of a PostgreSQL inventory: device state, events, reports **and the audit trail** in the database,
//! so `provisor device show` and `device log` on any node see what every node served. One transaction per batch,
//! each kind of row in one statement (arrays through `UNNEST`); retention as the embedded journal's, plus the audit
//! rows older than `keep_days`.

use std::collections::{BTreeSet, HashMap};

use sqlx::Row;
use tokio::sync::Mutex;

use super::batch::WrittenStates;
use super::{AuditEntry, DeviceStatus, Drift, Event, Journal, Seen};
use crate::config::JournalConfig;
use crate::inventory::{Mac, PostgresStore, StoreError};

journal_rows!(sqlx::postgres::PgRow);

/// The PostgreSQL journal (a [`Journal`]).
pub struct PostgresJournal {
    store: PostgresStore,
    retention: JournalConfig,
    node: String,
    state: Mutex<WriterState>,
    undelivered: Option<super::AuditFile>,
}

/// How long a batch is retried while the database is unreachable (a restart, a fail-over) before its audit lines go
/// to the node's `audit-undelivered.log` instead.
const RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Default)]
struct WriterState {
    written: WrittenStates,
    touched: BTreeSet<Mac>,
    rounds: u64,
}

impl PostgresJournal {
    /// Writes into `store` as `node` (the name the audit rows carry), keeping rows as `retention` says.
    pub fn new(store: PostgresStore, retention: JournalConfig, node: String) -> PostgresJournal {
        PostgresJournal { store, retention, node, state: Mutex::new(WriterState::default()), undelivered: None }
    }

    /// Where audit lines go that the database could not take within 30 s (JSON lines, as `audit.log`).
    pub fn with_undelivered(mut self, file: super::AuditFile) -> PostgresJournal {
        self.undelivered = Some(file);
        self
    }
}

impl Journal for PostgresJournal {
    async fn record_batch(&self, batch: &[AuditEntry]) {
        let mut state = self.state.lock().await;
        // A database that is down delays the batch (retried with back-off; requests are answered meanwhile, the
        // queue in front holds what comes in); after 30 s its audit lines go to the undelivered file.
        let started = std::time::Instant::now();
        let mut delay = std::time::Duration::from_millis(200);
        loop {
            match write_batch(&self.store, &self.node, batch, &mut state.written).await {
                Ok(()) => break,
                Err(e) => {
                    // Nothing of a failed batch counts as written.
                    state.written.clear();
                    let e = StoreError::Database(e);
                    if !e.is_unavailable() || started.elapsed() >= RETRY_FOR {
                        tracing::error!("journal (PostgreSQL): {} entries not written: {e}", batch.len());
                        if let Some(f) = &self.undelivered {
                            f.record_batch(batch).await;
                        }
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(5));
                }
            }
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
            Ok(n) => tracing::info!("journal: {n} old rows deleted"),
            Err(e) => tracing::error!("journal retention: {e}"),
        }
    }
}

async fn write_batch(
    store: &PostgresStore,
    node: &str,
    batch: &[AuditEntry],
    written: &mut WrittenStates,
) -> Result<(), sqlx::Error> {
    let plan = super::batch::plan(batch, written, store.at_rest());
    let mut tx = store.pool().begin().await?;
    let audit: Vec<&AuditEntry> = batch.iter().filter(|e| e.method != "LOG").collect();
    if !audit.is_empty() {
        let at: Vec<i64> = audit.iter().map(|e| e.at_ms).collect();
        let mac: Vec<Option<&str>> = audit.iter().map(|e| e.device.as_ref().map(Mac::as_str)).collect();
        let line: Vec<String> = audit.iter().map(|e| super::audit_line(e)).collect();
        sqlx::query("INSERT INTO audit (at, mac, node, line) SELECT a, m, $4, l FROM UNNEST($1::bigint[], $2::text[], $3::text[]) AS u(a, m, l)")
            .bind(&at)
            .bind(&mac)
            .bind(&line)
            .bind(node)
            .execute(&mut *tx)
            .await?;
    }
    if !plan.seen.is_empty() {
        let mac: Vec<&str> = plan.seen.iter().map(|s| s.mac.as_str()).collect();
        let at: Vec<i64> = plan.seen.iter().map(|s| s.at_ms).collect();
        let address: Vec<&str> = plan.seen.iter().map(|s| s.address).collect();
        let ua: Vec<Option<&str>> = plan.seen.iter().map(|s| s.user_agent).collect();
        let fw: Vec<Option<&str>> = plan.seen.iter().map(|s| s.firmware).collect();
        sqlx::query(
            "INSERT INTO device_state AS d (mac, last_seen, last_address, user_agent, firmware) \
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[]) \
             ON CONFLICT (mac) DO UPDATE SET last_seen = GREATEST(d.last_seen, excluded.last_seen), \
             last_address = excluded.last_address, user_agent = coalesce(excluded.user_agent, d.user_agent), \
             firmware = coalesce(excluded.firmware, d.firmware)",
        )
        .bind(&mac)
        .bind(&at)
        .bind(&address)
        .bind(&ua)
        .bind(&fw)
        .execute(&mut *tx)
        .await?;
    }
    if !plan.served.is_empty() {
        let mac: Vec<&str> = plan.served.iter().map(|s| s.mac.as_str()).collect();
        let file: Vec<&str> = plan.served.iter().map(|s| s.file).collect();
        let proto: Vec<&str> = plan.served.iter().map(|s| s.protocol).collect();
        let hash: Vec<&str> = plan.served.iter().map(|s| s.hash).collect();
        let at: Vec<i64> = plan.served.iter().map(|s| s.at_ms).collect();
        let params: Vec<Option<&str>> = plan.served.iter().map(|s| s.params.as_ref().map(|p| p.0.as_str())).collect();
        let layer: Vec<Option<&str>> = plan.served.iter().map(|s| s.params.as_ref().and_then(|p| p.1)).collect();
        for (id, json) in &plan.layers {
            sqlx::query("INSERT INTO served_layers (id, params) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
                .bind(*id)
                .bind(*json)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "UPDATE device_state AS d SET served_file = u.f, served_proto = u.p, served_hash = u.h, served_at = u.a, \
             served_params = coalesce(u.j, d.served_params), \
             served_layer = CASE WHEN u.j IS NULL THEN d.served_layer ELSE u.l END \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[]) \
             AS u(m, f, p, h, a, j, l) WHERE d.mac = u.m",
        )
        .bind(&mac)
        .bind(&file)
        .bind(&proto)
        .bind(&hash)
        .bind(&at)
        .bind(&params)
        .bind(&layer)
        .execute(&mut *tx)
        .await?;
    }
    if !plan.events.is_empty() {
        let mac: Vec<&str> = plan.events.iter().map(|e| e.0.as_str()).collect();
        let at: Vec<i64> = plan.events.iter().map(|e| e.1).collect();
        let kind: Vec<&str> = plan.events.iter().map(|e| e.2).collect();
        let text: Vec<&str> = plan.events.iter().map(|e| e.3).collect();
        sqlx::query(
            "INSERT INTO device_events (mac, at, kind, text) \
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[])",
        )
        .bind(&mac)
        .bind(&at)
        .bind(&kind)
        .bind(&text)
        .execute(&mut *tx)
        .await?;
    }
    for r in &plan.reports {
        sqlx::query("INSERT INTO reports (mac, at, name, body) VALUES ($1, $2, $3, $4)")
            .bind(r.mac.as_str())
            .bind(r.at_ms)
            .bind(r.name)
            .bind(r.body.as_slice())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE device_state SET report_at = $1, \
             report_params = (COALESCE(report_params, '{}')::jsonb || $2::jsonb)::text WHERE mac = $3",
        )
        .bind(r.at_ms)
        .bind(&r.params)
        .bind(r.mac.as_str())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Deletes events, reports and audit rows older than `keep_days` (0: none); returns how many rows went.
pub async fn prune_old(store: &PostgresStore, keep_days: u32, now_ms: i64) -> Result<u64, sqlx::Error> {
    // Shared layers no device's last served profile extends any more (one device-state scan).
    sqlx::query(
        "DELETE FROM served_layers WHERE id NOT IN \
         (SELECT DISTINCT served_layer FROM device_state WHERE served_layer IS NOT NULL)",
    )
    .execute(store.pool())
    .await?;
    if keep_days == 0 {
        return Ok(0);
    }
    let before = now_ms - i64::from(keep_days) * 86_400_000;
    let mut deleted = 0;
    for sql in [
        "DELETE FROM device_events WHERE at < $1",
        "DELETE FROM reports WHERE at < $1",
        "DELETE FROM audit WHERE at < $1",
    ] {
        deleted += sqlx::query(sql).bind(before).execute(store.pool()).await?.rows_affected();
    }
    Ok(deleted)
}

/// Keeps the newest `max_rows` events and reports of each of `devices` (0: no limit).
pub async fn trim_devices(store: &PostgresStore, devices: &[Mac], max_rows: u32) -> Result<u64, sqlx::Error> {
    const TRIM: [&str; 2] = [
        "DELETE FROM device_events WHERE mac = $1 AND id < \
         (SELECT id FROM device_events WHERE mac = $1 ORDER BY id DESC OFFSET $2 - 1 LIMIT 1)",
        "DELETE FROM reports WHERE mac = $1 AND id < \
         (SELECT id FROM reports WHERE mac = $1 ORDER BY id DESC OFFSET $2 - 1 LIMIT 1)",
    ];
    if max_rows == 0 {
        return Ok(0);
    }
    let mut deleted = 0;
    for mac in devices {
        for sql in TRIM {
            let r = sqlx::query(sql).bind(mac.as_str()).bind(i64::from(max_rows)).execute(store.pool()).await?;
            deleted += r.rows_affected();
        }
    }
    Ok(deleted)
}

/// [`Seen`] for every device with state.
pub async fn device_states(store: &PostgresStore) -> Result<HashMap<Mac, Seen>, StoreError> {
    let rows =
        sqlx::query("SELECT mac, last_seen, last_address, firmware FROM device_state").fetch_all(store.pool()).await?;
    Ok(rows.iter().filter_map(seen_from).collect())
}

/// The fleet's device events (syslog, errors, reports, refusals, admin changes), newest first: up to `limit` with an
/// id below `before`, optionally of one `kind`; each with its id (the cursor of the next page).
pub async fn fleet_events(
    store: &PostgresStore,
    kind: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, Mac, Event)>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, mac, at, kind, text FROM device_events WHERE ($1::TEXT IS NULL OR kind = $1) AND id < $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(kind)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    Ok(rows.iter().filter_map(fleet_event_from).collect())
}

/// Up to `scan` devices that reported, by MAC after `after`, with what drifts in each last report; and the cursor
/// of the next scan (`None` after the last).
pub async fn drifting(
    store: &PostgresStore,
    after: Option<&Mac>,
    scan: i64,
) -> Result<(Vec<(Mac, i64, Vec<Drift>)>, Option<Mac>), StoreError> {
    let rows = sqlx::query(
        "SELECT d.mac, d.report_at, d.report_params, d.served_params, l.params AS layer_params FROM device_state d \
         LEFT JOIN served_layers l ON l.id = d.served_layer WHERE d.report_at IS NOT NULL AND d.mac > $1 \
         ORDER BY d.mac LIMIT $2",
    )
    .bind(after.map_or("", |m| m.as_str()))
    .bind(scan)
    .fetch_all(store.pool())
    .await?;
    Ok(drifting_from(&rows, scan))
}

/// [`Seen`] of the devices with a MAC from `first` to `last` (one page of a list).
pub async fn device_states_between(
    store: &PostgresStore,
    first: &Mac,
    last: &Mac,
) -> Result<HashMap<Mac, Seen>, StoreError> {
    let rows =
        sqlx::query("SELECT mac, last_seen, last_address, firmware FROM device_state WHERE mac >= $1 AND mac <= $2")
            .bind(first.as_str())
            .bind(last.as_str())
            .fetch_all(store.pool())
            .await?;
    Ok(rows.iter().filter_map(seen_from).collect())
}

/// The status of `mac`, with its `limit` most recent events.
pub async fn device_status(store: &PostgresStore, mac: &Mac, limit: i64) -> Result<DeviceStatus, StoreError> {
    let mut s = DeviceStatus::default();
    if let Some(r) = sqlx::query(
        "SELECT d.*, l.params AS layer_params FROM device_state d \
             LEFT JOIN served_layers l ON l.id = d.served_layer WHERE d.mac = $1",
    )
    .bind(mac.as_str())
    .fetch_optional(store.pool())
    .await?
    {
        status_from(&r, &mut s);
    }
    let rows = sqlx::query("SELECT at, kind, text FROM device_events WHERE mac = $1 ORDER BY id DESC LIMIT $2")
        .bind(mac.as_str())
        .bind(limit)
        .fetch_all(store.pool())
        .await?;
    s.events = rows.iter().map(event_from).collect();
    Ok(s)
}

/// The last `limit` audit lines (oldest first), optionally of one device, from every node.
pub async fn audit_entries(store: &PostgresStore, device: Option<&Mac>, limit: i64) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT line FROM (SELECT id, line FROM audit WHERE ($1::text IS NULL OR mac = $1) ORDER BY id DESC LIMIT $2) \
         t ORDER BY id",
    )
    .bind(device.map(Mac::as_str))
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    Ok(rows.iter().map(|r| r.get("line")).collect())
}
