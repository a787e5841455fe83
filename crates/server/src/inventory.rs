//! The inventory: devices and groups with their parameters, behind the [`Store`] trait, with an embedded SQLite
//! implementation ([`SqliteStore`]; WAL journal, migrations in `migrations/`). A PostgreSQL store for several nodes
//! can implement the same trait without touching the rest.
//!
//! Parameters are layered (Cisco "Provisioning Formats", *Parameter Properties*: the last value wins): the group
//! `defaults`, then the group `model:<model>`, then the device's group and its ancestors (outermost first), then the
//! device's own parameters.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::str::FromStr;

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, Transaction};

/// A MAC address, stored as 12 lower-case hex digits (the phones' `$MA`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Mac(String);

impl Mac {
    /// The 12 lower-case hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `000000000000`, for a device record being filled in.
    pub fn placeholder() -> Mac {
        Mac("000000000000".into())
    }

    /// Upper case (`$MAU`, `SEP<MAC>`).
    pub fn upper(&self) -> String {
        self.0.to_ascii_uppercase()
    }
}

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Mac {
    type Err = String;

    /// Accepts `00:0e:08:aa:bb:cc`, `00-0E-08-AA-BB-CC`, `000e.08aa.bbcc`, `000E08AABBCC` and `SEP000E08AABBCC`.
    fn from_str(s: &str) -> Result<Mac, String> {
        let t = s.trim();
        let t = t.strip_prefix("SEP").or_else(|| t.strip_prefix("sep")).unwrap_or(t);
        let hex: String = t.chars().filter(|c| !matches!(c, ':' | '-' | '.')).collect();
        if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{s:?} is not a MAC address (expected 12 hex digits, e.g. 00:0e:08:aa:bb:cc)"));
        }
        Ok(Mac(hex.to_ascii_lowercase()))
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    pub secrets: Secrets,
}

impl Device {
    /// Whether the device runs enterprise (CUCM) firmware, by its model: anything but a Multiplatform model (`-3PCC`,
    /// `MPP`, the SPA and ATA lines) or no model. Only enterprise devices are served `SEP<MAC>.cnf.xml`.
    pub fn is_enterprise(&self) -> bool {
        let m = self.model.to_ascii_uppercase();
        !(m.trim().is_empty()
            || m.contains("3PCC")
            || m.contains("MPP")
            || m.starts_with("SPA")
            || m.starts_with("ATA"))
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

/// A group of devices sharing parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
}

/// Where devices and groups are kept.
pub trait Store: Send + Sync {
    /// Adds a device; fails if its MAC exists.
    fn add_device(&self, device: &Device) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds many devices in one transaction: all or none.
    fn import_devices(
        &self,
        devices: &[Device],
        progress: &(dyn Fn(usize) + Sync),
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Replaces a device's fields and parameters.
    fn update_device(&self, device: &Device) -> impl Future<Output = Result<(), StoreError>> + Send;
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
    /// A number that changes whenever a device, a group or a parameter changes (for cache invalidation).
    fn revision(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;
}

/// The parameters that apply to `device`, layered as the module documentation describes.
pub async fn effective_parameters(store: &impl Store, device: &Device) -> Result<BTreeMap<String, String>, StoreError> {
    let mut layers: Vec<BTreeMap<String, String>> = Vec::new();
    let mut chain = Vec::new();
    let mut next = device.group.clone();
    while let Some(name) = next {
        if chain.contains(&name) {
            return Err(StoreError::GroupCycle(name));
        }
        let group = store.group(&name).await?.ok_or_else(|| StoreError::NoGroup(name.clone()))?;
        next = group.parent.clone();
        chain.push(name);
        layers.push(group.params);
    }
    layers.reverse();
    let mut base = Vec::new();
    for name in ["defaults".to_string(), format!("model:{}", device.model)] {
        if !chain.contains(&name)
            && let Some(g) = store.group(&name).await?
        {
            base.push(g.params);
        }
    }
    let mut out = BTreeMap::new();
    for layer in base.into_iter().chain(layers).chain(std::iter::once(device.params.clone())) {
        out.extend(layer);
    }
    Ok(out)
}

/// The embedded store: one SQLite file in the data directory.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Binds a device's fields and secrets in the column order both `INSERT` and `UPDATE` use: model, serial,
/// description, group, key, digest, IKM, path, and the three previous secrets.
fn bind_fields<'q>(
    q: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>,
    d: &'q Device,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments> {
    q.bind(&d.model)
        .bind(&d.serial)
        .bind(&d.description)
        .bind(&d.group)
        .bind(&d.secrets.aes_key)
        .bind(&d.secrets.aes_digest)
        .bind(&d.secrets.ikm)
        .bind(&d.secrets.path_token)
        .bind(d.secrets.previous.as_ref().map(|p| &p.aes_key))
        .bind(d.secrets.previous.as_ref().map(|p| &p.ikm))
        .bind(d.secrets.previous.as_ref().map(|p| &p.path_token))
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

impl SqliteStore {
    /// Opens (creating if needed) `inventory.sqlite` in `dir`, and brings its schema up to date.
    ///
    /// The inventory holds every line password, AES key and IKM: the directory is made private (0700) and the
    /// database with its WAL and shared-memory files 0600 (SQLite gives its WAL and SHM files the database's mode).
    pub async fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        let io = |e| StoreError::Database(sqlx::Error::Io(e));
        make_private_dir(dir).map_err(io)?;
        let db = dir.join("inventory.sqlite");
        make_private_file(&db).map_err(io)?;
        for side in ["inventory.sqlite-wal", "inventory.sqlite-shm"] {
            let path = dir.join(side);
            if path.exists() {
                make_private_file(&path).map_err(io)?;
            }
        }
        let options = SqliteConnectOptions::new()
            .filename(dir.join("inventory.sqlite"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    async fn insert_device(tx: &mut Transaction<'_, Sqlite>, d: &Device) -> Result<(), StoreError> {
        let t = now();
        let q = sqlx::query(
            "INSERT INTO devices (mac, model, serial, description, group_name, aes_key, aes_digest, ikm, path_token, \
             prev_aes_key, prev_ikm, prev_path_token, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(d.mac.as_str());
        let r = bind_fields(q, d).bind(t).bind(t).execute(&mut **tx).await;
        match r {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::DeviceExists(d.mac.clone()));
            }
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                return Err(StoreError::NoGroup(d.group.clone().unwrap_or_default()));
            }
            r => {
                r?;
            }
        }
        Self::insert_params(tx, d).await
    }

    async fn insert_params(tx: &mut Transaction<'_, Sqlite>, d: &Device) -> Result<(), StoreError> {
        for (name, value) in &d.params {
            sqlx::query("INSERT INTO device_params (mac, name, value) VALUES (?, ?, ?)")
                .bind(d.mac.as_str())
                .bind(name)
                .bind(value)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn params(&self, sql: &'static str, key: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let rows = sqlx::query(sql).bind(key).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| (r.get::<String, _>("name"), r.get::<String, _>("value"))).collect())
    }

    fn device_from(r: &sqlx::sqlite::SqliteRow) -> Device {
        Device {
            mac: Mac(r.get("mac")),
            model: r.get("model"),
            serial: r.get("serial"),
            description: r.get("description"),
            group: r.get("group_name"),
            params: BTreeMap::new(),
            secrets: Secrets {
                aes_key: r.get("aes_key"),
                aes_digest: r.get("aes_digest"),
                ikm: r.get("ikm"),
                path_token: r.get("path_token"),
                previous: match (r.get("prev_aes_key"), r.get("prev_ikm"), r.get("prev_path_token")) {
                    (Some(aes_key), Some(ikm), Some(path_token)) => Some(PreviousSecrets { aes_key, ikm, path_token }),
                    _ => None,
                },
            },
        }
    }
}

macro_rules! device_columns {
    () => {
        "mac, model, serial, description, group_name, aes_key, aes_digest, ikm, path_token, prev_aes_key, prev_ikm, \
         prev_path_token"
    };
}

impl Store for SqliteStore {
    async fn add_device(&self, device: &Device) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        Self::insert_device(&mut tx, device).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn import_devices(&self, devices: &[Device], progress: &(dyn Fn(usize) + Sync)) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (i, d) in devices.iter().enumerate() {
            Self::insert_device(&mut tx, d).await?;
            if i % 100 == 99 {
                progress(i + 1);
            }
        }
        tx.commit().await?;
        progress(devices.len());
        Ok(())
    }

    async fn update_device(&self, d: &Device) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let q = sqlx::query(
            "UPDATE devices SET model = ?, serial = ?, description = ?, group_name = ?, aes_key = ?, aes_digest = ?, \
             ikm = ?, path_token = ?, prev_aes_key = ?, prev_ikm = ?, prev_path_token = ?, updated_at = ? \
             WHERE mac = ?",
        );
        let r = bind_fields(q, d).bind(now()).bind(d.mac.as_str()).execute(&mut *tx).await;
        let r = match r {
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                return Err(StoreError::NoGroup(d.group.clone().unwrap_or_default()));
            }
            r => r?,
        };
        if r.rows_affected() == 0 {
            return Err(StoreError::NoDevice(d.mac.clone()));
        }
        sqlx::query("DELETE FROM device_params WHERE mac = ?").bind(d.mac.as_str()).execute(&mut *tx).await?;
        Self::insert_params(&mut tx, d).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn device(&self, mac: &Mac) -> Result<Option<Device>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", device_columns!(), " FROM devices WHERE mac = ?"))
            .bind(mac.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut d = Self::device_from(&row);
        d.params = self.params("SELECT name, value FROM device_params WHERE mac = ?", mac.as_str()).await?;
        Ok(Some(d))
    }

    async fn devices(&self) -> Result<Vec<Device>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", device_columns!(), " FROM devices ORDER BY mac"))
            .fetch_all(&self.pool)
            .await?;
        let mut devices: Vec<Device> = rows.iter().map(Self::device_from).collect();
        let params =
            sqlx::query("SELECT mac, name, value FROM device_params ORDER BY mac").fetch_all(&self.pool).await?;
        let mut by_mac: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for r in &params {
            by_mac.entry(r.get("mac")).or_default().insert(r.get("name"), r.get("value"));
        }
        for d in &mut devices {
            d.params = by_mac.remove(d.mac.as_str()).unwrap_or_default();
        }
        Ok(devices)
    }

    async fn remove_device(&self, mac: &Mac) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM devices WHERE mac = ?").bind(mac.as_str()).execute(&self.pool).await?;
        Ok(r.rows_affected() > 0)
    }

    async fn put_group(&self, g: &Group) -> Result<(), StoreError> {
        // Refuse a parent chain that leads back to this group.
        let mut next = g.parent.clone();
        while let Some(p) = next {
            if p == g.name {
                return Err(StoreError::GroupCycle(g.name.clone()));
            }
            next = self.group(&p).await?.ok_or_else(|| StoreError::NoGroup(p.clone()))?.parent;
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO groups (name, parent, description) VALUES (?, ?, ?) \
             ON CONFLICT(name) DO UPDATE SET parent = excluded.parent, description = excluded.description",
        )
        .bind(&g.name)
        .bind(&g.parent)
        .bind(&g.description)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM group_params WHERE group_name = ?").bind(&g.name).execute(&mut *tx).await?;
        for (name, value) in &g.params {
            sqlx::query("INSERT INTO group_params (group_name, name, value) VALUES (?, ?, ?)")
                .bind(&g.name)
                .bind(name)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn group(&self, name: &str) -> Result<Option<Group>, StoreError> {
        let row = sqlx::query("SELECT name, parent, description FROM groups WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let params = self.params("SELECT name, value FROM group_params WHERE group_name = ?", name).await?;
        Ok(Some(Group {
            name: row.get("name"),
            parent: row.get("parent"),
            description: row.get("description"),
            params,
        }))
    }

    async fn groups(&self) -> Result<Vec<Group>, StoreError> {
        let names: Vec<String> = sqlx::query("SELECT name FROM groups ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.get("name"))
            .collect();
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            if let Some(g) = self.group(&n).await? {
                out.push(g);
            }
        }
        Ok(out)
    }

    async fn device_by_path_token(&self, token: &str) -> Result<Option<(Device, bool)>, StoreError> {
        if token.is_empty() {
            return Ok(None);
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            device_columns!(),
            " FROM devices WHERE path_token = ?1 OR prev_path_token = ?1 LIMIT 1"
        ))
        .bind(token)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut d = Self::device_from(&row);
        d.params = self.params("SELECT name, value FROM device_params WHERE mac = ?", d.mac.as_str()).await?;
        let previous = d.secrets.path_token != token;
        Ok(Some((d, previous)))
    }

    async fn forget_previous_secrets(&self, mac: &Mac) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE devices SET prev_aes_key = NULL, prev_ikm = NULL, prev_path_token = NULL \
             WHERE mac = ? AND prev_path_token IS NOT NULL",
        )
        .bind(mac.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn revision(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT value FROM revision WHERE id = 1").fetch_one(&self.pool).await?.get("value"))
    }

    async fn remove_group(&self, name: &str) -> Result<bool, StoreError> {
        let used: i64 = sqlx::query("SELECT COUNT(*) AS n FROM devices WHERE group_name = ?")
            .bind(name)
            .fetch_one(&self.pool)
            .await?
            .get("n");
        if used > 0 {
            return Err(StoreError::GroupInUse(name.into(), format!("{used} device(s)")));
        }
        let children: i64 = sqlx::query("SELECT COUNT(*) AS n FROM groups WHERE parent = ?")
            .bind(name)
            .fetch_one(&self.pool)
            .await?
            .get("n");
        if children > 0 {
            return Err(StoreError::GroupInUse(name.into(), format!("{children} group(s)")));
        }
        let r = sqlx::query("DELETE FROM groups WHERE name = ?").bind(name).execute(&self.pool).await?;
        Ok(r.rows_affected() > 0)
    }
}
