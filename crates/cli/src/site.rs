//! Finding the site: the one configuration every command uses (`--config`, `PROVISOR_CONFIG`, then
//! `/etc/provisor/provisor.toml`), and opening its inventory without ever creating an empty one by accident.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use provisor_server::config::Config;
use provisor_server::inventory::SqliteStore;

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

    /// Opens the inventory. A read of a directory that holds none fails and names where it looked, instead of
    /// creating an empty inventory there (the usual mistake: a command run from the wrong folder).
    pub async fn open(&self, access: Access) -> Result<SqliteStore> {
        let dir = self.data_dir()?;
        if access == Access::Read && !dir.join(INVENTORY_FILE).exists() {
            bail!(
                "no inventory at {}: add devices first (provisor device import FILE), or name the site with \
                 --config FILE / PROVISOR_CONFIG",
                dir.join(INVENTORY_FILE).display()
            );
        }
        SqliteStore::open(&dir).await.with_context(|| format!("{}: cannot open the inventory", dir.display()))
    }

    /// Whether the inventory exists yet.
    pub fn inventory_exists(&self) -> Result<bool> {
        Ok(self.data_dir()?.join(INVENTORY_FILE).exists())
    }
}

fn no_site() -> String {
    format!(
        "no site configuration: pass --config FILE, set PROVISOR_CONFIG, or put one at {SYSTEM_CONFIG} \
         (`provisor init DIR` writes one); --data-dir DIR names an inventory directory directly"
    )
}
