//! `provisor db` (the inventory's database: status, migrate, copy between SQLite and PostgreSQL) and `provisor
//! secrets` (the site master key that seals secrets at rest: init, rotate-master).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use provisor_server::inventory::at_rest::{AtRest, SiteKey};
use provisor_server::inventory::{AnyStore, PoolLimits, PostgresStore, SqliteStore, Store, StoreError};

use crate::site::{Access, SiteArgs, redact_url};

/// `provisor db …`.
#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Which database the site uses, its migrations (applied and pending), its counts, and whether its secrets are
    /// sealed. Changes nothing.
    Status,
    /// Apply pending migrations (`serve` applies them too; several nodes started together migrate once).
    Migrate,
    /// Copy a whole inventory into another database: devices with their secrets and parameters, groups, armed
    /// devices, phone certificates, admin API tokens and web UI users. The target is migrated if needed; devices already
    /// there are replaced, so a
    /// copy can be run again (after more changes at the source) without duplicates. Counts are checked at the end.
    ///
    /// Example, the move from the embedded default to PostgreSQL:
    /// `provisor db copy --from sqlite:/var/lib/provisor --to postgres://provisor@db/provisor`
    Copy {
        /// The source: `sqlite:PATH` (the data directory or its inventory.sqlite) or `postgres://…`.
        #[arg(long, value_name = "DATABASE")]
        from: String,
        /// The target: `postgres://…` or `sqlite:PATH`.
        #[arg(long, value_name = "DATABASE")]
        to: String,
    },
}

/// `provisor secrets …`.
#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Write a site master key to `[inventory] secrets_key_file` (or --key-file) and seal the inventory's secrets
    /// under it (for a site made before secrets were sealed at rest; `provisor init` does this for new sites).
    Init {
        /// Where to write the key, if the configuration names none (add `secrets_key_file` to it after).
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
    /// Replace the master key: every secret is re-sealed under a new key in one transaction. The new key is written
    /// to `<secrets_key_file>.new` first; once the database is committed it takes the key file's place, and the old
    /// key is kept as `<secrets_key_file>.old` (delete it once the backups made under it have expired). Restart or
    /// reload (SIGHUP does not reopen the store: restart) every node afterwards.
    RotateMaster,
}

/// A database named on the command line.
enum Named {
    Sqlite(PathBuf),
    Postgres(String),
}

fn named(s: &str) -> Result<Named> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        return Ok(Named::Postgres(s.to_string()));
    }
    let Some(path) = s.strip_prefix("sqlite:") else {
        bail!("{s:?}: expected sqlite:PATH (a data directory or its inventory.sqlite) or postgres://USER@HOST/DB");
    };
    let path = PathBuf::from(path);
    Ok(Named::Sqlite(if path.file_name().is_some_and(|n| n == "inventory.sqlite") {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        path
    }))
}

/// Opens a named database with the site's key if its secrets are sealed (in clear otherwise: a copy never seals or
/// changes its source).
async fn open_named(db: &Named, key: &AtRest, create: bool) -> Result<AnyStore> {
    let limits = PoolLimits { max_connections: 4, ..PoolLimits::default() };
    match db {
        Named::Sqlite(dir) => {
            if !create && !dir.join("inventory.sqlite").exists() {
                bail!("no inventory at {}", dir.join("inventory.sqlite").display());
            }
            let store = match SqliteStore::open(dir).await {
                Err(StoreError::Locked(_)) => SqliteStore::open_with(dir, key.clone()).await,
                other => other,
            };
            Ok(AnyStore::Sqlite(store.with_context(|| format!("{}", dir.display()))?))
        }
        Named::Postgres(url) => {
            let store = match PostgresStore::connect(url, AtRest::clear(), limits).await {
                Err(StoreError::Locked(_)) => PostgresStore::connect(url, key.clone(), limits).await,
                other => other,
            };
            Ok(AnyStore::Postgres(store.with_context(|| redact_url(url))?))
        }
    }
}

/// Runs `provisor db`.
pub fn run_db(site: SiteArgs, cmd: DbCommand) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cmd {
            DbCommand::Status => status(&site).await,
            DbCommand::Migrate => {
                let store = site.open(Access::Write).await?;
                let pending = migrations(&store).await?.iter().filter(|m| !m.2).count();
                eprintln!("{}: up to date ({pending} pending)", describe(&store, &site)?);
                Ok(ExitCode::SUCCESS)
            }
            DbCommand::Copy { from, to } => copy(&site, &named(&from)?, &named(&to)?).await,
        }
    })
}

async fn migrations(store: &AnyStore) -> Result<Vec<(i64, String, bool)>> {
    Ok(match store {
        AnyStore::Sqlite(s) => s.migrations().await?,
        AnyStore::Postgres(s) => s.migrations().await?,
        AnyStore::Memory(_) => Vec::new(),
    })
}

fn describe(store: &AnyStore, site: &SiteArgs) -> Result<String> {
    Ok(match store {
        AnyStore::Postgres(_) => format!("PostgreSQL {}", redact_url(&site.database_url()?.unwrap_or_default())),
        _ => format!("SQLite {}", site.data_dir()?.join("inventory.sqlite").display()),
    })
}

async fn status(site: &SiteArgs) -> Result<ExitCode> {
    // PostgreSQL: connect without migrating, so pending migrations show as pending.
    let (store, what) = match site.database_url()? {
        Some(url) => {
            let limits = PoolLimits { max_connections: 2, ..PoolLimits::default() };
            let s = PostgresStore::connect_unmigrated(&url, site.at_rest()?, limits)
                .await
                .with_context(|| redact_url(&url))?;
            (AnyStore::Postgres(s), format!("PostgreSQL {}", redact_url(&url)))
        }
        None => {
            let s = site.open(Access::Read).await?;
            let what = describe(&s, site)?;
            (s, what)
        }
    };
    println!("database    {what}");
    let all = migrations(&store).await?;
    let pending: Vec<_> = all.iter().filter(|m| !m.2).collect();
    println!(
        "migrations  {} applied, {} pending{}",
        all.len() - pending.len(),
        pending.len(),
        if pending.is_empty() { String::new() } else { " (provisor db migrate)".into() }
    );
    for (v, d, applied) in &all {
        println!("  {v:04} {d:<24} {}", if *applied { "applied" } else { "PENDING" });
    }
    if pending.len() < all.len() {
        let check = match &store {
            AnyStore::Sqlite(s) => s.key_check().await?,
            AnyStore::Postgres(s) => s.key_check().await.unwrap_or(None),
            AnyStore::Memory(_) => None,
        };
        match check {
            Some(c) => println!("secrets     sealed at rest (AES-256-GCM, key check {c})"),
            None => println!("secrets     IN CLEAR: set [inventory] secrets_key_file and run provisor secrets init"),
        }
        if pending.is_empty() {
            println!("devices     {}", store.devices().await.map(|d| d.len()).unwrap_or(0));
            println!("groups      {}", store.groups().await.map(|g| g.len()).unwrap_or(0));
            println!("revision    {}", store.revision().await?);
        }
    }
    Ok(if pending.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

async fn copy(site: &SiteArgs, from: &Named, to: &Named) -> Result<ExitCode> {
    let key = site.at_rest()?;
    let source = open_named(from, &key, false).await.context("the source")?;
    // The target is sealed under the site's key when the site has one.
    let target = open_named(to, &key, true).await.context("the target")?;
    let target = match (&target, key.key()) {
        (AnyStore::Sqlite(s), Some(_)) if s.key_check().await?.is_none() => match to {
            Named::Sqlite(dir) => AnyStore::Sqlite(SqliteStore::open_with(dir, key.clone()).await?),
            Named::Postgres(_) => unreachable!(),
        },
        (AnyStore::Postgres(s), Some(_)) if s.key_check().await?.is_none() => match to {
            Named::Postgres(url) => {
                AnyStore::Postgres(PostgresStore::connect(url, key.clone(), PoolLimits::default()).await?)
            }
            Named::Sqlite(_) => unreachable!(),
        },
        _ => target,
    };
    // Groups, parents first.
    let mut pending = source.groups().await?;
    let mut groups = 0;
    while !pending.is_empty() {
        let before = pending.len();
        let mut left = Vec::new();
        for g in pending {
            let parent_there = match &g.parent {
                Some(p) => target.group(p).await?.is_some(),
                None => true,
            };
            if parent_there {
                target.put_group(&g).await?;
                groups += 1;
            } else {
                left.push(g);
            }
        }
        if left.len() == before {
            bail!(
                "groups {:?}: their parents are missing at the source",
                left.iter().map(|g| &g.name).collect::<Vec<_>>()
            );
        }
        pending = left;
    }
    let devices = source.devices().await?;
    let there: std::collections::HashSet<_> = target.devices().await?.into_iter().map(|d| d.mac).collect();
    let (update, add): (Vec<_>, Vec<_>) = devices.iter().cloned().partition(|d| there.contains(&d.mac));
    let bar = indicatif::ProgressBar::new(devices.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} devices {per_sec}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    target.apply_import(&add, &update, &|n| bar.set_position(n as u64)).await?;
    bar.finish_and_clear();
    // What is not a device field: armed, phone certificates.
    let mut armed = 0;
    let mut certificates = 0;
    for d in &devices {
        if source.is_armed(&d.mac).await? {
            target.arm(&d.mac).await?;
            armed += 1;
        } else {
            target.take_armed(&d.mac).await?;
        }
        let cert = source.phone_certificate(&d.mac).await?;
        if cert.is_some() {
            certificates += 1;
        }
        if cert != target.phone_certificate(&d.mac).await? {
            target.set_phone_certificate(&d.mac, cert.as_deref()).await?;
        }
    }
    // Admin API tokens (their hashes): a name already at the target keeps the target's token.
    let mut tokens = 0;
    for t in source.tokens().await? {
        match target.add_token(&t).await {
            Ok(()) => tokens += 1,
            Err(StoreError::TokenExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Web UI users (their password hashes), the same way; sessions are not copied (their users log in again).
    let mut users = 0;
    for u in source.users().await? {
        match target.add_user(&u).await {
            Ok(()) => users += 1,
            Err(StoreError::UserExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The journal: device state, events, reports and the audit trail (an embedded store's audit.log included).
    let audit_log = match from {
        Named::Sqlite(dir) => Some(dir.join("audit.log")),
        Named::Postgres(_) => None,
    };
    let node = format!("{}:audit.log", provisor_server::serve::host_name());
    let journal = provisor_server::journal::copy::read_journal(&source, audit_log.as_deref(), &node).await?;
    let written = provisor_server::journal::copy::write_journal(&target, &journal).await?;
    let (states, events, reports, audit) = journal.counts();
    // Check: every source device is at the target, equal in every field and secret.
    let copied: std::collections::HashMap<_, _> =
        target.devices().await?.into_iter().map(|d| (d.mac.clone(), d)).collect();
    let differ: Vec<_> = devices.iter().filter(|d| copied.get(&d.mac) != Some(d)).map(|d| d.mac.to_string()).collect();
    if !differ.is_empty() {
        bail!("{} device(s) differ at the target after the copy: {}", differ.len(), differ.join(", "));
    }
    eprintln!(
        "copied {} device(s) ({} new, {} replaced), {groups} group(s), {armed} armed, {certificates} phone \
         certificate(s), {tokens} new admin token(s), {users} new web UI user(s); the target has {} device(s)",
        devices.len(),
        add.len(),
        update.len(),
        copied.len()
    );
    eprintln!(
        "journal: {states} device state(s), {events} event(s), {reports} report(s), {audit} audit line(s) read; \
         {written} row(s) written (rows already there are not added again{})",
        if matches!(to, Named::Sqlite(_)) && audit > 0 {
            "; an embedded target keeps its audit trail in audit.log, not copied"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `provisor secrets`.
pub fn run_secrets(site: SiteArgs, cmd: SecretsCommand) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let configured =
            crate::site::load_config(site.config.as_deref())?.and_then(|(_, c)| c.inventory.secrets_key_file.clone());
        match cmd {
            SecretsCommand::Init { key_file } => {
                let Some(path) = key_file.or(configured.clone()) else {
                    bail!("no key file: set [inventory] secrets_key_file in the configuration, or give --key-file");
                };
                let store = open_clear(&site).await?;
                let key = SiteKey::create_file(&path)?;
                eprintln!("wrote {} (key check {})", path.display(), key.check_value());
                let n = reseal(store, &AtRest::clear(), AtRest::sealed(key)).await?;
                eprintln!("sealed {n} secret row(s)");
                if configured.as_deref() != Some(path.as_path()) {
                    eprintln!("now set secrets_key_file = {:?} under [inventory] in the configuration", path);
                }
            }
            SecretsCommand::RotateMaster => {
                let Some(path) = configured else {
                    bail!("the configuration names no [inventory] secrets_key_file: nothing to rotate (secrets init)");
                };
                let old = AtRest::sealed(SiteKey::load(&path)?);
                let new_path = path.with_extension("key.new");
                let _ = std::fs::remove_file(&new_path);
                let new_key = SiteKey::create_file(&new_path)?;
                let store = site.open(Access::Write).await?;
                let n = reseal(store, &old, AtRest::sealed(new_key)).await?;
                let old_path = path.with_extension("key.old");
                std::fs::rename(&path, &old_path)
                    .with_context(|| format!("keeping the old key as {}", old_path.display()))?;
                std::fs::rename(&new_path, &path).with_context(|| {
                    format!("the database is sealed under {}: move it to {}", new_path.display(), path.display())
                })?;
                eprintln!(
                    "re-sealed {n} secret row(s) under a new key in {}; the old key is {} (restart every node)",
                    path.display(),
                    old_path.display()
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The site's store opened with its secrets in clear (for `secrets init`).
async fn open_clear(site: &SiteArgs) -> Result<AnyStore> {
    let limits = PoolLimits { max_connections: 2, ..PoolLimits::default() };
    Ok(match site.database_url()? {
        Some(url) => AnyStore::Postgres(PostgresStore::connect(&url, AtRest::clear(), limits).await?),
        None => AnyStore::Sqlite(SqliteStore::open(&site.data_dir()?).await?),
    })
}

async fn reseal(store: AnyStore, from: &AtRest, to: AtRest) -> Result<u64> {
    Ok(match store {
        AnyStore::Sqlite(s) => SqliteStore::rebind(s, to).reseal(from).await?,
        AnyStore::Postgres(s) => PostgresStore::rebind(s, to).reseal(from).await?,
        AnyStore::Memory(_) => bail!("an inventory in memory keeps nothing at rest"),
    })
}
