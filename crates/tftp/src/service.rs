//! The TFTP server on tokio: one listening socket, a task and an ephemeral socket per transfer, all driven by
//! [`ReadTransfer`](crate::server::ReadTransfer). Thousands of transfers share the runtime's threads.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::UdpSocket;

use crate::content::{ContentSource, Request};
use crate::netascii;
use crate::packet::{self, ErrorCode, Mode, Packet};
use crate::server::{Outcome, ReadTransfer, ServerConfig, negotiate};
use crate::socket::{Peer, drive, drive_blocking};
use crate::upload::{UploadOutcome, WriteTransfer, negotiate_write};

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Transfer limits and defaults.
    pub transfer: ServerConfig,
    /// Local ports for transfers (inclusive); `None`: any ephemeral port.
    pub port_range: Option<(u16, u16)>,
    /// Most transfers at once. When the table is full, a new request takes the place of the oldest transfer that
    /// never heard from its client (as SYN floods are handled); when every transfer has, "Server busy".
    pub max_sessions: usize,
    /// Most transfers at once from one address; more get "Server busy".
    pub max_sessions_per_address: usize,
    /// Where write requests may store files (phone logs); `None`: write requests are refused with ERROR 2.
    pub upload: Option<UploadConfig>,
    /// How a file name appears in the log (a provisioning server masks the secret parts of its names).
    pub log_name: fn(&str) -> String,
}

/// Accepting uploads.
#[derive(Debug, Clone)]
pub struct UploadConfig {
    /// The directory new files go to (never overwritten; names may not contain `/`).
    pub dir: PathBuf,
    /// The largest upload accepted, in bytes.
    pub max_bytes: u64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            transfer: ServerConfig::default(),
            port_range: None,
            max_sessions: 10_000,
            max_sessions_per_address: 500,
            upload: None,
            log_name: str::to_string,
        }
    }
}

/// A bound TFTP server.
pub struct Service<S: ContentSource> {
    socket: UdpSocket,
    source: Arc<S>,
    config: Arc<ServiceConfig>,
    sessions: Arc<Sessions>,
}

/// The transfers in progress: how many, from where, and which never heard from their client.
pub struct Sessions {
    table: Mutex<Table>,
    evicted: AtomicUsize,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    live: HashMap<u64, Session>,
    per_address: HashMap<IpAddr, usize>,
}

struct Session {
    address: IpAddr,
    started: Instant,
    /// Set when the client's first datagram reaches the transfer's socket.
    heard: Arc<AtomicBool>,
    abort: Option<tokio::task::AbortHandle>,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Session> {
        let s = self.live.remove(&id)?;
        if let Some(n) = self.per_address.get_mut(&s.address) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&s.address);
            }
        }
        Some(s)
    }
}

impl Sessions {
    fn new() -> Sessions {
        Sessions { table: Mutex::new(Table::default()), evicted: AtomicUsize::new(0) }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // A poisoned lock means a panic elsewhere mid-update; the table itself is still consistent enough to use.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Transfers in progress.
    pub fn len(&self) -> usize {
        self.table().live.len()
    }

    /// Whether no transfer is in progress.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Transfers dropped to make room for new requests since the start.
    pub fn evicted(&self) -> usize {
        self.evicted.load(Ordering::Acquire)
    }

    /// A slot for a transfer from `address`, or why not.
    fn take(self: &Arc<Self>, address: IpAddr, config: &ServiceConfig) -> Result<SessionGuard, &'static str> {
        let mut t = self.table();
        if t.per_address.get(&address).is_some_and(|&n| n >= config.max_sessions_per_address) {
            return Err("per-address session limit reached");
        }
        if t.live.len() >= config.max_sessions {
            // The oldest transfer whose client never answered: a spoofed or abandoned request.
            let oldest = t
                .live
                .iter()
                .filter(|(_, s)| !s.heard.load(Ordering::Acquire))
                .min_by_key(|(_, s)| s.started)
                .map(|(id, _)| *id);
            let Some(id) = oldest else { return Err("session limit reached") };
            if let Some(victim) = t.remove(id) {
                if let Some(abort) = victim.abort {
                    abort.abort();
                }
                let n = self.evicted.fetch_add(1, Ordering::AcqRel) + 1;
                if n == 1 || n.is_multiple_of(1000) {
                    tracing::warn!("session table full: dropped {n} unanswered transfers so far to make room");
                }
            }
        }
        let id = t.next_id;
        t.next_id += 1;
        let heard = Arc::new(AtomicBool::new(false));
        t.live.insert(id, Session { address, started: Instant::now(), heard: heard.clone(), abort: None });
        *t.per_address.entry(address).or_insert(0) += 1;
        Ok(SessionGuard { sessions: self.clone(), id, heard })
    }

    fn set_abort(&self, id: u64, abort: tokio::task::AbortHandle) {
        if let Some(s) = self.table().live.get_mut(&id) {
            s.abort = Some(abort);
        }
    }
}

struct SessionGuard {
    sessions: Arc<Sessions>,
    id: u64,
    heard: Arc<AtomicBool>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        // An evicted session was already removed when it made room.
        self.sessions.table().remove(self.id);
    }
}

impl<S: ContentSource> Service<S> {
    /// Binds the listening socket.
    pub async fn bind(addr: SocketAddr, source: S, config: ServiceConfig) -> io::Result<Service<S>> {
        let socket = UdpSocket::bind(addr).await?;
        Ok(Service { socket, source: Arc::new(source), config: Arc::new(config), sessions: Arc::new(Sessions::new()) })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The transfers in progress.
    pub fn sessions(&self) -> Arc<Sessions> {
        self.sessions.clone()
    }

    /// Serves requests until the task is dropped or the socket fails.
    pub async fn run(self) -> io::Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Serves requests until `stop` completes, then takes no new request and returns once the transfers in progress
    /// have ended (each is bounded by its retries and `max_stall`).
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> io::Result<()> {
        let local = self.socket.local_addr()?;
        let mut buf = vec![0u8; 65536];
        let mut out = Vec::with_capacity(128);
        let mut stop = std::pin::pin!(stop);
        loop {
            let received = tokio::select! {
                r = self.socket.recv_from(&mut buf) => r,
                () = &mut stop => break,
            };
            let (len, client) = match received {
                Ok(r) => r,
                // ICMP port unreachable from an earlier send shows up here on some systems: not fatal.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => continue,
                Err(e) => return Err(e),
            };
            let request = match Packet::decode(&buf[..len]) {
                Ok(Packet::Rrq { filename, mode, options }) => Request {
                    client,
                    local,
                    filename: filename.into_owned(),
                    mode: match Mode::parse(&mode) {
                        Some(m @ (Mode::Octet | Mode::NetAscii)) => m,
                        _ => {
                            packet::encode_error(&mut out, ErrorCode::IllegalOperation, "Unknown mode");
                            let _ = self.socket.send_to(&out, client).await;
                            continue;
                        }
                    },
                    options: options.into_iter().map(|(a, b)| (a.into_owned(), b.into_owned())).collect(),
                },
                Ok(Packet::Wrq { filename, mode, options }) => {
                    let Some(mode @ (Mode::Octet | Mode::NetAscii)) = Mode::parse(&mode) else {
                        packet::encode_error(&mut out, ErrorCode::IllegalOperation, "Unknown mode");
                        let _ = self.socket.send_to(&out, client).await;
                        continue;
                    };
                    let request = Request {
                        client,
                        local,
                        filename: filename.into_owned(),
                        mode,
                        options: options.into_iter().map(|(a, b)| (a.into_owned(), b.into_owned())).collect(),
                    };
                    let sink = match (&self.config.upload, self.source.accepts_upload(&request)) {
                        (Some(dir), _) => Sink::Dir(dir.clone()),
                        (None, Some(limit)) => Sink::Source(self.source.clone(), limit),
                        (None, None) => {
                            tracing::info!(%client, file = %(self.config.log_name)(&request.filename), "write request refused");
                            packet::encode_error(
                                &mut out,
                                ErrorCode::AccessViolation,
                                "Write requests are not accepted",
                            );
                            let _ = self.socket.send_to(&out, client).await;
                            continue;
                        }
                    };
                    let Some(guard) = self.take_session(client, &request.filename, &mut out).await else { continue };
                    let config = self.config.clone();
                    let id = guard.id;
                    let task = tokio::spawn(async move {
                        let heard = guard.heard.clone();
                        let _guard = guard;
                        if let Err(e) = receive(request, sink, config, local, &heard).await {
                            tracing::warn!(error = %e, "upload socket error");
                        }
                    });
                    self.sessions.set_abort(id, task.abort_handle());
                    continue;
                }
                // Anything else on the listening port is not a request: ignored, as tftpd-hpa does.
                _ => continue,
            };
            let Some(guard) = self.take_session(client, &request.filename, &mut out).await else { continue };
            let source = self.source.clone();
            let config = self.config.clone();
            let id = guard.id;
            let task = tokio::spawn(async move {
                let heard = guard.heard.clone();
                let sessions = guard.sessions.clone();
                let _guard = guard;
                if let Err(e) = transfer(request, source, config, local, heard, sessions).await {
                    tracing::warn!(error = %e, "transfer socket error");
                }
            });
            self.sessions.set_abort(id, task.abort_handle());
        }
        drop(self.socket);
        while !self.sessions.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

impl<S: ContentSource> Service<S> {
    /// A session slot, or `None` after telling the client the server is busy.
    async fn take_session(&self, client: SocketAddr, filename: &str, out: &mut Vec<u8>) -> Option<SessionGuard> {
        match self.sessions.take(client.ip(), &self.config) {
            Ok(guard) => Some(guard),
            Err(why) => {
                tracing::warn!(%client, file = %(self.config.log_name)(filename), "refused: {why}");
                packet::encode_error(out, ErrorCode::NotDefined, "Server busy, try again later");
                let _ = self.socket.send_to(out, client).await;
                None
            }
        }
    }
}

async fn bind_transfer_socket(local: SocketAddr, range: Option<(u16, u16)>) -> io::Result<UdpSocket> {
    let Some((lo, hi)) = range else {
        return UdpSocket::bind(SocketAddr::new(local.ip(), 0)).await;
    };
    // Start at a pseudo-random port so concurrent transfers do not all probe the same ones.
    let span = u32::from(hi - lo) + 1;
    let start = (Instant::now().elapsed().subsec_nanos() ^ std::process::id().wrapping_mul(2_654_435_761)) % span;
    for i in 0..span {
        let port = lo + ((start + i) % span) as u16;
        if let Ok(s) = UdpSocket::bind(SocketAddr::new(local.ip(), port)).await {
            return Ok(s);
        }
    }
    Err(io::Error::new(io::ErrorKind::AddrInUse, format!("no free port in {lo}-{hi}")))
}

async fn transfer<S: ContentSource>(
    request: Request,
    source: Arc<S>,
    config: Arc<ServiceConfig>,
    local: SocketAddr,
    heard: Arc<AtomicBool>,
    sessions: Arc<Sessions>,
) -> io::Result<()> {
    let started = Instant::now();
    let client = request.client;
    let socket = bind_transfer_socket(local, config.port_range).await?;
    let mut out = Vec::with_capacity(usize::from(config.transfer.blksize_max) + 4);
    let refuse = |code: ErrorCode, message: &str, out: &mut Vec<u8>| packet::encode_error(out, code, message);
    let content = match source.open(&request).await {
        Ok(c) => c,
        Err(r) => {
            tracing::info!(%client, file = %(config.log_name)(&request.filename), code = r.code as u16, "refused: {}", r.message);
            refuse(r.code, &r.message, &mut out);
            socket.send_to(&out, client).await?;
            return Ok(());
        }
    };
    // Netascii is converted as it is sent (bounded memory, however large the file); counting its length is one
    // pass over the file, off the async threads.
    let content: Arc<dyn crate::content::Content> = if request.mode == Mode::NetAscii {
        let converted = tokio::task::spawn_blocking(move || netascii::NetasciiContent::new(content))
            .await
            .map_err(io::Error::other)?;
        match converted {
            Ok(c) => Arc::new(c),
            Err(e) => {
                refuse(ErrorCode::NotDefined, "Read error", &mut out);
                socket.send_to(&out, client).await?;
                tracing::info!(%client, file = %(config.log_name)(&request.filename), "read failed: {e}");
                return Ok(());
            }
        }
    } else {
        content
    };
    let options: Vec<_> = request.options.iter().map(|(a, b)| (a.as_str().into(), b.as_str().into())).collect();
    let negotiated = match negotiate(&options, request.mode, content.len(), &config.transfer) {
        Ok(n) => n,
        Err(r) => {
            tracing::info!(%client, file = %(config.log_name)(&request.filename), "refused: {}", r.message);
            refuse(r.code, &r.message, &mut out);
            socket.send_to(&out, client).await?;
            return Ok(());
        }
    };
    let mut t =
        ReadTransfer::new(content, &negotiated, config.transfer.retries).with_stall_limit(config.transfer.max_stall);
    // While the server is nearly idle, a transfer waits in a blocking receive on a thread of its own, as tftpd-hpa
    // does: for lock-step transfers the wake-up through the async reactor costs more than the client's reply takes.
    // At most BLOCKING_TRANSFERS do so; every other transfer is a task, so a boot storm never costs a thread each.
    let slot = BlockingSlot::take(&BLOCKING);
    let t = if let Some(slot) = slot {
        let std_socket = socket.into_std()?;
        std_socket.set_nonblocking(false)?;
        let timeout = config.transfer.timeout;
        let stall = config.transfer.max_stall;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let alone = || sessions.len() == 1;
            drive_blocking(&std_socket, client, &mut t, timeout.min(stall), &mut out, 516, &heard, alone).map(|()| t)
        })
        .await
        .map_err(io::Error::other)??
    } else {
        drive(&socket, Peer::Known(client), &mut t, &mut out, 516, Some(&heard), |_| {}).await?;
        t
    };
    let stats = t.stats();
    let result = match t.outcome() {
        Some(Outcome::Completed) => "ok".to_string(),
        Some(Outcome::ClientError(code, m)) => format!("client error {code}: {m}"),
        Some(Outcome::TimedOut) => "timed out".to_string(),
        Some(Outcome::ReadFailed(m)) => format!("read failed: {m}"),
        None => "unfinished".to_string(),
    };
    tracing::info!(
        %client,
        file = %(config.log_name)(&request.filename),
        bytes = t.size(),
        blksize = negotiated.blksize,
        windowsize = negotiated.windowsize,
        data_sent = stats.data_sent,
        retransmitted = stats.retransmitted,
        ms = started.elapsed().as_millis() as u64,
        result = %result,
        "transfer"
    );
    Ok(())
}

/// Transfers currently served from a blocking thread.
static BLOCKING: AtomicUsize = AtomicUsize::new(0);

/// How many transfers may use a blocking thread at once (the machine's two cores).
const BLOCKING_TRANSFERS: usize = 2;

struct BlockingSlot(&'static AtomicUsize);

impl BlockingSlot {
    fn take(counter: &'static AtomicUsize) -> Option<BlockingSlot> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < BLOCKING_TRANSFERS).then_some(n + 1))
            .ok()
            .map(|_| BlockingSlot(counter))
    }
}

impl Drop for BlockingSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

crate::machine!(ReadTransfer);
crate::machine!(WriteTransfer);

/// Where an upload named `filename` goes: a plain name inside the upload directory that does not exist yet.
fn upload_target(dir: &std::path::Path, filename: &str) -> Result<PathBuf, (ErrorCode, &'static str)> {
    let name = filename.strip_prefix('/').unwrap_or(filename);
    let plain =
        !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']) && !name.starts_with('.');
    if !plain {
        return Err((ErrorCode::AccessViolation, "Access violation"));
    }
    let target = dir.join(name);
    if target.symlink_metadata().is_ok() {
        return Err((ErrorCode::FileExists, "File already exists"));
    }
    Ok(target)
}

/// Where an upload goes: a file in the upload directory, or the content source (a provisioning server's reports).
enum Sink<S> {
    Dir(UploadConfig),
    Source(Arc<S>, u64),
}

async fn receive<S: ContentSource>(
    request: Request,
    sink: Sink<S>,
    config: Arc<ServiceConfig>,
    local: SocketAddr,
    heard: &AtomicBool,
) -> io::Result<()> {
    let started = Instant::now();
    let client = request.client;
    let socket = bind_transfer_socket(local, config.port_range).await?;
    let mut out = Vec::with_capacity(600);
    let (target, max_bytes) = match &sink {
        Sink::Dir(upload) => match upload_target(&upload.dir, &request.filename) {
            Ok(t) => (Some(t), upload.max_bytes),
            Err((code, message)) => {
                tracing::info!(%client, file = %(config.log_name)(&request.filename), "upload refused: {message}");
                packet::encode_error(&mut out, code, message);
                socket.send_to(&out, client).await?;
                return Ok(());
            }
        },
        Sink::Source(_, limit) => (None, *limit),
    };
    let options: Vec<_> = request.options.iter().map(|(a, b)| (a.as_str().into(), b.as_str().into())).collect();
    let negotiated = match negotiate_write(&options, request.mode, max_bytes, &config.transfer) {
        Ok(n) => n,
        Err(r) => {
            tracing::info!(%client, file = %(config.log_name)(&request.filename), "upload refused: {}", r.message);
            packet::encode_error(&mut out, r.code, &r.message);
            socket.send_to(&out, client).await?;
            return Ok(());
        }
    };
    let mut t = WriteTransfer::new(&negotiated, request.mode, max_bytes, config.transfer.retries)
        .with_stall_limit(config.transfer.max_stall);
    drive(&socket, Peer::Known(client), &mut t, &mut out, negotiated.blksize + 4, Some(heard), |_| {}).await?;
    let result = match (t.outcome(), &sink, target) {
        (Some(UploadOutcome::Completed), Sink::Dir(upload), Some(target)) => {
            // Written beside the target and linked into place: never a partial file, never an overwrite.
            let tmp = upload.dir.join(format!(".upload-{}-{}", std::process::id(), client.port()));
            let stored = tokio::fs::write(&tmp, t.data()).await.and_then(|_| std::fs::hard_link(&tmp, &target));
            let _ = std::fs::remove_file(&tmp);
            match stored {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("not stored: {e}"),
            }
        }
        // The last ACK has gone: the client is not told when the source refuses what it sent (TFTP has no way).
        (Some(UploadOutcome::Completed), Sink::Source(source, _), _) => {
            match source.store(&request, t.data().to_vec()).await {
                Ok(()) => "ok".to_string(),
                Err(r) => format!("not stored: {}", r.message),
            }
        }
        (Some(UploadOutcome::Completed), _, _) => "not stored".to_string(),
        (Some(other), _, _) => format!("{other:?}"),
        (None, _, _) => "unfinished".to_string(),
    };
    tracing::info!(
        %client,
        file = %(config.log_name)(&request.filename),
        bytes = t.data().len(),
        ms = started.elapsed().as_millis() as u64,
        result = %result,
        "upload"
    );
    Ok(())
}
