//! Fleet-wide reads: `GET /api/v1/events` (device events, newest first), `GET /api/v1/drift` (devices whose last report differs from what they were served) and
//! `GET /api/v1/firmware` (the target load per model, the files served, and the loads phones report).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::devices::Drift;
use super::{Problem, store_failed};
use crate::inventory::Mac;
use crate::serve::Core;

/// The query of `GET /api/v1/drift`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DriftQuery {
    /// The cursor: scan devices with a MAC after this one (the `next` of the answer before).
    after: Option<String>,
    /// How many devices that reported to scan, 1 to 10000 (default 1000).
    scan: Option<String>,
}

/// One device whose last report drifts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Drifting {
    /// The device.
    mac: Mac,
    /// Unix milliseconds of its last report.
    report_ms: i64,
    /// The parameters that differ (secrets as `(secret)`).
    drift: Vec<Drift>,
}

/// A scan for drift.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DriftPage {
    /// The scanned devices that drift, by MAC.
    devices: Vec<Drifting>,
    /// The `after` of the next scan; `null` when this scan reached the last device that reported.
    next: Option<Mac>,
}

/// Devices whose last report differs from what they were served: a scan of up to `scan` devices that reported, by
/// MAC (follow `next` for the rest of the fleet).
#[utoipa::path(
    get,
    path = "/drift",
    operation_id = "listDrift",
    tag = "fleet",
    params(DriftQuery),
    responses(
        (status = 200, description = "The drifting devices of this scan", body = DriftPage),
        (status = 400, description = "A bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn drift(
    State(core): State<Arc<Core>>,
    query: Result<Query<DriftQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let found = async {
        let Ok(Query(q)) = query else {
            return Err(Problem::new(StatusCode::BAD_REQUEST, "the query string could not be read"));
        };
        let after = match q.after.as_deref().filter(|a| !a.is_empty()).map(str::parse::<Mac>) {
            None => None,
            Some(Ok(m)) => Some(m),
            Some(Err(e)) => return Err(Problem::parameter("after", format!("after: {e}"))),
        };
        let scan = match q.scan.as_deref().map(str::parse::<i64>) {
            None => 1000,
            Some(Ok(n)) if (1..=10_000).contains(&n) => n,
            Some(_) => return Err(Problem::parameter("scan", "scan must be a whole number from 1 to 10000")),
        };
        let (found, next) = crate::journal::drifting(core.store(), after.as_ref(), scan).await.map_err(store_failed)?;
        let devices = found
            .into_iter()
            .map(|(mac, report_ms, drift)| Drifting {
                mac,
                report_ms,
                drift: drift.into_iter().map(Drift::from).collect(),
            })
            .collect();
        Ok(DriftPage { devices, next })
    };
    match found.await {
        Ok(p) => axum::Json(p).into_response(),
        Err(p) => p.into_response(),
    }
}

/// A load and how many phones last reported it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Load {
    /// The firmware version as the phone reported it (User-Agent or report).
    firmware: String,
    /// How many phones.
    devices: u64,
}

/// Firmware: what is targeted and served, and what runs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Firmware {
    /// The target load per model (`[firmware] targets`): phones of that model not running it get an
    /// `Upgrade_Rule` for it.
    targets: BTreeMap<String, String>,
    /// The files served under `/firmware/` (`[firmware] dir`), by name.
    files: Vec<String>,
    /// Targets that name a file the directory does not hold (phones would fail to upgrade).
    missing: Vec<String>,
    /// The loads phones last reported, most common first.
    loads: Vec<Load>,
}

/// Firmware targets per model, the files served, and the loads the fleet runs.
#[utoipa::path(
    get,
    path = "/firmware",
    operation_id = "getFirmware",
    tag = "fleet",
    responses(
        (status = 200, description = "Targets, files and loads", body = Firmware),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn firmware(State(core): State<Arc<Core>>) -> Response {
    let config = &core.config().firmware;
    let mut files: Vec<String> = match &config.dir {
        Some(dir) => std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    files.sort();
    let missing = config.targets.values().filter(|t| !files.contains(t)).cloned().collect();
    let states = match crate::journal::states(core.store()).await {
        Ok(s) => s,
        Err(e) => return store_failed(e).into_response(),
    };
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for firmware in states.into_values().filter_map(|s| s.firmware) {
        *counts.entry(firmware).or_default() += 1;
    }
    let mut loads: Vec<Load> = counts.into_iter().map(|(firmware, devices)| Load { firmware, devices }).collect();
    loads.sort_by(|a, b| b.devices.cmp(&a.devices).then_with(|| a.firmware.cmp(&b.firmware)));
    axum::Json(Firmware { targets: config.targets.clone(), files, missing, loads }).into_response()
}

/// The query of `GET /api/v1/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events of this kind: `syslog`, `error`, `report`, `refused`, `admin`.
    kind: Option<String>,
    /// The cursor: events older than this one (the `next` of the page before).
    before: Option<String>,
    /// How many, 1 to 1000 (default 100).
    limit: Option<String>,
}

/// A device event of the fleet.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FleetEvent {
    /// Its id (a cursor).
    id: i64,
    /// The device.
    mac: Mac,
    /// Unix milliseconds.
    at_ms: i64,
    /// `syslog`, `error`, `report`, `refused`, `admin`.
    kind: String,
    /// The line (random profile paths masked).
    text: String,
}

/// A page of events, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    /// The events.
    events: Vec<FleetEvent>,
    /// The `before` of the next (older) page; `null` after the oldest.
    next: Option<i64>,
}

/// The fleet's device events (syslog lines, errors, reports, refusals, admin changes), newest first.
#[utoipa::path(
    get,
    path = "/events",
    operation_id = "listEvents",
    tag = "fleet",
    params(EventsQuery),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 400, description = "A bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn events(
    State(core): State<Arc<Core>>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let found = async {
        let Ok(Query(q)) = query else {
            return Err(Problem::new(StatusCode::BAD_REQUEST, "the query string could not be read"));
        };
        let before = match q.before.as_deref().filter(|b| !b.is_empty()).map(str::parse::<i64>) {
            None => None,
            Some(Ok(b)) => Some(b),
            Some(Err(_)) => return Err(Problem::parameter("before", "before: the next of the page before (a number)")),
        };
        let limit = match q.limit.as_deref().map(str::parse::<i64>) {
            None => 100,
            Some(Ok(n)) if (1..=1000).contains(&n) => n,
            Some(_) => return Err(Problem::parameter("limit", "limit must be a whole number from 1 to 1000")),
        };
        let kind = q.kind.filter(|k| !k.is_empty());
        let rows =
            crate::journal::fleet_events(core.store(), kind.as_deref(), before, limit).await.map_err(store_failed)?;
        let next = (rows.len() as i64 == limit).then(|| rows.last().map(|(id, ..)| *id)).flatten();
        let events = rows
            .into_iter()
            .map(|(id, mac, e)| FleetEvent {
                id,
                mac,
                at_ms: e.at_ms,
                kind: e.kind,
                text: crate::journal::mask_path_tokens(&e.text),
            })
            .collect();
        Ok(EventPage { events, next })
    };
    match found.await {
        Ok(p) => axum::Json(p).into_response(),
        Err(p) => p.into_response(),
    }
}
