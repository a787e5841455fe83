//! The admin listener (`[admin] listen`, loopback by default): what operators and their monitoring read, kept off
//! the ports phones use: `/metrics` (Prometheus text, [`crate::metrics`]), `/healthz`, and the admin API under
//! `/api/v1` ([`super::api`], bearer tokens).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves the admin endpoints on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, core: std::sync::Arc<crate::serve::Core>, shutdown: CancellationToken) {
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .nest("/api/v1", super::api::routes(core))
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
