//! The audit log: `audit.log` in the data directory, one JSON object per line, appended and flushed per batch (like
//! a web server's access log; at 256 MiB it moves to `audit.log.1`), private to the server's user.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

/// Appends one entry as the audit log writes it: a JSON object, no newline. Formatted by hand (it is one line per
/// request, and serde_json cost 4 % of a cached answer); `tests::lines_are_serde_jsons` holds it to what serde_json
/// writes for the same fields.
fn push_audit_line(out: &mut Vec<u8>, e: &AuditEntry) {
    use crate::log_line::{Value, push_json_fields};
    out.push(b'{');
    push_json_fields(
        out,
        &[
            ("time", Value::Rfc3339Ms(e.at_ms)),
            ("at_ms", Value::Signed(e.at_ms)),
            ("client", Value::Text(&e.client)),
            ("device", e.device.as_ref().map_or(Value::Null, |m| Value::Text(m.as_str()))),
            ("protocol", Value::Text(e.protocol)),
            ("method", Value::Text(e.method)),
            ("file", Value::Text(&e.file)),
            ("status", Value::Unsigned(u64::from(e.status))),
            ("bytes", Value::Unsigned(e.bytes)),
            ("hash", Value::Text(&e.hash)),
        ],
    );
    if !e.note.is_empty() {
        out.push(b',');
        push_json_fields(out, &[("note", Value::Text(&e.note))]);
    }
    out.push(b'}');
}

/// One entry as the audit log writes it (a JSON object, no newline); the PostgreSQL journal keeps the same text.
pub fn audit_line(e: &AuditEntry) -> String {
    let mut out = Vec::with_capacity(256);
    push_audit_line(&mut out, e);
    // Only `push_json_str`'s UTF-8 text and ASCII.
    String::from_utf8(out).unwrap_or_default()
}

impl AuditLog {
    fn new(path: PathBuf) -> AuditLog {
        AuditLog { path, file: None, size: 0, line: Vec::with_capacity(1 << 16) }
    }

    fn append(&mut self, batch: &[AuditEntry]) {
        use std::io::Write;
        self.line.clear();
        for e in batch.iter().filter(|e| e.method != "LOG") {
            push_audit_line(&mut self.line, e);
            self.line.push(b'\n');
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
/// `audit.log.1` when the current file holds fewer). Each file is read backwards from its end, a block at a time, and
/// only as far as the entries asked for: a page of the web UI does not read a 256 MiB log.
pub fn audit_entries(audit_path: &Path, device: Option<&Mac>, limit: usize) -> std::io::Result<Vec<String>> {
    let needle = device.map(|m| format!("\"device\":\"{m}\""));
    let wanted = |line: &str| needle.as_ref().is_none_or(|n| line.contains(n.as_str()));
    let mut newest_first: Vec<String> = Vec::new();
    for path in [audit_path.to_path_buf(), audit_path.with_extension("log.1")] {
        if newest_first.len() >= limit {
            break;
        }
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        last_lines(file, limit - newest_first.len(), &wanted, &mut newest_first)?;
    }
    newest_first.reverse();
    Ok(newest_first)
}

/// Pushes the last `limit` lines of `file` that `wanted` accepts onto `out`, newest first, reading backwards in
/// blocks of 64 KiB.
fn last_lines(
    mut file: std::fs::File,
    limit: usize,
    wanted: &dyn Fn(&str) -> bool,
    out: &mut Vec<String>,
) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    const BLOCK: u64 = 64 << 10;
    let mut end = file.seek(SeekFrom::End(0))?;
    // The start of a line cut by the block boundary, carried into the next (earlier) block.
    let mut tail: Vec<u8> = Vec::new();
    let mut taken = 0;
    while end > 0 && taken < limit {
        let start = end.saturating_sub(BLOCK);
        let mut block = vec![0u8; (end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&tail);
        end = start;
        // Every line but the first is whole; the first is whole only at the start of the file.
        let mut lines: Vec<&[u8]> = block.split(|b| *b == b'\n').collect();
        let first = if start > 0 { lines.remove(0).to_vec() } else { Vec::new() };
        for line in lines.iter().rev() {
            let Ok(line) = std::str::from_utf8(line) else { continue };
            if !line.is_empty() && wanted(line) {
                out.push(line.to_string());
                taken += 1;
                if taken == limit {
                    return Ok(());
                }
            }
        }
        tail = first;
    }
    Ok(())
}

#[cfg(test)]
mod reading_backwards {
    use super::*;

    /// What `audit_entries` returned when it read both files whole: the reference for reading backwards.
    fn whole(path: &Path, device: Option<&Mac>, limit: usize) -> Vec<String> {
        let needle = device.map(|m| format!("\"device\":\"{m}\""));
        let mut out: Vec<String> = Vec::new();
        for p in [path.with_extension("log.1"), path.to_path_buf()] {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            out.extend(
                text.lines().filter(|l| needle.as_ref().is_none_or(|n| l.contains(n.as_str()))).map(String::from),
            );
        }
        let skip = out.len().saturating_sub(limit);
        out.split_off(skip)
    }

    #[test]
    fn the_last_entries_are_those_of_reading_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let macs: Vec<Mac> =
            ["000e08000001", "000e08000002", "000e08000003"].iter().map(|m| m.parse().unwrap()).collect();
        // Lines of many lengths (some longer than a block), across both files and many block boundaries.
        for (file, n) in [(path.with_extension("log.1"), 700), (path.clone(), 1300)] {
            let mut text = String::new();
            for i in 0..n {
                let pad = "x".repeat((i * 37) % 900 + if i % 250 == 7 { 70_000 } else { 0 });
                text.push_str(&format!("{{\"device\":\"{}\",\"n\":{i},\"pad\":\"{pad}\"}}\n", macs[i % 3]));
            }
            std::fs::write(file, text).unwrap();
        }
        for device in [None, Some(&macs[0]), Some(&macs[2])] {
            for limit in [0, 1, 2, 50, 433, 1299, 1300, 1500, 2000, 5000] {
                assert_eq!(
                    audit_entries(&path, device, limit).unwrap(),
                    whole(&path, device, limit),
                    "{device:?} {limit}"
                );
            }
        }
        std::fs::remove_file(path.with_extension("log.1")).unwrap();
        assert_eq!(audit_entries(&path, None, 5000).unwrap(), whole(&path, None, 5000));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The audit line as serde_json wrote it before it was formatted by hand: the reference.
    #[derive(serde::Serialize)]
    struct SerdeLine<'a> {
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

    proptest! {
        #[test]
        fn lines_are_serde_jsons(
            at_ms in -100_000_000_000_000i64..100_000_000_000_000i64,
            client in "\\PC{0,40}",
            device in proptest::option::of("[0-9a-f]{12}"),
            file in "\\PC{0,80}|[\\x00-\\x7f]{0,40}",
            status in any::<u16>(),
            bytes in any::<u64>(),
            hash in "[0-9a-f]{0,64}",
            note in "|\\PC{0,60}|[\\x00-\\x7f]{0,30}",
        ) {
            let e = AuditEntry {
                at_ms,
                client: client.clone(),
                device: device.as_deref().map(|d| d.parse().unwrap()),
                protocol: "https",
                method: "GET",
                file: file.clone(),
                status,
                bytes,
                hash: hash.as_str().into(),
                note: note.clone(),
                user_agent: None,
                firmware: None,
                served_params: None,
                event: None,
                report: None,
            };
            let reference = serde_json::to_string(&SerdeLine {
                time: crate::journal::rfc3339(at_ms),
                at_ms,
                client: &client,
                device: device.as_deref(),
                protocol: "https",
                method: "GET",
                file: &file,
                status,
                bytes,
                hash: &hash,
                note: &note,
            })
            .unwrap();
            prop_assert_eq!(audit_line(&e), reference);
        }
    }
}
