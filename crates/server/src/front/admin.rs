//! The admin listener (`[admin] listen`, loopback by default): what operators and their monitoring read, kept off
//! the ports phones use: `/metrics` (Prometheus text, [`crate::metrics`]), `/healthz`, and the admin API under
//! `/api/v1` ([`super::api`], bearer tokens).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Whether the admin API is served on a listener bound to `local`: only on loopback, because the listener speaks
/// plain HTTP and bearer tokens must not cross a network in clear (HTTPS off loopback is still to come, issue 18).
/// An unspecified address (`0.0.0.0`, `::`) is not loopback.
pub fn serves_api(local: std::net::SocketAddr) -> bool {
    local.ip().is_loopback()
}

/// Serves the admin endpoints on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, core: std::sync::Arc<crate::serve::Core>, shutdown: CancellationToken) {
    let api = match listener.local_addr() {
        Ok(local) if serves_api(local) => super::api::routes(core),
        local => {
            let at = local.map_or_else(|e| e.to_string(), |a| a.to_string());
            tracing::warn!(
                "admin API off: [admin] listen = {at} is not loopback, and the API needs HTTPS there (not yet \
                 supported); /metrics and /healthz are served"
            );
            axum::Router::new().fallback(|| async {
                (
                    StatusCode::FORBIDDEN,
                    "the admin API is served only on a loopback [admin] listen (it has no HTTPS yet)\n",
                )
            })
        }
    };
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .nest("/api/v1", api)
        .fallback(|| async {
            (StatusCode::NOT_FOUND, "not found: the admin listener serves /metrics, /healthz and /api/v1\n")
        });
    if let Err(e) = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        tracing::error!("admin listener: {e}");
    }
}

async fn metrics() -> Response {
    let mut r = Response::new(Body::from(crate::metrics::handle().render()));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_api_is_served_on_loopback_only() {
        for (addr, served) in [
            ("127.0.0.1:9180", true),
            ("127.0.0.2:9180", true),
            ("[::1]:9180", true),
            ("0.0.0.0:9180", false),
            ("[::]:9180", false),
            ("192.0.2.10:9180", false),
            ("[2001:db8::1]:9180", false),
        ] {
            assert_eq!(super::serves_api(addr.parse().unwrap()), served, "{addr}");
        }
    }
}
