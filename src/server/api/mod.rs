//! The control API: JSON under `/api/v1` and `/metrics` on the HTTP
//! listener, every handler a thin adapter over a [`Server`] method (what a
//! product embedding the crate calls too). Requests are signed in by the
//! listener ([`crate::serve::auth`]); each handler then checks the role it
//! needs (viewer: read; operator: record, clip, relink, change; admin:
//! create, delete, configuration) and the user's grants on the node or
//! stream it names (refused with 403 whether or not it exists).
//!
//! Errors are JSON, `{"error": {"status", "kind", "message", "key"?,
//! "path"?}}`, with the status of their [`ErrorKind`]; a body is at most
//! [`MAX_BODY`] bytes and must be a JSON object; unknown keys are named.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Weak;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::Method;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Applied;
use super::{ClipRequest, Inner, NodeStats, Server, ServerError};
use crate::config::{ConfigError, NodeProps, NodeSpec};
use crate::control::metrics::{self, Type, Writer};
use crate::control::store::{AuditEntry, TokenEntry};
use crate::encode::{Change, Level, Profile, RateControl};
use crate::events::{Event, FileEvent};
use crate::output::index::Entry;
use crate::serve::auth::{Identity, Role};
use crate::serve::http::openapi::{self, Doc, MakeSchema, Route, schema_of};
use crate::serve::http::routes::Signed;

mod admin;
mod events;
mod stats;

use admin::{MadeToken, NewToken, audit_log, config, create_token, reload, revoke_token, tokens};
use events::{events, events_ws};
use stats::prometheus;

/// The most bytes a request body may have.
pub const MAX_BODY: usize = 1 << 20;
/// How long a token from `POST /api/v1/login` lasts by default.
pub const TOKEN_TTL: Duration = Duration::from_secs(3600);
/// The longest a token may be asked to last.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 86_400);

/// The API's routes, with their descriptions, for the HTTP listener to
/// serve beside its media routes.
pub(super) fn router(server: Weak<Inner>) -> (Router, Vec<Doc>) {
    type Make = MakeSchema;
    let route = |method: Method,
                 path,
                 summary,
                 role,
                 body: Option<(&'static str, Make)>,
                 answer: (u16, &'static str, Make),
                 handler| Route {
        method,
        path,
        summary,
        role: Some(role),
        query: &[],
        body,
        answer,
        handler,
    };
    let json = |schema: Make| (200, "application/json", schema);
    let body = |schema: Make| Some(("application/json", schema));
    let routes = vec![
        Route {
            role: None,
            ..route(
                Method::POST,
                "/api/v1/login",
                "Signs in: a Bearer token.",
                "",
                body(schema_of::<Login>),
                json(schema_of::<Token>),
                post(login),
            )
        },
        route(
            Method::GET,
            "/api/v1/nodes",
            "Every node the user may see: state, stats, properties.",
            "viewer",
            None,
            json(schema_of::<Vec<NodeView>>),
            get(nodes),
        ),
        route(
            Method::POST,
            "/api/v1/nodes",
            "Creates a node from the keys of a [[node]] table.",
            "admin",
            body(openapi::object),
            (201, "application/json", schema_of::<NodeView>),
            post(create),
        ),
        route(
            Method::GET,
            "/api/v1/nodes/{name}",
            "One node.",
            "viewer",
            None,
            json(schema_of::<NodeView>),
            get(node),
        ),
        route(
            Method::PATCH,
            "/api/v1/nodes/{name}",
            "Changes what can change while it runs (listen_to; an encoder's rate, keyint, profile, level, quality, force_keyframe).",
            "operator",
            body(schema_of::<NodePatch>),
            json(schema_of::<NodeView>),
            patch(patch_node),
        ),
        route(
            Method::DELETE,
            "/api/v1/nodes/{name}",
            "Stops and removes a node (a recording is closed playable): its final stats.",
            "admin",
            None,
            json(schema_of::<NodeView>),
            delete(delete_node),
        ),
        route(
            Method::POST,
            "/api/v1/nodes/{name}/{action}",
            "Action play or stop (GstD's pipeline_play and pipeline_stop): stop ends the node's work (a recording is closed playable) and keeps it; play starts it again.",
            "operator",
            None,
            json(schema_of::<NodeView>),
            post(play_or_stop),
        ),
        route(
            Method::POST,
            "/api/v1/nodes/{name}/record/{action}",
            "A record node: action start or stop (stop answers with the finalized file).",
            "operator",
            None,
            json(schema_of::<Recording>),
            post(record),
        ),
        route(
            Method::POST,
            "/api/v1/nodes/{name}/clip",
            "A smart-record clip from before now to after it.",
            "operator",
            body(schema_of::<Clip>),
            json(schema_of::<ClipAnswer>),
            post(clip),
        ),
        route(
            Method::POST,
            "/api/v1/nodes/{name}/clip/stop",
            "Ends a smartrecord node's running clips.",
            "operator",
            None,
            json(schema_of::<ClosedFiles>),
            post(clip_stop),
        ),
        route(
            Method::GET,
            "/api/v1/nodes/{name}/snapshot.jpg",
            "A snapshot node's latest JPEG.",
            "viewer",
            None,
            (200, "image/jpeg", openapi::binary),
            get(latest_snapshot),
        ),
        Route {
            query: &[
                ("camera", "Only this camera's."),
                ("kind", "continuous, event or snapshot."),
                ("trigger", "Only files this trigger started."),
                ("from", "Ending after this time (RFC 3339 or UNIX seconds)."),
                ("to", "Starting before this time."),
            ],
            ..route(
                Method::GET,
                "/api/v1/recordings",
                "The recordings index.",
                "viewer",
                None,
                json(schema_of::<Vec<Entry>>),
                get(recordings),
            )
        },
        route(
            Method::DELETE,
            "/api/v1/recordings/{id}",
            "Deletes a finished recording (its file and its row).",
            "admin",
            None,
            json(schema_of::<Entry>),
            delete(delete_recording),
        ),
        route(
            Method::GET,
            "/api/v1/recordings/{id}",
            "A recorded file, as it is.",
            "viewer",
            None,
            (200, "application/octet-stream", openapi::binary),
            get(download),
        ),
        route(
            Method::GET,
            "/api/v1/sensor/list",
            "The cameras, in the shape of VST's sensor/list.",
            "viewer",
            None,
            json(schema_of::<Vec<Sensor>>),
            get(sensors),
        ),
        route(
            Method::GET,
            "/api/v1/config",
            "The running configuration as TOML (secrets as ***).",
            "admin",
            None,
            (200, "application/toml", openapi::binary),
            get(config),
        ),
        route(
            Method::POST,
            "/api/v1/config/reload",
            "Applies the config file by difference (as SIGHUP).",
            "admin",
            None,
            json(schema_of::<Applied>),
            post(reload),
        ),
        Route {
            query: EVENTS_QUERY,
            ..route(
                Method::GET,
                "/api/v1/events",
                "Events as Server-Sent Events (data: one JSON event).",
                "viewer",
                None,
                (200, "text/event-stream", schema_of::<Event>),
                get(events),
            )
        },
        Route {
            query: EVENTS_QUERY,
            ..route(
                Method::GET,
                "/api/v1/events/ws",
                "Events over a WebSocket (one JSON event per text message).",
                "viewer",
                None,
                (101, "application/json", schema_of::<Event>),
                get(events_ws),
            )
        },
        route(
            Method::POST,
            "/api/v1/tokens",
            "Makes a long-lived API token (shown this once).",
            "admin",
            body(schema_of::<NewToken>),
            (201, "application/json", schema_of::<MadeToken>),
            post(create_token),
        ),
        route(
            Method::GET,
            "/api/v1/tokens",
            "The live API tokens (without their secrets).",
            "admin",
            None,
            json(schema_of::<Vec<TokenEntry>>),
            get(tokens),
        ),
        route(
            Method::DELETE,
            "/api/v1/tokens/{id}",
            "Revokes an API token.",
            "admin",
            None,
            json(schema_of::<TokenEntry>),
            delete(revoke_token),
        ),
        Route {
            query: &[
                ("limit", "Entries at most (default 100, at most 10000)."),
                ("user", "Only this user's changes."),
            ],
            ..route(
                Method::GET,
                "/api/v1/audit",
                "The audit log: every change, newest first.",
                "admin",
                None,
                json(schema_of::<Vec<AuditEntry>>),
                get(audit_log),
            )
        },
        route(
            Method::GET,
            "/metrics",
            "Prometheus text format.",
            "operator",
            None,
            (200, metrics::CONTENT_TYPE, openapi::binary),
            get(prometheus),
        ),
    ];
    let (router, docs) = openapi::build(routes);
    (
        router.layer(DefaultBodyLimit::max(MAX_BODY)).with_state(Api(server)),
        docs,
    )
}

const EVENTS_QUERY: &[(&str, &str)] = &[
    (
        "events",
        "Event names, comma-separated: closed, failed, triggered, node, reader.",
    ),
    ("node", "A glob over the node or camera the event is about."),
];

#[derive(Clone)]
struct Api(Weak<Inner>);

impl Api {
    fn server(&self) -> Result<Server, ApiError> {
        self.0
            .upgrade()
            .map(|inner| Server { inner })
            .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping".into()))
    }
}

/// An error answer.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    key: Option<String>,
    path: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: String) -> ApiError {
        ApiError {
            status,
            message,
            key: None,
            path: None,
        }
    }

    fn bad(message: String) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn key(mut self, key: &str) -> ApiError {
        self.path = Some(format!("$.{key}"));
        self.key = Some(key.to_owned());
        self
    }
}

impl From<ServerError> for ApiError {
    fn from(e: ServerError) -> ApiError {
        let status = StatusCode::from_u16(e.kind().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (key, path) = match &e {
            ServerError::Config(c) => (c.key.clone(), c.path.clone()),
            _ => (None, None),
        };
        ApiError {
            status,
            message: e.to_string(),
            key,
            path,
        }
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> ApiError {
        ServerError::Config(e).into()
    }
}

/// A handler's query string, its error already an API answer: taken by the
/// handler after the caller's role is checked (a caller without the role
/// learns nothing from a bad query).
struct Params<T>(Result<T, ApiError>);

impl<T> Params<T> {
    /// The query, or the `400` naming what is wrong with it.
    fn get(self) -> Result<T, ApiError> {
        self.0
    }
}

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Params<T> {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        let query = Query::<T>::from_request_parts(parts, state).await;
        Ok(Params(
            query.map(|Query(q)| q).map_err(|e| ApiError::bad(e.body_text())),
        ))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = match self.status.as_u16() {
            400 | 413 | 422 => "invalid_input",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            409 => "conflict",
            503 => "unavailable",
            504 => "timeout",
            _ => "internal",
        };
        let body = json!({"error": {
            "status": self.status.as_u16(),
            "kind": kind,
            "message": self.message,
            "key": self.key,
            "path": self.path,
        }});
        (self.status, json_response(&body)).into_response()
    }
}

fn json_response(value: &impl serde::Serialize) -> Response {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

type Answer = Result<Response, ApiError>;
type Who = axum::Extension<Signed>;

/// Whether the signed-in user has `need` and (when `name` is given) a
/// grant covering `name`. Without users (a loopback-only server) everyone
/// may do everything.
fn allow(server: &Server, who: &Signed, need: Role, name: Option<&str>) -> Result<(), ApiError> {
    let Some(id) = &who.0 else {
        return match server.inner.auth.required() {
            true => Err(ApiError::new(StatusCode::UNAUTHORIZED, "sign in first".into())),
            false => Ok(()),
        };
    };
    if id.role < need {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "user `{}` is {} {}: this needs the {} role",
                id.name,
                if id.role == Role::Admin { "an" } else { "a" },
                id.role.name(),
                need.name()
            ),
        ));
    }
    match name {
        Some(name) if !id.may_see(name) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("user `{}` may not use `{name}`", id.name),
        )),
        _ => Ok(()),
    }
}

/// Whether the signed-in user's grants cover `name` (everyone's do without users).
fn sees(who: &Signed, name: &str) -> bool {
    who.0.as_ref().is_none_or(|id| id.may_see(name))
}

/// A request body: a JSON object, or a 400 saying where it is malformed.
fn object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad("the body must be a JSON object".into()).key("")),
        Err(e) => Err(ApiError::bad(format!("malformed JSON: {e}"))),
    }
}

/// A typed body (unknown keys refused, named); the error names the key.
fn typed<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let value = Value::Object(object(body)?);
    let mut track = serde_path_to_error::Track::new();
    T::deserialize(serde_path_to_error::Deserializer::new(&value, &mut track)).map_err(|e| {
        let path = track.path().to_string();
        let key = path.trim_start_matches('.').to_owned();
        let error = ApiError::bad(e.to_string());
        if key.is_empty() { error } else { error.key(&key) }
    })
}

/// A sign-in.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Login {
    /// The user.
    name: String,
    /// Its password.
    password: String,
    /// Seconds the token lasts (default 3600, at most 30 days).
    ttl_s: Option<u64>,
}

/// What a sign-in gives.
#[derive(Serialize, JsonSchema)]
struct Token {
    /// For `Authorization: Bearer`.
    token: String,
    /// `Bearer`.
    token_type: &'static str,
    /// Seconds it lasts.
    expires_in: u64,
    /// The user.
    user: String,
    /// Its role.
    role: Role,
}

async fn login(State(api): State<Api>, peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>, body: Bytes) -> Answer {
    let server = api.server()?;
    let Login { name, password, ttl_s } = typed(&body)?;
    let auth = &server.inner.auth;
    if !auth.required() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no [[server.users]] are configured: there is nothing to sign in to".into(),
        ));
    }
    let ttl = ttl_s.map_or(TOKEN_TTL, Duration::from_secs);
    if ttl.is_zero() || ttl > MAX_TOKEN_TTL {
        return Err(ApiError::bad(format!("ttl_s must be 1..={}", MAX_TOKEN_TTL.as_secs())).key("ttl_s"));
    }
    let from = peer.map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |p| p.0.0.ip());
    // Argon2 takes a while: off the runtime's threads.
    let checked = {
        let server = server.clone();
        tokio::task::spawn_blocking(move || server.inner.auth.login(&name, &password, from))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    };
    match checked {
        Ok(id) => {
            let token = auth.issue(&id.name, ttl, SystemTime::now());
            tracing::info!(user = %id.name, "signed in through the API");
            Ok(json_response(&Token {
                token,
                token_type: "Bearer",
                expires_in: ttl.as_secs(),
                user: id.name,
                role: id.role,
            }))
        }
        Err(why) => Err(ApiError::new(
            match why {
                crate::serve::auth::Refused::Throttled => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNAUTHORIZED,
            },
            why.message().into(),
        )),
    }
}

/// A node as the API shows it: its stats and its properties (the keys of
/// its description; camera credentials shown as `***`).
/// A node as the API shows it.
#[derive(Serialize, JsonSchema)]
struct NodeView {
    /// Its state and stats.
    #[serde(flatten)]
    stats: NodeStats,
    /// The keys of its description (those of its kind; camera credentials as `***`).
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<Map<String, Value>>,
}

fn view(stats: &NodeStats, spec: Option<&NodeSpec>) -> NodeView {
    let properties = spec.and_then(|spec| match serde_json::to_value(&spec.props) {
        Ok(Value::Object(mut p)) => {
            p.remove("kind");
            Some(p)
        }
        _ => None,
    });
    NodeView {
        stats: stats.clone(),
        properties,
    }
}

fn views(server: &Server, who: &Signed, only: Option<&str>) -> Vec<NodeView> {
    let config = server.config();
    server
        .stats()
        .nodes
        .iter()
        .filter(|n| only.is_none_or(|o| o == n.name) && sees(who, &n.name))
        .map(|n| view(n, config.nodes.iter().find(|s| s.name == n.name)))
        .collect()
}

async fn nodes(State(api): State<Api>, who: Who) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Viewer, None)?;
    Ok(json_response(&views(&server, &who, None)))
}

async fn node(State(api): State<Api>, who: Who, Path(name): Path<String>) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Viewer, Some(&name))?;
    views(&server, &who, Some(&name))
        .pop()
        .map(|v| json_response(&v))
        .ok_or_else(|| ServerError::NoSuchNode(name).into())
}

/// Runs blocking `work` (a node starting, draining or answering) off the runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ServerError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

async fn create(State(api): State<Api>, who: Who, body: Bytes) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Admin, None)?;
    let spec = NodeSpec::from_json(&Value::Object(object(&body)?), "<api>")?;
    // The node and every stream it reads must be within the caller's grants.
    for name in std::iter::once(&spec.name)
        .chain(&spec.listen_to)
        .chain(spec.props.inputs())
    {
        allow(&server, &who, Role::Admin, Some(name))?;
    }
    let name = spec.name.clone();
    // As the API shows it: camera credentials as `***`.
    let detail = serde_json::to_string(&spec).unwrap_or_default();
    let added = server.clone();
    blocking(move || added.add_node(spec)).await?;
    audit(&server, &who, "create", &name, &detail);
    let mut response = json_response(&views(&server, &who, Some(&name)).pop());
    *response.status_mut() = StatusCode::CREATED;
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/nodes/{name}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn delete_node(State(api): State<Api>, who: Who, Path(name): Path<String>) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Admin, Some(&name))?;
    let removed = server.clone();
    let stats = {
        let name = name.clone();
        blocking(move || removed.remove_node(&name)).await?
    };
    audit(&server, &who, "delete", &name, "");
    Ok(json_response(&view(&stats, None)))
}

/// What `PATCH /api/v1/nodes/<name>` may change while the node runs.
#[derive(Deserialize, JsonSchema)]
struct NodePatch {
    /// The stream a consumer listens to (a relink).
    listen_to: Option<String>,
    /// An encoder's target bits per second.
    bitrate: Option<u32>,
    /// An encoder's rate control.
    rate_control: Option<RateControl>,
    /// An encoder's quantizer (`cqp`).
    qp: Option<u8>,
    /// An encoder's frames from one keyframe to the next.
    keyint: Option<u32>,
    /// An encoder's profile.
    profile: Option<Profile>,
    /// An encoder's level, as `"4.1"`.
    #[schemars(with = "Option<String>")]
    level: Option<Level>,
    /// An encoder's JPEG quality.
    quality: Option<u8>,
    /// `true`: the encoder's next picture is a keyframe.
    force_keyframe: Option<bool>,
    /// Any other key: refused, named.
    #[serde(flatten)]
    #[schemars(skip)]
    other: Map<String, Value>,
}

impl NodePatch {
    /// The encoder changes asked for, each with its key.
    fn changes(&self) -> Result<Vec<(&'static str, Change)>, ApiError> {
        if self.force_keyframe == Some(false) {
            return Err(ApiError::bad("`force_keyframe` takes only `true`".into()).key("force_keyframe"));
        }
        let changes = [
            self.bitrate.map(|v| ("bitrate", Change::Bitrate(v))),
            self.rate_control.map(|v| ("rate_control", Change::RateControl(v))),
            self.qp.map(|v| ("qp", Change::Qp(v))),
            self.keyint.map(|v| ("keyint", Change::Keyint(v))),
            self.profile.map(|v| ("profile", Change::Profile(v))),
            self.level.map(|v| ("level", Change::Level(v))),
            self.quality.map(|v| ("quality", Change::Quality(v))),
            self.force_keyframe.map(|_| ("force_keyframe", Change::ForceKeyframe)),
        ];
        Ok(changes.into_iter().flatten().collect())
    }
}

async fn patch_node(State(api): State<Api>, who: Who, Path(name): Path<String>, body: Bytes) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Operator, Some(&name))?;
    let asked: NodePatch = typed(&body)?;
    let spec = server
        .config()
        .nodes
        .into_iter()
        .find(|n| n.name == name)
        .ok_or_else(|| ServerError::NoSuchNode(name.clone()))?;
    let known = match serde_json::to_value(&spec.props) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    // Everything is checked before anything changes.
    let changes = asked.changes()?;
    let encoder = matches!(spec.props, NodeProps::Encode(_));
    let refused = asked
        .other
        .keys()
        .map(String::as_str)
        .chain(changes.iter().filter(|_| !encoder).map(|(key, _)| *key))
        .next();
    if let Some(key) = refused {
        let kind = spec.props.kind();
        return Err(if known.contains_key(key) || key == "name" || key == "kind" {
            ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "`{key}` of a {kind} node cannot change while it runs: it needs a restart of the node (DELETE it and POST it again)"
                ),
            )
        } else {
            let keys: Vec<&str> = known.keys().map(String::as_str).filter(|k| *k != "kind").collect();
            ApiError::bad(format!("unknown key `{key}` for a {kind} node (keys: listen_to, {})", keys.join(", ")))
        }
        .key(key));
    }
    if let Some(stream) = asked.listen_to.as_deref().filter(|s| !sees(&who, s)) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, format!("you may not use `{stream}`")).key("listen_to"));
    }
    if let Some(stream) = &asked.listen_to {
        server.relink(&name, stream)?;
    }
    for (_, change) in changes {
        server.change_encoder(&name, change)?;
    }
    audit(&server, &who, "change", &name, &String::from_utf8_lossy(&body));
    Ok(json_response(&views(&server, &who, Some(&name)).pop()))
}

async fn record(State(api): State<Api>, who: Who, Path((name, action)): Path<(String, String)>) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Operator, Some(&name))?;
    let answer = match action.as_str() {
        "start" => {
            server.start_recording(&name)?;
            Recording {
                recording: true,
                closed: None,
            }
        }
        "stop" => {
            let closed = server.stop_recording(&name).await?;
            Recording {
                recording: false,
                closed: closed.map(|c| FileEvent::of(&name, &c)),
            }
        }
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("`{other}` is not start or stop"),
            ));
        }
    };
    audit(&server, &who, &format!("record {action}"), &name, "");
    Ok(json_response(&answer))
}

async fn play_or_stop(State(api): State<Api>, who: Who, Path((name, action)): Path<(String, String)>) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Operator, Some(&name))?;
    let play = match action.as_str() {
        "play" => true,
        "stop" => false,
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("`{}` is not play or stop", other.escape_debug()),
            ));
        }
    };
    {
        let (server, name) = (server.clone(), name.clone());
        blocking(move || {
            if play {
                server.play_node(&name)
            } else {
                server.stop_node(&name)
            }
        })
        .await?;
    }
    audit(&server, &who, &action, &name, "");
    views(&server, &who, Some(&name))
        .pop()
        .map(|v| json_response(&v))
        .ok_or_else(|| ServerError::NoSuchNode(name).into())
}

/// A smart-record clip asked for.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Clip {
    /// Seconds before now it starts (the node's default when absent).
    before: Option<f64>,
    /// Seconds after now it runs.
    after: Option<f64>,
    /// The clip's length from the trigger (an alias of `after`).
    duration: Option<f64>,
    /// What is recorded as its trigger (default `api:<user>`).
    trigger: Option<String>,
}

/// What a clip request did.
#[derive(Serialize, JsonSchema)]
struct ClipAnswer {
    /// Pipeline time of the trigger, ns.
    trigger_ns: i64,
    /// True when it extended a running clip.
    extended: bool,
}

/// Files a request closed.
#[derive(Serialize, JsonSchema)]
struct ClosedFiles {
    /// The files, finalized.
    closed: Vec<FileEvent>,
}

/// A record node after a start or stop.
#[derive(Serialize, JsonSchema)]
struct Recording {
    /// Whether it records now.
    recording: bool,
    /// The file a stop finalized.
    #[serde(skip_serializing_if = "Option::is_none")]
    closed: Option<FileEvent>,
}

async fn clip(State(api): State<Api>, who: Who, Path(name): Path<String>, body: Bytes) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Operator, Some(&name))?;
    let clip: Clip = typed(&body)?;
    if clip.after.is_some() && clip.duration.is_some() {
        return Err(ApiError::bad("give `after` or `duration`, not both".into()).key("duration"));
    }
    for (key, value) in [
        ("before", clip.before),
        ("after", clip.after),
        ("duration", clip.duration),
    ] {
        if value.is_some_and(|v| !(0.0..=3600.0).contains(&v)) {
            return Err(ApiError::bad("seconds must be within 0..=3600".into()).key(key));
        }
    }
    let by = who
        .0
        .0
        .as_ref()
        .map_or("api".to_owned(), |id| format!("api:{}", id.name));
    let request = ClipRequest {
        before: clip.before,
        after: clip.after.or(clip.duration),
        trigger: clip.trigger.unwrap_or(by),
    };
    let started = server.smart_record(&name, request).await?;
    audit(&server, &who, "clip", &name, &String::from_utf8_lossy(&body));
    Ok(json_response(&ClipAnswer {
        trigger_ns: started.trigger_ns,
        extended: started.extended,
    }))
}

async fn clip_stop(State(api): State<Api>, who: Who, Path(name): Path<String>) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Operator, Some(&name))?;
    let closed = server.stop_clips(&name).await?;
    audit(&server, &who, "clip stop", &name, "");
    let closed = closed.iter().map(|c| FileEvent::of(&name, c)).collect();
    Ok(json_response(&ClosedFiles { closed }))
}

fn jpeg(bytes: Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response()
}

async fn latest_snapshot(State(api): State<Api>, who: Who, Path(name): Path<String>) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Viewer, Some(&name))?;
    match server.latest_snapshot(&name)? {
        Some(s) => Ok(jpeg(s.jpeg)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("node `{name}` has taken no snapshot yet"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingsQuery {
    camera: Option<String>,
    kind: Option<String>,
    trigger: Option<String>,
    /// RFC 3339 or UNIX seconds: entries ending after it.
    from: Option<String>,
    /// RFC 3339 or UNIX seconds: entries starting before it.
    to: Option<String>,
}

async fn recordings(State(api): State<Api>, who: Who, query: Params<RecordingsQuery>) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Viewer, None)?;
    let q = query.get()?;
    if let Some(camera) = &q.camera {
        allow(&server, &who, Role::Viewer, Some(camera))?;
    }
    let time = |key: &str, v: &Option<String>| {
        v.as_deref()
            .map(crate::serve::clip::parse_time)
            .transpose()
            .map_err(|e| ApiError::bad(e).key(key))
    };
    let (from, to) = (time("from", &q.from)?, time("to", &q.to)?);
    let listed = {
        let server = server.clone();
        let camera = q.camera.clone();
        blocking(move || server.recordings(camera.as_deref())).await?
    };
    let entries: Vec<_> = listed
        .into_iter()
        .filter(|e| sees(&who, &e.camera))
        .filter(|e| {
            q.kind
                .as_deref()
                .is_none_or(|k| serde_json::to_value(e.kind).is_ok_and(|v| v == k))
        })
        .filter(|e| q.trigger.as_deref().is_none_or(|t| e.trigger.as_deref() == Some(t)))
        .filter(|e| from.is_none_or(|f| e.end.is_none_or(|end| end > f)))
        .filter(|e| to.is_none_or(|t| e.start < t))
        .collect();
    Ok(json_response(&entries))
}

fn recording_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad(format!("`{}` is not a recording id", id.escape_debug())))
}

async fn delete_recording(State(api): State<Api>, who: Who, Path(id): Path<String>) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Admin, None)?;
    let id = recording_id(&id)?;
    let camera = {
        let server = server.clone();
        blocking(move || server.recording(id)).await?.map(|e| e.camera)
    };
    if camera.is_some_and(|c| !sees(&who, &c)) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no recording {id}")));
    }
    let deleted = {
        let server = server.clone();
        blocking(move || server.delete_recording(id)).await?
    };
    audit(&server, &who, "recording delete", &deleted.path, &deleted.camera);
    Ok(json_response(&deleted))
}

async fn download(State(api): State<Api>, who: Who, Path(id): Path<String>) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Viewer, None)?;
    let id = recording_id(&id)?;
    let found = {
        let server = server.clone();
        blocking(move || server.recording(id)).await?
    };
    // One outside the user's grants is as absent as one that is not there:
    // walking ids tells nothing.
    let missing = || ApiError::new(StatusCode::NOT_FOUND, format!("no recording {id}"));
    let entry = found.filter(|e| sees(&who, &e.camera)).ok_or_else(missing)?;
    // The index names files under the media root; nothing else is served.
    let relative = std::path::Path::new(&entry.path);
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(missing());
    }
    let path = server.config().server.media_root.join(relative);
    let file = tokio::fs::File::open(&path).await.map_err(|_| missing())?;
    let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let name = relative
        .file_name()
        .map_or("recording".into(), |n| n.to_string_lossy().into_owned());
    let kind = match relative.extension().and_then(|e| e.to_str()) {
        Some("mp4") => "video/mp4",
        Some("mkv") => "video/x-matroska",
        Some("ts") => "video/mp2t",
        Some("jpg") => "image/jpeg",
        _ => "application/octet-stream",
    };
    let stream = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 << 10];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", name.replace(['"', '\\'], "_")),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A camera in the shape of VST's `sensor/list`.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Sensor {
    /// Its name: the id later calls use.
    name: String,
    /// The same.
    sensor_id: String,
    /// The same.
    id: String,
    /// The node's kind (`rtsp`, `v4l2`, `testsrc`, `file`).
    #[serde(rename = "type")]
    kind: &'static str,
    /// `online`, `connecting` or `offline`.
    state: &'static str,
    /// An IP camera.
    is_remote_sensor: bool,
    /// Where it is served.
    streams: SensorStreams,
}

/// A sensor's URLs.
#[derive(Serialize, JsonSchema)]
struct SensorStreams {
    /// MJPEG.
    mjpeg: String,
    /// The next picture as a JPEG.
    snapshot: String,
    /// RTSP, while the RTSP server runs (raw cameras answer 415 there: serve their encoder's stream).
    rtsp: Option<String>,
}

/// The sensors (cameras: nodes that capture) in the shape of Jetson
/// Platform Services' VST `sensor/list`: `name` is the id later calls use.
async fn sensors(State(api): State<Api>, who: Who, request: Request) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Viewer, None)?;
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| server.http_address().map(|a| a.to_string()))
        .unwrap_or_default();
    let config = server.config();
    let http = if config.server.http.tls { "https" } else { "http" };
    let list = server
        .stats()
        .nodes
        .iter()
        .filter(|n| sees(&who, &n.name))
        .filter_map(|n| Some((n, config.nodes.iter().find(|s| s.name == n.name)?)))
        .filter(|(_, spec)| {
            matches!(
                spec.props,
                NodeProps::Testsrc(_) | NodeProps::V4l2(_) | NodeProps::Rtsp(_) | NodeProps::File(_)
            )
        })
        .map(|(n, spec)| {
            let state = match n.state {
                super::NodeState::Running => "online",
                super::NodeState::Starting | super::NodeState::Reconnecting => "connecting",
                _ => "offline",
            };
            Sensor {
                name: n.name.clone(),
                sensor_id: n.name.clone(),
                id: n.name.clone(),
                kind: spec.props.kind(),
                state,
                is_remote_sensor: matches!(spec.props, NodeProps::Rtsp(_)),
                streams: SensorStreams {
                    mjpeg: format!("{http}://{host}/{}/mjpeg", n.name),
                    snapshot: format!("{http}://{host}/{}/snapshot.jpg", n.name),
                    rtsp: server.rtsp_url(&n.name),
                },
            }
        })
        .collect::<Vec<_>>();
    Ok(json_response(&list))
}

/// Every change is logged with who made it, in the audit log.
fn audit(server: &Server, who: &Signed, action: &str, target: &str, detail: &str) {
    server.audit(by(who), action, target, detail, "ok");
}

/// The signed-in user's name, `-` without users.
fn by(who: &Signed) -> &str {
    who.0.as_ref().map_or("-", |id| id.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_become_encoder_changes_and_bad_values_name_their_key() {
        let patch = |body: &'static [u8]| typed::<NodePatch>(&Bytes::from_static(body));
        let asked = patch(br#"{"bitrate": 2000000, "force_keyframe": true, "fps": 5}"#)
            .ok()
            .unwrap();
        let changes = asked.changes().ok().unwrap();
        assert!(matches!(
            changes[..],
            [
                ("bitrate", Change::Bitrate(2_000_000)),
                ("force_keyframe", Change::ForceKeyframe)
            ]
        ));
        assert_eq!(asked.other.keys().collect::<Vec<_>>(), ["fps"]);
        assert_eq!(
            patch(br#"{"bitrate": "fast"}"#).err().unwrap().key.as_deref(),
            Some("bitrate")
        );
        let unforced = patch(br#"{"force_keyframe": false}"#).ok().unwrap();
        assert_eq!(unforced.changes().err().unwrap().key.as_deref(), Some("force_keyframe"));
    }

    #[test]
    fn typed_bodies_name_the_key_at_fault() {
        let e = typed::<Login>(&Bytes::from_static(br#"{"name":"a","password":1}"#))
            .err()
            .unwrap();
        assert_eq!(e.key.as_deref(), Some("password"));
        let e = typed::<Login>(&Bytes::from_static(br#"{"name":"a","password":"b","admin":true}"#))
            .err()
            .unwrap();
        assert!(e.message.contains("admin"), "{}", e.message);
        let e = typed::<Login>(&Bytes::from_static(b"{\"name\":")).err().unwrap();
        assert!(e.message.starts_with("malformed JSON"), "{}", e.message);
        let e = object(&Bytes::from_static(b"[1]")).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
