//! The event bus: what happened that users act on — a file closed, a clip
//! finished, a recording stopped by a full disk, a snapshot taken, a
//! trigger fired. Every event is logged and handed to every subscriber
//! ([`EventBus::subscribe`]); webhooks and MQTT will subscribe here too.
//!
//! Each subscriber has its own bounded queue: one that stops reading loses
//! its oldest events (counted in [`EventSubscription::dropped`]) and never
//! holds more than its capacity, and emitting never waits on it.

pub mod trigger;
pub mod webhook;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::hub::RecvError;
use crate::output::index::Kind;
use crate::output::name::rfc3339;
use crate::output::recorder::Closed;

/// A file that was closed: a recording segment, a smart-record clip or a snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
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
    /// A node changed state (`starting`, `running`, `reconnecting`,
    /// `stopped`, `failed`): a producer's stream is up while it runs.
    Node {
        /// The node.
        node: String,
        /// Its kind.
        kind: String,
        /// The new state.
        state: String,
        /// Why, for `reconnecting` and `failed`.
        error: Option<String>,
    },
    /// A network protocol started reading a stream: its first client there
    /// (each protocol reads a stream once for all its clients).
    Reader {
        /// The stream.
        stream: String,
        /// `rtsp`, `hls`, `websocket`, `mjpeg`, `api`…
        protocol: String,
        /// The signed-in user, if any.
        user: Option<String>,
    },
}

impl Event {
    /// Every event's name, as [`Event::name`] gives it.
    pub const NAMES: [&'static str; 5] = ["closed", "failed", "triggered", "node", "reader"];

    /// The event's name (its `event` field).
    pub fn name(&self) -> &'static str {
        match self {
            Event::Closed(_) => "closed",
            Event::Failed { .. } => "failed",
            Event::Triggered { .. } => "triggered",
            Event::Node { .. } => "node",
            Event::Reader { .. } => "reader",
        }
    }

    /// Whether the event is one of `names` (empty: any) about a node or
    /// camera matching the glob `node` (none: any).
    pub fn matches(&self, names: &[String], node: Option<&str>) -> bool {
        let (subject, camera) = self.subject();
        let glob = crate::serve::auth::glob_match;
        (names.is_empty() || names.iter().any(|n| n == self.name()))
            && node.is_none_or(|g| glob(g, subject) || camera.is_some_and(|c| glob(g, c)))
    }

    /// The first of `names` that names no event, with the error to show.
    pub fn unknown(names: &[String]) -> Option<String> {
        names
            .iter()
            .find(|n| !Event::NAMES.contains(&n.as_str()))
            .map(|bad| format!("unknown event `{bad}` (events: {})", Event::NAMES.join(", ")))
    }

    /// The node or stream the event is about, and its camera when known.
    pub fn subject(&self) -> (&str, Option<&str>) {
        match self {
            Event::Closed(f) => (&f.node, Some(&f.camera)),
            Event::Failed { node, kept, .. } => (node, kept.as_ref().map(|k| k.camera.as_str())),
            Event::Triggered { node, camera, .. } => (node, Some(camera)),
            Event::Node { node, .. } => (node, None),
            Event::Reader { stream, .. } => (stream, None),
        }
    }
}

/// Hands events to every subscriber. Cheap to clone; clones share subscribers.
#[derive(Clone, Default)]
pub struct EventBus {
    subscribers: Arc<Mutex<Vec<Weak<Queue>>>>,
}

impl EventBus {
    /// A bus with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event from now on, in a queue of [`EventSubscription::CAPACITY`].
    pub fn subscribe(&self) -> EventSubscription {
        self.subscribe_with(EventSubscription::CAPACITY)
    }

    /// Every event from now on, in a queue that keeps the last `capacity`
    /// (at least one): a subscriber that does not read loses the oldest,
    /// counted, and never holds more.
    pub fn subscribe_with(&self, capacity: usize) -> EventSubscription {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                events: VecDeque::new(),
                dropped: 0,
                waker: None,
            }),
            ready: Condvar::new(),
            capacity: capacity.max(1),
        });
        lock(&self.subscribers).push(Arc::downgrade(&queue));
        EventSubscription { queue }
    }

    /// Logs `event` and hands it to every subscriber; never waits.
    pub fn emit(&self, event: Event) {
        match &event {
            Event::Failed { node, error, .. } => tracing::error!(node = %node, "{error}"),
            Event::Reader { .. } => tracing::debug!("event {}", serde_json::to_string(&event).unwrap_or_default()),
            e => tracing::info!("event {}", serde_json::to_string(e).unwrap_or_default()),
        }
        let queues: Vec<Arc<Queue>> = {
            let mut subscribers = lock(&self.subscribers);
            subscribers.retain(|q| q.strong_count() > 0);
            subscribers.iter().filter_map(Weak::upgrade).collect()
        };
        for q in queues {
            q.push(event.clone());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
    capacity: usize,
}

struct QueueState {
    events: VecDeque<Event>,
    dropped: u64,
    waker: Option<Waker>,
}

impl Queue {
    fn push(&self, event: Event) {
        let mut st = lock(&self.state);
        if st.events.len() == self.capacity {
            st.events.pop_front();
            st.dropped += 1;
        }
        st.events.push_back(event);
        let waker = st.waker.take();
        drop(st);
        self.ready.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// One subscriber's bounded queue of events; readable from threads and
/// awaitable from tasks (any runtime). Dropping it unsubscribes.
pub struct EventSubscription {
    queue: Arc<Queue>,
}

impl EventSubscription {
    /// Events a subscription keeps by default.
    pub const CAPACITY: usize = 1024;

    /// The next event if one is queued.
    pub fn try_recv(&self) -> Option<Event> {
        lock(&self.queue.state).events.pop_front()
    }

    /// Every event queued now.
    pub fn try_iter(&self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(|| self.try_recv())
    }

    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Event, RecvError> {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.queue.state);
        loop {
            if let Some(e) = st.events.pop_front() {
                return Ok(e);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RecvError::Timeout);
            }
            st = self
                .queue
                .ready
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The next event, for async tasks.
    pub fn recv_async(&self) -> impl Future<Output = Event> + '_ {
        std::future::poll_fn(|cx: &mut Context<'_>| {
            let mut st = lock(&self.queue.state);
            match st.events.pop_front() {
                Some(e) => Poll::Ready(e),
                None => {
                    st.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }

    /// Events lost because the queue was full.
    pub fn dropped(&self) -> u64 {
        lock(&self.queue.state).dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: usize) -> Event {
        Event::Failed {
            node: format!("n{i}"),
            error: "x".into(),
            kept: None,
        }
    }

    #[test]
    fn a_subscriber_that_never_reads_holds_a_bounded_queue_and_counts_its_losses() {
        let bus = EventBus::new();
        let stuck = bus.subscribe_with(8);
        let reader = bus.subscribe();
        for i in 0..10_000 {
            bus.emit(event(i));
            assert_eq!(reader.try_recv(), Some(event(i)));
        }
        assert_eq!(stuck.dropped(), 10_000 - 8);
        let kept: Vec<Event> = stuck.try_iter().collect();
        assert_eq!(
            kept,
            (10_000 - 8..10_000).map(event).collect::<Vec<_>>(),
            "the newest are kept"
        );
        drop(stuck);
        bus.emit(event(0));
        assert_eq!(lock(&bus.subscribers).len(), 1, "a dropped subscription leaves the bus");
    }

    #[test]
    fn events_are_awaited_from_a_task() {
        let bus = EventBus::new();
        let sub = bus.subscribe();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let emitter = {
            let bus = bus.clone();
            std::thread::spawn(move || bus.emit(event(1)))
        };
        assert_eq!(rt.block_on(sub.recv_async()), event(1));
        emitter.join().unwrap();
        assert_eq!(sub.recv_timeout(Duration::from_millis(10)), Err(RecvError::Timeout));
    }
}
