//! The network shell around [`Phone`]: carries out its requests over TFTP (provisor-tftp's client), HTTP and HTTPS
//! (a small HTTP/1.1 client on tokio, with tokio-rustls and the phone's client certificate), sends its syslog lines
//! over UDP, and advances its virtual clock at a chosen speed.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::phone::{Action, Note, Phone, Request, Response};
use provisor_rules::url::Scheme;

/// How requests reach the network (or, for dry runs, a directory).
///
/// HTTPS trusts what a phone trusts: public roots (Mozilla's set, from `webpki-roots`, standing in for the phone's
/// built-in bundle) plus the CA the phone installed with `Custom_CA_Rule` (carried on each [`Request`]). `--ca` adds
/// CAs beyond that: an explicit override, which a real phone does not have.
#[derive(Clone, Default)]
pub struct Transport {
    /// The phone's client certificate chain and key, presented when a server asks.
    client: Option<Arc<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>>,
    /// CAs trusted beyond a phone's own (`--ca`).
    extra: Arc<Vec<CertificateDer<'static>>>,
    /// TLS configurations by installed custom CA (empty: none), shared by clones.
    configs: Arc<std::sync::Mutex<std::collections::HashMap<Vec<u8>, Arc<rustls::ClientConfig>>>>,
    dir: Option<std::path::PathBuf>,
    dns: Option<SocketAddr>,
    /// Host names answered without DNS (like `/etc/hosts`).
    hosts: Arc<std::collections::HashMap<String, std::net::IpAddr>>,
    /// Built at the first lookup (reading the system's configuration at most once), shared by clones.
    resolver: Arc<std::sync::OnceLock<hickory_resolver::TokioResolver>>,
}

/// Why a transport could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(String);

impl Transport {
    /// HTTPS with a phone's trust, plus the CAs in `ca` (PEM; an override a real phone does not have), presenting
    /// `cert`/`key` (PEM) when given, as a phone presents its manufacturing certificate.
    pub fn new(ca: Option<&Path>, cert: Option<(&Path, &Path)>) -> Result<Transport, TransportError> {
        let err = |p: &Path, e: &dyn std::fmt::Display| TransportError(format!("{}: {e}", p.display()));
        let mut extra = Vec::new();
        if let Some(ca) = ca {
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| err(ca, &e))? {
                extra.push(c.map_err(|e| err(ca, &e))?);
            }
        }
        let client = match cert {
            Some((c, k)) => {
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(c)
                    .map_err(|e| err(c, &e))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| err(c, &e))?;
                let key = PrivateKeyDer::from_pem_file(k).map_err(|e| err(k, &e))?;
                Some(Arc::new((chain, key)))
            }
            None => None,
        };
        let transport = Transport { client, extra: Arc::new(extra), ..Transport::default() };
        // Fail now, not at the first HTTPS request, if the certificate and key do not go together.
        transport.tls_for(None, false).map_err(TransportError)?;
        Ok(transport)
    }

    /// Whether `--ca` added CAs a real phone would not trust.
    pub fn trusts_more_than_a_phone(&self) -> bool {
        !self.extra.is_empty()
    }

    /// The TLS configuration of a phone that installed `custom_ca` (PEM) with `Custom_CA_Rule`.
    /// With `pinned`, `custom_ca` alone (an enterprise phone's 6971: the certificate its trust list names).
    fn tls_for(&self, custom_ca: Option<&[u8]>, pinned: bool) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut key = custom_ca.map(<[u8]>::to_vec).unwrap_or_default();
        key.push(u8::from(pinned));
        if let Some(c) = self.configs.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(c.clone());
        }
        let mut roots = if pinned {
            rustls::RootCertStore::empty()
        } else {
            rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }
        };
        for c in self.extra.iter() {
            roots.add(c.clone()).map_err(|e| format!("--ca: {e}"))?;
        }
        if let Some(pem) = custom_ca {
            for c in CertificateDer::pem_slice_iter(pem) {
                let c = c.map_err(|e| format!("Custom_CA_Rule certificate: {e}"))?;
                roots.add(c).map_err(|e| format!("Custom_CA_Rule certificate: {e}"))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let config = match &self.client {
            Some(pair) => {
                builder.with_client_auth_cert(pair.0.clone(), pair.1.clone_key()).map_err(|e| e.to_string())?
            }
            None => builder.with_no_client_auth(),
        };
        let config = Arc::new(config);
        self.configs.lock().unwrap_or_else(|p| p.into_inner()).insert(key, config.clone());
        Ok(config)
    }

    /// Looks up `--srv` names and host addresses at this DNS server instead of the system's (`/etc/resolv.conf`).
    pub fn with_dns(mut self, server: SocketAddr) -> Transport {
        self.dns = Some(server);
        self.resolver = Arc::default();
        self
    }

    /// Answers these host names with these addresses, before any DNS (like `/etc/hosts`): `provisor doctor` points
    /// a site's public name at its rig on loopback.
    pub fn with_hosts(mut self, hosts: std::collections::HashMap<String, std::net::IpAddr>) -> Transport {
        self.hosts = Arc::new(hosts);
        self
    }

    /// A dry-run transport: every URL's path is a file under `dir` (any scheme, any host); uploads are accepted and
    /// dropped.
    pub fn directory(dir: &Path) -> Transport {
        Transport { dir: Some(dir.to_path_buf()), ..Transport::default() }
    }

    /// Carries out one request (time limit 30 s).
    pub async fn execute(&self, r: &Request) -> Response {
        if let Some(dir) = &self.dir {
            return from_directory(dir, r);
        }
        let result = tokio::time::timeout(Duration::from_secs(30), async {
            let located;
            let r = match &r.srv {
                Some(name) => {
                    let (host, port) = self.srv(name).await?;
                    let mut l = r.clone();
                    (l.url.host, l.url.port) = (host, port);
                    located = l;
                    &located
                }
                None => r,
            };
            let addr = self.address(&r.url.host, r.url.port).await?;
            match r.url.scheme {
                Scheme::Tftp => tftp(r, addr).await,
                Scheme::Http | Scheme::Https => self.http(r, addr).await,
            }
        })
        .await;
        match result {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => Response { error: Some(e), ..Response::default() },
            Err(_) => Response { error: Some("timed out".into()), ..Response::default() },
        }
    }

    /// The target and port of an SRV name: the lowest priority, and among those the highest weight (RFC 2782 picks
    /// by weight at random; a simulator is deterministic).
    async fn srv(&self, name: &str) -> Result<(String, u16), String> {
        let resolver = self.resolver()?;
        let fqdn = if name.ends_with('.') { name.to_string() } else { format!("{name}.") };
        let lookup = resolver.srv_lookup(fqdn.as_str()).await.map_err(|e| format!("SRV lookup {name}: {e}"))?;
        let best = lookup
            .iter()
            .min_by_key(|s| (s.priority(), std::cmp::Reverse(s.weight())))
            .ok_or_else(|| format!("SRV lookup {name}: no record"))?;
        Ok((best.target().to_utf8().trim_end_matches('.').to_string(), best.port()))
    }

    fn resolver(&self) -> Result<&hickory_resolver::TokioResolver, String> {
        use hickory_resolver::Resolver;
        use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
        use hickory_resolver::name_server::TokioConnectionProvider;
        if let Some(r) = self.resolver.get() {
            return Ok(r);
        }
        let provider = TokioConnectionProvider::default();
        let built = match self.dns {
            Some(server) => {
                let servers = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
                Resolver::builder_with_config(ResolverConfig::from_parts(None, vec![], servers), provider).build()
            }
            None => Resolver::builder(provider).map_err(|e| format!("DNS: {e}"))?.build(),
        };
        Ok(self.resolver.get_or_init(|| built))
    }

    /// A host's address: an IP literal as it is; a name through the DNS server of [`Transport::with_dns`], or the
    /// system's resolver.
    async fn address(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        if let Some(ip) = self.hosts.get(host) {
            return Ok(SocketAddr::new(*ip, port));
        }
        if self.dns.is_none() {
            return resolve(host, port).await;
        }
        let fqdn = if host.ends_with('.') { host.to_string() } else { format!("{host}.") };
        let ips = self.resolver()?.lookup_ip(fqdn.as_str()).await.map_err(|e| format!("resolve {host}: {e}"))?;
        ips.iter().next().map(|ip| SocketAddr::new(ip, port)).ok_or_else(|| format!("resolve {host}: no address"))
    }

    async fn http(&self, r: &Request, addr: SocketAddr) -> Result<Response, String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        if r.url.scheme == Scheme::Https {
            let tls = self.tls_for(r.custom_ca.as_deref().map(Vec::as_slice), r.pinned_ca)?;
            let name = ServerName::try_from(r.url.host.clone()).map_err(|e| format!("{}: {e}", r.url.host))?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            exchange(stream, r).await
        } else {
            exchange(tcp, r).await
        }
    }
}

fn from_directory(dir: &Path, r: &Request) -> Response {
    if r.method != "GET" {
        return Response { status: 200, ..Response::default() };
    }
    let path = r.url.path.split(['?', '#']).next().unwrap_or("").trim_start_matches('/');
    if path.split('/').any(|s| s == "..") {
        return Response { status: 404, ..Response::default() };
    }
    match std::fs::read(dir.join(path)) {
        Ok(body) => Response { status: 200, body, ..Response::default() },
        Err(_) => Response { status: 404, ..Response::default() },
    }
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolve {host}: no address"))
}

async fn tftp(r: &Request, addr: SocketAddr) -> Result<Response, String> {
    let config = provisor_tftp::client::ClientConfig { blksize: Some(1428), ..Default::default() };
    if r.method != "GET" {
        // A report to a TFTP URL is a write request (SPA guide: "TFTP PUT").
        return match provisor_tftp::fetch::upload(addr, &r.url.path, &r.body, config).await {
            Ok(_) => Ok(Response { status: 200, ..Response::default() }),
            Err(e) => Err(format!("tftp: {e}")),
        };
    }
    match provisor_tftp::fetch::download(addr, &r.url.path, config).await {
        Ok(d) => Ok(Response { status: 200, body: d.data, ..Response::default() }),
        Err(provisor_tftp::fetch::FetchError::Protocol(provisor_tftp::client::ClientError::Server {
            code: 1, ..
        })) => Ok(Response { status: 404, ..Response::default() }),
        Err(e) => Err(format!("tftp: {e}")),
    }
}

/// One HTTP/1.1 request with `Connection: close`, and its response.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, r: &Request) -> Result<Response, String> {
    let host = if r.url.port == r.url.scheme.default_port() {
        r.url.host.clone()
    } else {
        format!("{}:{}", r.url.host, r.url.port)
    };
    let mut head = format!("{} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n", r.method, r.url.path);
    // Enterprise phones send no User-Agent.
    if !r.user_agent.is_empty() {
        head.push_str(&format!("User-Agent: {}\r\n", r.user_agent));
    }
    if let Some(a) = &r.authorization {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    if !r.body.is_empty() || r.method != "GET" {
        head.push_str(&format!("Content-Length: {}\r\n", r.body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
    s.write_all(&r.body).await.map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    // Room for a typical profile, so the read does not grow the buffer a dozen times.
    let mut raw = Vec::with_capacity(16 * 1024);
    // A TLS peer that closes without close_notify still delivered the whole response when lengths add up.
    if let Err(e) = s.read_to_end(&mut raw).await
        && raw.is_empty()
    {
        return Err(e.to_string());
    }
    parse_response(&raw)
}

/// Parses a whole HTTP/1.x response (head and body: `Content-Length`, chunked, or to the end).
pub fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("truncated response head")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut resp = Response { status, ..Response::default() };
    let (mut length, mut chunked) = (None, false);
    for line in lines {
        let Some((k, v)) = line.split_once(':') else { continue };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
        match k.as_str() {
            "location" => resp.location = Some(v),
            "content-encoding" => resp.content_encoding = Some(v),
            "www-authenticate" | "proxy-authenticate" => resp.challenges.push(v),
            "content-length" => length = v.parse::<usize>().ok(),
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    let body = &raw[end + 4..];
    resp.body = if chunked {
        dechunk(body)?
    } else {
        match length {
            Some(n) if n <= body.len() => body[..n].to_vec(),
            Some(n) => return Err(format!("body truncated: {} of {n} bytes", body.len())),
            None => body.to_vec(),
        }
    };
    Ok(resp)
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").ok_or("bad chunk")?;
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        // A size near usize::MAX must not wrap: compare against what is left, never `size + 2`.
        if b.len() < 2 || b.len() - 2 < size {
            return Err(format!("chunk truncated: {size} bytes announced, {} left", b.len()));
        }
        if &b[size..size + 2] != b"\r\n" {
            return Err(format!("chunk of {size} bytes is not followed by CRLF"));
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

async fn syslog(server: &str, line: &str) {
    let (host, port) = match server.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h, p.parse().unwrap_or(514)),
        _ => (server, 514),
    };
    if let Ok(addr) = resolve(host, port).await
        && let Ok(s) = UdpSocket::bind(if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).await
    {
        let _ = s.send_to(line.as_bytes(), addr).await;
    }
}

/// A duration such as `90`, `90s`, `30m`, `24h`, `2d` or `2h30m`, in seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let bad = || format!("{text:?} is not a duration such as 90s, 30m, 24h or 2h30m");
    let mut rest = text;
    let mut total = 0u64;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let factor = match &rest[..unit] {
            "" if unit == rest.len() && total == 0 => 1,
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            u => return Err(format!("{text:?}: unknown unit {u:?} (s, m, h, d)")),
        };
        total = n.checked_mul(factor).and_then(|v| v.checked_add(total)).ok_or_else(bad)?;
        rest = &rest[unit..];
    }
    if text.is_empty() { Err(bad()) } else { Ok(total) }
}

/// What happens to the phone at a set time of a simulation: what no server causes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stimulus {
    /// A call: a line is active for this many seconds.
    Call(u64),
    /// An (authenticated) SIP NOTIFY with this `Event:` (resync, report, reboot_now, restart_now).
    Notify(String),
    /// The administrator sets a parameter on the phone's own web page.
    Set(String, String),
}

/// A [`Stimulus`] at a virtual time, written `AT:call:DURATION`, `AT:notify:EVENT` or `AT:set:NAME=VALUE` (times
/// as in [`parse_duration`]), e.g. `2h:call:45m`, `3h:notify:resync`, `4h:set:Station_Display_Name=Desk`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scripted {
    /// Virtual seconds after boot.
    pub at: u64,
    /// What happens.
    pub stimulus: Stimulus,
}

impl std::str::FromStr for Scripted {
    type Err = String;
    fn from_str(s: &str) -> Result<Scripted, String> {
        let mut parts = s.splitn(3, ':');
        let (Some(at), Some(kind), Some(arg)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("{s:?}: expected AT:call:DURATION, AT:notify:EVENT or AT:set:NAME=VALUE"));
        };
        let at = parse_duration(at)?;
        let stimulus = match kind {
            "call" => Stimulus::Call(parse_duration(arg)?),
            "notify" if !arg.trim().is_empty() => Stimulus::Notify(arg.trim().to_string()),
            "set" => {
                let (n, v) = arg.split_once('=').ok_or_else(|| format!("{s:?}: expected NAME=VALUE after set:"))?;
                Stimulus::Set(n.trim().to_string(), v.to_string())
            }
            _ => return Err(format!("{s:?}: {kind:?} is not call, notify or set")),
        };
        Ok(Scripted { at, stimulus })
    }
}

/// How a simulation runs.
#[derive(Debug, Clone)]
pub struct Run {
    /// Virtual seconds to simulate.
    pub until: u64,
    /// Virtual seconds per real second.
    pub speed: f64,
    /// Upload the `Report_Rule` reports after every successful resync.
    pub report_after_resync: bool,
    /// Calls, NOTIFYs and local changes.
    pub script: Vec<Scripted>,
    /// Listen for SIP NOTIFYs on this UDP address (simulations in real time only).
    pub sip: Option<SocketAddr>,
}

/// Why a simulation could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SimulateError(String);

/// Boots `phone` and runs it against the network until `run.until` virtual seconds, calling `on_note` for each note
/// as it happens.
pub async fn simulate(
    phone: &mut Phone,
    transport: &Transport,
    run: Run,
    mut on_note: impl FnMut(&Note),
) -> Result<(), SimulateError> {
    let mut sip = match run.sip {
        Some(addr) if run.speed.is_finite() => {
            let socket =
                UdpSocket::bind(addr).await.map_err(|e| SimulateError(format!("--sip {addr}: cannot listen: {e}")))?;
            let mut nonce = [0u8; 16];
            getrandom::fill(&mut nonce).map_err(|e| SimulateError(format!("random nonce: {e}")))?;
            let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
            Some((socket, crate::sip::NotifyAgent::new(nonce, "provisor-phone")))
        }
        Some(_) => return Err(SimulateError("--sip needs real time (phone simulate, not explain)".into())),
        None => None,
    };
    let mut datagram = vec![0u8; 65_536];
    let start = Instant::now();
    // With an infinite speed (dry runs) only the phone's own timers move the clock.
    let clock = |offset: u64| {
        if run.speed.is_finite() { offset.max((start.elapsed().as_secs_f64() * run.speed) as u64) } else { offset }
    };
    // A call is two events: the line goes active, then idle.
    let mut script: Vec<(u64, Option<bool>, Stimulus)> = Vec::new();
    for e in &run.script {
        match &e.stimulus {
            Stimulus::Call(d) => {
                script.push((e.at, Some(true), e.stimulus.clone()));
                script.push((e.at + d, Some(false), e.stimulus.clone()));
            }
            other => script.push((e.at, None, other.clone())),
        }
    }
    script.sort_by_key(|e| e.0);
    let mut script = std::collections::VecDeque::from(script);
    let mut shown = 0;
    let mut floor = 0u64;
    phone.boot(0);
    let mut resyncs = 0;
    loop {
        while let Some(action) = phone.poll_action() {
            match action {
                Action::Request(r) => {
                    let response = transport.execute(&r).await;
                    floor = clock(floor);
                    phone.handle_response(r.id, response, floor);
                }
                Action::Syslog { server, line } => syslog(&server, &line).await,
            }
        }
        if phone.resyncs() != resyncs && !phone.busy() {
            resyncs = phone.resyncs();
            if run.report_after_resync && phone.failures() == 0 {
                phone.report(clock(floor));
                continue;
            }
        }
        for n in &phone.notes()[shown..] {
            on_note(n);
        }
        shown = phone.notes().len();
        let timer = phone.poll_timeout();
        let scripted = script.front().map(|e| e.0);
        let wake = timer.into_iter().chain(scripted).min().filter(|&n| n <= run.until);
        if wake.is_none() && sip.is_none() {
            break;
        }
        // Listening for SIP, the phone waits for a NOTIFY until the end of the run.
        let next = wake.unwrap_or(run.until);
        let now = clock(floor);
        if next > now && run.speed.is_finite() {
            let pause = tokio::time::sleep(Duration::from_secs_f64((next - now) as f64 / run.speed));
            match &mut sip {
                Some((socket, agent)) => tokio::select! {
                    r = socket.recv_from(&mut datagram) => {
                        if let Ok((len, from)) = r {
                            floor = clock(floor);
                            if let Some(response) = phone.sip_datagram(floor, &datagram[..len], agent) {
                                let _ = socket.send_to(response.as_bytes(), from).await;
                            }
                        }
                        continue;
                    }
                    _ = pause => {}
                },
                None => pause.await,
            }
        }
        if wake.is_none() {
            break;
        }
        floor = clock(next);
        while let Some((_, line, stimulus)) = script.pop_front_if(|e| e.0 <= next) {
            match (line, stimulus) {
                (Some(active), _) => phone.set_line_active(floor, active),
                (None, Stimulus::Notify(event)) => {
                    phone.sip_notify(floor, &event);
                }
                (None, Stimulus::Set(name, value)) => phone.local_change(floor, &name, &value),
                (None, Stimulus::Call(_)) => {}
            }
        }
        if timer.is_some_and(|t| t <= floor) {
            phone.handle_timeout(floor);
        }
    }
    for n in &phone.notes()[shown..] {
        on_note(n);
    }
    Ok(())
}

/// Boots an enterprise phone and runs it until `until` virtual seconds at `speed` (infinite: as fast as answers
/// come), calling `on_note` for each event as it happens.
pub async fn simulate_enterprise(
    phone: &mut crate::enterprise::EnterprisePhone,
    transport: &Transport,
    until: u64,
    speed: f64,
    mut on_note: impl FnMut(&crate::enterprise::Note),
) {
    let start = Instant::now();
    let clock =
        |floor: u64| if speed.is_finite() { floor.max((start.elapsed().as_secs_f64() * speed) as u64) } else { floor };
    let mut floor = 0u64;
    let mut shown = 0;
    phone.boot(0);
    loop {
        while let Some(action) = phone.poll_action() {
            if let Action::Request(r) = action {
                let response = transport.execute(&r).await;
                floor = clock(floor);
                phone.handle_response(r.id, response, floor);
            }
        }
        for n in &phone.notes()[shown..] {
            on_note(n);
        }
        shown = phone.notes().len();
        let Some(next) = phone.poll_timeout().filter(|t| *t <= until) else { break };
        let now = clock(floor);
        if next > now && speed.is_finite() {
            tokio::time::sleep(Duration::from_secs_f64((next - now) as f64 / speed)).await;
        }
        floor = clock(next);
        phone.handle_timeout(floor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse() {
        let r =
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Encoding: aes128gcm\r\n\r\nabc").unwrap();
        assert_eq!((r.status, r.body.as_slice(), r.content_encoding.as_deref()), (200, &b"abc"[..], Some("aes128gcm")));
        let r =
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!(r.body, b"abcde");
        let r = parse_response(b"HTTP/1.0 302 Found\r\nLocation: /x.xml\r\n\r\n").unwrap();
        assert_eq!((r.status, r.location.as_deref()), (302, Some("/x.xml")));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc").is_err());
        assert!(parse_response(b"garbage").is_err());
    }

    /// Found by the `phone_response` fuzz target: a chunk size near `usize::MAX` overflowed `size + 2`.
    #[test]
    fn hostile_chunk_sizes_are_errors_not_panics() {
        let huge = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n";
        assert!(parse_response(huge).unwrap_err().contains("truncated"));
        let fuzzed = b"J&\x1d\n 1 \n1 ;# \n\r\0\0\r\n\ntransfer-encoding:Z: J\n1\0chunked\0\0\0\0\0\x01\x85\r\n\r\n\n\rFFFFFFFFFFFFFFFF\r\n";
        assert!(parse_response(fuzzed).is_err());
        let no_crlf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n";
        assert!(parse_response(no_crlf).unwrap_err().contains("CRLF"));
    }

    #[test]
    fn scripted_events_parse() {
        let e: Scripted = "2h:call:45m".parse().unwrap();
        assert_eq!(e, Scripted { at: 7200, stimulus: Stimulus::Call(2700) });
        let e: Scripted = "90:set:Station_Display_Name=Desk: 1".parse().unwrap();
        assert_eq!(e.stimulus, Stimulus::Set("Station_Display_Name".into(), "Desk: 1".into()));
        assert!("1h:notify:".parse::<Scripted>().is_err());
        assert!("1h:dance:x".parse::<Scripted>().is_err());
        assert!("soon:notify:resync".parse::<Scripted>().is_err());
        assert_eq!(parse_duration("2h30m"), Ok(9000));
        assert_eq!(parse_duration("90"), Ok(90));
        assert!(parse_duration("").is_err() && parse_duration("5x").is_err() && parse_duration("1h5").is_err());
    }
}
