//! One coded stream as CMAF for every HTTP client (DESIGN.md, "Serving"):
//! one hub subscription, one [`Fragmenter`], one HLS [`Window`], one ring of
//! pictures for WebSocket and `live.mp4` clients, one metadata message per
//! picture. Started by the first client ([`super::demand::Registry`]), ended
//! after [`LIVE_IDLE`] without one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use super::cmaf::{Chunk, CmafError, Fragmenter, InitSegment};
use super::demand::{Entry, Registry, lock};
use super::hls::{HlsOptions, Window};
use crate::hub::{Item, StreamFormat, Subscription};
use crate::media::{Codec, Detection, TruthObject};
use crate::output::name::unix_ms;

/// How long a stream nobody watches keeps being fragmented.
pub const LIVE_IDLE: Duration = Duration::from_secs(10);
/// Pictures the ring holds (a client this far behind skips to a keyframe).
pub const RING_PICTURES: usize = 90;
/// The most bytes of the current GOP kept for joining clients.
const GOP_BYTES: usize = 16 << 20;

/// A picture as clients get it.
#[derive(Debug)]
pub struct Picture {
    /// Its CMAF chunk.
    pub chunk: Chunk,
    /// Its metadata message (JSON): times, detections, tracks, ground truth.
    pub meta: Utf8Bytes,
}

/// What the stream is, for clients that wait for it.
#[derive(Clone, Debug)]
pub enum LiveFormat {
    /// Served, with this init segment.
    Ready(Arc<InitSegment>),
    /// Not served over HTTP as fMP4 (why).
    Refused(String),
}

/// Counters of one stream's fragmenting.
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// Pictures fragmented.
    pub pictures: AtomicU64,
    /// Bytes of chunks made.
    pub bytes: AtomicU64,
    /// Packets that made no chunk.
    pub errors: AtomicU64,
}

/// A stream's shared state.
pub struct Live {
    ring: broadcast::Sender<Arc<Picture>>,
    /// The pictures from the last keyframe, and their bytes.
    gop: Mutex<(Vec<Arc<Picture>>, usize)>,
    /// Its HLS segments and parts.
    pub window: Mutex<Window>,
    /// Bumped whenever the window changes (blocking HLS requests wait on it).
    pub progress: watch::Sender<u64>,
    format: watch::Sender<Option<LiveFormat>>,
    fps: Mutex<Option<f64>>,
    /// Counters.
    pub counters: LiveCounters,
}

impl Live {
    /// Waits (up to `timeout`) until the stream's format is known.
    pub async fn format(&self, timeout: Duration) -> Option<LiveFormat> {
        let mut rx = self.format.subscribe();
        let got = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        got.ok()?.ok().and_then(|f| f.clone())
    }

    /// The pictures from the last keyframe and a receiver of what comes
    /// next; nothing is lost or repeated between the two.
    pub fn join(&self) -> (Vec<Arc<Picture>>, broadcast::Receiver<Arc<Picture>>) {
        let gop = lock(&self.gop);
        (gop.0.clone(), self.ring.subscribe())
    }

    /// Frames per second, once known.
    pub fn fps(&self) -> Option<f64> {
        *lock(&self.fps)
    }
}

/// The streams being fragmented.
pub type Lives = Registry<Live>;

/// Starts `stream`'s fragmenting with `subscription` (or holds the running one).
pub fn attach<E>(
    lives: &Arc<Lives>,
    stream: &str,
    hls: &HlsOptions,
    open: impl FnOnce() -> Result<Subscription, E>,
) -> Result<super::demand::Hold<Live>, E> {
    lives.attach(
        stream,
        || {
            let live = Live {
                ring: broadcast::channel(RING_PICTURES).0,
                gop: Mutex::new((Vec::new(), 0)),
                window: Mutex::new(Window::new(hls.clone(), fresh_number())),
                progress: watch::channel(0).0,
                format: watch::channel(None).0,
                fps: Mutex::new(None),
                counters: LiveCounters::default(),
            };
            Ok((live, open()?))
        },
        run,
    )
}

#[derive(Serialize)]
struct Meta<'a> {
    r#type: &'static str,
    pts: f64,
    /// Decoding can start here (a player that must jump lands on one).
    key: bool,
    utc: i64,
    width: u32,
    height: u32,
    detections: Vec<MetaBox<'a>>,
    truth: Vec<MetaBox<'a>>,
}

#[derive(Serialize)]
struct MetaBox<'a> {
    x: f32,
    y: f32,
    w: f32,
    h: f32,
    label: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    confidence: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    track_id: Option<u64>,
    /// Ground truth: the share of the object not hidden, and inside the frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    visible: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    in_frame: Option<f32>,
}

fn detection(d: &Detection) -> MetaBox<'_> {
    MetaBox {
        x: d.bbox.x,
        y: d.bbox.y,
        w: d.bbox.w,
        h: d.bbox.h,
        label: &d.label,
        confidence: Some(d.confidence),
        track_id: d.track_id,
        visible: None,
        in_frame: None,
    }
}

fn truth(t: &TruthObject) -> MetaBox<'_> {
    MetaBox {
        x: t.bbox.x,
        y: t.bbox.y,
        w: t.bbox.w,
        h: t.bbox.h,
        label: t.class.label(),
        confidence: None,
        track_id: None,
        visible: Some(t.visible),
        in_frame: Some(t.in_frame),
    }
}

/// The metadata message of `chunk` (its pts as the browser will see it).
fn meta_message(chunk: &Chunk) -> String {
    let m = &chunk.packet.meta;
    let message = Meta {
        r#type: "meta",
        pts: chunk.pts,
        key: chunk.keyframe,
        utc: unix_ms(chunk.utc),
        width: chunk.init.width,
        height: chunk.init.height,
        detections: m.detections.iter().map(detection).collect(),
        truth: m.ground_truth.iter().map(truth).collect(),
    };
    serde_json::to_string(&message).expect("metadata serializes")
}

/// A number no earlier window or fragmenter of this server used: the
/// wall clock in ms (HLS URLs stay unique across restarts of a stream).
fn fresh_number() -> u64 {
    unix_ms(std::time::SystemTime::now()).max(0) as u64
}

/// The task: hub items in, pictures out.
async fn run(lives: Arc<Lives>, entry: Arc<Entry<Live>>, subscription: Subscription) {
    let live = &entry.state;
    let mut fragmenter = Fragmenter::new(fresh_number());
    let mut init_version = 0;
    let mut refused = false;
    loop {
        let item = match tokio::time::timeout(Duration::from_secs(1), subscription.recv_async()).await {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(_) => {
                if lives.retire_if_idle(&entry) {
                    break;
                }
                continue;
            }
        };
        match item {
            Item::Format(StreamFormat::Coded(p)) if !matches!(p.codec, Codec::H264 | Codec::H265) => {
                refused = true;
                live.format.send_replace(Some(LiveFormat::Refused(format!(
                    "stream `{}` is {}: fMP4 and HLS carry h264 and h265 here",
                    entry.name, p.codec
                ))));
            }
            Item::Format(StreamFormat::Video(info)) => {
                refused = true;
                live.format.send_replace(Some(LiveFormat::Refused(format!(
                    "stream `{}` carries raw {}×{} frames: serve an `encode` node that listens to it (or use its mjpeg and snapshot.jpg)",
                    entry.name, info.width, info.height
                ))));
            }
            Item::Format(StreamFormat::Coded(_)) => {}
            Item::Packet(p) => {
                if p.duration > 0 {
                    *lock(&live.fps) = Some(1e9 / p.duration as f64);
                }
                let pushed = match fragmenter.push(&p) {
                    // The stream's time started again (a source restarted with
                    // the same parameters): so does the fMP4 timeline, with a new init.
                    Err(CmafError::Backwards { back_ns, .. }) if back_ns > 1_000_000_000 => {
                        fragmenter = Fragmenter::new(fresh_number());
                        fragmenter.push(&p)
                    }
                    other => other,
                };
                let chunk = match pushed {
                    Ok(c) => c,
                    Err(e) => {
                        if live.counters.errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            tracing::warn!(stream = %entry.name, "picture not served over HTTP: {e}");
                        }
                        continue;
                    }
                };
                if chunk.init.version != init_version || refused {
                    init_version = chunk.init.version;
                    refused = false;
                    live.format
                        .send_replace(Some(LiveFormat::Ready(Arc::clone(&chunk.init))));
                }
                let meta = meta_message(&chunk).into();
                let c = &live.counters;
                c.pictures.fetch_add(1, Ordering::Relaxed);
                c.bytes.fetch_add(chunk.bytes.len() as u64, Ordering::Relaxed);
                lock(&live.window).push(&chunk);
                let picture = Arc::new(Picture { chunk, meta });
                {
                    // The kept bytes are counted as pictures come, not summed per picture.
                    let (pictures, bytes) = &mut *lock(&live.gop);
                    if picture.chunk.keyframe || (!pictures.is_empty() && *bytes < GOP_BYTES) {
                        if picture.chunk.keyframe {
                            pictures.clear();
                            *bytes = 0;
                        }
                        *bytes += picture.chunk.bytes.len();
                        pictures.push(Arc::clone(&picture));
                    } else {
                        pictures.clear();
                        *bytes = 0;
                    }
                    // Sent under the GOP lock: a joining client sees each picture once.
                    let _ = live.ring.send(picture);
                }
                live.progress.send_modify(|n| *n += 1);
            }
            Item::Eos => {
                // Whatever comes next starts a timeline of its own.
                fragmenter = Fragmenter::new(fresh_number());
                lock(&live.window).close_segment();
                live.progress.send_modify(|n| *n += 1);
            }
            Item::Frame(_) | Item::Gap(_) => {}
        }
        if entry.clients() == 0 && lives.retire_if_idle(&entry) {
            break;
        }
    }
}
