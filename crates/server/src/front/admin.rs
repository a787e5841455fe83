//! The admin listener (`[admin] listen`, loopback by default): what operators and their monitoring read, kept off
//! the ports phones use: `/metrics` (Prometheus text, [`crate::metrics`]), `/healthz`, and the admin API under
//! `/api/v1` ([`super::api`], bearer tokens) and the web UI under `/ui/` ([`super::ui`], sessions). Plain HTTP on loopback; HTTPS with the site's server certificate
//! elsewhere (or when `[admin] tls = true`), so that tokens never cross a network in clear.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Whether the admin API is served on a listener bound to `local`: over HTTPS anywhere, and over plain HTTP only on
/// loopback, because bearer tokens must not cross a network in clear. An unspecified address (`0.0.0.0`, `::`) is
/// not loopback.
pub fn serves_api(local: SocketAddr, tls: bool) -> bool {
    tls || local.ip().is_loopback()
}

/// TLS connections being set up or served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
/// How long a client has to finish its TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The admin listener's routes for a listener bound to `local`, speaking HTTPS if `tls`: `/metrics`, `/healthz`, and
/// the API and web UI where [`serves_api`] allows them (403 elsewhere). Every request must carry
/// [`ConnectInfo<SocketAddr>`] (the audit trail names the client).
pub fn app(core: Arc<crate::serve::Core>, local: SocketAddr, tls: bool) -> axum::Router {
    let (api, ui) = if serves_api(local, tls) {
        (super::api::routes(core.clone()), super::ui::routes(core, tls))
    } else {
        tracing::warn!(
            "admin API off: [admin] listen = {local} is not loopback and [admin] tls = false; the API needs HTTPS \
             there. /metrics and /healthz are served"
        );
        let refuse = || async {
            (
                StatusCode::FORBIDDEN,
                "the admin API and web UI are served over HTTPS, or over plain HTTP on loopback only ([admin] tls)\n",
            )
        };
        let api = axum::Router::new().fallback(refuse);
        let ui = axum::Router::new()
            .route("/ui", axum::routing::any(refuse))
            .route("/ui/", axum::routing::any(refuse))
            .route("/ui/{*rest}", axum::routing::any(refuse));
        (api, ui)
    };
    axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        // `/api/v1/` itself is no operation, but it is the API's like the rest: 401 without a token.
        .route_service("/api/v1/", api.clone().into_service::<axum::body::Body>())
        .nest("/api/v1", api)
        .merge(ui)
        .route("/", get(|| async { axum::response::Redirect::to("/ui/") }))
        .fallback(|| async {
            (StatusCode::NOT_FOUND, "not found: the admin listener serves /ui/, /api/v1, /metrics and /healthz\n")
        })
}

/// Serves the admin endpoints on `listener` until `shutdown`: over HTTPS with `tls`, else plain HTTP.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    core: Arc<crate::serve::Core>,
    shutdown: CancellationToken,
) {
    let app = match listener.local_addr() {
        Ok(local) => app(core, local, tls.is_some()),
        Err(e) => {
            tracing::error!("admin listener: {e}");
            return;
        }
    };
    match tls {
        None => {
            if let Err(e) = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
            {
                tracing::error!("admin listener: {e}");
            }
        }
        Some(tls) => serve_tls(listener, tls, app, shutdown).await,
    }
}

/// The HTTPS accept loop: a handshake (with a deadline) per connection, then HTTP/1.1 or h2 on it.
async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    shutdown: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("admin listener: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        while connections.try_join_next().is_some() {}
        let (acceptor, app, shutdown) = (acceptor.clone(), app.clone(), shutdown.clone());
        connections.spawn(async move {
            let _slot = slot;
            let stream = match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!("admin listener: {peer}: TLS handshake failed: {e}");
                    return;
                }
                Err(_) => return,
            };
            let service = app.layer(axum::Extension(ConnectInfo(peer)));
            let service = hyper_util::service::TowerToHyperService::new(service);
            let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                r = connection.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!("admin listener: {peer}: {e}");
                    }
                }
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), connection).await;
                }
            }
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

async fn metrics() -> Response {
    let mut r = Response::new(Body::from(crate::metrics::handle().render()));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_api_is_served_over_https_or_on_loopback() {
        for (addr, served) in [
            ("127.0.0.1:9180", true),
            ("127.0.0.2:9180", true),
            ("[::1]:9180", true),
            ("0.0.0.0:9180", false),
            ("[::]:9180", false),
            ("192.0.2.10:9180", false),
            ("[2001:db8::1]:9180", false),
        ] {
            assert_eq!(super::serves_api(addr.parse().unwrap(), false), served, "{addr}");
            assert!(super::serves_api(addr.parse().unwrap(), true), "{addr} over HTTPS");
        }
    }

    #[test]
    fn tls_is_on_off_loopback_unless_turned_off() {
        use crate::config::AdminListener;
        let at = |a: &str, tls| AdminListener { listen: Some(a.parse().unwrap()), tls };
        assert!(!at("127.0.0.1:9180", None).uses_tls());
        assert!(at("127.0.0.1:9180", Some(true)).uses_tls());
        assert!(at("0.0.0.0:9180", None).uses_tls());
        assert!(at("192.0.2.10:9180", None).uses_tls());
        assert!(!at("192.0.2.10:9180", Some(false)).uses_tls());
    }
}
