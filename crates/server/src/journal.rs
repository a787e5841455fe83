//! What the server saw: the audit log (every request with time, client, device, protocol, file, status, bytes and
//! hash), each device's last state (last seen, firmware, what was served last, its last report) and per-device
//! events (syslog lines, errors, reports).
//!
//! Requests are answered first and written after: entries go through a bounded channel to one writer task. The audit
//! log is `audit.log` in the data directory, one JSON object per line, appended and flushed per batch (like a web
//! server's access log; at 256 MiB it moves to `audit.log.1`). Device state and events go to SQLite in one
//! transaction per batch, and a device's state only when it changed (or every 10 s), so a boot storm costs a few
//! statements, not one per request.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use sqlx::Row;
use tokio::sync::mpsc;

use crate::config::JournalConfig;
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
    /// Starts the writer task on `store`, with the audit log at `audit_path`; it ends when every [`Journal`] is
    /// dropped, after writing what is queued.
    /// Every minute it trims the devices that got events or reports to `retention.max_rows_per_device`; every hour
    /// it deletes what is older than `retention.keep_days`.
    pub fn start(
        store: SqliteStore,
        audit_path: PathBuf,
        retention: JournalConfig,
    ) -> (Journal, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<AuditEntry>(1 << 16);
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(1024);
            let mut written = HashMap::new();
            let mut log = AuditLog::new(audit_path);
            let mut prune = tokio::time::interval(std::time::Duration::from_secs(60));
            prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Devices that got rows since the last trim; the age sweep runs every 60th tick.
            let mut touched: BTreeSet<Mac> = BTreeSet::new();
            let mut ticks = 0u64;
            loop {
                tokio::select! {
                    n = rx.recv_many(&mut batch, 1024) => {
                        if n == 0 {
                            break;
                        }
                        log.append(&batch);
                        if let Err(e) = write_batch(&store, &batch, &mut written).await {
                            tracing::error!("device state: {e}");
                        }
                        touched.extend(
                            batch.iter().filter(|e| e.event.is_some() || e.report.is_some()).filter_map(|e| e.device.clone()),
                        );
                        batch.clear();
                    }
                    _ = prune.tick() => {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as i64);
                        let by_age = ticks.is_multiple_of(60);
                        ticks += 1;
                        let devices: Vec<Mac> = std::mem::take(&mut touched).into_iter().collect();
                        let pruned = async {
                            let old = if by_age { prune_old(&store, retention.keep_days, now).await? } else { 0 };
                            Ok::<u64, sqlx::Error>(old + trim_devices(&store, &devices, retention.max_rows_per_device).await?)
                        };
                        match pruned.await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!("journal: {n} old events and reports deleted"),
                            Err(e) => tracing::error!("journal retention: {e}"),
                        }
                    }
                }
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

/// What the writer last wrote of a device's state, so a phone fetching the same file again and again costs an
/// audit row, not a state update each time.
struct Written {
    seen_ms: i64,
    address: String,
    served: (String, &'static str, String),
    served_ms: i64,
}

/// How stale `last seen` and `served at` may get while nothing else about them changes.
const STATE_REFRESH_MS: i64 = 10_000;

/// Largest `audit.log` before it moves to `audit.log.1`.
const AUDIT_ROTATE_BYTES: u64 = 256 << 20;

/// The audit log file.
struct AuditLog {
    path: PathBuf,
    file: Option<std::fs::File>,
    size: u64,
    line: Vec<u8>,
}

/// One audit line.
#[derive(Serialize)]
struct AuditLine<'a> {
    at_ms: i64,
    client: &'a str,
    device: Option<&'a str>,
    protocol: &'a str,
    method: &'a str,
    file: &'a str,
    status: u16,
    bytes: u64,
    hash: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    note: &'a str,
}

impl AuditLog {
    fn new(path: PathBuf) -> AuditLog {
        AuditLog { path, file: None, size: 0, line: Vec::with_capacity(1 << 16) }
    }

    fn append(&mut self, batch: &[AuditEntry]) {
        use std::io::Write;
        self.line.clear();
        for e in batch.iter().filter(|e| e.method != "LOG") {
            let line = AuditLine {
                at_ms: e.at_ms,
                client: &e.client,
                device: e.device.as_ref().map(Mac::as_str),
                protocol: e.protocol,
                method: e.method,
                file: &e.file,
                status: e.status,
                bytes: e.bytes,
                hash: &e.hash,
                note: &e.note,
            };
            if serde_json::to_writer(&mut self.line, &line).is_ok() {
                self.line.push(b'\n');
            }
        }
        if self.line.is_empty() {
            return;
        }
        if self.file.is_none() || self.size >= AUDIT_ROTATE_BYTES {
            if self.size >= AUDIT_ROTATE_BYTES {
                let _ = std::fs::rename(&self.path, self.path.with_extension("log.1"));
            }
            // Every random profile path is in here: private to the server's user.
            let opened = crate::inventory::make_private_file(&self.path)
                .and_then(|()| std::fs::OpenOptions::new().append(true).open(&self.path));
            match opened {
                Ok(f) => {
                    self.size = f.metadata().map_or(0, |m| m.len());
                    self.file = Some(f);
                }
                Err(e) => {
                    tracing::error!("audit log {}: {e}", self.path.display());
                    return;
                }
            }
        }
        if let Some(f) = &mut self.file {
            match f.write_all(&self.line) {
                Ok(()) => self.size += self.line.len() as u64,
                Err(e) => {
                    tracing::error!("audit log {}: {e}", self.path.display());
                    self.file = None;
                }
            }
        }
    }
}

/// `text` with the random directory of every `profile/<random>/` path replaced by `********`: the random path is
/// half of a device's secret (SEC-PRV-2), so it is shown only when asked for (`--secrets`).
pub fn mask_path_tokens(text: &str) -> String {
    const MARK: &str = "profile/";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(MARK) {
        out.push_str(&rest[..i + MARK.len()]);
        rest = &rest[i + MARK.len()..];
        let end = rest.find(|c: char| c == '/' || c == '"' || c.is_whitespace()).unwrap_or(rest.len());
        if end >= 8 && rest[..end].bytes().all(|b| b.is_ascii_alphanumeric()) {
            out.push_str("********");
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

/// The last `limit` audit entries (oldest first), optionally only those of one device, from `audit.log` (and
/// `audit.log.1` when the current file holds fewer).
pub fn audit_entries(audit_path: &Path, device: Option<&Mac>, limit: usize) -> std::io::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for path in [audit_path.with_extension("log.1"), audit_path.to_path_buf()] {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let needle = device.map(|m| format!("\"device\":\"{m}\""));
        out.extend(text.lines().filter(|l| needle.as_ref().is_none_or(|n| l.contains(n.as_str()))).map(str::to_string));
    }
    let skip = out.len().saturating_sub(limit);
    Ok(out.split_off(skip))
}

async fn write_batch(
    store: &SqliteStore,
    batch: &[AuditEntry],
    written: &mut HashMap<Mac, Written>,
) -> Result<(), sqlx::Error> {
    if written.len() > 1_000_000 {
        written.clear();
    }
    let mut tx = store.pool.begin().await?;
    // Each device's state once per batch: its last request, and the last file it was served.
    struct Seen<'a> {
        last: &'a AuditEntry,
        user_agent: Option<&'a str>,
        firmware: Option<&'a str>,
        served: Option<&'a AuditEntry>,
        served_params: Option<&'a str>,
    }
    let mut seen: BTreeMap<&Mac, Seen<'_>> = BTreeMap::new();
    for e in batch {
        let Some(mac) = &e.device else { continue };
        let s = seen.entry(mac).or_insert(Seen {
            last: e,
            user_agent: None,
            firmware: None,
            served: None,
            served_params: None,
        });
        s.last = e;
        s.user_agent = e.user_agent.as_deref().or(s.user_agent);
        s.firmware = e.firmware.as_deref().or(s.firmware);
        if e.status == 200 && matches!(e.method, "GET" | "RRQ") {
            s.served = Some(e);
            s.served_params = e.served_params.as_deref().or(s.served_params);
        }
    }
    for (mac, s) in &seen {
        let address = s.last.client.rsplit_once(':').map_or(s.last.client.as_str(), |(a, _)| a);
        let w = written.entry((*mac).clone()).or_insert_with(|| Written {
            seen_ms: i64::MIN,
            address: String::new(),
            served: (String::new(), "", String::new()),
            served_ms: i64::MIN,
        });
        let state_changed = w.address != address || s.user_agent.is_some() || s.firmware.is_some();
        if state_changed || s.last.at_ms - w.seen_ms >= STATE_REFRESH_MS {
            w.seen_ms = s.last.at_ms;
            w.address = address.to_string();
            sqlx::query(
            "INSERT INTO device_state (mac, last_seen, last_address, user_agent, firmware) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT(mac) DO UPDATE SET last_seen = ?2, last_address = ?3, \
             user_agent = coalesce(?4, user_agent), firmware = coalesce(?5, firmware)",
        )
        .bind(mac.as_str())
        .bind(s.last.at_ms)
        .bind(address)
        .bind(s.user_agent)
        .bind(s.firmware)
        .execute(&mut *tx)
        .await?;
        }
        let served = s.served.filter(|e| {
            w.served != (e.file.clone(), e.protocol, e.hash.clone()) || e.at_ms - w.served_ms >= STATE_REFRESH_MS
        });
        if let Some(e) = served {
            let params = if w.served.2 == e.hash { None } else { s.served_params };
            w.served = (e.file.clone(), e.protocol, e.hash.clone());
            w.served_ms = e.at_ms;
            sqlx::query(
                "UPDATE device_state SET served_file = ?, served_proto = ?, served_hash = ?, served_at = ?, \
                 served_params = coalesce(?, served_params) WHERE mac = ?",
            )
            .bind(&e.file)
            .bind(e.protocol)
            .bind(&e.hash)
            .bind(e.at_ms)
            .bind(params)
            .bind(mac.as_str())
            .execute(&mut *tx)
            .await?;
        }
    }
    // Events and reports are rare: one statement each.
    for e in batch {
        let Some(mac) = &e.device else { continue };
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
            // Merged into the earlier reports: a `--delta` report carries only what changed, a `--status` report
            // other names (specs.md §4.5).
            sqlx::query(
                "UPDATE device_state SET report_at = ?, report_params = json_patch(COALESCE(report_params, '{}'), ?) \
                 WHERE mac = ?",
            )
            .bind(e.at_ms)
            .bind(params.as_ref())
            .bind(mac.as_str())
            .execute(&mut *tx)
            .await?;
        }
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

impl DeviceStatus {
    /// The same status with random profile paths masked ([`mask_path_tokens`]).
    pub fn masked(mut self) -> DeviceStatus {
        if let Some(served) = &mut self.served {
            served.0 = mask_path_tokens(&served.0);
        }
        for e in &mut self.events {
            e.text = mask_path_tokens(&e.text);
        }
        self
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_paths_are_masked() {
        assert_eq!(mask_path_tokens("profile/0123456789abcdef0123/profile.cfg"), "profile/********/profile.cfg");
        assert_eq!(
            mask_path_tokens("{\"file\":\"/profile/abcdef0123456789/p.cfg\"} /profile/short/x"),
            "{\"file\":\"/profile/********/p.cfg\"} /profile/short/x"
        );
        assert_eq!(mask_path_tokens("0011aabbcc01.xml"), "0011aabbcc01.xml");
    }

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
