//! The event bus: what happened that users act on — a file closed, a clip
//! finished, a recording stopped by a full disk, a snapshot taken, a
//! trigger fired. Every event is logged and handed to every subscriber
//! ([`EventBus::subscribe`]); webhooks and MQTT will subscribe here too.

pub mod trigger;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::output::index::Kind;
use crate::output::name::rfc3339;
use crate::output::recorder::Closed;

/// A file that was closed: a recording segment, a smart-record clip or a snapshot.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileEvent {
    /// The node that wrote it.
    pub node: String,
    /// The camera.
    pub camera: String,
    /// What it is.
    pub kind: Kind,
    /// Absolute path.
    pub path: String,
    /// UTC of the first frame (RFC 3339).
    pub start_utc: String,
    /// UTC after the last frame.
    pub end_utc: String,
    /// Seconds.
    pub duration_s: f64,
    /// Pipeline time of the first frame, ns.
    pub first_pts: i64,
    /// Pipeline time of the last frame, ns.
    pub last_pts: i64,
    /// Frames.
    pub frames: u64,
    /// Bytes.
    pub bytes: u64,
    /// What started it.
    pub trigger: Option<String>,
}

impl FileEvent {
    /// The event of `closed`, written by `node`.
    pub fn of(node: &str, closed: &Closed) -> FileEvent {
        FileEvent {
            node: node.to_owned(),
            camera: closed.camera.clone(),
            kind: closed.kind,
            path: closed.path.display().to_string(),
            start_utc: rfc3339(closed.start),
            end_utc: rfc3339(closed.end),
            duration_s: closed.duration_s(),
            first_pts: closed.first_pts,
            last_pts: closed.last_pts,
            frames: closed.frames,
            bytes: closed.bytes,
            trigger: closed.trigger.clone(),
        }
    }
}

/// Something that happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A file is complete: a segment, a clip, or a snapshot written to disk.
    Closed(FileEvent),
    /// A recording or clip stopped on an error; what it wrote so far is in
    /// `kept`, playable.
    Failed {
        /// The node.
        node: String,
        /// Why.
        error: String,
        /// The file closed with what was whole, if one was open.
        kept: Option<FileEvent>,
    },
    /// A trigger fired.
    Triggered {
        /// The trigger node.
        node: String,
        /// The camera.
        camera: String,
        /// The class detected.
        class: String,
        /// Its confidence.
        confidence: f32,
        /// Pipeline time of the frame, ns.
        pts: i64,
        /// What it did.
        actions: Vec<String>,
    },
}

/// Hands events to every subscriber. Cheap to clone; clones share subscribers.
#[derive(Clone, Default)]
pub struct EventBus {
    subscribers: Arc<Mutex<Vec<mpsc::Sender<Event>>>>,
}

impl EventBus {
    /// A bus without subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event from now on (unbounded: read them, or drop the receiver).
    pub fn subscribe(&self) -> mpsc::Receiver<Event> {
        let (tx, rx) = mpsc::channel();
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        rx
    }

    /// Logs `event` and hands it to every live subscriber.
    pub fn emit(&self, event: Event) {
        match &event {
            Event::Failed { node, error, .. } => tracing::error!(node = %node, "{error}"),
            e => tracing::info!("event {}", serde_json::to_string(e).unwrap_or_default()),
        }
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|tx| tx.send(event.clone()).is_ok());
    }
}
