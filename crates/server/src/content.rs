//! What the provisioning core reads but never writes: templates, firmware files and trust lists, behind the
//! [`Content`] trait, so the core touches no file system. [`FsContent`] reads the configured directories (trust
//! lists: `trust/` in the data directory, e.g. an `ITLFile.tlv` made with CUCM's or certutils' tools);
//! [`MemoryContent`] holds everything in memory (tests).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::Bytes;

use crate::config::Config;
use crate::provision::Body;
use crate::render::{RenderError, Templates};

/// Read-only files the provisioning core serves or renders from.
pub trait Content: Send + Sync + 'static {
    /// A value that changes whenever the templates change (the core reloads them when it does).
    fn templates_stamp(&self) -> u64;

    /// The templates as they are now.
    fn templates(&self) -> Result<Templates, RenderError>;

    /// The firmware file `name` (`Upgrade_Rule` downloads), if there is one.
    fn firmware(&self, name: &str) -> Option<Body>;

    /// The trust list `name` (`ITLFile.tlv`, `ITLSEP<MAC>.tlv`, `CTLSEP<MAC>.tlv`; specs.md §5.1), if there is one.
    /// Without one, enterprise phones that hold no trust list accept unsigned files.
    fn trust_list(&self, name: &str) -> Option<Body>;

    /// The bytes of a body (a file is read, up to 64 MiB: what a `.sgn` signs).
    fn read(&self, body: &Body) -> Option<Bytes> {
        match body {
            Body::Bytes(b) => Some(b.clone()),
            Body::File(..) => None,
        }
    }
}

/// A plain file under `dir` (no escaping it; case-insensitive, as phones ask for `ITLFile.tlv` and TFTP servers on
/// Windows answer any case).
fn file_under(dir: Option<&PathBuf>, name: &str) -> Option<Body> {
    let source = provisor_tftp::content::FsSource::new(dir?, true).ok()?;
    let path = source.resolve(name).ok()?;
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Some(Body::File(path, m.len())),
        _ => None,
    }
}

/// The template and firmware directories of the configuration, and the trust lists: `[enterprise] trust_dir` first,
/// then `trust/` in the data directory (per-device lists, a site's `CTLFile.tlv`).
pub struct FsContent {
    templates: Option<PathBuf>,
    firmware: Option<PathBuf>,
    trust: Vec<PathBuf>,
}

impl FsContent {
    /// `[templates] dir`, `[firmware] dir` and `data_dir/trust` of `config`.
    pub fn new(config: &Config) -> FsContent {
        FsContent {
            templates: config.templates.dir.clone(),
            firmware: config.firmware.dir.clone(),
            trust: config
                .enterprise
                .as_ref()
                .map(|e| e.trust_dir.clone())
                .into_iter()
                .chain([config.data_dir.join("trust")])
                .collect(),
        }
    }
}

impl Content for FsContent {
    /// The newest modification time in the template directory, in nanoseconds.
    fn templates_stamp(&self) -> u64 {
        let Some(dir) = &self.templates else { return 0 };
        let nanos = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let mut newest = std::fs::metadata(dir).and_then(|m| m.modified()).map_or(0, nanos);
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                newest = newest.max(nanos(t));
            }
        }
        newest
    }

    fn templates(&self) -> Result<Templates, RenderError> {
        match &self.templates {
            Some(dir) if dir.exists() => Templates::from_dir(dir),
            _ => Ok(Templates::builtin()),
        }
    }

    fn firmware(&self, name: &str) -> Option<Body> {
        file_under(self.firmware.as_ref(), name)
    }

    fn trust_list(&self, name: &str) -> Option<Body> {
        // Only trust lists: the trust directory also holds the signers' keys.
        if !name.to_ascii_lowercase().ends_with(".tlv") {
            return None;
        }
        self.trust.iter().find_map(|dir| file_under(Some(dir), name))
    }

    fn read(&self, body: &Body) -> Option<Bytes> {
        match body {
            Body::Bytes(b) => Some(b.clone()),
            Body::File(path, len) if *len <= 64 << 20 => std::fs::read(path).ok().map(Bytes::from),
            Body::File(..) => None,
        }
    }
}

/// Templates, firmware and trust lists in memory.
#[derive(Default)]
pub struct MemoryContent {
    templates: Mutex<(u64, Vec<(String, String)>)>,
    firmware: Mutex<HashMap<String, Bytes>>,
    trust: Mutex<HashMap<String, Bytes>>,
}

impl MemoryContent {
    /// Only the built-in templates, no firmware.
    pub fn new() -> MemoryContent {
        MemoryContent::default()
    }

    /// Adds or replaces the template `name` (the core sees the change at its next refresh).
    pub fn set_template(&self, name: &str, source: &str) {
        let mut t = self.templates.lock().unwrap_or_else(|p| p.into_inner());
        t.1.retain(|(n, _)| n != name);
        t.1.push((name.to_string(), source.to_string()));
        t.0 += 1;
    }

    /// Adds or replaces the firmware file `name`.
    pub fn set_firmware(&self, name: &str, bytes: impl Into<Bytes>) {
        self.firmware.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), bytes.into());
    }

    /// Adds or replaces the trust list `name` (matched in any case).
    pub fn set_trust_list(&self, name: &str, bytes: impl Into<Bytes>) {
        self.trust.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_ascii_lowercase(), bytes.into());
    }
}

impl Content for MemoryContent {
    fn templates_stamp(&self) -> u64 {
        self.templates.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    fn templates(&self) -> Result<Templates, RenderError> {
        let sources = self.templates.lock().unwrap_or_else(|p| p.into_inner()).1.clone();
        Templates::from_sources(sources)
    }

    fn firmware(&self, name: &str) -> Option<Body> {
        self.firmware.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned().map(Body::Bytes)
    }

    fn trust_list(&self, name: &str) -> Option<Body> {
        let trust = self.trust.lock().unwrap_or_else(|p| p.into_inner());
        trust.get(&name.to_ascii_lowercase()).cloned().map(Body::Bytes)
    }
}

impl<C: Content> Content for std::sync::Arc<C> {
    fn templates_stamp(&self) -> u64 {
        self.as_ref().templates_stamp()
    }
    fn templates(&self) -> Result<Templates, RenderError> {
        self.as_ref().templates()
    }
    fn firmware(&self, name: &str) -> Option<Body> {
        self.as_ref().firmware(name)
    }
    fn trust_list(&self, name: &str) -> Option<Body> {
        self.as_ref().trust_list(name)
    }
}
