//! One stream's RTP packets, made once for every client (DESIGN.md,
//! "Serving"): a feed reads its stream from the hub through one
//! subscription, packetizes each picture once, keeps the current GOP for
//! clients that join at the last keyframe, and hands every picture to every
//! client through one bounded ring ([`tokio::sync::broadcast`]). A client
//! that falls behind the ring loses what it missed, counted, and waits for
//! the next keyframe; the feed never waits for a client.
//!
//! A feed starts when a client first asks for its stream and stops when no
//! client has used it for [`FEED_IDLE`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};

use crate::hub::{Item, StreamFormat, Subscription};
use crate::media::CodecParams;

use super::rtp::{Packetizer, RtpFrame, RtpOptions};

/// How long a feed nobody uses lives on.
pub const FEED_IDLE: Duration = Duration::from_secs(10);
/// Pictures the ring holds (a client this far behind skips to a keyframe).
pub const RING_PICTURES: usize = 64;
/// The most bytes of the current GOP a feed keeps for joining clients.
pub const GOP_BYTES: usize = 16 << 20;

/// What a feed sends its clients.
#[derive(Clone, Debug)]
pub enum FeedEvent {
    /// A picture's packets.
    Frame(Arc<RtpFrame>),
    /// The codec changed: clients must describe the stream again.
    Reset,
}

/// A feed's current format, for descriptions.
#[derive(Clone, Debug)]
pub struct FeedFormat {
    /// The coded stream's parameters (`Err`: why it cannot be served).
    pub params: Result<Arc<CodecParams>, String>,
    /// Frames per second, once a picture showed it.
    pub fps: Option<f64>,
    /// Counts format changes (the SDP's session version).
    pub version: u64,
}

/// Counters of one feed.
#[derive(Debug, Default)]
pub struct FeedCounters {
    /// Pictures packetized.
    pub pictures: AtomicU64,
    /// RTP packets made.
    pub packets: AtomicU64,
    /// Bytes of RTP made.
    pub bytes: AtomicU64,
    /// Pictures that could not be packetized.
    pub errors: AtomicU64,
}

struct GopCache {
    frames: Vec<Arc<RtpFrame>>,
    bytes: usize,
}

/// One stream's packetized pictures.
pub struct Feed {
    /// The stream's name.
    pub name: String,
    /// The SSRC of its packets.
    pub ssrc: u32,
    ring: broadcast::Sender<FeedEvent>,
    gop: Mutex<GopCache>,
    format: watch::Sender<Option<FeedFormat>>,
    /// Counters.
    pub counters: FeedCounters,
    clients: AtomicUsize,
    idle_since: Mutex<Option<Instant>>,
    /// Its task has ended: nothing more comes.
    closed: AtomicBool,
}

/// A client's hold on a feed: the feed lives while held.
pub struct Attached {
    /// The feed.
    pub feed: Arc<Feed>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        if self.feed.clients.fetch_sub(1, Ordering::AcqRel) == 1 {
            *lock(&self.feed.idle_since) = Some(Instant::now());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Feed {
    /// Waits (up to `timeout`) until the stream's format is known.
    pub async fn format(&self, timeout: Duration) -> Option<FeedFormat> {
        let mut rx = self.format.subscribe();
        let got = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        got.ok()?.ok().and_then(|f| f.clone())
    }

    /// A receiver of what comes next, with (when `with_gop`) the current
    /// GOP to send first; nothing is lost or repeated between the two.
    pub fn join(&self, with_gop: bool) -> (Vec<Arc<RtpFrame>>, broadcast::Receiver<FeedEvent>) {
        let gop = lock(&self.gop);
        let rx = self.ring.subscribe();
        (if with_gop { gop.frames.clone() } else { Vec::new() }, rx)
    }

    /// True once its task has ended (its stream went away or changed codec
    /// for good): clients must describe the stream again.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Clients attached now.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Acquire)
    }
}

/// Options of every feed.
#[derive(Clone, Copy, Debug)]
pub struct FeedOptions {
    /// Largest RTP packet.
    pub mtu: usize,
}

/// The feeds of a server, by stream.
pub struct Feeds {
    map: Mutex<HashMap<String, Arc<Feed>>>,
    options: FeedOptions,
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::getrandom(&mut b);
    u32::from_ne_bytes(b) ^ std::process::id().rotate_left(16)
}

impl Feeds {
    /// No feeds yet.
    pub fn new(options: FeedOptions) -> Arc<Feeds> {
        Arc::new(Feeds {
            map: Mutex::new(HashMap::new()),
            options,
        })
    }

    /// Attaches to `stream`'s feed, starting it on the current runtime with
    /// `open` (which opens the hub subscription) when there is none.
    pub fn attach<E>(
        self: &Arc<Self>,
        stream: &str,
        open: impl FnOnce() -> Result<Subscription, E>,
    ) -> Result<Attached, E> {
        let mut map = lock(&self.map);
        let feed = match map.get(stream) {
            Some(f) => Arc::clone(f),
            None => {
                let subscription = open()?;
                let feed = Arc::new(Feed {
                    name: stream.to_owned(),
                    ssrc: random_u32(),
                    ring: broadcast::channel(RING_PICTURES).0,
                    gop: Mutex::new(GopCache {
                        frames: Vec::new(),
                        bytes: 0,
                    }),
                    format: watch::channel(None).0,
                    counters: FeedCounters::default(),
                    clients: AtomicUsize::new(0),
                    idle_since: Mutex::new(None),
                    closed: AtomicBool::new(false),
                });
                map.insert(stream.to_owned(), Arc::clone(&feed));
                tokio::spawn(run(Arc::clone(self), Arc::clone(&feed), subscription));
                feed
            }
        };
        feed.clients.fetch_add(1, Ordering::AcqRel);
        *lock(&feed.idle_since) = None;
        Ok(Attached { feed })
    }

    /// Every running feed.
    pub fn all(&self) -> Vec<Arc<Feed>> {
        let mut v: Vec<Arc<Feed>> = lock(&self.map).values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Removes `feed` if nobody has used it for [`FEED_IDLE`]; true when removed.
    fn retire_if_idle(&self, feed: &Feed) -> bool {
        let mut map = lock(&self.map);
        let idle = feed.clients() == 0 && lock(&feed.idle_since).is_some_and(|t| t.elapsed() >= FEED_IDLE);
        if idle {
            map.remove(&feed.name);
        }
        idle
    }
}

/// Ends a feed however its task ends (even by a panic): clients are told,
/// and the next client starts a new feed.
struct Retire {
    feeds: Arc<Feeds>,
    feed: Arc<Feed>,
}

impl Drop for Retire {
    fn drop(&mut self) {
        self.feed.closed.store(true, Ordering::Release);
        let _ = self.feed.ring.send(FeedEvent::Reset);
        let mut map = lock(&self.feeds.map);
        if map.get(&self.feed.name).is_some_and(|f| Arc::ptr_eq(f, &self.feed)) {
            map.remove(&self.feed.name);
        }
    }
}

/// The feed's task: hub items in, RTP pictures out.
async fn run(feeds: Arc<Feeds>, feed: Arc<Feed>, subscription: Subscription) {
    let _retire = Retire {
        feeds: Arc::clone(&feeds),
        feed: Arc::clone(&feed),
    };
    let mut packetizer: Option<Packetizer> = None;
    let mut version = 0;
    let mut fps = None;
    let mut params: Option<Result<Arc<CodecParams>, String>> = None;
    let mut published = None;
    let mut first_seq = random_u32() as u16;
    let timestamp_base = random_u32();
    loop {
        let item = match tokio::time::timeout(Duration::from_secs(1), subscription.recv_async()).await {
            Ok(Some(item)) => Some(item),
            Ok(None) => None,
            Err(_) => {
                if feeds.retire_if_idle(&feed) {
                    break;
                }
                continue;
            }
        };
        let Some(item) = item else { break };
        if matches!(item, Item::Format(_)) {
            // Pictures of the old format are no place for a new client to start.
            let mut gop = lock(&feed.gop);
            gop.frames.clear();
            gop.bytes = 0;
        }
        match item {
            Item::Format(StreamFormat::Coded(p)) => {
                let options = RtpOptions {
                    mtu: feeds.options.mtu,
                    ssrc: feed.ssrc,
                    first_seq,
                    timestamp_base,
                };
                let same_codec = matches!(&params, Some(Ok(old)) if old.codec == p.codec);
                let result = match &mut packetizer {
                    Some(k) if same_codec => k.set_params(&p),
                    _ => {
                        if packetizer.is_some() {
                            let _ = feed.ring.send(FeedEvent::Reset);
                        }
                        Packetizer::new(&p, options).map(|k| packetizer = Some(k))
                    }
                };
                params = Some(result.map(|_| p).map_err(|e| e.to_string()));
                if let Some(Err(e)) = &params {
                    packetizer = None;
                    tracing::warn!(stream = %feed.name, "cannot serve over RTP: {e}");
                }
                version += 1;
            }
            Item::Format(StreamFormat::Video(info)) => {
                if packetizer.take().is_some() {
                    let _ = feed.ring.send(FeedEvent::Reset);
                }
                params = Some(Err(format!(
                    "stream `{}` carries raw {}×{} frames; RTP serves coded streams (listen to it with an `encode` node and serve that)",
                    feed.name, info.width, info.height
                )));
                version += 1;
            }
            Item::Packet(p) => {
                let Some(k) = &mut packetizer else { continue };
                if p.duration > 0 {
                    fps = Some(1e9 / p.duration as f64);
                }
                match k.push(&p) {
                    Ok(frame) => {
                        first_seq = k.next_seq();
                        let frame = Arc::new(frame);
                        let c = &feed.counters;
                        c.pictures.fetch_add(1, Ordering::Relaxed);
                        c.packets.fetch_add(frame.packets.len() as u64, Ordering::Relaxed);
                        c.bytes.fetch_add(frame.bytes() as u64, Ordering::Relaxed);
                        let mut gop = lock(&feed.gop);
                        if frame.keyframe {
                            gop.frames.clear();
                            gop.bytes = 0;
                        }
                        gop.bytes += frame.bytes();
                        if gop.bytes <= GOP_BYTES && !gop.frames.is_empty() || frame.keyframe {
                            gop.frames.push(Arc::clone(&frame));
                        } else {
                            gop.frames.clear();
                        }
                        // Sent under the GOP lock: a joining client sees each picture once.
                        let _ = feed.ring.send(FeedEvent::Frame(frame));
                    }
                    Err(e) => {
                        if feed.counters.errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            tracing::warn!(stream = %feed.name, "picture not sent: {e}");
                        }
                    }
                }
            }
            Item::Frame(_) | Item::Eos | Item::Gap(_) => {}
        }
        // Waiters learn a new format or rate; nothing is cloned per packet.
        if let Some(params) = &params
            && published != Some((version, fps))
        {
            published = Some((version, fps));
            feed.format.send_replace(Some(FeedFormat {
                params: params.clone(),
                fps,
                version,
            }));
        }
        if feed.clients() == 0 && feeds.retire_if_idle(&feed) {
            break;
        }
    }
}
