//! The provisioning core: one request in (protocol, file name, client, User-Agent, verified certificate claims), one
//! response out, with the audit entry written behind it. The HTTP, HTTPS and TFTP front ends are thin shells around
//! [`Provisioner::handle`].
//!
//! The secure flow (Cisco "Provisioning Guide", SEC-PRV-1/2; "Open Profile Encryption"):
//! 1. A phone that names itself only by MAC (plain HTTP, TFTP, or HTTPS without a verified certificate) gets the
//!    bootstrap profile: no secrets, and a `Profile_Rule` that sends it to HTTPS.
//! 2. Over HTTPS with a client certificate that a configured CA signed and whose `S` names the device, it gets its
//!    full profile, including its AES key (`GPP_SA` by default) and random path (`GPP_B`), and a `Profile_Rule` of
//!    the form `[--key $SA] http://host/profile/$B/profile.cfg`.
//! 3. Later resyncs fetch `/profile/<random>/...` over plain HTTP or TFTP, and get only ciphertext: gzip, then
//!    AES-256-CBC with the device's key (or RFC 8188 with its IKM and `Content-Encoding: aes128gcm`).
//!
//! A rotation ([`crate::inventory::Secrets::rotated`]) keeps the old key and path until the phone has fetched, at its
//! old path and under its old key, the profile that gives it the new ones.
//!
//! Rendered responses are cached per device and variant, and dropped when the inventory's revision or the template
//! directory changes ([`Provisioner::watch`]). Encryption is deterministic for a given key and plaintext (the salt is
//! an HMAC of the plaintext), so a cached or re-rendered response is byte-identical, even across restarts.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{KeyInit, Mac as _};
use provisor_envelope::openssl_enc::{Digest as KdfDigest, Kdf};
use provisor_envelope::{Keys, Limits, aes128gcm, gzip, openssl_enc};
use provisor_profile::{ParseOptions, Profile, Value};
use sha2::{Digest as _, Sha256};

use crate::config::{Config, ProfileEncryption, UnknownDevices};
use crate::guard::{Guard, Limited};
use crate::identity::{Claims, parse_user_agent};
use crate::inventory::{Device, Mac, Secrets, Store, effective_parameters};
use crate::journal::{AuditEntry, Journal};
use crate::render::{self, Templates};
use crate::routing::{Route, Router, normalise};
use provisor_auth::Verifier;

/// The protocol a request came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TFTP (no headers: no User-Agent, no content encoding, no authentication).
    Tftp,
    /// Plain HTTP.
    Http,
    /// HTTPS.
    Https,
}

impl Protocol {
    /// `tftp`, `http`, `https`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tftp => "tftp",
            Protocol::Http => "http",
            Protocol::Https => "https",
        }
    }
}

/// A request, as every front end describes it.
#[derive(Debug, Clone)]
pub struct Request {
    /// How it came.
    pub protocol: Protocol,
    /// `GET`, `HEAD`, `POST`, `PUT` (HTTP) or `RRQ`, `WRQ` (TFTP).
    pub method: &'static str,
    /// The file name or URL path as sent (without the query).
    pub path: String,
    /// The request target as sent (HTTP: path and query, what a Digest `uri` must match; TFTP: the file name).
    pub target: String,
    /// The client.
    pub client: SocketAddr,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// Claims of a client certificate that a configured CA signed (HTTPS only).
    pub certificate: Option<Claims>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The request body (reports).
    pub body: Bytes,
}

impl Request {
    /// A GET-like request with no headers.
    pub fn get(protocol: Protocol, path: &str, client: SocketAddr) -> Request {
        Request {
            protocol,
            method: if protocol == Protocol::Tftp { "RRQ" } else { "GET" },
            path: path.to_string(),
            target: path.to_string(),
            client,
            user_agent: None,
            certificate: None,
            authorization: None,
            body: Bytes::new(),
        }
    }
}

/// A response body.
#[derive(Debug, Clone)]
pub enum Body {
    /// Bytes in memory.
    Bytes(Bytes),
    /// A file (firmware), with its length.
    File(PathBuf, u64),
}

impl Body {
    /// Its length.
    pub fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) => b.len() as u64,
            Body::File(_, n) => *n,
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A response, as every front end sends it.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status (TFTP maps 404 to "file not found" and other errors to "access violation").
    pub status: u16,
    /// The body.
    pub body: Body,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// `Content-Encoding` (`aes128gcm` for RFC 8188 bodies).
    pub content_encoding: Option<&'static str>,
    /// `WWW-Authenticate` challenges of a 401.
    pub challenges: Vec<String>,
    /// Why, for errors (also in the audit log).
    pub note: String,
    /// SHA-256 of a rendered body, computed once per rendering.
    hash: Option<Arc<str>>,
}

impl Response {
    fn error(status: u16, note: impl Into<String>) -> Response {
        let note = note.into();
        Response {
            status,
            body: Body::Bytes(Bytes::from(format!("{note}\n"))),
            content_type: "text/plain; charset=utf-8",
            content_encoding: None,
            challenges: Vec::new(),
            note,
            hash: None,
        }
    }

    fn ok(body: Body, content_type: &'static str) -> Response {
        Response {
            status: 200,
            body,
            content_type,
            content_encoding: None,
            challenges: Vec::new(),
            note: String::new(),
            hash: None,
        }
    }

    fn served(s: &Served) -> Response {
        Response {
            status: 200,
            body: Body::Bytes(s.body.clone()),
            content_type: s.content_type,
            content_encoding: s.content_encoding,
            challenges: Vec::new(),
            note: String::new(),
            hash: Some(s.hash.clone()),
        }
    }
}

/// The ports the front ends actually listen on (they go into rendered URLs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ports {
    /// HTTP.
    pub http: Option<u16>,
    /// HTTPS.
    pub https: Option<u16>,
    /// TFTP.
    pub tftp: Option<u16>,
    /// Syslog.
    pub syslog: Option<u16>,
}

/// Which rendering of a device a cache entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Variant {
    /// The full profile in clear text (HTTPS with a verified certificate).
    Full,
    /// The bootstrap profile.
    Bootstrap,
    /// gzip + AES-256-CBC with the device key.
    Cbc,
    /// The same with MD5 key derivation, for firmware older than `md5_before_firmware`.
    CbcMd5,
    /// gzip + RFC 8188 with the device IKM.
    Gcm,
    /// `SEP<MAC>.cnf.xml`.
    Sep,
    /// `XMLDefault.cnf.xml`.
    XmlDefault,
}

/// A rendered (and possibly encrypted) response, shared by the cache and the requests it answers.
#[derive(Debug)]
struct Served {
    body: Bytes,
    /// SHA-256 of `body`, hex (for the audit log).
    hash: Arc<str>,
    /// The device it was rendered for.
    device: Option<Mac>,
    content_type: &'static str,
    content_encoding: Option<&'static str>,
    /// The full profile's parameters (JSON), for drift.
    params: Option<Arc<str>>,
}

/// What the audit entry says besides the response.
#[derive(Default)]
struct Outcome {
    device: Option<Mac>,
    served_params: Option<Arc<str>>,
    event: Option<(&'static str, String)>,
    report: Option<(Arc<str>, Vec<u8>)>,
    failed_lookup: bool,
}

/// What a cache entry is found by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// A device's rendering (`None`: device-independent files).
    Device(Option<Mac>, Variant),
    /// The encrypted profile at a random path, so a cached resync needs no inventory lookup.
    Path(String, Variant),
}

/// Cached responses.
type Cache = HashMap<Key, Arc<Served>>;

/// Where templates stand: loaded, or the error that stops every render until it is fixed.
type TemplateState = Result<Arc<Templates>, String>;

/// The provisioning core, shared by every front end.
pub struct Provisioner<S: Store> {
    store: S,
    config: Config,
    ports: Ports,
    router: Router,
    templates: RwLock<TemplateState>,
    templates_stamp: Mutex<Option<SystemTime>>,
    cache: RwLock<Cache>,
    revision: AtomicI64,
    journal: Journal,
    credentials: Option<Verifier>,
    guard: Guard,
    addresses: Mutex<HashMap<IpAddr, Mac>>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A salt that depends only on the key and the plaintext (deterministic encryption; see the module documentation).
fn salt<const N: usize>(key: &[u8], plain: &[u8]) -> [u8; N] {
    let mut m = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    m.update(plain);
    let tag = m.finalize().into_bytes();
    let mut out = [0u8; N];
    out.copy_from_slice(&tag[..N]);
    out
}

/// The effective parameters of a parsed profile, as a JSON object.
fn params_json(profile: &Profile) -> Arc<str> {
    let map: BTreeMap<&str, &str> = profile
        .effective()
        .into_iter()
        .filter_map(|p| match &p.value {
            Value::Text(t) => Some((p.name.as_str(), t.as_str())),
            _ => None,
        })
        .collect();
    serde_json::to_string(&map).unwrap_or_default().into()
}

/// The firmware version name of a load file: `sip88xx.12-0-1MPP-BN.loads` → `sip88xx.12-0-1MPP`.
pub fn load_name(file: &str) -> &str {
    let stem = file.rsplit_once('.').map_or(file, |(s, ext)| if ext.contains('-') { file } else { s });
    stem.strip_suffix("-BN").unwrap_or(stem)
}

impl<S: Store + 'static> Provisioner<S> {
    /// A provisioner over `store`, announcing `ports` in rendered URLs, recording into `journal`.
    pub fn new(store: S, config: Config, ports: Ports, journal: Journal) -> Result<Provisioner<S>, String> {
        let router = Router::new(&config.provisioning.patterns)?;
        let templates = load_templates(&config).map(Arc::new).map_err(|e| e.to_string());
        if let Err(e) = &templates {
            return Err(e.clone());
        }
        let credentials = (!config.provisioning.http_user.is_empty())
            .then(|| Verifier::new(&config.provisioning.http_user, &config.provisioning.http_password, "provisor"));
        let stamp = templates_stamp(&config);
        Ok(Provisioner {
            store,
            ports,
            router,
            templates: RwLock::new(templates),
            templates_stamp: Mutex::new(stamp),
            cache: RwLock::new(HashMap::new()),
            revision: AtomicI64::new(i64::MIN),
            journal,
            credentials,
            guard: Guard::new(config.limits.clone()),
            addresses: Mutex::new(HashMap::new()),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Whether a TFTP write request for `path` is a `Report_Rule` upload this server takes, and its size limit.
    pub fn takes_upload(&self, path: &str) -> Option<u64> {
        let path = normalise(path)?;
        matches!(self.router.route(&path), Route::Report(_)).then_some(self.config.limits.max_report_bytes as u64)
    }

    /// The device last seen at `ip` (for syslog lines that do not name their sender).
    pub fn device_at(&self, ip: IpAddr) -> Option<Mac> {
        self.addresses.lock().ok()?.get(&ip).cloned()
    }

    /// Records a syslog line (or another event) for a device. Lines for devices not in the inventory, and lines over
    /// `[limits] device_events_per_minute`, are dropped (and counted): anyone can send syslog datagrams.
    pub async fn record_event(&self, client: SocketAddr, device: Option<Mac>, kind: &'static str, text: String) {
        let Some(mac) = device else {
            metrics::counter!("provisor_events_dropped_total", "why" => "no device").increment(1);
            return;
        };
        if !matches!(self.store.device(&mac).await, Ok(Some(_))) {
            metrics::counter!("provisor_events_dropped_total", "why" => "unknown device").increment(1);
            return;
        }
        if self.guard.device_event(&mac, now_ms()).is_err() {
            metrics::counter!("provisor_events_dropped_total", "why" => "rate").increment(1);
            return;
        }
        let device = Some(mac);
        self.journal
            .record(AuditEntry {
                at_ms: now_ms(),
                client: client.to_string(),
                device,
                protocol: "syslog",
                method: "LOG",
                event: Some((kind, text)),
                ..AuditEntry::default()
            })
            .await;
    }

    /// Drops cached renderings when the inventory or the templates change; runs until the process ends.
    pub async fn watch(self: Arc<Self>) {
        loop {
            self.refresh().await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// One check of [`Provisioner::watch`].
    pub async fn refresh(&self) {
        match self.store.revision().await {
            Ok(r) => {
                if self.revision.swap(r, Ordering::AcqRel) != r {
                    self.clear_cache();
                }
            }
            Err(e) => tracing::error!("inventory revision: {e}"),
        }
        let stamp = templates_stamp(&self.config);
        let changed = {
            let mut last = self.templates_stamp.lock().expect("not poisoned");
            let changed = *last != stamp;
            *last = stamp;
            changed
        };
        if changed {
            let loaded = load_templates(&self.config).map(Arc::new).map_err(|e| e.to_string());
            match &loaded {
                Ok(_) => tracing::info!("templates reloaded"),
                Err(e) => tracing::error!("templates: {e}; profile requests fail until this is fixed"),
            }
            *self.templates.write().expect("not poisoned") = loaded;
            self.clear_cache();
        }
    }

    fn clear_cache(&self) {
        self.cache.write().expect("not poisoned").clear();
    }

    /// Answers a request and records it in the audit log.
    pub async fn handle(&self, req: Request) -> Response {
        let ua = req.user_agent.as_deref().and_then(parse_user_agent);
        let now = now_ms();
        let (response, outcome) = self.dispatch(&req, ua.as_ref(), now).await;
        if outcome.failed_lookup {
            self.guard.failed(req.client.ip(), now);
        }
        if let Some(mac) = &outcome.device
            && let Ok(mut a) = self.addresses.lock()
        {
            if a.len() > 1_000_000 {
                a.clear();
            }
            a.insert(req.client.ip(), mac.clone());
        }
        let hash = match (&response.hash, &response.body) {
            (Some(h), _) => h.to_string(),
            (None, Body::Bytes(b)) if response.status == 200 && !b.is_empty() => hex(&Sha256::digest(b)),
            _ => String::new(),
        };
        let status: &'static str = match response.status {
            200 => "200",
            206 => "206",
            401 => "401",
            403 => "403",
            404 => "404",
            429 => "429",
            500 => "500",
            _ => "other",
        };
        metrics::counter!("provisor_requests_total", "protocol" => req.protocol.name(), "status" => status)
            .increment(1);
        self.journal
            .record(AuditEntry {
                at_ms: now,
                client: req.client.to_string(),
                device: outcome.device,
                protocol: req.protocol.name(),
                method: req.method,
                file: req.path.clone(),
                status: response.status,
                bytes: response.body.len(),
                hash,
                note: response.note.clone(),
                user_agent: req.user_agent.clone(),
                firmware: ua.and_then(|c| c.firmware),
                served_params: outcome.served_params,
                event: outcome.event,
                report: outcome.report,
            })
            .await;
        response
    }

    async fn dispatch(&self, req: &Request, ua: Option<&Claims>, now: i64) -> (Response, Outcome) {
        let mut out = Outcome::default();
        if let Err(limited) = self.guard.admit(req.client.ip(), now) {
            return (limited_response(limited), out);
        }
        let Some(path) = normalise(&req.path) else {
            out.failed_lookup = true;
            return (Response::error(404, "illegal file name"), out);
        };
        let cert_mac = req.certificate.as_ref().and_then(|c| c.mac.clone());
        let route = self.router.route(&path);
        let is_profile = matches!(
            route,
            Route::Profile { .. } | Route::EncryptedProfile(_) | Route::Enterprise(_) | Route::EnterpriseDefault
        );
        if is_profile
            && req.protocol != Protocol::Tftp
            && let Some(c) = &self.credentials
        {
            let now_s = now as u64 / 1000;
            if !req.authorization.as_deref().is_some_and(|h| c.verify(h, req.method, &req.target, now_s)) {
                let mut r = Response::error(401, "authentication required");
                r.challenges = c.challenges(now_s).to_vec();
                return (r, out);
            }
        }
        let response = match route {
            Route::TrustList => Response::error(404, "no trust list: phones without one accept unsigned files"),
            Route::Metrics => Response::error(404, "metrics are served over HTTP only"),
            Route::Firmware(name) => self.firmware(&name),
            Route::Report(name) => self.report(req, &name, ua, cert_mac, now, &mut out).await,
            Route::EncryptedProfile(token) => self.encrypted(req, &token, ua, cert_mac, &mut out).await,
            Route::Enterprise(mac) => {
                if cert_mac.as_ref().is_some_and(|c| *c != mac) {
                    self.refuse(cert_mac, &mac, &path, &mut out)
                } else {
                    self.enterprise(req, &mac, cert_mac, now, &mut out).await
                }
            }
            Route::EnterpriseDefault => self.generic(Variant::XmlDefault).await,
            Route::Profile { captures, .. } => {
                let named = captures.mac.clone();
                match (&cert_mac, &named) {
                    (Some(c), Some(n)) if c != n => self.refuse(cert_mac.clone(), n, &path, &mut out),
                    _ => {
                        let mac = named.or(cert_mac.clone()).or_else(|| ua.and_then(|u| u.mac.clone()));
                        self.profile(req, mac, captures.model, ua, cert_mac, now, &mut out).await
                    }
                }
            }
            Route::Unknown => {
                let bare = self.firmware(path.trim_start_matches('/'));
                if bare.status == 200 {
                    bare
                } else {
                    out.failed_lookup = true;
                    Response::error(404, "not found")
                }
            }
        };
        (response, out)
    }

    /// 403 for a request whose verified certificate names another device; logged on the certificate's device.
    fn refuse(&self, cert: Option<Mac>, asked: &Mac, path: &str, out: &mut Outcome) -> Response {
        let note = format!("certificate of {} asked for {asked}'s file {path}", cert.as_ref().map_or("-", Mac::as_str));
        tracing::warn!("refused: {note}");
        out.device = cert;
        out.failed_lookup = true;
        out.event = Some(("refused", note.clone()));
        // The body says no more than that: naming the device would tell the client whose path or MAC it tried.
        let mut r = Response::error(403, "forbidden: the client certificate names another device");
        r.note = note;
        r
    }

    fn firmware(&self, name: &str) -> Response {
        let Some(dir) = &self.config.firmware.dir else { return Response::error(404, "no firmware directory") };
        let Ok(source) = provisor_tftp::content::FsSource::new(dir, true) else {
            return Response::error(404, "firmware directory missing");
        };
        match source.resolve(name) {
            Ok(path) => match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => Response::ok(Body::File(path, m.len()), "application/octet-stream"),
                _ => Response::error(404, "no such firmware file"),
            },
            Err(_) => Response::error(404, "no such firmware file"),
        }
    }

    /// An MPP profile by name (`/$MA.xml`, `/$PSN.xml`, ...). Only a client that proved it is the device (a
    /// verified certificate naming it, over HTTPS) gets the full profile; everyone else gets the bootstrap profile,
    /// which holds no secret. `secrets_without_certificate` is the documented lab exception.
    #[allow(clippy::too_many_arguments)]
    async fn profile(
        &self,
        req: &Request,
        mac: Option<Mac>,
        model: Option<String>,
        ua: Option<&Claims>,
        cert_mac: Option<Mac>,
        now: i64,
        out: &mut Outcome,
    ) -> Response {
        let pv = &self.config.provisioning;
        let policy = pv.unknown_devices;
        let Some(mac) = mac else {
            return match policy {
                UnknownDevices::Deny => {
                    out.failed_lookup = true;
                    Response::error(404, "device not identified (no MAC in the name, certificate or User-Agent)")
                }
                _ => self.bootstrap(req).await,
            };
        };
        let verified = req.protocol == Protocol::Https && cert_mac.as_ref() == Some(&mac);
        // Only where the answer depends on the device does naming a MAC count towards the enumeration limits: `deny`
        // tells known from unknown MACs (`enrol` does not: without a certificate both get the bootstrap profile).
        let revealing = policy == UnknownDevices::Deny || pv.secrets_without_certificate;
        if !verified
            && revealing
            && let Err(limited) = self.guard.name_mac(req.client.ip(), &mac, now)
        {
            return limited_response(limited);
        }
        out.device = Some(mac.clone());
        let device = match self.store.device(&mac).await {
            Ok(Some(d)) => d,
            Ok(None) => match policy {
                UnknownDevices::Deny => {
                    out.device = None;
                    out.failed_lookup = true;
                    return Response::error(404, format!("device {mac} is not in the inventory"));
                }
                UnknownDevices::Bootstrap => return self.bootstrap(req).await,
                // Enrolment takes only a phone that proved its identity: otherwise anyone could add devices.
                UnknownDevices::Enrol if !verified => {
                    out.device = None;
                    return self.bootstrap(req).await;
                }
                UnknownDevices::Enrol => match self.enrol(&mac, model, req.certificate.as_ref(), ua).await {
                    Ok(d) => {
                        out.event = Some(("enrolled", format!("auto-enrolled as {}", d.model)));
                        d
                    }
                    Err(e) => return Response::error(500, format!("enrolling {mac}: {e}")),
                },
            },
            Err(e) => return Response::error(500, format!("inventory: {e}")),
        };
        if verified || pv.secrets_without_certificate {
            if let Some(refusal) = self.credentials_over_tftp(req) {
                return refusal;
            }
            self.rendered(&device, Variant::Full, false, out).await
        } else {
            self.bootstrap(req).await
        }
    }

    /// The bootstrap profile, unless it would carry HTTP credentials over TFTP.
    async fn bootstrap(&self, req: &Request) -> Response {
        match self.credentials_over_tftp(req) {
            Some(refusal) => refusal,
            None => self.generic(Variant::Bootstrap).await,
        }
    }

    /// A refusal for a TFTP request of a clear-text profile that carries `--uid`/`--pwd` (TFTP has no
    /// authentication), unless `[provisioning] credentials_over_tftp` allows it.
    fn credentials_over_tftp(&self, req: &Request) -> Option<Response> {
        let pv = &self.config.provisioning;
        (req.protocol == Protocol::Tftp && !pv.http_user.is_empty() && !pv.credentials_over_tftp).then(|| {
            Response::error(
                403,
                "this profile carries HTTP credentials and TFTP has no authentication \
                 ([provisioning] credentials_over_tftp)",
            )
        })
    }

    async fn enrol(
        &self,
        mac: &Mac,
        model: Option<String>,
        cert: Option<&Claims>,
        ua: Option<&Claims>,
    ) -> Result<Device, String> {
        let model = cert.and_then(|c| c.model.clone()).or(model).or_else(|| ua.and_then(|u| u.model.clone()));
        let serial = cert.and_then(|c| c.serial.clone()).or_else(|| ua.and_then(|u| u.serial.clone()));
        let device = Device {
            mac: mac.clone(),
            model: model.unwrap_or_default(),
            serial: serial.unwrap_or_default(),
            description: "auto-enrolled".into(),
            group: self.config.provisioning.enrol_group.clone(),
            params: BTreeMap::new(),
            secrets: Secrets::generate().map_err(|e| e.to_string())?,
        };
        match self.store.add_device(&device).await {
            Ok(()) => Ok(device),
            // Another request enrolled it first.
            Err(crate::inventory::StoreError::DeviceExists(_)) => {
                self.store.device(mac).await.map_err(|e| e.to_string())?.ok_or_else(|| "vanished".to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    async fn encrypted(
        &self,
        req: &Request,
        token: &str,
        ua: Option<&Claims>,
        cert_mac: Option<Mac>,
        out: &mut Outcome,
    ) -> Response {
        let variant = match (self.config.provisioning.encryption, req.protocol) {
            (ProfileEncryption::Aes128gcm, Protocol::Http | Protocol::Https) => Variant::Gcm,
            _ if self.old_firmware(ua) => Variant::CbcMd5,
            _ => Variant::Cbc,
        };
        let path_key = Key::Path(token.to_string(), variant);
        if let Some(s) = self.cache.read().expect("not poisoned").get(&path_key).cloned()
            && (cert_mac.is_none() || cert_mac == s.device)
        {
            out.device = s.device.clone();
            out.served_params = s.params.clone();
            return Response::served(&s);
        }
        let (device, previous) = match self.store.device_by_path_token(token).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                out.failed_lookup = true;
                return Response::error(404, "not found");
            }
            Err(e) => return Response::error(500, format!("inventory: {e}")),
        };
        if cert_mac.as_ref().is_some_and(|c| *c != device.mac) {
            return self.refuse(cert_mac, &device.mac, &req.path, out);
        }
        out.device = Some(device.mac.clone());
        if !previous && device.secrets.previous.is_some() {
            // The phone uses its new secrets: the old ones can go.
            if let Err(e) = self.store.forget_previous_secrets(&device.mac).await {
                tracing::error!("{}: dropping rotated secrets: {e}", device.mac);
            } else {
                out.event = Some(("rotated", "the phone now uses its new key and path".into()));
            }
        }
        match self.rendering(&device, variant, previous, out).await {
            Ok(s) => {
                // Only a device that is not mid-rotation is found by its path alone (see the rotation above).
                if !previous && device.secrets.previous.is_none() {
                    self.cache.write().expect("not poisoned").insert(path_key, s.clone());
                }
                Response::served(&s)
            }
            Err(e) => Response::error(500, e),
        }
    }

    /// Whether the request's User-Agent reports firmware older than `md5_before_firmware`.
    fn old_firmware(&self, ua: Option<&Claims>) -> bool {
        use provisor_rules::version::Version;
        let limit = &self.config.provisioning.md5_before_firmware;
        if limit.is_empty() {
            return false;
        }
        let firmware = ua.and_then(|c| c.firmware.as_deref());
        match (firmware.map(Version::parse), Version::parse(limit)) {
            (Some(Ok(v)), Ok(l)) => v.compare(&l).is_ok_and(|o| o == std::cmp::Ordering::Less),
            _ => false,
        }
    }

    /// `SEP<MAC>.cnf.xml` (specs.md §5.1). Enterprise firmware without per-phone encryption can only get its line
    /// passwords this way, in clear text: so only devices of enterprise models get one, only from
    /// `[provisioning] trusted_networks` (when set), and naming MACs counts towards the enumeration limits. An MPP
    /// device never asks for one and gets the same "not found" as an unknown MAC.
    async fn enterprise(
        &self,
        req: &Request,
        mac: &Mac,
        cert_mac: Option<Mac>,
        now: i64,
        out: &mut Outcome,
    ) -> Response {
        if !self.config.provisioning.trusts(req.client.ip()) {
            out.failed_lookup = true;
            return Response::error(403, "SEP<MAC>.cnf.xml goes only to [provisioning] trusted_networks");
        }
        if cert_mac.as_ref() != Some(mac)
            && let Err(limited) = self.guard.name_mac(req.client.ip(), mac, now)
        {
            return limited_response(limited);
        }
        match self.store.device(mac).await {
            Ok(Some(d)) if d.is_enterprise() => {
                out.device = Some(d.mac.clone());
                self.rendered(&d, Variant::Sep, false, out).await
            }
            Ok(_) => {
                out.failed_lookup = true;
                Response::error(
                    404,
                    format!("no enterprise phone {mac} in the inventory (the phone falls back to XMLDefault.cnf.xml)"),
                )
            }
            Err(e) => Response::error(500, format!("inventory: {e}")),
        }
    }

    /// A device-independent file (bootstrap profile, `XMLDefault.cnf.xml`), cached.
    async fn generic(&self, variant: Variant) -> Response {
        let key = Key::Device(None, variant);
        if let Some(s) = self.cache.read().expect("not poisoned").get(&key) {
            return Response::served(s);
        }
        let device = Device::blank(Mac::placeholder(), Secrets::none());
        let (template, params) = match variant {
            Variant::XmlDefault => (render::XMLDEFAULT, BTreeMap::new()),
            _ => (render::BOOTSTRAP, self.bootstrap_params()),
        };
        let templates = match &*self.templates.read().expect("not poisoned") {
            Ok(t) => t.clone(),
            Err(e) => return Response::error(500, format!("templates: {e}")),
        };
        match templates.render_checked(template, &device, &params, &self.server_facts(None)) {
            Ok((text, _)) => {
                let s = Arc::new(Served {
                    hash: hex(&Sha256::digest(text.as_bytes())).into(),
                    body: Bytes::from(text),
                    device: None,
                    content_type: "text/xml; charset=utf-8",
                    content_encoding: None,
                    params: None,
                });
                self.cache.write().expect("not poisoned").insert(key, s.clone());
                Response::served(&s)
            }
            Err(e) => {
                tracing::error!("{e}");
                Response::error(500, e.to_string())
            }
        }
    }

    fn url(&self, scheme: &str) -> Option<String> {
        let port = match scheme {
            "http" => self.ports.http?,
            "https" => self.ports.https?,
            _ => self.ports.tftp?,
        };
        Some(format!("{scheme}://{}:{port}", self.config.public_host))
    }

    fn bootstrap_params(&self) -> BTreeMap<String, String> {
        let mut p = BTreeMap::new();
        let scheme = if self.ports.https.is_some() { "https" } else { "http" };
        if let Some(base) = self.url(scheme) {
            p.insert("Profile_Rule".to_string(), format!("{}{base}/$MA.xml", self.auth_options(false)));
        }
        p.insert("Resync_Periodic".to_string(), self.config.provisioning.resync_periodic.to_string());
        if let Some(port) = self.ports.syslog {
            p.insert("Syslog_Server".to_string(), format!("{}:{port}", self.config.public_host));
        }
        p
    }

    /// `[--uid u --pwd p]`-style options (with the key option when `key`).
    fn auth_options(&self, key: bool) -> String {
        let mut opts = Vec::new();
        if key {
            opts.push(format!("--key ${}", self.config.provisioning.key_gpp));
        }
        let pv = &self.config.provisioning;
        if !pv.http_user.is_empty() {
            opts.push(format!("--uid {} --pwd {}", pv.http_user, pv.http_password));
        }
        if opts.is_empty() { String::new() } else { format!("[{}] ", opts.join(" ")) }
    }

    fn server_facts(&self, device: Option<&Device>) -> BTreeMap<String, String> {
        let mut f = BTreeMap::new();
        f.insert("host".to_string(), self.config.public_host.clone());
        for (name, port) in
            [("http_port", self.ports.http), ("https_port", self.ports.https), ("tftp_port", self.ports.tftp)]
        {
            if let Some(p) = port {
                f.insert(name.to_string(), p.to_string());
            }
        }
        if let Some(file) = device.and_then(|d| self.config.firmware.targets.get(&d.model)) {
            f.insert("load".to_string(), load_name(file).to_string());
        }
        f.insert("version_stamp".to_string(), format!("provisor-{}", self.revision.load(Ordering::Acquire)));
        f
    }

    /// The parameters of `device`'s full profile: its effective parameters plus what the secure flow, firmware,
    /// reports and syslog need.
    async fn full_params(&self, d: &Device) -> Result<BTreeMap<String, String>, String> {
        let mut p = effective_parameters(&self.store, d).await.map_err(|e| e.to_string())?;
        let pv = &self.config.provisioning;
        p.insert(format!("GPP_{}", pv.key_gpp), d.secrets.aes_key.clone());
        p.insert(format!("GPP_{}", pv.path_gpp), d.secrets.path_token.clone());
        if pv.encryption == ProfileEncryption::Aes128gcm {
            p.insert("IKM_HTTP_Encrypt_Content".into(), d.secrets.ikm.clone());
        }
        if let Some(base) = self.url(&pv.resync_scheme) {
            p.insert(
                "Profile_Rule".into(),
                format!("{}{base}/profile/${}/profile.cfg", self.auth_options(true), pv.path_gpp),
            );
        }
        p.entry("Resync_Periodic".into()).or_insert_with(|| pv.resync_periodic.to_string());
        if let Some(base) = self.url("http").or_else(|| self.url("https")) {
            p.entry("Report_Rule".into()).or_insert_with(|| format!("[--key ${}]{base}/report/$MA.xml", pv.key_gpp));
        }
        if let Some(file) = self.config.firmware.targets.get(&d.model)
            && let Some(base) = self.url("http").or_else(|| self.url("tftp"))
        {
            p.entry("Upgrade_Rule".into())
                .or_insert_with(|| format!("($SWVER ne {})? {base}/firmware/{file}", load_name(file)));
        }
        if let Some(port) = self.ports.syslog {
            p.entry("Syslog_Server".into()).or_insert_with(|| format!("{}:{port}", self.config.public_host));
        }
        Ok(p)
    }

    /// A device's rendering in `variant`, from the cache or made now. With `previous`, encrypted with the secrets
    /// a rotation replaced (never cached).
    async fn rendered(&self, d: &Device, variant: Variant, previous: bool, out: &mut Outcome) -> Response {
        match self.rendering(d, variant, previous, out).await {
            Ok(s) => Response::served(&s),
            Err(e) => Response::error(500, e),
        }
    }

    async fn rendering(
        &self,
        d: &Device,
        variant: Variant,
        previous: bool,
        out: &mut Outcome,
    ) -> Result<Arc<Served>, String> {
        let key = Key::Device(Some(d.mac.clone()), variant);
        if !previous && let Some(s) = self.cache.read().expect("not poisoned").get(&key).cloned() {
            out.served_params = s.params.clone();
            return Ok(s);
        }
        match self.render(d, variant, previous).await {
            Ok(s) => {
                let s = Arc::new(s);
                if !previous {
                    self.cache.write().expect("not poisoned").insert(key, s.clone());
                }
                out.served_params = s.params.clone();
                Ok(s)
            }
            Err(e) => {
                tracing::error!("{e}");
                out.event = Some(("error", e.clone()));
                Err(e)
            }
        }
    }

    async fn render(&self, d: &Device, variant: Variant, previous: bool) -> Result<Served, String> {
        let templates = self.templates.read().expect("not poisoned").clone().map_err(|e| format!("templates: {e}"))?;
        let params = self.full_params(d).await?;
        let template = match variant {
            Variant::Sep => render::SEP,
            _ => self.config.templates.by_model.get(&d.model).map_or(render::MPP, String::as_str),
        };
        let (text, profile) =
            templates.render_checked(template, d, &params, &self.server_facts(Some(d))).map_err(|e| e.to_string())?;
        let params = profile.as_ref().map(params_json);
        let plain = text.into_bytes();
        let (body, encoding) = match variant {
            Variant::Full | Variant::Bootstrap | Variant::Sep | Variant::XmlDefault => (plain, None),
            Variant::Cbc | Variant::CbcMd5 => {
                let pass = match (&d.secrets.previous, previous) {
                    (Some(p), true) => p.aes_key.as_bytes(),
                    _ => d.secrets.aes_key.as_bytes(),
                };
                // The device's own setting if it is not the default, else the model's, else SHA-256.
                let by_model = self.config.provisioning.digest_by_model.get(&d.model);
                let name = if d.secrets.aes_digest == "md5" || variant == Variant::CbcMd5 {
                    "md5"
                } else {
                    by_model.map_or("sha256", String::as_str)
                };
                let digest: KdfDigest = name.parse().unwrap_or(KdfDigest::Sha256);
                let zipped = gzip::compress(&plain);
                let s = salt::<{ openssl_enc::SALT_LEN }>(pass, &zipped);
                (openssl_enc::encrypt(&zipped, pass, Kdf::BytesToKey(digest), Some(s)), None)
            }
            Variant::Gcm => {
                let ikm_hex = match (&d.secrets.previous, previous) {
                    (Some(p), true) => p.ikm.as_str(),
                    _ => d.secrets.ikm.as_str(),
                };
                let ikm =
                    aes128gcm::ikm_from_hex(ikm_hex).ok_or_else(|| format!("{}: the stored IKM is not hex", d.mac))?;
                let zipped = gzip::compress(&plain);
                let s = salt::<{ aes128gcm::SALT_LEN }>(&ikm, &zipped);
                let body = aes128gcm::encrypt(&zipped, &ikm, s, aes128gcm::DEFAULT_RECORD_SIZE, b"")
                    .map_err(|e| e.to_string())?;
                (body, Some("aes128gcm"))
            }
        };
        let content_type = match variant {
            Variant::Cbc | Variant::CbcMd5 | Variant::Gcm => "application/octet-stream",
            _ => "text/xml; charset=utf-8",
        };
        Ok(Served {
            hash: hex(&Sha256::digest(&body)).into(),
            body: Bytes::from(body),
            device: Some(d.mac.clone()),
            content_type,
            content_encoding: encoding,
            params,
        })
    }

    /// A `Report_Rule` upload (specs.md §4.5). It changes what `device show` reports as drift, so it must prove the
    /// device: encrypted with the device's key (or IKM), or sent over HTTPS with its verified certificate. Plain
    /// reports from anyone else are refused unless `[provisioning] plain_reports` is set.
    async fn report(
        &self,
        req: &Request,
        name: &str,
        ua: Option<&Claims>,
        cert_mac: Option<Mac>,
        now: i64,
        out: &mut Outcome,
    ) -> Response {
        if !matches!(req.method, "PUT" | "POST" | "WRQ") {
            return Response::error(405, "reports are uploaded with PUT or POST (HTTP) or a write request (TFTP)");
        }
        let named = mac_in(name);
        if let (Some(c), Some(n)) = (&cert_mac, &named)
            && c != n
        {
            return self.refuse(cert_mac.clone(), n, &req.path, out);
        }
        let verified_mac = if req.protocol == Protocol::Https { cert_mac.clone() } else { None };
        let Some(mac) = cert_mac.or(named).or_else(|| ua.and_then(|u| u.mac.clone())) else {
            out.failed_lookup = true;
            return Response::error(404, "report names no device");
        };
        let verified = verified_mac.as_ref() == Some(&mac);
        if !verified && let Err(limited) = self.guard.name_mac(req.client.ip(), &mac, now) {
            return limited_response(limited);
        }
        let device = match self.store.device(&mac).await {
            Ok(Some(d)) => d,
            Ok(None) => {
                out.failed_lookup = true;
                return Response::error(404, format!("device {mac} is not in the inventory"));
            }
            Err(e) => return Response::error(500, format!("inventory: {e}")),
        };
        out.device = Some(mac.clone());
        if req.body.len() > self.config.limits.max_report_bytes {
            return Response::error(413, "report too large");
        }

        let mut key_sets = vec![(device.secrets.aes_key.clone(), device.secrets.ikm.clone())];
        if let Some(p) = &device.secrets.previous {
            key_sets.push((p.aes_key.clone(), p.ikm.clone()));
        }
        let mut last_error = String::new();
        for (key, ikm) in key_sets {
            let keys = Keys { key: Some(key.into_bytes()), ikm: aes128gcm::ikm_from_hex(&ikm), ..Keys::default() };
            match provisor_envelope::unwrap(&req.body, &keys, &Limits::default()) {
                Ok(u) => {
                    if u.layers.is_empty() && !verified && !self.config.provisioning.plain_reports {
                        let note = format!(
                            "report {name}: refused a plain report; it must be encrypted with the device's key or \
                             sent over HTTPS with its certificate ([provisioning] plain_reports)"
                        );
                        out.event = Some(("refused", note.clone()));
                        return Response::error(403, note);
                    }
                    let profile = match Profile::parse(&u.plaintext, &ParseOptions::default()) {
                        Ok(p) => p,
                        Err(e) => {
                            let note = format!("report {name}: {}: {}", e.position, e.kind);
                            out.event = Some(("error", note.clone()));
                            return Response::error(400, note);
                        }
                    };
                    // Counted only once accepted, so garbage cannot use up a device's allowance.
                    if let Err(limited) = self.guard.device_event(&mac, now) {
                        return limited_response(limited);
                    }
                    let layers: Vec<String> = u.layers.iter().map(|l| format!("{l:?}")).collect();
                    out.event = Some((
                        "report",
                        format!(
                            "{name}: {} parameters ({})",
                            profile.effective().len(),
                            if layers.is_empty() { "plain".to_string() } else { layers.join(", ") }
                        ),
                    ));
                    out.report = Some((params_json(&profile), u.plaintext));
                    return Response::ok(Body::Bytes(Bytes::new()), "text/plain");
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        out.event = Some(("error", format!("report {name}: {last_error}")));
        Response::error(400, format!("report: {last_error}"))
    }
}

/// A 429 for a guard's refusal.
fn limited_response(limited: Limited) -> Response {
    Response::error(429, limited.note())
}

/// The first run of 12 hex digits in a name that is a MAC.
fn mac_in(name: &str) -> Option<Mac> {
    let b = name.as_bytes();
    (0..b.len().saturating_sub(11)).find_map(|i| {
        let w = &name.get(i..i + 12)?;
        let edge = |j: usize| b.get(j).is_none_or(|c| !c.is_ascii_hexdigit());
        (w.bytes().all(|c| c.is_ascii_hexdigit()) && (i == 0 || edge(i - 1)) && edge(i + 12))
            .then(|| w.parse().ok())
            .flatten()
    })
}

fn load_templates(config: &Config) -> Result<Templates, render::RenderError> {
    match &config.templates.dir {
        Some(dir) if dir.exists() => Templates::from_dir(dir),
        _ => Ok(Templates::builtin()),
    }
}

/// The newest modification time in the template directory (a change reloads the templates).
fn templates_stamp(config: &Config) -> Option<SystemTime> {
    let dir = config.templates.dir.as_ref()?;
    let mut newest = std::fs::metadata(dir).and_then(|m| m.modified()).ok();
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
            newest = newest.max(Some(t));
        }
    }
    newest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_names_and_macs_in_names() {
        assert_eq!(load_name("sip88xx.12-0-1MPP-BN.loads"), "sip88xx.12-0-1MPP");
        assert_eq!(load_name("sip78xx.11-0-1MPP.loads"), "sip78xx.11-0-1MPP");
        assert_eq!(mac_in("001122aabbcc.xml"), "001122aabbcc".parse().ok());
        assert_eq!(mac_in("cfg-001122AABBCC-delta.xml"), "001122aabbcc".parse().ok());
        assert_eq!(mac_in("0001122aabbcc.xml"), None);
        assert_eq!(mac_in("status.xml"), None);
    }

    #[test]
    fn deterministic_salts_differ_by_key_and_text() {
        let a = salt::<8>(b"k", b"text");
        assert_eq!(a, salt::<8>(b"k", b"text"));
        assert_ne!(a, salt::<8>(b"k2", b"text"));
        assert_ne!(a, salt::<8>(b"k", b"text2"));
    }
}
