//! `provisor phone simulate` and `provisor phone explain`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use provisor_phone::drive::{self, Run, Transport};
use provisor_phone::phone::{Device, Note, Phone};

/// The phone.
#[derive(Args)]
pub struct PhoneArgs {
    /// MAC address.
    #[arg(long)]
    mac: String,
    /// Product name ($PN), e.g. CP-8841-3PCC.
    #[arg(long, default_value = "CP-8841-3PCC")]
    model: String,
    /// Running firmware ($SWVER).
    #[arg(long, default_value = "sip88xx.11-0-1MPP")]
    firmware: String,
    /// Serial number ($SN).
    #[arg(long)]
    serial: Option<String>,
    /// The TFTP server DHCP hands out (option 66/150): HOST or HOST:PORT.
    #[arg(long, value_name = "HOST[:PORT]")]
    dhcp_tftp: Option<String>,
    /// Also trust these CA certificates (PEM) for HTTPS: an override a real phone does not have. Without it the phone
    /// trusts what a phone trusts: public roots and the CA its profile installed with Custom_CA_Rule.
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
    /// The phone's client certificate (PEM), presented over HTTPS ($CCERT = Installed).
    #[arg(long, value_name = "PEM", requires = "cert_key")]
    cert: Option<PathBuf>,
    /// The key of --cert (PEM).
    #[arg(long, value_name = "PEM")]
    cert_key: Option<PathBuf>,
    /// Simulated time to run, e.g. 90s, 30m, 24h.
    #[arg(long = "for", default_value = "2h", value_parser = duration)]
    duration: u64,
    /// Upload the Report_Rule reports after every successful resync.
    #[arg(long)]
    report: bool,
    /// Seed of the phone's random delays.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The phone's saved state: a flat profile applied before it boots (e.g. its `cfg.xml`); with --enterprise a
    /// directory that keeps its trust list, config and load across runs.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Start from this profile URL (sets `Profile_Rule`), e.g. https://prov.example.com/$MA.xml.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Something that happens at a set time (repeatable): AT:call:DURATION (a line is busy: due resyncs wait for
    /// it, at most Forced_Resync_Delay), AT:notify:EVENT (a SIP NOTIFY: resync, report, reboot_now, restart_now),
    /// AT:set:NAME=VALUE (a change on the phone's own web page, for Report_To_Server = On Local Change).
    /// E.g. --event 2h:call:45m --event 3h:notify:resync.
    #[arg(long = "event", value_name = "AT:KIND:ARG")]
    events: Vec<drive::Scripted>,
    /// The DNS server for --srv rules (HOST:PORT; default: the system's resolver).
    #[arg(long, value_name = "ADDR")]
    dns: Option<std::net::SocketAddr>,
    /// An enterprise (CUCM-firmware) phone instead of an MPP one: the short list (CTLSEP, ITLSEP, ITLFile, then its
    /// config or XMLDefault), its trust list rules, signed and encrypted configs, loads. --firmware is its load and
    /// --state a directory that keeps its trust list, config and load across runs.
    #[arg(long)]
    enterprise: bool,
    /// Enterprise: the phone's certificate (PEM), its MIC or LSC (encrypted configs are for it).
    #[arg(long, value_name = "PEM", requires = "phone_key")]
    phone_cert: Option<PathBuf>,
    /// Enterprise: the phone's private key (PEM) to decrypt its config with (the certificate beside it is used if
    /// --phone-cert is not given).
    #[arg(long, value_name = "PEM")]
    phone_key: Option<PathBuf>,
    /// Enterprise: erase the trust list first (Settings › Security › Trust List).
    #[arg(long)]
    erase_trust: bool,
    /// Enterprise: the HTTP port (6970; another for a server on an unprivileged port).
    #[arg(long, default_value_t = 6970)]
    http_port: u16,
    /// Enterprise: the HTTPS port (6971).
    #[arg(long, default_value_t = 6971)]
    https_port: u16,
}

/// `phone simulate|explain --enterprise`.
fn run_enterprise(args: PhoneArgs, mac: String, speed: f64, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    use provisor_phone::enterprise::{self, EnterprisePhone, Saved};
    let dhcp = args.dhcp_tftp.clone().context("an enterprise phone needs its TFTP server: --dhcp-tftp HOST[:PORT]")?;
    let state_dir = args.state.clone();
    let read_state = |name: &str| state_dir.as_ref().and_then(|d| std::fs::read(d.join(name)).ok());
    let saved = Saved {
        trust_list: read_state("ITLFile.tlv"),
        config: read_state("config.xml"),
        load: read_state("load").map(|b| String::from_utf8_lossy(&b).trim().to_string()),
    };
    let (certificate, key) = match &args.phone_key {
        Some(k) => {
            let pem = std::fs::read(k).with_context(|| format!("--phone-key {}", k.display()))?;
            let key = match provisor_trust::certificate::private_key(&pem).with_context(|| k.display().to_string())? {
                provisor_trust::KeyKind::Rsa(key) => *key,
                provisor_trust::KeyKind::Ec(_) => {
                    bail!("--phone-key {}: an EC key; configs are encrypted to RSA keys", k.display())
                }
            };
            let cert_pem = match &args.phone_cert {
                Some(c) => std::fs::read(c).with_context(|| format!("--phone-cert {}", c.display()))?,
                None => pem,
            };
            let cert = provisor_trust::Certificate::from_pem(&cert_pem).context("the phone certificate")?;
            (Some(cert), Some(key))
        }
        None => (None, None),
    };
    let device = enterprise::Device { mac: mac.clone(), model: args.model.clone(), load: args.firmware.clone() };
    let server = enterprise::Server::from_dhcp(&dhcp, args.http_port, args.https_port)
        .map_err(|e| anyhow::anyhow!("--dhcp-tftp {e}"))?;
    let mut phone = EnterprisePhone::new(device, server, saved, certificate, key);
    if args.erase_trust {
        phone.erase_trust();
    }
    let transport = match &dir {
        Some(d) => Transport::directory(d),
        None => Transport::new(None, None).context("setting up HTTPS")?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(drive::simulate_enterprise(&mut phone, &transport, args.duration, speed, |n| {
        println!("{}  {}", clock(n.at), n.event);
    }));
    if let Some(d) = &state_dir {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        let s = phone.saved();
        let put = |name: &str, bytes: Option<&[u8]>| -> anyhow::Result<()> {
            match bytes {
                Some(b) => std::fs::write(d.join(name), b).with_context(|| format!("{}/{name}", d.display())),
                None => {
                    let _ = std::fs::remove_file(d.join(name));
                    Ok(())
                }
            }
        };
        put("ITLFile.tlv", s.trust_list.as_deref())?;
        put("config.xml", s.config.as_deref())?;
        put("load", Some(phone.load().as_bytes()))?;
    }
    Ok(if phone.ready() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// `provisor phone ...`.
#[derive(Subcommand)]
pub enum PhoneCommand {
    /// Run one phone against real servers and print its timeline: what it fetched, which alternative matched and why,
    /// what changed, when it comes back.
    Simulate {
        #[command(flatten)]
        phone: PhoneArgs,
        /// Simulated seconds per real second (3600: an hour a second).
        #[arg(long, default_value_t = 3600.0)]
        speed: f64,
        /// Listen for SIP NOTIFYs from the proxy on this UDP address (e.g. 0.0.0.0:5060): each is challenged (401)
        /// and, answered with line 1's credentials, acted on (Event: resync, report, reboot_now, restart_now).
        #[arg(long, value_name = "ADDR")]
        sip: Option<std::net::SocketAddr>,
    },
    /// Dry run: the same steps without waiting for real time, against a server or a directory of files, with the
    /// phone's macro values at the end.
    Explain {
        #[command(flatten)]
        phone: PhoneArgs,
        /// Serve every URL's path from this directory instead of the network.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

fn duration(s: &str) -> Result<u64, String> {
    drive::parse_duration(s)
}

fn clock(t: u64) -> String {
    format!("+{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
}

fn print(n: &Note) {
    println!("{}  {}", clock(n.at), n.event);
}

/// Runs `provisor phone ...`.
pub fn run(cmd: PhoneCommand) -> anyhow::Result<ExitCode> {
    let (args, speed, dir, sip) = match cmd {
        PhoneCommand::Simulate { phone, speed, sip } => {
            if speed.is_nan() || speed <= 0.0 || speed.is_infinite() {
                bail!("--speed must be a positive number");
            }
            (phone, speed, None, sip)
        }
        PhoneCommand::Explain { phone, dir } => (phone, f64::INFINITY, dir, None),
    };
    let mac = args.mac.to_ascii_lowercase().replace([':', '-', '.'], "");
    if mac.len() != 12 || !mac.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--mac {:?} is not a MAC address", args.mac);
    }
    if args.enterprise {
        return run_enterprise(args, mac, speed, dir);
    }
    let mut device = Device::new(&mac, &args.model, &args.firmware);
    if let Some(s) = args.serial {
        device.serial = s;
    }
    device.certificate = args.cert.is_some();
    let transport = match &dir {
        Some(d) => Transport::directory(d),
        None => Transport::new(args.ca.as_deref(), args.cert.as_deref().zip(args.cert_key.as_deref()))
            .context("setting up HTTPS")?,
    };
    if let Some(ca) = args.ca.as_deref().filter(|_| dir.is_none()) {
        eprintln!(
            "note: --ca {}: the simulated phone also trusts this CA, which a real phone does not (a real phone trusts \
             its public roots and the CA Custom_CA_Rule installed); without --ca it behaves as a phone",
            ca.display()
        );
    }
    let transport = match args.dns {
        Some(dns) => transport.with_dns(dns),
        None => transport,
    };
    let mut phone = Phone::new(device, args.dhcp_tftp.clone(), args.seed);
    if let Some(path) = &args.state {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let profile = provisor_profile::Profile::parse(&bytes, &provisor_profile::ParseOptions::default())
            .map_err(|e| anyhow::anyhow!("{}:{}: {}", path.display(), e.position, e.kind))?;
        phone.preload(&profile);
    }
    if let Some(url) = &args.server {
        phone.preset("Profile_Rule", url);
    }
    let run = Run { until: args.duration, speed, report_after_resync: args.report, script: args.events.clone(), sip };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(drive::simulate(&mut phone, &transport, run, print))?;
    if speed.is_infinite() {
        println!("\nmacro values at the end:");
        for (name, value) in phone.variables().iter() {
            let shown = if ["SA", "SB", "SC", "SD"].contains(&name) && !value.is_empty() { "(secret)" } else { value };
            if !shown.is_empty() {
                println!("  ${name} = {shown}");
            }
        }
    }
    Ok(if phone.failures() == 0 { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// `provisor loadtest`.
#[derive(Args)]
pub struct LoadArgs {
    /// The TFTP server DHCP hands out (option 66/150): HOST or HOST:PORT. Several (comma-separated) spread the
    /// phones across nodes: phone i gets the (i mod n)th.
    #[arg(long, value_name = "HOST[:PORT]", value_delimiter = ',', required = true)]
    dhcp_tftp: Vec<String>,
    /// How many phones.
    #[arg(long, default_value_t = 100)]
    phones: usize,
    /// The first phone's MAC; the others count up from it.
    #[arg(long, default_value = "0c:00:00:00:00:00")]
    first_mac: String,
    /// Their model.
    #[arg(long, default_value = "CP-8841-3PCC")]
    model: String,
    /// Their firmware.
    #[arg(long, default_value = "sip88xx.11-0-1MPP")]
    firmware: String,
    /// Boots are spread evenly over this window, e.g. 60s.
    #[arg(long, default_value = "60s", value_parser = duration)]
    boot_window: u64,
    /// The stages every phone must complete, in order: tftp-bootstrap, https, http-encrypted.
    #[arg(long, default_value = "tftp-bootstrap,https,http-encrypted", value_delimiter = ',')]
    mix: Vec<provisor_phone::load::Stage>,
    /// Also trust these CA certificates (PEM) for HTTPS (an override: without it the phones trust what a phone trusts,
    /// public roots and the CA Custom_CA_Rule installs).
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
    /// The CA that signs the phones' client certificates (provisor serve's generated one: DATA/tls/ca.pem).
    #[arg(long, value_name = "PEM", requires = "client_ca_key")]
    client_ca_cert: Option<PathBuf>,
    /// Its key (DATA/tls/ca.key).
    #[arg(long, value_name = "PEM")]
    client_ca_key: Option<PathBuf>,
    /// Give up on a phone after this long.
    #[arg(long, default_value = "120s", value_parser = duration)]
    phone_timeout: u64,
    /// Where to write the chart (SVG).
    #[arg(long, default_value = "loadtest.svg")]
    chart: PathBuf,
    /// Enterprise phones: each walks the short list (CTLSEP, ITLSEP, ITLFile) to its signed (or plain) config and
    /// load, taking the ITL on first use; --mix does not apply.
    #[arg(long)]
    enterprise: bool,
    /// Enterprise: the HTTP port (6970).
    #[arg(long, default_value_t = 6970)]
    http_port: u16,
    /// Enterprise: the HTTPS port (6971).
    #[arg(long, default_value_t = 6971)]
    https_port: u16,
}

/// Runs `provisor loadtest`.
pub fn run_load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let hex = args.first_mac.to_ascii_lowercase().replace([':', '-', '.'], "");
    let first_mac = u64::from_str_radix(&hex, 16)
        .ok()
        .filter(|_| hex.len() == 12)
        .with_context(|| format!("--first-mac {:?} is not a MAC address", args.first_mac))?;
    let test = provisor_phone::load::LoadTest {
        phones: args.phones,
        first_mac,
        model: args.model,
        firmware: args.firmware,
        dhcp_tftp: args.dhcp_tftp,
        boot_window: std::time::Duration::from_secs(args.boot_window),
        stages: args.mix,
        server_ca: args.ca,
        client_ca: args.client_ca_cert.zip(args.client_ca_key),
        phone_timeout: std::time::Duration::from_secs(args.phone_timeout),
        enterprise: args.enterprise.then_some((args.http_port, args.https_port)),
    };
    let bar = indicatif::ProgressBar::new(test.phones as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} phones done, {msg} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let b = bar.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let summary = runtime.block_on(provisor_phone::load::run(&test, move |ok, failed| {
        b.set_position((ok + failed) as u64);
        b.set_message(format!("{failed} failed"));
    }))?;
    bar.finish();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    println!("phones {}", test.phones);
    println!("provisioned {}", summary.provisioned);
    println!("failed {}", test.phones - summary.provisioned);
    for (cause, n) in &summary.failed {
        println!("  {n} failed: {cause}");
    }
    println!("wall_s {:.2}", summary.wall.as_secs_f64());
    println!("last_provisioned_s {:.2}", summary.completions.last().copied().unwrap_or(0.0));
    println!("throughput {:.0} phones/s", summary.provisioned as f64 / summary.wall.as_secs_f64().max(1e-9));
    if let Some(cpu) = summary.cpu {
        println!("loadtest_cpu_s {:.2}", cpu.as_secs_f64());
    }
    println!("protocol requests failures p50_ms p99_ms max_ms");
    for (p, n, f, p50, p99, max) in summary.latencies() {
        println!("{p} {n} {f} {:.2} {:.2} {:.2}", ms(p50), ms(p99), ms(max));
    }
    let title = format!("provisor loadtest: {} phones, boot window {} s", test.phones, args.boot_window);
    std::fs::write(&args.chart, crate::chart::svg(&summary, &title))
        .with_context(|| format!("writing {}", args.chart.display()))?;
    println!("chart {}", args.chart.display());
    Ok(if summary.provisioned == test.phones { ExitCode::SUCCESS } else { ExitCode::from(2) })
}
