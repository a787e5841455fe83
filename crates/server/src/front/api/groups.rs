//! `/api/v1/groups`: groups of devices sharing parameters (list, get with what each inherits, replace, merge-update,
//! delete). A group inherits from its `parent`; `defaults` applies to every device and `model:<model>` to every
//! device of that model ([`crate::inventory`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{
    Caller, Problem, bad_body, checked_parameter, mask, merge_params, plain_text, present, record, require,
    store_failed,
};
use crate::inventory::{Group, Role, Store, StoreError};
use crate::serve::Core;

fn masked(mut g: Group) -> Group {
    mask(&mut g.params);
    g
}

/// Every group.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Groups {
    /// By name; secret parameters masked.
    groups: Vec<Group>,
}

/// Every group, by name.
#[utoipa::path(
    get,
    path = "/groups",
    operation_id = "listGroups",
    tag = "groups",
    responses(
        (status = 200, description = "Every group", body = Groups),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn list(State(core): State<Arc<Core>>) -> Response {
    match core.store().groups().await {
        Ok(groups) => axum::Json(Groups { groups: groups.into_iter().map(masked).collect() }).into_response(),
        Err(e) => store_failed(e).into_response(),
    }
}

/// A group, and what it inherits.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupView {
    /// The group; secret parameters masked.
    #[serde(flatten)]
    group: Group,
    /// The chain it inherits from, nearest first (its parent, that one's parent, ...).
    ancestors: Vec<String>,
    /// What its parent chain gives it (its own parameters override these), before `defaults` and the model
    /// groups a device adds; secret parameters masked.
    inherited: BTreeMap<String, String>,
}

fn no_group(name: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, format!("no group {name:?}"))
}

/// A group, its ancestors and what it inherits from them.
#[utoipa::path(
    get,
    path = "/groups/{name}",
    operation_id = "getGroup",
    tag = "groups",
    params(("name" = String, Path, description = "The group's name")),
    responses(
        (status = 200, description = "The group", body = GroupView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn get(State(core): State<Arc<Core>>, Path(name): Path<String>) -> Response {
    let found = async {
        let group = core.store().group(&name).await.map_err(store_failed)?.ok_or_else(|| no_group(&name))?;
        let chain = crate::inventory::ancestors(core.store(), &group).await.map_err(store_failed)?;
        // Only the parent chain: `defaults` and `model:` apply to devices, not to a group as such.
        let mut inherited = BTreeMap::new();
        for g in chain.iter().rev() {
            inherited.extend(g.params.clone());
        }
        let ancestors: Vec<String> = chain.into_iter().map(|g| g.name).collect();
        mask(&mut inherited);
        Ok::<_, Problem>(GroupView { group: masked(group), ancestors, inherited })
    };
    match found.await {
        Ok(v) => axum::Json(v).into_response(),
        Err(p) => p.into_response(),
    }
}

/// The body of `PUT /api/v1/groups/{name}`: the whole group.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    /// The group it inherits from (it must exist, and not lead back to this one).
    #[serde(default)]
    parent: Option<String>,
    /// Free text.
    #[serde(default)]
    description: String,
    /// Its parameters, by element name.
    #[serde(default)]
    params: BTreeMap<String, String>,
    /// Take parameter names the dictionary does not know.
    #[serde(default)]
    allow_unknown: bool,
}

fn check_name(name: &str) -> Result<(), Problem> {
    if name.is_empty() || name.len() > 200 || name.chars().any(|c| c.is_control()) {
        return Err(Problem::parameter("name", "name: 1 to 200 characters, no control characters"));
    }
    Ok(())
}

/// Saves a group, or the problem naming the field at fault.
async fn save(core: &Core, group: &Group) -> Result<(), Problem> {
    match core.store().put_group(group).await {
        Ok(()) => Ok(()),
        Err(StoreError::NoGroup(p)) => Err(Problem::parameter("parent", format!("no group {p:?}"))),
        Err(StoreError::GroupCycle(_)) => Err(Problem::parameter(
            "parent",
            format!("{:?} would inherit from itself through its parent chain", group.name),
        )),
        Err(e) => Err(store_failed(e)),
    }
}

/// Creates or replaces a group (operator or admin).
#[utoipa::path(
    put,
    path = "/groups/{name}",
    operation_id = "putGroup",
    tag = "groups",
    params(("name" = String, Path, description = "The group's name")),
    request_body = GroupBody,
    responses(
        (status = 200, description = "Replaced", body = Group),
        (status = 201, description = "Created", body = Group),
        (status = 400, description = "A bad field or parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read token", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn put(
    State(core): State<Arc<Core>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let saved = async {
        require(&caller, Role::Operator)?;
        check_name(&name)?;
        let b: GroupBody = serde_json::from_slice(&body).map_err(|e| bad_body("a group", e))?;
        plain_text("description", &b.description)?;
        for (n, v) in &b.params {
            checked_parameter(n, v, b.allow_unknown)?;
        }
        let existed = core.store().group(&name).await.map_err(store_failed)?.is_some();
        let group =
            Group { name, parent: b.parent.filter(|p| !p.is_empty()), description: b.description, params: b.params };
        save(&core, &group).await?;
        Ok::<_, Problem>((group, existed))
    };
    match saved.await {
        Ok((group, existed)) => {
            let what = format!("{} group {:?}", if existed { "replaced" } else { "created" }, group.name);
            record(&core, peer, &caller, "PUT", format!("/api/v1/groups/{}", group.name), None, what).await;
            let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
            (status, axum::Json(masked(group))).into_response()
        }
        Err(p) => p.into_response(),
    }
}

/// The body of `PATCH /api/v1/groups/{name}`: fields given replace, `params` merges (`null` removes one).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupPatch {
    /// A new parent; `null` makes it inherit from no group.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    parent: Option<Option<String>>,
    /// A new description.
    description: Option<String>,
    /// Parameters to set; one set to `null` is removed. The others stay.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, Option<String>>)]
    params: BTreeMap<String, Option<String>>,
    /// Take parameter names the dictionary does not know.
    #[serde(default)]
    allow_unknown: bool,
}

/// Changes a group (operator or admin): merge semantics. Every device in it, or in a group under it, gets the
/// change at its next fetch.
#[utoipa::path(
    patch,
    path = "/groups/{name}",
    operation_id = "updateGroup",
    tag = "groups",
    params(("name" = String, Path, description = "The group's name")),
    request_body = GroupPatch,
    responses(
        (status = 200, description = "The group as changed", body = Group),
        (status = 400, description = "A bad field or parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn patch(
    State(core): State<Arc<Core>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let saved = async {
        require(&caller, Role::Operator)?;
        let p: GroupPatch = serde_json::from_slice(&body).map_err(|e| bad_body("a group patch", e))?;
        let mut group = core.store().group(&name).await.map_err(store_failed)?.ok_or_else(|| no_group(&name))?;
        let mut changed = Vec::new();
        if let Some(parent) = p.parent {
            group.parent = parent.filter(|p| !p.is_empty());
            changed.push("parent".to_string());
        }
        if let Some(d) = p.description {
            plain_text("description", &d)?;
            group.description = d;
            changed.push("description".to_string());
        }
        merge_params(&mut group.params, p.params, p.allow_unknown, &mut changed)?;
        save(&core, &group).await?;
        Ok::<_, Problem>((group, changed))
    };
    match saved.await {
        Ok((group, changed)) => {
            let what = format!("changed group {:?}: {}", group.name, changed.join(", "));
            record(&core, peer, &caller, "PATCH", format!("/api/v1/groups/{}", group.name), None, what).await;
            axum::Json(masked(group)).into_response()
        }
        Err(p) => p.into_response(),
    }
}

/// Removes a group no device or group uses (operator or admin).
#[utoipa::path(
    delete,
    path = "/groups/{name}",
    operation_id = "deleteGroup",
    tag = "groups",
    params(("name" = String, Path, description = "The group's name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A device or group uses it", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn delete(
    State(core): State<Arc<Core>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    if let Err(p) = require(&caller, Role::Operator) {
        return p.into_response();
    }
    match core.store().remove_group(&name).await {
        Ok(true) => {
            let what = format!("removed group {name:?}");
            record(&core, peer, &caller, "DELETE", format!("/api/v1/groups/{name}"), None, what).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => no_group(&name).into_response(),
        Err(e @ StoreError::GroupInUse(..)) => Problem::new(StatusCode::CONFLICT, e.to_string()).into_response(),
        Err(e) => store_failed(e).into_response(),
    }
}
