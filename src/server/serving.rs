//! The network listeners of a server on their one shared tokio runtime,
//! reading streams through the server's one door
//! ([`Server::open_reader`](super::Server::open_reader)).

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::config::ServerConfig;
use crate::hub::{Join, SubscribeOptions, Subscription};
use crate::serve::rtsp::{Refusal, RtspServer, Streams};

use super::{Inner, Principal, Protocol, Server, ServerError};

/// Packets a served stream's hub queue holds before it skips to a keyframe.
const FEED_QUEUE: usize = 128;

pub(super) struct Serving {
    runtime: tokio::runtime::Runtime,
    pub(super) rtsp: Option<RtspServer>,
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

impl Serving {
    pub(super) fn start(config: &ServerConfig, server: Weak<Inner>) -> Result<Serving, ServerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("eyrie-serve")
            .enable_all()
            .build()
            .map_err(|source| ServerError::Listen {
                protocol: "anything (no runtime)",
                address: String::new(),
                source,
            })?;
        let rtsp = if config.rtsp.enabled {
            let server = RtspServer::start(
                config.rtsp.clone(),
                config.users.clone(),
                Arc::new(Door(server)),
                runtime.handle(),
            )
            .map_err(|source| ServerError::Listen {
                protocol: "RTSP",
                address: config.rtsp.listen.clone(),
                source,
            })?;
            tracing::info!(address = %server.local_addr(), "RTSP server listening");
            Some(server)
        } else {
            None
        };
        Ok(Serving { runtime, rtsp })
    }

    /// Closes every connection and waits (briefly) for the tasks to end.
    pub(super) fn stop(self) {
        if let Some(r) = &self.rtsp {
            r.stop();
        }
        self.runtime.shutdown_timeout(Duration::from_secs(2));
    }

    /// The same, from any thread (even one of the runtime's own), without waiting.
    pub(super) fn stop_in_background(self) {
        if let Some(r) = &self.rtsp {
            r.stop();
        }
        self.runtime.shutdown_background();
    }
}
