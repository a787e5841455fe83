//! The embedded inventory: one SQLite file in the data directory (WAL journal, migrations in `migrations/`).

use std::collections::BTreeMap;
use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, Transaction};

use super::{Device, Group, Mac, PreviousSecrets, Secrets, Store, StoreError};

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

impl SqliteStore {
    /// Opens (creating if needed) `inventory.sqlite` in `dir`, and brings its schema up to date.
    ///
    /// The inventory holds every line password, AES key and IKM: the directory is made private (0700) and the
    /// database with its WAL and shared-memory files 0600 (SQLite gives its WAL and SHM files the database's mode).
    pub async fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
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
        sqlx::query("INSERT INTO armed (mac, since) VALUES (?, ?)")
            .bind(d.mac.as_str())
            .bind(t)
            .execute(&mut **tx)
            .await?;
        Self::insert_params(tx, d).await
    }

    /// Replaces a device's fields, secrets and parameters inside `tx`.
    async fn replace_device(tx: &mut Transaction<'_, Sqlite>, d: &Device) -> Result<(), StoreError> {
        let q = sqlx::query(
            "UPDATE devices SET model = ?, serial = ?, description = ?, group_name = ?, aes_key = ?, aes_digest = ?, \
             ikm = ?, path_token = ?, prev_aes_key = ?, prev_ikm = ?, prev_path_token = ?, updated_at = ? \
             WHERE mac = ?",
        );
        let r = bind_fields(q, d).bind(now()).bind(d.mac.as_str()).execute(&mut **tx).await;
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

    async fn update_device(&self, d: &Device) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        Self::replace_device(&mut tx, d).await?;
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
        for (i, d) in add.iter().enumerate() {
            Self::insert_device(&mut tx, d).await?;
            if i % 100 == 99 {
                progress(i + 1);
            }
        }
        for (i, d) in update.iter().enumerate() {
            Self::replace_device(&mut tx, d).await?;
            if i % 100 == 99 {
                progress(add.len() + i + 1);
            }
        }
        tx.commit().await?;
        progress(add.len() + update.len());
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

    async fn arm(&self, mac: &Mac) -> Result<(), StoreError> {
        let r = sqlx::query("INSERT OR REPLACE INTO armed (mac, since) SELECT mac, ? FROM devices WHERE mac = ?")
            .bind(now())
            .bind(mac.as_str())
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NoDevice(mac.clone()));
        }
        Ok(())
    }

    async fn take_armed(&self, mac: &Mac) -> Result<bool, StoreError> {
        // One statement: of two requests at once, exactly one deletes the row.
        let r = sqlx::query("DELETE FROM armed WHERE mac = ?").bind(mac.as_str()).execute(&self.pool).await?;
        Ok(r.rows_affected() == 1)
    }

    async fn is_armed(&self, mac: &Mac) -> Result<bool, StoreError> {
        let row =
            sqlx::query("SELECT 1 FROM armed WHERE mac = ?").bind(mac.as_str()).fetch_optional(&self.pool).await?;
        Ok(row.is_some())
    }

    async fn set_phone_certificate(&self, mac: &Mac, der: Option<&[u8]>) -> Result<(), StoreError> {
        if self.device(mac).await?.is_none() {
            return Err(StoreError::NoDevice(mac.clone()));
        }
        match der {
            Some(d) => {
                sqlx::query("INSERT OR REPLACE INTO phone_certificates (mac, der) VALUES (?, ?)")
                    .bind(mac.as_str())
                    .bind(d)
                    .execute(&self.pool)
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM phone_certificates WHERE mac = ?")
                    .bind(mac.as_str())
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    async fn phone_certificate(&self, mac: &Mac) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT der FROM phone_certificates WHERE mac = ?")
            .bind(mac.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<Vec<u8>, _>("der")))
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
