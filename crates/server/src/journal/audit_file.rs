//! The audit log: `audit.log` in the data directory, one JSON object per line, appended and flushed per batch (like
//! a web server's access log; at 256 MiB it moves to `audit.log.1`), private to the server's user.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::{AuditEntry, Journal};
use crate::inventory::Mac;

/// Largest `audit.log` before it moves to `audit.log.1`.
const AUDIT_ROTATE_BYTES: u64 = 256 << 20;

/// The audit log file (a [`Journal`]).
pub struct AuditFile {
    inner: Mutex<AuditLog>,
    reopen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

struct AuditLog {
    path: PathBuf,
    file: Option<std::fs::File>,
    size: u64,
    line: Vec<u8>,
}

/// One audit line.
#[derive(Serialize)]
struct AuditLine<'a> {
    /// RFC 3339, UTC.
    time: String,
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

impl<'a> AuditLine<'a> {
    fn of(e: &'a AuditEntry) -> AuditLine<'a> {
        AuditLine {
            time: super::rfc3339(e.at_ms),
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
        }
    }
}

/// One entry as the audit log writes it (a JSON object, no newline); the PostgreSQL journal keeps the same text.
pub fn audit_line(e: &AuditEntry) -> String {
    serde_json::to_string(&AuditLine::of(e)).unwrap_or_default()
}

impl AuditLog {
    fn new(path: PathBuf) -> AuditLog {
        AuditLog { path, file: None, size: 0, line: Vec::with_capacity(1 << 16) }
    }

    fn append(&mut self, batch: &[AuditEntry]) {
        use std::io::Write;
        self.line.clear();
        for e in batch.iter().filter(|e| e.method != "LOG") {
            if serde_json::to_writer(&mut self.line, &AuditLine::of(e)).is_ok() {
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

impl AuditFile {
    /// Appends to `path` (created 0600 at the first entry).
    pub fn new(path: PathBuf) -> AuditFile {
        AuditFile { inner: Mutex::new(AuditLog::new(path)), reopen: Default::default() }
    }

    /// A flag that makes the next write close and reopen the file (after logrotate moved it: SIGHUP).
    pub fn reopen_handle(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.reopen.clone()
    }
}

impl Journal for AuditFile {
    async fn record_batch(&self, batch: &[AuditEntry]) {
        let mut log = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if self.reopen.swap(false, std::sync::atomic::Ordering::Relaxed) {
            log.file = None;
        }
        log.append(batch);
    }
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
