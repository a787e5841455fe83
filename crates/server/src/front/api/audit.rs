//! `/api/v1/audit`: the audit trail (every request served or refused, every change and who made it), newest last,
//! from `audit.log` for the embedded store or from the database (every node's) for PostgreSQL.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{Problem, store_failed};
use crate::inventory::Mac;
use crate::serve::Core;

/// The query of `GET /api/v1/audit`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only lines about this device.
    device: Option<String>,
    /// How many of the most recent lines, 1 to 10000 (default 100).
    limit: Option<String>,
}

/// Audit lines, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditLines {
    /// One request or change per line: time, client, device, protocol, method, file, status, bytes, SHA-256,
    /// note (random profile paths masked).
    lines: Vec<String>,
}

/// The most recent lines of the audit trail, optionally of one device.
#[utoipa::path(
    get,
    path = "/audit",
    operation_id = "getAudit",
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "Audit lines", body = AuditLines),
        (status = 400, description = "A bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn lines(
    State(core): State<Arc<Core>>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let found = async {
        let Ok(Query(q)) = query else {
            return Err(Problem::new(StatusCode::BAD_REQUEST, "the query string could not be read"));
        };
        let device = match q.device.as_deref().filter(|d| !d.is_empty()).map(str::parse::<Mac>) {
            None => None,
            Some(Ok(m)) => Some(m),
            Some(Err(e)) => return Err(Problem::parameter("device", format!("device: {e}"))),
        };
        let limit = match q.limit.as_deref().map(str::parse::<usize>) {
            None => 100,
            Some(Ok(n)) if (1..=10_000).contains(&n) => n,
            Some(_) => return Err(Problem::parameter("limit", "limit must be a whole number from 1 to 10000")),
        };
        let lines = crate::journal::audit(core.store(), &core.config().data_dir, device.as_ref(), limit)
            .await
            .map_err(store_failed)?;
        Ok(AuditLines { lines: lines.iter().map(|l| crate::journal::mask_path_tokens(l)).collect() })
    };
    match found.await {
        Ok(a) => axum::Json(a).into_response(),
        Err(p) => p.into_response(),
    }
}
