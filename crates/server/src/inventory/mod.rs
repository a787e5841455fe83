//! The inventory: devices and groups with their parameters, behind the [`Store`] trait, with an embedded SQLite
//! implementation ([`SqliteStore`]; WAL journal, migrations in `migrations/`) and one in memory ([`MemoryStore`], for
//! tests and `--data-dir :memory:`) and a shared one on PostgreSQL for several nodes ([`PostgresStore`],
//! `[inventory] url`). Secrets are sealed at rest under the site's master key ([`at_rest`]).
//!
//! Parameters are layered (Cisco "Provisioning Formats", *Parameter Properties*: the last value wins): the group
//! `defaults`, then the group `model:<model>`, then the device's group and its ancestors (outermost first), then the
//! device's own parameters.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::str::FromStr;

use serde::Serialize;

pub mod at_rest;
pub mod csv;
mod memory;
pub mod parameter;
#[macro_use]
mod shared_sql;
mod postgres;
mod sqlite;

pub use memory::MemoryStore;
pub use postgres::{PoolLimits, PostgresStore};
pub use sqlite::SqliteStore;

/// A MAC address, stored as 12 lower-case hex digits (the phones' `$MA`), inline: a copy allocates nothing (every
/// request's answer, audit entry and access line carries one).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, utoipa::ToSchema)]
#[schema(value_type = String, pattern = "^[0-9a-f]{12}$", example = "000e08aabbcc")]
pub struct Mac([u8; 12]);

impl Mac {
    /// The 12 lower-case hex digits.
    pub fn as_str(&self) -> &str {
        // Only `FromStr` makes a `Mac`, from ASCII hex digits.
        std::str::from_utf8(&self.0).unwrap_or("000000000000")
    }

    /// `000000000000`, for a device record being filled in.
    pub fn placeholder() -> Mac {
        Mac(*b"000000000000")
    }

    /// A MAC as the inventory stores it (12 lower-case hex digits).
    pub(crate) fn stored(text: &str) -> Result<Mac, StoreError> {
        text.parse().map_err(StoreError::Corrupt)
    }

    /// Upper case (`$MAU`, `SEP<MAC>`).
    pub fn upper(&self) -> String {
        self.as_str().to_ascii_uppercase()
    }
}

impl std::fmt::Debug for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl FromStr for Mac {
    type Err = String;

    /// Accepts `00:0e:08:aa:bb:cc`, `00-0E-08-AA-BB-CC`, `000e.08aa.bbcc`, `000E08AABBCC` and `SEP000E08AABBCC`.
    fn from_str(s: &str) -> Result<Mac, String> {
        let t = s.trim();
        let t = t.strip_prefix("SEP").or_else(|| t.strip_prefix("sep")).unwrap_or(t);
        let mut hex = [0u8; 12];
        let mut n = 0;
        for b in t.bytes().filter(|b| !matches!(b, b':' | b'-' | b'.')) {
            if n == 12 || !b.is_ascii_hexdigit() {
                n = 13;
                break;
            }
            hex[n] = b.to_ascii_lowercase();
            n += 1;
        }
        if n != 12 {
            return Err(format!("{s:?} is not a MAC address (expected 12 hex digits, e.g. 00:0e:08:aa:bb:cc)"));
        }
        Ok(Mac(hex))
    }
}

/// Per-device secrets, generated when the device is added.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Secrets {
    /// The AES-256-CBC pass phrase (`--key`).
    pub aes_key: String,
    /// The `EVP_BytesToKey` digest the device's firmware expects: `sha256` or `md5`.
    pub aes_digest: String,
    /// The RFC 8188 input keying material, in hex (`IKM_HTTP_Encrypt_Content`).
    pub ikm: String,
    /// The random directory of the device's encrypted profile URL (SEC-PRV-2: `.../$B/...`).
    pub path_token: String,
    /// The secrets a rotation replaced, kept until the phone has fetched its new ones.
    pub previous: Option<PreviousSecrets>,
}

/// Secrets replaced by a rotation: the phone still uses them until its next resync.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct PreviousSecrets {
    /// The old pass phrase.
    pub aes_key: String,
    /// The old IKM, in hex.
    pub ikm: String,
    /// The old random path.
    pub path_token: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets {{ aes_digest: {:?}, rotating: {}, .. }}", self.aes_digest, self.previous.is_some())
    }
}

impl Secrets {
    /// No secrets (for device-independent renderings).
    pub fn none() -> Secrets {
        Secrets {
            aes_key: String::new(),
            aes_digest: String::new(),
            ikm: String::new(),
            path_token: String::new(),
            previous: None,
        }
    }

    /// Fresh random secrets: a 32-hex-digit pass phrase and a 128-bit IKM.
    pub fn generate() -> Result<Secrets, StoreError> {
        let random = |n: usize| -> Result<String, StoreError> {
            let mut b = vec![0u8; n];
            getrandom::fill(&mut b).map_err(|e| StoreError::Random(e.to_string()))?;
            Ok(b.iter().map(|x| format!("{x:02x}")).collect())
        };
        Ok(Secrets {
            aes_key: random(16)?,
            aes_digest: "sha256".into(),
            ikm: random(16)?,
            path_token: random(12)?,
            previous: None,
        })
    }

    /// New secrets that replace these; the current ones are kept as [`Secrets::previous`] until the phone has
    /// resynced with the new ones (an older, never-fetched previous set is dropped: the phone never had it).
    pub fn rotated(&self) -> Result<Secrets, StoreError> {
        let fresh = Secrets::generate()?;
        let previous = match &self.previous {
            Some(p) => p.clone(),
            None => PreviousSecrets {
                aes_key: self.aes_key.clone(),
                ikm: self.ikm.clone(),
                path_token: self.path_token.clone(),
            },
        };
        Ok(Secrets { aes_digest: self.aes_digest.clone(), previous: Some(previous), ..fresh })
    }
}

/// A phone in the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Device {
    /// Its MAC address.
    pub mac: Mac,
    /// Product name, e.g. `CP-8841-3PCC`.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Free text.
    pub description: String,
    /// The group it belongs to.
    pub group: Option<String>,
    /// Its own parameters (SIP lines, ...), by element name.
    pub params: BTreeMap<String, String>,
    /// Its secrets.
    #[serde(skip)]
    #[schema(ignore)]
    pub secrets: Secrets,
}

/// Whether a model runs enterprise (CUCM) firmware: anything but a Multiplatform model (`-3PCC`, `MPP`, the SPA and
/// ATA lines) or no model.
pub fn is_enterprise_model(model: &str) -> bool {
    let m = model.to_ascii_uppercase();
    !(m.trim().is_empty() || m.contains("3PCC") || m.contains("MPP") || m.starts_with("SPA") || m.starts_with("ATA"))
}

impl Device {
    /// Whether the device runs enterprise (CUCM) firmware, by its model: anything but a Multiplatform model (`-3PCC`,
    /// `MPP`, the SPA and ATA lines) or no model. Only enterprise devices are served `SEP<MAC>.cnf.xml`.
    pub fn is_enterprise(&self) -> bool {
        is_enterprise_model(&self.model)
    }

    /// A device with only a MAC and these secrets, to be filled in.
    pub fn blank(mac: Mac, secrets: Secrets) -> Device {
        Device {
            mac,
            model: String::new(),
            serial: String::new(),
            description: String::new(),
            group: None,
            params: BTreeMap::new(),
            secrets,
        }
    }
}

/// What an admin API token may do (issue 18): each role can do everything the one before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read the inventory, state and logs; secrets stay masked.
    Read,
    /// Also change devices and groups.
    Operator,
    /// Also see secrets, rotate keys and manage tokens.
    Admin,
}

impl Role {
    /// The name stored and shown: `read`, `operator` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "read" => Ok(Role::Read),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            _ => Err(format!("{s:?} is not a role: read, operator or admin")),
        }
    }
}

/// An admin API token as stored: its SHA-256, never the token itself (shown once, when it is created).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminToken {
    /// Who or what holds it (unique), named in the audit trail.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// SHA-256 of the token, hex.
    #[serde(skip)]
    pub hash: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
}

/// How an admin token starts, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "pvt_";

impl AdminToken {
    /// A new token for `name` with `role`, made at `now_ms` (ms since the epoch): the token to show once, and what
    /// to store.
    pub fn generate(name: &str, role: Role, now_ms: i64) -> Result<(String, AdminToken), StoreError> {
        use base64::Engine as _;
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|e| StoreError::Random(e.to_string()))?;
        let token = format!("{TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random));
        let stored = AdminToken {
            name: name.to_string(),
            role,
            hash: AdminToken::hash_of(&token),
            created_at: crate::journal::rfc3339(now_ms),
        };
        Ok((token, stored))
    }

    /// The SHA-256 (hex) under which a token is stored and looked up.
    pub fn hash_of(token: &str) -> String {
        use sha2::Digest as _;
        crate::provision::seal::hex(&sha2::Sha256::digest(token.as_bytes()))
    }
}

/// A login of the web UI, made by `provisor user add` (issue 18).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminUser {
    /// The login name (unique).
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// The password as an Argon2id PHC string (`$argon2id$v=19$...`).
    #[serde(skip)]
    pub password_hash: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
}

impl AdminUser {
    /// A new user with `password` hashed by Argon2id (a random salt, the crate's default cost).
    pub fn new(name: &str, role: Role, password: &str, now_ms: i64) -> Result<AdminUser, StoreError> {
        use argon2::password_hash::PasswordHasher as _;
        let hash = argon2::Argon2::default()
            .hash_password(password.as_bytes())
            .map_err(|e| StoreError::Random(format!("hashing the password: {e}")))?;
        Ok(AdminUser {
            name: name.to_string(),
            role,
            password_hash: hash.to_string(),
            created_at: crate::journal::rfc3339(now_ms),
        })
    }

    /// Whether `password` is this user's (in constant time, by the PHC string's own parameters).
    pub fn verify(&self, password: &str) -> bool {
        use argon2::password_hash::PasswordVerifier as _;
        let Ok(parsed) = argon2::password_hash::phc::PasswordHash::new(&self.password_hash) else { return false };
        argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
    }
}

/// A web UI session: who logged in, with what role, until when, and the CSRF token its forms carry. The cookie
/// holds a random id; only its SHA-256 ([`AdminToken::hash_of`]) is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSession {
    /// SHA-256 of the cookie's id, hex.
    pub hash: String,
    /// `user:<name>` or `token:<name>`.
    pub principal: String,
    /// What it may do.
    pub role: Role,
    /// The token every form of the session carries.
    pub csrf: String,
    /// When it ends (Unix milliseconds).
    pub expires_ms: i64,
}

/// Which devices a page of [`Store::devices_page`] holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    /// Only this model.
    pub model: Option<String>,
    /// Only this group.
    pub group: Option<String>,
    /// Only devices whose MAC, serial or description contains this text (case-insensitive; a MAC may be given with
    /// `:`, `-` or `.`).
    pub search: Option<String>,
}

impl DeviceFilter {
    /// The LIKE patterns of `search` (`ESCAPE '\'`): for the MAC (separators removed, lower case) and for the serial
    /// and description (lower case).
    pub fn like_patterns(&self) -> Option<(String, String)> {
        let text = self.search.as_deref().map(str::trim).filter(|s| !s.is_empty())?.to_lowercase();
        let escape = |t: &str| t.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let mac: String = text.chars().filter(|c| !matches!(c, ':' | '-' | '.')).collect();
        Some((format!("%{}%", escape(&mac)), format!("%{}%", escape(&text))))
    }

    /// Whether `d` passes the filter (the memory store's version of the SQL).
    pub fn matches(&self, d: &Device) -> bool {
        let text = self.search.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_lowercase);
        self.model.as_ref().is_none_or(|m| &d.model == m)
            && (self.group.is_none() || d.group == self.group)
            && text.is_none_or(|t| {
                let mac: String = t.chars().filter(|c| !matches!(c, ':' | '-' | '.')).collect();
                d.mac.as_str().contains(&mac)
                    || d.serial.to_lowercase().contains(&t)
                    || d.description.to_lowercase().contains(&t)
            })
    }
}

/// A group of devices sharing parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Group {
    /// Its name (`defaults` and `model:<model>` are applied to every device, resp. every device of that model).
    pub name: String,
    /// The group it inherits from.
    pub parent: Option<String>,
    /// Free text.
    pub description: String,
    /// Its parameters.
    pub params: BTreeMap<String, String>,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the schema failed.
    #[error("database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A device with that MAC already exists.
    #[error("device {0} already exists")]
    DeviceExists(Mac),
    /// No such device.
    #[error("no device {0}")]
    NoDevice(Mac),
    /// A group with that name already exists.
    #[error("group {0:?} already exists")]
    GroupExists(String),
    /// An admin token of that name exists.
    #[error("a token named {0:?} already exists")]
    TokenExists(String),
    /// A web UI user of that name exists.
    #[error("a user named {0:?} already exists")]
    UserExists(String),
    /// No such group.
    #[error("no group {0:?}")]
    NoGroup(String),
    /// The group is still used by devices or other groups.
    #[error("group {0:?} is still used by {1}")]
    GroupInUse(String, String),
    /// A group would inherit from itself.
    #[error("group {0:?} would inherit from itself")]
    GroupCycle(String),
    /// The random number generator failed.
    #[error("random number generator: {0}")]
    Random(String),
    /// A stored row is not one this server wrote (a MAC that is not 12 hex digits).
    #[error("stored row: {0}")]
    Corrupt(String),
    /// The site master key file cannot be used.
    #[error("secrets key: {0}")]
    SecretsKey(String),
    /// A sealed secret does not open.
    #[error("secret {context}: {why}")]
    Sealed {
        /// Where it is stored.
        context: String,
        /// Why it does not open.
        why: String,
    },
    /// The inventory's secrets are sealed and no key was given.
    #[error(
        "the inventory's secrets are encrypted (key check {0}), but no master key was given: set [inventory] \
         secrets_key_file in the configuration"
    )]
    Locked(String),
    /// The key given is not the one the inventory's secrets are sealed with.
    #[error(
        "the master key given (check {given}) is not the one the inventory's secrets are sealed with (check \
         {stored}): is secrets_key_file the right file?"
    )]
    WrongKey {
        /// The check value of the key given.
        given: String,
        /// The check value the inventory records.
        stored: String,
    },
}

impl StoreError {
    /// Whether the database could not be reached (down, restarting, every connection busy): worth a retry, unlike
    /// an error in what was asked.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_)
            )
        ) || matches!(self, StoreError::Database(sqlx::Error::Database(e))
            if e.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08")))
    }
}

/// Where devices and groups are kept.
pub trait Store: Send + Sync {
    /// Adds a device; fails if its MAC exists.
    fn add_device(&self, device: &Device) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Replaces a device's fields and parameters.
    fn update_device(&self, device: &Device) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds `add` and replaces `update` (fields, parameters and secrets) in one transaction: all or none.
    fn apply_import(
        &self,
        add: &[Device],
        update: &[Device],
        progress: &(dyn Fn(usize) + Sync),
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds many devices in one transaction: all or none.
    fn import_devices(
        &self,
        devices: &[Device],
        progress: &(dyn Fn(usize) + Sync),
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.apply_import(devices, &[], progress)
    }
    /// A device by MAC.
    fn device(&self, mac: &Mac) -> impl Future<Output = Result<Option<Device>, StoreError>> + Send;
    /// Every device, by MAC.
    fn devices(&self) -> impl Future<Output = Result<Vec<Device>, StoreError>> + Send;
    /// Removes a device; `false` if there was none.
    fn remove_device(&self, mac: &Mac) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Adds or replaces a group.
    fn put_group(&self, group: &Group) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A group by name.
    fn group(&self, name: &str) -> impl Future<Output = Result<Option<Group>, StoreError>> + Send;
    /// Every group, by name.
    fn groups(&self) -> impl Future<Output = Result<Vec<Group>, StoreError>> + Send;
    /// Removes an unused group; `false` if there was none.
    fn remove_group(&self, name: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The device whose current (`false`) or previous (`true`) secrets have this random path.
    fn device_by_path_token(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<Option<(Device, bool)>, StoreError>> + Send;
    /// Drops a device's previous secrets once the phone has resynced with the current ones.
    fn forget_previous_secrets(&self, mac: &Mac) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Arms a device (`identity = "mac"`): its next fetch that names it gets its secrets, once. New devices are armed.
    fn arm(&self, mac: &Mac) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Disarms a device if it was armed, atomically: `true` for exactly one caller (the one that may serve its secrets).
    fn take_armed(&self, mac: &Mac) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Whether a device is armed.
    fn is_armed(&self, mac: &Mac) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Sets (or, with `None`, removes) the certificate (DER) an enterprise device's config is encrypted to.
    fn set_phone_certificate(
        &self,
        mac: &Mac,
        der: Option<&[u8]>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The certificate (DER) an enterprise device's config is encrypted to, if it has one.
    fn phone_certificate(&self, mac: &Mac) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;
    /// A number that changes whenever a device, a group or a parameter changes (for cache invalidation).
    fn revision(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// Up to `limit` devices with a MAC after `after`, by MAC, that match `filter` (cursor pagination).
    fn devices_page(
        &self,
        after: Option<&Mac>,
        limit: u32,
        filter: &DeviceFilter,
    ) -> impl Future<Output = Result<Vec<Device>, StoreError>> + Send;
    /// Adds an admin API token; [`StoreError::TokenExists`] if the name is taken.
    fn add_token(&self, token: &AdminToken) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The token whose SHA-256 (hex) this is.
    fn token_by_hash(&self, hash: &str) -> impl Future<Output = Result<Option<AdminToken>, StoreError>> + Send;
    /// Every token, by name.
    fn tokens(&self) -> impl Future<Output = Result<Vec<AdminToken>, StoreError>> + Send;
    /// Removes a token; `false` if there was none.
    fn remove_token(&self, name: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Adds a web UI user; [`StoreError::UserExists`] if the name is taken.
    fn add_user(&self, user: &AdminUser) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A user by name.
    fn user(&self, name: &str) -> impl Future<Output = Result<Option<AdminUser>, StoreError>> + Send;
    /// Every user, by name.
    fn users(&self) -> impl Future<Output = Result<Vec<AdminUser>, StoreError>> + Send;
    /// Removes a user and ends their sessions; `false` if there was none.
    fn remove_user(&self, name: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Adds a session (and forgets the sessions that ended before `now_ms`).
    fn add_session(&self, session: &AdminSession, now_ms: i64) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The session whose id has this SHA-256, if it has not ended at `now_ms`.
    fn session(&self, hash: &str, now_ms: i64)
    -> impl Future<Output = Result<Option<AdminSession>, StoreError>> + Send;
    /// Ends a session.
    fn remove_session(&self, hash: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// How many devices there are of each model, by model.
    fn model_counts(&self) -> impl Future<Output = Result<Vec<(String, i64)>, StoreError>> + Send;
}

/// The parameters that apply to `device`, layered as the module documentation describes.
pub async fn effective_parameters(store: &impl Store, device: &Device) -> Result<BTreeMap<String, String>, StoreError> {
    let mut out = inherited_parameters(store, device.group.as_deref(), &device.model).await?;
    out.extend(device.params.clone());
    Ok(out)
}

/// What a device in `group` (or none) of `model` inherits, before its own parameters: the `defaults` group, then
/// `model:<model>`, then its group's ancestors from the root down. Devices that share a group and a model share
/// this, so a rendering can reuse it ([`crate::render::Inherited`]).
pub async fn inherited_parameters(
    store: &impl Store,
    group: Option<&str>,
    model: &str,
) -> Result<BTreeMap<String, String>, StoreError> {
    let mut out = BTreeMap::new();
    for (_, layer) in parameter_layers(store, group, model).await? {
        out.extend(layer);
    }
    Ok(out)
}

/// The groups `group` inherits from, nearest first (its parent, that one's parent, ...), up to a missing group or a
/// loop (which [`Store::put_group`] refuses, but a database edited by hand may hold).
pub async fn ancestors(store: &impl Store, group: &Group) -> Result<Vec<Group>, StoreError> {
    let mut out: Vec<Group> = Vec::new();
    let mut next = group.parent.clone();
    while let Some(name) = next {
        if name == group.name || out.iter().any(|g| g.name == name) {
            break;
        }
        let Some(parent) = store.group(&name).await? else { break };
        next = parent.parent.clone();
        out.push(parent);
    }
    Ok(out)
}

/// The groups a device in `group` (or none) of `model` inherits from, each with its parameters, in the order they
/// apply (a later one wins): `defaults`, `model:<model>` (each if it exists), then `group`'s ancestors from the
/// root down to `group` itself. [`StoreError::NoGroup`] for a missing group in the chain, [`StoreError::GroupCycle`]
/// for a loop.
pub async fn parameter_layers(
    store: &impl Store,
    group: Option<&str>,
    model: &str,
) -> Result<Vec<(String, BTreeMap<String, String>)>, StoreError> {
    let mut chain: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    let mut next = group.map(str::to_string);
    while let Some(name) = next {
        if chain.iter().any(|(n, _)| *n == name) {
            return Err(StoreError::GroupCycle(name));
        }
        let group = store.group(&name).await?.ok_or_else(|| StoreError::NoGroup(name.clone()))?;
        next = group.parent.clone();
        chain.push((name, group.params));
    }
    chain.reverse();
    let mut layers = Vec::with_capacity(chain.len() + 2);
    for name in ["defaults".to_string(), format!("model:{model}")] {
        if !chain.iter().any(|(n, _)| *n == name)
            && let Some(g) = store.group(&name).await?
        {
            layers.push((name, g.params));
        }
    }
    layers.extend(chain);
    Ok(layers)
}

/// Creates `dir` if needed and makes it 0700.
pub fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Creates `path` (empty) if it does not exist, and makes it 0600.
pub fn make_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// The store `provisor serve` runs on, chosen by the configuration: SQLite in the data directory, PostgreSQL
/// (`[inventory] url`), or memory (`--data-dir :memory:`).
#[derive(Clone)]
pub enum AnyStore {
    /// [`SqliteStore`].
    Sqlite(SqliteStore),
    /// [`PostgresStore`].
    Postgres(PostgresStore),
    /// [`MemoryStore`].
    Memory(std::sync::Arc<MemoryStore>),
}

/// Forwards a [`Store`] method to the store in use.
macro_rules! forward {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call.await,
            AnyStore::Postgres($s) => $call.await,
            AnyStore::Memory($s) => $call.await,
        }
    };
}

impl Store for AnyStore {
    async fn add_device(&self, device: &Device) -> Result<(), StoreError> {
        forward!(self, s => s.add_device(device))
    }
    async fn update_device(&self, device: &Device) -> Result<(), StoreError> {
        forward!(self, s => s.update_device(device))
    }
    async fn apply_import(
        &self,
        add: &[Device],
        update: &[Device],
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<(), StoreError> {
        forward!(self, s => s.apply_import(add, update, progress))
    }
    async fn device(&self, mac: &Mac) -> Result<Option<Device>, StoreError> {
        forward!(self, s => s.device(mac))
    }
    async fn devices(&self) -> Result<Vec<Device>, StoreError> {
        forward!(self, s => s.devices())
    }
    async fn remove_device(&self, mac: &Mac) -> Result<bool, StoreError> {
        forward!(self, s => s.remove_device(mac))
    }
    async fn put_group(&self, group: &Group) -> Result<(), StoreError> {
        forward!(self, s => s.put_group(group))
    }
    async fn group(&self, name: &str) -> Result<Option<Group>, StoreError> {
        forward!(self, s => s.group(name))
    }
    async fn groups(&self) -> Result<Vec<Group>, StoreError> {
        forward!(self, s => s.groups())
    }
    async fn remove_group(&self, name: &str) -> Result<bool, StoreError> {
        forward!(self, s => s.remove_group(name))
    }
    async fn device_by_path_token(&self, token: &str) -> Result<Option<(Device, bool)>, StoreError> {
        forward!(self, s => s.device_by_path_token(token))
    }
    async fn forget_previous_secrets(&self, mac: &Mac) -> Result<(), StoreError> {
        forward!(self, s => s.forget_previous_secrets(mac))
    }
    async fn arm(&self, mac: &Mac) -> Result<(), StoreError> {
        forward!(self, s => s.arm(mac))
    }
    async fn take_armed(&self, mac: &Mac) -> Result<bool, StoreError> {
        forward!(self, s => s.take_armed(mac))
    }
    async fn is_armed(&self, mac: &Mac) -> Result<bool, StoreError> {
        forward!(self, s => s.is_armed(mac))
    }
    async fn set_phone_certificate(&self, mac: &Mac, der: Option<&[u8]>) -> Result<(), StoreError> {
        forward!(self, s => s.set_phone_certificate(mac, der))
    }
    async fn phone_certificate(&self, mac: &Mac) -> Result<Option<Vec<u8>>, StoreError> {
        forward!(self, s => s.phone_certificate(mac))
    }
    async fn revision(&self) -> Result<i64, StoreError> {
        forward!(self, s => s.revision())
    }
    async fn devices_page(
        &self,
        after: Option<&Mac>,
        limit: u32,
        filter: &DeviceFilter,
    ) -> Result<Vec<Device>, StoreError> {
        forward!(self, s => s.devices_page(after, limit, filter))
    }
    async fn add_token(&self, token: &AdminToken) -> Result<(), StoreError> {
        forward!(self, s => s.add_token(token))
    }
    async fn token_by_hash(&self, hash: &str) -> Result<Option<AdminToken>, StoreError> {
        forward!(self, s => s.token_by_hash(hash))
    }
    async fn tokens(&self) -> Result<Vec<AdminToken>, StoreError> {
        forward!(self, s => s.tokens())
    }
    async fn remove_token(&self, name: &str) -> Result<bool, StoreError> {
        forward!(self, s => s.remove_token(name))
    }

    async fn add_user(&self, user: &AdminUser) -> Result<(), StoreError> {
        forward!(self, s => s.add_user(user))
    }

    async fn user(&self, name: &str) -> Result<Option<AdminUser>, StoreError> {
        forward!(self, s => s.user(name))
    }

    async fn users(&self) -> Result<Vec<AdminUser>, StoreError> {
        forward!(self, s => s.users())
    }

    async fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        forward!(self, s => s.remove_user(name))
    }

    async fn add_session(&self, session: &AdminSession, now_ms: i64) -> Result<(), StoreError> {
        forward!(self, s => s.add_session(session, now_ms))
    }

    async fn session(&self, hash: &str, now_ms: i64) -> Result<Option<AdminSession>, StoreError> {
        forward!(self, s => s.session(hash, now_ms))
    }

    async fn remove_session(&self, hash: &str) -> Result<(), StoreError> {
        forward!(self, s => s.remove_session(hash))
    }

    async fn model_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        forward!(self, s => s.model_counts())
    }
}
