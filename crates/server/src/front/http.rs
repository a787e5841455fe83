//! The HTTP and HTTPS front ends: an accept loop per listener (tokio-rustls for HTTPS, so the verified client
//! certificate reaches the handler; `crates.md`), hyper-util's `auto` connection builder (HTTP/1.0, 1.1 and h2), and
//! one handler that turns every request into a [`Request`] for the [`Provisioner`]. There is one route (the
//! provisioning core routes by file name), so this is a hyper service without a router: a cached resync costs little
//! more than the bytes it sends (`BENCHMARKS.md`, issue 17).
//!
//! Every response carries `Content-Length` (phones speak HTTP/1.0 and 1.1, specs.md §4.3): hyper writes it for a body
//! of known size, a file response sets it. Profiles are `text/xml`; firmware supports single `Range` requests.
//! Metrics are on the admin listener ([`super::admin`]), not here.
//!
//! Hostile clients are bounded (`[limits]`): headers must arrive within `http_header_timeout_s`, a body within
//! `http_body_timeout_s`, and a connection silent for `http_idle_timeout_s` is closed; at most `max_connections`
//! connections per listener (more wait in the kernel's backlog) and `max_connections_per_address` per address (more
//! are closed at once); an accept error such as running out of file descriptors backs off instead of spinning; and
//! upload bodies go to a file as they arrive, never more than `max_report_bytes`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Limits;
use crate::identity::certificate_claims;
use crate::inventory::Store;
use crate::journal::Journal;
use crate::provision::{Body, Protocol, Provisioner, Request};

/// What the accept loop knows about a connection.
#[derive(Clone)]
struct Connection {
    peer: SocketAddr,
    protocol: Protocol,
    certificate: Option<crate::identity::Claims>,
    /// The verified client certificate (DER).
    der: Option<bytes::Bytes>,
    /// On the enterprise HTTPS listener (6971).
    enterprise_tls: bool,
}

/// The connections of one listener: a cap in all and per address.
struct Admission {
    limits: Limits,
    total: Arc<Semaphore>,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    /// Fired when every place is taken: kept-alive connections then close once their request in progress is
    /// answered, so idle ones make room for phones waiting in the backlog (as nginx reuses keep-alive connections
    /// when it runs out of `worker_connections`).
    full: tokio::sync::Notify,
    /// When `full` last fired ([`ticks`] + [`FULL_REMINDER`], so 0 means never).
    last_full: AtomicU64,
}

/// How often a full listener asks its kept-alive idle connections again to close.
const FULL_REMINDER: Duration = Duration::from_millis(100);

/// A connection's place; dropping it frees the place.
struct Admitted {
    admission: Arc<Admission>,
    address: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut m = self.admission.per_address.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.address);
            }
        }
    }
}

impl Admission {
    fn new(limits: &Limits) -> Arc<Admission> {
        Arc::new(Admission {
            limits: limits.clone(),
            total: Arc::new(Semaphore::new(limits.max_connections)),
            per_address: Mutex::new(HashMap::new()),
            full: tokio::sync::Notify::new(),
            last_full: AtomicU64::new(0),
        })
    }

    /// Fires [`Admission::full`], at most once per [`FULL_REMINDER`]: every connection of the listener wakes for it.
    fn announce_full(&self) {
        let now = ticks() + FULL_REMINDER.as_millis() as u64;
        let last = self.last_full.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= FULL_REMINDER.as_millis() as u64 {
            self.last_full.store(now, Ordering::Relaxed);
            metrics::counter!("provisor_http_connection_limit_reached_total").increment(1);
            self.full.notify_waiters();
        }
    }

    /// Waits for a free place, then accepts the next connection that its address's cap lets in.
    async fn accept(self: &Arc<Self>, listener: &TcpListener) -> (TcpStream, SocketAddr, Admitted) {
        let mut backoff = Duration::from_millis(5);
        loop {
            let permit = loop {
                if let Ok(p) = self.total.clone().try_acquire_owned() {
                    break p;
                }
                // Every place is taken: ask kept-alive idle connections to close, and again every 100 ms while full.
                self.announce_full();
                match tokio::time::timeout(FULL_REMINDER, self.total.clone().acquire_owned()).await {
                    Ok(Ok(p)) => break p,
                    // The semaphore is never closed; wait rather than spin if it were.
                    Ok(Err(_)) => tokio::time::sleep(Duration::from_secs(1)).await,
                    Err(_) => {}
                }
            };
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE/ENFILE and the like: the same error comes back at once, so wait before trying again.
                    tracing::warn!("accept: {e}; retrying in {} ms", backoff.as_millis());
                    drop(permit);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            backoff = Duration::from_millis(5);
            let address = peer.ip();
            {
                let mut m = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
                let n = m.entry(address).or_insert(0);
                if *n >= self.limits.max_connections_per_address {
                    metrics::counter!("provisor_http_connections_refused_total").increment(1);
                    continue; // dropping the stream closes it
                }
                *n += 1;
            }
            let admitted = Admitted { admission: self.clone(), address, _permit: permit };
            return (stream, peer, admitted);
        }
    }
}

/// Serves plain HTTP on `listener` until `shutdown`, then lets the requests in progress finish.
pub async fn serve_http<S: Store + 'static, J: Journal>(
    listener: TcpListener,
    provisioner: Arc<Provisioner<S, J>>,
    shutdown: CancellationToken,
) {
    accept_loop(listener, None, false, provisioner, shutdown).await;
}

/// Serves HTTPS on `listener` until `shutdown`, then lets the requests in progress finish.
/// Each connection takes the TLS configuration in force when it arrives (a reload swaps it).
pub async fn serve_https<S: Store + 'static, J: Journal>(
    listener: TcpListener,
    tls: crate::serve::LiveTls,
    provisioner: Arc<Provisioner<S, J>>,
    shutdown: CancellationToken,
) {
    accept_loop(listener, Some(tls), false, provisioner, shutdown).await;
}

/// Serves the enterprise phones' HTTPS listener (port 6971, with the EC certificate of the trust directory) until
/// `shutdown`: the same handler, where a config's `.sgn` gets the unsigned file (specs.md §5.1).
pub async fn serve_enterprise_https<S: Store + 'static, J: Journal>(
    listener: TcpListener,
    tls: crate::serve::LiveTls,
    provisioner: Arc<Provisioner<S, J>>,
    shutdown: CancellationToken,
) {
    accept_loop(listener, Some(tls), true, provisioner, shutdown).await;
}

/// Logs a failed TLS handshake (an untrusted or malformed client certificate, a client that does not trust the server)
/// with its reason, at most once a second (with how many were not logged), and counts it.
fn handshake_failed(peer: SocketAddr, e: &std::io::Error) {
    static LAST: AtomicU64 = AtomicU64::new(u64::MAX);
    static SUPPRESSED: AtomicU64 = AtomicU64::new(0);
    metrics::counter!("provisor_tls_handshake_failures_total").increment(1);
    let second = ticks() / 1000;
    if LAST.swap(second, Ordering::Relaxed) == second {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let more = SUPPRESSED.swap(0, Ordering::Relaxed);
    let more = if more > 0 { format!(" ({more} more since the last one logged)") } else { String::new() };
    tracing::warn!("{peer}: TLS handshake failed: {e}{more}");
}

/// How long one TLS handshake may hold its turn (a place among `max_tls_handshakes`). A phone answers the server's
/// flight in milliseconds; a client that stalls gives its turn up after this and finishes (or times out) without it.
const TURN_HOLD: Duration = Duration::from_secs(1);

/// A TLS handshake in its turn: waits until the client has sent something (a client that never speaks takes no
/// turn), then for one of `turns` (first come, first served), then runs the handshake with the configuration in
/// force, holding the turn at most [`TURN_HOLD`].
///
/// In a power-restore storm this serves handshakes in arrival order, a few at a time, instead of starting thousands
/// at once that all finish late (`BENCHMARKS.md`, issue 17, items 5 and 6).
async fn take_turn(
    stream: TcpStream,
    live: &crate::serve::LiveTls,
    turns: &Semaphore,
) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    stream.readable().await?;
    let turn = turns.acquire().await.map_err(std::io::Error::other)?;
    let current = live.read().unwrap_or_else(|p| p.into_inner()).clone();
    let mut accept = std::pin::pin!(tokio_rustls::TlsAcceptor::from(current).accept(stream));
    let within = tokio::select! {
        r = &mut accept => Some(r),
        () = tokio::time::sleep(TURN_HOLD) => None,
    };
    drop(turn);
    match within {
        Some(r) => r,
        None => accept.await,
    }
}

/// Takes connections (within the caps of [`Admission`]) until `shutdown`; each is served on a task of its own, after
/// a TLS handshake when `tls` is given; then waits for the connections to finish.
async fn accept_loop<S: Store + 'static, J: Journal>(
    listener: TcpListener,
    tls: Option<crate::serve::LiveTls>,
    enterprise_tls: bool,
    provisioner: Arc<Provisioner<S, J>>,
    shutdown: CancellationToken,
) {
    let limits = provisioner.config().limits.clone();
    let admission = Admission::new(&limits);
    let turns = Arc::new(Semaphore::new(limits.max_tls_handshakes));
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer, admitted) = tokio::select! {
            a = admission.accept(&listener) => a,
            () = shutdown.cancelled() => break,
        };
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let (core, limits, shutdown, tls) = (provisioner.clone(), limits.clone(), shutdown.clone(), tls.clone());
        let turns = turns.clone();
        connections.spawn(async move {
            let full = admitted.admission.clone();
            let _admitted = admitted;
            let Some(live) = tls else {
                let conn =
                    Connection { peer, protocol: Protocol::Http, certificate: None, der: None, enterprise_tls: false };
                return serve_connection(stream, core, conn, &limits, &shutdown, full).await;
            };
            let handshake = Duration::from_secs(limits.http_header_timeout_s);
            let stream = match tokio::time::timeout(handshake, take_turn(stream, &live, &turns)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    handshake_failed(peer, &e);
                    return;
                }
                Err(_) => return,
            };
            // Only certificates that chained to a configured CA get here (the verifier refused the rest).
            let first = stream.get_ref().1.peer_certificates().and_then(|c| c.first());
            let certificate = first.and_then(|c| certificate_claims(c));
            let der = first.map(|c| bytes::Bytes::copy_from_slice(c.as_ref()));
            let conn = Connection { peer, protocol: Protocol::Https, certificate, der, enterprise_tls };
            serve_connection(stream, core, conn, &limits, &shutdown, full).await;
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Milliseconds since `EPOCH` of the process, for idle tracking.
fn ticks() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What a connection's [`keeper`] watches: when the stream last moved bytes each way, how many requests are in
/// progress, and since when the connection has waited for a request head.
struct Watch {
    /// When bytes last arrived ([`ticks`]).
    last_read: AtomicU64,
    /// When bytes last left.
    last_write: AtomicU64,
    /// Requests in progress.
    in_flight: AtomicUsize,
    /// When the connection began waiting for a request: when it was accepted, or when its last request was
    /// answered. A request head must arrive within `http_header_timeout_s` of this (and of the last byte sent, so a
    /// long download is not cut short).
    waiting_since: AtomicU64,
    /// Whether it has answered a request: only such a one closes when the listener is full (a new one has not sent
    /// its request yet).
    answered: AtomicBool,
    /// What the keeper decided: [`OPEN`], [`DRAIN`] or [`CLOSE`].
    verdict: std::sync::atomic::AtomicU8,
    /// The connection's task, woken when the verdict changes.
    task: atomic_waker::AtomicWaker,
}

/// The connection goes on.
const OPEN: u8 = 0;
/// Close after the request in progress (at once if idle): shutdown, or a full listener.
const DRAIN: u8 = 1;
/// Close now: it was silent too long, or a request head did not arrive in time.
const CLOSE: u8 = 2;

impl Watch {
    fn new() -> Watch {
        let now = ticks();
        Watch {
            last_read: AtomicU64::new(now),
            last_write: AtomicU64::new(now),
            in_flight: AtomicUsize::new(0),
            waiting_since: AtomicU64::new(now),
            answered: AtomicBool::new(false),
            verdict: std::sync::atomic::AtomicU8::new(OPEN),
            task: atomic_waker::AtomicWaker::new(),
        }
    }

    /// Raises the verdict to `v` and wakes the connection's task.
    fn decide(&self, v: u8) {
        self.verdict.fetch_max(v, Ordering::AcqRel);
        self.task.wake();
    }
}

/// A request in progress on a connection; when it ends (answered, or dropped with its HTTP/2 stream), the connection
/// waits for a request head again.
struct InFlight(Arc<Watch>);

impl InFlight {
    fn start(watch: &Arc<Watch>) -> InFlight {
        watch.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(watch.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.waiting_since.store(ticks(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A stream that notes when it last moved bytes, so a silent connection can be closed.
struct Watched<I> {
    inner: I,
    watch: Arc<Watch>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.watch.last_read.store(ticks(), Ordering::Relaxed);
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.last_write.store(ticks(), Ordering::Relaxed);
        }
        r
    }
    /// Vectored, like the socket: hyper then sends a response's head and body in one `writev` instead of copying
    /// the body into its own buffer first.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.last_write.store(ticks(), Ordering::Relaxed);
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A connection's keeper: a task of its own that decides when the connection closes (idle, a request head late,
/// shutdown, a full listener), so that the connection's task, woken for every request, only reads one atomic
/// instead of polling timers and notifications each time (`BENCHMARKS.md`, issue 17). It replaces hyper's
/// per-request header timer, which allocated and registered a timer for every request.
async fn keeper(
    watch: Arc<Watch>,
    limits: Limits,
    shutdown: CancellationToken,
    full: Arc<Admission>,
    peer: SocketAddr,
) {
    let idle_ms = limits.http_idle_timeout_s.saturating_mul(1000).max(1);
    let header_ms = limits.http_header_timeout_s.saturating_mul(1000).max(1);
    let mut listener_full = std::pin::pin!(full.full.notified());
    listener_full.as_mut().enable();
    let mut draining = false;
    loop {
        let now = ticks();
        let last_write = watch.last_write.load(Ordering::Relaxed);
        let quiet = now.saturating_sub(watch.last_read.load(Ordering::Relaxed).max(last_write));
        if quiet >= idle_ms {
            tracing::debug!("{peer}: closed after {} s without traffic", limits.http_idle_timeout_s);
            return watch.decide(CLOSE);
        }
        let mut wait = idle_ms - quiet;
        if watch.in_flight.load(Ordering::Acquire) == 0 {
            // Waiting for a request head: it must come within the header timeout.
            let waited = now.saturating_sub(watch.waiting_since.load(Ordering::Acquire).max(last_write));
            if waited >= header_ms {
                tracing::debug!("{peer}: no request within {} s", limits.http_header_timeout_s);
                return watch.decide(CLOSE);
            }
            wait = wait.min(header_ms - waited);
        } else {
            // A request that ends during the wait starts a header timeout no sooner than this wakes.
            wait = wait.min(header_ms);
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(wait)) => {}
            () = shutdown.cancelled(), if !draining => {
                // Finish the request in progress, then close (an idle keep-alive connection closes at once).
                draining = true;
                watch.decide(DRAIN);
            }
            () = &mut listener_full, if !draining => {
                if watch.answered.load(Ordering::Relaxed) {
                    // Every place of the listener is taken: close once this request is answered (at once if idle).
                    draining = true;
                    watch.decide(DRAIN);
                } else {
                    listener_full.set(full.full.notified());
                    listener_full.as_mut().enable();
                }
            }
        }
    }
}

/// Serves one connection until the client closes it, it idles too long, a request head is late, or (after the
/// request in progress) `shutdown` or a full listener.
async fn serve_connection<I, S: Store + 'static, J: Journal>(
    io: I,
    provisioner: Arc<Provisioner<S, J>>,
    conn: Connection,
    limits: &Limits,
    shutdown: &CancellationToken,
    admission: Arc<Admission>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let watch = Arc::new(Watch::new());
    let io = TokioIo::new(Watched { inner: io, watch: watch.clone() });
    let peer = conn.peer;
    let conn = Arc::new(conn);
    let requests = watch.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let (provisioner, conn) = (provisioner.clone(), conn.clone());
        let in_flight = InFlight::start(&requests);
        async move {
            let response = handle(&provisioner, &conn, req).await;
            in_flight.0.answered.store(true, Ordering::Relaxed);
            drop(in_flight);
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // No hyper header timer: the keeper enforces `http_header_timeout_s` without a timer per request.
    builder.http1().max_buf_size(64 * 1024);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(32);
    let mut connection = std::pin::pin!(builder.serve_connection(io, service));
    /// Stops the keeper when the connection ends.
    struct Stop(tokio::task::JoinHandle<()>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _keeper = Stop(tokio::spawn(keeper(watch.clone(), limits.clone(), shutdown.clone(), admission, peer)));
    let mut draining = false;
    let closed_by_keeper = std::future::poll_fn(|cx| {
        watch.task.register(cx.waker());
        match watch.verdict.load(Ordering::Acquire) {
            CLOSE => return Poll::Ready(true),
            DRAIN if !draining => {
                connection.as_mut().graceful_shutdown();
                draining = true;
            }
            _ => {}
        }
        match connection.as_mut().poll(cx) {
            Poll::Ready(r) => {
                if let Err(e) = r {
                    tracing::debug!("{peer}: connection: {e}");
                }
                Poll::Ready(false)
            }
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    if closed_by_keeper {
        tracing::trace!("{peer}: closed by its keeper");
    }
}

/// A response's body: bytes in memory (profiles, refusals), or a firmware file streamed from disk.
type ResponseBody = Either<Full<Bytes>, http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>>;

/// A response of `status` with `body` in memory.
fn bytes_response(status: StatusCode, body: Bytes) -> hyper::Response<ResponseBody> {
    let mut r = hyper::Response::new(Either::Left(Full::new(body)));
    *r.status_mut() = status;
    r
}

fn plain(status: StatusCode, text: String) -> hyper::Response<ResponseBody> {
    let mut r = bytes_response(status, Bytes::from(text));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// The text of header `name`, when there is one and it is visible ASCII.
fn header_text(headers: &hyper::HeaderMap, name: header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

async fn handle<S: Store + 'static, J: Journal>(
    provisioner: &Provisioner<S, J>,
    conn: &Connection,
    req: hyper::Request<Incoming>,
) -> hyper::Response<ResponseBody> {
    let started = std::time::Instant::now();
    let method: &'static str = match *req.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        _ => return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n".into()),
    };
    let (parts, incoming) = req.into_parts();
    let headers = &parts.headers;
    let path = parts.uri.path().to_string();
    // The request target as sent (Digest authentication checks it), when it is not the path: origin form with a
    // query, or absolute form in full.
    let target = match (parts.uri.scheme(), parts.uri.path_and_query()) {
        (None, Some(t)) if t.query().is_none() => None,
        (None, Some(t)) => Some(t.as_str().to_string()),
        _ => Some(parts.uri.to_string()),
    };
    let range = header_text(headers, header::RANGE);
    let body = if matches!(method, "POST" | "PUT") {
        let config = provisioner.config();
        let limit = config.limits.max_report_bytes as u64;
        let spool = spool_dir(&config.data_dir);
        let wait = Duration::from_secs(config.limits.http_body_timeout_s);
        match tokio::time::timeout(wait, spool_body(incoming, &spool, limit)).await {
            Ok(Ok(b)) => b,
            Ok(Err(Upload::TooLarge)) => {
                return plain(StatusCode::PAYLOAD_TOO_LARGE, "report too large\n".into());
            }
            Ok(Err(Upload::Failed(e))) => {
                tracing::warn!("{}: upload: {e}", conn.peer);
                return plain(StatusCode::BAD_REQUEST, "upload failed\n".into());
            }
            Err(_) => {
                return plain(StatusCode::REQUEST_TIMEOUT, "the body did not arrive in time\n".into());
            }
        }
    } else {
        Bytes::new()
    };
    let client = match headers.contains_key("x-forwarded-for") {
        false => conn.peer,
        true => {
            let forwarded: Vec<&str> =
                headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
            let limits = &provisioner.config().limits;
            SocketAddr::new(limits.client_behind_proxies(conn.peer.ip(), &forwarded), conn.peer.port())
        }
    };
    let request = Request {
        protocol: conn.protocol,
        method,
        path,
        target,
        client,
        user_agent: header_text(headers, header::USER_AGENT),
        certificate: conn.certificate.clone(),
        authorization: header_text(headers, header::AUTHORIZATION),
        body,
        enterprise_tls: conn.enterprise_tls,
        client_certificate: conn.der.clone(),
    };
    // The access log's file: random profile paths masked (half of a device's secret).
    let file = crate::journal::mask_path_tokens(&request.path);
    let (client, method_name) = (request.client, request.method);
    let response = provisioner.handle(request, std::time::SystemTime::now()).await;
    let elapsed = started.elapsed();
    crate::metrics::request_latency(conn.protocol.name(), elapsed);
    // The access log: one line per request.
    crate::log_line::Access {
        protocol: conn.protocol.name(),
        client,
        device: response.device.as_ref().map(|m| m.as_str()),
        method: method_name,
        file: &file,
        status: response.status,
        bytes: response.body.len(),
        ms: elapsed.as_millis() as u64,
    }
    .log();
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = match &response.body {
        Body::Bytes(b) => bytes_response(status, b.clone()),
        Body::File(path, len) => match file_body(path, *len, range.as_deref()).await {
            Ok(mut r) => {
                if r.status() == StatusCode::OK {
                    *r.status_mut() = status;
                }
                r
            }
            Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        },
    };
    let h = r.headers_mut();
    h.entry(header::CONTENT_TYPE).or_insert(HeaderValue::from_static(response.content_type));
    if let Some(enc) = response.content_encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    for c in response.challenges() {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::WWW_AUTHENTICATE, v);
        }
    }
    if response.status == 429 {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    }
    if response.status == 503 {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
    }
    r
}

/// Why an upload body was not taken.
enum Upload {
    TooLarge,
    Failed(String),
}

/// Where upload bodies are spooled, under the data directory; [`crate::serve::start`] makes it (0700).
pub fn spool_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("uploads")
}

/// Receives a request body into a private file under `dir` as it arrives (so a stalled upload holds no memory),
/// refusing it past `limit` bytes; returns the whole body once complete.
async fn spool_body(body: Incoming, dir: &std::path::Path, limit: u64) -> Result<Bytes, Upload> {
    if let Some(n) = hyper::body::Body::size_hint(&body).upper()
        && n > limit
    {
        return Err(Upload::TooLarge);
    }
    let failed = |e: &dyn std::fmt::Display| Upload::Failed(e.to_string());
    let mut name = [0u8; 12];
    getrandom::fill(&mut name).map_err(|e| failed(&e))?;
    let path = dir.join(format!(".upload-{}", name.iter().map(|b| format!("{b:02x}")).collect::<String>()));
    /// Removes the spool file however the upload ends (error, timeout, or success).
    struct Spool(std::path::PathBuf);
    impl Drop for Spool {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let spool = Spool(path);
    let mut file = tokio::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .read(true)
        .mode(0o600)
        .open(&spool.0)
        .await
        .map_err(|e| failed(&e))?;
    // tokio buffers up to 2 MiB per file between writes by default; frames are at most a socket read.
    file.set_max_buf_size(64 * 1024);
    let mut body = body;
    let mut size = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| failed(&e))?;
        if let Ok(data) = frame.into_data() {
            size += data.len() as u64;
            if size > limit {
                return Err(Upload::TooLarge);
            }
            file.write_all(&data).await.map_err(|e| failed(&e))?;
        }
    }
    file.seek(std::io::SeekFrom::Start(0)).await.map_err(|e| failed(&e))?;
    let mut all = Vec::with_capacity(size as usize);
    file.read_to_end(&mut all).await.map_err(|e| failed(&e))?;
    Ok(all.into())
}

/// A firmware file, whole or the one range asked for (`bytes=a-b`, `bytes=a-`, `bytes=-n`).
async fn file_body(
    path: &std::path::Path,
    len: u64,
    range: Option<&str>,
) -> std::io::Result<hyper::Response<ResponseBody>> {
    let mut file = tokio::fs::File::open(path).await?;
    let wanted = range.and_then(|r| parse_range(r, len));
    if let Some(Err(())) = wanted {
        let mut r = plain(StatusCode::RANGE_NOT_SATISFIABLE, String::new());
        r.headers_mut().insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes */{len}")).expect("ascii"));
        return Ok(r);
    }
    let (start, end) = match wanted {
        Some(Ok(r)) => r,
        _ => (0, len.saturating_sub(1)),
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    file.seek(std::io::SeekFrom::Start(start)).await?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(count), 64 * 1024);
    let frames = tokio_stream::StreamExt::map(stream, |chunk| chunk.map(Frame::data));
    let mut r = hyper::Response::new(Either::Right(StreamBody::new(frames).boxed_unsync()));
    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    r.headers_mut().insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if matches!(wanted, Some(Ok(_))) {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        r.headers_mut().insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")).expect("ascii"),
        );
    }
    Ok(r)
}

/// One byte range; `Err` when unsatisfiable, `None` when not understood (the whole file is sent, as RFC 9110 allows).
fn parse_range(value: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let r = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end: u64 =
            if b.is_empty() { len.saturating_sub(1) } else { b.parse::<u64>().ok()?.min(len.saturating_sub(1)) };
        if start >= len || end < start {
            return Some(Err(()));
        }
        (start, end)
    };
    Some(Ok(r))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=95-200", 100), Some(Ok((95, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
