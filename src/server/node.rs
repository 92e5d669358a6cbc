//! What every running node shares with the registry: its state, stop request,
//! counters and measured rate.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::hub::{Hub, Item, Publisher, StreamFormat};
use std::thread::JoinHandle;

use crate::events::EventBus;
use crate::media::{BufferPool, Clock, CodecParams, count_thread_copies_in};
use crate::output::index::{Index, Kind, Recovery, Retention};
use crate::output::ring::CacheStats;
use crate::output::root::MediaRoot;

/// Where a node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Started, no output yet.
    Starting,
    /// Producing or consuming.
    Running,
    /// A source lost its device or connection and is retrying (see the node's `error`).
    Reconnecting,
    /// Finished cleanly (end of stream, or stopped).
    Stopped,
    /// Stopped by an error (see the node's `error`).
    Failed,
}

/// State and counters of one node, shared between its thread and the registry.
pub(crate) struct NodeShared {
    pub(crate) clock: Arc<dyn Clock>,
    /// The node's name and kind, for its state events.
    name: Arc<str>,
    kind: &'static str,
    /// Where state changes are announced.
    events: EventBus,
    state: Mutex<(NodeState, Option<String>)>,
    stop: AtomicBool,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    dropped: AtomicU64,
    reconnects: AtomicU64,
    /// Frame bytes copied on the node's thread.
    copied: Arc<AtomicU64>,
    /// Set while `Reconnecting`: the next frame out makes the node `Running` again.
    recovering: AtomicBool,
    first_out_ns: AtomicI64,
    last_out_ns: AtomicI64,
    /// The node's buffer pool, for stats (producers only).
    pub(crate) pool: Mutex<Option<BufferPool>>,
    /// Time spent per stage of the node's work: (ns, frames), summed.
    stages: Mutex<BTreeMap<&'static str, (u64, u64)>>,
    /// What the node's packet cache holds (smartrecord).
    cache: Mutex<Option<CacheStats>>,
}

impl NodeShared {
    pub(crate) fn new(clock: Arc<dyn Clock>, name: Arc<str>, kind: &'static str, events: EventBus) -> Self {
        NodeShared {
            clock,
            name,
            kind,
            events,
            state: Mutex::new((NodeState::Starting, None)),
            stop: AtomicBool::new(false),
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            copied: Arc::default(),
            recovering: AtomicBool::new(false),
            first_out_ns: AtomicI64::new(0),
            last_out_ns: AtomicI64::new(0),
            pool: Mutex::new(None),
            stages: Mutex::default(),
            cache: Mutex::default(),
        }
    }

    /// Records what the node's packet cache holds now.
    pub(crate) fn set_cache(&self, stats: CacheStats) {
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats);
    }

    pub(crate) fn cache(&self) -> Option<CacheStats> {
        *self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `ns` spent on `frames` frames to `stage`.
    pub(crate) fn add_stage(&self, stage: &'static str, ns: u64, frames: u64) {
        let mut stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        let (total, n) = stages.entry(stage).or_default();
        *total += ns;
        *n += frames;
    }

    /// Adds the time since `started`, spent on one frame, to `stage`.
    pub(crate) fn time_stage(&self, stage: &'static str, started: Instant) {
        self.add_stage(stage, started.elapsed().as_nanos() as u64, 1);
    }

    /// Mean µs per frame of each stage timed so far.
    pub(crate) fn stages_us(&self) -> BTreeMap<&'static str, f64> {
        let stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        stages
            .iter()
            .filter(|(_, (_, n))| *n > 0)
            .map(|(&k, &(ns, n))| (k, ns as f64 / n as f64 / 1e3))
            .collect()
    }

    /// Sets the state; a change (of state or error) is announced as an event.
    pub(crate) fn set_state(&self, state: NodeState, error: Option<String>) {
        let mut now = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if *now == (state, error.clone()) {
            return;
        }
        *now = (state, error.clone());
        drop(now);
        let state = serde_json::to_value(state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        self.events.emit(crate::events::Event::Node {
            node: self.name.to_string(),
            kind: self.kind.to_owned(),
            state,
            error,
        });
    }

    pub(crate) fn state(&self) -> (NodeState, Option<String>) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sleeps on the pipeline clock until `due_ns`, waking at least every 50 ms
    /// so that a stop request ends the wait early.
    pub(crate) fn sleep_until(&self, due_ns: i64) {
        const SLICE_NS: i64 = 50_000_000;
        while self.clock.now_ns() < due_ns && !self.stop_requested() {
            self.clock.sleep_until(due_ns.min(self.clock.now_ns() + SLICE_NS));
        }
    }

    pub(crate) fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Counts one frame/packet in.
    pub(crate) fn count_in(&self) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one frame/packet lost by this node.
    pub(crate) fn count_dropped(&self) {
        self.count_dropped_n(1);
    }

    /// Counts `n` frames/packets lost (a source's sequence gap).
    pub(crate) fn count_dropped_n(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one loss of the device or connection (a source reopening it).
    pub(crate) fn count_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks the node `Reconnecting` because of `error`, until its next frame out.
    pub(crate) fn set_reconnecting(&self, error: String) {
        self.set_state(NodeState::Reconnecting, Some(error));
        self.recovering.store(true, Ordering::Release);
    }

    /// Frame bytes the node's thread copied.
    pub(crate) fn bytes_copied(&self) -> u64 {
        self.copied.load(Ordering::Relaxed)
    }

    pub(crate) fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    pub(crate) fn frames_in(&self) -> u64 {
        self.frames_in.load(Ordering::Relaxed)
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Counts one frame/packet out, now.
    pub(crate) fn count_out(&self) {
        let now = self.clock.now_ns();
        if self.frames_out.fetch_add(1, Ordering::AcqRel) == 0 {
            self.first_out_ns.store(now, Ordering::Release);
            self.set_state(NodeState::Running, None);
        }
        if self.recovering.load(Ordering::Relaxed) && self.recovering.swap(false, Ordering::AcqRel) {
            self.set_state(NodeState::Running, None);
        }
        self.last_out_ns.store(now, Ordering::Release);
    }

    pub(crate) fn frames_out(&self) -> u64 {
        self.frames_out.load(Ordering::Acquire)
    }

    /// Output rate measured between the first and the last frame out.
    pub(crate) fn fps(&self) -> f64 {
        let n = self.frames_out();
        let span = self.last_out_ns.load(Ordering::Acquire) - self.first_out_ns.load(Ordering::Acquire);
        if n < 2 || span <= 0 {
            0.0
        } else {
            (n - 1) as f64 * 1e9 / span as f64
        }
    }
}

/// What a node's thread is given.
pub(crate) struct NodeCtx {
    pub(crate) name: Arc<str>,
    pub(crate) hub: Hub,
    pub(crate) shared: Arc<NodeShared>,
    pub(crate) env: Arc<Env>,
}

/// What every node of a server shares: the event bus and the media root
/// with its recordings index (opened by the first node or call that needs it).
pub(crate) struct Env {
    pub(crate) events: EventBus,
    pub(crate) clock: Arc<dyn Clock>,
    media_root: PathBuf,
    /// Limits on all recordings together.
    pub(crate) retention: Retention,
    storage: OnceLock<Result<Storage, String>>,
    /// The request channels of the smartrecord nodes, for triggers.
    smart: Mutex<HashMap<String, super::smart::Commands>>,
}

/// The media root and its index.
#[derive(Clone)]
pub(crate) struct Storage {
    pub(crate) root: MediaRoot,
    pub(crate) index: Index,
}

impl Env {
    pub(crate) fn new(clock: Arc<dyn Clock>, media_root: PathBuf, retention: Retention) -> Self {
        Env {
            events: EventBus::new(),
            clock,
            media_root,
            retention,
            storage: OnceLock::new(),
            smart: Mutex::default(),
        }
    }

    /// Makes smartrecord node `name` reachable by triggers.
    pub(crate) fn register_smart_record(&self, name: &str, commands: super::smart::Commands) {
        self.smart
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), commands);
    }

    /// Forgets smartrecord node `name` (removed).
    pub(crate) fn forget_smart_record(&self, name: &str) {
        self.smart.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
    }

    /// The request channel of smartrecord node `name`.
    pub(crate) fn smart_record(&self, name: &str) -> Option<super::smart::Commands> {
        self.smart.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    /// The media root and index, opened (and recovered) on first use.
    pub(crate) fn storage(&self) -> Result<&Storage, String> {
        self.storage
            .get_or_init(|| {
                let root = MediaRoot::open(&self.media_root).map_err(|e| format!("media root: {e}"))?;
                let (index, recovery) = Index::open(&root).map_err(|e| e.to_string())?;
                if recovery != Recovery::default() {
                    tracing::warn!(
                        "media root {}: recovered after a crash: {}",
                        root.path().display(),
                        serde_json::to_string(&recovery).unwrap_or_default()
                    );
                }
                Ok(Storage { root, index })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Applies the server-wide retention, and `own` (a node's, to `camera`'s `kind` files).
    pub(crate) fn retain(&self, node: &str, own: Option<(&Retention, &str, Kind)>) {
        let Ok(storage) = self.storage() else { return };
        let now = self.clock.utc_now();
        let mut result = Ok(Vec::new());
        if let Some((rule, camera, kind)) = own {
            result = storage.index.enforce(rule, Some(camera), Some(kind), now);
        }
        if result.is_ok() {
            result = storage.index.enforce(&self.retention, None, None, now);
        }
        if let Err(e) = result {
            tracing::warn!(node, "retention: {e}");
        }
    }
}

impl NodeCtx {
    /// Runs `body` on the node's own thread, named `kind:name`; the frame
    /// bytes it copies count in the node's stats as well as the process's.
    pub(crate) fn spawn(
        self,
        kind: &str,
        body: impl FnOnce(NodeCtx) + Send + 'static,
    ) -> Result<JoinHandle<()>, String> {
        std::thread::Builder::new()
            .name(format!("{kind}:{}", self.name))
            .spawn(move || {
                count_thread_copies_in(Arc::clone(&self.shared.copied));
                body(self)
            })
            .map_err(|e| format!("cannot start its thread: {e}"))
    }
}

/// The codec parameters a source last announced with a `Format`.
#[derive(Default)]
pub(crate) struct Announced(Option<Arc<CodecParams>>);

impl Announced {
    /// Publishes a `Format` when `params` differ from the last announced ones
    /// (a new session's equal parameters in a new `Arc` are no change).
    pub(crate) fn update(&mut self, publisher: &mut Publisher, params: &Arc<CodecParams>) {
        if self
            .0
            .as_ref()
            .is_none_or(|old| !Arc::ptr_eq(old, params) && **old != **params)
        {
            publisher.publish(Item::Format(StreamFormat::Coded(Arc::clone(params))));
            self.0 = Some(Arc::clone(params));
        }
    }
}

/// Waits between a source's attempts to reopen its device or connection:
/// 0.5 s, doubling up to a maximum, and 0.5 s again once frames flowed.
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(500);

    pub(crate) fn new(max_secs: f64) -> Self {
        Backoff {
            next: Self::FIRST,
            max: Duration::from_secs_f64(max_secs),
        }
    }

    /// Frames flowed: the next loss waits the shortest time again.
    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// Records a loss of the device or connection (`error`, logged for
    /// `node`): counts it, marks the node `Reconnecting`, and returns how long
    /// to wait before the next attempt.
    pub(crate) fn lost(&mut self, node: &str, shared: &NodeShared, error: String) -> Duration {
        let wait = self.next;
        tracing::warn!(node, "{error}; retrying in {:.1} s", wait.as_secs_f64());
        shared.count_reconnect();
        shared.set_reconnecting(error);
        self.next = (wait * 2).min(self.max);
        wait
    }
}

/// Lets a per-frame condition be logged at most once a second.
pub(crate) struct Every {
    period_ns: i64,
    last_ns: Option<i64>,
    /// Occurrences since the last time it fired.
    pending: u64,
}

impl Every {
    pub(crate) fn second() -> Self {
        Every {
            period_ns: 1_000_000_000,
            last_ns: None,
            pending: 0,
        }
    }

    /// Records one occurrence. When it is time to log, returns how many
    /// occurrences the log line covers (and starts counting anew).
    pub(crate) fn tick(&mut self, now_ns: i64) -> Option<u64> {
        self.pending += 1;
        match self.last_ns {
            Some(last) if now_ns - last < self.period_ns => None,
            _ => {
                self.last_ns = Some(now_ns);
                Some(std::mem::take(&mut self.pending))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_second_logs_the_first_then_counts() {
        let mut e = Every::second();
        assert_eq!(e.tick(0), Some(1));
        assert_eq!(e.tick(100), None);
        assert_eq!(e.tick(999_999_999), None);
        assert_eq!(
            e.tick(1_000_000_000),
            Some(3),
            "the line covers everything since the last one"
        );
        assert_eq!(e.tick(1_000_000_001), None);
    }
}
