//! The web UI under `/ui/` on the admin listener (issue 18): server-rendered pages (minijinja templates built into
//! the binary, one small script for the CSV file picker and live events), so that it needs no build toolchain, works
//! without JavaScript, and stays fast at 100,000 devices (every list is a page by MAC cursor).
//!
//! Login with a user from `provisor user add` (Argon2id) or an API token; the session is a random id in a cookie
//! (`HttpOnly`, `SameSite=Strict`, `Secure` whenever the listener speaks HTTPS), of which the inventory keeps only the
//! SHA-256, so sessions work on every node of a shared PostgreSQL inventory. A login always makes a new id (no
//! session fixation). Every request that changes something must come from a page of this origin (`Origin` or
//! `Referer`) and carry the session's CSRF token. An address with 5 failed logins in 5 minutes is refused until the
//! 5 minutes are over. Secrets are masked unless an admin reveals them, which is audited.

mod pages;

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::api::{Caller, record};
use crate::inventory::{AdminSession, AdminToken, AdminUser, Role, Store};
use crate::serve::Core;

/// The session cookie.
pub const COOKIE: &str = "provisor_session";
/// How long a session lasts.
const SESSION_MS: i64 = 8 * 3600 * 1000;
/// The largest form (a CSV import).
const BODY_LIMIT: usize = 64 << 20;

/// Who is looking: the session's principal, role and CSRF token (kept in the request's extensions by [`session`]).
#[derive(Debug, Clone)]
pub struct Viewer {
    /// `user:<name>` or `token:<name>`.
    pub principal: String,
    /// What the session may do.
    pub role: Role,
    /// The token every form of the session carries.
    pub csrf: String,
    hash: String,
}

impl Viewer {
    /// The caller the audit trail names.
    fn caller(&self) -> Caller {
        Caller { name: self.principal.clone(), role: self.role }
    }
}

/// What every page handler shares.
pub struct Ui {
    core: Arc<Core>,
    /// Whether the listener speaks HTTPS (cookies are then `Secure`, and origins `https://`).
    secure: bool,
    /// The count of devices per model, as of an inventory revision ([`Store::revision`]): counting a million rows
    /// for every list page would cost more than the page.
    models: tokio::sync::Mutex<Option<(i64, ModelCounts)>>,
    /// Failed logins per client address in the current window: (count, when the window began, Unix ms).
    failures: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (u32, i64)>>,
}

/// Failed logins an address may make in [`LOGIN_WINDOW_MS`] before its logins are refused until the window ends.
const MAX_LOGIN_FAILURES: u32 = 5;
/// The window of [`MAX_LOGIN_FAILURES`].
const LOGIN_WINDOW_MS: i64 = 5 * 60 * 1000;

/// How many devices there are of each model, by model.
type ModelCounts = Arc<Vec<(String, i64)>>;

impl Ui {
    /// Milliseconds until `ip` may try to log in again (0: now).
    fn login_wait_ms(&self, ip: std::net::IpAddr, now: i64) -> i64 {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failures.get(&ip) {
            Some((n, since)) if *n >= MAX_LOGIN_FAILURES && now - since < LOGIN_WINDOW_MS => {
                LOGIN_WINDOW_MS - (now - since)
            }
            _ => 0,
        }
    }

    /// Counts a failed login from `ip` (and forgets windows that have ended).
    fn login_failed(&self, ip: std::net::IpAddr, now: i64) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.retain(|_, (_, since)| now - *since < LOGIN_WINDOW_MS);
        let entry = failures.entry(ip).or_insert((0, now));
        entry.0 += 1;
    }

    /// How many devices there are of each model (recounted only when the inventory has changed).
    async fn model_counts(&self) -> Result<ModelCounts, crate::inventory::StoreError> {
        let store = self.core.store();
        let revision = store.revision().await?;
        let mut cached = self.models.lock().await;
        if let Some((r, counts)) = cached.as_ref()
            && *r == revision
        {
            return Ok(counts.clone());
        }
        let counts = Arc::new(store.model_counts().await?);
        *cached = Some((revision, counts.clone()));
        Ok(counts)
    }
}

/// The UI's routes, all under `/ui/` (to merge into the admin listener's router): the login page and the assets are
/// open, everything else needs a session.
pub fn routes(core: Arc<Core>, secure: bool) -> axum::Router {
    let ui = Arc::new(Ui { core, secure, models: tokio::sync::Mutex::new(None), failures: Default::default() });
    let protected = axum::Router::new()
        .route("/ui/", get(pages::dashboard))
        .route("/ui/devices", get(pages::devices))
        .route("/ui/devices/{mac}", get(pages::device))
        .route("/ui/devices/{mac}/params", post(pages::device_param))
        .route("/ui/devices/{mac}/group", post(pages::device_group))
        .route("/ui/devices/{mac}/rotate-keys", post(pages::rotate_keys))
        .route("/ui/devices/{mac}/reveal", post(pages::reveal))
        .route("/ui/groups", get(pages::groups).post(pages::create_group))
        .route("/ui/groups/{name}", get(pages::group))
        .route("/ui/groups/{name}/params", post(pages::group_param))
        .route("/ui/groups/{name}/parent", post(pages::group_parent))
        .route("/ui/import", get(pages::import_form).post(pages::import))
        .route("/ui/audit", get(pages::audit))
        .route("/ui/events", get(pages::events))
        .route("/ui/events/stream", get(pages::stream))
        .route("/ui/logout", post(logout))
        .layer(axum::middleware::from_fn_with_state(ui.clone(), session));
    axum::Router::new()
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/assets/ui.css", get(|| async { asset("text/css; charset=utf-8", include_str!("ui.css")) }))
        .route("/ui/assets/ui.js", get(|| async { asset("text/javascript; charset=utf-8", include_str!("ui.js")) }))
        .merge(protected)
        .layer(axum::middleware::map_response(protect))
        .with_state(ui)
}

fn asset(kind: &'static str, text: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "max-age=300")], text).into_response()
}

/// Headers on every UI answer: no framing, no inline script, no caching of pages that may show secrets.
async fn protect(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
             form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// The templates, built into the binary; `.html` output is HTML-escaped.
fn templates() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        for (name, text) in [
            ("base.html", include_str!("templates/base.html")),
            ("login.html", include_str!("templates/login.html")),
            ("dashboard.html", include_str!("templates/dashboard.html")),
            ("devices.html", include_str!("templates/devices.html")),
            ("device.html", include_str!("templates/device.html")),
            ("groups.html", include_str!("templates/groups.html")),
            ("group.html", include_str!("templates/group.html")),
            ("import.html", include_str!("templates/import.html")),
            ("audit.html", include_str!("templates/audit.html")),
            ("events.html", include_str!("templates/events.html")),
            ("error.html", include_str!("templates/error.html")),
        ] {
            if let Err(e) = env.add_template(name, text) {
                tracing::error!("web UI template {name}: {e}");
            }
        }
        env
    })
}

/// Renders `name` with `context` (plus the viewer, CSRF token and the navigation's current entry) as `status`.
fn page(status: StatusCode, name: &str, viewer: &Viewer, nav: &str, context: minijinja::Value) -> Response {
    let context = minijinja::context! {
        viewer => minijinja::context! { principal => viewer.principal.clone(), role => viewer.role.as_str() },
        csrf => viewer.csrf.clone(),
        nav => nav,
        ..context
    };
    render(status, name, context)
}

fn render(status: StatusCode, name: &str, context: minijinja::Value) -> Response {
    match templates().get_template(name).and_then(|t| t.render(context)) {
        Ok(html) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => {
            tracing::error!("web UI: rendering {name}: {e:#}");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered (see the server log)\n").into_response()
        }
    }
}

/// An error page.
fn error_page(status: StatusCode, viewer: &Viewer, detail: impl Into<String>) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    page(status, "error.html", viewer, "", minijinja::context! { title => title, detail => detail.into() })
}

fn now_ms() -> i64 {
    crate::provision::unix_ms(std::time::SystemTime::now())
}

/// The value of cookie `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether a request that changes something comes from a page of this listener: its `Origin` (or, without one, its
/// `Referer`) is this scheme and host. A request with neither is refused too.
fn same_origin(ui: &Ui, headers: &HeaderMap, uri: &axum::http::Uri) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    if host.is_empty() {
        return false;
    }
    let origin = format!("{}://{host}", if ui.secure { "https" } else { "http" });
    if let Some(o) = headers.get(header::ORIGIN) {
        return o.to_str().is_ok_and(|o| o == origin);
    }
    headers
        .get(header::REFERER)
        .and_then(|r| r.to_str().ok())
        .is_some_and(|r| r.strip_prefix(&origin).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}

/// Equal strings, compared in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `csrf` field of a URL-encoded form (the token is base64url, so it is never percent-encoded).
fn csrf_field(body: &[u8]) -> Option<&str> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "csrf")
        .map(|(_, v)| v)
}

/// Requires a live session (else the login page, for a page; 401 for anything else); for a request that changes
/// something, also this origin and the session's CSRF token (else 403, and nothing happens).
async fn session(State(ui): State<Arc<Ui>>, req: Request, next: Next) -> Response {
    let found = match cookie(req.headers(), COOKIE) {
        Some(id) => ui.core.store().session(&AdminToken::hash_of(id), now_ms()).await,
        None => Ok(None),
    };
    let s = match found {
        Ok(Some(s)) => s,
        Ok(None) if req.method() == Method::GET => {
            let next = req.uri().path_and_query().map_or("/ui/", |p| p.as_str());
            let target = format!("/ui/login?next={}", percent_encode(next));
            return Redirect::to(&target).into_response();
        }
        Ok(None) => return (StatusCode::UNAUTHORIZED, "log in first: /ui/login\n").into_response(),
        Err(e) => {
            tracing::error!("web UI: inventory: {e}");
            return (StatusCode::SERVICE_UNAVAILABLE, "the inventory could not be read; try again\n").into_response();
        }
    };
    let viewer = Viewer { principal: s.principal, role: s.role, csrf: s.csrf, hash: s.hash };
    let mut req = req;
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if !same_origin(&ui, req.headers(), req.uri()) {
            return (StatusCode::FORBIDDEN, "refused: the request does not come from a page of this site\n")
                .into_response();
        }
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "the form is too large\n").into_response();
        };
        if !csrf_field(&bytes).is_some_and(|t| same_secret(t, &viewer.csrf)) {
            return (StatusCode::FORBIDDEN, "refused: the form's CSRF token is missing or not this session's\n")
                .into_response();
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    req.extensions_mut().insert(viewer);
    next.run(req).await
}

/// 32 random bytes, base64url: a session id or a CSRF token.
fn random_id() -> Option<String> {
    use base64::Engine as _;
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random))
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where to go after logging in: a page of the UI, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.starts_with("//") && !n.contains('\\') && !n.contains("..") => {
            n.to_string()
        }
        _ => "/ui/".to_string(),
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

async fn login_form(Query(q): Query<LoginQuery>) -> Response {
    render(StatusCode::OK, "login.html", minijinja::context! { next => safe_next(q.next.as_deref()) })
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    token: String,
    next: Option<String>,
}

/// An Argon2id hash of no password anyone has: verified against when the user does not exist, so that a wrong name
/// takes as long as a wrong password.
fn decoy() -> &'static AdminUser {
    static DECOY: OnceLock<AdminUser> = OnceLock::new();
    DECOY.get_or_init(|| {
        AdminUser::new("", Role::Read, &AdminToken::hash_of("decoy"), 0).unwrap_or_else(|_| AdminUser {
            name: String::new(),
            role: Role::Read,
            password_hash: String::new(),
            created_at: String::new(),
        })
    })
}

async fn login(
    State(ui): State<Arc<Ui>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    form: Result<axum::Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if !same_origin(&ui, &headers, &uri) {
        return (StatusCode::FORBIDDEN, "refused: the login does not come from this site's login page\n")
            .into_response();
    }
    let Ok(axum::Form(f)) = form else {
        return (StatusCode::BAD_REQUEST, "the login form could not be read\n").into_response();
    };
    let next = safe_next(f.next.as_deref());
    let wait = ui.login_wait_ms(peer.ip(), now_ms());
    if wait > 0 {
        let error = format!("Too many failed logins from your address: try again in {} minute(s).", wait / 60_000 + 1);
        return render(
            StatusCode::TOO_MANY_REQUESTS,
            "login.html",
            minijinja::context! { next => next, error => error },
        );
    }
    let store = ui.core.store();
    let found: Result<Option<(String, Role)>, _> = if !f.token.trim().is_empty() {
        store
            .token_by_hash(&AdminToken::hash_of(f.token.trim()))
            .await
            .map(|t| t.map(|t| (format!("token:{}", t.name), t.role)))
    } else {
        let user = store.user(f.user.trim()).await;
        user.map(|u| {
            let ok = u.as_ref().unwrap_or_else(|| decoy()).verify(&f.password);
            u.filter(|_| ok).map(|u| (format!("user:{}", u.name), u.role))
        })
    };
    let who = if f.token.trim().is_empty() { format!("user {:?}", f.user.trim()) } else { "a token".to_string() };
    let (principal, role) = match found {
        Ok(Some(p)) => p,
        Ok(None) => {
            ui.login_failed(peer.ip(), now_ms());
            let caller = Caller { name: "-".into(), role: Role::Read };
            record(&ui.core, peer, &caller, "POST", "/ui/login".into(), None, format!("login refused for {who}")).await;
            let context = minijinja::context! {
                next => next, error => "Wrong user name or password, or the token is not valid."
            };
            return render(StatusCode::UNAUTHORIZED, "login.html", context);
        }
        Err(e) => {
            tracing::error!("web UI: login: {e}");
            return (StatusCode::SERVICE_UNAVAILABLE, "the inventory could not be read; try again\n").into_response();
        }
    };
    let (Some(id), Some(csrf)) = (random_id(), random_id()) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no randomness; try again\n").into_response();
    };
    let now = now_ms();
    let session = AdminSession {
        hash: AdminToken::hash_of(&id),
        principal: principal.clone(),
        role,
        csrf,
        expires_ms: now + SESSION_MS,
    };
    if let Err(e) = store.add_session(&session, now).await {
        tracing::error!("web UI: login: {e}");
        return (StatusCode::SERVICE_UNAVAILABLE, "the inventory could not be written; try again\n").into_response();
    }
    // A session id the browser already had is never kept: the login always makes a new one.
    if let Some(old) = cookie(&headers, COOKIE) {
        let _ = store.remove_session(&AdminToken::hash_of(old)).await;
    }
    let caller = Caller { name: principal, role };
    record(&ui.core, peer, &caller, "POST", "/ui/login".into(), None, "logged in to the web UI".into()).await;
    let secure = if ui.secure { "; Secure" } else { "" };
    let set = format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", SESSION_MS / 1000);
    let mut r = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&set) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout(
    State(ui): State<Arc<Ui>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    axum::Extension(viewer): axum::Extension<Viewer>,
) -> Response {
    let _ = ui.core.store().remove_session(&viewer.hash).await;
    record(&ui.core, peer, &viewer.caller(), "POST", "/ui/logout".into(), None, "logged out".into()).await;
    let secure = if ui.secure { "; Secure" } else { "" };
    let mut r = Redirect::to("/ui/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_ui() {
        assert_eq!(safe_next(Some("/ui/devices?q=1")), "/ui/devices?q=1");
        for bad in ["https://evil.example/", "//evil.example/ui/", "/ui/../api", "/other", "/ui\\x", ""] {
            assert_eq!(safe_next(Some(bad)), "/ui/", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui/");
    }

    #[test]
    fn csrf_and_cookies_are_read_exactly() {
        assert_eq!(csrf_field(b"a=1&csrf=abc_-9&b=2"), Some("abc_-9"));
        assert_eq!(csrf_field(b"xcsrf=abc"), None);
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("abc", "ab"));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; provisor_session=xyz; b=2"));
        assert_eq!(cookie(&h, COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "provisor"), None);
    }
}
