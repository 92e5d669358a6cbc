//! MJPEG for every viewer of a stream from one producer: a raw stream's
//! frames are encoded to JPEG at most `mjpeg_fps` times a second, once for
//! all viewers, and not at all while nobody watches; an MJPEG camera's
//! pictures pass through as they are. Each viewer gets the latest picture
//! (a [`watch`] channel): a slow viewer skips pictures, it never queues them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use crate::encode::{Backend as EncoderBackend, Encoder, EncoderSettings, open_encoder};
use crate::hub::{Item, RecvError, StreamFormat, Subscription};
use crate::media::Codec;
use crate::serve::demand::{Entry, Hold, Registry};

/// How long a stream nobody watches keeps its producer (which encodes nothing meanwhile).
pub const MJPEG_IDLE: Duration = Duration::from_secs(10);

/// The latest picture of a stream, or why it has none.
pub type Latest = Option<Result<Bytes, String>>;

/// A stream's JPEG producer.
pub struct Jpegs {
    latest: watch::Sender<Latest>,
    /// JPEGs made (encoded or passed through).
    pub pictures: AtomicU64,
}

impl Jpegs {
    /// A receiver of the latest picture.
    pub fn subscribe(&self) -> watch::Receiver<Latest> {
        self.latest.subscribe()
    }
}

/// The streams with MJPEG viewers.
pub type Producers = Registry<Jpegs>;

/// How a producer makes its pictures.
#[derive(Clone, Copy, Debug)]
pub struct MjpegSettings {
    /// Most pictures per second.
    pub fps: f64,
    /// JPEG quality.
    pub quality: u8,
}

/// Holds `stream`'s producer, starting it with the subscription `open` makes.
pub fn attach<E>(
    producers: &Arc<Producers>,
    stream: &str,
    settings: MjpegSettings,
    open: impl FnOnce() -> Result<Subscription, E>,
) -> Result<Hold<Jpegs>, E> {
    producers.attach(
        stream,
        || {
            let jpegs = Jpegs {
                latest: watch::channel(None).0,
                pictures: AtomicU64::new(0),
            };
            Ok((jpegs, open()?))
        },
        move |producers, entry, subscription| async move {
            // Encoding is CPU work: it runs on a blocking thread, not the runtime's workers.
            let state = Arc::clone(&entry);
            let ended = tokio::task::spawn_blocking(move || produce(&producers, &entry, &subscription, settings)).await;
            // However it ended, its viewers are told (their responses end).
            let why = match ended {
                Ok(()) => "the stream ended",
                Err(_) => "the MJPEG encoder failed",
            };
            state
                .state
                .latest
                .send_replace(Some(Err(format!("stream `{}`: {why}", state.name))));
        },
    )
}

fn produce(producers: &Producers, entry: &Entry<Jpegs>, subscription: &Subscription, settings: MjpegSettings) {
    let jpegs = &entry.state;
    let period = Duration::from_secs_f64(1.0 / settings.fps);
    let mut due = Instant::now();
    let mut encoder: Option<Box<dyn Encoder>> = None;
    let mut passthrough = false;
    let refuse = |why: String| {
        jpegs.latest.send_replace(Some(Err(why)));
    };
    loop {
        let item = match subscription.recv_timeout(Duration::from_secs(1)) {
            Ok(item) => item,
            Err(RecvError::Timeout) => {
                if producers.retire_if_idle(entry) {
                    break;
                }
                continue;
            }
            Err(_) => break,
        };
        // Only pictures someone watches are made, and no more than the rate.
        let take = |due: &mut Instant| {
            let now = Instant::now();
            if entry.clients() == 0 || now < *due {
                return false;
            }
            // The next one is due a period after this one was (or now, after a pause).
            *due = (*due + period).max(now.checked_sub(period / 2).unwrap_or(now));
            true
        };
        match item {
            Item::Format(StreamFormat::Video(info)) => {
                passthrough = false;
                let settings = EncoderSettings {
                    codec: Codec::Mjpeg,
                    encoder: EncoderBackend::Jpeg,
                    quality: settings.quality,
                    ..EncoderSettings::default()
                };
                encoder = match open_encoder(&settings, &info) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        refuse(format!("stream `{}`: {e}", entry.name));
                        None
                    }
                };
            }
            Item::Format(StreamFormat::Coded(p)) => {
                encoder = None;
                passthrough = p.codec == Codec::Mjpeg;
                if !passthrough {
                    refuse(format!(
                        "stream `{}` is {}: MJPEG is made from raw streams and MJPEG cameras (its snapshot.jpg works)",
                        entry.name, p.codec
                    ));
                }
            }
            Item::Frame(frame) => {
                let Some(e) = &mut encoder else { continue };
                if !take(&mut due) {
                    continue;
                }
                let mut out = Vec::with_capacity(1);
                match e.encode(&frame, &mut out) {
                    Ok(()) => {
                        if let Some(p) = out.pop() {
                            jpegs.pictures.fetch_add(1, Ordering::Relaxed);
                            jpegs.latest.send_replace(Some(Ok(p.data)));
                        }
                    }
                    Err(e) => tracing::warn!(stream = %entry.name, "MJPEG picture not made: {e}"),
                }
            }
            Item::Packet(p) if passthrough => {
                if take(&mut due) {
                    jpegs.pictures.fetch_add(1, Ordering::Relaxed);
                    jpegs.latest.send_replace(Some(Ok(p.data)));
                }
            }
            Item::Packet(_) | Item::Eos | Item::Gap(_) => {}
        }
        if entry.clients() == 0 && producers.retire_if_idle(entry) {
            break;
        }
    }
}
