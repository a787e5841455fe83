//! `provisor serve`: binds every configured front end (HTTP, HTTPS, TFTP, syslog), opens the inventory, and runs the
//! [`Provisioner`] behind them. [`demo`] fills an empty data directory with demo devices and a demo phone certificate.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use provisor_tftp::content::{Content, ContentSource, FileContent, Refusal, Request as TftpRequest};
use provisor_tftp::service::{Service, ServiceConfig};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::inventory::{Device, Group, Secrets, SqliteStore, Store, StoreError};
use crate::journal::Journal;
use crate::provision::{Body, Ports, Protocol, Provisioner, Request};
use crate::tls::{self, Generated};

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
    /// The generated CA and server certificate, when none was configured.
    pub generated: Option<Generated>,
    /// The provisioning core.
    pub provisioner: Arc<Provisioner<SqliteStore>>,
    tasks: JoinSet<()>,
}

impl Running {
    /// Runs until a task fails (it does not: they log and go on) or the process is stopped.
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// TFTP requests go to the provisioner, which is built after every port is bound.
struct TftpFront(Arc<OnceLock<Arc<Provisioner<SqliteStore>>>>);

struct BytesContent(bytes::Bytes);

impl Content for BytesContent {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = (offset as usize).min(self.0.len());
        let n = buf.len().min(self.0.len() - start);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }
}

impl ContentSource for TftpFront {
    fn open(&self, request: &TftpRequest) -> impl Future<Output = Result<Arc<dyn Content>, Refusal>> + Send {
        let provisioner = self.0.get().cloned();
        let (filename, client) = (request.filename.clone(), request.client);
        async move {
            let Some(p) = provisioner else { return Err(Refusal::access("starting")) };
            let response = p.handle(Request::get(Protocol::Tftp, &filename, client)).await;
            match (response.status, response.body) {
                (200, Body::Bytes(b)) => Ok(Arc::new(BytesContent(b)) as Arc<dyn Content>),
                (200, Body::File(path, _)) => {
                    FileContent::open(&path).map(|f| Arc::new(f) as Arc<dyn Content>).map_err(|_| Refusal::not_found())
                }
                (404, _) => Err(Refusal::not_found()),
                (_, _) => Err(Refusal::access(response.note)),
            }
        }
    }

    /// `Report_Rule` uploads to a TFTP URL (`tftp://host/report/$MA.xml`) are write requests.
    fn accepts_upload(&self, request: &TftpRequest) -> Option<u64> {
        self.0.get()?.takes_upload(&request.filename)
    }

    fn store(&self, request: &TftpRequest, data: Vec<u8>) -> impl Future<Output = Result<(), Refusal>> + Send {
        let provisioner = self.0.get().cloned();
        let (filename, client) = (request.filename.clone(), request.client);
        async move {
            let Some(p) = provisioner else { return Err(Refusal::access("starting")) };
            let mut req = Request::get(Protocol::Tftp, &filename, client);
            req.method = "WRQ";
            req.body = data.into();
            let response = p.handle(req).await;
            if response.status == 200 { Ok(()) } else { Err(Refusal::access(response.note)) }
        }
    }
}

/// The TFTP service's limits from `[tftp]`.
fn tftp_config(config: &Config) -> ServiceConfig {
    let mut c = ServiceConfig {
        max_sessions: config.tftp.max_sessions,
        max_sessions_per_address: config.tftp.max_sessions_per_address,
        ..ServiceConfig::default()
    };
    c.transfer.max_stall = std::time::Duration::from_secs(config.tftp.max_stall_s);
    c
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

/// Binds every configured front end and starts serving.
pub async fn start(config: Config) -> Result<Running, ServeError> {
    crate::http::metrics_handle();
    match raise_file_limit() {
        Some(n) => tracing::info!("open files limit: {n}"),
        None => tracing::warn!("could not read the open files limit"),
    }
    let store = SqliteStore::open(&config.data_dir).await?;
    let spool = crate::http::spool_dir(&config.data_dir);
    crate::inventory::make_private_dir(&spool).map_err(|e| ServeError::Setup(format!("{}: {e}", spool.display())))?;
    let bind_tcp = |what: &'static str, addr: SocketAddr| async move {
        TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { what, addr, source })
    };
    let http = match config.http.listen {
        Some(a) => Some(bind_tcp("http", a).await?),
        None => None,
    };
    let https = match config.https.listen {
        Some(a) => Some(bind_tcp("https", a).await?),
        None => None,
    };
    let slot: Arc<OnceLock<Arc<Provisioner<SqliteStore>>>> = Arc::default();
    let tftp = match config.tftp.listen {
        Some(addr) => Some(
            Service::bind(addr, TftpFront(slot.clone()), tftp_config(&config))
                .await
                .map_err(|source| ServeError::Bind { what: "tftp", addr, source })?,
        ),
        None => None,
    };
    let syslog = match config.syslog.listen {
        Some(addr) => {
            Some(UdpSocket::bind(addr).await.map_err(|source| ServeError::Bind { what: "syslog", addr, source })?)
        }
        None => None,
    };
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

    let mut generated = None;
    let tls_config = if https.is_some() {
        let (cert, key) = match (&config.https.cert, &config.https.key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => {
                let g = tls::ensure_generated(&config.data_dir.join("tls"), std::slice::from_ref(&config.public_host))?;
                let pair = (g.server_cert.clone(), g.server_key.clone());
                generated = Some(g);
                pair
            }
        };
        let mut cas: Vec<PathBuf> = config.https.client_ca.clone();
        if cas.is_empty() {
            let g = match &generated {
                Some(g) => g.clone(),
                None => tls::ensure_generated(&config.data_dir.join("tls"), std::slice::from_ref(&config.public_host))?,
            };
            cas.push(g.ca_cert.clone());
            generated = Some(g);
        }
        Some(Arc::new(tls::server_config(&cert, &key, &cas, config.https.require_client_cert)?))
    } else {
        None
    };

    let mut tasks = JoinSet::new();
    let (journal, writer) = Journal::start(store.clone(), config.data_dir.join("audit.log"), config.journal.clone());
    tasks.spawn(async move {
        let _ = writer.await;
    });
    if config.provisioning.trusted_networks.is_empty() {
        tracing::warn!(
            "[provisioning] trusted_networks is empty: enterprise phones' SEP<MAC>.cnf.xml (line passwords in clear \
             text) goes to any address that names their MAC, within the enumeration limits"
        );
    }
    let provisioner = Arc::new(Provisioner::new(store, config, ports, journal).map_err(ServeError::Setup)?);
    provisioner.refresh().await;
    let _ = slot.set(provisioner.clone());
    tasks.spawn(provisioner.clone().watch());
    if let Some(l) = http {
        tasks.spawn(crate::http::serve_http(l, provisioner.clone()));
    }
    if let (Some(l), Some(tls)) = (https, tls_config) {
        tasks.spawn(crate::http::serve_https(l, tls, provisioner.clone()));
    }
    if let Some(service) = tftp {
        tasks.spawn(async move {
            if let Err(e) = service.run().await {
                tracing::error!("tftp: {e}");
            }
        });
    }
    if let Some(socket) = syslog {
        tasks.spawn(crate::syslog::serve(socket, provisioner.clone()));
    }
    Ok(Running { http: addrs.0, https: addrs.1, tftp: addrs.2, syslog: addrs.3, generated, provisioner, tasks })
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
pub async fn demo(store: &SqliteStore, config: &Config, generated: Option<&Generated>) -> Result<bool, ServeError> {
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
