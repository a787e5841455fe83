//! Re-sealing every secret of an inventory from one [`super::at_rest::AtRest`] to another, in the caller's
//! transaction: the same statements for SQLite and PostgreSQL (both take `$N` parameters), so one macro serves both
//! stores' `reseal`.

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
