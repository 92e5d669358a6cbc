//! The HTTP routes: the page, the stream list, and per stream
//! `/<stream>/…`: `ws` (fMP4 over WebSocket for MSE, with detection
//! metadata), `index.m3u8` / `media.m3u8` / `ts.m3u8` with `init/`, `seg/`
//! and `part/` (HLS and LL-HLS), `live.mp4`, `mjpeg` and `snapshot.jpg`;
//! and `/recordings/<camera>/<from>/<to>.mp4`, a recorded range as one MP4.
//! Every route signs the client in first when users are configured.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, Request, State as Axum};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{broadcast, mpsc, watch};

use super::mjpeg::{self, MjpegSettings, Producers};
use super::openapi::{self, MakeSchema, Route};
use super::{Backend, HttpCounters, HttpOptions, HttpStats, LiveStats, MjpegStats, Slot, StreamInfo};
use crate::hub::{Join, SubscribeOptions};
use crate::output::name::rfc3339;
use crate::serve::auth::{Authenticator, Identity, Refused};
use crate::serve::clip;
use crate::serve::cmaf::InitSegment;
use crate::serve::demand::{Hold, lock};
use crate::serve::hls::{Name, Ready, blocking_query};
use crate::serve::live::{self, LIVE_IDLE, Live, LiveFormat, Lives, Picture};
use crate::serve::rtsp::Refusal;
use crate::server::Protocol;

/// Packets a served stream's hub queue holds before it skips to a keyframe.
const QUEUE: usize = 128;
/// How long a request waits for a stream's first picture.
const FIRST_PICTURE: Duration = Duration::from_secs(5);

const PAGE: &str = include_str!("page/index.html");
const APP: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/style.css");

type Snapshots = Mutex<HashMap<String, watch::Receiver<Option<Result<Bytes, (u16, String)>>>>>;

/// What every handler shares.
pub struct State {
    pub(super) options: HttpOptions,
    auth: Arc<Authenticator>,
    backend: Arc<dyn Backend>,
    lives: Arc<Lives>,
    producers: Arc<Producers>,
    snapshots: Snapshots,
    pub(super) counters: HttpCounters,
    /// The OpenAPI document of every route, made once at start.
    pub(super) openapi: std::sync::OnceLock<Bytes>,
}

impl State {
    pub(super) fn new(options: HttpOptions, auth: Arc<Authenticator>, backend: Arc<dyn Backend>) -> Arc<State> {
        Arc::new(State {
            options,
            auth,
            backend,
            lives: Lives::new(LIVE_IDLE),
            producers: Producers::new(mjpeg::MJPEG_IDLE),
            snapshots: Mutex::new(HashMap::new()),
            counters: HttpCounters::default(),
            openapi: std::sync::OnceLock::new(),
        })
    }

    pub(super) fn stats(&self, address: SocketAddr) -> HttpStats {
        let c = &self.counters;
        HttpStats {
            address: address.to_string(),
            connections: c.connections.load(Ordering::Relaxed),
            open: c.open.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            stalled: c.stalled.load(Ordering::Relaxed),
            handshakes_failed: c.handshakes_failed.load(Ordering::Relaxed),
            live: self
                .lives
                .all()
                .iter()
                .map(|e| LiveStats {
                    stream: e.name.clone(),
                    clients: e.clients(),
                    pictures: e.state.counters.pictures.load(Ordering::Relaxed),
                    bytes: e.state.counters.bytes.load(Ordering::Relaxed),
                    hls_bytes: lock(&e.state.window).bytes(),
                })
                .collect(),
            mjpeg: self
                .producers
                .all()
                .iter()
                .map(|e| MjpegStats {
                    stream: e.name.clone(),
                    viewers: e.clients(),
                    pictures: e.state.pictures.load(Ordering::Relaxed),
                })
                .collect(),
        }
    }
}

/// Who signed in (`None`: no users are configured), in every request's
/// extensions once [`sign_in`] has let it through.
#[derive(Clone, Debug)]
pub struct Signed(pub Option<Identity>);

/// The media routes, each with its description.
pub(super) fn routes() -> Vec<Route<Arc<State>>> {
    let media = |path, summary, kind, handler| Route {
        method: Method::GET,
        path,
        summary,
        role: Some("viewer"),
        query: &[],
        body: None,
        answer: (200, kind, openapi::binary as MakeSchema),
        handler,
    };
    let page = |path, summary, kind: &'static str, body: &'static str| {
        let handler = get(move || async move { text(StatusCode::OK, kind, body) });
        media(path, summary, kind, handler)
    };
    vec![
        page(
            "/",
            "The page: every stream with its players.",
            "text/html; charset=utf-8",
            PAGE,
        ),
        page("/app.js", "The page's script.", "text/javascript; charset=utf-8", APP),
        page("/style.css", "The page's style.", "text/css; charset=utf-8", STYLE),
        Route {
            method: Method::GET,
            path: "/api/v1/openapi.json",
            summary: "This document: every route the listener serves.",
            role: Some("viewer"),
            query: &[],
            body: None,
            answer: (200, "application/json", openapi::object as MakeSchema),
            handler: get(openapi_json),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/streams",
            summary: "The streams the user may read, with format, readers and every protocol's URL.",
            role: Some("viewer"),
            query: &[],
            body: None,
            answer: (200, "application/json", openapi::schema_of::<StreamList>),
            handler: get(streams),
        },
        media(
            "/{stream}/ws",
            "fMP4 over WebSocket for MSE, with detection metadata (upgrade).",
            "application/octet-stream",
            get(websocket),
        ),
        media(
            "/{stream}/index.m3u8",
            "HLS multivariant playlist.",
            "application/vnd.apple.mpegurl",
            get(multivariant),
        ),
        Route {
            query: &[
                (
                    "_HLS_msn",
                    "Hold the answer until this media sequence number exists (LL-HLS blocking reload).",
                ),
                ("_HLS_part", "With _HLS_msn: until this part of it exists."),
            ],
            ..media(
                "/{stream}/media.m3u8",
                "LL-HLS media playlist (fMP4 segments and parts).",
                "application/vnd.apple.mpegurl",
                get(media_playlist),
            )
        },
        media(
            "/{stream}/ts.m3u8",
            "HLS media playlist of MPEG-TS segments.",
            "application/vnd.apple.mpegurl",
            get(ts_playlist),
        ),
        media(
            "/{stream}/{dir}/{file}",
            "What the playlists name: init/<n>.mp4, seg/<msn>.m4s|.ts, part/<msn>.<i>.m4s.",
            "video/mp4",
            get(hls_file),
        ),
        media(
            "/{stream}/live.mp4",
            "One endless fragmented MP4.",
            "video/mp4",
            get(live_mp4),
        ),
        media(
            "/{stream}/mjpeg",
            "MJPEG (multipart/x-mixed-replace).",
            "multipart/x-mixed-replace",
            get(mjpeg_stream),
        ),
        media(
            "/{stream}/snapshot.jpg",
            "The stream's next picture as a JPEG.",
            "image/jpeg",
            get(snapshot),
        ),
        media(
            "/recordings/{camera}/{from}/{to}",
            "A time range of a camera's recordings as one MP4 (to ends in .mp4).",
            "video/mp4",
            get(recording),
        ),
    ]
}

/// The router of the `media` routes and the `api`'s, every one signed in
/// through [`sign_in`]; unknown paths are `404`.
pub(super) fn router(state: Arc<State>, media: Router<Arc<State>>, api: Router) -> Router {
    media
        .with_state(Arc::clone(&state))
        .merge(api)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page".into()) })
        .layer(middleware::from_fn_with_state(state, sign_in))
}

async fn openapi_json(Axum(state): Axum<Arc<State>>) -> Response {
    let document = state.openapi.get().cloned().unwrap_or_default();
    text(StatusCode::OK, "application/json", document)
}

/// What `GET /api/v1/streams` answers.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct StreamList {
    /// The streams.
    pub streams: Vec<StreamView>,
}

/// One stream of [`StreamList`].
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct StreamView {
    /// Its name.
    #[serde(flatten)]
    pub info: StreamInfo,
    /// Its URL per protocol (`null` where it has none).
    pub urls: StreamUrls,
}

/// Where a stream is served.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct StreamUrls {
    /// fMP4 over WebSocket.
    pub ws: Option<String>,
    /// HLS (the multivariant playlist).
    pub hls: Option<String>,
    /// HLS of MPEG-TS segments.
    pub ts: Option<String>,
    /// Endless fragmented MP4.
    pub mp4: Option<String>,
    /// MJPEG.
    pub mjpeg: Option<String>,
    /// The next picture as a JPEG.
    pub snapshot: Option<String>,
    /// RTSP.
    pub rtsp: Option<String>,
}

fn text(status: StatusCode, kind: &'static str, body: impl Into<Body>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")],
        body.into(),
    )
        .into_response()
}

fn error(status: StatusCode, message: String) -> Response {
    text(status, "text/plain; charset=utf-8", message + "\n")
}

fn refused(r: Refusal) -> Response {
    match r {
        Refusal::NotFound(m) => error(StatusCode::NOT_FOUND, m),
        Refusal::Forbidden(m) => error(StatusCode::FORBIDDEN, m),
    }
}

/// The one route served before signing in: signing in.
const LOGIN: &str = "/api/v1/login";

/// A request from another site's page, refused: a WebSocket, or anything
/// but GET and HEAD, whose `Origin` is not this server (or that says
/// `Sec-Fetch-Site: cross-site`). Browsers let any page open a WebSocket or
/// send a form anywhere, with the user's credentials and from inside their
/// machine; they always say where it comes from. Programs say neither.
fn cross_site(request: &Request) -> bool {
    let headers = request.headers();
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|u| u.to_str().ok())
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    if !upgrade && !changes {
        return false;
    }
    if headers
        .get("sec-fetch-site")
        .is_some_and(|s| s.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let from = origin.to_str().unwrap_or("");
    from.strip_prefix("http://").or_else(|| from.strip_prefix("https://")) != Some(host)
}

async fn sign_in(Axum(state): Axum<Arc<State>>, mut request: Request, next: Next) -> Response {
    if cross_site(&request) {
        return error(
            StatusCode::FORBIDDEN,
            "a request from another site's page is refused (its Origin is not this server)".into(),
        );
    }
    if !state.auth.required() {
        // Without users the listener is on loopback; a page of another site
        // whose name was made to point here (DNS rebinding) names its own host.
        let host = request.headers().get(header::HOST).map(|h| h.to_str().unwrap_or("?"));
        if let Some(host) = host.filter(|h| !loopback_host(h)) {
            let shown: String = host.chars().take(60).collect();
            return error(
                StatusCode::FORBIDDEN,
                format!(
                    "Host `{shown}` is not this machine: without [[server.users]] only 127.0.0.1, [::1] and localhost are served"
                ),
            );
        }
        request.extensions_mut().insert(Signed(None));
        return next.run(request).await;
    }
    // Signing in is the one thing done before signing in.
    if request.method() == Method::POST && request.uri().path() == LOGIN {
        request.extensions_mut().insert(Signed(None));
        return next.run(request).await;
    }
    let in_query = (state.options.query_token && request.method() == Method::GET)
        .then(|| query_token(request.uri()))
        .flatten();
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| in_query.as_ref().map(|(token, _)| token.clone()));
    let method = request.method().as_str().to_owned();
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let from = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |c| c.0.ip());
    // A password hash takes a while to check: off the serving threads.
    let auth = Arc::clone(&state.auth);
    let checked = tokio::task::spawn_blocking(move || {
        auth.check(authorization.as_deref(), &method, &target, from, SystemTime::now())
    })
    .await
    .unwrap_or(Err(Refused::Wrong));
    let who = match checked {
        Ok(who) => who,
        Err(why) => {
            let status = match why {
                Refused::Throttled => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNAUTHORIZED,
            };
            let mut response = error(status, why.message().into());
            for challenge in state.auth.challenges(SystemTime::now(), true) {
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    response.headers_mut().append(header::WWW_AUTHENTICATE, v);
                }
            }
            return response;
        }
    };
    // The token leaves the URL: handlers (and their logs) never see it.
    if let Some((_, rest)) = in_query {
        *request.uri_mut() = rest;
    }
    request.extensions_mut().insert(Signed(Some(who)));
    next.run(request).await
}

/// `Bearer <t>` for a `token=<t>` in `uri`'s query, and `uri` without it.
fn query_token(uri: &axum::http::Uri) -> Option<(String, axum::http::Uri)> {
    let query = uri.query()?;
    let value = query.split('&').find_map(|pair| pair.strip_prefix("token="))?;
    let token = percent_encoding::percent_decode_str(value).decode_utf8().ok()?;
    let rest: Vec<&str> = query.split('&').filter(|pair| !pair.starts_with("token=")).collect();
    let path_and_query = match rest.is_empty() {
        true => uri.path().to_owned(),
        false => format!("{}?{}", uri.path(), rest.join("&")),
    };
    let rest = path_and_query.parse().ok()?;
    Some((format!("Bearer {token}"), rest))
}

/// `localhost`, `127.0.0.1`, `[::1]` (with or without a port).
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn user(request_user: &axum::Extension<Signed>) -> Option<&str> {
    request_user.0.0.as_ref().map(|who| who.name.as_str())
}

type Who = axum::Extension<Signed>;

async fn streams(Axum(state): Axum<Arc<State>>, who: Who) -> Response {
    let streams = state
        .backend
        .streams(user(&who))
        .into_iter()
        .map(|s| {
            let fmp4 = matches!(s.codec.as_deref(), Some("h264" | "h265"));
            let jpeg = s.kind == Some("raw") || s.codec.as_deref() == Some("mjpeg");
            let url = |on: bool, tail: &str| on.then(|| format!("/{}/{tail}", s.name));
            let urls = StreamUrls {
                ws: url(fmp4, "ws"),
                hls: url(fmp4, "index.m3u8"),
                ts: url(fmp4 && state.options.hls.ts, "ts.m3u8"),
                mp4: url(fmp4, "live.mp4"),
                mjpeg: url(jpeg, "mjpeg"),
                snapshot: url(s.kind.is_some(), "snapshot.jpg"),
                rtsp: (s.kind == Some("coded"))
                    .then(|| state.backend.rtsp_url(&s.name))
                    .flatten(),
            };
            StreamView { info: s, urls }
        })
        .collect();
    text(
        StatusCode::OK,
        "application/json",
        serde_json::to_string(&StreamList { streams }).unwrap_or_default(),
    )
}

/// Holds `stream`'s fragmenting for `who` and waits for its format.
async fn live_stream(
    state: &Arc<State>,
    who: &Who,
    stream: &str,
    protocol: Protocol,
) -> Result<(Hold<Live>, Arc<InitSegment>), Response> {
    let options = SubscribeOptions::leaky(QUEUE).join(Join::LastKeyframe);
    // Access is checked for every client, not only the one that starts the work.
    state.backend.check(user(who), stream, protocol).map_err(refused)?;
    let hold = live::attach(&state.lives, stream, &state.options.hls, || {
        state.backend.open(user(who), stream, protocol, options)
    })
    .map_err(refused)?;
    match hold.entry.state.format(FIRST_PICTURE).await {
        Some(LiveFormat::Ready(init)) => Ok((hold, init)),
        Some(LiveFormat::Refused(why)) => Err(error(StatusCode::UNSUPPORTED_MEDIA_TYPE, why)),
        None => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("stream `{stream}` has sent no picture yet; try again"),
        )),
    }
}

/// What a client following a stream gets, in order.
enum Out {
    Init(Arc<InitSegment>),
    Picture(Arc<Picture>),
    Gap(u64),
}

/// Follows a stream for one client from its last keyframe: pictures go out
/// through `tx` (small and bounded: a client that does not take them makes
/// this fall behind the stream's ring, and skip to the next keyframe).
async fn follow(hold: Hold<Live>, init: Arc<InitSegment>, tx: mpsc::Sender<Out>) {
    let live = &hold.entry.state;
    let (gop, mut ring) = live.join();
    let mut version = init.version;
    if tx.send(Out::Init(init)).await.is_err() {
        return;
    }
    // Pictures kept from an older format cannot follow this init; without
    // a kept keyframe, the client waits for the next one.
    let mut backlog: VecDeque<Arc<Picture>> = gop.into_iter().filter(|p| p.chunk.init.version == version).collect();
    let mut skipping = backlog.front().is_none_or(|p| !p.chunk.keyframe);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let picture = match backlog.pop_front() {
            Some(p) => p,
            None => tokio::select! {
                got = ring.recv() => match got {
                    Ok(p) => p,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        skipping = true;
                        if tx.send(Out::Gap(n)).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    if hold.entry.is_closed() || tx.is_closed() {
                        return;
                    }
                    continue;
                }
            },
        };
        if picture.chunk.init.version != version {
            // A new format: only its own keyframe can follow its init.
            version = picture.chunk.init.version;
            skipping = true;
            if tx.send(Out::Init(Arc::clone(&picture.chunk.init))).await.is_err() {
                return;
            }
        }
        if skipping && !picture.chunk.keyframe {
            continue;
        }
        skipping = false;
        if tx.send(Out::Picture(picture)).await.is_err() {
            return;
        }
    }
}

fn init_message(init: &InitSegment) -> Utf8Bytes {
    json!({"type": "init", "mime": init.mime(), "width": init.width, "height": init.height})
        .to_string()
        .into()
}

async fn websocket(
    Axum(state): Axum<Arc<State>>,
    Path(stream): Path<String>,
    who: Who,
    slot: axum::Extension<Arc<Slot>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Err(r) = state.backend.check(user(&who), &stream, Protocol::WebSocket) {
        return refused(r);
    }
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(why) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("/{stream}/ws is a WebSocket (fMP4 for MSE): {}", why.body_text()),
            );
        }
    };
    let (hold, init) = match live_stream(&state, &who, &stream, Protocol::WebSocket).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let slot = slot.0;
    // Clients send nothing but control frames: their messages stay small.
    upgrade
        .max_message_size(64 << 10)
        .max_frame_size(64 << 10)
        .on_upgrade(move |socket| ws_client(socket, hold, init, state, slot))
}

async fn ws_client(socket: WebSocket, hold: Hold<Live>, init: Arc<InitSegment>, state: Arc<State>, _slot: Arc<Slot>) {
    let (mut sink, mut incoming) = socket.split();
    let (tx, mut rx) = mpsc::channel(2);
    let follower = tokio::spawn(follow(hold, init, tx));
    let send = async {
        while let Some(out) = rx.recv().await {
            let messages = match out {
                Out::Init(init) => vec![Message::Text(init_message(&init)), Message::Binary(init.bytes.clone())],
                Out::Gap(n) => vec![Message::Text(json!({"type": "gap", "skipped": n}).to_string().into())],
                Out::Picture(p) => {
                    vec![Message::Text(p.meta.clone()), Message::Binary(p.chunk.bytes.clone())]
                }
            };
            for m in messages {
                if let Err(e) = sink.send(m).await {
                    if super::timed_out(&e) {
                        state.counters.stalled.fetch_add(1, Ordering::Relaxed);
                    }
                    return;
                }
            }
        }
    };
    // The client's own messages are read (and dropped) so its pings and close are seen.
    let read = async {
        while let Some(Ok(m)) = incoming.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    };
    tokio::select! {
        _ = send => {}
        _ = read => {}
    }
    follower.abort();
}

async fn live_mp4(Axum(state): Axum<Arc<State>>, Path(stream): Path<String>, who: Who) -> Response {
    let (hold, init) = match live_stream(&state, &who, &stream, Protocol::Api).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(follow(hold, init, tx));
    // A new format cannot continue one MP4 file: the download ends there.
    let body = futures_util::stream::unfold((rx, 0u64), |(mut rx, mut version)| async move {
        loop {
            match rx.recv().await? {
                Out::Init(init) if version == 0 => {
                    version = init.version;
                    return Some((Ok::<_, Infallible>(init.bytes.clone()), (rx, version)));
                }
                Out::Init(_) => return None,
                Out::Gap(_) => continue,
                Out::Picture(p) => return Some((Ok(p.chunk.bytes.clone()), (rx, version))),
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "video/mp4"), (header::CACHE_CONTROL, "no-store")],
        Body::from_stream(body),
    )
        .into_response()
}

const PLAYLIST: &str = "application/vnd.apple.mpegurl";

async fn multivariant(Axum(state): Axum<Arc<State>>, Path(stream): Path<String>, who: Who) -> Response {
    let (hold, _) = match live_stream(&state, &who, &stream, Protocol::Hls).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let live = &hold.entry.state;
    let playlist = lock(&live.window).multivariant(live.fps());
    match playlist {
        Some(p) => text(StatusCode::OK, PLAYLIST, p),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "no picture yet".into()),
    }
}

/// Waits until `ready` says the window can answer, at most three target
/// durations (§6.2.5.2); then the answer, or the status to give.
async fn wait_for(live: &Live, ready: impl Fn(&Live) -> Ready) -> Result<(), Response> {
    let target = lock(&live.window).options().target_duration();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3 * target as u64);
    let mut progress = live.progress.subscribe();
    loop {
        match ready(live) {
            Ready::Now => return Ok(()),
            Ready::TooFar => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "that is too far ahead of the stream".into(),
                ));
            }
            Ready::Wait => {}
        }
        match tokio::time::timeout_at(deadline, progress.changed()).await {
            Ok(Ok(())) => {}
            _ => {
                return Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the stream did not get there in time".into(),
                ));
            }
        }
    }
}

async fn media_playlist(
    Axum(state): Axum<Arc<State>>,
    Path(stream): Path<String>,
    RawQuery(query): RawQuery,
    who: Who,
) -> Response {
    let (msn, part) = match blocking_query(query.as_deref()) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let (hold, _) = match live_stream(&state, &who, &stream, Protocol::Hls).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let live = &hold.entry.state;
    if let Some(msn) = msn
        && let Err(r) = wait_for(live, |l| lock(&l.window).playlist_ready(msn, part)).await
    {
        return r;
    }
    let playlist = lock(&live.window).media_playlist();
    text(StatusCode::OK, PLAYLIST, playlist)
}

async fn ts_playlist(Axum(state): Axum<Arc<State>>, Path(stream): Path<String>, who: Who) -> Response {
    let (hold, _) = match live_stream(&state, &who, &stream, Protocol::Hls).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let playlist = lock(&hold.entry.state.window).ts_playlist();
    match playlist {
        Some(p) => text(StatusCode::OK, PLAYLIST, p),
        None => error(
            StatusCode::NOT_FOUND,
            format!("stream `{stream}` has no MPEG-TS variant (off in [server.http.hls], or its codec has none)"),
        ),
    }
}

fn media(kind: &'static str, parts: Vec<Bytes>) -> Response {
    let len: usize = parts.iter().map(Bytes::len).sum();
    let body = futures_util::stream::iter(parts.into_iter().map(Ok::<_, Infallible>));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (header::CACHE_CONTROL, HeaderValue::from_static("max-age=60")),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

async fn hls_file(
    Axum(state): Axum<Arc<State>>,
    Path((stream, dir, file)): Path<(String, String, String)>,
    who: Who,
) -> Response {
    let Some(name) = Name::parse(&dir, &file) else {
        return error(StatusCode::NOT_FOUND, format!("no file {dir}/{file} in an HLS stream"));
    };
    let (hold, _) = match live_stream(&state, &who, &stream, Protocol::Hls).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let live = &hold.entry.state;
    if let Name::Part(msn, part) = name
        && let Err(r) = wait_for(live, |l| lock(&l.window).part_ready(msn, part)).await
    {
        return r;
    }
    let window = lock(&live.window);
    let found = match name {
        Name::Init(v) => window
            .init()
            .filter(|i| i.version == v)
            .map(|i| ("video/mp4", vec![i.bytes.clone()])),
        Name::Segment(m) => window
            .segment(m)
            .filter(|s| s.complete)
            .map(|s| ("video/mp4", s.chunks().cloned().collect())),
        Name::TsSegment(m) => window
            .segment(m)
            .and_then(|s| s.ts.clone())
            .map(|ts| ("video/mp2t", vec![ts])),
        Name::Part(m, p) => window.part(m, p).map(|p| ("video/mp4", p.chunks.clone())),
    };
    drop(window);
    match found {
        Some((kind, parts)) => media(kind, parts),
        None => error(
            StatusCode::NOT_FOUND,
            format!("{dir}/{file} of stream `{stream}` is not (or no longer) held"),
        ),
    }
}

const BOUNDARY: &str = "eyrie-mjpeg";

async fn mjpeg_stream(Axum(state): Axum<Arc<State>>, Path(stream): Path<String>, who: Who) -> Response {
    let options = SubscribeOptions::leaky(2).join(Join::LastKeyframe);
    if let Err(r) = state.backend.check(user(&who), &stream, Protocol::Mjpeg) {
        return refused(r);
    }
    let settings = MjpegSettings {
        fps: state.options.mjpeg_fps,
        quality: state.options.jpeg_quality,
    };
    let hold = match mjpeg::attach(&state.producers, &stream, settings, || {
        state.backend.open(user(&who), &stream, Protocol::Mjpeg, options)
    }) {
        Ok(h) => h,
        Err(r) => return refused(r),
    };
    let mut latest = hold.entry.state.subscribe();
    match tokio::time::timeout(FIRST_PICTURE, latest.wait_for(Option::is_some)).await {
        Ok(Ok(got)) => {
            if let Some(Err(why)) = &*got {
                return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, why.clone());
            }
        }
        _ => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("stream `{stream}` has sent no picture yet; try again"),
            );
        }
    }
    latest.mark_changed();
    // Each viewer takes the latest picture when it is ready for one: a
    // slow viewer skips pictures, it never queues them.
    let body = futures_util::stream::unfold(
        (latest, hold, VecDeque::<Bytes>::new()),
        |(mut latest, hold, mut pending)| async move {
            loop {
                if let Some(b) = pending.pop_front() {
                    return Some((Ok::<_, Infallible>(b), (latest, hold, pending)));
                }
                latest.changed().await.ok()?;
                let jpeg = match &*latest.borrow_and_update() {
                    Some(Ok(j)) => j.clone(),
                    _ => return None,
                };
                let head = format!(
                    "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                    jpeg.len()
                );
                pending.extend([Bytes::from(head), jpeg, Bytes::from_static(b"\r\n")]);
            }
        },
    );
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("multipart/x-mixed-replace; boundary=eyrie-mjpeg"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// A snapshot taken (or abandoned, even by a panic): the next request takes a new one.
struct Taken {
    state: Arc<State>,
    stream: String,
    tx: watch::Sender<Option<Result<Bytes, (u16, String)>>>,
}

impl Drop for Taken {
    fn drop(&mut self) {
        let mut map = lock(&self.state.snapshots);
        if map
            .get(&self.stream)
            .is_some_and(|rx| rx.same_channel(&self.tx.subscribe()))
        {
            map.remove(&self.stream);
        }
    }
}

async fn snapshot(Axum(state): Axum<Arc<State>>, Path(stream): Path<String>, who: Who) -> Response {
    if let Err(r) = state.backend.check(user(&who), &stream, Protocol::Api) {
        return refused(r);
    }
    // Concurrent requests share one picture (one decode of a keyframe).
    let mut result = {
        let mut map = lock(&state.snapshots);
        match map.get(&stream).filter(|rx| rx.borrow().is_none()) {
            Some(rx) => rx.clone(),
            None => {
                let (tx, rx) = watch::channel(None);
                map.insert(stream.clone(), rx.clone());
                let taking = state
                    .backend
                    .snapshot(user(&who), &stream, state.options.jpeg_quality, FIRST_PICTURE);
                let done = Taken {
                    state: Arc::clone(&state),
                    stream: stream.clone(),
                    tx,
                };
                tokio::spawn(async move {
                    let _ = done.tx.send(Some(taking.await.map(|s| s.jpeg)));
                    drop(done);
                });
                rx
            }
        }
    };
    let outcome = match result.wait_for(Option::is_some).await {
        Ok(got) => got.clone().expect("waited for it"),
        Err(_) => Err((500, "the snapshot was abandoned".into())),
    };
    match outcome {
        Ok(jpeg) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            jpeg,
        )
            .into_response(),
        Err((status, why)) => error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            why,
        ),
    }
}

async fn recording(
    Axum(state): Axum<Arc<State>>,
    Path((camera, from, to)): Path<(String, String, String)>,
    who: Who,
) -> Response {
    let Some(to) = to.strip_suffix(".mp4") else {
        return error(
            StatusCode::NOT_FOUND,
            "a recorded range is /recordings/<camera>/<from>/<to>.mp4".into(),
        );
    };
    let (from, to) = match (clip::parse_time(&from), clip::parse_time(to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, e),
    };
    match to.duration_since(from) {
        Ok(d) if d > Duration::ZERO && d <= clip::MAX_RANGE => {}
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "the range must end after it starts, and span at most {} h",
                    clip::MAX_RANGE.as_secs() / 3600
                ),
            );
        }
    }
    let (root, entries) = match state.backend.recordings(user(&who), &camera) {
        Ok(r) => r,
        Err((status, why)) => {
            return error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                why,
            );
        }
    };
    let files = clip::overlapping(&entries, from, to);
    if files.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no recording of `{camera}` between {} and {}",
                rfc3339(from),
                rfc3339(to)
            ),
        );
    }
    // Files are read and remuxed on a blocking thread, one at a time, as
    // fast as the client takes them.
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, String>>(2);
    tokio::task::spawn_blocking(move || {
        let mut clip = clip::Clip::new(from, to);
        for file in &files {
            let part = clip::read(&root, file).and_then(|packets| clip.push_file(file.start, &packets));
            let failed = part.is_err();
            if tx.blocking_send(part).is_err() || failed || clip.ended() {
                break;
            }
        }
        let _ = tx.blocking_send(clip.finish());
    });
    // The first part decides the status.
    let first = loop {
        match rx.recv().await {
            Some(Ok(b)) if b.is_empty() => continue,
            Some(Ok(b)) => break b,
            Some(Err(e)) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("recording of `{camera}`: {e}"),
                );
            }
            None => return error(StatusCode::NOT_FOUND, format!("no picture of `{camera}` in that range")),
        }
    };
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await? {
            Ok(b) => Some((Ok::<_, std::io::Error>(b), rx)),
            // Mid-file there is no status left to change: the download stops short.
            Err(e) => Some((Err(std::io::Error::other(e)), rx)),
        }
    });
    let body = futures_util::stream::once(async move { Ok(first) }).chain(rest);
    (
        [(header::CONTENT_TYPE, "video/mp4"), (header::CACHE_CONTROL, "no-store")],
        Body::from_stream(body),
    )
        .into_response()
}
