//! The pages of the web UI: dashboard, device list and page, groups, CSV import, audit trail and live events.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{Ui, Viewer, error_page, now_ms, page};
use crate::front::api::{devices::effective, mask, record};
use crate::inventory::csv::{ImportError, ImportOptions, read_devices};
use crate::inventory::{Device, DeviceFilter, Group, Mac, Role, Store, StoreError};
use crate::journal::{mask_path_tokens, rfc3339};
use crate::provision::preview::{Rendition, mask_secrets};

/// A template context from `key => value` pairs of any serializable values.
macro_rules! ctx {
    ($($key:ident => $value:expr),* $(,)?) => {
        minijinja::context! { $($key => minijinja::Value::from(minijinja::value::Serde(&$value))),* }
    };
}

/// Devices a list page shows.
const PAGE: u32 = 100;
/// A device not seen for this long is stale.
const STALE_MS: i64 = 2 * 86_400_000;

fn unavailable(viewer: &Viewer, e: impl std::fmt::Display) -> Response {
    tracing::error!("web UI: inventory: {e}");
    error_page(StatusCode::SERVICE_UNAVAILABLE, viewer, "The inventory could not be read; try again.")
}

/// One audit line as the pages show it.
fn audit_row(line: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&mask_path_tokens(line)).unwrap_or_default();
    serde_json::json!({
        "time": v["time"], "client": v["client"], "device": v["device"], "protocol": v["protocol"],
        "method": v["method"], "file": v["file"], "status": v["status"], "note": v["note"], "at_ms": v["at_ms"],
    })
}

/// The newest `limit` audit lines, newest first.
async fn audit_rows(ui: &Ui, mac: Option<&Mac>, limit: usize) -> Result<Vec<serde_json::Value>, StoreError> {
    let lines = crate::journal::audit(ui.core.store(), &ui.core.config().data_dir, mac, limit).await?;
    Ok(lines.iter().rev().map(|l| audit_row(l)).collect())
}

pub async fn dashboard(State(ui): State<Arc<Ui>>, axum::Extension(viewer): axum::Extension<Viewer>) -> Response {
    let store = ui.core.store();
    let models = match ui.model_counts().await {
        Ok(m) => m,
        Err(e) => return unavailable(&viewer, e),
    };
    let total: i64 = models.iter().map(|(_, n)| n).sum();
    let states = crate::journal::states(store).await.unwrap_or_default();
    let now = now_ms();
    let mut firmware: HashMap<String, i64> = HashMap::new();
    let (mut seen_day, mut stale) = (0, 0);
    for s in states.values() {
        match s.last_seen_ms {
            Some(t) if now - t < 86_400_000 => seen_day += 1,
            Some(t) if now - t >= STALE_MS => stale += 1,
            _ => {}
        }
        if let Some(f) = &s.firmware {
            *firmware.entry(f.clone()).or_default() += 1;
        }
    }
    let never = (total - states.len() as i64).max(0);
    let mut firmware: Vec<(String, i64)> = firmware.into_iter().collect();
    firmware.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    firmware.truncate(20);
    let recent = audit_rows(&ui, None, 5000).await.unwrap_or_default();
    // Drift among the first 2,000 devices that reported (the API's /drift pages through the whole fleet).
    let (drifting, _) = crate::journal::drifting(store, None, 2000).await.unwrap_or_default();
    let drift: Vec<serde_json::Value> = drifting
        .iter()
        .take(10)
        .map(|(mac, at, d)| {
            let names: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
            serde_json::json!({ "mac": mac, "time": rfc3339(*at), "names": names.join(", ") })
        })
        .collect();
    let failures: Vec<&serde_json::Value> = recent
        .iter()
        .filter(|r| r["status"].as_u64().is_some_and(|s| s >= 400) && r["protocol"] != "admin")
        .take(10)
        .collect();
    // Fetches by phones (not admin changes or syslog) per hour over the last 24 hours.
    let mut hours = [0u32; 24];
    for r in &recent {
        let (Some(at), Some(p)) = (r["at_ms"].as_i64(), r["protocol"].as_str()) else { continue };
        let age = now - at;
        if matches!(p, "http" | "https" | "tftp") && (0..86_400_000).contains(&age) {
            hours[23 - (age / 3_600_000) as usize] += 1;
        }
    }
    let (width, height) = (600u32, 120u32);
    let max = hours.iter().copied().max().unwrap_or(0).max(1);
    let bars: Vec<serde_json::Value> = hours
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let h = n * height / max;
            serde_json::json!({
                "x": i as u32 * 25, "y": height - h, "w": 22, "h": h,
                "title": format!("{} to {} h ago: {n} fetch(es)", 24 - i, 23 - i),
            })
        })
        .collect();
    let label = format!(
        "Fetches per hour over the last 24 hours: {} in all, at most {max} in one hour",
        hours.iter().sum::<u32>()
    );
    let context = ctx! {
        total => total, seen_day => seen_day, stale => stale, never => never, models => models,
        firmware => firmware, failures => failures, scanned => recent.len(), drift => drift,
        drifting => drifting.len(),
        chart => serde_json::json!({ "width": width, "height": height, "bars": bars, "label": label }),
    };
    page(StatusCode::OK, "dashboard.html", &viewer, "dashboard", context)
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    after: String,
}

pub async fn devices(
    State(ui): State<Arc<Ui>>,
    axum::Extension(viewer): axum::Extension<Viewer>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return error_page(StatusCode::BAD_REQUEST, &viewer, "The search could not be read.");
    };
    let store = ui.core.store();
    let after = q.after.parse::<Mac>().ok();
    let filter = DeviceFilter {
        model: Some(q.model.clone()).filter(|m| !m.is_empty()),
        group: Some(q.group.clone()).filter(|g| !g.is_empty()),
        search: Some(q.q.clone()).filter(|s| !s.trim().is_empty()),
    };
    let (found, models, groups) =
        tokio::join!(store.devices_page(after.as_ref(), PAGE, &filter), ui.model_counts(), store.groups());
    let (found, models, groups) = match (found, models, groups) {
        (Ok(f), Ok(m), Ok(g)) => (f, m, g),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return unavailable(&viewer, e),
    };
    let states = match (found.first(), found.last()) {
        (Some(first), Some(last)) => {
            crate::journal::states_between(store, &first.mac, &last.mac).await.unwrap_or_default()
        }
        _ => HashMap::new(),
    };
    let now = now_ms();
    let next = (found.len() == PAGE as usize).then(|| found.last().map(|d| d.mac.to_string())).flatten();
    let rows: Vec<serde_json::Value> = found
        .iter()
        .map(|d| {
            let seen = states.get(&d.mac);
            let last = seen.and_then(|s| s.last_seen_ms);
            serde_json::json!({
                "mac": d.mac, "model": d.model, "group": d.group, "description": d.description,
                "firmware": seen.and_then(|s| s.firmware.clone()),
                "last_seen": last.map(rfc3339),
                "state": match last { None => "new", Some(t) if now - t >= STALE_MS => "stale", Some(_) => "ok" },
            })
        })
        .collect();
    let context = ctx! {
        devices => rows, next => next, q => q.q, model => q.model, group => q.group,
        after => after.map(|m| m.to_string()), models => models,
        groups => groups.into_iter().map(|g| g.name).collect::<Vec<_>>(),
    };
    page(StatusCode::OK, "devices.html", &viewer, "devices", context)
}

#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

/// The fixed message of a `?done=` code (the page never echoes text from the URL).
fn done_notice(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "param" => "Saved.",
        "group" => "Moved.",
        "rotated" => "New keys made. The old ones stay valid until the phone fetches its new profile.",
        "created" => "Group created.",
        "parent" => "Saved.",
        _ => return None,
    })
}

pub async fn device(
    State(ui): State<Arc<Ui>>,
    axum::Extension(viewer): axum::Extension<Viewer>,
    Path(mac): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Response {
    device_page(&ui, &viewer, &mac, false, done_notice(q.done.as_deref()).map(str::to_string), None).await
}

/// The device page, with the profile's secrets shown (`reveal`) or masked.
async fn device_page(
    ui: &Ui,
    viewer: &Viewer,
    mac: &str,
    reveal: bool,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let store = ui.core.store();
    let device = match device_of(ui, viewer, mac).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let mac = device.mac.clone();
    let rotating = device.secrets.previous.is_some();
    let parameters = effective(&ui.core, device.clone()).await;
    let (layers, parameters, params_error) = match parameters {
        Ok(p) => {
            let v = serde_json::to_value(&p).unwrap_or_default();
            (v["layers"].clone(), v["parameters"].clone(), None)
        }
        Err(e) => (serde_json::json!([]), serde_json::json!([]), Some(format!("Its groups do not resolve: {e}"))),
    };
    let status = crate::journal::status(store, &mac, 20).await.unwrap_or_default().masked();
    let status = serde_json::json!({
        "last_seen": status.last_seen_ms.map(rfc3339),
        "last_address": status.last_address,
        "firmware": status.firmware,
        "served": status.served.map(|(file, protocol, _, at)| format!("{file} over {protocol} at {}", rfc3339(at))),
        "report_ms": status.report_ms,
        "events": status.events.iter().map(|e| serde_json::json!({
            "kind": e.kind, "time": rfc3339(e.at_ms), "text": e.text
        })).collect::<Vec<_>>(),
        "drift": status.drift.into_iter().map(crate::front::api::devices::Drift::from).collect::<Vec<_>>(),
    });
    let audit = audit_rows(ui, Some(&mac), 20).await.unwrap_or_default();
    let (profile, served_as) = match ui.core.preview(&mac, Rendition::Own).await {
        Ok(p) if reveal => (p.text, p.served_as),
        Ok(p) => (mask_secrets(&p.text, &p.secret_names), p.served_as),
        Err(e) => (String::new(), format!("It cannot be rendered: {e}")),
    };
    let groups: Vec<String> = store.groups().await.unwrap_or_default().into_iter().map(|g| g.name).collect();
    let mut shown = device;
    mask(&mut shown.params);
    let status_code = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let context = ctx! {
        device => shown, layers => layers, parameters => parameters, status => status, audit => audit,
        profile => profile, served_as => served_as, groups => groups, rotating => rotating, revealed => reveal,
        can_write => viewer.role >= Role::Operator, is_admin => viewer.role == Role::Admin, notice => notice,
        error => error.or(params_error),
    };
    page(status_code, "device.html", viewer, "devices", context)
}

#[derive(Deserialize)]
pub struct ParamForm {
    name: String,
    #[serde(default)]
    value: String,
    remove: Option<String>,
}

/// The element name of a name typed in a form (web-UI labels accepted), with its value checked.
fn checked_param(f: &ParamForm) -> Result<(String, Option<String>), String> {
    let name = f.name.trim();
    if f.remove.is_some() {
        return Ok((provisor_profile::dictionary::element_name(name), None));
    }
    crate::inventory::parameter::parameter(&format!("{name}={}", f.value), false)
        .map(|(n, v)| (n, Some(v)))
        .map_err(|e| e.0)
}

/// The device a path names, or the page to answer (a bad MAC, no such device).
async fn device_of(ui: &Ui, viewer: &Viewer, mac: &str) -> Result<Device, Response> {
    let Ok(m) = mac.parse::<Mac>() else {
        return Err(error_page(StatusCode::BAD_REQUEST, viewer, "That is not a MAC."));
    };
    match ui.core.store().device(&m).await {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err(error_page(StatusCode::NOT_FOUND, viewer, format!("No device {m}."))),
        Err(e) => Err(unavailable(viewer, e)),
    }
}

/// The group a path names, or the page to answer.
async fn group_of(ui: &Ui, viewer: &Viewer, name: &str) -> Result<Group, Response> {
    match ui.core.store().group(name).await {
        Ok(Some(g)) => Ok(g),
        Ok(None) => Err(error_page(StatusCode::NOT_FOUND, viewer, format!("No group {name:?}."))),
        Err(e) => Err(unavailable(viewer, e)),
    }
}

fn forbidden(viewer: &Viewer, needed: Role) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        viewer,
        format!("{} is {}; this needs {} or above.", viewer.principal, viewer.role.as_str(), needed.as_str()),
    )
}

pub async fn device_param(
    State(ui): State<Arc<Ui>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(viewer): axum::Extension<Viewer>,
    Path(mac): Path<String>,
    Form(f): Form<ParamForm>,
) -> Response {
    if viewer.role < Role::Operator {
        return forbidden(&viewer, Role::Operator);
    }
    let (name, value) = match checked_param(&f) {
        Ok(p) => p,
        Err(e) => return device_page(&ui, &viewer, &mac, false, None, Some(e)).await,
    };
    let mut d = match device_of(&ui, &viewer, &mac).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let m = d.mac.clone();
    match &value {
        Some(v) => d.params.insert(name.clone(), v.clone()),
        None => d.params.remove(&name),
    };
    if let Err(e) = ui.core.store().update_device(&d).await {
        return unavailable(&viewer, e);
    }
    let what = format!("{} params.{name}", if value.is_some() { "set" } else { "removed" });
    record(&ui.core, peer, &viewer.caller(), "POST", format!("/ui/devices/{m}"), Some(&m), what).await;
    Redirect::to(&format!("/ui/devices/{m}?done=param")).into_response()
}

#[derive(Deserialize)]
pub struct GroupChoice {
    #[serde(default)]
    group: String,
}

pub async fn device_group(
    State(ui): State<Arc<Ui>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(viewer): axum::Extension<Viewer>,
    Path(mac): Path<String>,
    Form(f): Form<GroupChoice>,
) -> Response {
    if viewer.role < Role::Operator {
        return forbidden(&viewer, Role::Operator);
    }
    let mut d = match device_of(&ui, &viewer, &mac).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let m = d.mac.clone();
    d.group = Some(f.group.trim().to_string()).filter(|g| !g.is_empty());
    match ui.core.store().update_device(&d).await {
        Ok(()) => {}
        Err(StoreError::NoGroup(g)) => {
            return device_page(&ui, &viewer, &mac, false, None, Some(format!("No group {g:?}."))).await;
        }
        Err(e) => return unavailable(&viewer, e),
    }
    let what = format!("moved to group {:?}", d.group.as_deref().unwrap_or(""));
    record(&ui.core, peer, &viewer.caller(), "POST", format!("/ui/devices/{m}"), Some(&m), what).await;
    Redirect::to(&format!("/ui/devices/{m}?done=group")).into_response()
}

pub async fn rotate_keys(
    State(ui): State<Arc<Ui>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(viewer): axum::Extension<Viewer>,
    Path(mac): Path<String>,
) -> Response {
    if viewer.role < Role::Admin {
        return forbidden(&viewer, Role::Admin);
    }
    let mut d = match device_of(&ui, &viewer, &mac).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let m = d.mac.clone();
    d.secrets = match d.secrets.rotated() {
        Ok(s) => s,
        Err(e) => return unavailable(&viewer, e),
    };
    if let Err(e) = ui.core.store().update_device(&d).await {
        return unavailable(&viewer, e);
    }
    record(&ui.core, peer, &viewer.caller(), "POST", format!("/ui/devices/{m}"), Some(&m), "rotated its keys".into())
        .await;
    Redirect::to(&format!("/ui/devices/{m}?done=rotated")).into_response()
}

pub async fn reveal(
    State(ui): State<Arc<Ui>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(viewer): axum::Extension<Viewer>,
    Path(mac): Path<String>,
) -> Response {
    if viewer.role < Role::Admin {
        return forbidden(&viewer, Role::Admin);
    }
    let Ok(m) = mac.parse::<Mac>() else { return error_page(StatusCode::BAD_REQUEST, &viewer, "That is not a MAC.") };
    let what = "revealed the secrets of its own file".to_string();
    record(&ui.core, peer, &viewer.caller(), "POST", format!("/ui/devices/{m}"), Some(&m), what).await;
    device_page(&ui, &viewer, &mac, true, Some("Secrets shown; this was recorded in the audit trail.".into()), None)
        .await
}

pub async fn groups(State(ui): State<Arc<Ui>>, axum::Extension(viewer): axum::Extension<Viewer>) -> Response {
    groups_page(&ui, &viewer, None).await
}

async fn groups_page(ui: &Ui, viewer: &Viewer, error: Option<String>) -> Response {
    let groups = match ui.core.store().groups().await {
        Ok(g) => g,
        Err(e) => return unavailable(viewer, e),
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let context = ctx! { groups => groups, can_write => viewer.role >= Role::Operator, error => error };
    page(status, "groups.html", viewer, "groups", context)
}

#[derive(Deserialize)]
pub struct NewGroup {
    name: String,
    #[serde(default)]
    parent: String,
}

pub async fn create_group(
    State(ui): State<Arc<Ui>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(viewer): axum::Extension<Viewer>,
    Form(f): Form<NewGroup>,
) -> Response {
    if viewer.role < Role::Operator {
        return forbidden(&viewer, Role::Operator);
    }
    let name = f.name.trim().to_string();
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) || name.contains('/') {
        return groups_page(
            &ui,
            &viewer,
            Some("A group's name: 1 to 200 characters, no '/' or control characters.".into()),
        )
        .await;
    }
    match ui.core.store().group(&name).await {
        Ok(Some(_)) => return groups_page(&ui, &viewer, Some(format!("Group {name:?} exists."))).await,
        Ok(None) => {}
        Err(e) => return unavailable(&viewer, e),
    }
    let group = Group {
        name: name.clone(),
        parent: Some(f.parent.trim().to_string()).filter(|p| !p.is_empty()),
        description: String::new(),
        params: BTreeMap::new(),
    };
    if let Err(e) = ui.core.store().put_group(&group).await {
        return groups_page(&ui, &viewer, Some(e.to_string())).await;
    }
    record(&ui.core, peer, &viewer.caller(), "POST", "/ui/groups".into(), None, format!("created group {name:?}"))
        .await;
    Redirect::to(&format!("/ui/groups/{}?done=created", super::percent_encode(&name))).into_response()
}

pub async fn group(
    State(ui): State<Arc<Ui>>,
    axum::Extension(viewer): axum::Extension<Viewer>,
    Path(name): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Response {
    group_page(&ui, &viewer, &name, done_notice(q.done.as_deref()).map(str::to_string), None).await
}

async fn group_page(ui: &Ui, viewer: &Viewer, name: &str, notice: Option<String>, error: Option<String>) -> Response {
    let store = ui.core.store();
    let group = match group_of(ui, viewer, name).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    // Its parent chain, nearest first, and each inherited parameter from the nearest group that sets it.
    let chain = match crate::inventory::ancestors(store, &group).await {
        Ok(c) => c,
        Err(e) => return unavailable(viewer, e),
    };
    let mut inherited: BTreeMap<String, (String, String)> = BTreeMap::new();
    for g in &chain {
        for (n, v) in &g.params {
            inherited.entry(n.clone()).or_insert((g.name.clone(), v.clone()));
        }
    }
    let ancestors: Vec<String> = chain.into_iter().map(|g| g.name).collect();
    let mut params: Vec<serde_json::Value> = Vec::new();
    let mut own = group.params.clone();
    mask(&mut own);
    for (n, (from, v)) in &inherited {
        if !own.contains_key(n) {
            let v = if crate::inventory::at_rest::is_password(n) { "********" } else { v.as_str() };
            params.push(serde_json::json!({ "name": n, "value": v, "from": from, "own": false }));
        }
    }
    for (n, v) in &own {
        params.push(serde_json::json!({ "name": n, "value": v, "from": group.name, "own": true }));
    }
    params.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let all_groups: Vec<String> = store.groups().await.unwrap_or_default().into_iter().map(|g| g.name).collect();
    let mut shown = group;
    mask(&mut shown.params);
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let context = ctx! {
        group => shown, ancestors => ancestors, params => params, all_groups => all_groups,
        can_write => viewer.role >= Role::Operator, notice => notice, error => error,
    };
    page(status, "group.html", viewer, "groups", context)
}

pub async fn group_param(
    State(ui): State<Arc<Ui>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(viewer): axum::Extension<Viewer>,
    Path(name): Path<String>,
    Form(f): Form<ParamForm>,
) -> Response {
    if viewer.role < Role::Operator {
        return forbidden(&viewer, Role::Operator);
    }
    let (param, value) = match checked_param(&f) {
        Ok(p) => p,
        Err(e) => return group_page(&ui, &viewer, &name, None, Some(e)).await,
    };
    let mut g = match group_of(&ui, &viewer, &name).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    match &value {
        Some(v) => g.params.insert(param.clone(), v.clone()),
        None => g.params.remove(&param),
    };
    if let Err(e) = ui.core.store().put_group(&g).await {
        return group_page(&ui, &viewer, &name, None, Some(e.to_string())).await;
    }
    let what = format!("{} params.{param} of group {name:?}", if value.is_some() { "set" } else { "removed" });
    record(&ui.core, peer, &viewer.caller(), "POST", format!("/ui/groups/{name}"), None, what).await;
    Redirect::to(&format!("/ui/groups/{}?done=param", super::percent_encode(&name))).into_response()
}

#[derive(Deserialize)]
pub struct ParentForm {
    #[serde(default)]
    parent: String,
}

pub async fn group_parent(
    State(ui): State<Arc<Ui>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(viewer): axum::Extension<Viewer>,
    Path(name): Path<String>,
    Form(f): Form<ParentForm>,
) -> Response {
    if viewer.role < Role::Operator {
        return forbidden(&viewer, Role::Operator);
    }
    let mut g = match group_of(&ui, &viewer, &name).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    g.parent = Some(f.parent.trim().to_string()).filter(|p| !p.is_empty());
    match ui.core.store().put_group(&g).await {
        Ok(()) => {}
        Err(e @ (StoreError::GroupCycle(_) | StoreError::NoGroup(_))) => {
            let why = format!("Not changed: {e} (a group cannot inherit from itself through its parents).");
            return group_page(&ui, &viewer, &name, None, Some(why)).await;
        }
        Err(e) => return unavailable(&viewer, e),
    }
    let what = format!("group {name:?} inherits from {:?}", g.parent.as_deref().unwrap_or(""));
    record(&ui.core, peer, &viewer.caller(), "POST", format!("/ui/groups/{name}"), None, what).await;
    Redirect::to(&format!("/ui/groups/{}?done=parent", super::percent_encode(&name))).into_response()
}

pub async fn import_form(axum::Extension(viewer): axum::Extension<Viewer>) -> Response {
    let context = ctx! { can_write => viewer.role >= Role::Operator, csv => "" };
    page(StatusCode::OK, "import.html", &viewer, "import", context)
}

#[derive(Deserialize)]
pub struct ImportForm {
    #[serde(default)]
    csv: String,
    update: Option<String>,
    allow_unknown: Option<String>,
    #[serde(default)]
    action: String,
}

/// Lines of a CSV shown with their problems: all of them for a file of up to 2,000 lines, else the bad ones.
fn rows_with_problems(csv: &str, problems: &[crate::inventory::csv::RowError]) -> Vec<serde_json::Value> {
    let mut by_line: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for p in problems {
        by_line.entry(p.line).or_default().push(&p.message);
    }
    let lines: Vec<&str> = csv.lines().collect();
    let all = lines.len() <= 2000;
    lines
        .iter()
        .enumerate()
        .map(|(i, text)| (i as u64 + 1, text))
        .filter(|(n, _)| all || by_line.contains_key(n))
        .map(|(n, text)| {
            serde_json::json!({ "line": n, "text": text, "problem": by_line.get(&n).map(|m| m.join("; ")) })
        })
        .collect()
}

pub async fn import(
    State(ui): State<Arc<Ui>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(viewer): axum::Extension<Viewer>,
    Form(f): Form<ImportForm>,
) -> Response {
    let apply = f.action == "apply";
    if apply && viewer.role < Role::Operator {
        return forbidden(&viewer, Role::Operator);
    }
    let options = ImportOptions { update: f.update.is_some(), allow_unknown: f.allow_unknown.is_some() };
    let can_write = viewer.role >= Role::Operator;
    let (update, allow_unknown) = (options.update, options.allow_unknown);
    let import = match read_devices(ui.core.store(), f.csv.as_bytes(), options).await {
        Ok(i) => i,
        Err(ImportError::Rows(rows)) => {
            let error = format!("{} bad row(s); nothing was imported. Each is marked below.", rows.len());
            let context = ctx! {
                rows => rows_with_problems(&f.csv, &rows), error => error, can_write => can_write, csv => f.csv,
                update => update, allow_unknown => allow_unknown,
            };
            return page(StatusCode::UNPROCESSABLE_ENTITY, "import.html", &viewer, "import", context);
        }
        Err(e) => return unavailable(&viewer, e),
    };
    let summary =
        format!("{} new, {} changed, {} unchanged device(s)", import.add.len(), import.update.len(), import.unchanged);
    if !apply {
        let mut diff = import.diff();
        let more = diff.len().saturating_sub(500);
        diff.truncate(500);
        if more > 0 {
            diff.push(format!("... and {more} more"));
        }
        let context = ctx! {
            diff => diff, summary => format!("Would make {summary}."), can_write => can_write, csv => f.csv,
            update => update, allow_unknown => allow_unknown,
        };
        return page(StatusCode::OK, "import.html", &viewer, "import", context);
    }
    if let Err(e) = import.apply(ui.core.store(), &|_| {}).await {
        return unavailable(&viewer, e);
    }
    let what = format!("imported {} new and {} changed device(s)", import.add.len(), import.update.len());
    record(&ui.core, peer, &viewer.caller(), "POST", "/ui/import".into(), None, what).await;
    let context = ctx! { notice => format!("Imported: {summary}."), can_write => can_write, csv => "" };
    page(StatusCode::OK, "import.html", &viewer, "import", context)
}

#[derive(Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    device: String,
}

pub async fn audit(
    State(ui): State<Arc<Ui>>,
    axum::Extension(viewer): axum::Extension<Viewer>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let device = match q.device.trim() {
        "" => None,
        d => match d.parse::<Mac>() {
            Ok(m) => Some(m),
            Err(e) => return error_page(StatusCode::BAD_REQUEST, &viewer, format!("Device: {e}")),
        },
    };
    let lines = match audit_rows(&ui, device.as_ref(), 200).await {
        Ok(l) => l,
        Err(e) => return unavailable(&viewer, e),
    };
    let context = ctx! { lines => lines, device => q.device };
    page(StatusCode::OK, "audit.html", &viewer, "audit", context)
}

pub async fn events(axum::Extension(viewer): axum::Extension<Viewer>) -> Response {
    page(StatusCode::OK, "events.html", &viewer, "events", minijinja::context! {})
}

/// Server-sent events: each audit line of this node as it is written.
pub async fn stream(State(ui): State<Arc<Ui>>) -> Response {
    use tokio_stream::StreamExt as _;
    let lines = tokio_stream::wrappers::BroadcastStream::new(ui.core.journal().subscribe()).filter_map(|line| {
        line.ok().map(|l| Ok::<_, std::convert::Infallible>(axum::response::sse::Event::default().data(l.as_ref())))
    });
    axum::response::sse::Sse::new(lines).keep_alive(axum::response::sse::KeepAlive::default()).into_response()
}
