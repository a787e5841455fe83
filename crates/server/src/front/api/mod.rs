//! The admin REST API under `/api/v1` on the admin listener (issue 18): bearer tokens with roles
//! ([`crate::inventory::Role`], made by `provisor token create`, stored as their SHA-256), errors as RFC 9457
//! problem details naming the parameter at fault, and cursor pagination by MAC.
//!
//! The operations ([`devices`], [`groups`], [`audit`], [`fleet`]) are described by an OpenAPI 3.1 document generated from this
//! code by utoipa and served at `/api/v1/openapi.json` ([`openapi`]). Passwords and other secret parameters are
//! masked unless an `admin` token asks for them (and that is audited). Every change is in the audit trail (protocol
//! `admin`) with the token's name, and a device's changes are in its history too.

pub mod audit;
pub mod devices;
pub mod fleet;
pub mod groups;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::inventory::at_rest::is_password;
use crate::inventory::{AdminToken, Mac, Role, Store};
use crate::journal::{ADMIN_PROTOCOL, AuditEntry, Journal};
use crate::serve::Core;

pub use devices::MAX_PAGE;

/// Who made a request: the token's name and role (kept in the request's extensions by [`authenticate`]).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name.
    pub name: String,
    /// What it may do.
    pub role: Role,
}

/// An RFC 9457 problem: `application/problem+json` with `title`, `status`, `detail` and, for a bad request
/// parameter, `parameter` (an extension member naming it).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    kind: &'static str,
    /// The status's reason phrase.
    title: &'static str,
    /// The HTTP status.
    status: u16,
    /// What went wrong, and what to do about it.
    detail: String,
    /// The request parameter at fault: a query parameter, a path parameter, or a field of the body
    /// (`params.<name>` for a device or group parameter).
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<String>,
    /// For a CSV import, every bad row: its line and what is wrong with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rows: Vec<devices::RowProblem>,
}

impl Problem {
    fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            parameter: None,
            rows: Vec::new(),
        }
    }

    fn parameter(name: impl Into<String>, detail: impl Into<String>) -> Problem {
        Problem { parameter: Some(name.into()), ..Problem::new(StatusCode::BAD_REQUEST, detail) }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut r = (status, body).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"provisor\""));
        }
        r
    }
}

fn store_failed(e: impl std::fmt::Display) -> Problem {
    tracing::error!("admin API: inventory: {e}");
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "the inventory could not be read; try again")
}

/// The OpenAPI document's frame: what the operations' own descriptions do not say.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Provisor admin API",
        description = "Fleet operations on a Provisor site: devices, groups, what a device is served, keys and the \
                       audit trail. Every operation needs `Authorization: Bearer <token>` (made by `provisor token \
                       create --role read|operator|admin`); errors are RFC 9457 problem details naming the parameter \
                       at fault."
    ),
    servers((url = "/api/v1", description = "the admin listener ([admin] listen)")),
    modifiers(&BearerToken),
    security(("token" = [])),
    tags(
        (name = "devices", description = "The inventory's devices, what they inherit and what they are served"),
        (name = "groups", description = "Groups of devices sharing parameters"),
        (name = "audit", description = "Who changed what, and what was served to whom"),
        (name = "fleet", description = "Fleet-wide views: events, drift, firmware"),
        (name = "api", description = "This document")
    ),
    components(schemas(Problem))
)]
struct ApiDoc;

/// Declares the bearer token scheme the `security` requirement names.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi.components.get_or_insert_with(Default::default).add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("pvt_...")
                    .description(Some("a token from `provisor token create`"))
                    .build(),
            ),
        );
    }
}

/// Every operation, each with its OpenAPI description.
fn router() -> OpenApiRouter<Arc<Core>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(devices::list, devices::create))
        .routes(routes!(devices::get, devices::patch, devices::delete))
        .routes(routes!(devices::parameters))
        .routes(routes!(devices::profile))
        .routes(routes!(devices::status))
        .routes(routes!(devices::rotate_keys))
        .routes(routes!(devices::import))
        .routes(routes!(groups::list))
        .routes(routes!(groups::get, groups::put, groups::patch, groups::delete))
        .routes(routes!(audit::lines))
        .routes(routes!(fleet::events))
        .routes(routes!(fleet::drift))
        .routes(routes!(fleet::firmware))
        .routes(routes!(openapi_json))
}

/// The OpenAPI 3.1 document of the API, generated from the code.
pub fn openapi() -> utoipa::openapi::OpenApi {
    router().into_openapi()
}

/// The OpenAPI document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "getOpenApi",
    tag = "api",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn openapi_json() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let text = DOCUMENT.get_or_init(|| openapi().to_pretty_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], text.as_str()).into_response()
}

/// The API's routes (to nest under `/api/v1`), every one behind [`authenticate`], unknown ones included.
pub fn routes(core: Arc<Core>) -> axum::Router {
    let (router, _) = router().split_for_parts();
    router
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "no such API operation") })
        .layer(axum::middleware::from_fn_with_state(core.clone(), authenticate))
        .with_state(core)
}

/// Requires `Authorization: Bearer <token>` naming a token in the inventory; 401 otherwise (the same answer for a
/// missing, malformed, unknown or revoked token, so the answer tells nothing about which tokens exist).
async fn authenticate(State(core): State<Arc<Core>>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = presented.filter(|t| !t.is_empty()) else {
        return Problem::new(StatusCode::UNAUTHORIZED, "send Authorization: Bearer <token> (provisor token create)")
            .into_response();
    };
    match core.store().token_by_hash(&AdminToken::hash_of(token)).await {
        Ok(Some(t)) => {
            req.extensions_mut().insert(Caller { name: t.name, role: t.role });
            next.run(req).await
        }
        Ok(None) => Problem::new(StatusCode::UNAUTHORIZED, "the token is not valid (revoked, or never made here)")
            .into_response(),
        Err(e) => store_failed(e).into_response(),
    }
}

/// Replaces the values of passwords and other secret parameters with `********`.
pub(crate) fn mask(params: &mut BTreeMap<String, String>) {
    for (name, value) in params {
        if is_password(name) {
            *value = "********".to_string();
        }
    }
}

/// Refuses a caller below `needed`.
fn require(caller: &Caller, needed: Role) -> Result<(), Problem> {
    if caller.role >= needed {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::FORBIDDEN,
        format!("token {:?} is {}; this needs {} or above", caller.name, caller.role.as_str(), needed.as_str()),
    ))
}

/// Records a change (or an admin's look at secrets) in the audit trail, with who made it, and in `device`'s history.
pub(crate) async fn record(
    core: &Core,
    peer: SocketAddr,
    caller: &Caller,
    method: &'static str,
    file: String,
    device: Option<&Mac>,
    what: String,
) {
    let note = format!("by token {:?} ({}): {what}", caller.name, caller.role.as_str());
    core.journal()
        .record(AuditEntry {
            at_ms: crate::provision::unix_ms(std::time::SystemTime::now()),
            client: peer.to_string(),
            device: device.cloned(),
            protocol: ADMIN_PROTOCOL,
            method,
            file,
            status: 200,
            event: device.map(|_| ("admin", note.clone())),
            note,
            ..AuditEntry::default()
        })
        .await;
}

/// A body that is not JSON of the expected shape, as a problem naming the body.
fn bad_body(what: &str, e: impl std::fmt::Display) -> Problem {
    Problem::parameter("body", format!("the body is not {what}: {e}"))
}

/// Checks a parameter as `device set` does (and the name against the dictionary unless `allow_unknown`); the problem
/// names `params.<name>`.
fn checked_parameter(name: &str, value: &str, allow_unknown: bool) -> Result<(), Problem> {
    use crate::inventory::parameter::{check_known, check_parameter};
    check_parameter(name, value)
        .and_then(|()| if allow_unknown { Ok(()) } else { check_known(name) })
        .map_err(|e| Problem::parameter(format!("params.{name}"), e.0))
}

/// Merges a patch's `params` into `params`: a value sets one (checked), `null` removes one; each name goes into
/// `changed` as `params.<name>`. Nothing is merged if any value is refused.
fn merge_params(
    params: &mut BTreeMap<String, String>,
    patch: BTreeMap<String, Option<String>>,
    allow_unknown: bool,
    changed: &mut Vec<String>,
) -> Result<(), Problem> {
    for (name, value) in &patch {
        if let Some(v) = value {
            checked_parameter(name, v, allow_unknown)?;
        }
    }
    for (name, value) in patch {
        changed.push(format!("params.{name}"));
        match value {
            Some(v) => params.insert(name, v),
            None => params.remove(&name),
        };
    }
    Ok(())
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    use serde::Deserialize as _;
    Option::<String>::deserialize(d).map(Some)
}

/// Refuses a field value with control characters (they would corrupt the CSV export and the audit trail).
fn plain_text(field: &str, value: &str) -> Result<(), Problem> {
    if value.chars().any(char::is_control) {
        return Err(Problem::parameter(field, format!("{field}: no control characters")));
    }
    Ok(())
}
