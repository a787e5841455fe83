//! `provisor`: the command-line front end. Argument parsing and output only; the work is in the library crates.

mod cert_cmd;
mod chart;
mod db_cmd;
mod device_cmd;
mod doctor_cmd;
mod files;
mod log_queue;
mod phone_cmd;
mod profile_cmd;
mod rule_cmd;
mod serve_cmd;
mod site;
mod tftp_cmd;
mod token_cmd;
mod trust_cmd;
mod user_cmd;

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
    /// The device inventory: add, list, show, set, rm, import CSV, export.
    Device {
        #[command(flatten)]
        site: site::SiteArgs,
        #[command(subcommand)]
        command: device_cmd::DeviceCommand,
    },
    /// Run the provisioning server (HTTP, HTTPS, TFTP, syslog). Without --config: a demo on loopback ports.
    Serve(serve_cmd::ServeArgs),
    /// Write a commented provisor.toml, templates and a sample inventory into a directory.
    Init(serve_cmd::InitArgs),
    /// Print the DHCP configuration for Kea, dnsmasq or ISC dhcpd: options 150 and 66 for enterprise phones, 66 and
    /// 160 (the bootstrap URL) for MPP phones, matched by vendor class (option 60).
    DhcpSnippet(serve_cmd::DhcpArgs),
    /// Simulate a Cisco MPP phone: against real servers (simulate) or as a dry run (explain).
    #[command(subcommand)]
    Phone(phone_cmd::PhoneCommand),
    /// Boot many simulated phones against a server, with a progress bar, a summary and a chart (SVG).
    Loadtest(phone_cmd::LoadArgs),
    /// Boot simulated phones through the configured site as real phones would (their own trust and certificates),
    /// on a private copy of it, and say what happens and what to fix.
    Doctor(doctor_cmd::DoctorArgs),
    /// Enterprise phones' security files: trust lists (ITL/CTL), signed (.sgn) and per-phone encrypted (.enc.sgn)
    /// configs: init, itl, ctl, sign, strip, verify, encrypt, decrypt, show.
    #[command(subcommand)]
    Trust(trust_cmd::TrustCommand),
    /// Certificates: a test phone certificate from the site's generated CA (`cert phone`).
    #[command(subcommand)]
    Cert(cert_cmd::CertCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on standard output, e.g.
    /// `provisor completions bash > /etc/bash_completion.d/provisor`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (provisor.1 and one per subcommand, e.g. provisor-serve.1) into a directory.
    Manpages {
        /// The directory (created if missing).
        dir: std::path::PathBuf,
    },
    /// The inventory's database: status, migrate, and copy between SQLite and PostgreSQL.
    Db {
        #[command(flatten)]
        site: site::SiteArgs,
        #[command(subcommand)]
        command: db_cmd::DbCommand,
    },
    /// The site master key that seals every per-device key and password at rest: init, rotate-master.
    Secrets {
        #[command(flatten)]
        site: site::SiteArgs,
        #[command(subcommand)]
        command: db_cmd::SecretsCommand,
    },
    /// Groups of devices sharing parameters (with inheritance; `defaults` and `model:<model>` apply automatically).
    Group {
        #[command(flatten)]
        site: site::SiteArgs,
        #[command(subcommand)]
        command: device_cmd::GroupCommand,
    },
    /// Tokens for the admin API on `[admin] listen` (`/api/v1`): create (shown once, stored hashed), list, revoke.
    Token {
        #[command(flatten)]
        site: site::SiteArgs,
        #[command(subcommand)]
        command: token_cmd::TokenCommand,
    },
    /// Logins of the web UI on `[admin] listen` (`/ui/`): add (password hashed with Argon2id), list, rm.
    User {
        #[command(flatten)]
        site: site::SiteArgs,
        #[command(subcommand)]
        command: user_cmd::UserCommand,
    },
    /// Print the admin API's OpenAPI 3.1 document (the one served at `/api/v1/openapi.json`), to generate a client
    /// or read offline.
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `provisor ... | head` ends quietly, as other Unix tools do, instead of panicking on a closed pipe. Servers keep
    // SIGPIPE ignored (Rust's default), so that nothing but an error reaches them through a pipe.
    #[cfg(unix)]
    if !matches!(cli.command, Command::Serve(_) | Command::Tftp(tftp_cmd::TftpCommand::Serve { .. })) {
        // SAFETY: called before any other thread exists; SIG_DFL is a valid disposition for SIGPIPE.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // Servers run without transparent huge pages: mimalloc asks for them on its arenas, and a long-running server
    // then holds whole 2 MB pages for a few live objects (the 60 s boot storm: 113 MB peak RSS with them, 94 MB
    // without, BENCHMARKS.md).
    #[cfg(target_os = "linux")]
    if matches!(cli.command, Command::Serve(_) | Command::Tftp(tftp_cmd::TftpCommand::Serve { .. })) {
        // SAFETY: prctl with PR_SET_THP_DISABLE takes integer arguments only and changes nothing but this flag.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
    let result = match cli.command {
        Command::Profile(cmd) => profile_cmd::run(cmd),
        Command::Rule(cmd) => rule_cmd::run(cmd),
        Command::Tftp(cmd) => tftp_cmd::run(cmd),
        Command::Device { site, command } => device_cmd::run_device(site, command),
        Command::Group { site, command } => device_cmd::run_group(site, command),
        Command::Token { site, command } => token_cmd::run(site, command),
        Command::User { site, command } => user_cmd::run(site, command),
        Command::Db { site, command } => db_cmd::run_db(site, command),
        Command::Secrets { site, command } => db_cmd::run_secrets(site, command),
        Command::Serve(args) => serve_cmd::run_serve(args),
        Command::Phone(cmd) => phone_cmd::run(cmd),
        Command::Loadtest(args) => phone_cmd::run_load(args),
        Command::Init(args) => serve_cmd::run_init(args),
        Command::DhcpSnippet(args) => serve_cmd::run_dhcp(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "provisor", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpages { dir } => manpages(&dir),
        Command::Cert(cmd) => cert_cmd::run(cmd),
        Command::Trust(cmd) => trust_cmd::run(cmd),
        Command::Doctor(args) => doctor_cmd::run(args),
        Command::Openapi => openapi(),
    };
    match result {
        Ok(code) => code,
        // A reader that stops early (`provisor device export | head`) is not an error.
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("provisor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `provisor openapi`: the admin API's OpenAPI document, as served.
fn openapi() -> anyhow::Result<ExitCode> {
    let text = provisor_server::front::api::openapi().to_pretty_json()?;
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// `provisor manpages DIR`: every page clap_mangen makes from the command definitions.
fn manpages(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    let count = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    eprintln!("wrote {count} man pages into {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
