//! The one HTTP listener of Eyrie (`[server.http]`): the page, HLS and
//! LL-HLS, fMP4 over WebSocket, `live.mp4`, MJPEG and snapshots, and later
//! the control API — routes added to one [`axum::Router`], served by our own
//! accept loop over hyper (HTTP/1.1, RFC 9112) so that the header size, the
//! number of connections, stalled writers and shutdown are bounded here.
//!
//! - [`routes`]: the router and its handlers (recorded ranges through [`crate::serve::clip`]);
//! - [`mjpeg`]: one JPEG encoder per raw stream for all its MJPEG viewers.

pub mod mjpeg;
pub mod openapi;
pub mod routes;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::auth::{Authenticator, User};
use super::hls::HlsOptions;
use super::rtsp::Refusal;
use super::tls::Wire;
use crate::hub::{SubscribeOptions, Subscription};
use crate::output::index::Entry;
use crate::output::snapshot::Snapshot;
use crate::server::Protocol;
use tokio_rustls::TlsAcceptor;

/// The `[server.http]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpOptions {
    /// Serve HTTP at all.
    pub enabled: bool,
    /// Address and port to listen on. Anything but a loopback address needs
    /// `[[server.users]]`.
    pub listen: String,
    /// HTTPS only, with the certificate of `[server.tls]`.
    pub tls: bool,
    /// Most connections at once (more are answered 503 and closed).
    pub max_connections: usize,
    /// Largest request head (request line and headers), bytes; larger is
    /// answered 431.
    pub max_header_bytes: usize,
    /// Seconds a client may take to send its request head.
    pub header_timeout: f64,
    /// Seconds a client may leave what it was sent unread before it is
    /// disconnected (stuck viewers).
    pub write_timeout: f64,
    /// Most MJPEG pictures per second of a raw stream (encoded once for all viewers).
    pub mjpeg_fps: f64,
    /// JPEG quality of MJPEG and snapshots, 1–100.
    pub jpeg_quality: u8,
    /// HLS and LL-HLS (`[server.http.hls]`).
    pub hls: HlsOptions,
    /// Accept a token as `?token=` on GET requests, for players that cannot
    /// send an `Authorization` header (a URL with a token may end up in
    /// logs and histories: off unless turned on).
    pub query_token: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            enabled: true,
            listen: "127.0.0.1:8080".into(),
            tls: false,
            max_connections: 2048,
            max_header_bytes: 16 << 10,
            header_timeout: 10.0,
            write_timeout: 10.0,
            mjpeg_fps: 10.0,
            jpeg_quality: 80,
            hls: HlsOptions::default(),
            query_token: false,
        }
    }
}

impl HttpOptions {
    /// Checks values beyond their types: (key, message).
    pub fn check(&self, users: &[User]) -> Result<(), (String, String)> {
        let err = |k: &str, m: String| Err((k.to_owned(), m));
        if !self.enabled {
            return Ok(());
        }
        super::check_listen(&self.listen, users, "127.0.0.1:8080").map_err(|m| ("listen".to_owned(), m))?;
        if self.max_connections == 0 {
            return err("max_connections", "must be at least 1".into());
        }
        if !(8192..=1 << 20).contains(&self.max_header_bytes) {
            return err(
                "max_header_bytes",
                format!("{} is outside 8192..=1048576", self.max_header_bytes),
            );
        }
        for (key, v) in [
            ("header_timeout", self.header_timeout),
            ("write_timeout", self.write_timeout),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 3600.0) {
                return err(key, format!("{v} is not a number of seconds in (0, 3600]"));
            }
        }
        if !(self.mjpeg_fps.is_finite() && self.mjpeg_fps > 0.0 && self.mjpeg_fps <= 120.0) {
            return err("mjpeg_fps", format!("{} is outside (0, 120]", self.mjpeg_fps));
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return err("jpeg_quality", format!("{} is outside 1..=100", self.jpeg_quality));
        }
        self.hls.check().map_err(|(k, m)| (format!("hls.{k}"), m))
    }
}

/// What the page lists about a stream.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct StreamInfo {
    /// Its name.
    pub name: String,
    /// `raw` or `coded` (`null` before its first format).
    pub kind: Option<&'static str>,
    /// The codec of a coded stream.
    pub codec: Option<String>,
    /// Picture width.
    pub width: Option<u32>,
    /// Picture height.
    pub height: Option<u32>,
    /// Frames per second, when known.
    pub fps: Option<f64>,
    /// Readers now (every protocol and node).
    pub subscribers: usize,
}

/// A snapshot being taken; its error is an HTTP status and why.
pub type SnapshotFuture = Pin<Box<dyn Future<Output = Result<Snapshot, (u16, String)>> + Send>>;

/// The server as the HTTP listener reads it: the one door to its streams.
pub trait Backend: Send + Sync + 'static {
    /// A reader of `stream` for `user` (`None`: anonymous) over `protocol`.
    fn open(
        &self,
        user: Option<&str>,
        stream: &str,
        protocol: Protocol,
        options: SubscribeOptions,
    ) -> Result<Subscription, Refusal>;
    /// Whether `user` may read `stream` over `protocol` (and it is published).
    fn check(&self, user: Option<&str>, stream: &str, protocol: Protocol) -> Result<(), Refusal>;
    /// The streams `user` may read, by name.
    fn streams(&self, user: Option<&str>) -> Vec<StreamInfo>;
    /// A JPEG of the next picture of `stream`.
    fn snapshot(&self, user: Option<&str>, stream: &str, quality: u8, timeout: Duration) -> SnapshotFuture;
    /// The RTSP URL of `stream`, when the RTSP server runs.
    fn rtsp_url(&self, stream: &str) -> Option<String>;
    /// The media root and the recordings of `camera` `user` may read; the
    /// error is an HTTP status and why.
    fn recordings(&self, user: Option<&str>, camera: &str) -> Result<(PathBuf, Vec<Entry>), (u16, String)>;
}

/// Counters of the listener.
#[derive(Debug, Default)]
pub struct HttpCounters {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections refused (over `max_connections`).
    pub refused: AtomicU64,
    /// Connections open now.
    pub open: AtomicUsize,
    /// Connections closed because the client stopped reading.
    pub stalled: AtomicU64,
    /// TLS handshakes that failed or did not end in time.
    pub handshakes_failed: AtomicU64,
}

/// Stats of the HTTP listener.
#[derive(Clone, Debug, Serialize)]
pub struct HttpStats {
    /// Its address.
    pub address: String,
    /// Connections accepted so far.
    pub connections: u64,
    /// Connections open now.
    pub open: usize,
    /// Connections refused for being over the limit.
    pub refused: u64,
    /// Connections dropped because the client stopped reading.
    pub stalled: u64,
    /// TLS handshakes that failed or did not end in time.
    pub handshakes_failed: u64,
    /// Streams fragmented now (fMP4, HLS, WebSocket, `live.mp4`), with their viewers.
    pub live: Vec<LiveStats>,
    /// Raw streams encoded to JPEG now, with their viewers.
    pub mjpeg: Vec<MjpegStats>,
}

/// One stream fragmented for HTTP clients.
#[derive(Clone, Debug, Serialize)]
pub struct LiveStats {
    /// The stream.
    pub stream: String,
    /// Clients holding it.
    pub clients: usize,
    /// Pictures fragmented.
    pub pictures: u64,
    /// Bytes of chunks made (once for all clients).
    pub bytes: u64,
    /// Bytes of HLS segments held.
    pub hls_bytes: usize,
}

/// One raw stream encoded to JPEG.
#[derive(Clone, Debug, Serialize)]
pub struct MjpegStats {
    /// The stream.
    pub stream: String,
    /// Viewers.
    pub viewers: usize,
    /// JPEGs encoded (or passed through).
    pub pictures: u64,
}

/// The running listener.
pub struct HttpServer {
    address: SocketAddr,
    stop: watch::Sender<bool>,
    state: Arc<routes::State>,
}

impl HttpServer {
    /// Binds `options.listen` and serves on `runtime`: the media routes and
    /// `api`'s, every one signed in through `auth`; HTTPS through `tls`.
    pub fn start(
        options: HttpOptions,
        tls: Option<TlsAcceptor>,
        auth: Arc<Authenticator>,
        backend: Arc<dyn Backend>,
        api: (axum::Router, Vec<openapi::Doc>),
        runtime: &tokio::runtime::Handle,
    ) -> io::Result<HttpServer> {
        raise_open_files(options.max_connections);
        let std_listener = std::net::TcpListener::bind(&options.listen)?;
        std_listener.set_nonblocking(true)?;
        let address = std_listener.local_addr()?;
        let state = routes::State::new(options.clone(), auth, backend);
        let (stop, stopped) = watch::channel(false);
        let listener = {
            let _guard = runtime.enter();
            TcpListener::from_std(std_listener)?
        };
        let (api, api_docs) = api;
        let (media, mut docs) = openapi::build(routes::routes());
        docs.extend(api_docs);
        let document = serde_json::to_vec_pretty(&openapi::document(&docs)).unwrap_or_default();
        let _ = state.openapi.set(Bytes::from(document));
        let router = routes::router(Arc::clone(&state), media, api);
        runtime.spawn(accept_loop(listener, tls, Arc::clone(&state), router, stopped));
        Ok(HttpServer { address, stop, state })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting and ends every HTTP connection (WebSockets end with the runtime).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Its counters now.
    pub fn stats(&self) -> HttpStats {
        self.state.stats(self.address)
    }
}

/// Raises the soft limit of open files to fit `connections` and what the
/// rest of the server opens (as far as the hard limit allows), or says
/// that accepting will fail first.
fn raise_open_files(connections: usize) {
    let want = connections as libc::rlim_t + 512;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a struct of the right type.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= want {
            return;
        }
        let raised = libc::rlimit {
            rlim_cur: want.min(limit.rlim_max),
            rlim_max: limit.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 && raised.rlim_cur >= want {
            return;
        }
    }
    tracing::warn!(
        max_connections = connections,
        open_files = limit.rlim_max,
        "the open-files limit is below max_connections: connections beyond it fail to be accepted"
    );
}

/// A plain answer for a connection over the limit (no request is read).
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 38\r\nretry-after: 5\r\nconnection: close\r\n\r\ntoo many connections; try again later\n";

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<routes::State>,
    router: axum::Router,
    mut stopped: watch::Receiver<bool>,
) {
    let options = &state.options;
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let refusals = Arc::new(Semaphore::new(64));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(options.max_header_bytes.max(8192))
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs_f64(options.header_timeout));
    let write_timeout = Duration::from_secs_f64(options.write_timeout);
    let handshake_timeout = Duration::from_secs_f64(options.header_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or the like: wait rather than spin.
                    tracing::warn!("HTTP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let counters = &state.counters;
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            // A few are told why (the rest of a flood is just closed): the
            // answer, the end of what we send, then what they sent is read
            // away so the close is not a reset that hides the answer.
            if let Ok(telling) = Arc::clone(&refusals).try_acquire_owned() {
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let mut stream = stream;
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        stream.write_all(BUSY).await?;
                        stream.shutdown().await?;
                        let mut sink = [0u8; 4096];
                        while stream.read(&mut sink).await? > 0 {}
                        Ok::<_, io::Error>(())
                    })
                    .await;
                    drop(telling);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        if let Err(e) = super::set_send_buffer(&stream, SEND_BUFFER) {
            tracing::debug!("SO_SNDBUF not set: {e}");
        }
        counters.connections.fetch_add(1, Ordering::Relaxed);
        counters.open.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            _permit: permit,
            state: Arc::clone(&state),
        });
        let router = router.clone();
        let held = Arc::clone(&slot);
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            // A WebSocket keeps its connection's slot after the upgrade.
            request.extensions_mut().insert(Arc::clone(&held));
            let router = router.clone();
            async move {
                use tower::ServiceExt;
                router.oneshot(request.map(axum::body::Body::new)).await
            }
        });
        let (state, mut stopping, tls, http) = (Arc::clone(&state), stopped.clone(), tls.clone(), http.clone());
        tokio::spawn(async move {
            // The handshake is bounded like a request head.
            let wire = match Wire::accept(stream, tls.as_ref(), handshake_timeout).await {
                Ok(wire) => wire,
                Err(e) => {
                    state.counters.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
            };
            let io = hyper_util::rt::TokioIo::new(TimedIo::new(wire, write_timeout));
            let mut connection = http.serve_connection(io, service).with_upgrades();
            let ended = tokio::select! {
                ended = &mut connection => ended,
                _ = async { drop(stopping.wait_for(|stop| *stop).await) } => {
                    // A request in progress gets a moment; endless streams are cut after it.
                    std::pin::Pin::new(&mut connection).graceful_shutdown();
                    tokio::time::timeout(Duration::from_secs(1), connection).await.unwrap_or(Ok(()))
                }
            };
            if let Err(e) = ended
                && timed_out(&e)
            {
                state.counters.stalled.fetch_add(1, Ordering::Relaxed);
            }
            drop(slot);
        });
    }
}

/// A connection's place among the `max_connections`, held by its task and
/// by a WebSocket it became.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    state: Arc<routes::State>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.state.counters.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Kernel memory a connection may fill with unread bytes: a stuck viewer
/// holds at most this (and stalls, to be dropped after `write_timeout`);
/// enough for 40 Mbit/s at 100 ms round trip.
const SEND_BUFFER: libc::c_int = 512 << 10;

/// True when `e` (or what caused it) is a write that timed out: a client
/// that stopped reading.
pub fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return io.kind() == io::ErrorKind::TimedOut;
        }
        source = s.source();
    }
    false
}

/// A socket whose writes fail once they have waited `timeout` for the
/// client to read: a viewer that stops reading is dropped, whatever it
/// watches (HTTP bodies and WebSockets alike).
pub struct TimedIo {
    inner: Wire,
    timeout: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TimedIo {
    /// `inner` with writes bounded by `timeout`.
    pub fn new(inner: Wire, timeout: Duration) -> Self {
        TimedIo {
            inner,
            timeout,
            stalled: None,
        }
    }

    fn wait<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client stopped reading",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl AsyncRead for TimedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wait(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wait(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.wait(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
