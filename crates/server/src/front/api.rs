//! The admin REST API under `/api/v1` on the admin listener (issue 18): bearer tokens with roles
//! ([`crate::inventory::Role`], made by `provisor token create`, stored as their SHA-256), errors as RFC 9457
//! problem details naming the parameter at fault, and cursor pagination by MAC.
//!
//! This first part covers devices: `GET /api/v1/devices` (a page, by MAC after `after`, optionally of one `model`
//! or `group`), `GET /api/v1/devices/{mac}`, and, for `operator` and `admin` tokens, `PATCH` (merge: fields given
//! replace, a parameter set to `null` is removed) and `DELETE` of one. Passwords and other secret parameters are
//! always masked; so are they in `GET /api/v1/groups` and `GET /api/v1/groups/{name}` (with `parent`, the group
//! inherited from). Every change is in the audit trail (protocol `admin`) with the token's name, and in the device's
//! history.

use std::sync::Arc;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::inventory::at_rest::is_password;
use crate::inventory::parameter::{check_known, check_parameter};
use crate::inventory::{AdminToken, Device, DeviceFilter, Group, Mac, Role, Store, StoreError};
use crate::journal::{ADMIN_PROTOCOL, AuditEntry, Journal};
use crate::serve::Core;

/// The largest page `GET /api/v1/devices` returns, and the default.
pub const MAX_PAGE: u32 = 1000;
const DEFAULT_PAGE: u32 = 100;

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
#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<String>,
}

impl Problem {
    fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            parameter: None,
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

/// The API's routes (to nest under `/api/v1`), every one behind [`authenticate`], unknown ones included.
pub fn routes(core: Arc<Core>) -> axum::Router {
    axum::Router::new()
        .route("/devices", axum::routing::get(devices))
        .route("/devices/{mac}", axum::routing::get(device).patch(patch_device).delete(delete_device))
        .route("/groups", axum::routing::get(groups))
        .route("/groups/{name}", axum::routing::get(group))
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

/// The query of `GET /api/v1/devices`.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    limit: Option<String>,
    after: Option<String>,
    model: Option<String>,
    group: Option<String>,
}

/// A page of devices and the cursor of the next (`null` after the last).
#[derive(Debug, Serialize)]
struct Page {
    devices: Vec<Device>,
    next: Option<Mac>,
}

/// Replaces the values of passwords and other secret parameters with `********`.
fn mask(params: &mut BTreeMap<String, String>) {
    for (name, value) in params {
        if is_password(name) {
            *value = "********".to_string();
        }
    }
}

fn masked(mut d: Device) -> Device {
    mask(&mut d.params);
    d
}

async fn devices(
    State(core): State<Arc<Core>>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return Problem::new(StatusCode::BAD_REQUEST, "the query string could not be read").into_response();
    };
    let limit = match q.limit.as_deref().map(str::parse::<u32>) {
        None => DEFAULT_PAGE,
        Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => {
            return Problem::parameter("limit", format!("limit must be a whole number from 1 to {MAX_PAGE}"))
                .into_response();
        }
    };
    let after = match q.after.as_deref().map(str::parse::<Mac>) {
        None => None,
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => return Problem::parameter("after", format!("after: {e}")).into_response(),
    };
    let filter = DeviceFilter { model: q.model.filter(|m| !m.is_empty()), group: q.group.filter(|g| !g.is_empty()) };
    match core.store().devices_page(after.as_ref(), limit, &filter).await {
        Ok(devices) => {
            let next = (devices.len() == limit as usize).then(|| devices.last().map(|d| d.mac.clone())).flatten();
            let page = Page { devices: devices.into_iter().map(masked).collect(), next };
            axum::Json(page).into_response()
        }
        Err(e) => store_failed(e).into_response(),
    }
}

/// The `{mac}` of a path, or a problem naming it.
fn path_mac(text: &str) -> Result<Mac, Problem> {
    text.parse::<Mac>().map_err(|e| Problem::parameter("mac", format!("mac: {e}")))
}

async fn device(State(core): State<Arc<Core>>, Path(mac): Path<String>) -> Response {
    let mac = match path_mac(&mac) {
        Ok(m) => m,
        Err(p) => return p.into_response(),
    };
    match core.store().device(&mac).await {
        Ok(Some(d)) => axum::Json(masked(d)).into_response(),
        Ok(None) => Problem::new(StatusCode::NOT_FOUND, format!("no device {mac}")).into_response(),
        Err(e) => store_failed(e).into_response(),
    }
}

fn masked_group(mut g: Group) -> Group {
    mask(&mut g.params);
    g
}

async fn groups(State(core): State<Arc<Core>>) -> Response {
    match core.store().groups().await {
        Ok(groups) => axum::Json(serde_json::json!({
            "groups": groups.into_iter().map(masked_group).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(e) => store_failed(e).into_response(),
    }
}

async fn group(State(core): State<Arc<Core>>, Path(name): Path<String>) -> Response {
    match core.store().group(&name).await {
        Ok(Some(g)) => axum::Json(masked_group(g)).into_response(),
        Ok(None) => Problem::new(StatusCode::NOT_FOUND, format!("no group {name:?}")).into_response(),
        Err(e) => store_failed(e).into_response(),
    }
}

/// `PATCH /api/v1/devices/{mac}`: the fields given replace the device's; `params` merges (`null` removes one).
/// Parameter names the dictionary does not know are refused unless `allow_unknown` (a phone ignores them).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    model: Option<String>,
    serial: Option<String>,
    description: Option<String>,
    /// `null` takes the device out of its group.
    #[serde(default, deserialize_with = "present")]
    group: Option<Option<String>>,
    #[serde(default)]
    params: BTreeMap<String, Option<String>>,
    #[serde(default)]
    allow_unknown: bool,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
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

/// Records a change in the audit trail and the device's history, with who made it.
async fn audit(core: &Core, peer: SocketAddr, caller: &Caller, method: &'static str, mac: &Mac, what: String) {
    let note = format!("by token {:?} ({}): {what}", caller.name, caller.role.as_str());
    core.journal()
        .record(AuditEntry {
            at_ms: crate::provision::unix_ms(std::time::SystemTime::now()),
            client: peer.to_string(),
            device: Some(mac.clone()),
            protocol: ADMIN_PROTOCOL,
            method,
            file: format!("/api/v1/devices/{mac}"),
            status: 200,
            event: Some(("admin", note.clone())),
            note,
            ..AuditEntry::default()
        })
        .await;
}

async fn patch_device(
    State(core): State<Arc<Core>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(mac): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let mac = match require(&caller, Role::Operator).and_then(|()| path_mac(&mac)) {
        Ok(m) => m,
        Err(p) => return p.into_response(),
    };
    let patch: DevicePatch = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return Problem::parameter("body", format!("the body is not a device patch: {e}")).into_response(),
    };
    let mut device = match core.store().device(&mac).await {
        Ok(Some(d)) => d,
        Ok(None) => return Problem::new(StatusCode::NOT_FOUND, format!("no device {mac}")).into_response(),
        Err(e) => return store_failed(e).into_response(),
    };
    let mut changed = Vec::new();
    for (field, value, target) in [
        ("model", patch.model, &mut device.model),
        ("serial", patch.serial, &mut device.serial),
        ("description", patch.description, &mut device.description),
    ] {
        if let Some(v) = value {
            if v.chars().any(char::is_control) {
                return Problem::parameter(field, format!("{field}: no control characters")).into_response();
            }
            *target = v;
            changed.push(field.to_string());
        }
    }
    if let Some(group) = patch.group {
        device.group = group.filter(|g| !g.is_empty());
        changed.push("group".to_string());
    }
    for (name, value) in patch.params {
        let field = format!("params.{name}");
        match value {
            Some(v) => {
                let checked = check_parameter(&name, &v)
                    .and_then(|()| if patch.allow_unknown { Ok(()) } else { check_known(&name) });
                if let Err(e) = checked {
                    return Problem::parameter(field, e.0).into_response();
                }
                device.params.insert(name, v);
            }
            None => {
                device.params.remove(&name);
            }
        }
        changed.push(field);
    }
    match core.store().update_device(&device).await {
        Ok(()) => {}
        Err(StoreError::NoGroup(g)) => {
            return Problem::parameter("group", format!("no group {g:?} (provisor group put makes one)"))
                .into_response();
        }
        Err(e) => return store_failed(e).into_response(),
    }
    audit(&core, peer, &caller, "PATCH", &mac, format!("changed {}", changed.join(", "))).await;
    axum::Json(masked(device)).into_response()
}

async fn delete_device(
    State(core): State<Arc<Core>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(mac): Path<String>,
) -> Response {
    let mac = match require(&caller, Role::Operator).and_then(|()| path_mac(&mac)) {
        Ok(m) => m,
        Err(p) => return p.into_response(),
    };
    match core.store().remove_device(&mac).await {
        Ok(true) => {
            audit(&core, peer, &caller, "DELETE", &mac, "removed the device".into()).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => Problem::new(StatusCode::NOT_FOUND, format!("no device {mac}")).into_response(),
        Err(e) => store_failed(e).into_response(),
    }
}
