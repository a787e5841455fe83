//! The TFTP server on tokio: one listening socket, a task and an ephemeral socket per transfer, all driven by
//! [`ReadTransfer`](crate::server::ReadTransfer). Thousands of transfers share the runtime's threads.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::net::UdpSocket;

use crate::content::{ContentSource, Request};
use crate::netascii;
use crate::packet::{self, ErrorCode, Mode, Packet};
use crate::server::{Outcome, ReadTransfer, ServerConfig, negotiate};

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Transfer limits and defaults.
    pub transfer: ServerConfig,
    /// Local ports for transfers (inclusive); `None`: any ephemeral port.
    pub port_range: Option<(u16, u16)>,
    /// Most transfers at once; further requests get an error, never a crash.
    pub max_sessions: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig { transfer: ServerConfig::default(), port_range: None, max_sessions: 10_000 }
    }
}

/// A bound TFTP server.
pub struct Service<S: ContentSource> {
    socket: UdpSocket,
    source: Arc<S>,
    config: Arc<ServiceConfig>,
    sessions: Arc<AtomicUsize>,
}

struct SessionGuard(Arc<AtomicUsize>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S: ContentSource> Service<S> {
    /// Binds the listening socket.
    pub async fn bind(addr: SocketAddr, source: S, config: ServiceConfig) -> io::Result<Service<S>> {
        let socket = UdpSocket::bind(addr).await?;
        Ok(Service { socket, source: Arc::new(source), config: Arc::new(config), sessions: Arc::default() })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Transfers in progress.
    pub fn sessions(&self) -> Arc<AtomicUsize> {
        self.sessions.clone()
    }

    /// Serves requests until the task is dropped or the socket fails.
    pub async fn run(self) -> io::Result<()> {
        let local = self.socket.local_addr()?;
        let mut buf = vec![0u8; 65536];
        let mut out = Vec::with_capacity(128);
        loop {
            let (len, client) = match self.socket.recv_from(&mut buf).await {
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
                Ok(Packet::Wrq { filename, .. }) => {
                    tracing::info!(%client, file = %filename, "write request refused");
                    packet::encode_error(&mut out, ErrorCode::AccessViolation, "Write requests are not accepted");
                    let _ = self.socket.send_to(&out, client).await;
                    continue;
                }
                // Anything else on the listening port is not a request: ignored, as tftpd-hpa does.
                _ => continue,
            };
            if self.sessions.fetch_add(1, Ordering::AcqRel) >= self.config.max_sessions {
                self.sessions.fetch_sub(1, Ordering::AcqRel);
                tracing::warn!(%client, file = %request.filename, "refused: session limit reached");
                packet::encode_error(&mut out, ErrorCode::NotDefined, "Server busy, try again later");
                let _ = self.socket.send_to(&out, client).await;
                continue;
            }
            let guard = SessionGuard(self.sessions.clone());
            let source = self.source.clone();
            let config = self.config.clone();
            tokio::spawn(async move {
                let _guard = guard;
                if let Err(e) = transfer(request, source, config, local).await {
                    tracing::warn!(error = %e, "transfer socket error");
                }
            });
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
) -> io::Result<()> {
    let started = Instant::now();
    let client = request.client;
    let socket = bind_transfer_socket(local, config.port_range).await?;
    let mut out = Vec::with_capacity(usize::from(config.transfer.blksize_max) + 4);
    let refuse = |code: ErrorCode, message: &str, out: &mut Vec<u8>| packet::encode_error(out, code, message);
    let content = match source.open(&request).await {
        Ok(c) => c,
        Err(r) => {
            tracing::info!(%client, file = %request.filename, code = r.code as u16, "refused: {}", r.message);
            refuse(r.code, &r.message, &mut out);
            socket.send_to(&out, client).await?;
            return Ok(());
        }
    };
    let content: Arc<dyn crate::content::Content> = if request.mode == Mode::NetAscii {
        let mut raw = vec![0u8; content.len() as usize];
        let n = content.read_at(0, &mut raw)?;
        raw.truncate(n);
        Arc::new(netascii::encode(&raw))
    } else {
        content
    };
    let options: Vec<_> = request.options.iter().map(|(a, b)| (a.as_str().into(), b.as_str().into())).collect();
    let negotiated = match negotiate(&options, request.mode, content.len(), &config.transfer) {
        Ok(n) => n,
        Err(r) => {
            tracing::info!(%client, file = %request.filename, "refused: {}", r.message);
            refuse(r.code, &r.message, &mut out);
            socket.send_to(&out, client).await?;
            return Ok(());
        }
    };
    let mut t = ReadTransfer::new(content, &negotiated, config.transfer.retries);
    let mut buf = vec![0u8; 65536];
    // One timer for the whole transfer, moved rather than re-created on every packet.
    let sleep = tokio::time::sleep(config.transfer.timeout);
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    loop {
        let now = Instant::now();
        while t.poll_transmit(now, &mut out) {
            socket.send_to(&out, client).await?;
        }
        if t.is_finished() {
            break;
        }
        let Some(deadline) = t.poll_timeout() else { break };
        if armed != Some(deadline) {
            sleep.as_mut().reset(deadline.into());
            armed = Some(deadline);
        }
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (len, from) = match r {
                    Ok(r) => r,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => continue,
                    Err(e) => return Err(e),
                };
                if from != client {
                    // RFC 1350 §4: a packet from a foreign TID gets ERROR 5; the transfer goes on.
                    let mut err = Vec::new();
                    packet::encode_error(&mut err, ErrorCode::UnknownTransferId, "Unknown transfer ID");
                    let _ = socket.send_to(&err, from).await;
                    continue;
                }
                t.handle(&buf[..len], Instant::now());
            }
            _ = &mut sleep => {
                // A completed timer stays ready: re-arm it on the next turn even if the deadline did not move.
                armed = None;
                t.handle_timeout(Instant::now());
            }
        }
    }
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
        file = %request.filename,
        bytes = t.size(),
        blksize = negotiated.blksize,
        windowsize = negotiated.windowsize,
        retransmitted = stats.retransmitted,
        ms = started.elapsed().as_millis() as u64,
        result = %result,
        "transfer"
    );
    Ok(())
}
