//! One subscriber's bounded queue: the policy, the relink gate, loss in band
//! and the waking of blocked threads and async tasks.
//!
//! A leaky queue that overflows drops its oldest frame/packet **and every
//! packet after it up to the next keyframe** (what follows a lost packet
//! cannot be decoded until then), and queues a [`Item::Gap`] in its place. When
//! no keyframe is queued, it goes on discarding incoming packets until one
//! arrives. Raw frames are each their own keyframe, so a raw queue drops
//! exactly one frame per overflow. Consecutive gaps merge into one, so the
//! events a loss leaves in a queue are bounded by the media it holds.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::{Item, Join, Policy, Stream, SubStats, SubscribeOptions, lock};

/// Why no item was received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// Nothing queued (`try_recv`).
    #[error("no item queued")]
    Empty,
    /// Nothing arrived in time (`recv_timeout`).
    #[error("no item arrived in time")]
    Timeout,
    /// The subscription was closed and its queue drained.
    #[error("subscription closed")]
    Closed,
}

/// How long a receive may wait for an item.
#[derive(Clone, Copy, Debug)]
pub(super) enum Wait {
    No,
    Forever,
    Until(Instant),
}

/// What is being pushed: media counts against capacity, events never wait.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Push {
    Media,
    Event,
}

pub(super) struct SubShared {
    queue: Mutex<Queue>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: usize,
    policy: Policy,
    join: Join,
}

/// What a subscriber is given when it links to a stream, taken under the
/// stream's lock so nothing published meanwhile is missed or repeated.
pub(super) struct Joining {
    /// The stream's format, its cached packets from the last keyframe (for
    /// [`Join::LastKeyframe`]) and its end, in order.
    pub(super) items: Vec<Item>,
    /// The publish sequence number of the last cached packet given (0: none):
    /// pushes up to it are already in `items`.
    pub(super) replayed_to: u64,
}

struct Queue {
    items: VecDeque<Item>,
    /// Frames/packets in `items`.
    media: usize,
    /// The stream pushes are accepted from (0: none).
    linked: u64,
    stream: Option<Arc<Stream>>,
    closed: bool,
    /// Media is discarded until a keyframe: after a loss (counted) or on
    /// joining a stream mid-GOP (not a loss).
    skip: Skip,
    /// Frames/packets lost since the last [`Item::Gap`] queued.
    gap: u64,
    /// Pushes with a sequence number up to this one were replayed at the join.
    replayed_to: u64,
    /// Replayed packets still queued: they may exceed the capacity, so that a
    /// join does not overflow the queue it fills.
    grace: usize,
    recv_waiting: usize,
    push_waiting: usize,
    waker: Option<Waker>,
    delivered: u64,
    dropped: u64,
    flushed: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Skip {
    No,
    Loss,
    Join,
}

impl Queue {
    /// A blocked producer is woken once the queue has drained to half its
    /// capacity, not at every free slot: batches hand-offs instead of
    /// ping-ponging one frame at a time between threads.
    fn wake_producer(&self, capacity: usize) -> bool {
        self.push_waiting > 0 && self.media <= capacity / 2
    }

    fn pop(&mut self) -> Option<Item> {
        let item = self.items.pop_front()?;
        if item.is_media() {
            self.media -= 1;
            self.grace = self.grace.saturating_sub(1);
        }
        self.delivered += 1;
        Some(item)
    }

    /// Queues a gap marker for the losses not yet reported, merged with a
    /// marker at the tail.
    fn flush_gap(&mut self) {
        let lost = std::mem::take(&mut self.gap);
        if lost == 0 {
            return;
        }
        match self.items.back_mut() {
            Some(Item::Gap(n)) => *n += lost,
            _ => self.items.push_back(Item::Gap(lost)),
        }
    }

    /// Drops the oldest frame/packet and everything after it that cannot be
    /// decoded without it (up to the next keyframe), leaving one gap marker
    /// before that keyframe. Events stay in order; earlier gap markers in the
    /// dropped span merge into the new one. Without a queued keyframe, the
    /// queue skips incoming packets until one arrives.
    fn drop_to_keyframe(&mut self) -> Vec<Item> {
        let mut dropped = Vec::new();
        let mut lost = 0u64;
        // In place: the span dropped is at the front, before the next keyframe.
        let mut at = 0;
        while let Some(item) = self.items.get(at) {
            if item.is_media() && item.is_key() && !dropped.is_empty() {
                break;
            }
            match item {
                Item::Gap(n) => {
                    lost += n;
                    self.items.remove(at);
                }
                m if m.is_media() => {
                    lost += 1;
                    dropped.extend(self.items.remove(at));
                }
                _ => at += 1,
            }
        }
        self.media -= dropped.len();
        self.dropped += dropped.len() as u64;
        self.grace = 0;
        if at < self.items.len() {
            self.items.insert(at, Item::Gap(lost));
        } else {
            self.gap += lost;
            self.skip = Skip::Loss;
        }
        dropped
    }
}

impl SubShared {
    pub(super) fn new(options: SubscribeOptions) -> Self {
        SubShared {
            queue: Mutex::new(Queue {
                items: VecDeque::with_capacity(options.capacity + 2),
                media: 0,
                linked: 0,
                stream: None,
                closed: false,
                skip: Skip::No,
                gap: 0,
                replayed_to: 0,
                grace: 0,
                recv_waiting: 0,
                push_waiting: 0,
                waker: None,
                delivered: 0,
                dropped: 0,
                flushed: 0,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity: options.capacity,
            policy: options.policy,
            join: options.join,
        }
    }

    pub(super) fn join(&self) -> Join {
        self.join
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        lock(&self.queue)
    }

    /// Wakes consumers after items were queued (call without the lock).
    fn wake_consumers(&self, recv_waiting: bool, waker: Option<Waker>) {
        if recv_waiting {
            self.not_empty.notify_all();
        }
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Accepts pushes from `stream` only, from now on: everything queued from the
    /// previous stream is discarded, then what the new stream gives a joining
    /// reader is queued. Packets are then skipped up to the next keyframe
    /// unless the join replayed the stream's last one.
    pub(super) fn link(&self, stream: &Arc<Stream>, joining: Joining) {
        let mut q = self.lock();
        let flushed: VecDeque<Item> = std::mem::take(&mut q.items);
        q.flushed += flushed.len() as u64;
        q.linked = stream.id;
        q.stream = Some(Arc::clone(stream));
        q.replayed_to = joining.replayed_to;
        q.gap = 0;
        q.media = joining.items.iter().filter(|i| i.is_media()).count();
        q.grace = q.media;
        q.skip = if q.media > 0 { Skip::No } else { Skip::Join };
        q.items.extend(joining.items);
        let wake = !q.items.is_empty();
        let (recv_waiting, waker) = (q.recv_waiting > 0 && wake, if wake { q.waker.take() } else { None });
        let producers_waiting = q.push_waiting > 0;
        drop(q);
        drop(flushed);
        if producers_waiting {
            // Producers blocked on the old stream re-check the link and leave.
            self.not_full.notify_all();
        }
        self.wake_consumers(recv_waiting, waker);
    }

    pub(super) fn linked_stream(&self) -> Option<Arc<Stream>> {
        self.lock().stream.clone()
    }

    /// Queues `item`, the stream's `seq`-th publication, from stream
    /// `stream_id`, following the policy. Items from a stream this queue is
    /// not linked to, or already replayed to it at its join, are discarded.
    pub(super) fn push(&self, stream_id: u64, seq: u64, item: Item, kind: Push) {
        let mut evicted = Vec::new();
        let mut q = self.lock();
        loop {
            if q.closed || q.linked != stream_id || (kind == Push::Media && seq <= q.replayed_to) {
                return;
            }
            if kind == Push::Event || q.media < self.capacity + q.grace {
                break;
            }
            match self.policy {
                Policy::Leaky => {
                    evicted = q.drop_to_keyframe();
                    break;
                }
                Policy::Blocking => {
                    q.push_waiting += 1;
                    q = self.not_full.wait(q).unwrap_or_else(|e| e.into_inner());
                    q.push_waiting -= 1;
                }
            }
        }
        if kind == Push::Media {
            match q.skip {
                Skip::No => {}
                _ if item.is_key() => q.skip = Skip::No,
                Skip::Loss => {
                    q.gap += 1;
                    q.dropped += 1;
                    return;
                }
                Skip::Join => {
                    q.flushed += 1;
                    return;
                }
            }
            q.media += 1;
        }
        q.flush_gap();
        q.items.push_back(item);
        let recv_waiting = q.recv_waiting > 0;
        let waker = q.waker.take();
        drop(q);
        drop(evicted);
        self.wake_consumers(recv_waiting, waker);
    }

    /// The next item; when none is queued, waits as `wait` says.
    pub(super) fn recv(&self, wait: Wait) -> Result<Item, RecvError> {
        let mut q = self.lock();
        loop {
            if let Some(item) = q.pop() {
                let notify = q.wake_producer(self.capacity);
                drop(q);
                if notify {
                    self.not_full.notify_all();
                }
                return Ok(item);
            }
            if q.closed {
                return Err(RecvError::Closed);
            }
            let deadline = match wait {
                Wait::No => return Err(RecvError::Empty),
                Wait::Forever => None,
                Wait::Until(d) if Instant::now() >= d => return Err(RecvError::Timeout),
                Wait::Until(d) => Some(d),
            };
            q.recv_waiting += 1;
            q = match deadline {
                None => self.not_empty.wait(q).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    self.not_empty
                        .wait_timeout(q, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
            q.recv_waiting -= 1;
        }
    }

    pub(super) fn close(&self) {
        let mut q = self.lock();
        q.closed = true;
        let waker = q.waker.take();
        drop(q);
        self.not_full.notify_all();
        self.wake_consumers(true, waker);
    }

    pub(super) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub(super) fn clear(&self) {
        let items = std::mem::take(&mut self.lock().items);
        drop(items);
    }

    pub(super) fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    pub(super) fn stats(&self) -> SubStats {
        let q = self.lock();
        SubStats {
            stream: q.stream.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
            delivered: q.delivered,
            dropped: q.dropped,
            flushed: q.flushed,
            depth: q.items.len(),
            capacity: self.capacity,
        }
    }
}

/// The future of [`Subscription::recv_async`](super::Subscription::recv_async):
/// the next item, or `None` once closed and drained.
pub struct Recv<'a> {
    shared: &'a SubShared,
}

impl<'a> Recv<'a> {
    pub(super) fn new(shared: &'a SubShared) -> Self {
        Recv { shared }
    }
}

impl Future for Recv<'_> {
    type Output = Option<Item>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        match self.shared.recv(Wait::No) {
            Ok(item) => Poll::Ready(Some(item)),
            Err(RecvError::Closed) => Poll::Ready(None),
            Err(_) => {
                let mut q = self.shared.lock();
                // An item may have arrived between the two locks: look again.
                if !q.items.is_empty() || q.closed {
                    drop(q);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                match &q.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => q.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}
