//! The node registry: turns a [`Config`] into running nodes, tracks their state
//! and stats, relinks them at run time, and shuts them down in order (producers
//! first, so every consumer drains its input to the end of stream and finalizes).

mod encode;
mod file;
mod node;
mod relay;
mod rtsp;
mod testsrc;
mod v4l2;

use std::sync::Arc;
use std::thread::JoinHandle;

use serde::Serialize;

use crate::config::{Config, ConfigError, NodeProps, NodeSpec};
use crate::encode::Change;
use crate::hub::{Hub, StreamStats, SubStats, SubscriptionControl};
use crate::media::{Clock, MonotonicClock, PoolStats, bytes_copied};
pub use node::NodeState;
use node::{NodeCtx, NodeShared};

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
    /// The node is not an encoder, so it takes no encoder changes.
    #[error("node `{0}` is not an encoder")]
    NotAnEncoder(String),
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
    /// Run-time changes, for an encoder.
    changes: Option<encode::Changes>,
    thread: Option<JoinHandle<()>>,
}

/// A running set of nodes.
pub struct Server {
    hub: Hub,
    clock: Arc<dyn Clock>,
    config: Config,
    /// In flow order (see [`Config::flow_order`]).
    nodes: Vec<Running>,
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
        let mut server = Server {
            hub,
            clock,
            config,
            nodes: Vec::new(),
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
        };
        let started = match (&spec.props, &spec.listen_to) {
            (NodeProps::Testsrc(o), _) => testsrc::spawn(ctx, o.clone()).map(|t| (t, None, None)),
            (NodeProps::V4l2(o), _) => v4l2::spawn(ctx, o.clone()).map(|t| (t, None, None)),
            (NodeProps::Rtsp(o), _) => rtsp::spawn(ctx, o.clone()).map(|t| (t, None, None)),
            (NodeProps::File(o), _) => file::spawn(ctx, o.clone()).map(|t| (t, None, None)),
            (NodeProps::Relay(o), Some(up)) => relay::spawn(ctx, up, o).map(|(t, c)| (t, Some(c), None)),
            (NodeProps::Encode(o), Some(up)) => {
                encode::spawn(ctx, up, o.clone()).map(|(t, c, changes)| (t, Some(c), Some(changes)))
            }
            (NodeProps::Relay(_) | NodeProps::Encode(_), None) => Err("needs `listen_to`".to_owned()),
        };
        let (thread, input, changes) = started.map_err(|message| ServerError::Start {
            name: spec.name.clone(),
            kind: spec.props.kind(),
            message,
        })?;
        tracing::debug!(node = %spec.name, kind = spec.props.kind(), "node started");
        self.nodes.push(Running {
            index,
            shared,
            input,
            changes,
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
        let input = running
            .input
            .as_ref()
            .ok_or_else(|| ServerError::NotAConsumer(node.to_owned()))?;
        input.relink(stream);
        self.config.nodes[running.index].listen_to = Some(stream.to_owned());
        tracing::info!(node, stream, "relinked");
        Ok(())
    }

    /// Changes a running encoder (bitrate, rate control, keyframe interval,
    /// profile/level, quality, or a keyframe now). It applies before the
    /// encoder's next frame; one the backend refuses is logged and the
    /// encoder runs on unchanged.
    pub fn change_encoder(&mut self, node: &str, change: Change) -> Result<(), ServerError> {
        let running = self.nodes.iter().find(|n| self.spec(n).name == node);
        let running = running.ok_or_else(|| ServerError::NoSuchNode(node.to_owned()))?;
        let changes = running
            .changes
            .as_ref()
            .ok_or_else(|| ServerError::NotAnEncoder(node.to_owned()))?;
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

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_all();
    }
}
