//! The provisioning core: one request in (protocol, file name, client, User-Agent, verified certificate claims) and
//! the time, one response out, with the audit entry recorded behind it. It reads the inventory through
//! [`Store`], records through [`Journal`], reads templates and firmware through [`Content`], and takes the time as
//! an argument: no sockets, no files, no clock. The HTTP, HTTPS, TFTP and syslog front ends
//! (`crate::front`) are thin shells around [`Provisioner::handle`]; tests drive it in process.
//!
//! The secure flow (Cisco "Provisioning Guide", SEC-PRV-1/2; "Open Profile Encryption"):
//! 1. A phone that names itself only by MAC (plain HTTP, TFTP, or HTTPS without a verified certificate) gets the
//!    bootstrap profile: no secrets, and a `Profile_Rule` that sends it to HTTPS ([`route::profile`]).
//! 2. Over HTTPS with a client certificate that a configured CA signed and whose `S` names the device, it gets its
//!    full profile, including its AES key (`GPP_SA` by default) and random path (`GPP_B`), and a `Profile_Rule` of
//!    the form `[--key $SA] http://host/profile/$B/profile.cfg` ([`parameters`]).
//! 3. Later resyncs fetch `/profile/<random>/...` over plain HTTP or TFTP, and get only ciphertext ([`seal`]):
//!    gzip, then AES-256-CBC with the device's key (or RFC 8188 with its IKM) ([`route::encrypted`]).
//!
//! A rotation ([`crate::inventory::Secrets::rotated`]) keeps the old key and path until the phone has fetched, at its
//! old path and under its old key, the profile that gives it the new ones.
//!
//! Rendered responses are cached ([`cache`]) and dropped when the inventory's revision or the templates change
//! ([`Provisioner::refresh`], which the server calls every 250 ms).

use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use provisor_auth::Verifier;

use crate::config::Config;
use crate::content::Content;
use crate::identity::{Claims, parse_user_agent};
use crate::inventory::{Mac, Store};
use crate::journal::Journal;
use crate::render::Templates;
use crate::routing::{Route, Router, normalise};

pub mod cache;
pub mod guard;
pub mod parameters;
pub mod preview;
mod record;
mod rendering;
pub mod request;
pub mod route;
pub mod seal;

use cache::{Cache, Variant};
use guard::Guard;
pub use parameters::{Ports, load_name};
pub use request::{Body, Outcome, Protocol, ProvisionError, Request, Response};

/// The provisioning core, shared by every front end.
pub struct Provisioner<S: Store, J: Journal> {
    store: S,
    journal: J,
    content: Box<dyn Content>,
    config: Config,
    ports: Ports,
    router: Router,
    /// The templates, or why they do not load (every render fails until that is fixed).
    templates: RwLock<Result<Arc<Templates>, String>>,
    cache: Cache,
    credentials: Option<Verifier>,
    guard: Guard,
    /// The device last seen at each address (for syslog lines that do not name their sender).
    addresses: Mutex<hashbrown::HashMap<IpAddr, Mac>>,
    /// The CA certificate (PEM) phones install with `Custom_CA_Rule`, served at `/ca.pem`.
    site_ca: RwLock<Option<bytes::Bytes>>,
    /// Signs enterprise files (`tftp.pem` of `[enterprise] trust_dir`).
    file_signer: RwLock<Option<Arc<provisor_trust::Signer>>>,
}

/// Whether the request carries a verified client certificate that names a device (HTTPS only).
fn verified(req: &Request) -> bool {
    req.protocol == Protocol::Https && req.certificate.as_ref().is_some_and(|c| c.mac.is_some())
}

/// Unix milliseconds.
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl<S: Store, J: Journal> Provisioner<S, J> {
    /// A provisioner over `store` and `content`, recording into `journal`, announcing `ports` in rendered URLs.
    pub fn new(
        store: S,
        journal: J,
        content: impl Content,
        config: Config,
        ports: Ports,
    ) -> Result<Provisioner<S, J>, String> {
        let router = Router::new(&config.provisioning.patterns)?;
        let cache = Cache::with_limit((config.provisioning.cache_mb as usize) << 20);
        cache.templates_changed(content.templates_stamp());
        let templates = content.templates().map(Arc::new).map_err(|e| e.to_string())?;
        let pv = &config.provisioning;
        let credentials =
            (!pv.http_user.is_empty()).then(|| Verifier::new(&pv.http_user, &pv.http_password, "provisor"));
        Ok(Provisioner {
            store,
            journal,
            content: Box::new(content),
            ports,
            router,
            templates: RwLock::new(Ok(templates)),
            cache,
            credentials,
            guard: Guard::new(config.limits.clone()),
            addresses: Mutex::new(hashbrown::HashMap::new()),
            site_ca: RwLock::new(None),
            file_signer: RwLock::new(None),
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

    /// The journal.
    pub fn journal(&self) -> &J {
        &self.journal
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

    /// Drops cached renderings if the inventory or the templates changed, and reloads changed templates (an
    /// inventory that cannot be read is logged; [`Provisioner::try_refresh`] returns it instead).
    pub async fn refresh(&self) {
        if let Err(e) = self.try_refresh().await {
            tracing::error!("inventory revision: {e}");
        }
    }

    /// [`Provisioner::refresh`], returning the error when the inventory's revision could not be read (the server's
    /// watcher backs off and logs once).
    pub async fn try_refresh(&self) -> Result<(), crate::inventory::StoreError> {
        let revision = self.store.revision().await;
        if let Ok(r) = &revision {
            self.cache.at_revision(*r);
        }
        if self.cache.templates_changed(self.content.templates_stamp()) {
            let loaded = self.content.templates().map(Arc::new).map_err(|e| e.to_string());
            match &loaded {
                Ok(_) => tracing::info!("templates reloaded"),
                Err(e) => tracing::error!("templates: {e}; profile requests fail until this is fixed"),
            }
            *self.templates.write().unwrap_or_else(|p| p.into_inner()) = loaded;
            self.cache.clear();
        }
        revision.map(|_| ())
    }

    /// Sets the CA certificate (PEM) served at `/ca.pem` for `Custom_CA_Rule`; `None` when phones already trust the
    /// server certificate (`[https] public_ca`) or there is no HTTPS.
    pub fn set_site_ca(&self, pem: Option<bytes::Bytes>) {
        *self.site_ca.write().unwrap_or_else(|p| p.into_inner()) = pem;
    }

    /// Sets the signer of enterprise files (`.sgn`, `.enc.sgn`): a TFTP-role certificate of the site's trust list.
    pub fn set_file_signer(&self, signer: Option<provisor_trust::Signer>) {
        *self.file_signer.write().unwrap_or_else(|p| p.into_inner()) = signer.map(Arc::new);
        self.cache.clear();
    }

    pub(crate) fn file_signer(&self) -> Option<Arc<provisor_trust::Signer>> {
        self.file_signer.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the bootstrap installs a site CA (`Custom_CA_Rule`).
    pub fn has_site_ca(&self) -> bool {
        self.site_ca.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Reloads the templates whether or not their files look changed, and drops every cached rendering (SIGHUP).
    pub fn reload_templates(&self) -> Result<(), String> {
        let loaded = self.content.templates().map(Arc::new).map_err(|e| e.to_string());
        let result = loaded.as_ref().map(|_| ()).map_err(Clone::clone);
        *self.templates.write().unwrap_or_else(|p| p.into_inner()) = loaded;
        self.cache.clear();
        result
    }

    /// Answers a request that arrived at `now`, and records it.
    pub async fn handle(&self, req: Request, now: SystemTime) -> Response {
        let now = unix_ms(now);
        let ua = req.user_agent.as_deref().and_then(parse_user_agent);
        let mut out = Outcome::default();
        let mut response = match self.serve(&req, ua.as_ref(), now, &mut out).await {
            Ok(r) => r,
            Err(e) => {
                self.note_failure(&e, req.client.ip(), now, verified(&req), &mut out);
                Response::from(e)
            }
        };
        response.device.clone_from(&out.device);
        if let Some(mac) = &out.device
            && let Ok(mut a) = self.addresses.lock()
            && a.get(&req.client.ip()) != Some(mac)
        {
            if a.len() > 1_000_000 {
                a.clear();
            }
            a.insert(req.client.ip(), mac.clone());
        }
        self.record(req, ua, now, &response, out).await;
        response
    }

    /// The flow: rate guard → normalise → route → authenticate → identify → look up and serve (in the route's
    /// module).
    pub(crate) async fn serve(
        &self,
        req: &Request,
        ua: Option<&Claims>,
        now: i64,
        out: &mut Outcome,
    ) -> Result<Response, ProvisionError> {
        // A phone that proved who it is is never refused for what others at its address did (phones behind one NAT).
        if !verified(req) {
            self.guard.admit(req.client.ip(), now).map_err(ProvisionError::Limited)?;
        }
        let path = normalise(&req.path).ok_or(ProvisionError::IllegalName)?;
        let route = self.router.route(&path);
        self.authenticate(req, &route, now)?;
        // Identity: a verified certificate names the device; a file name or User-Agent only claims one.
        let certificate = req.certificate.as_ref().and_then(|c| c.mac.clone());
        match route {
            Route::TrustList => self.trust_list(&path),
            Route::SiteCa => self.site_ca(),
            Route::Signed(inner) => self.signed(req, &inner, now, out).await,
            Route::EncryptedConfig(mac) => self.encrypted_config(req, &mac, certificate, now, out).await,
            Route::Static(name) => self.static_file(&name),
            Route::Firmware(name) => self.firmware(&name),
            Route::Report(name) => self.report(req, &name, ua, certificate, now, out).await,
            Route::EncryptedProfile(token) => self.encrypted(req, &token, ua, certificate, out).await,
            Route::Enterprise(mac) => self.enterprise(req, &path, &mac, certificate, now, out).await,
            Route::EnterpriseDefault => self.generic(Variant::XmlDefault).await,
            Route::Profile { captures, .. } => self.profile(req, &path, captures, ua, certificate, now, out).await,
            Route::Unknown => self.firmware(path.trim_start_matches('/')).map_err(|_| ProvisionError::NotFound),
        }
    }

    /// With `[provisioning] http_user` set, profiles over HTTP(S) need Basic or Digest credentials (RFC 7617/7616).
    fn authenticate(&self, req: &Request, route: &Route, now: i64) -> Result<(), ProvisionError> {
        let is_profile = matches!(
            route,
            Route::Profile { .. } | Route::EncryptedProfile(_) | Route::Enterprise(_) | Route::EnterpriseDefault
        );
        let Some(c) = self.credentials.as_ref().filter(|_| is_profile && req.protocol != Protocol::Tftp) else {
            return Ok(());
        };
        let now_s = now as u64 / 1000;
        if req.authorization.as_deref().is_some_and(|h| c.verify(h, req.method, req.target(), now_s)) {
            return Ok(());
        }
        Err(ProvisionError::Unauthenticated { challenges: c.challenges(now_s).to_vec() })
    }
}
