//! The stream hub: named streams and subscriptions, Eyrie's replacement for
//! GstInterpipe's `interpipesink` / `interpipesrc`.
//!
//! A producer takes a [`Publisher`] for a stream name and publishes [`Item`]s:
//! frames or packets, and in-band events (format change, end of stream) that
//! travel in order with them. A consumer [`Hub::subscribe`]s by name and gets its
//! own bounded queue with a [`Policy`]:
//!
//! - **leaky**: when full, the oldest frame/packet is dropped and counted; the
//!   producer never waits, so a slow consumer slows nobody else;
//! - **blocking**: when full, the producer waits for room (file-to-file work).
//!
//! Events are never dropped and never wait (they do not count against capacity),
//! so an end of stream cannot be lost to a full queue.
//!
//! A subscription can be **relinked** to another stream name while it runs
//! ([`SubscriptionControl::relink`], interpipesrc's `listen-to`). When `relink`
//! returns, nothing from the old stream is queued, and nothing from it will be
//! accepted again; the new stream's current format (and its end, if it ended)
//! arrives first, so the consumer always learns the format in-band before the
//! first frame.
//!
//! Receiving works from OS threads ([`Subscription::recv`]) and from async tasks
//! ([`Subscription::recv_async`], runtime-agnostic).
//!
//! Locking: a stream's state lock may be held while taking a subscriber's queue
//! lock, never the reverse; a producer waiting on a full blocking queue holds only
//! that queue's lock (through its condvar), so relinks and new subscriptions never
//! wait on a stalled consumer.

mod queue;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::media::{CodecParams, Frame, Packet, VideoInfo};
use queue::{Push, SubShared, Wait};
pub use queue::{Recv, RecvError};

/// What flows through a stream.
#[derive(Clone, Debug)]
pub enum Item {
    /// A raw video frame (a lease on its pixels).
    Frame(Frame),
    /// An encoded packet.
    Packet(Packet),
    /// The stream's format changes; following items are in the new format.
    Format(StreamFormat),
    /// The stream ended. A producer may start it again with a new `Format`.
    Eos,
}

impl Item {
    /// True for frames and packets (the items queues bound and may drop).
    pub fn is_media(&self) -> bool {
        matches!(self, Item::Frame(_) | Item::Packet(_))
    }
}

/// The format of a stream.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamFormat {
    /// Raw video.
    Video(VideoInfo),
    /// Encoded video.
    Coded(Arc<CodecParams>),
}

/// What a full subscriber queue does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Drop the oldest frame/packet (counted); the producer never waits.
    #[default]
    Leaky,
    /// The producer waits until the consumer makes room.
    Blocking,
}

/// Queue options of a subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Frames/packets the queue holds (events do not count).
    pub capacity: usize,
    /// What happens when it is full.
    pub policy: Policy,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            capacity: 8,
            policy: Policy::Leaky,
        }
    }
}

impl SubscribeOptions {
    /// A leaky queue of `capacity`.
    pub fn leaky(capacity: usize) -> Self {
        SubscribeOptions {
            capacity,
            policy: Policy::Leaky,
        }
    }

    /// A blocking queue of `capacity`.
    pub fn blocking(capacity: usize) -> Self {
        SubscribeOptions {
            capacity,
            policy: Policy::Blocking,
        }
    }
}

/// Counters of one subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SubStats {
    /// The stream it is linked to.
    pub stream: String,
    /// Items handed to the consumer.
    pub delivered: u64,
    /// Frames/packets dropped because the queue was full (leaky policy).
    pub dropped: u64,
    /// Items discarded unread by relinks.
    pub flushed: u64,
    /// Items waiting now.
    pub depth: usize,
    /// The queue's capacity.
    pub capacity: usize,
}

/// Counters of one stream.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StreamStats {
    /// The stream's name.
    pub name: String,
    /// Items published so far.
    pub published: u64,
    /// Subscriptions now linked.
    pub subscribers: usize,
    /// Live publishers.
    pub publishers: usize,
    /// True after end of stream (until restarted).
    pub ended: bool,
}

/// The registry of named streams. Cheap to clone; clones share the streams.
#[derive(Clone, Default)]
pub struct Hub {
    streams: Arc<Mutex<HashMap<String, Arc<Stream>>>>,
}

static NEXT_STREAM_ID: AtomicU64 = AtomicU64::new(1);

struct Stream {
    id: u64,
    name: String,
    state: Mutex<StreamState>,
    /// Bumped (under `state`) whenever the subscriber list changes.
    version: AtomicU64,
    /// Mirrors `state.ended`, so media publishing checks it without the lock.
    ended: AtomicBool,
    published: AtomicU64,
}

#[derive(Default)]
struct StreamState {
    subs: Arc<Vec<Arc<SubShared>>>,
    format: Option<StreamFormat>,
    ended: bool,
    publishers: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Stream {
    fn add(&self, sub: &Arc<SubShared>, stream: &Arc<Stream>) {
        let mut st = lock(&self.state);
        sub.link(stream, st.format.clone(), st.ended);
        let mut subs = (*st.subs).clone();
        subs.push(Arc::clone(sub));
        st.subs = Arc::new(subs);
        self.version.fetch_add(1, Ordering::Release);
    }

    fn remove(&self, sub: &Arc<SubShared>) {
        let mut st = lock(&self.state);
        if st.subs.iter().any(|s| Arc::ptr_eq(s, sub)) {
            st.subs = Arc::new(st.subs.iter().filter(|s| !Arc::ptr_eq(s, sub)).cloned().collect());
            self.version.fetch_add(1, Ordering::Release);
        }
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    fn stream(&self, name: &str) -> Arc<Stream> {
        let mut streams = lock(&self.streams);
        if let Some(s) = streams.get(name) {
            return Arc::clone(s);
        }
        let s = Arc::new(Stream {
            id: NEXT_STREAM_ID.fetch_add(1, Ordering::Relaxed),
            name: name.to_owned(),
            state: Mutex::new(StreamState::default()),
            version: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            published: AtomicU64::new(0),
        });
        streams.insert(name.to_owned(), Arc::clone(&s));
        s
    }

    /// A publisher for stream `name` (created if new). Streams exist by name:
    /// subscribing before the producer starts is fine.
    pub fn publisher(&self, name: &str) -> Publisher {
        let stream = self.stream(name);
        lock(&stream.state).publishers += 1;
        Publisher {
            stream,
            cached: Arc::new(Vec::new()),
            cached_version: u64::MAX,
        }
    }

    /// Subscribes to stream `name` with its own queue.
    pub fn subscribe(&self, name: &str, options: SubscribeOptions) -> Subscription {
        assert!(options.capacity > 0, "a subscription needs a capacity of at least one");
        let shared = Arc::new(SubShared::new(options));
        let control = SubscriptionControl {
            hub: self.clone(),
            shared,
            relinking: Arc::new(Mutex::new(())),
        };
        control.relink(name);
        Subscription { control }
    }

    /// Counters of every stream, sorted by name.
    pub fn stream_stats(&self) -> Vec<StreamStats> {
        let streams: Vec<Arc<Stream>> = lock(&self.streams).values().cloned().collect();
        let mut out: Vec<StreamStats> = streams
            .iter()
            .map(|s| {
                let st = lock(&s.state);
                StreamStats {
                    name: s.name.clone(),
                    published: s.published.load(Ordering::Relaxed),
                    subscribers: st.subs.len(),
                    publishers: st.publishers,
                    ended: st.ended,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

/// The producing end of a stream. Dropping it ends the stream (sends `Eos`) if
/// the producer did not.
pub struct Publisher {
    stream: Arc<Stream>,
    cached: Arc<Vec<Arc<SubShared>>>,
    cached_version: u64,
}

impl Publisher {
    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.stream.name
    }

    /// Publishes `item` to every subscriber. Frames and packets are cloned per
    /// subscriber (a new lease, never the pixels). Returns at once unless a
    /// blocking subscriber's queue is full.
    pub fn publish(&mut self, item: Item) {
        self.stream.published.fetch_add(1, Ordering::Relaxed);
        if !item.is_media() {
            return self.publish_event(item);
        }
        if self.stream.ended.load(Ordering::Acquire) {
            let mut st = lock(&self.stream.state);
            st.ended = false;
            self.stream.ended.store(false, Ordering::Release);
        }
        let version = self.stream.version.load(Ordering::Acquire);
        if version != self.cached_version {
            let st = lock(&self.stream.state);
            self.cached = Arc::clone(&st.subs);
            self.cached_version = self.stream.version.load(Ordering::Acquire);
        }
        let id = self.stream.id;
        if let Some((last, rest)) = self.cached.split_last() {
            for sub in rest {
                sub.push(id, item.clone(), Push::Media);
            }
            last.push(id, item, Push::Media);
        }
    }

    /// Format changes and end of stream: delivered under the stream lock, so a
    /// subscriber joining at the same moment sees each one exactly once.
    fn publish_event(&mut self, item: Item) {
        let mut st = lock(&self.stream.state);
        match &item {
            Item::Format(f) => {
                st.format = Some(f.clone());
                st.ended = false;
            }
            Item::Eos => st.ended = true,
            _ => unreachable!("media items are published without the lock"),
        }
        self.stream.ended.store(st.ended, Ordering::Release);
        for sub in st.subs.iter() {
            sub.push(self.stream.id, item.clone(), Push::Event);
        }
        self.cached = Arc::clone(&st.subs);
        self.cached_version = self.stream.version.load(Ordering::Acquire);
    }

    /// Subscriptions now linked to this stream.
    pub fn subscriber_count(&self) -> usize {
        lock(&self.stream.state).subs.len()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let ended = {
            let mut st = lock(&self.stream.state);
            st.publishers -= 1;
            st.ended
        };
        if !ended {
            self.publish(Item::Eos);
        }
    }
}

/// The consuming end: a bounded queue linked to one stream at a time. Dropping
/// it unlinks it and releases everything queued.
pub struct Subscription {
    control: SubscriptionControl,
}

impl Subscription {
    /// The next item, waiting for one; `None` once the subscription is closed and
    /// its queue drained.
    pub fn recv(&self) -> Option<Item> {
        self.control.shared.recv(Wait::Forever).ok()
    }

    /// The next item, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Item, RecvError> {
        self.control
            .shared
            .recv(Wait::Until(std::time::Instant::now() + timeout))
    }

    /// The next item if one is queued.
    pub fn try_recv(&self) -> Result<Item, RecvError> {
        self.control.shared.recv(Wait::No)
    }

    /// The next item, for async tasks (any runtime).
    pub fn recv_async(&self) -> Recv<'_> {
        Recv::new(&self.control.shared)
    }

    /// A handle that relinks, closes and reads the stats of this subscription
    /// from anywhere (the API, the node registry).
    pub fn control(&self) -> SubscriptionControl {
        self.control.clone()
    }

    /// Relinks to another stream (see [`SubscriptionControl::relink`]).
    pub fn relink(&self, name: &str) {
        self.control.relink(name)
    }

    /// This subscription's counters.
    pub fn stats(&self) -> SubStats {
        self.control.stats()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.control.close();
        let linked = self.control.shared.linked_stream();
        if let Some(stream) = linked {
            stream.remove(&self.control.shared);
        }
        self.control.shared.clear();
    }
}

/// Remote control of a [`Subscription`].
#[derive(Clone)]
pub struct SubscriptionControl {
    hub: Hub,
    shared: Arc<SubShared>,
    relinking: Arc<Mutex<()>>,
}

impl SubscriptionControl {
    /// Links the subscription to stream `name` instead of its current one. When
    /// this returns, nothing from the old stream is queued or will be delivered;
    /// the new stream's format (and end, if it ended) is queued first. Relinking
    /// to the current stream does nothing.
    pub fn relink(&self, name: &str) {
        let _one_at_a_time = lock(&self.relinking);
        if self.shared.is_closed() {
            return;
        }
        let new = self.hub.stream(name);
        let old = self.shared.linked_stream();
        if let Some(old) = &old {
            if old.id == new.id {
                return;
            }
            old.remove(&self.shared);
        }
        new.add(&self.shared, &new);
    }

    /// Closes the subscription: the consumer receives what is queued, then `None`.
    /// Producers stop queueing to it.
    pub fn close(&self) {
        self.shared.close();
    }

    /// The name of the stream it is linked to.
    pub fn linked_to(&self) -> Option<String> {
        self.shared.linked_stream().map(|s| s.name.clone())
    }

    /// Counters.
    pub fn stats(&self) -> SubStats {
        self.shared.stats()
    }

    /// Frames/packets dropped so far because the queue was full: a cheap
    /// per-item check for consumers that must notice a loss.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped()
    }
}
