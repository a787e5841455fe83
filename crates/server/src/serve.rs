//! `provisor serve`: binds every configured front end (HTTP, HTTPS, TFTP, syslog), opens the inventory, and runs the
//! [`Provisioner`] behind them. [`demo`] fills an empty data directory with demo devices and a demo phone certificate.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use provisor_tftp::service::Service;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::content::FsContent;
use crate::front::tftp::{TftpFront, service_config};
use crate::front::tls::{self, Generated};
use crate::inventory::at_rest::{AtRest, SiteKey};
use crate::inventory::{
    AnyStore, Device, Group, MemoryStore, PoolLimits, PostgresStore, Secrets, SqliteStore, Store, StoreError,
};
use crate::journal::{AuditFile, MemoryJournal, PostgresJournal, Queue, SqliteJournal};
use crate::provision::{Ports, Provisioner};

/// The data directory that keeps the inventory in memory (`--data-dir :memory:`).
pub const MEMORY: &str = ":memory:";

/// The provisioning core as `provisor serve` runs it.
pub type Core = Provisioner<AnyStore, Queue>;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A port could not be bound.
    #[error("{what} {addr}")]
    Bind {
        /// Which front end.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The inventory could not be opened.
    #[error("inventory: {0}")]
    Store(#[from] StoreError),
    /// TLS could not be set up.
    #[error("https: {0}")]
    Tls(#[from] tls::TlsError),
    /// The provisioner could not be built (templates, patterns).
    #[error("{0}")]
    Setup(String),
}

/// A running server.
pub struct Running {
    /// The bound addresses.
    pub http: Option<SocketAddr>,
    /// HTTPS.
    pub https: Option<SocketAddr>,
    /// TFTP.
    pub tftp: Option<SocketAddr>,
    /// Syslog.
    pub syslog: Option<SocketAddr>,
    /// The admin listener (`/metrics`, `/healthz`).
    pub admin: Option<SocketAddr>,
    /// Enterprise phones' HTTP (6970).
    pub enterprise_http: Option<SocketAddr>,
    /// Enterprise phones' HTTPS (6971).
    pub enterprise_https: Option<SocketAddr>,
    /// The generated CA and server certificate, when none was configured.
    pub generated: Option<Generated>,
    /// The provisioning core.
    pub provisioner: Arc<Core>,
    /// Where the server keeps its files (a private temporary directory with `--data-dir :memory:`).
    pub data_dir: PathBuf,
    shutdown: CancellationToken,
    fronts: JoinSet<()>,
    writer: tokio::task::JoinHandle<()>,
    scratch: Option<PathBuf>,
    tls: Option<LiveTls>,
    audit_reopen: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl Running {
    /// Runs until a front end stops (they do not: they log and go on) or [`Running::shutdown_token`] is cancelled.
    pub async fn wait(&mut self) {
        while self.fronts.join_next().await.is_some() {}
    }

    /// Reloads what can change while serving (SIGHUP), from `new` (the configuration file read again):
    /// - the HTTPS certificate, key and client CAs (a renewed certificate, a new phone CA), for new connections;
    /// - the templates, whatever their modification times, with every cached rendering dropped;
    /// - the audit log is reopened (after logrotate moved it).
    ///
    /// Everything else (listeners, `data_dir`, `[provisioning]`, `[limits]`, ...) is read at start only: each changed
    /// section is named in the returned notes as waiting for a restart. A new configuration that fails to load or a
    /// certificate that fails to read changes nothing of its part, and says why.
    pub fn reload(&self, new: &Config) -> Vec<String> {
        let mut notes = Vec::new();
        let current = self.provisioner.config();
        if let Some(live) = &self.tls {
            // The running data directory (a server in memory keeps its generated keys in its scratch directory).
            let mut tls_config = new.clone();
            tls_config.data_dir.clone_from(&self.data_dir);
            match tls_materials(&tls_config) {
                Ok((tls, generated)) => {
                    *live.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(tls);
                    self.provisioner.set_site_ca(site_ca_pem(&tls_config, generated.as_ref()));
                    notes.push("HTTPS certificate, key and client CAs reloaded".to_string());
                }
                Err(e) => notes.push(format!("HTTPS kept as it was: {e}")),
            }
        }
        match self.provisioner.reload_templates() {
            Ok(()) => notes.push("templates reloaded, cache cleared".to_string()),
            Err(e) => notes.push(format!("templates: {e}; profile requests fail until this is fixed")),
        }
        if let Some(flag) = &self.audit_reopen {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
            notes.push("audit log reopened at its next write".to_string());
        }
        let differs = |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
        let mut old_https = current.https.clone();
        let mut new_https = new.https.clone();
        (old_https.cert, old_https.key, old_https.client_ca) = (None, None, Vec::new());
        (new_https.cert, new_https.key, new_https.client_ca) = (None, None, Vec::new());
        let sections: [(&str, bool); 14] = [
            ("[enterprise]", differs(&new.enterprise, &current.enterprise)),
            (
                "data_dir",
                if self.in_memory() { new.data_dir != Path::new(MEMORY) } else { new.data_dir != current.data_dir },
            ),
            ("public_host", new.public_host != current.public_host),
            ("[http]", differs(&new.http.listen, &current.http.listen)),
            ("[https] listen or require_client_cert", differs(&new_https, &old_https)),
            ("[tftp]", differs(&new.tftp, &current.tftp)),
            ("[syslog]", differs(&new.syslog.listen, &current.syslog.listen)),
            ("[admin]", differs(&new.admin, &current.admin)),
            ("[templates]", differs(&new.templates, &current.templates)),
            ("[firmware]", differs(&new.firmware, &current.firmware)),
            ("[provisioning]", differs(&new.provisioning, &current.provisioning)),
            ("[limits]", differs(&new.limits, &current.limits)),
            ("[journal]", differs(&new.journal, &current.journal)),
            ("[inventory]", differs(&new.inventory, &current.inventory)),
        ];
        for (name, changed) in sections {
            if changed {
                notes.push(format!("{name} changed: it takes effect at the next restart"));
            }
        }
        notes
    }

    /// Whether the inventory is in memory (`--data-dir :memory:`).
    pub fn in_memory(&self) -> bool {
        self.scratch.is_some()
    }

    /// The token every front end watches: cancelling it starts a graceful shutdown.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops gracefully: no new connection or transfer is taken, requests and transfers in progress finish (for at
    /// most `grace`, after which they are cut), and the journal writes what is queued. Returns whether everything
    /// finished within `grace`.
    pub async fn shutdown(mut self, grace: Duration) -> bool {
        self.shutdown.cancel();
        let drained = tokio::time::timeout(grace, async { while self.fronts.join_next().await.is_some() {} }).await;
        self.fronts.abort_all();
        while self.fronts.join_next().await.is_some() {}
        // The writer ends once the last handle on the core (and so on its journal queue) is gone.
        drop(self.provisioner);
        let written = tokio::time::timeout(grace, self.writer).await;
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
        drained.is_ok() && written.is_ok()
    }
}

/// A private temporary directory for the files a server in memory still needs (generated TLS keys, upload spool).
fn scratch_dir() -> std::io::Result<PathBuf> {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(std::io::Error::other)?;
    let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let dir = std::env::temp_dir().join(format!("provisor-{}-{name}", std::process::id()));
    crate::inventory::make_private_dir(&dir)?;
    Ok(dir)
}

/// Raises the soft limit on open files to the hard limit (each HTTP connection and TFTP transfer holds a descriptor;
/// the usual soft limit of 1,024 is reached by a few hundred slow clients). Returns the limit now in force.
pub fn raise_file_limit() -> Option<u64> {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by pointer, which lives on this stack.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return None;
        }
        if r.rlim_cur < r.rlim_max {
            let wanted = libc::rlimit { rlim_cur: r.rlim_max, rlim_max: r.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                r = wanted;
            }
        }
    }
    Some(r.rlim_cur)
}

/// The HTTPS server configuration of `config`: its certificate and key (or the generated ones) and the CAs that
/// client certificates must chain to. Read at start and again at every reload (SIGHUP).
/// The site's server certificate and key: `[https] cert` and `key`, or the ones generated in `data_dir/tls/` (made on
/// the first call).
fn site_certificate(config: &Config) -> Result<(PathBuf, PathBuf, Option<Generated>), ServeError> {
    Ok(match (&config.https.cert, &config.https.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), None),
        _ => {
            let g = tls::ensure_generated(&config.data_dir.join("tls"), std::slice::from_ref(&config.public_host))?;
            (g.server_cert.clone(), g.server_key.clone(), Some(g))
        }
    })
}

fn tls_materials(config: &Config) -> Result<(rustls::ServerConfig, Option<Generated>), ServeError> {
    let (cert, key, mut generated) = site_certificate(config)?;
    let mut cas: Vec<PathBuf> = config.https.client_ca.clone();
    if config.https.test_phone_ca {
        let g = match &generated {
            Some(g) => g.clone(),
            None => tls::ensure_generated(&config.data_dir.join("tls"), std::slice::from_ref(&config.public_host))?,
        };
        cas.push(g.ca_cert.clone());
        generated = Some(g);
    }
    Ok((
        tls::server_config(&cert, &key, &cas, config.https.require_client_cert, config.https.client_cipher_order)?,
        generated,
    ))
}

/// The CA certificate (PEM) phones must install to trust the server (`Custom_CA_Rule`, served at `/ca.pem`): the
/// generated CA, or the last certificate of a configured chain (put the issuing CA last). `None` with
/// `[https] public_ca` or without HTTPS.
fn site_ca_pem(config: &Config, generated: Option<&Generated>) -> Option<bytes::Bytes> {
    if config.https.listen.is_none() || config.https.public_ca {
        return None;
    }
    let chain = match (&config.https.cert, generated) {
        (Some(cert), _) => std::fs::read_to_string(cert).ok()?,
        (None, Some(g)) => std::fs::read_to_string(&g.ca_cert).ok()?,
        (None, None) => return None,
    };
    let begin = "-----BEGIN CERTIFICATE-----";
    let last = chain.rfind(begin)?;
    let end = chain[last..].find("-----END CERTIFICATE-----")? + last + "-----END CERTIFICATE-----".len();
    Some(bytes::Bytes::from(format!("{}\n", &chain[last..end])))
}

/// The file signer (`tftp.pem`) and the HTTPS configuration for port 6971 (`tftp-ec.pem`) of `[enterprise] trust_dir`.
fn enterprise_materials(
    config: &Config,
    e: &crate::config::Enterprise,
    generated: Option<&Generated>,
) -> Result<(provisor_trust::Signer, Option<rustls::ServerConfig>), ServeError> {
    let dir = &e.trust_dir;
    let setup =
        |what: &str, m: String| ServeError::Setup(format!("[enterprise] trust_dir {}: {what}: {m}", dir.display()));
    let signer_pem = std::fs::read(dir.join("tftp.pem")).map_err(|err| setup("tftp.pem", err.to_string()))?;
    let signer = provisor_trust::Signer::from_pem(&signer_pem).map_err(|err| setup("tftp.pem", err.to_string()))?;
    let tls = match e.https_listen {
        Some(_) => {
            let ec = dir.join("tftp-ec.pem");
            let mut cas = config.https.client_ca.clone();
            if let (true, Some(g)) = (config.https.test_phone_ca, generated) {
                cas.push(g.ca_cert.clone());
            }
            Some(
                tls::server_config(&ec, &ec, &cas, false, config.https.client_cipher_order)
                    .map_err(|err| setup("tftp-ec.pem", err.to_string()))?,
            )
        }
        None => None,
    };
    Ok((signer, tls))
}

/// The HTTPS configuration in force; a reload swaps it, and each new connection takes the current one.
pub type LiveTls = Arc<std::sync::RwLock<Arc<rustls::ServerConfig>>>;

/// Binds every configured front end and starts serving.
/// With `data_dir = ":memory:"` the inventory and journal live in memory ([`MemoryStore`], [`MemoryJournal`]) and
/// the few files a server needs go to a private temporary directory, removed by [`Running::shutdown`].
///
/// A start that fails creates nothing: the sockets are bound first, and a data directory (or the temporary one of
/// a server in memory) that this start created is removed again when a later step fails.
pub async fn start(config: Config) -> Result<Running, ServeError> {
    let created = if config.data_dir == Path::new(MEMORY) {
        None
    } else {
        let mut top = None;
        let mut dir = Some(config.data_dir.as_path());
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            top = Some(d.to_path_buf());
            dir = d.parent();
        }
        top
    };
    let result = start_binding(config).await;
    if result.is_err()
        && let Some(dir) = created
    {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

async fn start_binding(mut config: Config) -> Result<Running, ServeError> {
    if let Some(problem) = config.serving_problem() {
        return Err(ServeError::Setup(problem));
    }
    if config.https.test_phone_ca && config.https.listen.is_some() {
        tracing::warn!(
            "[https] test_phone_ca: the site's generated CA signs phone certificates: for labs and simulated phones \
             only, no real phone carries one (set client_ca to your phones' CA for real phones)"
        );
    }
    crate::metrics::handle();
    match raise_file_limit() {
        Some(n) => tracing::info!("open files limit: {n}"),
        None => tracing::warn!("could not read the open files limit"),
    }
    // A listen backlog of 4,096 (the kernel caps it at net.core.somaxconn), not tokio's 1,024: in a power-restore
    // storm the connections past `[limits] max_connections` wait there, and a full backlog drops SYNs, which phones
    // only retry after 1 s and then 3 s.
    let bind_tcp = |what: &'static str, addr: SocketAddr| async move {
        let bound = || -> std::io::Result<TcpListener> {
            let socket =
                if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(4096)
        };
        bound().map_err(|source| ServeError::Bind { what, addr, source })
    };
    let http = match config.http.listen {
        Some(a) => Some(bind_tcp("http", a).await?),
        None => None,
    };
    let https = match config.https.listen {
        Some(a) => Some(bind_tcp("https", a).await?),
        None => None,
    };
    let (enterprise_http, enterprise_https) = match &config.enterprise {
        Some(e) => (
            match e.http_listen {
                Some(a) => Some(bind_tcp("enterprise http", a).await?),
                None => None,
            },
            match e.https_listen {
                Some(a) => Some(bind_tcp("enterprise https", a).await?),
                None => None,
            },
        ),
        None => (None, None),
    };
    let slot: Arc<OnceLock<Arc<Core>>> = Arc::default();
    let tftp = match config.tftp.listen {
        Some(addr) => Some(
            Service::bind(addr, TftpFront(slot.clone()), service_config(&config))
                .await
                .map_err(|source| ServeError::Bind { what: "tftp", addr, source })?,
        ),
        None => None,
    };
    let admin = match config.admin.listen {
        Some(a) => Some(bind_tcp("admin", a).await?),
        None => None,
    };
    if let Some(a) = config.admin.listen
        && !a.ip().is_loopback()
    {
        tracing::warn!("[admin] listen {a} is not loopback: /metrics is open to that network");
    }
    let syslog = match config.syslog.listen {
        Some(addr) => {
            Some(UdpSocket::bind(addr).await.map_err(|source| ServeError::Bind { what: "syslog", addr, source })?)
        }
        None => None,
    };
    // The sockets are bound before anything is written: a start that fails to bind leaves no file behind.
    let setup = |what: &Path, e: std::io::Error| ServeError::Setup(format!("{}: {e}", what.display()));
    let (store, scratch) = if config.data_dir == Path::new(MEMORY) {
        let dir = scratch_dir().map_err(|e| setup(&std::env::temp_dir(), e))?;
        tracing::warn!("the inventory is in memory: nothing is kept when the server stops");
        config.data_dir = dir.clone();
        (AnyStore::Memory(Arc::new(MemoryStore::new())), Some(dir))
    } else {
        (open_store(&config).await?, None)
    };
    let spool = crate::front::http::spool_dir(&config.data_dir);
    crate::inventory::make_private_dir(&spool).map_err(|e| ServeError::Setup(format!("{}: {e}", spool.display())))?;
    let local = |r: std::io::Result<SocketAddr>| r.ok();
    let addrs = (
        http.as_ref().and_then(|l| local(l.local_addr())),
        https.as_ref().and_then(|l| local(l.local_addr())),
        tftp.as_ref().and_then(|s| local(s.local_addr())),
        syslog.as_ref().and_then(|s| local(s.local_addr())),
    );
    let ports = Ports {
        http: addrs.0.map(|a| a.port()),
        https: addrs.1.map(|a| a.port()),
        tftp: addrs.2.map(|a| a.port()),
        syslog: addrs.3.map(|a| a.port()),
    };

    let (tls_config, generated) = if https.is_some() {
        let (tls, generated) = tls_materials(&config)?;
        (Some(Arc::new(std::sync::RwLock::new(Arc::new(tls)))), generated)
    } else {
        (None, None)
    };

    // The admin listener's HTTPS: the site's server certificate, no client certificates (tokens say who calls).
    let admin_tls = match (&admin, config.admin.uses_tls()) {
        (Some(_), true) => {
            let (cert, key, _) = site_certificate(&config)?;
            let mut tls = tls::server_config(&cert, &key, &[], false, config.https.client_cipher_order)?;
            tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Some(Arc::new(tls))
        }
        _ => None,
    };

    let mut audit_reopen = None;
    let (journal, writer) = match &store {
        AnyStore::Sqlite(s) => {
            let audit = AuditFile::new(config.data_dir.join("audit.log"));
            audit_reopen = Some(audit.reopen_handle());
            Queue::start((audit, SqliteJournal::new(s.clone(), config.journal.clone())))
        }
        AnyStore::Postgres(s) => {
            let node = config.inventory.node.clone().unwrap_or_else(host_name);
            let undelivered = AuditFile::new(config.data_dir.join("audit-undelivered.log"));
            Queue::start(PostgresJournal::new(s.clone(), config.journal.clone(), node).with_undelivered(undelivered))
        }
        AnyStore::Memory(_) => Queue::start(MemoryJournal::new()),
    };
    if config.provisioning.trusted_networks.is_empty() {
        tracing::warn!(
            "[provisioning] trusted_networks is empty: enterprise phones' SEP<MAC>.cnf.xml (line passwords in clear \
             text) goes to any address that names their MAC, within the enumeration limits"
        );
    }
    let data_dir = config.data_dir.clone();
    let content = FsContent::new(&config);
    let provisioner = Arc::new(Provisioner::new(store, journal, content, config, ports).map_err(ServeError::Setup)?);
    provisioner.set_site_ca(site_ca_pem(provisioner.config(), generated.as_ref()));
    // Enterprise phones: the trust directory's file signer, and the EC certificate for port 6971.
    let mut enterprise_tls = None;
    if let Some(e) = &provisioner.config().enterprise {
        let (signer, tls) = enterprise_materials(provisioner.config(), e, generated.as_ref())?;
        provisioner.set_file_signer(Some(signer));
        enterprise_tls = tls;
        // (An inventory that never changed has nothing to serve yet: no warning. The revision is one row; listing
        // every device at start-up is not.)
        let changed = provisioner.store().revision().await.is_ok_and(|r| r > 0);
        let defaults = provisioner.store().group("defaults").await.ok().flatten();
        if changed && defaults.is_none_or(|g| !g.params.contains_key("Proxy_1_")) {
            tracing::warn!(
                "XMLDefault.cnf.xml names no call-control server: set Proxy_1_ in the `defaults` group (provisor group \
                 set defaults --param Proxy_1_=HOST), or new enterprise phones show \"Programming Error XmlDefault.cnf.xml\""
            );
        }
    }
    provisioner.refresh().await;
    let _ = slot.set(provisioner.clone());
    let shutdown = CancellationToken::new();
    let mut fronts = JoinSet::new();
    fronts.spawn(watch(provisioner.clone(), shutdown.clone()));
    fronts.spawn(crate::metrics::upkeep(shutdown.clone()));
    if let Some(l) = http {
        fronts.spawn(crate::front::http::serve_http(l, provisioner.clone(), shutdown.clone()));
    }
    if let (Some(l), Some(tls)) = (https, tls_config.clone()) {
        fronts.spawn(crate::front::http::serve_https(l, tls, provisioner.clone(), shutdown.clone()));
    }
    let enterprise_addrs = (
        enterprise_http.as_ref().and_then(|l| l.local_addr().ok()),
        enterprise_https.as_ref().and_then(|l| l.local_addr().ok()),
    );
    if let Some(l) = enterprise_http {
        fronts.spawn(crate::front::http::serve_http(l, provisioner.clone(), shutdown.clone()));
    }
    if let (Some(l), Some(tls)) = (enterprise_https, enterprise_tls) {
        let live: LiveTls = Arc::new(std::sync::RwLock::new(Arc::new(tls)));
        fronts.spawn(crate::front::http::serve_enterprise_https(l, live, provisioner.clone(), shutdown.clone()));
    }
    if let Some(service) = tftp {
        let stop = shutdown.clone();
        fronts.spawn(async move {
            if let Err(e) = service.run_until(stop.cancelled_owned()).await {
                tracing::error!("tftp: {e}");
            }
        });
    }
    if let Some(socket) = syslog {
        fronts.spawn(crate::front::syslog::serve(socket, provisioner.clone(), shutdown.clone()));
    }
    let admin_addr = admin.as_ref().and_then(|l| l.local_addr().ok());
    if let Some(l) = admin {
        fronts.spawn(crate::front::admin::serve(l, admin_tls, provisioner.clone(), shutdown.clone()));
    }
    Ok(Running {
        http: addrs.0,
        https: addrs.1,
        tftp: addrs.2,
        syslog: addrs.3,
        admin: admin_addr,
        enterprise_http: enterprise_addrs.0,
        enterprise_https: enterprise_addrs.1,
        generated,
        provisioner,
        data_dir,
        shutdown,
        fronts,
        writer,
        scratch,
        tls: tls_config,
        audit_reopen,
    })
}

/// The inventory the configuration names: PostgreSQL (`[inventory] url` or `PROVISOR_DATABASE_URL`), else SQLite in
/// `data_dir`; with its secrets sealed under `secrets_key_file` when one is set.
pub async fn open_store(config: &Config) -> Result<AnyStore, StoreError> {
    let at_rest = match &config.inventory.secrets_key_file {
        Some(path) => AtRest::sealed(SiteKey::load(path)?),
        None => AtRest::clear(),
    };
    match config.inventory.database_url() {
        Some(url) => {
            let mut limits = PoolLimits::default();
            if let Some(n) = config.inventory.max_connections {
                limits.max_connections = n.max(1);
            }
            Ok(AnyStore::Postgres(PostgresStore::connect(&url, at_rest, limits).await?))
        }
        None => Ok(AnyStore::Sqlite(SqliteStore::open_with(&config.data_dir, at_rest).await?)),
    }
}

/// This machine's host name (the node's name in a shared audit trail).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "node".into())
}

/// Drops cached renderings when the inventory or the templates change, checking every 250 ms until `shutdown`.
/// While the inventory cannot be read it backs off (doubling up to 5 s), says so once, and says when it is back.
async fn watch(provisioner: Arc<Core>, shutdown: CancellationToken) {
    let mut delay = Duration::from_millis(250);
    let mut down_since: Option<std::time::Instant> = None;
    loop {
        match provisioner.try_refresh().await {
            Ok(()) => {
                if let Some(t) = down_since.take() {
                    tracing::warn!("inventory reachable again after {:.1} s", t.elapsed().as_secs_f64());
                }
                delay = Duration::from_millis(250);
            }
            Err(e) => {
                if down_since.is_none() {
                    tracing::error!("inventory: {e}; phones get 503 until it is back (retrying with back-off)");
                    down_since = Some(std::time::Instant::now());
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// The demo devices: three MPP phones and one enterprise phone.
pub const DEMO_DEVICES: &[(&str, &str, &str, &str)] = &[
    ("0011aabbcc01", "CP-8841-3PCC", "FCH2101A001", "Reception"),
    ("0011aabbcc02", "CP-7832-3PCC", "FCH2101A002", "Meeting room"),
    ("0011aabbcc03", "CP-6841-3PCC", "FCH2101A003", "Warehouse"),
    ("0011aabbcc04", "CP-7965G", "FCH2101A004", "Enterprise phone (SEP file)"),
];

/// Fills an empty inventory with the demo devices and groups, and issues a client certificate for the first demo
/// phone (`tls/demo-phone.pem` / `.key`). Returns whether anything was added.
pub async fn demo(store: &impl Store, config: &Config, generated: Option<&Generated>) -> Result<bool, ServeError> {
    if !store.devices().await?.is_empty() {
        return Ok(false);
    }
    let params = |p: &[(&str, &str)]| -> BTreeMap<String, String> {
        p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    };
    store
        .put_group(&Group {
            name: "defaults".into(),
            parent: None,
            description: "applies to every device".into(),
            params: params(&[
                ("Proxy_1_", "sip.example.com"),
                ("Time_Zone", "GMT+01:00"),
                ("Dial_Plan_1_", "(*xx|[3469]11|0|00|[2-9]xxxxxx|1xxx[2-9]xxxxxxS0|xxxxxxxxxxxx.)"),
            ]),
        })
        .await?;
    store
        .put_group(&Group {
            name: "office".into(),
            parent: None,
            description: "demo office".into(),
            params: params(&[("Station_Display_Name", "Example Ltd")]),
        })
        .await?;
    for (i, (mac, model, serial, description)) in DEMO_DEVICES.iter().enumerate() {
        let ext = 201 + i;
        store
            .add_device(&Device {
                mac: mac.parse().map_err(ServeError::Setup)?,
                model: model.to_string(),
                serial: serial.to_string(),
                description: description.to_string(),
                group: Some("office".into()),
                params: params(&[
                    ("User_ID_1_", &ext.to_string()),
                    ("Display_Name_1_", description),
                    ("Password_1_", &format!("demo-secret-{ext}")),
                ]),
                secrets: Secrets::generate()?,
            })
            .await?;
    }
    if let Some(g) = generated {
        let (mac, model, serial, _) = DEMO_DEVICES[0];
        tls::issue_phone_certificate(g, &config.data_dir.join("tls").join("demo-phone"), mac, model, serial)?;
    }
    Ok(true)
}
