//! The network listeners of a server on their one shared tokio runtime,
//! reading streams through the server's one door
//! ([`Server::open_reader`](super::Server::open_reader)).

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::config::ServerConfig;
use crate::hub::{Join, StreamFormat, SubscribeOptions, Subscription};
use crate::output::index::Entry;
use crate::serve::auth::Authenticator;
use crate::serve::http::{Backend, HttpServer, SnapshotFuture, StreamInfo};
use crate::serve::rtsp::{Refusal, RtspServer, Streams};
use crate::serve::tls::ServerCertificate;

use super::{Inner, Principal, Protocol, Server, ServerError};

/// Packets a served stream's hub queue holds before it skips to a keyframe.
const FEED_QUEUE: usize = 128;

pub(super) struct Serving {
    runtime: tokio::runtime::Runtime,
    pub(super) rtsp: Option<RtspServer>,
    pub(super) http: Option<HttpServer>,
    /// The certificate of HTTPS and RTSPS, read again on reload.
    pub(super) certificate: Option<Arc<ServerCertificate>>,
}

/// The server as the listeners see it (weakly: they do not keep it alive).
struct Door(Weak<Inner>);

impl Door {
    fn server(&self) -> Result<Server, Refusal> {
        self.0
            .upgrade()
            .map(|inner| Server { inner })
            .ok_or_else(|| Refusal::NotFound("the server is stopping".into()))
    }
}

fn principal(user: Option<&str>) -> Principal {
    user.map_or(Principal::Anonymous, |u| Principal::User(u.to_owned()))
}

fn refusal(e: ServerError) -> Refusal {
    match e.kind() {
        super::ErrorKind::NotFound => Refusal::NotFound(e.to_string()),
        _ => Refusal::Forbidden(e.to_string()),
    }
}

impl Streams for Door {
    fn open(&self, user: Option<&str>, stream: &str) -> Result<Subscription, Refusal> {
        // The feed keeps the last GOP itself, so it starts from the cached one.
        let options = SubscribeOptions::leaky(FEED_QUEUE).join(Join::LastKeyframe);
        self.server()?
            .open_reader(&principal(user), stream, Protocol::Rtsp, options)
            .map_err(refusal)
    }

    fn check(&self, user: Option<&str>, stream: &str) -> Result<(), Refusal> {
        self.server()?
            .check_reader(&principal(user), stream, Protocol::Rtsp)
            .map_err(refusal)
    }
}

impl Backend for Door {
    fn open(
        &self,
        user: Option<&str>,
        stream: &str,
        protocol: Protocol,
        options: SubscribeOptions,
    ) -> Result<Subscription, Refusal> {
        self.server()?
            .open_reader(&principal(user), stream, protocol, options)
            .map_err(refusal)
    }

    fn check(&self, user: Option<&str>, stream: &str, protocol: Protocol) -> Result<(), Refusal> {
        self.server()?
            .check_reader(&principal(user), stream, protocol)
            .map_err(refusal)
    }

    fn streams(&self, user: Option<&str>) -> Vec<StreamInfo> {
        let Ok(server) = self.server() else {
            return Vec::new();
        };
        let who = principal(user);
        let hub = server.hub();
        hub.stream_stats()
            .into_iter()
            .filter(|s| s.publishers > 0)
            .filter(|s| server.check_reader(&who, &s.name, Protocol::Api).is_ok())
            .map(|s| {
                let mut info = StreamInfo {
                    name: s.name.clone(),
                    kind: None,
                    codec: None,
                    width: None,
                    height: None,
                    fps: None,
                    subscribers: s.subscribers,
                };
                match hub.format_of(&s.name) {
                    Some(StreamFormat::Video(v)) => {
                        info.kind = Some("raw");
                        (info.width, info.height, info.fps) = (Some(v.width), Some(v.height), Some(v.fps.as_f64()));
                    }
                    Some(StreamFormat::Coded(p)) => {
                        info.kind = Some("coded");
                        info.codec = Some(p.codec.to_string());
                        (info.width, info.height) = (Some(p.width), Some(p.height));
                    }
                    None => {}
                }
                info
            })
            .collect()
    }

    fn snapshot(&self, _user: Option<&str>, stream: &str, quality: u8, timeout: Duration) -> SnapshotFuture {
        let server = match self.server() {
            Ok(s) => s,
            Err(_) => return Box::pin(async { Err((503, "the server is stopping".to_owned())) }),
        };
        let pending = server.snapshot(stream, None, quality, timeout);
        Box::pin(async move { pending.await.map_err(|e| (e.kind().http_status(), e.to_string())) })
    }

    fn recordings(&self, user: Option<&str>, camera: &str) -> Result<(PathBuf, Vec<Entry>), (u16, String)> {
        let server = self.server().map_err(|_| (503, "the server is stopping".to_owned()))?;
        server
            .check_grant(&principal(user), camera)
            .map_err(|e| (e.kind().http_status(), e.to_string()))?;
        let entries = server.recordings(Some(camera)).map_err(|e| (503, e.to_string()))?;
        Ok((server.config().server.media_root, entries))
    }

    fn rtsp_url(&self, stream: &str) -> Option<String> {
        self.server().ok()?.rtsp_url(stream)
    }
}

/// How much the serving threads yield to the pipeline's (a nice value):
/// when clients ask for more than the CPUs have, serving them slows down,
/// capture, inference, encoding and recording do not.
const SERVING_NICE: libc::c_int = 10;

/// Lowers the calling thread's priority to [`SERVING_NICE`] (Linux: a
/// thread's own nice value, by its thread id).
fn yield_to_the_pipeline() {
    // SAFETY: gettid and setpriority on the calling thread only.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, SERVING_NICE)
    };
    if rc != 0 {
        tracing::debug!(
            "cannot lower a serving thread's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

impl Serving {
    pub(super) fn start(
        config: &ServerConfig,
        auth: Arc<Authenticator>,
        server: Weak<Inner>,
    ) -> Result<Serving, ServerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("eyrie-serve")
            .on_thread_start(yield_to_the_pipeline)
            .enable_all()
            .build()
            .map_err(|source| ServerError::Listen {
                protocol: "anything (no runtime)",
                address: String::new(),
                source,
            })?;
        let certificate = if (config.rtsp.enabled && config.rtsp.tls) || (config.http.enabled && config.http.tls) {
            let certificate = ServerCertificate::load(&config.tls).map_err(ServerError::Certificate)?;
            tracing::info!(sha256 = %certificate.fingerprint(), "TLS certificate loaded");
            Some(certificate)
        } else {
            None
        };
        let acceptor = |on: bool, protocol: &'static str, address: &str, alpn: &[&[u8]]| {
            let Some(certificate) = certificate.as_ref().filter(|_| on) else {
                return Ok(None);
            };
            certificate
                .acceptor(alpn)
                .map(Some)
                .map_err(|message| ServerError::Listen {
                    protocol,
                    address: address.to_owned(),
                    source: std::io::Error::other(message),
                })
        };
        let rtsp = if config.rtsp.enabled {
            let server = RtspServer::start(
                config.rtsp.clone(),
                acceptor(config.rtsp.tls, "RTSPS", &config.rtsp.listen, &[])?,
                Arc::clone(&auth),
                Arc::new(Door(server.clone())),
                runtime.handle(),
            )
            .map_err(|source| ServerError::Listen {
                protocol: "RTSP",
                address: config.rtsp.listen.clone(),
                source,
            })?;
            let scheme = if config.rtsp.tls { "rtsps" } else { "rtsp" };
            tracing::info!(address = %server.local_addr(), scheme, "RTSP server listening");
            Some(server)
        } else {
            None
        };
        let http = if config.http.enabled {
            let http = HttpServer::start(
                config.http.clone(),
                acceptor(config.http.tls, "HTTPS", &config.http.listen, &[b"http/1.1"])?,
                auth,
                Arc::new(Door(server.clone())),
                super::api::router(server),
                runtime.handle(),
            )
            .map_err(|source| ServerError::Listen {
                protocol: "HTTP",
                address: config.http.listen.clone(),
                source,
            })?;
            let scheme = if config.http.tls { "https" } else { "http" };
            tracing::info!(address = %http.local_addr(), scheme, "HTTP listener listening");
            Some(http)
        } else {
            None
        };
        Ok(Serving {
            runtime,
            rtsp,
            http,
            certificate,
        })
    }

    fn stop_listeners(&self) {
        if let Some(r) = &self.rtsp {
            r.stop();
        }
        if let Some(h) = &self.http {
            h.stop();
        }
    }

    /// Closes every connection and waits (briefly) for the tasks to end.
    pub(super) fn stop(self) {
        self.stop_listeners();
        self.runtime.shutdown_timeout(Duration::from_secs(2));
    }

    /// The same, from any thread (even one of the runtime's own), without waiting.
    pub(super) fn stop_in_background(self) {
        self.stop_listeners();
        self.runtime.shutdown_background();
    }
}
