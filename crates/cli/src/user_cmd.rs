//! `provisor user`: logins of the web UI on the admin listener, with a role like a token's; the password is kept as
//! an Argon2id hash in the inventory.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use provisor_server::inventory::{AdminUser, Role, Store};

use crate::site::{Access, SiteArgs};

/// The shortest password `user add` takes.
const MIN_PASSWORD: usize = 12;

/// `provisor user …`.
#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a web UI login. The password is asked for on the terminal (twice, not shown), or read as the first line
    /// of standard input with `--password-stdin`; at least 12 characters.
    Add {
        /// The login name (unique); the audit trail names it.
        name: String,
        /// `read`, `operator` or `admin`, as for tokens.
        #[arg(long, value_parser = |s: &str| s.parse::<Role>())]
        role: Role,
        /// Read the password from standard input (first line) instead of the terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// The users: name, role and when each was made.
    List,
    /// Remove a user; their sessions end at once.
    Rm {
        /// The login name.
        name: String,
    },
}

/// Runs `provisor user`.
pub fn run(site: SiteArgs, cmd: UserCommand) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match cmd {
        UserCommand::Add { name, role, password_stdin } => {
            if name.trim().is_empty() || name.len() > 100 || name.chars().any(|c| c.is_control() || c == ':') {
                bail!("the name: 1 to 100 characters, no control characters or ':'");
            }
            let password = if password_stdin { read_stdin()? } else { ask_twice()? };
            if password.chars().count() < MIN_PASSWORD {
                bail!("the password is too short: at least {MIN_PASSWORD} characters");
            }
            runtime.block_on(async {
                let store = site.open(Access::Write).await?;
                let now = provisor_server::provision::unix_ms(std::time::SystemTime::now());
                store.add_user(&AdminUser::new(&name, role, &password, now)?).await?;
                crate::token_cmd::audit(&site, &store, format!("added user {name:?} ({})", role.as_str())).await;
                eprintln!("user {name:?} ({}) added: log in on the admin listener's /ui/", role.as_str());
                Ok(ExitCode::SUCCESS)
            })
        }
        UserCommand::List => runtime.block_on(async {
            let store = site.open(Access::Read).await?;
            for u in store.users().await? {
                println!("{}\t{}\t{}", u.name, u.role.as_str(), u.created_at);
            }
            Ok(ExitCode::SUCCESS)
        }),
        UserCommand::Rm { name } => runtime.block_on(async {
            let store = site.open(Access::Write).await?;
            if !store.remove_user(&name).await? {
                bail!("no user named {name:?} (provisor user list shows them)");
            }
            crate::token_cmd::audit(&site, &store, format!("removed user {name:?}")).await;
            eprintln!("user {name:?} removed; their sessions have ended");
            Ok(ExitCode::SUCCESS)
        }),
    }
}

fn read_stdin() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Asks for the password twice on the terminal, without echo.
fn ask_twice() -> Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for the password on: pass --password-stdin and give it on standard input");
    }
    let first = ask("password: ")?;
    let second = ask("again: ")?;
    if first != second {
        bail!("the two passwords differ");
    }
    Ok(first)
}

fn ask(prompt: &str) -> Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let _quiet = Quiet::new();
    let line = read_stdin();
    eprintln!();
    line
}

/// Turns the terminal's echo off while it lives.
struct Quiet(Option<libc::termios>);

impl Quiet {
    fn new() -> Quiet {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed termios that tcgetattr fills; nothing else is touched.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return Quiet(None);
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            libc::tcsetattr(0, libc::TCSANOW, &t);
            Quiet(Some(saved))
        }
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        if let Some(saved) = self.0 {
            // SAFETY: restores the settings tcgetattr returned, on the same fd.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &saved);
            }
        }
    }
}
