//! What the server saw: the audit log (every request with time, client, device, protocol, file, status, bytes and
//! hash), each device's last state (last seen, firmware, what was served last, its last report) and per-device
//! events (syslog lines, errors, reports).
//!
//! The provisioning core records through the [`Journal`] trait. Its implementations: [`AuditFile`] (the JSON-lines
//! `audit.log`), [`SqliteJournal`] (device state, events and reports in the inventory, read by `device show`),
//! [`MemoryJournal`] (tests, `--data-dir :memory:`), a pair of journals (both), and [`Queue`], which answers first and
//! writes after: entries go through a bounded channel to one writer task that hands them, in batches, to the journal
//! it wraps, and calls its [`Journal::maintain`] every minute.

use std::future::Future;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::mpsc;

use std::collections::BTreeMap;

use crate::inventory::Mac;
use crate::inventory::at_rest::AtRest;

/// The decoding of the journal's rows for one backend's row type: the SQLite and PostgreSQL journals differ in their
/// SQL, not in their rows (as the inventory's `shared_sql.rs` does for its tables).
macro_rules! journal_rows {
    ($row:ty) => {
        /// A `device_state` row's MAC and [`Seen`](crate::journal::Seen) (`mac, last_seen, last_address, firmware`).
        fn seen_from(r: &$row) -> Option<($crate::inventory::Mac, $crate::journal::Seen)> {
            use sqlx::Row as _;
            let mac = r.get::<String, _>("mac").parse().ok()?;
            let seen = $crate::journal::Seen {
                last_seen_ms: r.get("last_seen"),
                last_address: r.get("last_address"),
                firmware: r.get("firmware"),
            };
            Some((mac, seen))
        }

        /// An event of a `device_events` row (`at, kind, text`).
        fn event_from(r: &$row) -> $crate::journal::Event {
            use sqlx::Row as _;
            $crate::journal::Event { at_ms: r.get("at"), kind: r.get("kind"), text: r.get("text") }
        }

        /// A `device_events` row of the fleet's list (`id, mac, at, kind, text`): its id, device and event.
        fn fleet_event_from(r: &$row) -> Option<(i64, $crate::inventory::Mac, $crate::journal::Event)> {
            use sqlx::Row as _;
            let mac = r.get::<String, _>("mac").parse().ok()?;
            Some((r.get("id"), mac, event_from(r)))
        }

        /// The devices of a scan of `scan` reported `device_state` rows (joined with their layers) whose last report
        /// drifts, and the cursor of the next scan (`None` after the last).
        #[allow(clippy::type_complexity)]
        fn drifting_from(
            rows: &[$row],
            scan: i64,
        ) -> (Vec<($crate::inventory::Mac, i64, Vec<$crate::journal::Drift>)>, Option<$crate::inventory::Mac>) {
            use sqlx::Row as _;
            let next = if rows.len() as i64 == scan {
                rows.last().and_then(|r| r.get::<String, _>("mac").parse().ok())
            } else {
                None
            };
            let mut out = Vec::new();
            for r in rows {
                let Ok(mac) = r.get::<String, _>("mac").parse() else { continue };
                let drift = $crate::journal::drift($crate::journal::served_params(r), r.get("report_params"));
                if !drift.is_empty() {
                    out.push((mac, r.get::<i64, _>("report_at"), drift));
                }
            }
            (out, next)
        }

        /// A device's state, as its status shows it, from its `device_state` row joined with its layer.
        fn status_from(r: &$row, s: &mut $crate::journal::DeviceStatus) {
            use sqlx::Row as _;
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
            if s.report_ms.is_some() {
                s.drift = $crate::journal::drift($crate::journal::served_params(r), r.get("report_params"));
            }
        }
    };
}

mod audit_file;
mod batch;
pub mod copy;
mod postgres;
mod sqlite;

pub use audit_file::{AuditFile, audit_entries, audit_line};
pub use postgres::PostgresJournal;
pub use sqlite::{Seen, SqliteJournal, device_states, device_status, prune_old, prune_rows, trim_devices};

/// Where the provisioning core records what it did.
pub trait Journal: Send + Sync + 'static {
    /// Records `batch`, in order. A journal that cannot write logs why and goes on: requests are never refused
    /// because the journal failed.
    fn record_batch(&self, batch: &[AuditEntry]) -> impl Future<Output = ()> + Send;

    /// Records one entry.
    fn record(&self, entry: AuditEntry) -> impl Future<Output = ()> + Send {
        async move { self.record_batch(std::slice::from_ref(&entry)).await }
    }

    /// Retention work, at `now_ms` (Unix milliseconds); [`Queue`]'s writer calls it every minute.
    fn maintain(&self, _now_ms: i64) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Both journals, in order.
impl<A: Journal, B: Journal> Journal for (A, B) {
    async fn record_batch(&self, batch: &[AuditEntry]) {
        self.0.record_batch(batch).await;
        self.1.record_batch(batch).await;
    }

    async fn maintain(&self, now_ms: i64) {
        self.0.maintain(now_ms).await;
        self.1.maintain(now_ms).await;
    }
}

impl<J: Journal> Journal for Arc<J> {
    async fn record_batch(&self, batch: &[AuditEntry]) {
        self.as_ref().record_batch(batch).await;
    }

    async fn maintain(&self, now_ms: i64) {
        self.as_ref().maintain(now_ms).await;
    }
}

/// The most entries one batch writes.
const BATCH: usize = 1024;

/// The writer writes at most once per this while entries trickle in: entries that arrive within it of the last
/// write gather and go in the next one. The first entry after a quiet spell is written at once, and so is a backlog
/// (the last batch was full): the wait only gathers, it never caps how many entries a second the writer takes.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// A journal in front of another: [`Journal::record`] only queues (it waits only when 65,536 entries are queued),
/// and one writer task writes batches of up to 1,024. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::Sender<AuditEntry>,
    live: tokio::sync::broadcast::Sender<Arc<str>>,
}

impl Queue {
    /// Starts the writer task for `journal`; it ends when every [`Queue`] is dropped, after writing what is queued.
    pub fn start<J: Journal>(journal: J) -> (Queue, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<AuditEntry>(1 << 16);
        let (live, _) = tokio::sync::broadcast::channel::<Arc<str>>(1024);
        let tap = live.clone();
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            let mut last_write: Option<tokio::time::Instant> = None;
            // The last batch was full: more are waiting, and waiting for more would only make them wait longer.
            // (With a wait after every batch of 1,024, the writer took at most 51,200 entries a second, and a
            // faster server queued 65,536 and then waited on the queue: `BENCHMARKS.md`, issue 17.)
            let mut backlog = false;
            let mut maintain = tokio::time::interval(std::time::Duration::from_secs(60));
            maintain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    n = rx.recv_many(&mut batch, BATCH) => {
                        if n == 0 {
                            break;
                        }
                        // Under load, entries gather: one write (one transaction, a statement per table) per 20 ms
                        // rather than one per entry, which in a boot storm was most of SQLite's work. A quiet server
                        // writes at once, and so does one with a backlog.
                        if !backlog
                            && let Some(since) = last_write.map(|t| t.elapsed())
                            && since < GATHER
                        {
                            tokio::time::sleep(GATHER - since).await;
                            while batch.len() < BATCH {
                                match rx.try_recv() {
                                    Ok(e) => batch.push(e),
                                    Err(_) => break,
                                }
                            }
                        }
                        journal.record_batch(&batch).await;
                        last_write = Some(tokio::time::Instant::now());
                        backlog = batch.len() == BATCH;
                        if tap.receiver_count() > 0 {
                            for e in &batch {
                                let _ = tap.send(Arc::from(mask_path_tokens(&audit_line(e))));
                            }
                        }
                        batch.clear();
                    }
                    _ = maintain.tick() => {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as i64);
                        journal.maintain(now).await;
                    }
                }
            }
        });
        (Queue { tx, live }, task)
    }

    /// The audit lines written from now on (random paths masked), as they are written: for the web UI's live
    /// events. Only this node's; a receiver that falls more than 1,024 lines behind misses some.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<str>> {
        self.live.subscribe()
    }
}

impl Journal for Queue {
    async fn record_batch(&self, batch: &[AuditEntry]) {
        for entry in batch {
            self.record(entry.clone()).await;
        }
    }

    async fn record(&self, entry: AuditEntry) {
        if self.tx.send(entry).await.is_err() {
            tracing::error!("audit log writer has stopped");
        }
    }
}

/// [`Seen`] for every device with state, from whichever store the site uses (none in memory).
pub async fn states(
    store: &crate::inventory::AnyStore,
) -> Result<std::collections::HashMap<Mac, Seen>, crate::inventory::StoreError> {
    use crate::inventory::AnyStore;
    match store {
        AnyStore::Sqlite(s) => sqlite::device_states(s).await,
        AnyStore::Postgres(s) => postgres::device_states(s).await,
        AnyStore::Memory(_) => Ok(Default::default()),
    }
}

/// The fleet's device events, newest first (up to `limit` with an id below `before`, optionally of one `kind`), from
/// whichever store the site uses (none in memory).
pub async fn fleet_events(
    store: &crate::inventory::AnyStore,
    kind: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, Mac, Event)>, crate::inventory::StoreError> {
    use crate::inventory::AnyStore;
    match store {
        AnyStore::Sqlite(s) => sqlite::fleet_events(s, kind, before, limit).await,
        AnyStore::Postgres(s) => postgres::fleet_events(s, kind, before, limit).await,
        AnyStore::Memory(_) => Ok(Vec::new()),
    }
}

/// Up to `scan` devices that reported (by MAC after `after`) with the parameters whose reported value differs from
/// what was served, and the cursor of the next scan; from whichever store the site uses (none in memory).
#[allow(clippy::type_complexity)]
pub async fn drifting(
    store: &crate::inventory::AnyStore,
    after: Option<&Mac>,
    scan: i64,
) -> Result<(Vec<(Mac, i64, Vec<Drift>)>, Option<Mac>), crate::inventory::StoreError> {
    use crate::inventory::AnyStore;
    match store {
        AnyStore::Sqlite(s) => sqlite::drifting(s, after, scan).await,
        AnyStore::Postgres(s) => postgres::drifting(s, after, scan).await,
        AnyStore::Memory(_) => Ok((Vec::new(), None)),
    }
}

/// [`Seen`] of the devices with a MAC from `first` to `last`, from whichever store the site uses (none in memory).
pub async fn states_between(
    store: &crate::inventory::AnyStore,
    first: &Mac,
    last: &Mac,
) -> Result<std::collections::HashMap<Mac, Seen>, crate::inventory::StoreError> {
    use crate::inventory::AnyStore;
    match store {
        AnyStore::Sqlite(s) => sqlite::device_states_between(s, first, last).await,
        AnyStore::Postgres(s) => postgres::device_states_between(s, first, last).await,
        AnyStore::Memory(_) => Ok(Default::default()),
    }
}

/// The status of `mac` with its `limit` most recent events, from whichever store the site uses.
pub async fn status(
    store: &crate::inventory::AnyStore,
    mac: &Mac,
    limit: i64,
) -> Result<DeviceStatus, crate::inventory::StoreError> {
    use crate::inventory::AnyStore;
    match store {
        AnyStore::Sqlite(s) => sqlite::device_status(s, mac, limit).await,
        AnyStore::Postgres(s) => postgres::device_status(s, mac, limit).await,
        AnyStore::Memory(_) => Ok(DeviceStatus::default()),
    }
}

/// The last `limit` audit lines (oldest first), optionally of one device: from `audit.log` in `data_dir` for the
/// embedded store, from the database (every node's) for PostgreSQL.
pub async fn audit(
    store: &crate::inventory::AnyStore,
    data_dir: &std::path::Path,
    mac: Option<&Mac>,
    limit: usize,
) -> Result<Vec<String>, crate::inventory::StoreError> {
    use crate::inventory::{AnyStore, StoreError};
    match store {
        AnyStore::Postgres(s) => postgres::audit_entries(s, mac, limit as i64).await,
        _ => {
            // File reads, off the runtime's threads.
            let (path, mac) = (data_dir.join("audit.log"), mac.cloned());
            tokio::task::spawn_blocking(move || audit_entries(&path, mac.as_ref(), limit))
                .await
                .map_err(|e| StoreError::Database(sqlx::Error::Io(std::io::Error::other(e))))?
                .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))
        }
    }
}

/// Records `entry` from a command run beside the server (`provisor token create`): into `audit.log` in `data_dir` for
/// the embedded store, into the database for PostgreSQL (as from node `node`). Nothing for a store in memory.
pub async fn record_offline(
    store: &crate::inventory::AnyStore,
    data_dir: &std::path::Path,
    node: &str,
    entry: AuditEntry,
) {
    use crate::inventory::AnyStore;
    match store {
        AnyStore::Sqlite(_) => AuditFile::new(data_dir.join("audit.log")).record_batch(&[entry]).await,
        AnyStore::Postgres(s) => {
            PostgresJournal::new(s.clone(), Default::default(), node.to_string()).record_batch(&[entry]).await
        }
        AnyStore::Memory(_) => {}
    }
}

/// Entries kept in memory, for tests and `--data-dir :memory:` (the newest 100,000).
#[derive(Default)]
pub struct MemoryJournal {
    entries: Mutex<std::collections::VecDeque<AuditEntry>>,
}

/// How many entries a [`MemoryJournal`] keeps.
const MEMORY_JOURNAL_ENTRIES: usize = 100_000;

impl MemoryJournal {
    /// An empty journal.
    pub fn new() -> MemoryJournal {
        MemoryJournal::default()
    }

    /// Every entry kept, oldest first.
    pub fn entries(&self) -> Vec<AuditEntry> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    /// The events recorded for `mac`, oldest first: (kind, text).
    pub fn events(&self, mac: &Mac) -> Vec<(&'static str, String)> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.iter().filter(|e| e.device.as_ref() == Some(mac)).filter_map(|e| e.event.clone()).collect()
    }
}

impl Journal for MemoryJournal {
    async fn record_batch(&self, batch: &[AuditEntry]) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.extend(batch.iter().cloned());
        while entries.len() > MEMORY_JOURNAL_ENTRIES {
            entries.pop_front();
        }
    }
}

/// The `protocol` of an audit entry for a change made through the admin API: it names the device changed, but is
/// not the device being seen.
pub const ADMIN_PROTOCOL: &str = "admin";

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
    /// SHA-256 of the response body, hex (empty when there was none); shared with the cached rendering it names.
    pub hash: Arc<str>,
    /// Why, for refusals and errors.
    pub note: String,
    /// The User-Agent, when one was sent.
    pub user_agent: Option<String>,
    /// The firmware version the request claimed.
    pub firmware: Option<String>,
    /// The parameters of the full profile served, for drift reports.
    pub served_params: Option<Arc<crate::render::ServedParams>>,
    /// An event to add to the device's history: (kind, text).
    pub event: Option<(&'static str, String)>,
    /// A report's parameters (JSON object) and its body.
    pub report: Option<(Arc<str>, Vec<u8>)>,
}

/// Unix milliseconds as an RFC 3339 UTC time with milliseconds: `2026-11-28T12:00:00.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let mut out = Vec::with_capacity(24);
    crate::log_line::push_rfc3339_ms(&mut out, ms);
    String::from_utf8(out).unwrap_or_default()
}

/// `text` with the random directory of every `profile/<random>/` path replaced by `********`: the random path is
/// half of a device's secret (SEC-PRV-2), so it is shown only when asked for (`--secrets`).
pub fn mask_path_tokens(text: &str) -> String {
    const MARK: &str = "profile/";
    let mut out = String::with_capacity(text.len());
    // The mark's place, by a byte scan for its first letter (every request's path goes through here, and `str::find`
    // sets up a substring searcher for each call).
    let find = |hay: &str| {
        let bytes = hay.as_bytes();
        let mut from = 0;
        while let Some(p) = bytes[from..].iter().position(|&b| b == b'p') {
            if bytes[from + p..].starts_with(MARK.as_bytes()) {
                return Some(from + p);
            }
            from += p + 1;
        }
        None
    };
    let mut rest = text;
    while let Some(i) = find(rest) {
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

/// A parameters JSON object as the journal stores it: with secrets sealed at rest, every password's value is
/// replaced by its keyed fingerprint (equal values still compare equal for drift; the value itself is not kept).
pub(crate) fn stored_params<'a>(at_rest: &AtRest, json: &'a str) -> std::borrow::Cow<'a, str> {
    let Some(key) = at_rest.key() else { return json.into() };
    let Ok(mut map) = serde_json::from_str::<BTreeMap<String, serde_json::Value>>(json) else { return json.into() };
    for (name, value) in map.iter_mut() {
        if crate::inventory::at_rest::is_password(name)
            && let Some(v) = value.as_str()
        {
            *value = serde_json::Value::String(key.fingerprint(v));
        }
    }
    serde_json::to_string(&map).map_or(json.into(), Into::into)
}

/// A report's body as the journal stores it: sealed (as base64) when secrets are sealed at rest, since a
/// configuration report carries the phone's passwords.
pub(crate) fn stored_report(at_rest: &AtRest, mac: &Mac, at_ms: i64, body: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    if at_rest.key().is_none() {
        return body.to_vec();
    }
    let text = base64::engine::general_purpose::STANDARD.encode(body);
    match at_rest.seal(&format!("report:{mac}:{at_ms}"), &text) {
        Ok(sealed) => sealed.into_bytes(),
        Err(e) => {
            tracing::error!("report from {mac}: {e}; its body is not kept");
            Vec::new()
        }
    }
}

/// The parameters whose reported value (`reported`, the merged reports' JSON) differs from the one served
/// (`served`, JSON); secrets are shown as `(secret)`, IKMs (never reported) are left out.
/// The served parameters of a `device_state` row joined with its `served_layers` row (`layer_params`).
pub(crate) fn served_params<R: sqlx::Row>(row: &R) -> Option<String>
where
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
    let layer: Option<String> = row.try_get("layer_params").ok().flatten();
    let rest: Option<String> = row.try_get("served_params").ok().flatten();
    crate::render::merge_served(layer.as_deref(), rest.as_deref())
}

pub(crate) fn drift(served: Option<String>, reported: Option<String>) -> Vec<Drift> {
    let parse = |j: Option<String>| -> BTreeMap<String, String> {
        j.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default()
    };
    let (served, reported) = (parse(served), parse(reported));
    let mut out = Vec::new();
    for (name, value) in &served {
        let got = reported.get(name);
        if got != Some(value) && !name.starts_with("IKM_") {
            let hide = |v: &str| if is_secret(name) { "(secret)".to_string() } else { v.to_string() };
            out.push(Drift { name: name.clone(), served: hide(value), reported: got.map(|g| hide(g)) });
        }
    }
    out
}

/// Names whose values are never shown (secrets), in drift output.
fn is_secret(name: &str) -> bool {
    name.starts_with("GPP_S") || name.contains("Password") || name.starts_with("IKM_")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal that counts what it is given, and when.
    #[derive(Clone, Default)]
    struct Counting(Arc<Mutex<Vec<(tokio::time::Instant, usize)>>>);

    impl Journal for Counting {
        async fn record_batch(&self, batch: &[AuditEntry]) {
            self.0.lock().unwrap().push((tokio::time::Instant::now(), batch.len()));
        }
    }

    /// Under load entries gather for [`GATHER`], but a backlog is written batch after batch without that wait: the
    /// wait must not cap the rate (it once held a server to 1,024 entries per 20 ms). On tokio's paused clock, so
    /// every wait is exact.
    #[tokio::test(start_paused = true)]
    async fn a_backlog_is_written_without_waiting() {
        let journal = Counting::default();
        let (queue, task) = Queue::start(journal.clone());
        let start = tokio::time::Instant::now();
        // A first entry is written at once.
        queue.record(AuditEntry::default()).await;
        while journal.0.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        // Then ten batches' worth at once, while the writer is inside its gathering wait.
        for _ in 0..10 * BATCH {
            queue.record(AuditEntry::default()).await;
        }
        drop(queue);
        task.await.unwrap();
        let writes = journal.0.lock().unwrap().clone();
        assert_eq!(writes.iter().map(|w| w.1).sum::<usize>(), 1 + 10 * BATCH);
        assert_eq!(writes[0], (start, 1), "the first entry after a quiet spell is written at once");
        // One gathering wait after the first write, then full batches back to back.
        assert_eq!(writes[1], (start + GATHER, BATCH));
        let last = writes.last().unwrap().0;
        assert_eq!(last, start + GATHER, "a backlog waits for no further gathering: {writes:?}");
        assert!(writes[1..writes.len() - 1].iter().all(|w| w.1 == BATCH), "{writes:?}");
    }

    /// Entries that trickle in still gather: one write per [`GATHER`], not one per entry.
    #[tokio::test(start_paused = true)]
    async fn a_trickle_gathers() {
        let journal = Counting::default();
        let (queue, task) = Queue::start(journal.clone());
        for _ in 0..100 {
            queue.record(AuditEntry::default()).await;
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        drop(queue);
        task.await.unwrap();
        let writes = journal.0.lock().unwrap().clone();
        assert_eq!(writes.iter().map(|w| w.1).sum::<usize>(), 100);
        // 100 ms of entries: the first at once, then one write per 20 ms at most.
        assert!(writes.len() <= 7, "{} writes: {writes:?}", writes.len());
        for pair in writes.windows(2) {
            assert!(pair[1].0 - pair[0].0 >= GATHER, "{writes:?}");
        }
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_040_000_123), "2026-11-30T12:00:00.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn random_paths_are_masked() {
        assert_eq!(mask_path_tokens("profile/0123456789abcdef0123/profile.cfg"), "profile/********/profile.cfg");
        assert_eq!(
            mask_path_tokens("{\"file\":\"/profile/abcdef0123456789/p.cfg\"} /profile/short/x"),
            "{\"file\":\"/profile/********/p.cfg\"} /profile/short/x"
        );
        assert_eq!(mask_path_tokens("0011aabbcc01.xml"), "0011aabbcc01.xml");
    }

    /// The masking rule, written plainly with `str::find`.
    fn mask_model(text: &str) -> String {
        const MARK: &str = "profile/";
        let mut out = String::new();
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

    proptest::proptest! {
        #[test]
        fn masking_is_its_rule(text in "(profile/|profil|p|/|\"| |[a-z0-9]{1,12}|é){0,10}") {
            proptest::prop_assert_eq!(mask_path_tokens(&text), mask_model(&text));
        }
    }
}
