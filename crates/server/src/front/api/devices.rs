//! `/api/v1/devices`: the inventory's devices (list by cursor, get, create, merge-update, delete, bulk CSV import
//! with a dry-run diff), the parameters each inherits and from where, what the server would serve one, its status
//! (last seen, firmware, events, drift) and key rotation.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{
    Caller, Problem, bad_body, checked_parameter, mask, merge_params, plain_text, present, record, require,
    store_failed,
};
use crate::inventory::csv::{ImportError, ImportOptions, read_devices};
use crate::inventory::{Device, DeviceFilter, Mac, Role, Secrets, Store, StoreError, parameter_layers};
use crate::provision::preview::{Rendition, mask_secrets};
use crate::provision::request::ProvisionError;
use crate::serve::Core;

/// The largest page `GET /api/v1/devices` returns.
pub const MAX_PAGE: u32 = 1000;
const DEFAULT_PAGE: u32 = 100;

type Rejected<T> = Result<T, axum::extract::rejection::QueryRejection>;

/// The query of `GET /api/v1/devices`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// How many devices, 1 to 1000 (default 100).
    limit: Option<String>,
    /// The cursor: devices with a MAC after this one (the `next` of the page before).
    after: Option<String>,
    /// Only devices of this model.
    model: Option<String>,
    /// Only devices in this group.
    group: Option<String>,
    /// Only devices whose MAC (any spelling), serial or description contains this text (case-insensitive).
    q: Option<String>,
}

/// A page of devices and the cursor of the next (`null` after the last).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page {
    /// The devices, by MAC; secret parameters masked.
    devices: Vec<Device>,
    /// The `after` of the next page; `null` when this page is the last.
    next: Option<Mac>,
}

fn masked(mut d: Device) -> Device {
    mask(&mut d.params);
    d
}

/// A page of devices, by MAC, optionally of one model or group.
#[utoipa::path(
    get,
    path = "/devices",
    operation_id = "listDevices",
    tag = "devices",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of devices", body = Page),
        (status = 400, description = "A bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn list(State(core): State<Arc<Core>>, query: Rejected<Query<PageQuery>>) -> Response {
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
    let filter = DeviceFilter {
        model: q.model.filter(|m| !m.is_empty()),
        group: q.group.filter(|g| !g.is_empty()),
        search: q.q.filter(|s| !s.is_empty()),
    };
    match core.store().devices_page(after.as_ref(), limit, &filter).await {
        Ok(devices) => {
            let next = (devices.len() == limit as usize).then(|| devices.last().map(|d| d.mac.clone())).flatten();
            axum::Json(Page { devices: devices.into_iter().map(masked).collect(), next }).into_response()
        }
        Err(e) => store_failed(e).into_response(),
    }
}

/// The `{mac}` of a path, or a problem naming it.
fn path_mac(text: &str) -> Result<Mac, Problem> {
    text.parse::<Mac>().map_err(|e| Problem::parameter("mac", format!("mac: {e}")))
}

fn no_device(mac: &Mac) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, format!("no device {mac}"))
}

/// The device `mac`, or the problem to answer.
async fn existing(core: &Core, mac: &Mac) -> Result<Device, Problem> {
    match core.store().device(mac).await {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err(no_device(mac)),
        Err(e) => Err(store_failed(e)),
    }
}

/// One device; secret parameters masked.
#[utoipa::path(
    get,
    path = "/devices/{mac}",
    operation_id = "getDevice",
    tag = "devices",
    params(("mac" = String, Path, description = "The MAC, in any usual spelling (`00:0e:08:aa:bb:cc`, `000E08AABBCC`, `SEP000E08AABBCC`)")),
    responses(
        (status = 200, description = "The device", body = Device),
        (status = 400, description = "A bad MAC", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn get(State(core): State<Arc<Core>>, Path(mac): Path<String>) -> Response {
    let found = async { existing(&core, &path_mac(&mac)?).await };
    match found.await {
        Ok(d) => axum::Json(masked(d)).into_response(),
        Err(p) => p.into_response(),
    }
}

/// The body of `POST /api/v1/devices`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    /// Its MAC address.
    mac: String,
    /// Product name, e.g. `CP-8841-3PCC`.
    #[serde(default)]
    model: String,
    /// Serial number.
    #[serde(default)]
    serial: String,
    /// Free text.
    #[serde(default)]
    description: String,
    /// The group it belongs to (it must exist).
    #[serde(default)]
    group: Option<String>,
    /// Its own parameters, by element name (web-UI labels are not accepted here).
    #[serde(default)]
    params: BTreeMap<String, String>,
    /// Take parameter names the dictionary does not know (a phone ignores them).
    #[serde(default)]
    allow_unknown: bool,
}

fn no_group(g: &str) -> Problem {
    Problem::parameter("group", format!("no group {g:?} (PUT /api/v1/groups/{{name}} or provisor group put makes one)"))
}

/// Adds a device, with fresh secrets (operator or admin).
#[utoipa::path(
    post,
    path = "/devices",
    operation_id = "createDevice",
    tag = "devices",
    request_body = NewDevice,
    responses(
        (status = 201, description = "Added; `Location` names it", body = Device),
        (status = 400, description = "A bad field or parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The device exists", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn create(
    State(core): State<Arc<Core>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: axum::body::Bytes,
) -> Response {
    let made = async {
        require(&caller, Role::Operator)?;
        let new: NewDevice = serde_json::from_slice(&body).map_err(|e| bad_body("a device", e))?;
        let mac = new.mac.parse::<Mac>().map_err(|e| Problem::parameter("mac", format!("mac: {e}")))?;
        let secrets = Secrets::generate().map_err(store_failed)?;
        let mut d = Device::blank(mac, secrets);
        for (field, value, target) in [
            ("model", new.model, &mut d.model),
            ("serial", new.serial, &mut d.serial),
            ("description", new.description, &mut d.description),
        ] {
            plain_text(field, &value)?;
            *target = value;
        }
        d.group = new.group.filter(|g| !g.is_empty());
        for (name, value) in &new.params {
            checked_parameter(name, value, new.allow_unknown)?;
        }
        d.params = new.params;
        match core.store().add_device(&d).await {
            Ok(()) => Ok(d),
            Err(StoreError::DeviceExists(m)) => Err(Problem {
                parameter: Some("mac".into()),
                ..Problem::new(StatusCode::CONFLICT, format!("{m} exists"))
            }),
            Err(StoreError::NoGroup(g)) => Err(no_group(&g)),
            Err(e) => Err(store_failed(e)),
        }
    };
    match made.await {
        Ok(d) => {
            let what = format!("added the device ({})", d.model);
            record(&core, peer, &caller, "POST", format!("/api/v1/devices/{}", d.mac), Some(&d.mac), what).await;
            let location = format!("/api/v1/devices/{}", d.mac);
            (StatusCode::CREATED, [(header::LOCATION, location)], axum::Json(masked(d))).into_response()
        }
        Err(p) => p.into_response(),
    }
}

/// `PATCH /api/v1/devices/{mac}`: the fields given replace the device's; `params` merges (`null` removes one).
/// Parameter names the dictionary does not know are refused unless `allow_unknown` (a phone ignores them).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    /// A new model.
    model: Option<String>,
    /// A new serial number.
    serial: Option<String>,
    /// A new description.
    description: Option<String>,
    /// A new group; `null` takes the device out of its group.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    group: Option<Option<String>>,
    /// Parameters to set; one set to `null` is removed. The others stay.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, Option<String>>)]
    params: BTreeMap<String, Option<String>>,
    /// Take parameter names the dictionary does not know.
    #[serde(default)]
    allow_unknown: bool,
}

/// Changes a device (operator or admin): merge semantics.
#[utoipa::path(
    patch,
    path = "/devices/{mac}",
    operation_id = "updateDevice",
    tag = "devices",
    params(("mac" = String, Path, description = "The MAC")),
    request_body = DevicePatch,
    responses(
        (status = 200, description = "The device as changed", body = Device),
        (status = 400, description = "A bad field or parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn patch(
    State(core): State<Arc<Core>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(mac): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let changed = async {
        require(&caller, Role::Operator)?;
        let mac = path_mac(&mac)?;
        let patch: DevicePatch = serde_json::from_slice(&body).map_err(|e| bad_body("a device patch", e))?;
        let mut device = existing(&core, &mac).await?;
        let mut changed = Vec::new();
        for (field, value, target) in [
            ("model", patch.model, &mut device.model),
            ("serial", patch.serial, &mut device.serial),
            ("description", patch.description, &mut device.description),
        ] {
            if let Some(v) = value {
                plain_text(field, &v)?;
                *target = v;
                changed.push(field.to_string());
            }
        }
        if let Some(group) = patch.group {
            device.group = group.filter(|g| !g.is_empty());
            changed.push("group".to_string());
        }
        merge_params(&mut device.params, patch.params, patch.allow_unknown, &mut changed)?;
        match core.store().update_device(&device).await {
            Ok(()) => Ok((device, changed)),
            Err(StoreError::NoGroup(g)) => Err(no_group(&g)),
            Err(e) => Err(store_failed(e)),
        }
    };
    match changed.await {
        Ok((device, changed)) => {
            let file = format!("/api/v1/devices/{}", device.mac);
            let what = format!("changed {}", changed.join(", "));
            record(&core, peer, &caller, "PATCH", file, Some(&device.mac), what).await;
            axum::Json(masked(device)).into_response()
        }
        Err(p) => p.into_response(),
    }
}

/// Removes a device (operator or admin).
#[utoipa::path(
    delete,
    path = "/devices/{mac}",
    operation_id = "deleteDevice",
    tag = "devices",
    params(("mac" = String, Path, description = "The MAC")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn delete(
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
            let file = format!("/api/v1/devices/{mac}");
            record(&core, peer, &caller, "DELETE", file, Some(&mac), "removed the device".into()).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => no_device(&mac).into_response(),
        Err(e) => store_failed(e).into_response(),
    }
}

/// One parameter as it applies to a device, and where it comes from.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Effective {
    /// The element name.
    name: String,
    /// The value that applies (masked for a secret).
    value: String,
    /// Where it comes from: `device` (its own), or the group that sets it (`defaults`, `model:<model>`, its group
    /// or one of that group's ancestors).
    from: String,
    /// The values it overrides, nearest first: what applied before the layer it comes from.
    overrides: Vec<Overridden>,
}

/// A value a nearer layer overrides.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Overridden {
    /// The group that set it.
    from: String,
    /// Its value there (masked for a secret).
    value: String,
}

/// A device's parameters after inheritance.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Parameters {
    /// The device.
    mac: Mac,
    /// The layers, in the order they apply (a later one wins): `defaults`, `model:<model>`, the group's ancestors
    /// from the root, its group, `device`.
    layers: Vec<String>,
    /// Every parameter that applies, by name.
    parameters: Vec<Effective>,
}

/// The parameters that apply to a device after inheritance, each with the layer it comes from.
#[utoipa::path(
    get,
    path = "/devices/{mac}/parameters",
    operation_id = "getDeviceParameters",
    tag = "devices",
    params(("mac" = String, Path, description = "The MAC")),
    responses(
        (status = 200, description = "Its effective parameters", body = Parameters),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Its groups do not resolve (a missing parent, a loop)", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn parameters(State(core): State<Arc<Core>>, Path(mac): Path<String>) -> Response {
    let found = async {
        let device = existing(&core, &path_mac(&mac)?).await?;
        effective(&core, device).await.map_err(|e| match e {
            e @ (StoreError::NoGroup(_) | StoreError::GroupCycle(_)) => {
                Problem::new(StatusCode::CONFLICT, format!("the device's groups do not resolve: {e}"))
            }
            e => store_failed(e),
        })
    };
    match found.await {
        Ok(p) => axum::Json(p).into_response(),
        Err(p) => p.into_response(),
    }
}

/// `device`'s parameters after inheritance, each with the layer it comes from and what it overrides; secrets masked.
pub(crate) async fn effective(core: &Core, device: Device) -> Result<Parameters, StoreError> {
    let mut layers = parameter_layers(core.store(), device.group.as_deref(), &device.model).await?;
    layers.push(("device".to_string(), device.params));
    let mut by_name: BTreeMap<String, Effective> = BTreeMap::new();
    for (layer, params) in &layers {
        let mut params = params.clone();
        mask(&mut params);
        for (name, value) in params {
            let new = Effective { name: name.clone(), value, from: layer.clone(), overrides: Vec::new() };
            if let Some(old) = by_name.insert(name.clone(), new)
                && let Some(e) = by_name.get_mut(&name)
            {
                e.overrides.push(Overridden { from: old.from, value: old.value });
                e.overrides.extend(old.overrides);
            }
        }
    }
    Ok(Parameters {
        mac: device.mac,
        layers: layers.into_iter().map(|(l, _)| l).collect(),
        parameters: by_name.into_values().collect(),
    })
}

/// The query of `GET /api/v1/devices/{mac}/profile`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProfileQuery {
    /// Which file: `own` (default: its profile, or `SEP<MAC>.cnf.xml` for an enterprise phone), `bootstrap` or
    /// `xmldefault`.
    file: Option<String>,
    /// `true` shows the secrets (keys, the random path, passwords): admin tokens only, and audited.
    reveal: Option<bool>,
}

/// What the server would serve a device.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Rendered {
    /// The device.
    mac: Mac,
    /// Which file (`own`, `bootstrap`, `xmldefault`).
    file: String,
    /// Where and how it is served, in words.
    served_as: String,
    /// Whether the secrets are shown.
    revealed: bool,
    /// The file, before gzip or encryption; secrets masked as `********` unless revealed.
    text: String,
}

/// What the server would serve a device, rendered as a request would render it (nothing is recorded or cached).
#[utoipa::path(
    get,
    path = "/devices/{mac}/profile",
    operation_id = "getDeviceProfile",
    tag = "devices",
    params(("mac" = String, Path, description = "The MAC"), ProfileQuery),
    responses(
        (status = 200, description = "The rendered file", body = Rendered),
        (status = 400, description = "A bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`reveal` without an admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The templates failed to render it", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn profile(
    State(core): State<Arc<Core>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(mac): Path<String>,
    query: Rejected<Query<ProfileQuery>>,
) -> Response {
    let rendered = async {
        let Ok(Query(q)) = query else {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "the query string could not be read (reveal: true|false)",
            ));
        };
        let mac = path_mac(&mac)?;
        let file = q.file.unwrap_or_else(|| "own".into());
        let rendition = match file.as_str() {
            "own" => Rendition::Own,
            "bootstrap" => Rendition::Bootstrap,
            "xmldefault" => Rendition::XmlDefault,
            _ => return Err(Problem::parameter("file", "file: own, bootstrap or xmldefault")),
        };
        let reveal = q.reveal.unwrap_or(false);
        if reveal {
            require(&caller, Role::Admin)?;
        }
        let preview = core.preview(&mac, rendition).await.map_err(|e| match e {
            ProvisionError::UnknownDevice(m) => no_device(&m),
            ProvisionError::Unavailable(e) | ProvisionError::Inventory(e) => store_failed(e),
            e => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, format!("rendering {file} for {mac}: {e}")),
        })?;
        let text = if reveal { preview.text } else { mask_secrets(&preview.text, &preview.secret_names) };
        Ok(Rendered { mac, file, served_as: preview.served_as, revealed: reveal, text })
    };
    match rendered.await {
        Ok(r) => {
            if r.revealed {
                let file = format!("/api/v1/devices/{}/profile", r.mac);
                let what = format!("revealed the secrets of its {} file", r.file);
                record(&core, peer, &caller, "GET", file, Some(&r.mac), what).await;
            }
            axum::Json(r).into_response()
        }
        Err(p) => p.into_response(),
    }
}

/// A device's life on the network.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// The device.
    mac: Mac,
    /// Whether its next HTTPS fetch gets its secrets (`identity = "mac"` onboarding).
    armed: bool,
    /// Unix milliseconds of its last request or log line.
    last_seen_ms: Option<i64>,
    /// Its last address.
    last_address: Option<String>,
    /// Its last User-Agent.
    user_agent: Option<String>,
    /// The firmware it last reported.
    firmware: Option<String>,
    /// The last file served to it (random paths masked).
    served: Option<Served>,
    /// Unix milliseconds of its last report.
    report_ms: Option<i64>,
    /// Recent events, newest first.
    events: Vec<Event>,
    /// Parameters whose reported value differs from what was served.
    drift: Vec<Drift>,
}

/// The last file served to a device.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Served {
    /// The file as requested (random paths masked).
    file: String,
    /// `tftp`, `http` or `https`.
    protocol: String,
    /// SHA-256 of what was sent, hex.
    sha256: String,
    /// Unix milliseconds.
    at_ms: i64,
}

/// A device event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Event {
    /// Unix milliseconds.
    at_ms: i64,
    /// `syslog`, `error`, `report`, `refused`, `admin`.
    kind: String,
    /// The line.
    text: String,
}

/// A parameter whose reported value differs from the one served.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Drift {
    /// The element name.
    name: String,
    /// What was served (masked for a secret).
    served: String,
    /// What the phone reported (`null`: absent from its report; masked for a secret).
    reported: Option<String>,
}

impl From<crate::journal::Drift> for Drift {
    fn from(d: crate::journal::Drift) -> Drift {
        let secret = |v: String| if crate::inventory::at_rest::is_password(&d.name) { "********".into() } else { v };
        Drift { served: secret(d.served), reported: d.reported.map(secret), name: d.name }
    }
}

/// The query of `GET /api/v1/devices/{mac}/status`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// How many recent events, 1 to 1000 (default 20).
    events: Option<String>,
}

/// A device's status: last seen, firmware, the last file served, recent events and drift.
#[utoipa::path(
    get,
    path = "/devices/{mac}/status",
    operation_id = "getDeviceStatus",
    tag = "devices",
    params(("mac" = String, Path, description = "The MAC"), StatusQuery),
    responses(
        (status = 200, description = "Its status", body = Status),
        (status = 400, description = "A bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn status(
    State(core): State<Arc<Core>>,
    Path(mac): Path<String>,
    query: Rejected<Query<StatusQuery>>,
) -> Response {
    let found = async {
        let Ok(Query(q)) = query else {
            return Err(Problem::new(StatusCode::BAD_REQUEST, "the query string could not be read"));
        };
        let limit = match q.events.as_deref().map(str::parse::<i64>) {
            None => 20,
            Some(Ok(n)) if (1..=1000).contains(&n) => n,
            Some(_) => return Err(Problem::parameter("events", "events must be a whole number from 1 to 1000")),
        };
        let device = existing(&core, &path_mac(&mac)?).await?;
        let s = crate::journal::status(core.store(), &device.mac, limit).await.map_err(store_failed)?.masked();
        let armed = core.store().is_armed(&device.mac).await.map_err(store_failed)?;
        Ok(Status {
            mac: device.mac,
            armed,
            last_seen_ms: s.last_seen_ms,
            last_address: s.last_address,
            user_agent: s.user_agent,
            firmware: s.firmware,
            served: s.served.map(|(file, protocol, sha256, at_ms)| Served { file, protocol, sha256, at_ms }),
            report_ms: s.report_ms,
            events: s.events.into_iter().map(|e| Event { at_ms: e.at_ms, kind: e.kind, text: e.text }).collect(),
            drift: s.drift.into_iter().map(Drift::from).collect(),
        })
    };
    match found.await {
        Ok(s) => axum::Json(s).into_response(),
        Err(p) => p.into_response(),
    }
}

/// The answer to a key rotation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Rotated {
    /// The device.
    mac: Mac,
    /// What happens next, in words.
    detail: String,
}

/// Gives a device new secrets (AES key, RFC 8188 IKM, random path); the old ones stay valid until the phone has
/// fetched the new ones at its next resync (admin).
#[utoipa::path(
    post,
    path = "/devices/{mac}/rotate-keys",
    operation_id = "rotateDeviceKeys",
    tag = "devices",
    params(("mac" = String, Path, description = "The MAC")),
    responses(
        (status = 200, description = "Rotated", body = Rotated),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn rotate_keys(
    State(core): State<Arc<Core>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(mac): Path<String>,
) -> Response {
    let rotated = async {
        require(&caller, Role::Admin)?;
        let mut device = existing(&core, &path_mac(&mac)?).await?;
        device.secrets = device.secrets.rotated().map_err(store_failed)?;
        core.store().update_device(&device).await.map_err(store_failed)?;
        Ok::<_, Problem>(device.mac)
    };
    match rotated.await {
        Ok(mac) => {
            let file = format!("/api/v1/devices/{mac}/rotate-keys");
            record(&core, peer, &caller, "POST", file, Some(&mac), "rotated its keys".into()).await;
            let detail = "new secrets; the old ones stay valid until the phone fetches its profile at its next resync";
            axum::Json(Rotated { mac, detail: detail.into() }).into_response()
        }
        Err(p) => p.into_response(),
    }
}

/// A bad row of a CSV import.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RowProblem {
    /// The line in the file (1-based; 1 is the header).
    line: u64,
    /// What is wrong, naming the column.
    message: String,
}

/// The query of `POST /api/v1/devices/import`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// `true`: only say what the import would do (a read token may ask).
    dry_run: Option<bool>,
    /// `true`: a row for an existing device updates it instead of being an error.
    update: Option<bool>,
    /// `true`: take parameter names the dictionary does not know.
    allow_unknown: Option<bool>,
}

/// What an import did, or would do.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Imported {
    /// `false` for a dry run.
    applied: bool,
    /// New devices.
    added: usize,
    /// Existing devices changed.
    changed: usize,
    /// Existing devices left as they are.
    unchanged: usize,
    /// One line per change: `+ MAC (model)` for a new device, `~ MAC field: old -> new` (secrets masked).
    diff: Vec<String>,
}

/// Imports devices from CSV (`mac,model,serial,description,group,<parameters>...`), all or nothing: one bad row
/// and nothing changes, with every bad row named in `rows`. With `dry_run`, says what would change.
#[utoipa::path(
    post,
    path = "/devices/import",
    operation_id = "importDevices",
    tag = "devices",
    params(ImportQuery),
    request_body(content = String, content_type = "text/csv", description = "The CSV, with a header row"),
    responses(
        (status = 200, description = "Imported, or what would be", body = Imported),
        (status = 400, description = "A bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read token, without dry_run", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad rows, each in `rows`; nothing was imported", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn import(
    State(core): State<Arc<Core>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(caller): axum::Extension<Caller>,
    query: Rejected<Query<ImportQuery>>,
    body: axum::body::Bytes,
) -> Response {
    let imported = async {
        let Ok(Query(q)) = query else {
            return Err(Problem::new(StatusCode::BAD_REQUEST, "the query string could not be read (true|false)"));
        };
        let dry_run = q.dry_run.unwrap_or(false);
        if !dry_run {
            require(&caller, Role::Operator)?;
        }
        let options =
            ImportOptions { update: q.update.unwrap_or(false), allow_unknown: q.allow_unknown.unwrap_or(false) };
        let import = match read_devices(core.store(), &body, options).await {
            Ok(i) => i,
            Err(ImportError::Rows(rows)) => {
                let n = rows.len();
                return Err(Problem {
                    parameter: Some("body".into()),
                    rows: rows.into_iter().map(|r| RowProblem { line: r.line, message: r.message }).collect(),
                    ..Problem::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{n} bad row(s); nothing was imported"))
                });
            }
            Err(ImportError::Store(e)) => return Err(store_failed(e)),
            Err(e) => return Err(store_failed(e)),
        };
        if !dry_run {
            import.apply(core.store(), &|_| {}).await.map_err(store_failed)?;
        }
        Ok(Imported {
            applied: !dry_run,
            added: import.add.len(),
            changed: import.update.len(),
            unchanged: import.unchanged,
            diff: import.diff(),
        })
    };
    match imported.await {
        Ok(i) => {
            if i.applied && i.added + i.changed > 0 {
                let what = format!("imported {} new and {} changed device(s)", i.added, i.changed);
                record(&core, peer, &caller, "POST", "/api/v1/devices/import".into(), None, what).await;
            }
            axum::Json(i).into_response()
        }
        Err(p) => p.into_response(),
    }
}
