//! `provisor serve`, `provisor init` and `provisor dhcp-snippet`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use provisor_server::config::{Config, SAMPLE};
use provisor_server::log_line::{LogFormat, install_access_log};
use provisor_server::serve::{self, DEMO_DEVICES};
use provisor_server::{dhcp, render};

use crate::log_queue::LogQueue;

/// `provisor serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// The configuration file (see `provisor init`); without it $PROVISOR_CONFIG, then /etc/provisor/provisor.toml.
    /// Without any, a demo runs on loopback ports with its data in --data-dir: HTTP 8080, HTTPS 8443 (generated
    /// CA), TFTP 6969, syslog 5514, and four demo devices.
    #[arg(long, short, env = "PROVISOR_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The demo's data directory (ignored with --config, whose `data_dir` counts).
    #[arg(long, env = "PROVISOR_DATA_DIR", default_value = "provisor-data")]
    data_dir: PathBuf,
    /// Log format: text, or json (every line a JSON object: the banner, the access log, TFTP transfers, warnings).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log: String,
}

/// `provisor init`.
#[derive(Args)]
pub struct InitArgs {
    /// The directory to create (it may exist, but files in it are never overwritten).
    dir: PathBuf,
    /// How phones prove who they are before they get their secrets: `certificate` (their client certificate over
    /// HTTPS, signed by the phone CA) or `mac` (only their MAC: secrets go out once, on the first HTTPS fetch after
    /// a device is added or re-armed). Asked when missing and a terminal is attached; required otherwise.
    #[arg(long, value_enum)]
    identity: Option<IdentityChoice>,
    /// With `--identity certificate`: the CA certificate (PEM) that signs your phones' certificates (copied into
    /// DIR as phone-ca.pem), or `test` to make the site's own generated CA the phone CA (labs, the simulator,
    /// `provisor cert phone`; no real phone carries such a certificate).
    #[arg(long, value_name = "FILE|test")]
    phone_ca: Option<String>,
}

/// `provisor init --identity`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdentityChoice {
    /// A client certificate signed by the phone CA.
    Certificate,
    /// The MAC alone, once per arming.
    Mac,
}

/// Which DHCP server.
#[derive(Clone, Copy, ValueEnum)]
pub enum DhcpServer {
    /// ISC Kea (JSON).
    Kea,
    /// dnsmasq.
    Dnsmasq,
    /// ISC dhcpd.
    Isc,
}

/// `provisor dhcp-snippet`.
#[derive(Args)]
pub struct DhcpArgs {
    /// The DHCP server to write for.
    #[arg(value_enum)]
    server: DhcpServer,
    /// The configuration whose TFTP and HTTP addresses to announce; without it $PROVISOR_CONFIG, then
    /// /etc/provisor/provisor.toml, then the demo's.
    #[arg(long, short, env = "PROVISOR_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The address phones reach the server at, if `public_host` is a name (option 150 needs an IPv4 address).
    #[arg(long)]
    server_ip: Option<std::net::Ipv4Addr>,
    /// One class per model (matched on the whole vendor class, `Cisco Systems, Inc. IP Phone MODEL`), instead of
    /// one for enterprise and one for MPP phones (split by the `3PCC` suffix). Repeatable.
    #[arg(long = "model", value_name = "MODEL")]
    model: Vec<String>,
}

/// The site's configuration (`--config`, `PROVISOR_CONFIG`, `/etc/provisor/provisor.toml`), or the demo's.
fn load(config: Option<&Path>, data_dir: &Path) -> anyhow::Result<(Config, bool)> {
    Ok(match crate::site::load_config(config)? {
        Some((_, config)) => (config, false),
        None => (Config::demo(data_dir), true),
    })
}

/// Whether `--log json` is on: then the banner and the stop messages are log events too (every line is JSON).
static JSON_LOG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A line for the operator: plain text on standard error, or a JSON log event with `--log json`.
macro_rules! say {
    ($($arg:tt)*) => {{
        let text = format!($($arg)*);
        if JSON_LOG.load(std::sync::atomic::Ordering::Relaxed) {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                tracing::info!(target: "provisor::banner", "{}", line.trim_end());
            }
        } else {
            LogWriter::line(&text);
        }
    }};
}

/// Where `serve` writes its log and banner: standard error, through [`LogQueue`] (written in batches by one thread).
static LOG_QUEUE: std::sync::OnceLock<LogQueue> = std::sync::OnceLock::new();

/// The log's writer.
struct LogWriter;

impl LogWriter {
    /// Starts the writer thread; the guard writes what is queued when dropped.
    fn start() -> (LogQueue, crate::log_queue::Flush) {
        let (queue, flush) = LogQueue::start(QuietStderr);
        let _ = LOG_QUEUE.set(queue.clone());
        (queue, flush)
    }

    /// One line of text (the banner), in order with the log events.
    fn line(text: &str) {
        match LOG_QUEUE.get() {
            Some(q) => q.push(format!("{text}\n").as_bytes()),
            None => eprintln!("{text}"),
        }
    }

    /// Log lines dropped so far because the queue was full.
    fn dropped() -> usize {
        LOG_QUEUE.get().map_or(0, LogQueue::dropped)
    }
}

/// Standard error that never reports a failed write: a server whose log reader went away (a closed pipe) goes on
/// serving, and has nowhere to report it.
struct QuietStderr;

impl std::io::Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How long a stopping server lets requests and transfers in progress finish.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `provisor serve`: until SIGINT or SIGTERM, then stops gracefully.
pub fn run_serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // Colour only for a terminal: a log file or journald gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A server whose log reader went away (a closed pipe) goes on serving: a failed log write is not reported on the
    // same closed stderr (which would panic the request that logged).
    let (log_queue, _log_guard) = LogWriter::start();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(log_queue)
        .with_ansi(ansi)
        .log_internal_errors(false);
    if args.log == "json" {
        JSON_LOG.store(true, std::sync::atomic::Ordering::Relaxed);
        builder.json().init();
    } else {
        builder.init();
    }
    // The access line (one per request) is formatted by the server itself, as the subscriber would, into the same
    // queue: tracing's formatter cost a fifth of a cached answer. Coloured output keeps the subscriber's.
    if !ansi {
        let format = if args.log == "json" { LogFormat::Json } else { LogFormat::Text };
        if let Some(queue) = LOG_QUEUE.get() {
            install_access_log(format, |line| queue.push(line));
        }
    }
    let config_file = crate::site::config_file(args.config.as_deref());
    let (mut config, is_demo) = load(args.config.as_deref(), &args.data_dir)?;
    let demo_firmware =
        (is_demo && config.data_dir != Path::new(serve::MEMORY)).then(|| config.data_dir.join("firmware"));
    if let Some(dir) = &demo_firmware {
        config.firmware.dir = Some(dir.clone());
        // The demo serves enterprise phones too: its own trust chain (made once), on loopback 6970 and 6971.
        config.enterprise = Some(provisor_server::config::Enterprise {
            trust_dir: config.data_dir.join("enterprise"),
            http_listen: Some(([127, 0, 0, 1], 6970).into()),
            https_listen: Some(([127, 0, 0, 1], 6971).into()),
            plain_secrets: provisor_server::config::PlainSecrets::UntilCertificate,
            loads: Default::default(),
        });
    }
    if !is_demo && config.inventory.secrets_key_file.is_none() && config.data_dir != Path::new(serve::MEMORY) {
        tracing::warn!(
            "[inventory] secrets_key_file is not set: device keys and line passwords are stored in clear in the \
             inventory (`provisor secrets init --key-file FILE` seals them)"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        if let Some(e) = config.enterprise.as_ref().filter(|_| demo_firmware.is_some())
            && !e.trust_dir.join("ITLFile.tlv").exists()
        {
            let _ = std::fs::remove_dir_all(&e.trust_dir);
            crate::trust_cmd::write_trust_dir(&e.trust_dir, "Provisor demo", vec!["127.0.0.1".into()], false)?;
        }
        let mut running = serve::start(config.clone()).await?;
        if let Some(dir) = &demo_firmware {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        if is_demo {
            let store = running.provisioner.store().clone();
            serve::demo(&store, running.provisioner.config(), running.generated.as_ref()).await?;
        }
        print_banner(&running, is_demo).await;
        tokio::spawn(async {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                every.tick().await;
                metrics::counter!("provisor_log_lines_dropped_total").absolute(LogWriter::dropped() as u64);
            }
        });
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut hangup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                () = running.wait() => break,
                _ = tokio::signal::ctrl_c() => break,
                _ = terminate.recv() => break,
                _ = hangup.recv() => reload(&running, config_file.as_deref()),
            }
        }
        say!("stopping: finishing the requests and transfers in progress (at most {} s)", SHUTDOWN_GRACE.as_secs());
        if !running.shutdown(SHUTDOWN_GRACE).await {
            say!("stopped with transfers still in progress after {} s", SHUTDOWN_GRACE.as_secs());
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// SIGHUP: reads the configuration file again and reloads what can change while serving ([`serve::Running::reload`]).
fn reload(running: &serve::Running, config_file: Option<&Path>) {
    let new = match config_file {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("reload (SIGHUP): {e}; nothing was changed");
                return;
            }
        },
        None => running.provisioner.config().clone(),
    };
    for note in running.reload(&new) {
        tracing::info!("reload (SIGHUP): {note}");
    }
}

async fn print_banner(running: &serve::Running, is_demo: bool) {
    let config = running.provisioner.config();
    use provisor_server::inventory::Store;
    let p = |label: &str, a: Option<std::net::SocketAddr>, scheme: &str| match a {
        Some(a) => say!("  {label:<7} {scheme}{a}"),
        None => say!("  {label:<7} off"),
    };
    say!("Provisor {} is serving{}:", env!("CARGO_PKG_VERSION"), if is_demo { " a demo" } else { "" });
    p("HTTP", running.http, "http://");
    p("HTTPS", running.https, "https://");
    p("TFTP", running.tftp, "udp ");
    p("syslog", running.syslog, "udp ");
    p("admin", running.admin, "http://");
    if running.provisioner.config().enterprise.is_some() {
        p("ent-http", running.enterprise_http, "http://");
        p("ent-https", running.enterprise_https, "https://");
    }
    if running.in_memory() {
        say!("  data    in memory (generated keys in {})", running.data_dir.display());
    } else {
        say!("  data    {}", running.data_dir.display());
    }
    // The demo's commands show a device's key and random path: never for a real site's devices.
    if !is_demo {
        return;
    }
    let Some(http) = running.http else { return };
    let store = running.provisioner.store();
    let Ok(Some(first)) = store.device(&DEMO_DEVICES[0].0.parse().expect("demo MAC")).await else { return };
    let data = config.data_dir.display();
    say!("\nTry it (demo phone {} = {}):", first.mac, first.model);
    say!("  curl -A 'Cisco-{}/12.0.1 ({})' http://{http}/{}.xml", first.model, first.mac, first.mac);
    say!("      # the bootstrap profile: no secrets, it sends the phone to HTTPS");
    if let (Some(https), Some(_)) = (running.https, &running.generated) {
        say!(
            "  curl --cacert {data}/tls/ca.pem --cert {data}/tls/demo-phone.pem --key {data}/tls/demo-phone.key \
             https://{https}/{}.xml",
            first.mac
        );
        say!("      # with the phone's client certificate: its full profile, key and random path");
    }
    say!(
        "  curl -s http://{http}/profile/{}/profile.cfg | openssl enc -d -aes-256-cbc -md {} -k {} | gunzip",
        first.secrets.path_token,
        first.secrets.aes_digest,
        first.secrets.aes_key
    );
    say!("      # what later resyncs fetch: gzip + AES-256-CBC with the device's key");
    if let Some(tftp) = running.tftp {
        say!("  tftp {} {} -c get /profile/{}/profile.cfg p.cfg", tftp.ip(), tftp.port(), first.secrets.path_token);
    }
    if let Some(s) = running.syslog {
        say!(
            "  echo '<14>{} {} -- Resync failed: demo' > /dev/udp/{}/{}",
            first.model,
            colon_mac(first.mac.as_str()),
            s.ip(),
            s.port()
        );
    }
    say!("  provisor device --data-dir {data} show {}", first.mac);
    if let Some(admin) = running.admin {
        say!("  curl http://{admin}/metrics        # the admin listener, not the phones' ports");
    }
    say!("Stop with Ctrl-C.");
}

/// `00:11:aa:bb:cc:01` (the phones' `$MAC`).
fn colon_mac(hex: &str) -> String {
    hex.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":")
}

/// Asks on the terminal which identity mode the site uses.
fn ask_identity() -> anyhow::Result<IdentityChoice> {
    use std::io::{BufRead, Write};
    eprintln!("How do your phones prove who they are before they get their secrets?");
    eprintln!(
        "  certificate  their client certificate over HTTPS (Cisco phones carry one; you need the CA that signs it)"
    );
    eprintln!("  mac          only their MAC: secrets go out once, on the first HTTPS fetch after a device is added");
    loop {
        eprint!("identity [certificate/mac]: ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 {
            bail!("no answer: give --identity certificate|mac");
        }
        match line.trim() {
            "certificate" | "c" => return Ok(IdentityChoice::Certificate),
            "mac" | "m" => return Ok(IdentityChoice::Mac),
            other => eprintln!("{other:?} is neither certificate nor mac"),
        }
    }
}

/// The sample configuration with the identity mode and phone CA filled in.
fn site_config(identity: IdentityChoice, phone_ca: Option<&str>) -> String {
    let mut text = SAMPLE.replacen("\n# secrets_key_file = \"secrets.key\"", "\nsecrets_key_file = \"secrets.key\"", 1);
    if identity == IdentityChoice::Mac {
        text = text.replacen("\nidentity = \"certificate\"", "\nidentity = \"mac\"", 1);
    }
    match phone_ca {
        Some("test") => text = text.replacen("\ntest_phone_ca = false", "\ntest_phone_ca = true", 1),
        Some(_) => {
            text = text.replacen("# client_ca = [\"cisco-manufacturing-ca.pem\"]", "client_ca = [\"phone-ca.pem\"]", 1)
        }
        None => {}
    }
    text
}

/// Runs `provisor init DIR`.
pub fn run_init(args: InitArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.dir;
    let identity = match args.identity {
        Some(i) => i,
        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => ask_identity()?,
        None => bail!(
            "--identity certificate|mac is required (no terminal to ask on): certificate if your phones present a \
             client certificate signed by a CA you have (add --phone-ca FILE, or --phone-ca test for a lab), mac \
             otherwise"
        ),
    };
    if identity == IdentityChoice::Mac && args.phone_ca.is_some() {
        bail!("--phone-ca goes with --identity certificate (with mac, phones present no certificate)");
    }
    let phone_ca = args.phone_ca.as_deref();
    // A phone CA file must hold a certificate; it is copied beside the configuration.
    let phone_ca_pem = match phone_ca {
        Some("test") | None => None,
        Some(file) => {
            let pem = std::fs::read_to_string(file).with_context(|| format!("--phone-ca {file}"))?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                bail!("--phone-ca {file}: no PEM certificate in it");
            }
            Some(pem)
        }
    };
    std::fs::create_dir_all(dir.join("templates")).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::create_dir_all(dir.join("firmware")).with_context(|| format!("creating {}/firmware", dir.display()))?;
    let config_text = site_config(identity, phone_ca);
    // Every template the configuration says can be overridden, as the built-in one, to start editing from.
    let mut files: Vec<(PathBuf, &str)> = vec![
        (dir.join("provisor.toml"), config_text.as_str()),
        (dir.join("templates").join(render::MPP), render::MPP_TEMPLATE),
        (dir.join("templates").join(render::BOOTSTRAP), render::BOOTSTRAP_TEMPLATE),
        (dir.join("templates").join(render::SEP), render::SEP_TEMPLATE),
        (dir.join("templates").join(render::XMLDEFAULT), render::XMLDEFAULT_TEMPLATE),
        (
            dir.join("devices.csv"),
            "mac,model,serial,description,group,User_ID_1_,Password_1_,Display_Name_1_\n\
             00:0e:08:aa:bb:01,CP-8841-3PCC,FCH0000A001,Reception,,201,change-me-201,Reception\n\
             00:0e:08:aa:bb:02,CP-7832-3PCC,FCH0000A002,Meeting room,,202,change-me-202,Meeting room\n",
        ),
    ];
    if let Some(pem) = &phone_ca_pem {
        files.push((dir.join("phone-ca.pem"), pem.as_str()));
    }
    for (path, text) in &files {
        if path.exists() {
            eprintln!("kept     {}", path.display());
            continue;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote    {}", path.display());
    }
    let config = dir.join("provisor.toml");
    let loaded = Config::load(&config)?;
    if let Some(key) = &loaded.inventory.secrets_key_file {
        if key.exists() {
            eprintln!("kept     {}", key.display());
        } else {
            provisor_server::inventory::at_rest::SiteKey::create_file(key)?;
            eprintln!(
                "wrote    {} (the master key of the inventory's secrets: back it up apart from the data)",
                key.display()
            );
        }
    }
    eprintln!("\nidentity: {}", loaded.provisioning.identity.as_str());
    if let Some(problem) = loaded.serving_problem() {
        eprintln!("note: provisor serve will not start yet: {problem}");
    }
    eprintln!(
        "\nNext (every command finds the site from --config, $PROVISOR_CONFIG or {}):",
        crate::site::SYSTEM_CONFIG
    );
    eprintln!("  export PROVISOR_CONFIG={}", config.display());
    eprintln!("  provisor device import {}/devices.csv", dir.display());
    if loaded.https.test_phone_ca {
        eprintln!("  provisor cert phone --mac 000e08aabb01 --model CP-8841-3PCC   # a test phone certificate");
    }
    if loaded.provisioning.identity == provisor_server::config::Identity::Mac {
        eprintln!(
            "  # each device added is armed: its first HTTPS fetch gets its secrets (provisor device arm MAC re-arms)"
        );
    }
    eprintln!("  provisor doctor                          # boots simulated phones through the site, says what to fix");
    eprintln!("  provisor serve");
    Ok(ExitCode::SUCCESS)
}

/// Runs `provisor dhcp-snippet`.
pub fn run_dhcp(args: DhcpArgs) -> anyhow::Result<ExitCode> {
    let (config, _) = load(args.config.as_deref(), Path::new("provisor-data"))?;
    let ip = match args.server_ip {
        Some(ip) => ip,
        None => match config.public_host.parse() {
            Ok(ip) => ip,
            Err(_) => bail!("public_host {:?} is a name; give the IPv4 address with --server-ip", config.public_host),
        },
    };
    let tftp_port = config.tftp.listen.map(|a| a.port());
    if tftp_port.is_some_and(|p| p != 69) {
        eprintln!(
            "note: TFTP listens on port {}, but phones use port 69: listen on 69 (or redirect it) for options 150/66",
            tftp_port.unwrap_or_default()
        );
    }
    let announce = dhcp::Announce::for_site(&config, ip, args.model);
    if announce.mpp_url.is_none() {
        eprintln!("note: no [http] listener: MPP phones get only the TFTP address in option 66");
    }
    let server = match args.server {
        DhcpServer::Kea => dhcp::DhcpServer::Kea,
        DhcpServer::Dnsmasq => dhcp::DhcpServer::Dnsmasq,
        DhcpServer::Isc => dhcp::DhcpServer::Isc,
    };
    print!("{}", dhcp::snippet(server, &announce));
    Ok(ExitCode::SUCCESS)
}
