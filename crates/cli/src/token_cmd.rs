//! `provisor token`: tokens for the admin API (`[admin] listen`, `/api/v1`), stored hashed in the inventory.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Subcommand;
use provisor_server::inventory::{AdminToken, Role, Store};

use crate::site::{Access, SiteArgs};

/// `provisor token …`.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a token and print it (once: only its SHA-256 is stored). Give it to the script or person as
    /// `Authorization: Bearer <token>`.
    Create {
        /// Who or what holds it (unique); the audit trail names it.
        #[arg(long)]
        name: String,
        /// `read` (inventory, state and logs, secrets masked), `operator` (also changes devices and groups) or
        /// `admin` (also secrets, key rotation and tokens).
        #[arg(long, value_parser = |s: &str| s.parse::<Role>())]
        role: Role,
    },
    /// The tokens: name, role and when each was made (never the tokens themselves).
    List,
    /// Revoke a token: requests carrying it are refused at once, on every node.
    Revoke {
        /// The token's name.
        name: String,
    },
}

/// Runs `provisor token`.
pub fn run(site: SiteArgs, cmd: TokenCommand) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cmd {
            TokenCommand::Create { name, role } => {
                if name.trim().is_empty() || name.chars().any(char::is_control) {
                    bail!("--name: give the token a name (no control characters)");
                }
                let store = site.open(Access::Write).await?;
                let now = provisor_server::provision::unix_ms(std::time::SystemTime::now());
                let (token, stored) = AdminToken::generate(&name, role, now)?;
                store.add_token(&stored).await?;
                audit(&site, &store, format!("created token {name:?} ({})", role.as_str())).await;
                eprintln!("token {name:?} ({}) made; it is shown only this once:", role.as_str());
                println!("{token}");
                Ok(ExitCode::SUCCESS)
            }
            TokenCommand::List => {
                let store = site.open(Access::Read).await?;
                for t in store.tokens().await? {
                    println!("{}\t{}\t{}", t.name, t.role.as_str(), t.created_at);
                }
                Ok(ExitCode::SUCCESS)
            }
            TokenCommand::Revoke { name } => {
                let store = site.open(Access::Write).await?;
                if !store.remove_token(&name).await? {
                    bail!("no token named {name:?} (provisor token list shows them)");
                }
                audit(&site, &store, format!("revoked token {name:?}")).await;
                eprintln!("token {name:?} revoked");
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// Puts a token or user change in the audit trail (protocol `admin`, method `TOKEN`), naming the local user who
/// made it.
pub(crate) async fn audit(site: &SiteArgs, store: &provisor_server::inventory::AnyStore, what: String) {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| format!("uid {}", process_uid()));
    let entry = provisor_server::journal::AuditEntry {
        at_ms: provisor_server::provision::unix_ms(std::time::SystemTime::now()),
        client: "local".into(),
        protocol: provisor_server::journal::ADMIN_PROTOCOL,
        method: "TOKEN",
        file: "provisor token".into(),
        status: 200,
        note: format!("by local user {user:?}: {what}"),
        ..Default::default()
    };
    let dir = site.data_dir().unwrap_or_default();
    let node = provisor_server::serve::host_name();
    provisor_server::journal::record_offline(store, &dir, &node, entry).await;
}

/// The process's user id, from `/proc/self` (no `unsafe` call).
fn process_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}
