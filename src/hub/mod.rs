//! The stream hub: named streams and subscriptions, Eyrie's replacement for
//! GstInterpipe's `interpipesink` / `interpipesrc`.
//!
//! A producer takes a [`Publisher`] for a stream name and publishes [`Item`]s:
//! frames or packets, and in-band events (format change, end of stream) that
//! travel in order with them. A consumer [`Hub::subscribe`]s by name and gets its
//! own bounded queue with a [`Policy`]:
//!
//! - **leaky**: when full, the oldest frame/packet is dropped and counted, with
//!   every packet after it up to the next keyframe, and the consumer receives
//!   an [`Item::Gap`] where they were (loss in band: no reader is handed the
//!   undecodable tail of a GOP); the producer never waits, so a slow consumer
//!   slows nobody else;
//! - **blocking**: when full, the producer waits for room (file-to-file work).
//!
//! Events are never dropped and never wait (they do not count against capacity),
//! so an end of stream cannot be lost to a full queue.
//!
//! **Joining.** A new subscription (or a relinked one) receives the stream's
//! format first, then packets from a keyframe on: with [`Join::NextKeyframe`]
//! (the default) packets before the stream's next keyframe are skipped; with
//! [`Join::LastKeyframe`] the stream's cached last GOP is queued at once, so a
//! viewer starts without waiting for the next keyframe. Each packet stream
//! keeps that GOP (bounded by bytes; a GOP larger than the bound is not kept,
//! and joins wait for the next keyframe). The cache holds packets as they
//! are: a producer whose packets lease a driver's buffers copies them when it
//! runs short (the `v4l2` node does), so the cache never stops capture.
//!
//! **Streams exist while used.** A stream exists while it has a publisher or
//! a subscriber, and goes away when it has neither: looking one up
//! ([`Hub::stream_stats_of`]) never creates it.
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
use queue::{Joining, Push, SubShared, Wait};
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
    /// This many frames/packets were lost here by the subscriber's own queue
    /// (leaky policy) since it was linked to its stream; the next packet is a
    /// keyframe. Publishing one does nothing: each queue reports its own.
    Gap(u64),
}

impl Item {
    /// True for frames and packets (the items queues bound and may drop).
    pub fn is_media(&self) -> bool {
        matches!(self, Item::Frame(_) | Item::Packet(_))
    }

    /// True where a reader can start: every raw frame, a keyframe packet.
    pub fn is_key(&self) -> bool {
        match self {
            Item::Frame(_) => true,
            Item::Packet(p) => p.keyframe,
            _ => false,
        }
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

/// Where a reader joining a packet stream starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Join {
    /// At the stream's next keyframe (packets before it are skipped).
    #[default]
    NextKeyframe,
    /// At the stream's last keyframe, from its cached GOP (or the next
    /// keyframe when none is cached): instant start for viewers.
    LastKeyframe,
}

/// Queue options of a subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Frames/packets the queue holds (events do not count; a join's replay
    /// of the cached GOP may exceed it until read).
    pub capacity: usize,
    /// What happens when it is full.
    pub policy: Policy,
    /// Where it starts in a packet stream.
    pub join: Join,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self::leaky(8)
    }
}

impl SubscribeOptions {
    /// A leaky queue of `capacity`.
    pub fn leaky(capacity: usize) -> Self {
        SubscribeOptions {
            capacity,
            policy: Policy::Leaky,
            join: Join::NextKeyframe,
        }
    }

    /// A blocking queue of `capacity`.
    pub fn blocking(capacity: usize) -> Self {
        SubscribeOptions {
            policy: Policy::Blocking,
            ..Self::leaky(capacity)
        }
    }

    /// The same options, joining as `join` says.
    pub fn join(self, join: Join) -> Self {
        SubscribeOptions { join, ..self }
    }
}

/// Counters of one subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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
    /// Packets of the last GOP kept for readers joining at the last keyframe.
    pub cached_packets: usize,
    /// Their bytes.
    pub cached_bytes: usize,
}

/// The registry of named streams. Cheap to clone; clones share the streams.
#[derive(Clone)]
pub struct Hub {
    streams: Arc<Mutex<HashMap<String, Arc<Stream>>>>,
    /// The most bytes of one stream's cached GOP.
    gop_cache_bytes: usize,
}

impl Default for Hub {
    fn default() -> Self {
        Self::with_gop_cache(Self::GOP_CACHE_BYTES)
    }
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
    gop: Gop,
}

/// A packet stream's last GOP: (publish sequence number, packet) from its
/// last keyframe on, bounded by bytes.
#[derive(Default)]
struct Gop {
    packets: Vec<(u64, Packet)>,
    bytes: usize,
}

impl Gop {
    /// Keeps `p` if it is a keyframe or continues the kept GOP within `limit`
    /// bytes; a GOP outgrowing the limit is dropped whole.
    fn push(&mut self, seq: u64, p: &Packet, limit: usize) {
        if p.keyframe {
            self.clear();
        } else if self.packets.is_empty() {
            return;
        }
        if self.bytes + p.data.len() > limit {
            return self.clear();
        }
        self.bytes += p.data.len();
        self.packets.push((seq, p.clone()));
    }

    fn clear(&mut self) {
        self.packets.clear();
        self.bytes = 0;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Stream {
    fn add(&self, sub: &Arc<SubShared>, stream: &Arc<Stream>) {
        let mut st = lock(&self.state);
        let mut joining = Joining {
            items: st.format.iter().cloned().map(Item::Format).collect(),
            replayed_to: 0,
        };
        if sub.join() == Join::LastKeyframe {
            for (seq, p) in &st.gop.packets {
                joining.items.push(Item::Packet(p.clone()));
                joining.replayed_to = *seq;
            }
        }
        if st.ended {
            joining.items.push(Item::Eos);
        }
        sub.link(stream, joining);
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

    fn stats(&self) -> StreamStats {
        let st = lock(&self.state);
        StreamStats {
            name: self.name.clone(),
            published: self.published.load(Ordering::Relaxed),
            subscribers: st.subs.len(),
            publishers: st.publishers,
            ended: st.ended,
            cached_packets: st.gop.packets.len(),
            cached_bytes: st.gop.bytes,
        }
    }
}

impl Hub {
    /// The default bound of one stream's cached GOP: 16 MiB.
    pub const GOP_CACHE_BYTES: usize = 16 << 20;

    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty hub whose packet streams each keep at most `bytes` of their
    /// last GOP (0: none, and every join waits for the next keyframe).
    pub fn with_gop_cache(bytes: usize) -> Self {
        Hub {
            streams: Arc::default(),
            gop_cache_bytes: bytes,
        }
    }

    /// Stream `name`, created if new; the caller holds the registry lock and
    /// gives the stream its publisher or subscriber before releasing it.
    fn stream_in(&self, streams: &mut HashMap<String, Arc<Stream>>, name: &str) -> Arc<Stream> {
        let s = streams.entry(name.to_owned()).or_insert_with(|| {
            Arc::new(Stream {
                id: NEXT_STREAM_ID.fetch_add(1, Ordering::Relaxed),
                name: name.to_owned(),
                state: Mutex::new(StreamState::default()),
                version: AtomicU64::new(0),
                ended: AtomicBool::new(false),
                published: AtomicU64::new(0),
            })
        });
        Arc::clone(s)
    }

    /// Forgets `stream` if it has neither a publisher nor a subscriber.
    fn prune(streams: &mut HashMap<String, Arc<Stream>>, stream: &Arc<Stream>) {
        let st = lock(&stream.state);
        if st.publishers == 0 && st.subs.is_empty() && streams.get(&stream.name).is_some_and(|s| Arc::ptr_eq(s, stream))
        {
            streams.remove(&stream.name);
        }
    }

    /// A publisher for stream `name` (created if new). Subscribing before the
    /// producer starts is fine: the subscription keeps the stream.
    pub fn publisher(&self, name: &str) -> Publisher {
        let mut streams = lock(&self.streams);
        let stream = self.stream_in(&mut streams, name);
        lock(&stream.state).publishers += 1;
        drop(streams);
        Publisher {
            hub: self.clone(),
            stream,
            cached: Arc::new(Vec::new()),
            cached_version: u64::MAX,
        }
    }

    /// Subscribes to stream `name` with its own queue (the stream is created
    /// if new, and waits for its producer).
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

    /// Counters of stream `name`, if it exists (the lookup never creates it).
    pub fn stream_stats_of(&self, name: &str) -> Option<StreamStats> {
        let stream = lock(&self.streams).get(name).cloned();
        stream.map(|s| s.stats())
    }

    /// The current format of stream `name`, once it has one (the lookup never creates it).
    pub fn format_of(&self, name: &str) -> Option<StreamFormat> {
        let stream = lock(&self.streams).get(name).cloned();
        stream.and_then(|s| lock(&s.state).format.clone())
    }

    /// Counters of every stream, sorted by name.
    pub fn stream_stats(&self) -> Vec<StreamStats> {
        let streams: Vec<Arc<Stream>> = lock(&self.streams).values().cloned().collect();
        let mut out: Vec<StreamStats> = streams.iter().map(|s| s.stats()).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

/// The producing end of a stream. Dropping it ends the stream (sends `Eos`) if
/// the producer did not.
pub struct Publisher {
    hub: Hub,
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
        if let Item::Gap(_) = item {
            // A loss in a queue upstream (a relay's, an OSD's input): readers
            // of this stream learn of losses in their own queues only.
            return;
        }
        if !item.is_media() {
            self.stream.published.fetch_add(1, Ordering::Relaxed);
            return self.publish_event(item);
        }
        let seq = if let Item::Packet(p) = &item {
            // The cache and the subscriber list are read together, so a reader
            // joining at the last keyframe gets each packet once: from the
            // cache, or from this push.
            let mut st = lock(&self.stream.state);
            let seq = self.stream.published.fetch_add(1, Ordering::Relaxed) + 1;
            st.gop.push(seq, p, self.hub.gop_cache_bytes);
            st.ended = false;
            self.stream.ended.store(false, Ordering::Release);
            self.cached = Arc::clone(&st.subs);
            self.cached_version = self.stream.version.load(Ordering::Acquire);
            seq
        } else {
            // Frames take no lock unless the stream restarts or its readers changed.
            if self.stream.ended.load(Ordering::Acquire) {
                lock(&self.stream.state).ended = false;
                self.stream.ended.store(false, Ordering::Release);
            }
            if self.stream.version.load(Ordering::Acquire) != self.cached_version {
                let st = lock(&self.stream.state);
                self.cached = Arc::clone(&st.subs);
                self.cached_version = self.stream.version.load(Ordering::Acquire);
            }
            self.stream.published.fetch_add(1, Ordering::Relaxed) + 1
        };
        let id = self.stream.id;
        if let Some((last, rest)) = self.cached.split_last() {
            for sub in rest {
                sub.push(id, seq, item.clone(), Push::Media);
            }
            last.push(id, seq, item, Push::Media);
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
            _ => unreachable!("media items and gaps are not published as events"),
        }
        st.gop.clear();
        self.stream.ended.store(st.ended, Ordering::Release);
        for sub in st.subs.iter() {
            sub.push(self.stream.id, 0, item.clone(), Push::Event);
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
        Hub::prune(&mut lock(&self.hub.streams), &self.stream);
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
        // Not while a relink runs: it would link the closed queue anew.
        let _no_relink = lock(&self.control.relinking);
        self.control.close();
        let linked = self.control.shared.linked_stream();
        if let Some(stream) = linked {
            let mut streams = lock(&self.control.hub.streams);
            stream.remove(&self.control.shared);
            Hub::prune(&mut streams, &stream);
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
        let mut streams = lock(&self.hub.streams);
        let new = self.hub.stream_in(&mut streams, name);
        let old = self.shared.linked_stream();
        if let Some(old) = &old {
            if old.id == new.id {
                return;
            }
            old.remove(&self.shared);
        }
        new.add(&self.shared, &new);
        if let Some(old) = &old {
            Hub::prune(&mut streams, old);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Codec;

    /// Packet `seq` of a stream whose GOPs are `gop` packets long, `size` bytes each.
    fn packet(seq: u64, gop: u64, size: usize) -> Item {
        let params = Arc::new(CodecParams::new(Codec::H264, 64, 64));
        Item::Packet(Packet {
            meta: Default::default(),
            codec: Codec::H264,
            data: bytes::Bytes::from(vec![0u8; size]),
            pts: seq as i64,
            dts: seq as i64,
            duration: 1,
            capture_utc: std::time::SystemTime::UNIX_EPOCH,
            keyframe: seq.is_multiple_of(gop),
            params,
            source: "cam".into(),
            seq,
        })
    }

    fn format() -> Item {
        Item::Format(StreamFormat::Coded(Arc::new(CodecParams::new(Codec::H264, 64, 64))))
    }

    /// Up to `n` items a subscription holds now, named `F`, `E`, `G<lost>`,
    /// `K<seq>` or `P<seq>`.
    fn take(sub: &Subscription, n: usize) -> Vec<String> {
        std::iter::from_fn(|| sub.try_recv().ok())
            .take(n)
            .map(|item| match item {
                Item::Packet(p) if p.keyframe => format!("K{}", p.seq),
                Item::Packet(p) => format!("P{}", p.seq),
                Item::Gap(n) => format!("G{n}"),
                Item::Format(_) => "F".into(),
                Item::Eos => "E".into(),
                Item::Frame(f) => format!("frame {}", f.seq),
            })
            .collect()
    }

    /// Everything a subscription holds now.
    fn drain(sub: &Subscription) -> Vec<String> {
        take(sub, usize::MAX)
    }

    /// Every packet handed over decodes: a non-key packet follows the packet
    /// before it, and a gap is followed by a keyframe. Returns (packets, lost).
    fn check_decodable(items: &[String]) -> (u64, u64) {
        let (mut last, mut after_gap, mut packets, mut lost) = (None::<u64>, false, 0, 0);
        for item in items {
            let (kind, n) = item.split_at(1);
            match kind {
                "G" => {
                    lost += n.parse::<u64>().unwrap();
                    after_gap = true;
                }
                "K" => {
                    last = Some(n.parse().unwrap());
                    after_gap = false;
                    packets += 1;
                }
                "P" => {
                    let seq: u64 = n.parse().unwrap();
                    assert!(!after_gap, "{items:?}: a gap is followed by {item}, not a keyframe");
                    assert_eq!(
                        last.map(|l| l + 1),
                        Some(seq),
                        "{items:?}: {item} does not follow its predecessor"
                    );
                    last = Some(seq);
                    packets += 1;
                }
                _ => {}
            }
        }
        (packets, lost)
    }

    #[test]
    fn a_reader_that_falls_behind_gets_a_gap_then_a_keyframe_never_a_mid_gop_packet() {
        let hub = Hub::new();
        let sub = hub.subscribe("cam", SubscribeOptions::leaky(4));
        let mut publisher = hub.publisher("cam");
        publisher.publish(format());
        // Bursts of 1 to 9 packets between reads of 0 to 3 items, GOPs of 5.
        let (mut seq, mut seen, mut state) = (0u64, Vec::new(), 7u64);
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        for _ in 0..300 {
            for _ in 0..1 + next() % 9 {
                publisher.publish(packet(seq, 5, 10));
                seq += 1;
            }
            seen.extend(take(&sub, next() as usize % 4));
        }
        seen.extend(drain(&sub));
        let (packets, lost) = check_decodable(&seen);
        assert!(lost > 0, "the reader never fell behind");
        let stats = sub.stats();
        assert_eq!(lost, stats.dropped, "every loss is reported in band");
        assert_eq!(packets + lost, seq, "every packet is delivered or reported lost");
    }

    #[test]
    fn a_late_reader_starts_on_a_keyframe_the_next_or_the_cached_last() {
        let hub = Hub::new();
        let mut publisher = hub.publisher("cam");
        publisher.publish(format());
        (0..8).for_each(|seq| publisher.publish(packet(seq, 5, 10)));
        let next = hub.subscribe("cam", SubscribeOptions::leaky(2));
        let last = hub.subscribe("cam", SubscribeOptions::leaky(2).join(Join::LastKeyframe));
        (8..10).for_each(|seq| publisher.publish(packet(seq, 5, 10)));
        assert_eq!(drain(&next), ["F"], "packets before the next keyframe are skipped");
        // The replay of the cached GOP may exceed the queue's capacity of 2.
        assert_eq!(drain(&last), ["F", "K5", "P6", "P7", "P8", "P9"]);
        publisher.publish(packet(10, 5, 10));
        assert_eq!(drain(&next), ["K10"]);
        assert_eq!(drain(&last), ["K10"]);
        assert_eq!(last.stats().dropped, 0);
        assert_eq!(next.stats().dropped, 0, "a join skips; it loses nothing");
        let stats = hub.stream_stats_of("cam").unwrap();
        assert_eq!((stats.cached_packets, stats.cached_bytes), (1, 10));
    }

    #[test]
    fn a_gop_larger_than_the_cache_is_not_kept_and_a_join_waits_for_the_next_keyframe() {
        let hub = Hub::with_gop_cache(35);
        let mut publisher = hub.publisher("cam");
        publisher.publish(format());
        (0..4).for_each(|seq| publisher.publish(packet(seq, 10, 10)));
        assert_eq!(hub.stream_stats_of("cam").unwrap().cached_packets, 0);
        let late = hub.subscribe("cam", SubscribeOptions::leaky(8).join(Join::LastKeyframe));
        publisher.publish(packet(4, 10, 10));
        publisher.publish(packet(10, 10, 10));
        assert_eq!(drain(&late), ["F", "K10"]);
        // The end of the stream empties the cache.
        publisher.publish(Item::Eos);
        assert_eq!(hub.stream_stats_of("cam").unwrap().cached_bytes, 0);
    }

    #[test]
    fn lookups_create_no_stream_and_streams_go_away_when_unused() {
        let hub = Hub::new();
        assert!(hub.stream_stats_of("ghost").is_none());
        assert!(hub.stream_stats().is_empty(), "a lookup created a stream");
        let sub = hub.subscribe("cam", SubscribeOptions::leaky(2));
        let publisher = hub.publisher("cam");
        assert_eq!(
            hub.stream_stats_of("cam").map(|s| (s.publishers, s.subscribers)),
            Some((1, 1))
        );
        drop(publisher);
        assert!(
            hub.stream_stats_of("cam").is_some_and(|s| s.ended),
            "a reader keeps the ended stream"
        );
        sub.relink("other");
        assert!(hub.stream_stats_of("cam").is_none(), "unused after the relink");
        drop(sub);
        assert!(hub.stream_stats().is_empty(), "{:?}", hub.stream_stats());
    }
}
