//! The HTTP and HTTPS front ends: an accept loop per listener (tokio-rustls for HTTPS, so the verified client
//! certificate reaches the handler; `crates.md`), hyper-util's `auto` connection builder (HTTP/1.0, 1.1 and h2), and
//! one axum handler that turns every request into a [`Request`] for the [`Provisioner`].
//!
//! Every response carries `Content-Length` (phones speak HTTP/1.0 and 1.1, specs.md §4.3); profiles are `text/xml`;
//! firmware supports single `Range` requests; `/metrics` is Prometheus text.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body as AxumBody;
use axum::extract::{Extension, Request as AxumRequest};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response as AxumResponse;
use hyper_util::rt::{TokioExecutor, TokioIo};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::identity::certificate_claims;
use crate::inventory::Store;
use crate::provision::{Body, Protocol, Provisioner, Request};

/// What the accept loop knows about a connection.
#[derive(Clone)]
struct Connection {
    peer: SocketAddr,
    protocol: Protocol,
    certificate: Option<crate::identity::Claims>,
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; metrics then go there.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Serves plain HTTP on `listener` until the task is dropped.
pub async fn serve_http<S: Store + 'static>(listener: TcpListener, provisioner: Arc<Provisioner<S>>) {
    let app = app(provisioner);
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let conn = Connection { peer, protocol: Protocol::Http, certificate: None };
        tokio::spawn(serve_connection(TokioIo::new(stream), app.clone(), conn));
    }
}

/// Serves HTTPS on `listener` until the task is dropped.
pub async fn serve_https<S: Store + 'static>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    provisioner: Arc<Provisioner<S>>,
) {
    let app = app(provisioner);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!("{peer}: TLS handshake: {e}");
                    return;
                }
                Err(_) => return,
            };
            // Only certificates that chained to a configured CA get here (the verifier refused the rest).
            let certificate =
                stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| certificate_claims(c));
            let conn = Connection { peer, protocol: Protocol::Https, certificate };
            serve_connection(TokioIo::new(stream), app, conn).await;
        });
    }
}

async fn serve_connection<I>(io: TokioIo<I>, app: axum::Router, conn: Connection)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(conn.clone());
        app.clone().oneshot(req.map(AxumBody::new))
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(e) = builder.serve_connection(io, service).await {
        tracing::debug!("connection: {e}");
    }
}

fn app<S: Store + 'static>(provisioner: Arc<Provisioner<S>>) -> axum::Router {
    axum::Router::new().fallback(handle::<S>).layer(Extension(provisioner))
}

fn plain(status: StatusCode, text: String) -> AxumResponse {
    let mut r = AxumResponse::new(AxumBody::from(text));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

async fn handle<S: Store + 'static>(
    Extension(provisioner): Extension<Arc<Provisioner<S>>>,
    req: AxumRequest,
) -> AxumResponse {
    let Some(conn) = req.extensions().get::<Connection>().cloned() else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "no connection information".into());
    };
    let method: &'static str = match *req.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        _ => return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n".into()),
    };
    let path = req.uri().path().to_string();
    if path == "/metrics" && matches!(method, "GET" | "HEAD") {
        let mut r = plain(StatusCode::OK, metrics_handle().render());
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
        return with_length(r);
    }
    let headers = req.headers().clone();
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let range = text(header::RANGE);
    let body = if matches!(method, "POST" | "PUT") {
        match axum::body::to_bytes(req.into_body(), provisioner.config().limits.max_report_bytes).await {
            Ok(b) => b,
            Err(_) => return with_length(plain(StatusCode::PAYLOAD_TOO_LARGE, "report too large\n".into())),
        }
    } else {
        bytes::Bytes::new()
    };
    let request = Request {
        protocol: conn.protocol,
        method,
        path,
        client: conn.peer,
        user_agent: text(header::USER_AGENT),
        certificate: conn.certificate,
        authorization: text(header::AUTHORIZATION),
        body,
    };
    let response = provisioner.handle(request).await;
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = match response.body {
        Body::Bytes(b) => AxumResponse::new(AxumBody::from(b)),
        Body::File(path, len) => match file_body(&path, len, range.as_deref()).await {
            Ok(r) => r,
            Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        },
    };
    if r.status() == StatusCode::OK {
        *r.status_mut() = status;
    }
    let h = r.headers_mut();
    h.entry(header::CONTENT_TYPE).or_insert(HeaderValue::from_static(response.content_type));
    if let Some(enc) = response.content_encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    for c in &response.challenges {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::WWW_AUTHENTICATE, v);
        }
    }
    if response.status == 429 {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    }
    with_length(r)
}

/// Sets `Content-Length` from the body's exact size (or keeps the one a file response set).
fn with_length(mut r: AxumResponse) -> AxumResponse {
    use axum::body::HttpBody as _;
    if let Some(n) = r.body().size_hint().exact() {
        r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    r
}

/// A firmware file, whole or the one range asked for (`bytes=a-b`, `bytes=a-`, `bytes=-n`).
async fn file_body(path: &std::path::Path, len: u64, range: Option<&str>) -> std::io::Result<AxumResponse> {
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
    let mut r = AxumResponse::new(AxumBody::from_stream(stream));
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
