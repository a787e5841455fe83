//! What the server saw: the audit log (every request with time, client, device, protocol, file, status, bytes and
//! hash), each device's last state (last seen, firmware, what was served last, its last report) and per-device
//! events (syslog lines, errors, reports).
//!
//! Requests are answered first and written after: entries go through a bounded channel to one writer task that
//! commits them in batches, so a burst of requests costs one transaction, not one per request.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use sqlx::Row;
use tokio::sync::mpsc;

use crate::inventory::{Mac, SqliteStore, StoreError};

/// One request, as recorded.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// `address:port`.
    pub client: String,
    /// The device the request was for or from, when known.
    pub device: Option<Mac>,
    /// `tftp`, `http`, `https`, `syslog`.
    pub protocol: &'static str,
    /// `GET`, `HEAD`, `POST`, `PUT`, `RRQ`, `LOG`.
    pub method: &'static str,
    /// The file as requested.
    pub file: String,
    /// HTTP status (TFTP: 200, or 404/403 for its errors).
    pub status: u16,
    /// Bytes in the response (TFTP: the bytes offered).
    pub bytes: u64,
    /// SHA-256 of the response body, hex (empty when there was none).
    pub hash: String,
    /// Why, for refusals and errors.
    pub note: String,
    /// The User-Agent, when one was sent.
    pub user_agent: Option<String>,
    /// The firmware version the request claimed.
    pub firmware: Option<String>,
    /// The parameters of the full profile served (JSON object), for drift reports.
    pub served_params: Option<Arc<str>>,
    /// An event to add to the device's history: (kind, text).
    pub event: Option<(&'static str, String)>,
    /// A report's parameters (JSON object) and its body.
    pub report: Option<(Arc<str>, Vec<u8>)>,
}

/// The sending side of the journal; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<AuditEntry>,
}

impl Journal {
    /// Starts the writer task on `store`; it ends when every [`Journal`] is dropped, after writing what is queued.
    pub fn start(store: SqliteStore) -> (Journal, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<AuditEntry>(1 << 16);
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(1024);
            while rx.recv_many(&mut batch, 1024).await > 0 {
                if let Err(e) = write_batch(&store, &batch).await {
                    tracing::error!("audit log: {e}");
                }
                batch.clear();
            }
        });
        (Journal { tx }, task)
    }

    /// Queues an entry (waits only when 65,536 are already queued).
    pub async fn record(&self, entry: AuditEntry) {
        if self.tx.send(entry).await.is_err() {
            tracing::error!("audit log writer has stopped");
        }
    }
}

async fn write_batch(store: &SqliteStore, batch: &[AuditEntry]) -> Result<(), sqlx::Error> {
    let mut tx = store.pool.begin().await?;
    for e in batch {
        if e.method != "LOG" {
            sqlx::query(
                "INSERT INTO audit (at, client, device, protocol, method, file, status, bytes, hash, note) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(e.at_ms)
            .bind(&e.client)
            .bind(e.device.as_ref().map(Mac::as_str))
            .bind(e.protocol)
            .bind(e.method)
            .bind(&e.file)
            .bind(e.status as i64)
            .bind(e.bytes as i64)
            .bind(&e.hash)
            .bind(&e.note)
            .execute(&mut *tx)
            .await?;
        }
        let Some(mac) = &e.device else { continue };
        let address = e.client.rsplit_once(':').map_or(e.client.as_str(), |(a, _)| a);
        sqlx::query(
            "INSERT INTO device_state (mac, last_seen, last_address, user_agent, firmware) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT(mac) DO UPDATE SET last_seen = ?2, last_address = ?3, \
             user_agent = coalesce(?4, user_agent), firmware = coalesce(?5, firmware)",
        )
        .bind(mac.as_str())
        .bind(e.at_ms)
        .bind(address)
        .bind(&e.user_agent)
        .bind(&e.firmware)
        .execute(&mut *tx)
        .await?;
        if e.status == 200 && matches!(e.method, "GET" | "RRQ") {
            sqlx::query(
                "UPDATE device_state SET served_file = ?, served_proto = ?, served_hash = ?, served_at = ?, \
                 served_params = coalesce(?, served_params) WHERE mac = ?",
            )
            .bind(&e.file)
            .bind(e.protocol)
            .bind(&e.hash)
            .bind(e.at_ms)
            .bind(e.served_params.as_deref())
            .bind(mac.as_str())
            .execute(&mut *tx)
            .await?;
        }
        if let Some((kind, text)) = &e.event {
            sqlx::query("INSERT INTO device_events (mac, at, kind, text) VALUES (?, ?, ?, ?)")
                .bind(mac.as_str())
                .bind(e.at_ms)
                .bind(kind)
                .bind(text)
                .execute(&mut *tx)
                .await?;
        }
        if let Some((params, body)) = &e.report {
            sqlx::query("INSERT INTO reports (mac, at, name, body) VALUES (?, ?, ?, ?)")
                .bind(mac.as_str())
                .bind(e.at_ms)
                .bind(&e.file)
                .bind(body.as_slice())
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE device_state SET report_at = ?, report_params = ? WHERE mac = ?")
                .bind(e.at_ms)
                .bind(params.as_ref())
                .bind(mac.as_str())
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await
}

/// A device event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// `syslog`, `error`, `report`, `refused`.
    pub kind: String,
    /// The line.
    pub text: String,
}

/// A parameter whose reported value differs from the one served.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Drift {
    /// The element name.
    pub name: String,
    /// What Provisor served.
    pub served: String,
    /// What the phone reported (`None`: absent from the report).
    pub reported: Option<String>,
}

/// What `device show` prints about a device's life on the network.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeviceStatus {
    /// Unix milliseconds of the last request or log line.
    pub last_seen_ms: Option<i64>,
    /// Its last address.
    pub last_address: Option<String>,
    /// Its last User-Agent.
    pub user_agent: Option<String>,
    /// The firmware it last reported (User-Agent or report).
    pub firmware: Option<String>,
    /// The last file served: (file, protocol, SHA-256, Unix milliseconds).
    pub served: Option<(String, String, String, i64)>,
    /// Unix milliseconds of the last report.
    pub report_ms: Option<i64>,
    /// Recent events, newest first.
    pub events: Vec<Event>,
    /// Parameters whose reported value differs from what was served.
    pub drift: Vec<Drift>,
}

/// Names whose values are never shown (secrets), in drift output.
fn is_secret(name: &str) -> bool {
    name.starts_with("GPP_S") || name.contains("Password") || name.starts_with("IKM_")
}

/// The status of `mac`, with its `limit` most recent events.
pub async fn device_status(store: &SqliteStore, mac: &Mac, limit: i64) -> Result<DeviceStatus, StoreError> {
    let mut s = DeviceStatus::default();
    if let Some(r) =
        sqlx::query("SELECT * FROM device_state WHERE mac = ?").bind(mac.as_str()).fetch_optional(&store.pool).await?
    {
        s.last_seen_ms = r.get("last_seen");
        s.last_address = r.get("last_address");
        s.user_agent = r.get("user_agent");
        s.firmware = r.get("firmware");
        let file: Option<String> = r.get("served_file");
        if let Some(file) = file {
            s.served = Some((
                file,
                r.get::<Option<String>, _>("served_proto").unwrap_or_default(),
                r.get::<Option<String>, _>("served_hash").unwrap_or_default(),
                r.get::<Option<i64>, _>("served_at").unwrap_or_default(),
            ));
        }
        s.report_ms = r.get("report_at");
        let parse = |col: &str| -> BTreeMap<String, String> {
            r.get::<Option<String>, _>(col).and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default()
        };
        let (served, reported) = (parse("served_params"), parse("report_params"));
        if s.report_ms.is_some() {
            for (name, value) in &served {
                let got = reported.get(name);
                if got != Some(value) && !name.starts_with("IKM_") {
                    let hide = |v: &str| if is_secret(name) { "(secret)".to_string() } else { v.to_string() };
                    s.drift.push(Drift { name: name.clone(), served: hide(value), reported: got.map(|g| hide(g)) });
                }
            }
        }
    }
    let rows = sqlx::query("SELECT at, kind, text FROM device_events WHERE mac = ? ORDER BY id DESC LIMIT ?")
        .bind(mac.as_str())
        .bind(limit)
        .fetch_all(&store.pool)
        .await?;
    s.events = rows.iter().map(|r| Event { at_ms: r.get("at"), kind: r.get("kind"), text: r.get("text") }).collect();
    Ok(s)
}

/// The last `limit` audit entries (newest first), optionally for one device: (at ms, client, device, protocol,
/// method, file, status, bytes, hash, note).
pub async fn audit_entries(
    store: &SqliteStore,
    device: Option<&Mac>,
    limit: i64,
) -> Result<Vec<serde_json::Value>, StoreError> {
    let rows = sqlx::query(
        "SELECT at, client, device, protocol, method, file, status, bytes, hash, note FROM audit \
         WHERE (?1 IS NULL OR device = ?1) ORDER BY id DESC LIMIT ?2",
    )
    .bind(device.map(Mac::as_str))
    .bind(limit)
    .fetch_all(&store.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "at_ms": r.get::<i64, _>("at"),
                "client": r.get::<String, _>("client"),
                "device": r.get::<Option<String>, _>("device"),
                "protocol": r.get::<String, _>("protocol"),
                "method": r.get::<String, _>("method"),
                "file": r.get::<String, _>("file"),
                "status": r.get::<i64, _>("status"),
                "bytes": r.get::<i64, _>("bytes"),
                "hash": r.get::<String, _>("hash"),
                "note": r.get::<String, _>("note"),
            })
        })
        .collect())
}
