//! The load generator: many simulated phones booting within a window, each walking the provisioning flow as fast as
//! the server answers (a completed resync starts the next at once), with per-protocol latencies and a completion
//! curve. `provisor loadtest` prints the summary and draws the chart.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use provisor_rules::url::Scheme;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
use tokio::sync::Mutex;

use crate::drive::Transport;
use crate::phone::{Action, Device, Phone, Purpose};

/// A step of the provisioning flow a load-test phone must complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// The bootstrap profile over TFTP (the factory rule `/$PSN.xml` from the DHCP server).
    TftpBootstrap,
    /// The full profile over HTTPS with the phone's client certificate.
    Https,
    /// The encrypted profile at its random path over plain HTTP.
    HttpEncrypted,
}

impl std::str::FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Stage, String> {
        match s.trim() {
            "tftp-bootstrap" => Ok(Stage::TftpBootstrap),
            "https" => Ok(Stage::Https),
            "http-encrypted" => Ok(Stage::HttpEncrypted),
            other => Err(format!("unknown stage {other:?} (tftp-bootstrap, https, http-encrypted)")),
        }
    }
}

/// A load test.
#[derive(Debug, Clone)]
pub struct LoadTest {
    /// How many phones.
    pub phones: usize,
    /// The first MAC address (48 bits); phone `i` has `first_mac + i`.
    pub first_mac: u64,
    /// Their model.
    pub model: String,
    /// Their firmware.
    pub firmware: String,
    /// The TFTP servers DHCP hands out (`host[:port]`): phone `i` gets the `i mod n`th, which spreads the phones
    /// across several nodes.
    pub dhcp_tftp: Vec<String>,
    /// Boots are spread evenly over this window.
    pub boot_window: Duration,
    /// The stages every phone must complete (the last one reached means provisioned).
    pub stages: Vec<Stage>,
    /// CAs the phones trust for HTTPS (PEM).
    pub server_ca: Option<PathBuf>,
    /// The CA that signs the phones' client certificates: (certificate PEM, key PEM).
    pub client_ca: Option<(PathBuf, PathBuf)>,
    /// Give up on a phone after this long.
    pub phone_timeout: Duration,
    /// Enterprise phones instead of MPP ones: their HTTP and HTTPS ports (6970, 6971).
    pub enterprise: Option<(u16, u16)>,
}

/// One request's outcome.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Seconds since the start of the test.
    pub at: f64,
    /// `tftp`, `http`, `https`.
    pub protocol: &'static str,
    /// Latency.
    pub latency: Duration,
    /// Whether it succeeded (status 200).
    pub ok: bool,
}

/// What a load test found.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Phones that completed every stage.
    pub provisioned: usize,
    /// Phones that did not, by cause.
    pub failed: BTreeMap<String, usize>,
    /// Seconds from the start at which each provisioned phone finished, sorted.
    pub completions: Vec<f64>,
    /// Every request.
    pub samples: Vec<Sample>,
    /// Wall time of the whole test.
    pub wall: Duration,
    /// CPU time (user + system) this process spent over `wall`: the load generator's own cost, which shares the
    /// machine with the server in a loopback test. `None` where the platform does not say.
    pub cpu: Option<Duration>,
}

/// User + system CPU time of this process so far.
fn process_cpu() -> Option<Duration> {
    #[cfg(unix)]
    {
        // SAFETY: getrusage only writes the struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
            return None;
        }
        let t = |v: libc::timeval| Duration::new(v.tv_sec.max(0) as u64, (v.tv_usec.clamp(0, 999_999) as u32) * 1000);
        Some(t(u.ru_utime) + t(u.ru_stime))
    }
    #[cfg(not(unix))]
    None
}

/// The `p` quantile (0–1) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

impl Summary {
    /// Latency percentiles per protocol: (protocol, requests, failures, p50, p99, max).
    pub fn latencies(&self) -> Vec<(&'static str, usize, usize, Duration, Duration, Duration)> {
        let mut by: BTreeMap<&'static str, (Vec<Duration>, usize)> = BTreeMap::new();
        for s in &self.samples {
            let e = by.entry(s.protocol).or_default();
            e.0.push(s.latency);
            e.1 += usize::from(!s.ok);
        }
        by.into_iter()
            .map(|(p, (mut v, failures))| {
                v.sort();
                (p, v.len(), failures, percentile(&v, 0.5), percentile(&v, 0.99), *v.last().unwrap_or(&Duration::ZERO))
            })
            .collect()
    }
}

/// Why a load test could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(String);

fn client_certificate(
    issuer: &Issuer<'_, KeyPair>,
    dir: &std::path::Path,
    i: usize,
    d: &Device,
) -> Result<(PathBuf, PathBuf), LoadError> {
    let e = |e: rcgen::Error| LoadError(format!("certificate: {e}"));
    let key = KeyPair::generate().map_err(e)?;
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    p.distinguished_name.push(DnType::OrganizationalUnitName, d.model.as_str());
    p.distinguished_name.push(DnType::LocalityName, d.serial.as_str());
    p.distinguished_name.push(DnType::StateOrProvinceName, d.mac.as_str());
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, issuer).map_err(e)?;
    let (c, k) = (dir.join(format!("{i}.pem")), dir.join(format!("{i}.key")));
    let io = |e: std::io::Error| LoadError(format!("{}: {e}", dir.display()));
    std::fs::write(&c, cert.pem()).map_err(io)?;
    std::fs::write(&k, key.serialize_pem()).map_err(io)?;
    Ok((c, k))
}

/// Runs the load test; `progress` is called with (provisioned, failed) as phones finish.
pub async fn run(t: &LoadTest, progress: impl Fn(usize, usize) + Send + Sync + 'static) -> Result<Summary, LoadError> {
    let certs = tempdir()?;
    let issuer = match &t.client_ca {
        Some((cert, key)) => {
            let read = |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| LoadError(format!("{}: {e}", p.display())));
            let key = KeyPair::from_pem(&read(key)?).map_err(|e| LoadError(format!("CA key: {e}")))?;
            Some(Issuer::from_ca_cert_pem(&read(cert)?, key).map_err(|e| LoadError(format!("CA: {e}")))?)
        }
        None => None,
    };
    let needs_cert = t.enterprise.is_none() && t.stages.contains(&Stage::Https);
    if needs_cert && issuer.is_none() {
        return Err(LoadError("the https stage needs --client-ca-cert and --client-ca-key".into()));
    }
    let mut phones = Vec::with_capacity(t.phones);
    for i in 0..t.phones {
        let mac = format!("{:012x}", (t.first_mac + i as u64) & 0xffff_ffff_ffff);
        let mut device = Device::new(&mac, &t.model, &t.firmware);
        device.certificate = needs_cert;
        let transport = match (&issuer, needs_cert) {
            (Some(issuer), true) => {
                let (c, k) = client_certificate(issuer, certs.path(), i, &device)?;
                Transport::new(t.server_ca.as_deref(), Some((&c, &k))).map_err(|e| LoadError(e.to_string()))?
            }
            _ => Transport::new(t.server_ca.as_deref(), None).map_err(|e| LoadError(e.to_string()))?,
        };
        phones.push((device, transport));
    }
    let start = Instant::now();
    let cpu_at_start = process_cpu();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let results = Arc::new(Mutex::new((Vec::new(), BTreeMap::<String, usize>::new())));
    let counts = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let progress = Arc::new(progress);
    let mut tasks = tokio::task::JoinSet::new();
    let n = t.phones.max(1) as f64;
    for (i, (device, transport)) in phones.into_iter().enumerate() {
        let (samples, results, counts, progress) = (samples.clone(), results.clone(), counts.clone(), progress.clone());
        let dhcp = t.dhcp_tftp.get(i % t.dhcp_tftp.len().max(1)).cloned().unwrap_or_default();
        let (stages, window, timeout) = (t.stages.clone(), t.boot_window, t.phone_timeout);
        let enterprise = t.enterprise;
        tasks.spawn(async move {
            tokio::time::sleep(window.mul_f64(i as f64 / n)).await;
            let run = async {
                match enterprise {
                    Some(ports) => one_enterprise_phone(device, transport, dhcp, ports, start, &samples).await,
                    None => one_phone(device, transport, dhcp, &stages, i as u64, start, &samples).await,
                }
            };
            let outcome = tokio::time::timeout(timeout, run).await.unwrap_or_else(|_| Err("timed out".into()));
            let mut r = results.lock().await;
            match outcome {
                Ok(()) => {
                    r.0.push(start.elapsed().as_secs_f64());
                    counts.0.fetch_add(1, Ordering::Relaxed);
                }
                Err(cause) => {
                    *r.1.entry(cause).or_default() += 1;
                    counts.1.fetch_add(1, Ordering::Relaxed);
                }
            }
            progress(counts.0.load(Ordering::Relaxed), counts.1.load(Ordering::Relaxed));
        });
    }
    while tasks.join_next().await.is_some() {}
    let wall = start.elapsed();
    let cpu = process_cpu().zip(cpu_at_start).map(|(end, start)| end.saturating_sub(start));
    let (mut completions, failed) = std::mem::take(&mut *results.lock().await);
    completions.sort_by(f64::total_cmp);
    let samples = std::mem::take(&mut *samples.lock().await);
    Ok(Summary { provisioned: completions.len(), failed, completions, samples, wall, cpu })
}

fn tempdir() -> Result<TempDir, LoadError> {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    let dir = std::env::temp_dir().join(format!("provisor-loadtest-{:016x}", u64::from_le_bytes(b)));
    std::fs::create_dir_all(&dir).map_err(|e| LoadError(format!("{}: {e}", dir.display())))?;
    Ok(TempDir(dir))
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Which stage a fetch belongs to.
fn stage_of(scheme: Scheme, path: &str) -> Stage {
    match scheme {
        Scheme::Tftp => Stage::TftpBootstrap,
        Scheme::Https => Stage::Https,
        Scheme::Http if path.starts_with("/profile/") => Stage::HttpEncrypted,
        Scheme::Http => Stage::Https,
    }
}

/// One enterprise phone: boot through the short list to its config (and load); a rejection or a missing config is a
/// failure with its reason (a real phone would retry the short list 45 s later).
async fn one_enterprise_phone(
    device: Device,
    transport: Transport,
    dhcp: String,
    (http_port, https_port): (u16, u16),
    start: Instant,
    samples: &Mutex<Vec<Sample>>,
) -> Result<(), String> {
    use crate::enterprise::{self, EnterprisePhone, Event, Saved};
    let server = enterprise::Server::from_dhcp(&dhcp, http_port, https_port)?;
    let d = enterprise::Device { mac: device.mac.clone(), model: device.model.clone(), load: device.firmware.clone() };
    let mut phone = EnterprisePhone::new(d, server, Saved::default(), None, None);
    phone.boot(0);
    let mut now = 0;
    loop {
        while let Some(action) = phone.poll_action() {
            let Action::Request(r) = action else { continue };
            let began = Instant::now();
            let response = transport.execute(&r).await;
            samples.lock().await.push(Sample {
                at: start.elapsed().as_secs_f64(),
                protocol: r.url.scheme.as_str(),
                latency: began.elapsed(),
                ok: response.status == 200 || response.status == 404,
            });
            phone.handle_response(r.id, response, now);
        }
        if phone.ready() {
            return Ok(());
        }
        let Some(t) = phone.poll_timeout() else { return Err("stopped".into()) };
        // A reboot into a new load goes on; a retry of the short list is a failure, with the reason before it.
        if matches!(phone.notes().last().map(|n| &n.event), Some(Event::RetryIn(_))) {
            let reason = phone
                .notes()
                .iter()
                .rev()
                .find_map(|n| match &n.event {
                    Event::ConfigRejected { reason, .. } => Some(format!("config rejected: {reason}")),
                    Event::ProgrammingError => Some("Programming Error XmlDefault.cnf.xml".to_string()),
                    Event::Failed { file, error } => Some(format!("{file}: {error}")),
                    _ => None,
                })
                .unwrap_or_else(|| "no config".into());
            return Err(reason);
        }
        now = t;
        phone.handle_timeout(now);
    }
}

/// One phone: boot, then resync again as soon as each resync completes, until the last stage succeeded.
async fn one_phone(
    device: Device,
    transport: Transport,
    dhcp: String,
    stages: &[Stage],
    seed: u64,
    start: Instant,
    samples: &Mutex<Vec<Sample>>,
) -> Result<(), String> {
    let last = *stages.iter().max().ok_or("no stages")?;
    let mut phone = Phone::new(device, Some(dhcp), seed);
    phone.boot(0);
    let mut now = 0;
    let mut done: Vec<Stage> = Vec::new();
    for _attempt in 0..(stages.len() + 2) {
        if let Some(t) = phone.poll_timeout() {
            now = now.max(t);
        }
        phone.resync_now(now);
        let mut last_error = None;
        while let Some(action) = phone.poll_action() {
            let Action::Request(r) = action else { continue };
            let began = Instant::now();
            let response = transport.execute(&r).await;
            let ok = response.status == 200;
            samples.lock().await.push(Sample {
                at: start.elapsed().as_secs_f64(),
                protocol: r.url.scheme.as_str(),
                latency: began.elapsed(),
                ok,
            });
            if let Purpose::Profile(_) = r.purpose {
                let stage = stage_of(r.url.scheme, &r.url.path);
                if ok {
                    done.push(stage);
                } else {
                    last_error = Some(format!(
                        "{} {}",
                        r.url.scheme.as_str(),
                        response.error.clone().unwrap_or_else(|| format!("status {}", response.status))
                    ));
                }
            }
            phone.handle_response(r.id, response, now);
        }
        if phone.failures() == 0 && done.contains(&last) {
            return Ok(());
        }
        if let Some(e) = last_error
            && phone.failures() >= 2
        {
            return Err(e);
        }
        if done.contains(&last) {
            return Ok(());
        }
    }
    Err(format!("stopped after {:?}", done.last()))
}
