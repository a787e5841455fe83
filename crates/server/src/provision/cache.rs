//! Rendered responses, cached per device and variant and by random path, dropped as a whole when the inventory's
//! revision or the templates change. A cached response is byte-identical to a fresh rendering (encryption is
//! deterministic: see [`super::seal`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use crate::inventory::Mac;
use crate::render::Inherited;

/// Which rendering of a device a cache entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The full profile in clear text (HTTPS with a verified certificate).
    Full,
    /// The bootstrap profile.
    Bootstrap,
    /// gzip + AES-256-CBC with the device key.
    Cbc,
    /// The same with MD5 key derivation, for firmware older than `md5_before_firmware`.
    CbcMd5,
    /// gzip + RFC 8188 with the device IKM.
    Gcm,
    /// `SEP<MAC>.cnf.xml`.
    Sep,
    /// `XMLDefault.cnf.xml`.
    XmlDefault,
}

impl Variant {
    /// A short name, for metrics.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Full => "full",
            Variant::Bootstrap => "bootstrap",
            Variant::Cbc => "aes-256-cbc",
            Variant::CbcMd5 => "aes-256-cbc-md5",
            Variant::Gcm => "aes128gcm",
            Variant::Sep => "sep",
            Variant::XmlDefault => "xmldefault",
        }
    }

    /// Whether the body is encrypted.
    pub fn is_sealed(self) -> bool {
        matches!(self, Variant::Cbc | Variant::CbcMd5 | Variant::Gcm)
    }
}

/// A rendered (and possibly encrypted) response, shared by the cache and the requests it answers.
#[derive(Debug)]
pub struct Served {
    /// The bytes sent.
    pub body: Bytes,
    /// SHA-256 of `body`, hex (for the audit log).
    pub hash: Arc<str>,
    /// The device it was rendered for.
    pub device: Option<Mac>,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// `Content-Encoding`.
    pub content_encoding: Option<&'static str>,
    /// The full profile's parameters, for drift.
    pub params: Option<Arc<crate::render::ServedParams>>,
}

impl Served {
    /// A response that is just these bytes (signed and encrypted enterprise files, stubs).
    pub fn bytes(body: Vec<u8>, content_type: &'static str) -> Served {
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect::<String>();
        Served {
            body: Bytes::from(body),
            hash: hash.into(),
            device: None,
            content_type,
            content_encoding: None,
            params: None,
        }
    }
}

/// What a cache entry is found by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A device's rendering (`None`: device-independent files).
    Device(Option<Mac>, Variant),
    /// The encrypted profile at a random path, so a cached resync needs no inventory lookup.
    Path(String, Variant),
    /// A signed file: the SHA-256 of its content and its name inside.
    Signed([u8; 32], String),
    /// A device's encrypted config (`SEP<MAC>.cnf.xml.enc.sgn`).
    Encrypted(Mac),
}

/// What devices inherit, by (group, model): the revision it was read at, and its rendering.
type InheritedLayers = HashMap<(Option<String>, String), (i64, Arc<Inherited>)>;

/// The cache, with the inventory revision and template stamp its entries were rendered at.
pub struct Cache {
    entries: RwLock<HashMap<Key, Arc<Served>>>,
    /// What devices of a group and model inherit, rendered once ([`crate::render::Inherited`]), with the revision
    /// it was read at.
    inherited: RwLock<InheritedLayers>,
    revision: AtomicI64,
    templates: AtomicU64,
}

impl Default for Cache {
    fn default() -> Cache {
        Cache {
            entries: RwLock::default(),
            inherited: RwLock::default(),
            revision: AtomicI64::new(i64::MIN),
            templates: AtomicU64::new(0),
        }
    }
}

impl Cache {
    /// The entry for `key`.
    pub fn get(&self, key: &Key) -> Option<Arc<Served>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    /// Adds an entry.
    pub fn insert(&self, key: Key, served: Arc<Served>) {
        self.entries.write().unwrap_or_else(|p| p.into_inner()).insert(key, served);
    }

    /// Drops every entry if the inventory revision moved; returns whether it did.
    pub fn at_revision(&self, revision: i64) -> bool {
        let moved = self.revision.swap(revision, Ordering::AcqRel) != revision;
        if moved {
            self.clear();
        }
        moved
    }

    /// The inventory revision the entries were rendered at (it goes into `version_stamp`).
    pub fn revision(&self) -> i64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Records the templates' stamp; returns whether it changed (the caller reloads and clears).
    pub fn templates_changed(&self, stamp: u64) -> bool {
        self.templates.swap(stamp, Ordering::AcqRel) != stamp
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.entries.write().unwrap_or_else(|p| p.into_inner()).clear();
        self.inherited.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// What devices of `group` and `model` inherit, if it was read at the current revision.
    pub fn inherited(&self, group: Option<&str>, model: &str) -> Option<Arc<Inherited>> {
        let key = (group.map(str::to_string), model.to_string());
        let map = self.inherited.read().unwrap_or_else(|p| p.into_inner());
        map.get(&key).filter(|(r, _)| *r == self.revision()).map(|(_, i)| i.clone())
    }

    /// Keeps what devices of `group` and `model` inherit, as read at `revision`.
    pub fn keep_inherited(&self, group: Option<&str>, model: &str, revision: i64, inherited: Arc<Inherited>) {
        let mut map = self.inherited.write().unwrap_or_else(|p| p.into_inner());
        map.insert((group.map(str::to_string), model.to_string()), (revision, inherited));
    }
}
