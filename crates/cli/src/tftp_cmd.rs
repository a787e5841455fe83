//! `provisor tftp ...`: a standalone TFTP server for a directory, and a client.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use provisor_tftp::client::ClientConfig;
use provisor_tftp::content::FsSource;
use provisor_tftp::packet::Mode;
use provisor_tftp::server::ServerConfig;
use provisor_tftp::service::{Service, ServiceConfig, UploadConfig};

use crate::files::write_output;

#[derive(Subcommand)]
pub enum TftpCommand {
    /// Serve the files under a directory over TFTP (read-only), like tftpd-hpa, with blksize, tsize, timeout,
    /// windowsize and block-number rollover. One log line per transfer on standard error.
    Serve {
        /// The directory to serve; requests can never leave it (.., absolute paths, symbolic links).
        #[arg(long)]
        root: PathBuf,
        /// Address and port to listen on (port 69 needs root or CAP_NET_BIND_SERVICE).
        #[arg(long, default_value = "0.0.0.0:69")]
        listen: SocketAddr,
        /// Largest block size granted; larger requests are clamped (1468 fits a 1500-byte MTU).
        #[arg(long, default_value_t = 1468, value_parser = clap::value_parser!(u16).range(8..=65464))]
        blksize_max: u16,
        /// Largest window (RFC 7440) granted.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
        windowsize_max: u16,
        /// Local ports for transfers, e.g. 50000-50999 (default: any ephemeral port).
        #[arg(long, value_name = "A-B", value_parser = parse_range)]
        port_range: Option<(u16, u16)>,
        /// Match file names without regard to case (phones ask for xmlDefault.CNF.XML).
        #[arg(long)]
        case_insensitive: bool,
        /// Options to ignore, comma-separated (e.g. tsize,windowsize), for clients that break on negotiation.
        #[arg(long, value_delimiter = ',')]
        refuse: Vec<String>,
        /// Most transfers at once. A full table drops the oldest transfer whose client never answered; when every
        /// client has, more requests get "Server busy" until some finish.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
        max_sessions: u64,
        /// Most transfers at once from one address.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
        max_sessions_per_address: u64,
        /// Seconds a transfer may go without progress before it is dropped, whatever timeout the client asked for.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
        max_stall: u64,
        /// Retransmission timeout in seconds when the client does not ask for one (fractions allowed, e.g. 0.2, like
        /// tftpd-hpa's -T in microseconds).
        #[arg(long, default_value_t = 1.0, value_parser = parse_timeout)]
        timeout: f64,
        /// Retransmissions before a transfer is abandoned.
        #[arg(long, default_value_t = 5)]
        retries: u32,
        /// Accept write requests (e.g. phone logs) into this directory: new files only, plain names only.
        /// Without it, write requests get ERROR 2.
        #[arg(long, value_name = "DIR")]
        upload_dir: Option<PathBuf>,
        /// The largest upload accepted, in bytes.
        #[arg(long, default_value_t = 1 << 20, requires = "upload_dir")]
        upload_max_bytes: u64,
    },
    /// Download a file from a TFTP server.
    Get {
        /// The server, HOST or HOST:PORT (default port 69).
        server: String,
        /// The file name to ask for.
        file: String,
        /// Where to write it (default: the file's base name; - for standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Ask for this block size.
        #[arg(long)]
        blksize: Option<u16>,
        /// Ask for this window (RFC 7440).
        #[arg(long)]
        windowsize: Option<u16>,
        /// Ask for this timeout, in seconds.
        #[arg(long)]
        timeout: Option<u8>,
        /// Do not ask for tsize.
        #[arg(long)]
        no_tsize: bool,
        /// Transfer in netascii mode.
        #[arg(long)]
        netascii: bool,
    },
    /// Upload a file to a TFTP server (a write request), as phones upload reports and logs.
    Put {
        /// The server, HOST or HOST:PORT (default port 69).
        server: String,
        /// The local file to send (- for standard input).
        file: PathBuf,
        /// The name to store it under (default: the file's base name).
        #[arg(long)]
        name: Option<String>,
        /// Ask for this block size.
        #[arg(long)]
        blksize: Option<u16>,
        /// Ask for this timeout, in seconds.
        #[arg(long)]
        timeout: Option<u8>,
        /// Do not offer tsize.
        #[arg(long)]
        no_tsize: bool,
        /// Transfer in netascii mode.
        #[arg(long)]
        netascii: bool,
    },
}

/// `HOST`, `HOST:PORT` or `[V6]:PORT` to an address (port 69 by default).
fn server_address(server: &str) -> Result<std::net::SocketAddr> {
    let with_port = if server.contains(':') && !server.starts_with('[') || server.contains("]:") {
        server.to_string()
    } else {
        format!("{server}:69")
    };
    with_port
        .to_socket_addrs()
        .with_context(|| format!("{server}: cannot resolve"))?
        .next()
        .with_context(|| format!("{server}: no address"))
}

/// A retransmission timeout in seconds: 0.01 to 255.
fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if (0.01..=255.0).contains(&t) => Ok(t),
        _ => Err(format!("{s:?} is not a number of seconds from 0.01 to 255")),
    }
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').ok_or("expected A-B, e.g. 50000-50999")?;
    let (a, b): (u16, u16) = (a.trim().parse().map_err(|_| "bad port")?, b.trim().parse().map_err(|_| "bad port")?);
    if a == 0 || a > b {
        return Err("expected 1 <= A <= B".into());
    }
    Ok((a, b))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

pub fn run(cmd: TftpCommand) -> Result<ExitCode> {
    match cmd {
        TftpCommand::Serve {
            root,
            listen,
            blksize_max,
            windowsize_max,
            port_range,
            case_insensitive,
            refuse,
            max_sessions,
            max_sessions_per_address,
            max_stall,
            timeout,
            retries,
            upload_dir,
            upload_max_bytes,
        } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .log_internal_errors(false)
                .init();
            let source = FsSource::new(&root, case_insensitive)
                .with_context(|| format!("{}: cannot serve this directory", root.display()))?;
            let config = ServiceConfig {
                transfer: ServerConfig {
                    blksize_max,
                    windowsize_max,
                    timeout: Duration::from_secs_f64(timeout),
                    retries,
                    refuse: refuse.iter().map(|s| s.trim().to_ascii_lowercase()).collect(),
                    max_stall: Duration::from_secs(max_stall),
                },
                port_range,
                max_sessions: max_sessions as usize,
                max_sessions_per_address: max_sessions_per_address as usize,
                upload: match upload_dir {
                    Some(dir) => Some(UploadConfig {
                        dir: dir.canonicalize().with_context(|| format!("{}: no such directory", dir.display()))?,
                        max_bytes: upload_max_bytes,
                    }),
                    None => None,
                },
                ..ServiceConfig::default()
            };
            let rt = runtime()?;
            rt.block_on(async {
                let service = Service::bind(listen, source, config)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                eprintln!("provisor tftp: serving {} on {}", root.display(), service.local_addr()?);
                tokio::select! {
                    r = service.run() => r.context("the TFTP server stopped"),
                    _ = tokio::signal::ctrl_c() => Ok(()),
                }
            })?;
            Ok(ExitCode::SUCCESS)
        }
        TftpCommand::Get { server, file, output, blksize, windowsize, timeout, no_tsize, netascii } => {
            let addr = server_address(&server)?;
            let config = ClientConfig {
                mode: if netascii { Mode::NetAscii } else { Mode::Octet },
                blksize,
                windowsize,
                timeout,
                tsize: !no_tsize,
                ..ClientConfig::default()
            };
            let result = runtime()?.block_on(provisor_tftp::fetch::download(addr, &file, config));
            let download = match result {
                Ok(d) => d,
                Err(e) => bail!("{file}: {e}"),
            };
            let out = output.unwrap_or_else(|| {
                PathBuf::from(Path::new(&file).file_name().map_or("download".into(), |n| n.to_os_string()))
            });
            write_output(&out, &download.data)?;
            Ok(ExitCode::SUCCESS)
        }
        TftpCommand::Put { server, file, name, blksize, timeout, no_tsize, netascii } => {
            let addr = server_address(&server)?;
            let data = if file.as_os_str() == "-" {
                let mut d = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut d).context("standard input")?;
                d
            } else {
                std::fs::read(&file).with_context(|| format!("{}: cannot read", file.display()))?
            };
            let name = match name {
                Some(n) => n,
                None => file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .context("--name is needed for standard input")?
                    .to_string(),
            };
            let config = ClientConfig {
                mode: if netascii { Mode::NetAscii } else { Mode::Octet },
                blksize,
                timeout,
                tsize: !no_tsize,
                ..ClientConfig::default()
            };
            if let Err(e) = runtime()?.block_on(provisor_tftp::fetch::upload(addr, &name, &data, config)) {
                bail!("{name}: {e}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
