//! The statements SQLite and PostgreSQL share (both take `$N` parameters): most of the [`super::Store`] methods and
//! the re-sealing of secrets, as macros expanded in each store, so the two stores differ only where the databases do
//! (bulk inserts, group parameters, locking).

/// Re-seals, through transaction `$tx`, every device secret and password parameter from `$from` to `$to`, and records
/// `$to`'s key check; evaluates to the number of rows changed.
macro_rules! reseal_all {
    ($tx:ident, $from:expr, $to:expr) => {{
        use sqlx::Row as _;
        use $crate::inventory::at_rest::{device_context, device_owner, group_owner};
        let (from, to) = ($from, $to);
        let mut n = 0u64;
        let rows =
            sqlx::query("SELECT mac, aes_key, ikm, prev_aes_key, prev_ikm FROM devices").fetch_all(&mut *$tx).await?;
        for r in &rows {
            let mac: String = r.get("mac");
            let col = |c: &str| device_context(&mac, c);
            let aes_key = from.reseal(to, &col("aes_key"), Some(r.get::<&str, _>("aes_key")))?;
            let ikm = from.reseal(to, &col("ikm"), Some(r.get::<&str, _>("ikm")))?;
            let prev_aes_key = from.reseal(to, &col("prev_aes_key"), r.get::<Option<&str>, _>("prev_aes_key"))?;
            let prev_ikm = from.reseal(to, &col("prev_ikm"), r.get::<Option<&str>, _>("prev_ikm"))?;
            sqlx::query("UPDATE devices SET aes_key = $1, ikm = $2, prev_aes_key = $3, prev_ikm = $4 WHERE mac = $5")
                .bind(aes_key)
                .bind(ikm)
                .bind(prev_aes_key)
                .bind(prev_ikm)
                .bind(&mac)
                .execute(&mut *$tx)
                .await?;
            n += 1;
        }
        for (select, update, owner) in [
            (
                "SELECT mac AS k, name, value FROM device_params",
                "UPDATE device_params SET value = $1 WHERE mac = $2 AND name = $3",
                device_owner as fn(&str) -> String,
            ),
            (
                "SELECT group_name AS k, name, value FROM group_params",
                "UPDATE group_params SET value = $1 WHERE group_name = $2 AND name = $3",
                group_owner as fn(&str) -> String,
            ),
        ] {
            let rows = sqlx::query(select).fetch_all(&mut *$tx).await?;
            for r in &rows {
                let (k, name): (String, String) = (r.get("k"), r.get("name"));
                if let Some(v) = from.reseal_param(to, &owner(&k), &name, r.get::<&str, _>("value"))? {
                    sqlx::query(update).bind(v).bind(&k).bind(&name).execute(&mut *$tx).await?;
                    n += 1;
                }
            }
        }
        sqlx::query("DELETE FROM secrets_key").execute(&mut *$tx).await?;
        if let Some(check) = to.check_value() {
            sqlx::query("INSERT INTO secrets_key (id, check_value) VALUES (1, $1)")
                .bind(check)
                .execute(&mut *$tx)
                .await?;
        }
        n
    }};
}

/// The device of `$rows` (a device row joined with its `param_name`/`param_value` rows, `NULL` when it has none), with
/// its parameters opened; `None` for no rows.
macro_rules! device_with_params {
    ($store:ident, $rows:expr) => {{
        use sqlx::Row as _;
        let rows = $rows;
        match rows.first() {
            None => Ok(None),
            Some(first) => (|| {
                let mut d = $store.device_from(first)?;
                let owner = device_owner(d.mac.as_str());
                for r in &rows {
                    if let Some(name) = r.get::<Option<String>, _>("param_name") {
                        let value = $store.at_rest.open_param(&owner, &name, r.get::<&str, _>("param_value"))?;
                        d.params.insert(name, value);
                    }
                }
                Ok::<_, StoreError>(Some(d))
            })(),
        }
    }};
}

/// The [`super::Store`] methods whose statements both databases share, for a store with fields `pool` and `at_rest`
/// and methods `device_from(&row)` and `params(sql, owner, key)`.
macro_rules! shared_store_methods {
    () => {
        async fn device(&self, mac: &Mac) -> Result<Option<Device>, StoreError> {
            // One statement for the device and its parameters: a phone's every fetch looks its device up.
            let rows = sqlx::query(concat!(
                "SELECT d.*, p.name AS param_name, p.value AS param_value FROM (SELECT ",
                device_columns!(),
                " FROM devices WHERE mac = $1) AS d LEFT JOIN device_params AS p ON p.mac = d.mac"
            ))
            .bind(mac.as_str())
            .fetch_all(&self.pool)
            .await?;
            device_with_params!(self, rows)
        }

        async fn devices(&self) -> Result<Vec<Device>, StoreError> {
            let rows = sqlx::query(concat!("SELECT ", device_columns!(), " FROM devices ORDER BY mac"))
                .fetch_all(&self.pool)
                .await?;
            let mut devices = rows.iter().map(|r| self.device_from(r)).collect::<Result<Vec<Device>, StoreError>>()?;
            let params =
                sqlx::query("SELECT mac, name, value FROM device_params ORDER BY mac").fetch_all(&self.pool).await?;
            let mut by_mac: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
            for r in &params {
                let (mac, name): (String, String) = (r.get("mac"), r.get("name"));
                let value = self.at_rest.open_param(&device_owner(&mac), &name, r.get::<&str, _>("value"))?;
                by_mac.entry(mac).or_default().insert(name, value);
            }
            for d in &mut devices {
                d.params = by_mac.remove(d.mac.as_str()).unwrap_or_default();
            }
            Ok(devices)
        }

        async fn remove_device(&self, mac: &Mac) -> Result<bool, StoreError> {
            let r = sqlx::query("DELETE FROM devices WHERE mac = $1").bind(mac.as_str()).execute(&self.pool).await?;
            Ok(r.rows_affected() > 0)
        }

        async fn group(&self, name: &str) -> Result<Option<Group>, StoreError> {
            let row = sqlx::query("SELECT name, parent, description FROM groups WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
            let Some(row) = row else { return Ok(None) };
            let params = self
                .params("SELECT name, value FROM group_params WHERE group_name = $1", &group_owner(name), name)
                .await?;
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

        async fn remove_group(&self, name: &str) -> Result<bool, StoreError> {
            let used: i64 = sqlx::query("SELECT COUNT(*) AS n FROM devices WHERE group_name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?
                .get("n");
            if used > 0 {
                return Err(StoreError::GroupInUse(name.into(), format!("{used} device(s)")));
            }
            let children: i64 = sqlx::query("SELECT COUNT(*) AS n FROM groups WHERE parent = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?
                .get("n");
            if children > 0 {
                return Err(StoreError::GroupInUse(name.into(), format!("{children} group(s)")));
            }
            let r = sqlx::query("DELETE FROM groups WHERE name = $1").bind(name).execute(&self.pool).await;
            match r {
                // A device or a group that started to use it since the counts above.
                Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                    Err(StoreError::GroupInUse(name.into(), "a device or group added meanwhile".into()))
                }
                r => Ok(r?.rows_affected() > 0),
            }
        }

        async fn device_by_path_token(&self, token: &str) -> Result<Option<(Device, bool)>, StoreError> {
            if token.is_empty() {
                return Ok(None);
            }
            // Two index lookups, whatever the statistics say (an `OR` across two columns can be planned as a scan),
            // and the parameters in the same statement.
            let rows = sqlx::query(concat!(
                "SELECT d.*, p.name AS param_name, p.value AS param_value FROM (SELECT ",
                device_columns!(),
                " FROM devices WHERE path_token = $1 UNION ALL SELECT ",
                device_columns!(),
                " FROM devices WHERE prev_path_token = $1 LIMIT 1) AS d LEFT JOIN device_params AS p ON p.mac = d.mac"
            ))
            .bind(token)
            .fetch_all(&self.pool)
            .await?;
            let Some(d) = device_with_params!(self, rows)? else { return Ok(None) };
            let previous = d.secrets.path_token != token;
            Ok(Some((d, previous)))
        }

        async fn forget_previous_secrets(&self, mac: &Mac) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE devices SET prev_aes_key = NULL, prev_ikm = NULL, prev_path_token = NULL \
                 WHERE mac = $1 AND prev_path_token IS NOT NULL",
            )
            .bind(mac.as_str())
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        async fn arm(&self, mac: &Mac) -> Result<(), StoreError> {
            let r = sqlx::query(
                "INSERT INTO armed (mac, since) SELECT mac, $1 FROM devices WHERE mac = $2 \
                 ON CONFLICT (mac) DO UPDATE SET since = excluded.since",
            )
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
            // One statement: of two requests at once, on any nodes, exactly one deletes the row.
            let r = sqlx::query("DELETE FROM armed WHERE mac = $1").bind(mac.as_str()).execute(&self.pool).await?;
            Ok(r.rows_affected() == 1)
        }

        async fn is_armed(&self, mac: &Mac) -> Result<bool, StoreError> {
            let row = sqlx::query("SELECT 1 AS one FROM armed WHERE mac = $1")
                .bind(mac.as_str())
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.is_some())
        }

        async fn set_phone_certificate(&self, mac: &Mac, der: Option<&[u8]>) -> Result<(), StoreError> {
            let exists = sqlx::query("SELECT 1 AS one FROM devices WHERE mac = $1")
                .bind(mac.as_str())
                .fetch_optional(&self.pool)
                .await?
                .is_some();
            if !exists {
                return Err(StoreError::NoDevice(mac.clone()));
            }
            let r = match der {
                Some(d) => {
                    sqlx::query(
                        "INSERT INTO phone_certificates (mac, der) VALUES ($1, $2) \
                         ON CONFLICT (mac) DO UPDATE SET der = excluded.der",
                    )
                    .bind(mac.as_str())
                    .bind(d)
                    .execute(&self.pool)
                    .await
                }
                None => {
                    sqlx::query("DELETE FROM phone_certificates WHERE mac = $1")
                        .bind(mac.as_str())
                        .execute(&self.pool)
                        .await
                }
            };
            match r {
                // Removed since the check above.
                Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Err(StoreError::NoDevice(mac.clone())),
                r => r.map(|_| ()).map_err(Into::into),
            }
        }

        async fn phone_certificate(&self, mac: &Mac) -> Result<Option<Vec<u8>>, StoreError> {
            let row = sqlx::query("SELECT der FROM phone_certificates WHERE mac = $1")
                .bind(mac.as_str())
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.map(|r| r.get::<Vec<u8>, _>("der")))
        }

        async fn revision(&self) -> Result<i64, StoreError> {
            Ok(sqlx::query("SELECT value FROM revision WHERE id = 1").fetch_one(&self.pool).await?.get("value"))
        }

        async fn devices_page(
            &self,
            after: Option<&Mac>,
            limit: u32,
            filter: &$crate::inventory::DeviceFilter,
        ) -> Result<Vec<Device>, StoreError> {
            let search = filter.like_patterns();
            let rows = sqlx::query(concat!(
                "SELECT ",
                device_columns!(),
                " FROM devices WHERE mac > $1 AND ($2 IS NULL OR model = $2) AND ($3 IS NULL OR group_name = $3) \
                 AND ($5 IS NULL OR mac LIKE $5 ESCAPE '\\' OR lower(serial) LIKE $6 ESCAPE '\\' \
                 OR lower(description) LIKE $6 ESCAPE '\\') ORDER BY mac LIMIT $4"
            ))
            .bind(after.map_or("", |m| m.as_str()))
            .bind(filter.model.as_deref())
            .bind(filter.group.as_deref())
            .bind(i64::from(limit))
            .bind(search.as_ref().map(|(mac, _)| mac.as_str()))
            .bind(search.as_ref().map(|(_, text)| text.as_str()))
            .fetch_all(&self.pool)
            .await?;
            let mut devices = rows.iter().map(|r| self.device_from(r)).collect::<Result<Vec<Device>, StoreError>>()?;
            let (Some(first), Some(last)) = (devices.first(), devices.last()) else { return Ok(devices) };
            // The page's parameters, by the range of its MACs (one static statement; rows of devices the filter
            // left out are skipped below).
            let params = sqlx::query("SELECT mac, name, value FROM device_params WHERE mac >= $1 AND mac <= $2")
                .bind(first.mac.as_str())
                .bind(last.mac.as_str())
                .fetch_all(&self.pool)
                .await?;
            let mut by_mac: BTreeMap<String, BTreeMap<String, String>> =
                devices.iter().map(|d| (d.mac.as_str().to_string(), BTreeMap::new())).collect();
            for r in &params {
                let (mac, name): (String, String) = (r.get("mac"), r.get("name"));
                if let Some(p) = by_mac.get_mut(&mac) {
                    let value = self.at_rest.open_param(&device_owner(&mac), &name, r.get::<&str, _>("value"))?;
                    p.insert(name, value);
                }
            }
            for d in &mut devices {
                d.params = by_mac.remove(d.mac.as_str()).unwrap_or_default();
            }
            Ok(devices)
        }

        async fn add_token(&self, token: &$crate::inventory::AdminToken) -> Result<(), StoreError> {
            let r = sqlx::query(
                "INSERT INTO admin_tokens (name, role, hash, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(&token.name)
            .bind(token.role.as_str())
            .bind(&token.hash)
            .bind(&token.created_at)
            .execute(&self.pool)
            .await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::TokenExists(token.name.clone()));
            }
            Ok(())
        }

        async fn token_by_hash(&self, hash: &str) -> Result<Option<$crate::inventory::AdminToken>, StoreError> {
            let row = sqlx::query("SELECT name, role, hash, created_at FROM admin_tokens WHERE hash = $1")
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
            row.map(|r| admin_token_from(&r)).transpose()
        }

        async fn tokens(&self) -> Result<Vec<$crate::inventory::AdminToken>, StoreError> {
            let rows = sqlx::query("SELECT name, role, hash, created_at FROM admin_tokens ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(admin_token_from).collect()
        }

        async fn remove_token(&self, name: &str) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            let r = sqlx::query("DELETE FROM admin_tokens WHERE name = $1").bind(name).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM admin_sessions WHERE principal = $1")
                .bind(format!("token:{name}"))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(r.rows_affected() > 0)
        }

        async fn add_user(&self, user: &$crate::inventory::AdminUser) -> Result<(), StoreError> {
            let r = sqlx::query(
                "INSERT INTO admin_users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(&user.name)
            .bind(user.role.as_str())
            .bind(&user.password_hash)
            .bind(&user.created_at)
            .execute(&self.pool)
            .await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::UserExists(user.name.clone()));
            }
            Ok(())
        }

        async fn user(&self, name: &str) -> Result<Option<$crate::inventory::AdminUser>, StoreError> {
            let row = sqlx::query("SELECT name, role, password_hash, created_at FROM admin_users WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
            row.map(|r| admin_user_from(&r)).transpose()
        }

        async fn users(&self) -> Result<Vec<$crate::inventory::AdminUser>, StoreError> {
            let rows = sqlx::query("SELECT name, role, password_hash, created_at FROM admin_users ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(admin_user_from).collect()
        }

        async fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            let r = sqlx::query("DELETE FROM admin_users WHERE name = $1").bind(name).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM admin_sessions WHERE principal = $1")
                .bind(format!("user:{name}"))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(r.rows_affected() > 0)
        }

        async fn add_session(&self, session: &$crate::inventory::AdminSession, now_ms: i64) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM admin_sessions WHERE expires_ms <= $1").bind(now_ms).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO admin_sessions (hash, principal, role, csrf, expires_ms) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&session.hash)
            .bind(&session.principal)
            .bind(session.role.as_str())
            .bind(&session.csrf)
            .bind(session.expires_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        }

        async fn session(
            &self,
            hash: &str,
            now_ms: i64,
        ) -> Result<Option<$crate::inventory::AdminSession>, StoreError> {
            let row = sqlx::query(
                "SELECT hash, principal, role, csrf, expires_ms FROM admin_sessions WHERE hash = $1 AND expires_ms > $2",
            )
            .bind(hash)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?;
            let Some(r) = row else { return Ok(None) };
            let role: String = r.get("role");
            Ok(Some($crate::inventory::AdminSession {
                hash: r.get("hash"),
                principal: r.get("principal"),
                role: role.parse().map_err(|e: String| StoreError::Database(sqlx::Error::Protocol(e)))?,
                csrf: r.get("csrf"),
                expires_ms: r.get("expires_ms"),
            }))
        }

        async fn remove_session(&self, hash: &str) -> Result<(), StoreError> {
            sqlx::query("DELETE FROM admin_sessions WHERE hash = $1").bind(hash).execute(&self.pool).await?;
            Ok(())
        }

        async fn model_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
            let rows = sqlx::query("SELECT model, COUNT(*) AS n FROM devices GROUP BY model ORDER BY model")
                .fetch_all(&self.pool)
                .await?;
            Ok(rows.iter().map(|r| (r.get("model"), r.get("n"))).collect())
        }
    };
}

/// An `admin_users` row.
macro_rules! admin_user_row {
    ($row:ty) => {
        fn admin_user_from(r: &$row) -> Result<$crate::inventory::AdminUser, StoreError> {
            use sqlx::Row as _;
            let role: String = r.get("role");
            Ok($crate::inventory::AdminUser {
                name: r.get("name"),
                role: role.parse().map_err(|e: String| StoreError::Database(sqlx::Error::Protocol(e)))?,
                password_hash: r.get("password_hash"),
                created_at: r.get("created_at"),
            })
        }
    };
}

/// An `admin_tokens` row (a role the schema's CHECK allows, so a bad one is a corrupt database).
macro_rules! admin_token_row {
    ($row:ty) => {
        fn admin_token_from(r: &$row) -> Result<$crate::inventory::AdminToken, StoreError> {
            use sqlx::Row as _;
            let role: String = r.get("role");
            Ok($crate::inventory::AdminToken {
                name: r.get("name"),
                role: role.parse().map_err(|e: String| StoreError::Database(sqlx::Error::Protocol(e)))?,
                hash: r.get("hash"),
                created_at: r.get("created_at"),
            })
        }
    };
}
