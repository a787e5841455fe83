//! Finding the site: the one configuration every command uses (`--config`, `PROVISOR_CONFIG`, then
//! `/etc/provisor/provisor.toml`), and opening its inventory without ever creating an empty one by accident.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use provisor_server::config::Config;
use provisor_server::inventory::at_rest::{AtRest, SiteKey};
use provisor_server::inventory::{AnyStore, PoolLimits, PostgresStore, SqliteStore};

/// Where a packaged install keeps its configuration; the last place every command looks.
pub const SYSTEM_CONFIG: &str = "/etc/provisor/provisor.toml";

/// The file that makes a directory an inventory.
const INVENTORY_FILE: &str = "inventory.sqlite";

/// Which site a command works on.
#[derive(Args, Clone, Debug)]
pub struct SiteArgs {
    /// The site's configuration (written by `provisor init`). Without it: $PROVISOR_CONFIG, then
    /// /etc/provisor/provisor.toml.
    #[arg(long, short = 'c', env = "PROVISOR_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// An inventory's directory (holds inventory.sqlite), instead of the configuration's `data_dir`.
    #[arg(long, env = "PROVISOR_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// What a command does to the inventory: only a write may create it, and only where the site says it lives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    /// Reads: a missing inventory is an error, never an empty one.
    Read,
    /// Writes: the inventory is created where the configuration (or an explicit `--data-dir`) puts it.
    Write,
}

/// The configuration file a command uses, if any: `--config` (or `PROVISOR_CONFIG`, through clap), else the system
/// one when it exists.
pub fn config_file(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return Some(p.to_path_buf());
    }
    let system = Path::new(SYSTEM_CONFIG);
    system.exists().then(|| system.to_path_buf())
}

/// Loads the configuration a command uses, or `None` when there is none anywhere.
pub fn load_config(explicit: Option<&Path>) -> Result<Option<(PathBuf, Config)>> {
    match config_file(explicit) {
        Some(path) => {
            let config = Config::load(&path)?;
            Ok(Some((path, config)))
        }
        None => Ok(None),
    }
}

impl SiteArgs {
    /// The inventory directory: `--data-dir` (or `PROVISOR_DATA_DIR`), else the configuration's `data_dir`.
    pub fn data_dir(&self) -> Result<PathBuf> {
        if let Some(dir) = self.data_dir.as_ref().filter(|d| !d.as_os_str().is_empty()) {
            return Ok(dir.clone());
        }
        let (path, config) = load_config(self.config.as_deref())?.ok_or_else(|| anyhow::anyhow!("{}", no_site()))?;
        if config.data_dir == Path::new(provisor_server::serve::MEMORY) {
            bail!(
                "{}: data_dir is {:?}: the inventory lives in the server's memory and no command can reach it",
                path.display(),
                provisor_server::serve::MEMORY
            );
        }
        Ok(config.data_dir)
    }

    /// How the site's secrets are kept: sealed under `[inventory] secrets_key_file` when the configuration names
    /// one, else in clear.
    pub fn at_rest(&self) -> Result<AtRest> {
        match load_config(self.config.as_deref())? {
            Some((path, config)) => match &config.inventory.secrets_key_file {
                Some(key) => Ok(AtRest::sealed(
                    SiteKey::load(key).with_context(|| format!("{}: [inventory] secrets_key_file", path.display()))?,
                )),
                None => Ok(AtRest::clear()),
            },
            None => Ok(AtRest::clear()),
        }
    }

    /// The PostgreSQL inventory the site uses, if any: `PROVISOR_DATABASE_URL`, else the configuration's
    /// `[inventory] url` (an explicit `--data-dir` means the SQLite inventory there).
    pub fn database_url(&self) -> Result<Option<String>> {
        if let Ok(url) = std::env::var("PROVISOR_DATABASE_URL")
            && !url.is_empty()
        {
            return Ok(Some(url));
        }
        if self.data_dir.as_ref().is_some_and(|d| !d.as_os_str().is_empty()) {
            return Ok(None);
        }
        Ok(load_config(self.config.as_deref())?.and_then(|(_, c)| c.inventory.database_url()))
    }

    /// Opens the inventory: PostgreSQL when the site names one, else SQLite in the data directory. A read of a
    /// directory that holds none fails and names where it looked, instead of creating an empty inventory there (the
    /// usual mistake: a command run from the wrong folder).
    pub async fn open(&self, access: Access) -> Result<AnyStore> {
        let at_rest = self.at_rest()?;
        if let Some(url) = self.database_url()? {
            let limits = PoolLimits { max_connections: 4, ..PoolLimits::default() };
            let store = PostgresStore::connect(&url, at_rest, limits)
                .await
                .with_context(|| format!("{}: cannot open the inventory", redact_url(&url)))?;
            return Ok(AnyStore::Postgres(store));
        }
        let dir = self.data_dir()?;
        if access == Access::Read && !dir.join(INVENTORY_FILE).exists() {
            bail!(
                "no inventory at {}: add devices first (provisor device import FILE), or name the site with \
                 --config FILE / PROVISOR_CONFIG",
                dir.join(INVENTORY_FILE).display()
            );
        }
        let store = SqliteStore::open_with(&dir, at_rest)
            .await
            .with_context(|| format!("{}: cannot open the inventory", dir.display()))?;
        Ok(AnyStore::Sqlite(store))
    }

    /// Whether the inventory exists yet (a PostgreSQL one always does).
    pub fn inventory_exists(&self) -> Result<bool> {
        if self.database_url()?.is_some() {
            return Ok(true);
        }
        Ok(self.data_dir()?.join(INVENTORY_FILE).exists())
    }
}

/// A database URL with its password hidden, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn no_site() -> String {
    format!(
        "no site configuration: pass --config FILE, set PROVISOR_CONFIG, or put one at {SYSTEM_CONFIG} \
         (`provisor init DIR` writes one); --data-dir DIR names an inventory directory directly"
    )
}
