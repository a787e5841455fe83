//! `provisor doctor`: boots simulated phones through the configured site, as real phones would (their own trust:
//! public roots and what `Custom_CA_Rule` installs; their certificate, or none), and says what happens and what to
//! fix. Nothing of the site is changed: the site runs on a private rig (loopback, ephemeral ports, a scratch data
//! directory holding a copy of its TLS files and groups, and two test devices), and the site's name resolves to it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use provisor_phone::drive::{self, Run, Transport};
use provisor_phone::phone::{Device as PhoneDevice, Event, Note, Phone};
use provisor_server::config::{Config, Identity};
use provisor_server::front::tls;
use provisor_server::inventory::{Device, Store};
use provisor_server::serve;

/// `provisor doctor`.
#[derive(Args)]
pub struct DoctorArgs {
    /// The site's configuration (default: $PROVISOR_CONFIG, then /etc/provisor/provisor.toml).
    #[arg(long, short, env = "PROVISOR_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Virtual time each simulated phone runs (a first boot should reach its lines within 2 minutes).
    #[arg(long = "for", default_value = "5m", value_parser = drive::parse_duration)]
    duration: u64,
    /// Print each simulated phone's whole timeline.
    #[arg(long, short)]
    verbose: bool,
}

/// The test devices (locally administered MACs, never a real phone's).
const WITH_CERTIFICATE: &str = "02d0c7000001";
const WITHOUT_CERTIFICATE: &str = "02d0c7000002";
/// Their line, to see whether it arrived.
const LINE: &str = "doctor";
const MODEL: &str = "CP-8841-3PCC";

/// One simulated phone and what the site's identity mode says should happen to it.
struct Case {
    what: &'static str,
    mac: &'static str,
    certificate: Option<(PathBuf, PathBuf)>,
    expect_lines: bool,
}

/// Runs `provisor doctor`.
pub fn run(args: DoctorArgs) -> Result<ExitCode> {
    let Some((path, site)) = crate::site::load_config(args.config.as_deref())? else {
        bail!("no site configuration: pass --config FILE, set PROVISOR_CONFIG, or install /etc/provisor/provisor.toml");
    };
    println!("site        {}", path.display());
    println!("identity    {}", site.provisioning.identity.as_str());
    if let Some(problem) = site.serving_problem() {
        println!("\n✗ provisor serve refuses to start: {problem}");
        return Ok(ExitCode::FAILURE);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(examine(&path, site, args.duration, args.verbose))
}

/// The rig's configuration: the site's, on loopback ephemeral ports, with its data in `scratch`.
fn rig(site: &Config, scratch: &Path) -> Result<Config> {
    let mut rig = site.clone();
    let loopback = |a: Option<std::net::SocketAddr>| a.map(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    rig.http.listen = loopback(site.http.listen);
    rig.https.listen = loopback(site.https.listen);
    rig.tftp.listen = loopback(site.tftp.listen);
    rig.syslog.listen = None;
    rig.admin.listen = None;
    rig.data_dir = scratch.to_path_buf();
    // The rig keeps its own inventory: never the site's database.
    rig.inventory = provisor_server::config::InventoryConfig::default();
    // The site's own generated CA and server certificate, so phones see what they would see.
    let tls_dir = site.data_dir.join("tls");
    if site.https.cert.is_none() && tls_dir.exists() {
        std::fs::create_dir_all(scratch.join("tls"))?;
        for entry in std::fs::read_dir(&tls_dir).with_context(|| format!("{}", tls_dir.display()))? {
            let entry = entry?;
            std::fs::copy(entry.path(), scratch.join("tls").join(entry.file_name()))?;
        }
    }
    Ok(rig)
}

async fn examine(path: &Path, site: Config, duration: u64, verbose: bool) -> Result<ExitCode> {
    let scratch = tempfile::tempdir().context("a scratch directory")?;
    let running = serve::start(rig(&site, scratch.path())?).await.context("starting the site on a private rig")?;
    let store = running.provisioner.store().clone();
    // The site's groups (what every device inherits), read from its inventory if it has one.
    let inventory = site.data_dir.join("inventory.sqlite");
    let mut groups = 0;
    if site.inventory.database_url().is_some() || inventory.exists() {
        let real = serve::open_store(&site).await.context("reading the site's inventory")?;
        let mut pending = real.groups().await?;
        // Parents first.
        while !pending.is_empty() {
            let before = pending.len();
            let mut left = Vec::new();
            for g in pending {
                match store.put_group(&g).await {
                    Ok(()) => groups += 1,
                    Err(_) => left.push(g),
                }
            }
            if left.len() == before {
                break;
            }
            pending = left;
        }
    }
    println!(
        "groups      {groups} copied from {}",
        if inventory.exists() { "the site's inventory" } else { "nowhere (no inventory yet)" }
    );
    for mac in [WITH_CERTIFICATE, WITHOUT_CERTIFICATE] {
        let mut d =
            Device::blank(mac.parse().map_err(anyhow::Error::msg)?, provisor_server::inventory::Secrets::generate()?);
        d.model = MODEL.into();
        d.params.insert("User_ID_1_".into(), LINE.into());
        store.add_device(&d).await?;
    }
    running.provisioner.refresh().await;

    let identity = site.provisioning.identity;
    let mut cases = Vec::new();
    match (&running.generated, site.https.test_phone_ca) {
        (Some(g), true) => {
            let stem = scratch.path().join("doctor-phone");
            let pair = tls::issue_phone_certificate(g, &stem, WITH_CERTIFICATE, MODEL, "FCHDOCTOR01")?;
            cases.push(Case {
                what: "a phone with a certificate from the phone CA (the site's test CA)",
                mac: WITH_CERTIFICATE,
                certificate: Some(pair),
                expect_lines: true,
            });
        }
        _ if identity == Identity::Certificate => println!(
            "·           a phone with a Cisco manufacturing certificate is not simulated: doctor holds no key of your \
             client_ca; once its certificate verifies it goes the way a phone with the test CA would"
        ),
        _ => {}
    }
    cases.push(Case {
        what: "a phone without a certificate",
        mac: WITHOUT_CERTIFICATE,
        certificate: None,
        expect_lines: identity == Identity::Mac,
    });

    let hosts: HashMap<String, std::net::IpAddr> =
        [(site.public_host.clone(), std::net::IpAddr::from([127, 0, 0, 1]))].into_iter().collect();
    let mut all_well = true;
    for case in cases {
        println!("\n{}, {MODEL} {}:", case.what, case.mac);
        let transport = Transport::new(None, case.certificate.as_ref().map(|(c, k)| (c.as_path(), k.as_path())))
            .context("the phone's HTTPS")?
            .with_hosts(hosts.clone());
        let mut device = PhoneDevice::new(case.mac, MODEL, "sip88xx.12-0-1MPP");
        device.certificate = case.certificate.is_some();
        let dhcp = running.tftp.map(|a| format!("127.0.0.1:{}", a.port()));
        let mut phone = Phone::new(device, dhcp.clone(), 1);
        if dhcp.is_none()
            && let Some(http) = running.http
        {
            // No TFTP: DHCP option 160 hands out the bootstrap URL (provisor dhcp-snippet).
            phone.preset("Profile_Rule", &format!("http://{}:{}/$MA.xml", site.public_host, http.port()));
        }
        let run = Run { until: duration, speed: 200.0, report_after_resync: false, script: Vec::new(), sip: None };
        drive::simulate(&mut phone, &transport, run, |n| {
            if verbose {
                println!("  {:>6} s  {}", n.at, n.event);
            }
        })
        .await?;
        let lines = phone.state().value("User_ID_1_") == LINE;
        let at = phone
            .notes()
            .iter()
            .find(|n| matches!(&n.event, Event::Applied { names, .. } if names.iter().any(|x| x == "GPP_SA")))
            .map(|n| n.at);
        let stranded = !lines && !phone.state().value("Profile_Rule").contains("/$MA.xml");
        match (lines, case.expect_lines) {
            (true, true) => {
                let when = at.map_or(String::new(), |t| format!(" {t} s after its first boot"));
                println!("  ✓ reached its lines{when}");
                if at.is_some_and(|t| t > 120) {
                    println!("  ! slower than 2 minutes: lower [provisioning] bootstrap_retry_s");
                }
            }
            (false, false) => println!(
                "  ✓ stays on the bootstrap profile and gets no secret (identity = {}), retrying every {} s; it is \
                 not stranded: its Profile_Rule still leads back here",
                identity.as_str(),
                site.provisioning.bootstrap_retry_s
            ),
            (true, false) => {
                all_well = false;
                println!("  ✗ got its lines without proving who it is: check secrets_without_certificate");
            }
            (false, true) => {
                all_well = false;
                println!("  ✗ did not reach its lines in {duration} s");
                for fix in diagnose(phone.notes(), &site) {
                    println!("    {fix}");
                }
            }
        }
        if stranded {
            all_well = false;
            println!("  ✗ stranded: its Profile_Rule no longer leads to the bootstrap URL");
        }
    }
    running.shutdown(std::time::Duration::from_secs(5)).await;
    println!("\n(checked on a private copy of the site: {})", path.display());
    Ok(if all_well { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// What went wrong, from the phone's own events, and what to fix.
fn diagnose(notes: &[Note], site: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let errors: Vec<String> = notes
        .iter()
        .filter_map(|n| match &n.event {
            Event::FetchFailed { rule, error } => Some(format!("{rule}: {error}")),
            Event::CustomCaFailed { url, error } => Some(format!("Custom_CA_Rule {url}: {error}")),
            _ => None,
        })
        .collect();
    if let Some(last) = errors.last() {
        out.push(format!("last error: {last}"));
    }
    let any = |needle: &str| errors.iter().any(|e| e.contains(needle));
    if any("UnknownIssuer") || any("invalid peer certificate") {
        if site.https.public_ca {
            out.push(
                "fix: [https] public_ca = true, but phones do not trust the server certificate: use a certificate \
                 from a public CA, or set public_ca = false so the bootstrap installs the site's CA"
                    .into(),
            );
        } else {
            out.push(
                "fix: phones do not trust the server certificate even with the site's CA installed: put the CA that \
                 issued it last in [https] cert (it is what /ca.pem serves)"
                    .into(),
            );
        }
    }
    if any("NotValidForName") {
        out.push(format!("fix: the server certificate does not name public_host {:?}", site.public_host));
    }
    if any("status 403") || any("http_get failed (status 403)") {
        out.push("fix: refused (403): check [provisioning] trusted_networks and the phone CA".into());
    }
    if out.len() <= 1 {
        out.push("see the whole story: provisor phone simulate --mac ... --dhcp-tftp HOST:PORT (without --ca)".into());
    }
    out
}
