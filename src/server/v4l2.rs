//! The `v4l2` node: opens, configures and streams a V4L2 device
//! ([`crate::capture::v4l2`]) and publishes each driver buffer as a frame
//! (raw formats) or a packet (MJPEG, H.264, H.265) that leases the driver's
//! memory. Driver timestamps (`CLOCK_MONOTONIC`) are moved onto the pipeline
//! clock; sequence gaps count as drops; a device that goes away is reopened
//! with exponential backoff and the stream resumes with a fresh `Format`.
//!
//! **Driver buffers are never pinned.** Readers may hold what they are given
//! for long (a stalled leaky queue, the smart-record ring, the stream's GOP
//! cache): when
//! a dequeue leaves the driver at most [`LOW_WATER`] buffers to fill, the
//! buffer is copied (frames into a pool of the node's, packets into owned
//! memory; counted as bytes copied) and handed back to the driver at once,
//! so capture keeps its rate whatever readers hold. With readers that let go
//! in time the path stays zero-copy.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::capture::v4l2::{Device, Negotiated, Output, Stream, V4l2Error, V4l2Options, Want, monotonic_ns};
use crate::codec::ParamFollower;
use crate::hub::{Item, Publisher, StreamFormat};
use bytes::Bytes;

use crate::media::{
    BufferPool, Codec, CodecParams, Fps, Frame, FrameMeta, Packet, VideoInfo, copy_frame_bytes, count_copied,
};

use super::node::{Announced, Backoff, Every, NodeCtx, NodeShared, NodeState};

/// How long one wait for a buffer lasts, so a stop request is seen quickly.
const POLL: Duration = Duration::from_millis(100);
/// The rate assumed when the device reports none and none was asked.
const DEFAULT_FPS: Fps = Fps { num: 30, den: 1 };
/// Buffers left with the driver at or under which a captured one is copied
/// and given back instead of leased.
pub(crate) const LOW_WATER: usize = 1;
/// Frames of the copy pool, per driver buffer.
const COPIES_PER_BUFFER: usize = 4;

pub(super) fn spawn(ctx: NodeCtx, options: V4l2Options) -> Result<JoinHandle<()>, String> {
    let want = options.want().map_err(|(key, message)| format!("`{key}`: {message}"))?;
    let mut publisher = ctx.hub.publisher(&ctx.name);
    ctx.spawn("v4l2", move |ctx| {
        let NodeCtx { name, shared, .. } = ctx;
        let mut backoff = Backoff::new(options.retry_max_secs);
        let mut seq = 0u64;
        while !shared.stop_requested() {
            let opened = Device::open(&options.device).and_then(|d| {
                let negotiated = d.configure(&want)?;
                Ok((d.stream(options.buffers)?, negotiated))
            });
            let frames_before = shared.frames_out();
            let result = opened.and_then(|(stream, negotiated)| {
                tracing::info!(node = %name, device = %options.device.display(), ?negotiated, "capturing");
                let mut capture = Capture {
                    name: &name,
                    shared: &shared,
                    publisher: &mut publisher,
                    seq: &mut seq,
                };
                capture.run(stream, &want, &negotiated)
            });
            if shared.frames_out() > frames_before {
                backoff.reset();
            }
            match result {
                Ok(()) => break,
                Err(e) if e.is_gone() => {
                    let wait = backoff.lost(&name, &shared, e.to_string());
                    shared.sleep_until(shared.clock.now_ns() + wait.as_nanos() as i64);
                }
                Err(e) => {
                    tracing::error!(node = %name, "{e}");
                    publisher.publish(Item::Eos);
                    shared.set_state(NodeState::Failed, Some(e.to_string()));
                    return;
                }
            }
        }
        publisher.publish(Item::Eos);
        shared.set_state(NodeState::Stopped, None);
    })
}

/// What buffers become.
enum Sink {
    Frames {
        info: VideoInfo,
        /// Where frames are copied when the driver runs short (made on first need).
        copies: Option<BufferPool>,
    },
    Packets {
        follower: ParamFollower,
        announced: Announced,
    },
}

/// One streaming session of the node.
struct Capture<'a> {
    name: &'a Arc<str>,
    shared: &'a NodeShared,
    publisher: &'a mut Publisher,
    /// The node's frame counter, continued across reopenings.
    seq: &'a mut u64,
}

impl Capture<'_> {
    /// Publishes buffers until a stop request (`Ok`) or a device error.
    fn run(&mut self, mut stream: Stream, want: &Want, n: &Negotiated) -> Result<(), V4l2Error> {
        let clock = Arc::clone(&self.shared.clock);
        let fps = n.fps.or(want.fps).unwrap_or(DEFAULT_FPS);
        let period = fps.frame_duration_ns() as i64;
        // Driver timestamps are on CLOCK_MONOTONIC: their offset to the pipeline clock.
        let offset = clock.now_ns() - monotonic_ns();
        let output = Output::of(n.fourcc).expect("the options were checked");
        let mut sink = match output {
            Output::Frames(format) => {
                let info = VideoInfo::with_line_stride(
                    format,
                    n.width,
                    n.height,
                    fps,
                    n.bytes_per_line as usize,
                    n.size_image as usize,
                )
                .map_err(|e| V4l2Error::Unsupported {
                    device: stream.device().to_string(),
                    message: format!("the driver's layout: {e}"),
                })?;
                self.publisher.publish(Item::Format(StreamFormat::Video(info)));
                Sink::Frames { info, copies: None }
            }
            Output::Packets(codec) => Sink::Packets {
                // An MJPEG camera's pictures are the negotiated size; H.264
                // and H.265 ones carry their parameter sets in band.
                follower: ParamFollower::new(
                    codec,
                    (codec == Codec::Mjpeg).then(|| CodecParams::new(codec, n.width, n.height)),
                ),
                announced: Announced::default(),
            },
        };
        let mut last: Option<u32> = None;
        let mut bad = Every::second();
        while !self.shared.stop_requested() {
            // When every buffer is held downstream nothing comes; the driver
            // skips frames meanwhile, and the gap is counted below.
            let Some(c) = stream.next(POLL)? else {
                continue;
            };
            let gap = last.map_or(0, |prev| c.sequence.wrapping_sub(prev).wrapping_sub(1)) as u64;
            last = Some(c.sequence);
            self.shared.count_dropped_n(gap);
            *self.seq += gap + 1;
            // A raw frame must hold the whole image, or consumers would read past its end.
            let short = matches!(&sink, Sink::Frames { info, .. } if c.bytes().len() < info.size());
            if c.corrupted || short {
                self.shared.count_dropped();
                if let Some(buffers) = bad.tick(clock.now_ns()) {
                    tracing::warn!(node = %self.name, buffers, "dropping buffers the driver flagged as corrupted or filled short");
                }
                continue;
            }
            let pts = c.timestamp_ns.map_or_else(|| clock.now_ns(), |t| t + offset);
            // Readers hold all but this many of the driver's buffers: copy
            // this one and give it back, so capture goes on.
            let short_of_buffers = stream.queued() <= LOW_WATER;
            let item = match &mut sink {
                Sink::Frames { info, copies } => {
                    let buffer = if short_of_buffers {
                        let pool = copies.get_or_insert_with(|| {
                            let pool = BufferPool::new(info.size(), stream.buffer_count() * COPIES_PER_BUFFER);
                            *self.shared.pool.lock().unwrap_or_else(|e| e.into_inner()) = Some(pool.clone());
                            pool
                        });
                        let Some(mut copy) = pool.acquire() else {
                            // The copies are all held too: this frame is lost, the driver's buffer is not.
                            self.shared.count_dropped();
                            continue;
                        };
                        copy_frame_bytes(&mut copy, &c.bytes()[..info.size()]);
                        drop(c);
                        copy.freeze()
                    } else {
                        c.into_buffer()
                    };
                    Item::Frame(Frame {
                        info: *info,
                        pts,
                        duration: period,
                        capture_utc: clock.utc_at(pts),
                        seq: *self.seq - 1,
                        source: Arc::clone(self.name),
                        meta: Arc::new(FrameMeta::default()),
                        buffer,
                    })
                }
                Sink::Packets { follower, announced } => {
                    let data = if short_of_buffers {
                        count_copied(c.bytes().len());
                        let data = Bytes::copy_from_slice(c.bytes());
                        drop(c);
                        data
                    } else {
                        c.into_bytes()
                    };
                    let (p, keyframe) = match follower.follow(&data, 0) {
                        Ok(found) => found,
                        Err(e) => {
                            self.shared.count_dropped();
                            if let Some(buffers) = bad.tick(clock.now_ns()) {
                                tracing::warn!(node = %self.name, buffers, "dropping undecodable buffers: {e}");
                            }
                            continue;
                        }
                    };
                    announced.update(self.publisher, &p);
                    Item::Packet(Packet {
                        meta: Default::default(),
                        codec: p.codec,
                        data,
                        pts,
                        dts: pts,
                        duration: period,
                        keyframe: keyframe || p.codec == Codec::Mjpeg,
                        params: p,
                        source: Arc::clone(self.name),
                        seq: *self.seq - 1,
                        capture_utc: clock.utc_at(pts),
                    })
                }
            };
            self.publisher.publish(item);
            self.shared.count_out();
        }
        Ok(())
    }
}
