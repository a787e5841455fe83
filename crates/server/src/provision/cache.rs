//! Rendered responses, cached per device and variant and by random path, dropped as a whole when the inventory's
//! revision or the templates change. A cached response is byte-identical to a fresh rendering (encryption is
//! deterministic: see [`super::seal`]).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
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
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Hashed by hand, so that a [`PathKey`] hashes as the `Key::Path` it stands for.
impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            Key::Device(mac, variant) => {
                h.write_u8(0);
                mac.hash(h);
                variant.hash(h);
            }
            Key::Path(token, variant) => PathKey(token, *variant).hash(h),
            Key::Signed(digest, name) => {
                h.write_u8(2);
                digest.hash(h);
                name.hash(h);
            }
            Key::Encrypted(mac) => {
                h.write_u8(3);
                mac.hash(h);
            }
        }
    }
}

/// A `Key::Path` borrowed from the request: a cached resync is found without building a key.
#[derive(Clone, Copy)]
pub struct PathKey<'a>(pub &'a str, pub Variant);

impl Hash for PathKey<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u8(1);
        self.0.hash(h);
        self.1.hash(h);
    }
}

impl hashbrown::Equivalent<Key> for PathKey<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        matches!(key, Key::Path(token, variant) if token == self.0 && *variant == self.1)
    }
}

/// What devices inherit, by (group, model): the revision it was read at, and its rendering.
type InheritedLayers = HashMap<(Option<String>, String), (i64, Arc<Inherited>)>;

/// The entries and about how many bytes they hold.
#[derive(Default)]
struct Entries {
    /// hashbrown with its default hasher (foldhash, seeded per process): a cached resync's lookup was a tenth of
    /// its core's time with SipHash.
    map: hashbrown::HashMap<Key, (Arc<Served>, usize)>,
    bytes: usize,
}

/// What an entry costs beyond its bytes: the key, the map's slot, the `Served` and its hash.
const ENTRY_OVERHEAD: usize = 256;

impl Served {
    /// About how many bytes an entry for this holds (an entry under two keys counts twice: an upper bound).
    fn weight(&self) -> usize {
        ENTRY_OVERHEAD + self.body.len() + self.hash.len() + self.params.as_ref().map_or(0, |p| p.weight())
    }
}

/// The cache, with the inventory revision and template stamp its entries were rendered at. It holds at most
/// `max_bytes` of responses: when full, about a quarter of the entries go, in the map's (random) hash order, which
/// is random eviction: no per-request bookkeeping, and a device evicted is rendered again on its next fetch
/// (a fraction of a millisecond with the built-in template, `BENCHMARKS.md`).
pub struct Cache {
    entries: RwLock<Entries>,
    max_bytes: usize,
    /// What devices of a group and model inherit, rendered once ([`crate::render::Inherited`]), with the revision
    /// it was read at.
    inherited: RwLock<InheritedLayers>,
    revision: AtomicI64,
    templates: AtomicU64,
}

impl Cache {
    /// A cache that holds at most `max_bytes` of responses (0: none).
    pub fn with_limit(max_bytes: usize) -> Cache {
        Cache {
            entries: RwLock::default(),
            max_bytes,
            inherited: RwLock::default(),
            revision: AtomicI64::new(i64::MIN),
            templates: AtomicU64::new(0),
        }
    }

    /// The entry for `key` (a [`Key`], or a [`PathKey`]).
    pub fn get<Q: Hash + hashbrown::Equivalent<Key> + ?Sized>(&self, key: &Q) -> Option<Arc<Served>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).map.get(key).map(|(s, _)| s.clone())
    }

    /// Adds an entry, first evicting others if it would not fit.
    pub fn insert(&self, key: Key, served: Arc<Served>) {
        let weight = served.weight();
        if weight > self.max_bytes {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if let Some((_, old)) = entries.map.remove(&key) {
            entries.bytes -= old;
        }
        if entries.bytes + weight > self.max_bytes {
            let target = self.max_bytes / 4 * 3;
            let before = entries.map.len();
            let Entries { map, bytes } = &mut *entries;
            map.retain(|_, (_, w)| {
                if *bytes + weight <= target {
                    return true;
                }
                *bytes -= *w;
                false
            });
            metrics::counter!("provisor_cache_evictions_total").increment((before - entries.map.len()) as u64);
        }
        entries.bytes += weight;
        entries.map.insert(key, (served, weight));
        metrics::gauge!("provisor_cache_bytes").set(entries.bytes as f64);
    }

    /// About how many bytes the entries hold, and how many there are.
    pub fn size(&self) -> (usize, usize) {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        (entries.bytes, entries.map.len())
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
        *self.entries.write().unwrap_or_else(|p| p.into_inner()) = Entries::default();
        metrics::gauge!("provisor_cache_bytes").set(0.0);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn served(len: usize) -> Arc<Served> {
        Arc::new(Served::bytes(vec![b'x'; len], "text/xml"))
    }

    fn key(i: u64) -> Key {
        Key::Path(format!("p{i}"), Variant::Cbc)
    }

    #[test]
    fn a_borrowed_path_finds_its_entry_and_no_other() {
        let cache = Cache::with_limit(1 << 20);
        let mac: Mac = "0011223344aa".parse().unwrap();
        cache.insert(Key::Path("tok".into(), Variant::Cbc), served(1));
        cache.insert(Key::Path("tok".into(), Variant::Gcm), served(2));
        cache.insert(Key::Device(Some(mac.clone()), Variant::Cbc), served(3));
        cache.insert(Key::Encrypted(mac), served(4));
        assert_eq!(cache.get(&PathKey("tok", Variant::Cbc)).unwrap().body.len(), 1);
        assert_eq!(cache.get(&PathKey("tok", Variant::Gcm)).unwrap().body.len(), 2);
        assert!(cache.get(&PathKey("tok", Variant::CbcMd5)).is_none());
        assert!(cache.get(&PathKey("to", Variant::Cbc)).is_none());
        assert!(cache.get(&PathKey("tokk", Variant::Cbc)).is_none());
        assert!(cache.get(&PathKey("", Variant::Cbc)).is_none());
    }

    #[test]
    fn the_cache_stays_within_its_bound_and_keeps_what_it_just_added() {
        let limit = 1 << 20;
        let cache = Cache::with_limit(limit);
        let one = served(10_000).weight();
        for i in 0..1_000 {
            cache.insert(key(i), served(10_000));
            assert!(cache.get(&key(i)).is_some(), "entry {i} was evicted as it went in");
            let (bytes, count) = cache.size();
            assert!(bytes <= limit, "{bytes} bytes over the {limit}-byte bound after {i}");
            assert_eq!(bytes, count * one, "the tally drifted from the entries");
        }
        let (bytes, count) = cache.size();
        assert!(count >= limit / 2 / one, "evicted far more than needed: {count} entries, {bytes} bytes");
        // Replacing an entry counts it once.
        cache.insert(key(999), served(10_000));
        assert_eq!(cache.size(), (bytes, count));
        cache.clear();
        assert_eq!(cache.size(), (0, 0));
    }

    #[test]
    fn nothing_larger_than_the_bound_is_kept_and_zero_keeps_nothing() {
        let cache = Cache::with_limit(4096);
        cache.insert(key(1), served(5000));
        assert!(cache.get(&key(1)).is_none());
        let off = Cache::with_limit(0);
        off.insert(key(1), served(1));
        assert_eq!(off.size(), (0, 0));
    }
}
