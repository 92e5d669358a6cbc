//! The node registry: turns a [`Config`] into running nodes, tracks their state
//! and stats, relinks them at run time, and shuts them down in order (producers
//! first, so every consumer drains its input to the end of stream and finalizes).

mod encode;
mod file;
mod infer;
mod node;
mod osd;
mod record;
mod relay;
mod rtsp;
mod smart;
mod snapshot;
mod testsrc;
mod tile;
mod track;
mod trigger;
mod v4l2;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::Serialize;

use crate::config::{Config, ConfigError, NodeProps, NodeSpec};
use crate::encode::Change;
use crate::events::Event;
use crate::hub::{Hub, StreamStats, SubStats, SubscriptionControl};
use crate::media::{Clock, MonotonicClock, PoolStats, bytes_copied};
use crate::output::index::Entry;
use crate::output::recorder::Closed;
use crate::output::ring::CacheStats;
use crate::output::snapshot::Snapshot;
pub use node::NodeState;
use node::{Env, NodeCtx, NodeShared};
pub use smart::{ClipRequest, ClipStarted};

/// Errors of the server layer.
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
    #[error("{0}")]
    Storage(String),
    /// A request to a node failed.
    #[error("node `{node}`: {message}")]
    Failed {
        /// The node.
        node: String,
        /// What went wrong.
        message: String,
    },
    /// A change that leaves a node's settings invalid.
    #[error("node `{node}`: {message}")]
    Invalid {
        /// The node.
        node: String,
        /// What is wrong.
        message: String,
    },
}

/// Stats of one node.
#[derive(Clone, Debug, Serialize)]
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
}

struct Running {
    /// Its description: `config.nodes[index]`, the one record relinks update.
    index: usize,
    shared: Arc<NodeShared>,
    input: Option<SubscriptionControl>,
    /// How the API steers it, for kinds that take requests.
    control: Option<Control>,
    thread: Option<JoinHandle<()>>,
}

/// The request channel of a node that takes requests.
enum Control {
    Infer(infer::Inputs),
    Encoder(encode::Changes),
    Record(record::Commands),
    Snapshot(crate::output::snapshot::Latest),
}

/// A running set of nodes.
pub struct Server {
    hub: Hub,
    clock: Arc<dyn Clock>,
    config: Config,
    /// In flow order (see [`Config::flow_order`]).
    nodes: Vec<Running>,
    env: Arc<Env>,
    started_ns: i64,
}

impl Server {
    /// Starts every node of `config` on a fresh hub and the real clock.
    pub fn start(config: Config) -> Result<Server, ServerError> {
        Self::start_with(config, Hub::new(), Arc::new(MonotonicClock::new()))
    }

    /// Starts every node of `config` on `hub`, timed by `clock`. If a node
    /// cannot start, those already started are shut down and the error returned.
    pub fn start_with(config: Config, hub: Hub, clock: Arc<dyn Clock>) -> Result<Server, ServerError> {
        config.validate()?;
        let started_ns = clock.now_ns();
        let order = config.flow_order();
        let env = Arc::new(Env::new(
            Arc::clone(&clock),
            config.server.media_root.clone(),
            config.server.retention,
        ));
        let mut server = Server {
            hub,
            clock,
            config,
            nodes: Vec::new(),
            env,
            started_ns,
        };
        // Consumers first: their subscriptions exist before the first frame is published.
        for i in order.into_iter().rev() {
            if let Err(e) = server.spawn(i) {
                server.shutdown();
                return Err(e);
            }
        }
        // Kept in flow order, for stats and for the stop order.
        server.nodes.reverse();
        tracing::info!(nodes = server.nodes.len(), "server started");
        Ok(server)
    }

    fn spawn(&mut self, index: usize) -> Result<(), ServerError> {
        let spec = &self.config.nodes[index];
        let shared = Arc::new(NodeShared::new(Arc::clone(&self.clock)));
        let ctx = NodeCtx {
            name: spec.name.as_str().into(),
            hub: self.hub.clone(),
            shared: Arc::clone(&shared),
            env: Arc::clone(&self.env),
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
                self.env.register_smart_record(&spec.name, commands);
                (t, Some(c), None)
            }),
            (NodeProps::Snapshot(o), Some(up)) => {
                snapshot::spawn(ctx, up, o.clone()).map(|(t, c, latest)| (t, Some(c), Some(Control::Snapshot(latest))))
            }
            (NodeProps::Trigger(o), Some(up)) => trigger::spawn(ctx, up, o.clone()).map(|(t, c)| (t, Some(c), None)),
            (NodeProps::Track(o), Some(up)) => track::spawn(ctx, up, o.clone()).map(|(t, c)| (t, Some(c), None)),
            (NodeProps::Osd(o), Some(up)) => osd::spawn(ctx, up, o.clone()).map(|(t, c)| (t, Some(c), None)),
            (NodeProps::Tile(o), Some(up)) => tile::spawn(ctx, up, o.clone()).map(|(t, c)| (t, Some(c), None)),
        };
        let (thread, input, control) = started.map_err(|message| ServerError::Start {
            name: spec.name.clone(),
            kind: spec.props.kind(),
            message,
        })?;
        tracing::debug!(node = %spec.name, kind = spec.props.kind(), "node started");
        self.nodes.push(Running {
            index,
            shared,
            input,
            control,
            thread: Some(thread),
        });
        Ok(())
    }

    /// The hub the nodes publish to; products subscribe to any stream here.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The configuration as it stands now (relinks included).
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn spec(&self, running: &Running) -> &NodeSpec {
        &self.config.nodes[running.index]
    }

    /// Relinks consumer `node` to `stream` without restarting it.
    pub fn relink(&mut self, node: &str, stream: &str) -> Result<(), ServerError> {
        let running = self.nodes.iter().find(|n| self.spec(n).name == node);
        let running = running.ok_or_else(|| ServerError::NoSuchNode(node.to_owned()))?;
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
        self.config.nodes[running.index].listen_to = Some(stream.to_owned());
        tracing::info!(node, stream, "relinked");
        Ok(())
    }

    /// Moves input `input` of the `infer` node `node` (a name in its `inputs`)
    /// to `stream`, as [`Server::relink`] does for one-input nodes. The
    /// input's policy becomes `stream`'s in `policies` (or the default
    /// `policy`) and starts afresh (frame count, period, motion background);
    /// the old stream's frames the node held are dropped, so none comes out
    /// after this returns; a `track` node downstream starts new tracks for
    /// the input, whose frames now come from another camera.
    pub fn relink_input(&mut self, node: &str, input: &str, stream: &str) -> Result<(), ServerError> {
        let running = self.running(node)?;
        let (Some(Control::Infer(inputs)), NodeProps::Infer(options)) = (&running.control, &self.spec(running).props)
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
        let taken_in = inputs.relink(slot, stream, policy);
        // The subscription has moved either way (a node slow to answer takes
        // the rest in later): the configuration says so.
        let index = running.index;
        if let NodeProps::Infer(options) = &mut self.config.nodes[index].props {
            options.inputs[slot] = stream.to_owned();
        }
        taken_in.map_err(|message| ServerError::Failed {
            node: node.to_owned(),
            message,
        })?;
        tracing::info!(node, input, stream, "relinked");
        Ok(())
    }

    fn running(&self, node: &str) -> Result<&Running, ServerError> {
        self.nodes
            .iter()
            .find(|n| self.spec(n).name == node)
            .ok_or_else(|| ServerError::NoSuchNode(node.to_owned()))
    }

    /// Changes a running encoder (bitrate, rate control, keyframe interval,
    /// profile/level, quality, or a keyframe now). It applies before the
    /// encoder's next frame; one the backend refuses is logged and the
    /// encoder runs on unchanged.
    pub fn change_encoder(&mut self, node: &str, change: Change) -> Result<(), ServerError> {
        let running = self.running(node)?;
        let Some(Control::Encoder(changes)) = &running.control else {
            return Err(wrong_kind(node, "an encoder"));
        };
        let changes = changes.clone();
        let index = running.index;
        if let NodeProps::Encode(settings) = &mut self.config.nodes[index].props {
            let mut next = settings.clone();
            next.apply(change);
            next.validate().map_err(|message| ServerError::Invalid {
                node: node.to_owned(),
                message,
            })?;
            *settings = next;
        }
        // A send fails only when the node has ended; there is nothing left to change then.
        let _ = changes.send(change);
        Ok(())
    }

    fn record_commands(&self, node: &str) -> Result<&record::Commands, ServerError> {
        match &self.running(node)?.control {
            Some(Control::Record(commands)) => Ok(commands),
            _ => Err(wrong_kind(node, "a record node")),
        }
    }

    /// Starts a `record` node recording (nothing changes if it is).
    pub fn start_recording(&self, node: &str) -> Result<(), ServerError> {
        self.record_commands(node)?
            .send(record::Command::Start)
            .map_err(|_| ended(node))
    }

    /// Stops a `record` node recording; returns once its file is finalized,
    /// with that file (`None` if none was open).
    pub fn stop_recording(&self, node: &str) -> Result<Option<Closed>, ServerError> {
        let commands = self.record_commands(node)?;
        request(node, |reply| commands.send(record::Command::Stop(reply)).is_ok())
    }

    fn smart_commands(&self, node: &str) -> Result<smart::Commands, ServerError> {
        self.running(node)?;
        self.env
            .smart_record(node)
            .ok_or_else(|| wrong_kind(node, "a smartrecord node"))
    }

    /// Triggers a clip on a `smartrecord` node: from the last keyframe at or
    /// before now − `before` to now + `after` (extending a running clip
    /// unless the node allows overlapping clips).
    pub fn smart_record(&self, node: &str, clip: ClipRequest) -> Result<ClipStarted, ServerError> {
        let commands = self.smart_commands(node)?;
        let at_ns = self.clock.now_ns();
        request(node, |reply| {
            commands
                .send(smart::Command::Start {
                    request: clip,
                    at_ns,
                    reply,
                })
                .is_ok()
        })
    }

    /// Ends the running clips of a `smartrecord` node now; returns them, finalized.
    pub fn stop_clips(&self, node: &str) -> Result<Vec<Closed>, ServerError> {
        let commands = self.smart_commands(node)?;
        request(node, |reply| commands.send(smart::Command::Stop(reply)).is_ok())
    }

    /// A JPEG of the next picture of `stream` (a raw stream's next frame, a
    /// coded stream's next keyframe), waiting at most `timeout`; written to
    /// `path` (relative to the media root; `{camera}`, `{utc}`… allowed) and
    /// listed in the index when a path is given.
    pub fn snapshot(
        &self,
        stream: &str,
        path: Option<&str>,
        quality: u8,
        timeout: std::time::Duration,
    ) -> Result<Snapshot, ServerError> {
        let failed = |message| ServerError::Failed {
            node: stream.to_owned(),
            message,
        };
        if let Some(p) = path {
            crate::output::name::check_template(p).map_err(failed)?;
        }
        if !(1..=100).contains(&quality) {
            return Err(failed(format!("quality {quality} is out of range 1..=100")));
        }
        if !self.config.nodes.iter().any(|n| n.name == stream)
            && !self.hub.stream_stats().iter().any(|s| s.name == stream)
        {
            return Err(ServerError::NoSuchNode(stream.to_owned()));
        }
        let sub = self.hub.subscribe(stream, crate::hub::SubscribeOptions::leaky(2));
        let snapshot = crate::output::snapshot::take(&sub, timeout, quality).map_err(failed)?;
        match path {
            Some(p) => snapshot::save(&self.env, stream, snapshot, p, Some("api")).map_err(failed),
            None => Ok(snapshot),
        }
    }

    /// The latest snapshot of a `snapshot` node (`None` before its first).
    pub fn latest_snapshot(&self, node: &str) -> Result<Option<Snapshot>, ServerError> {
        match &self.running(node)?.control {
            Some(Control::Snapshot(latest)) => Ok(latest.lock().unwrap_or_else(|e| e.into_inner()).clone()),
            _ => Err(wrong_kind(node, "a snapshot node")),
        }
    }

    /// Every event from now on: files closed, recordings failed, triggers fired.
    pub fn events(&self) -> std::sync::mpsc::Receiver<Event> {
        self.env.events.subscribe()
    }

    /// The recordings index (of `camera`, when given), oldest first.
    pub fn recordings(&self, camera: Option<&str>) -> Result<Vec<Entry>, ServerError> {
        let storage = self.env.storage().map_err(ServerError::Storage)?;
        storage
            .index
            .list(camera)
            .map_err(|e| ServerError::Storage(e.to_string()))
    }

    /// True when there are sources and every one has ended by itself (reached
    /// `num_frames`) or failed. A server without sources never finishes.
    pub fn sources_finished(&self) -> bool {
        let mut sources = self
            .nodes
            .iter()
            .filter(|n| !self.spec(n).props.is_consumer())
            .peekable();
        sources.peek().is_some()
            && sources.all(|n| matches!(n.shared.state().0, NodeState::Stopped | NodeState::Failed))
    }

    /// Stats of every node and stream, now.
    pub fn stats(&self) -> ServerStats {
        let nodes = self
            .nodes
            .iter()
            .map(|n| {
                let spec = self.spec(n);
                let (state, error) = n.shared.state();
                let input = n.input.as_ref().map(|c| c.stats());
                let queue_drops = input.as_ref().map_or(0, |s| s.dropped);
                NodeStats {
                    name: spec.name.clone(),
                    kind: spec.props.kind(),
                    state,
                    error,
                    listen_to: spec.listen_to.clone(),
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
            })
            .collect();
        ServerStats {
            uptime_s: (self.clock.now_ns() - self.started_ns) as f64 / 1e9,
            bytes_copied: bytes_copied(),
            nodes,
            streams: self.hub.stream_stats(),
        }
    }

    /// Stops every node in flow order — producers first, so each consumer
    /// drains its queue to the end of stream and finalizes — and returns the
    /// final stats.
    pub fn shutdown(mut self) -> ServerStats {
        self.stop_all();
        let stats = self.stats();
        tracing::info!("server stopped");
        stats
    }

    fn stop_all(&mut self) {
        for n in &mut self.nodes {
            let name = &self.config.nodes[n.index].name;
            n.shared.request_stop();
            if let Some(input) = &n.input {
                input.close();
            }
            if let Some(thread) = n.thread.take()
                && thread.join().is_err()
            {
                n.shared
                    .set_state(NodeState::Failed, Some("the node's thread panicked".into()));
                tracing::error!(node = %name, "node panicked");
            }
        }
    }
}

fn wrong_kind(node: &str, expected: &'static str) -> ServerError {
    ServerError::WrongKind {
        node: node.to_owned(),
        expected,
    }
}

/// Sends a request carrying a reply channel (`send` says whether the node
/// took it) and waits for the node's answer.
fn request<T>(
    node: &str,
    send: impl FnOnce(std::sync::mpsc::SyncSender<Result<T, String>>) -> bool,
) -> Result<T, ServerError> {
    let (reply, done) = std::sync::mpsc::sync_channel(1);
    if !send(reply) {
        return Err(ended(node));
    }
    done.recv()
        .map_err(|_| ended(node))?
        .map_err(|message| ServerError::Failed {
            node: node.to_owned(),
            message,
        })
}

fn ended(node: &str) -> ServerError {
    ServerError::Failed {
        node: node.to_owned(),
        message: "the node has ended".into(),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_all();
    }
}
