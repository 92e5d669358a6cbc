//! The node registry: turns a [`Config`] into running nodes, tracks their state
//! and stats, relinks them at run time, and shuts them down in order (producers
//! first, so every consumer drains its input to the end of stream and finalizes).

mod admin;
mod api;
mod encode;
mod file;
mod infer;
mod node;
mod osd;
mod push;
mod reader;
mod record;
mod relay;
mod reply;
mod rtsp;
mod serving;
mod smart;
mod snapshot;
mod testsrc;
mod tile;
mod track;
mod trigger;
mod v4l2;
mod webhook;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, ConfigError, NodeProps, NodeSpec};

use crate::encode::Change;
use crate::events::EventSubscription;
use crate::hub::{Hub, StreamStats, SubStats, SubscribeOptions, Subscription, SubscriptionControl};
use crate::media::{Clock, MonotonicClock, PoolStats, bytes_copied};
use crate::output::index::Entry;
use crate::output::recorder::Closed;
use crate::output::ring::CacheStats;
use crate::output::snapshot::Snapshot;
use crate::serve::auth::{Authenticator, random_key};
use crate::serve::http::HttpStats;
use crate::serve::rtsp::RtspStats;
pub use admin::Applied;
pub use node::NodeState;
use node::{Env, NodeCtx, NodeShared};
pub use reader::{Principal, Protocol};
use reply::Answer;
pub use reply::Pending;
pub use smart::{ClipRequest, ClipStarted};
pub use webhook::WebhookStats;

/// What kind of failure a [`ServerError`] is: what an HTTP or RTSP status
/// says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request or its data is wrong (HTTP 400).
    InvalidInput,
    /// No such node, stream or file (404).
    NotFound,
    /// Signed in, but not allowed: a role or a grant is missing (403).
    Forbidden,
    /// The request clashes with the server's state (409).
    Conflict,
    /// A node, device, camera or the storage cannot serve it now (503).
    Unavailable,
    /// No answer within the request's deadline (504).
    Timeout,
    /// A bug or an unexpected failure (500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status that says the same.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidInput => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::Forbidden => 403,
            ErrorKind::Conflict => 409,
            ErrorKind::Unavailable => 503,
            ErrorKind::Timeout => 504,
            ErrorKind::Internal => 500,
        }
    }
}

/// Errors of the server layer. [`ServerError::kind`] says what kind each is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A node could not start.
    #[error("node `{name}` ({kind}) cannot start: {message}")]
    Start {
        /// The node.
        name: String,
        /// Its kind.
        kind: &'static str,
        /// Why.
        message: String,
    },
    /// No node has this name.
    #[error("no node named `{0}`")]
    NoSuchNode(String),
    /// No stream of this name is published.
    #[error("no stream `{0}` is published")]
    NoSuchStream(String),
    /// The user's grants do not cover the stream or node.
    #[error("user `{user}` may not use `{name}`")]
    Forbidden {
        /// The user.
        user: String,
        /// The stream or node.
        name: String,
    },
    /// A listener could not start.
    #[error("cannot serve {protocol} on {address}: {source}")]
    Listen {
        /// The protocol, e.g. "RTSP".
        protocol: &'static str,
        /// The address it was to listen on.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key of `[server.tls]` cannot be used.
    #[error("the TLS certificate cannot be used: {0}")]
    Certificate(String),
    /// A node of this name exists already.
    #[error("a node named `{0}` exists already")]
    Exists(String),
    /// Other nodes read the node's stream, so it cannot be removed.
    #[error("node `{node}` feeds {}: remove or relink them first", by.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "))]
    InUse {
        /// The node.
        node: String,
        /// The nodes that listen to it.
        by: Vec<String>,
    },
    /// The node does not listen to a stream, so it cannot be relinked.
    #[error("node `{0}` listens to no stream (only consumers can be relinked)")]
    NotAConsumer(String),
    /// The node is not of the kind the request is for.
    #[error("node `{node}` is not {expected}")]
    WrongKind {
        /// The node.
        node: String,
        /// What the request needs, e.g. "an encoder".
        expected: &'static str,
    },
    /// The media root or the recordings index cannot be used.
    #[error("{message}")]
    Storage {
        /// What went wrong.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A request to a node failed.
    #[error("node `{node}`: {message}")]
    Failed {
        /// The node.
        node: String,
        /// What kind of failure.
        kind: ErrorKind,
        /// What went wrong.
        message: String,
    },
    /// A configuration change that only a restart of the process applies.
    #[error("{0} changed: that needs a restart of eyrie (nothing was applied)")]
    NeedsRestart(String),
    /// A change that leaves a node's settings invalid.
    #[error("node `{node}`: {message}")]
    Invalid {
        /// The node.
        node: String,
        /// What is wrong.
        message: String,
    },
    /// The node did not answer in time.
    #[error("node `{node}` did not answer within {:.1} s", waited.as_secs_f64())]
    Timeout {
        /// The node.
        node: String,
        /// How long the caller waited.
        waited: Duration,
    },
}

impl ServerError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ServerError::Config(_)
            | ServerError::NotAConsumer(_)
            | ServerError::WrongKind { .. }
            | ServerError::Invalid { .. }
            | ServerError::Certificate(_) => ErrorKind::InvalidInput,
            ServerError::NoSuchNode(_) | ServerError::NoSuchStream(_) => ErrorKind::NotFound,
            ServerError::Forbidden { .. } => ErrorKind::Forbidden,
            ServerError::Exists(_) | ServerError::InUse { .. } | ServerError::NeedsRestart(_) => ErrorKind::Conflict,
            ServerError::Start { .. } | ServerError::Storage { .. } | ServerError::Listen { .. } => {
                ErrorKind::Unavailable
            }
            ServerError::Failed { kind, .. } => *kind,
            ServerError::Timeout { .. } => ErrorKind::Timeout,
        }
    }

    fn ended(node: &str) -> Self {
        ServerError::Failed {
            node: node.to_owned(),
            kind: ErrorKind::Unavailable,
            message: "the node has ended".into(),
        }
    }

    fn storage(message: String) -> Self {
        ServerError::Storage { message, source: None }
    }
}

/// Stats of one node.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct NodeStats {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: &'static str,
    /// Its state.
    pub state: NodeState,
    /// Why it failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The stream it listens to now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_to: Option<String>,
    /// Frames/packets received.
    pub frames_in: u64,
    /// Frames/packets published.
    pub frames_out: u64,
    /// Frames/packets lost: pool exhausted or late (sources), input queue full (consumers).
    pub frames_dropped: u64,
    /// Times a source lost its device or connection and reopened it.
    pub reconnects: u64,
    /// Frame bytes the node copied (0 on a zero-copy path).
    pub bytes_copied: u64,
    /// Output rate, measured between the first and last frame out.
    pub fps: f64,
    /// The input queue (consumers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<SubStats>,
    /// The buffer pool (producers that own one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolStats>,
    /// Mean µs per frame of each stage of the node's work, for nodes that
    /// time it (`infer`: `preprocess`, `inference`, `decode_nms`; `track`,
    /// `osd`, `tile`: theirs).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stages_us: BTreeMap<&'static str, f64>,
    /// What the node's packet cache holds in memory (`smartrecord`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheStats>,
}

/// Stats of the whole server.
#[derive(Clone, Debug, Serialize)]
pub struct ServerStats {
    /// Seconds since start.
    pub uptime_s: f64,
    /// Bytes of frame data copied by the process (0 on a zero-copy path).
    pub bytes_copied: u64,
    /// Every node, upstream first.
    pub nodes: Vec<NodeStats>,
    /// Every stream of the hub.
    pub streams: Vec<StreamStats>,
    /// The RTSP server's clients and streams, while it serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtsp: Option<RtspStats>,
    /// The HTTP listener's connections and streams, while it serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpStats>,
    /// Each webhook's deliveries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<WebhookStats>,
}

struct Running {
    name: String,
    shared: Arc<NodeShared>,
    input: Option<SubscriptionControl>,
    /// How the API steers it, for kinds that take requests.
    control: Option<Control>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops the node: a producer ends its stream, a consumer drains its
    /// queue to the end and finalizes. Returns once its thread has ended.
    fn stop(&mut self) {
        self.shared.request_stop();
        if let Some(input) = &self.input {
            input.close();
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            self.shared
                .set_state(NodeState::Failed, Some("the node's thread panicked".into()));
            tracing::error!(node = %self.name, "node panicked");
        }
    }
}

/// The request channel of a node that takes requests.
enum Control {
    Infer(infer::Inputs),
    Encoder(encode::Changes),
    Record(record::Commands),
    Snapshot(crate::output::snapshot::Latest),
}

/// A running set of nodes: a handle that every thread and task may hold
/// (clones share the server; it stops when the last one is dropped, or at
/// [`Server::shutdown`]). Nodes are found by name and can be added and
/// removed while it runs.
///
/// ```no_run
/// use eyrie::config::Config;
/// use eyrie::hub::SubscribeOptions;
/// use eyrie::server::{Principal, Protocol, Server};
///
/// let server = Server::start(Config::default_demo())?;
/// // Any thread or task may hold a clone.
/// let api = server.clone();
/// std::thread::spawn(move || println!("{} nodes", api.stats().nodes.len()));
/// // A reader of a published stream, through the one door readers use.
/// let reader = server.open_reader(&Principal::Embedded, "cam0", Protocol::Embedded, SubscribeOptions::leaky(4))?;
/// let _first = reader.recv();
/// // Requests answer within their deadline, from a thread (`wait`) or a task (`.await`).
/// let snapshot = server.snapshot("cam0", None, 85, std::time::Duration::from_secs(2)).wait()?;
/// println!("{} bytes of JPEG", snapshot.jpeg.len());
/// server.shutdown();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

struct Inner {
    hub: Hub,
    clock: Arc<dyn Clock>,
    env: Arc<Env>,
    started_ns: i64,
    /// How long a request waits for a node's answer.
    timeout: Duration,
    /// Who may sign in, on every listener.
    auth: Arc<Authenticator>,
    /// Where events are POSTed.
    webhooks: Mutex<Vec<webhook::Webhook>>,
    /// The audit log and the API tokens.
    store: crate::control::store::Store,
    /// The config file changes are written back to ([`Server::persist_to`]);
    /// its lock orders the writes.
    config_file: Mutex<Option<(std::path::PathBuf, crate::config::ServerConfig)>>,
    /// Held through [`Server::apply`]: one at a time.
    apply_lock: Mutex<()>,
    /// True while [`Server::apply`] runs: its steps write nothing back.
    applying: std::sync::atomic::AtomicBool,
    registry: Mutex<Registry>,
    /// The network listeners, once [`Server::serve`] started them.
    serving: Mutex<Option<serving::Serving>>,
}

/// The nodes and the configuration that describes them, changed together.
/// Starting and stopping a node happen outside its lock; meanwhile the node
/// is in `adding` or `removing`, so its name stays taken.
struct Registry {
    config: Config,
    /// In flow order (see [`Config::flow_order`]).
    nodes: Vec<Running>,
    /// Nodes being started.
    adding: Vec<NodeSpec>,
    /// Nodes being stopped.
    removing: Vec<String>,
}

impl Registry {
    /// Where node `name` is among the running ones.
    fn index(&self, name: &str) -> Result<usize, ServerError> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| ServerError::NoSuchNode(name.to_owned()))
    }

    fn running(&self, node: &str) -> Result<&Running, ServerError> {
        self.nodes
            .iter()
            .find(|n| n.name == node)
            .ok_or_else(|| ServerError::NoSuchNode(node.to_owned()))
    }

    fn spec_mut(&mut self, node: &str) -> &mut NodeSpec {
        self.config
            .nodes
            .iter_mut()
            .find(|n| n.name == node)
            .expect("every running node has its description")
    }

    /// Stats of `nodes`, with what their descriptions say.
    fn stats_of(&self, nodes: &[Running]) -> Vec<NodeStats> {
        nodes
            .iter()
            .filter_map(|n| Some(node_stats(n, self.config.nodes.iter().find(|s| s.name == n.name)?)))
            .collect()
    }

    /// Puts the running nodes in flow order again (after an addition).
    fn reorder(&mut self) {
        let order: Vec<&str> = self
            .config
            .flow_order()
            .into_iter()
            .map(|i| self.config.nodes[i].name.as_str())
            .collect();
        self.nodes
            .sort_by_key(|n| order.iter().position(|name| *name == n.name));
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let registry = self.registry.get_mut().unwrap_or_else(|e| e.into_inner());
        for n in &mut registry.nodes {
            n.stop();
        }
        if let Some(serving) = self.serving.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            serving.stop_in_background();
        }
    }
}

/// How long a request waits for a node's answer by default.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl Server {
    /// Starts every node of `config` on a fresh hub and the real clock.
    pub fn start(config: Config) -> Result<Server, ServerError> {
        Self::start_with(config, Hub::new(), Arc::new(MonotonicClock::new()))
    }

    /// Starts every node of `config` on `hub`, timed by `clock`. If a node
    /// cannot start, those already started are shut down and the error returned.
    pub fn start_with(config: Config, hub: Hub, clock: Arc<dyn Clock>) -> Result<Server, ServerError> {
        config.validate()?;
        let key = if config.server.users.is_empty() {
            random_key()
        } else {
            admin::load_key(&config.server.media_root)?
        };
        let auth = Arc::new(Authenticator::new(config.server.users.clone(), key));
        let store = crate::control::store::Store::open(&config.server.media_root).map_err(ServerError::storage)?;
        for token in store.tokens().map_err(ServerError::storage)? {
            auth.allow_token(&token.id);
        }
        let started_ns = clock.now_ns();
        let env = Arc::new(Env::new(
            Arc::clone(&clock),
            config.server.media_root.clone(),
            config.server.retention,
        ));
        // Before the nodes: their first events are delivered too.
        let webhooks = config
            .server
            .webhooks
            .iter()
            .map(|w| {
                webhook::Webhook::start(w.clone(), &env.events).map_err(|message| ServerError::Start {
                    name: w.url.clone(),
                    kind: "webhook",
                    message,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let server = Server {
            inner: Arc::new(Inner {
                hub,
                clock,
                env,
                started_ns,
                timeout: REQUEST_TIMEOUT,
                auth,
                webhooks: Mutex::new(webhooks),
                store,
                config_file: Mutex::new(None),
                apply_lock: Mutex::new(()),
                applying: Default::default(),
                registry: Mutex::new(Registry {
                    config: Config {
                        server: config.server.clone(),
                        nodes: Vec::new(),
                    },
                    nodes: Vec::new(),
                    adding: Vec::new(),
                    removing: Vec::new(),
                }),
                serving: Mutex::new(None),
            }),
        };
        // Consumers first: their subscriptions exist before the first frame is published.
        let mut started = Vec::new();
        for i in config.flow_order().into_iter().rev() {
            match server.spawn(&config.nodes[i]) {
                Ok(running) => started.push(running),
                Err(e) => {
                    // Producers first, as at shutdown.
                    started.iter_mut().rev().for_each(Running::stop);
                    return Err(e);
                }
            }
        }
        let count = started.len();
        {
            let mut registry = server.registry();
            registry.config = config;
            registry.nodes = started;
            registry.reorder();
        }
        tracing::info!(nodes = count, "server started");
        Ok(server)
    }

    fn webhooks(&self) -> MutexGuard<'_, Vec<webhook::Webhook>> {
        self.inner.webhooks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.inner.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spawn(&self, spec: &NodeSpec) -> Result<Running, ServerError> {
        let env = &self.inner.env;
        let name: Arc<str> = spec.name.as_str().into();
        let shared = Arc::new(NodeShared::new(
            Arc::clone(&self.inner.clock),
            Arc::clone(&name),
            spec.props.kind(),
            env.events.clone(),
        ));
        let ctx = NodeCtx {
            name,
            hub: self.inner.hub.clone(),
            shared: Arc::clone(&shared),
            env: Arc::clone(env),
        };
        let started = match (&spec.props, &spec.listen_to) {
            (NodeProps::Testsrc(o), _) => testsrc::spawn(ctx, o.clone()).map(|t| (t, None, None)),
            (NodeProps::V4l2(o), _) => v4l2::spawn(ctx, o.clone()).map(|t| (t, None, None)),
            (NodeProps::Rtsp(o), _) => rtsp::spawn(ctx, o.clone()).map(|t| (t, None, None)),
            (NodeProps::File(o), _) => file::spawn(ctx, o.clone()).map(|t| (t, None, None)),
            (NodeProps::Infer(o), _) => {
                infer::spawn(ctx, (**o).clone()).map(|(t, inputs)| (t, None, Some(Control::Infer(inputs))))
            }
            (_, None) => Err("needs `listen_to`".to_owned()),
            (NodeProps::Relay(o), Some(up)) => relay::spawn(ctx, up, o).map(|(t, c)| (t, Some(c), None)),
            (NodeProps::Encode(o), Some(up)) => {
                encode::spawn(ctx, up, o.clone()).map(|(t, c, changes)| (t, Some(c), Some(Control::Encoder(changes))))
            }
            (NodeProps::Record(o), Some(up)) => {
                record::spawn(ctx, up, o.clone()).map(|(t, c, commands)| (t, Some(c), Some(Control::Record(commands))))
            }
            (NodeProps::SmartRecord(o), Some(up)) => smart::spawn(ctx, up, o.clone()).map(|(t, c, commands)| {
                // Reachable by triggers' threads as well as the API: kept in one place, the env.
                env.register_smart_record(&spec.name, commands);
                (t, Some(c), None)
            }),
            (NodeProps::Snapshot(o), Some(up)) => {
                snapshot::spawn(ctx, up, o.clone()).map(|(t, c, latest)| (t, Some(c), Some(Control::Snapshot(latest))))
            }
            (NodeProps::Trigger(o), Some(up)) => trigger::spawn(ctx, up, o.clone()).map(|(t, c)| (t, Some(c), None)),
            (NodeProps::Track(o), Some(up)) => track::spawn(ctx, up, o.clone()).map(|(t, c)| (t, Some(c), None)),
            (NodeProps::Osd(o), Some(up)) => osd::spawn(ctx, up, o.clone()).map(|(t, c)| (t, Some(c), None)),
            (NodeProps::Tile(o), Some(up)) => tile::spawn(ctx, up, o.clone()).map(|(t, c)| (t, Some(c), None)),
            (NodeProps::Rtp(o), Some(up)) => push::spawn(ctx, up, o.clone()).map(|(t, c)| (t, Some(c), None)),
        };
        let (thread, input, control) = started.map_err(|message| ServerError::Start {
            name: spec.name.clone(),
            kind: spec.props.kind(),
            message,
        })?;
        tracing::debug!(node = %spec.name, kind = spec.props.kind(), "node started");
        Ok(Running {
            name: spec.name.clone(),
            shared,
            input,
            control,
            thread: Some(thread),
        })
    }

    /// The hub the nodes publish to; products subscribe to any stream here.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// The configuration as it stands now (relinks, changes, added and
    /// removed nodes included).
    pub fn config(&self) -> Config {
        self.registry().config.clone()
    }

    /// The configuration as it stands now as TOML, as a config file would
    /// say it; passwords, hashes, webhook secrets and camera credentials are
    /// shown as `***`.
    pub fn config_toml(&self) -> Result<String, String> {
        let mut config = self.config();
        for user in &mut config.server.users {
            for secret in [&mut user.password, &mut user.password_hash].into_iter().flatten() {
                *secret = "***".into();
            }
        }
        for secret in config.server.webhooks.iter_mut().filter_map(|w| w.secret.as_mut()) {
            *secret = "***".into();
        }
        toml::to_string(&config).map_err(|e| format!("cannot write the configuration as TOML: {e}"))
    }

    /// Starts a new node described by `spec`, checked like the config file's
    /// nodes (its name must be new, what it listens to must exist). A new
    /// consumer joins its stream at the next keyframe.
    pub fn add_node(&self, spec: NodeSpec) -> Result<(), ServerError> {
        {
            let mut registry = self.registry();
            let taken = |name: &str| {
                registry
                    .config
                    .nodes
                    .iter()
                    .chain(&registry.adding)
                    .any(|n| n.name == name)
                    || registry.removing.iter().any(|n| n == name)
            };
            if taken(&spec.name) {
                return Err(ServerError::Exists(spec.name));
            }
            let mut next = registry.config.clone();
            next.nodes.extend(registry.adding.iter().cloned());
            next.nodes.push(spec.clone());
            next.validate()?;
            registry.adding.push(spec.clone());
        }
        // Outside the lock: a node may take long to start (an infer node
        // loads its model), and other requests go on meanwhile.
        let started = self.spawn(&spec);
        let mut registry = self.registry();
        registry.adding.retain(|n| n.name != spec.name);
        let running = started?;
        tracing::info!(node = %spec.name, kind = spec.props.kind(), "node added");
        registry.config.nodes.push(spec);
        registry.nodes.push(running);
        registry.reorder();
        drop(registry);
        self.persist();
        Ok(())
    }

    /// Stops and removes node `name`: a source ends its stream, a consumer
    /// drains its queue and finalizes (a recording is closed playable).
    /// Returns its final stats. A node other nodes listen to is refused:
    /// remove or relink them first.
    pub fn remove_node(&self, name: &str) -> Result<NodeStats, ServerError> {
        let mut running = {
            let mut registry = self.registry();
            let index = registry.index(name)?;
            let by: Vec<String> = registry
                .config
                .nodes
                .iter()
                .chain(&registry.adding)
                .filter(|n| n.name != name && n.refers_to(name))
                .map(|n| n.name.clone())
                .collect();
            if !by.is_empty() {
                return Err(ServerError::InUse {
                    node: name.to_owned(),
                    by,
                });
            }
            let spec = registry.spec_mut(name).clone();
            registry.config.nodes.retain(|n| n.name != name);
            registry.removing.push(name.to_owned());
            self.inner.env.forget_smart_record(name);
            (registry.nodes.remove(index), spec)
        };
        // Outside the registry's lock: a node that takes long to finalize
        // holds up no other request; its name stays taken until it has.
        running.0.stop();
        self.registry().removing.retain(|n| n != name);
        tracing::info!(node = name, "node removed");
        self.persist();
        Ok(node_stats(&running.0, &running.1))
    }

    /// Stops node `name` without removing it (GstD's `pipeline_stop`): a
    /// source ends its stream, a consumer drains its queue and finalizes (a
    /// recording is closed playable). Its description, links and last stats
    /// stay; the nodes reading its stream stay subscribed and go on when
    /// [`Server::play_node`] starts it again. Stopping a stopped node does
    /// nothing. Not written back to the config file: a restart plays every node.
    pub fn stop_node(&self, name: &str) -> Result<(), ServerError> {
        let mut running = {
            let mut registry = self.registry();
            let index = registry.index(name)?;
            if registry.nodes[index].thread.is_none() {
                return Ok(());
            }
            registry.removing.push(name.to_owned());
            self.inner.env.forget_smart_record(name);
            registry.nodes.remove(index)
        };
        // Outside the lock, as in remove_node.
        running.stop();
        let mut registry = self.registry();
        registry.removing.retain(|n| n != name);
        registry.nodes.push(running);
        registry.reorder();
        tracing::info!(node = name, "node stopped");
        Ok(())
    }

    /// Starts node `name` again from its description (GstD's
    /// `pipeline_play`) after [`Server::stop_node`], or after it ended by
    /// itself (a file played to its end, a failure). A running node is left
    /// as it is. If it cannot start, it stays stopped and the error says why.
    pub fn play_node(&self, name: &str) -> Result<(), ServerError> {
        let (mut old, spec) = {
            let mut registry = self.registry();
            let index = registry.index(name)?;
            if registry.nodes[index].thread.as_ref().is_some_and(|t| !t.is_finished()) {
                return Ok(());
            }
            registry.removing.push(name.to_owned());
            (registry.nodes.remove(index), registry.spec_mut(name).clone())
        };
        // Joins a thread that ended by itself.
        old.stop();
        let started = self.spawn(&spec);
        let mut registry = self.registry();
        registry.removing.retain(|n| n != name);
        let result = match started {
            Ok(running) => {
                registry.nodes.push(running);
                tracing::info!(node = name, "node playing again");
                Ok(())
            }
            Err(e) => {
                registry.nodes.push(old);
                Err(e)
            }
        };
        registry.reorder();
        result
    }

    /// Replaces node `spec.name` by a new one described by `spec` (a
    /// restart with new settings): the old one stops as at removal — its
    /// consumers see the end of its stream and stay subscribed — and the new
    /// one publishes under the same name. If the new one cannot start, the
    /// node is gone and the error says why.
    pub fn replace_node(&self, spec: NodeSpec) -> Result<(), ServerError> {
        let old = {
            let mut registry = self.registry();
            let index = registry.index(&spec.name)?;
            let mut next = registry.config.clone();
            next.nodes.extend(registry.adding.iter().cloned());
            *next
                .nodes
                .iter_mut()
                .find(|n| n.name == spec.name)
                .expect("every running node has its description") = spec.clone();
            next.validate()?;
            registry.removing.push(spec.name.clone());
            self.inner.env.forget_smart_record(&spec.name);
            (registry.nodes.remove(index), registry.spec_mut(&spec.name).clone())
        };
        let (mut old, old_spec) = old;
        // Outside the lock, as in add_node and remove_node.
        old.stop();
        // A new description that cannot start: the old one runs again, so
        // the nodes that read its stream keep a source and the configuration stays whole.
        let started = self.spawn(&spec).map_err(|e| (e, self.spawn(&old_spec)));
        let mut registry = self.registry();
        registry.removing.retain(|n| *n != spec.name);
        match started {
            Ok(running) => {
                *registry.spec_mut(&spec.name) = spec.clone();
                registry.nodes.push(running);
                registry.reorder();
                tracing::info!(node = %spec.name, "node restarted with new settings");
                drop(registry);
                self.persist();
                Ok(())
            }
            Err((e, Ok(running))) => {
                registry.nodes.push(running);
                registry.reorder();
                tracing::warn!(node = %spec.name, "the new settings did not start ({e}): the old ones run again");
                Err(e)
            }
            Err((e, Err(again))) => {
                registry.config.nodes.retain(|n| n.name != spec.name);
                drop(registry);
                tracing::error!(node = %spec.name, "neither the new nor the old settings start ({again}): the node is gone");
                self.persist();
                Err(e)
            }
        }
    }

    /// Relinks consumer `node` to `stream` without restarting it.
    pub fn relink(&self, node: &str, stream: &str) -> Result<(), ServerError> {
        let mut registry = self.registry();
        let running = registry.running(node)?;
        if let Some(Control::Infer(_)) = running.control {
            return Err(ServerError::Invalid {
                node: node.to_owned(),
                message: "an infer node has several inputs: relink one with relink_input".into(),
            });
        }
        let input = running
            .input
            .as_ref()
            .ok_or_else(|| ServerError::NotAConsumer(node.to_owned()))?;
        input.relink(stream);
        // The configuration records links to nodes: what a restart can run
        // (a stream the embedding product publishes is not one; stats show
        // the link as it is).
        if registry.config.nodes.iter().any(|n| n.name == stream) {
            registry.spec_mut(node).listen_to = Some(stream.to_owned());
        }
        drop(registry);
        tracing::info!(node, stream, "relinked");
        self.persist();
        Ok(())
    }

    /// Moves input `input` of the `infer` node `node` (a name in its `inputs`)
    /// to `stream`, as [`Server::relink`] does for one-input nodes. The
    /// input's policy becomes `stream`'s in `policies` (or the default
    /// `policy`) and starts afresh (frame count, period, motion background);
    /// the old stream's frames the node held are dropped, so none comes out
    /// after this returns; a `track` node downstream starts new tracks for
    /// the input, whose frames now come from another camera.
    pub fn relink_input(&self, node: &str, input: &str, stream: &str) -> Result<(), ServerError> {
        let (inputs, slot, policy) = {
            let registry = self.registry();
            let running = registry.running(node)?;
            let spec = registry.config.nodes.iter().find(|n| n.name == node);
            let (Some(Control::Infer(inputs)), Some(NodeProps::Infer(options))) =
                (&running.control, spec.map(|s| &s.props))
            else {
                return Err(wrong_kind(node, "an infer node"));
            };
            let slot = options
                .inputs
                .iter()
                .position(|i| i == input)
                .ok_or_else(|| ServerError::Invalid {
                    node: node.to_owned(),
                    message: format!("`{input}` is not one of its inputs ({})", options.inputs.join(", ")),
                })?;
            let policy = options.policies.get(stream).unwrap_or(&options.policy).clone();
            (inputs.clone(), slot, policy)
        };
        // Outside the registry's lock: the node may take a while to answer.
        let taken_in = inputs.relink(slot, stream, policy);
        // The subscription has moved either way (a node slow to answer takes
        // the rest in later): the configuration says so, when it is a node's.
        let mut registry = self.registry();
        let is_node = registry.config.nodes.iter().any(|n| n.name == stream);
        if let Some(NodeProps::Infer(options)) = registry
            .config
            .nodes
            .iter_mut()
            .find(|n| n.name == node)
            .map(|n| &mut n.props)
            && is_node
        {
            options.inputs[slot] = stream.to_owned();
        }
        drop(registry);
        self.persist();
        taken_in.map_err(|message| ServerError::Failed {
            node: node.to_owned(),
            kind: ErrorKind::Timeout,
            message,
        })?;
        tracing::info!(node, input, stream, "relinked");
        Ok(())
    }

    /// Changes a running encoder (bitrate, rate control, keyframe interval,
    /// profile/level, quality, or a keyframe now). It applies before the
    /// encoder's next frame; one the backend refuses is logged and the
    /// encoder runs on unchanged.
    pub fn change_encoder(&self, node: &str, change: Change) -> Result<(), ServerError> {
        let mut registry = self.registry();
        let Some(Control::Encoder(changes)) = &registry.running(node)?.control else {
            return Err(wrong_kind(node, "an encoder"));
        };
        let changes = changes.clone();
        if let NodeProps::Encode(settings) = &mut registry.spec_mut(node).props {
            let mut next = settings.clone();
            next.apply(change);
            next.validate().map_err(|message| ServerError::Invalid {
                node: node.to_owned(),
                message,
            })?;
            *settings = next;
        }
        drop(registry);
        // A send fails only when the node has ended; there is nothing left to change then.
        let _ = changes.send(change);
        if change != Change::ForceKeyframe {
            self.persist();
        }
        Ok(())
    }

    fn record_commands(&self, node: &str) -> Result<record::Commands, ServerError> {
        match &self.registry().running(node)?.control {
            Some(Control::Record(commands)) => Ok(commands.clone()),
            _ => Err(wrong_kind(node, "a record node")),
        }
    }

    /// Starts a `record` node recording (nothing changes if it is).
    pub fn start_recording(&self, node: &str) -> Result<(), ServerError> {
        self.record_commands(node)?
            .send(record::Command::Start)
            .map_err(|_| ServerError::ended(node))
    }

    /// Stops a `record` node recording; answers once its file is finalized,
    /// with that file (`None` if none was open).
    pub fn stop_recording(&self, node: &str) -> Pending<Option<Closed>> {
        self.ask(node, |answer| {
            self.record_commands(node)
                .map(|commands| commands.send(record::Command::Stop(answer)).is_ok())
        })
    }

    /// Sends a request to `node` (`send` says whether the node took it, or
    /// why it cannot be asked) and returns its pending answer.
    fn ask<T>(&self, node: &str, send: impl FnOnce(Answer<T>) -> Result<bool, ServerError>) -> Pending<T> {
        let (answer, pending) = reply::request(node, self.inner.timeout);
        match send(answer) {
            Ok(true) => pending,
            Ok(false) => Pending::ready(node, Err(ServerError::ended(node))),
            Err(e) => Pending::ready(node, Err(e)),
        }
    }

    fn smart_commands(&self, node: &str) -> Result<smart::Commands, ServerError> {
        self.registry().running(node)?;
        self.inner
            .env
            .smart_record(node)
            .ok_or_else(|| wrong_kind(node, "a smartrecord node"))
    }

    /// Triggers a clip on a `smartrecord` node: from the last keyframe at or
    /// before now − `before` to now + `after` (extending a running clip
    /// unless the node allows overlapping clips).
    pub fn smart_record(&self, node: &str, clip: ClipRequest) -> Pending<ClipStarted> {
        let at_ns = self.inner.clock.now_ns();
        self.ask(node, |reply| {
            self.smart_commands(node).map(|commands| {
                commands
                    .send(smart::Command::Start {
                        request: clip,
                        at_ns,
                        reply,
                    })
                    .is_ok()
            })
        })
    }

    /// Ends the running clips of a `smartrecord` node now; answers with them, finalized.
    pub fn stop_clips(&self, node: &str) -> Pending<Vec<Closed>> {
        self.ask(node, |reply| {
            self.smart_commands(node)
                .map(|commands| commands.send(smart::Command::Stop(reply)).is_ok())
        })
    }

    /// A JPEG of the next picture of `stream` (a raw stream's next frame, a
    /// coded stream's next keyframe), answered within `timeout`; written to
    /// `path` (relative to the media root; `{camera}`, `{utc}`… allowed) and
    /// listed in the index when a path is given. The work runs on its own
    /// thread: the caller waits only if it wants to.
    pub fn snapshot(&self, stream: &str, path: Option<&str>, quality: u8, timeout: Duration) -> Pending<Snapshot> {
        let invalid = |message| {
            Pending::ready(
                stream,
                Err(ServerError::Invalid {
                    node: stream.to_owned(),
                    message,
                }),
            )
        };
        if let Some(Err(e)) = path.map(crate::output::name::check_template) {
            return invalid(e);
        }
        if !(1..=100).contains(&quality) {
            return invalid(format!("quality {quality} is out of range 1..=100"));
        }
        let sub = match self.open_reader(&Principal::Internal, stream, Protocol::Api, SubscribeOptions::leaky(2)) {
            Ok(sub) => sub,
            Err(e) => return Pending::ready(stream, Err(e)),
        };
        let (answer, pending) = reply::request(stream, timeout);
        let env = Arc::clone(&self.inner.env);
        let (stream, path) = (stream.to_owned(), path.map(str::to_owned));
        let taken = std::thread::Builder::new()
            .name(format!("snapshot:{stream}"))
            .spawn(move || {
                let result = crate::output::snapshot::take(&sub, timeout, quality)
                    .map_err(|e| (ErrorKind::Unavailable, e))
                    .and_then(|snapshot| match &path {
                        // The caller has given up: nothing is written behind its back.
                        Some(_) if answer.expired() => Err((ErrorKind::Timeout, "too late: not saved".into())),
                        Some(p) => snapshot::save(&env, &stream, snapshot, p, Some("api"))
                            .map_err(|e| (ErrorKind::Unavailable, e)),
                        None => Ok(snapshot),
                    });
                answer.send_kind(result);
            });
        match taken {
            Ok(_) => pending,
            Err(e) => Pending::ready(
                "snapshot",
                Err(ServerError::Failed {
                    node: "snapshot".into(),
                    kind: ErrorKind::Internal,
                    message: format!("cannot start its thread: {e}"),
                }),
            ),
        }
    }

    /// The latest snapshot of a `snapshot` node (`None` before its first).
    pub fn latest_snapshot(&self, node: &str) -> Result<Option<Snapshot>, ServerError> {
        match &self.registry().running(node)?.control {
            Some(Control::Snapshot(latest)) => Ok(latest.lock().unwrap_or_else(|e| e.into_inner()).clone()),
            _ => Err(wrong_kind(node, "a snapshot node")),
        }
    }

    /// A reader of `stream` for `who`, serving it over `protocol`: the one
    /// door through which every serving layer reads streams, so that access
    /// is checked in one place ([`Server::check_reader`]).
    pub fn open_reader(
        &self,
        who: &Principal,
        stream: &str,
        protocol: Protocol,
        options: SubscribeOptions,
    ) -> Result<Subscription, ServerError> {
        self.check_reader(who, stream, protocol)?;
        tracing::debug!(stream, ?who, ?protocol, "reader opened");
        if let Principal::Anonymous | Principal::User(_) = who {
            self.inner.env.events.emit(crate::events::Event::Reader {
                stream: stream.to_owned(),
                protocol: protocol.name().to_owned(),
                user: match who {
                    Principal::User(name) => Some(name.clone()),
                    _ => None,
                },
            });
        }
        Ok(self.inner.hub.subscribe(stream, options))
    }

    /// Whether `who` may read `stream` over `protocol`: a user needs a
    /// grant covering it ([`ErrorKind::Forbidden`], whether or not it
    /// exists); anonymous readers only when no users are configured. Refused
    /// with [`ErrorKind::NotFound`] unless the stream is published.
    pub fn check_reader(&self, who: &Principal, stream: &str, _protocol: Protocol) -> Result<(), ServerError> {
        self.check_grant(who, stream)?;
        match self.inner.hub.stream_stats_of(stream) {
            Some(s) if s.publishers > 0 => Ok(()),
            _ => Err(ServerError::NoSuchStream(stream.to_owned())),
        }
    }

    /// Whether `who` may see stream, node or camera `name` at all (its
    /// grants cover it; anonymous only without users), whether or not it exists.
    pub fn check_grant(&self, who: &Principal, name: &str) -> Result<(), ServerError> {
        let auth = &self.inner.auth;
        let allowed = match who {
            Principal::Internal | Principal::Embedded => true,
            Principal::Anonymous => !auth.required(),
            Principal::User(user) => auth.identity(user).is_some_and(|id| id.may_see(name)),
        };
        if !allowed {
            return Err(ServerError::Forbidden {
                user: match who {
                    Principal::User(user) => user.clone(),
                    _ => "anonymous".into(),
                },
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// Starts the network listeners the configuration enables (the RTSP
    /// server, `[server.rtsp]`, and the HTTP listener, `[server.http]`) on
    /// one shared runtime. A server that
    /// is only embedded opens no port until this is called; `eyrie run`
    /// calls it. Calling it again does nothing.
    pub fn serve(&self) -> Result<(), ServerError> {
        let mut serving = self.inner.serving.lock().unwrap_or_else(|e| e.into_inner());
        if serving.is_none() {
            let config = self.registry().config.server.clone();
            *serving = Some(serving::Serving::start(
                &config,
                Arc::clone(&self.inner.auth),
                Arc::downgrade(&self.inner),
            )?);
        }
        Ok(())
    }

    /// The address the HTTP listener listens on, while it serves.
    pub fn http_address(&self) -> Option<std::net::SocketAddr> {
        let serving = self.inner.serving.lock().unwrap_or_else(|e| e.into_inner());
        serving.as_ref()?.http.as_ref().map(|h| h.local_addr())
    }

    /// The address the RTSP server listens on, while it serves.
    pub fn rtsp_address(&self) -> Option<std::net::SocketAddr> {
        let serving = self.inner.serving.lock().unwrap_or_else(|e| e.into_inner());
        serving.as_ref()?.rtsp.as_ref().map(|r| r.local_addr())
    }

    /// The `rtsp://` (or, over TLS, `rtsps://`) URL of `stream`, while the RTSP server runs.
    pub fn rtsp_url(&self, stream: &str) -> Option<String> {
        let serving = self.inner.serving.lock().unwrap_or_else(|e| e.into_inner());
        serving.as_ref()?.rtsp.as_ref().map(|r| r.url(stream))
    }

    /// Reads the certificate of HTTPS and RTSPS again (a renewed one is
    /// taken by new connections); its SHA-256 fingerprint, `None` without TLS.
    pub fn reload_certificate(&self) -> Result<Option<String>, ServerError> {
        let serving = self.inner.serving.lock().unwrap_or_else(|e| e.into_inner());
        let Some(certificate) = serving.as_ref().and_then(|s| s.certificate.as_ref()) else {
            return Ok(None);
        };
        certificate.reload().map_err(ServerError::Certificate)?;
        Ok(Some(certificate.fingerprint()))
    }

    /// Every event from now on: files closed, recordings failed, triggers fired.
    pub fn events(&self) -> EventSubscription {
        self.inner.env.events.subscribe()
    }

    /// The recordings index (of `camera`, when given), oldest first.
    pub fn recordings(&self, camera: Option<&str>) -> Result<Vec<Entry>, ServerError> {
        let storage = self.inner.env.storage().map_err(ServerError::storage)?;
        storage.index.list(camera).map_err(|e| ServerError::Storage {
            message: e.to_string(),
            source: Some(Box::new(e)),
        })
    }

    /// Recording `id` of the index, when there is one.
    pub fn recording(&self, id: i64) -> Result<Option<Entry>, ServerError> {
        let storage = self.inner.env.storage().map_err(ServerError::storage)?;
        storage.index.get(id).map_err(|e| ServerError::storage(e.to_string()))
    }

    /// Per camera: the files of the recordings index and their bytes.
    pub fn recording_totals(&self) -> Result<Vec<(String, u64, u64)>, ServerError> {
        let storage = self.inner.env.storage().map_err(ServerError::storage)?;
        storage.index.totals().map_err(|e| ServerError::storage(e.to_string()))
    }

    /// Deletes recording `id` (its file and its row); one still being
    /// written is refused ([`ErrorKind::Conflict`]).
    pub fn delete_recording(&self, id: i64) -> Result<Entry, ServerError> {
        let storage = self.inner.env.storage().map_err(ServerError::storage)?;
        let entry = self.recording(id)?.ok_or_else(|| ServerError::Failed {
            node: "recordings".into(),
            kind: ErrorKind::NotFound,
            message: format!("no recording {id}"),
        })?;
        if entry.end.is_none() {
            return Err(ServerError::Failed {
                node: "recordings".into(),
                kind: ErrorKind::Conflict,
                message: format!("recording {id} ({}) is being written: stop its node first", entry.path),
            });
        }
        storage
            .index
            .delete(&entry)
            .map_err(|e| ServerError::storage(e.to_string()))?;
        tracing::info!(camera = %entry.camera, "deleted {}", entry.path);
        Ok(entry)
    }

    /// True when there are sources and every one has ended by itself (reached
    /// `num_frames`) or failed. A server without sources never finishes.
    pub fn sources_finished(&self) -> bool {
        let registry = self.registry();
        let mut sources = registry
            .config
            .nodes
            .iter()
            .filter(|spec| !spec.props.is_consumer())
            .filter_map(|spec| registry.nodes.iter().find(|n| n.name == spec.name))
            .peekable();
        sources.peek().is_some()
            && sources.all(|n| matches!(n.shared.state().0, NodeState::Stopped | NodeState::Failed))
    }

    /// Stats of every node and stream, now.
    pub fn stats(&self) -> ServerStats {
        let nodes = {
            let registry = self.registry();
            registry.stats_of(&registry.nodes)
        };
        let serving = self.inner.serving.lock().unwrap_or_else(|e| e.into_inner());
        ServerStats {
            uptime_s: (self.inner.clock.now_ns() - self.inner.started_ns) as f64 / 1e9,
            bytes_copied: bytes_copied(),
            nodes,
            streams: self.inner.hub.stream_stats(),
            rtsp: serving.as_ref().and_then(|s| s.rtsp.as_ref()).map(|r| r.stats()),
            http: serving.as_ref().and_then(|s| s.http.as_ref()).map(|h| h.stats()),
            webhooks: self.webhooks().iter().map(webhook::Webhook::stats).collect(),
        }
    }

    /// Stops every node in flow order — producers first, so each consumer
    /// drains its queue to the end of stream and finalizes — and returns the
    /// final stats. Other handles of the server see no nodes after.
    pub fn shutdown(&self) -> ServerStats {
        let serving = self.inner.serving.lock().unwrap_or_else(|e| e.into_inner()).take();
        // The listeners' last stats (their clients until the end) go into the final ones.
        let rtsp = serving.as_ref().and_then(|s| s.rtsp.as_ref()).map(|r| r.stats());
        let http = serving.as_ref().and_then(|s| s.http.as_ref()).map(|h| h.stats());
        if let Some(serving) = serving {
            serving.stop();
        }
        let mut nodes = std::mem::take(&mut self.registry().nodes);
        for n in &mut nodes {
            n.stop();
        }
        // After the nodes: the files they closed are announced.
        let mut webhooks = std::mem::take(&mut *self.webhooks());
        webhooks.iter_mut().for_each(webhook::Webhook::stop);
        let stopped = self.registry().stats_of(&nodes);
        let stats = ServerStats {
            nodes: stopped,
            rtsp,
            http,
            webhooks: webhooks.iter().map(webhook::Webhook::stats).collect(),
            ..self.stats()
        };
        tracing::info!("server stopped");
        stats
    }
}

fn node_stats(n: &Running, spec: &NodeSpec) -> NodeStats {
    let (state, error) = n.shared.state();
    let input = n.input.as_ref().map(|c| c.stats());
    let queue_drops = input.as_ref().map_or(0, |s| s.dropped);
    NodeStats {
        name: spec.name.clone(),
        kind: spec.props.kind(),
        state,
        error,
        listen_to: n
            .input
            .as_ref()
            .and_then(|c| c.linked_to())
            .or_else(|| spec.listen_to.clone()),
        frames_in: n.shared.frames_in(),
        frames_out: n.shared.frames_out(),
        frames_dropped: n.shared.dropped() + queue_drops,
        reconnects: n.shared.reconnects(),
        bytes_copied: n.shared.bytes_copied(),
        fps: n.shared.fps(),
        input,
        pool: n
            .shared
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|p| p.stats()),
        stages_us: n.shared.stages_us(),
        cache: n.shared.cache(),
    }
}

fn wrong_kind(node: &str, expected: &'static str) -> ServerError {
    ServerError::WrongKind {
        node: node.to_owned(),
        expected,
    }
}
