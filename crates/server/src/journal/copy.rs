//! Moving a journal with its inventory (`provisor db copy`): device state, events, reports and the audit trail (the
//! embedded store's `audit.log`, the database's `audit` table), as stored: sealed values and fingerprints stay valid,
//! since they are bound to their device, not to the database. Re-running adds nothing twice (each row is inserted
//! unless an identical one is there; a device's state is replaced by the source's only when the source saw the
//! device later).

use sqlx::Row;

use crate::inventory::{AnyStore, StoreError};

/// A device's state row.
#[derive(Debug, Clone)]
struct StateRow {
    mac: String,
    cols: [Option<String>; 9],
    ints: [Option<i64>; 3],
}

/// What a journal holds.
#[derive(Debug, Default)]
pub struct JournalRows {
    states: Vec<StateRow>,
    events: Vec<(String, i64, String, String)>,
    reports: Vec<(String, i64, String, Vec<u8>)>,
    /// Shared layers of served parameters: (id, JSON).
    layers: Vec<(String, String)>,
    /// Audit lines: (at, mac, node, line).
    audit: Vec<(i64, Option<String>, String, String)>,
}

impl JournalRows {
    /// (states, events, reports, audit lines).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        (self.states.len(), self.events.len(), self.reports.len(), self.audit.len())
    }
}

const STATE_TEXT: [&str; 9] = [
    "last_address",
    "user_agent",
    "firmware",
    "served_file",
    "served_proto",
    "served_hash",
    "served_params",
    "report_params",
    "served_layer",
];

macro_rules! read_rows {
    ($pool:expr, $rows:ident) => {{
        for r in sqlx::query(
            "SELECT mac, last_address, user_agent, firmware, served_file, served_proto, served_hash, served_params, \
             report_params, served_layer, last_seen, served_at, report_at FROM device_state",
        )
        .fetch_all($pool)
        .await?
        {
            let cols = STATE_TEXT.map(|c| r.get::<Option<String>, _>(c));
            let ints = ["last_seen", "served_at", "report_at"].map(|c| r.get::<Option<i64>, _>(c));
            $rows.states.push(StateRow { mac: r.get("mac"), cols, ints });
        }
        for r in sqlx::query("SELECT mac, at, kind, text FROM device_events ORDER BY id").fetch_all($pool).await? {
            $rows.events.push((r.get("mac"), r.get("at"), r.get("kind"), r.get("text")));
        }
        for r in sqlx::query("SELECT mac, at, name, body FROM reports ORDER BY id").fetch_all($pool).await? {
            $rows.reports.push((r.get("mac"), r.get("at"), r.get("name"), r.get("body")));
        }
        for r in sqlx::query("SELECT id, params FROM served_layers").fetch_all($pool).await? {
            $rows.layers.push((r.get("id"), r.get("params")));
        }
    }};
}

/// Reads `store`'s journal; `audit_log`: the embedded store's `audit.log` (its lines become rows of `node`).
pub async fn read_journal(
    store: &AnyStore,
    audit_log: Option<&std::path::Path>,
    node: &str,
) -> Result<JournalRows, StoreError> {
    let mut rows = JournalRows::default();
    match store {
        AnyStore::Sqlite(s) => read_rows!(&s.pool, rows),
        AnyStore::Postgres(s) => {
            read_rows!(s.pool(), rows);
            for r in sqlx::query("SELECT at, mac, node, line FROM audit ORDER BY id").fetch_all(s.pool()).await? {
                rows.audit.push((r.get("at"), r.get("mac"), r.get("node"), r.get("line")));
            }
        }
        AnyStore::Memory(_) => {}
    }
    if let Some(path) = audit_log {
        for p in [path.with_extension("log.1"), path.to_path_buf()] {
            let text = match std::fs::read_to_string(&p) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::Database(sqlx::Error::Io(e))),
            };
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                let at = v.get("at_ms").and_then(serde_json::Value::as_i64).unwrap_or(0);
                let mac = v.get("device").and_then(serde_json::Value::as_str).map(str::to_string);
                rows.audit.push((at, mac, node.to_string(), line.to_string()));
            }
        }
    }
    Ok(rows)
}

/// Inserts `rows`' states, events and reports through `tx` (the same SQL for both databases), counting into `n`.
macro_rules! write_rows {
    ($tx:ident, $rows:expr, $n:ident) => {{
        let rows = $rows;
        // The layers first: the states name them.
        for (id, params) in &rows.layers {
            $n += sqlx::query("INSERT INTO served_layers (id, params) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
                .bind(id)
                .bind(params)
                .execute(&mut *$tx)
                .await?
                .rows_affected();
        }
        for st in &rows.states {
            $n += sqlx::query(
                "INSERT INTO device_state (mac, last_address, user_agent, firmware, served_file, served_proto, \
                     served_hash, served_params, report_params, served_layer, last_seen, served_at, report_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (mac) DO UPDATE SET \
                     last_address = excluded.last_address, user_agent = excluded.user_agent, \
                     firmware = excluded.firmware, served_file = excluded.served_file, \
                     served_proto = excluded.served_proto, served_hash = excluded.served_hash, \
                     served_params = excluded.served_params, report_params = excluded.report_params, \
                     served_layer = excluded.served_layer, \
                     last_seen = excluded.last_seen, served_at = excluded.served_at, report_at = excluded.report_at \
                     WHERE coalesce(device_state.last_seen, 0) < coalesce(excluded.last_seen, 0)",
            )
            .bind(&st.mac)
            .bind(&st.cols[0])
            .bind(&st.cols[1])
            .bind(&st.cols[2])
            .bind(&st.cols[3])
            .bind(&st.cols[4])
            .bind(&st.cols[5])
            .bind(&st.cols[6])
            .bind(&st.cols[7])
            .bind(&st.cols[8])
            .bind(st.ints[0])
            .bind(st.ints[1])
            .bind(st.ints[2])
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        }
        for (mac, at, kind, text) in &rows.events {
            $n += sqlx::query(
                "INSERT INTO device_events (mac, at, kind, text) SELECT $1, $2, $3, $4 WHERE NOT EXISTS \
                     (SELECT 1 FROM device_events WHERE mac = $1 AND at = $2 AND kind = $3 AND text = $4)",
            )
            .bind(mac)
            .bind(at)
            .bind(kind)
            .bind(text)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        }
        for (mac, at, name, body) in &rows.reports {
            $n += sqlx::query(
                "INSERT INTO reports (mac, at, name, body) SELECT $1, $2, $3, $4 WHERE NOT EXISTS \
                     (SELECT 1 FROM reports WHERE mac = $1 AND at = $2 AND name = $3)",
            )
            .bind(mac)
            .bind(at)
            .bind(name)
            .bind(body)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        }
    }};
}

/// Writes `rows` into `store`'s journal, adding nothing twice; returns how many rows were added or replaced. Audit
/// lines go only to a PostgreSQL journal (an embedded store's audit trail is its file).
pub async fn write_journal(store: &AnyStore, rows: &JournalRows) -> Result<u64, StoreError> {
    let mut n = 0;
    match store {
        AnyStore::Sqlite(s) => {
            let mut tx = s.pool.begin().await?;
            write_rows!(tx, rows, n);
            tx.commit().await?;
        }
        AnyStore::Postgres(s) => {
            let mut tx = s.pool().begin().await?;
            write_rows!(tx, rows, n);
            for (at, mac, node, line) in &rows.audit {
                n += sqlx::query(
                    "INSERT INTO audit (at, mac, node, line) SELECT $1, $2, $3, $4 WHERE NOT EXISTS \
                     (SELECT 1 FROM audit WHERE at = $1 AND line = $4)",
                )
                .bind(at)
                .bind(mac)
                .bind(node)
                .bind(line)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
        }
        AnyStore::Memory(_) => {}
    }
    Ok(n)
}
