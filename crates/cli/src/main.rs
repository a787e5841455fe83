//! `provisor`: the command-line front end. Argument parsing and output only; the work is in the library crates.

mod files;
mod profile_cmd;
mod rule_cmd;
mod tftp_cmd;

use std::process::ExitCode;

/// mimalloc instead of the system allocator: parsing and serving profiles allocate many small strings, and glibc's
/// malloc costs a quarter of parse + apply time (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// Provisioning server and toolkit for Cisco IP phones.
#[derive(Parser)]
#[command(name = "provisor", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse, lint, format, diff, encrypt, decrypt and repack MPP flat-profiles.
    #[command(subcommand)]
    Profile(profile_cmd::ProfileCommand),
    /// Expand macros, evaluate conditions and rules, and compute resync schedules, as a phone does.
    #[command(subcommand)]
    Rule(rule_cmd::RuleCommand),
    /// A TFTP server for a directory (like tftpd-hpa, with windowsize and rollover) and a TFTP client.
    #[command(subcommand)]
    Tftp(tftp_cmd::TftpCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Profile(cmd) => profile_cmd::run(cmd),
        Command::Rule(cmd) => rule_cmd::run(cmd),
        Command::Tftp(cmd) => tftp_cmd::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("provisor: {e:#}");
            ExitCode::FAILURE
        }
    }
}
