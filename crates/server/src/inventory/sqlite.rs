//! The embedded inventory: one SQLite file in the data directory (WAL journal, migrations in `migrations/`).

use std::collections::BTreeMap;
use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, Transaction};

use super::at_rest::{AtRest, StoredSecrets, device_owner, group_owner};
use super::{Device, Group, Mac, Store, StoreError};

/// The embedded store: one SQLite file in the data directory.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    at_rest: AtRest,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Binds a device's fields and secrets in the column order both `INSERT` and `UPDATE` use: model, serial,
/// description, group, key, digest, IKM, path, and the three previous secrets.
fn bind_fields<'q>(
    q: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>,
    d: &'q Device,
    sealed: StoredSecrets,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments> {
    q.bind(&d.model)
        .bind(&d.serial)
        .bind(&d.description)
        .bind(&d.group)
        .bind(sealed.aes_key)
        .bind(&d.secrets.aes_digest)
        .bind(sealed.ikm)
        .bind(&d.secrets.path_token)
        .bind(sealed.prev_aes_key)
        .bind(sealed.prev_ikm)
        .bind(d.secrets.previous.as_ref().map(|p| &p.path_token))
}

impl SqliteStore {
    /// The connection pool (the journal writes through it; tests read tables directly).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Opens (creating if needed) `inventory.sqlite` in `dir`, and brings its schema up to date; secrets in clear
    /// (an inventory whose secrets are sealed refuses: [`SqliteStore::open_with`] takes the key).
    pub async fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(dir, AtRest::clear()).await
    }

    /// Opens (creating if needed) `inventory.sqlite` in `dir`, brings its schema up to date, and checks that
    /// `at_rest` is how its secrets are kept; an inventory in clear given a key is sealed now, in one transaction.
    ///
    /// The inventory holds every line password, AES key and IKM: the directory is made private (0700) and the
    /// database with its WAL and shared-memory files 0600 (SQLite gives its WAL and SHM files the database's mode).
    pub async fn open_with(dir: &Path, at_rest: AtRest) -> Result<SqliteStore, StoreError> {
        let io = |e| StoreError::Database(sqlx::Error::Io(e));
        super::make_private_dir(dir).map_err(io)?;
        let db = dir.join("inventory.sqlite");
        super::make_private_file(&db).map_err(io)?;
        for side in ["inventory.sqlite-wal", "inventory.sqlite-shm"] {
            let path = dir.join(side);
            if path.exists() {
                super::make_private_file(&path).map_err(io)?;
            }
        }
        let options = SqliteConnectOptions::new()
            .filename(dir.join("inventory.sqlite"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // Deleted and overwritten content is zeroed: a secret re-sealed or removed leaves no copy in free pages.
            .pragma("secure_delete", "on")
            // 32 MiB of page cache per connection (SQLite's default is 2 MiB): a large import inserts into the random
            // path index all over the file.
            .pragma("cache_size", "-32768")
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let store = SqliteStore { pool, at_rest };
        let stored = store.key_check().await?;
        if store.at_rest.must_seal_existing(stored.as_deref())? {
            store.reseal(&AtRest::clear()).await?;
        }
        Ok(store)
    }

    /// The whole inventory's migrations: (version, description, applied) in order.
    pub async fn migrations(&self) -> Result<Vec<(i64, String, bool)>, StoreError> {
        let applied: Vec<i64> = sqlx::query("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.get("version"))
            .collect();
        Ok(sqlx::migrate!("./migrations/sqlite")
            .iter()
            .map(|m| (m.version, m.description.to_string(), applied.contains(&m.version)))
            .collect())
    }

    /// The check value of the key the secrets are sealed with, if they are.
    pub async fn key_check(&self) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query("SELECT check_value FROM secrets_key WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.get("check_value")))
    }

    /// How this store keeps secrets.
    pub fn at_rest(&self) -> &AtRest {
        &self.at_rest
    }

    /// The same database, read and written with `at_rest` (then [`SqliteStore::reseal`] from the old one: a master key
    /// rotation).
    pub fn rebind(store: SqliteStore, at_rest: AtRest) -> SqliteStore {
        SqliteStore { at_rest, ..store }
    }

    /// Re-seals every secret, in one transaction, from `from` (how they are stored now) to this store's own
    /// [`AtRest`], and records its key check. Used to seal an inventory in clear and to rotate the master key.
    pub async fn reseal(&self, from: &AtRest) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = reseal_all!(tx, from, &self.at_rest);
        tx.commit().await?;
        // The old forms go from the WAL too.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await?;
        Ok(n)
    }

    async fn insert_device(
        self_at_rest: &AtRest,
        tx: &mut Transaction<'_, Sqlite>,
        d: &Device,
    ) -> Result<(), StoreError> {
        let t = now();
        let q = sqlx::query(
            "INSERT INTO devices (mac, model, serial, description, group_name, aes_key, aes_digest, ikm, path_token, \
             prev_aes_key, prev_ikm, prev_path_token, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(d.mac.as_str());
        let sealed = self_at_rest.seal_secrets(d.mac.as_str(), &d.secrets)?;
        let r = bind_fields(q, d, sealed).bind(t).bind(t).execute(&mut **tx).await;
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
        sqlx::query("INSERT INTO armed (mac, since) VALUES (?, ?)")
            .bind(d.mac.as_str())
            .bind(t)
            .execute(&mut **tx)
            .await?;
        Self::insert_params(self_at_rest, tx, d).await
    }

    /// Replaces a device's fields, secrets and parameters inside `tx`.
    async fn replace_device(
        self_at_rest: &AtRest,
        tx: &mut Transaction<'_, Sqlite>,
        d: &Device,
    ) -> Result<(), StoreError> {
        let q = sqlx::query(
            "UPDATE devices SET model = ?, serial = ?, description = ?, group_name = ?, aes_key = ?, aes_digest = ?, \
             ikm = ?, path_token = ?, prev_aes_key = ?, prev_ikm = ?, prev_path_token = ?, updated_at = ? \
             WHERE mac = ?",
        );
        let sealed = self_at_rest.seal_secrets(d.mac.as_str(), &d.secrets)?;
        let r = bind_fields(q, d, sealed).bind(now()).bind(d.mac.as_str()).execute(&mut **tx).await;
        let r = match r {
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                return Err(StoreError::NoGroup(d.group.clone().unwrap_or_default()));
            }
            r => r?,
        };
        if r.rows_affected() == 0 {
            return Err(StoreError::NoDevice(d.mac.clone()));
        }
        sqlx::query("DELETE FROM device_params WHERE mac = ?").bind(d.mac.as_str()).execute(&mut **tx).await?;
        Self::insert_params(self_at_rest, tx, d).await
    }

    async fn insert_params(
        self_at_rest: &AtRest,
        tx: &mut Transaction<'_, Sqlite>,
        d: &Device,
    ) -> Result<(), StoreError> {
        let owner = device_owner(d.mac.as_str());
        for (name, value) in &d.params {
            sqlx::query("INSERT INTO device_params (mac, name, value) VALUES (?, ?, ?)")
                .bind(d.mac.as_str())
                .bind(name)
                .bind(self_at_rest.seal_param(&owner, name, value)?)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// The parameters of `owner` (`device:<mac>` or `group:<name>`), selected by `sql` with `key`.
    async fn params(&self, sql: &'static str, owner: &str, key: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let rows = sqlx::query(sql).bind(key).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let name: String = r.get("name");
                let value = self.at_rest.open_param(owner, &name, r.get::<&str, _>("value"))?;
                Ok((name, value))
            })
            .collect()
    }

    fn device_from(&self, r: &sqlx::sqlite::SqliteRow) -> Result<Device, StoreError> {
        let mac: String = r.get("mac");
        let stored = StoredSecrets {
            aes_key: r.get("aes_key"),
            ikm: r.get("ikm"),
            prev_aes_key: r.get("prev_aes_key"),
            prev_ikm: r.get("prev_ikm"),
        };
        let secrets = self.at_rest.open_secrets(
            &mac,
            stored,
            r.get("aes_digest"),
            r.get("path_token"),
            r.get("prev_path_token"),
        )?;
        Ok(Device {
            mac: Mac::stored(&mac)?,
            model: r.get("model"),
            serial: r.get("serial"),
            description: r.get("description"),
            group: r.get("group_name"),
            params: BTreeMap::new(),
            secrets,
        })
    }
}

macro_rules! device_columns {
    () => {
        "mac, model, serial, description, group_name, aes_key, aes_digest, ikm, path_token, prev_aes_key, prev_ikm, \
         prev_path_token"
    };
}

/// Devices per multi-row `INSERT` of a bulk import: 14 columns × 500 = 7,000 bound values, under SQLite's 32,766.
/// Each statement is a round trip to sqlx's SQLite worker thread; one per device (and one per parameter) made a
/// 1,000,000-device import take 523 s, almost all of it threads waking each other.
const IMPORT_CHUNK: usize = 500;

/// Adds `devices` (fields, secrets, armed, parameters) in `tx`, a chunk per statement.
async fn insert_many(at_rest: &AtRest, tx: &mut Transaction<'_, Sqlite>, devices: &[Device]) -> Result<(), StoreError> {
    let t = now();
    for chunk in devices.chunks(IMPORT_CHUNK) {
        let mut rows = Vec::with_capacity(chunk.len());
        for d in chunk {
            rows.push((d, at_rest.seal_secrets(d.mac.as_str(), &d.secrets)?));
        }
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(concat!(
            "INSERT INTO devices (",
            device_columns!(),
            ", created_at, updated_at) "
        ));
        q.push_values(rows, |mut b, (d, sealed)| {
            b.push_bind(d.mac.to_string())
                .push_bind(d.model.clone())
                .push_bind(d.serial.clone())
                .push_bind(d.description.clone())
                .push_bind(d.group.clone())
                .push_bind(sealed.aes_key)
                .push_bind(d.secrets.aes_digest.clone())
                .push_bind(sealed.ikm)
                .push_bind(d.secrets.path_token.clone())
                .push_bind(sealed.prev_aes_key)
                .push_bind(sealed.prev_ikm)
                .push_bind(d.secrets.previous.as_ref().map(|p| p.path_token.clone()))
                .push_bind(t)
                .push_bind(t);
        });
        match q.build().execute(&mut **tx).await {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::DeviceExists(which_exists(tx, chunk).await?));
            }
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                let mut missing = String::new();
                for g in chunk.iter().filter_map(|d| d.group.as_deref()) {
                    if sqlx::query("SELECT 1 AS one FROM groups WHERE name = ?")
                        .bind(g)
                        .fetch_optional(&mut **tx)
                        .await?
                        .is_none()
                    {
                        missing = g.to_string();
                        break;
                    }
                }
                return Err(StoreError::NoGroup(missing));
            }
            r => {
                r?;
            }
        }
        let mut q = sqlx::QueryBuilder::<Sqlite>::new("INSERT INTO armed (mac, since) ");
        q.push_values(chunk, |mut b, d| {
            b.push_bind(d.mac.to_string()).push_bind(t);
        });
        q.build().execute(&mut **tx).await?;
        let mut params = Vec::new();
        for d in chunk {
            let owner = device_owner(d.mac.as_str());
            for (name, value) in &d.params {
                params.push((d.mac.to_string(), name.clone(), at_rest.seal_param(&owner, name, value)?));
            }
        }
        for part in params.chunks(IMPORT_CHUNK * 4) {
            let mut q = sqlx::QueryBuilder::<Sqlite>::new("INSERT INTO device_params (mac, name, value) ");
            q.push_values(part.iter().cloned(), |mut b, (mac, name, value)| {
                b.push_bind(mac).push_bind(name).push_bind(value);
            });
            q.build().execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// The device of `chunk` a unique violation was about: one already in the inventory, or one named twice in `chunk`.
async fn which_exists(tx: &mut Transaction<'_, Sqlite>, chunk: &[Device]) -> Result<Mac, StoreError> {
    for d in chunk {
        if sqlx::query("SELECT 1 AS one FROM devices WHERE mac = ?")
            .bind(d.mac.as_str())
            .fetch_optional(&mut **tx)
            .await?
            .is_some()
        {
            return Ok(d.mac.clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    Ok(chunk.iter().find(|d| !seen.insert(&d.mac)).map_or_else(Mac::placeholder, |d| d.mac.clone()))
}

admin_token_row!(sqlx::sqlite::SqliteRow);
admin_user_row!(sqlx::sqlite::SqliteRow);

impl Store for SqliteStore {
    async fn add_device(&self, device: &Device) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        Self::insert_device(&self.at_rest, &mut tx, device).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_device(&self, d: &Device) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        Self::replace_device(&self.at_rest, &mut tx, d).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn apply_import(
        &self,
        add: &[Device],
        update: &[Device],
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut done = 0;
        for chunk in add.chunks(IMPORT_CHUNK * 10) {
            insert_many(&self.at_rest, &mut tx, chunk).await?;
            done += chunk.len();
            progress(done);
        }
        for (i, d) in update.iter().enumerate() {
            Self::replace_device(&self.at_rest, &mut tx, d).await?;
            if i % 100 == 99 {
                progress(add.len() + i + 1);
            }
        }
        tx.commit().await?;
        progress(add.len() + update.len());
        Ok(())
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
        let owner = group_owner(&g.name);
        for (name, value) in &g.params {
            sqlx::query("INSERT INTO group_params (group_name, name, value) VALUES (?, ?, ?)")
                .bind(&g.name)
                .bind(name)
                .bind(self.at_rest.seal_param(&owner, name, value)?)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    shared_store_methods!();
}
