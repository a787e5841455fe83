//! The shared inventory: PostgreSQL (`[inventory] url = "postgres://…"` or `PROVISOR_DATABASE_URL`), for several
//! provisioning nodes on one database. The same tables as the embedded store (`migrations/postgres/` is the
//! PostgreSQL dialect of `migrations/sqlite/`), the same [`Store`] contract (the conformance tests run both), and
//! the same sealing of secrets ([`super::at_rest`]).
//!
//! Everything a request decides that another node must agree on is decided in the database, in one statement or
//! one transaction: arming (`DELETE … RETURNING`), enrolment (`INSERT … ON CONFLICT DO NOTHING`), the previous secrets
//! of a rotation (kept in the device row until the phone fetched the new ones, whichever node it asks), and the
//! revision every node's cache follows (statement triggers; each node reads it every 250 ms). Migrations take
//! sqlx's advisory lock, so nodes started together migrate once.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};

use super::at_rest::{AtRest, StoredSecrets, device_owner, group_owner};
use super::{Device, Group, Mac, Store, StoreError};

/// A PostgreSQL inventory.
#[derive(Clone)]
pub struct PostgresStore {
    pub(crate) pool: PgPool,
    at_rest: AtRest,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// An import of at least this many devices refreshes the planner's statistics.
const ANALYZE_AFTER: usize = 1_000;

/// Devices per `COPY` of a bulk import (the progress bar moves once per chunk).
const IMPORT_CHUNK: usize = 5_000;

macro_rules! device_columns {
    () => {
        "mac, model, serial, description, group_name, aes_key, aes_digest, ikm, path_token, prev_aes_key, prev_ikm, \
         prev_path_token"
    };
}

/// How many connections a node opens to the database (per process), and how long a request waits for one before
/// it fails (the phone gets a retryable error, never a wrong profile).
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    /// Connections per node.
    pub max_connections: u32,
    /// How long a request waits for a connection.
    pub acquire_timeout: Duration,
}

impl Default for PoolLimits {
    fn default() -> PoolLimits {
        PoolLimits { max_connections: 16, acquire_timeout: Duration::from_secs(3) }
    }
}

impl PostgresStore {
    /// Connects to `url`, brings the schema up to date (under sqlx's advisory lock: nodes started together migrate
    /// once) and checks that `at_rest` is how the secrets are kept; an inventory in clear given a key is sealed now.
    pub async fn connect(url: &str, at_rest: AtRest, limits: PoolLimits) -> Result<PostgresStore, StoreError> {
        let store = PostgresStore::connect_unmigrated(url, at_rest, limits).await?;
        sqlx::migrate!("./migrations/postgres").run(&store.pool).await?;
        let stored = store.key_check().await?;
        if store.at_rest.must_seal_existing(stored.as_deref())? {
            store.reseal(&AtRest::clear()).await?;
        }
        Ok(store)
    }

    /// Connects without touching the schema (`provisor db status`).
    pub async fn connect_unmigrated(
        url: &str,
        at_rest: AtRest,
        limits: PoolLimits,
    ) -> Result<PostgresStore, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("provisor");
        let pool = PgPoolOptions::new()
            .max_connections(limits.max_connections)
            .min_connections(1)
            .acquire_timeout(limits.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(PostgresStore { pool, at_rest })
    }

    /// The migrations: (version, description, applied) in order.
    pub async fn migrations(&self) -> Result<Vec<(i64, String, bool)>, StoreError> {
        let exists: bool = sqlx::query("SELECT to_regclass('_sqlx_migrations') IS NOT NULL AS e")
            .fetch_one(&self.pool)
            .await?
            .get("e");
        let applied: Vec<i64> = if exists {
            sqlx::query("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.get("version"))
                .collect()
        } else {
            Vec::new()
        };
        Ok(sqlx::migrate!("./migrations/postgres")
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

    /// The same database, read and written with `at_rest` (then [`PostgresStore::reseal`] from the old one: a master key
    /// rotation).
    pub fn rebind(store: PostgresStore, at_rest: AtRest) -> PostgresStore {
        PostgresStore { at_rest, ..store }
    }

    /// The connection pool (the journal writes through it).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Re-seals every secret, in one transaction, from `from` to this store's own [`AtRest`], and records its key
    /// check (see [`super::SqliteStore::reseal`]).
    pub async fn reseal(&self, from: &AtRest) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Another node must not write a secret under the old key while this runs.
        sqlx::query("LOCK TABLE devices, device_params, group_params IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let n = reseal_all!(tx, from, &self.at_rest);
        tx.commit().await?;
        Ok(n)
    }

    /// Adds `devices` (fields, secrets, parameters, armed) in `tx` through `COPY … FROM STDIN` (CSV): one device or
    /// a bulk import's chunk. A MAC that exists fails the whole COPY (and with it an import) as `DeviceExists`.
    async fn copy_devices(&self, tx: &mut Transaction<'_, Postgres>, devices: &[Device]) -> Result<(), StoreError> {
        let t = now().to_string();
        let (mut rows, mut params, mut armed) = (Vec::new(), Vec::new(), Vec::new());
        for d in devices {
            let sealed = self.at_rest.seal_secrets(d.mac.as_str(), &d.secrets)?;
            csv_row(
                &mut rows,
                &[
                    Some(d.mac.as_str()),
                    Some(&d.model),
                    Some(&d.serial),
                    Some(&d.description),
                    d.group.as_deref(),
                    Some(&sealed.aes_key),
                    Some(&d.secrets.aes_digest),
                    Some(&sealed.ikm),
                    Some(&d.secrets.path_token),
                    sealed.prev_aes_key.as_deref(),
                    sealed.prev_ikm.as_deref(),
                    d.secrets.previous.as_ref().map(|p| p.path_token.as_str()),
                    Some(&t),
                    Some(&t),
                ],
            );
            csv_row(&mut armed, &[Some(d.mac.as_str()), Some(&t)]);
            let owner = device_owner(d.mac.as_str());
            for (name, value) in &d.params {
                let stored = self.at_rest.seal_param(&owner, name, value)?;
                csv_row(&mut params, &[Some(d.mac.as_str()), Some(name), Some(&stored)]);
            }
        }
        for (statement, data) in [
            (
                concat!("COPY devices (", device_columns!(), ", created_at, updated_at) FROM STDIN WITH (FORMAT csv)"),
                rows,
            ),
            ("COPY armed (mac, since) FROM STDIN WITH (FORMAT csv)", armed),
            ("COPY device_params (mac, name, value) FROM STDIN WITH (FORMAT csv)", params),
        ] {
            if data.is_empty() {
                continue;
            }
            let mut copy = tx.copy_in_raw(statement).await?;
            let sent = match copy.send(data).await {
                Ok(_) => copy.finish().await,
                Err(e) => Err(e),
            };
            if let Err(sqlx::Error::Database(e)) = &sent {
                if e.is_unique_violation() {
                    return Err(conflict(e.as_ref(), devices));
                }
                if e.is_foreign_key_violation() {
                    let group = devices.iter().filter_map(|d| d.group.clone()).next().unwrap_or_default();
                    return Err(StoreError::NoGroup(missing_group(e.as_ref()).unwrap_or(group)));
                }
            }
            sent?;
        }
        Ok(())
    }

    /// Replaces a device's fields, secrets and parameters in `tx`.
    async fn replace_device(&self, tx: &mut Transaction<'_, Postgres>, d: &Device) -> Result<(), StoreError> {
        let sealed = self.at_rest.seal_secrets(d.mac.as_str(), &d.secrets)?;
        let r = sqlx::query(
            "UPDATE devices SET model = $1, serial = $2, description = $3, group_name = $4, aes_key = $5, \
             aes_digest = $6, ikm = $7, path_token = $8, prev_aes_key = $9, prev_ikm = $10, prev_path_token = $11, \
             updated_at = $12 WHERE mac = $13",
        )
        .bind(&d.model)
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
        .bind(now())
        .bind(d.mac.as_str())
        .execute(&mut **tx)
        .await;
        let r = match r {
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                return Err(StoreError::NoGroup(d.group.clone().unwrap_or_default()));
            }
            r => r?,
        };
        if r.rows_affected() == 0 {
            return Err(StoreError::NoDevice(d.mac.clone()));
        }
        sqlx::query("DELETE FROM device_params WHERE mac = $1").bind(d.mac.as_str()).execute(&mut **tx).await?;
        let owner = device_owner(d.mac.as_str());
        let mut names = Vec::with_capacity(d.params.len());
        let mut values = Vec::with_capacity(d.params.len());
        for (name, value) in &d.params {
            names.push(name.as_str());
            values.push(self.at_rest.seal_param(&owner, name, value)?);
        }
        if !names.is_empty() {
            sqlx::query(
                "INSERT INTO device_params (mac, name, value) SELECT $1, * FROM UNNEST($2::text[], $3::text[])",
            )
            .bind(d.mac.as_str())
            .bind(&names)
            .bind(&values)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

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

    fn device_from(&self, r: &PgRow) -> Result<Device, StoreError> {
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

/// Appends one CSV row for `COPY … (FORMAT csv)`: every value quoted (so an empty text is an empty text), `None`
/// unquoted and empty (NULL).
fn csv_row(out: &mut Vec<u8>, fields: &[Option<&str>]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if let Some(v) = f {
            out.push(b'"');
            for b in v.bytes() {
                if b == b'"' {
                    out.push(b'"');
                }
                out.push(b);
            }
            out.push(b'"');
        }
    }
    out.push(b'\n');
}

/// The device a unique violation names (`Key (mac)=(…) already exists.`), else the first of `devices`.
fn conflict(e: &dyn sqlx::error::DatabaseError, devices: &[Device]) -> StoreError {
    let detail = e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().and_then(|p| p.detail()).unwrap_or("");
    let named = detail.split("=(").nth(1).and_then(|s| s.split(')').next()).and_then(|m| m.parse::<Mac>().ok());
    StoreError::DeviceExists(named.or_else(|| devices.first().map(|d| d.mac.clone())).unwrap_or_else(Mac::placeholder))
}

/// The group a foreign-key violation names (`Key (group_name)=(…) is not present`).
fn missing_group(e: &dyn sqlx::error::DatabaseError) -> Option<String> {
    let detail = e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?.detail()?;
    Some(detail.split("=(").nth(1)?.split(')').next()?.to_string())
}

admin_token_row!(PgRow);
admin_user_row!(PgRow);

impl Store for PostgresStore {
    async fn add_device(&self, device: &Device) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.copy_devices(&mut tx, std::slice::from_ref(device)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_device(&self, d: &Device) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.replace_device(&mut tx, d).await?;
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
        for chunk in add.chunks(IMPORT_CHUNK) {
            self.copy_devices(&mut tx, chunk).await?;
            done += chunk.len();
            progress(done);
        }
        for (i, d) in update.iter().enumerate() {
            self.replace_device(&mut tx, d).await?;
            if i % 100 == 99 {
                progress(add.len() + i + 1);
            }
        }
        tx.commit().await?;
        // Fresh statistics after a bulk change, so lookups plan index scans at once instead of after autovacuum
        // gets to the tables (measured: until then the first fetches of a 1,000,000-device import queued for 40 s).
        if add.len() + update.len() >= ANALYZE_AFTER {
            sqlx::query("ANALYZE devices, device_params, armed").execute(&self.pool).await?;
        }
        progress(add.len() + update.len());
        Ok(())
    }

    async fn put_group(&self, g: &Group) -> Result<(), StoreError> {
        let mut next = g.parent.clone();
        while let Some(p) = next {
            if p == g.name {
                return Err(StoreError::GroupCycle(g.name.clone()));
            }
            next = self.group(&p).await?.ok_or_else(|| StoreError::NoGroup(p.clone()))?.parent;
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO groups (name, parent, description) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET parent = excluded.parent, description = excluded.description",
        )
        .bind(&g.name)
        .bind(&g.parent)
        .bind(&g.description)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM group_params WHERE group_name = $1").bind(&g.name).execute(&mut *tx).await?;
        let owner = group_owner(&g.name);
        let mut names = Vec::with_capacity(g.params.len());
        let mut values = Vec::with_capacity(g.params.len());
        for (name, value) in &g.params {
            names.push(name.as_str());
            values.push(self.at_rest.seal_param(&owner, name, value)?);
        }
        if !names.is_empty() {
            sqlx::query(
                "INSERT INTO group_params (group_name, name, value) SELECT $1, * FROM UNNEST($2::text[], $3::text[])",
            )
            .bind(&g.name)
            .bind(&names)
            .bind(&values)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    shared_store_methods!();
}
