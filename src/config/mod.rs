//! Configuration: a TOML file with a `[server]` table and one `[[node]]` table
//! per node (`name`, `kind`, optional `listen_to`, and the kind's own keys).
//! The run-time API creates and changes the very same [`NodeSpec`]s.
//!
//! Errors name the file, line, column and key and say what was expected; an
//! unknown key is an error, never silently ignored.

mod uri;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::capture::file::FileOptions;
use crate::capture::rtsp::RtspOptions;
use crate::capture::testsrc::TestSrcOptions;
use crate::capture::v4l2::V4l2Options;
use crate::encode::EncoderSettings;
use crate::events::trigger::TriggerOptions;
use crate::events::webhook::WebhookOptions;
use crate::hub::{Join, Policy, SubscribeOptions};
use crate::infer::detector::InferOptions;
use crate::media::FormatError;
use crate::output::index::Retention;
use crate::output::options::{RecordOptions, SmartRecordOptions, SnapshotOptions};
use crate::process::osd::OsdOptions;
use crate::process::tile::TileOptions;
use crate::serve::auth::User;
use crate::serve::http::HttpOptions;
use crate::serve::push::RtpPushOptions;
use crate::serve::rtsp::RtspServerOptions;
use crate::serve::tls::TlsOptions;
use crate::track::TrackerOptions;

/// A whole configuration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    /// Server-wide settings.
    pub server: ServerConfig,
    /// The nodes, in file order.
    #[serde(rename = "node")]
    pub nodes: Vec<NodeSpec>,
}

/// The `[server]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Directory every recording, snapshot and index lives under.
    pub media_root: PathBuf,
    /// What all recordings together may keep (`[server.retention]`: `max_age`
    /// seconds, `max_bytes`); the oldest finished files go first.
    pub retention: Retention,
    /// The RTSP server (`[server.rtsp]`), started by [`crate::server::Server::serve`].
    pub rtsp: RtspServerOptions,
    /// The HTTP listener (`[server.http]`): the page, HLS, WebSocket, MJPEG
    /// and snapshots; started by [`crate::server::Server::serve`].
    pub http: HttpOptions,
    /// The certificate and key of HTTPS and RTSPS (`[server.tls]`: `cert`,
    /// `key`, PEM files), used where `[server.http]` or `[server.rtsp]`
    /// says `tls = true`; `eyrie cert` makes a self-signed pair.
    pub tls: TlsOptions,
    /// Who may sign in (`[[server.users]]`: `name`, `password_hash` or
    /// `password`, `role`, `streams`). With any user configured, every
    /// request on every listener must sign in.
    pub users: Vec<User>,
    /// Where events are POSTed (`[[server.webhooks]]`: `url`, `events`,
    /// `node`, `secret`, `queue`, `retries`, `timeout`).
    pub webhooks: Vec<WebhookOptions>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            media_root: PathBuf::from("eyrie-media"),
            retention: Retention::default(),
            rtsp: RtspServerOptions::default(),
            http: HttpOptions::default(),
            tls: TlsOptions::default(),
            users: Vec::new(),
            webhooks: Vec::new(),
        }
    }
}

impl ServerConfig {
    /// Checks values beyond their types; the error names the key.
    fn check(&self) -> Result<(), (String, String)> {
        crate::output::options::check_retention(&self.retention)
            .map_err(|(key, message)| (format!("server.retention.{key}"), message))?;
        for (i, u) in self.users.iter().enumerate() {
            u.check()
                .map_err(|(key, message)| (format!("server.users.{key}"), message))?;
            if self.users[..i].iter().any(|v| v.name == u.name) {
                return Err(("server.users.name".into(), format!("user `{}` is listed twice", u.name)));
            }
        }
        for w in &self.webhooks {
            w.check()
                .map_err(|(key, message)| (format!("server.webhooks.{key}"), message))?;
        }
        self.tls
            .check()
            .map_err(|(key, message)| (format!("server.tls.{key}"), message))?;
        for (listener, on) in [
            ("rtsp", self.rtsp.enabled && self.rtsp.tls),
            ("http", self.http.enabled && self.http.tls),
        ] {
            if on && !self.tls.is_set() {
                return Err((
                    format!("server.{listener}.tls"),
                    "needs a certificate: set [server.tls] cert and key (`eyrie cert` makes a self-signed pair)".into(),
                ));
            }
        }
        self.rtsp
            .check(&self.users)
            .map_err(|(key, message)| (format!("server.rtsp.{key}"), message))?;
        self.http
            .check(&self.users)
            .map_err(|(key, message)| (format!("server.http.{key}"), message))
    }
}

/// One `[[node]]`: what the config file and the API say about a node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeSpec {
    /// Unique name; also the name of the stream it publishes.
    pub name: String,
    /// The stream it consumes (consumers only); relinkable at run time.
    pub listen_to: Option<String>,
    /// The kind and its keys.
    #[serde(flatten)]
    pub props: NodeProps,
}

/// A node's kind with its own keys.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum NodeProps {
    /// A synthetic camera.
    Testsrc(TestSrcOptions),
    /// A V4L2 camera (USB, CSI through a V4L2 driver), captured without copying.
    V4l2(V4l2Options),
    /// An IP camera over RTSP, its packets passed on without re-encoding.
    Rtsp(RtspOptions),
    /// A recorded file played as a camera.
    File(FileOptions),
    /// Encodes the raw stream it listens to (H.264, H.265, VP9 or MJPEG) and
    /// publishes the packets.
    Encode(EncoderSettings),
    /// Re-publishes the stream it listens to under its own name, without copying
    /// (GstInterpipe's `interpipesrc ! interpipesink`): the relinkable inputs of
    /// later stages.
    Relay(RelayOptions),
    /// Records the packet stream it listens to into segmented files.
    Record(RecordOptions),
    /// Keeps the last seconds of the packet stream it listens to in memory
    /// and writes clips that start before their trigger.
    #[serde(rename = "smartrecord")]
    SmartRecord(SmartRecordOptions),
    /// Keeps a JPEG of the stream it listens to, refreshed every `interval`.
    Snapshot(SnapshotOptions),
    /// Watches the detections of the stream it listens to; takes a snapshot
    /// and/or starts a smart-record clip when its class shows up.
    Trigger(TriggerOptions),
    /// Batches the frames of its `inputs` through a detector and publishes
    /// them, with their detections, as one stream (DeepStream's nvstreammux +
    /// nvinfer).
    Infer(Box<InferOptions>),
    /// Tracks the detections of the stream it listens to (one tracker per input
    /// of an `infer` stream) and sets their track ids.
    Track(TrackerOptions),
    /// Draws boxes and labels onto the frames it listens to.
    Osd(OsdOptions),
    /// Composes the inputs of an `infer` stream into one mosaic.
    Tile(TileOptions),
    /// Sends the coded stream it listens to over RTP/UDP (unicast or
    /// multicast) and writes its SDP file.
    Rtp(RtpPushOptions),
}

/// The kinds a node can have.
pub const KINDS: [&str; 15] = [
    "testsrc",
    "v4l2",
    "rtsp",
    "file",
    "encode",
    "relay",
    "record",
    "smartrecord",
    "snapshot",
    "trigger",
    "infer",
    "track",
    "osd",
    "tile",
    "rtp",
];

impl NodeProps {
    /// The kind's name.
    pub fn kind(&self) -> &'static str {
        match self {
            NodeProps::Testsrc(_) => "testsrc",
            NodeProps::V4l2(_) => "v4l2",
            NodeProps::Rtsp(_) => "rtsp",
            NodeProps::File(_) => "file",
            NodeProps::Encode(_) => "encode",
            NodeProps::Relay(_) => "relay",
            NodeProps::Record(_) => "record",
            NodeProps::SmartRecord(_) => "smartrecord",
            NodeProps::Snapshot(_) => "snapshot",
            NodeProps::Trigger(_) => "trigger",
            NodeProps::Infer(_) => "infer",
            NodeProps::Track(_) => "track",
            NodeProps::Osd(_) => "osd",
            NodeProps::Tile(_) => "tile",
            NodeProps::Rtp(_) => "rtp",
        }
    }

    /// The streams a multi-input kind (`infer`) reads, named by its own key.
    pub fn inputs(&self) -> &[String] {
        match self {
            NodeProps::Infer(o) => &o.inputs,
            _ => &[],
        }
    }

    /// True for kinds that consume a stream (and so need `listen_to`).
    pub fn is_consumer(&self) -> bool {
        matches!(
            self,
            NodeProps::Relay(_)
                | NodeProps::Encode(_)
                | NodeProps::Record(_)
                | NodeProps::SmartRecord(_)
                | NodeProps::Snapshot(_)
                | NodeProps::Trigger(_)
                | NodeProps::Track(_)
                | NodeProps::Osd(_)
                | NodeProps::Tile(_)
                | NodeProps::Rtp(_)
        )
    }

    fn deserialize<'de, D: serde::Deserializer<'de>>(kind: &str, de: D) -> Result<Option<Self>, D::Error> {
        Ok(Some(match kind {
            "testsrc" => NodeProps::Testsrc(TestSrcOptions::deserialize(de)?),
            "v4l2" => NodeProps::V4l2(V4l2Options::deserialize(de)?),
            "rtsp" => NodeProps::Rtsp(RtspOptions::deserialize(de)?),
            "file" => NodeProps::File(FileOptions::deserialize(de)?),
            "encode" => NodeProps::Encode(EncoderSettings::deserialize(de)?),
            "relay" => NodeProps::Relay(RelayOptions::deserialize(de)?),
            "record" => NodeProps::Record(RecordOptions::deserialize(de)?),
            "smartrecord" => NodeProps::SmartRecord(SmartRecordOptions::deserialize(de)?),
            "snapshot" => NodeProps::Snapshot(SnapshotOptions::deserialize(de)?),
            "trigger" => NodeProps::Trigger(TriggerOptions::deserialize(de)?),
            "infer" => NodeProps::Infer(Box::new(InferOptions::deserialize(de)?)),
            "track" => NodeProps::Track(TrackerOptions::deserialize(de)?),
            "osd" => NodeProps::Osd(OsdOptions::deserialize(de)?),
            "tile" => NodeProps::Tile(TileOptions::deserialize(de)?),
            "rtp" => NodeProps::Rtp(RtpPushOptions::deserialize(de)?),
            _ => return Ok(None),
        }))
    }

    /// Checks values beyond their types; the error names the offending key.
    fn check(&self) -> Result<(), (&'static str, String)> {
        match self {
            NodeProps::Testsrc(o) => {
                o.video_info().map_err(|e| match e {
                    FormatError::BadSize { dimension, .. } => (dimension, e.to_string()),
                    _ => ("format", e.to_string()),
                })?;
                if o.pool == 0 {
                    return Err(("pool", "must be at least 1".into()));
                }
                Ok(())
            }
            NodeProps::V4l2(o) => o.want().map(|_| ()),
            NodeProps::Rtsp(o) => o.check(),
            NodeProps::File(o) => o.check(),
            NodeProps::Encode(o) => o.check(),
            NodeProps::Relay(o) if o.queue == 0 => Err(("queue", "must be at least 1".into())),
            NodeProps::Relay(_) => Ok(()),
            NodeProps::Record(o) => o.check(),
            NodeProps::SmartRecord(o) => o.check(),
            NodeProps::Snapshot(o) => o.check(),
            NodeProps::Trigger(o) => o.check(),
            NodeProps::Infer(o) if o.inputs.is_empty() => Err(("inputs", "names no stream".into())),
            NodeProps::Infer(o) => o.check(),
            NodeProps::Track(o) => o.check(),
            NodeProps::Osd(_) => Ok(()),
            NodeProps::Tile(o) => o.check(),
            NodeProps::Rtp(o) => o.check(),
        }
    }
}

/// The keys of a `relay` node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayOptions {
    /// Frames its input queue holds.
    pub queue: usize,
    /// `leaky` (drop the oldest, counted) or `blocking` (the producer waits).
    pub policy: Policy,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            queue: 8,
            policy: Policy::Leaky,
        }
    }
}

impl RelayOptions {
    /// The subscription these options ask for.
    pub fn subscribe_options(&self) -> SubscribeOptions {
        SubscribeOptions {
            capacity: self.queue,
            policy: self.policy,
            join: Join::NextKeyframe,
        }
    }
}

/// A configuration error, located where possible.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file (or `<default>`, `<api>`).
    pub origin: String,
    /// 1-based line and column, when known.
    pub at: Option<(usize, usize)>,
    /// The key at fault, when there is one (`node.fps`, `server.media_root`).
    pub key: Option<String>,
    /// For JSON descriptions: the path of the value at fault (`$.policies.cam0.period`).
    pub path: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some((line, col)) = self.at {
            write!(f, ":{line}:{col}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        if let Some(path) = &self.path {
            write!(f, " at `{path}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl Config {
    /// Reads and checks a config file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            at: None,
            key: None,
            path: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &origin)
    }

    /// Parses and checks config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Parser { text, origin }.parse()
    }

    /// The built-in default, mirroring the multi-camera AI demo Eyrie replaces:
    /// two synthetic cameras at 1280×720, 30 fps, each fed twice into the four
    /// inputs (`in0`..`in3`) of one detector batch (`infer`, the built-in model,
    /// batch 4), tracked (`track`), tiled 2×2 (`tile`) and drawn on (`deep`,
    /// the OSD); the mosaic encoded to H.264 at 4 Mbit/s as stream `h264` and
    /// recorded (`rec`, 60 s files, a day kept); a smart-record cache on the
    /// mosaic (`sr0` on `h264`) and on cam1 alone (`sr1` on `h264b`, `in2`
    /// encoded), and a latest
    /// snapshot of each camera every 10 s (`snap0`, `snap1`); all recordings
    /// together kept under 2 GiB.
    pub fn default_demo() -> Config {
        let node = |name: &str, listen_to: Option<&str>, props| NodeSpec {
            name: name.into(),
            listen_to: listen_to.map(Into::into),
            props,
        };
        let camera = |name: &str| node(name, None, NodeProps::Testsrc(TestSrcOptions::default()));
        let input = |name: &str, camera: &str| node(name, Some(camera), NodeProps::Relay(RelayOptions::default()));
        let encode = |name: &str, from: &str| node(name, Some(from), NodeProps::Encode(EncoderSettings::default()));
        let smart =
            |name: &str, from: &str| node(name, Some(from), NodeProps::SmartRecord(SmartRecordOptions::default()));
        let snapshot = |name: &str, from: &str| node(name, Some(from), NodeProps::Snapshot(SnapshotOptions::default()));
        let config = Config {
            server: ServerConfig {
                retention: Retention {
                    max_age: None,
                    max_bytes: Some(2 << 30),
                },
                ..ServerConfig::default()
            },
            nodes: vec![
                camera("cam0"),
                camera("cam1"),
                input("in0", "cam0"),
                input("in1", "cam0"),
                input("in2", "cam1"),
                input("in3", "cam1"),
                node(
                    "infer",
                    None,
                    NodeProps::Infer(Box::new(InferOptions {
                        inputs: ["in0", "in1", "in2", "in3"].map(String::from).to_vec(),
                        ..InferOptions::default()
                    })),
                ),
                node("track", Some("infer"), NodeProps::Track(TrackerOptions::default())),
                node("tile", Some("track"), NodeProps::Tile(TileOptions::default())),
                node("deep", Some("tile"), NodeProps::Osd(OsdOptions::default())),
                encode("h264", "deep"),
                encode("h264b", "in2"),
                node(
                    "rec",
                    Some("h264"),
                    NodeProps::Record(RecordOptions {
                        max_age: Some(86_400.0),
                        ..RecordOptions::default()
                    }),
                ),
                smart("sr0", "h264"),
                smart("sr1", "h264b"),
                snapshot("snap0", "cam0"),
                snapshot("snap1", "cam1"),
            ],
        };
        config.validate().expect("the built-in default is valid");
        config
    }

    /// Checks a configuration built in code (or through the API).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let origin = "<config>";
        self.server.check().map_err(|(key, message)| ConfigError {
            origin: origin.into(),
            at: None,
            key: Some(key),
            path: None,
            message,
        })?;
        for node in &self.nodes {
            node.props.check().map_err(|(key, message)| ConfigError {
                origin: origin.into(),
                at: None,
                key: Some(key.into()),
                path: None,
                message: format!("node `{}`: {message}", node.name),
            })?;
        }
        check_graph(&self.nodes, origin, &|_, _| None)
    }

    /// Node indices in the order data flows: every node after the node it
    /// listens to. The server starts nodes in the reverse order (so no consumer
    /// misses a first frame) and stops them in this one (so every consumer drains
    /// its input to the end of stream).
    pub fn flow_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = Vec::with_capacity(self.nodes.len());
        let mut placed = vec![false; self.nodes.len()];
        while order.len() < self.nodes.len() {
            let before = order.len();
            for (i, n) in self.nodes.iter().enumerate() {
                let ready = n
                    .listen_to
                    .iter()
                    .chain(n.props.inputs())
                    .all(|up| self.nodes.iter().position(|m| &m.name == up).is_none_or(|j| placed[j]));
                if !placed[i] && ready {
                    placed[i] = true;
                    order.push(i);
                }
            }
            if order.len() == before {
                // A cycle (validation refuses these); start the rest in file order.
                order.extend((0..self.nodes.len()).filter(|&i| !placed[i]));
                break;
            }
        }
        order
    }
}

/// Gives the line and column of `key` in node `i`, when known.
type Locate<'a> = dyn Fn(usize, &str) -> Option<(usize, usize)> + 'a;

/// Checks names and links: unique names, `listen_to` on consumers only, naming
/// an existing node, and no cycles. `locate(node, key)` gives a line and column.
fn check_graph(nodes: &[NodeSpec], origin: &str, locate: &Locate<'_>) -> Result<(), ConfigError> {
    let err = |i: usize, key: &str, message: String| ConfigError {
        origin: origin.into(),
        at: locate(i, key),
        key: Some(key.into()),
        path: None,
        message,
    };
    for (i, n) in nodes.iter().enumerate() {
        if n.name.is_empty()
            || n.name.starts_with('.')
            || n.name.len() > 64
            || !n.name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            return Err(err(
                i,
                "name",
                format!(
                    "`{}` is not a valid name (expected up to 64 letters, digits, `_`, `-`, `.`, not starting with `.`)",
                    n.name.escape_debug()
                ),
            ));
        }
        if nodes[..i].iter().any(|m| m.name == n.name) {
            return Err(err(i, "name", format!("a node named `{}` already exists", n.name)));
        }
    }
    let names = || nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ");
    for (i, n) in nodes.iter().enumerate() {
        match (&n.listen_to, n.props.is_consumer()) {
            (Some(_), false) => {
                return Err(err(
                    i,
                    "listen_to",
                    format!("a {} node produces its own stream and listens to none", n.props.kind()),
                ));
            }
            (None, true) => {
                return Err(err(
                    i,
                    "name",
                    format!("node `{}` ({}) needs `listen_to`", n.name, n.props.kind()),
                ));
            }
            (Some(up), true) if !nodes.iter().any(|m| &m.name == up) => {
                return Err(err(
                    i,
                    "listen_to",
                    format!("`{up}` names no node (nodes: {})", names()),
                ));
            }
            _ => {}
        }
        if let Some(up) = n.props.inputs().iter().find(|up| !nodes.iter().any(|m| &m.name == *up)) {
            return Err(err(i, "inputs", format!("`{up}` names no node (nodes: {})", names())));
        }
        if let NodeProps::Trigger(TriggerOptions {
            smart_record: Some(target),
            ..
        }) = &n.props
            && !nodes
                .iter()
                .any(|m| &m.name == target && matches!(m.props, NodeProps::SmartRecord(_)))
        {
            return Err(err(i, "smart_record", format!("`{target}` names no smartrecord node")));
        }
        // Follow the chain upstream; coming back here is a cycle.
        let mut at = n;
        for _ in 0..nodes.len() {
            let Some(up) = &at.listen_to else { break };
            at = nodes.iter().find(|m| &m.name == up).expect("checked above");
            if at.name == n.name {
                return Err(err(
                    i,
                    "listen_to",
                    format!("node `{}` listens to itself through a cycle", n.name),
                ));
            }
        }
    }
    Ok(())
}

/// serde's words about a description's keys, in the config's words.
fn in_key_words(message: &str) -> String {
    if message.starts_with("unknown field") {
        message
            .replacen("unknown field", "unknown key", 1)
            .replace("expected one of", "expected one of the keys")
    } else {
        message.to_owned()
    }
}

/// The key serde's "unknown field" message names.
fn unknown_key(message: &str) -> Option<&str> {
    message
        .strip_prefix("unknown field `")
        .and_then(|m| m.split('`').next())
}

fn needs_kind(name: &str) -> String {
    format!("node `{name}` needs a `kind` (one of {})", KINDS.join(", "))
}

fn unknown_kind(kind: &str) -> String {
    format!("unknown kind `{kind}` (expected one of {})", KINDS.join(", "))
}

fn of_node(name: &str, kind: &str, message: &str) -> String {
    format!("node `{name}` ({kind}): {message}")
}

impl NodeSpec {
    /// True when this node reads `node`'s stream or acts on it (a trigger's
    /// smart-record target).
    pub fn refers_to(&self, node: &str) -> bool {
        self.listen_to.as_deref() == Some(node)
            || self.props.inputs().iter().any(|i| i == node)
            || matches!(&self.props, NodeProps::Trigger(TriggerOptions { smart_record: Some(t), .. }) if t == node)
    }

    /// A node description in JSON (an API request's body): the keys of a
    /// `[[node]]` table and the same checks; an error names the key
    /// (`node.bitrate`) and its JSON path (`$.bitrate`). How the node links
    /// to others is checked when it is added to a server.
    pub fn from_json(value: &serde_json::Value, origin: &str) -> Result<NodeSpec, ConfigError> {
        let err = |key: Option<&str>, path: Option<String>, message: String| ConfigError {
            origin: origin.into(),
            at: None,
            key: key.map(|k| format!("node.{k}")),
            path,
            message,
        };
        let Some(object) = value.as_object() else {
            return Err(err(
                None,
                Some("$".into()),
                "expected a JSON object describing a node".into(),
            ));
        };
        let take_str = |key: &str| match object.get(key) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(err(
                Some(key),
                Some(format!("$.{key}")),
                format!("expected a string, found {}", json_type(other)),
            )),
        };
        let name = take_str("name")?.ok_or_else(|| err(None, Some("$".into()), "a node needs a `name`".into()))?;
        let kind = take_str("kind")?.ok_or_else(|| err(Some("kind"), Some("$.kind".into()), needs_kind(&name)))?;
        let listen_to = take_str("listen_to")?;
        let rest: serde_json::Map<String, serde_json::Value> = object
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "name" | "kind" | "listen_to"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let rest = serde_json::Value::Object(rest);
        let mut track = serde_path_to_error::Track::new();
        let props = NodeProps::deserialize(&kind, serde_path_to_error::Deserializer::new(&rest, &mut track))
            .map_err(|e| {
                let message = e.to_string();
                let path = track.path().to_string();
                let key = unknown_key(&message).map(str::to_owned).or_else(|| {
                    path.split(['.', '['])
                        .next()
                        .filter(|k| !k.is_empty())
                        .map(str::to_owned)
                });
                let path = match key.as_deref() {
                    Some(k) if path == "." => format!("$.{k}"),
                    _ => format!("${}{path}", if path.starts_with('[') { "" } else { "." }),
                };
                err(
                    key.as_deref(),
                    Some(path),
                    of_node(&name, &kind, &in_key_words(&message)),
                )
            })?
            .ok_or_else(|| err(Some("kind"), Some("$.kind".into()), unknown_kind(&kind)))?;
        props
            .check()
            .map_err(|(key, message)| err(Some(key), Some(format!("$.{key}")), of_node(&name, &kind, &message)))?;
        Ok(NodeSpec { name, listen_to, props })
    }

    /// A node description as the keys of one `[[node]]` table, without the
    /// header; errors name the line and key as the config file's do.
    pub fn from_toml(text: &str, origin: &str) -> Result<NodeSpec, ConfigError> {
        let parser = Parser { text, origin };
        let root = DeTable::parse(text).map_err(|e| parser.error(e.span(), None, e.message()))?;
        let table = toml::Spanned::new(0..text.len(), DeValue::Table(root.into_inner()));
        parser.node(table).map(|(node, _)| node)
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Spans of one table's keys and values, for locating errors.
struct KeySpans(Vec<(String, Range<usize>, Range<usize>)>);

impl KeySpans {
    fn of(table: &DeTable<'_>) -> Self {
        KeySpans(
            table
                .iter()
                .map(|(k, v)| (k.get_ref().to_string(), k.span(), v.span()))
                .collect(),
        )
    }

    fn find(&self, key: &str) -> Option<&(String, Range<usize>, Range<usize>)> {
        self.0.iter().find(|(k, _, _)| k == key)
    }

    /// The key whose key or value span holds `span`.
    fn at(&self, span: &Range<usize>) -> Option<&(String, Range<usize>, Range<usize>)> {
        let inside = |r: &Range<usize>| r.start <= span.start && span.end <= r.end.max(r.start + 1);
        self.0.iter().find(|(_, k, v)| inside(k) || inside(v))
    }
}

struct Parser<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Parser<'_> {
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    fn error(&self, span: Option<Range<usize>>, key: Option<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            origin: self.origin.into(),
            at: span.map(|s| self.line_col(s.start)),
            key,
            path: None,
            message: message.into(),
        }
    }

    /// Turns a deserialization error inside a table into a located error naming the key.
    fn table_error(&self, e: toml::de::Error, keys: &KeySpans, prefix: &str, fallback: Range<usize>) -> ConfigError {
        let span = e.span().unwrap_or(fallback);
        let message = e.message().to_owned();
        let key = match keys.at(&span) {
            Some((k, _, _)) => Some(k.clone()),
            None => {
                // serde names unknown fields in its message; point at that key.
                unknown_key(&message)
                    .and_then(|k| keys.find(k))
                    .map(|(k, _, _)| k.clone())
            }
        };
        let span = key
            .as_ref()
            .and_then(|k| keys.find(k))
            .map_or(span, |(_, ks, _)| ks.clone());
        self.error(Some(span), key.map(|k| format!("{prefix}{k}")), in_key_words(&message))
    }

    fn parse(&self) -> Result<Config, ConfigError> {
        let root = DeTable::parse(self.text).map_err(|e| self.error(e.span(), None, e.message()))?;
        let mut root = root.into_inner();
        let top = KeySpans::of(&root);
        if let Some((k, span, _)) = top.0.iter().find(|(k, _, _)| k != "server" && k != "node") {
            return Err(self.error(
                Some(span.clone()),
                Some(k.clone()),
                "unknown top-level key (expected `[server]` or `[[node]]`)",
            ));
        }
        let server = match root.remove("server") {
            None => ServerConfig::default(),
            Some(v) => {
                let span = v.span();
                let keys = match v.get_ref() {
                    DeValue::Table(t) => KeySpans::of(t),
                    _ => return Err(self.error(Some(span), Some("server".into()), "expected a table `[server]`")),
                };
                let server = ServerConfig::deserialize(ValueDeserializer::from(v))
                    .map_err(|e| self.table_error(e, &keys, "server.", span.clone()))?;
                server.check().map_err(|(key, message)| {
                    let at = keys.find("retention").map(|(_, k, _)| k.clone()).unwrap_or(span);
                    self.error(Some(at), Some(key), message)
                })?;
                server
            }
        };
        let mut nodes = Vec::new();
        let mut node_keys = Vec::new();
        if let Some(v) = root.remove("node") {
            let span = v.span();
            let DeValue::Array(items) = v.into_inner() else {
                return Err(self.error(
                    Some(span),
                    Some("node".into()),
                    "expected an array of tables `[[node]]`",
                ));
            };
            for item in items {
                let (node, keys) = self.node(item)?;
                nodes.push(node);
                node_keys.push(keys);
            }
        }
        let locate = |i: usize, key: &str| node_keys[i].find(key).map(|(_, s, _)| self.line_col(s.start));
        check_graph(&nodes, self.origin, &locate)?;
        Ok(Config { server, nodes })
    }

    fn node(&self, item: toml::Spanned<DeValue<'_>>) -> Result<(NodeSpec, KeySpans), ConfigError> {
        let span = item.span();
        let DeValue::Table(mut table) = item.into_inner() else {
            return Err(self.error(Some(span), Some("node".into()), "expected a table `[[node]]`"));
        };
        let keys = KeySpans::of(&table);
        let mut take_str = |key: &str| -> Result<Option<String>, ConfigError> {
            match table.remove(key) {
                None => Ok(None),
                Some(v) => match v.get_ref().as_str() {
                    Some(s) => Ok(Some(s.to_owned())),
                    None => Err(self.error(
                        Some(v.span()),
                        Some(format!("node.{key}")),
                        format!("expected a string, found {}", v.get_ref().type_str()),
                    )),
                },
            }
        };
        let name =
            take_str("name")?.ok_or_else(|| self.error(Some(span.clone()), None, "a [[node]] needs a `name`"))?;
        let kind = take_str("kind")?
            .ok_or_else(|| self.error(Some(span.clone()), Some("node.kind".into()), needs_kind(&name)))?;
        let listen_to = take_str("listen_to")?;
        let rest = toml::Spanned::new(span.clone(), DeValue::Table(table));
        let props = NodeProps::deserialize(&kind, ValueDeserializer::from(rest))
            .map_err(|e| {
                let mut err = self.table_error(e, &keys, "node.", span.clone());
                err.message = of_node(&name, &kind, &err.message);
                err
            })?
            .ok_or_else(|| {
                let at = keys.find("kind").map(|(_, _, v)| v.clone());
                self.error(at, Some("node.kind".into()), unknown_kind(&kind))
            })?;
        props.check().map_err(|(key, message)| {
            let at = keys.find(key).map(|(_, k, _)| k.clone()).or(Some(span.clone()));
            self.error(at, Some(format!("node.{key}")), of_node(&name, &kind, &message))
        })?;
        Ok((NodeSpec { name, listen_to, props }, keys))
    }
}
